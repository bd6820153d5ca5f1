// What a hostile client tries: forged identity headers, forged or confused
// tokens, paths that try to climb out of a route, the gateway as an open proxy,
// header injection, oversized inputs. Each attack is one test; each checks what
// the origin saw (echo origins report every header and the raw path), that no
// unconfigured listener was reached, and that the gateway stays healthy.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';

import { startOrigin } from '../../../scripts/origin.mjs';
import { assertProblem, isRequestId, lastRequest } from '../assert.mjs';
import { listenLocal } from '../harness.mjs';

// --- tokens ------------------------------------------------------------------

const ISSUER = 'https://attacks.e2e.test/';
const HS_SECRET = 'attacks-hs256-secret-0123456789-abcdefghijklmnop';
const MIXED_SECRET = 'attacks-mixed-secret-9876543210-zyxwvutsrqponmlk';
const b64u = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A compact JWS; `header` and `payload` are objects or raw JSON text. */
function sign(header, payload, signer) {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${Buffer.from(signer(input)).toString('base64url')}`;
}
const hmac = (secret) => (input) => crypto.createHmac('sha256', secret).update(input).digest();
const rs256 = (key) => (input) => crypto.sign('sha256', Buffer.from(input), key);
const exp = () => Math.floor(Date.now() / 1000) + 600;
const claims = (extra = {}) => ({ iss: ISSUER, sub: 'attacker', exp: exp(), ...extra });
const bearer = (token) => `Bearer ${token}`;

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const attackerRsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_KID = 'attacks-rsa-1';
const JWKS_KID = 'attacks-jwks-1';
const publicJwk = (key, kid) => ({ ...key.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' });
const hsToken = (extra, secret = HS_SECRET) => sign({ alg: 'HS256', typ: 'JWT' }, claims(extra), hmac(secret));
const rsToken = (kid = RSA_KID, extra = {}, key = rsa.privateKey) => sign({ alg: 'RS256', typ: 'JWT', kid }, claims(extra), rs256(key));

// --- raw HTTP/1.1 over node:net ------------------------------------------------

/** Parses one HTTP/1.1 response (content-length, chunked or until close). */
function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    (headers[name] ??= []).push(line.slice(i + 1).trim());
  }
  let body = buf.subarray(end + 4);
  let complete = false;
  if (headers['content-length']) {
    const n = Number(headers['content-length'][0]);
    complete = body.length >= n;
    body = body.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding']?.[0] ?? '')) {
    const parts = [];
    let rest = body;
    for (;;) {
      const eol = rest.indexOf('\r\n');
      if (eol < 0) break;
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (size === 0) {
        complete = true;
        break;
      }
      if (rest.length < eol + 2 + size + 2) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    complete = true;
  }
  return { status, statusLine: lines[0], headers, head: lines.join('\n'), body, complete, text: () => body.toString('utf8'), json: () => JSON.parse(body.toString('utf8')) };
}

/**
 * Sends `request` (string or Buffer, exact bytes) and reads one response. Resolves
 * {status, headers (name -> [values]), body, how: 'complete' | 'end' | 'error' | 'timeout'}
 * (status 0 when the connection ended without a response).
 */
function rawExchange(port, request, { timeoutMs = 15_000, head = false } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseResponse(Buffer.concat(chunks));
      resolve(parsed ? { ...parsed, how } : { status: 0, headers: {}, body: Buffer.concat(chunks), how, text: () => '' });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('connect', () => {
      socket.write(request, () => {});
    });
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const parsed = parseResponse(Buffer.concat(chunks));
      if (parsed && (parsed.complete || head)) finish('complete');
    });
    socket.on('end', () => finish('end'));
    socket.on('error', () => finish('error'));
  });
}

/** A request head, CRLF-terminated lines, closed with an empty line. */
const requestHead = (lines) => Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');

/** The values of a response header, from a fetch Response, a node:http result or rawExchange. */
function headerValues(res, name) {
  if (typeof res.headers?.get === 'function') {
    const v = res.headers.get(name);
    return v === null ? [] : [v];
  }
  const v = res.headers[name.toLowerCase()];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/**
 * Whether an answer came from the runtime rather than the gateway: no x-request-id
 * (every gateway answer has one). workerd answers some requests itself, before the
 * Worker runs: absolute-form targets and CONNECT (500), oversized heads (431),
 * invalid header bytes (400).
 */
const fromRuntime = (res) => headerValues(res, 'x-request-id').length === 0;

// A path segment that is a dot segment for the WHATWG URL parser (., .., and %2e forms).
const isDotSegment = (seg) => /^(\.|%2e){1,2}$/i.test(seg);

// --- a JWKS server that records what was asked -------------------------------

function jwksServer(name) {
  return {
    name,
    start: () => {
      const state = { name, hits: 0, paths: [], requests: [] };
      state.count = (suffix = '') => state.paths.filter((p) => p.endsWith(suffix)).length;
      state.reset = () => {
        state.hits = 0;
        state.paths.length = 0;
      };
      const server = http.createServer((req, res) => {
        state.hits += 1;
        state.paths.push(req.url);
        const body = JSON.stringify({ keys: [publicJwk(rsa.publicKey, JWKS_KID)] });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return listenLocal(server, state);
    },
  };
}

const IDENTITY = {
  'attacks-hs': { sub: 'x-attacks-user', role: 'x-attacks-role', tenant: 'x-attacks-tenant' },
  'attacks-rsa': { sub: 'x-attacks-rsa-user' },
  'attacks-mixed': { sub: 'x-attacks-mixed-user', scope: 'x-attacks-scope' },
};
const IDENTITY_HEADERS = Object.values(IDENTITY).flatMap((m) => Object.values(m));
const MB = 1024 * 1024;

export default {
  name: 'attacks',
  servers: [
    // An echo origin that takes request heads up to 256 KB (node's default is 16 KB),
    // so that what the gateway forwards, not node's limit, is what the tests see.
    { name: 'attacks-echo', start: () => startOrigin({ name: 'attacks-echo', port: 0, maxHeaderSize: 256 * 1024 }) },
    'attacks-admin',
    'attacks-canary',
    jwksServer('attacks-jwks'),
  ],
  secrets: { ATTACKS_HS_SECRET: HS_SECRET, ATTACKS_MIXED_SECRET: MIXED_SECRET },
  config: ({ servers }) => {
    const echo = servers['attacks-echo'].url;
    const rsaKeys = { keys: [publicJwk(rsa.publicKey, RSA_KID)] };
    return {
      origins: {
        'attacks-echo': { regions: [{ name: 'local', url: echo, serves: ['*'] }] },
        // A base URL with a path prefix: nothing may climb above it.
        'attacks-prefixed': { regions: [{ name: 'local', url: `${echo}/attacks-base/public`, serves: ['*'] }] },
        'attacks-admin': { regions: [{ name: 'local', url: servers['attacks-admin'].url, serves: ['*'] }] },
      },
      jwt: {
        'attacks-hs': { issuer: ISSUER, secret_var: 'ATTACKS_HS_SECRET', algorithms: ['HS256'], forward_claims: IDENTITY['attacks-hs'] },
        'attacks-rsa': { issuer: ISSUER, keys: rsaKeys, forward_claims: IDENTITY['attacks-rsa'] },
        // HMAC and RSA on one provider, no `algorithms`: the confusion attack's best chance.
        'attacks-mixed': { issuer: ISSUER, secret_var: 'ATTACKS_MIXED_SECRET', keys: rsaKeys, forward_claims: IDENTITY['attacks-mixed'] },
        'attacks-jwks': { issuer: ISSUER, jwks_url: `${servers['attacks-jwks'].url}/jwks.json` },
      },
      routes: [
        { id: 'attacks-public', path: '/attacks/public/{*rest}', methods: ['GET', 'POST'], origin: 'attacks-echo', rewrite: '/public/{rest}' },
        { id: 'attacks-plain', path: '/attacks/plain/{*rest}', origin: 'attacks-echo' },
        { id: 'attacks-get-only', path: '/attacks/get-only/{*rest}', methods: ['GET'], origin: 'attacks-echo', rewrite: '/get-only/{rest}' },
        { id: 'attacks-cached', path: '/attacks/cached/{*rest}', methods: ['GET'], origin: 'attacks-echo', rewrite: '/cached/{rest}', cache: { ttl_s: 300 } },
        { id: 'attacks-prefixed', path: '/attacks/prefixed/{*rest}', origin: 'attacks-prefixed', rewrite: '/{rest}' },
        { id: 'attacks-concat', path: '/attacks/concat/{a}/{b}', methods: ['GET'], origin: 'attacks-prefixed', rewrite: '/{a}{b}' },
        {
          id: 'attacks-admin',
          path: '/attacks/admin/{*rest}',
          origin: 'attacks-admin',
          rewrite: '/admin/{rest}',
          auth: { jwt: 'attacks-hs', scopes: ['admin'] },
        },
        { id: 'attacks-hs', path: '/attacks/hs/{*rest}', origin: 'attacks-echo', rewrite: '/hs/{rest}', auth: { jwt: 'attacks-hs' } },
        { id: 'attacks-rsa', path: '/attacks/rsa/{*rest}', methods: ['GET'], origin: 'attacks-echo', rewrite: '/rsa/{rest}', auth: { jwt: 'attacks-rsa' } },
        { id: 'attacks-mixed', path: '/attacks/mixed/{*rest}', methods: ['GET'], origin: 'attacks-echo', rewrite: '/mixed/{rest}', auth: { jwt: 'attacks-mixed' } },
        { id: 'attacks-jwks', path: '/attacks/jwks/{*rest}', methods: ['GET'], origin: 'attacks-echo', rewrite: '/jwks/{rest}', auth: { jwt: 'attacks-jwks' } },
      ],
    };
  },

  tests(e2e) {
    const echo = () => e2e.servers['attacks-echo'];
    const admin = () => e2e.servers['attacks-admin'];
    const canary = () => e2e.servers['attacks-canary'];
    const jwks = () => e2e.servers['attacks-jwks'];
    const exchange = (request, opts) => rawExchange(e2e.port, request, opts);

    async function assertHealthy(label = '') {
      const health = await e2e.fetch('/__gateway/health', { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200, `health after ${label}`);
      assert.equal((await health.json()).status, 'ok');
      const res = await e2e.fetch('/attacks/public/healthy', { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200, `a normal request after ${label}`);
      assert.equal((await res.json()).rawPath, '/public/healthy');
      const token = await e2e.fetch('/attacks/hs/healthy', { headers: { authorization: bearer(hsToken()) }, signal: AbortSignal.timeout(5000) });
      assert.equal(token.status, 200, `a normal token after ${label}`);
    }

    /** Asserts a token is refused with 401 invalid_token and the origin never saw the request. */
    async function assertRefused(route, token, label) {
      const before = echo().hits + admin().hits;
      const res = await e2e.fetch(route, { headers: { authorization: bearer(token) }, signal: AbortSignal.timeout(10_000) });
      await assertProblem(res, 401, { label });
      const challenge = res.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer error="invalid_token"/, `${label}: ${challenge}`);
      assert.equal(echo().hits + admin().hits, before, `${label}: the origin was reached`);
    }

    /** Every header the origin saw whose name or value carries "injected". */
    const injected = (seen) => Object.entries(seen.headers).filter(([k, v]) => /injected/i.test(k) || /\r|\n|\0/.test(String(v)));

    describe('forged identity headers', () => {
      const forged = () =>
        IDENTITY_HEADERS.flatMap((name) => [name, `forged-${name}`, name.toUpperCase(), `forged-again-${name}`]).concat([
          'X-Forwarded-For', '6.6.6.6',
          'x-forwarded-for', '7.7.7.7',
          'X-Forwarded-Host', 'evil.example',
          'X-Forwarded-Proto', 'https',
        ]);

      const assertNotForged = (seen, label) => {
        for (const name of IDENTITY_HEADERS) {
          assert.ok(!String(seen.headers[name] ?? '').includes('forged'), `${label}: ${name}: ${seen.headers[name]}`);
        }
        assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', `${label}: x-forwarded-for`);
        assert.equal(seen.headers['x-forwarded-proto'], 'http', `${label}: x-forwarded-proto`);
        assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${e2e.port}`, `${label}: x-forwarded-host`);
      };

      test('on a route without auth, no client-sent identity header reaches the origin', async () => {
        const res = await e2e.raw({ path: '/attacks/public/whoami', headers: forged() });
        assert.equal(res.status, 200);
        const seen = res.json();
        assertNotForged(seen, 'public');
        for (const name of IDENTITY_HEADERS) assert.equal(seen.headers[name], undefined, name);
      });

      test('on an auth route, claim headers come from the token only; claims it lacks stay unset', async () => {
        const token = hsToken({ sub: 'alice' }); // no role, no tenant
        const res = await e2e.raw({ path: '/attacks/hs/whoami', headers: ['Authorization', bearer(token), ...forged()] });
        assert.equal(res.status, 200);
        const seen = res.json();
        assertNotForged(seen, 'hs');
        assert.equal(seen.headers['x-attacks-user'], 'alice');
        assert.equal(seen.headers['x-attacks-role'], undefined, 'a claim the token lacks must not be filled by the client');
        assert.equal(seen.headers['x-attacks-tenant'], undefined);
        // Headers of other providers are stripped too.
        assert.equal(seen.headers['x-attacks-rsa-user'], undefined);
        assert.equal(seen.headers['x-attacks-mixed-user'], undefined);
      });

      test('on another provider\'s route and on a refused token, forged headers never reach any origin', async () => {
        const res = await e2e.raw({
          path: '/attacks/rsa/whoami',
          headers: ['Authorization', bearer(rsToken(RSA_KID, { sub: 'bob', role: 'admin' })), ...forged()],
        });
        assert.equal(res.status, 200);
        const seen = res.json();
        assertNotForged(seen, 'rsa');
        assert.equal(seen.headers['x-attacks-rsa-user'], 'bob');
        assert.equal(seen.headers['x-attacks-role'], undefined, 'another provider\'s claim header');
        const before = echo().hits + admin().hits;
        const refused = await e2e.raw({ path: '/attacks/admin/x', headers: ['Authorization', 'Bearer not.a.token', ...forged()] });
        assert.equal(refused.status, 401);
        assert.equal(echo().hits + admin().hits, before);
      });
    });

    describe('forged identity headers: look-alikes', () => {
      test('underscore spellings of claim headers (x_attacks_user) never reach the origin', async () => {
        // CGI-style servers, and the frameworks on top of them (WSGI, Rack, PHP), read
        // x_attacks_user and x-attacks-user as one variable (HTTP_X_ATTACKS_USER).
        const headers = IDENTITY_HEADERS.flatMap((name) => [name.replace(/-/g, '_'), `forged-${name}`]);
        for (const route of ['/attacks/public/whoami', '/attacks/hs/whoami']) {
          const res = await e2e.raw({ path: route, headers: ['Authorization', bearer(hsToken({ sub: 'alice' })), ...headers] });
          assert.equal(res.status, 200, route);
          const seen = res.json();
          const forged = Object.entries(seen.headers).filter(([name, value]) => IDENTITY_HEADERS.includes(name.replace(/_/g, '-')) && String(value).includes('forged'));
          assert.deepEqual(forged, [], `${route}: the origin got ${JSON.stringify(forged)}`);
        }
      });

      test('a client-sent Forwarded header (RFC 7239) never reaches the origin as sent', async () => {
        const res = await e2e.raw({
          path: '/attacks/public/whoami',
          headers: { forwarded: `for=6.6.6.6;host=127.0.0.1:${canary().port};proto=https`, 'cf-connecting-ip': '203.0.113.7' },
        });
        assert.equal(res.status, 200);
        const seen = res.json();
        assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7');
        const forwarded = seen.headers.forwarded;
        assert.ok(forwarded === undefined || !/6\.6\.6\.6|proto=https|host=127/.test(forwarded), `the origin got Forwarded: ${forwarded}`);
      });
    });

    describe('tokens', () => {
      test('alg "none" (any spelling, with or without a signature) is refused', async () => {
        const payload = claims({ scope: 'admin' });
        for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
          const unsigned = `${b64u({ alg, typ: 'JWT' })}.${b64u(payload)}.`;
          const signed = `${b64u({ alg, typ: 'JWT' })}.${b64u(payload)}.${hmac(HS_SECRET)(`${b64u({ alg, typ: 'JWT' })}.${b64u(payload)}`).toString('base64url')}`;
          for (const route of ['/attacks/admin/x', '/attacks/hs/x', '/attacks/mixed/x', '/attacks/rsa/x', '/attacks/jwks/x']) {
            await assertRefused(route, unsigned, `${alg} unsigned on ${route}`);
            await assertRefused(route, signed, `${alg} with an HMAC signature on ${route}`);
            await assertRefused(route, `${b64u({ alg, typ: 'JWT' })}.${b64u(payload)}`, `${alg}, two parts, on ${route}`);
          }
        }
        for (const header of [{ typ: 'JWT' }, { alg: null }, { alg: '' }, { alg: ['HS256'] }, { alg: 'HS256 ' }, { alg: 'hs256' }]) {
          const token = sign(header, payload, hmac(HS_SECRET));
          await assertRefused('/attacks/hs/x', token, `header ${JSON.stringify(header)}`);
        }
        // A good HS256 token with its signature stripped.
        const good = hsToken({ scope: 'admin' });
        await assertRefused('/attacks/admin/x', good.slice(0, good.lastIndexOf('.') + 1), 'signature stripped');
        await assertRefused('/attacks/admin/x', `${good}.extra`, 'four parts');
        assert.equal(admin().hits, 0, 'the admin origin was reached');
        await assertHealthy('alg none');
      });

      test('algorithm confusion: HS256 signed with the RSA public key as the secret is refused', async () => {
        const pub = rsa.publicKey;
        const secrets = {
          'PEM (SPKI)': pub.export({ type: 'spki', format: 'pem' }),
          'PEM (PKCS#1)': pub.export({ type: 'pkcs1', format: 'pem' }),
          'PEM without the final newline': pub.export({ type: 'spki', format: 'pem' }).trimEnd(),
          'DER (SPKI)': pub.export({ type: 'spki', format: 'der' }),
          'JWK JSON': JSON.stringify(publicJwk(pub, RSA_KID)),
          'modulus': Buffer.from(pub.export({ format: 'jwk' }).n, 'base64url'),
        };
        // The genuine tokens work, so the refusals below are about the algorithm.
        assert.equal((await e2e.fetch('/attacks/rsa/x', { headers: { authorization: bearer(rsToken()) } })).status, 200);
        assert.equal((await e2e.fetch('/attacks/mixed/x', { headers: { authorization: bearer(hsToken({}, MIXED_SECRET)) } })).status, 200);
        assert.equal((await e2e.fetch('/attacks/jwks/x', { headers: { authorization: bearer(rsToken(JWKS_KID)) } })).status, 200);
        for (const [what, secret] of Object.entries(secrets)) {
          for (const kid of [RSA_KID, JWKS_KID, undefined]) {
            const header = kid ? { alg: 'HS256', typ: 'JWT', kid } : { alg: 'HS256', typ: 'JWT' };
            const token = sign(header, claims({ scope: 'admin' }), hmac(secret));
            for (const route of ['/attacks/rsa/x', '/attacks/mixed/x', '/attacks/jwks/x']) {
              await assertRefused(route, token, `HS256 with the ${what} (kid ${kid}) on ${route}`);
            }
          }
        }
        // The same trick with RS256 made up from an attacker's key pair.
        await assertRefused('/attacks/rsa/x', rsToken(RSA_KID, {}, attackerRsa.privateKey), 'an attacker-signed RS256 token');
        await assertHealthy('algorithm confusion');
      });

      test('keys embedded in or pointed to by the token header (jwk, jku, x5u) are never used or fetched', async () => {
        const attackerJwk = publicJwk(attackerRsa.publicKey, 'attacker');
        const headers = [
          { alg: 'RS256', kid: 'attacker', jwk: attackerJwk },
          { alg: 'RS256', jku: `${canary().url}/jwks.json`, kid: 'attacker' },
          { alg: 'RS256', x5u: `${canary().url}/cert.pem` },
          { alg: 'RS256', kid: RSA_KID, jku: `${canary().url}/jwks.json` },
        ];
        for (const header of headers) {
          const token = sign(header, claims(), rs256(attackerRsa.privateKey));
          for (const route of ['/attacks/rsa/x', '/attacks/mixed/x', '/attacks/jwks/x']) {
            await assertRefused(route, token, `${Object.keys(header).join('+')} on ${route}`);
          }
        }
        assert.equal(canary().hits, 0, 'a URL from a token header was fetched');
        assert.ok(jwks().paths.every((p) => p === '/jwks.json'), `JWKS requests: ${jwks().paths.join(' ')}`);
        await assertHealthy('embedded keys');
      });

      test('huge claims (a 15 KB sub) and deeply nested claims (10,000 arrays) are refused; the gateway stays healthy', async () => {
        const big = hsToken({ sub: 'u'.repeat(15 * 1024) });
        assert.ok(big.length > 16 * 1024);
        await assertRefused('/attacks/hs/x', big, '15 KB sub');
        const nested = (n) => `{"iss":${JSON.stringify(ISSUER)},"sub":"deep","exp":${exp()},"deep":${'['.repeat(n)}${']'.repeat(n)}}`;
        const nestedObjects = (n) => `{"iss":${JSON.stringify(ISSUER)},"sub":"deep","exp":${exp()},"deep":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`;
        const signHs = (payload, header = { alg: 'HS256', typ: 'JWT' }) => sign(header, payload, hmac(HS_SECRET));
        // Too large to be decoded at all:
        await assertRefused('/attacks/hs/x', signHs(nested(10_000)), '10,000 nested arrays');
        // Under the size limit, correctly signed, so the claims are parsed:
        const under = signHs(nested(5_000));
        assert.ok(under.length < 16 * 1024, `${under.length}`);
        await assertRefused('/attacks/hs/x', under, '5,000 nested arrays, signed');
        await assertRefused('/attacks/hs/x', signHs(nestedObjects(1_500)), '1,500 nested objects, signed');
        // Deep nesting in the JOSE header, parsed before any signature check (an
        // attacker has no secret: the signature is made up).
        const deepHeader = `{"alg":"HS256","x":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
        await assertRefused('/attacks/hs/x', sign(deepHeader, JSON.stringify(claims()), hmac('not-the-secret')), 'nested header');
        await assertRefused('/attacks/hs/x', sign(`{"alg":${'['.repeat(5_000)}${']'.repeat(5_000)}}`, JSON.stringify(claims()), hmac('x')), 'nested alg');
        // Many of them at once.
        const answers = await Promise.all(
          Array.from({ length: 20 }, () => e2e.fetch('/attacks/hs/x', { headers: { authorization: bearer(under) } })),
        );
        for (const res of answers) await assertProblem(res, 401);
        await assertHealthy('huge claims');
      });

      test('kid tricks (paths, very long, CRLF, NUL, not a string) are refused, never used as a path or a header', async () => {
        const kids = [
          '../../etc/passwd',
          '/etc/passwd',
          '..%2f..%2fetc%2fpasswd',
          `${canary().url}/jwks.json`,
          'k'.repeat(10 * 1024),
          'a\r\nx-injected: 1',
          'a\nx-injected: 1',
          'a\u0000b',
          "' OR '1'='1",
          `${RSA_KID}\u0000`,
          `${RSA_KID} `,
        ];
        const jwksBefore = jwks().paths.length;
        for (const kid of kids) {
          const label = `kid ${JSON.stringify(kid).slice(0, 40)}`;
          for (const route of ['/attacks/rsa/x', '/attacks/jwks/x', '/attacks/mixed/x']) {
            const token = rsToken(kid);
            const res = await e2e.raw({ path: route, headers: { authorization: bearer(token) } });
            assert.equal(res.status, 401, `${label} on ${route}: ${res.text().slice(0, 200)}`);
            assert.equal(res.headers['x-injected'], undefined, `${label}: injected response header`);
            assert.ok(!/[\r\n\0]/.test(res.headers['www-authenticate'] ?? ''), label);
            assert.match(res.headers['www-authenticate'], /^Bearer error="invalid_token"/, label);
            assert.ok(!res.text().includes('passwd') && !res.text().includes('x-injected'), `${label}: echoed in ${res.text()}`);
          }
        }
        for (const kid of [42, { $ref: '/etc/passwd' }, ['a'], true]) {
          const token = sign({ alg: 'RS256', kid }, claims(), rs256(rsa.privateKey));
          await assertRefused('/attacks/rsa/x', token, `kid ${JSON.stringify(kid)}`);
        }
        const asked = jwks().paths.slice(jwksBefore);
        assert.ok(asked.every((p) => p === '/jwks.json'), `the JWKS server was asked for ${asked.join(' ')}`);
        assert.ok(asked.length <= 2, `${asked.length} JWKS fetches for unknown kids (refetches are throttled)`);
        assert.equal(canary().hits, 0);
        await assertHealthy('kid tricks');
      });
    });

    describe('paths', () => {
      /**
       * Sends `target` exactly; asserts that whatever answered, the public route never
       * forwarded outside /public/, nothing reached the admin origin, nothing answered 500.
       */
      async function probe(target, { expectForward } = {}) {
        const adminBefore = admin().hits;
        const echoBefore = echo().hits;
        const res = await exchange(requestHead([`GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close']));
        const label = JSON.stringify(target.length > 80 ? `${target.slice(0, 80)}...` : target);
        assert.ok(res.status >= 200 && res.status < 500, `${label}: status ${res.status} (${res.how})`);
        assert.equal(admin().hits, adminBefore, `${label} reached the admin origin`);
        let seen = null;
        if (echo().hits > echoBefore) {
          seen = lastRequest(echo());
          const segments = seen.rawPath.split('/').slice(1);
          assert.ok(seen.rawPath.startsWith('/public/') || seen.rawPath.startsWith('/attacks/plain/'), `${label} forwarded as ${seen.rawPath}`);
          assert.ok(!segments.some(isDotSegment), `${label} forwarded with a dot segment: ${seen.rawPath}`);
          assert.ok(!seen.rawPath.includes('//'), `${label} forwarded as ${seen.rawPath}`);
        }
        if (expectForward !== undefined) {
          assert.equal(seen?.rawPath, expectForward, `${label}: ${res.status} ${res.text().slice(0, 200)}`);
        }
        return { res, seen };
      }

      test('.. and its encodings never leave a catch-all route for an upstream path it does not allow', async () => {
        const tricks = [
          '/attacks/public/../admin/x',
          '/attacks/public/%2e%2e/admin/x',
          '/attacks/public/%2E%2E/%2e%2e/attacks/admin/x',
          '/attacks/public/.%2e/admin/x',
          '/attacks/public/%2e./admin/x',
          '/attacks/public/x/../../admin/x',
          '/attacks/public//../admin/x',
          '/attacks/public/./../admin/x',
          '/attacks/public/..%2fadmin/x',
          '/attacks/public/..%2Fadmin/x',
          '/attacks/public/%2e%2e%2fadmin/x',
          '/attacks/public/%2e%2e%5cadmin/x',
          '/attacks/public/..\\admin/x',
          '/attacks/public/%252e%252e/admin/x',
          '/attacks/public/..;/admin/x',
          '/attacks/public/%c0%ae%c0%ae/admin/x',
          '/attacks/public/%u002e%u002e/admin/x',
          '/attacks/public/....//admin/x',
          '/attacks/public/x/..',
          '/attacks/public/..',
          '/attacks/plain/../public/../admin/x',
          '/attacks/plain/%2e%2e/%2e%2e/etc/passwd',
        ];
        for (const target of tricks) {
          const { res, seen } = await probe(target);
          // Either the public route forwarded under /public/, or it was answered without the public origin.
          if (!seen) assert.ok([401, 404].includes(res.status), `${target}: ${res.status}`);
        }
        // The ones resolved onto the admin route meet its auth, never the public route's origin.
        const { res } = await probe('/attacks/public/%2e%2e/admin/x');
        assert.equal(res.status, 401);
        assert.equal(admin().hits, 0);
        await assertHealthy('dot segments');
      });

      test('%2f inside a catch-all stays one encoded segment; the upstream path is exactly the rewrite', async () => {
        await probe('/attacks/public/a%2fb/c', { expectForward: '/public/a%2fb/c' });
        await probe('/attacks/public/..%2F..%2Fadmin', { expectForward: '/public/..%2F..%2Fadmin' });
        await probe('/attacks/public/%2fetc%2fpasswd', { expectForward: '/public/%2fetc%2fpasswd' });
        await probe('/attacks/public/a%00b', { expectForward: '/public/a%00b' });
        await probe('/attacks/public/a%0d%0ax-injected:%201', { expectForward: '/public/a%0d%0ax-injected:%201' });
        assert.equal(injected(lastRequest(echo())).length, 0);
      });

      test('double slashes collapse and can never name another host', async () => {
        await probe('//attacks//public//x', { expectForward: '/public/x' });
        await probe(`/attacks/public//127.0.0.1:${canary().port}/x`, { expectForward: `/public/127.0.0.1:${canary().port}/x` });
        await probe(`/attacks/public/%2f%2f127.0.0.1:${canary().port}/x`, { expectForward: `/public/%2f%2f127.0.0.1:${canary().port}/x` });
        await probe(`/attacks/public/@127.0.0.1:${canary().port}/x`, { expectForward: `/public/@127.0.0.1:${canary().port}/x` });
        assert.equal(canary().hits, 0);
        for (const target of [`//attacks/public/x`, `///127.0.0.1:${canary().port}/attacks/public/x`]) {
          await probe(target);
        }
        assert.equal(canary().hits, 0);
      });

      test('a base URL path prefix is never climbed above', async () => {
        const before = echo().hits;
        for (const target of ['/attacks/prefixed/../x', '/attacks/prefixed/a/../../x', '/attacks/prefixed/%2e%2e/x', '/attacks/prefixed/a/%2e%2e/%2e%2e/x']) {
          const res = await e2e.raw({ path: target });
          if (res.status === 200) assert.ok(res.json().rawPath.startsWith('/attacks-base/public/'), `${target}: ${res.json().rawPath}`);
          else assert.equal(res.status, 404, target);
        }
        const kept = await e2e.raw({ path: '/attacks/prefixed/a/../b' });
        assert.equal(kept.json().rawPath, '/attacks-base/public/b');
        assert.ok(echo().hits > before);
      });

      test('a rewrite that joins two parameters cannot form a dot segment the runtime would resolve', async () => {
        // Each parameter alone is harmless; joined by the rewrite "/{a}{b}" they spell
        // "%2e%2e" or ".%2e", which the URL parser of the upstream fetch resolves as "..".
        for (const [a, b] of [['%2', 'e%2e'], ['.%2', 'e'], ['%2e', '.'], ['%2E%2', 'E']]) {
          const target = `/attacks/concat/${a}/${b}`;
          const res = await e2e.raw({ path: target });
          if (res.status === 200) {
            const seen = res.json();
            assert.ok(
              seen.rawPath.startsWith('/attacks-base/public/') && !seen.rawPath.slice(1).split('/').some(isDotSegment),
              `${target} reached the origin as ${seen.rawPath}, above the base path /attacks-base/public`,
            );
          } else {
            assert.ok(res.status >= 400 && res.status < 500, `${target}: ${res.status}`);
          }
        }
      });

      test('paths over 8 KB: 414 problem+json, nothing forwarded; 8 KB exactly is served', async () => {
        const prefix = '/attacks/public/';
        const exact = prefix + 'a'.repeat(8 * 1024 - prefix.length);
        const ok = await e2e.raw({ path: exact });
        assert.equal(ok.status, 200, `a path of exactly 8192 bytes: ${ok.status}`);
        const before = echo().hits;
        const over = await e2e.raw({ path: `${exact}a` });
        await assertProblem(over, 414, { label: '8193 bytes' });
        for (const size of [64 * 1024, 100 * 1024]) {
          const res = await exchange(requestHead([`GET ${prefix}${'b'.repeat(size)} HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close']));
          assert.ok(res.status >= 400 && res.status < 500, `${size} byte path: ${res.status} (${res.how})`);
          if (res.headers['content-type']?.[0]?.startsWith('application/problem+json')) assert.equal(res.status, 414);
        }
        assert.equal(echo().hits, before);
        // A long path of dot segments: the runtime resolves them before the Worker sees
        // the URL, so what the gateway checks is the short result. Either way it
        // stays inside the route.
        const dotted = await e2e.raw({ path: `${prefix}${'x/../'.repeat(2000)}y` });
        if (dotted.status === 200) assert.equal(dotted.json().rawPath, '/public/y');
        else await assertProblem(dotted, 414, { label: 'long dotted path' });
        await assertHealthy('long paths');
      });

      test('non-UTF-8 bytes in the path (%ff%fe, raw 0xff 0xfe) never get a 500 nor leave the route', async () => {
        await probe('/attacks/public/%ff%fe/x', { expectForward: '/public/%ff%fe/x' });
        await probe('/attacks/public/%c0%af/x', { expectForward: '/public/%c0%af/x' });
        await probe('/attacks/public/%zz/%', {});
        for (const bytes of [[0xff, 0xfe], [0xc0, 0xaf], [0x80], [0xed, 0xa0, 0x80]]) {
          const request = Buffer.concat([
            Buffer.from('GET /attacks/public/raw', 'latin1'),
            Buffer.from(bytes),
            Buffer.from(`/x HTTP/1.1\r\nHost: 127.0.0.1:${e2e.port}\r\nConnection: close\r\n\r\n`, 'latin1'),
          ]);
          const adminBefore = admin().hits;
          const echoBefore = echo().hits;
          const res = await exchange(request);
          const label = `raw bytes ${bytes.map((b) => b.toString(16)).join(' ')}`;
          assert.ok(res.status >= 200 && res.status < 500, `${label}: ${res.status} (${res.how})`);
          assert.equal(admin().hits, adminBefore);
          if (echo().hits > echoBefore) {
            const seen = lastRequest(echo());
            assert.ok(seen.rawPath.startsWith('/public/raw'), `${label} forwarded as ${seen.rawPath}`);
            assert.ok(/^[\x21-\x7e]*$/.test(seen.rawPath), `${label}: the upstream path carries raw bytes: ${JSON.stringify(seen.rawPath)}`);
          }
        }
        await assertHealthy('non-UTF-8');
      });
    });

    describe('open proxy', () => {
      test('absolute-form request targets never send the request anywhere but the configured origin', async () => {
        const targets = [
          `http://127.0.0.1:${canary().port}/attacks/public/x`,
          `http://127.0.0.1:${canary().port}/`,
          `http://evil.example/attacks/public/x`,
          `https://evil.example/attacks/public/x`,
          `http://127.0.0.1:${canary().port}@evil.example/attacks/public/x`,
        ];
        for (const target of targets) {
          for (const host of [`127.0.0.1:${canary().port}`, `127.0.0.1:${e2e.port}`, 'evil.example']) {
            const before = echo().hits;
            const res = await exchange(requestHead([`GET ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: close']));
            const label = `GET ${target} (Host: ${host})`;
            assert.ok(res.status > 0, `${label}: no answer (${res.how})`);
            assert.ok(res.status < 500 || fromRuntime(res), `${label}: the gateway answered ${res.status}`);
            if (echo().hits > before) {
              const seen = lastRequest(echo());
              assert.equal(seen.headers.host, `127.0.0.1:${echo().port}`, label);
              assert.equal(seen.rawPath, '/public/x', label);
            }
            if (res.status === 200) assert.equal(res.json().origin, 'attacks-echo', label);
          }
        }
        assert.equal(canary().hits, 0, 'the canary got a request');
        await assertHealthy('absolute-form');
      });

      test('CONNECT and an asterisk-form OPTIONS are not proxied', async () => {
        for (const line of [`CONNECT 127.0.0.1:${canary().port} HTTP/1.1`, `CONNECT evil.example:443 HTTP/1.1`, 'OPTIONS * HTTP/1.1']) {
          const res = await exchange(requestHead([line, `Host: 127.0.0.1:${canary().port}`, 'Connection: close']), { timeoutMs: 5000 });
          assert.ok(res.status < 500 || fromRuntime(res), `${line}: the gateway answered ${res.status}`);
          assert.notEqual(res.status, 200, `${line} was answered 200`);
        }
        assert.equal(canary().hits, 0);
        await assertHealthy('CONNECT');
      });

      test('Host, X-Forwarded-Host and friends never change where the request goes', async () => {
        const cases = [
          { host: `127.0.0.1:${canary().port}` },
          { host: 'evil.example' },
          { host: 'evil.example', 'x-forwarded-host': `127.0.0.1:${canary().port}` },
          { 'x-forwarded-host': `127.0.0.1:${canary().port}`, 'x-forwarded-proto': 'https', 'x-forwarded-port': String(canary().port) },
          { 'x-original-url': `http://127.0.0.1:${canary().port}/`, 'x-rewrite-url': '/attacks/admin/x', 'x-host': 'evil.example' },
          { forwarded: `for=6.6.6.6;host=127.0.0.1:${canary().port};proto=https` },
        ];
        for (const headers of cases) {
          const res = await e2e.raw({ path: '/attacks/public/where', headers });
          const label = JSON.stringify(headers);
          assert.equal(res.status, 200, label);
          const seen = res.json();
          assert.equal(seen.origin, 'attacks-echo', label);
          assert.equal(seen.rawPath, '/public/where', label);
          assert.equal(seen.headers.host, `127.0.0.1:${echo().port}`, label);
          // X-Forwarded-Host is the Host the client addressed, never a client-sent X-Forwarded-Host.
          assert.equal(seen.headers['x-forwarded-host'], headers.host ?? `127.0.0.1:${e2e.port}`, label);
        }
        assert.equal(canary().hits, 0);
        assert.equal(admin().hits, 0);
      });

      test('a Host header cannot move a response to another URL\'s cache entry', async () => {
        const tag = crypto.randomBytes(4).toString('hex');
        const victim = `/attacks/cached/victim-${tag}`;
        for (const host of [`127.0.0.1:${e2e.port}${victim}#`, `127.0.0.1:${e2e.port}${victim}?`, `127.0.0.1:${e2e.port}/attacks/cached/victim-${tag}/..#`]) {
          await exchange(requestHead([`GET /attacks/cached/attacker-${tag} HTTP/1.1`, `Host: ${host}`, 'Connection: close']));
        }
        const res = await e2e.fetch(victim);
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.rawPath, `/cached/victim-${tag}`, `the victim got the response for ${body.rawPath} (x-cache ${res.headers.get('x-cache')})`);
      });
    });

    describe('header injection', () => {
      test('CR, LF and NUL in x-request-id never reach a header: folded, encoded, NUL', async () => {
        const variants = [
          // obs-fold: a continuation line.
          ['x-request-id: abc', ' x-injected: 1'],
          ['x-request-id: abc', '\tx-injected: 1'],
          ['x-request-id: abc%0d%0ax-injected: 1'],
          ['x-request-id: abc\u0000x-injected'],
          ['x-request-id: abc\u000bx-injected: 1'],
        ];
        for (const lines of variants) {
          const before = echo().hits;
          const res = await exchange(requestHead(['GET /attacks/public/rid HTTP/1.1', `Host: 127.0.0.1:${e2e.port}`, ...lines, 'Connection: close']));
          const label = JSON.stringify(lines);
          assert.ok(res.status > 0, `${label}: no answer (${res.how})`);
          assert.ok(res.status < 500 || fromRuntime(res), `${label}: ${res.status}`);
          assert.equal(res.headers['x-injected'], undefined, `${label}: injected into the response`);
          for (const v of headerValues(res, 'x-request-id')) assert.ok(isRequestId(v), `${label}: x-request-id ${JSON.stringify(v)}`);
          if (echo().hits > before) {
            const seen = lastRequest(echo());
            assert.deepEqual(injected(seen), [], `${label}: injected at the origin`);
            assert.ok(isRequestId(seen.headers['x-request-id']), `${label}: ${JSON.stringify(seen.headers['x-request-id'])}`);
            assert.equal(seen.headers['x-request-id'], headerValues(res, 'x-request-id')[0], label);
          }
        }
        await assertHealthy('x-request-id injection');
      });

      test('a bare CR or LF ends a header line (the runtime\'s parsing): the request id stays clean', async () => {
        // workerd takes a lone CR or LF as the end of a header line, so "x-injected" is
        // then simply another header the client sent; nothing the gateway copies carries it.
        for (const eol of ['\r', '\n']) {
          const res = await exchange(Buffer.from(`GET /attacks/public/rid HTTP/1.1\r\nHost: 127.0.0.1:${e2e.port}\r\nx-request-id: abc${eol}x-injected: 1\r\nConnection: close\r\n\r\n`, 'latin1'));
          const label = JSON.stringify(eol);
          assert.ok(res.status > 0 && (res.status < 500 || fromRuntime(res)), `${label}: ${res.status}`);
          assert.equal(res.headers['x-injected'], undefined, `${label}: in the response`);
          for (const v of headerValues(res, 'x-request-id')) assert.ok(isRequestId(v), `${label}: x-request-id ${JSON.stringify(v)}`);
          if (res.status === 200) {
            const seen = res.json();
            for (const [name, value] of Object.entries(seen.headers)) assert.ok(!/[\r\n\0]/.test(String(value)), `${label}: ${name}`);
            assert.equal(seen.headers['x-request-id'], headerValues(res, 'x-request-id')[0]);
          }
        }
      });

      test('claims carrying CR, LF or NUL are not forwarded as headers; the token is otherwise valid', async () => {
        for (const value of ['alice\r\nx-injected: 1', 'alice\nx-injected: 1', 'alice\rx-injected: 1', 'alice\u0000x', 'alice\u2028x-injected: 1', 'alice\u0085x']) {
          const token = hsToken({ sub: value, role: value, tenant: { nested: value } });
          const res = await e2e.raw({ path: '/attacks/hs/claims', headers: { authorization: bearer(token) } });
          const label = JSON.stringify(value);
          assert.equal(res.status, 200, `${label}: ${res.text().slice(0, 200)}`);
          assert.equal(res.headers['x-injected'], undefined, label);
          const seen = res.json();
          assert.deepEqual(injected(seen).filter(([k]) => k !== 'x-attacks-tenant'), [], `${label}: ${JSON.stringify(seen.headers)}`);
          for (const name of ['x-attacks-user', 'x-attacks-role']) {
            const got = seen.headers[name];
            assert.ok(got === undefined || !/[\r\n\0]/.test(got), `${label}: ${name} = ${JSON.stringify(got)}`);
            if (got !== undefined) assert.ok(!/x-injected: 1$/.test(got) || !/[\r\n]/.test(value), `${label}: ${name}`);
          }
          // An object claim is compact JSON: its control characters stay escaped.
          const tenant = seen.headers['x-attacks-tenant'];
          assert.ok(tenant === undefined || !/[\r\n\0]/.test(tenant), `${label}: tenant ${JSON.stringify(tenant)}`);
        }
        await assertHealthy('claim injection');
      });

      test('CR/LF in the query, the path and the Host are never turned into headers', async () => {
        const targets = [
          '/attacks/public/q?a=%0d%0ax-injected:%201&b=%0a%0dx-injected:1',
          '/attacks/public/%0d%0ax-injected:%201',
          '/nowhere/%0d%0ax-injected:%201',
          '/attacks/get-only/%0d%0ax-injected:%201',
        ];
        for (const target of targets) {
          const res = await exchange(requestHead([`${target.startsWith('/attacks/get-only') ? 'DELETE' : 'GET'} ${target} HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close']));
          assert.ok(res.status > 0 && res.status < 500, `${target}: ${res.status}`);
          assert.equal(res.headers['x-injected'], undefined, target);
        }
        assert.deepEqual(injected(lastRequest(echo())), []);
        // A raw CR or LF inside the request line is a malformed request.
        for (const line of ['GET /attacks/public/a\rx-injected: 1 HTTP/1.1', 'GET /attacks/public/a?b=\nx-injected: 1 HTTP/1.1']) {
          const before = echo().hits;
          const res = await exchange(requestHead([line, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close']), { timeoutMs: 5000 });
          assert.ok(res.status === 0 || (res.status >= 400 && res.status < 500), `${JSON.stringify(line)}: ${res.status}`);
          assert.equal(res.headers['x-injected'], undefined);
          if (echo().hits > before) assert.deepEqual(injected(lastRequest(echo())), [], JSON.stringify(line));
        }
        await assertHealthy('query injection');
      });
    });

    describe('oversized inputs', () => {
      test('a 1 MB header value: a 4xx (or a closed connection), never forwarded; the gateway stays healthy', async () => {
        const before = echo().hits;
        for (const [name, size] of [['x-big', MB], ['authorization', MB], ['cookie', 256 * 1024]]) {
          const value = name === 'authorization' ? `Bearer ${'a'.repeat(size)}` : 'v'.repeat(size);
          const res = await exchange(
            Buffer.concat([requestHead(['GET /attacks/hs/big HTTP/1.1', `Host: 127.0.0.1:${e2e.port}`, `${name}: ${value}`, 'Connection: close'])]),
          );
          assert.ok(res.status === 0 || (res.status >= 400 && res.status < 500), `${name} ${size}: ${res.status} (${res.how})`);
        }
        // Many headers rather than one big one.
        const many = Array.from({ length: 2000 }, (_, i) => `x-many-${i}: ${'m'.repeat(100)}`);
        const res = await exchange(requestHead(['GET /attacks/public/many HTTP/1.1', `Host: 127.0.0.1:${e2e.port}`, ...many, 'Connection: close']));
        assert.ok(res.status === 0 || res.status === 200 || (res.status >= 400 && res.status < 500), `2000 headers: ${res.status} (${res.how})`);
        assert.ok(echo().hits - before <= 1, 'an oversized header was forwarded');
        await assertHealthy('1 MB header');
      });

      test('10,000 query parameters: a clear answer, no 500, on plain and cached routes', async () => {
        const get = (target) => exchange(requestHead([`GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close']));
        // About 88 KB: more than the runtime takes in a request line (it answers 431 itself).
        const long = Array.from({ length: 10_000 }, (_, i) => `p${i}=${i}`).join('&');
        for (const route of ['/attacks/public/q', '/attacks/cached/q']) {
          const res = await get(`${route}?${long}`);
          assert.ok(res.status > 0, `${route}: no answer (${res.how})`);
          if (res.status === 200) assert.equal(res.json().query, long, `${route}: the query was altered`);
          else assert.ok(res.status >= 400 && res.status < 500 && (fromRuntime(res) || res.headers['content-type']?.[0] === 'application/problem+json'), `${route}: ${res.status}`);
        }
        // About 40 KB, which the runtime takes: passed on exactly as sent.
        const tag = crypto.randomBytes(4).toString('hex');
        const short = `tag=${tag}&` + Array.from({ length: 10_000 }, (_, i) => `${String.fromCharCode(97 + (i % 26))}=${i % 10}`).join('&');
        const plain = await get(`/attacks/public/q?${short}`);
        assert.equal(plain.status, 200, `${plain.status} ${plain.text().slice(0, 200)}`);
        assert.equal(plain.json().query, short, 'the query was altered');
        // A cached route sorts the parameters into its key: the first request fills the
        // entry, the second is served from it, both answers carry the query as sent.
        const before = echo().hits;
        const miss = await get(`/attacks/cached/q?${short}`);
        assert.equal(miss.status, 200);
        assert.equal(miss.headers['x-cache']?.[0], 'MISS');
        assert.equal(miss.json().query, short);
        let hit;
        for (let i = 0; i < 20; i++) {
          hit = await get(`/attacks/cached/q?${short}`);
          if (hit.headers['x-cache']?.[0] === 'HIT') break;
          await new Promise((r) => setTimeout(r, 100)); // the cache is filled in the background
        }
        assert.equal(hit.status, 200);
        assert.equal(hit.headers['x-cache']?.[0], 'HIT');
        assert.equal(hit.json().query, short);
        assert.ok(echo().hits - before < 20);
        await assertHealthy('10,000 query parameters');
      });

      test('a 5 MB body on a GET or HEAD: 400 problem+json, nothing forwarded', { timeout: 60_000 }, async () => {
        const body = Buffer.alloc(5 * MB, 0x42);
        const before = echo().hits;
        for (const method of ['GET', 'HEAD']) {
          for (const framing of ['content-length', 'chunked']) {
            const headLines = [`${method} /attacks/public/body HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, 'Connection: close'];
            const request =
              framing === 'content-length'
                ? Buffer.concat([requestHead([...headLines, `Content-Length: ${body.length}`]), body])
                : Buffer.concat([requestHead([...headLines, 'Transfer-Encoding: chunked']), Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
            const res = await exchange(request, { timeoutMs: 20_000, head: method === 'HEAD' });
            const label = `${method} with a 5 MB ${framing} body`;
            assert.equal(res.status, 400, `${label}: ${res.status} (${res.how}) ${res.text().slice(0, 200)}`);
            if (method === 'GET') {
              assert.equal(res.headers['content-type']?.[0], 'application/problem+json', label);
              assert.match(res.json().detail, /GET and HEAD/, label);
            }
          }
        }
        assert.equal(echo().hits, before, 'a GET with a body was forwarded');
        await assertHealthy('GET with a body');
      });

      test('a 5 MB body on a GET-only route with POST/PUT: 405 problem+json with Allow, nothing forwarded', { timeout: 60_000 }, async () => {
        const body = Buffer.alloc(5 * MB, 0x43);
        const before = echo().hits;
        for (const method of ['POST', 'PUT']) {
          const res = await exchange(
            Buffer.concat([requestHead([`${method} /attacks/get-only/x HTTP/1.1`, `Host: 127.0.0.1:${e2e.port}`, `Content-Length: ${body.length}`, 'Connection: close']), body]),
            { timeoutMs: 20_000 },
          );
          assert.equal(res.status, 405, `${method}: ${res.status} (${res.how})`);
          assert.equal(res.headers['content-type']?.[0], 'application/problem+json');
          assert.deepEqual(new Set(res.headers.allow[0].split(',').map((m) => m.trim())), new Set(['GET', 'HEAD']));
        }
        // Through fetch as well (the client keeps streaming while the answer comes).
        const res = await e2e.fetch('/attacks/get-only/x', { method: 'POST', body, signal: AbortSignal.timeout(20_000) });
        await assertProblem(res, 405);
        assert.equal(echo().hits, before);
        await assertHealthy('POST on a GET route');
      });
    });

    test('no request ever reached the canary (a listener no route names)', () => {
      assert.equal(canary().hits, 0, `canary got: ${canary().paths.join(', ')}`);
    });
  },
};
