// Weighted splits end to end: a route over two real origins, 90/10, spreads
// its requests in proportion; with `sticky` the same key value always lands on
// the same origin; the log line names the origin chosen.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { rawRequest } from '../harness.mjs';

let seq = 0;

export default {
  name: 'splits',
  servers: ['split-a', 'split-b'],
  config: ({ servers }) => ({
    origins: {
      'split-a': { regions: [{ name: 'a', url: servers['split-a'].url }] },
      'split-b': { regions: [{ name: 'b', url: servers['split-b'].url }] },
    },
    routes: [
      { id: 'split-weighted', path: '/split/w', methods: ['GET'], origin: [{ origin: 'split-a', weight: 90 }, { origin: 'split-b', weight: 10 }] },
      {
        id: 'split-sticky', path: '/split/s', methods: ['GET'],
        origin: [{ origin: 'split-a', weight: 50 }, { origin: 'split-b', weight: 50 }], sticky: 'header:x-user',
      },
    ],
  }),

  tests(e2e) {
    const get = (path, headers = {}) => {
      const id = `split-${++seq}`;
      return rawRequest(e2e.port, { path, headers: { 'x-request-id': id, ...headers } }).then((r) => Object.assign(r, { id }));
    };

    describe('weighted splits', () => {
      test('requests spread in proportion to the weights, and the log names the origin', async () => {
        const a = e2e.servers['split-a'];
        const b = e2e.servers['split-b'];
        const before = [a.count('/split/w'), b.count('/split/w')];
        const n = 1000;
        const responses = [];
        for (let i = 0; i < n; i += 20) {
          responses.push(...(await Promise.all(Array.from({ length: 20 }, () => get('/split/w')))));
        }
        assert.ok(responses.every((r) => r.status === 200));
        const toA = a.count('/split/w') - before[0];
        const toB = b.count('/split/w') - before[1];
        assert.equal(toA + toB, n);
        // 90 % of 1000 = 900, sd 9.5: 6 sd either side.
        assert.ok(toA >= 843 && toA <= 957, `${toA} of ${n} to split-a`);
        const lines = await Promise.all(responses.slice(0, 20).map((r) => e2e.waitForLog(r.id)));
        for (const [r, line] of responses.slice(0, 20).map((r, i) => [r, lines[i]])) {
          assert.equal(line.origin, JSON.parse(r.body).origin, JSON.stringify(line));
        }
      });

      test('a sticky key value always reaches the same origin; values spread over both', async () => {
        const seen = new Map();
        for (let round = 0; round < 3; round++) {
          for (let u = 0; u < 30; u++) {
            const res = await get('/split/s', { 'x-user': `user-${u}` });
            assert.equal(res.status, 200);
            const served = JSON.parse(res.body).origin;
            if (!seen.has(u)) seen.set(u, served);
            assert.equal(served, seen.get(u), `user-${u} moved in round ${round}`);
          }
        }
        const onA = [...seen.values()].filter((s) => s === 'split-a').length;
        assert.ok(onA > 0 && onA < 30, `${onA} of 30 users on split-a`);
      });
    });
  },
};
