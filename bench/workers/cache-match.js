// Contestant 2e, the cache floor: `caches.default.match` of one URL on every
// request and the hit returned with one header set, nothing else. Under the same
// load as the gateway's cache-hit route (contestant 4f), it tells the runtime's
// cache (in `wrangler dev`, a local simulation) from the gateway's own work.
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const key = new Request(env.ORIGIN_URL + url.pathname);
    const hit = await caches.default.match(key);
    if (hit) {
      const response = new Response(hit.body, hit);
      response.headers.set('x-cache', 'HIT');
      return response;
    }
    // The origin answers `cache-control: public, max-age=3600`.
    const r = await fetch(key);
    ctx.waitUntil(caches.default.put(key, r.clone()));
    const response = new Response(r.body, r);
    response.headers.set('x-cache', 'MISS');
    return response;
  },
};
