// `validate`: JSON Schema bodies and typed query parameters, in workerd against a
// real origin on 127.0.0.1 that records every byte it receives. Invalid requests
// never reach it; valid bodies reach it byte for byte.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { describe, test } from 'node:test';

import { listenLocal } from '../harness.mjs';
import { assertProblem } from '../assert.mjs';

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// Records, per request, the body's length and hash once it ended; answers with that.
function recordingOrigin(name) {
  return {
    name,
    start: () => {
      const state = { name, hits: 0, requests: [] };
      state.reset = () => {
        state.hits = 0;
        state.requests.length = 0;
      };
      const server = http.createServer((req, res) => {
        state.hits += 1;
        const url = new URL(req.url, 'http://origin');
        const seen = { method: req.method, path: url.pathname, query: url.search.slice(1), headers: req.headers, received: 0, complete: false };
        state.requests.push(seen);
        const parts = [];
        req.on('data', (c) => {
          seen.received += c.length;
          parts.push(c);
        });
        req.on('error', () => {});
        req.on('end', () => {
          seen.complete = true;
          seen.sha256 = sha256(Buffer.concat(parts));
          const body = JSON.stringify(seen);
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
      });
      return listenLocal(server, state);
    },
  };
}

/** A chunked POST (one write a chunk); resolves with the answer even if it came before the body was written whole. */
function sendChunked(port, target, chunks, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: target, headers, agent: false },
      (res) => {
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({ status: res.statusCode, headers: res.headers, text: async () => text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', (e) => {
      if (!req.res) reject(e);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to POST ${target}`)));
    let i = 0;
    const next = () => {
      if (i === chunks.length) return req.end();
      req.write(chunks[i++], (err) => (err ? undefined : setImmediate(next)));
    };
    next();
  });
}

const SMALL = 2000;

export default {
  name: 'validate',
  servers: [recordingOrigin('val-origin')],
  config: ({ servers, root, dir }) => ({
    origins: { 'val-origin': { regions: [{ name: 'local', url: servers['val-origin'].url, serves: ['*'] }] } },
    routes: [
      {
        id: 'val-users',
        path: '/val/users',
        methods: ['GET', 'POST'],
        origin: 'val-origin',
        // A file beside the routes file, as users write it: embedded by the build.
        validate: {
          body: path.relative(dir, path.join(root, 'tests/e2e/schemas/create-user.json')),
          query: { dry_run: { type: 'boolean' } },
        },
      },
      {
        id: 'val-small',
        path: '/val/small',
        methods: ['POST'],
        origin: 'val-origin',
        max_body_bytes: SMALL,
        validate: { body: { type: 'array', items: { type: 'integer' } } },
      },
      {
        id: 'val-search',
        path: '/val/search',
        methods: ['GET'],
        origin: 'val-origin',
        validate: { query: { q: { required: true, pattern: '^[a-z ]+$' }, limit: { type: 'integer' }, min: { type: 'number' } } },
      },
    ],
  }),

  tests(e2e) {
    const origin = () => e2e.servers['val-origin'];
    const post = (target, body, type = 'application/json') =>
      e2e.fetch(target, { method: 'POST', headers: type ? { 'content-type': type } : {}, body });

    describe('bodies', () => {
      test('a valid body reaches the origin byte for byte', async () => {
        // Odd spacing, escapes and non-ASCII: the origin gets what the client sent, not a re-serialization.
        const body = Buffer.from('{ "name" : "Zoë \\u00e9",\n\t"email":"z@example.test", "age": 40 , "roles": ["admin","viewer"] }  ');
        const res = await post('/val/users?dry_run=false', body, 'application/json; charset=utf-8');
        assert.equal(res.status, 200);
        const seen = await res.json();
        assert.equal(seen.received, body.length);
        assert.equal(seen.sha256, sha256(body));
        assert.equal(seen.query, 'dry_run=false');
      });

      test('an invalid body is 400 with JSON pointers and never reaches the origin', async () => {
        const before = origin().hits;
        const res = await post('/val/users', JSON.stringify({ name: '', email: 'nope', age: -1, roles: ['admin', 'root'], admin: true }));
        const problem = await assertProblem(res, 400);
        assert.ok(Array.isArray(problem.errors), JSON.stringify(problem));
        assert.ok(problem.errors.length >= 1 && problem.errors.length <= 20);
        for (const e of problem.errors) {
          assert.equal(typeof e.pointer, 'string');
          assert.ok(e.pointer === '' || e.pointer.startsWith('/'), e.pointer);
          assert.equal(typeof e.detail, 'string');
        }
        const pointers = new Set(problem.errors.map((e) => e.pointer));
        for (const p of ['', '/name', '/email', '/age', '/roles/1']) assert.ok(pointers.has(p), `${p} in ${[...pointers]}`);
        assert.match(JSON.stringify(problem.errors), /admin/);
        assert.equal(origin().hits, before);
      });

      test('at most 20 errors are listed', async () => {
        const before = origin().hits;
        const res = await post('/val/small', JSON.stringify(Array.from({ length: 100 }, (_, i) => `x${i}`)));
        const problem = await assertProblem(res, 400);
        assert.equal(problem.errors.length, 20);
        assert.equal(problem.errors[0].pointer, '/0');
        assert.equal(origin().hits, before);
      });

      test('a body that is not declared JSON is 415, JSON that does not parse is 400', async () => {
        const before = origin().hits;
        for (const type of ['text/plain', 'application/x-www-form-urlencoded', null]) {
          const res = await post('/val/users', '{"name":"a","email":"a@b"}', type);
          await assertProblem(res, 415, { label: String(type) });
        }
        for (const body of ['{"name": "a", ', 'name=a', '']) {
          const res = await post('/val/users', body);
          const problem = await assertProblem(res, 400, { label: body });
          assert.deepEqual(problem.errors.map((e) => e.pointer), ['']);
        }
        assert.equal(origin().hits, before);
      });

      test('a validated body over max_body_bytes is 413, declared or chunked, and never reaches the origin', async () => {
        const before = origin().hits;
        const big = JSON.stringify(Array.from({ length: SMALL }, (_, i) => i));
        assert.ok(big.length > SMALL);
        await assertProblem(await post('/val/small', big), 413);
        // Chunked: read up to the limit, refused past it.
        const chunks = [];
        for (let i = 0; i < big.length; i += 500) chunks.push(Buffer.from(big.slice(i, i + 500)));
        const res = await sendChunked(e2e.port, '/val/small', chunks, { 'content-type': 'application/json' });
        await assertProblem(res, 413);
        assert.equal(origin().hits, before);
        // The refused upload leaves nothing behind: the next request is served.
        const next = await post('/val/small', '[1, 2, 3]');
        const text = await next.text();
        assert.equal(next.status, 200, text);
        assert.equal(JSON.parse(text).received, 9);
      });

      test('a chunked body within the limit is validated and reaches the origin whole', async () => {
        const body = Buffer.from(JSON.stringify(Array.from({ length: 300 }, (_, i) => i)));
        assert.ok(body.length < SMALL);
        const chunks = [body.subarray(0, 100), body.subarray(100, 700), body.subarray(700)];
        const res = await sendChunked(e2e.port, '/val/small', chunks, { 'content-type': 'application/json' });
        assert.equal(res.status, 200, await res.text());
        const seen = res.json();
        assert.equal(seen.received, body.length);
        assert.equal(seen.sha256, sha256(body));
      });

      test('GET requests on a route with a body schema need no body', async () => {
        const res = await e2e.fetch('/val/users?dry_run=true');
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      });
    });

    describe('query', () => {
      test('typed, required and matched parameters: 400 with /query/NAME pointers', async () => {
        const before = origin().hits;
        const cases = [
          ['/val/search', ['/query/q']],
          ['/val/search?q=Hello', ['/query/q']],
          ['/val/search?q=ok&limit=ten&min=1e', ['/query/limit', '/query/min']],
          ['/val/users?dry_run=yes', ['/query/dry_run']],
        ];
        for (const [target, pointers] of cases) {
          const res = await e2e.fetch(target);
          const problem = await assertProblem(res, 400, { label: target });
          assert.deepEqual(problem.errors.map((e) => e.pointer), pointers, target);
        }
        assert.equal(origin().hits, before);
        const res = await e2e.fetch('/val/search?q=hello+world&limit=-5&min=2.5');
        assert.equal(res.status, 200);
        const seen = await res.json();
        // Passed on byte for byte.
        assert.equal(seen.query, 'q=hello+world&limit=-5&min=2.5');
      });
    });
  },
};
