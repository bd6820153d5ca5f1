// CORS as a real browser enforces it: headless Chromium (Debian's `chromium`,
// driven by playwright-core) loads a page from one 127.0.0.1 origin and fetches
// the gateway, on another port, cross-origin. What the page can read is what the
// browser allows, so these tests check the gateway's CORS answers where it matters:
//   - a preflight to a path no route matches is answered, so the page reads the 404
//     and its x-request-id;
//   - the gateway's own headers (ratelimit-*, www-authenticate) are readable;
//   - a page from a disallowed origin cannot read a credentialed answer, even when
//     the origin behind the gateway grants it.
//
// This suite sets the routes file's top-level `cors` (the page's origin).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { listenLocal } from '../harness.mjs';
import { launchChromium } from '../lib/browser.mjs';

const JWT_SECRET = 'browser-hmac-secret-' + crypto.randomBytes(24).toString('hex');

/** A server of one blank HTML page: its origin is where the page's fetches come from. */
function startPage() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><title>page</title><p>page</p>');
  });
  return listenLocal(server, {});
}

export default {
  name: 'browser',
  servers: [
    'browser-origin',
    { name: 'browser-page', start: startPage },
    { name: 'browser-evil-page', start: startPage },
  ],
  config: ({ servers }) => ({
    origins: {
      'browser-origin': { regions: [{ name: 'local', url: servers['browser-origin'].url, serves: ['*'] }] },
    },
    jwt: {
      'browser-jwt': { issuer: 'https://browser.e2e.test/', secret_var: 'BROWSER_JWT_SECRET', algorithms: ['HS256'] },
    },
    cors: { origins: [servers['browser-page'].url], credentials: true, headers: ['x-custom', 'content-type'] },
    routes: [
      { id: 'browser-limited', path: '/browser/limited', methods: ['GET'], origin: 'browser-origin', rate_limit: { requests: 1000, window_s: 60 } },
      { id: 'browser-auth', path: '/browser/auth', methods: ['GET'], origin: 'browser-origin', auth: { jwt: 'browser-jwt' } },
      { id: 'browser-creds', path: '/browser/creds/{*rest}', methods: ['GET'], origin: 'browser-origin' },
    ],
  }),
  secrets: { BROWSER_JWT_SECRET: JWT_SECRET },

  tests(e2e) {
    let browser = null;
    let context = null;

    before(
      async () => {
        browser = await launchChromium();
        context = browser.context;
      },
      { timeout: 150_000 },
    );

    after(async () => {
      await browser?.close().catch(() => {});
    });

    /** Opens the page of `pageServer` and runs `fn(gatewayUrl, arg)` in it; returns its result. */
    async function inPage(pageServer, fn, arg) {
      const page = await context.newPage();
      try {
        await page.goto(`${e2e.servers[pageServer].url}/`);
        return await page.evaluate(fn, { gateway: e2e.url, arg });
      } finally {
        await page.close();
      }
    }

    /** Waits for the gateway's log line of a request matching `predicate` (it is printed after the answer). */
    async function logLine(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = e2e.wrangler.logs.find((entry) => predicate(entry.value));
        if (found) return found.value;
        if (Date.now() > deadline) assert.fail('no matching log line');
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    describe('a page in headless Chromium', () => {
      test('a preflighted request to an unmatched path: the page reads the 404 and its x-request-id', async () => {
        const marker = crypto.randomBytes(4).toString('hex');
        const got = await inPage(
          'browser-page',
          async ({ gateway, arg }) => {
            const res = await fetch(`${gateway}/browser/no-such-path/${arg}`, {
              method: 'PUT',
              headers: { 'x-custom': '1', 'content-type': 'application/json' },
              body: '{}',
              credentials: 'include',
            });
            return { status: res.status, requestId: res.headers.get('x-request-id'), body: await res.json() };
          },
          marker,
        );
        assert.equal(got.status, 404);
        assert.match(got.requestId ?? '', /^[A-Za-z0-9._-]{1,128}$/, 'x-request-id is not readable by the page');
        assert.equal(got.body.request_id, got.requestId);
        assert.equal(got.body.status, 404);
        // The browser asked first, and the gateway answered the preflight itself.
        const preflight = await logLine((l) => l.method === 'OPTIONS' && l.path === `/browser/no-such-path/${marker}`);
        assert.equal(preflight.status, 204);
      });

      test("the gateway's own headers are readable: ratelimit-* and www-authenticate", async () => {
        const got = await inPage('browser-page', async ({ gateway }) => {
          const limited = await fetch(`${gateway}/browser/limited`);
          const auth = await fetch(`${gateway}/browser/auth`);
          return {
            limited: limited.status,
            limit: limited.headers.get('ratelimit-limit'),
            remaining: limited.headers.get('ratelimit-remaining'),
            reset: limited.headers.get('ratelimit-reset'),
            auth: auth.status,
            challenge: auth.headers.get('www-authenticate'),
            requestId: auth.headers.get('x-request-id'),
          };
        });
        assert.equal(got.limited, 200);
        assert.equal(got.limit, '1000');
        assert.match(got.remaining ?? '', /^\d+$/);
        assert.match(got.reset ?? '', /^\d+$/);
        assert.equal(got.auth, 401);
        assert.equal(got.challenge, 'Bearer');
        assert.ok(got.requestId);
      });

      test('a page from a disallowed origin cannot read a credentialed answer the origin grants it', async () => {
        const evil = e2e.servers['browser-evil-page'].url;
        const grant = `access-control-allow-origin=${encodeURIComponent(evil)}&access-control-allow-credentials=true`;
        const target = `/browser/creds/secret/__headers?${grant}`;
        const run = (pageServer) =>
          inPage(
            pageServer,
            async ({ gateway, arg }) => {
              try {
                const res = await fetch(`${gateway}${arg}`, { credentials: 'include' });
                return { read: true, status: res.status, body: await res.text() };
              } catch (e) {
                return { read: false, error: String(e) };
              }
            },
            target,
          );
        const refused = await run('browser-evil-page');
        assert.equal(refused.read, false, `the disallowed page read: ${JSON.stringify(refused).slice(0, 200)}`);
        assert.match(refused.error, /TypeError/);
        // The request did reach the origin (a simple GET is sent); the answer is what the browser withheld.
        const line = await logLine((l) => l.route === 'browser-creds' && l.status === 200);
        assert.equal(line.status, 200);
        // The allowed page reads the same answer.
        const allowed = await run('browser-page');
        assert.equal(allowed.read, true, JSON.stringify(allowed));
        assert.equal(allowed.status, 200);
      });
    });
  },
};
