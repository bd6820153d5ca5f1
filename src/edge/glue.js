// The edge's bulk header work, in one call each instead of one call per header.
//
// Names and values cross as lines, `name:value` joined by "\n": a header name is
// a token (no ':'), and the Fetch standard refuses "\n" in a value, so neither
// can break a line (the Rust side drops an edit that holds one, as `Headers`
// would refuse it).

/** Every header of `headers` as `name:value` lines (names lower-cased, as iterated). */
export function headerLines(headers) {
  let out = '';
  for (const [name, value] of headers) out += name + ':' + value + '\n';
  return out;
}

/** Every header of `response` as `name:value` lines. */
export function responseHeaderLines(response) {
  return headerLines(response.headers);
}

function eachLine(lines, f) {
  if (!lines) return;
  for (const line of lines.split('\n')) {
    if (!line) continue;
    const colon = line.indexOf(':');
    f(line.slice(0, colon), line.slice(colon + 1));
  }
}

/**
 * Edits `headers` in place: the names in `remove` deleted, the `set` lines set
 * and the `append` lines appended, in that order. A name or value the runtime
 * refuses is skipped, as one `Headers.set` would refuse it.
 */
function edit(headers, remove, set, append) {
  if (remove) for (const name of remove.split('\n')) if (name) try { headers.delete(name); } catch {}
  eachLine(set, (name, value) => { try { headers.set(name, value); } catch {} });
  eachLine(append, (name, value) => { try { headers.append(name, value); } catch {} });
}

/** A new `Headers`: a copy of `source` (or empty), edited as `edit` does. */
export function editedHeaders(source, remove, set, append) {
  const headers = source ? new Headers(source) : new Headers();
  edit(headers, remove, set, append);
  return headers;
}

/**
 * Starts the upstream request in one call: `new Request(url, ...)` with the
 * incoming request's headers, edited as `edit` does, no redirect
 * following and `controller`'s signal, sent through `fetcher` (a service
 * binding) or the global `fetch`. Resolves to the response; rejects with the
 * string "timeout" (after aborting) when no response headers arrived within
 * `timeoutMs`, or with the fetch's own error.
 */
export function forward(fetcher, url, method, incoming, remove, set, append, body, timeoutMs, controller) {
  // The request copies the incoming headers once and is edited in place: no
  // second `Headers` object.
  const request = new Request(url, { method, headers: incoming.headers, body, redirect: 'manual', signal: controller.signal });
  edit(request.headers, remove, set, append);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject('timeout');
    }, timeoutMs);
  });
  const started = fetcher ? fetcher.fetch(request) : fetch(request);
  return Promise.race([started, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The client's response to an upstream one, in one call: `status`, the
 * upstream's reason phrase when the status is the upstream's own, the upstream's
 * headers edited in place as `edit` does, and its body unless `withBody` is false
 * (or `body` replaces it: the client's branch of a body teed into the cache).
 */
export function upstreamReply(upstream, status, withBody, body, remove, set, append) {
  const init = { status, headers: upstream.headers };
  if (status === upstream.status) init.statusText = upstream.statusText;
  // A WebSocket route's upgrade: the origin's socket goes to the client and the
  // runtime proxies it both ways.
  if (status === 101 && upstream.webSocket) init.webSocket = upstream.webSocket;
  const response = new Response(withBody ? (body ?? upstream.body) : null, init);
  edit(response.headers, remove, set, append);
  return response;
}

/** The gateway's own response: `status`, `text` (or no body), its headers edited as `edit` does. */
export function ownReply(status, text, remove, set, append) {
  const response = new Response(text ?? null, { status });
  edit(response.headers, remove, set, append);
  return response;
}

/**
 * What the gateway reads of the incoming request, in one call: its method, URL,
 * whether it has a body stream ("1" or ""), the `cf` country and continent (""
 * when absent), one per line (none can hold a "\n"), then its header lines.
 */
export function requestLines(request) {
  const cf = request.cf;
  return `${request.method}\n${request.url}\n${request.body ? '1' : ''}\n${cf?.country ?? ''}\n${cf?.continent ?? ''}\n${headerLines(request.headers)}`;
}
