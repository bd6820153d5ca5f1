// A small echo service used as a demo and test origin.
//
// Every answer is JSON naming the service, the method, path, query and the
// headers it received. A few paths behave differently, for tests and demos:
//   /__status/CODE      answer with that status (?reason=TEXT: that reason phrase)
//   /__slow/MS          wait MS milliseconds before answering
//   /__bytes/N          stream N bytes (a repeating pattern) back
//   /__upload           read the body, answer its length and SHA-256
//   /__headers?k=v      answer with the given response headers set
//   /__hop              answer (chunked) carrying hop-by-hop response headers:
//                       Connection: x-secret, x-secret, Keep-Alive,
//                       Proxy-Authenticate, Trailer, Upgrade (+ x-end-to-end)
//
// The returned state also counts requests: `hits`, `paths` ("METHOD /path" in
// arrival order), `requests` (what `echo` answers, per request), `count(suffix)`
// (requests whose path ends with suffix) and `reset()`.
//
// Usage: node scripts/origin.mjs --name eu --port 9101   (port 0: any free port)
import http from 'node:http';
import crypto from 'node:crypto';

export function pattern(n) {
  return patternAt(0, n);
}

/** Bytes [offset, offset + n) of the pattern. */
export function patternAt(offset, n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = ((offset + i) * 31 + 7) & 0xff;
  return buf;
}

// `maxHeaderSize` (bytes) raises node's 16 KB limit on a request head, for tests of long
// request lines and headers.
export function startOrigin({ name, port = 0, host = '127.0.0.1', maxHeaderSize } = {}) {
  const state = { name, hits: 0, paths: [], requests: [] };
  state.count = (suffix = '') => state.requests.filter((r) => r.path.endsWith(suffix)).length;
  state.reset = () => {
    state.hits = 0;
    state.paths.length = 0;
    state.requests.length = 0;
  };
  const server = http.createServer(maxHeaderSize ? { maxHeaderSize } : {}, (req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      // A bad test parameter (e.g. a header node refuses) must not kill the origin.
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(e && e.message));
      } else {
        res.destroy();
      }
    }
  });
  const handle = (req, res) => {
    state.hits += 1;
    const url = new URL(req.url, 'http://origin');
    state.paths.push(req.method + ' ' + url.pathname);
    const json = (status, value, extra = {}, reason = undefined) => {
      const body = JSON.stringify(value);
      const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra };
      if (reason === undefined) res.writeHead(status, headers);
      else res.writeHead(status, reason, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const echo = () => ({
      origin: name,
      method: req.method,
      path: url.pathname,
      rawPath: req.url.split('?')[0],
      query: url.search.slice(1),
      headers: req.headers,
    });
    state.requests.push(echo());
    let m;
    if ((m = url.pathname.match(/\/__status\/(\d{3})$/))) {
      return json(Number(m[1]), echo(), {}, url.searchParams.get('reason') ?? undefined);
    }
    if ((m = url.pathname.match(/\/__slow\/(\d+)$/))) {
      const timer = setTimeout(() => json(200, echo()), Number(m[1]));
      req.on('close', () => clearTimeout(timer));
      return;
    }
    if ((m = url.pathname.match(/\/__bytes\/(\d+)$/))) {
      const total = Number(m[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      if (req.method === 'HEAD') return res.end();
      const chunk = 64 * 1024;
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const n = Math.min(chunk, total - sent);
          // Keep the pattern continuous across chunks.
          const piece = patternAt(sent, n);
          sent += n;
          if (!res.write(piece)) return res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    if (url.pathname.endsWith('/__upload')) {
      const hash = crypto.createHash('sha256');
      let length = 0;
      req.on('data', (c) => { hash.update(c); length += c.length; });
      req.on('end', () => json(200, { ...echo(), length, sha256: hash.digest('hex') }));
      return;
    }
    if (url.pathname.endsWith('/__headers')) {
      const extra = Object.fromEntries(url.searchParams.entries());
      return json(200, echo(), extra);
    }
    if (url.pathname.endsWith('/__hop')) {
      // Chunked (no content-length), as a Trailer header announces. No trailer
      // field is actually sent: workerd's HTTP client does not consume trailers and
      // then misreads them as the next response on the pooled connection.
      res.writeHead(200, {
        'content-type': 'application/json',
        connection: 'x-secret',
        'x-secret': '1',
        'keep-alive': 'timeout=5',
        'proxy-authenticate': 'Basic realm="origin"',
        trailer: 'x-trailer',
        upgrade: 'h2c',
        'x-end-to-end': 'kept',
      });
      if (req.method !== 'HEAD') res.write(JSON.stringify(echo()));
      return res.end();
    }
    req.resume();
    req.on('end', () => json(200, echo()));
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      state.port = actual;
      state.url = `http://${host}:${actual}`;
      state.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); });
      state.server = server;
      resolve(state);
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (flag, fallback) => {
    const i = process.argv.indexOf(flag);
    return i >= 0 ? process.argv[i + 1] : fallback;
  };
  const origin = await startOrigin({ name: arg('--name', 'origin'), port: Number(arg('--port', '0')) });
  console.log(`origin "${origin.name}" listening on ${origin.url}`);
}
