//! The cache phase: looked up after auth and limits, stored after the origin
//! answered, `x-cache` on every answer of a cached route.

use super::{
    age_s, invalidates, is_invalidating_method, is_lookup_method, is_store_method, not_modified,
    storable_with_authorization, stored_entry_edits, CachePolicy, XCache, STORED_AT, X_CACHE,
};
use crate::http::headers::HeaderEdits;
use crate::http::problem::Problem;
use crate::http::HeaderView;
use crate::log::Event;
use crate::pipeline::{
    Body, Ctx, Exchange, Flow, Incoming, Reply, ResponseHeaders, ORIGIN_CACHE_CONTROL,
};
use crate::ports::Ports;

/// What the cache policy learned about one request.
#[derive(Debug)]
pub struct State {
    /// `BYPASS` until the cache was looked up.
    pub x_cache: XCache,
    /// A miss of a `GET`: the key to store the origin's answer under.
    store_key: Option<String>,
    /// A method that changes the resource: the entry a `GET` of it would hit.
    invalidate_key: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            x_cache: XCache::Bypass,
            store_key: None,
            invalidate_key: None,
        }
    }
}

/// The edge-cache key of a GET of `path?query` on the request's host, with the
/// request's `vary` headers and, on routes with auth, the subject.
pub fn cache_key<H: HeaderView + ?Sized>(
    policy: &CachePolicy,
    req: &Incoming<'_, H>,
    path: &str,
    query: Option<&str>,
    subject: Option<&str>,
) -> Option<String> {
    let url = match query {
        Some(q) => format!("{}://{}{path}?{q}", req.scheme, req.host),
        None => format!("{}://{}{path}", req.scheme, req.host),
    };
    let url = url::Url::parse(&url).ok()?;
    policy.cache_key(&url, |name| req.headers.get(name), subject)
}

impl CachePolicy {
    /// Serves a hit, or notes the key a miss is to be stored under.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
        state: &mut State,
    ) -> Result<Flow<P::Response>, Problem> {
        if is_invalidating_method(x.method) {
            let subject = cx.cache_subject();
            state.invalidate_key = cache_key(self, x.req, x.path, x.req.query, subject.as_deref());
            return Ok(Flow::Continue);
        }
        if !is_lookup_method(x.method) {
            return Ok(Flow::Continue);
        }
        let subject = cx.cache_subject();
        let Some(key) = cache_key(self, x.req, x.path, x.req.query, subject.as_deref()) else {
            return Ok(Flow::Continue);
        };
        match x.ports.cache_get(&key).await {
            Ok(Some(hit)) => {
                state.x_cache = XCache::Hit;
                return Ok(Flow::Answer(Box::new(cached_reply(x.ports, x.req, hit))));
            }
            Ok(None) => {}
            Err(e) => x.ports.event(&Event::CacheError {
                op: "get",
                error: &e,
            }),
        }
        state.x_cache = XCache::Miss;
        if is_store_method(x.method) {
            state.store_key = Some(key);
        }
        Ok(Flow::Continue)
    }

    /// `x-cache` on every answer; a storable answer of the origin to a miss is
    /// stored; a successful write removes the entry a `GET` would hit, before
    /// the answer is sent (RFC 9111 4.4).
    pub async fn on_response<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        _cx: &Ctx,
        state: &mut State,
        reply: &mut Reply<P::Response>,
    ) {
        reply.headers.set(X_CACHE, state.x_cache.as_str());
        if let Some(key) = state
            .invalidate_key
            .take()
            .filter(|_| invalidates(x.method, reply.status))
        {
            if let Err(e) = x.ports.cache_delete(&key).await {
                x.ports.event(&Event::CacheError {
                    op: "delete",
                    error: &e,
                });
            }
        }
        let (Some(key), Body::Upstream(response)) = (state.store_key.take(), &reply.body) else {
            return;
        };
        let ports = x.ports;
        let cache_control = ports.response_header(response, "cache-control");
        let set_cookie = ports.response_header(response, "set-cookie").is_some();
        let vary_ok = self.vary_storable(ports.response_header(response, "vary").as_deref());
        // A shared cache stores an answer to a request with credentials only when the
        // origin says it may (RFC 9111 3.5); on auth routes the subject is in the key.
        let credentials_ok = self.per_subject()
            || x.req.headers.get("authorization").is_none()
            || storable_with_authorization(cache_control.as_deref());
        if let (Some(ttl), true) = (
            self.store_ttl(reply.status, cache_control.as_deref(), set_cookie),
            vary_ok && credentials_ok,
        ) {
            reply.after.store_headers =
                stored_entry_edits(&ResponseHeaders(ports, response), ttl, ports.now_ms());
            reply.after.store = Some((key, ttl));
        }
    }
}

/// A cache hit: `Age` from the stored time, `304` when the client's copy is current.
fn cached_reply<P: Ports, H: HeaderView + ?Sized>(
    ports: &P,
    req: &Incoming<'_, H>,
    hit: P::Response,
) -> Reply<P::Response> {
    let mut headers = HeaderEdits::default();
    let now = ports.now_ms();
    let stored_at = ports.response_header(&hit, STORED_AT);
    if let Some(age) = age_s(stored_at.as_deref(), now) {
        headers.set("age", age.to_string());
    }
    headers.remove(STORED_AT);
    match ports.response_header(&hit, ORIGIN_CACHE_CONTROL) {
        Some(original) => headers.set("cache-control", original),
        None => headers.remove("cache-control"),
    }
    headers.remove(ORIGIN_CACHE_CONTROL);
    let status = if not_modified(
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
