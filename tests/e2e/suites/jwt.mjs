// Bearer tokens end to end: every algorithm, every way a token is refused, JWKS
// caching, rotation and outages, forwarded claims and what the log says.
//
// Tokens are made by node:crypto (../lib/jwt.mjs), independently of the gateway.
// Keys are generated when the suite is loaded; a JWKS server of the suite's own
// (127.0.0.1) serves one key set per provider at /jwks/NAME.json, counts its
// fetches, rotates keys and goes down (500, or closing the connection) on demand.
//
// Timing: the JWKS providers used by the time-based tests (rotation, unknown kid,
// outages, recovery) are warmed up in before(); those tests run last, when the
// 10 s refetch throttle that started at the warm-up has (nearly) run out. The
// second rotation waits out a full throttle (~10 s); the suite takes ~20 s.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { before, describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';
import { b64url, ecKey, ed25519Key, nowS, rsaKey, segments, signJwt } from '../lib/jwt.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- keys and secrets --------------------------------------------------------

const HS_SECRET = `jwt-e2e-hs-${crypto.randomBytes(24).toString('hex')}`; // 59 bytes
const MIXED_SECRET = `jwt-e2e-mixed-${crypto.randomBytes(24).toString('hex')}`;

let keyCache;
/** Every key of the suite, generated once (RSA 2048 takes a moment). */
function K() {
  keyCache ??= {
    // inline keys of jwt-inline (PS*, ES256, ES384, EdDSA)
    inRsa: rsaKey('jwt-in-rsa'),
    inEs256: ecKey('jwt-in-es256', 'P-256', { alg: 'ES256' }),
    inEs384: ecKey('jwt-in-es384', 'P-384', { alg: 'ES384' }),
    inEd: ed25519Key('jwt-in-ed', { alg: 'EdDSA' }),
    // jwt-mixed: an HMAC secret AND an RSA key (algorithm confusion)
    mixedRsa: rsaKey('jwt-mixed-rsa', { alg: 'RS256' }),
    // served by the JWKS server
    mainRsa: rsaKey('jwt-main-rsa'),
    mainEs256: ecKey('jwt-main-es256', 'P-256', { alg: 'ES256' }),
    rot1: rsaKey('jwt-rot-1', { alg: 'RS256' }),
    rot2: rsaKey('jwt-rot-2', { alg: 'RS256' }),
    rot3: ecKey('jwt-rot-3', 'P-256', { alg: 'ES256' }),
    kid1: ecKey('jwt-kid-1', 'P-256', { alg: 'ES256' }),
    kidUnknown: ecKey('jwt-kid-never-served', 'P-256', { alg: 'ES256' }),
    cached500: ed25519Key('jwt-cached-500'),
    cached500Unknown: ed25519Key('jwt-cached-500-unknown'),
    cachedClose: ed25519Key('jwt-cached-close'),
    cachedCloseUnknown: ed25519Key('jwt-cached-close-unknown'),
    dead: ecKey('jwt-dead-1', 'P-256', { alg: 'ES256' }),
    // never published anywhere: signatures by the wrong key
    otherRsa: rsaKey('jwt-other-rsa'),
    otherEs256: ecKey('jwt-other-es256', 'P-256'),
    otherEd: ed25519Key('jwt-other-ed'),
  };
  return keyCache;
}

// --- the JWKS server -----------------------------------------------------------

const SETS = ['main', 'rot', 'kid', 'cached-500', 'cached-close', 'dead-500', 'dead-close', 'recover'];

/** Serves /jwks/NAME.json per key set; `sets[NAME]` = {keys, mode: ok|500|close, maxAge, hits, times}. */
function startJwksServer() {
  const sets = Object.fromEntries(SETS.map((n) => [n, { keys: [], mode: 'ok', maxAge: 300, hits: 0, times: [] }]));
  const server = http.createServer((req, res) => {
    const m = req.url.match(/^\/jwks\/([a-z0-9-]+)\.json$/);
    const set = m && sets[m[1]];
    if (!set) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('no such key set');
    }
    set.hits += 1;
    set.times.push(Date.now());
    if (set.mode === 'close') return req.socket.destroy();
    if (set.mode === '500') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      return res.end('down');
    }
    const body = JSON.stringify({ keys: set.keys.map((k) => k.jwk) });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': `public, max-age=${set.maxAge}`,
    });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      const url = `http://127.0.0.1:${port}`;
      resolve({
        name: 'jwt-jwks',
        url,
        port,
        server,
        sets,
        urlOf: (name) => `${url}/jwks/${name}.json`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

// --- providers and routes ------------------------------------------------------

const ISS = {
  hmac: 'https://hmac.jwt.e2e.test/',
  inline: 'https://inline.jwt.e2e.test',
  jwks: 'https://jwks.jwt.e2e.test/',
  mixed: 'https://mixed.jwt.e2e.test/',
};
const AUD = 'jwt-api';

function config({ servers, deadUrl }) {
  const k = K();
  const jwks = servers['jwt-jwks'];
  const fromJwks = (set, extra = {}) => ({ issuer: ISS.jwks, audiences: [AUD], jwks_url: jwks.urlOf(set), ...extra });
  const route = (id, provider, scopes) => ({
    id,
    path: `/${id.replace(/^jwt-/, 'jwt/')}`,
    methods: ['GET'],
    origin: 'jwt-echo',
    ...(provider ? { auth: { jwt: provider, ...(scopes ? { scopes } : {}) } } : {}),
  });
  return {
    origins: { 'jwt-echo': { regions: [{ name: 'local', url: servers['jwt-echo'].url, serves: ['*'] }] } },
    jwt: {
      'jwt-hmac': {
        issuer: ISS.hmac,
        audiences: [AUD, 'jwt-api-2'],
        secret_var: 'JWT_E2E_HS_SECRET',
        algorithms: ['HS256', 'HS384', 'HS512'],
        forward_claims: { sub: 'x-user-id', ctx: 'x-jwt-ctx', level: 'x-jwt-level' },
      },
      'jwt-inline': {
        issuer: ISS.inline,
        audiences: [AUD],
        keys: { keys: [k.inRsa.jwk, k.inEs256.jwk, k.inEs384.jwk, k.inEd.jwk] },
        algorithms: ['PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'],
        forward_claims: { sub: 'x-user-id' },
      },
      'jwt-mixed': {
        issuer: ISS.mixed,
        secret_var: 'JWT_E2E_MIXED_SECRET',
        keys: { keys: [k.mixedRsa.jwk] },
        forward_claims: { sub: 'x-user-id' },
      },
      'jwt-jwks': fromJwks('main', { forward_claims: { sub: 'x-user-id' } }),
      'jwt-rot': fromJwks('rot'),
      'jwt-kid': fromJwks('kid'),
      'jwt-cached-500': fromJwks('cached-500'),
      'jwt-cached-close': fromJwks('cached-close'),
      'jwt-dead-500': fromJwks('dead-500'),
      'jwt-dead-close': fromJwks('dead-close'),
      'jwt-recover': fromJwks('recover'),
      'jwt-dead-refused': { issuer: ISS.jwks, audiences: [AUD], jwks_url: `${deadUrl}/jwks.json` },
    },
    routes: [
      route('jwt-open'),
      route('jwt-hmac', 'jwt-hmac'),
      route('jwt-read', 'jwt-hmac', ['jwt:read']),
      route('jwt-read-write', 'jwt-hmac', ['jwt:read', 'jwt:write']),
      route('jwt-inline', 'jwt-inline'),
      route('jwt-mixed', 'jwt-mixed'),
      route('jwt-jwks', 'jwt-jwks'),
      route('jwt-rot', 'jwt-rot'),
      route('jwt-kid', 'jwt-kid'),
      route('jwt-cached-500', 'jwt-cached-500'),
      route('jwt-cached-close', 'jwt-cached-close'),
      route('jwt-dead-500', 'jwt-dead-500'),
      route('jwt-dead-close', 'jwt-dead-close'),
      route('jwt-dead-refused', 'jwt-dead-refused'),
      route('jwt-recover', 'jwt-recover'),
    ],
  };
}

// --- the suite -------------------------------------------------------------------

const INVALID = /^Bearer error="invalid_token", error_description="(?:[^"\\\x00-\x1f]|\\.)+"$/;

export default {
  name: 'jwt',
  servers: ['jwt-echo', { name: 'jwt-jwks', start: startJwksServer }],
  config,
  secrets: { JWT_E2E_HS_SECRET: HS_SECRET, JWT_E2E_MIXED_SECRET: MIXED_SECRET },

  tests(e2e) {
    const k = K();
    const echo = () => e2e.servers['jwt-echo'];
    const jwks = () => e2e.servers['jwt-jwks'];
    const set = (name) => jwks().sets[name];
    const sent = new Set(); // every token sent: none may show up in wrangler's output

    const claims = (iss, extra = {}) => {
      const now = nowS();
      return { iss, aud: AUD, sub: 'jwt-user-1', iat: now, exp: now + 600, ...extra };
    };
    const hs = (payload, { alg = 'HS256', secret = HS_SECRET, header: h } = {}) => signJwt({ alg, secret, payload, header: h });
    const hmacClaims = (extra) => claims(ISS.hmac, extra);

    /** GET `path` with `token` as a bearer token (or `auth` as the whole Authorization value). */
    // `headers`: an object, or a raw list ['name', 'value', ...] (repeated names).
    const call = async (path, { token, auth, headers = {}, id } = {}) => {
      const h = Array.isArray(headers) ? [...headers] : Object.entries(headers).flat();
      if (token !== undefined) {
        sent.add(token);
        h.push('authorization', `Bearer ${token}`);
      }
      if (auth !== undefined) h.push('authorization', auth);
      if (id) h.push('x-request-id', id);
      try {
        return await e2e.raw({ path, headers: h });
      } catch (e) {
        e.message += `\nlast wrangler output:\n${e2e.wrangler.output(30)}`;
        throw e;
      }
    };
    const seen = (res) => res.json().headers; // what the echo origin received

    async function accepted(res, label) {
      assert.equal(res.status, 200, `${label}: ${res.status} ${header(res, 'www-authenticate') ?? ''} ${res.text().slice(0, 300)}`);
      const body = res.json();
      assert.equal(body.origin, 'jwt-echo', label);
      return body.headers;
    }
    async function invalid(res, label) {
      await assertProblem(res, 401, { label, forbidden: [HS_SECRET, MIXED_SECRET] });
      const www = header(res, 'www-authenticate');
      assert.match(www ?? '', INVALID, `WWW-Authenticate (${label})`);
    }
    async function missing(res, label) {
      await assertProblem(res, 401, { label });
      assert.equal(header(res, 'www-authenticate'), 'Bearer', `WWW-Authenticate (${label})`);
    }
    async function insufficient(res, scopes, label) {
      await assertProblem(res, 403, { label });
      assert.equal(header(res, 'www-authenticate'), `Bearer error="insufficient_scope", scope="${scopes}"`, `WWW-Authenticate (${label})`);
    }
    /** Sends every [label, path, token] and expects 401 invalid_token, with nothing forwarded. */
    async function allInvalid(cases) {
      const before = echo().hits;
      for (const [label, path, token] of cases) await invalid(await call(path, { token }), label);
      assert.equal(echo().hits, before, 'a refused request reached the origin');
    }
    /** Polls `fn` every `every` ms until it returns a truthy value or the deadline passes. */
    async function poll(fn, { deadline, every = 250 }) {
      for (;;) {
        const value = await fn();
        if (value) return value;
        if (Date.now() >= deadline) return value;
        await sleep(every);
      }
    }
    const rid = (what) => `jwt-${what}-${crypto.randomBytes(5).toString('hex')}`;

    // JWKS providers for the time-based tests, warmed up now: their 10 s
    // unknown-kid throttle starts here.
    let warmedAt;
    before(async () => {
      set('main').keys = [k.mainRsa, k.mainEs256];
      set('rot').keys = [k.rot1];
      set('kid').keys = [k.kid1];
      set('cached-500').keys = [k.cached500];
      set('cached-close').keys = [k.cachedClose];
      set('dead-500').keys = [k.dead];
      set('dead-500').mode = '500';
      set('dead-close').keys = [k.dead];
      set('dead-close').mode = 'close';
      set('recover').keys = [k.dead];
      set('recover').mode = '500';
      warmedAt = Date.now();
      // Down from the start: nothing cached, 503 (the server comes back later).
      const down = await call('/jwt/recover', { token: signJwt({ alg: 'ES256', key: k.dead, payload: claims(ISS.jwks) }) });
      await assertProblem(down, 503, { label: 'jwt-recover while its JWKS server is down' });
      assert.ok(set('recover').hits >= 1, 'the jwt-recover JWKS was asked');
      const warm = [
        ['rot', 'RS256', k.rot1],
        ['kid', 'ES256', k.kid1],
        ['cached-500', 'EdDSA', k.cached500],
        ['cached-close', 'EdDSA', k.cachedClose],
      ];
      await Promise.all(
        warm.map(async ([name, alg, key]) => {
          const res = await call(`/jwt/${name}`, { token: signJwt({ alg, key, payload: claims(ISS.jwks) }) });
          await accepted(res, `warm-up of jwt-${name}`);
          assert.equal(set(name).hits, 1, `fetches of ${name}`);
        }),
      );
    });

    describe('JWKS cache', () => {
      test('100 requests, 40 of them concurrent on a cold cache, cause exactly 1 JWKS fetch', async () => {
        assert.equal(set('main').hits, 0, 'nothing fetched before the first token');
        const token = signJwt({ alg: 'RS256', key: k.mainRsa, payload: claims(ISS.jwks, { sub: 'jwt-burst' }) });
        const first = await Promise.all(Array.from({ length: 40 }, () => call('/jwt/jwks', { token })));
        for (const res of first) await accepted(res, 'concurrent');
        for (let wave = 0; wave < 6; wave++) {
          const rest = await Promise.all(Array.from({ length: 10 }, () => call('/jwt/jwks', { token })));
          for (const res of rest) await accepted(res, `wave ${wave}`);
        }
        assert.equal(set('main').hits, 1, 'JWKS fetches');
      });
    });

    describe('algorithms', () => {
      test('every algorithm is accepted (HMAC secret, inline keys, JWKS), and sub is forwarded', async () => {
        const cases = [
          ['HS256', '/jwt/hmac', { secret: HS_SECRET }, ISS.hmac],
          ['HS384', '/jwt/hmac', { secret: HS_SECRET }, ISS.hmac],
          ['HS512', '/jwt/hmac', { secret: HS_SECRET }, ISS.hmac],
          ['RS256', '/jwt/jwks', { key: k.mainRsa }, ISS.jwks],
          ['RS384', '/jwt/jwks', { key: k.mainRsa }, ISS.jwks],
          ['RS512', '/jwt/jwks', { key: k.mainRsa }, ISS.jwks],
          ['PS256', '/jwt/inline', { key: k.inRsa }, ISS.inline],
          ['PS384', '/jwt/inline', { key: k.inRsa }, ISS.inline],
          ['PS512', '/jwt/inline', { key: k.inRsa }, ISS.inline],
          ['ES256', '/jwt/inline', { key: k.inEs256 }, ISS.inline],
          ['ES384', '/jwt/inline', { key: k.inEs384 }, ISS.inline],
          ['EdDSA', '/jwt/inline', { key: k.inEd }, ISS.inline],
          ['ES256', '/jwt/jwks', { key: k.mainEs256 }, ISS.jwks],
          ['RS256', '/jwt/mixed', { key: k.mixedRsa }, ISS.mixed],
          ['HS256', '/jwt/mixed', { secret: MIXED_SECRET }, ISS.mixed],
        ];
        for (const [alg, path, signer, iss] of cases) {
          const sub = `jwt-alg-${alg}-${path.slice(5)}`;
          const extra = iss === ISS.mixed ? { aud: undefined } : {};
          const token = signJwt({ alg, ...signer, payload: claims(iss, { sub, ...extra }) });
          const got = await accepted(await call(path, { token }), `${alg} on ${path}`);
          assert.equal(got['x-user-id'], sub, `${alg} on ${path}: x-user-id`);
        }
        assert.equal(set('main').hits, 1, 'the JWKS was not fetched again');
      });

      test('the scheme is case-insensitive; an aud array containing an allowed audience passes', async () => {
        const token = hs(hmacClaims({ aud: ['someone-else', 'jwt-api-2'] }));
        await accepted(await call('/jwt/hmac', { auth: `bearer ${token}` }), 'lower-case bearer');
        sent.add(token);
        await accepted(await call('/jwt/hmac', { auth: `BEARER ${token}` }), 'upper-case bearer');
      });
    });

    describe('scopes', () => {
      test('scopes from `scope` (space separated) and `scp` (array); a route requiring two', async () => {
        const ok = [
          ['scope, one', '/jwt/read', { scope: 'jwt:read' }],
          ['scope, several', '/jwt/read', { scope: 'openid jwt:read profile' }],
          ['scp, one', '/jwt/read', { scp: ['jwt:read'] }],
          ['scope, both', '/jwt/read-write', { scope: 'jwt:write jwt:read' }],
          ['scope, both among others', '/jwt/read-write', { scope: 'a jwt:read b jwt:write c' }],
          ['scp, both', '/jwt/read-write', { scp: ['jwt:read', 'x', 'jwt:write'] }],
          ['no scopes needed', '/jwt/hmac', {}],
        ];
        for (const [label, path, extra] of ok) await accepted(await call(path, { token: hs(hmacClaims(extra)) }), label);
      });

      test('a missing scope: 403 insufficient_scope naming the required scopes; nothing forwarded', async () => {
        const before = echo().hits;
        const cases = [
          ['no scope claim', '/jwt/read', {}, 'jwt:read'],
          ['another scope', '/jwt/read', { scope: 'jwt:write' }, 'jwt:read'],
          ['a prefix is not the scope', '/jwt/read', { scope: 'jwt:re' }, 'jwt:read'],
          ['a longer scope is not the scope', '/jwt/read', { scope: 'jwt:reader' }, 'jwt:read'],
          ['scp, another scope', '/jwt/read', { scp: ['jwt:write'] }, 'jwt:read'],
          ['one of two (scope)', '/jwt/read-write', { scope: 'jwt:read' }, 'jwt:read jwt:write'],
          ['one of two (scp)', '/jwt/read-write', { scp: ['jwt:write'] }, 'jwt:read jwt:write'],
          ['comma separated is one scope', '/jwt/read-write', { scope: 'jwt:read,jwt:write' }, 'jwt:read jwt:write'],
          ['scp: one string holding both', '/jwt/read-write', { scp: ['jwt:read jwt:write'] }, 'jwt:read jwt:write'],
        ];
        for (const [label, path, extra, scopes] of cases) {
          await insufficient(await call(path, { token: hs(hmacClaims(extra)) }), scopes, label);
        }
        assert.equal(echo().hits, before);
      });
    });

    describe('refused tokens', () => {
      test('no token: 401 with a bare `Bearer` challenge (no error)', async () => {
        const before = echo().hits;
        await missing(await call('/jwt/hmac'), 'no Authorization');
        await missing(await call('/jwt/read-write'), 'no Authorization, scoped route');
        await missing(await call('/jwt/jwks'), 'no Authorization, JWKS route');
        await missing(await call('/jwt/hmac', { auth: 'Basic dXNlcjpwYXNz' }), 'Basic credentials');
        assert.equal(echo().hits, before);
      });

      test('malformed: garbage, two or four segments, bad base64, non-JSON header, a 100 KB token', async () => {
        const good = hs(hmacClaims());
        const [h, p, s] = segments(good);
        // About 100 KB (base64 of 75 KB of claims); workerd itself refuses request
        // headers past 128 KB (431), so this one does reach the gateway.
        const huge = hs(hmacClaims({ pad: 'x'.repeat(75 * 1024) }));
        assert.ok(huge.length > 100 * 1024 && huge.length < 110 * 1024, `${huge.length}`);
        await allInvalid([
          ['garbage', '/jwt/hmac', 'this-is-not-a-jwt'],
          ['garbage with dots', '/jwt/hmac', '...'],
          ['two segments', '/jwt/hmac', `${h}.${p}`],
          ['four segments', '/jwt/hmac', `${good}.${s}`],
          ['bad base64 everywhere', '/jwt/hmac', '!!!.@@@.###'],
          ['bad base64 in the payload', '/jwt/hmac', `${h}.${p.slice(0, 10)}*%${p.slice(12)}.${s}`],
          ['bad base64 in the signature', '/jwt/hmac', `${h}.${p}.${s.slice(0, -4)}$$$$`],
          ['header not JSON', '/jwt/hmac', `${b64url('{"alg":"HS256"')}.${p}.${s}`],
          ['payload not JSON', '/jwt/hmac', hs('not json')],
          ['100 KB token (validly signed)', '/jwt/hmac', huge],
          ['malformed on a JWKS route', '/jwt/jwks', `${h}.${p}`],
        ]);
        assert.equal(set('main').hits, 1, 'a malformed token causes no JWKS fetch');
      });

      test('bad signatures: wrong secret or key, tampered payload or header, truncated signature', async () => {
        const other = 'jwt-e2e-wrong-secret-'.padEnd(48, 'z');
        const valid = hs(hmacClaims());
        const [h, , s] = segments(valid);
        const tampered = `${h}.${b64url(JSON.stringify(hmacClaims({ sub: 'admin' })))}.${s}`;
        const rs = signJwt({ alg: 'RS256', key: k.mainRsa, payload: claims(ISS.jwks) });
        const [rh, rp, rsig] = segments(rs);
        const ed = signJwt({ alg: 'EdDSA', key: k.inEd, payload: claims(ISS.inline) });
        const [eh, ep, esig] = segments(ed);
        const edSig = Buffer.from(esig, 'base64url');
        edSig[edSig.length - 1] ^= 1;
        const es384 = signJwt({ alg: 'ES384', key: k.inEs384, payload: claims(ISS.inline) });
        const [xh, xp, xsig] = segments(es384);
        await allInvalid([
          ['HS256, another secret', '/jwt/hmac', hs(hmacClaims(), { secret: other })],
          ['HS512, another secret', '/jwt/hmac', hs(hmacClaims(), { alg: 'HS512', secret: other })],
          ['HS256, tampered payload', '/jwt/hmac', tampered],
          ['HS384 header over an HS256 signature', '/jwt/hmac', `${b64url(JSON.stringify({ alg: 'HS384', typ: 'JWT' }))}.${segments(valid)[1]}.${s}`],
          ['HS256 signed with the other provider\'s secret', '/jwt/hmac', hs(hmacClaims(), { secret: MIXED_SECRET })],
          ['RS256 by another key under the JWKS kid', '/jwt/jwks', signJwt({ alg: 'RS256', key: k.otherRsa, header: { kid: 'jwt-main-rsa' }, payload: claims(ISS.jwks) })],
          ['RS256, tampered payload', '/jwt/jwks', `${rh}.${b64url(JSON.stringify(claims(ISS.jwks, { sub: 'admin' })))}.${rsig}`],
          ['RS512 header over an RS256 signature', '/jwt/jwks', `${b64url(JSON.stringify({ alg: 'RS512', kid: 'jwt-main-rsa' }))}.${rp}.${rsig}`],
          ['PS256 by another key under the inline kid', '/jwt/inline', signJwt({ alg: 'PS256', key: k.otherRsa, header: { kid: 'jwt-in-rsa' }, payload: claims(ISS.inline) })],
          ['ES256 by another key under the inline kid', '/jwt/inline', signJwt({ alg: 'ES256', key: k.otherEs256, header: { kid: 'jwt-in-es256' }, payload: claims(ISS.inline) })],
          ['EdDSA by another key under the inline kid', '/jwt/inline', signJwt({ alg: 'EdDSA', key: k.otherEd, header: { kid: 'jwt-in-ed' }, payload: claims(ISS.inline) })],
          ['EdDSA, one bit flipped', '/jwt/inline', `${eh}.${ep}.${b64url(edSig)}`],
          ['ES384, truncated signature', '/jwt/inline', `${xh}.${xp}.${b64url(Buffer.from(xsig, 'base64url').subarray(0, 48))}`],
          ['ES256, DER signature instead of IEEE P1363', '/jwt/inline', (() => {
            const t = signJwt({ alg: 'ES256', key: k.inEs256, payload: claims(ISS.inline) });
            const [a, b] = segments(t);
            const der = crypto.sign('sha256', Buffer.from(`${a}.${b}`), k.inEs256.privateKey);
            return `${a}.${b}.${b64url(der)}`;
          })()],
          ['no signature', '/jwt/hmac', `${h}.${segments(valid)[1]}.`],
        ]);
      });

      test('alg none (any spelling, with or without a signature) is never accepted', async () => {
        const none = (alg, sig = '', payload = hmacClaims()) =>
          `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.${sig}`;
        const hsSig = segments(hs(hmacClaims()))[2];
        await allInvalid([
          ['none', '/jwt/hmac', none('none')],
          ['None', '/jwt/hmac', none('None')],
          ['NONE', '/jwt/hmac', none('NONE')],
          ['nOnE', '/jwt/hmac', none('nOnE')],
          ['none with a signature', '/jwt/hmac', none('none', hsSig)],
          ['none on an inline-key route', '/jwt/inline', none('none', '', claims(ISS.inline))],
          ['none on a JWKS route', '/jwt/jwks', none('none', '', claims(ISS.jwks))],
          ['none on the mixed route', '/jwt/mixed', none('none', '', claims(ISS.mixed))],
          ['an unknown alg', '/jwt/hmac', none('HS1', hsSig)],
        ]);
      });

      test('algorithm confusion: HS* signed with the RSA public key (PEM, JWK bytes) is refused', async () => {
        const forms = (key) => {
          const spki = key.publicKey.export({ type: 'spki', format: 'pem' });
          const pkcs1 = key.publicKey.export({ type: 'pkcs1', format: 'pem' });
          return [
            ['SPKI PEM', spki],
            ['SPKI PEM without the final newline', spki.trimEnd()],
            ['PKCS#1 PEM', pkcs1],
            ['SPKI DER', key.publicKey.export({ type: 'spki', format: 'der' })],
            ['JWK JSON', JSON.stringify(key.jwk)],
            ['JWK JSON without kid/alg', JSON.stringify({ kty: 'RSA', n: key.jwk.n, e: key.jwk.e })],
            ['modulus n', Buffer.from(key.jwk.n, 'base64url')],
          ];
        };
        const cases = [];
        for (const [path, key, iss] of [['/jwt/inline', k.inRsa, ISS.inline], ['/jwt/jwks', k.mainRsa, ISS.jwks], ['/jwt/mixed', k.mixedRsa, ISS.mixed]]) {
          for (const [what, secret] of forms(key)) {
            for (const alg of ['HS256', 'HS384', 'HS512']) {
              const payload = claims(iss, { sub: 'admin' });
              cases.push([`${alg} with the ${what} on ${path}`, path, signJwt({ alg, secret, payload, header: { kid: key.kid } })]);
            }
          }
        }
        // The mixed provider (secret AND RSA key) also without kid.
        cases.push(['HS256 with the SPKI PEM, no kid, on /jwt/mixed', '/jwt/mixed',
          signJwt({ alg: 'HS256', secret: k.mixedRsa.publicKey.export({ type: 'spki', format: 'pem' }), payload: claims(ISS.mixed) })]);
        await allInvalid(cases);
      });

      test('algorithm not allowed by the provider, or not matching the key', async () => {
        const es384OverP256 = (() => {
          const t = signJwt({ alg: 'ES384', key: k.inEs256, header: { kid: 'jwt-in-es256' }, payload: claims(ISS.inline), signAs: 'ES256' });
          const [a, b] = segments(t);
          const sig = crypto.sign('sha384', Buffer.from(`${a}.${b}`), { key: k.inEs256.privateKey, dsaEncoding: 'ieee-p1363' });
          return `${a}.${b}.${b64url(sig)}`;
        })();
        await allInvalid([
          // jwt-inline allows PS*, not RS*, although its RSA key could verify RS256.
          ['RS256 with the inline RSA key', '/jwt/inline', signJwt({ alg: 'RS256', key: k.inRsa, payload: claims(ISS.inline) })],
          // the JWK says alg ES256
          ['ES384 under an ES256 key', '/jwt/inline', es384OverP256],
          // the JWK says alg RS256
          ['PS256 under an RS256 key', '/jwt/mixed', signJwt({ alg: 'PS256', key: k.mixedRsa, payload: claims(ISS.mixed) })],
          // an RSA key for an EdDSA token
          ['EdDSA under the RSA kid', '/jwt/inline', signJwt({ alg: 'EdDSA', key: k.inEd, header: { kid: 'jwt-in-rsa' }, payload: claims(ISS.inline) })],
          // jwt-hmac only has a secret
          ['ES256 on an HMAC-only provider', '/jwt/hmac', signJwt({ alg: 'ES256', key: k.inEs256, payload: hmacClaims() })],
        ]);
      });

      test('exp and nbf with the 60 s leeway: expired or not yet valid beyond it refused, within it accepted', async () => {
        const now = nowS();
        await allInvalid([
          ['expired 2 minutes ago', '/jwt/hmac', hs(hmacClaims({ exp: now - 120 }))],
          ['expired an hour ago', '/jwt/hmac', hs(hmacClaims({ iat: now - 7200, exp: now - 3600 }))],
          ['no exp', '/jwt/hmac', hs(hmacClaims({ exp: undefined }))],
          ['exp not a number', '/jwt/hmac', hs(hmacClaims({ exp: String(now + 600) }))],
          ['not valid for 5 minutes', '/jwt/hmac', hs(hmacClaims({ nbf: now + 300 }))],
          ['expired, JWKS key', '/jwt/jwks', signJwt({ alg: 'RS256', key: k.mainRsa, payload: claims(ISS.jwks, { exp: now - 120 }) })],
          ['not yet valid, inline key', '/jwt/inline', signJwt({ alg: 'EdDSA', key: k.inEd, payload: claims(ISS.inline, { nbf: now + 300 }) })],
        ]);
        await accepted(await call('/jwt/hmac', { token: hs(hmacClaims({ exp: now - 20 })) }), 'expired 20 s ago (within leeway)');
        await accepted(await call('/jwt/hmac', { token: hs(hmacClaims({ nbf: now + 20 })) }), 'valid in 20 s (within leeway)');
        await accepted(
          await call('/jwt/inline', { token: signJwt({ alg: 'ES256', key: k.inEs256, payload: claims(ISS.inline, { exp: now - 20 }) }) }),
          'expired 20 s ago, inline key',
        );
      });

      test('wrong issuer or audience', async () => {
        await allInvalid([
          ['another issuer', '/jwt/hmac', hs(hmacClaims({ iss: 'https://evil.example/' }))],
          ['issuer without its trailing slash', '/jwt/hmac', hs(hmacClaims({ iss: ISS.hmac.slice(0, -1) }))],
          ['issuer in another case', '/jwt/hmac', hs(hmacClaims({ iss: ISS.hmac.toUpperCase() }))],
          ['no issuer', '/jwt/hmac', hs(hmacClaims({ iss: undefined }))],
          ['issuer of another provider', '/jwt/hmac', hs(hmacClaims({ iss: ISS.inline }))],
          ['another audience', '/jwt/hmac', hs(hmacClaims({ aud: 'jwt-api-3' }))],
          ['an audience array without ours', '/jwt/hmac', hs(hmacClaims({ aud: ['a', 'b'] }))],
          ['no audience', '/jwt/hmac', hs(hmacClaims({ aud: undefined }))],
          ['audience is a prefix', '/jwt/hmac', hs(hmacClaims({ aud: 'jwt-ap' }))],
          ['wrong issuer, JWKS key', '/jwt/jwks', signJwt({ alg: 'RS256', key: k.mainRsa, payload: claims(ISS.inline) })],
          ['wrong audience, inline key', '/jwt/inline', signJwt({ alg: 'EdDSA', key: k.inEd, payload: claims(ISS.inline, { aud: 'other' }) })],
        ]);
      });
    });

    describe('forward_claims', () => {
      test('sub as is, an object and a number claim as compact JSON; client-sent values replaced', async () => {
        const ctx = { tenant: 't-1', roles: ['r1', 'r2'], quota: { max: 10, ratio: 0.5 }, on: true };
        const sub = 'auth0|jwt user 42';
        const token = hs(hmacClaims({ sub, ctx, level: 3 }));
        const got = await accepted(
          await call('/jwt/hmac', { token, headers: { 'x-user-id': 'forged', 'X-Jwt-Ctx': '{"tenant":"evil"}', 'x-jwt-level': '99' } }),
          'forwarded claims',
        );
        assert.equal(got['x-user-id'], sub);
        assert.equal(got['x-jwt-level'], '3');
        const raw = got['x-jwt-ctx'];
        assert.equal(typeof raw, 'string', 'x-jwt-ctx is set');
        assert.deepEqual(JSON.parse(raw), ctx);
        assert.ok(!/\s/.test(raw), `compact JSON: ${raw}`);
        // A float and a negative number as JSON numbers.
        const num = await accepted(await call('/jwt/hmac', { token: hs(hmacClaims({ level: -2.5 })) }), 'float claim');
        assert.equal(num['x-jwt-level'], '-2.5');
      });

      test('claims absent from the token: the headers are absent, whatever the client sent', async () => {
        const token = hs(hmacClaims({ sub: undefined }));
        const got = await accepted(
          await call('/jwt/hmac', {
            token,
            headers: ['x-user-id', 'forged-1', 'X-User-Id', 'forged-2', 'x-jwt-ctx', '{}', 'X-JWT-LEVEL', '7'],
          }),
          'no sub',
        );
        assert.equal(got['x-user-id'], undefined);
        assert.equal(got['x-jwt-ctx'], undefined);
        assert.equal(got['x-jwt-level'], undefined);
      });

      test('on auth routes a forged x-user-id without a (valid) token never reaches the origin', async () => {
        const before = echo().hits;
        await missing(await call('/jwt/hmac', { headers: { 'x-user-id': 'forged' } }), 'no token');
        await invalid(await call('/jwt/hmac', { token: hs(hmacClaims(), { secret: 'x'.repeat(40) }), headers: { 'x-user-id': 'forged' } }), 'bad token');
        assert.equal(echo().hits, before);
      });

      test('on a route without auth, forward_claims headers are stripped, with or without a token', async () => {
        const forged = ['x-user-id', 'forged-1', 'X-User-Id', 'forged-2', 'x-jwt-ctx', '{"a":1}', 'X-JWT-Level', '7', 'x-jwt-other', 'kept'];
        const bare = seen(await call('/jwt/open', { headers: forged }));
        const withToken = seen(await call('/jwt/open', { token: hs(hmacClaims({ sub: 'jwt-open-user', level: 1 })), headers: forged }));
        for (const [label, got] of [['without a token', bare], ['with a valid token', withToken]]) {
          assert.equal(got['x-jwt-other'], 'kept', `${label}: the echo shows client headers`);
          for (const name of ['x-user-id', 'x-jwt-ctx', 'x-jwt-level']) {
            assert.equal(got[name], undefined, `${label}: ${name} reached the origin`);
          }
        }
      });
    });

    describe('logs', () => {
      test('a refused token is logged with the reason; an accepted one with the subject', async () => {
        const now = nowS();
        const cases = [
          ['expired', '/jwt/hmac', hs(hmacClaims({ exp: now - 600, sub: 'jwt-log-expired' })), 401, /expir/i],
          ['bad signature', '/jwt/hmac', hs(hmacClaims({ sub: 'jwt-log-badsig' }), { secret: 'y'.repeat(40) }), 401, /signature/i],
          ['wrong issuer', '/jwt/hmac', hs(hmacClaims({ iss: 'https://evil.example/', sub: 'jwt-log-iss' })), 401, /issuer/i],
          ['wrong audience', '/jwt/hmac', hs(hmacClaims({ aud: 'nobody', sub: 'jwt-log-aud' })), 401, /audience/i],
          ['not yet valid', '/jwt/hmac', hs(hmacClaims({ nbf: now + 600, sub: 'jwt-log-nbf' })), 401, /valid|nbf/i],
          ['malformed', '/jwt/hmac', 'jwt-log-garbage-token-value', 401, /malformed|invalid|token/i],
          ['missing scope', '/jwt/read-write', hs(hmacClaims({ scope: 'jwt:read', sub: 'jwt-log-scope' })), 403, /scope/i],
          ['none', '/jwt/hmac', `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify(hmacClaims({ sub: 'jwt-log-none' })))}.`, 401, /./],
        ];
        const reasons = new Set();
        for (const [label, path, token, status, reason] of cases) {
          const id = rid('log');
          const res = await call(path, { token, id });
          assert.equal(res.status, status, label);
          const line = await e2e.waitForLog(id);
          assert.equal(line.status, status, label);
          assert.equal(line.route, path === '/jwt/hmac' ? 'jwt-hmac' : 'jwt-read-write', label);
          assert.equal(typeof line.error, 'string', `${label}: error in ${JSON.stringify(line)}`);
          assert.match(line.error, reason, `${label}: ${line.error}`);
          reasons.add(line.error);
          const text = e2e.wrangler.logLinesFor(id).join('\n');
          assert.ok(!text.includes(token), `${label}: the token is in the log line`);
          for (const part of segments(token).filter((p) => p.length >= 16)) {
            assert.ok(!text.includes(part), `${label}: a part of the token is in the log line`);
          }
        }
        assert.ok(reasons.size >= 6, `distinct reasons: ${[...reasons].join(' | ')}`);

        const missingId = rid('log-missing');
        await call('/jwt/hmac', { id: missingId });
        const line = await e2e.waitForLog(missingId);
        assert.equal(line.status, 401);
        assert.equal(typeof line.error, 'string');
        assert.match(line.error, /missing|no token|required/i);

        const okId = rid('log-ok');
        const token = signJwt({ alg: 'EdDSA', key: k.inEd, payload: claims(ISS.inline, { sub: 'jwt-log-subject-7' }) });
        const ok = await call('/jwt/inline', { token, id: okId });
        assert.equal(ok.status, 200);
        const okLine = await e2e.waitForLog(okId);
        assert.equal(okLine.status, 200);
        assert.equal(okLine.subject, 'jwt-log-subject-7');
        assert.ok(!e2e.wrangler.logLinesFor(okId).join('\n').includes(token));
      });
    });

    describe('JWKS rotation and outages', () => {
      test('an unknown kid is refused after one refetch of the JWKS (throttled to one per 10 s)', { timeout: 30_000 }, async () => {
        const token = signJwt({ alg: 'ES256', key: k.kidUnknown, payload: claims(ISS.jwks) });
        const deadline = Math.max(warmedAt + 16_000, Date.now() + 5_000);
        let res;
        await poll(async () => {
          res = await call('/jwt/kid', { token });
          await invalid(res, `unknown kid, ${set('kid').hits} fetches`);
          return set('kid').hits >= 2;
        }, { deadline });
        assert.equal(set('kid').hits, 2, 'one refetch for the unknown kid');
        // The refetch did not help; further tries within 10 s fetch nothing.
        for (let i = 0; i < 5; i++) await invalid(await call('/jwt/kid', { token }), 'unknown kid, again');
        assert.equal(set('kid').hits, 2, 'refetches are throttled');
        const known = signJwt({ alg: 'ES256', key: k.kid1, payload: claims(ISS.jwks) });
        await accepted(await call('/jwt/kid', { token: known }), 'the known kid still works');
      });

      test('key rotation: a token with the new kid is accepted within 15 s, twice in a row, without a restart', { timeout: 45_000 }, async () => {
        const rot = set('rot');
        for (const [key, alg] of [[k.rot2, 'RS256'], [k.rot3, 'ES256']]) {
          rot.keys = [key]; // the old key is gone, a new one with a new kid is served
          const switched = Date.now();
          const fetchesBefore = rot.hits;
          const token = signJwt({ alg, key, payload: claims(ISS.jwks, { sub: `jwt-rotated-${key.kid}` }) });
          let res;
          const ok = await poll(async () => {
            res = await call('/jwt/rot', { token });
            if (res.status === 200) return true;
            await invalid(res, `new kid ${key.kid} before the refetch`);
            return false;
          }, { deadline: switched + 15_000, every: 200 });
          assert.ok(ok, `the token with kid ${key.kid} was not accepted within 15 s (${rot.hits - fetchesBefore} fetches)`);
          assert.ok(rot.hits - fetchesBefore <= 2, `fetches during the rotation: ${rot.hits - fetchesBefore}`);
        }
        // Refetches for unknown kids came at most once every 10 s.
        for (let i = 1; i < rot.times.length; i++) {
          const gap = rot.times[i] - rot.times[i - 1];
          assert.ok(gap >= 9_500, `JWKS fetches ${gap} ms apart: ${rot.times.map((t) => t - rot.times[0]).join(', ')}`);
        }
        assert.equal(rot.hits, 3, 'warm-up + one refetch per rotation');
      });

      test('the JWKS server down (500, or closing connections) with keys cached: tokens still accepted', { timeout: 30_000 }, async () => {
        const cases = [
          ['cached-500', '500', k.cached500, k.cached500Unknown],
          ['cached-close', 'close', k.cachedClose, k.cachedCloseUnknown],
        ];
        for (const [name, mode] of cases) set(name).mode = mode;
        await Promise.all(
          cases.map(async ([name, , key, unknown]) => {
            const s = set(name);
            const good = signJwt({ alg: 'EdDSA', key, payload: claims(ISS.jwks, { sub: `jwt-${name}` }) });
            await accepted(await call(`/jwt/${name}`, { token: good }), `${name}: cached key, server down`);
            // An unknown kid makes the gateway try the (down) server; the refresh
            // fails and the last good keys stay in use.
            const stranger = signJwt({ alg: 'EdDSA', key: unknown, payload: claims(ISS.jwks) });
            const before = s.hits;
            await poll(async () => {
              const res = await call(`/jwt/${name}`, { token: stranger });
              await invalid(res, `${name}: unknown kid while the server is down`);
              return s.hits > before;
            }, { deadline: Math.max(warmedAt + 16_000, Date.now() + 5_000) });
            assert.ok(s.hits > before, `${name}: the gateway never tried to refresh`);
            for (let i = 0; i < 3; i++) {
              await accepted(await call(`/jwt/${name}`, { token: good }), `${name}: cached key after a failed refresh`);
            }
          }),
        );
      });

      test('a provider whose JWKS server is down from the start, nothing cached: 503', async () => {
        const before = echo().hits;
        for (const name of ['dead-500', 'dead-close', 'dead-refused']) {
          const token = signJwt({ alg: 'ES256', key: k.dead, payload: claims(ISS.jwks) });
          for (let i = 0; i < 2; i++) {
            const res = await call(`/jwt/${name}`, { token });
            await assertProblem(res, 503, { label: `${name} #${i + 1}` });
          }
        }
        assert.ok(set('dead-500').hits >= 1, 'the dead-500 JWKS was asked');
        assert.ok(set('dead-close').hits >= 1, 'the dead-close JWKS was asked');
        assert.equal(echo().hits, before);
        // JWKS fetch failures are reported as events (written as the fetch fails,
        // which may be after the 503 reached the client: waited for, not read at once).
        for (const provider of ['jwt-dead-500', 'jwt-dead-close', 'jwt-dead-refused']) {
          await e2e.wrangler.waitForEvent((v) => v.event === 'jwks_error' && v.provider === provider, { timeoutMs: 10_000 });
        }
      });
    });

    describe('JWKS recovery', () => {
      test('a JWKS server that comes back is used again, without a restart', { timeout: 30_000 }, async () => {
        const s = set('recover');
        s.mode = 'ok';
        const before = s.hits;
        const token = signJwt({ alg: 'ES256', key: k.dead, payload: claims(ISS.jwks, { sub: 'jwt-recovered' }) });
        let last;
        const ok = await poll(async () => {
          last = await call('/jwt/recover', { token });
          if (last.status === 200) return true;
          await assertProblem(last, 503, { label: 'jwt-recover before the refetch' });
          return false;
        }, { deadline: Math.max(warmedAt + 16_000, Date.now() + 12_000) });
        assert.ok(ok, `still ${last.status} after the JWKS server came back (${s.hits - before} fetches)`);
        assert.ok(s.hits > before, 'fetched again');
      });
    });

    describe('secrets in the output', () => {
      test('no token or secret sent during this suite appears anywhere in the wrangler output', async () => {
        const id = rid('last');
        await call('/jwt/open', { id });
        await e2e.waitForLog(id);
        await sleep(200);
        const output = e2e.wrangler.lines.join('\n');
        assert.ok(sent.size > 50, `${sent.size} tokens sent`);
        for (const token of [...sent].filter((t) => t.length >= 16)) {
          assert.ok(!output.includes(token), `a token is in the output: ${token.slice(0, 40)}...`);
          const sig = segments(token)[2];
          if (sig && sig.length >= 40) assert.ok(!output.includes(sig), `a token's signature is in the output: ${token.slice(0, 40)}...`);
        }
        for (const secret of [HS_SECRET, MIXED_SECRET]) assert.ok(!output.includes(secret), 'an HMAC secret is in the output');
      });
    });
  },
};
