// Rate limits end to end: exact per isolate under concurrency, independent keys,
// fixed windows aligned to the clock, counts that survive a restart through KV, and
// KV written at most once per second per counter.
//
// The gateway logs every KV write of a counter as {"event":"kv_write","key":"rl:..."}
// (captured with their arrival time in e2e.wrangler.events). Counter keys are
// rl:{route_id}:{hash}:{window_s}:{window index}; every route here has its own id,
// so a key prefix names the route's counters.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { assertProblem, header } from '../assert.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tag = crypto.randomBytes(3).toString('hex');
let seq = 0;
const newId = (name) => `rl-${name}-${tag}-${++seq}`;

const LIMITS = {
  burst: { requests: 50, window_s: 60, key: 'ip' },
  ip: { requests: 2, window_s: 300, key: 'ip' },
  header: { requests: 2, window_s: 300, key: 'header:x-api-key' },
  route: { requests: 3, window_s: 300, key: 'route' },
  window: { requests: 2, window_s: 3, key: 'ip' },
  durable: { requests: 3, window_s: 3600, key: 'ip' },
  writes: { requests: 1_000_000, window_s: 60, key: 'header:x-api-key' },
};

/** The end of the window (ms) that `at` falls in; windows are aligned to window_s on the epoch. */
const windowEnd = (windowS, at = Date.now()) => (Math.floor(at / (windowS * 1000)) + 1) * windowS * 1000;

/** Waits for the next window when fewer than `needMs` are left in the current one. */
async function roomInWindow(windowS, needMs) {
  const end = windowEnd(windowS);
  if (end - Date.now() < needMs) await sleep(end - Date.now() + 100);
}

/** A response header that must be a non-negative integer. */
function intHeader(res, name, label) {
  const value = header(res, name);
  assert.ok(value !== null && value !== undefined, `${name} is missing (${label})`);
  assert.match(value, /^\d+$/, `${name}: ${JSON.stringify(value)} (${label})`);
  return Number(value);
}

/** The rate-limit headers every response of a limited route carries. */
function limitHeaders(res, label) {
  return {
    limit: intHeader(res, 'ratelimit-limit', label),
    remaining: intHeader(res, 'ratelimit-remaining', label),
    reset: intHeader(res, 'ratelimit-reset', label),
  };
}

export default {
  name: 'ratelimit',
  servers: ['rl-burst', 'rl-echo'],
  config: ({ servers }) => ({
    origins: {
      'rl-burst': { regions: [{ name: 'local', url: servers['rl-burst'].url, serves: ['*'] }] },
      'rl-echo': { regions: [{ name: 'local', url: servers['rl-echo'].url, serves: ['*'] }] },
    },
    routes: [
      { id: 'rl-burst', path: '/rl/burst', methods: ['GET'], origin: 'rl-burst', rate_limit: LIMITS.burst },
      ...['ip', 'header', 'route', 'window', 'durable', 'writes'].map((name) => ({
        id: `rl-${name}`,
        path: `/rl/${name}`,
        methods: ['GET'],
        origin: 'rl-echo',
        rate_limit: LIMITS[name],
      })),
    ],
  }),

  tests(e2e) {
    const echo = () => e2e.servers['rl-echo'];

    /** GET /rl/NAME as client `ip`; resolves the raw response with sentAt/receivedAt/id. */
    async function hit(name, { ip, headers = {}, id = newId(name) } = {}) {
      const h = { 'x-request-id': id, ...headers };
      if (ip) h['cf-connecting-ip'] = ip;
      const sentAt = Date.now();
      const res = await e2e.raw({ path: `/rl/${name}`, headers: h });
      return Object.assign(res, { id, sentAt, receivedAt: Date.now() });
    }

    /** Asserts an admitted request: 200 from the origin, the limit, `remaining` if given. */
    function admitted(res, name, { remaining, label = name } = {}) {
      assert.equal(res.status, 200, `${label}: ${res.status} ${res.text().slice(0, 200)}`);
      const h = limitHeaders(res, label);
      assert.equal(h.limit, LIMITS[name].requests, `ratelimit-limit (${label})`);
      if (remaining !== undefined) assert.equal(h.remaining, remaining, `ratelimit-remaining (${label})`);
      assert.ok(h.reset >= 1 && h.reset <= LIMITS[name].window_s, `ratelimit-reset ${h.reset} (${label})`);
      assert.equal(header(res, 'retry-after'), null, `no retry-after on a 200 (${label})`);
      return h;
    }

    /** Asserts a refused request: 429 problem+json with retry-after = ratelimit-reset, nothing left. */
    async function limited(res, name, { label = name } = {}) {
      await assertProblem(res, 429, { label });
      const h = limitHeaders(res, label);
      assert.equal(h.limit, LIMITS[name].requests, `ratelimit-limit (${label})`);
      assert.equal(h.remaining, 0, `ratelimit-remaining (${label})`);
      const retry = intHeader(res, 'retry-after', label);
      assert.ok(retry >= 1 && retry <= LIMITS[name].window_s, `retry-after ${retry} (${label})`);
      assert.equal(retry, h.reset, `retry-after equals ratelimit-reset (${label})`);
      return { ...h, retry };
    }

    /** The kv_write events of a route's counters (from event index `since`). */
    const writesOf = (route, since = 0) =>
      e2e.wrangler.events.slice(since).filter((e) => e.value.event === 'kv_write' && e.value.key?.startsWith(`rl:${route}:`));
    const kvErrorsOf = (route, since = 0) =>
      e2e.wrangler.events.slice(since).filter((e) => e.value.event === 'kv_error' && String(e.value.key ?? '').startsWith(`rl:${route}:`));
    const nextWrite = (route, since, timeoutMs = 5000) =>
      e2e.wrangler.waitForEvent((v) => v.event === 'kv_write' && v.key?.startsWith(`rl:${route}:`), { since, timeoutMs });

    describe('exact within an isolate', () => {
      test('200 concurrent requests against 50 a minute: exactly 50 pass, 150 get 429, the origin sees 50', { timeout: 60_000 }, async () => {
        const origin = e2e.servers['rl-burst'];
        // All 200 in one window (a boundary in between would rightly admit more).
        await roomInWindow(60, 15_000);
        const before = origin.count('/rl/burst');
        const ip = '203.0.113.50';
        const results = await Promise.all(Array.from({ length: 200 }, () => hit('burst', { ip })));
        const end = windowEnd(60, results[0].sentAt);
        const lastAt = Math.max(...results.map((r) => r.receivedAt));
        assert.ok(lastAt < end, `the burst took ${lastAt - results[0].sentAt} ms and straddled a window boundary`);
        const ok = results.filter((r) => r.status === 200);
        const refused = results.filter((r) => r.status === 429);
        assert.equal(ok.length, 50, `successes; statuses: ${JSON.stringify(results.map((r) => r.status))}`);
        assert.equal(refused.length, 150, 'refusals');

        for (const res of results) {
          const label = `${res.status} ${res.id}`;
          const h = limitHeaders(res, label);
          assert.equal(h.limit, 50, `ratelimit-limit (${label})`);
          // Seconds to the window's end, rounded up, as seen between sending and receiving.
          const latest = Math.ceil((end - res.sentAt) / 1000);
          const earliest = Math.max(1, Math.ceil((end - res.receivedAt) / 1000));
          assert.ok(h.reset >= earliest - 1 && h.reset <= latest + 1, `ratelimit-reset ${h.reset}, expected ${earliest}..${latest} (${label})`);
        }
        // Each admission took one of the 50: remaining after it is 49, 48, ... 0, once each.
        const remaining = ok.map((r) => admitted(r, 'burst').remaining).sort((a, b) => a - b);
        assert.deepEqual(remaining, Array.from({ length: 50 }, (_, i) => i));
        for (const res of ok) assert.equal(res.json().origin, 'rl-burst');
        for (const res of refused) await limited(res, 'burst', { label: res.id });

        assert.equal(origin.count('/rl/burst') - before, 50, 'requests that reached the origin');

        // The request log names the outcome of each.
        for (const res of results) {
          const line = await e2e.waitForLog(res.id);
          assert.equal(line.route, 'rl-burst');
          assert.equal(line.status, res.status);
          assert.equal(line.rate_limit, res.status === 200 ? 'allowed' : 'limited', res.id);
        }
      });
    });

    describe('keys', () => {
      test('key ip: two client addresses have their own counters', async () => {
        await roomInWindow(300, 5000);
        const before = echo().count('/rl/ip');
        const a = '198.51.100.1';
        const b = '198.51.100.2';
        admitted(await hit('ip', { ip: a }), 'ip', { remaining: 1, label: 'a 1' });
        admitted(await hit('ip', { ip: a }), 'ip', { remaining: 0, label: 'a 2' });
        await limited(await hit('ip', { ip: a }), 'ip', { label: 'a 3' });
        // b is untouched by a's exhaustion, and a stays limited after b's requests.
        admitted(await hit('ip', { ip: b }), 'ip', { remaining: 1, label: 'b 1' });
        admitted(await hit('ip', { ip: b }), 'ip', { remaining: 0, label: 'b 2' });
        await limited(await hit('ip', { ip: b }), 'ip', { label: 'b 3' });
        await limited(await hit('ip', { ip: a }), 'ip', { label: 'a 4' });
        // An IPv6 client is a third key.
        admitted(await hit('ip', { ip: '2001:db8::7' }), 'ip', { remaining: 1, label: 'v6 1' });
        assert.equal(echo().count('/rl/ip') - before, 5, 'requests that reached the origin');
      });

      test('key header:x-api-key: one counter per value; requests without the header share one', async () => {
        await roomInWindow(300, 5000);
        const before = echo().count('/rl/header');
        const key = (value) => ({ 'x-api-key': value });
        admitted(await hit('header', { ip: '198.51.100.10', headers: key('k-one') }), 'header', { remaining: 1, label: 'k-one 1' });
        admitted(await hit('header', { ip: '198.51.100.10', headers: key('k-one') }), 'header', { remaining: 0, label: 'k-one 2' });
        await limited(await hit('header', { ip: '198.51.100.10', headers: key('k-one') }), 'header', { label: 'k-one 3' });
        // Another value from the same address: its own counter (the key is not the address) ...
        admitted(await hit('header', { ip: '198.51.100.10', headers: key('k-two') }), 'header', { remaining: 1, label: 'k-two 1' });
        admitted(await hit('header', { ip: '198.51.100.11', headers: key('k-two') }), 'header', { remaining: 0, label: 'k-two 2' });
        await limited(await hit('header', { ip: '198.51.100.12', headers: key('k-two') }), 'header', { label: 'k-two 3' });
        // ... and the same value from another address: the same, exhausted counter.
        await limited(await hit('header', { ip: '198.51.100.13', headers: key('k-one') }), 'header', { label: 'k-one from elsewhere' });
        // Without the header, every client shares one counter.
        admitted(await hit('header', { ip: '198.51.100.20' }), 'header', { remaining: 1, label: 'none 1' });
        admitted(await hit('header', { ip: '198.51.100.21' }), 'header', { remaining: 0, label: 'none 2' });
        await limited(await hit('header', { ip: '198.51.100.22' }), 'header', { label: 'none 3' });
        await limited(await hit('header', { ip: '198.51.100.20' }), 'header', { label: 'none 4' });
        // The values' counters are untouched by the header-less ones.
        admitted(await hit('header', { ip: '198.51.100.30', headers: key('k-three') }), 'header', { remaining: 1, label: 'k-three 1' });
        assert.equal(echo().count('/rl/header') - before, 7, 'requests that reached the origin');
      });

      test('key route: one counter for every client', async () => {
        await roomInWindow(300, 5000);
        const before = echo().count('/rl/route');
        admitted(await hit('route', { ip: '198.51.100.40' }), 'route', { remaining: 2, label: 'client 1' });
        admitted(await hit('route', { ip: '198.51.100.41', headers: { 'x-api-key': 'a' } }), 'route', { remaining: 1, label: 'client 2' });
        admitted(await hit('route', { ip: '2001:db8::40' }), 'route', { remaining: 0, label: 'client 3' });
        await limited(await hit('route', { ip: '198.51.100.42' }), 'route', { label: 'client 4' });
        await limited(await hit('route', { ip: '198.51.100.40' }), 'route', { label: 'client 1 again' });
        assert.equal(echo().count('/rl/route') - before, 3, 'requests that reached the origin');
      });
    });

    describe('windows', () => {
      test('after the window ends the key is admitted again (3 s windows aligned to the clock)', { timeout: 40_000 }, async () => {
        // One attempt per client address; an attempt whose requests straddle a window
        // boundary (a very slow machine) proves nothing and is made again.
        const attempt = async (ip) => {
          await roomInWindow(3, 2000); // start early in a window
          const first = await hit('window', { ip });
          const end = windowEnd(3, first.sentAt);
          admitted(first, 'window', { remaining: 1, label: 'first' });
          admitted(await hit('window', { ip }), 'window', { remaining: 0, label: 'second' });
          const refused = await hit('window', { ip });
          if (refused.receivedAt >= end) return `requests 1-3 took ${refused.receivedAt - first.sentAt} ms`;
          const { retry } = await limited(refused, 'window', { label: 'third' });
          // retry-after is the seconds to the window's end, rounded up.
          assert.ok(
            retry >= Math.ceil((end - refused.receivedAt) / 1000) && retry <= Math.ceil((end - refused.sentAt) / 1000),
            `retry-after ${retry} for a window ending in ${end - refused.receivedAt} ms`,
          );
          // Waiting retry-after seconds reaches the next window.
          assert.ok(refused.receivedAt + retry * 1000 >= end, 'retry-after ends before the window');
          const wait = Math.max(end, refused.receivedAt + retry * 1000) + 150 - Date.now();
          if (wait > 0) await sleep(wait);
          // Admitted again, with the whole budget of the new window.
          const next = await hit('window', { ip });
          admitted(next, 'window', { remaining: 1, label: 'next window 1' });
          admitted(await hit('window', { ip }), 'window', { remaining: 0, label: 'next window 2' });
          const again = await hit('window', { ip });
          if (again.receivedAt >= end + 3000) return `requests 4-6 took ${again.receivedAt - next.sentAt} ms`;
          await limited(again, 'window', { label: 'next window 3' });
          return null;
        };
        const slow = [];
        for (let n = 0; n < 3; n++) {
          const why = await attempt(`198.51.100.${60 + n}`);
          if (why === null) return;
          slow.push(why);
        }
        assert.fail(`every attempt straddled a window boundary: ${slow.join('; ')}`);
      });
    });

    describe('KV', () => {
      test('KV is written at most once per second per counter under steady traffic', { timeout: 30_000 }, async () => {
        const since = e2e.wrangler.events.length;
        const headers = { 'x-api-key': `steady-${tag}` };
        const sent = new Map(); // request id -> response (sentAt, receivedAt)
        const startedAt = Date.now();
        const stopAt = startedAt + 5000;
        // Four clients in a loop: steady traffic, one counter.
        await Promise.all(
          Array.from({ length: 4 }, async (_, n) => {
            while (Date.now() < stopAt) {
              const res = await hit('writes', { ip: `198.51.100.${70 + n}`, headers });
              sent.set(res.id, res);
              await sleep(5);
            }
          }),
        );
        const stoppedAt = Date.now();
        const statuses = [...sent.values()].map((r) => r.status);
        assert.ok(statuses.every((s) => s === 200), `statuses: ${JSON.stringify(statuses.filter((s) => s !== 200))}`);
        assert.ok(sent.size >= 100, `only ${sent.size} requests in 5 s`);
        // The trailing write follows about a second after the last admission.
        await sleep(2500);

        assert.deepEqual(kvErrorsOf('rl-writes', since).map((e) => e.line), [], 'KV errors');
        const writes = writesOf('rl-writes', since);
        // Writes went on throughout the traffic (one counter, two if a minute boundary fell in it).
        assert.ok(writes.length >= 4, `only ${writes.length} KV writes for ${sent.size} requests over ${stoppedAt - startedAt} ms`);

        // When was each write printed? Its arrival here lags by a varying delay (wrangler's
        // pipe, a busy machine). Its place among the request log lines bounds it better: after
        // the request logged before it was sent, before the request logged after it was
        // answered (a request's line is printed before its response).
        const requestLines = e2e.wrangler.logs.filter((l) => sent.has(l.value.request_id));
        const printed = (w) => {
          let lo = startedAt;
          let hi = w.at;
          for (const l of requestLines) {
            const res = sent.get(l.value.request_id);
            if (l.seq < w.seq) lo = Math.max(lo, res.sentAt);
            else hi = Math.min(hi, res.receivedAt);
          }
          return { lo, hi, at: w.at };
        };
        // The last admissions were written too (a trailing write): the last write started
        // after the last request was sent.
        const lastSent = Math.max(...[...sent.values()].map((r) => r.sentAt));
        const lastWrite = printed(writes.at(-1));
        assert.ok(lastWrite.hi >= lastSent, `the last write was printed ${lastSent - lastWrite.hi} ms before the last request was sent`);
        const byKey = new Map();
        for (const w of writes) byKey.set(w.value.key, [...(byKey.get(w.value.key) ?? []), printed(w)]);
        assert.ok(byKey.size <= 2, `counters written: ${[...byKey.keys()].join(' ')}`);
        for (const [key, list] of byKey) {
          assert.match(key, /^rl:rl-writes:[0-9a-f]{32}:60:\d+$/);
          const show = list.map((t) => `[${t.lo - startedAt}..${t.hi - startedAt}]`).join(' ');
          // Two writes of one counter are at least a second apart (less 100 ms of KV latency
          // jitter), taking the widest gap the log order allows ...
          for (let i = 1; i < list.length; i++) {
            const widest = list[i].hi - list[i - 1].lo;
            assert.ok(widest >= 900, `writes ${i} and ${i + 1} of ${key} at most ${widest} ms apart; printed at (ms) ${show}`);
          }
          // ... and n writes span at least n - 1 seconds.
          const span = list.at(-1).hi - list[0].lo;
          assert.ok((list.length - 1) * 1000 <= span + 100, `${list.length} writes of ${key} within ${span} ms; printed at (ms) ${show}`);
        }
      });

      test('a key exhausted before a restart stays limited after it (counts are in KV)', { timeout: 150_000 }, async () => {
        await roomInWindow(3600, 30_000);
        const before = echo().count('/rl/durable');
        // Exhausts the counter of `ip` so that a write after the first one is sure to carry
        // the full count; resolves that write, or null when this machine was too slow for it.
        const exhaust = async (ip) => {
          const since = e2e.wrangler.events.length;
          const first = await hit('durable', { ip });
          admitted(first, 'durable', { remaining: 2, label: '1' });
          // The first admission is written at once ...
          const firstWrite = await nextWrite('rl-durable', since);
          const key = firstWrite.value.key;
          const index = Math.floor(first.sentAt / 3_600_000);
          assert.match(key, new RegExp(`^rl:rl-durable:[0-9a-f]{32}:3600:${index}$`));
          assert.ok(!key.includes(ip), 'the key carries no client address');
          // ... the next two within the second that spaces it from the next write (which
          // starts after that write, itself after request 1 was sent), so that the next
          // write of the counter starts after the last admission and carries it.
          admitted(await hit('durable', { ip }), 'durable', { remaining: 1, label: '2' });
          const last = await hit('durable', { ip });
          admitted(last, 'durable', { remaining: 0, label: '3' });
          await limited(await hit('durable', { ip }), 'durable', { label: '4, before the restart' });
          const trailing = await nextWrite('rl-durable', firstWrite.index + 1, 5000);
          assert.equal(trailing.value.key, key, 'the same counter');
          assert.ok(trailing.at - firstWrite.at >= 500, `writes ${trailing.at - firstWrite.at} ms apart`);
          return last.receivedAt - first.sentAt < 1000 ? trailing : null;
        };
        let ip;
        for (let n = 0; n < 3 && !ip; n++) {
          if (await exhaust(`198.51.100.${80 + n}`)) ip = `198.51.100.${80 + n}`;
        }
        assert.ok(ip, 'requests 1-3 took a second or more in every attempt');
        assert.deepEqual(kvErrorsOf('rl-durable').map((e) => e.line), [], 'KV errors');
        const reached = echo().count('/rl/durable') - before;

        await e2e.restart();
        const after = await hit('durable', { ip });
        await limited(after, 'durable', { label: 'after the restart' });
        const line = await e2e.waitForLog(after.id);
        assert.equal(line.rate_limit, 'limited');
        // Another client of the route is not limited by it.
        admitted(await hit('durable', { ip: '198.51.100.90' }), 'durable', { remaining: 2, label: 'another client' });
        await limited(await hit('durable', { ip }), 'durable', { label: 'after the restart, again' });
        assert.equal(echo().count('/rl/durable') - before, reached + 1, 'requests that reached the origin');
      });
    });
  },
};
