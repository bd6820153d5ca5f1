// Retry budgets end to end: an origin whose first region refuses connections
// fails over to its second only within `retry_budget_percent` of its requests
// over the last 10 seconds; past it, the failed attempt is the answer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { rawRequest } from '../harness.mjs';

let seq = 0;

export default {
  name: 'budgets',
  servers: ['budget-second'],
  config: ({ servers, deadUrl }) => ({
    origins: {
      'budget-api': {
        regions: [
          { name: 'dead', url: deadUrl, serves: ['*'] },
          { name: 'second', url: servers['budget-second'].url },
        ],
        // A breaker that never opens here, so every request tries the dead region first.
        circuit_breaker: { failures: 100000, cooldown_s: 1 },
        retry_budget_percent: 25,
      },
      'budget-all-dead': {
        regions: [
          { name: 'dead-1', url: deadUrl, serves: ['*'] },
          { name: 'dead-2', url: deadUrl },
          { name: 'dead-3', url: deadUrl },
        ],
        circuit_breaker: { failures: 100000, cooldown_s: 1 },
        retry_budget_percent: 10,
      },
    },
    routes: [
      { id: 'budget', path: '/budget/{n}', methods: ['GET'], origin: 'budget-api' },
      { id: 'budget-dead', path: '/budget-dead/{n}', methods: ['GET'], origin: 'budget-all-dead' },
    ],
  }),

  tests(e2e) {
    describe('retry budgets', () => {
      test('failovers stay within 25 % of the requests over 10 s', async () => {
        const second = e2e.servers['budget-second'];
        const before = second.count('');
        const statuses = [];
        const ids = [];
        // Sequential: the budget is counted per isolate, request by request.
        for (let i = 0; i < 40; i++) {
          const id = `budget-${++seq}`;
          ids.push(id);
          statuses.push((await rawRequest(e2e.port, { path: `/budget/${i}`, headers: { 'x-request-id': id } })).status);
        }
        const ok = statuses.filter((s) => s === 200).length;
        assert.equal(ok, 10, statuses.join(' '));
        assert.equal(second.count('') - before, 10, 'the second region got more than the budget');
        assert.ok(statuses.filter((s) => s !== 200).every((s) => s === 502), statuses.join(' '));
        const lines = await Promise.all(ids.map((id) => e2e.waitForLog(id)));
        assert.equal(lines.filter((l) => l.retry_budget_exhausted).length, 30);
        assert.equal(lines.filter((l) => l.failovers === 1).length, 10);
      });

      test('when every region fails, failovers stay within the budget', async () => {
        const ids = [];
        for (let i = 0; i < 30; i++) {
          const id = `budget-${++seq}`;
          ids.push(id);
          const res = await rawRequest(e2e.port, { path: `/budget-dead/${i}`, headers: { 'x-request-id': id } });
          assert.equal(res.status, 502);
        }
        const lines = await Promise.all(ids.map((id) => e2e.waitForLog(id)));
        const failovers = lines.reduce((n, l) => n + l.failovers, 0);
        // 10 % of 30 requests: 3 extra attempts, where three regions each would make 60.
        assert.equal(failovers, 3, lines.map((l) => l.failovers).join(' '));
      });
    });
  },
};
