// The benchmark origin: the smallest HTTP/1.1 server that answers every request
// with the same small JSON body. Run as its own process so its CPU time can be
// read from /proc and shown not to be the bottleneck.
//
// A path under /__slow/MS/ is answered after MS milliseconds (a slow region for
// the hedging contestants).
//
// Usage: node bench/origin.mjs [--port N]   (prints {"port": N} once listening)
import http from 'node:http';

const i = process.argv.indexOf('--port');
const port = i >= 0 ? Number(process.argv[i + 1]) : 0;
const body = Buffer.from(JSON.stringify({ id: 42, name: 'bench', tags: ['a', 'b', 'c'], ok: true }));
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
  // Lets the gateway's cache route store the answer; ignored by everything else.
  'cache-control': 'public, max-age=3600',
};

const server = http.createServer((req, res) => {
  req.resume();
  const answer = () => {
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const slow = req.url.match(/^\/__slow\/(\d+)\//);
  if (slow) setTimeout(answer, Number(slow[1]));
  else answer();
});
// workerd pools its upstream connections: keep them open for the whole run.
server.keepAliveTimeout = 10 * 60_000;
server.headersTimeout = 10 * 60_000 + 1000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
