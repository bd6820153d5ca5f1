// Faults outside the gateway: origins that break mid-answer, answer garbage or
// nothing at all, JWKS servers that are down, slow or serve garbage, a KV
// namespace that is not there. The client always gets a clear answer (502, 503,
// 504 problem+json) or, once an origin's body has started, a stream that ends;
// never a hang. After every fault the gateway still serves normal requests.
//
// The misbehaving origins are raw node:net servers (no HTTP library on the
// origin side, so they can send exactly the bytes a broken server sends).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';

import { Wrangler, freePort, listenLocal } from '../harness.mjs';
import { assertProblem, isRequestId } from '../assert.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- tokens ------------------------------------------------------------------

const ISSUER = 'https://faults.e2e.test/';
const HS_SECRET = 'faults-hs256-secret-0123456789-abcdefghijklmnop';
const b64u = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function sign(header, claims, signer) {
  const input = `${b64u(header)}.${b64u(claims)}`;
  return `${input}.${signer(input).toString('base64url')}`;
}
const hs256 = (secret) => (input) => crypto.createHmac('sha256', secret).update(input).digest();
const rs256 = (key) => (input) => crypto.sign('sha256', Buffer.from(input), key);
const claims = (extra = {}) => ({ iss: ISSUER, sub: 'faults-user', exp: Math.floor(Date.now() / 1000) + 600, ...extra });

// One RSA key pair for the JWKS servers and the inline-key provider.
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaJwk = (kid) => ({ ...rsa.publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' });
const rsToken = (kid, extra) => sign({ alg: 'RS256', typ: 'JWT', kid }, claims(extra), rs256(rsa.privateKey));
const hsToken = (extra) => sign({ alg: 'HS256', typ: 'JWT' }, claims(extra), hs256(HS_SECRET));
const bearer = (token) => ({ authorization: `Bearer ${token}` });

// --- a raw origin --------------------------------------------------------------

/** Writes an HTTP/1.1 response head. */
function head(socket, status, headers) {
  const lines = [`HTTP/1.1 ${status}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(lines.join('\r\n') + '\r\n\r\n');
}

const RESET_BODY_TOTAL = 1_000_000;
const RESET_BODY_SENT = 64 * 1024;
const STALL_MS = 2500;

// What the raw origin does, by the last segment of the request path.
const BEHAVIOURS = {
  // Headers and 64 KB of a 1 MB content-length body, then a TCP reset.
  'reset-mid-body': (socket) => {
    head(socket, '200 OK', { 'content-type': 'application/octet-stream', 'content-length': RESET_BODY_TOTAL });
    socket.write(Buffer.alloc(RESET_BODY_SENT, 0x61));
    setTimeout(() => socket.resetAndDestroy(), 150);
  },
  // The same with a chunked body: a reset between chunks.
  'reset-mid-chunked': (socket) => {
    head(socket, '200 OK', { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    for (let i = 0; i < 4; i++) socket.write(`4000\r\n${'b'.repeat(0x4000)}\r\n`);
    setTimeout(() => socket.resetAndDestroy(), 150);
  },
  // A clean close (FIN) in the middle of a content-length body.
  'close-mid-body': (socket) => {
    head(socket, '200 OK', { 'content-type': 'application/octet-stream', 'content-length': RESET_BODY_TOTAL });
    socket.write(Buffer.alloc(RESET_BODY_SENT, 0x63));
    setTimeout(() => socket.end(), 150);
  },
  // Headers and a little body, then nothing for STALL_MS, then the origin gives up (reset).
  'stall-body': (socket) => {
    head(socket, '200 OK', { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    socket.write(`10\r\n${'s'.repeat(16)}\r\n`);
    const timer = setTimeout(() => socket.resetAndDestroy(), STALL_MS);
    socket.once('close', () => clearTimeout(timer));
  },
  // Headers and a little body, then nothing, for as long as the connection lasts.
  'stall-forever': (socket) => {
    head(socket, '200 OK', { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    socket.write(`10\r\n${'f'.repeat(16)}\r\n`);
    const timer = setTimeout(() => socket.destroy(), 60_000);
    socket.once('close', () => clearTimeout(timer));
  },
  // Not HTTP at all.
  'garbage': (socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage \r\n\r\n'),
  // A status line whose code is not a number (the runtime's parser reads "2x0" as 2).
  'bad-status': (socket) => socket.end('HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\nok'),
  // A status code outside 100-599.
  'status-999': (socket) => socket.end('HTTP/1.1 999 Whatever\r\ncontent-length: 2\r\n\r\nok'),
  // A header line without a colon.
  'bad-header': (socket) => socket.end('HTTP/1.1 200 OK\r\nthis is not a header\r\ncontent-length: 2\r\n\r\nok'),
  // An HTTP/0.9 style answer: a body and no head.
  'no-head': (socket) => socket.end('{"hello":"world"}'),
  // A content-length that is not a number.
  'bad-length': (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\nok'),
  // Reads the request, then closes without a byte.
  'close-before': (socket) => socket.end(),
  // Reads the request, then resets.
  'reset-before': (socket) => socket.resetAndDestroy(),
  // Reads the request and never answers (until the peer goes away).
  'silent': (socket) => {
    const timer = setTimeout(() => socket.destroy(), 60_000);
    socket.once('close', () => clearTimeout(timer));
  },
  // A well-formed answer.
  'ok': (socket) => {
    head(socket, '200 OK', { 'content-type': 'text/plain', 'content-length': 2, connection: 'close' });
    socket.end('ok');
  },
};

/** A node:net origin that reads one request head per connection and misbehaves as its path says. */
function rawOrigin(name) {
  return {
    name,
    start: () => {
      const state = { name, hits: 0, paths: [], requests: [] };
      state.count = (suffix = '') => state.requests.filter((r) => r.path.endsWith(suffix)).length;
      state.last = (suffix) => state.requests.filter((r) => r.path.endsWith(suffix)).at(-1);
      state.reset = () => {
        state.hits = 0;
        state.paths.length = 0;
        state.requests.length = 0;
      };
      const sockets = new Set();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.once('close', () => sockets.delete(socket));
        let buffered = Buffer.alloc(0);
        const onData = (chunk) => {
          buffered = Buffer.concat([buffered, chunk]);
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buffered.length > 64 * 1024) socket.destroy();
            return;
          }
          socket.off('data', onData);
          socket.resume(); // discard any body
          const [method, target = '/'] = buffered.subarray(0, end).toString('latin1').split('\r\n')[0].split(' ');
          const pathname = target.split('?')[0];
          const seen = { method, path: pathname, at: Date.now(), closedAt: null };
          socket.once('close', () => {
            seen.closedAt = Date.now();
          });
          state.hits += 1;
          state.paths.push(`${method} ${pathname}`);
          state.requests.push(seen);
          const behaviour = BEHAVIOURS[pathname.split('/').filter(Boolean).at(-1)] ?? BEHAVIOURS.ok;
          behaviour(socket);
        };
        socket.on('data', onData);
      });
      return listenLocal(server, state, {
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    },
  };
}

// --- a JWKS server with bad days ---------------------------------------------

const JWKS_SLOW_MS = 6500; // past the gateway's 5 s JWKS timeout

/** Serves /good, /garbage, /html, /empty, /not-a-set, /no-usable-key, /status-500, /slow, /flaky (up or down). */
function jwksServer(name) {
  return {
    name,
    start: () => {
      const state = { name, hits: 0, paths: [], requests: [], flakyUp: true };
      state.count = (suffix = '') => state.paths.filter((p) => p.endsWith(suffix)).length;
      state.reset = () => {
        state.hits = 0;
        state.paths.length = 0;
        state.requests.length = 0;
      };
      const good = () => JSON.stringify({ keys: [rsaJwk('faults-k1')] });
      const server = http.createServer((req, res) => {
        state.hits += 1;
        const p = new URL(req.url, 'http://jwks').pathname;
        state.paths.push(`${req.method} ${p}`);
        state.requests.push({ path: p, at: Date.now() });
        const send = (status, type, body) => {
          res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
          res.end(body);
        };
        const json = 'application/json';
        switch (p.split('/').at(-1)) {
          case 'garbage':
            return send(200, json, '\x00\xff{{{ not json');
          case 'html':
            return send(200, 'text/html', '<html><body>502 Bad Gateway</body></html>');
          case 'empty':
            return send(200, json, '');
          case 'not-a-set':
            return send(200, json, '{"issuer":"https://faults.e2e.test/"}');
          case 'no-usable-key':
            return send(200, json, JSON.stringify({ keys: [{ kty: 'RSA', kid: 'x', n: 'AQAB', e: 'AQAB' }, { kty: 'oct', k: 'c2VjcmV0' }] }));
          case 'status-500':
            return send(500, json, good());
          case 'slow': {
            const timer = setTimeout(() => send(200, json, good()), JWKS_SLOW_MS);
            req.on('close', () => clearTimeout(timer));
            return undefined;
          }
          case 'flaky':
            if (!state.flakyUp) return req.socket.destroy();
            return send(200, json, good());
          default:
            return send(200, json, good());
        }
      });
      return listenLocal(server, state);
    },
  };
}

const JWKS_CASES = ['garbage', 'html', 'empty', 'not-a-set', 'no-usable-key', 'status-500'];
const ORIGIN_TIMEOUT_MS = 1500;

export default {
  name: 'faults',
  servers: ['faults-echo', rawOrigin('faults-raw'), jwksServer('faults-jwks')],
  secrets: { FAULTS_HS_SECRET: HS_SECRET },
  config: ({ servers, deadUrl }) => {
    const jwks = servers['faults-jwks'].url;
    const provider = (extra) => ({ issuer: ISSUER, forward_claims: { sub: 'x-faults-user' }, ...extra });
    const jwt = {
      'faults-hs': provider({ secret_var: 'FAULTS_HS_SECRET', algorithms: ['HS256'] }),
      'faults-inline': provider({ keys: { keys: [rsaJwk('faults-inline-1')] }, algorithms: ['RS256'] }),
      // Inline keys and a JWKS URL nobody answers: tokens for the inline key never need it.
      'faults-inline-dead': provider({ keys: { keys: [rsaJwk('faults-inline-2')] }, jwks_url: `${deadUrl}/jwks.json`, algorithms: ['RS256'] }),
      'faults-jwks-down': provider({ jwks_url: `${deadUrl}/.well-known/jwks.json`, algorithms: ['RS256'] }),
      'faults-jwks-slow': provider({ jwks_url: `${jwks}/slow`, algorithms: ['RS256'] }),
      'faults-jwks-flaky': provider({ jwks_url: `${jwks}/flaky`, algorithms: ['RS256'] }),
    };
    for (const name of JWKS_CASES) jwt[`faults-jwks-${name}`] = provider({ jwks_url: `${jwks}/${name}`, algorithms: ['RS256'] });
    const authRoutes = Object.keys(jwt).map((name) => ({
      id: `${name}-route`,
      path: `/faults/auth/${name.slice('faults-'.length)}/{*rest}`,
      methods: ['GET'],
      origin: 'faults-echo',
      rewrite: '/{rest}',
      auth: { jwt: name },
    }));
    return {
      origins: {
        'faults-echo': { regions: [{ name: 'local', url: servers['faults-echo'].url, serves: ['*'] }] },
        'faults-raw': { regions: [{ name: 'raw', url: servers['faults-raw'].url, serves: ['*'] }], timeout_ms: ORIGIN_TIMEOUT_MS },
      },
      jwt,
      routes: [
        { id: 'faults-echo', path: '/faults/echo/{*rest}', origin: 'faults-echo', rewrite: '/{rest}' },
        { id: 'faults-raw', path: '/faults/raw/{*rest}', origin: 'faults-raw', rewrite: '/{rest}' },
        {
          id: 'faults-limited',
          path: '/faults/limited/{*rest}',
          methods: ['GET'],
          origin: 'faults-echo',
          rewrite: '/{rest}',
          rate_limit: { requests: 3, window_s: 3600, key: 'header:x-faults-client' },
        },
        ...authRoutes,
      ],
    };
  },

  tests(e2e) {
    const raw = () => e2e.servers['faults-raw'];
    const jwks = () => e2e.servers['faults-jwks'];

    /** The gateway still answers: health, and a normal request through an echo route. */
    async function assertHealthy(label = '') {
      const health = await e2e.fetch('/__gateway/health', { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200, `health after ${label}`);
      assert.equal((await health.json()).status, 'ok');
      const res = await e2e.fetch('/faults/echo/still/alive?x=1', { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200, `echo after ${label}`);
      const body = await res.json();
      assert.equal(body.origin, 'faults-echo');
      assert.equal(body.path, '/still/alive');
      // And the raw origin itself, when it behaves.
      const ok = await e2e.fetch('/faults/raw/ok', { signal: AbortSignal.timeout(5000) });
      assert.equal(ok.status, 200, `raw ok after ${label}`);
      assert.equal(await ok.text(), 'ok');
    }

    /**
     * A request bounded by `timeoutMs`: resolves with the response, how long the
     * headers took, then reads the body to its end (or error) and reports that too.
     */
    async function bounded(target, { timeoutMs = 8000, headers = {} } = {}) {
      const signal = AbortSignal.timeout(timeoutMs);
      const started = Date.now();
      const res = await e2e.fetch(target, { signal, headers });
      const headersMs = Date.now() - started;
      return { res, headersMs, started, signal };
    }

    async function drain({ res, started, signal }) {
      let bytes = 0;
      let error = null;
      try {
        for await (const chunk of res.body) bytes += chunk.length;
      } catch (e) {
        error = e;
      }
      return { bytes, error, ms: Date.now() - started, timedOut: signal.aborted };
    }

    // Responses are read with `accept-encoding: identity`: under wrangler dev the
    // runtime gzips text responses for clients that accept it, and its compressor
    // holds back the first bytes of a stream (a runtime matter, not the gateway's).
    const IDENTITY = { 'accept-encoding': 'identity' };

    describe('origins that fail mid-response', () => {
      for (const [name, sent] of [
        ['reset-mid-body', RESET_BODY_SENT],
        ['close-mid-body', RESET_BODY_SENT],
      ]) {
        test(`${name}: the headers, then a content-length body cut short, ending promptly with an error`, { timeout: 30_000 }, async () => {
          const attempts = raw().count(`/${name}`);
          const req = await bounded(`/faults/raw/${name}`, { headers: IDENTITY });
          assert.equal(req.res.status, 200);
          assert.ok(isRequestId(req.res.headers.get('x-request-id')));
          assert.equal(req.res.headers.get('content-length'), String(RESET_BODY_TOTAL));
          assert.ok(req.headersMs < 3000, `headers after ${req.headersMs} ms`);
          const out = await drain(req);
          assert.ok(!out.timedOut, `the body did not end within 8 s (${out.bytes} bytes read)`);
          assert.ok(out.ms < 4000, `the body ended after ${out.ms} ms`);
          assert.ok(out.bytes <= sent, `read ${out.bytes} bytes, the origin sent ${sent}`);
          // Short of its content-length, the body cannot pass for complete.
          assert.ok(out.error, `a ${RESET_BODY_TOTAL}-byte body ended cleanly after ${out.bytes} bytes`);
          assert.equal(raw().count(`/${name}`), attempts + 1, 'one attempt: a started response is never retried');
          await assertHealthy(name);
        });
      }

      test('reset-mid-chunked: the headers, then a chunked body cut short, ending promptly', { timeout: 30_000 }, async () => {
        const attempts = raw().count('/reset-mid-chunked');
        const req = await bounded('/faults/raw/reset-mid-chunked', { headers: IDENTITY });
        assert.equal(req.res.status, 200);
        assert.ok(req.headersMs < 3000, `headers after ${req.headersMs} ms`);
        const out = await drain(req);
        assert.ok(!out.timedOut, `the body did not end within 8 s (${out.bytes} bytes read)`);
        assert.ok(out.ms < 4000, `the body ended after ${out.ms} ms`);
        assert.ok(out.bytes <= 4 * 0x4000, `read ${out.bytes} bytes`);
        assert.equal(raw().count('/reset-mid-chunked'), attempts + 1);
        await assertHealthy('reset-mid-chunked');
      });

      test(
        'a chunked body cut by an origin reset is not passed off as complete',
        {
          timeout: 30_000,
          todo:
            'workerd (wrangler dev) ends the client\'s chunked body with a clean last chunk when the ' +
            'upstream body fails, also for a plain JS Worker that returns fetch() as is: the client ' +
            'cannot tell the truncation (content-length bodies are cut visibly)',
        },
        async () => {
          const req = await bounded('/faults/raw/reset-mid-chunked', { headers: IDENTITY });
          const out = await drain(req);
          assert.ok(out.error, `the truncated chunked body ended cleanly after ${out.bytes} bytes`);
        },
      );

      test('an origin that stalls after the headers: headers and first bytes at once, the stream ends when the origin gives up', { timeout: 30_000 }, async () => {
        const req = await bounded('/faults/raw/stall-body', { timeoutMs: STALL_MS + 5000, headers: IDENTITY });
        assert.equal(req.res.status, 200);
        assert.ok(req.headersMs < 2000, `headers after ${req.headersMs} ms: the gateway must not wait for the body`);
        const reader = req.res.body.getReader();
        const first = await reader.read();
        assert.ok(!first.done && first.value.length > 0, 'the first bytes are streamed before the body ends');
        const firstMs = Date.now() - req.started;
        assert.ok(firstMs < 2000, `first bytes after ${firstMs} ms`);
        try {
          while (!(await reader.read()).done);
        } catch {
          // an error is a fine end too
        }
        const ms = Date.now() - req.started;
        assert.ok(!req.signal.aborted, 'the stream did not end after the origin gave up');
        assert.ok(ms >= STALL_MS - 200 && ms < STALL_MS + 3000, `the stream ended after ${ms} ms (origin gave up at ${STALL_MS})`);
        await assertHealthy('stall-body');
      });

      test(
        'a client that gives up on a stalled stream: the upstream connection is closed too',
        {
          timeout: 30_000,
          todo:
            'workerd (wrangler dev) keeps the upstream connection of an abandoned response open ' +
            '(also for a plain JS Worker returning fetch()); the origin sees it close only when it gives up itself',
        },
        async () => {
          const controller = new AbortController();
          const res = await e2e.fetch('/faults/raw/stall-forever', { signal: controller.signal, headers: IDENTITY });
          assert.equal(res.status, 200);
          const reader = res.body.getReader();
          await Promise.race([reader.read(), sleep(3000)]);
          const seen = raw().last('/stall-forever');
          assert.ok(seen, 'the origin got the request');
          controller.abort();
          const deadline = Date.now() + 5000;
          while (seen.closedAt === null && Date.now() < deadline) await sleep(50);
          assert.ok(seen.closedAt !== null, 'the upstream connection stayed open 5 s after the client left');
        },
      );

      test('a client that gives up on a stalled stream leaves the gateway healthy', { timeout: 30_000 }, async () => {
        for (let i = 0; i < 5; i++) {
          const controller = new AbortController();
          const res = await e2e.fetch('/faults/raw/stall-forever', { signal: AbortSignal.any([controller.signal, AbortSignal.timeout(5000)]), headers: IDENTITY });
          assert.equal(res.status, 200);
          await Promise.race([res.body.getReader().read(), sleep(3000)]);
          controller.abort();
        }
        await assertHealthy('abandoned streams');
      });
    });

    describe('origins that answer garbage or nothing', () => {
      for (const name of ['garbage', 'bad-status', 'status-999', 'bad-header', 'no-head', 'bad-length']) {
        test(`${name}: 502 problem+json, promptly`, { timeout: 30_000 }, async () => {
          const started = Date.now();
          const res = await e2e.fetch(`/faults/raw/${name}`, { signal: AbortSignal.timeout(8000) });
          const ms = Date.now() - started;
          await assertProblem(res, 502, { label: name, forbidden: ['SSH', 'not a header', 'lots', 'hello'] });
          assert.ok(ms < ORIGIN_TIMEOUT_MS + 1000, `answered after ${ms} ms`);
          await assertHealthy(name);
        });
      }

      for (const name of ['close-before', 'reset-before']) {
        test(`${name}: the origin drops the connection without a byte: 502 problem+json, promptly`, { timeout: 30_000 }, async () => {
          const started = Date.now();
          const res = await e2e.fetch(`/faults/raw/${name}`, { signal: AbortSignal.timeout(8000) });
          const ms = Date.now() - started;
          await assertProblem(res, 502, { label: name });
          assert.ok(ms < ORIGIN_TIMEOUT_MS + 1000, `answered after ${ms} ms`);
          assert.ok(raw().count(`/${name}`) >= 1);
          await assertHealthy(name);
        });
      }

      test('an origin that accepts and never answers: 504 problem+json at the timeout, the connection closed', { timeout: 30_000 }, async () => {
        const started = Date.now();
        const res = await e2e.fetch('/faults/raw/silent', { signal: AbortSignal.timeout(8000) });
        const ms = Date.now() - started;
        await assertProblem(res, 504);
        assert.ok(ms >= ORIGIN_TIMEOUT_MS - 100 && ms < ORIGIN_TIMEOUT_MS + 2000, `answered after ${ms} ms (timeout ${ORIGIN_TIMEOUT_MS})`);
        const seen = raw().last('/silent');
        const deadline = Date.now() + 5000;
        while (seen.closedAt === null && Date.now() < deadline) await sleep(50);
        assert.ok(seen.closedAt !== null, 'the timed-out upstream connection was left open');
        await assertHealthy('silent');
      });

      test('HEAD and POST see the same faults the same way (POST is never retried)', { timeout: 30_000 }, async () => {
        const head = await e2e.raw({ method: 'HEAD', path: '/faults/raw/garbage', timeoutMs: 8000 });
        assert.equal(head.status, 502);
        assert.equal(head.body.length, 0);
        const before = raw().count('/close-before');
        const post = await e2e.fetch('/faults/raw/close-before', { method: 'POST', body: 'data', signal: AbortSignal.timeout(8000) });
        await assertProblem(post, 502);
        assert.equal(raw().count('/close-before'), before + 1, 'a POST is sent once');
        await assertHealthy('HEAD/POST');
      });
    });

    describe('JWKS servers that fail, nothing cached', () => {
      const rsaReq = (provider, kid = 'faults-k1') =>
        e2e.fetch(`/faults/auth/${provider}/x`, { headers: bearer(rsToken(kid)), signal: AbortSignal.timeout(12_000) });

      test('a JWKS URL nobody listens on: 503 problem+json with retry-after, not 401', { timeout: 30_000 }, async () => {
        const started = Date.now();
        const res = await rsaReq('jwks-down');
        const body = await assertProblem(res, 503);
        assert.ok(Date.now() - started < 3000, `answered after ${Date.now() - started} ms`);
        assert.ok(res.headers.get('retry-after'), 'retry-after');
        assert.equal(res.headers.get('www-authenticate'), null, 'a 503 is not an auth challenge');
        assert.ok(!JSON.stringify(body).includes('jwks.json'), 'the JWKS URL is not disclosed');
        await assertHealthy('jwks down');
      });

      for (const name of JWKS_CASES) {
        test(`a JWKS server answering ${name}: 503, one fetch for a burst, none again within 10 s`, { timeout: 30_000 }, async () => {
          const before = jwks().count(`/${name}`);
          const answers = await Promise.all(Array.from({ length: 4 }, () => rsaReq(`jwks-${name}`)));
          for (const res of answers) await assertProblem(res, 503, { label: name, forbidden: ['<html>', '"issuer"', 'faults.e2e.test', 'not json', '/' + name] });
          assert.equal(jwks().count(`/${name}`), before + 1, 'a burst causes one JWKS fetch');
          // Straight after a failure, the gateway does not hammer the JWKS server.
          await assertProblem(await rsaReq(`jwks-${name}`), 503, { label: `${name} again` });
          assert.equal(jwks().count(`/${name}`), before + 1, 'no refetch within 10 s of a failure');
          await assertHealthy(`jwks ${name}`);
        });
      }

      test(
        `a JWKS server slower than the gateway's 5 s JWKS timeout: 503 after about 5 s; HS256 and inline-key routes answer meanwhile`,
        { timeout: 30_000 },
        async () => {
          const started = Date.now();
          const slow = rsaReq('jwks-slow');
          await sleep(300);
          // While the JWKS fetch hangs, other providers are not held up.
          const t0 = Date.now();
          const hs = await e2e.fetch('/faults/auth/hs/x', { headers: bearer(hsToken()), signal: AbortSignal.timeout(5000) });
          assert.equal(hs.status, 200);
          const inline = await e2e.fetch('/faults/auth/inline/x', { headers: bearer(rsToken('faults-inline-1')), signal: AbortSignal.timeout(5000) });
          assert.equal(inline.status, 200);
          assert.ok(Date.now() - t0 < 2000, `other providers took ${Date.now() - t0} ms while a JWKS fetch hung`);
          const res = await slow;
          const ms = Date.now() - started;
          await assertProblem(res, 503);
          assert.ok(ms >= 4500 && ms < 8000, `answered after ${ms} ms (JWKS timeout 5 s, server ${JWKS_SLOW_MS} ms)`);
          await assertHealthy('jwks slow');
        },
      );

      test('HS256 and inline-key providers are unaffected by failing JWKS servers', { timeout: 30_000 }, async () => {
        const hs = await e2e.fetch('/faults/auth/hs/a', { headers: bearer(hsToken({ sub: 'hs-user' })) });
        assert.equal(hs.status, 200);
        assert.equal((await hs.json()).headers['x-faults-user'], 'hs-user');
        const inline = await e2e.fetch('/faults/auth/inline/a', { headers: bearer(rsToken('faults-inline-1', { sub: 'rsa-user' })) });
        assert.equal(inline.status, 200);
        assert.equal((await inline.json()).headers['x-faults-user'], 'rsa-user');
        // A provider with inline keys and a dead JWKS URL: the inline key needs no fetch...
        const mixed = await e2e.fetch('/faults/auth/inline-dead/a', { headers: bearer(rsToken('faults-inline-2')) });
        assert.equal(mixed.status, 200);
        // ... a kid it does not know does, and that fetch fails: 503.
        const unknown = await e2e.fetch('/faults/auth/inline-dead/a', { headers: bearer(rsToken('faults-k1')) });
        await assertProblem(unknown, 503);
        // A bad token on a failing provider is still a client error where it can be told without keys.
        const none = await e2e.fetch('/faults/auth/jwks-down/a');
        assert.equal(none.status, 401, 'no token: 401 even when the keys are unavailable');
        await assertHealthy('providers');
      });

      test('a JWKS server that goes down after serving keys: the cached keys stay in use', { timeout: 30_000 }, async () => {
        jwks().flakyUp = true;
        const first = await rsaReq('jwks-flaky');
        assert.equal(first.status, 200);
        // An unknown kid may trigger a refetch at most every 10 s: wait that out.
        await sleep(10_500);
        const fetches = jwks().count('/flaky');
        jwks().flakyUp = false;
        try {
          // A known kid: served from the cache, no fetch.
          const again = await rsaReq('jwks-flaky');
          assert.equal(again.status, 200);
          // An unknown kid triggers a refetch, which fails: the token is refused (401, the
          // keys are there, just not this one) and the cached keys survive.
          const unknown = await rsaReq('jwks-flaky', 'faults-rotated');
          await assertProblem(unknown, 401);
          assert.equal(jwks().count('/flaky'), fetches + 1, 'one refetch for the unknown kid');
          const still = await rsaReq('jwks-flaky');
          assert.equal(still.status, 200, 'the last good keys are still used');
        } finally {
          jwks().flakyUp = true;
        }
        await assertHealthy('jwks flaky');
      });
    });

    describe('KV unavailable', () => {
      // There is no way to make the local KV binding fail from inside wrangler dev.
      // So a second wrangler dev serves the same build with no GATEWAY_KV binding:
      // the edge's KV port then fails every read and write (as a KV outage does),
      // through the real edge code in workerd. tests/pipeline/ covers a failing
      // store (errors, not a missing binding) natively.
      test('a rate-limited route fails open, logs the KV error, and still limits within the isolate', { timeout: 120_000 }, async () => {
        const dir = path.join(e2e.tmp, 'faults-no-kv');
        await fsp.mkdir(dir, { recursive: true });
        const toml = await fsp.readFile(path.join(e2e.tmp, 'wrangler.toml'), 'utf8');
        const noKv = toml.replace(/\[\[kv_namespaces\]\][^[]*?(?=\n\[|\n*$)/s, '');
        assert.ok(!noKv.includes('kv_namespaces') && noKv.includes('main ='), noKv);
        await fsp.writeFile(path.join(dir, 'wrangler.toml'), noKv);
        await fsp.copyFile(path.join(e2e.tmp, '.dev.vars'), path.join(dir, '.dev.vars')).catch(() => {});
        const other = new Wrangler({
          dir,
          configFile: path.join(dir, 'wrangler.toml'),
          port: await freePort(),
          inspectorPort: await freePort(),
          persistTo: path.join(dir, 'state'),
          vars: { DEV_GEO_HEADERS: 'true' },
        });
        await other.start();
        try {
          const send = (id) =>
            fetch(`${other.url}/faults/limited/x`, {
              headers: { 'x-faults-client': 'kv-less', 'x-request-id': id },
              signal: AbortSignal.timeout(5000),
            });
          const tag = crypto.randomBytes(4).toString('hex');
          const statuses = [];
          for (let i = 1; i <= 4; i++) {
            const res = await send(`faults-nokv-${tag}-${i}`);
            statuses.push(res.status);
            if (res.status === 200) assert.equal((await res.json()).origin, 'faults-echo');
            else await assertProblem(res, 429);
          }
          // Fail open: KV is gone, the requests are let through; the isolate's own count
          // still holds the limit of 3.
          assert.deepEqual(statuses, [200, 200, 200, 429]);
          const line = await other.waitForLog(`faults-nokv-${tag}-1`);
          assert.equal(line.rate_limit, 'kv_error');
          assert.equal(line.status, 200);
          assert.ok(
            other.lines.some((l) => l.includes('"event":"kv_error"')),
            'the KV failure is logged as a kv_error event',
          );
          const health = await fetch(`${other.url}/__gateway/health`);
          assert.equal(health.status, 200);
        } finally {
          await other.stop();
        }
        // The main gateway, with its KV, counts the same client separately and normally.
        const res = await e2e.fetch('/faults/limited/x', { headers: { 'x-faults-client': 'kv-less', 'x-request-id': 'faults-kv-ok' } });
        assert.equal(res.status, 200);
        const line = await e2e.waitForLog('faults-kv-ok');
        assert.equal(line.rate_limit, 'allowed');
        await assertHealthy('KV unavailable');
      });
    });
  },
};
