// Regions, failover and circuit breaking, end to end: the caller's location
// (x-dev-country / x-dev-continent, as the harness runs with DEV_GEO_HEADERS=true)
// picks a region; failed attempts (connection error, timeout, 502/503/504) fail
// over to the next regions for idempotent requests without a body; breakers skip
// a failing region for its cooldown, then let exactly one trial through.
//
// Breaker state lives in the Worker isolate and outlives a test, so every
// scenario has its own origin (and its own origin servers, so hit counters only
// move for that scenario).
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import { assertProblem } from '../assert.mjs';
import { listenLocal } from '../harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * An origin server of this suite whose answer can be switched at run time:
 * `status` (default 200) and `delayMs` before the response headers, both read
 * when a request arrives. It answers JSON naming itself and what it received,
 * and counts like the echo origins (`hits`, `requests`, `count(suffix)`).
 */
function switchable(name, { status = 200, delayMs = 0 } = {}) {
  return {
    name,
    start: () => {
      const state = { name, status, delayMs, hits: 0, paths: [], requests: [] };
      state.count = (suffix = '') => state.requests.filter((r) => r.path.endsWith(suffix)).length;
      state.reset = () => {
        state.hits = 0;
        state.paths.length = 0;
        state.requests.length = 0;
      };
      const server = http.createServer((req, res) => {
        state.hits += 1;
        const url = new URL(req.url, 'http://origin');
        const seen = { origin: name, method: req.method, path: url.pathname, query: url.search.slice(1), headers: req.headers };
        state.paths.push(`${req.method} ${url.pathname}`);
        state.requests.push(seen);
        const code = state.status;
        const delay = state.delayMs;
        let bodyLength = 0;
        let timer = null;
        const answer = () => {
          if (res.destroyed || res.writableEnded) return;
          const text = JSON.stringify({ ...seen, status: code, bodyLength });
          res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(req.method === 'HEAD' ? undefined : text);
        };
        res.on('close', () => clearTimeout(timer));
        req.on('error', () => {});
        req.on('data', (c) => {
          bodyLength += c.length;
        });
        req.on('end', () => {
          if (delay > 0) timer = setTimeout(answer, delay);
          else answer();
        });
      });
      return listenLocal(server, state);
    },
  };
}

const SLOW_MS = 3000;

// Echo origins (scripts/origin.mjs) for regions that always answer 200.
const ECHO = [
  'regions-eu', 'regions-de', 'regions-us', 'regions-apac', 'regions-eu2',
  'regions-down-us', 'regions-st-us', 'regions-slow-us', 'regions-rt-us', 'regions-rtlo-us',
  'regions-cbr-us', 'regions-cbc-us', 'regions-cbz-us', 'regions-cbd-us',
];
const SWITCHABLE = [
  switchable('regions-st-eu'),
  switchable('regions-ring-a'),
  switchable('regions-ring-b'),
  switchable('regions-ring-c'),
  switchable('regions-slow-eu', { delayMs: SLOW_MS }),
  switchable('regions-slowall-eu', { delayMs: SLOW_MS }),
  switchable('regions-slowall-us', { delayMs: SLOW_MS }),
  switchable('regions-rt-eu', { delayMs: 800 }),
  switchable('regions-rtlo-eu', { delayMs: 800 }),
  switchable('regions-cbr-eu', { status: 503 }),
  switchable('regions-cbc-eu', { status: 503 }),
  switchable('regions-cba-eu', { status: 503 }),
  switchable('regions-cba-us', { status: 503 }),
  switchable('regions-cbz-eu'),
];

const COOLDOWN_S = 2;

export default {
  name: 'regions',
  servers: [...ECHO, ...SWITCHABLE],
  config: ({ servers, deadUrl }) => {
    const url = (name) => servers[name].url;
    // Two regions: `eu` serves Europe, `us` everything else.
    const pair = (eu, us, extra = {}) => ({
      regions: [
        { name: 'eu', url: eu, serves: ['EU'] },
        { name: 'us', url: us, serves: ['*'] },
      ],
      ...extra,
    });
    const breaker = (failures, cooldown_s) => ({ circuit_breaker: { failures, cooldown_s } });
    const origins = {
      'regions-geo': {
        regions: [
          { name: 'eu', url: url('regions-eu'), serves: ['EU'] },
          // A country listed by a later region beats the continent of an earlier one.
          { name: 'de', url: url('regions-de'), serves: ['DE', 'AT', 'CH'] },
          { name: 'us', url: url('regions-us'), serves: ['NA', 'SA', '*'] },
        ],
      },
      // No `*`: a caller nothing matches goes to the first region.
      'regions-nostar': {
        regions: [
          { name: 'apac', url: url('regions-apac'), serves: ['JP', 'AS'] },
          { name: 'eu', url: url('regions-eu2'), serves: ['EU'] },
        ],
      },
      'regions-down': pair(deadUrl, url('regions-down-us')),
      'regions-status': pair(url('regions-st-eu'), url('regions-st-us')),
      'regions-ring': {
        regions: [
          { name: 'a', url: url('regions-ring-a'), serves: ['AS'] },
          { name: 'b', url: url('regions-ring-b'), serves: ['EU'] },
          { name: 'c', url: url('regions-ring-c'), serves: ['NA'] },
        ],
      },
      'regions-slow': pair(url('regions-slow-eu'), url('regions-slow-us'), { timeout_ms: 400 }),
      'regions-slowall': pair(url('regions-slowall-eu'), url('regions-slowall-us'), { timeout_ms: 400 }),
      // Origin timeout above the delay of `eu` (800 ms) ...
      'regions-rt': pair(url('regions-rt-eu'), url('regions-rt-us'), { timeout_ms: 2000 }),
      // ... and below it.
      'regions-rtlo': pair(url('regions-rtlo-eu'), url('regions-rtlo-us'), { timeout_ms: 300 }),
      'regions-cbr': pair(url('regions-cbr-eu'), url('regions-cbr-us'), { timeout_ms: 2000, ...breaker(3, COOLDOWN_S) }),
      'regions-cbc': pair(url('regions-cbc-eu'), url('regions-cbc-us'), { timeout_ms: 2000, ...breaker(3, COOLDOWN_S) }),
      'regions-cba': pair(url('regions-cba-eu'), url('regions-cba-us'), { timeout_ms: 2000, ...breaker(3, 60) }),
      'regions-cbz': pair(url('regions-cbz-eu'), url('regions-cbz-us'), { timeout_ms: 2000, ...breaker(3, 60) }),
      'regions-cbd': pair(deadUrl, url('regions-cbd-us'), { timeout_ms: 2000, ...breaker(2, 60) }),
    };
    const routes = Object.keys(origins).map((name) => ({
      id: name,
      path: `/regions/${name.slice('regions-'.length)}/{*rest}`,
      origin: name,
    }));
    // Per-route timeouts: overriding the origin's, downwards and upwards.
    routes.push(
      { id: 'regions-rt-short', path: '/regions/rt-short/{*rest}', origin: 'regions-rt', timeout_ms: 300 },
      { id: 'regions-rtlo-long', path: '/regions/rtlo-long/{*rest}', origin: 'regions-rtlo', timeout_ms: 2000 },
    );
    return { origins, routes };
  },

  tests(e2e) {
    const srv = (name) => e2e.servers[name];
    const hits = (...names) => names.map((n) => srv(n).hits);
    let seq = 0;
    const newId = (tag) => `regions-${tag}-${process.pid}-${++seq}`;

    const where = (country, continent) => {
      const h = {};
      if (country) h['x-dev-country'] = country;
      if (continent) h['x-dev-continent'] = continent;
      return h;
    };
    const FROM_EU = where('FR', 'EU');

    /** One request through the gateway; resolves {res, log, id, ms}. */
    async function send(path, { method = 'GET', headers = {}, body, tag = 'req' } = {}) {
      const id = newId(tag);
      const started = Date.now();
      const res = await e2e.raw({ method, path, headers: { ...headers, 'x-request-id': id }, body });
      const ms = Date.now() - started;
      const log = await e2e.waitForLog(id);
      return { res, log, id, ms, sentAt: started };
    }

    /** "region:status" or "region:error" for each attempt of a log line. */
    const attempts = (log) => (log.attempts ?? []).map((a) => `${a.region}:${a.status ?? a.error}`);

    /** The circuit breaker event lines of an origin printed so far, in order. */
    function breakerEvents(origin) {
      const out = [];
      for (const line of e2e.wrangler.lines) {
        const at = line.indexOf('{');
        if (at < 0 || !line.includes('circuit_breaker')) continue;
        let value;
        try {
          value = JSON.parse(line.slice(at).trim());
        } catch {
          continue;
        }
        if (value?.event === 'circuit_breaker' && value.origin === origin) out.push(value);
      }
      return out;
    }
    const transitions = (origin, region) =>
      breakerEvents(origin)
        .filter((e) => e.region === region)
        .map((e) => e.transition);

    /** Asserts a 200 answered by the echo/switchable origin `name`. */
    function servedBy(res, name, label = '') {
      assert.equal(res.status, 200, `${label}: ${res.text().slice(0, 300)}`);
      const body = res.json();
      assert.equal(body.origin, name, label);
      return body;
    }

    describe('region choice', () => {
      const cases = [
        // [label, headers, region, server]
        ['FR in EU: the EU region', where('FR', 'EU'), 'eu', 'regions-eu'],
        ['continent EU only: the EU region', where(null, 'EU'), 'eu', 'regions-eu'],
        ['DE in EU: the region listing DE, though a region listing EU comes first', where('DE', 'EU'), 'de', 'regions-de'],
        ['AT without continent: the region listing AT', where('AT', null), 'de', 'regions-de'],
        ['JP in AS: nothing lists either, the * region', where('JP', 'AS'), 'us', 'regions-us'],
        ['US in NA: the region listing NA', where('US', 'NA'), 'us', 'regions-us'],
        ['no location at all: the * region', {}, 'us', 'regions-us'],
      ];
      for (const [label, headers, region, server] of cases) {
        test(label, async () => {
          const before = hits('regions-eu', 'regions-de', 'regions-us');
          const { res, log } = await send('/regions/geo/who?x=1', { headers, tag: 'geo' });
          const body = servedBy(res, server, label);
          assert.equal(body.path, '/regions/geo/who');
          assert.equal(body.query, 'x=1');
          assert.equal(body.headers['x-dev-country'], undefined, 'x-dev-country reached the origin');
          assert.equal(body.headers['x-dev-continent'], undefined, 'x-dev-continent reached the origin');
          const expected = before.map((n, i) => n + (['regions-eu', 'regions-de', 'regions-us'][i] === server ? 1 : 0));
          assert.deepEqual(hits('regions-eu', 'regions-de', 'regions-us'), expected, 'only the chosen region is contacted');
          assert.equal(log.region, region);
          assert.equal(log.upstream_status, 200);
          assert.deepEqual(attempts(log), [`${region}:200`]);
          assert.equal(log.failovers, 0);
        });
      }

      test('without a * region, a caller nothing matches goes to the first region', async () => {
        for (const headers of [where('BR', 'SA'), where('US', 'NA'), {}]) {
          const label = JSON.stringify(headers);
          const before = hits('regions-apac', 'regions-eu2');
          const { res, log } = await send('/regions/nostar/x', { headers, tag: 'nostar' });
          const body = servedBy(res, 'regions-apac', label);
          assert.equal(body.headers['x-dev-country'], undefined);
          assert.equal(body.headers['x-dev-continent'], undefined);
          assert.deepEqual(hits('regions-apac', 'regions-eu2'), [before[0] + 1, before[1]], label);
          assert.equal(log.region, 'apac', label);
        }
        // ... while a caller it does match goes to its region.
        const { res, log } = await send('/regions/nostar/x', { headers: where('ES', 'EU'), tag: 'nostar' });
        servedBy(res, 'regions-eu2');
        assert.equal(log.region, 'eu');
      });
    });

    describe('failover when a region is unreachable', () => {
      const path = '/regions/down/item/1';

      test('GET from EU with the EU origin down: served by the next region, both attempts logged', async () => {
        const before = srv('regions-down-us').hits;
        const { res, log } = await send(path, { headers: FROM_EU, tag: 'down-get' });
        const body = servedBy(res, 'regions-down-us');
        assert.equal(body.path, '/regions/down/item/1');
        assert.equal(body.headers['x-dev-country'], undefined);
        assert.equal(body.headers['x-dev-continent'], undefined);
        assert.equal(srv('regions-down-us').hits, before + 1);
        assert.equal(log.status, 200);
        assert.equal(log.region, 'us');
        assert.equal(log.upstream_status, 200);
        assert.equal(log.failovers, 1);
        assert.equal(log.attempts.length, 2);
        assert.equal(log.attempts[0].region, 'eu');
        assert.equal(log.attempts[0].status, undefined);
        assert.match(String(log.attempts[0].error), /connect/);
        assert.deepEqual(attempts(log).slice(1), ['us:200']);
      });

      /** A bodyless request by `method` from EU: fails over to `us`. */
      async function bodylessFailsOver(method) {
        const before = srv('regions-down-us').hits;
        // node:http sends these methods with neither content-length nor transfer-encoding.
        const { res, log } = await send(path, { method, headers: FROM_EU, tag: `down-${method}` });
        assert.equal(res.status, 200, `${method}: ${res.text().slice(0, 300)}`);
        assert.equal(srv('regions-down-us').hits, before + 1, method);
        assert.equal(srv('regions-down-us').requests.at(-1).method, method);
        assert.equal(log.failovers, 1, method);
        assert.equal(log.region, 'us', method);
      }

      test('HEAD fails over too', () => bodylessFailsOver('HEAD'));

      test('DELETE and OPTIONS sent without a body fail over too', async () => {
        for (const method of ['DELETE', 'OPTIONS']) await bodylessFailsOver(method);
      });

      test('POST from EU: 502 problem+json, not retried', async () => {
        const before = srv('regions-down-us').hits;
        const { res, log } = await send(path, {
          method: 'POST',
          headers: { ...FROM_EU, 'content-type': 'application/json' },
          body: '{"order":1}',
          tag: 'down-post',
        });
        await assertProblem(res, 502);
        assert.equal(srv('regions-down-us').hits, before, 'the other region was contacted');
        assert.equal(log.status, 502);
        assert.equal(log.failovers, 0);
        assert.deepEqual(log.attempts.map((a) => a.region), ['eu']);
      });

      test('PATCH without a body from EU: 502, not retried', async () => {
        const before = srv('regions-down-us').hits;
        const { res, log } = await send(path, { method: 'PATCH', headers: { ...FROM_EU, 'content-length': '0' }, tag: 'down-patch' });
        await assertProblem(res, 502);
        assert.equal(srv('regions-down-us').hits, before, 'the other region was contacted');
        assert.equal(log.failovers, 0);
      });

      test('PUT with a body from EU: 502, never sent twice', async () => {
        const before = srv('regions-down-us').hits;
        const { res, log } = await send(path, { method: 'PUT', headers: FROM_EU, body: 'replace-me', tag: 'down-put' });
        await assertProblem(res, 502);
        assert.equal(srv('regions-down-us').hits, before, 'the other region was contacted');
        assert.equal(log.failovers, 0);
        assert.deepEqual(log.attempts.map((a) => a.region), ['eu']);
      });
    });

    describe('failover on origin statuses', () => {
      const eu = () => srv('regions-st-eu');
      const us = () => srv('regions-st-us');
      const path = '/regions/status/thing';

      for (const status of [502, 503, 504]) {
        test(`a ${status} from the EU origin: a GET is served by the next region`, async () => {
          eu().status = status;
          try {
            const [euBefore, usBefore] = hits('regions-st-eu', 'regions-st-us');
            const { res, log } = await send(path, { headers: FROM_EU, tag: `st-${status}` });
            servedBy(res, 'regions-st-us');
            assert.deepEqual(hits('regions-st-eu', 'regions-st-us'), [euBefore + 1, usBefore + 1]);
            assert.deepEqual(attempts(log), [`eu:${status}`, 'us:200']);
            assert.equal(log.failovers, 1);
            assert.equal(log.region, 'us');
            assert.equal(log.upstream_status, 200);
            // Both attempts carry the same request id.
            assert.equal(eu().requests.at(-1).headers['x-request-id'], us().requests.at(-1).headers['x-request-id']);
          } finally {
            eu().status = 200;
          }
        });
      }

      test('a 500 from the EU origin is passed through, not failed over', async () => {
        eu().status = 500;
        try {
          const [euBefore, usBefore] = hits('regions-st-eu', 'regions-st-us');
          const { res, log } = await send(path, { headers: FROM_EU, tag: 'st-500' });
          assert.equal(res.status, 500);
          assert.equal(res.headers['content-type'], 'application/json');
          assert.equal(res.json().origin, 'regions-st-eu');
          assert.deepEqual(hits('regions-st-eu', 'regions-st-us'), [euBefore + 1, usBefore]);
          assert.deepEqual(attempts(log), ['eu:500']);
          assert.equal(log.failovers, 0);
        } finally {
          eu().status = 200;
        }
      });

      test('a 503 to a POST or to a PUT with a body is passed through, not retried', async () => {
        eu().status = 503;
        try {
          for (const [method, body] of [['POST', '{"a":1}'], ['PUT', 'x'.repeat(1000)]]) {
            const [euBefore, usBefore] = hits('regions-st-eu', 'regions-st-us');
            const { res, log } = await send(path, { method, body, headers: FROM_EU, tag: `st-${method}` });
            assert.equal(res.status, 503, method);
            const seen = res.json();
            assert.equal(seen.origin, 'regions-st-eu', method);
            assert.equal(seen.bodyLength, body.length, `${method}: the body reached the EU origin`);
            assert.deepEqual(hits('regions-st-eu', 'regions-st-us'), [euBefore + 1, usBefore], method);
            assert.equal(log.failovers, 0, method);
          }
        } finally {
          eu().status = 200;
        }
      });

      test('a 503 to a DELETE sent without a body is failed over', async () => {
        eu().status = 503;
        try {
          const [euBefore, usBefore] = hits('regions-st-eu', 'regions-st-us');
          const { res, log } = await send(path, { method: 'DELETE', headers: FROM_EU, tag: 'st-DELETE' });
          const seen = servedBy(res, 'regions-st-us', 'DELETE');
          assert.equal(seen.method, 'DELETE');
          assert.deepEqual(hits('regions-st-eu', 'regions-st-us'), [euBefore + 1, usBefore + 1]);
          assert.deepEqual(attempts(log), ['eu:503', 'us:200']);
        } finally {
          eu().status = 200;
        }
      });

      test('failover goes on in array order after the chosen region, wrapping around, each region once', async () => {
        const names = ['regions-ring-a', 'regions-ring-b', 'regions-ring-c'];
        const [a, b, c] = names.map(srv);
        try {
          // EU chooses b; b and c fail, a (wrapping around) answers.
          b.status = 502;
          c.status = 503;
          let before = hits(...names);
          const first = await send('/regions/ring/x', { headers: FROM_EU, tag: 'ring' });
          servedBy(first.res, 'regions-ring-a');
          assert.deepEqual(attempts(first.log), ['b:502', 'c:503', 'a:200']);
          assert.equal(first.log.failovers, 2);
          assert.deepEqual(hits(...names), before.map((n) => n + 1));

          // All fail: each tried once; the client gets the last origin response (a's).
          a.status = 504;
          before = hits(...names);
          const all = await send('/regions/ring/x', { headers: FROM_EU, tag: 'ring-all' });
          assert.equal(all.res.status, 504);
          assert.equal(all.res.headers['content-type'], 'application/json', 'the origin response, not a gateway problem');
          assert.equal(all.res.json().origin, 'regions-ring-a');
          assert.deepEqual(attempts(all.log), ['b:502', 'c:503', 'a:504']);
          assert.equal(all.log.failovers, 2);
          assert.deepEqual(hits(...names), before.map((n) => n + 1));

          // NA chooses c: c, then a, then b.
          before = hits(...names);
          const fromNa = await send('/regions/ring/x', { headers: where('US', 'NA'), tag: 'ring-na' });
          assert.equal(fromNa.res.status, 502);
          assert.equal(fromNa.res.json().origin, 'regions-ring-b');
          assert.deepEqual(attempts(fromNa.log), ['c:503', 'a:504', 'b:502']);
          assert.deepEqual(hits(...names), before.map((n) => n + 1));
        } finally {
          for (const s of [a, b, c]) s.status = 200;
        }
      });
    });

    describe('timeouts', () => {
      test('a GET to a region slower than timeout_ms fails over to a fast one', async () => {
        const [euBefore, usBefore] = hits('regions-slow-eu', 'regions-slow-us');
        const { res, log, ms } = await send('/regions/slow/x', { headers: FROM_EU, tag: 'slow' });
        servedBy(res, 'regions-slow-us');
        assert.ok(ms >= 350, `answered after ${ms} ms, before the 400 ms timeout`);
        assert.ok(ms < SLOW_MS - 500, `answered after ${ms} ms: the slow region was waited for`);
        assert.deepEqual(hits('regions-slow-eu', 'regions-slow-us'), [euBefore + 1, usBefore + 1]);
        assert.equal(log.failovers, 1);
        assert.equal(log.attempts[0].region, 'eu');
        assert.equal(log.attempts[0].status, undefined);
        assert.match(String(log.attempts[0].error), /timeout/);
        assert.deepEqual(attempts(log).slice(1), ['us:200']);
      });

      test('a POST to a region slower than timeout_ms: 504, not retried', async () => {
        const [euBefore, usBefore] = hits('regions-slow-eu', 'regions-slow-us');
        const { res, ms } = await send('/regions/slow/x', { method: 'POST', body: '{}', headers: FROM_EU, tag: 'slow-post' });
        await assertProblem(res, 504);
        assert.ok(ms < SLOW_MS - 500, `answered after ${ms} ms`);
        assert.deepEqual(hits('regions-slow-eu', 'regions-slow-us'), [euBefore + 1, usBefore]);
      });

      test('no region answers in time: 504 problem+json after one timeout per region', async () => {
        const names = ['regions-slowall-eu', 'regions-slowall-us'];
        const before = hits(...names);
        const { res, log, ms } = await send('/regions/slowall/x', { headers: FROM_EU, tag: 'slowall' });
        await assertProblem(res, 504);
        assert.ok(ms >= 750, `answered after ${ms} ms, before two 400 ms timeouts`);
        assert.ok(ms < SLOW_MS - 500, `answered after ${ms} ms: a slow region was waited for`);
        assert.deepEqual(hits(...names), before.map((n) => n + 1));
        assert.equal(log.status, 504);
        assert.deepEqual(log.attempts.map((a) => a.region), ['eu', 'us']);
        assert.ok(log.attempts.every((a) => a.status === undefined && /timeout/.test(String(a.error))), JSON.stringify(log.attempts));
      });

      test("a route's timeout_ms below the origin's: the slow region is abandoned at the route's", async () => {
        // Without the override the origin's 2000 ms let the 800 ms region answer ...
        const [euBefore, usBefore] = hits('regions-rt-eu', 'regions-rt-us');
        const plain = await send('/regions/rt/x', { headers: FROM_EU, tag: 'rt' });
        servedBy(plain.res, 'regions-rt-eu');
        assert.ok(plain.ms >= 750, `answered after ${plain.ms} ms`);
        assert.deepEqual(hits('regions-rt-eu', 'regions-rt-us'), [euBefore + 1, usBefore]);
        // ... with the route's 300 ms it is abandoned for the next region.
        const short = await send('/regions/rt-short/x', { headers: FROM_EU, tag: 'rt-short' });
        servedBy(short.res, 'regions-rt-us');
        assert.ok(short.ms >= 250, `answered after ${short.ms} ms, before the route's 300 ms`);
        assert.deepEqual(hits('regions-rt-eu', 'regions-rt-us'), [euBefore + 2, usBefore + 1]);
        assert.equal(short.log.route, 'regions-rt-short');
        assert.match(String(short.log.attempts[0].error), /timeout/);
        assert.equal(short.log.failovers, 1);
      });

      test("a route's timeout_ms above the origin's: the slow region is waited for", async () => {
        // With the origin's 300 ms the 800 ms region is abandoned ...
        const [euBefore, usBefore] = hits('regions-rtlo-eu', 'regions-rtlo-us');
        const plain = await send('/regions/rtlo/x', { headers: FROM_EU, tag: 'rtlo' });
        servedBy(plain.res, 'regions-rtlo-us');
        assert.ok(plain.ms >= 250, `answered after ${plain.ms} ms, before the origin's 300 ms`);
        assert.deepEqual(hits('regions-rtlo-eu', 'regions-rtlo-us'), [euBefore + 1, usBefore + 1]);
        // ... the route's 2000 ms let it answer.
        const long = await send('/regions/rtlo-long/x', { headers: FROM_EU, tag: 'rtlo-long' });
        servedBy(long.res, 'regions-rtlo-eu');
        assert.ok(long.ms >= 750, `answered after ${long.ms} ms`);
        assert.deepEqual(hits('regions-rtlo-eu', 'regions-rtlo-us'), [euBefore + 2, usBefore + 1]);
        assert.deepEqual(attempts(long.log), ['eu:200']);
      });
    });

    describe('circuit breaker', () => {
      /** Sends GETs from EU that fail on `eu` (503) until the breaker has opened after `failures`. */
      async function openBreaker(prefix, origin, euName, usName, failures = 3) {
        const results = [];
        for (let i = 1; i <= failures; i++) {
          const before = hits(euName, usName);
          const r = await send(`/regions/${prefix}/x`, { headers: FROM_EU, tag: `${prefix}-fail${i}` });
          servedBy(r.res, usName, `failing request ${i}`);
          assert.deepEqual(hits(euName, usName), [before[0] + 1, before[1] + 1], `failing request ${i}`);
          assert.deepEqual(attempts(r.log), ['eu:503', 'us:200'], `failing request ${i}`);
          assert.equal(r.log.failovers, 1);
          const opened = transitions(origin, 'eu');
          assert.deepEqual(opened, i < failures ? [] : ['closed->open'], `breaker events after failing request ${i}`);
          results.push(r);
        }
        return results;
      }

      /** Sends GETs from EU while the breaker is open: served by `us`, `eu` not contacted. */
      async function assertSkipped(prefix, euName, usName, n, label) {
        for (let i = 0; i < n; i++) {
          const before = hits(euName, usName);
          const r = await send(`/regions/${prefix}/x`, { headers: FROM_EU, tag: `${prefix}-skip` });
          servedBy(r.res, usName, label);
          assert.deepEqual(hits(euName, usName), [before[0], before[1] + 1], `${label}: the open region was contacted`);
          assert.deepEqual(attempts(r.log), ['us:200'], label);
          assert.equal(r.log.failovers, 0, label);
        }
      }

      /**
       * Sends batches of `batch` concurrent GETs from EU, about every 100 ms, until
       * `euName` is contacted again; returns the batch's results and when it started.
       */
      async function pollUntilContacted(prefix, euName, { batch = 1, deadlineMs }) {
        const start = srv(euName).hits;
        const deadline = Date.now() + deadlineMs;
        let skipped = 0;
        while (Date.now() < deadline) {
          const results = await Promise.all(
            Array.from({ length: batch }, () => send(`/regions/${prefix}/x`, { headers: FROM_EU, tag: `${prefix}-poll` })),
          );
          if (srv(euName).hits > start) return { results, skipped };
          skipped += batch;
          await sleep(100);
        }
        assert.fail(`${euName} was not contacted again within ${deadlineMs} ms (cooldown ${COOLDOWN_S} s)`);
      }

      test('after 3 failures the region is skipped for the cooldown; one trial; a failed trial re-opens it', async () => {
        const [eu, us] = ['regions-cbr-eu', 'regions-cbr-us'];
        const failing = await openBreaker('cbr', 'regions-cbr', eu, us);
        const openedAfter = failing.at(-1).sentAt; // the breaker opened after this was sent
        await assertSkipped('cbr', eu, us, 3, 'while open');

        // The EU origin still answers 503: the trial fails and the region is skipped again.
        const { results, skipped } = await pollUntilContacted('cbr', eu, { deadlineMs: COOLDOWN_S * 1000 + 4000 });
        const trial = results[0];
        const waited = Date.now() - openedAfter;
        assert.ok(waited >= COOLDOWN_S * 1000 - 150, `the trial came ${waited} ms after the breaker opened (cooldown ${COOLDOWN_S} s)`);
        assert.ok(skipped >= 3, `only ${skipped} requests skipped the open region`);
        servedBy(trial.res, us, 'the failed trial fails over');
        assert.deepEqual(attempts(trial.log), ['eu:503', 'us:200']);
        assert.deepEqual(transitions('regions-cbr', 'eu'), ['closed->open', 'open->half_open', 'half_open->open']);
        await assertSkipped('cbr', eu, us, 3, 'after the failed trial');
        assert.deepEqual(transitions('regions-cbr', 'us'), [], 'the healthy region never changed state');
      });

      test('after the cooldown exactly one trial goes through, even among concurrent requests; its success closes the breaker', async () => {
        const [eu, us] = ['regions-cbc-eu', 'regions-cbc-us'];
        const failing = await openBreaker('cbc', 'regions-cbc', eu, us);
        const openedAfter = failing.at(-1).sentAt;
        // Healthy again, but slow enough that the trial is still in flight while
        // the other requests of its batch arrive.
        srv(eu).status = 200;
        srv(eu).delayMs = 700;
        await assertSkipped('cbc', eu, us, 2, 'while open, though healthy again');

        const before = srv(eu).hits;
        const { results } = await pollUntilContacted('cbc', eu, { batch: 5, deadlineMs: COOLDOWN_S * 1000 + 4000 });
        const waited = Date.now() - openedAfter;
        assert.ok(waited >= COOLDOWN_S * 1000 - 150, `the trial came ${waited} ms after the breaker opened`);
        assert.equal(srv(eu).hits, before + 1, 'exactly one trial request reached the region');
        const byEu = results.filter((r) => r.res.status === 200 && r.res.json().origin === eu);
        const byUs = results.filter((r) => r.res.status === 200 && r.res.json().origin === us);
        assert.equal(byEu.length, 1, 'the trial is answered by the EU region');
        assert.equal(byUs.length, results.length - 1, 'the others are served by the next region');
        assert.deepEqual(attempts(byEu[0].log), ['eu:200']);
        for (const r of byUs) assert.deepEqual(attempts(r.log), ['us:200']);
        assert.deepEqual(transitions('regions-cbc', 'eu'), ['closed->open', 'open->half_open', 'half_open->closed']);

        // Closed: EU callers are served by the EU region again.
        srv(eu).delayMs = 0;
        for (let i = 0; i < 3; i++) {
          const [euBefore, usBefore] = hits(eu, us);
          const r = await send('/regions/cbc/x', { headers: FROM_EU, tag: 'cbc-closed' });
          servedBy(r.res, eu, 'after the successful trial');
          assert.deepEqual(hits(eu, us), [euBefore + 1, usBefore]);
        }
      });

      test('a success resets the count: only consecutive failures open the breaker', async () => {
        const [eu, us] = ['regions-cbz-eu', 'regions-cbz-us'];
        const step = async (status, label) => {
          srv(eu).status = status;
          const before = srv(eu).hits;
          const r = await send('/regions/cbz/x', { headers: FROM_EU, tag: 'cbz' });
          assert.equal(r.res.status, 200, label);
          assert.equal(srv(eu).hits, before + 1, `${label}: the EU region was skipped`);
          return r;
        };
        try {
          await step(503, 'failure 1');
          await step(503, 'failure 2');
          await step(200, 'success');
          await step(503, 'failure 1 after the success');
          await step(503, 'failure 2 after the success');
          assert.deepEqual(transitions('regions-cbz', 'eu'), []);
          await step(503, 'failure 3 after the success');
          assert.deepEqual(transitions('regions-cbz', 'eu'), ['closed->open']);
          await assertSkipped('cbz', eu, us, 1, 'after 3 consecutive failures');
        } finally {
          srv(eu).status = 200;
        }
      });

      test('connection errors count as failures; a POST skips the open region rather than failing', async () => {
        const us = 'regions-cbd-us';
        for (let i = 0; i < 2; i++) {
          const r = await send('/regions/cbd/x', { headers: FROM_EU, tag: 'cbd' });
          servedBy(r.res, us);
          assert.equal(r.log.failovers, 1);
        }
        assert.deepEqual(transitions('regions-cbd', 'eu'), ['closed->open']);
        const skipped = await send('/regions/cbd/x', { headers: FROM_EU, tag: 'cbd-open' });
        servedBy(skipped.res, us);
        assert.deepEqual(attempts(skipped.log), ['us:200']);
        // A POST is never retried, but a region known to be down is not tried at all.
        const before = srv(us).hits;
        const post = await send('/regions/cbd/x', { method: 'POST', body: '{}', headers: FROM_EU, tag: 'cbd-post' });
        const seen = servedBy(post.res, us, 'POST');
        assert.equal(seen.method, 'POST');
        assert.equal(srv(us).hits, before + 1);
        assert.deepEqual(attempts(post.log), ['us:200']);
      });

      test('every region open: 503 problem+json without any fetch', async () => {
        const names = ['regions-cba-eu', 'regions-cba-us'];
        // Each GET tries eu then us; both fail: after 3 requests both are open.
        for (let i = 1; i <= 3; i++) {
          const before = hits(...names);
          const r = await send('/regions/cba/x', { headers: FROM_EU, tag: 'cba-fail' });
          assert.equal(r.res.status, 503, `failing request ${i}`);
          assert.equal(r.res.headers['content-type'], 'application/json', 'the last origin response is passed through');
          assert.equal(r.res.json().origin, 'regions-cba-us');
          assert.deepEqual(attempts(r.log), ['eu:503', 'us:503']);
          assert.deepEqual(hits(...names), before.map((n) => n + 1));
        }
        assert.deepEqual(transitions('regions-cba', 'eu'), ['closed->open']);
        assert.deepEqual(transitions('regions-cba', 'us'), ['closed->open']);

        const before = hits(...names);
        for (const [method, headers, body] of [
          ['GET', FROM_EU, undefined],
          ['GET', where('US', 'NA'), undefined],
          ['GET', {}, undefined],
          ['POST', FROM_EU, '{}'],
          ['DELETE', FROM_EU, undefined],
        ]) {
          const label = `${method} ${JSON.stringify(headers)}`;
          const r = await send('/regions/cba/x', { method, headers, body, tag: 'cba-open' });
          assert.ok(r.ms < 2000, `${label}: answered after ${r.ms} ms`);
          await assertProblem(r.res, 503, { label });
          assert.equal(r.log.status, 503, label);
          assert.deepEqual(r.log.attempts ?? [], [], `${label}: attempts ${JSON.stringify(r.log.attempts)}`);
        }
        assert.deepEqual(hits(...names), before, 'an origin was contacted while every region was open');
        assert.deepEqual(transitions('regions-cba', 'eu'), ['closed->open']);
      });
    });
  },
};
