// Global rate limits end to end: two independent `wrangler dev` processes serve
// the same build. The main one hosts the GatewayLimiter Durable Objects; the
// peer (another Worker, its own port, KV and state) binds GATEWAY_LIMITER with
// `script_name` naming the main Worker, reached through the run's dev registry.
// So both gateways count against the same objects, as isolates in different
// locations would in production.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';
import { rawRequest } from '../harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tag = crypto.randomBytes(3).toString('hex');
let seq = 0;
const newId = (name) => `gl-${name}-${tag}-${++seq}`;

const HOUR = 3600;
const LIMITS = {
  burst: { requests: 50, window_s: HOUR, key: 'header:x-gl-key', scope: 'global' },
  kept: { requests: 3, window_s: HOUR, key: 'header:x-gl-key', scope: 'global' },
  open: { requests: 1000, window_s: HOUR, key: 'header:x-gl-key', scope: 'global' },
  deny: { requests: 1000, window_s: HOUR, key: 'header:x-gl-key', scope: 'global', on_error: 'deny' },
};

/** The end of the window (ms) that `at` falls in; windows are aligned on the epoch. */
const windowEnd = (windowS, at = Date.now()) => (Math.floor(at / (windowS * 1000)) + 1) * windowS * 1000;

/** Waits for the next window when fewer than `needMs` are left in the current one. */
async function roomInWindow(windowS, needMs) {
  const end = windowEnd(windowS);
  if (end - Date.now() < needMs) await sleep(end - Date.now() + 100);
}

export default {
  name: 'globallimit',
  servers: ['gl-echo'],
  config: ({ servers }) => ({
    origins: {
      'gl-echo': { regions: [{ name: 'local', url: servers['gl-echo'].url, serves: ['*'] }] },
    },
    routes: Object.keys(LIMITS).map((name) => ({
      id: `gl-${name}`,
      path: `/gl/${name}`,
      methods: ['GET'],
      origin: 'gl-echo',
      rate_limit: LIMITS[name],
    })),
  }),

  tests(e2e) {
    let peer;
    before(async () => {
      peer = await e2e.startPeer();
    }, { timeout: 5 * 60_000 });
    after(() => peer?.stop());

    const echo = () => e2e.servers['gl-echo'];

    /** GET /gl/NAME through the gateway on `port`, with key `key`. */
    async function hit(port, name, key, { id = newId(name) } = {}) {
      const res = await rawRequest(port, { path: `/gl/${name}`, headers: { 'x-request-id': id, 'x-gl-key': key } });
      return Object.assign(res, { id, port });
    }

    /** The log line of a request, from whichever process served it. */
    const logOf = (res) => (res.port === e2e.port ? e2e.wrangler : peer).waitForLog(res.id);

    /**
     * Sends through the peer until its answer was decided by the limiter (not a
     * fail-open while the peer reconnects to a restarted host); resolves it.
     * Each try spends from the budget only when the limiter answered.
     */
    async function viaPeerOnceReachable(name, key, { tries = 60 } = {}) {
      for (let i = 0; i < tries; i++) {
        const res = await hit(peer.port, name, key);
        const line = await logOf(res);
        if (line.rate_limit !== 'limiter_error') return { res, line };
        await sleep(500);
      }
      throw new Error(`the peer never reached the limiter again; last output:\n${peer.output(40)}`);
    }

    describe('exact across two gateway processes', () => {
      test('300 concurrent requests over both processes against 50 an hour: exactly 50 pass', { timeout: 120_000 }, async () => {
        await roomInWindow(HOUR, 60_000);
        const key = `burst-${tag}`;
        const before = echo().count('/gl/burst');
        const ports = [e2e.port, peer.port];
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) => hit(ports[i % 2], 'burst', key)));
        const statuses = results.map((r) => r.status);
        const ok = results.filter((r) => r.status === 200);
        const refused = results.filter((r) => r.status === 429);
        assert.equal(ok.length, 50, `successes; statuses: ${JSON.stringify(statuses)}`);
        assert.equal(refused.length, 250, 'refusals');
        assert.equal(echo().count('/gl/burst') - before, 50, 'requests that reached the origin');
        // The budget is one for both processes: 50 in all (above), and once it is
        // spent each process refuses, also one that admitted none of the burst
        // (which of the two wins the race for the budget is not fixed).
        for (const port of ports) {
          const after = await hit(port, 'burst', key);
          assert.equal(after.status, 429, `process on port ${port} after the burst`);
        }
        for (const res of results) {
          const label = `${res.status} ${res.id}`;
          assert.equal(header(res, 'ratelimit-limit'), '50', `ratelimit-limit (${label})`);
          const reset = Number(header(res, 'ratelimit-reset'));
          assert.ok(reset >= 1 && reset <= HOUR, `ratelimit-reset ${reset} (${label})`);
          assert.match(String(header(res, 'ratelimit-remaining')), /^\d+$/, `ratelimit-remaining (${label})`);
        }
        for (const res of refused) {
          await assertProblem(res, 429, { label: res.id });
          assert.equal(header(res, 'ratelimit-remaining'), '0');
          assert.equal(header(res, 'retry-after'), header(res, 'ratelimit-reset'), `retry-after (${res.id})`);
        }
        // The log lines say what happened, from both processes.
        const lines = await Promise.all(results.map(logOf));
        assert.equal(lines.filter((l) => l.rate_limit === 'allowed').length, 50);
        assert.equal(lines.filter((l) => l.rate_limit === 'limited').length, 250);
        // And the next request of either process is refused too.
        for (const port of ports) assert.equal((await hit(port, 'burst', key)).status, 429);
      });
    });

    describe('the process hosting the limiter stops and starts again', () => {
      test('meanwhile: fail open, logged, or 503 with on_error deny; afterwards the count is kept', { timeout: 240_000 }, async () => {
        await roomInWindow(HOUR, 180_000);
        const key = `kept-${tag}`;
        // Spend the whole budget of 3 through both processes.
        assert.equal((await hit(e2e.port, 'kept', key)).status, 200);
        assert.equal((await hit(peer.port, 'kept', key)).status, 200);
        assert.equal((await hit(e2e.port, 'kept', key)).status, 200);
        assert.equal((await hit(peer.port, 'kept', key)).status, 429);

        await e2e.wrangler.stop();
        try {
          // The limiter cannot be reached from the peer.
          const since = peer.events.length;
          const open = await hit(peer.port, 'open', `open-${tag}`);
          assert.equal(open.status, 200, `fail open: ${open.text().slice(0, 300)}`);
          assert.equal(header(open, 'ratelimit-limit'), '1000');
          const line = await logOf(open);
          assert.equal(line.rate_limit, 'limiter_error', JSON.stringify(line));
          const event = await peer.waitForEvent((v) => v.event === 'limiter_error' && v.route === 'gl-open', { since });
          assert.ok(event.value.error, JSON.stringify(event.value));
          assert.ok(!event.line.includes(`open-${tag}`), 'the key value is not logged');

          const denied = await hit(peer.port, 'deny', `deny-${tag}`);
          const body = await assertProblem(denied, 503, { label: 'on_error deny' });
          assert.equal(body.status, 503);
          assert.equal((await logOf(denied)).rate_limit, 'limiter_error');
        } finally {
          await e2e.wrangler.start();
        }

        // The same persisted state: the budget of 3 is still spent, for both processes.
        const main = await hit(e2e.port, 'kept', key);
        assert.equal(main.status, 429, `after the restart: ${main.status} ${main.text().slice(0, 200)}`);
        assert.equal((await logOf(main)).rate_limit, 'limited');
        const { res, line } = await viaPeerOnceReachable('kept', key);
        assert.equal(res.status, 429);
        assert.equal(line.rate_limit, 'limited');
        // And a fresh key still has its budget (the limiter works, it is not just refusing).
        const fresh = await hit(e2e.port, 'kept', `fresh-${tag}`);
        assert.equal(fresh.status, 200);
        assert.equal(header(fresh, 'ratelimit-remaining'), '2');
      });
    });
  },
};
