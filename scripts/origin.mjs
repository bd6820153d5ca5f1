// A small echo service used as a demo and test origin.
//
// Every answer is JSON naming the service, the method, path, query and the
// headers it received. A few paths behave differently, for tests and demos:
//   /__status/CODE      answer with that status
//   /__slow/MS          wait MS milliseconds before answering
//   /__bytes/N          stream N bytes (a repeating pattern) back
//   /__upload           read the body, answer its length and SHA-256
//   /__headers?k=v      answer with the given response headers set
//
// Usage: node scripts/origin.mjs --name eu --port 9101   (port 0: any free port)
import http from 'node:http';
import crypto from 'node:crypto';

export function pattern(n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = (i * 31 + 7) & 0xff;
  return buf;
}

export function startOrigin({ name, port = 0, host = '127.0.0.1' } = {}) {
  const state = { name, hits: 0, paths: [] };
  const server = http.createServer((req, res) => {
    state.hits += 1;
    const url = new URL(req.url, 'http://origin');
    state.paths.push(req.method + ' ' + url.pathname);
    const json = (status, value, extra = {}) => {
      const body = JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
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
    let m;
    if ((m = url.pathname.match(/\/__status\/(\d{3})$/))) {
      return json(Number(m[1]), echo());
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
      const chunk = pattern(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          // Keep the pattern continuous across chunks.
          const piece = pattern(sent + n).subarray(sent, sent + n);
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
    req.resume();
    req.on('end', () => json(200, echo()));
  });
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
