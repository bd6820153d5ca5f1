// Headless Chromium for the end-to-end tests: Debian's `chromium` package
// (`make test-e2e` installs it when missing), driven by playwright-core (pinned
// in package.json; it downloads no browser). One fresh profile per launch, no
// background traffic of the browser's own, so every request a page makes is one
// the test can account for.
//
//   const browser = await launchChromium();
//   try {
//     const page = await browser.newPage();      // records requests and console errors
//     await page.goto(url);
//     page.requests, page.consoleErrors           // arrays, filled as the page runs
//   } finally {
//     await browser.close();                      // also removes the profile
//   }
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium with a fresh profile; `close()` stops it and removes the profile. */
export async function launchChromium({ viewport = { width: 1280, height: 900 } } = {}) {
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gateway-chromium-'));
  let context;
  try {
    // launchPersistentContext is how playwright takes a --user-data-dir of our own.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport,
      timeout: 120_000,
    });
  } catch (e) {
    await fsp.rm(userDataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    /** A new page that records every request it makes and every console error. */
    async newPage() {
      const page = await context.newPage();
      page.requests = [];
      page.consoleErrors = [];
      page.on('request', (r) => page.requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error') page.consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      await fsp.rm(userDataDir, { recursive: true, force: true });
    },
  };
}
