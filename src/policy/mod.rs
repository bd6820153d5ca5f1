//! Request policies, and the chain a route runs them in.
//!
//! Each policy is one folder: its compiled configuration, its pure decision
//! logic with its tests, and its phase (`phase.rs`), the hooks below. A route
//! carries its policies in order, as [`Policy`] values built once per isolate
//! (`Gateway::compile`); the pipeline calls them statically, no trait objects:
//!
//! ```text
//! on_request            in chain order: pass the request on, or answer it
//! on_upstream_request   in chain order: header edits for the origin
//! on_response           in reverse order, on every answer (errors included)
//! on_log                in chain order: what the policy adds to the log line
//! ```
//!
//! A policy keeps what it learns about one request in its own [`State`]
//! variant; the only facts shared between policies are in
//! [`Ctx`](crate::pipeline::Ctx) (the verified identity, the log line).
//! Adding a policy is a folder, a variant of [`Policy`] and of [`State`], and
//! its arms in the four hooks.

pub mod auth;
pub mod body_limit;
pub mod cache;
pub mod consumer;
pub mod cors;
pub mod geo;
pub mod headers;
pub mod ip;
pub mod query;
pub mod ratelimit;
pub mod validate;
pub mod websocket;

use std::borrow::Cow;

use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::LogLine;
use crate::pipeline::{Body, Ctx, Exchange, Flow, Reply, ResponseHeaders};
use crate::ports::Ports;

/// One policy of a route's chain, compiled.
#[derive(Debug)]
pub enum Policy {
    /// `websocket: true`: only upgrades, origin-checked; the upgrade goes upstream.
    WebSocket(websocket::WebSocketPolicy),
    /// `response_headers`: edits of the origin's answer (fresh or cached).
    ResponseHeaders(headers::HeaderPolicy),
    /// `ip`: allow and deny lists over the client address.
    Ip(ip::IpPolicy),
    /// `geo`: allow and deny lists over the caller's country and continent.
    Geo(geo::GeoPolicy),
    /// `max_body_bytes`: a declared larger body is refused.
    BodyLimit(u64),
    /// CORS headers on every answer (preflights are answered while routing).
    Cors(cors::CorsPolicy),
    /// A bearer token verified against a provider, with scopes, or an API key.
    Auth(auth::phase::RouteAuth),
    /// A rate limit per key.
    RateLimit(ratelimit::phase::RouteLimit),
    /// The consumer's plan: its rate limit and quota (routes with an `api_key` alternative).
    Plan(consumer::phase::PlanPolicy),
    /// `request_headers`: edits of the request the origin receives.
    RequestHeaders(headers::HeaderPolicy),
    /// `query`: edits of the query string the origin receives.
    Query(query::QueryPolicy),
    /// `validate`: typed query parameters and the body's JSON Schema.
    Validate(Box<validate::ValidatePolicy>),
    /// The edge cache.
    Cache(cache::CachePolicy),
}

/// What one policy learned about one request.
#[derive(Debug)]
pub enum State {
    /// Policies that keep nothing per request.
    Stateless,
    Cors,
    Auth,
    RateLimit(ratelimit::phase::State),
    Plan(consumer::phase::PlanState),
    Cache(cache::phase::State),
}

impl Policy {
    /// The state before the request reaches the policy.
    pub fn start(&self) -> State {
        match self {
            Policy::Cors(_) => State::Cors,
            Policy::Auth(_) => State::Auth,
            Policy::RateLimit(_) => State::RateLimit(ratelimit::phase::State::default()),
            Policy::Plan(_) => State::Plan(consumer::phase::PlanState::default()),
            Policy::Cache(_) => State::Cache(cache::phase::State::default()),
            _ => State::Stateless,
        }
    }

    /// Passes the request on or answers it.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
        state: &mut State,
    ) -> Result<Flow<P::Response>, crate::http::problem::Problem> {
        let req = x.req;
        match (self, state) {
            (Policy::Ip(p), _) if !p.admits(req.client_ip) => Err(Problem::new(
                Kind::Forbidden,
                "this client address is not allowed on this route",
            )),
            (Policy::Geo(p), _) if !p.admits(req.country, req.continent) => Err(Problem::new(
                Kind::Forbidden,
                "requests from this location are not allowed on this route",
            )),
            (Policy::BodyLimit(max), _) => body_limit::on_request(*max, x.ports, req, cx).await,
            (Policy::WebSocket(p), _) => p.on_request(x),
            (Policy::Auth(p), _) => p.on_request(x, cx).await,
            (Policy::RateLimit(p), State::RateLimit(s)) => p.on_request(x, cx, s).await,
            (Policy::Plan(p), State::Plan(s)) => p.on_request(x, cx, s).await,
            (Policy::Validate(p), _) => p.on_request(x, cx).await,
            (Policy::Cache(p), State::Cache(s)) => p.on_request(x, cx, s).await,
            _ => Ok(Flow::Continue),
        }
    }

    /// Edits the request the origin receives: its headers (after the
    /// gateway's own) and its query string.
    pub fn on_upstream_request<'q, P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'q, P, H>,
        cx: &Ctx,
        edits: &mut HeaderEdits,
        query: &mut Option<Cow<'q, str>>,
    ) {
        match self {
            Policy::Auth(p) => p.on_upstream_request(x, cx, edits),
            Policy::RequestHeaders(p) => p.edit(x.req.headers, x.params, edits),
            Policy::WebSocket(p) => p.on_upstream_request(edits),
            Policy::Query(p) => {
                *query = match query.take() {
                    None => p.apply(None, x.params),
                    Some(Cow::Borrowed(q)) => p.apply(Some(q), x.params),
                    Some(Cow::Owned(q)) => p
                        .apply(Some(&q), x.params)
                        .map(|c| Cow::Owned(c.into_owned())),
                }
            }
            _ => {}
        }
    }

    /// Edits the answer, whoever decided it.
    pub async fn on_response<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &Ctx,
        state: &mut State,
        reply: &mut Reply<P::Response>,
    ) {
        match (self, state) {
            (Policy::ResponseHeaders(p), _) => {
                if let Body::Upstream(response) = &reply.body {
                    p.edit(
                        &ResponseHeaders(x.ports, response),
                        x.params,
                        &mut reply.headers,
                    );
                }
            }
            (Policy::Cors(p), _) => cors::phase::on_response(p, x.ports, x.req, reply),
            (Policy::RateLimit(_), State::RateLimit(s)) => s.on_response(reply),
            (Policy::Plan(p), State::Plan(s)) => p.on_response(s, reply),
            (Policy::Cache(p), State::Cache(s)) => p.on_response(x, cx, s, reply).await,
            _ => {}
        }
    }

    /// Adds the policy's outcome to the log line.
    pub fn on_log(&self, state: &State, log: &mut LogLine) {
        match (self, state) {
            (Policy::Plan(p), State::Plan(s)) => p.on_log(s, log),
            (_, State::RateLimit(s)) => log.rate_limit = s.outcome(),
            (_, State::Cache(s)) => log.cache = Some(s.x_cache.as_str()),
            _ => {}
        }
    }
}
