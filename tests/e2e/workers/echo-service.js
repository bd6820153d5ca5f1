// A Worker reached through a service binding in the e2e runs: it answers JSON
// naming itself (SERVICE_NAME), the method, URL and headers it received.
// `/__status/CODE` answers with that status.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const status = url.pathname.match(/\/__status\/(\d{3})$/);
    const body = {
      service: env.SERVICE_NAME,
      method: request.method,
      url: request.url,
      path: url.pathname,
      query: url.search,
      headers: Object.fromEntries(request.headers),
      body: request.body ? await request.text() : null,
    };
    return Response.json(body, { status: status ? Number(status[1]) : 200, headers: { 'x-served-by': env.SERVICE_NAME } });
  },
};
