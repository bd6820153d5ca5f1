// Request policies: ip and geo rules, max_body_bytes (declared and chunked), header
// and query edits, as clients and a real origin on 127.0.0.1 see them.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { describe, test } from 'node:test';

import { listenLocal } from '../harness.mjs';
import { assertProblem } from '../assert.mjs';

// An origin that records, per request, what it received of the body and whether the
// body ended; it answers (once the body has ended) with that record as JSON.
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
        const seen = {
          method: req.method,
          path: url.pathname,
          query: url.search.slice(1),
          headers: req.headers,
          received: 0,
          complete: false,
          closed: false,
        };
        state.requests.push(seen);
        const hash = crypto.createHash('sha256');
        req.on('data', (c) => {
          seen.received += c.length;
          hash.update(c);
        });
        req.on('error', () => {});
        req.on('close', () => {
          seen.closed = true;
        });
        req.on('end', () => {
          seen.complete = true;
          seen.sha256 = hash.digest('hex');
          const body = JSON.stringify(seen);
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            server: 'origin/1.0',
            'x-powered-by': 'node',
            'x-frame-options': 'SAMEORIGIN',
          });
          res.end(body);
        });
      });
      return listenLocal(server, state);
    },
  };
}

/**
 * Sends `chunks` as a chunked body (one write each) and resolves with the response,
 * even when the gateway answers and closes before the body is written whole.
 */
function sendChunked(port, path, chunks) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/octet-stream' }, agent: false },
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
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to POST ${path}`)));
    let i = 0;
    const next = () => {
      if (i === chunks.length) return req.end();
      req.write(chunks[i++], (err) => (err ? undefined : setImmediate(next)));
    };
    next();
  });
}

const LIMIT = 1000;

export default {
  name: 'policies',
  servers: [recordingOrigin('pol-origin')],
  config: ({ servers }) => ({
    origins: { 'pol-origin': { regions: [{ name: 'local', url: servers['pol-origin'].url, serves: ['*'] }] } },
    routes: [
      { id: 'pol-ip-deny', path: '/pol/ip/deny', methods: ['GET'], origin: 'pol-origin', ip: { deny: ['198.51.100.0/24', '2001:db8:bad::/48'] } },
      {
        id: 'pol-ip-allow',
        path: '/pol/ip/allow',
        methods: ['GET'],
        origin: 'pol-origin',
        ip: { allow: ['10.0.0.0/8', '::ffff:192.0.2.0/120', '2001:db8:1::/48'], deny: ['10.66.0.0/16'] },
      },
      { id: 'pol-geo', path: '/pol/geo', methods: ['GET'], origin: 'pol-origin', geo: { allow: ['EU', 'CA'], deny: ['RU'] } },
      {
        id: 'pol-edits',
        path: '/pol/edits/{tenant}/{*rest}',
        methods: ['GET'],
        origin: 'pol-origin',
        rewrite: '/t/{tenant}/{rest}',
        request_headers: { set: { 'x-tenant': 't-{tenant}', 'x-api-version': '2' }, remove: ['cookie', 'x-debug'] },
        response_headers: { set: { 'x-frame-options': 'DENY', 'x-served-for': '{tenant}' }, remove: ['server', 'x-powered-by'] },
        query: { set: { tenant: '{tenant}', v: '2' }, remove: ['debug', 'token'] },
      },
      { id: 'pol-body', path: '/pol/body', methods: ['POST'], origin: 'pol-origin', max_body_bytes: LIMIT },
    ],
  }),

  tests(e2e) {
    const origin = () => e2e.servers['pol-origin'];
    const get = (path, headers = {}) => e2e.fetch(path, { headers });

    describe('ip', () => {
      test('a denied address gets 403 and never reaches the origin', async () => {
        for (const ip of ['198.51.100.9', '::ffff:198.51.100.9', '2001:db8:bad::1']) {
          const before = origin().hits;
          const res = await get('/pol/ip/deny', { 'cf-connecting-ip': ip });
          const body = await assertProblem(res, 403, { label: ip });
          assert.match(body.detail, /address/);
          assert.equal(origin().hits, before, ip);
        }
        const res = await get('/pol/ip/deny', { 'cf-connecting-ip': '198.51.101.9' });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      });

      test('an address outside the allow list, or in its deny list, gets 403', async () => {
        const cases = [
          ['10.1.2.3', 200],
          ['10.66.1.1', 403],
          ['11.0.0.1', 403],
          ['192.0.2.5', 200],
          ['::ffff:192.0.2.5', 200],
          ['192.0.3.5', 403],
          ['2001:db8:1::42', 200],
          ['2001:db8:2::42', 403],
        ];
        for (const [ip, status] of cases) {
          const before = origin().hits;
          const res = await get('/pol/ip/allow', { 'cf-connecting-ip': ip });
          if (status === 403) {
            await assertProblem(res, 403, { label: ip });
            assert.equal(origin().hits, before, ip);
          } else {
            assert.equal(res.status, 200, ip);
            await res.arrayBuffer();
            assert.equal(origin().hits, before + 1, ip);
          }
        }
      });
    });

    describe('geo', () => {
      test('countries and continents from the dev headers are allowed or refused', async () => {
        const cases = [
          ['DE', 'EU', 200],
          ['CA', 'NA', 200],
          ['US', 'NA', 403],
          ['RU', 'EU', 403],
          [null, null, 403],
        ];
        for (const [country, continent, status] of cases) {
          const headers = {};
          if (country) headers['x-dev-country'] = country;
          if (continent) headers['x-dev-continent'] = continent;
          const before = origin().hits;
          const res = await get('/pol/geo', headers);
          if (status === 403) {
            const body = await assertProblem(res, 403, { label: `${country}/${continent}` });
            assert.match(body.detail, /location/);
            assert.equal(origin().hits, before);
          } else {
            assert.equal(res.status, 200, `${country}/${continent}`);
            const seen = await res.json();
            assert.equal(seen.headers['x-dev-country'], undefined, 'the dev headers are not forwarded');
          }
        }
      });
    });

    describe('header and query edits', () => {
      test('the origin sees the edited request; the gateway\'s own headers stand', async () => {
        const res = await get('/pol/edits/acme/a/b?x=1&debug=1&x=2&%74oken=t&tenant=forged&e=a+b%2F', {
          'x-api-version': '1',
          cookie: 'session=1',
          'x-debug': '1',
          'x-forwarded-for': '6.6.6.6',
          'x-request-id': 'client-rid-1',
          accept: 'application/json',
        });
        assert.equal(res.status, 200);
        const seen = await res.json();
        assert.equal(seen.path, '/t/acme/a/b');
        assert.equal(seen.query, 'x=1&x=2&e=a+b%2F&tenant=acme&v=2');
        assert.equal(seen.headers['x-tenant'], 't-acme');
        assert.equal(seen.headers['x-api-version'], '2');
        assert.equal(seen.headers.cookie, undefined);
        assert.equal(seen.headers['x-debug'], undefined);
        assert.equal(seen.headers.accept, 'application/json');
        assert.equal(seen.headers['x-request-id'], 'client-rid-1');
        assert.notEqual(seen.headers['x-forwarded-for'], '6.6.6.6');
        // The client sees the edited response.
        assert.equal(res.headers.get('server'), null);
        assert.equal(res.headers.get('x-powered-by'), null);
        assert.equal(res.headers.get('x-frame-options'), 'DENY');
        assert.equal(res.headers.get('x-served-for'), 'acme');
        assert.equal(res.headers.get('x-request-id'), 'client-rid-1');
      });

      test('a query without edited parameters passes byte for byte, plus the set ones', async () => {
        const res = await get('/pol/edits/acme/x?b=%20x%2Fy&c=%E2%9C%93&d=&f&g=%25&A=1');
        const seen = await res.json();
        assert.equal(seen.query, 'b=%20x%2Fy&c=%E2%9C%93&d=&f&g=%25&A=1&tenant=acme&v=2');
      });
    });

    describe('max_body_bytes', () => {
      test('a declared length over the limit is 413 before any upstream request', async () => {
        const before = origin().hits;
        const res = await e2e.fetch('/pol/body', { method: 'POST', body: Buffer.alloc(LIMIT + 1, 7) });
        const body = await assertProblem(res, 413);
        assert.match(body.detail, new RegExp(`${LIMIT} bytes`));
        assert.equal(origin().hits, before);
      });

      test('a declared length at the limit is forwarded byte-identical', async () => {
        const data = crypto.randomBytes(LIMIT);
        const res = await e2e.fetch('/pol/body', { method: 'POST', body: data });
        assert.equal(res.status, 200);
        const seen = await res.json();
        assert.equal(seen.received, LIMIT);
        assert.equal(seen.sha256, crypto.createHash('sha256').update(data).digest('hex'));
      });

      test('a chunked body that grows past the limit is 413 and never reaches the origin', async () => {
        const before = origin().hits;
        // Three chunks within the limit, then the one that passes it, then more.
        const chunks = Array.from({ length: 6 }, () => crypto.randomBytes(300));
        const res = await sendChunked(e2e.port, '/pol/body', chunks);
        const body = await assertProblem(res, 413);
        assert.match(body.detail, new RegExp(`${LIMIT} bytes`));
        assert.equal(origin().hits, before, 'the origin received none of it');
      });

      test('a chunked body within the limit is forwarded byte-identical', async () => {
        const chunks = Array.from({ length: 3 }, () => crypto.randomBytes(300));
        const res = await sendChunked(e2e.port, '/pol/body', chunks);
        assert.equal(res.status, 200);
        const seen = res.json();
        assert.equal(seen.received, 900);
        assert.equal(seen.sha256, crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));
      });
    });
  },
};
