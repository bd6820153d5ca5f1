// `make bench`: the gateway against the floors any implementation of the
// contract pays and against the JavaScript gateways users would otherwise write.
// See bench/README.md.
//
// On 127.0.0.1, every selected Worker started once and kept running (each its
// own wrangler and workerd processes, in its own process group, on its own
// ports), then BENCH_ROUNDS interleaved rounds: each round measures every
// selected contestant once, in a shuffled order, so that a noisy machine spreads
// its noise over all of them instead of favouring whoever ran in a quiet minute.
// Contestants:
//   1. direct to the origin;
//   2. JavaScript floors: a pass-through Worker, the same + a log line, floor (a)
//      (+ a request id both ways, `new Response(r.body, r)`) and floor (b)
//      ((a) + the gateway's log line), which any implementation of the contract pays,
//      and the cache floor (`caches.default.match` and nothing else);
//   3. Hono peers: JWT HS256 + KV rate limit + proxy, the same without the limit,
//      and the stronger peer with an in-isolate limiter;
//   4. this gateway: routing only, each JWT algorithm (same token, new tokens),
//      rate limits, cache hit, API keys, bodies, hedging, and the full chain
//      (JWT HS256 + rate limit + forward), which does the work of contestants 3.
// Every figure is the median over the rounds with its spread (min-max), and a
// ratio to floor (b) and to the pass-through Worker, computed per round against
// that round's reference and then reduced to their median.
// Then the per-request counts (crossings.mjs: calls into JavaScript, strings,
// Headers/Request/Response objects), the native criterion bench
// (benches/routing.rs), the wasm size, the results table (bench/results.md) and
// the latency chart (bench/latency.png).
//
// Settings (environment): BENCH_RUNNER=direct|cli, BENCH_ROUNDS (5),
// BENCH_DURATION (s per measurement, 3), BENCH_WARMUP (s, 2), BENCH_SEED (1, the
// rounds' order), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
// BENCH_ONLY (comma-separated contestant ids), BENCH_CRITERION=0 (skip it),
// BENCH_CHART=0 (skip the chart), BENCH_ORIGIN_PORT (18480), BENCH_PERF=1 (also
// record `perf` profiles of the Worker's workerd into bench/out/perf-*.txt, in
// the last round; the profiler's overhead then inflates that round's CPU figures
// a little), BENCH_CROSSINGS=0 (skip the per-request counts), BENCH_OPENSSL=0
// (skip `openssl speed` for the ES384 target).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

import { countCrossings, instrumentedBuild, instrumentedJs, selfCheck } from './crossings.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const OUT = path.join(BENCH, 'out');
const env = (name, fallback) => (process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]);
const opts = {
  runner: env('BENCH_RUNNER', 'direct'),
  rounds: Number(env('BENCH_ROUNDS', '5')),
  duration: Number(env('BENCH_DURATION', '3')),
  warmup: Number(env('BENCH_WARMUP', '2')),
  seed: Number(env('BENCH_SEED', '1')),
  connections: Number(env('BENCH_CONNECTIONS', '32')),
  threads: Number(env('BENCH_THREADS', '2')),
  only: env('BENCH_ONLY', '').split(',').map((s) => s.trim()).filter(Boolean),
  criterion: env('BENCH_CRITERION', '1') !== '0',
  chart: env('BENCH_CHART', '1') !== '0',
  originPort: Number(env('BENCH_ORIGIN_PORT', '18480')),
  perf: env('BENCH_PERF', '0') !== '0',
  crossings: env('BENCH_CROSSINGS', '1') !== '0',
  openssl: env('BENCH_OPENSSL', '1') !== '0',
};
if (!(Number.isInteger(opts.rounds) && opts.rounds >= 1)) throw new Error(`BENCH_ROUNDS must be a whole number >= 1, not ${process.env.BENCH_ROUNDS}`);
if (!['direct', 'cli'].includes(opts.runner)) throw new Error(`BENCH_RUNNER must be direct or cli, not ${opts.runner}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('bench:', ...a);
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const ISSUER = 'https://bench.example/';
const AUDIENCE = 'bench';
const HIGH_LIMIT = { requests: 100_000_000, window_s: 60, key: 'route' };
const ADMIN_TOKEN = 'bench-admin-' + crypto.randomBytes(12).toString('hex');
// The validation contestants: a 2 KB JSON body and a schema it satisfies.
const BENCH_SCHEMA = {
  type: 'object',
  required: ['id', 'name', 'items'],
  properties: {
    id: { type: 'integer', minimum: 1 },
    name: { type: 'string', minLength: 1, maxLength: 64 },
    tags: { type: 'array', items: { type: 'string', pattern: '^[a-z]+$' } },
    items: {
      type: 'array',
      maxItems: 100,
      items: { type: 'object', required: ['sku', 'qty'], properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 0 } }, additionalProperties: false },
    },
  },
};
const BENCH_BODY = (() => {
  const items = [];
  for (let i = 0; JSON.stringify(items).length < 1900; i++) items.push({ sku: `sku-${String(i).padStart(6, '0')}`, qty: i % 17 });
  return JSON.stringify({ id: 42, name: 'bench order', tags: ['a', 'b'], items });
})();
// Hedging contestants: the nearest region's delay and the hedge's after_ms.
const SLOW_REGION_MS = 50;
const HEDGE_AFTER_MS = 10;
// Latency, not throughput, is what hedging is for: these two run with few
// connections, so the machine is not saturated and the origin's delay shows.
const HEDGE_CONNECTIONS = 4;
// The gateway Worker's bindings: KV, and the limiter objects of global limits and quotas.
const GATEWAY_BINDINGS = [
  '', '[[kv_namespaces]]', 'binding = "GATEWAY_KV"', 'id = "bench-gateway"',
  '', '[[durable_objects.bindings]]', 'name = "GATEWAY_LIMITER"', 'class_name = "GatewayLimiter"',
  '', '[[migrations]]', 'tag = "v1"', 'new_sqlite_classes = ["GatewayLimiter"]',
];

/** Creates a consumer on `plan` through the admin API of the gateway at `base`; resolves its key. */
async function benchKey(base, plan) {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const id = `bench-${crypto.randomBytes(4).toString('hex')}`;
  const made = await fetch(`${base}/__gateway/consumers`, { method: 'POST', headers: admin, body: JSON.stringify({ id, plan }) });
  if (made.status !== 201) throw new Error(`creating a bench consumer: ${made.status} ${await made.text()}`);
  const key = await fetch(`${base}/__gateway/consumers/${id}/keys`, { method: 'POST', headers: admin });
  if (key.status !== 201) throw new Error(`creating a bench key: ${key.status} ${await key.text()}`);
  return (await key.json()).key;
}

// --- processes -----------------------------------------------------------------
// Children run in their own process groups, so wrangler and its workerd children
// can be stopped together; whatever is left is killed at exit.

const live = new Set();
let scratchDir = null;
process.on('exit', () => {
  for (const child of live) signalGroup(child.pid, 'SIGKILL');
  if (scratchDir) fs.rmSync(scratchDir, { recursive: true, force: true });
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.once(signal, () => process.exit(code));
}

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function start(cmd, args, { cwd = ROOT, extraEnv = {}, logFile } = {}) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', FORCE_COLOR: '0', NO_COLOR: '1', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.output = '';
  const out = logFile ? fs.createWriteStream(logFile) : null;
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk) => {
      child.output += chunk.toString();
      if (child.output.length > 1e6) child.output = child.output.slice(-5e5);
      out?.write(chunk);
    });
  }
  child.once('close', () => out?.end());
  return child;
}

async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    if (child) signalGroup(child.pid, 'SIGKILL');
    return;
  }
  const gone = new Promise((r) => child.once('exit', r));
  signalGroup(child.pid, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
  signalGroup(child.pid, 'SIGKILL'); // any workerd left in the group
}

/** Runs a command to completion; rejects on a non-zero exit with the tail of its output. */
function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = start(cmd, args, options);
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(child.output);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${child.output.split('\n').slice(-40).join('\n')}`));
    });
  });
}

/** The processes of a process group: [{pid, comm, ticks}] (ticks = utime + stime). */
function groupProcesses(pgid) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' '); // fields[0] is field 3 (state)
    if (Number(fields[2]) !== pgid) continue;
    found.push({ pid: Number(entry), comm, ticks: Number(fields[11]) + Number(fields[12]) });
  }
  return found;
}

function ticksOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

/** TCP ports a process listens on (from /proc/net/tcp{,6} and its socket fds). */
function listeningPorts(pid) {
  const inodes = new Set();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
        if (m) inodes.add(m[1]);
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    return [];
  }
  const ports = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue; // 0A = LISTEN
      if (inodes.has(cols[9])) ports.push(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// --- tokens ----------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function signJwt(alg, key, kid, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) };
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'bench-user', iat: now, exp: now + 24 * 3600, scope: 'bench', ...extra };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let signature;
  if (alg === 'HS256') signature = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'ES256') signature = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'ES384') signature = crypto.sign('sha384', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'RS256') signature = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'PS256') signature = crypto.sign('sha256', Buffer.from(input), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  else if (alg === 'EdDSA') signature = crypto.sign(null, Buffer.from(input), key);
  else throw new Error(alg);
  return `${input}.${b64url(signature)}`;
}

/** Keys are kept in bench/out/keys.json so that the routes file, and so the build, stay the same between runs. */
async function loadKeys() {
  const file = path.join(OUT, 'keys.json');
  let keys;
  try {
    keys = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch {
    keys = {};
  }
  // Keys added to the bench later are generated into an existing file too.
  const pem = (pair) => pair.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const wanted = {
    hmacSecret: () => crypto.randomBytes(32).toString('base64url'),
    ecPrivatePem: () => pem(crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' })),
    ec384PrivatePem: () => pem(crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' })),
    rsaPrivatePem: () => pem(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })),
    edPrivatePem: () => pem(crypto.generateKeyPairSync('ed25519')),
  };
  let added = false;
  for (const [name, make] of Object.entries(wanted)) {
    if (!keys[name]) {
      keys[name] = make();
      added = true;
    }
  }
  if (added) await fsp.writeFile(file, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600 });
  const ecPrivate = crypto.createPrivateKey(keys.ecPrivatePem);
  const ec384Private = crypto.createPrivateKey(keys.ec384PrivatePem);
  const rsaPrivate = crypto.createPrivateKey(keys.rsaPrivatePem);
  const edPrivate = crypto.createPrivateKey(keys.edPrivatePem);
  const jwk = (priv, extra) => ({ ...crypto.createPublicKey(priv).export({ format: 'jwk' }), use: 'sig', ...extra });
  return {
    signers: {
      HS256: [keys.hmacSecret, undefined],
      ES256: [ecPrivate, 'bench-es'],
      ES384: [ec384Private, 'bench-es384'],
      RS256: [rsaPrivate, 'bench-rs'],
      PS256: [rsaPrivate, 'bench-ps'],
      EdDSA: [edPrivate, 'bench-ed'],
    },
    hmacSecret: keys.hmacSecret,
    ecJwk: jwk(ecPrivate, { kid: 'bench-es', alg: 'ES256' }),
    ec384Jwk: jwk(ec384Private, { kid: 'bench-es384', alg: 'ES384' }),
    rsaJwk: jwk(rsaPrivate, { kid: 'bench-rs', alg: 'RS256' }),
    psJwk: jwk(rsaPrivate, { kid: 'bench-ps', alg: 'PS256' }),
    edJwk: jwk(edPrivate, { kid: 'bench-ed', alg: 'EdDSA' }),
    tokens: {
      HS256: signJwt('HS256', keys.hmacSecret),
      ES256: signJwt('ES256', ecPrivate, 'bench-es'),
      ES384: signJwt('ES384', ec384Private, 'bench-es384'),
      RS256: signJwt('RS256', rsaPrivate, 'bench-rs'),
      PS256: signJwt('PS256', rsaPrivate, 'bench-ps'),
      EdDSA: signJwt('EdDSA', edPrivate, 'bench-ed'),
    },
  };
}

// Requests per second a token route serves at most here when every token is new,
// with some headroom: how many distinct tokens a warm-up or measurement needs.
const NEW_TOKEN_RATE = { HS256: 2200, ES256: 800, ES384: 350, RS256: 1000, PS256: 1000, EdDSA: 1500 };

/**
 * Files of distinct tokens (one per line) for the warm-up and for each round's
 * measurement of `alg`: no token is sent twice in a run. The warm-up file has at
 * least 250 (bench/crossings.mjs counts with them).
 */
async function newTokenFiles(keys, alg) {
  const [key, kid] = keys.signers[alg];
  const write = async (phase, seconds, offset) => {
    const count = Math.max(250, Math.ceil(NEW_TOKEN_RATE[alg] * seconds * 1.2));
    const lines = [];
    for (let i = 0; i < count; i++) lines.push(signJwt(alg, key, kid, { jti: `${phase}-${offset + i}` }));
    const file = path.join(OUT, `tokens-${alg}-${phase}.txt`);
    await fsp.writeFile(file, lines.join('\n') + '\n');
    return file;
  };
  const measure = [];
  for (let round = 0; round < opts.rounds; round++) measure.push(await write(`measure-${round + 1}`, opts.duration, (round + 1) * 1e9));
  return { warmup: await write('warmup', opts.warmup, 0), measure };
}

// --- the gateway's routes file -----------------------------------------------------

function gatewayRoutes(originUrl, keys) {
  const route = (id, extra = {}) => ({ id: `bench-${id}`, path: `/bench/${id}/{id}`, methods: ['GET'], origin: 'bench', ...extra });
  // Other services' routes, so the table is not trivially small (static, param, catch-all).
  const filler = [];
  for (let i = 0; i < 25; i++) {
    filler.push({ id: `svc${i}-list`, path: `/svc${i}/items`, methods: ['GET'], origin: 'bench' });
    filler.push({ id: `svc${i}-item`, path: `/svc${i}/items/{id}`, methods: ['GET', 'PUT', 'DELETE'], origin: 'bench' });
    filler.push({ id: `svc${i}-sub`, path: `/svc${i}/items/{id}/parts/{part}`, methods: ['GET'], origin: 'bench' });
    filler.push({ id: `svc${i}-files`, path: `/svc${i}/files/{*rest}`, methods: ['GET'], origin: 'bench' });
  }
  return {
    origins: {
      bench: { regions: [{ name: 'local', url: originUrl }], timeout_ms: 10000 },
      // The nearest region answers after SLOW_REGION_MS, the next at once.
      'bench-slow': { regions: [{ name: 'slow', url: `${originUrl}/__slow/${SLOW_REGION_MS}`, serves: ['*'] }, { name: 'fast', url: originUrl }], timeout_ms: 10000 },
      'bench-hedged': {
        regions: [{ name: 'slow', url: `${originUrl}/__slow/${SLOW_REGION_MS}`, serves: ['*'] }, { name: 'fast', url: originUrl }],
        timeout_ms: 10000,
        hedge: { after_ms: HEDGE_AFTER_MS, budget_percent: 100 },
      },
    },
    jwt: {
      'bench-hs256': { issuer: ISSUER, audiences: [AUDIENCE], secret_var: 'BENCH_JWT_SECRET', algorithms: ['HS256'] },
      'bench-es256': { issuer: ISSUER, audiences: [AUDIENCE], keys: { keys: [keys.ecJwk] }, algorithms: ['ES256'] },
      'bench-rs256': { issuer: ISSUER, audiences: [AUDIENCE], keys: { keys: [keys.rsaJwk] }, algorithms: ['RS256'] },
      'bench-es384': { issuer: ISSUER, audiences: [AUDIENCE], keys: { keys: [keys.ec384Jwk] }, algorithms: ['ES384'] },
      'bench-ps256': { issuer: ISSUER, audiences: [AUDIENCE], keys: { keys: [keys.psJwk] }, algorithms: ['PS256'] },
      'bench-eddsa': { issuer: ISSUER, audiences: [AUDIENCE], keys: { keys: [keys.edJwk] }, algorithms: ['EdDSA'] },
    },
    plans: {
      'bench-plain': {},
      'bench-quota': { quota: { requests: 100_000_000, period: 'month' } },
    },
    routes: [
      route('route'),
      route('hs256', { auth: { jwt: 'bench-hs256' } }),
      route('es256', { auth: { jwt: 'bench-es256' } }),
      route('rs256', { auth: { jwt: 'bench-rs256' } }),
      route('es384', { auth: { jwt: 'bench-es384' } }),
      route('ps256', { auth: { jwt: 'bench-ps256' } }),
      route('eddsa', { auth: { jwt: 'bench-eddsa' } }),
      route('ratelimit', { rate_limit: HIGH_LIMIT }),
      route('cache', { cache: { ttl_s: 3600 } }),
      route('full', { auth: { jwt: 'bench-hs256' }, rate_limit: HIGH_LIMIT }),
      route('global', { rate_limit: { ...HIGH_LIMIT, scope: 'global' } }),
      route('apikey', { auth: { api_key: { plans: ['bench-plain'] } } }),
      route('unhedged', { origin: 'bench-slow' }),
      route('post', { methods: ['POST'] }),
      route('validated', { methods: ['POST'], validate: { body: BENCH_SCHEMA } }),
      route('hedged', { origin: 'bench-hedged' }),
      route('apikey-quota', { auth: { api_key: { plans: ['bench-quota'] } } }),
      ...filler,
    ],
  };
}

/**
 * `make build` embedding the routes file; checks the wasm really embeds it (the target
 * dir is shared): the build embeds it re-serialized, so its distinctive strings (the
 * origin URL, the public keys) are looked for.
 */
async function buildGateway(routesFile, buildDir) {
  const routes = JSON.parse(await fsp.readFile(routesFile, 'utf8'));
  const markers = [
    ...Object.values(routes.origins).flatMap((o) => o.regions.map((r) => r.url)),
    ...Object.values(routes.jwt ?? {}).flatMap((p) => (p.keys?.keys ?? []).map((k) => k.x ?? k.n)),
  ].map((m) => Buffer.from(JSON.stringify(m)));
  for (let attempt = 1; ; attempt++) {
    const t0 = Date.now();
    await run('make', ['--no-print-directory', 'build', `BUILD_DIR=${buildDir}`], {
      extraEnv: { GATEWAY_ROUTES: routesFile },
      logFile: path.join(OUT, 'build.log'),
    });
    const wasm = await fsp.readFile(path.join(buildDir, 'index_bg.wasm'));
    if (markers.every((m) => wasm.includes(m))) return Date.now() - t0;
    if (attempt >= 2) throw new Error(`${buildDir}/index_bg.wasm does not embed ${routesFile} (a concurrent build?)`);
    log('the wasm does not embed the bench routes (another build got in between); building again');
  }
}

// --- Workers under wrangler -----------------------------------------------------------

/**
 * Starts a Worker; resolves once `probe` answers 200 on wrangler's port, with the
 * time from process start to that first 200 and the URL the load goes to.
 */
async function startWorker({ name, configFile, vars, probe }) {
  const port = await freePort();
  const persist = path.join(scratchDir, `${name}-state`);
  const logFile = path.join(OUT, `${name}.${opts.runner}.log`);
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]);
  const t0 = performance.now();
  let child;
  if (opts.runner === 'cli') {
    child = start('npx', ['--no-install', 'wrangler', 'dev', '--config', configFile, '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(await freePort()), '--persist-to', persist, '--show-interactive-dev-session=false', ...varArgs],
    { cwd: path.dirname(configFile), logFile, extraEnv: { WRANGLER_LOG_PATH: path.join(scratchDir, `${name}-wrangler-logs`) } });
  } else {
    child = start(process.execPath, [path.join(BENCH, 'serve.mjs'), '--config', configFile, '--port', String(port), '--persist', persist, ...varArgs],
      { cwd: path.dirname(configFile), logFile, extraEnv: { WRANGLER_LOG_PATH: path.join(scratchDir, `${name}-wrangler-logs`) } });
  }
  const publicUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  let firstMs = null;
  let firstRequestMs = null;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name}: wrangler exited (${child.exitCode}):\n${child.output.slice(-3000)}`);
    const r0 = performance.now();
    try {
      const res = await fetch(publicUrl + probe.path, { headers: probe.headers ?? {}, signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status === 200) {
        firstMs = performance.now() - t0;
        firstRequestMs = performance.now() - r0;
        break;
      }
      last = `status ${res.status}`;
    } catch (e) {
      last = String(e.cause?.code ?? e.message);
    }
    await sleep(20);
  }
  if (firstMs === null) {
    await stop(child);
    throw new Error(`${name}: no 200 from ${probe.path} within 120 s (last: ${last}):\n${child.output.slice(-3000)}`);
  }
  // The Worker's own workerd: the one not listening on wrangler's public port.
  let workerPids = [];
  for (let i = 0; i < 50 && !workerPids.length; i++) {
    const procs = groupProcesses(child.pid).filter((p) => p.comm === 'workerd');
    const withPorts = procs.map((p) => ({ ...p, ports: listeningPorts(p.pid) }));
    workerPids = withPorts.filter((p) => p.ports.length && !p.ports.includes(port));
    if (!workerPids.length) await sleep(100);
  }
  if (workerPids.length !== 1) {
    log(`${name}: expected one Worker workerd, found ${workerPids.length}; CPU/request covers all workerd processes`);
  }
  const workerPort = workerPids.length === 1 ? workerPids[0].ports[0] : null;
  const url = opts.runner === 'direct' && workerPort ? `http://127.0.0.1:${workerPort}` : publicUrl;
  return { name, child, url, publicUrl, workerPids: workerPids.map((p) => p.pid), firstMs, firstRequestMs };
}

function cpuSnapshot(worker, originPid) {
  const procs = groupProcesses(worker.child.pid);
  const sum = (pred) => procs.filter(pred).reduce((n, p) => n + p.ticks, 0);
  return {
    worker: worker.workerPids.length ? sum((p) => worker.workerPids.includes(p.pid)) : sum((p) => p.comm === 'workerd'),
    workerd: sum((p) => p.comm === 'workerd'),
    node: sum((p) => p.comm === 'node' || p.comm === 'npm exec' || p.comm.startsWith('npx')),
    origin: ticksOf(originPid),
  };
}

// --- load ------------------------------------------------------------------------------

async function wrk(url, headers, seconds, tokensFile, connections = opts.connections, bodyFile = null) {
  const threads = Math.min(opts.threads, connections);
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s', '--latency', '-s', path.join(BENCH, 'wrk-report.lua')];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const extraEnv = tokensFile ? { WRK_TOKENS: tokensFile, WRK_THREADS: String(threads) } : {};
  if (bodyFile) extraEnv.WRK_BODY_FILE = bodyFile;
  const output = await run('wrk', args, { extraEnv });
  const line = output.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no WRK_JSON line:\n${output}`);
  const result = JSON.parse(line.slice('WRK_JSON '.length));
  result.text = output.split('\n').filter((l) => !l.startsWith('WRK_JSON ')).join('\n');
  return result;
}

/** Checks a contestant answers as expected, then loads it for `opts.warmup` seconds. */
async function warmUp(contestant, target) {
  const url = target.url + contestant.path;
  const headers = contestant.headers ?? {};
  if (contestant.prepare) await contestant.prepare(url, headers);
  log(`${contestant.id}: warm-up ${opts.warmup} s on ${url}`);
  await wrk(url, headers, opts.warmup, contestant.tokens?.warmup, contestant.connections, contestant.bodyFile);
}

/**
 * One measurement of `contestant` (round `round`, from 0). `neighbours` are the
 * other running Workers: their workerd CPU over the same window is recorded, to
 * show that the CPU per request is this Worker's own (it should be about 0).
 */
async function measure(contestant, target, originPid, round, neighbours = []) {
  const url = target.url + contestant.path;
  const headers = contestant.headers ?? {};
  let perf = null;
  if (opts.perf && round === opts.rounds - 1 && target.workerPids?.length === 1) {
    const data = path.join(OUT, `perf-${contestant.id}.data`);
    perf = start('perf', ['record', '-F', env('BENCH_PERF_FREQ', '999'), '-p', String(target.workerPids[0]), '-o', data, '--', 'sleep', String(opts.duration)]);
    perf.data = data;
    await sleep(300);
  }
  const neighbourTicks = () => neighbours.reduce((n, w) => n + (w.workerPids.length ? w.workerPids.reduce((m, pid) => m + ticksOf(pid), 0) : cpuSnapshot(w, originPid).worker), 0);
  const before = { ...(target.child ? cpuSnapshot(target, originPid) : { origin: ticksOf(originPid) }), neighbours: neighbourTicks() };
  const t0 = performance.now();
  const result = await wrk(url, headers, opts.duration, contestant.tokens?.measure[round], contestant.connections, contestant.bodyFile);
  const wallS = (performance.now() - t0) / 1000;
  const after = { ...(target.child ? cpuSnapshot(target, originPid) : { origin: ticksOf(originPid) }), neighbours: neighbourTicks() };
  if (perf) {
    await new Promise((r) => (perf.exitCode !== null ? r() : perf.once('close', r)));
    try {
      const text = execFileSync('perf', ['report', '-i', perf.data, '--no-children', '--sort', 'dso,symbol', '--stdio', '--percent-limit', '0'], { maxBuffer: 256 << 20 }).toString();
      await fsp.writeFile(path.join(OUT, `perf-${contestant.id}.txt`), text);
      perf.categories = perfCategories(text);
    } catch (e) {
      log(`perf report failed: ${e.message.split('\n')[0]}`);
    }
  }
  const n = result.requests;
  const perReqMs = (key) => (before[key] === undefined ? null : ((after[key] - before[key]) * 1000) / CLK_TCK / n);
  const p = Object.fromEntries(result.latency.percentiles.map(([q, us]) => [q, us / 1000]));
  return {
    id: contestant.id,
    round,
    url,
    requests: n,
    rps: n / (result.duration_us / 1e6),
    p50: p[50],
    p90: p[90],
    p99: p[99],
    p999: p[99.9],
    mean: result.latency.mean / 1000,
    max: result.latency.max / 1000,
    errors: result.errors,
    percentiles: result.latency.percentiles.map(([q, us]) => [q, us / 1000]),
    cpuMsPerReq: {
      worker: perReqMs('worker'),
      workerd: perReqMs('workerd'),
      node: perReqMs('node'),
      origin: perReqMs('origin'),
      neighbours: perReqMs('neighbours'),
    },
    originCpuPct: ((after.origin - before.origin) / CLK_TCK / wallS) * 100,
    wrk: result.text,
    perf: perf?.categories ?? null,
    reused: result.reused ?? 0,
  };
}

// Where the Worker's workerd spends its CPU, by kind of code (from `perf report`).
// workerd ships with symbols; wasm and JavaScript compiled by V8 show up as [JIT].
const PERF_CATEGORIES = [
  ['wasm + JS (V8-compiled)', (dso, sym) => dso.startsWith('[JIT]') || /^0x[0-9a-f]+$/.test(sym) && dso === 'workerd'],
  ['kernel', (dso) => dso.startsWith('[kernel')],
  ['Headers', (dso, sym) => /workerd::api::Headers|kj::HttpHeaders|HttpHeaderTable|HttpHeaderId/.test(sym)],
  ['Request / Response / fetch', (dso, sym) => /workerd::api::(Request|Response|Body|Fetcher|fetchImpl|.*[Ff]etch)|workerd::api::.*(Stream|Pipe)|WorkerEntrypoint|IoContext|kj::.*Http(?!Header)/.test(sym)],
  ['timers, AbortSignal', (dso, sym) => /[Tt]imer|setTimeout|clearTimeout|AbortSignal|AbortController/.test(sym)],
  ['console.log, JSON', (dso, sym) => /[Cc]onsole|JsonStringifier|JsonParser|logMessage|LogMessage|structuredLog|SerializeString/.test(sym)],
  ['crypto, random', (dso, sym) => /getRandomValues|RAND_|SHA\d|sha\d|HMAC|EVP_|bssl|ecdsa|EC_|BN_|RSA_/.test(sym)],
  ['URL', (dso, sym) => /ada::|url_aggregator|workerd::api::URL|jsg::Url/.test(sym)],
  ['V8 GC, handles', (dso, sym) => /Heap::|Scavenge|MarkCompact|GlobalHandles|Sweeper|Marking|TracedReference|cppgc|Evacuat|detachWrapper|HeapTracer|Wrappable/.test(sym)],
  ['JS <-> C++ bindings (jsg, V8 API, builtins)', (dso, sym) => /workerd::jsg::|Builtins_|v8::internal::(Runtime_|Builtin|FunctionCallback|Api|Invoke|Execution)|^v8::[A-Z]/.test(sym)],
  ['V8 other', (dso, sym) => /^v8::|v8::internal/.test(sym)],
  ['malloc', (dso, sym) => /tcmalloc|TCMalloc|malloc|^free|cfree|operator new|operator delete|_int_free/.test(sym)],
  ['KJ event loop, promises', (dso, sym) => /^kj::|capnp::/.test(sym)],
  ['workerd other', (dso, sym) => /workerd::/.test(sym)],
  ['libc, other', () => true],
];

function perfCategories(text) {
  const totals = new Map(PERF_CATEGORIES.map(([name]) => [name, 0]));
  for (const line of text.split('\n')) {
    const m = line.match(/^\s+([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*?)\s*$/);
    if (!m) continue;
    const [, pct, dso, sym] = m;
    const [name] = PERF_CATEGORIES.find(([, test]) => test(dso, sym));
    totals.set(name, totals.get(name) + Number(pct));
  }
  return Object.fromEntries(totals);
}

async function expectStatus(url, headers, status, what) {
  const res = await fetch(url, { headers });
  const body = await res.text();
  if (res.status !== status) throw new Error(`${what}: expected ${status} from ${url}, got ${res.status}: ${body.slice(0, 300)}`);
  return res;
}

// --- rounds: order, medians, spreads -------------------------------------------------------

/** A small seeded generator (mulberry32), so that BENCH_SEED reproduces the rounds' order. */
function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher-Yates). */
function shuffle(xs, random) {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const numbers = (xs) => xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
function median(xs) {
  const v = numbers(xs).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const minMax = (xs) => {
  const v = numbers(xs);
  return v.length ? [Math.min(...v), Math.max(...v)] : [null, null];
};
/** "median [min–max]". */
function spread(xs, digits = 2) {
  const [lo, hi] = minMax(xs);
  return lo === null ? 'n/a' : `${f(median(xs), digits)} [${f(lo, digits)}–${f(hi, digits)}]`;
}

/** The median over the rounds of fn(a's measurement, b's measurement of the same round). */
function perRound(a, b, fn) {
  if (!a || !b) return null;
  return median(a.rounds.map((m) => {
    const ref = b.rounds.find((x) => x.round === m.round);
    if (!ref) return null;
    const v = fn(m, ref);
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }));
}
const cpuOf = (m) => m.cpuMsPerReq.worker;
const RATIOS = {
  rps: (m, r) => m.rps / r.rps,
  p50: (m, r) => m.p50 / r.p50,
  p99: (m, r) => m.p99 / r.p99,
  cpu: (m, r) => (cpuOf(m) === null || !cpuOf(r) ? null : cpuOf(m) / cpuOf(r)),
  dCpu: (m, r) => (cpuOf(m) === null || cpuOf(r) === null ? null : cpuOf(m) - cpuOf(r)),
};

/** One contestant's rounds reduced to medians (the fields a single measurement has) and spreads. */
function aggregate(c, ms) {
  const pick = (fn) => ms.map(fn);
  const cpuKeys = Object.keys(ms[0].cpuMsPerReq);
  const percentiles = ms[0].percentiles.map(([q], i) => [q, median(ms.map((m) => m.percentiles[i]?.[1]))]);
  const errors = {};
  for (const m of ms) for (const [k, v] of Object.entries(m.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    id: c.id,
    group: c.group,
    label: c.label,
    what: c.what,
    url: ms[0].url,
    rounds: ms,
    requests: ms.reduce((n, m) => n + m.requests, 0),
    rps: median(pick((m) => m.rps)),
    p50: median(pick((m) => m.p50)),
    p90: median(pick((m) => m.p90)),
    p99: median(pick((m) => m.p99)),
    p999: median(pick((m) => m.p999)),
    mean: median(pick((m) => m.mean)),
    max: Math.max(...pick((m) => m.max)),
    spread: {
      rps: minMax(pick((m) => m.rps)),
      p50: minMax(pick((m) => m.p50)),
      p99: minMax(pick((m) => m.p99)),
      cpu: minMax(pick(cpuOf)),
    },
    errors,
    percentiles,
    cpuMsPerReq: Object.fromEntries(cpuKeys.map((k) => [k, median(pick((m) => m.cpuMsPerReq[k]))])),
    originCpuPct: median(pick((m) => m.originCpuPct)),
    perf: ms.find((m) => m.perf)?.perf ?? null,
    reused: ms.reduce((n, m) => n + (m.reused ?? 0), 0),
  };
}

/** Ratios (medians of per-round ratios) of every contestant to the one with `refId`. */
function ratiosTo(results, refId) {
  const ref = results.find((c) => c.id === refId);
  for (const c of results) {
    c.ratios ??= {};
    c.ratios[refId] = ref ? Object.fromEntries(Object.entries(RATIOS).map(([k, fn]) => [k, perRound(c, ref, fn)])) : null;
  }
}

/** The processes: pid -> {ppid, pgid, comm}. */
function allProcesses() {
  const procs = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      procs.set(Number(entry), { ppid: Number(fields[1]), pgid: Number(fields[2]), comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      /* gone meanwhile */
    }
  }
  return procs;
}

/**
 * Checks that the CPU of each of several running Workers can be told apart, and
 * throws otherwise: every workerd a Worker's runner started (any descendant) is
 * in that runner's process group, which is what cpuSnapshot() sums; exactly one
 * of them is the Worker's own workerd (the one serving it); no two Workers share
 * a workerd. Resolves a one-line summary.
 */
function checkAttribution(targets) {
  const procs = allProcesses();
  const problems = [];
  const owner = new Map();
  for (const t of targets) {
    const descendants = [];
    const queue = [t.child.pid];
    while (queue.length) {
      const pid = queue.shift();
      for (const [child, p] of procs) if (p.ppid === pid) { descendants.push(child); queue.push(child); }
    }
    const workerds = descendants.filter((pid) => procs.get(pid).comm === 'workerd');
    for (const pid of workerds) {
      if (procs.get(pid).pgid !== t.child.pid) problems.push(`${t.name}: workerd ${pid} is in process group ${procs.get(pid).pgid}, not its runner's (${t.child.pid})`);
    }
    if (t.workerPids.length !== 1) problems.push(`${t.name}: ${t.workerPids.length} Worker workerd processes found, not one`);
    for (const pid of t.workerPids) {
      if (!workerds.includes(pid)) problems.push(`${t.name}: its Worker workerd ${pid} is not a child of its runner`);
      if (owner.has(pid)) problems.push(`${t.name} and ${owner.get(pid)} share workerd ${pid}`);
      owner.set(pid, t.name);
    }
  }
  if (problems.length) throw new Error(`CPU per request cannot be told apart between the running Workers:\n  ${problems.join('\n  ')}`);
  return `${targets.length} Workers, each in its own process group, ${targets.map((t) => `${t.name} workerd ${t.workerPids[0]}`).join(', ')}`;
}

/** `openssl speed ecdsap384` (OpenSSL 3 has no -evp mode for ECDSA): ms per P-384 sign and verify. */
function opensslP384() {
  const out = execFileSync('openssl', ['speed', '-seconds', '2', 'ecdsap384'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const m = out.match(/384 bits ecdsa \(nistp384\)\s+([\d.]+)s\s+([\d.]+)s/);
  if (!m) throw new Error(`no nistp384 line in: ${out.slice(-300)}`);
  const version = execFileSync('openssl', ['version']).toString().trim();
  return { signMs: Number(m[1]) * 1000, verifyMs: Number(m[2]) * 1000, version, command: 'openssl speed -seconds 2 ecdsap384' };
}

// --- criterion --------------------------------------------------------------------------

// The bench profile inherits `release` (fat LTO, one codegen unit), which makes a
// cold build of criterion and the dev-dependencies take many minutes; the bench
// only needs optimised code, so it builds without LTO (same opt-level "s").
const CRITERION_ENV = { CARGO_PROFILE_BENCH_LTO: 'false', CARGO_PROFILE_BENCH_CODEGEN_UNITS: '16' };

/** Asks until `url` answers `x-cache: HIT` (the entry stored), for at most 5 s. */
async function untilCacheHit(url, headers, what) {
  for (let i = 0; i < 50; i++) {
    const res = await expectStatus(url, headers, 200, what);
    if (res.headers.get('x-cache') === 'HIT') return;
    await sleep(100);
  }
  throw new Error(`${what} never answered x-cache: HIT`);
}

async function criterionResults() {
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: ROOT }).toString());
  const base = path.join(meta.target_directory, 'criterion');
  const read = (group, name) => {
    const file = path.join(base, group, name, 'new', 'estimates.json');
    const e = JSON.parse(fs.readFileSync(file, 'utf8'));
    return { median: e.median.point_estimate, low: e.median.confidence_interval.lower_bound, high: e.median.confidence_interval.upper_bound };
  };
  return {
    hit: read('lookup_10k_routes', 'hit'),
    miss: read('lookup_10k_routes', 'miss'),
    notAllowed: read('lookup_10k_routes', 'method_not_allowed'),
    fromPrepared: read('startup_10k_routes', 'gateway_from_prepared'),
    fromPreparedThen: read('startup_10k_routes', 'gateway_from_prepared_then_1024_requests'),
    fromJson: read('startup_10k_routes', 'gateway_from_json'),
    load: read('startup_10k_routes', 'config_load'),
    tableBuild: read('startup_10k_routes', 'route_table_build'),
  };
}

// --- report -----------------------------------------------------------------------------

const f = (x, digits = 2) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const ratio = (x, ref) => (x === null || ref === null || x === undefined || !ref ? 'n/a' : `${(x / ref).toFixed(2)}×`);

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? 'unknown';
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const version = (cmd, args) => {
    const out = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${out.stdout ?? ''}${out.stderr ?? ''}`.trim().split('\n')[0] || 'n/a';
  };
  return {
    nproc: Number(execFileSync('nproc').toString().trim()),
    cpu: model,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    wrangler: JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/wrangler/package.json'), 'utf8')).version,
    workerd: version(path.join(ROOT, 'node_modules/workerd/bin/workerd'), ['--version']),
    hono: JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/hono/package.json'), 'utf8')).version,
    wrk: version('wrk', ['-v']),
    rustc: version('rustc', ['--version']),
    loadBefore: load,
  };
}

function report(r) {
  const L = [];
  const fb = (c) => c.ratios?.['floor-b'] ?? null;
  const pt = (c) => c.ratios?.passthrough ?? null;
  const x = (v) => (v === null || v === undefined ? 'n/a' : `${v.toFixed(2)}×`);
  const signed = (v, digits = 3) => (v === null || v === undefined ? 'n/a' : `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`);
  const range = ([lo, hi], digits) => (lo === null ? '' : ` [${f(lo, digits)}–${f(hi, digits)}]`);
  L.push('# Benchmarks: the gateway against the floors of the contract and against Hono gateways');
  L.push('');
  L.push(`Run ${r.date} (${r.totalS.toFixed(0)} s) on ${r.machine.nproc} CPUs (${r.machine.cpu}), ${r.machine.memGiB} GiB, Linux ${r.machine.kernel};`);
  L.push(`load average before the run ${r.machine.loadBefore}, after ${r.loadAfter}. Node ${r.machine.node}, wrangler ${r.machine.wrangler}, ${r.machine.workerd}, hono ${r.machine.hono}, ${r.machine.wrk}, ${r.machine.rustc}.`);
  L.push('');
  L.push('**Read the ratios, not the absolute numbers.** Everything (load generator, origin, workerd, wrangler) shares the same');
  L.push('CPUs, which other jobs were also using. Every contestant is measured once per round, rounds interleave all of them');
  L.push('in a shuffled order, and each ratio is computed within a round (against that round\'s floor (b) or pass-through) before');
  L.push('the median over the rounds is taken; so a noisy minute weighs on a contestant and its reference alike. CPU time per');
  L.push('request is the steadiest figure (it does not depend on how much CPU the other jobs left).');
  L.push('');
  L.push('## How it was run');
  L.push('');
  L.push('```sh');
  L.push(r.command);
  L.push('```');
  L.push('');
  L.push(`- Load: \`${r.wrkCommand}\` per contestant and round. All selected Workers are started once and kept running, each on its own ports; every contestant is first warmed with ${opts.warmup} s of the same load, then ${r.rounds} rounds each measure every contestant once, in a shuffled order (BENCH_SEED=${opts.seed}; the orders are in \`bench/out/results-*.json\`).`);
  L.push(`- Origin: \`node bench/origin.mjs\` on 127.0.0.1 (one small JSON body, keep-alive), its own process; its CPU use is in the details table.`);
  if (opts.runner === 'direct') {
    L.push('- Workers: wrangler\'s dev engine (`unstable_startWorker` of wrangler ' + r.machine.wrangler + ': config, bundling, Miniflare, workerd) with the DevTools inspector off (`bench/serve.mjs`),');
    L.push('  load sent straight to the Worker\'s workerd socket (not through wrangler\'s proxy Worker). `BENCH_RUNNER=cli` uses `npx wrangler dev` instead; see bench/README.md for why that measures wrangler\'s DevTools relay.');
  } else {
    L.push('- Workers: `npx wrangler dev --ip 127.0.0.1 --port P --inspector-port I --persist-to TMP --var ...` (load through wrangler\'s public port).');
  }
  L.push('- CPU/request: utime+stime of the Worker\'s own workerd process (/proc/PID/stat) over the measured window, divided by the requests served.');
  if (r.attribution) L.push(`  Checked before the rounds: ${r.attribution}; during each measurement the other Workers' workerd CPU is recorded too (details table, "other Workers"), and stays near 0.`);
  L.push('');
  L.push('## Load: throughput, latency, CPU per request');
  L.push('');
  L.push(`Medians over ${r.rounds} round${r.rounds > 1 ? 's' : ''}, [min–max] over the rounds. × floor b and × pass-through: the median of the per-round ratios to floor (b) (contestant 2d: request id both ways, \`new Response(r.body, r)\`, the gateway's log line) and to the pass-through Worker (contestant 2). Δ CPU: the same, as a difference in ms per request. ${r.drift}.`);
  L.push('');
  const counted = (c) => {
    const k = r.crossings?.find((y) => y.id === c.id);
    if (!k) return 'n/a';
    const wasm = k.worker === 'gateway';
    return `${wasm ? f(k.perRequest, 0) : '–'} · ${wasm ? f(k.strings.total, 0) : '–'} · ${[k.objects.Headers, k.objects.Request, k.objects.Response].map((v) => f(v, Number.isInteger(v) ? 0 : 1)).join('/')}`;
  };
  if (r.crossings) L.push('Last column, per request (exact, see "Per request" below): calls into JavaScript · strings crossed · Headers/Request/Response objects made.');
  L.push('');
  L.push(`| # | contestant | req/s [min–max] | × floor b | × pass-through | p50 ms [min–max] | × floor b | p99 ms [min–max] | × floor b | Worker CPU ms/req [min–max] | × floor b | Δ CPU vs floor b | Δ CPU vs pass-through | errors |${r.crossings ? ' JS calls · strings · H/Rq/Rs |' : ''}`);
  L.push(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${r.crossings ? '---:|' : ''}`);
  for (const c of r.contestants) {
    const err = Object.values(c.errors).reduce((a, b) => a + b, 0);
    const b = fb(c);
    const p = pt(c);
    L.push(`| ${c.group} | ${c.label} | ${f(c.rps, 0)}${range(c.spread.rps, 0)} | ${x(b?.rps)} | ${x(p?.rps)} | ${f(c.p50)}${range(c.spread.p50, 2)} | ${x(b?.p50)} | ${f(c.p99)}${range(c.spread.p99, 1)} | ${x(b?.p99)} | ${f(c.cpuMsPerReq.worker, 3)}${range(c.spread.cpu, 3)} | ${x(b?.cpu)} | ${signed(b?.dCpu)} | ${signed(p?.dCpu)} | ${err} |${r.crossings ? ` ${counted(c)} |` : ''}`);
  }
  L.push('');
  L.push('What each contestant does:');
  L.push('');
  for (const c of r.contestants) L.push(`- **${c.label}**: ${c.what}`);
  L.push('');
  L.push('<details><summary>Details: p90, p99.9, max, CPU of every process (medians over the rounds)</summary>');
  L.push('');
  L.push('| contestant | requests (all rounds) | p90 ms | p99.9 ms | max ms | all workerd ms/req | other Workers\' workerd ms/req | wrangler (node) ms/req | origin ms/req | origin CPU % |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of r.contestants) {
    L.push(`| ${c.label} | ${c.requests} | ${f(c.p90)} | ${f(c.p999)} | ${f(c.max)} | ${f(c.cpuMsPerReq.workerd, 3)} | ${f(c.cpuMsPerReq.neighbours, 3)} | ${f(c.cpuMsPerReq.node, 3)} | ${f(c.cpuMsPerReq.origin, 3)} | ${f(c.originCpuPct, 0)} |`);
  }
  L.push('');
  L.push('</details>');
  L.push('');
  const profiled = r.contestants.filter((c) => c.perf && c.cpuMsPerReq.worker !== null);
  if (profiled.length) {
    L.push('## Where the Worker\'s CPU goes (BENCH_PERF=1)');
    L.push('');
    L.push('`perf record` of the Worker\'s workerd during each measurement, by kind of code, in ms of CPU per request (share of samples × CPU ms/request). The profiler\'s own overhead is included in these runs\' CPU figures.');
    L.push('');
    L.push(`| kind of code | ${profiled.map((c) => c.label).join(' | ')} |`);
    L.push(`|---|${profiled.map(() => '---:').join('|')}|`);
    for (const [name] of PERF_CATEGORIES) {
      L.push(`| ${name} | ${profiled.map((c) => f((c.perf[name] / 100) * c.cpuMsPerReq.worker, 3)).join(' | ')} |`);
    }
    L.push(`| **total** | ${profiled.map((c) => f(c.cpuMsPerReq.worker, 3)).join(' | ')} |`);
    L.push('');
  }
  L.push('![latency distribution per contestant](latency.png)');
  L.push('');
  L.push('## Start-up and size');
  L.push('');
  L.push('| Worker | process start -> first 200 ms | × | that first request ms |');
  L.push('|---|---:|---:|---:|');
  const refStart = r.startups.find((s) => s.name === 'passthrough')?.firstMs ?? null;
  for (const s of r.startups) L.push(`| ${s.label} | ${f(s.firstMs, 0)} | ${ratio(s.firstMs, refStart)} | ${f(s.firstRequestMs, 1)} |`);
  L.push('');
  L.push(`(${opts.runner === 'direct' ? '`node bench/serve.mjs`' : '`npx wrangler dev`'} on prebuilt output, no build step; polled every 20 ms. Most of it is wrangler and workerd starting; the first request includes the gateway compiling its ${r.gatewayRoutes} routes.)`);
  L.push('');
  if (r.wasm) {
    L.push(`Wasm module \`index_bg.wasm\`: **${(r.wasm.raw / 1024).toFixed(1)} KiB** raw, **${(r.wasm.gzip / 1024).toFixed(1)} KiB** gzip -9 (build took ${f(r.buildMs / 1000, 0)} s in this run).`);
    L.push('');
  }
  if (r.criterion) {
    const c = r.criterion;
    const ns = (e) => `${f(e.median, 0)} ns [${f(e.low, 0)}, ${f(e.high, 0)}]`;
    const ms = (e) => `${f(e.median / 1e6, 1)} ms [${f(e.low / 1e6, 1)}, ${f(e.high / 1e6, 1)}]`;
    L.push('## 10,000 routes (native criterion bench, `benches/routing.rs`)');
    L.push('');
    L.push('Median [95 % CI]; 250 services × 40 routes (static, 1- and 2-parameter, catch-all, shared paths with other methods), 200 on any host, 30 exact hosts, 20 wildcard hosts. Native x86-64 code; wasm in V8 is typically 1.5-3× slower.');
    L.push('');
    L.push('| measurement | time |');
    L.push('|---|---:|');
    L.push(`| \`RouteTable::lookup\`, hit | ${ns(c.hit)} |`);
    L.push(`| \`RouteTable::lookup\`, miss (404) | ${ns(c.miss)} |`);
    L.push(`| \`RouteTable::lookup\`, method not allowed (405) | ${ns(c.notAllowed)} |`);
    L.push(`| isolate start-up: \`Gateway::from_prepared\` (the prepared form the build embeds; each route compiled on its first request) | ${ms(c.fromPrepared)} |`);
    L.push(`| the same, then 1,024 requests over every kind of route | ${ms(c.fromPreparedThen)} |`);
    L.push(`| from the file: \`Gateway::from_json\` (parse, validate, index, compile; what the build and \`gateway check\` pay) | ${ms(c.fromJson)} |`);
    L.push(`| of which \`config::load\` (parse + validate) | ${ms(c.load)} |`);
    L.push(`| of which \`RouteTable::build\` (index) | ${ms(c.tableBuild)} |`);
    L.push('');
  }
  if (r.crossings) {
    L.push('## Per request: calls into JavaScript, strings crossed, API objects made');
    L.push('');
    L.push('Exact counts from an instrumented copy of each Worker (`bench/crossings.mjs`), 200 requests per contestant, background work (`waitUntil`) included. Calls into JavaScript: calls of the wasm module\'s imports (the wasm-bindgen glue). Strings crossed: strings the glue read out of wasm memory (`TextDecoder.decode`) plus strings it wrote into it (its `passStringToWasm`), each a UTF-8 <-> UTF-16 copy. Headers / Request / Response: `new Headers`, `new Request` (+ `clone()`), `new Response` (+ `clone()`) by anyone, the glue included (the response `fetch` returns is not counted: every Worker gets one per subrequest). The JavaScript Workers run no wasm, so they have no calls or strings to count.');
    if (r.crossingsCheck) {
      const ck = r.crossingsCheck;
      L.push('');
      L.push(`Counters checked to register before counting (the run fails otherwise): one request to the routing-only route counted ${f(ck.route.perRequest, 0)} calls into JavaScript, ${f(ck.route.strings.decoded, 0)} strings out of and ${f(ck.route.strings.encoded, 0)} into wasm, ${f(ck.route.objects.Headers, 0)} Headers, ${f(ck.route.objects.Request, 0)} Request and ${f(ck.route.objects.Response, 0)} Response objects; the first request to the global-limit route counted ${f(ck.globalLeases, 0)} Durable Object call(s) (its lease) and ${f(ck.globalHeaders, 0)} Headers; floor (a) counted exactly its one Request, one Response and one fetch.`);
    }
    L.push('');
    L.push('| Worker: contestant | calls into JS | strings crossed (out + in) | Headers | Request | Response | subrequests (fetch) | Durable Object calls | closures registered | most frequent calls |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const c of r.crossings) {
      const wasm = c.worker === 'gateway';
      const top = c.top.filter(([name]) => !name.startsWith('(')).slice(0, 6).map(([name, x]) => `${name.replace(/^__wbg_/, '')} ${x.toFixed(1)}`).join(', ');
      L.push(`| ${c.label} | ${wasm ? c.perRequest.toFixed(1) : '–'} | ${wasm ? `${f(c.strings.total, 1)} (${f(c.strings.decoded, 1)} + ${f(c.strings.encoded, 1)})` : '–'} | ${f(c.objects.Headers, 1)} | ${f(c.objects.Request, 1)} | ${f(c.objects.Response, 1)} | ${f(c.fetches, 2)} | ${wasm ? f(c.glue?.['Durable Object fetch'] ?? 0, 3) : '–'} | ${wasm ? f(c.glue?.['FinalizationRegistry.register'] ?? 0, 1) : '–'} | ${top} |`);
    }
    L.push('');
    const full = r.crossings.find((c) => c.id === 'gateway-full') ?? r.crossings.find((c) => c.worker === 'gateway');
    L.push(`<details><summary>Every import called on "${full.label}", with its JavaScript body</summary>`);
    L.push('');
    L.push('| import | calls/request | body |');
    L.push('|---|---:|---|');
    for (const [name, x, body] of full.top) L.push(`| ${name} | ${x.toFixed(2)} | \`${body.replace(/\|/g, '\\|').replace(/`/g, "'")}\` |`);
    L.push('');
    L.push('</details>');
    L.push('');
  }
  const routing = r.contestants.find((c) => c.id === 'gateway-route');
  const verifiers = r.contestants.filter((c) => /^gateway-(hs|es|rs|ps|eddsa)[0-9]*$/.test(c.id));
  if (routing && verifiers.length) {
    L.push('## Token verification: CPU per request by algorithm family (wasm, in workerd)');
    L.push('');
    L.push('The Worker\'s CPU per request on a route with the token check, minus the same on the routing-only route, in the same run.');
    L.push('"New token every request": each request carries a token the isolate has not seen (wrk takes them in turn from a file of');
    L.push('distinct, pre-signed tokens), so this is what one verification costs (decode, signature, claims). "Same token": every request');
    L.push('carries one token, as a client does until its token expires; after the first request the isolate remembers the verified');
    L.push('signature and checks only the claims. Keys are parsed once per isolate.');
    L.push('');
    L.push('Medians of the per-round differences. The last column is the new-token figure minus HS256\'s: what the signature arithmetic costs beyond an HMAC.');
    L.push('');
    L.push('| algorithm | family | key | Δ ms, new token every request | Δ ms, same token | new token, Δ ms over HS256\'s |');
    L.push('|---|---|---|---:|---:|---:|');
    const hsNew = r.contestants.find((x) => x.id === 'gateway-hs256-new');
    const family = { hs256: ['HMAC', '256-bit secret'], es256: ['ECDSA', 'P-256'], es384: ['ECDSA', 'P-384'], rs256: ['RSA PKCS#1 v1.5', 'RSA 2048'], ps256: ['RSA PSS', 'RSA 2048'], eddsa: ['EdDSA', 'Ed25519'] };
    for (const c of verifiers) {
      const alg = c.id.slice('gateway-'.length);
      const [fam, key] = family[alg] ?? ['', ''];
      const fresh = r.contestants.find((x) => x.id === `${c.id}-new`);
      const delta = (x, ref = routing) => (x ? (ref ? f(perRound(x, ref, RATIOS.dCpu), 3) : 'n/a') : 'not run');
      L.push(`| ${alg === 'eddsa' ? 'EdDSA' : alg.toUpperCase()} | ${fam} | ${key} | ${delta(fresh)} | ${delta(c)} | ${alg === 'hs256' ? '–' : delta(fresh, hsNew)} |`);
    }
    L.push('');
  }
  if (r.history) {
    L.push(r.history.trim());
    L.push('');
  }
  L.push('## Against the targets (reported, not asserted)');
  L.push('');
  L.push('| target | measured | met |');
  L.push('|---|---|---|');
  for (const t of r.targets) L.push(`| ${t.target} | ${t.measured} | ${t.met === null ? 'n/a' : t.met ? 'yes' : '**no**'} |`);
  L.push('');
  if (r.notes.length) {
    L.push('## Notes from this run');
    L.push('');
    for (const n of r.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}

function targets(r) {
  const by = (id) => r.contestants.find((c) => c.id === id);
  const calls = (id) => r.crossings?.find((c) => c.id === id) ?? null;
  const full = by('gateway-full');
  const routing = by('gateway-route');
  const floorB = by('floor-b');
  const pass = by('passthrough');
  const t = [];
  const x = (v) => (v === null ? 'n/a' : `${v.toFixed(2)}×`);
  const ms = (v) => (v === null ? 'n/a' : `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`);
  const met = (v, test) => (v === null ? null : test(v));
  // Issue 14's targets, against floor (b), from per-round ratios and differences.
  if (routing && floorB) {
    const rps = perRound(routing, floorB, RATIOS.rps);
    const d = perRound(routing, floorB, RATIOS.dCpu);
    t.push({ target: 'routing only: within 5 % of floor (b)\'s throughput', measured: `${x(rps)} of its req/s`, met: met(rps, (v) => v >= 0.95) });
    t.push({ target: 'routing only: under 0.03 ms CPU/request over floor (b)', measured: `Δ ${ms(d)}`, met: met(d, (v) => v < 0.03) });
  }
  if (calls('gateway-route')) {
    const n = calls('gateway-route').perRequest;
    t.push({ target: 'routing only: at most 10 calls into JavaScript per request', measured: `${f(n, 1)} calls`, met: n <= 10 });
  }
  if (full && floorB) {
    const rps = perRound(full, floorB, RATIOS.rps);
    t.push({ target: 'full chain: within 10 % of floor (b)\'s throughput', measured: `${x(rps)} of its req/s (Δ CPU ${ms(perRound(full, floorB, RATIOS.dCpu))})`, met: met(rps, (v) => v >= 0.9) });
  }
  const peers = ['hono', 'hono-full-isolate'].map(by).filter(Boolean);
  if (full && peers.length) {
    const rs = peers.map((p) => [p, perRound(full, p, RATIOS.rps)]);
    t.push({ target: `full chain: ahead of every JavaScript peer doing the same work (${peers.map((p) => p.id).join(', ')})`, measured: rs.map(([p, v]) => `${x(v)} ${p.id}'s req/s`).join(', '), met: rs.some(([, v]) => v === null) ? null : rs.every(([, v]) => v > 1) });
  }
  const hsNew = by('gateway-hs256-new');
  for (const alg of ['es256', 'rs256', 'ps256', 'eddsa']) {
    const c = by(`gateway-${alg}-new`);
    if (!c || !hsNew) continue;
    const d = perRound(c, hsNew, RATIOS.dCpu);
    t.push({ target: `a token's first verification, ${alg === 'eddsa' ? 'EdDSA' : alg.toUpperCase()}: under 0.15 ms CPU more than HS256`, measured: `${ms(d)} over HS256 (new token every request)`, met: met(d, (v) => v < 0.15) });
  }
  const es384 = by('gateway-es384-new');
  if (es384 && hsNew && r.openssl) {
    const d = perRound(es384, hsNew, RATIOS.dCpu);
    t.push({ target: 'a token\'s first verification, ES384: within 1.5× of OpenSSL\'s P-384 verify on this machine', measured: `${ms(d)} over HS256, against ${f(r.openssl.verifyMs, 3)} ms for \`${r.openssl.command}\` (${r.openssl.version}): ${d === null ? 'n/a' : `${(d / r.openssl.verifyMs).toFixed(2)}×`}`, met: met(d, (v) => v <= 1.5 * r.openssl.verifyMs) });
  }
  if (r.wasm) t.push({ target: 'wasm under 200 KB gzip', measured: `${(r.wasm.gzip / 1000).toFixed(1)} kB (${(r.wasm.gzip / 1024).toFixed(1)} KiB)`, met: r.wasm.gzip < 200_000 });
  // Earlier targets, against the pass-through Worker.
  if (full && pass) {
    const d = perRound(full, pass, RATIOS.dCpu);
    t.push({ target: 'full chain < 0.5 ms CPU/request over the pass-through Worker (earlier target)', measured: `Δ ${ms(d)} (absolute ${f(full.cpuMsPerReq.worker, 3)} ms, pass-through ${f(pass.cpuMsPerReq.worker, 3)} ms)`, met: met(d, (v) => v < 0.5) });
  }
  if (routing && pass) {
    const d = perRound(routing, pass, RATIOS.dCpu);
    t.push({ target: 'routing alone < 0.1 ms CPU/request over the pass-through Worker (earlier target)', measured: `Δ ${ms(d)} (absolute ${f(routing.cpuMsPerReq.worker, 3)} ms)`, met: met(d, (v) => v < 0.1) });
  }
  if (r.criterion) {
    const worst = Math.max(r.criterion.hit.median, r.criterion.miss.median, r.criterion.notAllowed.median);
    t.push({ target: '10,000 routes: lookup < 1 µs', measured: `hit ${f(r.criterion.hit.median, 0)} ns, miss ${f(r.criterion.miss.median, 0)} ns, 405 ${f(r.criterion.notAllowed.median, 0)} ns (native)`, met: worst < 1000 });
    t.push({ target: '10,000 routes: isolate start-up < 20 ms', measured: `${f(r.criterion.fromPrepared.median / 1e6, 1)} ms (native, \`Gateway::from_prepared\`)`, met: r.criterion.fromPrepared.median < 20e6 });
  }
  return t;
}

// --- main -----------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  await fsp.mkdir(OUT, { recursive: true });
  scratchDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gateway-bench-'));
  const notes = [];
  const info = machine();
  try {
    execFileSync('wrk', ['-v'], { stdio: 'ignore' });
  } catch (e) {
    if (e.code === 'ENOENT') throw new Error('wrk is not installed (make bench installs it with apt-get)');
  }

  // The origin, on a stable port when possible (the port is compiled into the gateway).
  let originPort = opts.originPort;
  if (!(await portFree(originPort))) {
    originPort = await freePort();
    notes.push(`port ${opts.originPort} was taken; the origin used ${originPort}, so the gateway was rebuilt for it.`);
  }
  const origin = start(process.execPath, [path.join(BENCH, 'origin.mjs'), '--port', String(originPort)]);
  for (let i = 0; i < 100 && !origin.output.includes('"port"'); i++) await sleep(50);
  if (!origin.output.includes('"port"')) throw new Error(`the origin did not start:\n${origin.output}`);
  const originUrl = `http://127.0.0.1:${originPort}`;

  const keys = await loadKeys();
  const routes = gatewayRoutes(originUrl, keys);
  const routesFile = path.join(OUT, 'routes.json');
  const routesText = JSON.stringify(routes, null, 2) + '\n';
  const previous = await fsp.readFile(routesFile, 'utf8').catch(() => null);
  if (previous !== routesText) await fsp.writeFile(routesFile, routesText); // unchanged file: no rebuild
  const buildDir = path.join(OUT, 'build');
  log(`building the gateway (make build BUILD_DIR=${path.relative(ROOT, buildDir)} GATEWAY_ROUTES=${path.relative(ROOT, routesFile)}); log: bench/out/build.log`);
  const buildMs = await buildGateway(routesFile, buildDir);
  const wasmBytes = await fsp.readFile(path.join(buildDir, 'index_bg.wasm'));
  const wasm = { raw: wasmBytes.length, gzip: zlib.gzipSync(wasmBytes, { level: 9 }).length };
  if (opts.criterion) {
    log('building the criterion bench (cargo bench --bench routing --no-run); log: bench/out/criterion-build.log');
    await run('cargo', ['bench', '--bench', 'routing', '--no-run'], { extraEnv: CRITERION_ENV, logFile: path.join(OUT, 'criterion-build.log') });
  }

  // Worker configs, in the scratch dir: no [build] step, prebuilt or plain JS entry points.
  const toml = async (name, lines) => {
    const file = path.join(scratchDir, name, 'wrangler.toml');
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, ['compatibility_date = "2026-04-20"', ...lines, ''].join('\n'));
    return file;
  };
  const workers = {
    passthrough: {
      label: 'pass-through Worker',
      main: path.join(BENCH, 'workers/passthrough.js'),
      configFile: await toml('passthrough', ['name = "bench-passthrough"', `main = ${JSON.stringify(path.join(BENCH, 'workers/passthrough.js'))}`]),
      vars: { ORIGIN_URL: originUrl },
      probe: { path: '/bench/route/1' },
    },
    'passthrough-log': {
      label: 'pass-through Worker + 1 log line',
      main: path.join(BENCH, 'workers/passthrough-log.js'),
      configFile: await toml('passthrough-log', ['name = "bench-passthrough-log"', `main = ${JSON.stringify(path.join(BENCH, 'workers/passthrough-log.js'))}`]),
      vars: { ORIGIN_URL: originUrl },
      probe: { path: '/bench/route/1' },
    },
    'floor-a': {
      label: 'floor (a) Worker',
      main: path.join(BENCH, 'workers/floor-a.js'),
      configFile: await toml('floor-a', ['name = "bench-floor-a"', `main = ${JSON.stringify(path.join(BENCH, 'workers/floor-a.js'))}`]),
      vars: { ORIGIN_URL: originUrl },
      probe: { path: '/bench/route/1' },
    },
    'floor-b': {
      label: 'floor (b) Worker',
      main: path.join(BENCH, 'workers/floor-b.js'),
      configFile: await toml('floor-b', ['name = "bench-floor-b"', `main = ${JSON.stringify(path.join(BENCH, 'workers/floor-b.js'))}`]),
      vars: { ORIGIN_URL: originUrl },
      probe: { path: '/bench/route/1' },
    },
    'cache-match': {
      label: 'cache-match Worker',
      main: path.join(BENCH, 'workers/cache-match.js'),
      configFile: await toml('cache-match', ['name = "bench-cache-match"', `main = ${JSON.stringify(path.join(BENCH, 'workers/cache-match.js'))}`]),
      vars: { ORIGIN_URL: originUrl },
      probe: { path: '/bench/route/1' },
    },
    'hono-isolate': {
      label: 'Hono gateway, in-isolate limiter',
      main: path.join(BENCH, 'workers/hono-isolate.js'),
      configFile: await toml('hono-isolate', ['name = "bench-hono-isolate"', `main = ${JSON.stringify(path.join(BENCH, 'workers/hono-isolate.js'))}`]),
      vars: { ORIGIN_URL: originUrl, BENCH_JWT_SECRET: keys.hmacSecret },
      probe: { path: '/bench/full/1', headers: { authorization: `Bearer ${keys.tokens.HS256}` } },
    },
    hono: {
      label: 'Hono gateway',
      main: path.join(BENCH, 'workers/hono.js'),
      configFile: await toml('hono', ['name = "bench-hono"', `main = ${JSON.stringify(path.join(BENCH, 'workers/hono.js'))}`, '', '[[kv_namespaces]]', 'binding = "RATE_KV"', 'id = "bench-hono"']),
      vars: { ORIGIN_URL: originUrl, BENCH_JWT_SECRET: keys.hmacSecret },
      probe: { path: '/bench/full/1', headers: { authorization: `Bearer ${keys.tokens.HS256}` } },
    },
    gateway: {
      label: 'this gateway',
      configFile: await toml('gateway', ['name = "bench-gateway"', `main = ${JSON.stringify(path.join(buildDir, 'index.js'))}`, ...GATEWAY_BINDINGS]),
      vars: { BENCH_JWT_SECRET: keys.hmacSecret, GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN },
      probe: { path: '/__gateway/health' },
    },
  };
  const bearer = (alg) => ({ authorization: `Bearer ${keys.tokens[alg]}` });
  const plan = [
    { worker: null, contestants: [{ id: 'origin', group: '1', label: 'origin, direct', what: 'wrk straight to the origin: the floor.', path: '/bench/route/42' }] },
    { worker: 'passthrough', contestants: [{ id: 'passthrough', group: '2', label: 'pass-through Worker', what: '`fetch(ORIGIN + path, request)` and nothing else (bench/workers/passthrough.js): the platform floor.', path: '/bench/route/42' }] },
    { worker: 'passthrough-log', contestants: [{ id: 'passthrough-log', group: '2b', label: 'pass-through + 1 log line', what: 'the pass-through plus one `console.log` of a JSON line like the gateway\'s (bench/workers/passthrough-log.js): what logging costs alone.', path: '/bench/route/42' }] },
    { worker: 'floor-a', contestants: [{ id: 'floor-a', group: '2c', label: 'floor (a): + request id both ways', what: 'the pass-through plus what the contract makes every request cost (bench/workers/floor-a.js): `new Request(url, request)` with `x-request-id` set on it, and `new Response(r.body, r)` with `x-request-id` set on it.', path: '/bench/route/42' }] },
    { worker: 'floor-b', contestants: [{ id: 'floor-b', group: '2d', label: 'floor (b): (a) + the log line', what: 'floor (a) plus one JSON `console.log` line with the fields and size of the gateway\'s full-chain log line (bench/workers/floor-b.js): the floor any implementation of the contract pays; every ratio "× floor b" is to this contestant.', path: '/bench/route/42' }] },
    {
      worker: 'cache-match',
      contestants: [{
        id: 'js-cache-hit', group: '2e', label: 'cache floor: `caches.default.match` hit',
        what: 'a JavaScript Worker that answers from `caches.default.match` of the same URL every time, with one header set on the hit (bench/workers/cache-match.js): the cache\'s own cost under the load of contestant 4f, whose tail it separates from the gateway\'s.',
        path: '/bench/cache/42',
        prepare: (url, h) => untilCacheHit(url, h, 'the cache floor'),
      }],
    },
    {
      worker: 'hono',
      contestants: [{
        id: 'hono', group: '3', label: 'Hono: JWT HS256 + KV rate limit + proxy',
        what: `Hono ${info.hono} (bench/workers/hono.js): route match, \`hono/jwt\` HS256 (iss, aud, exp checked), a KV fixed-window counter (one KV get and one KV put in waitUntil per request), \`hono/proxy\` to the origin. The same work as the gateway's full chain.`,
        path: '/bench/full/42', headers: bearer('HS256'),
        prepare: async (url, headers) => {
          await expectStatus(url, {}, 401, 'Hono without a token');
          await expectStatus(url, headers, 200, 'Hono with a token');
        },
      }, {
        id: 'hono-jwt', group: '3b', label: 'Hono: JWT HS256 + proxy (no KV)',
        what: 'the same Hono gateway on a route without the rate limit: shows how much of contestant 3 is the two KV calls per request (which wrangler simulates inside the Worker\'s workerd, so their CPU counts there).',
        path: '/bench/hs256/42', headers: bearer('HS256'),
        prepare: async (url, headers) => {
          await expectStatus(url, {}, 401, 'Hono (no KV) without a token');
          await expectStatus(url, headers, 200, 'Hono (no KV) with a token');
        },
      }],
    },
    {
      worker: 'hono-isolate',
      contestants: [{
        id: 'hono-full-isolate', group: '3c', label: 'Hono: JWT HS256 + in-isolate rate limit + proxy',
        what: `the stronger JavaScript peer (bench/workers/hono-isolate.js): contestant 3 with its limiter's fixed-window counters in a Map in the isolate (no KV call per request; rate-limit headers on the response) and the \`hono/jwt\` middleware made once per isolate. The same work as the gateway's full chain, whose isolate counters also spare KV.`,
        path: '/bench/full/42', headers: bearer('HS256'),
        prepare: async (url, headers) => {
          await expectStatus(url, {}, 401, 'Hono (in-isolate limiter) without a token');
          const res = await expectStatus(url, headers, 200, 'Hono (in-isolate limiter) with a token');
          if (!res.headers.get('ratelimit-remaining')) throw new Error('Hono (in-isolate limiter) answered without ratelimit-remaining');
        },
      }],
    },
    {
      worker: 'gateway',
      contestants: [
        { id: 'gateway-route', group: '4a', label: 'gateway: routing only', what: 'route match and forward (plus what every request gets: request id, traceparent, X-Forwarded-*, hop-by-hop removal, server-timing, one JSON log line).', path: '/bench/route/42' },
        { id: 'gateway-hs256', group: '4b', label: 'gateway: + JWT HS256', what: 'routing + JWT HS256 verification (`secret_var`), then forward.', path: '/bench/hs256/42', headers: bearer('HS256'), prepare: async (url, h) => { await expectStatus(url, {}, 401, 'HS256 route without a token'); await expectStatus(url, h, 200, 'HS256 route'); } },
        { id: 'gateway-es256', group: '4c', label: 'gateway: + JWT ES256', what: 'routing + JWT ES256 (P-256, inline JWK), then forward.', path: '/bench/es256/42', headers: bearer('ES256'), prepare: async (url, h) => { await expectStatus(url, {}, 401, 'ES256 route without a token'); await expectStatus(url, h, 200, 'ES256 route'); } },
        { id: 'gateway-rs256', group: '4d', label: 'gateway: + JWT RS256', what: 'routing + JWT RS256 (RSA 2048, inline JWK), then forward.', path: '/bench/rs256/42', headers: bearer('RS256'), prepare: async (url, h) => { await expectStatus(url, {}, 401, 'RS256 route without a token'); await expectStatus(url, h, 200, 'RS256 route'); } },
        ...[['ES384', '4d2', 'P-384, inline JWK; the gateway\'s own p384 verifier'], ['PS256', '4d3', 'RSA 2048 PSS, inline JWK'], ['EdDSA', '4d4', 'Ed25519, inline JWK']].map(([alg, group, key]) => ({
          id: `gateway-${alg.toLowerCase()}`, group, label: `gateway: + JWT ${alg}`, what: `routing + JWT ${alg} (${key}), then forward.`, path: `/bench/${alg.toLowerCase()}/42`, headers: bearer(alg),
          prepare: async (url, h) => { await expectStatus(url, {}, 401, `${alg} route without a token`); await expectStatus(url, h, 200, `${alg} route`); },
        })),
        ...[['HS256', '4h0'], ['ES256', '4h1'], ['RS256', '4h2'], ['ES384', '4h3'], ['EdDSA', '4h4'], ['PS256', '4h5']].map(([alg, group]) => {
          const c = {
            id: `gateway-${alg.toLowerCase()}-new`, group, label: `gateway: + JWT ${alg}, a new token every request`,
            what: `the ${alg} route with a different token on every request (distinct \`jti\`, signed beforehand, taken in turn by wrk from a file): every request pays the signature check, which a token seen before skips.`,
            path: `/bench/${alg.toLowerCase()}/42`,
            prepare: async (url) => {
              c.tokens ??= await newTokenFiles(keys, alg);
              const first = (await fsp.readFile(c.tokens.warmup, 'utf8')).split('\n')[0];
              await expectStatus(url, { authorization: `Bearer ${first}` }, 200, `${alg} route with a new token`);
            },
            // bench/crossings.mjs: a token per request, not the one prepare() sent.
            tokenLines: async () => (await fsp.readFile(c.tokens.warmup, 'utf8')).split('\n').filter(Boolean).slice(1),
          };
          return c;
        }),
        { id: 'gateway-ratelimit', group: '4e', label: 'gateway: + rate limit', what: 'routing + rate limit (100,000,000 per 60 s, key `route`; counters in the isolate, KV read/written at most once a second in waitUntil), then forward.', path: '/bench/ratelimit/42', prepare: async (url, h) => { const res = await expectStatus(url, h, 200, 'rate-limited route'); if (!res.headers.get('ratelimit-remaining') && !res.headers.get('x-ratelimit-remaining') && !res.headers.get('ratelimit')) notes.push(`the rate-limit route answered without a rate-limit header (headers: ${[...res.headers.keys()].join(', ')})`); } },
        {
          id: 'gateway-cache', group: '4f', label: 'gateway: cache hit', what: 'routing + edge cache lookup that hits (same URL every time; `cache.ttl_s` 3600); no origin request.', path: '/bench/cache/42',
          prepare: (url, h) => untilCacheHit(url, h, 'the cached route'),
        },
        { id: 'gateway-global', group: '4i', label: 'gateway: + global rate limit', what: 'routing + a `scope: "global"` rate limit (100,000,000 per 60 s, key `route`): budgets leased from the GatewayLimiter Durable Object, spent in the isolate; the Durable Object calls per request are in the calls table.', path: '/bench/global/42', prepare: async (url, h) => { const res = await expectStatus(url, h, 200, 'global route'); if (!res.headers.get('ratelimit-remaining')) notes.push('the global route answered without ratelimit-remaining'); } },
        ...[['apikey', '4j', 'gateway: + API key', 'routing + an API key checked (format and checksum, SHA-256, the isolate\'s lookup cache; KV once per 30 s), consumer headers set, then forward. Compare with 4b (JWT HS256).'],
          ['apikey-quota', '4k', 'gateway: + API key + quota', 'as 4j, plus a monthly quota of 100,000,000 counted by the GatewayLimiter Durable Object (leases, as global limits).']].map(([route, group, label, what]) => {
          const headers = {};
          return {
            id: `gateway-${route}`, group, label, what, path: `/bench/${route}/42`, headers,
            prepare: async (url) => {
              await expectStatus(url, {}, 401, `${route} route without a key`);
              headers['x-api-key'] = await benchKey(new URL(url).origin, route === 'apikey' ? 'bench-plain' : 'bench-quota');
              await expectStatus(url, headers, 200, `${route} route with a key`);
            },
          };
        }),
        ...[['post', '4n', 'gateway: POST of a 2 KB JSON body', 'routing and forward of a 2 KB JSON body, streamed through.'],
          ['validated', '4o', 'gateway: POST of a 2 KB JSON body, validated', 'the same body on a route with `validate.body` (a JSON Schema compiled once per isolate): read into memory, parsed, checked, then forwarded. Compare with 4n.']].map(([route, group, label, what]) => {
          const c = {
            id: `gateway-${route}`, group, label, what, path: `/bench/${route}/42`, headers: { 'content-type': 'application/json' }, body: BENCH_BODY,
            prepare: async (url, h) => {
              c.bodyFile = path.join(OUT, 'body-2k.json');
              await fsp.writeFile(c.bodyFile, BENCH_BODY);
              const res = await fetch(url, { method: 'POST', headers: h, body: BENCH_BODY });
              if (res.status !== 200) throw new Error(`${route} route: ${res.status} ${await res.text()}`);
            },
          };
          return c;
        }),
        { id: 'gateway-unhedged', group: '4l', label: `gateway: nearest region slow (${SLOW_REGION_MS} ms), no hedge`, what: `routing and forward to an origin whose nearest region answers after ${SLOW_REGION_MS} ms (the next one at once): every request waits for it.`, path: '/bench/unhedged/42', connections: HEDGE_CONNECTIONS },
        { id: 'gateway-hedged', group: '4m', label: `gateway: nearest region slow, hedged after ${HEDGE_AFTER_MS} ms`, what: `the same origin with \`hedge: {after_ms: ${HEDGE_AFTER_MS}, budget_percent: 100}\`: past ${HEDGE_AFTER_MS} ms the next region gets the request too and the first answer wins (the slow attempt is aborted). Compare p50 and p99 with 4l.`, path: '/bench/hedged/42', connections: HEDGE_CONNECTIONS, prepare: async (url, h) => { await expectStatus(url, h, 200, 'hedged route'); } },
        { id: 'gateway-full', group: '4g', label: 'gateway: full chain', what: 'routing + JWT HS256 + rate limit + forward (no cache): the same work as the Hono gateway.', path: '/bench/full/42', headers: bearer('HS256'), prepare: async (url, h) => { await expectStatus(url, {}, 401, 'full chain without a token'); await expectStatus(url, h, 200, 'full chain'); } },
      ],
    },
  ];
  const selected = (id) => !opts.only.length || opts.only.includes(id);
  const known = plan.flatMap((p) => p.contestants.map((c) => c.id));
  const unknown = opts.only.filter((id) => !known.includes(id));
  if (unknown.length) throw new Error(`BENCH_ONLY names unknown contestants: ${unknown.join(', ')} (known: ${known.join(' ')})`);
  const steps = plan.map((p) => ({ ...p, contestants: p.contestants.filter((c) => selected(c.id)) })).filter((p) => p.contestants.length);

  // Every selected Worker started once, each on its own ports and in its own
  // process group, and kept running through all rounds.
  const startups = [];
  const servers = new Map([[null, { name: 'origin', url: originUrl, child: null, workerPids: [] }]]);
  const roundsOf = new Map(steps.flatMap((p) => p.contestants.map((c) => [c.id, []])));
  const orders = [];
  let attribution = null;
  try {
    for (const step of steps) {
      if (!step.worker || servers.has(step.worker)) continue;
      const w = workers[step.worker];
      log(`starting ${w.label} (${opts.runner})`);
      const target = await startWorker({ name: step.worker, ...w });
      servers.set(step.worker, target);
      log(`${w.label}: first 200 after ${target.firstMs.toFixed(0)} ms; load on ${target.url} (workerd ${target.workerPids.join(', ')})`);
      startups.push({ name: step.worker, label: w.label, firstMs: target.firstMs, firstRequestMs: target.firstRequestMs });
    }
    const running = [...servers.values()].filter((t) => t.child);
    attribution = checkAttribution(running);
    log(`CPU attribution: ${attribution}`);
    // Warm every contestant once (a Worker's routes share its isolate's JIT and wasm tiers).
    for (const step of steps) for (const c of step.contestants) await warmUp(c, servers.get(step.worker));
    const all = steps.flatMap((p) => p.contestants.map((c) => ({ c, target: servers.get(p.worker) })));
    const random = seededRandom(opts.seed);
    for (let round = 0; round < opts.rounds; round++) {
      const order = shuffle(all, random);
      orders.push(order.map(({ c }) => c.id));
      log(`round ${round + 1}/${opts.rounds}: ${order.map(({ c }) => c.id).join(' ')}`);
      for (const { c, target } of order) {
        const m = await measure(c, target, origin.pid, round, running.filter((t) => t !== target));
        roundsOf.get(c.id).push(m);
        const errs = Object.values(m.errors).reduce((a, b) => a + b, 0);
        log(`  ${c.id}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms, Worker CPU ${f(m.cpuMsPerReq.worker, 3)} ms/req (other Workers ${f(m.cpuMsPerReq.neighbours, 3)}), origin CPU ${m.originCpuPct.toFixed(0)} %${errs ? `, ${errs} errors` : ''}`);
      }
    }
  } finally {
    for (const t of servers.values()) if (t.child) await stop(t.child);
  }
  const contestantsOf = steps.flatMap((p) => p.contestants);
  const results = contestantsOf.map((c) => aggregate(c, roundsOf.get(c.id)));
  ratiosTo(results, 'floor-b');
  ratiosTo(results, 'passthrough');
  for (const c of results) {
    const errs = Object.values(c.errors).reduce((a, b) => a + b, 0);
    if (errs) notes.push(`${c.label}: ${JSON.stringify(c.errors)} errors over the rounds (wrk counts status >= 400 as "status").`);
    if (c.reused) notes.push(`${c.label}: ${c.reused} of ${c.requests} requests carried a token already sent (a round's token list ran out); those skipped the signature check.`);
    if (c.id !== 'origin' && c.originCpuPct > 70) notes.push(`${c.label}: the origin used ${c.originCpuPct.toFixed(0)} % of a CPU (median); it may have limited this contestant.`);
    const cpu = c.cpuMsPerReq.worker;
    if (cpu && c.cpuMsPerReq.neighbours > 0.05 * cpu) notes.push(`${c.label}: the other running Workers used ${f(c.cpuMsPerReq.neighbours, 3)} ms of CPU per request of this contestant (median), ${f((100 * c.cpuMsPerReq.neighbours) / cpu, 0)} % of its own: something else ran in them.`);
  }

  // Per-request counts (exact, no timing): an instrumented copy of each Worker.
  let crossings = null;
  let crossingsCheck = null;
  if (opts.crossings) {
    crossings = [];
    for (const step of steps) {
      if (!step.worker) continue;
      const w = workers[step.worker];
      const name = `${step.worker}-crossings`;
      const dir = path.join(scratchDir, name);
      let configFile;
      if (step.worker === 'gateway') {
        const entry = await instrumentedBuild(buildDir, dir);
        configFile = await toml(name, ['name = "bench-gateway-crossings"', `main = ${JSON.stringify(entry)}`, ...GATEWAY_BINDINGS]);
      } else {
        const entry = await instrumentedJs(w.main, dir);
        const text = await fsp.readFile(w.configFile, 'utf8');
        configFile = path.join(dir, 'wrangler.toml');
        await fsp.writeFile(configFile, text.replace(/^main = .*$/m, `main = ${JSON.stringify(entry)}`).replace(/^name = "(.*)"$/m, 'name = "$1-crossings"'));
      }
      log(`counting per-request calls, strings and objects of ${w.label} (an instrumented copy)`);
      const t = await startWorker({ name, configFile, vars: w.vars, probe: w.probe });
      try {
        if (step.worker === 'gateway') {
          // Every counter must register before any count is believed.
          const gatewayDefs = plan.find((p) => p.worker === 'gateway').contestants;
          crossingsCheck = await selfCheck(t.url, { route: gatewayDefs.find((c) => c.id === 'gateway-route'), global: gatewayDefs.find((c) => c.id === 'gateway-global') });
          log(`counters registered: gateway-route ${crossingsCheck.route.perRequest} calls into JS; gateway-global's first request ${crossingsCheck.global.glue['Durable Object fetch']} Durable Object call(s), ${crossingsCheck.global.objects.Headers} Headers`);
        }
        if (step.worker === 'floor-a') {
          // A JavaScript Worker whose objects are known: one Request, one Response, one fetch.
          const [check] = await countCrossings(t.url, step.contestants, { n: 20, worker: step.worker });
          if (check.objects.Request !== 1 || check.objects.Response !== 1 || check.fetches !== 1) {
            throw new Error(`crossings self-check failed: floor (a) makes one Request, one Response and one fetch per request, counted ${JSON.stringify(check.objects)} and ${check.fetches} fetch`);
          }
        }
        crossings.push(...(await countCrossings(t.url, step.contestants, { worker: step.worker })));
      } finally {
        await stop(t.child);
      }
    }
  }
  await stop(origin);

  // The references: floor (b) and the pass-through Worker, medians over the rounds.
  const refOf = (id) => {
    const c = results.find((x) => x.id === id);
    return c ? { id, label: c.label, rps: c.rps, p50: c.p50, p99: c.p99, cpu: c.cpuMsPerReq.worker } : null;
  };
  const reference = refOf('floor-b') ?? refOf('passthrough') ?? { id: null, label: null, rps: null, p50: null, p99: null, cpu: null };
  const passthrough = refOf('passthrough');
  const floorB = refOf('floor-b');
  const pt = results.find((c) => c.id === 'passthrough');
  const drift = pt && pt.rounds.length > 1 ? `pass-through Worker over the rounds: req/s ${spread(pt.rounds.map((m) => m.rps), 0)}, CPU/req ${spread(pt.rounds.map((m) => m.cpuMsPerReq.worker), 3)} ms` : 'n/a';

  let openssl = null;
  if (opts.openssl) {
    try {
      openssl = opensslP384();
      log(`openssl speed ecdsap384: verify ${f(openssl.verifyMs, 3)} ms`);
    } catch (e) {
      notes.push(`openssl speed ecdsap384 failed (${e.message.split('\n')[0]}): no ES384 reference.`);
    }
  }

  let criterion = null;
  if (opts.criterion) {
    log('running the criterion bench (cargo bench --bench routing); log: bench/out/criterion.log');
    await run('cargo', ['bench', '--bench', 'routing'], { extraEnv: CRITERION_ENV, logFile: path.join(OUT, 'criterion.log') });
    criterion = await criterionResults();
  }

  const r = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    totalS: (Date.now() - t0) / 1000,
    // Findings and their before/after figures, kept by hand in bench/history.md.
    history: fs.existsSync(path.join(BENCH, 'history.md')) ? fs.readFileSync(path.join(BENCH, 'history.md'), 'utf8') : null,
    machine: info,
    loadAfter: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    command: `BENCH_RUNNER=${opts.runner} BENCH_ROUNDS=${opts.rounds} BENCH_SEED=${opts.seed} BENCH_DURATION=${opts.duration} BENCH_WARMUP=${opts.warmup} BENCH_CONNECTIONS=${opts.connections} BENCH_THREADS=${opts.threads}${opts.only.length ? ` BENCH_ONLY=${opts.only.join(',')}` : ''}${opts.perf ? ' BENCH_PERF=1' : ''} make bench   # make bench = make tools bench-tools && node bench/run.mjs`,
    wrkCommand: `wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --timeout 5s --latency -s bench/wrk-report.lua [-H 'Authorization: Bearer <JWT>'] URL`,
    runner: opts.runner,
    contestants: results,
    rounds: opts.rounds,
    orders,
    attribution,
    reference,
    passthrough,
    floorB,
    drift,
    openssl,
    startups,
    wasm,
    buildMs,
    gatewayRoutes: routes.routes.length,
    criterion,
    crossings,
    crossingsCheck: crossingsCheck && { route: { perRequest: crossingsCheck.route.perRequest, objects: crossingsCheck.route.objects, strings: crossingsCheck.route.strings }, globalLeases: crossingsCheck.global.glue['Durable Object fetch'], globalHeaders: crossingsCheck.global.objects.Headers },
    notes,
  };
  r.targets = targets(r);
  const stamp = r.date.replace(/[:]/g, '-');
  await fsp.writeFile(path.join(OUT, `results-${opts.runner}-${stamp}.json`), JSON.stringify(r, null, 2));
  await fsp.writeFile(path.join(OUT, `results-${opts.runner}.json`), JSON.stringify(r, null, 2));
  // A run of some contestants only (BENCH_ONLY) goes to results-partial.md,
  // beside the last full run's results.md.
  const suffix = (opts.runner === 'direct' ? '' : `-${opts.runner}`) + (opts.only.length ? '-partial' : '');
  const md = report(r).replace('](latency.png)', `](latency${suffix}.png)`);
  await fsp.writeFile(path.join(BENCH, `results${suffix}.md`), md + '\n');
  if (opts.chart) {
    try {
      await run(path.join(BENCH, '.venv/bin/python'), [path.join(BENCH, 'plot.py'), path.join(OUT, `results-${opts.runner}.json`), path.join(BENCH, `latency${suffix}.png`)]);
    } catch (e) {
      log(`no chart: ${e.message.split('\n')[0]} (make bench creates bench/.venv)`);
    }
  }
  console.log(md);
  log(`wrote bench/results${suffix}.md and bench/latency${suffix}.png in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench: ${e.stack ?? e}`);
    process.exit(1);
  },
);
