// The stronger JavaScript peer (contestant 3c): the Hono gateway of hono.js for
// the full chain (route match, hono/jwt HS256 with iss/aud/exp checked, a
// fixed-window rate limit keyed by route, hono/proxy), with what a careful
// author would change for speed: the limiter's counters live in the isolate (a
// Map of fixed windows, no KV call per request) and the JWT middleware is made
// once per isolate instead of once per request. Like the gateway's isolate
// counters, a limit is then per isolate.
import { Hono } from 'hono';
import { jwt } from 'hono/jwt';
import { proxy } from 'hono/proxy';

const app = new Hono();

// route -> { window, count }: the current fixed window of each limited route.
const windows = new Map();
const rateLimit = ({ limit, windowS }) => async (c, next) => {
  const now = Date.now() / 1000;
  const window = Math.floor(now / windowS);
  const key = c.req.routePath;
  let counter = windows.get(key);
  if (!counter || counter.window !== window) {
    counter = { window, count: 0 };
    windows.set(key, counter);
  }
  const reset = String(Math.ceil((window + 1) * windowS - now));
  if (counter.count >= limit) {
    return c.json({ error: 'too many requests' }, 429, { 'retry-after': reset });
  }
  counter.count++;
  await next();
  c.header('ratelimit-limit', String(limit));
  c.header('ratelimit-remaining', String(limit - counter.count));
  c.header('ratelimit-reset', reset);
};

// The secret is a Worker variable, known at the first request: the middleware is
// built then and kept.
let verify = null;
app.use('/bench/full/*', (c, next) => {
  verify ??= jwt({
    secret: c.env.BENCH_JWT_SECRET,
    alg: 'HS256',
    verification: { iss: 'https://bench.example/', aud: 'bench' },
  });
  return verify(c, next);
});

app.get(
  '/bench/full/:id',
  rateLimit({ limit: 100_000_000, windowS: 60 }),
  (c) => {
    const url = new URL(c.req.url);
    return proxy(`${c.env.ORIGIN_URL}${url.pathname}${url.search}`, {
      ...c.req,
      headers: {
        ...c.req.header(),
        'x-forwarded-for': c.req.header('cf-connecting-ip'),
        'x-forwarded-host': c.req.header('host'),
        'x-forwarded-proto': url.protocol.slice(0, -1),
      },
    });
  },
);

export default app;
