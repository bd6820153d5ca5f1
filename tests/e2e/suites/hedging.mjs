// Hedged requests end to end: an origin whose first region answers only after
// 2 s and whose second answers at once, with `hedge.after_ms` 150. The client
// gets the second region's answer long before the first would have answered,
// the log line lists both attempts, and the first region sees its request
// aborted (the loser is cancelled, not left running).
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import { listenLocal, rawRequest } from '../harness.mjs';

const SLOW_MS = 2000;

/**
 * An origin that answers every request after SLOW_MS (or the request's
 * `x-delay` ms), noting requests whose client went away first.
 */
function startSlow() {
  const state = { requests: 0, aborted: 0, answered: 0 };
  const server = http.createServer((req, res) => {
    state.requests += 1;
    const timer = setTimeout(() => {
      state.answered += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ origin: 'hedge-slow' }));
    }, Number(req.headers['x-delay'] ?? SLOW_MS));
    res.on('close', () => {
      if (!res.writableEnded) {
        clearTimeout(timer);
        state.aborted += 1;
      }
    });
  });
  return listenLocal(server, state);
}

export default {
  name: 'hedging',
  servers: [{ name: 'hedge-slow', start: startSlow }, 'hedge-fast'],
  config: ({ servers }) => ({
    origins: {
      'hedge-api': {
        regions: [
          { name: 'slow', url: servers['hedge-slow'].url, serves: ['*'] },
          { name: 'fast', url: servers['hedge-fast'].url },
        ],
        timeout_ms: 5000,
        hedge: { after_ms: 150, budget_percent: 100 },
      },
      'hedge-all-slow': {
        regions: [
          { name: 'slow-1', url: servers['hedge-slow'].url, serves: ['*'] },
          { name: 'slow-2', url: servers['hedge-slow'].url },
        ],
        timeout_ms: 5000,
        hedge: { after_ms: 100, budget_percent: 20 },
      },
    },
    routes: [
      { id: 'hedge', path: '/hedge/{n}', methods: ['GET', 'POST'], origin: 'hedge-api' },
      { id: 'hedge-slow', path: '/hedge-slow/{n}', methods: ['GET'], origin: 'hedge-all-slow' },
    ],
  }),

  tests(e2e) {
    describe('hedged requests', () => {
      test('a slow first region is hedged: the fast answer wins, the slow attempt is aborted', async () => {
        const slow = e2e.servers['hedge-slow'];
        const before = { ...slow };
        const t0 = Date.now();
        const res = await rawRequest(e2e.port, { path: '/hedge/1', headers: { 'x-request-id': 'hedge-1' } });
        const took = Date.now() - t0;
        assert.equal(res.status, 200);
        assert.equal(JSON.parse(res.body).origin, 'hedge-fast');
        assert.ok(took < SLOW_MS, `the answer took ${took} ms`);
        const line = await e2e.waitForLog('hedge-1');
        assert.equal(line.hedge, 'sent');
        assert.equal(line.region, 'fast');
        const attempts = Object.fromEntries(line.attempts.map((a) => [a.region, a]));
        assert.equal(attempts.fast.status, 200);
        assert.equal(attempts.slow.error, 'cancelled');
        assert.equal(slow.requests, before.requests + 1);
        // The cancelled attempt's connection is closed before the slow region answers.
        for (let i = 0; i < 60 && slow.aborted === before.aborted; i++) await new Promise((r) => setTimeout(r, 50));
        assert.equal(slow.aborted, before.aborted + 1, 'the losing attempt was not aborted');
        assert.equal(slow.answered, before.answered);
      });

      test('with every region slow, hedged attempts stay within the budget', async () => {
        const ids = [];
        for (let i = 0; i < 10; i++) {
          const id = `hedge-slow-${i}`;
          ids.push(id);
          const res = await rawRequest(e2e.port, { path: `/hedge-slow/${i}`, headers: { 'x-request-id': id, 'x-delay': '300' } });
          assert.equal(res.status, 200);
        }
        const lines = await Promise.all(ids.map((id) => e2e.waitForLog(id)));
        // 20 % of 10 requests: two hedges; the others waited for their first attempt.
        assert.equal(lines.filter((l) => l.hedge === 'sent').length, 2, lines.map((l) => l.hedge).join(' '));
        assert.equal(lines.filter((l) => l.hedge === 'budget').length, 8);
      });

      test('a request with a body is never hedged', async () => {
        const slow = e2e.servers['hedge-slow'];
        const fast = e2e.servers['hedge-fast'];
        const fastBefore = fast.count('/hedge/2');
        const res = await rawRequest(e2e.port, { method: 'POST', path: '/hedge/2', headers: { 'x-request-id': 'hedge-2', 'content-type': 'text/plain' }, body: 'once' });
        assert.equal(res.status, 200);
        assert.equal(JSON.parse(res.body).origin, 'hedge-slow');
        assert.equal(fast.count('/hedge/2'), fastBefore, 'the POST was sent twice');
        assert.ok(slow.answered >= 1);
      });
    });
  },
};
