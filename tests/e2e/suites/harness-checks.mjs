// Checks of the harness itself, run last: what later suites rely on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

/** The harness itself: what later suites rely on (restart keeps serving, logs keep flowing). */
export default {
  name: 'harness',
  tests(e2e) {
    test('restart() stops and starts wrangler dev on the same port', { timeout: 120_000 }, async () => {
      await e2e.restart();
      const res = await e2e.fetch('/__gateway/health', { headers: { 'x-request-id': 'after-restart' } });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).status, 'ok');
      const line = await e2e.waitForLog('after-restart');
      assert.equal(line.status, 200);
    });
  },
};
