//! One request, one direction:
//!
//! ```text
//! route -> the route's policy chain -> upstream -> the chain in reverse -> log
//! ```
//!
//! Routing (`routing.rs`) normalizes the path, answers `/__gateway/*` and CORS
//! preflights, and finds the route. The route's [`Policy`] chain then runs its
//! request hooks in order; any of them may answer (a problem+json error or a
//! cached response). Otherwise the request goes upstream (`upstream.rs`).
//! Whoever answered, the response hooks run in reverse order and the log hooks
//! add each policy's outcome to the one log line. The pipeline is plain Rust
//! over [`Ports`], so it runs natively in tests and in the Worker alike.

use std::cell::RefCell;

use crate::config::Method;
use crate::gateway::{Gateway, RouteRt};
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Problem, CONTENT_TYPE};
use crate::http::{request_id, HeaderView};
use crate::policy::auth::jwks::JwksCache;
use crate::policy::auth::seen::SeenSignatures;
use crate::policy::auth::Verified;
use crate::policy::ratelimit::global::Leases;
use crate::policy::ratelimit::Limiter;
use crate::policy::Policy;
use crate::ports::Ports;
use crate::upstream::breaker::Breakers;

pub use crate::log::{Attempt, LogLine};
pub use upstream::ResponseHeaders;

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
    /// Leases of global rate-limit budgets.
    pub leases: RefCell<Leases>,
    /// Retry budgets, one per origin (in `Gateway::origins` order).
    pub retry_budgets: RefCell<Vec<crate::upstream::budget::Budget>>,
    /// Hedging budgets, one per origin.
    pub hedge_budgets: RefCell<Vec<crate::upstream::budget::Budget>>,
    /// API key lookups, by key hash.
    pub keys: RefCell<crate::policy::consumer::KeyCache>,
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
            leases: RefCell::new(Leases::new(isolate_id.clone())),
            limiter: RefCell::new(Limiter::new(isolate_id)),
            keys: RefCell::new(crate::policy::consumer::KeyCache::new()),
            retry_budgets: RefCell::new(vec![
                crate::upstream::budget::Budget::new();
                gw.origins.len()
            ]),
            hedge_budgets: RefCell::new(vec![
                crate::upstream::budget::Budget::new();
                gw.origins.len()
            ]),
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
    /// Rate-limit counters may need writing to KV: run
    /// [`flush_limits`](crate::policy::ratelimit::phase::flush) in the background.
    pub flush_limits: bool,
    /// Global rate-limit leases may need fetching ahead or giving back: run
    /// [`lease_work`](crate::policy::ratelimit::phase::lease_work) in the background.
    pub lease_work: bool,
    /// Store the upstream response in the edge cache under this key for this many seconds.
    pub store: Option<(String, u32)>,
    /// With `store`: applied to a copy of the upstream headers, they are the stored
    /// entry's headers (decided by [`stored_entry_edits`](crate::policy::cache::stored_entry_edits)).
    pub store_headers: HeaderEdits,
}

/// What the edge sends back.
#[derive(Debug)]
pub struct Reply<R> {
    pub status: u16,
    pub body: Body<R>,
    /// For [`Body::Upstream`], applied to a copy of the upstream headers; else to empty headers.
    pub headers: HeaderEdits,
    /// Send no body: a HEAD request, or a status that has none (101, 204, 205, 304).
    pub no_body: bool,
    pub after: After,
}

impl<R> Reply<R> {
    pub(crate) fn own(status: u16, body: Body<R>, headers: HeaderEdits) -> Self {
        Reply {
            status,
            body,
            headers,
            no_body: false,
            after: After::default(),
        }
    }
}

/// Whether a response with this status carries no body (RFC 9110 6.4.1).
pub fn status_has_no_body(status: u16) -> bool {
    matches!(status, 101 | 204 | 205 | 304)
}

/// A policy's verdict on a request.
#[derive(Debug)]
pub enum Flow<R> {
    /// On to the next policy, then upstream.
    Continue,
    /// This answer, without going upstream (a cache hit).
    Answer(Box<Reply<R>>),
}

/// What is known of one request, read by every hook; immutable once routed.
pub struct Exchange<'a, P, H: HeaderView + ?Sized> {
    pub gw: &'a Gateway,
    pub state: &'a IsolateState,
    pub ports: &'a P,
    pub req: &'a Incoming<'a, H>,
    pub route: &'a RouteRt,
    /// The normalized request path.
    pub path: &'a str,
    /// The route's path parameters, in the order its path names them.
    pub params: &'a [&'a str],
    pub method: Method,
}

/// What the request's hooks establish on its way through and share: the
/// request id, the verified identity, the log line.
#[derive(Debug, Default)]
pub struct Ctx {
    pub rid: String,
    /// The verified token, once an auth policy has passed the request.
    pub identity: Option<Verified>,
    /// The provider that verified `identity` (an index into `Gateway::providers`).
    pub provider: Option<usize>,
    /// The consumer of the request's API key, once an auth policy has passed it.
    pub consumer: Option<crate::policy::consumer::ConsumerRef>,
    /// Time spent upstream, once the request went there.
    pub upstream_ms: Option<u64>,
    /// The request body, once a policy read it into memory (`validate`): sent
    /// upstream instead of the incoming stream.
    pub body: Option<Vec<u8>>,
    pub log: LogLine,
}

impl Ctx {
    /// The verified subject, if any.
    pub fn subject(&self) -> Option<&str> {
        self.identity.as_ref().and_then(|v| v.subject.as_deref())
    }

    /// Who the request is, for the cache key of a route with `auth`: the
    /// consumer (`consumer`, NUL, id) or the token subject. A subject holding a
    /// NUL could imitate a consumer, so it has none (such requests bypass).
    pub fn cache_subject(&self) -> Option<std::borrow::Cow<'_, str>> {
        if let Some(c) = &self.consumer {
            return Some(std::borrow::Cow::Owned(format!("consumer\0{}", c.id)));
        }
        self.subject()
            .filter(|s| !s.contains('\0'))
            .map(std::borrow::Cow::Borrowed)
    }
}

/// One request before routing: what the routing phase and `/__gateway/*` read.
pub(crate) struct Call<'a, P, H: HeaderView + ?Sized> {
    pub gw: &'a Gateway,
    pub state: &'a IsolateState,
    pub ports: &'a P,
    pub req: &'a Incoming<'a, H>,
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
    let mut cx = Ctx {
        log: LogLine {
            request_id: rid.clone(),
            method: req.method.chars().take(16).collect(),
            path: req.path.chars().take(256).collect(),
            ..LogLine::default()
        },
        rid,
        ..Ctx::default()
    };
    let call = Call {
        gw,
        state,
        ports,
        req,
    };
    let mut reply = routing::run(&call, &mut cx).await;
    let h = &mut reply.headers;
    h.set("x-request-id", cx.rid.clone());
    let total = ports.now_ms().saturating_sub(started);
    let timing = match cx.upstream_ms {
        Some(up) => format!(
            "gateway;dur={}, upstream;dur={up}",
            total.saturating_sub(up)
        ),
        None => format!("gateway;dur={total}"),
    };
    h.set("server-timing", timing);
    if req.method == "HEAD" || status_has_no_body(reply.status) {
        reply.no_body = true;
    }
    cx.log.status = reply.status;
    cx.log.duration_ms = ports.now_ms().saturating_sub(started);
    cx.log.upstream_ms = cx.upstream_ms;
    ports.record(&cx.log);
    reply
}

/// Runs a routed request through its route's chain, upstream, and back. A
/// request `refused` before the chain (a malformed one) only gets the
/// response and log hooks.
pub(crate) async fn run_chain<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    cx: &mut Ctx,
    refused: Option<Problem>,
) -> Reply<P::Response> {
    let chain: &[Policy] = &x.route.chain;
    let mut states: Vec<_> = chain.iter().map(Policy::start).collect();
    let mut decided = refused.map(Err);
    let requests = if decided.is_some() { 0 } else { chain.len() };
    for (policy, state) in chain.iter().zip(states.iter_mut()).take(requests) {
        match policy.on_request(x, cx, state).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Answer(reply)) => {
                decided = Some(Ok(*reply));
                break;
            }
            Err(problem) => {
                decided = Some(Err(problem));
                break;
            }
        }
    }
    let decided = match decided {
        Some(d) => d,
        None => upstream::forward(x, cx).await,
    };
    let mut reply = match decided {
        Ok(reply) => reply,
        Err(problem) => cx.problem_reply(problem),
    };
    for (policy, state) in chain.iter().zip(states.iter_mut()).rev() {
        policy.on_response(x, cx, state, &mut reply).await;
    }
    for (policy, state) in chain.iter().zip(&states) {
        policy.on_log(state, &mut cx.log);
    }
    reply
}

impl Ctx {
    /// Turns a problem into a reply, noting its detail as the log line's error
    /// unless a more precise one was noted.
    pub fn problem_reply<R>(&mut self, problem: Problem) -> Reply<R> {
        self.log
            .error
            .get_or_insert_with(|| problem.detail.to_string());
        problem_reply(problem, &self.rid)
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

/// A JSON answer of the gateway's own, never stored by caches.
pub(crate) fn json_reply<R>(status: u16, body: serde_json::Value) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    headers.set("cache-control", "no-store");
    Reply::own(
        status,
        Body::Own(body.to_string(), "application/json"),
        headers,
    )
}

pub use crate::policy::cache::ORIGIN_CACHE_CONTROL;

mod admin;
mod routing;
mod upstream;
