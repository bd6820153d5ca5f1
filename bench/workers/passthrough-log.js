// Calibration: the pass-through Worker plus one JSON console.log line per request,
// the size of the gateway's log line, to show what logging costs on its own.
export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const response = await fetch(env.ORIGIN_URL + url.pathname + url.search, request);
    console.log(JSON.stringify({
      request_id: crypto.randomUUID(),
      route: 'bench-route',
      path_template: '/bench/route/{id}',
      method: request.method,
      path: url.pathname,
      status: response.status,
      duration_ms: Date.now() - started,
      upstream_ms: Date.now() - started,
      region: 'local',
      upstream_status: response.status,
      attempts: [{ region: 'local', status: response.status, ms: Date.now() - started }],
      failovers: 0,
    }));
    return response;
  },
};
