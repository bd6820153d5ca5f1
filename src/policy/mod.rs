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
pub mod cache;
pub mod cors;
pub mod ratelimit;

use crate::http::headers::HeaderEdits;
use crate::http::HeaderView;
use crate::log::LogLine;
use crate::pipeline::{Ctx, Exchange, Flow, Reply};
use crate::ports::Ports;

/// One policy of a route's chain, compiled.
#[derive(Debug)]
pub enum Policy {
    /// CORS headers on every answer (preflights are answered while routing).
    Cors(cors::CorsPolicy),
    /// A bearer token verified against a provider, with scopes.
    Auth(auth::phase::RouteAuth),
    /// A rate limit per key.
    RateLimit(ratelimit::phase::RouteLimit),
    /// The edge cache.
    Cache(cache::CachePolicy),
}

/// What one policy learned about one request.
#[derive(Debug)]
pub enum State {
    Cors,
    Auth,
    RateLimit(ratelimit::phase::State),
    Cache(cache::phase::State),
}

impl Policy {
    /// The state before the request reaches the policy.
    pub fn start(&self) -> State {
        match self {
            Policy::Cors(_) => State::Cors,
            Policy::Auth(_) => State::Auth,
            Policy::RateLimit(_) => State::RateLimit(ratelimit::phase::State::default()),
            Policy::Cache(_) => State::Cache(cache::phase::State::default()),
        }
    }

    /// Passes the request on or answers it.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
        state: &mut State,
    ) -> Result<Flow<P::Response>, crate::http::problem::Problem> {
        match (self, state) {
            (Policy::Cors(_), _) => Ok(Flow::Continue),
            (Policy::Auth(p), _) => p.on_request(x, cx).await,
            (Policy::RateLimit(p), State::RateLimit(s)) => p.on_request(x, cx, s).await,
            (Policy::Cache(p), State::Cache(s)) => p.on_request(x, cx, s).await,
            _ => Ok(Flow::Continue),
        }
    }

    /// Edits the headers of the request the origin receives.
    pub fn on_upstream_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &Ctx,
        edits: &mut HeaderEdits,
    ) {
        if let Policy::Auth(p) = self {
            p.on_upstream_request(x, cx, edits);
        }
    }

    /// Edits the answer, whoever decided it.
    pub fn on_response<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &Ctx,
        state: &mut State,
        reply: &mut Reply<P::Response>,
    ) {
        match (self, state) {
            (Policy::Cors(p), _) => cors::phase::on_response(p, x.req, reply),
            (Policy::RateLimit(_), State::RateLimit(s)) => s.on_response(reply),
            (Policy::Cache(p), State::Cache(s)) => p.on_response(x, cx, s, reply),
            _ => {}
        }
    }

    /// Adds the policy's outcome to the log line.
    pub fn on_log(&self, state: &State, log: &mut LogLine) {
        match state {
            State::RateLimit(s) => log.rate_limit = s.outcome(),
            State::Cache(s) => log.cache = Some(s.x_cache.as_str()),
            State::Cors | State::Auth => {}
        }
    }
}
