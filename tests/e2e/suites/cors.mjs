// CORS as a browser sees it: preflights answered at the edge, the headers of
// actual responses (the gateway's own errors included), `*` policies, and a
// route's own policy replacing the top-level one.
//
// The policies are route-level (a top-level `cors` would apply to every suite's
// routes); the tests that concern the top-level policy adapt to whatever the
// merged routes file has.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';

const APP = 'https://app.cors.e2e.test';
const ADMIN = 'https://admin.cors.e2e.test:8443';
const PARTNER = 'https://partner.cors.e2e.test';
const EVIL = 'https://evil.cors.e2e.test';
const JWT_SECRET = 'cors-hmac-secret-' + crypto.randomBytes(24).toString('hex');

/** A header's comma-separated values, lower-cased, as a set. */
const list = (res, name) =>
  new Set(
    (header(res, name) ?? '')
      .split(',')
      .map((v) => v.trim().toLowerCase())
      .filter(Boolean),
  );
// The gateway's own headers, exposed to every allowed origin besides the policy's list.
const GATEWAY_EXPOSED = [
  'www-authenticate',
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'x-quota-limit',
  'x-quota-remaining',
  'x-quota-reset',
];
const ACCESS_CONTROL = (res) => Object.keys(res.headers).filter((n) => n.startsWith('access-control-'));

export default {
  name: 'cors',
  servers: ['cors-origin'],
  config: ({ servers, deadUrl }) => ({
    origins: {
      'cors-origin': { regions: [{ name: 'local', url: servers['cors-origin'].url, serves: ['*'] }] },
      'cors-dead': { regions: [{ name: 'local', url: deadUrl, serves: ['*'] }] },
    },
    jwt: {
      'cors-jwt': { issuer: 'https://cors.e2e.test/', secret_var: 'CORS_JWT_SECRET', algorithms: ['HS256'] },
    },
    routes: [
      // Everything configured.
      {
        id: 'cors-app',
        path: '/cors/app/{*rest}',
        methods: ['GET', 'POST', 'PUT'],
        origin: 'cors-origin',
        cors: {
          origins: [APP, ADMIN],
          methods: ['GET', 'POST', 'PUT'],
          headers: ['Content-Type', 'X-Api-Key'],
          expose_headers: ['X-Request-Id', 'X-Cors-Extra'],
          credentials: true,
          max_age_s: 600,
        },
      },
      // Defaults: methods from the route, requested headers echoed, no max-age, no credentials.
      { id: 'cors-defaults', path: '/cors/defaults/{*rest}', methods: ['GET', 'DELETE'], origin: 'cors-origin', cors: { origins: [APP] } },
      // Another policy: PARTNER only.
      { id: 'cors-partner', path: '/cors/partner/{*rest}', methods: ['GET'], origin: 'cors-origin', cors: { origins: [PARTNER] } },
      { id: 'cors-any', path: '/cors/any/{*rest}', methods: ['GET', 'POST'], origin: 'cors-origin', cors: { origins: ['*'], max_age_s: 60 } },
      {
        id: 'cors-auth',
        path: '/cors/auth/{*rest}',
        methods: ['GET'],
        origin: 'cors-origin',
        auth: { jwt: 'cors-jwt' },
        cors: { origins: [APP], expose_headers: ['WWW-Authenticate'], credentials: true },
      },
      { id: 'cors-dead', path: '/cors/dead/{*rest}', methods: ['GET'], origin: 'cors-dead', cors: { origins: [APP] } },
      // A cached route: the CORS headers of a hit are those of its own request.
      {
        id: 'cors-cached',
        path: '/cors/cached/{*rest}',
        methods: ['GET'],
        origin: 'cors-origin',
        cache: { ttl_s: 60 },
        cors: { origins: [APP, ADMIN], expose_headers: ['X-Cache'] },
      },
      // No policy of its own: the top-level one, if any.
      { id: 'cors-none', path: '/cors/none/{*rest}', methods: ['GET'], origin: 'cors-origin' },
    ],
  }),
  secrets: { CORS_JWT_SECRET: JWT_SECRET },

  tests(e2e) {
    const origin = () => e2e.servers['cors-origin'];
    const preflight = (path, from, method, requestHeaders) =>
      e2e.raw({
        method: 'OPTIONS',
        path,
        headers: {
          origin: from,
          'access-control-request-method': method,
          ...(requestHeaders ? { 'access-control-request-headers': requestHeaders } : {}),
        },
      });
    const get = (path, from, extra = {}) => e2e.raw({ path, headers: from ? { origin: from, ...extra } : extra });

    describe('preflights', () => {
      test('from an allowed origin: 204 with allow-origin, -methods, -headers, -max-age, -credentials; not forwarded', async () => {
        const before = origin().hits;
        for (const from of [APP, ADMIN]) {
          const res = await preflight('/cors/app/items/1', from, 'PUT', 'content-type, x-api-key');
          assert.equal(res.status, 204, from);
          assert.equal(res.body.length, 0);
          assert.equal(header(res, 'access-control-allow-origin'), from);
          assert.deepEqual(list(res, 'access-control-allow-methods'), new Set(['get', 'post', 'put']));
          assert.deepEqual(list(res, 'access-control-allow-headers'), new Set(['content-type', 'x-api-key']));
          assert.equal(header(res, 'access-control-max-age'), '600');
          assert.equal(header(res, 'access-control-allow-credentials'), 'true');
          assert.ok(list(res, 'vary').has('origin'), `vary: ${header(res, 'vary')}`);
          assert.ok(header(res, 'x-request-id'));
        }
        // Origins compare case-insensitively.
        const upper = await preflight('/cors/app/items/1', APP.toUpperCase(), 'GET');
        assert.equal(upper.status, 204);
        assert.ok(header(upper, 'access-control-allow-origin'));
        assert.equal(origin().hits, before, 'preflights are answered at the edge');
      });

      test('defaults: methods from the route (HEAD with GET), requested headers echoed, no max-age or credentials', async () => {
        const res = await preflight('/cors/defaults/x', APP, 'DELETE', 'X-Custom-One, Content-Type');
        assert.equal(res.status, 204);
        assert.equal(header(res, 'access-control-allow-origin'), APP);
        assert.deepEqual(list(res, 'access-control-allow-methods'), new Set(['get', 'head', 'delete']));
        assert.deepEqual(list(res, 'access-control-allow-headers'), new Set(['x-custom-one', 'content-type']));
        assert.equal(header(res, 'access-control-max-age'), null);
        assert.equal(header(res, 'access-control-allow-credentials'), null);
      });

      test('from a disallowed origin: 403, no access-control-allow-origin; not forwarded', async () => {
        const before = origin().hits;
        for (const [path, from] of [
          ['/cors/app/items/1', EVIL],
          ['/cors/app/items/1', PARTNER],
          ['/cors/app/items/1', 'null'],
          ['/cors/app/items/1', `${APP}.evil.example`],
          ['/cors/app/items/1', APP.replace('https:', 'http:')],
          ['/cors/partner/x', APP],
        ]) {
          const res = await preflight(path, from, 'GET', 'content-type');
          assert.equal(res.status, 403, `${path} from ${from}`);
          assert.deepEqual(ACCESS_CONTROL(res), [], `${path} from ${from}: ${ACCESS_CONTROL(res)}`);
        }
        assert.equal(origin().hits, before);
      });
    });

    describe('actual responses', () => {
      test('a simple GET from an allowed origin: allow-origin, expose-headers, credentials, Vary: Origin', async () => {
        const res = await get('/cors/app/items/1', APP);
        assert.equal(res.status, 200);
        assert.equal(res.json().origin, 'cors-origin');
        assert.equal(header(res, 'access-control-allow-origin'), APP);
        assert.deepEqual(list(res, 'access-control-expose-headers'), new Set(['x-request-id', 'x-cors-extra', ...GATEWAY_EXPOSED]));
        assert.equal(header(res, 'access-control-allow-credentials'), 'true');
        assert.ok(list(res, 'vary').has('origin'), `vary: ${header(res, 'vary')}`);
        // Preflight-only headers are not on actual responses.
        assert.equal(header(res, 'access-control-allow-methods'), null);
        assert.equal(header(res, 'access-control-max-age'), null);
      });

      test("the origin's Vary is kept: Origin is added to it", async () => {
        const res = await get('/cors/app/__headers?vary=accept-encoding', APP);
        assert.equal(res.status, 200);
        const vary = list(res, 'vary');
        assert.ok(vary.has('origin') && vary.has('accept-encoding'), `vary: ${header(res, 'vary')}`);
      });

      test("the origin's own access-control headers do not override the gateway's policy", async () => {
        const res = await get(`/cors/app/__headers?access-control-allow-origin=${encodeURIComponent(EVIL)}`, APP);
        assert.equal(res.status, 200);
        assert.equal(header(res, 'access-control-allow-origin'), APP);
      });

      test('from a disallowed origin, or with no Origin: no CORS headers, still Vary: Origin', async () => {
        for (const from of [EVIL, PARTNER, undefined]) {
          const res = await get('/cors/app/items/1', from);
          assert.equal(res.status, 200, String(from));
          assert.deepEqual(ACCESS_CONTROL(res), [], `${from}: ${ACCESS_CONTROL(res)}`);
          assert.ok(list(res, 'vary').has('origin'), `${from}: vary ${header(res, 'vary')}`);
        }
      });

      test('a cached route: a hit carries the CORS headers of its own request, not of the one that filled the entry', async () => {
        const path = `/cors/cached/${crypto.randomBytes(5).toString('hex')}`;
        const first = await get(path, APP);
        assert.equal(first.status, 200);
        assert.equal(header(first, 'x-cache'), 'MISS');
        assert.equal(header(first, 'access-control-allow-origin'), APP);
        let hit;
        for (let i = 0; i < 40; i++) {
          hit = await get(path, ADMIN);
          if (header(hit, 'x-cache') === 'HIT') break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(header(hit, 'x-cache'), 'HIT');
        assert.equal(header(hit, 'access-control-allow-origin'), ADMIN);
        assert.ok(list(hit, 'access-control-expose-headers').has('x-cache'));
        assert.ok(list(hit, 'vary').has('origin'));
        const evil = await get(path, EVIL);
        assert.equal(header(evil, 'x-cache'), 'HIT');
        assert.deepEqual(ACCESS_CONTROL(evil), []);
        const none = await get(path);
        assert.equal(header(none, 'x-cache'), 'HIT');
        assert.deepEqual(ACCESS_CONTROL(none), []);
      });

      test('["*"]: allow-origin * for any origin, no credentials', async () => {
        for (const from of [APP, EVIL, 'null']) {
          const res = await get('/cors/any/x', from);
          assert.equal(res.status, 200);
          assert.equal(header(res, 'access-control-allow-origin'), '*', from);
          assert.equal(header(res, 'access-control-allow-credentials'), null);
          const pre = await preflight('/cors/any/x', from, 'POST', 'content-type');
          assert.equal(pre.status, 204, from);
          assert.equal(header(pre, 'access-control-allow-origin'), '*');
          assert.equal(header(pre, 'access-control-max-age'), '60');
          assert.equal(header(pre, 'access-control-allow-credentials'), null);
          assert.ok(list(pre, 'access-control-allow-methods').has('post'));
        }
      });
    });

    describe("the gateway's own errors", () => {
      test('401 on an auth route carries the CORS headers, so the page can read it', async () => {
        const before = origin().hits;
        const res = await get('/cors/auth/me', APP);
        await assertProblem(res, 401);
        assert.equal(header(res, 'access-control-allow-origin'), APP);
        assert.equal(header(res, 'access-control-allow-credentials'), 'true');
        assert.ok(list(res, 'access-control-expose-headers').has('www-authenticate'));
        assert.ok(list(res, 'vary').has('origin'));
        // A preflight on an auth route needs no token (browsers never send one).
        const pre = await preflight('/cors/auth/me', APP, 'GET', 'authorization');
        assert.equal(pre.status, 204);
        assert.equal(header(pre, 'access-control-allow-origin'), APP);
        assert.ok(list(pre, 'access-control-allow-headers').has('authorization'));
        assert.equal(origin().hits, before);
        // Not for another origin.
        const evil = await get('/cors/auth/me', EVIL);
        await assertProblem(evil, 401);
        assert.deepEqual(ACCESS_CONTROL(evil), []);
      });

      test('405 on a CORS route carries the CORS headers', async () => {
        // /cors/app/... is served by one route only (GET, POST, PUT): its policy is the path's.
        const res = await e2e.raw({ method: 'DELETE', path: '/cors/app/items/1', headers: { origin: APP } });
        await assertProblem(res, 405);
        assert.ok(header(res, 'allow'));
        assert.equal(header(res, 'access-control-allow-origin'), APP);
        assert.deepEqual(list(res, 'access-control-expose-headers'), new Set(['x-request-id', 'x-cors-extra', ...GATEWAY_EXPOSED]));
        assert.ok(list(res, 'vary').has('origin'));
      });

      test('a preflight asking for a method the route does not allow still carries the CORS headers; not forwarded', async () => {
        const before = origin().hits;
        const res = await preflight('/cors/app/items/1', APP, 'DELETE');
        // Whatever the answer (204 without DELETE in allow-methods, or an error), the
        // page must be able to read it, and DELETE must not be offered.
        assert.ok([204, 403, 405].includes(res.status), `status ${res.status}`);
        assert.equal(header(res, 'access-control-allow-origin'), APP, `status ${res.status}, headers ${JSON.stringify(res.headers)}`);
        assert.ok(!list(res, 'access-control-allow-methods').has('delete'));
        assert.equal(origin().hits, before);
      });

      test('502 from an unreachable origin carries the CORS headers', async () => {
        const res = await get('/cors/dead/x', APP);
        await assertProblem(res, 502);
        assert.equal(header(res, 'access-control-allow-origin'), APP);
      });
    });

    describe('route and top-level policies', () => {
      test("a route's own policy replaces any other: each route allows only its origins", async () => {
        const partnerOnPartner = await get('/cors/partner/x', PARTNER);
        assert.equal(header(partnerOnPartner, 'access-control-allow-origin'), PARTNER);
        const appOnPartner = await get('/cors/partner/x', APP);
        assert.equal(header(appOnPartner, 'access-control-allow-origin'), null);
        const partnerOnApp = await get('/cors/app/x', PARTNER);
        assert.equal(header(partnerOnApp, 'access-control-allow-origin'), null);
        // The top-level policy, if the routes file has one, does not leak into a route's own.
        const top = e2e.routes.cors;
        for (const allowed of (top?.origins ?? []).filter((o) => o !== '*' && o.toLowerCase() !== PARTNER)) {
          const res = await get('/cors/partner/x', allowed);
          assert.equal(header(res, 'access-control-allow-origin'), null, `top-level origin ${allowed} on a route with its own policy`);
        }
      });

      test('a route without cors follows the top-level policy (none here: no CORS headers)', async () => {
        const top = e2e.routes.cors;
        const res = await get('/cors/none/x', APP);
        assert.equal(res.status, 200);
        const optionsBefore = origin().requests.filter((r) => r.method === 'OPTIONS').length;
        const pre = await preflight('/cors/none/x', APP, 'GET');
        if (!top) {
          assert.deepEqual(ACCESS_CONTROL(res), []);
          assert.deepEqual(ACCESS_CONTROL(pre), []);
          // With no policy it is an ordinary OPTIONS request, which this GET-only route does not allow.
          assert.equal(origin().requests.filter((r) => r.method === 'OPTIONS').length, optionsBefore, 'an OPTIONS reached the origin of a GET-only route');
          await assertProblem(pre, 405);
          // The routes file has no top-level policy, so unmatched paths carry none either.
          const missing = await get('/cors/nowhere-at-all', APP);
          await assertProblem(missing, 404);
          assert.deepEqual(ACCESS_CONTROL(missing), []);
          return;
        }
        const allowed = top.origins.includes('*') ? APP : top.origins[0];
        const expected = top.origins.includes('*') ? '*' : allowed;
        const ok = await get('/cors/none/x', allowed);
        assert.equal(header(ok, 'access-control-allow-origin'), expected);
        // The gateway's own 404 for an unmatched path uses the top-level policy.
        const missing = await get('/cors/nowhere-at-all', allowed);
        await assertProblem(missing, 404);
        assert.equal(header(missing, 'access-control-allow-origin'), expected);
      });
    });
  },
};
