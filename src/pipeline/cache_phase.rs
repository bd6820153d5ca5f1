//! Serving from the edge cache.

use super::*;

/// A cache hit: `Age` from the stored time, `304` when the client's copy is current.
pub(super) fn cached_reply<P: Ports, H: HeaderView + ?Sized>(
    ports: &P,
    req: &Incoming<'_, H>,
    hit: P::Response,
) -> Reply<P::Response> {
    let mut headers = HeaderEdits::default();
    let now = ports.now_ms();
    let stored_at = ports.response_header(&hit, cache::STORED_AT);
    if let Some(age) = cache::age_s(stored_at.as_deref(), now) {
        headers.set("age", age.to_string());
    }
    headers.remove(cache::STORED_AT);
    match ports.response_header(&hit, ORIGIN_CACHE_CONTROL) {
        Some(original) => headers.set("cache-control", original),
        None => headers.remove("cache-control"),
    }
    headers.remove(ORIGIN_CACHE_CONTROL);
    let status = if cache::not_modified(
        req.headers.get("if-none-match").as_deref(),
        req.headers.get("if-modified-since").as_deref(),
        ports.response_header(&hit, "etag").as_deref(),
        ports.response_header(&hit, "last-modified").as_deref(),
    ) {
        headers.remove("content-length");
        headers.remove("content-type");
        304
    } else {
        ports.status(&hit)
    };
    Reply::own(status, Body::Upstream(hit), headers)
}
