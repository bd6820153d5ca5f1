// Floor (b): floor (a) plus one JSON log line per request with the fields and
// the size of the gateway's own line on its full-chain route (src/log.rs
// `LogLine`: request id, route, template, method, path, status, durations,
// region, upstream status, one attempt, failovers, rate-limit outcome, subject).
// The contract requires that line (ROUTES.md section 3, "Logs"), so no
// implementation can do less than this Worker.
export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const id = crypto.randomUUID().replaceAll('-', ''); // 32 hex digits, as the gateway's ids
    const upstream = new Request(env.ORIGIN_URL + url.pathname + url.search, request);
    upstream.headers.set('x-request-id', id);
    const r = await fetch(upstream);
    const response = new Response(r.body, r);
    response.headers.set('x-request-id', id);
    const ms = Date.now() - started;
    console.log(JSON.stringify({
      request_id: id,
      route: 'bench-full',
      path_template: '/bench/full/{id}',
      method: request.method,
      path: url.pathname,
      status: response.status,
      duration_ms: ms,
      upstream_ms: ms,
      region: 'local',
      upstream_status: r.status,
      attempts: [{ region: 'local', status: r.status, ms }],
      failovers: 0,
      rate_limit: 'allowed',
      subject: 'bench-user',
    }));
    return response;
  },
};
