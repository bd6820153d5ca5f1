// The docs page in a real browser: `GET /__gateway/docs` (the routes file has
// `"docs": true`, so it lists every suite's routes) rendered by headless
// Chromium. It shows every route, loads nothing from any other host (nor from
// the gateway beyond the page itself), logs no console error, and holds no
// origin URL or secret. A screenshot is written (E2E_SCREENSHOT=docs/docs-page.png
// refreshes the README's).
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ADMIN_TOKEN } from '../lib/admin.mjs';
import { launchChromium } from '../lib/browser.mjs';

export default {
  name: 'docs',
  servers: ['docs-origin'],
  config: ({ servers }) => ({
    docs: true,
    origins: { 'docs-origin': { regions: [{ name: 'local', url: servers['docs-origin'].url }] } },
    routes: [
      { id: 'docs-items', path: '/docs-demo/items/{id}', methods: ['GET', 'PUT'], origin: 'docs-origin',
        rate_limit: { requests: 100, window_s: 60 }, cache: { ttl_s: 30 } },
    ],
  }),

  tests(e2e) {
    describe('the docs page in Chromium', () => {
      let browser;
      before(async () => {
        browser = await launchChromium({ viewport: { width: 1400, height: 1000 } });
      }, { timeout: 180_000 });
      after(() => browser?.close());

      test('renders every route, loads nothing else, no console errors, no secrets', { timeout: 120_000 }, async () => {
        const page = await browser.newPage();
        const res = await page.goto(`${e2e.url}/__gateway/docs`, { waitUntil: 'load' });
        assert.equal(res.status(), 200);
        assert.match(res.headers()['content-type'], /^text\/html/);
        assert.match(res.headers()['content-security-policy'], /default-src 'none'/);
        const shown = await page.$$eval('tr[data-route]', (rows) => rows.map((r) => r.dataset.route));
        const ids = e2e.routes.routes.map((r) => r.id);
        for (const id of ids) assert.ok(shown.includes(id), `route ${id} is not on the page`);
        assert.equal(new Set(shown).size, ids.length, 'a route is shown twice, or one that does not exist');
        const row = await page.$eval('tr[data-route="docs-items"]', (r) => r.textContent);
        assert.match(row, /\/docs-demo\/items\/\{id\}/);
        assert.match(row, /100 requests per 60 s/);
        assert.match(row, /30 s at the edge/);

        const foreign = page.requests.filter((u) => !u.startsWith('data:') && u !== `${e2e.url}/__gateway/docs`);
        assert.deepEqual(foreign, [], 'the page made other requests');
        assert.deepEqual(page.consoleErrors, []);
        const html = await page.content();
        // No region URL of any origin (other local servers, such as the pages of the
        // CORS suites, may rightly show as allowed CORS origins).
        const regionUrls = Object.values(e2e.routes.origins).flatMap((o) => o.regions.map((r) => r.url).filter(Boolean));
        assert.ok(regionUrls.length > 0);
        for (const url of regionUrls) assert.ok(!html.includes(url), `an origin URL is on the page: ${url}`);
        assert.ok(!html.includes(ADMIN_TOKEN), 'the admin token is on the page');
        assert.ok(!html.includes('hmac-secret-'), 'an HMAC secret of a suite is on the page');

        const shot = process.env.E2E_SCREENSHOT
          ? path.resolve(process.env.E2E_SCREENSHOT)
          : path.join(e2e.tmp, 'docs-page.png');
        await page.screenshot({ path: shot, fullPage: false });
        assert.ok((await fsp.stat(shot)).size > 10_000, 'the screenshot is empty');
      });

      test('the OpenAPI document beside it lists the same routes', async () => {
        const res = await e2e.fetch('/__gateway/openapi.json');
        assert.equal(res.status, 200);
        const doc = await res.json();
        assert.equal(doc.openapi, '3.1.0');
        // Routes on other hosts sharing a path and method are listed under the first one.
        const routes = new Set(
          Object.values(doc.paths).flatMap((item) =>
            Object.values(item).flatMap((op) => [op['x-gateway-route'], ...(op['x-gateway-also-routes'] ?? []).map((o) => o['x-gateway-route'])]),
          ),
        );
        for (const id of e2e.routes.routes.map((r) => r.id)) assert.ok(routes.has(id), `route ${id} is not in openapi.json`);
      });
    });
  },
};
