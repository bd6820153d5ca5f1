// The end-to-end suite: the built Worker under `wrangler dev` against echo origins.
// One process, one build: every suite's routes go into the same routes file (see
// harness.mjs). Suites are the modules in ./suites, run in name order; the
// harness checks (which restart wrangler) run last.
//
// E2E_SUITES=regions,jwt runs only those suites (by module name), for a quick
// loop while writing one; CI always runs them all.
import { readdirSync } from 'node:fs';
import { after, before, describe } from 'node:test';

import { E2E } from './harness.mjs';

const dir = new URL('./suites/', import.meta.url);
const only = process.env.E2E_SUITES ? new Set(process.env.E2E_SUITES.split(',')) : null;
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => f.slice(0, -4))
  .filter((n) => !only || only.has(n) || n === 'harness-checks')
  .sort((a, b) => (a === 'harness-checks') - (b === 'harness-checks') || a.localeCompare(b));
const suites = [];
for (const name of names) {
  suites.push((await import(new URL(`${name}.mjs`, dir))).default);
}

const e2e = new E2E(suites);

// The first build compiles the wasm crate from scratch (minutes on 2 cores).
before(() => e2e.start(), { timeout: 20 * 60_000 });
after(() => e2e.stop(), { timeout: 60_000 });

for (const suite of suites) {
  describe(suite.name, { timeout: 5 * 60_000 }, () => suite.tests(e2e));
}
