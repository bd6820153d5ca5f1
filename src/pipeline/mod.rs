//! One request, one direction:
//!
//! ```text
//! route -> cors preflight -> auth -> rate limit -> cache -> upstream -> respond -> log
//! ```
//!
//! Each phase either hands the request on or ends it with a reply; an error is a
//! `problem+json` reply decided by the phase that found it. Decorations that
//! every answer carries (request id, CORS, rate-limit headers, `x-cache`,
//! `server-timing`) are added once, at the end. The pipeline is plain Rust over
//! [`Ports`], so it runs natively in tests and in the Worker alike. Each
//! phase lives in its own module below; `run` calls them in order.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Serialize;

use crate::config::Method;
use crate::gateway::{Gateway, RouteRt, VERSION};
use crate::http::headers::HeaderEdits;
use crate::http::path::{normalize, PathError};
use crate::http::problem::{Kind, Problem, CONTENT_TYPE};
use crate::http::{request_id, HeaderView};
use crate::policy::auth::jwks::{max_age, JwksCache, Plan};
use crate::policy::auth::seen::SeenSignatures;
use crate::policy::auth::{parse_jwks, verify_token_seen, AuthError, Token, Verified};
use crate::policy::cache::{self, XCache};
use crate::policy::cors::{self, CorsPolicy};
use crate::policy::ratelimit::{Decision, KeyKind, Limiter, Step, WAIT_POLL_MS};
use crate::ports::{FetchError, Ports, UpstreamRequest};
use crate::route::{Match, Params};
use crate::upstream::breaker::Breakers;
use crate::upstream::region::{is_retryable_method, is_retryable_status};

/// The incoming request, as the edge hands it over.
pub struct Incoming<'a, H: HeaderView + ?Sized> {
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host the client addressed (may carry a port).
    pub host: &'a str,
    /// The raw, percent-encoded path.
    pub path: &'a str,
    /// The raw query string without `?`, if any.
    pub query: Option<&'a str>,
    pub headers: &'a H,
    /// The client address (`cf-connecting-ip`).
    pub client_ip: Option<&'a str>,
    /// The caller's ISO 3166 country code, when known.
    pub country: Option<&'a str>,
    /// The caller's continent code, when known.
    pub continent: Option<&'a str>,
    /// Whether the request carries a body (such a request is never sent twice).
    pub has_body: bool,
}

/// What one isolate remembers between requests.
#[derive(Debug)]
pub struct IsolateState {
    pub breakers: RefCell<Breakers>,
    pub limiter: RefCell<Limiter>,
    /// One JWKS cache per provider, in `Gateway::providers` order.
    pub jwks: Vec<RefCell<JwksCache>>,
    /// Token signatures already verified, so a token is not verified on every request.
    pub seen: RefCell<SeenSignatures>,
}

impl IsolateState {
    /// Fresh state; `isolate_id` names this isolate's entries in shared rate-limit counters.
    pub fn new(gw: &Gateway, isolate_id: String) -> IsolateState {
        IsolateState {
            breakers: RefCell::new(Breakers::new(gw.file.origins.values())),
            limiter: RefCell::new(Limiter::new(isolate_id)),
            jwks: gw
                .providers
                .iter()
                .map(|_| RefCell::new(JwksCache::new()))
                .collect(),
            seen: RefCell::new(SeenSignatures::new()),
        }
    }
}

/// A reply body.
#[derive(Debug)]
pub enum Body<R> {
    /// The upstream (or cached) response's body, streamed through untouched.
    Upstream(R),
    /// A body the gateway made, with its content type.
    Own(String, &'static str),
    Empty,
}

/// Work the edge does after answering.
#[derive(Debug, Default)]
pub struct After {
    /// Rate-limit counters may need writing to KV.
    pub flush_limits: bool,
    /// Store the upstream response in the edge cache under this key for this many seconds.
    pub store: Option<(String, u32)>,
    /// With `store`: applied to a copy of the upstream headers, they are the stored
    /// entry's headers (decided by [`cache::stored_entry_edits`]).
    pub store_headers: HeaderEdits,
}

/// What the edge sends back.
#[derive(Debug)]
pub struct Reply<R> {
    pub status: u16,
    pub body: Body<R>,
    /// For [`Body::Upstream`], applied to a copy of the upstream headers; else to empty headers.
    pub headers: HeaderEdits,
    /// Send no body (HEAD requests, 304).
    pub no_body: bool,
    pub after: After,
}

impl<R> Reply<R> {
    fn own(status: u16, body: Body<R>, headers: HeaderEdits) -> Self {
        Reply {
            status,
            body,
            headers,
            no_body: false,
            after: After::default(),
        }
    }
}

/// One upstream attempt, for the log line.
#[derive(Debug, Serialize)]
pub struct Attempt {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub ms: u64,
}

/// The one JSON log line written per request. Never holds tokens or secrets.
#[derive(Debug, Default, Serialize)]
pub struct LogLine {
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_template: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Attempts after the first: how many times another region was tried.
    pub failovers: usize,
    /// `HIT`, `MISS` or `BYPASS` on cached routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// `allowed`, `limited` or `kv_error` on rate-limited routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<&'static str>,
    /// The verified token subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why the gateway answered with an error (never a token or secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the phases learn about a request on its way through.
struct Ctx<'g> {
    rid: String,
    route: Option<&'g RouteRt>,
    /// The answer is a preflight that carries its own CORS headers.
    preflight_answered: bool,
    /// The limiter counted this request: its counter must reach KV.
    counted: bool,
    limit: Option<Decision>,
    x_cache: Option<XCache>,
    upstream_ms: Option<u64>,
    log: LogLine,
}

/// One request on its way through: what every phase reads.
pub(crate) struct Call<'g, 'r, P, H: HeaderView + ?Sized> {
    pub gw: &'g Gateway,
    pub state: &'r IsolateState,
    pub ports: &'r P,
    pub req: &'r Incoming<'r, H>,
}

impl<P, H: HeaderView + ?Sized> Clone for Call<'_, '_, P, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P, H: HeaderView + ?Sized> Copy for Call<'_, '_, P, H> {}

/// Runs one request through the gateway.
pub async fn handle<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    state: &IsolateState,
    ports: &P,
    req: &Incoming<'_, H>,
) -> Reply<P::Response> {
    let started = ports.now_ms();
    let client_id = req.headers.get("x-request-id");
    let rid = request_id::choose(client_id.as_deref(), || {
        request_id::generate(ports.random_bytes())
    });
    let mut ctx = Ctx {
        log: LogLine {
            request_id: rid.clone(),
            method: req.method.chars().take(16).collect(),
            path: req.path.chars().take(256).collect(),
            ..LogLine::default()
        },
        rid,
        route: None,
        preflight_answered: false,
        counted: false,
        limit: None,
        x_cache: None,
        upstream_ms: None,
    };
    let call = Call {
        gw,
        state,
        ports,
        req,
    };
    let mut reply = match run(&call, &mut ctx).await {
        Ok(reply) => reply,
        Err(problem) => {
            ctx.log
                .error
                .get_or_insert_with(|| problem.detail.to_string());
            problem_reply(problem, &ctx.rid)
        }
    };
    respond::decorate(&call, &mut ctx, &mut reply, started);
    reply.after.flush_limits = ctx.counted;
    if req.method == "HEAD" || reply.status == 304 {
        reply.no_body = true;
    }
    ctx.log.status = reply.status;
    ctx.log.duration_ms = ports.now_ms().saturating_sub(started);
    ctx.log.upstream_ms = ctx.upstream_ms;
    ports.record(&ctx.log);
    reply
}

/// Turns a problem into a reply.
pub fn problem_reply<R>(problem: Problem, request_id: &str) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    for (name, value) in &problem.headers {
        headers.set(*name, value.clone());
    }
    headers.set("cache-control", "no-store");
    Reply::own(
        problem.status(),
        Body::Own(problem.body(request_id), CONTENT_TYPE),
        headers,
    )
}

/// The edge-cache key of a GET of `path?query` on the request's host, with the
/// request's `vary` headers and, on routes with auth, the subject.
fn cache_key<H: HeaderView + ?Sized>(
    policy: &cache::CachePolicy,
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

/// A JSON answer of the gateway's own, never stored by caches.
fn json_reply<R>(status: u16, body: serde_json::Value) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    headers.set("cache-control", "no-store");
    Reply::own(
        status,
        Body::Own(body.to_string(), "application/json"),
        headers,
    )
}

/// A route for this host and path, whatever its method (for the CORS policy of errors).
fn any_route_on<'g>(gw: &'g Gateway, host: &str, path: &str) -> Option<&'g RouteRt> {
    Method::ALL
        .into_iter()
        .find_map(|m| match gw.table.lookup(host, path, Some(m)) {
            Match::Found { route, .. } => Some(&gw.routes[route]),
            _ => None,
        })
}

/// The phases in order.
async fn run<'g, P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'g, '_, P, H>,
    ctx: &mut Ctx<'g>,
) -> Result<Reply<P::Response>, Problem> {
    let Call {
        gw,
        state,
        ports,
        req,
    } = *call;
    // Route.
    let path = normalize(req.path).map_err(|e| match e {
        PathError::TooLong => Problem::new(Kind::UriTooLong, "the request path is too long"),
        PathError::NotOriginForm => {
            Problem::new(Kind::BadRequest, "the request target must be a path")
        }
    })?;
    let reserved = crate::config::validate::RESERVED_PREFIX;
    if path.len() >= reserved.len()
        && path.as_bytes()[..reserved.len()].eq_ignore_ascii_case(reserved.as_bytes())
    {
        let own = &path[reserved.len()..];
        if own.is_empty() || own.starts_with('/') {
            return admin::endpoint(call, own).await;
        }
    }

    // CORS preflight: answered at the edge when the route for the method it asks
    // about has a CORS policy; otherwise it is an ordinary OPTIONS request.
    let origin = req.headers.get("origin");
    let preflight_method = req.headers.get("access-control-request-method");
    if cors::is_preflight(req.method, origin.as_deref(), preflight_method.as_deref()) {
        let asked = preflight_method.as_deref().and_then(Method::parse);
        let found = match gw.table.lookup(req.host, &path, asked) {
            Match::Found { route, .. } => Some(&gw.routes[route]),
            // Asked for a method the path does not allow: the path's policy answers,
            // and its allow-methods do not offer the method.
            _ => any_route_on(gw, req.host, &path),
        };
        // A path no route matches: the top-level policy answers, so that the page can
        // go on to read the 404 of its real request.
        let policy = match found {
            Some(route) => route.cors.as_ref(),
            None => gw.cors.as_ref(),
        };
        let req_headers = req.headers.get("access-control-request-headers");
        let answer = policy.and_then(|policy| {
            policy.preflight(
                origin.as_deref(),
                preflight_method.as_deref(),
                req_headers.as_deref(),
            )
        });
        if let Some(answer) = answer {
            let mut headers = HeaderEdits::default();
            for (name, value) in answer.headers {
                headers.set(name, value.into_owned());
            }
            if let Some(route) = found {
                ctx.route = Some(route);
                ctx.log.route = Some(route.id.clone());
                ctx.log.path_template = Some(route.path.clone());
            }
            ctx.preflight_answered = true;
            return Ok(Reply::own(answer.status, Body::Empty, headers));
        }
    }

    let method = Method::parse(req.method);
    let (route_index, params) = match gw.table.lookup(req.host, &path, method) {
        Match::Found { route, params } => (route, params),
        Match::MethodNotAllowed { allow } => {
            // The answer still carries the CORS headers of the path's routes.
            ctx.route = any_route_on(gw, req.host, &path);
            return Err(
                Problem::new(Kind::MethodNotAllowed, format!("this path allows {allow}"))
                    .with_header("allow", allow),
            );
        }
        Match::NotFound => return Err(Problem::new(Kind::NotFound, "no route matches this path")),
    };
    let route = &gw.routes[route_index];
    ctx.route = Some(route);
    ctx.log.route = Some(route.id.clone());
    ctx.log.path_template = Some(route.path.clone());
    if route.cache.is_some() {
        ctx.x_cache = Some(XCache::Bypass);
    }
    let method = Method::parse(req.method)
        .ok_or_else(|| Problem::new(Kind::MethodNotAllowed, "unsupported method"))?;
    if req.has_body && matches!(method, Method::Get | Method::Head) {
        // The runtime cannot send such a request on; dropping the body would lose data.
        return Err(Problem::new(
            Kind::BadRequest,
            "GET and HEAD requests cannot carry a body",
        ));
    }

    // Auth.
    let verified = match &route.auth {
        None => None,
        Some((provider, scopes)) => {
            let v = auth::authenticate(call, *provider, scopes, ctx).await?;
            ctx.log.subject = v.subject.clone();
            Some(v)
        }
    };
    let subject = verified.as_ref().and_then(|v| v.subject.as_deref());

    // Rate limit.
    if let Some((limit, kind)) = &route.rate_limit {
        let key_value: Option<Cow<'_, str>> = match kind {
            KeyKind::Ip => req.client_ip.map(Cow::Borrowed),
            KeyKind::Sub => subject.map(Cow::Borrowed),
            KeyKind::Route => None,
            KeyKind::Header(name) => req.headers.get(name).map(Cow::Owned),
        };
        let decision = loop {
            let now = ports.now_ms();
            let step =
                state
                    .limiter
                    .borrow_mut()
                    .check(&route.id, limit, key_value.as_deref(), now);
            match step {
                Step::Decided(d) => break d,
                Step::Read { kv_key } => {
                    let got = ports.kv_get(&kv_key).await;
                    if let Err(e) = &got {
                        ctx.log.rate_limit = Some("kv_error");
                        ports.event(
                            &serde_json::json!({"event": "kv_error", "op": "get", "key": kv_key, "error": e})
                                .to_string(),
                        );
                    }
                    state.limiter.borrow_mut().on_read(
                        &kv_key,
                        got.as_ref().map(|v| v.as_deref()),
                        ports.now_ms(),
                    );
                }
                Step::Wait { .. } => ports.sleep(WAIT_POLL_MS).await,
            }
        };
        ctx.log.rate_limit.get_or_insert(if decision.allowed {
            "allowed"
        } else {
            "limited"
        });
        let allowed = decision.allowed;
        ctx.limit = Some(decision);
        ctx.counted = true;
        if !allowed {
            return Err(Problem::new(
                Kind::TooManyRequests,
                "too many requests; retry after the window resets",
            ));
        }
    }

    // Cache lookup (or, for a method that changes the resource, the entry it invalidates).
    let mut store_key = None;
    let mut invalidate_key = None;
    if let Some(policy) = &route.cache {
        if cache::is_invalidating_method(method) {
            invalidate_key = cache_key(policy, req, &path, req.query, subject);
        } else if cache::is_lookup_method(method) {
            let key = cache_key(policy, req, &path, req.query, subject);
            if let Some(key) = key {
                match ports.cache_get(&key).await {
                    Ok(Some(hit)) => {
                        ctx.x_cache = Some(XCache::Hit);
                        return Ok(cache_phase::cached_reply(ports, req, hit));
                    }
                    Ok(None) => {}
                    Err(e) => ports.event(
                        &serde_json::json!({"event": "cache_error", "op": "get", "error": e})
                            .to_string(),
                    ),
                }
                ctx.x_cache = Some(XCache::Miss);
                if cache::is_store_method(method) {
                    store_key = Some(key);
                }
            }
        }
    }

    // Upstream.
    let mut reply =
        upstream::forward(call, route, method, &path, &params, verified.as_ref(), ctx).await?;
    if let Some(key) = invalidate_key.filter(|_| cache::invalidates(method, reply.status)) {
        if let Err(e) = ports.cache_delete(&key).await {
            ports.event(
                &serde_json::json!({"event": "cache_error", "op": "delete", "error": e})
                    .to_string(),
            );
        }
    }
    if let (Some(key), Some(policy), Body::Upstream(response)) =
        (store_key, &route.cache, &reply.body)
    {
        let cache_control = ports.response_header(response, "cache-control");
        let set_cookie = ports.response_header(response, "set-cookie").is_some();
        let vary_ok = policy.vary_storable(ports.response_header(response, "vary").as_deref());
        // A shared cache stores an answer to a request with credentials only when the
        // origin says it may (RFC 9111 3.5); on auth routes the subject is in the key.
        let credentials_ok = route.auth.is_some()
            || req.headers.get("authorization").is_none()
            || cache::storable_with_authorization(cache_control.as_deref());
        if let (Some(ttl), true) = (
            policy.store_ttl(reply.status, cache_control.as_deref(), set_cookie),
            vary_ok && credentials_ok,
        ) {
            reply.after.store_headers = cache::stored_entry_edits(
                &upstream::ResponseHeaders(ports, response),
                ttl,
                ports.now_ms(),
            );
            reply.after.store = Some((key, ttl));
        }
    }
    Ok(reply)
}

pub use crate::policy::cache::ORIGIN_CACHE_CONTROL;

mod admin;
mod auth;
mod cache_phase;
mod respond;
mod upstream;
