// What an attacker tries against normalization, origin headers and the cache, in
// workerd: encoded characters that route around auth or into the reserved prefix,
// hosts with a trailing dot, an origin's own CORS grants, `Vary` headers outside the
// key, hop-by-hop headers replayed from the cache, repeated query parameters,
// writes that must invalidate, and ID tokens offered where access tokens are required.
//
// Every cache test uses its own paths, so entries never leak between tests.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';

const ISSUER = 'https://hardening.e2e.test/';
const JWT_SECRET = 'hardening-hmac-secret-' + crypto.randomBytes(24).toString('hex');
const NORM_HOST = 'norm.hardening.e2e.test';
const TENANT_HOST = 'a.tenant.hardening.e2e.test';
const APP = 'https://app.hardening.e2e.test';
const EVIL = 'https://evil.hardening.e2e.test';

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 token of the suite's issuer; `typ` goes into the JOSE header when given. */
function token({ typ, sub = 'alice' } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = typ === undefined ? { alg: 'HS256' } : { alg: 'HS256', typ };
  const signing = `${b64url(head)}.${b64url({ iss: ISSUER, sub, iat: now, exp: now + 600 })}`;
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(signing).digest('base64url');
  return `${signing}.${sig}`;
}

const fresh = (prefix, suffix = '') => `${prefix}/${crypto.randomBytes(5).toString('hex')}${suffix}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export default {
  name: 'hardening',
  servers: ['hard-origin'],
  config: ({ servers }) => ({
    origins: {
      'hard-origin': { regions: [{ name: 'local', url: servers['hard-origin'].url, serves: ['*'] }] },
    },
    jwt: {
      'hard-jwt': { issuer: ISSUER, secret_var: 'HARD_JWT_SECRET', algorithms: ['HS256'] },
      'hard-at': { issuer: ISSUER, secret_var: 'HARD_JWT_SECRET', algorithms: ['HS256'], typ: 'at+jwt' },
    },
    routes: [
      // A protected prefix beside a catch-all without auth, on a host of their own.
      { id: 'hard-admin', host: NORM_HOST, path: '/admin/{*rest}', origin: 'hard-origin', auth: { jwt: 'hard-jwt' } },
      { id: 'hard-all', host: NORM_HOST, path: '/{*rest}', origin: 'hard-origin' },
      { id: 'hard-tenant', host: TENANT_HOST, path: '/hard/tenant', methods: ['GET'], origin: 'hard-origin' },
      { id: 'hard-cache', path: '/hard/cache/{*rest}', origin: 'hard-origin', cache: { ttl_s: 60 } },
      { id: 'hard-cors', path: '/hard/cors/{*rest}', methods: ['GET'], origin: 'hard-origin', cors: { origins: [APP], credentials: true } },
      { id: 'hard-typ', path: '/hard/typ', methods: ['GET'], origin: 'hard-origin', auth: { jwt: 'hard-at' } },
      { id: 'hard-any-typ', path: '/hard/any-typ', methods: ['GET'], origin: 'hard-origin', auth: { jwt: 'hard-jwt' } },
    ],
  }),
  secrets: { HARD_JWT_SECRET: JWT_SECRET },

  tests(e2e) {
    const origin = () => e2e.servers['hard-origin'];
    const xcache = (res) => header(res, 'x-cache');
    const get = (path, headers = {}) => e2e.raw({ path, headers });
    const onNorm = (path, headers = {}) => e2e.raw({ path, headers: { host: NORM_HOST, ...headers } });

    /** GETs until a HIT (the entry is written in the background after the MISS). */
    async function untilHit(path, headers = {}, { timeoutMs = 3000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const res = await get(path, headers);
        assert.equal(res.status, 200, `${path}: ${res.text().slice(0, 200)}`);
        if (xcache(res) === 'HIT') return res;
        assert.equal(xcache(res), 'MISS', `${path}: x-cache`);
        if (Date.now() > deadline) assert.fail(`${path} was never served from the cache`);
        await sleep(50);
      }
    }

    describe('path normalization', () => {
      test('/%61dmin/x is /admin/x: it needs the token and never falls to the catch-all', async () => {
        const before = origin().hits;
        for (const target of ['/%61dmin/x', '/%61%64%6D%69%6E/x', '/x/%2e%2e/%61dmin/x', '/adm%69n/x', '/ADMIN/../%61dmin/x']) {
          const res = await onNorm(target);
          await assertProblem(res, 401, { label: target });
          assert.equal(header(res, 'www-authenticate'), 'Bearer', target);
          const line = await e2e.waitForLog(header(res, 'x-request-id'));
          assert.equal(line.route, 'hard-admin', target);
        }
        assert.equal(origin().hits, before, 'a request reached the origin without a token');
        // With the token: the admin route, and the origin receives the normalized path.
        const ok = await onNorm('/%61dmin/a%2Fb%7e', { authorization: `Bearer ${token()}` });
        assert.equal(ok.status, 200, ok.text());
        assert.equal(ok.json().rawPath, '/admin/a%2Fb~');
      });

      test('/%5F%5Fgateway/health is reserved: answered by the gateway, never sent upstream', async () => {
        const before = origin().hits;
        for (const target of ['/%5F%5Fgateway/health', '/%5f_gateway/health', '/%5F%5F%67ateway/health']) {
          const res = await onNorm(target);
          assert.equal(res.status, 200, target);
          assert.equal(res.json().status, 'ok', target);
        }
        await assertProblem(await onNorm('/%5F%5Fgateway/nothing'), 404);
        assert.equal(origin().hits, before);
      });

      test('other encodings reach the origin exactly as sent', async () => {
        const res = await onNorm('/files/a%2Fb%2fc/x%20y/%252e%252e/%C3%A9');
        assert.equal(res.status, 200);
        assert.equal(res.json().rawPath, '/files/a%2Fb%2fc/x%20y/%252e%252e/%C3%A9');
        const line = await e2e.waitForLog(header(res, 'x-request-id'));
        assert.equal(line.route, 'hard-all');
      });

      test('a host with a single trailing dot is the same host', async () => {
        for (const host of [TENANT_HOST, `${TENANT_HOST}.`, `A.Tenant.Hardening.E2E.Test.:${e2e.port}`]) {
          const res = await get('/hard/tenant', { host });
          assert.equal(res.status, 200, host);
          const line = await e2e.waitForLog(header(res, 'x-request-id'));
          assert.equal(line.route, 'hard-tenant', host);
        }
        const twoDots = await get('/hard/tenant', { host: `${TENANT_HOST}..` });
        assert.notEqual(twoDots.status, 200, 'two trailing dots are not the same host');
      });
    });

    describe('CORS belongs to the policy', () => {
      const permissive = (path) =>
        `${path}/__headers?access-control-allow-origin=${encodeURIComponent(EVIL)}&access-control-allow-credentials=true&access-control-max-age=86400`;

      test("a disallowed origin never gets the origin's own allow and allow-credentials", async () => {
        const res = await get(permissive('/hard/cors/creds'), { origin: EVIL, cookie: 'session=victim' });
        assert.equal(res.status, 200);
        const granted = Object.keys(res.headers).filter((n) => n.startsWith('access-control-'));
        assert.deepEqual(granted, [], `granted: ${granted.map((n) => `${n}: ${res.headers[n]}`).join('; ')}`);
      });

      test("an allowed origin gets the policy's answer and nothing of the origin's", async () => {
        const res = await get(permissive('/hard/cors/creds'), { origin: APP });
        assert.equal(res.status, 200);
        assert.equal(header(res, 'access-control-allow-origin'), APP);
        assert.equal(header(res, 'access-control-allow-credentials'), 'true');
        assert.equal(header(res, 'access-control-max-age'), null);
      });

      test('routes without a policy of their own follow the top-level one, or pass the origin through', async () => {
        const top = e2e.routes.cors;
        const res = await get(permissive('/hard/cache/cors-free'), { origin: EVIL });
        if (!top) {
          // No policy at all: the origin's headers are its own business.
          assert.equal(header(res, 'access-control-allow-origin'), EVIL);
          assert.equal(header(res, 'access-control-allow-credentials'), 'true');
        } else {
          assert.equal(header(res, 'access-control-allow-origin'), null);
          assert.equal(header(res, 'access-control-allow-credentials'), null);
        }
      });
    });

    describe('the cache', () => {
      test("a hit never carries the hop-by-hop headers the origin's Connection names", async () => {
        const path = fresh('/hard/cache/hop', '/__hop');
        const miss = await get(path);
        assert.equal(xcache(miss), 'MISS');
        const hit = await untilHit(path);
        for (const res of [miss, hit]) {
          for (const name of ['x-secret', 'keep-alive', 'proxy-authenticate', 'trailer', 'upgrade']) {
            assert.equal(res.headers[name], undefined, `${xcache(res)}: ${name}: ${res.headers[name]}`);
          }
          assert.ok(!/x-secret/i.test(res.headers.connection ?? ''), `connection: ${res.headers.connection}`);
          assert.equal(res.headers['x-end-to-end'], 'kept');
        }
      });

      test('Vary: Cookie is not stored: one user never gets the page made for another', async () => {
        const base = fresh('/hard/cache/vary');
        const path = `${base}/__headers?vary=Cookie`;
        const alice = await get(path, { cookie: 'session=alice' });
        assert.equal(xcache(alice), 'MISS');
        assert.equal(alice.json().headers.cookie, 'session=alice');
        // A control path without Vary asked after it is stored: the store did run.
        const control = `${base}/__headers?vary=Accept-Encoding`;
        await get(control);
        await untilHit(control);
        const bob = await get(path, { cookie: 'session=bob' });
        assert.equal(xcache(bob), 'MISS');
        assert.equal(bob.json().headers.cookie, 'session=bob', "bob got alice's variant");
        const varied = origin().requests.filter((r) => r.path === `${base}/__headers` && r.query === 'vary=Cookie');
        assert.equal(varied.length, 2, 'both users reached the origin');
      });

      test('repeated query parameters keep their order: ?a=1&a=2 and ?a=2&a=1 are two entries', async () => {
        const base = fresh('/hard/cache/query');
        await get(`${base}?a=1&a=2`);
        const first = await untilHit(`${base}?a=1&a=2`);
        assert.equal(first.json().query, 'a=1&a=2');
        const swapped = await get(`${base}?a=2&a=1`);
        assert.equal(xcache(swapped), 'MISS');
        assert.equal(swapped.json().query, 'a=2&a=1');
        // Distinct names still share an entry in any order.
        await get(`${base}?b=0&a=1&a=2`);
        await untilHit(`${base}?b=0&a=1&a=2`);
        const reordered = await get(`${base}?a=1&b=0&a=2`);
        assert.equal(xcache(reordered), 'HIT');
      });

      test('a successful POST, PUT, PATCH or DELETE invalidates the entry of its URL', async () => {
        for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
          const path = fresh('/hard/cache/doc', '?v=1');
          const other = fresh('/hard/cache/other');
          await get(path);
          await untilHit(path);
          await get(other);
          await untilHit(other);
          const write = await e2e.raw({ method, path, body: method === 'DELETE' ? undefined : '{}' });
          assert.equal(write.status, 200, method);
          assert.equal(xcache(write), 'BYPASS');
          const after = await get(path);
          assert.equal(xcache(after), 'MISS', `${method} did not invalidate`);
          assert.equal(xcache(await get(other)), 'HIT', `${method} invalidated another URL`);
        }
      });
    });

    describe('token types', () => {
      test('a provider requiring at+jwt accepts access tokens and refuses ID tokens of the same issuer', async () => {
        for (const typ of ['at+jwt', 'application/at+jwt', 'AT+JWT']) {
          const res = await get('/hard/typ', { authorization: `Bearer ${token({ typ })}` });
          assert.equal(res.status, 200, typ);
        }
        for (const typ of ['JWT', undefined, 'id+jwt']) {
          const res = await get('/hard/typ', { authorization: `Bearer ${token({ typ })}` });
          await assertProblem(res, 401, { label: String(typ) });
          assert.match(header(res, 'www-authenticate'), /^Bearer error="invalid_token"/);
          // Without the requirement, the type is not checked.
          const lax = await get('/hard/any-typ', { authorization: `Bearer ${token({ typ })}` });
          assert.equal(lax.status, 200, String(typ));
        }
      });
    });
  },
};
