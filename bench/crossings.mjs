// Counts, per request and route, what a Worker does across the JavaScript
// boundary: the gateway's calls from wasm into JavaScript, the strings copied
// out of and into wasm memory, and (for every Worker, the gateway and the
// JavaScript ones alike) the Headers, Request and Response objects it makes.
//
// A copy of the Worker gets a prelude that
// - wraps every function the wasm module imports (the wasm-bindgen glue:
//   Headers.get/set/delete, new Request, console.log, Date.now, ...) with a
//   counter;
// - counts the glue's string copies: TextDecoder.decode (a string read out of
//   wasm memory) and the glue's passStringToWasm (a string written into it;
//   found in the glue's source and patched, because its ASCII fast path calls
//   no TextEncoder method);
// - replaces the Headers, Request and Response constructors by Proxies that
//   count `new` (the glue's `new Headers` etc. included: it looks them up as
//   globals when called) and counts their `clone()`, and counts `fetch`;
// and an entry point that answers GET /__bench/crossings with the counts so far
// (and resets them). These counts are exact and do not depend on how busy the
// machine is, unlike the timings. `run.mjs` checks that every counter
// registers (selfCheck below) before it reports them.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const PRELUDE = `// Counters for bench/crossings.mjs.
globalThis.__benchCrossings = new Map();
globalThis.__benchBodies = new Map();
globalThis.__benchCount = (key) => globalThis.__benchCrossings.set(key, (globalThis.__benchCrossings.get(key) ?? 0) + 1);
const countCall = (object, method, key, body = 'called by the glue, not an import') => {
  const original = object[method];
  object[method] = function (...args) {
    globalThis.__benchCount(key);
    return original.apply(this, args);
  };
  globalThis.__benchBodies.set(key, body);
};
countCall(TextDecoder.prototype, 'decode', '(glue) TextDecoder.decode');
countCall(TextEncoder.prototype, 'encode', '(glue) TextEncoder.encode');
countCall(TextEncoder.prototype, 'encodeInto', '(glue) TextEncoder.encodeInto');
countCall(FinalizationRegistry.prototype, 'register', '(glue) FinalizationRegistry.register');
globalThis.__benchBodies.set('(glue) string into wasm', 'the glue\\'s passStringToWasm, patched');
// API objects: \`new\` on the globals (whoever calls it), and clone().
for (const name of ['Headers', 'Request', 'Response']) {
  const Original = globalThis[name];
  const key = \`(made) new \${name}\`;
  globalThis.__benchBodies.set(key, \`new \${name}(...), counted by a Proxy on the global\`);
  const counted = new Proxy(Original, {
    construct(target, args, newTarget) {
      globalThis.__benchCount(key);
      return Reflect.construct(target, args, newTarget === counted ? target : newTarget);
    },
  });
  globalThis[name] = counted;
  if (name !== 'Headers') countCall(Original.prototype, 'clone', \`(made) \${name}.clone\`, \`\${name}.prototype.clone\`);
}
countCall(globalThis, 'fetch', '(made) fetch', 'the global fetch (subrequests)');
const OriginalInstance = WebAssembly.Instance;
WebAssembly.Instance = function (module, imports) {
  for (const ns of Object.values(imports ?? {})) {
    for (const [name, fn] of Object.entries(ns)) {
      if (typeof fn !== 'function') continue;
      const key = name;
      globalThis.__benchBodies.set(key, String(fn).replace(/\\s+/g, ' ').slice(0, 160));
      ns[name] = function (...args) {
        globalThis.__benchCount(key);
        return fn.apply(this, args);
      };
    }
  }
  return new OriginalInstance(module, imports);
};
`;

const READ_COUNTS = `
    if (new URL(request.url).pathname === '/__bench/crossings') {
      const counts = Object.fromEntries(globalThis.__benchCrossings);
      globalThis.__benchCrossings.clear();
      return Response.json({ counts, bodies: Object.fromEntries(globalThis.__benchBodies) });
    }`;

const GATEWAY_ENTRY = `import './prelude.js';
import Gateway from './index.js';
export { GatewayLimiter } from './index.js';
// Durable Object calls (global limits, quotas): every stub fetch of GATEWAY_LIMITER.
const key = '(edge) Durable Object fetch';
globalThis.__benchBodies.set(key, 'GATEWAY_LIMITER stub.fetch, counted by the entry point');
const counted = new WeakMap();
// Methods are bound to the real object (workerd's methods refuse a Proxy as
// \`this\`), but not \`constructor\`: workers-rs checks a binding's type by
// \`constructor.name\`, which binding would turn into "bound DurableObjectNamespace"
// (and the gateway would then run as if it had no GATEWAY_LIMITER binding).
const own = (target, prop) => {
  const value = Reflect.get(target, prop);
  return typeof value === 'function' && prop !== 'constructor' ? value.bind(target) : value;
};
function countObjectCalls(env) {
  const ns = env.GATEWAY_LIMITER;
  if (!ns) return env;
  if (!counted.has(ns)) {
    const stubOf = (stub) => new Proxy(stub, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop !== 'fetch') return own(target, prop);
        return (...args) => {
          globalThis.__benchCount(key);
          return value.apply(target, args);
        };
      },
    });
    counted.set(ns, new Proxy(ns, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop === 'get') return (...args) => stubOf(value.apply(target, args));
        return own(target, prop);
      },
    }));
  }
  return new Proxy(env, { get: (target, prop) => (prop === 'GATEWAY_LIMITER' ? counted.get(ns) : Reflect.get(target, prop)) });
}
export default {
  async fetch(request, env, ctx) {${READ_COUNTS}
    return new Gateway(ctx, countObjectCalls(env)).fetch(request);
  },
};
`;

const JS_ENTRY = (main) => `import './prelude.js';
import worker from ${JSON.stringify(main)};
export default {
  async fetch(request, env, ctx) {${READ_COUNTS}
    return worker.fetch(request, env, ctx);
  },
};
`;

// wasm-bindgen's passStringToWasm0(arg, malloc, realloc), minified or not: the
// one glue function of three parameters that starts with \`if (realloc === undefined)\`
// and copies ASCII with charCodeAt.
const PASS_STRING = /function\s+([\w$]+)\s*\(\s*([\w$]+)\s*,\s*([\w$]+)\s*,\s*([\w$]+)\s*\)\s*\{(?=\s*if\s*\(\s*\4\s*===\s*(?:void 0|undefined)\s*\)\s*\{[^]{0,400}?charCodeAt)/g;

/** A readable name for an import: its wasm-bindgen name and what its body does. */
function label(name, body) {
  const short = name.replace(/^__wbg_/, '').replace(/_[0-9a-f]{16}$/, '');
  const inner = body.replace(/^function\s*\([^)]*\)\s*\{\s*/, '');
  const m = inner.match(/new [A-Z]\w*|Reflect\.\w+|console\.\w+|Date\.now|BigInt\.asUintN|queueMicrotask|[a-z]\.\w+(?:\.\w+)?(?=\()|[a-z]\[[a-z] >>> 0\]|[a-z]\.\w+ = |\.\w+(?=[,;])/);
  return m ? `${short} (${m[0].trim()})` : short;
}

/**
 * Copies the gateway's build into `dir` with the counting prelude and the glue's
 * string copies into wasm counted; returns the entry point's path.
 */
export async function instrumentedBuild(buildDir, dir) {
  await fsp.mkdir(dir, { recursive: true });
  for (const name of fs.readdirSync(buildDir)) {
    if (name.endsWith('.js') || name.endsWith('.wasm')) await fsp.copyFile(path.join(buildDir, name), path.join(dir, name));
  }
  const glueFile = path.join(dir, 'index.js');
  const glue = await fsp.readFile(glueFile, 'utf8');
  const found = [...glue.matchAll(PASS_STRING)];
  if (found.length !== 1) {
    throw new Error(`crossings: expected one passStringToWasm function in ${glueFile}, found ${found.length}; the string count into wasm cannot be made`);
  }
  await fsp.writeFile(glueFile, glue.replace(PASS_STRING, (m) => `${m}globalThis.__benchCount("(glue) string into wasm");`));
  await fsp.writeFile(path.join(dir, 'prelude.js'), PRELUDE);
  await fsp.writeFile(path.join(dir, 'entry.js'), GATEWAY_ENTRY);
  return path.join(dir, 'entry.js');
}

/** The same counters around a plain JavaScript Worker (`main`, its module); returns the entry point's path. */
export async function instrumentedJs(main, dir) {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'prelude.js'), PRELUDE);
  await fsp.writeFile(path.join(dir, 'entry.js'), JS_ENTRY(main));
  return path.join(dir, 'entry.js');
}

/** Reads and resets the counts of the instrumented Worker at `baseUrl`. */
export async function readCounts(baseUrl) {
  const res = await fetch(`${baseUrl}/__bench/crossings`);
  if (res.status !== 200) throw new Error(`crossings: GET /__bench/crossings answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

/** Per request figures from raw counts over `n` requests. */
function summarize(counts, bodies, n) {
  const entries = Object.entries(counts).map(([name, count]) => [name.startsWith('(') ? name : label(name, bodies[name] ?? ''), count / n, bodies[name] ?? '']);
  entries.sort((a, b) => b[1] - a[1]);
  const extra = Object.fromEntries(entries.filter(([name]) => name.startsWith('(')).map(([name, x]) => [name.replace(/^\(\w+\) /, ''), x]));
  const decoded = extra['TextDecoder.decode'] ?? 0;
  const encoded = extra['string into wasm'] ?? 0;
  return {
    perRequest: entries.filter(([name]) => !name.startsWith('(')).reduce((s, [, x]) => s + x, 0),
    strings: { decoded, encoded, total: decoded + encoded },
    objects: {
      Headers: extra['new Headers'] ?? 0,
      Request: (extra['new Request'] ?? 0) + (extra['Request.clone'] ?? 0),
      Response: (extra['new Response'] ?? 0) + (extra['Response.clone'] ?? 0),
      clones: (extra['Request.clone'] ?? 0) + (extra['Response.clone'] ?? 0),
    },
    fetches: extra.fetch ?? 0,
    glue: extra,
    top: entries,
  };
}

/**
 * Sends `n` requests (8 at a time) per contestant and reads the counts after each:
 * resolves [{id, label, worker, perRequest, strings, objects, fetches, glue, top, statuses}].
 * A contestant may name `tokenLines` (distinct tokens, one per request) and
 * `expect` (its status, 200 by default); any other status fails the count.
 */
export async function countCrossings(baseUrl, contestants, { n = 200, worker = null } = {}) {
  await readCounts(baseUrl); // reset: start-up and earlier requests
  const out = [];
  for (const c of contestants) {
    if (c.prepare) await c.prepare(baseUrl + c.path, c.headers ?? {});
    const tokens = c.tokenLines ? await c.tokenLines() : null;
    if (tokens && tokens.length < n) throw new Error(`crossings: ${c.id} has ${tokens.length} tokens for ${n} requests`);
    await readCounts(baseUrl);
    let sent = 0;
    const statuses = new Map();
    const send = async () => {
      while (sent < n) {
        const i = sent++;
        const headers = { ...(c.headers ?? {}), ...(tokens ? { authorization: `Bearer ${tokens[i]}` } : {}) };
        const init = c.body ? { method: 'POST', body: c.body } : {};
        const res = await fetch(baseUrl + c.path, { headers, ...init });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, send));
    // Let background work (KV flushes in waitUntil, cache puts) run and be counted too.
    await new Promise((r) => setTimeout(r, 1200));
    const { counts, bodies } = await readCounts(baseUrl);
    const wrong = [...statuses].filter(([status]) => status !== (c.expect ?? 200));
    if (wrong.length) throw new Error(`crossings: ${c.id} answered ${JSON.stringify(Object.fromEntries(statuses))} to ${n} requests, not all ${c.expect ?? 200}`);
    out.push({ id: c.id, label: c.label, worker, statuses: Object.fromEntries(statuses), ...summarize(counts, bodies, n) });
  }
  return out;
}

/**
 * Checks that every counter registers, failing loudly otherwise: on a fresh
 * gateway isolate, one request to `route` (a routing-only contestant) must count
 * calls into JavaScript, strings both ways, Request and Response objects and a
 * fetch; one first request to `global` (a global-limit contestant) must take a
 * lease, a Durable Object call with its own Headers. Resolves what it saw.
 */
export async function selfCheck(baseUrl, { route, global }) {
  const one = async (c) => {
    await readCounts(baseUrl);
    const res = await fetch(baseUrl + c.path, { headers: c.headers ?? {} });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`crossings self-check: ${c.id} answered ${res.status}`);
    await new Promise((r) => setTimeout(r, 500));
    const { counts, bodies } = await readCounts(baseUrl);
    return summarize(counts, bodies, 1);
  };
  const seen = {};
  const failures = [];
  if (route) {
    const s = await one(route);
    seen.route = s;
    const need = {
      'calls into JavaScript': s.perRequest,
      'strings decoded from wasm': s.strings.decoded,
      'strings written into wasm': s.strings.encoded,
      'Request objects': s.objects.Request,
      'Response objects': s.objects.Response,
      'fetch calls': s.fetches,
    };
    for (const [what, x] of Object.entries(need)) if (!(x > 0)) failures.push(`${route.id}: no ${what} counted`);
  }
  if (global) {
    const s = await one(global);
    seen.global = s;
    if (!((s.glue['Durable Object fetch'] ?? 0) >= 1)) failures.push(`${global.id}: its first request took no lease (no Durable Object call counted)`);
    // The lease request carries its own Headers (a routing-only request makes
    // none: it edits the headers of the Request and Response it makes).
    if (!(s.objects.Headers > 0)) failures.push(`${global.id}: no Headers objects counted`);
  }
  if (failures.length) throw new Error(`crossings self-check failed (a counter does not register):\n  ${failures.join('\n  ')}`);
  return seen;
}
