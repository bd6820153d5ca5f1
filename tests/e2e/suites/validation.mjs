// The routes file is checked at build time: an invalid one never becomes a Worker.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { run } from '../harness.mjs';

/** Build-time validation: an invalid routes file fails the build, naming each problem. */
export default {
  name: 'routes file validation',
  tests() {
    test('a routes file with an unknown field and an unknown origin fails the build', { timeout: 300_000 }, async () => {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gateway-e2e-bad-'));
      try {
        const bad = path.join(dir, 'routes.json');
        await fsp.writeFile(
          bad,
          JSON.stringify({
            origins: { users: { regions: [{ name: 'eu', url: 'http://127.0.0.1:9', serves: ['*'] }] } },
            routes: [
              { id: 'x', path: '/x', origin: 'users', rate_limt: { requests: 1, window_s: 1 } },
              { id: 'get-user', path: '/api/users/{id}', origin: 'userz' },
            ],
          }),
        );
        // The native build runs the same build script as the Worker build, faster.
        const result = await run('cargo', ['build', '--lib', '--quiet'], { env: { GATEWAY_ROUTES: bad } });
        assert.notEqual(result.code, 0, 'the build must fail');
        assert.match(result.stderr, /route "x": unknown field `rate_limt`/);
        assert.match(result.stderr, /route "get-user": unknown origin "userz"/);
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  },
};
