// Assertions shared by the suites.
import assert from 'node:assert/strict';

/** The shape of a request id the gateway keeps or makes: 1-128 of [A-Za-z0-9._-]. */
export function isRequestId(value) {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(value);
}

/** The last request an echo origin received (what it echoed). */
export function lastRequest(server) {
  return server.requests.at(-1);
}

/** A response header from a fetch Response or a rawRequest result. */
export function header(res, name) {
  if (typeof res.headers?.get === 'function') return res.headers.get(name);
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value ?? null;
}

// What a gateway error must never carry: upstream addresses, stack traces, panics.
const LEAKS = ['127.0.0.1', 'http://', 'https://', 'panicked', 'RuntimeError', '.rs:', 'stack', 'wasm'];

/**
 * Asserts that `res` is a gateway error: `status`, `application/problem+json`, a
 * body with type, title, status, detail and request_id (equal to the
 * x-request-id header), nothing leaked. Returns the parsed body.
 */
export async function assertProblem(res, status, { label = '', forbidden = [] } = {}) {
  const what = label ? ` (${label})` : '';
  const text = await res.text();
  const statusOf = res.status;
  assert.equal(statusOf, status, `status${what}: ${text.slice(0, 300)}`);
  const type = header(res, 'content-type') ?? '';
  assert.equal(type.split(';')[0].trim().toLowerCase(), 'application/problem+json', `content-type${what}`);
  const id = header(res, 'x-request-id');
  assert.ok(isRequestId(id), `x-request-id${what}: ${id}`);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`problem body is not JSON${what}: ${text.slice(0, 300)}`);
  }
  assert.equal(typeof body.type, 'string', `type${what}`);
  assert.ok(body.type.length > 0, `type${what}`);
  assert.equal(typeof body.title, 'string', `title${what}`);
  assert.ok(body.title.length > 0, `title${what}`);
  assert.equal(body.status, status, `body status${what}`);
  assert.equal(typeof body.detail, 'string', `detail${what}`);
  assert.equal(body.request_id, id, `request_id${what}`);
  for (const leak of [...LEAKS, ...forbidden]) {
    assert.ok(!text.includes(leak), `the problem body carries ${JSON.stringify(leak)}${what}: ${text}`);
  }
  return body;
}
