// Counts the gateway's calls from wasm into JavaScript per request, per route.
//
// A copy of the built Worker gets a prelude that wraps every function the wasm
// module imports (the wasm-bindgen glue: Headers.get/set/delete, new Request,
// console.log, Date.now, ...) with a counter, and an entry point that answers
// GET /__bench/crossings with the counts so far (and resets them). These counts
// are exact and do not depend on how busy the machine is, unlike the timings.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const PRELUDE = `// Counts calls of the wasm module's imports (bench/crossings.mjs).
globalThis.__benchCrossings = new Map();
globalThis.__benchBodies = new Map();
// What the glue does inside those calls: strings decoded from wasm memory
// (TextDecoder.decode), strings encoded into it, closures registered for cleanup.
const countCall = (object, method, key) => {
  const original = object[method];
  object[method] = function (...args) {
    globalThis.__benchCrossings.set(key, (globalThis.__benchCrossings.get(key) ?? 0) + 1);
    return original.apply(this, args);
  };
  globalThis.__benchBodies.set(key, 'called by the glue, not an import');
};
countCall(TextDecoder.prototype, 'decode', '(glue) TextDecoder.decode');
countCall(TextEncoder.prototype, 'encode', '(glue) TextEncoder.encode');
countCall(TextEncoder.prototype, 'encodeInto', '(glue) TextEncoder.encodeInto');
countCall(FinalizationRegistry.prototype, 'register', '(glue) FinalizationRegistry.register');
const Original = WebAssembly.Instance;
WebAssembly.Instance = function (module, imports) {
  for (const ns of Object.values(imports ?? {})) {
    for (const [name, fn] of Object.entries(ns)) {
      if (typeof fn !== 'function') continue;
      const key = name;
      globalThis.__benchBodies.set(key, String(fn).replace(/\\s+/g, ' ').slice(0, 160));
      ns[name] = function (...args) {
        globalThis.__benchCrossings.set(key, (globalThis.__benchCrossings.get(key) ?? 0) + 1);
        return fn.apply(this, args);
      };
    }
  }
  return new Original(module, imports);
};
`;

const ENTRY = `import './prelude.js';
import Gateway from './index.js';
export { GatewayLimiter } from './index.js';
// Durable Object calls (global limits, quotas): every stub fetch of GATEWAY_LIMITER.
const key = '(edge) Durable Object fetch';
globalThis.__benchBodies.set(key, 'GATEWAY_LIMITER stub.fetch, counted by the entry point');
const counted = new WeakMap();
function countObjectCalls(env) {
  const ns = env.GATEWAY_LIMITER;
  if (!ns) return env;
  if (!counted.has(ns)) {
    const stubOf = (stub) => new Proxy(stub, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop !== 'fetch') return typeof value === 'function' ? value.bind(target) : value;
        return (...args) => {
          globalThis.__benchCrossings.set(key, (globalThis.__benchCrossings.get(key) ?? 0) + 1);
          return value.apply(target, args);
        };
      },
    });
    counted.set(ns, new Proxy(ns, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop === 'get') return (...args) => stubOf(value.apply(target, args));
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }));
  }
  return new Proxy(env, { get: (target, prop) => (prop === 'GATEWAY_LIMITER' ? counted.get(ns) : Reflect.get(target, prop)) });
}
export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === '/__bench/crossings') {
      const counts = Object.fromEntries(globalThis.__benchCrossings);
      globalThis.__benchCrossings.clear();
      return Response.json({ counts, bodies: Object.fromEntries(globalThis.__benchBodies) });
    }
    return new Gateway(ctx, countObjectCalls(env)).fetch(request);
  },
};
`;

/** A readable name for an import: its wasm-bindgen name and what its body does. */
function label(name, body) {
  const short = name.replace(/^__wbg_/, '').replace(/_[0-9a-f]{16}$/, '');
  const inner = body.replace(/^function\s*\([^)]*\)\s*\{\s*/, '');
  const m = inner.match(/new [A-Z]\w*|Reflect\.\w+|console\.\w+|Date\.now|BigInt\.asUintN|queueMicrotask|[a-z]\.\w+(?:\.\w+)?(?=\()|[a-z]\[[a-z] >>> 0\]|[a-z]\.\w+ = |\.\w+(?=[,;])/);
  return m ? `${short} (${m[0].trim()})` : short;
}

/** Copies the build into `dir` with the counting prelude; returns the entry point's path. */
export async function instrumentedBuild(buildDir, dir) {
  await fsp.mkdir(dir, { recursive: true });
  for (const name of fs.readdirSync(buildDir)) {
    if (name.endsWith('.js') || name.endsWith('.wasm')) await fsp.copyFile(path.join(buildDir, name), path.join(dir, name));
  }
  await fsp.writeFile(path.join(dir, 'prelude.js'), PRELUDE);
  await fsp.writeFile(path.join(dir, 'entry.js'), ENTRY);
  return path.join(dir, 'entry.js');
}

/**
 * Sends `n` requests (8 at a time) per contestant and reads the counts after each:
 * resolves [{id, label, perRequest: total, top: [[name, perRequest, body]]}].
 */
export async function countCrossings(baseUrl, contestants, n = 200) {
  const read = async () => (await fetch(`${baseUrl}/__bench/crossings`)).json();
  await read(); // reset: start-up and earlier requests
  const out = [];
  for (const c of contestants) {
    if (c.prepare) await c.prepare(baseUrl + c.path, c.headers ?? {});
    await read();
    let sent = 0;
    const statuses = new Map();
    const worker = async () => {
      while (sent < n) {
        sent++;
        const init = c.body ? { method: 'POST', body: c.body } : {};
        const res = await fetch(baseUrl + c.path, { headers: c.headers ?? {}, ...init });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    // Let background work (KV flushes in waitUntil, cache puts) run and be counted too.
    await new Promise((r) => setTimeout(r, 1200));
    const { counts, bodies } = await read();
    const entries = Object.entries(counts).map(([name, count]) => [name.startsWith('(') ? name : label(name, bodies[name] ?? ''), count / n, bodies[name] ?? '']);
    entries.sort((a, b) => b[1] - a[1]);
    out.push({
      id: c.id,
      label: c.label,
      perRequest: entries.filter(([name]) => !name.startsWith('(')).reduce((s, [, x]) => s + x, 0),
      glue: Object.fromEntries(entries.filter(([name]) => name.startsWith('(')).map(([name, x]) => [name.slice(7), x])),
      statuses: Object.fromEntries(statuses),
      top: entries,
    });
  }
  return out;
}
