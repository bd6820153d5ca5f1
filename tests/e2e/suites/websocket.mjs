// WebSocket routes end to end: a real WebSocket origin (the `ws` package) on
// 127.0.0.1 behind a `"websocket": true` route. The upgrade passes auth and
// the CORS origin check; text and binary messages go both ways unaltered;
// close codes and reasons pass in both directions; an upgrade to a route
// without `websocket` is not upgraded.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { describe, test } from 'node:test';

import { WebSocket, WebSocketServer } from 'ws';

import { listenLocal } from '../harness.mjs';

const JWT_SECRET = 'ws-hmac-secret-' + crypto.randomBytes(24).toString('hex');
const ISSUER = 'https://ws.e2e.test/';
const APP = 'https://app.ws.e2e.test';
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ iss: ISSUER, sub, exp: now + 600 })}`;
  return `${signing}.${crypto.createHmac('sha256', JWT_SECRET).update(signing).digest('base64url')}`;
}

/**
 * A WebSocket echo origin: every message comes back as it was (text as text,
 * binary as binary); the text `close CODE REASON` makes the server close with
 * that code and reason. It records what it saw: upgrade headers and the close
 * code and reason of connections the client closed.
 */
function startWsOrigin() {
  const state = { upgrades: [], closes: [] };
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('not a websocket');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => {
    state.upgrades.push({ path: req.url, headers: req.headers });
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      const m = text?.match(/^close (\d{4}) (.*)$/);
      if (m) socket.close(Number(m[1]), m[2]);
      else socket.send(data, { binary: isBinary });
    });
    socket.on('close', (code, reason) => state.closes.push({ path: req.url, code, reason: reason.toString() }));
  });
  return listenLocal(server, state, {
    close: () =>
      new Promise((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  });
}

/** Opens a WebSocket through the gateway; resolves the open socket or rejects with the HTTP status. */
function open(e2e, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${e2e.port}${path}`, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const status = res.statusCode;
      res.resume();
      reject(Object.assign(new Error(`upgrade refused: ${status}`), { status, headers: res.headers }));
    });
    ws.once('error', (e) => reject(e));
  });
}

const next = (ws) =>
  new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
    ws.once('close', (code) => reject(new Error(`closed (${code}) before a message`)));
  });
const closed = (ws) => new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

export default {
  name: 'websocket',
  servers: [{ name: 'ws-origin', start: startWsOrigin }],
  secrets: { WS_JWT_SECRET: JWT_SECRET },
  config: ({ servers }) => ({
    origins: { 'ws-origin': { regions: [{ name: 'local', url: servers['ws-origin'].url }] } },
    jwt: { 'ws-jwt': { issuer: ISSUER, secret_var: 'WS_JWT_SECRET' } },
    routes: [
      { id: 'ws-chat', path: '/ws-e2e/{room}', origin: 'ws-origin', websocket: true, auth: { jwt: 'ws-jwt' }, cors: { origins: [APP] } },
      { id: 'ws-plain', path: '/ws-plain', origin: 'ws-origin' },
    ],
  }),

  tests(e2e) {
    const origin = () => e2e.servers['ws-origin'];
    const auth = () => ({ authorization: `Bearer ${token('alice')}` });

    describe('WebSocket routes', () => {
      test('messages go both ways unaltered, text and binary', async () => {
        const ws = await open(e2e, '/ws-e2e/lobby', auth());
        try {
          const up = origin().upgrades.at(-1);
          assert.equal(up.path, '/ws-e2e/lobby');
          assert.equal(up.headers.upgrade.toLowerCase(), 'websocket');
          assert.ok(up.headers['x-request-id'], 'the upgrade carries the gateway headers');
          const text = 'héllo, wörld ✓ ' + 'x'.repeat(5000);
          ws.send(text);
          const t = await next(ws);
          assert.equal(t.isBinary, false);
          assert.equal(t.data.toString(), text);
          const bytes = crypto.randomBytes(70_000);
          ws.send(bytes);
          const b = await next(ws);
          assert.equal(b.isBinary, true);
          assert.ok(Buffer.compare(b.data, bytes) === 0, 'binary message altered');
        } finally {
          ws.terminate();
        }
      });

      test('a close by the origin reaches the client with its code and reason', async () => {
        const ws = await open(e2e, '/ws-e2e/a', auth());
        const done = closed(ws);
        ws.send('close 4001 the origin says bye');
        assert.deepEqual(await done, { code: 4001, reason: 'the origin says bye' });
      });

      test('a close by the client reaches the origin with its code and reason', async () => {
        // The origin records each connection's close by its path: the close of
        // the previous test's connection may be recorded while this one runs.
        const ws = await open(e2e, '/ws-e2e/b', auth());
        const done = closed(ws);
        ws.close(4002, 'the client is done');
        await done;
        const mine = () => origin().closes.find((c) => c.path === '/ws-e2e/b');
        for (let i = 0; i < 100 && !mine(); i++) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(mine(), { path: '/ws-e2e/b', code: 4002, reason: 'the client is done' });
      });

      test('the upgrade needs the token and an allowed page origin', async () => {
        const count = origin().upgrades.length;
        await assert.rejects(open(e2e, '/ws-e2e/c'), (e) => e.status === 401);
        await assert.rejects(open(e2e, '/ws-e2e/c', { ...auth(), origin: 'https://evil.example' }), (e) => e.status === 403);
        const ok = await open(e2e, '/ws-e2e/c', { ...auth(), origin: APP });
        ok.terminate();
        assert.equal(origin().upgrades.length, count + 1, 'a refused upgrade reached the origin');
      });

      test('a plain GET is 426; an upgrade to a route without websocket is not upgraded', async () => {
        const plain = await e2e.fetch('/ws-e2e/d', { headers: auth() });
        assert.equal(plain.status, 426);
        assert.equal((await plain.json()).type, 'urn:edge-gateway:problem:upgrade-required');
        // The gateway sets `Upgrade: websocket` on its 426 (RFC 9110 15.5.22), but the
        // runtime removes hop-by-hop headers from a Worker's answers, so it does not arrive.
        const count = origin().upgrades.length;
        await assert.rejects(open(e2e, '/ws-plain'), (e) => e.status === 200);
        assert.equal(origin().upgrades.length, count, 'the origin was asked to upgrade');
      });
    });
  },
};
