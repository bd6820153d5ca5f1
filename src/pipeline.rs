//! One request, one direction: route -> upstream -> respond -> log.
//!
//! Each phase either hands the request on or ends it with a reply; an error is a
//! `problem+json` reply decided by the phase that found it. The pipeline is plain
//! Rust over [`Ports`], so it runs natively in tests and in the Worker alike.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Serialize;

use crate::config::Method;
use crate::gateway::{Gateway, RouteRt, VERSION};
use crate::http::headers::{HeaderEdits, GATEWAY_OWNED_REQUEST};
use crate::http::path::{normalize, PathError};
use crate::http::problem::{Kind, Problem, CONTENT_TYPE};
use crate::http::{request_id, HeaderView};
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
}

impl IsolateState {
    pub fn new(gw: &Gateway) -> IsolateState {
        IsolateState {
            breakers: RefCell::new(Breakers::new(gw.file.origins.values())),
        }
    }
}

/// A reply body.
#[derive(Debug)]
pub enum Body<R> {
    /// The upstream response's body, streamed through untouched.
    Upstream(R),
    /// A body the gateway made, with its content type.
    Own(String, &'static str),
    Empty,
}

/// What the edge sends back.
#[derive(Debug)]
pub struct Reply<R> {
    pub status: u16,
    pub body: Body<R>,
    /// For [`Body::Upstream`], applied to a copy of the upstream headers; else to empty headers.
    pub headers: HeaderEdits,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    let mut log = LogLine {
        request_id: rid.clone(),
        method: req.method.to_string(),
        path: req.path.chars().take(256).collect(),
        ..LogLine::default()
    };
    let mut reply = match run(gw, state, ports, req, &rid, &mut log).await {
        Ok(reply) => reply,
        Err(problem) => {
            log.error.get_or_insert_with(|| problem.detail.to_string());
            problem_reply(problem, &rid)
        }
    };
    reply.headers.set("x-request-id", rid);
    if req.method == "HEAD" {
        if let Body::Own(..) = reply.body {
            reply.body = Body::Empty;
        }
    }
    log.status = reply.status;
    log.duration_ms = ports.now_ms().saturating_sub(started);
    if let Ok(line) = serde_json::to_string(&log) {
        ports.log(&line);
    }
    reply
}

/// Turns a problem into a reply.
pub fn problem_reply<R>(problem: Problem, request_id: &str) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    for (name, value) in &problem.headers {
        headers.set(*name, value.clone());
    }
    headers.set("cache-control", "no-store");
    Reply {
        status: problem.status(),
        body: Body::Own(problem.body(request_id), CONTENT_TYPE),
        headers,
    }
}

async fn run<P: Ports, H: HeaderView + ?Sized>(
    gw: &Gateway,
    state: &IsolateState,
    ports: &P,
    req: &Incoming<'_, H>,
    rid: &str,
    log: &mut LogLine,
) -> Result<Reply<P::Response>, Problem> {
    let path = normalize(req.path).map_err(|e| match e {
        PathError::TooLong => Problem::new(Kind::UriTooLong, "the request path is too long"),
        PathError::NotOriginForm => {
            Problem::new(Kind::BadRequest, "the request target must be a path")
        }
    })?;
    if let Some(own) = path.strip_prefix(crate::config::validate::RESERVED_PREFIX) {
        if own.is_empty() || own.starts_with('/') {
            return gateway_endpoint(gw, req, own);
        }
    }
    let method = Method::parse(req.method);
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
    log.route = Some(route.id.clone());
    log.path_template = Some(route.path.clone());
    let method = method.expect("a route matched, so the method is known");
    forward(gw, state, ports, req, route, method, &path, &params, rid, log).await
}

fn gateway_endpoint<R, H: HeaderView + ?Sized>(
    gw: &Gateway,
    req: &Incoming<'_, H>,
    own: &str,
) -> Result<Reply<R>, Problem> {
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
            Ok(Reply {
                status: 200,
                body: Body::Own(body.to_string(), "application/json"),
                headers,
            })
        }
        _ => Err(Problem::new(Kind::NotFound, "no such gateway endpoint")),
    }
}

/// The header changes for the upstream request.
fn upstream_headers<H: HeaderView + ?Sized>(
    gw: &Gateway,
    req: &Incoming<'_, H>,
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
    ports.log(&line.to_string());
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
    rid: &str,
    log: &mut LogLine,
) -> Result<Reply<P::Response>, Problem> {
    let origin_index = route.origin;
    let origin = &gw.origins[origin_index];
    let upstream_path = route.upstream_path(path, params);
    let headers = upstream_headers(gw, req, rid);
    let may_retry = is_retryable_method(method) && !req.has_body;
    let mut order = origin.choice.order(origin.choice.choose(req.country, req.continent));
    let mut last: Option<Result<P::Response, FetchError>> = None;
    let upstream_started = ports.now_ms();
    loop {
        let now = ports.now_ms();
        let admitted = state.breakers.borrow_mut().next_admitted(origin_index, &mut order, now);
        let Some((region_index, admit)) = admitted else { break };
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
        let transition = state.breakers.borrow_mut().record(origin_index, region_index, !failed, done);
        if let Some(t) = transition {
            log_transition(ports, &origin.name, &region.name, t.as_str());
        }
        log.attempts.push(Attempt {
            region: region.name.clone(),
            status,
            error,
            ms: done.saturating_sub(now),
        });
        log.region = Some(region.name.clone());
        log.upstream_status = status;
        last = Some(result);
        if !failed || !may_retry {
            break;
        }
    }
    log.upstream_ms = Some(ports.now_ms().saturating_sub(upstream_started));
    log.failovers = log.attempts.len().saturating_sub(1);
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
            Ok(Reply {
                status: ports.status(&response),
                body: Body::Upstream(response),
                headers: edits,
            })
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
