// Consumers end to end: the admin API over the real KV of `wrangler dev`, API
// keys on routes (plans, alternatives with a JWT, forged consumer headers),
// and a quota counted exactly across two independent gateway processes that
// share the GatewayLimiter Durable Objects (as globallimit does).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { assertProblem, header, lastRequest } from '../assert.mjs';
import { rawRequest } from '../harness.mjs';
import { ADMIN_TOKEN } from '../lib/admin.mjs';

const JWT_SECRET = 'consumers-hmac-secret-' + crypto.randomBytes(24).toString('hex');
const ISSUER = 'https://consumers.e2e.test/';
const tag = crypto.randomBytes(3).toString('hex');
let seq = 0;
const newId = (name) => `cn-${name}-${tag}-${++seq}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ iss: ISSUER, sub, exp: now + 600 })}`;
  return `${signing}.${crypto.createHmac('sha256', JWT_SECRET).update(signing).digest('base64url')}`;
}

const QUOTA = 30;

export default {
  name: 'consumers',
  servers: ['cn-echo'],
  secrets: { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, CN_JWT_SECRET: JWT_SECRET },
  config: ({ servers }) => ({
    origins: { 'cn-echo': { regions: [{ name: 'local', url: servers['cn-echo'].url, serves: ['*'] }] } },
    jwt: { 'cn-jwt': { issuer: ISSUER, secret_var: 'CN_JWT_SECRET' } },
    plans: {
      'cn-free': { rate_limit: { requests: 1000, window_s: 3600 } },
      'cn-pro': { quota: { requests: 100000, period: 'month' } },
      'cn-daily': { quota: { requests: QUOTA, period: 'day' } },
    },
    routes: [
      { id: 'cn-any', path: '/cn/any', origin: 'cn-echo', auth: { api_key: {} } },
      { id: 'cn-pro', path: '/cn/pro', origin: 'cn-echo', auth: { api_key: { plans: ['cn-pro'] } } },
      { id: 'cn-either', path: '/cn/either', origin: 'cn-echo', auth: [{ jwt: 'cn-jwt' }, { api_key: { plans: ['cn-free', 'cn-pro'] } }] },
      { id: 'cn-open', path: '/cn/open', origin: 'cn-echo' },
      { id: 'cn-quota', path: '/cn/quota', origin: 'cn-echo', methods: ['GET'], auth: { api_key: { plans: ['cn-daily'] } } },
    ],
  }),

  tests(e2e) {
    const echo = () => e2e.servers['cn-echo'];
    /** Every key this suite was given: none may be found at rest or in a log line. */
    const issued = [];

    async function api(method, target, { body, auth = `Bearer ${ADMIN_TOKEN}`, port = e2e.port } = {}) {
      const headers = { 'x-request-id': newId('admin') };
      if (auth) headers.authorization = auth;
      if (body !== undefined) headers['content-type'] = 'application/json';
      return rawRequest(port, { method, path: `/__gateway/consumers${target}`, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    }

    async function consumerWithKey(plan) {
      const id = newId('c');
      const made = await api('POST', '', { body: { id, plan } });
      assert.equal(made.status, 201, made.body.toString());
      const keyRes = await api('POST', `/${id}/keys`);
      assert.equal(keyRes.status, 201, keyRes.body.toString());
      const { key, key_id: keyId } = keyRes.json();
      issued.push(key);
      return { id, key, keyId };
    }

    function call(route, { key, bearer, headers = {}, port = e2e.port } = {}) {
      const id = newId('req');
      const h = { 'x-request-id': id, ...headers };
      if (key) h['x-api-key'] = key;
      if (bearer) h.authorization = `Bearer ${bearer}`;
      return rawRequest(port, { path: `/cn/${route}`, headers: h }).then((res) => Object.assign(res, { id, port }));
    }

    describe('the admin API', () => {
      test('the whole lifecycle, with 401 without the admin token, 409 and 404', async () => {
        const id = newId('life');
        for (const auth of [null, 'Bearer wrong', `Bearer ${ADMIN_TOKEN}x`, `Basic ${ADMIN_TOKEN}`]) {
          const res = await api('POST', '', { body: { id, plan: 'cn-pro' }, auth });
          await assertProblem(res, 401, { label: String(auth), forbidden: [ADMIN_TOKEN.slice(0, 16)] });
        }
        await assertProblem(await api('GET', `/${id}`), 404, { label: 'nothing was created' });

        const created = await api('POST', '', { body: { id, plan: 'cn-pro', metadata: { team: 'billing' } } });
        assert.equal(created.status, 201);
        assert.equal(created.json().plan, 'cn-pro');
        await assertProblem(await api('POST', '', { body: { id, plan: 'cn-pro' } }), 409);
        await assertProblem(await api('POST', '', { body: { id: newId('x'), plan: 'gold' } }), 400, { label: 'unknown plan' });
        await assertProblem(await api('POST', '', { body: { id: 'bad id', plan: 'cn-pro' } }), 400, { label: 'bad id' });
        await assertProblem(await api('POST', '', { body: '{' }), 400, { label: 'not an object' });

        const keyRes = await api('POST', `/${id}/keys`);
        assert.equal(keyRes.status, 201);
        assert.equal(header(keyRes, 'cache-control'), 'no-store');
        const { key, key_id: keyId } = keyRes.json();
        issued.push(key);
        assert.match(key, /^gwk_[A-Za-z0-9_-]{38}$/);

        const read = await api('GET', `/${id}`);
        assert.equal(read.status, 200);
        const view = read.json();
        assert.equal(view.plan, 'cn-pro');
        assert.deepEqual(view.metadata, { team: 'billing' });
        assert.equal(view.keys.length, 1);
        assert.equal(view.keys[0].key_id, keyId);
        assert.equal(view.keys[0].last4, key.slice(-4));
        assert.ok(!read.body.toString().includes(key.slice(4, 20)), 'the key is shown again');
        assert.equal(view.quota.limit, 100000);
        assert.equal(view.quota.period, 'month');

        // The key works on a route for its plan.
        assert.equal((await call('pro', { key })).status, 200);
        // A plan change takes effect at once here.
        const patched = await api('PATCH', `/${id}`, { body: { plan: 'cn-free' } });
        assert.equal(patched.status, 200);
        assert.equal(patched.json().plan, 'cn-free');
        await assertProblem(await call('pro', { key }), 403, { label: 'plan no longer accepted' });
        assert.equal((await call('any', { key })).status, 200);

        // Revoked: refused at once.
        await assertProblem(await api('DELETE', `/${id}/keys/k_AAAAAAAAAAAA`), 404);
        const revoked = await api('DELETE', `/${id}/keys/${keyId}`);
        assert.equal(revoked.status, 204);
        await assertProblem(await call('any', { key }), 401, { label: 'revoked key' });

        // A deleted consumer's keys stop working.
        const second = (await api('POST', `/${id}/keys`)).json().key;
        issued.push(second);
        assert.equal((await call('any', { key: second })).status, 200);
        assert.equal((await api('DELETE', `/${id}`)).status, 204);
        await assertProblem(await call('any', { key: second }), 401, { label: 'deleted consumer' });
        await assertProblem(await api('GET', `/${id}`), 404);
        await assertProblem(await api('PUT', `/${id}`), 405);
      });
    });

    describe('API keys on routes', () => {
      test('the origin sees the consumer and its plan, never the key; forged copies are stripped', async () => {
        const { id, key } = await consumerWithKey('cn-pro');
        const res = await call('any', { key, headers: { 'x-consumer-id': 'forged', 'x-consumer-plan': 'enterprise' } });
        assert.equal(res.status, 200);
        const seen = lastRequest(echo());
        assert.equal(seen.headers['x-consumer-id'], id);
        assert.equal(seen.headers['x-consumer-plan'], 'cn-pro');
        assert.equal(seen.headers['x-api-key'], undefined);
        const line = await e2e.waitForLog(res.id);
        assert.equal(line.consumer, id);
        assert.equal(line.api_key, 'valid');

        const open = await call('open', { headers: { 'x-consumer-id': 'forged', 'X-Consumer-Plan': 'enterprise' } });
        assert.equal(open.status, 200);
        const plain = lastRequest(echo());
        assert.equal(plain.headers['x-consumer-id'], undefined);
        assert.equal(plain.headers['x-consumer-plan'], undefined);
      });

      test('a malformed key is refused without a KV read; an unknown one with one read', async () => {
        for (const bad of ['gwk_short', 'nope', 'gwk_' + 'A'.repeat(38)]) {
          const res = await call('any', { key: bad });
          await assertProblem(res, 401, { label: bad, forbidden: [bad] });
          const line = await e2e.waitForLog(res.id);
          assert.equal(line.api_key, 'malformed', JSON.stringify(line));
          assert.equal(line.kv_reads, undefined, 'a malformed key read KV');
        }
        // Well formed (right checksum) but never issued.
        const body = crypto.randomBytes(24).toString('base64url');
        const sum = crypto.createHash('sha256').update('gwk_' + body).digest().subarray(0, 4).toString('base64url');
        const made = `gwk_${body}${sum}`;
        const first = await call('any', { key: made });
        await assertProblem(first, 401);
        const line = await e2e.waitForLog(first.id);
        assert.equal(line.api_key, 'unknown');
        assert.equal(line.kv_reads, 1);
        const again = await call('any', { key: made });
        await assertProblem(again, 401);
        assert.equal((await e2e.waitForLog(again.id)).kv_reads, undefined, 'the unknown key was not remembered');
      });

      test('no credential: 401 naming every scheme the route accepts', async () => {
        const res = await call('either');
        await assertProblem(res, 401);
        assert.equal(header(res, 'www-authenticate'), 'Bearer, ApiKey header="x-api-key"');
        const keyOnly = await call('any');
        await assertProblem(keyOnly, 401);
        assert.equal(header(keyOnly, 'www-authenticate'), 'ApiKey header="x-api-key"');
      });

      test('a route with [jwt, api_key] accepts either; a plan not listed gets 403', async () => {
        const { id, key } = await consumerWithKey('cn-free');
        const byToken = await call('either', { bearer: token('alice') });
        assert.equal(byToken.status, 200);
        assert.equal((await e2e.waitForLog(byToken.id)).subject, 'alice');
        const byKey = await call('either', { key });
        assert.equal(byKey.status, 200);
        assert.equal((await e2e.waitForLog(byKey.id)).consumer, id);
        const daily = await consumerWithKey('cn-daily');
        const denied = await call('either', { key: daily.key });
        await assertProblem(denied, 403);
        assert.equal((await e2e.waitForLog(denied.id)).api_key, 'plan_not_accepted');
      });
    });

    describe('quotas', () => {
      let peer;
      after(() => peer?.stop());

      test(`a quota of ${QUOTA} per day across two gateway processes admits exactly ${QUOTA}, counting down`, { timeout: 5 * 60_000 }, async () => {
        // Not across midnight UTC: the quota would reset midway.
        const dayEnd = (Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000;
        if (dayEnd - Date.now() < 120_000) await sleep(dayEnd - Date.now() + 1000);

        const { id, key, keyId } = await consumerWithKey('cn-daily');
        const warm = await consumerWithKey('cn-daily');
        const record = (c) => JSON.stringify({ consumer: c.id, plan: 'cn-daily', key_id: c.keyId });
        const hash = (k) => crypto.createHash('sha256').update(k).digest('hex');
        // The peer's KV holds what replication would bring it: the key records, hashed.
        peer = await e2e.startPeer({
          kv: { [`apikey:${hash(key)}`]: record({ id, keyId }), [`apikey:${hash(warm.key)}`]: record(warm) },
        });
        const logOf = (res) => (res.port === e2e.port ? e2e.wrangler : peer).waitForLog(res.id);
        // Until the peer reaches the main process's limiter, quotas fail open: warm it up
        // with another consumer.
        for (let i = 0; ; i++) {
          const res = await call('quota', { key: warm.key, port: peer.port });
          assert.equal(res.status, 200, res.body.toString());
          if ((await logOf(res)).quota === 'allowed') break;
          assert.ok(i < 60, 'the peer never reached the limiter');
          await sleep(500);
        }

        // Sequentially in one process the remaining count goes down one by one.
        const remaining = [];
        for (let i = 0; i < 5; i++) {
          const res = await call('quota', { key });
          assert.equal(res.status, 200);
          assert.equal(header(res, 'x-quota-limit'), String(QUOTA));
          const reset = Number(header(res, 'x-quota-reset'));
          assert.ok(reset > 0 && reset <= 86_400, `x-quota-reset ${reset}`);
          remaining.push(Number(header(res, 'x-quota-remaining')));
        }
        assert.deepEqual(remaining, [QUOTA - 1, QUOTA - 2, QUOTA - 3, QUOTA - 4, QUOTA - 5]);

        // Then a burst through both processes at once.
        const burst = await Promise.all(
          Array.from({ length: 60 }, (_, i) => call('quota', { key, port: i % 2 ? peer.port : e2e.port })),
        );
        const ok = burst.filter((r) => r.status === 200);
        assert.equal(ok.length, QUOTA - 5, burst.map((r) => r.status).join(' '));
        assert.ok(ok.some((r) => r.port === peer.port) && ok.some((r) => r.port === e2e.port), 'both processes admitted');
        for (const res of burst.filter((r) => r.status !== 200)) {
          const body = await assertProblem(res, 429);
          assert.equal(body.type, 'urn:edge-gateway:problem:quota-exceeded');
          assert.equal(header(res, 'x-quota-remaining'), '0');
          assert.equal(header(res, 'retry-after'), header(res, 'x-quota-reset'));
        }
        const lines = await Promise.all(burst.map(logOf));
        assert.ok(!lines.some((l) => l.quota === 'limiter_error'), 'a request failed open');
        // The admin view counts the use (units leased count until given back).
        const view = (await api('GET', `/${id}`)).json();
        assert.equal(view.quota.used, QUOTA);
        // Nothing of any key at rest in plain text, in either process's KV, nor in a log line.
        let hashSeen = false;
        for (const dir of [path.join(e2e.tmp, 'state'), peer.persistTo]) {
          for (const file of walk(dir)) {
            const bytes = fs.readFileSync(file);
            hashSeen ||= bytes.includes(hash(key));
            for (const k of issued) assert.ok(!bytes.includes(k.slice(4, 36)), `a key in plain text in ${file}`);
          }
        }
        // The scan read the stores: the key's hash is there.
        assert.ok(hashSeen, 'the key records were not found at rest');
        for (const line of [...e2e.wrangler.lines, ...peer.lines]) {
          for (const k of issued) assert.ok(!line.includes(k.slice(4, 36)), `a key in a log line: ${line}`);
        }
      });
    });
  },
};

/** Every file under `dir`. */
function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}
