// What operators see: the one JSON log line per request (every field, for a
// success, an auth failure, a 429 and a failover), server-timing, traceparent
// and x-request-id end to end.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { assertProblem, header, isRequestId, lastRequest } from '../assert.mjs';

const JWT_SECRET = 'obs-hmac-secret-' + crypto.randomBytes(24).toString('hex');
const ISSUER = 'https://obs.e2e.test/';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const rid = (label) => `obs-${label}-${crypto.randomBytes(6).toString('hex')}`;

/** An HS256 token from the suite's provider. */
function token(claims, { secret = JWT_SECRET } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ iss: ISSUER, iat: now, exp: now + 600, ...claims })}`;
  return `${signing}.${crypto.createHmac('sha256', secret).update(signing).digest('base64url')}`;
}

/** `server-timing` as {name: dur}. */
function serverTiming(res) {
  const value = header(res, 'server-timing');
  assert.ok(value, 'server-timing');
  const out = {};
  for (const part of value.split(',')) {
    const [name, ...params] = part.trim().split(';').map((s) => s.trim());
    const dur = params.find((p) => p.startsWith('dur='));
    assert.ok(dur, `no dur in ${JSON.stringify(part)}`);
    assert.match(dur, /^dur=\d+(\.\d+)?$/, value);
    out[name] = Number(dur.slice(4));
  }
  return out;
}

function validTraceparent(value) {
  const m = TRACEPARENT.exec(value ?? '');
  assert.ok(m, `traceparent ${JSON.stringify(value)}`);
  assert.notEqual(m[1], '0'.repeat(32), 'trace id all zero');
  assert.notEqual(m[2], '0'.repeat(16), 'parent id all zero');
  return { traceId: m[1], parentId: m[2], flags: m[3] };
}

export default {
  name: 'observability',
  servers: ['obs-origin'],
  config: ({ servers, deadUrl }) => ({
    origins: {
      'obs-origin': { regions: [{ name: 'obs-local', url: servers['obs-origin'].url, serves: ['*'] }] },
      // The caller is served by the dead region first (it serves `*`), then fails over.
      'obs-failover': {
        regions: [
          { name: 'obs-dead', url: deadUrl, serves: ['*'] },
          { name: 'obs-live', url: servers['obs-origin'].url, serves: [] },
        ],
      },
    },
    jwt: {
      'obs-jwt': { issuer: ISSUER, secret_var: 'OBS_JWT_SECRET', algorithms: ['HS256'], forward_claims: { sub: 'x-obs-user' } },
    },
    routes: [
      {
        id: 'obs-full',
        path: '/obs/full/{id}',
        methods: ['GET'],
        origin: 'obs-origin',
        rewrite: '/v1/things/{id}',
        auth: { jwt: 'obs-jwt', scopes: ['obs:read'] },
        rate_limit: { requests: 1000, window_s: 3600, key: 'sub' },
        cache: { ttl_s: 60 },
      },
      { id: 'obs-limited', path: '/obs/limited', methods: ['GET'], origin: 'obs-origin', rate_limit: { requests: 1, window_s: 3600, key: 'header:x-obs-client' } },
      { id: 'obs-failover', path: '/obs/failover/{*rest}', methods: ['GET', 'POST'], origin: 'obs-failover' },
      { id: 'obs-plain', path: '/obs/plain/{*rest}', origin: 'obs-origin' },
    ],
  }),
  secrets: { OBS_JWT_SECRET: JWT_SECRET },

  tests(e2e) {
    const origin = () => e2e.servers['obs-origin'];
    /** The origin's record of the request with this id. */
    const seenUpstream = (id) => origin().requests.filter((r) => r.headers['x-request-id'] === id);
    const allOutput = () => e2e.wrangler.lines.join('\n');
    /** Requests the origin received under a path prefix (the markers of onlyLine go to /obs/plain/marker). */
    const upstreamUnder = (prefix) => origin().requests.filter((r) => r.path.startsWith(prefix)).length;

    /** Sends a request and another after it, then returns the first one's log lines (exactly one expected). */
    async function onlyLine(id) {
      const line = await e2e.waitForLog(id);
      const marker = rid('marker');
      await e2e.raw({ path: '/obs/plain/marker', headers: { 'x-request-id': marker } });
      await e2e.waitForLog(marker);
      assert.equal(e2e.wrangler.logLinesFor(id).length, 1, `log lines for ${id}`);
      return line;
    }

    describe('the log line', () => {
      test('a success: every field, with cache, rate limit and subject', async () => {
        const id = rid('ok');
        const jwt = token({ sub: 'user-42', scope: 'obs:read other' });
        const res = await e2e.raw({ path: '/obs/full/42?x=1', headers: { 'x-request-id': id, authorization: `Bearer ${jwt}` } });
        assert.equal(res.status, 200, res.text());
        assert.equal(res.json().path, '/v1/things/42');
        const line = await onlyLine(id);
        assert.equal(line.request_id, id);
        assert.equal(line.route, 'obs-full');
        assert.equal(line.path_template, '/obs/full/{id}');
        assert.equal(line.method, 'GET');
        assert.equal(line.path, '/obs/full/42');
        assert.equal(line.status, 200);
        assert.ok(Number.isInteger(line.duration_ms) && line.duration_ms >= 0, `duration_ms ${line.duration_ms}`);
        assert.ok(Number.isInteger(line.upstream_ms) && line.upstream_ms >= 0, `upstream_ms ${line.upstream_ms}`);
        assert.ok(line.upstream_ms <= line.duration_ms, `upstream_ms ${line.upstream_ms} > duration_ms ${line.duration_ms}`);
        assert.equal(line.region, 'obs-local');
        assert.equal(line.upstream_status, 200);
        assert.equal(line.attempts.length, 1);
        assert.equal(line.attempts[0].region, 'obs-local');
        assert.equal(line.attempts[0].status, 200);
        assert.ok(Number.isInteger(line.attempts[0].ms) && line.attempts[0].ms >= 0);
        assert.equal(line.failovers, 0);
        assert.equal(line.cache, 'MISS');
        assert.equal(line.rate_limit, 'allowed');
        assert.equal(line.subject, 'user-42');
        assert.equal(line.error, undefined);
        assert.ok(!allOutput().includes(jwt), 'the token was printed');
        assert.ok(!allOutput().includes(jwt.split('.')[2]), 'the token signature was printed');

        // The same request again, from the cache: HIT, nothing upstream.
        let hit;
        for (let i = 0; i < 20; i++) {
          const again = rid('hit');
          const r = await e2e.raw({ path: '/obs/full/42?x=1', headers: { 'x-request-id': again, authorization: `Bearer ${jwt}` } });
          assert.equal(r.status, 200);
          hit = await e2e.waitForLog(again);
          if (hit.cache === 'HIT') {
            assert.equal(header(r, 'x-request-id'), again, 'a hit carries its own request id');
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(hit.cache, 'HIT');
        assert.equal(hit.status, 200);
        assert.equal(hit.subject, 'user-42');
        assert.equal(hit.rate_limit, 'allowed');
        assert.equal(hit.upstream_status ?? null, null);
        assert.equal(hit.upstream_ms ?? null, null);
        assert.deepEqual(hit.attempts ?? [], []);
      });

      test('an auth failure: 401, the reason in error, the token nowhere in the output', async () => {
        const forged = token({ sub: 'user-43', scope: 'obs:read' }, { secret: 'not-the-secret-'.repeat(3) });
        const expired = token({ sub: 'user-44', scope: 'obs:read', exp: Math.floor(Date.now() / 1000) - 3600 });
        const cases = [
          ['missing', {}, 401],
          ['bad signature', { authorization: `Bearer ${forged}` }, 401],
          ['expired', { authorization: `Bearer ${expired}` }, 401],
          ['garbage', { authorization: 'Bearer not.a.jwt-secret-garbage-value' }, 401],
          ['no scope', { authorization: `Bearer ${token({ sub: 'user-45', scope: 'other' })}` }, 403],
        ];
        const before = upstreamUnder('/v1/things/');
        const reasons = new Map();
        for (const [label, headers, status] of cases) {
          const id = rid('auth');
          const res = await e2e.raw({ path: '/obs/full/1', headers: { 'x-request-id': id, ...headers } });
          await assertProblem(res, status, { label });
          const line = await onlyLine(id);
          assert.equal(line.status, status, label);
          assert.equal(line.route, 'obs-full', label);
          assert.equal(line.path_template, '/obs/full/{id}', label);
          assert.equal(typeof line.error, 'string', `${label}: error`);
          assert.ok(line.error.length > 0, label);
          assert.equal(line.subject, undefined, `${label}: subject of a refused token`);
          assert.equal(line.upstream_status ?? null, null, label);
          assert.deepEqual(line.attempts ?? [], [], label);
          // Refused before the rate limit and the cache.
          assert.equal(line.rate_limit, undefined, label);
          assert.notEqual(line.cache, 'HIT', label);
          reasons.set(label, line.error);
        }
        assert.match(reasons.get('expired'), /expir/i);
        assert.match(reasons.get('no scope'), /scope/i);
        assert.equal(new Set(reasons.values()).size, reasons.size, `one reason per failure: ${[...reasons.values()]}`);
        assert.equal(upstreamUnder('/v1/things/'), before, 'refused requests never reach the origin');
        const out = allOutput();
        for (const secret of [forged, expired, forged.split('.')[2], expired.split('.')[2], 'not.a.jwt-secret-garbage-value', JWT_SECRET]) {
          assert.ok(!out.includes(secret), `printed: ${secret.slice(0, 24)}...`);
        }
      });

      test('a 429: rate_limit "limited", with status and no upstream', async () => {
        const client = crypto.randomBytes(6).toString('hex');
        const first = rid('rl-ok');
        const ok = await e2e.raw({ path: '/obs/limited', headers: { 'x-request-id': first, 'x-obs-client': client } });
        assert.equal(ok.status, 200);
        assert.equal((await e2e.waitForLog(first)).rate_limit, 'allowed');
        const second = rid('rl-429');
        const before = upstreamUnder('/obs/limited');
        const limited = await e2e.raw({ path: '/obs/limited', headers: { 'x-request-id': second, 'x-obs-client': client } });
        await assertProblem(limited, 429);
        assert.ok(header(limited, 'retry-after'));
        const line = await onlyLine(second);
        assert.equal(line.status, 429);
        assert.equal(line.route, 'obs-limited');
        assert.equal(line.rate_limit, 'limited');
        assert.equal(line.upstream_status ?? null, null);
        assert.deepEqual(line.attempts ?? [], []);
        assert.equal(line.failovers ?? 0, 0);
        assert.equal(upstreamUnder('/obs/limited'), before, 'a limited request never reaches the origin');
      });

      test('a failover: attempts 2 (the dead region, then the live one), failovers 1', async () => {
        const id = rid('failover');
        const res = await e2e.raw({ path: '/obs/failover/x', headers: { 'x-request-id': id } });
        assert.equal(res.status, 200, res.text());
        assert.equal(res.json().origin, 'obs-origin');
        const line = await onlyLine(id);
        assert.equal(line.route, 'obs-failover');
        assert.equal(line.status, 200);
        assert.equal(line.attempts.length, 2, JSON.stringify(line.attempts));
        assert.equal(line.attempts[0].region, 'obs-dead');
        assert.equal(line.attempts[0].status ?? null, null);
        assert.ok(line.attempts[0].error, 'the failed attempt says why');
        assert.equal(line.attempts[1].region, 'obs-live');
        assert.equal(line.attempts[1].status, 200);
        assert.equal(line.failovers, 1);
        assert.equal(line.region, 'obs-live');
        assert.equal(line.upstream_status, 200);
        assert.ok(line.upstream_ms >= line.attempts[1].ms);
        // A POST is never retried: one attempt, 502.
        const post = rid('failover-post');
        const failed = await e2e.raw({ method: 'POST', path: '/obs/failover/x', body: 'x', headers: { 'x-request-id': post } });
        await assertProblem(failed, 502);
        const postLine = await onlyLine(post);
        assert.equal(postLine.attempts.length, 1);
        assert.equal(postLine.failovers, 0);
        assert.equal(postLine.status, 502);
        assert.ok(postLine.error);
      });
    });

    describe('server-timing', () => {
      test('gateway and upstream durations, matching the log line', async () => {
        const id = rid('timing');
        const res = await e2e.raw({ path: '/obs/plain/__slow/300', headers: { 'x-request-id': id } });
        assert.equal(res.status, 200);
        const timing = serverTiming(res);
        assert.ok('gateway' in timing && 'upstream' in timing, header(res, 'server-timing'));
        assert.ok(timing.upstream >= 250, `upstream;dur=${timing.upstream} for a 300 ms origin`);
        assert.ok(timing.upstream < 5000);
        assert.ok(timing.gateway >= 0 && timing.gateway < 1000, `gateway;dur=${timing.gateway}`);
        const line = await e2e.waitForLog(id);
        assert.equal(timing.upstream, line.upstream_ms);
        assert.ok(timing.gateway + timing.upstream <= line.duration_ms + 1, `${header(res, 'server-timing')} vs duration_ms ${line.duration_ms}`);
        assert.ok(line.duration_ms >= 250);
      });

      test("the gateway's own answers carry server-timing too", async () => {
        const unauthorized = await e2e.raw({ path: '/obs/full/1' });
        assert.equal(unauthorized.status, 401);
        assert.ok('gateway' in serverTiming(unauthorized));
        const missing = await e2e.raw({ path: '/obs/nowhere' });
        assert.equal(missing.status, 404);
        assert.ok('gateway' in serverTiming(missing));
        // A failover's upstream time covers both attempts.
        const failover = await e2e.raw({ path: '/obs/failover/t' });
        assert.equal(failover.status, 200);
        const timing = serverTiming(failover);
        assert.ok('upstream' in timing);
      });
    });

    describe('traceparent', () => {
      test('a valid traceparent is forwarded unchanged', async () => {
        for (const tp of [
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
        ]) {
          const id = rid('tp');
          const res = await e2e.raw({ path: '/obs/plain/tp', headers: { traceparent: tp, 'x-request-id': id } });
          assert.equal(res.status, 200);
          assert.equal(res.json().headers.traceparent, tp);
          assert.equal(seenUpstream(id).length, 1);
        }
      });

      test('one is created when absent: valid W3C format, a new trace for each request', async () => {
        const traces = new Set();
        for (let i = 0; i < 3; i++) {
          const res = await e2e.raw({ path: '/obs/plain/tp-new' });
          assert.equal(res.status, 200);
          traces.add(validTraceparent(res.json().headers.traceparent).traceId);
        }
        assert.equal(traces.size, 3);
      });

      test('a malformed one is replaced by a valid new one', async () => {
        const bad = [
          'garbage',
          '',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7', // missing flags
          '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01', // upper case
          '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // zero trace id
          '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // zero parent id
          'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff
          '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // short trace id
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // version 00 with more fields
          '0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // non-hex version
        ];
        for (const tp of bad) {
          const res = await e2e.raw({ path: '/obs/plain/tp-bad', headers: { traceparent: tp } });
          assert.equal(res.status, 200, JSON.stringify(tp));
          const got = res.json().headers.traceparent;
          assert.notEqual(got, tp, `kept ${JSON.stringify(tp)}`);
          validTraceparent(got);
        }
      });

      test("a failed-over request reaches the live region with the client's traceparent", async () => {
        const tp = '00-11111111111111111111111111111111-2222222222222222-01';
        const res = await e2e.raw({ path: '/obs/failover/tp', headers: { traceparent: tp } });
        assert.equal(res.status, 200);
        assert.equal(res.json().headers.traceparent, tp);
      });
    });

    describe('x-request-id', () => {
      test("a client's id is the same in the response, upstream, the log and error bodies", async () => {
        const id = rid('client');
        const res = await e2e.raw({ path: '/obs/plain/rid', headers: { 'x-request-id': id } });
        assert.equal(res.status, 200);
        assert.equal(header(res, 'x-request-id'), id);
        assert.equal(res.json().headers['x-request-id'], id);
        assert.equal((await e2e.waitForLog(id)).request_id, id);

        const errId = rid('client-err');
        const denied = await e2e.raw({ path: '/obs/full/1', headers: { 'x-request-id': errId } });
        const body = await assertProblem(denied, 401);
        assert.equal(body.request_id, errId);
        assert.equal((await e2e.waitForLog(errId)).request_id, errId);
      });

      test('a generated id is the same in the response, upstream and the log; a new one per request', async () => {
        const ids = new Set();
        for (const sent of [undefined, 'not valid!']) {
          const res = await e2e.raw({ path: '/obs/plain/rid-new', headers: sent ? { 'x-request-id': sent } : {} });
          assert.equal(res.status, 200);
          const id = header(res, 'x-request-id');
          assert.ok(isRequestId(id), id);
          assert.notEqual(id, sent);
          assert.equal(res.json().headers['x-request-id'], id);
          assert.equal(lastRequest(origin()).headers['x-request-id'], id);
          const line = await e2e.waitForLog(id);
          assert.equal(line.path, '/obs/plain/rid-new');
          ids.add(id);
        }
        assert.equal(ids.size, 2);
      });

      test("a failed-over request reaches the live region with the client's request id", async () => {
        const id = rid('failover-rid');
        const res = await e2e.raw({ path: '/obs/failover/rid', headers: { 'x-request-id': id } });
        assert.equal(res.status, 200);
        assert.equal(header(res, 'x-request-id'), id);
        assert.equal(seenUpstream(id).length, 1, 'the live region saw it once');
        assert.equal((await e2e.waitForLog(id)).attempts.length, 2);
      });
    });
  },
};
