// Floor (a): what any implementation of the contract pays on top of the
// pass-through (ROUTES.md section 3): a request id sent upstream and returned to
// the client, so one header set on the upstream request and one on a response
// made mutable with `new Response(r.body, r)`. Nothing else.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const id = crypto.randomUUID().replaceAll('-', ''); // 32 hex digits, as the gateway's ids
    const upstream = new Request(env.ORIGIN_URL + url.pathname + url.search, request);
    upstream.headers.set('x-request-id', id);
    const r = await fetch(upstream);
    const response = new Response(r.body, r);
    response.headers.set('x-request-id', id);
    return response;
  },
};
