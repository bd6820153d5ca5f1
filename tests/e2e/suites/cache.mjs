// The edge cache as clients see it: HIT / MISS / BYPASS, what is never stored,
// per-user and per-header entries, freshness, conditional requests, HEAD, purging.
//
// Every test uses its own paths under /cache/, so entries never leak between
// tests; `hits(path)` counts what reached the origin for one path.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';

import { ADMIN_TOKEN } from '../lib/admin.mjs';

const JWT_SECRET = 'cache-hmac-secret-' + crypto.randomBytes(24).toString('hex');
const ISSUER = 'https://cache.e2e.test/';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 token from the cache suite's provider. */
function token(sub, { secret = JWT_SECRET, expiresIn = 600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ iss: ISSUER, sub, iat: now, exp: now + expiresIn })}`;
  const sig = crypto.createHmac('sha256', secret).update(signing).digest('base64url');
  return `${signing}.${sig}`;
}

/** A unique path under a route prefix, so that every test has its own cache entries. */
const fresh = (prefix, suffix = '') => `${prefix}/${crypto.randomBytes(5).toString('hex')}${suffix}`;

export default {
  name: 'cache',
  servers: ['cache-origin'],
  config: ({ servers }) => ({
    origins: {
      'cache-origin': { regions: [{ name: 'local', url: servers['cache-origin'].url, serves: ['*'] }] },
    },
    jwt: {
      'cache-jwt': {
        issuer: ISSUER,
        secret_var: 'CACHE_JWT_SECRET',
        algorithms: ['HS256'],
        forward_claims: { sub: 'x-user-id' },
      },
    },
    routes: [
      { id: 'cache-basic', path: '/cache/basic/{*rest}', methods: ['GET', 'POST'], origin: 'cache-origin', cache: { ttl_s: 60 } },
      {
        id: 'cache-vary',
        path: '/cache/vary/{*rest}',
        methods: ['GET'],
        origin: 'cache-origin',
        cache: { ttl_s: 60, vary: ['accept-language'] },
      },
      {
        id: 'cache-auth',
        path: '/cache/auth/{*rest}',
        methods: ['GET'],
        origin: 'cache-origin',
        auth: { jwt: 'cache-jwt' },
        cache: { ttl_s: 60 },
      },
    ],
  }),
  secrets: { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, CACHE_JWT_SECRET: JWT_SECRET },

  tests(e2e) {
    const origin = () => e2e.servers['cache-origin'];
    /** Requests for `path` (without query) that reached the origin. */
    const hits = (path) => origin().requests.filter((r) => r.path === path).length;
    const get = (path, headers = {}) => e2e.raw({ path, headers });
    const xcache = (res) => header(res, 'x-cache');

    /**
     * GETs until the answer is a HIT: the entry is written in the background after
     * the MISS, so it may take a moment to appear. Returns the hit and how many
     * MISSes (each one an origin request) came before it.
     */
    async function untilHit(path, headers = {}, { timeoutMs = 3000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      let misses = 0;
      for (;;) {
        const res = await get(path, headers);
        assert.equal(res.status, 200, `${path}: ${res.text().slice(0, 200)}`);
        if (xcache(res) === 'HIT') return { res, misses };
        assert.equal(xcache(res), 'MISS', `${path}: x-cache`);
        misses += 1;
        if (Date.now() > deadline) assert.fail(`${path} was never served from the cache (${misses} MISSes)`);
        await sleep(50);
      }
    }

    /** A MISS, then a HIT: returns the MISS's body. */
    async function prime(path, headers = {}) {
      const first = await get(path, headers);
      assert.equal(first.status, 200, first.text().slice(0, 200));
      assert.equal(xcache(first), 'MISS', `${path}: first x-cache`);
      const { res, misses } = await untilHit(path, headers);
      return { miss: first, hit: res, misses };
    }

    /** Purges `target` with the admin token (or the given authorization). */
    const purge = (target, authorization = `Bearer ${ADMIN_TOKEN}`, extra = {}) =>
      e2e.raw({
        method: 'DELETE',
        path: `/__gateway/cache?path=${encodeURIComponent(target)}`,
        headers: authorization === null ? extra : { authorization, ...extra },
      });

    describe('hits and misses', () => {
      test('a MISS, then HITs with age, served from one origin request', async () => {
        const path = fresh('/cache/basic/item');
        const miss = await get(path);
        assert.equal(miss.status, 200);
        assert.equal(xcache(miss), 'MISS');
        assert.equal(header(miss, 'age'), null, 'a MISS carries no age');
        const missBody = miss.json();
        assert.equal(missBody.path, path);
        assert.equal(hits(path), 1);

        const { res: hit, misses } = await untilHit(path);
        assert.equal(hits(path), 1 + misses, 'only MISSes reach the origin');
        assert.equal(header(hit, 'content-type'), 'application/json');
        const age = header(hit, 'age');
        assert.match(age ?? '', /^\d+$/, `age: ${age}`);
        assert.ok(Number(age) <= 5, `age ${age}`);
        // The very same body: the origin's echo of the first request (its request id).
        assert.deepEqual(hit.json(), missBody);
        assert.ok(header(hit, 'x-request-id'), 'a hit has its own request id');
        assert.notEqual(header(hit, 'x-request-id'), missBody.headers['x-request-id']);

        for (let i = 0; i < 3; i++) {
          const again = await get(path);
          assert.equal(xcache(again), 'HIT');
          assert.deepEqual(again.json(), missBody);
        }
        assert.equal(hits(path), 1 + misses);
        // Internal bookkeeping never reaches the client.
        for (const name of Object.keys(hit.headers)) assert.ok(!name.startsWith('x-gateway-'), `header ${name}`);
      });

      test('the age of a hit grows with the time since it was stored', async () => {
        const path = fresh('/cache/basic/aging');
        await prime(path);
        await sleep(2100);
        const later = await get(path);
        assert.equal(xcache(later), 'HIT');
        assert.ok(Number(header(later, 'age')) >= 2, `age ${header(later, 'age')}`);
      });

      test('query parameter order does not matter: ?a=1&b=2 and ?b=2&a=1 share an entry', async () => {
        const base = fresh('/cache/basic/query');
        const { miss } = await prime(`${base}?a=1&b=2`);
        const before = hits(base);
        const swapped = await get(`${base}?b=2&a=1`);
        assert.equal(swapped.status, 200);
        assert.equal(xcache(swapped), 'HIT');
        assert.deepEqual(swapped.json(), miss.json());
        assert.equal(hits(base), before);
        // A different value is a different entry.
        const other = await get(`${base}?a=1&b=3`);
        assert.equal(xcache(other), 'MISS');
        assert.equal(other.json().query, 'a=1&b=3');
        assert.equal(hits(base), before + 1);
      });

      test('the host is part of the key', async () => {
        const path = fresh('/cache/basic/host');
        const a = { host: 'a.cache.e2e.test' };
        const b = { host: 'b.cache.e2e.test' };
        await prime(path, a);
        const other = await get(path, b);
        assert.equal(xcache(other), 'MISS');
        assert.equal(other.json().headers['x-forwarded-host'], 'b.cache.e2e.test');
        const again = await get(path, a);
        assert.equal(xcache(again), 'HIT');
        assert.equal(again.json().headers['x-forwarded-host'], 'a.cache.e2e.test');
      });

      test('a HEAD that misses is not stored as the entry of GET', async () => {
        const path = fresh('/cache/basic/headfirst');
        const head = await e2e.raw({ method: 'HEAD', path });
        assert.equal(head.status, 200);
        assert.notEqual(xcache(head), 'HIT');
        assert.equal(head.body.length, 0);
        await sleep(250);
        const res = await get(path);
        assert.equal(res.status, 200);
        assert.notEqual(xcache(res), 'HIT', 'a GET answered from a HEAD');
        assert.equal(res.json().method, 'GET');
      });

      test('POST is never cached (BYPASS); a successful one invalidates the GET entry', async () => {
        const path = fresh('/cache/basic/post');
        await prime(path);
        const before = hits(path);
        for (let i = 0; i < 2; i++) {
          const res = await e2e.raw({ method: 'POST', path, body: '{"n":1}', headers: { 'content-type': 'application/json' } });
          assert.equal(res.status, 200);
          assert.equal(xcache(res), 'BYPASS');
          assert.equal(res.json().method, 'POST');
        }
        assert.equal(hits(path), before + 2);
        // The POST is not stored, and its success removed the GET entry (RFC 9111 4.4).
        const after = await get(path);
        assert.equal(xcache(after), 'MISS');
        assert.equal(after.json().method, 'GET');
      });
    });

    describe('what is never stored', () => {
      const cases = [
        ['Cache-Control: no-store', '/__headers?cache-control=no-store'],
        ['Cache-Control: private', '/__headers?cache-control=private%2C%20max-age%3D60'],
        ['Cache-Control: no-cache', '/__headers?cache-control=no-cache'],
        ['Set-Cookie', '/__headers?set-cookie=session%3Dabc%3B%20Path%3D%2F'],
        ['Vary: *', '/__headers?vary=*'],
        ['a 404', '/__status/404'],
        ['a 500', '/__status/500'],
      ];
      test(`never a HIT: ${cases.map(([label]) => label).join(', ')}`, async () => {
        await Promise.all(
          cases.map(async ([label, suffix]) => {
            const base = fresh('/cache/basic/never');
            const [pathOnly] = (base + suffix).split('?');
            const target = base + suffix;
            const statuses = [];
            for (let i = 0; i < 3; i++) {
              const res = await get(target);
              statuses.push(res.status);
              assert.equal(xcache(res), 'MISS', `${label}: request ${i + 1} x-cache`);
              // Give a (wrong) background store every chance to land.
              await sleep(250);
            }
            assert.equal(hits(pathOnly), 3, `${label}: every request reaches the origin`);
            if (label === 'Set-Cookie') {
              // and the cookie is the origin's, for each client, never replayed.
              const res = await get(target);
              assert.equal(xcache(res), 'MISS');
              assert.match(header(res, 'set-cookie') ?? '', /session=abc/);
            }
            if (label === 'a 404') assert.deepEqual(statuses, [404, 404, 404]);
          }),
        );
      });
    });

    describe('variants', () => {
      test('vary: accept-language keeps one entry per language', async () => {
        const path = fresh('/cache/vary/page');
        const en = { 'accept-language': 'en' };
        const de = { 'accept-language': 'de' };
        await prime(path, en);
        const enHits = hits(path);
        const deMiss = await get(path, de);
        assert.equal(xcache(deMiss), 'MISS', 'another language is another entry');
        assert.equal(deMiss.json().headers['accept-language'], 'de');
        assert.equal(hits(path), enHits + 1);
        const { res: deHit, misses } = await untilHit(path, de);
        assert.equal(deHit.json().headers['accept-language'], 'de');
        const enHit = await get(path, en);
        assert.equal(xcache(enHit), 'HIT');
        assert.equal(enHit.json().headers['accept-language'], 'en');
        // No header at all is a variant of its own.
        const none = await get(path);
        assert.equal(xcache(none), 'MISS');
        assert.equal(none.json().headers['accept-language'], undefined);
        assert.equal(hits(path), enHits + 1 + misses + 1);
      });

      test('an authenticated cached route: each user gets their own entry', async () => {
        const path = fresh('/cache/auth/profile');
        const alice = { authorization: `Bearer ${token('alice')}` };
        const bob = { authorization: `Bearer ${token('bob')}` };

        const { miss: aliceMiss, hit: aliceHit } = await prime(path, alice);
        assert.equal(aliceMiss.json().headers['x-user-id'], 'alice');
        assert.equal(aliceHit.json().headers['x-user-id'], 'alice');
        const afterAlice = hits(path);

        const bobFirst = await get(path, bob);
        assert.equal(bobFirst.status, 200);
        assert.equal(xcache(bobFirst), 'MISS', "bob must not get alice's entry");
        assert.equal(bobFirst.json().headers['x-user-id'], 'bob');
        assert.equal(hits(path), afterAlice + 1);
        const { res: bobHit } = await untilHit(path, bob);
        assert.equal(bobHit.json().headers['x-user-id'], 'bob');

        // A new token of the same user shares the user's entry.
        const aliceAgain = await get(path, { authorization: `Bearer ${token('alice', { expiresIn: 900 })}` });
        assert.equal(xcache(aliceAgain), 'HIT');
        assert.equal(aliceAgain.json().headers['x-user-id'], 'alice');
        // A client cannot pick an entry by sending the claim header itself.
        const forged = await get(path, { ...bob, 'x-user-id': 'alice' });
        assert.equal(forged.json().headers['x-user-id'], 'bob');
      });

      test('the cache is checked after auth: no or a bad token is 401 even when an entry exists', async () => {
        const path = fresh('/cache/auth/doc');
        await prime(path, { authorization: `Bearer ${token('carol')}` });
        const before = hits(path);
        const missing = await get(path);
        await assertProblem(missing, 401, { label: 'no token' });
        assert.notEqual(xcache(missing), 'HIT');
        assert.match(header(missing, 'www-authenticate') ?? '', /^Bearer/);
        const badSig = await get(path, { authorization: `Bearer ${token('carol', { secret: 'x'.repeat(48) })}` });
        await assertProblem(badSig, 401, { label: 'bad signature' });
        assert.notEqual(xcache(badSig), 'HIT');
        const expired = await get(path, { authorization: `Bearer ${token('carol', { expiresIn: -3600 })}` });
        await assertProblem(expired, 401, { label: 'expired' });
        assert.notEqual(xcache(expired), 'HIT');
        assert.equal(hits(path), before);
      });
    });

    describe('freshness and conditional requests', () => {
      test("an origin max-age (or s-maxage) below the route's ttl wins: the entry expires after it", async () => {
        const cases = [
          ['max-age=1', 'max-age=1'],
          ['s-maxage=1 (a shared cache obeys it over max-age)', 'public, max-age=600, s-maxage=1'],
        ];
        await Promise.all(
          cases.map(async ([label, cacheControl]) => {
            const base = fresh('/cache/basic/short');
            const target = `${base}/__headers?cache-control=${encodeURIComponent(cacheControl)}`;
            const stored = Date.now();
            const { hit } = await prime(target);
            assert.equal(hit.headers['cache-control'], cacheControl, `${label}: a hit keeps the origin's cache-control`);
            const deadline = Date.now() + 6000;
            let res;
            do {
              await sleep(200);
              res = await get(target);
              assert.equal(res.status, 200);
            } while (xcache(res) === 'HIT' && Date.now() < deadline);
            assert.equal(xcache(res), 'MISS', `${label}: still a HIT 6 s after it was stored`);
            assert.ok(Date.now() - stored >= 900, `${label}: expired after ${Date.now() - stored} ms`);
          }),
        );
      });

      test('If-None-Match with the cached ETag on a hit: 304, no body', async () => {
        const base = fresh('/cache/basic/etag');
        const target = `${base}/__headers?etag=${encodeURIComponent('"v1"')}`;
        const { hit } = await prime(target);
        assert.equal(header(hit, 'etag'), '"v1"');
        const before = hits(`${base}/__headers`);

        const notModified = await get(target, { 'if-none-match': '"v1"' });
        assert.equal(notModified.status, 304);
        assert.equal(notModified.body.length, 0);
        assert.equal(header(notModified, 'etag'), '"v1"');
        assert.equal(xcache(notModified), 'HIT');
        const weak = await get(target, { 'if-none-match': 'W/"v0", W/"v1"' });
        assert.equal(weak.status, 304, 'weak comparison, any of a list');
        assert.equal(weak.body.length, 0);

        const changed = await get(target, { 'if-none-match': '"v2"' });
        assert.equal(changed.status, 200);
        assert.equal(xcache(changed), 'HIT');
        assert.ok(changed.body.length > 0);
        assert.equal(hits(`${base}/__headers`), before, 'conditional hits never reach the origin');
      });

      test('If-Modified-Since with the cached Last-Modified on a hit: 304, no body', async () => {
        const lastModified = 'Wed, 01 Jan 2025 00:00:00 GMT';
        const base = fresh('/cache/basic/lm');
        const target = `${base}/__headers?last-modified=${encodeURIComponent(lastModified)}`;
        const { misses } = await prime(target);
        const same = await get(target, { 'if-modified-since': lastModified });
        assert.equal(same.status, 304);
        assert.equal(same.body.length, 0);
        const later = await get(target, { 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' });
        assert.equal(later.status, 304);
        const earlier = await get(target, { 'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT' });
        assert.equal(earlier.status, 200);
        assert.ok(earlier.body.length > 0);
        assert.equal(hits(`${base}/__headers`), 1 + misses, 'conditional hits never reach the origin');
      });

      test('HEAD on a cached entry: the headers of the hit, no body, no origin request', async () => {
        const path = fresh('/cache/basic/head');
        const { hit } = await prime(path);
        const before = hits(path);
        const head = await e2e.raw({ method: 'HEAD', path });
        assert.equal(head.status, 200);
        assert.equal(xcache(head), 'HIT');
        assert.equal(head.body.length, 0);
        assert.equal(header(head, 'content-type'), 'application/json');
        assert.match(header(head, 'age') ?? '', /^\d+$/);
        assert.ok(hit.body.length > 0);
        assert.equal(hits(path), before);
      });
    });

    describe('purging', () => {
      test('DELETE /__gateway/cache?path= with the admin token purges: the next GET is a MISS', async () => {
        const path = fresh('/cache/basic/purge');
        await prime(path);
        const res = await purge(path);
        assert.equal(res.status, 200, res.text());
        assert.deepEqual(res.json(), { purged: true, route: 'cache-basic', path });
        const before = hits(path);
        const next = await get(path);
        assert.equal(xcache(next), 'MISS');
        assert.equal(hits(path), before + 1);
        // Purging again, with nothing stored (once the refill has landed, purge it again).
        await untilHit(path);
        assert.equal((await purge(path)).json().purged, true);
        assert.equal((await purge(path)).json().purged, false);
      });

      test('purging a path with a query purges the entry of that query, in any parameter order', async () => {
        const path = fresh('/cache/basic/purgeq');
        await prime(`${path}?a=1&b=2`);
        await prime(`${path}?a=9`);
        const res = await purge(`${path}?b=2&a=1`);
        assert.equal(res.status, 200, res.text());
        assert.equal(res.json().purged, true);
        assert.equal(xcache(await get(`${path}?a=1&b=2`)), 'MISS');
        assert.equal(xcache(await get(`${path}?a=9`)), 'HIT', 'another query stays');
      });

      test('purging a per-user entry takes &subject=', async () => {
        const path = fresh('/cache/auth/purge');
        const dave = { authorization: `Bearer ${token('dave')}` };
        const erin = { authorization: `Bearer ${token('erin')}` };
        await prime(path, dave);
        await prime(path, erin);
        const res = await e2e.raw({
          method: 'DELETE',
          path: `/__gateway/cache?path=${encodeURIComponent(path)}&subject=dave`,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        assert.equal(res.status, 200, res.text());
        assert.equal(res.json().purged, true);
        assert.equal(xcache(await get(path, dave)), 'MISS');
        assert.equal(xcache(await get(path, erin)), 'HIT', "another user's entry stays");
      });

      test('purging without the admin token, or with a wrong one, is 401 and purges nothing', async () => {
        const path = fresh('/cache/basic/nopurge');
        await prime(path);
        const attempts = [
          ['no authorization', null],
          ['a wrong token', 'Bearer wrong-token'],
          ['the token plus a character', `Bearer ${ADMIN_TOKEN}x`],
          ['a prefix of the token', `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
          ['not a bearer token', `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`],
          ['a user token', `Bearer ${token('mallory')}`],
        ];
        for (const [label, authorization] of attempts) {
          const res = await purge(path, authorization);
          const body = await assertProblem(res, 401, { label, forbidden: [ADMIN_TOKEN.slice(0, 16)] });
          assert.ok(!JSON.stringify(body).includes('purged'), label);
        }
        const after = await get(path);
        assert.equal(xcache(after), 'HIT', 'the entry is still there');
      });

      test('the admin token never appears in the log', async () => {
        const path = fresh('/cache/basic/purgelog');
        const id = `cache-purge-${crypto.randomBytes(4).toString('hex')}`;
        const res = await purge(path, `Bearer ${ADMIN_TOKEN}`, { 'x-request-id': id });
        assert.equal(res.status, 200);
        await e2e.waitForLog(id);
        assert.ok(!e2e.wrangler.lines.some((l) => l.includes(ADMIN_TOKEN)), 'the admin token was printed');
      });
    });
  },
};
