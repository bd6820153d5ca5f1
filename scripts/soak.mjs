// A bounded soak test: steady load on the full chain for a fixed time, then a
// verdict. Uses the e2e harness to build the Worker and start `wrangler dev`
// in front of an echo origin on 127.0.0.1.
//
//   node scripts/soak.mjs            (make soak)
//
// Two routes share the load:
//   /soak/auth/...    HS256 token -> rate limit (a limit never reached) -> cache
//                     lookup (the origin says no-store: always a MISS) -> origin
//   /soak/cached/...  cache lookup -> mostly HITs, a few MISSes filling it
//
// Fixed concurrency (SOAK_CONCURRENCY, default 16) for a warm-up
// (SOAK_WARMUP_S, default 20) and then the measured run (SOAK_SECONDS, default
// 60). Fails (exit 1) on any unexpected status or request error, or when what is
// alive in the Worker's isolate after a full garbage collection (JavaScript
// objects and ArrayBuffer data, the wasm memory included; read through the
// DevTools inspector of `wrangler dev`) has grown by more than 10 %
// (SOAK_MEMORY_TOLERANCE) from after the warm-up to the end. The resident memory
// of the workerd process is reported too, but not judged: it climbs under load
// for a Worker that only forwards as well (workerd's allocator and V8 keep what
// they reserved), so it cannot tell a leak. Prints a summary either way.
import crypto from 'node:crypto';
import fs from 'node:fs';

import { E2E } from '../tests/e2e/harness.mjs';

const num = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = num('SOAK_SECONDS', 60);
const WARMUP_S = num('SOAK_WARMUP_S', 20);
const CONCURRENCY = num('SOAK_CONCURRENCY', 16);
const TOLERANCE = num('SOAK_MEMORY_TOLERANCE', 0.1);
const REQUEST_TIMEOUT_MS = 10_000;
const SUBJECTS = 16;
const CACHED_IDS = 32;

const SECRET = crypto.randomBytes(32).toString('hex');
const ISSUER = 'https://soak.local/';

function hsToken(sub) {
  const b64u = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ iss: ISSUER, sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

const suite = {
  name: 'soak',
  servers: ['soak-echo'],
  secrets: { SOAK_HS_SECRET: SECRET },
  config: ({ servers }) => ({
    origins: { 'soak-echo': { regions: [{ name: 'local', url: servers['soak-echo'].url, serves: ['*'] }], timeout_ms: 5000 } },
    jwt: { 'soak-hs': { issuer: ISSUER, secret_var: 'SOAK_HS_SECRET', algorithms: ['HS256'], forward_claims: { sub: 'x-soak-user' } } },
    routes: [
      {
        id: 'soak-auth',
        path: '/soak/auth/{*rest}',
        methods: ['GET'],
        origin: 'soak-echo',
        rewrite: '/auth/{rest}',
        auth: { jwt: 'soak-hs' },
        rate_limit: { requests: 1_000_000_000, window_s: 60, key: 'sub' },
        cache: { ttl_s: 60 },
      },
      { id: 'soak-cached', path: '/soak/cached/{id}', methods: ['GET'], origin: 'soak-echo', rewrite: '/cached/{id}', cache: { ttl_s: 3600 } },
    ],
  }),
};

// --- the workerd process and its memory ------------------------------------------

function children(pid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * The `workerd` processes under wrangler (its descendants): `gateway`, the one that
 * runs the Worker, and `proxy`, wrangler's own dev proxy in front of it (the one
 * listening on the public port), when there is one.
 */
function workerdProcesses(root, publicPort) {
  const found = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift();
    for (const child of children(pid)) {
      queue.push(child);
      try {
        if (fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'workerd') {
          found.push({ pid: child, cmdline: fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').replace(/\0/g, ' ') });
        }
      } catch {
        /* gone */
      }
    }
  }
  if (found.length === 1) return { gateway: found[0].pid, proxy: null };
  const isProxy = (p) => p.cmdline.includes(`entry=127.0.0.1:${publicPort} `);
  const gateway = found.filter((p) => !isProxy(p));
  if (gateway.length !== 1) throw new Error(`cannot tell the Worker's workerd among: ${found.map((p) => `${p.pid} ${p.cmdline.slice(0, 160)}`).join('; ')}`);
  return { gateway: gateway[0].pid, proxy: found.find(isProxy)?.pid ?? null };
}

/** VmRSS of `pid` in kB, from /proc/<pid>/status. */
function rssKb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)[1]);
}

/** The median of RSS samples over about five seconds (garbage collection moves it). */
async function sampleRss(pid) {
  const samples = [];
  for (let i = 0; i < 25; i++) {
    samples.push(rssKb(pid));
    await new Promise((r) => setTimeout(r, 200));
  }
  samples.sort((a, b) => a - b);
  return samples[12];
}

// --- the isolate's heap, through the DevTools protocol --------------------------------

/**
 * A DevTools protocol session with the Worker's isolate, through `wrangler dev`'s
 * inspector port. `heap()` takes a heap snapshot (which starts with a full garbage
 * collection) and returns the size of everything still alive: the JavaScript
 * objects and the ArrayBuffer data they hold, the wasm module's linear memory
 * among them. Unlike the process's resident memory, which workerd's allocator and
 * V8 grow and keep under load whatever the Worker does, this only grows when
 * something is kept alive.
 */
async function inspector(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}: ${JSON.stringify(targets)}`);
  // wrangler's inspector proxy wants a local Origin (node's WebSocket takes headers).
  const ws = new WebSocket(url, { headers: { origin: 'http://localhost' } });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', (e) => reject(new Error(`inspector: ${e.message ?? 'cannot connect'}`)), { once: true });
  });
  let next = 1_000_000; // far from the ids wrangler's proxy uses for its own commands
  const pending = new Map();
  let chunks = [];
  ws.addEventListener('message', (event) => {
    const msg = JSON.parse(typeof event.data === 'string' ? event.data : event.data.toString());
    if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') {
      chunks.push(msg.params.chunk);
      return;
    }
    const waiter = msg.id !== undefined && pending.get(msg.id);
    if (!waiter) return; // other events (console messages, network) are not needed
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${waiter.method}: ${JSON.stringify(msg.error)}`));
    else waiter.resolve(msg.result);
  });
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
      setTimeout(() => pending.has(id) && (pending.delete(id), reject(new Error(`${method}: no answer in 60 s`))), 60_000);
    });
  await call('HeapProfiler.enable');
  return {
    async heap() {
      chunks = [];
      await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      const snapshot = JSON.parse(chunks.join(''));
      chunks = [];
      const fields = snapshot.snapshot.meta.node_fields;
      const width = fields.length;
      const sizeAt = fields.indexOf('self_size');
      const nameAt = fields.indexOf('name');
      let total = 0;
      let largestBuffer = 0;
      for (let i = 0; i < snapshot.nodes.length; i += width) {
        const size = snapshot.nodes[i + sizeAt];
        total += size;
        if (snapshot.strings[snapshot.nodes[i + nameAt]] === 'system / JSArrayBufferData') largestBuffer = Math.max(largestBuffer, size);
      }
      return { totalMb: total / 2 ** 20, largestBufferMb: largestBuffer / 2 ** 20 };
    },
    close: () => ws.close(),
  };
}

// --- load ------------------------------------------------------------------------

function newStats() {
  return { requests: 0, statuses: {}, cache: {}, unexpected: [], errors: {}, latencies: [] };
}

async function worker(e2e, index, tokens, shouldStop, stats) {
  let n = 0;
  while (!shouldStop()) {
    n += 1;
    const s = stats();
    const auth = n % 2 === 0;
    const sub = (index + n) % SUBJECTS;
    const target = auth
      ? `/soak/auth/u${sub}/__headers?cache-control=no-store&n=${index}-${n}`
      : `/soak/cached/item-${(index * 7 + n) % CACHED_IDS}`;
    const started = performance.now();
    try {
      const res = await fetch(e2e.url + target, {
        headers: auth ? { authorization: `Bearer ${tokens[sub]}` } : {},
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const body = await res.text();
      s.latencies.push(performance.now() - started);
      s.requests += 1;
      const key = `${auth ? 'auth' : 'cached'} ${res.status}`;
      s.statuses[key] = (s.statuses[key] ?? 0) + 1;
      const xCache = `${auth ? 'auth' : 'cached'} ${res.headers.get('x-cache')}`;
      s.cache[xCache] = (s.cache[xCache] ?? 0) + 1;
      const expectedCache = auth ? ['MISS'] : ['HIT', 'MISS'];
      if (res.status !== 200 || !expectedCache.includes(res.headers.get('x-cache'))) {
        if (s.unexpected.length < 20) s.unexpected.push(`${target} -> ${res.status} x-cache=${res.headers.get('x-cache')} ${body.slice(0, 200)}`);
        else s.unexpected.push('...');
      } else if (auth && !body.includes(`"x-soak-user":"u${sub}"`)) {
        s.unexpected.push(`${target}: the origin did not get x-soak-user u${sub}: ${body.slice(0, 300)}`);
      }
    } catch (e) {
      s.requests += 1;
      const what = e.name === 'TimeoutError' ? 'timeout' : String(e.cause?.code ?? e.message);
      s.errors[what] = (s.errors[what] ?? 0) + 1;
    }
  }
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const e2e = new E2E([suite]);
  let failed = false;
  try {
    await e2e.start();
    const { gateway, proxy } = workerdProcesses(e2e.wrangler.child.pid, e2e.port);
    const proxyRss = () => (proxy ? Number((rssKb(proxy) / 1024).toFixed(1)) : null);
    const tokens = Array.from({ length: SUBJECTS }, (_, i) => hsToken(`u${i}`));
    const devtools = await inspector(e2e.wrangler.inspectorPort);
    const heapStart = await devtools.heap();
    const rssStart = await sampleRss(gateway);
    const proxyStart = proxyRss();

    const warm = newStats();
    const measured = newStats();
    // Load runs in two bursts, warm-up then measured; memory is read between them
    // and after, with no request in flight and background work (KV flushes) done.
    const load = (stats) => {
      let stop = false;
      const clients = Array.from({ length: CONCURRENCY }, (_, i) => worker(e2e, i, tokens, () => stop, () => stats));
      return async () => {
        stop = true;
        await Promise.all(clients);
        await new Promise((r) => setTimeout(r, 1500));
      };
    };
    console.error(`soak: ${CONCURRENCY} clients, ${WARMUP_S} s warm-up, then ${SECONDS} s measured (Worker's workerd pid ${gateway}${proxy ? `, wrangler's proxy workerd pid ${proxy}` : ''})`);
    const stopWarmup = load(warm);
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    await stopWarmup();
    const heapWarm = await devtools.heap();
    const rssWarm = await sampleRss(gateway);
    const proxyWarm = proxyRss();
    console.error(`soak: warmed up (${warm.requests} requests), alive in the isolate after GC ${heapWarm.totalMb.toFixed(2)} MB`);
    const stopMeasured = load(measured);
    const started = Date.now();
    const timeline = [];
    while (Date.now() - started < SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, Math.min(10_000, SECONDS * 1000 - (Date.now() - started))));
      timeline.push({ s: Math.round((Date.now() - started) / 1000), requests: measured.requests, rssKb: rssKb(gateway) });
      console.error(`soak: ${timeline.at(-1).s} s, ${measured.requests} requests, workerd RSS ${(timeline.at(-1).rssKb / 1024).toFixed(1)} MB`);
    }
    const elapsed = (Date.now() - started) / 1000;
    await stopMeasured();
    const heapEnd = await devtools.heap();
    const rssEnd = await sampleRss(gateway);
    const proxyEnd = proxyRss();

    const health = await fetch(`${e2e.url}/__gateway/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status).catch((e) => String(e));
    const lat = measured.latencies.sort((a, b) => a - b);
    const isolate = (h) => h.totalMb;
    const drift = (isolate(heapEnd) - isolate(heapWarm)) / isolate(heapWarm);
    const rssDrift = (rssEnd - rssWarm) / rssWarm;
    devtools.close();
    const errors = Object.values(measured.errors).reduce((a, b) => a + b, 0) + Object.values(warm.errors).reduce((a, b) => a + b, 0);
    const unexpected = measured.unexpected.length + warm.unexpected.length;
    const summary = {
      concurrency: CONCURRENCY,
      warmup: { seconds: WARMUP_S, requests: warm.requests, statuses: warm.statuses, errors: warm.errors },
      measured: {
        seconds: Number(elapsed.toFixed(1)),
        requests: measured.requests,
        per_second: Number((measured.requests / elapsed).toFixed(1)),
        statuses: measured.statuses,
        x_cache: measured.cache,
        errors: measured.errors,
        latency_ms: { p50: Number(percentile(lat, 50).toFixed(1)), p99: Number(percentile(lat, 99).toFixed(1)), max: Number((lat.at(-1) ?? 0).toFixed(1)) },
      },
      // What is alive after a full garbage collection, from heap snapshots taken with
      // no request in flight: JavaScript objects and ArrayBuffer data (the largest
      // buffer is the wasm memory). This is what is checked.
      isolate_mb: Object.fromEntries(
        [['before_load', heapStart], ['after_warmup', heapWarm], ['end', heapEnd]].map(([k, h]) => [k, { alive: Number(h.totalMb.toFixed(2)), largest_array_buffer: Number(h.largestBufferMb.toFixed(2)) }]),
      ),
      isolate_drift_percent: Number((drift * 100).toFixed(1)),
      // The process's resident memory, for information: it climbs under load for a
      // pass-through Worker too (allocator and heap reservations), see bench/README.md.
      workerd_rss_mb: {
        before_load: Number((rssStart / 1024).toFixed(1)),
        after_warmup: Number((rssWarm / 1024).toFixed(1)),
        end: Number((rssEnd / 1024).toFixed(1)),
        drift_percent: Number((rssDrift * 100).toFixed(1)),
        timeline: timeline.map((t) => `${t.s}s:${(t.rssKb / 1024).toFixed(1)}`).join(' '),
      },
      // wrangler's dev proxy, not the gateway: for information only.
      proxy_workerd_rss_mb: proxy ? { before_load: proxyStart, after_warmup: proxyWarm, end: proxyEnd } : null,
      health_after: health,
    };
    console.log(JSON.stringify(summary, null, 2));
    const problems = [];
    if (unexpected) problems.push(`${unexpected} unexpected answers:\n  ${[...warm.unexpected, ...measured.unexpected].slice(0, 20).join('\n  ')}`);
    if (errors) problems.push(`${errors} request errors: ${JSON.stringify({ ...warm.errors, ...measured.errors })}`);
    if (drift > TOLERANCE) problems.push(`the isolate's memory after GC moved ${(drift * 100).toFixed(1)} % (${isolate(heapWarm).toFixed(2)} -> ${isolate(heapEnd).toFixed(2)} MB), more than ${TOLERANCE * 100} %`);
    if (health !== 200) problems.push(`health after the soak: ${health}`);
    if (measured.requests === 0) problems.push('no requests were made');
    if (problems.length) {
      failed = true;
      console.error(`soak: FAILED\n- ${problems.join('\n- ')}`);
    } else {
      console.error(`soak: ok (${measured.requests} requests in ${elapsed.toFixed(0)} s, all 200; isolate memory after GC ${isolate(heapWarm).toFixed(2)} -> ${isolate(heapEnd).toFixed(2)} MB; workerd RSS ${(rssWarm / 1024).toFixed(1)} -> ${(rssEnd / 1024).toFixed(1)} MB)`);
    }
  } catch (e) {
    failed = true;
    console.error(`soak: ${e.stack ?? e}`);
  } finally {
    await e2e.stop();
  }
  process.exit(failed ? 1 : 0);
}

await main();
