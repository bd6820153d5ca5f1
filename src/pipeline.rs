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
//! [`Ports`], so it runs natively in tests and in the Worker alike.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Serialize;

use crate::config::Method;
use crate::gateway::{Gateway, RouteRt, VERSION};
use crate::http::headers::{HeaderEdits, GATEWAY_OWNED_REQUEST};
use crate::http::path::{normalize, PathError};
use crate::http::problem::{Kind, Problem, CONTENT_TYPE};
use crate::http::{request_id, HeaderView};
use crate::policy::auth::jwks::{max_age, JwksCache, Plan};
use crate::policy::auth::{parse_jwks, verify_token, AuthError, Token, Verified};
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
    limit: Option<Decision>,
    x_cache: Option<XCache>,
    upstream_ms: Option<u64>,
    log: LogLine,
}

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
        limit: None,
        x_cache: None,
        upstream_ms: None,
    };
    let mut reply = match run(gw, state, ports, req, &mut ctx).await {
        Ok(reply) => reply,
        Err(problem) => {
            ctx.log
                .error
                .get_or_insert_with(|| problem.detail.to_string());
            problem_reply(problem, &ctx.rid)
        }
    };
    decorate(gw, ports, req, &mut ctx, &mut reply, started);
    if req.method == "HEAD" || reply.status == 304 {
        reply.no_body = true;
    }
    ctx.log.status = reply.status;
    ctx.log.duration_ms = ports.now_ms().saturating_sub(started);
    ctx.log.upstream_ms = ctx.upstream_ms;
    ports.record(&ctx.log);
    reply
}

/// Headers every answer carries, whoever decided it.
fn decorate<P: Ports, R, H: HeaderView + ?Sized>(
    gw: &Gateway,
    ports: &P,
    req: &Incoming<'_, H>,
    ctx: &mut Ctx<'_>,
    reply: &mut Reply<R>,
    started: u64,
) {
    let h = &mut reply.headers;
    h.set("x-request-id", ctx.rid.clone());
    if let Some(d) = &ctx.limit {
        for (name, value) in d.headers() {
            h.set(name, value);
        }
    }
    if let Some(x) = ctx.x_cache {
        h.set(cache::X_CACHE, x.as_str());
        ctx.log.cache = Some(x.as_str());
    }
    let total = ports.now_ms().saturating_sub(started);
    let timing = match ctx.upstream_ms {
        Some(up) => format!(
            "gateway;dur={}, upstream;dur={up}",
            total.saturating_sub(up)
        ),
        None => format!("gateway;dur={total}"),
    };
    h.set("server-timing", timing);
    let policy: Option<&CorsPolicy> = match ctx.route {
        Some(route) => route.cors.as_ref(),
        None => gw.cors.as_ref(),
    };
    if let Some(policy) = policy {
        let origin = req.headers.get("origin");
        for (name, value) in policy.actual_headers(origin.as_deref()) {
            if name == cors::VARY {
                h.append(name, value);
            } else {
                h.set(name, value.to_string());
            }
        }
    }
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

async fn run<'g, P: Ports, H: HeaderView + ?Sized>(
    gw: &'g Gateway,
    state: &IsolateState,
    ports: &P,
    req: &Incoming<'_, H>,
    ctx: &mut Ctx<'g>,
) -> Result<Reply<P::Response>, Problem> {
    // Route.
    let path = normalize(req.path).map_err(|e| match e {
        PathError::TooLong => Problem::new(Kind::UriTooLong, "the request path is too long"),
        PathError::NotOriginForm => {
            Problem::new(Kind::BadRequest, "the request target must be a path")
        }
    })?;
    if let Some(own) = path.strip_prefix(crate::config::validate::RESERVED_PREFIX) {
        if own.is_empty() || own.starts_with('/') {
            return gateway_endpoint(gw, ports, req, own).await;
        }
    }
    let origin = req.headers.get("origin");
    let preflight_method = req.headers.get("access-control-request-method");
    let preflight = cors::is_preflight(req.method, origin.as_deref(), preflight_method.as_deref());
    // A preflight is matched with the method it asks about.
    let method_name = match (&preflight_method, preflight) {
        (Some(m), true) => m.as_str(),
        _ => req.method,
    };
    let method = Method::parse(method_name);
    let (route_index, params) = match gw.table.lookup(req.host, &path, method) {
        Match::Found { route, params } => (route, params),
        Match::MethodNotAllowed { allow } => {
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

    // CORS preflight, answered at the edge.
    if preflight {
        if let Some(policy) = &route.cors {
            let req_headers = req.headers.get("access-control-request-headers");
            if let Some(answer) = policy.preflight(
                origin.as_deref(),
                preflight_method.as_deref(),
                req_headers.as_deref(),
            ) {
                let mut headers = HeaderEdits::default();
                for (name, value) in answer.headers {
                    headers.set(name, value.into_owned());
                }
                // The decoration adds `Vary: Origin` again; the preflight already says it all.
                ctx.route = None;
                return Ok(Reply::own(answer.status, Body::Empty, headers));
            }
        }
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
            let v = authenticate(gw, state, ports, req, *provider, scopes, ctx).await?;
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
        if !allowed {
            let mut reply = problem_reply(
                Problem::new(
                    Kind::TooManyRequests,
                    "too many requests; retry after the window resets",
                ),
                &ctx.rid,
            );
            reply.after.flush_limits = true;
            return Ok(reply);
        }
    }

    // Cache lookup.
    let mut store_key = None;
    if let Some(policy) = &route.cache {
        if cache::is_lookup_method(method) {
            let url = format!(
                "{}://{}{}{}{}",
                req.scheme,
                req.host,
                path,
                if req.query.is_some() { "?" } else { "" },
                req.query.unwrap_or("")
            );
            let key = url::Url::parse(&url)
                .ok()
                .and_then(|u| policy.cache_key(&u, |name| req.headers.get(name), subject));
            if let Some(key) = key {
                match ports.cache_get(&key).await {
                    Ok(Some(hit)) => {
                        ctx.x_cache = Some(XCache::Hit);
                        return Ok(cached_reply(ports, req, hit));
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
    let mut reply = forward(
        gw,
        state,
        ports,
        req,
        route,
        method,
        &path,
        &params,
        verified.as_ref(),
        ctx,
    )
    .await?;
    reply.after.flush_limits = route.rate_limit.is_some();
    if let (Some(key), Some(policy), Body::Upstream(response)) =
        (store_key, &route.cache, &reply.body)
    {
        let cache_control = ports.response_header(response, "cache-control");
        let set_cookie = ports.response_header(response, "set-cookie").is_some();
        let vary_ok = cache::vary_storable(ports.response_header(response, "vary").as_deref());
        // A shared cache stores an answer to a request with credentials only when the
        // origin says it may (RFC 9111 3.5); on auth routes the subject is in the key.
        let credentials_ok = route.auth.is_some()
            || req.headers.get("authorization").is_none()
            || cache::storable_with_authorization(cache_control.as_deref());
        if let (Some(ttl), true) = (
            policy.store_ttl(reply.status, cache_control.as_deref(), set_cookie),
            vary_ok && credentials_ok,
        ) {
            reply.after.store = Some((key, ttl));
        }
    }
    Ok(reply)
}

/// A cache hit: `Age` from the stored time, `304` when the client's copy is current.
fn cached_reply<P: Ports, H: HeaderView + ?Sized>(
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

/// The header that keeps the origin's own `Cache-Control` on a stored entry
/// (the stored copy carries the gateway's TTL instead).
pub const ORIGIN_CACHE_CONTROL: &str = "x-gateway-origin-cache-control";

/// Verifies the bearer token of a request for a provider.
#[allow(clippy::too_many_arguments)]
async fn authenticate<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    state: &IsolateState,
    ports: &P,
    req: &Incoming<'_, H>,
    provider_index: usize,
    scopes: &[String],
    ctx: &mut Ctx<'_>,
) -> Result<Verified, Problem> {
    let provider = match &gw.providers[provider_index] {
        Ok(p) => p,
        Err(reason) => {
            ctx.log.error = Some(reason.clone());
            return Err(Problem::new(
                Kind::Unavailable,
                "token verification is not configured for this route",
            ));
        }
    };
    let authorization = req.headers.get("authorization");
    let fail = |e: AuthError, ctx: &mut Ctx<'_>| {
        ctx.log.error = Some(format!("auth: {}", e.reason()));
        let kind = match e.status() {
            403 => Kind::Forbidden,
            503 => Kind::Unavailable,
            _ => Kind::Unauthorized,
        };
        let detail = match e {
            AuthError::Missing => "a bearer token is required".to_string(),
            AuthError::InsufficientScope(_) => "the token lacks a required scope".to_string(),
            AuthError::KeysUnavailable => "the token issuer's keys cannot be fetched".to_string(),
            ref other => format!("invalid token: {}", other.reason()),
        };
        let mut p = Problem::new(kind, detail);
        if kind != Kind::Unavailable {
            p = p.with_header("www-authenticate", e.www_authenticate());
        } else {
            p = p.with_header("retry-after", "10");
        }
        p
    };
    let token = match Token::parse(authorization.as_deref()) {
        Ok(t) => t,
        Err(e) => return Err(fail(e, ctx)),
    };
    let cache = &state.jwks[provider_index];
    let now_s = ports.now_ms() / 1000;
    if provider.needs_jwks_for(&token) {
        loop {
            let now = ports.now_ms();
            let plan = cache.borrow().plan(now, token.kid());
            match plan {
                Plan::UseCached | Plan::UseStale | Plan::Unavailable => break,
                Plan::AwaitFetch => ports.sleep(WAIT_POLL_MS).await,
                Plan::Fetch => {
                    cache.borrow_mut().fetch_started(now);
                    let url = gw
                        .file
                        .jwt
                        .values()
                        .nth(provider_index)
                        .and_then(|p| p.jwks_url.as_deref())
                        .unwrap_or_default();
                    let result = ports.fetch_jwks(url).await;
                    let (parsed, age) = match result {
                        Ok(doc) => (
                            parse_jwks(&doc.body),
                            doc.cache_control.as_deref().and_then(max_age),
                        ),
                        Err(e) => (Err(e), None),
                    };
                    if let Err(e) = &parsed {
                        ports.event(
                            &serde_json::json!({"event": "jwks_error", "provider": provider.name(), "error": e})
                                .to_string(),
                        );
                    }
                    cache.borrow_mut().on_fetched(ports.now_ms(), parsed, age);
                }
            }
        }
    }
    let result = {
        let cached = cache.borrow();
        verify_token(provider, &token, cached.keys(), now_s, scopes)
    };
    result.map_err(|e| fail(e, ctx))
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-decodes a query parameter value (`+` is a space).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `/__gateway/*`: answered by the gateway itself, never routed upstream.
async fn gateway_endpoint<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    ports: &P,
    req: &Incoming<'_, H>,
    own: &str,
) -> Result<Reply<P::Response>, Problem> {
    match own {
        "/health" => {
            if !matches!(req.method, "GET" | "HEAD") {
                return Err(
                    Problem::new(Kind::MethodNotAllowed, "this path allows GET, HEAD")
                        .with_header("allow", "GET, HEAD"),
                );
            }
            let body = serde_json::json!({
                "status": "ok",
                "routes": gw.routes.len(),
                "version": VERSION,
            });
            let mut headers = HeaderEdits::default();
            headers.set("cache-control", "no-store");
            Ok(Reply::own(
                200,
                Body::Own(body.to_string(), "application/json"),
                headers,
            ))
        }
        "/cache" => {
            if req.method != "DELETE" {
                return Err(
                    Problem::new(Kind::MethodNotAllowed, "this path allows DELETE")
                        .with_header("allow", "DELETE"),
                );
            }
            purge(gw, ports, req).await
        }
        _ => Err(Problem::new(Kind::NotFound, "no such gateway endpoint")),
    }
}

/// `DELETE /__gateway/cache?path=/api/items/1%3Fpage%3D2[&subject=SUB]`, with the admin token.
///
/// The entry purged is the one a GET for that path on this host would hit, with
/// this request's own `vary` headers (and `subject` on routes with auth).
async fn purge<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    ports: &P,
    req: &Incoming<'_, H>,
) -> Result<Reply<P::Response>, Problem> {
    let presented = req
        .headers
        .get("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_string));
    let authorized = match (&gw.admin_token, &presented) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !authorized {
        let detail = if gw.admin_token.is_none() {
            "cache purging is disabled: the GATEWAY_ADMIN_TOKEN secret is not set"
        } else {
            "the admin token is missing or wrong"
        };
        return Err(Problem::new(Kind::Unauthorized, detail)
            .with_header("www-authenticate", "Bearer realm=\"gateway-admin\""));
    }
    let target = query_param(req.query, "path")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            Problem::new(Kind::BadRequest, "give the path to purge: ?path=/some/path")
        })?;
    let (target_path, target_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    let path = normalize(&target_path)
        .map_err(|_| Problem::new(Kind::BadRequest, "the path to purge is not valid"))?;
    let route = match gw.table.lookup(req.host, &path, Some(Method::Get)) {
        Match::Found { route, .. } => &gw.routes[route],
        _ => {
            return Err(Problem::new(
                Kind::NotFound,
                "no GET route matches that path",
            ))
        }
    };
    let policy = route
        .cache
        .as_ref()
        .ok_or_else(|| Problem::new(Kind::BadRequest, "that route is not cached"))?;
    let subject = query_param(req.query, "subject");
    let url = format!(
        "{}://{}{}{}{}",
        req.scheme,
        req.host,
        path,
        if target_query.is_some() { "?" } else { "" },
        target_query.as_deref().unwrap_or("")
    );
    let key = url::Url::parse(&url)
        .ok()
        .and_then(|u| policy.cache_key(&u, |name| req.headers.get(name), subject.as_deref()))
        .ok_or_else(|| Problem::new(Kind::BadRequest, "that route is per user: give ?subject="))?;
    let purged = ports
        .cache_delete(&key)
        .await
        .map_err(|_| Problem::new(Kind::Unavailable, "the cache could not be reached"))?;
    let body = serde_json::json!({ "purged": purged, "route": route.id, "path": path });
    let mut headers = HeaderEdits::default();
    headers.set("cache-control", "no-store");
    Ok(Reply::own(
        200,
        Body::Own(body.to_string(), "application/json"),
        headers,
    ))
}

/// A valid W3C `traceparent` is kept; otherwise a new one is made.
fn traceparent<P: Ports, H: HeaderView + ?Sized>(ports: &P, req: &Incoming<'_, H>) -> String {
    if let Some(tp) = req.headers.get("traceparent") {
        let parts: Vec<&str> = tp.split('-').collect();
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if parts.len() == 4
            && hex(parts[0], 2)
            && parts[0] != "ff"
            && hex(parts[1], 32)
            && parts[1].bytes().any(|b| b != b'0')
            && hex(parts[2], 16)
            && parts[2].bytes().any(|b| b != b'0')
            && hex(parts[3], 2)
        {
            return tp;
        }
    }
    let trace = request_id::generate(ports.random_bytes());
    let span = request_id::generate(ports.random_bytes());
    format!("00-{trace}-{}-01", &span[..16])
}

/// The header changes for the upstream request.
fn upstream_headers<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    ports: &P,
    req: &Incoming<'_, H>,
    route: &RouteRt,
    verified: Option<&Verified>,
    rid: &str,
) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    edits.remove_hop_by_hop(req.headers);
    edits
        .remove
        .extend(GATEWAY_OWNED_REQUEST.iter().map(|h| Cow::Borrowed(*h)));
    edits
        .remove
        .extend(gw.identity_headers.iter().map(|h| Cow::Owned(h.clone())));
    if let Some(ip) = req.client_ip {
        edits.set("x-forwarded-for", ip);
    }
    edits.set("x-forwarded-proto", req.scheme);
    edits.set("x-forwarded-host", req.host);
    edits.set("x-request-id", rid);
    edits.set("traceparent", traceparent(ports, req));
    if let (Some(v), Some((provider, _))) = (verified, &route.auth) {
        if let Ok(provider) = &gw.providers[*provider] {
            for (name, value) in crate::policy::auth::forwarded_headers(provider, v) {
                edits.set(name.to_string(), value);
            }
        }
    }
    edits
}

/// Logs a circuit breaker state change as its own line.
fn log_transition<P: Ports>(ports: &P, origin: &str, region: &str, transition: &str) {
    let line = serde_json::json!({
        "event": "circuit_breaker",
        "origin": origin,
        "region": region,
        "transition": transition,
    });
    ports.event(&line.to_string());
}

/// Sends the request to the chosen region, failing over to the others in order.
#[allow(clippy::too_many_arguments)]
async fn forward<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    state: &IsolateState,
    ports: &P,
    req: &Incoming<'_, H>,
    route: &RouteRt,
    method: Method,
    path: &str,
    params: &Params<'_>,
    verified: Option<&Verified>,
    ctx: &mut Ctx<'_>,
) -> Result<Reply<P::Response>, Problem> {
    let origin_index = route.origin;
    let origin = &gw.origins[origin_index];
    let upstream_path = route.upstream_path(path, params);
    let headers = upstream_headers(gw, ports, req, route, verified, &ctx.rid);
    let may_retry = is_retryable_method(method) && !req.has_body;
    let mut order = origin
        .choice
        .order(origin.choice.choose(req.country, req.continent));
    let mut last: Option<Result<P::Response, FetchError>> = None;
    let upstream_started = ports.now_ms();
    loop {
        let now = ports.now_ms();
        let admitted = state
            .breakers
            .borrow_mut()
            .next_admitted(origin_index, &mut order, now);
        let Some((region_index, admit)) = admitted else {
            break;
        };
        let region = &origin.regions[region_index];
        if let Some(t) = admit.transition() {
            log_transition(ports, &origin.name, &region.name, t.as_str());
        }
        let mut url = String::with_capacity(
            region.base.len() + upstream_path.len() + 1 + req.query.map_or(0, str::len),
        );
        url.push_str(&region.base);
        url.push_str(&upstream_path);
        if let Some(q) = req.query {
            url.push('?');
            url.push_str(q);
        }
        let result = ports
            .fetch(UpstreamRequest {
                url: &url,
                method,
                headers: &headers,
                timeout_ms: route.timeout_ms,
            })
            .await;
        let done = ports.now_ms();
        let (status, error) = match &result {
            Ok(r) => (Some(ports.status(r)), None),
            Err(FetchError::Timeout) => (None, Some("timeout")),
            Err(FetchError::Connect(_)) => (None, Some("connect")),
        };
        let failed = status.is_none_or(is_retryable_status);
        let transition =
            state
                .breakers
                .borrow_mut()
                .record(origin_index, region_index, !failed, done);
        if let Some(t) = transition {
            log_transition(ports, &origin.name, &region.name, t.as_str());
        }
        ctx.log.attempts.push(Attempt {
            region: region.name.clone(),
            status,
            error,
            ms: done.saturating_sub(now),
        });
        ctx.log.region = Some(region.name.clone());
        ctx.log.upstream_status = status;
        last = Some(result);
        if !failed || !may_retry {
            break;
        }
    }
    ctx.upstream_ms = Some(ports.now_ms().saturating_sub(upstream_started));
    ctx.log.failovers = ctx.log.attempts.len().saturating_sub(1);
    match last {
        None => Err(Problem::new(
            Kind::Unavailable,
            "every region of this service is failing; try again shortly",
        )
        .with_header("retry-after", "5")),
        Some(Ok(response)) => {
            let mut edits = HeaderEdits::default();
            let connection = ports.response_header(&response, "connection");
            edits.remove_hop_by_hop(&[("connection", connection.as_deref().unwrap_or(""))]);
            edits.remove(cache::STORED_AT);
            edits.remove(ORIGIN_CACHE_CONTROL);
            Ok(Reply::own(
                ports.status(&response),
                Body::Upstream(response),
                edits,
            ))
        }
        Some(Err(FetchError::Timeout)) => Err(Problem::new(
            Kind::GatewayTimeout,
            "the origin did not answer in time",
        )),
        Some(Err(FetchError::Connect(_))) => Err(Problem::new(
            Kind::BadGateway,
            "the origin could not be reached",
        )),
    }
}
