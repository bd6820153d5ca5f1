// `make dev`: two demo origins and the gateway under `wrangler dev`, until Ctrl-C.
//
// The demo origins are the echo services of scripts/origin.mjs on the ports that
// routes.json names (9101 "eu", 9102 "us"). wrangler builds the Worker with
// `make build` (see wrangler.toml) and serves it with a local KV store and cache
// under .wrangler/state.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { startOrigin } from './origin.mjs';

const PORT = Number(process.env.PORT || 8787);
// The admin token of this session (consumers API, cache purges); set your own with GATEWAY_ADMIN_TOKEN.
const ADMIN = process.env.GATEWAY_ADMIN_TOKEN || 'dev-' + crypto.randomBytes(12).toString('hex');
const base = `http://127.0.0.1:${PORT}`;

const origins = [];
for (const [name, port] of [['eu', 9101], ['us', 9102]]) {
  try {
    origins.push(await startOrigin({ name, port }));
    console.log(`demo origin "${name}" on http://127.0.0.1:${port}`);
  } catch (e) {
    console.error(`cannot start demo origin "${name}" on port ${port}: ${e.message}`);
    process.exit(1);
  }
}

const wrangler = spawn(
  'npx',
  ['wrangler', 'dev', '--ip', '127.0.0.1', '--port', String(PORT), '--var', 'DEV_GEO_HEADERS:true',
    '--var', `GATEWAY_ADMIN_TOKEN:${ADMIN}`,
    '--show-interactive-dev-session=false'],
  { stdio: ['ignore', 'inherit', 'inherit'], detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } },
);

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  try { process.kill(-wrangler.pid, 'SIGTERM'); } catch {}
  Promise.all(origins.map((o) => o.close())).finally(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
wrangler.on('exit', (code) => stop(code ?? 1));

// Wait until the gateway answers, then show where to send requests.
const deadline = Date.now() + 10 * 60 * 1000;
while (!stopping && Date.now() < deadline) {
  try {
    const res = await fetch(`${base}/__gateway/health`);
    if (res.ok) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 500));
}
if (!stopping) {
  console.log(`
The gateway is ready on ${base}. Try:

  curl -i ${base}/__gateway/health
  curl -i ${base}/api/users/42?fields=name
  curl -i -H 'x-dev-continent: NA' ${base}/api/users/42
  curl -i -X PUT -d '{"name":"Ada"}' ${base}/api/users/42
  curl -i -X POST ${base}/api/users/42          # 405 with Allow
  curl -i ${base}/files/reports/2026.csv

Consumers and API keys (admin token of this session: ${ADMIN}):

  curl -X POST ${base}/__gateway/consumers -H 'Authorization: Bearer ${ADMIN}' -d '{"id":"acme","plan":"demo"}'
  curl -X POST ${base}/__gateway/consumers/acme/keys -H 'Authorization: Bearer ${ADMIN}'
  curl -i ${base}/api/reports/7 -H 'x-api-key: <the key printed above>'

Every request prints one JSON log line above. Ctrl-C stops the gateway and the origins.
`);
}
