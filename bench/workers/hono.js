// Contestant 3: the JavaScript gateway a Workers user would write today for the
// gateway's "full chain" route: Hono routing, hono/jwt (HS256, issuer and
// audience checked), a KV counter rate limit keyed by route, and hono/proxy to
// forward (hop-by-hop headers stripped, X-Forwarded-* set). Written the way the
// Hono and Workers docs show it, not tuned either way.
import { Hono } from 'hono';
import { jwt } from 'hono/jwt';
import { proxy } from 'hono/proxy';

const app = new Hono();

// A fixed-window counter in KV: read, check, write back in the background.
const rateLimit = ({ limit, windowS }) => async (c, next) => {
  const window = Math.floor(Date.now() / 1000 / windowS);
  const key = `rl:${c.req.routePath}:${window}`;
  const count = Number((await c.env.RATE_KV.get(key)) ?? 0);
  if (count >= limit) {
    return c.json({ error: 'too many requests' }, 429, { 'retry-after': String(windowS) });
  }
  c.executionCtx.waitUntil(c.env.RATE_KV.put(key, String(count + 1), { expirationTtl: Math.max(60, windowS * 2) }));
  await next();
};

app.use('/bench/full/*', (c, next) =>
  jwt({
    secret: c.env.BENCH_JWT_SECRET,
    alg: 'HS256',
    verification: { iss: 'https://bench.example/', aud: 'bench' },
  })(c, next),
);

// The same gateway without the rate limit (JWT + proxy only), to separate Hono's
// own cost from the KV calls, which wrangler simulates inside the Worker's workerd.
app.use('/bench/hs256/*', (c, next) =>
  jwt({
    secret: c.env.BENCH_JWT_SECRET,
    alg: 'HS256',
    verification: { iss: 'https://bench.example/', aud: 'bench' },
  })(c, next),
);

const forward = (c) => {
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
};

app.get('/bench/hs256/:id', forward);

app.get(
  '/bench/full/:id',
  rateLimit({ limit: 100_000_000, windowS: 60 }),
  forward,
);

export default app;
