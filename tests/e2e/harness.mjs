// The end-to-end harness: echo origins on 127.0.0.1, a routes file naming their
// real ports, ONE Worker build embedding it, and `wrangler dev` serving that build.
//
// Origin ports are compiled into the Worker, so every suite runs in one process
// against one build. A suite is a plain object (see suites/foundation.mjs):
//
//   export default {
//     name: 'foundation',
//     servers: ['echo', 'store'],             // echo origins to start (shared by name);
//                                             // or {name, start: async () => ({url, port, close})}
//                                             // for a server of the suite's own (e.g. a JWKS)
//     config: (ctx) => ({ origins: {...}, jwt: {...}, cors: {...}, routes: [...] }),
//     vars: { NAME: 'value' },                // optional Worker variables ([vars])
//     secrets: { NAME: 'value' },             // optional Worker secrets (.dev.vars)
//     tests: (e2e) => { test('...', async () => { ... }) },
//   };
//
// `config(ctx)` gets ctx.servers (name -> started origin: url, port, hits,
// requests, count(suffix), reset()), ctx.deadUrl (nothing listens there),
// ctx.root and ctx.dir (the directory of the merged routes file). The harness merges every suite's fragment into one routes file
// (a duplicate origin, provider or route id, or two top-level `cors`, is an error).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startOrigin } from '../../scripts/origin.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const env = (name, fallback) => (process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');

// --- processes ---------------------------------------------------------------
// Every child is started in its own process group (detached) and tracked, so the
// whole group (wrangler and its workerd children, make and cargo) can be killed,
// also on an interrupt or an early exit.

const live = new Set();
// Temporary directories to remove at exit, even after an interrupt.
const scratch = new Set();

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // no such group left
  }
}

function killGroup(child, signal) {
  if (!child) return;
  if (!signalGroup(child.pid, signal) && child.exitCode === null && child.signalCode === null) {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
  for (const dir of scratch) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.once(signal, () => {
    for (const child of live) killGroup(child, 'SIGKILL');
    process.exit(code);
  });
}

function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Runs a command in its own process group; resolves {code, signal, output (interleaved), stdout, stderr}. */
export function run(cmd, args, { cwd = ROOT, env: extraEnv = {}, logFile } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(cmd, args, { cwd, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true }),
    );
    const out = logFile ? fs.createWriteStream(logFile) : null;
    let output = '';
    let stdout = '';
    let stderr = '';
    const collect = (which) => (chunk) => {
      const text = chunk.toString();
      output += text;
      if (which === 'stdout') stdout += text;
      else stderr += text;
      out?.write(chunk);
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      out?.end();
      resolve({ code: code ?? (signal ? 128 : 1), signal, output, stdout, stderr });
    });
  });
}

const tail = (text, lines = 60) => text.split('\n').slice(-lines).join('\n');

// --- ports -------------------------------------------------------------------

/** A port that was free a moment ago (listen on port 0, read it, close). */
/**
 * Starts `server` (node:http or node:net) on a free port of 127.0.0.1 and resolves
 * `state` with `port`, `url`, `server` and `close()` (which drops open connections;
 * `close` replaces that for servers that track their sockets themselves).
 */
export function listenLocal(server, state, { close } = {}) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      state.port = server.address().port;
      state.url = `http://127.0.0.1:${state.port}`;
      state.server = server;
      state.close =
        close ??
        (() =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }));
      resolve(state);
    });
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// --- the routes file ---------------------------------------------------------

/** Merges the suites' routes fragments into one file; throws on any clash. */
export function mergeConfig(fragments) {
  const file = { origins: {}, routes: [] };
  const ids = new Set();
  for (const { suite, part } of fragments) {
    for (const [name, origin] of Object.entries(part.origins ?? {})) {
      if (file.origins[name]) throw new Error(`suite ${suite}: origin "${name}" is already defined`);
      file.origins[name] = origin;
    }
    for (const [name, provider] of Object.entries(part.jwt ?? {})) {
      file.jwt ??= {};
      if (file.jwt[name]) throw new Error(`suite ${suite}: jwt provider "${name}" is already defined`);
      file.jwt[name] = provider;
    }
    if (part.cors) {
      if (file.cors) throw new Error(`suite ${suite}: a top-level cors is already defined`);
      file.cors = part.cors;
    }
    for (const [name, plan] of Object.entries(part.plans ?? {})) {
      file.plans ??= {};
      if (file.plans[name]) throw new Error(`suite ${suite}: plan "${name}" is already defined`);
      file.plans[name] = plan;
    }
    if (part.api_keys) {
      if (file.api_keys) throw new Error(`suite ${suite}: api_keys is already defined`);
      file.api_keys = part.api_keys;
    }
    for (const route of part.routes ?? []) {
      if (ids.has(route.id)) throw new Error(`suite ${suite}: route id "${route.id}" is already used`);
      ids.add(route.id);
      file.routes.push(route);
    }
    // Any suite may switch the docs page on; it then lists every suite's routes.
    if (part.docs) file.docs = true;
    const known = ['origins', 'jwt', 'cors', 'plans', 'api_keys', 'routes', 'docs'];
    const unknown = Object.keys(part).filter((k) => !known.includes(k));
    if (unknown.length) throw new Error(`suite ${suite}: unknown config keys ${unknown.join(', ')}`);
  }
  return file;
}

// --- building ----------------------------------------------------------------

/**
 * Builds the Worker with `make build`, embedding `routesFile`, into `buildDir`.
 * Checks that the wasm really embeds this routes file (the cargo target dir is
 * shared with other builds), retrying once if another build got in between. The
 * build embeds the file re-serialized, so its distinctive strings are looked for:
 * the origins' URLs (with the ports this run picked) and the route ids.
 */
export async function buildWorker({ routesFile, buildDir, logFile }) {
  const routes = JSON.parse(await fsp.readFile(routesFile, 'utf8'));
  const markers = [
    ...Object.values(routes.origins ?? {}).flatMap((o) => (o.regions ?? []).map((r) => r.url ?? r.service)),
    ...(routes.routes ?? []).map((r) => r.id),
  ].map((m) => Buffer.from(JSON.stringify(m)));
  for (let attempt = 1; ; attempt++) {
    const started = Date.now();
    const result = await run('make', ['--no-print-directory', 'build', `BUILD_DIR=${buildDir}`], {
      env: { GATEWAY_ROUTES: routesFile },
      logFile,
    });
    if (result.code !== 0) {
      throw new Error(`make build failed (exit ${result.code}); full log: ${logFile}\n${tail(result.output, 80)}`);
    }
    const wasm = await fsp.readFile(path.join(buildDir, 'index_bg.wasm'));
    if (markers.every((m) => wasm.includes(m))) return { ms: Date.now() - started };
    if (attempt >= 2) {
      throw new Error(`the built Worker in ${buildDir} does not embed ${routesFile} (a concurrent build with other routes?)`);
    }
  }
}

// --- wrangler dev ------------------------------------------------------------

/** `wrangler dev` serving a built Worker; captures its output and the gateway's JSON log lines. */
export class Wrangler {
  constructor({ dir, configFile, port, inspectorPort, persistTo, vars = {}, env = {}, readyTimeoutMs = 90_000, probePath = '/__gateway/health' }) {
    Object.assign(this, { dir, configFile, port, inspectorPort, persistTo, vars, env, readyTimeoutMs, probePath });
    this.url = `http://127.0.0.1:${port}`;
    this.lines = []; // every output line, stdout and stderr, ANSI stripped
    this.logs = []; // the parsed JSON log lines of the gateway
    this.events = []; // the gateway's JSON event lines without a request id (kv_write, kv_error, ...)
    this.waiters = new Set();
    this.eventWaiters = new Set();
    this.child = null;
    this.starts = 0;
  }

  args() {
    const args = [
      path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
      'dev',
      '--config', this.configFile,
      '--ip', '127.0.0.1',
      '--port', String(this.port),
      '--inspector-port', String(this.inspectorPort),
      '--persist-to', this.persistTo,
      '--show-interactive-dev-session=false',
      // `info` hides the Worker's console.log lines (wrangler's levels: error < warn
      // < info < log < debug); the gateway's JSON log lines are console.log.
      '--log-level', 'log',
    ];
    for (const [name, value] of Object.entries(this.vars)) args.push('--var', `${name}:${value}`);
    return args;
  }

  onOutput(stream) {
    let partial = '';
    stream.on('data', (chunk) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop();
      for (const raw of parts) this.onLine(stripAnsi(raw).replace(/\r$/, ''));
    });
  }

  onLine(line) {
    const at = Date.now(); // when the line arrived here
    const seq = this.lines.length; // its place among all output lines (this.lines[seq])
    this.lines.push(line);
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) return;
    let value;
    try {
      value = JSON.parse(trimmed);
    } catch {
      return;
    }
    if (!value || typeof value !== 'object') return;
    if (typeof value.request_id !== 'string') {
      if (typeof value.event !== 'string') return;
      const entry = { line: trimmed, value, at, seq, index: this.events.length };
      this.events.push(entry);
      for (const waiter of this.eventWaiters) waiter(entry);
      return;
    }
    const entry = { line: trimmed, value, at, seq };
    this.logs.push(entry);
    for (const waiter of this.waiters) waiter(entry);
  }

  /** The last `n` output lines, for error messages. */
  output(n = 80) {
    return this.lines.slice(-n).join('\n');
  }

  async start() {
    this.starts += 1;
    const child = track(
      spawn(process.execPath, this.args(), {
        cwd: this.dir,
        env: {
          ...process.env,
          ...this.env,
          WRANGLER_SEND_METRICS: 'false',
          WRANGLER_LOG_PATH: path.join(this.dir, 'wrangler-logs'),
          FORCE_COLOR: '0',
          NO_COLOR: '1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    );
    this.child = child;
    this.onOutput(child.stdout);
    this.onOutput(child.stderr);
    let exited = null;
    child.once('exit', (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + this.readyTimeoutMs;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(`wrangler dev exited (code ${exited.code}, signal ${exited.signal}) before it was ready:\n${this.output()}`);
      }
      try {
        const res = await fetch(`${this.url}${this.probePath}`, { signal: AbortSignal.timeout(3000) });
        const text = await res.text();
        if (res.status === 200) return;
        last = `${res.status} ${text.slice(0, 200)}`;
      } catch (e) {
        last = String(e.cause?.code ?? e.message);
      }
      await sleep(150);
    }
    await this.stop();
    throw new Error(`wrangler dev was not ready within ${this.readyTimeoutMs} ms (last: ${last}):\n${this.output()}`);
  }

  async stop() {
    const child = this.child;
    this.child = null;
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      signalGroup(child.pid, 'SIGKILL'); // leftovers of a wrangler that died by itself
      return;
    }
    const gone = new Promise((r) => child.once('exit', r));
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
    // workerd processes share the group; make sure none outlives wrangler.
    signalGroup(child.pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while ((await portAccepts(this.port)) && Date.now() < deadline) await sleep(100);
  }

  /** Stops and starts wrangler on the same port and persist dir (KV state survives). */
  async restart() {
    await this.stop();
    this.lines.push(`--- restart ${this.starts} ---`);
    await this.start();
  }

  /** Resolves with the parsed JSON log line of `requestId` (waits for it to be printed). */
  waitForLog(requestId, { timeoutMs = 5000 } = {}) {
    const found = this.logs.find((e) => e.value.request_id === requestId);
    if (found) return Promise.resolve(found.value);
    return new Promise((resolve, reject) => {
      const waiter = (entry) => {
        if (entry.value.request_id !== requestId) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(entry.value);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no log line with request_id ${requestId} within ${timeoutMs} ms; last output:\n${this.output(30)}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /**
   * Resolves with the first entry of `events` from index `since` on for which
   * `predicate(value, entry)` holds (waits for it to be printed). An entry is
   * {value, line, at, seq, index}: `at` its arrival time (ms), `seq` its place in
   * `lines`, `index` its place in `events`. Event lines are the gateway's JSON lines
   * with an `event` and no `request_id`, e.g. {"event":"kv_write","key":"rl:..."}.
   */
  waitForEvent(predicate, { since = 0, timeoutMs = 5000 } = {}) {
    const found = this.events.slice(since).find((e) => predicate(e.value, e));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = (entry) => {
        if (entry.index < since || !predicate(entry.value, entry)) return;
        clearTimeout(timer);
        this.eventWaiters.delete(waiter);
        resolve(entry);
      };
      const timer = setTimeout(() => {
        this.eventWaiters.delete(waiter);
        reject(new Error(`no matching event line within ${timeoutMs} ms; last output:\n${this.output(30)}`));
      }, timeoutMs);
      this.eventWaiters.add(waiter);
    });
  }

  /** Every JSON log line printed so far for `requestId`, as raw text. */
  logLinesFor(requestId) {
    return this.logs.filter((e) => e.value.request_id === requestId).map((e) => e.line);
  }
}

// --- client helpers ----------------------------------------------------------

/**
 * One HTTP/1.1 request with node:http, for full control over the request line and
 * headers (a Host header, Connection and other hop-by-hop headers, paths with dot
 * segments that fetch would resolve). `headers` is an object or a flat raw list
 * ['name', 'value', ...] (a Host header is added when it has none). `body` is sent
 * with a content-length; `chunks` (an array) is sent chunked, one write each.
 * Resolves {status, headers, rawHeaders, trailers, body, text(), json()}.
 */
export function rawRequest(port, { method = 'GET', path: target = '/', headers = {}, body, chunks, timeoutMs = 20_000 } = {}) {
  if (Array.isArray(headers) && !headers.some((v, i) => i % 2 === 0 && String(v).toLowerCase() === 'host')) {
    headers = ['Host', `127.0.0.1:${port}`, ...headers];
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: target, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          resolve({
            status: res.statusCode,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            trailers: res.trailers,
            body: buf,
            text: () => buf.toString('utf8'),
            json: () => JSON.parse(buf.toString('utf8')),
          });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${target} within ${timeoutMs} ms`)));
    if (chunks) {
      for (const chunk of chunks) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });
}

// --- the whole environment ---------------------------------------------------

/**
 * Everything the suites run against. `await e2e.start()` in before(), `await
 * e2e.stop()` in after(). Then:
 *   e2e.url            the gateway's base URL (http://127.0.0.1:PORT)
 *   e2e.port           its port
 *   e2e.servers        name -> echo origin (see scripts/origin.mjs)
 *   e2e.routes         the routes file as embedded (object)
 *   e2e.routesFile     its path
 *   e2e.wrangler       the Wrangler (logs, waitForLog, restart)
 *   e2e.fetch(path, init)        global fetch against the gateway (no redirects followed)
 *   e2e.raw(options)             rawRequest against the gateway
 *   e2e.waitForLog(requestId)    the gateway's JSON log line for a request
 *   e2e.restart()                restart wrangler dev (same port, same KV state)
 *   e2e.totalHits()              requests received by all echo origins together
 *   e2e.startPeer(options)       a second, independent `wrangler dev` process serving
 *                                the same build (see startPeer)
 */
export class E2E {
  /** The Worker name of the main `wrangler dev` process (peers bind its limiter by it). */
  static WORKER_NAME = 'edge-gateway-e2e';

  constructor(suites) {
    this.suites = suites;
    this.servers = {};
    this.timings = {};
    this.peers = [];
  }

  async start() {
    try {
      await this.startAll();
    } catch (e) {
      // Keep the evidence (build.log, routes.json, wrangler.toml) for a failed start.
      if (this.tmp) {
        scratch.delete(this.tmp);
        this.keepTmp = true;
        e.message += `\n(kept ${this.tmp})`;
      }
      throw e;
    }
  }

  async startAll() {
    const t0 = Date.now();
    this.tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'gateway-e2e-'));
    const keep = env('E2E_KEEP', '');
    if (!keep) scratch.add(this.tmp);
    for (const spec of this.suites.flatMap((s) => s.servers ?? [])) {
      const name = typeof spec === 'string' ? spec : spec.name;
      if (this.servers[name]) continue; // shared by name
      const server = typeof spec === 'string' ? await startOrigin({ name, port: 0 }) : await spec.start();
      // workerd pools its connections to the origins; node's default 5 s idle
      // timeout would race with the reuse of a pooled connection (a spurious 502).
      if (server.server) server.server.keepAliveTimeout = 10 * 60_000;
      this.servers[name] = server;
    }
    // Nothing listens on port 1 (privileged, unused): connections are refused.
    this.deadUrl = 'http://127.0.0.1:1';
    // ctx.dir: where the merged routes file is written (`validate.body` paths are relative to it).
    const ctx = { servers: this.servers, deadUrl: this.deadUrl, root: ROOT, dir: this.tmp };
    this.routes = mergeConfig(this.suites.filter((s) => s.config).map((s) => ({ suite: s.name, part: s.config(ctx) })));
    this.routesFile = path.join(this.tmp, 'routes.json');
    await fsp.writeFile(this.routesFile, JSON.stringify(this.routes, null, 2) + '\n');

    const buildRoot = path.resolve(ROOT, env('E2E_BUILD_DIR', 'target/e2e-build'));
    this.buildDir = path.join(buildRoot, `run-${process.pid}-${crypto.randomBytes(3).toString('hex')}`);
    if (!keep) scratch.add(this.buildDir);
    const build = await buildWorker({ routesFile: this.routesFile, buildDir: this.buildDir, logFile: path.join(this.tmp, 'build.log') });
    this.timings.buildMs = build.ms;

    const vars = Object.assign({}, ...this.suites.map((s) => s.vars ?? {}));
    const secrets = Object.assign({}, ...this.suites.map((s) => s.secrets ?? {}));
    this.vars = vars;
    // The dev registry through which other `wrangler dev` processes of this run
    // (and only those) reach this one's Durable Objects.
    this.registry = path.join(this.tmp, 'registry');
    await fsp.mkdir(this.registry, { recursive: true });
    const toml = [
      `name = ${JSON.stringify(E2E.WORKER_NAME)}`,
      `main = ${JSON.stringify(path.join(this.buildDir, 'index.js'))}`,
      'compatibility_date = "2026-04-20"',
      '',
      '[[kv_namespaces]]',
      'binding = "GATEWAY_KV"',
      'id = "e2e"',
      '',
      // Global rate limits: this process hosts the limiter objects.
      '[[durable_objects.bindings]]',
      'name = "GATEWAY_LIMITER"',
      'class_name = "GatewayLimiter"',
      '',
      '[[migrations]]',
      'tag = "v1"',
      'new_sqlite_classes = ["GatewayLimiter"]',
      '',
    ];
    // Workers the suites reach through service bindings: each its own `wrangler
    // dev` process in this run's registry, started before the gateway.
    this.services = {};
    for (const spec of this.suites.flatMap((s) => s.services ?? [])) {
      if (this.services[spec.binding]) throw new Error(`service binding ${spec.binding} is declared twice`);
      const name = `${E2E.WORKER_NAME}-svc-${spec.binding.toLowerCase().replace(/_/g, '-')}`;
      this.services[spec.binding] = await this.startServiceWorker(name, spec);
      toml.push('[[services]]', `binding = ${JSON.stringify(spec.binding)}`, `service = ${JSON.stringify(name)}`, '');
    }
    if (Object.keys(vars).length) {
      toml.push('[vars]');
      for (const [k, v] of Object.entries(vars)) toml.push(`${k} = ${JSON.stringify(String(v))}`);
      toml.push('');
    }
    const configFile = path.join(this.tmp, 'wrangler.toml');
    await fsp.writeFile(configFile, toml.join('\n'));
    if (Object.keys(secrets).length) {
      const lines = Object.entries(secrets).map(([k, v]) => `${k}=${JSON.stringify(String(v))}`);
      await fsp.writeFile(path.join(this.tmp, '.dev.vars'), lines.join('\n') + '\n');
    }

    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.wrangler = new Wrangler({
      dir: this.tmp,
      configFile,
      port: this.port,
      inspectorPort: await freePort(),
      persistTo: path.join(this.tmp, 'state'),
      vars: { DEV_GEO_HEADERS: 'true' },
      env: { WRANGLER_REGISTRY_PATH: this.registry },
    });
    const w0 = Date.now();
    await this.wrangler.start();
    this.timings.wranglerMs = Date.now() - w0;
    this.timings.startMs = Date.now() - t0;
    console.error(`e2e: build ${this.timings.buildMs} ms, wrangler dev ready in ${this.timings.wranglerMs} ms (${this.tmp})`);
  }

  /**
   * Starts another `wrangler dev` process serving the same build as a Worker of
   * its own (`name`), with its own port, KV and state, and resolves its Wrangler.
   * Its `GATEWAY_LIMITER` binding names the class in `limiterScript` (by default
   * the first process's Worker), reached through this run's dev registry: two
   * independent gateway processes sharing one limiter. Stopped by stop().
   * `kv` (key -> value) is written to the peer's KV before it starts, with
   * `wrangler kv key put --local`: what KV's replication would bring it.
   */
  async startPeer({ name = `${E2E.WORKER_NAME}-peer-${this.peers.length + 1}`, limiterScript = E2E.WORKER_NAME, kv = {} } = {}) {
    const dir = path.join(this.tmp, name);
    await fsp.mkdir(dir, { recursive: true });
    const toml = [
      `name = ${JSON.stringify(name)}`,
      `main = ${JSON.stringify(path.join(this.buildDir, 'index.js'))}`,
      'compatibility_date = "2026-04-20"',
      '',
      '[[kv_namespaces]]',
      'binding = "GATEWAY_KV"',
      'id = "e2e-peer"',
      '',
      '[[durable_objects.bindings]]',
      'name = "GATEWAY_LIMITER"',
      'class_name = "GatewayLimiter"',
      `script_name = ${JSON.stringify(limiterScript)}`,
      '',
    ];
    if (Object.keys(this.vars ?? {}).length) {
      toml.push('[vars]');
      for (const [k, v] of Object.entries(this.vars)) toml.push(`${k} = ${JSON.stringify(String(v))}`);
      toml.push('');
    }
    const configFile = path.join(dir, 'wrangler.toml');
    await fsp.writeFile(configFile, toml.join('\n'));
    const secrets = path.join(this.tmp, '.dev.vars');
    if (fs.existsSync(secrets)) await fsp.copyFile(secrets, path.join(dir, '.dev.vars'));
    for (const [key, value] of Object.entries(kv)) {
      const put = await run(
        'npx',
        ['wrangler', 'kv', 'key', 'put', key, value, '--binding', 'GATEWAY_KV', '--local',
          '--persist-to', path.join(dir, 'state'), '--config', configFile],
        { env: { WRANGLER_SEND_METRICS: 'false' } },
      );
      if (put.code !== 0) throw new Error(`wrangler kv key put failed:\n${tail(put.output)}`);
    }
    const peer = new Wrangler({
      dir,
      configFile,
      port: await freePort(),
      inspectorPort: await freePort(),
      persistTo: path.join(dir, 'state'),
      vars: { DEV_GEO_HEADERS: 'true' },
      env: { WRANGLER_REGISTRY_PATH: this.registry },
    });
    this.peers.push(peer);
    await peer.start();
    return peer;
  }

  /** A Worker of its own (`spec.main`, `spec.vars`) in this run's dev registry. */
  async startServiceWorker(name, spec) {
    const dir = path.join(this.tmp, name);
    await fsp.mkdir(dir, { recursive: true });
    const toml = [
      `name = ${JSON.stringify(name)}`,
      `main = ${JSON.stringify(spec.main)}`,
      'compatibility_date = "2026-04-20"',
      '',
      '[vars]',
      ...Object.entries(spec.vars ?? {}).map(([k, v]) => `${k} = ${JSON.stringify(String(v))}`),
      '',
    ];
    const configFile = path.join(dir, 'wrangler.toml');
    await fsp.writeFile(configFile, toml.join('\n'));
    const worker = new Wrangler({
      dir,
      configFile,
      port: await freePort(),
      inspectorPort: await freePort(),
      persistTo: path.join(dir, 'state'),
      env: { WRANGLER_REGISTRY_PATH: this.registry },
      probePath: '/',
    });
    this.peers.push(worker);
    await worker.start();
    return worker;
  }

  async stop() {
    await Promise.all(this.peers.map((p) => p.stop().catch(() => {})));
    await this.wrangler?.stop().catch(() => {});
    await Promise.all(Object.values(this.servers).map((s) => s.close().catch(() => {})));
    if (!env('E2E_KEEP', '')) {
      if (this.tmp && !this.keepTmp) await fsp.rm(this.tmp, { recursive: true, force: true }).catch(() => {});
      if (this.buildDir) await fsp.rm(this.buildDir, { recursive: true, force: true }).catch(() => {});
    } else {
      console.error(`# e2e: kept ${this.tmp} and ${this.buildDir}`);
    }
  }

  fetch(target, init = {}) {
    return fetch(this.url + target, { redirect: 'manual', ...init });
  }

  raw(options) {
    return rawRequest(this.port, options);
  }

  waitForLog(requestId, options) {
    return this.wrangler.waitForLog(requestId, options);
  }

  restart() {
    return this.wrangler.restart();
  }

  totalHits() {
    return Object.values(this.servers).reduce((n, s) => n + (s.hits ?? 0), 0);
  }
}
