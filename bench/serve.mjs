// Serves one Worker with wrangler's own dev engine (what `wrangler dev` runs:
// config, bundling, Miniflare, workerd) but with the DevTools inspector off.
//
// Why: the `wrangler dev` CLI always attaches its inspector proxy, which turns
// every subrequest into four `Network.*` DevTools events (and every
// console.log into one more), each relayed to wrangler's Node process as an HTTP
// POST. Under load that relay, not workerd, is what gets measured (see
// bench/README.md). `BENCH_RUNNER=cli` runs the CLI instead.
//
// Usage: node bench/serve.mjs --config wrangler.toml --port N --persist DIR [--var NAME:value ...]
// Prints "READY <url>" once wrangler reports the Worker ready; SIGTERM disposes it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { unstable_startWorker } = await import(path.join(ROOT, 'node_modules/wrangler/wrangler-dist/cli.js'));

const args = process.argv.slice(2);
const one = (flag) => {
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`serve.mjs: missing ${flag}`);
  return args[i + 1];
};
const bindings = {};
args.forEach((a, i) => {
  if (a !== '--var') return;
  const [name, ...rest] = args[i + 1].split(':');
  bindings[name] = { type: 'plain_text', value: rest.join(':') };
});

const worker = await unstable_startWorker({
  config: one('--config'),
  bindings,
  dev: {
    inspector: false,
    persist: one('--persist'),
    server: { hostname: '127.0.0.1', port: Number(one('--port')) },
    watch: false,
    liveReload: false,
    logLevel: process.env.BENCH_WRANGLER_LOG_LEVEL || 'warn',
  },
});
await worker.ready;
process.stdout.write(`READY ${String(await worker.url)}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  try {
    await worker.dispose();
  } finally {
    process.exit(0);
  }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
