// Service-binding regions end to end: the gateway reaches another Worker (its
// own `wrangler dev` process in this run's dev registry) through a
// `[[services]]` binding, with the route's rewrite and the gateway's header
// rules, and fails over from it to a URL region when it answers 5xx.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';

import { header, lastRequest } from '../assert.mjs';
import { ROOT } from '../harness.mjs';

export default {
  name: 'services',
  servers: ['svc-fallback'],
  services: [{ binding: 'USERS_SVC', main: path.join(ROOT, 'tests/e2e/workers/echo-service.js'), vars: { SERVICE_NAME: 'users-worker' } }],
  config: ({ servers, deadUrl }) => ({
    origins: {
      'svc-behind-dead': {
        regions: [
          { name: 'dead', url: deadUrl, serves: ['*'] },
          { name: 'binding', service: 'USERS_SVC' },
        ],
      },
      'svc-users': {
        regions: [
          { name: 'binding', service: 'USERS_SVC', serves: ['*'] },
          { name: 'fallback', url: servers['svc-fallback'].url },
        ],
        circuit_breaker: { failures: 3, cooldown_s: 30 },
      },
    },
    routes: [
      { id: 'svc-users', path: '/svc/users/{id}', origin: 'svc-users', rewrite: '/v1/users/{id}' },
      { id: 'svc-status', path: '/svc/status/{code}', origin: 'svc-users', methods: ['GET'], rewrite: '/__status/{code}' },
      { id: 'svc-failover', path: '/svc/failover/{id}', origin: 'svc-behind-dead', methods: ['GET'], rewrite: '/v2/{id}' },
    ],
  }),

  tests(e2e) {
    describe('service-binding regions', () => {
      test('a request goes through the binding with the rewrite and the gateway headers', async () => {
        const res = await e2e.raw({
          method: 'POST',
          path: '/svc/users/42?view=full',
          headers: { 'x-request-id': 'svc-1', 'content-type': 'text/plain', 'x-forwarded-for': '6.6.6.6', connection: 'x-secret', 'x-secret': 'hop' },
          body: 'hello',
        });
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(header(res, 'x-served-by'), 'users-worker');
        const seen = res.json();
        assert.equal(seen.service, 'users-worker');
        assert.equal(seen.method, 'POST');
        assert.equal(seen.path, '/v1/users/42');
        assert.equal(seen.query, '?view=full');
        assert.equal(seen.body, 'hello');
        assert.equal(seen.headers['x-request-id'], 'svc-1');
        assert.notEqual(seen.headers['x-forwarded-for'], '6.6.6.6', 'a forged x-forwarded-for passed');
        assert.ok(seen.headers.traceparent, 'no traceparent');
        const line = await e2e.waitForLog('svc-1');
        assert.equal(line.region, 'binding');
        assert.equal(line.upstream_status, 200);
        assert.equal(e2e.servers['svc-fallback'].count('/v1/users/42'), 0);
      });

      test('a dead URL region fails over to the service region', async () => {
        const res = await e2e.raw({ path: '/svc/failover/9', headers: { 'x-request-id': 'svc-3' } });
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.json().path, '/v2/9');
        assert.equal(res.json().service, 'users-worker');
        const line = await e2e.waitForLog('svc-3');
        assert.deepEqual(line.attempts.map((a) => [a.region, a.status ?? a.error]), [['dead', 'connect'], ['binding', 200]]);
      });

      test('a 5xx from the bound Worker fails over to the URL region', async () => {
        const fallback = e2e.servers['svc-fallback'];
        const before = fallback.count('/__status/503');
        const res = await e2e.raw({ path: '/svc/status/503', headers: { 'x-request-id': 'svc-2' } });
        // The fallback is an echo origin: it answers /__status/503 with 503 too; both were tried.
        assert.equal(res.status, 503);
        assert.equal(fallback.count('/__status/503'), before + 1);
        const line = await e2e.waitForLog('svc-2');
        assert.deepEqual(line.attempts.map((a) => [a.region, a.status]), [['binding', 503], ['fallback', 503]]);
        assert.equal(lastRequest(fallback).path, '/__status/503');
      });
    });
  },
};
