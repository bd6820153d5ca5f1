//! The upstream phase: region choice, failover, the request the origin receives.

use super::*;
use crate::http::problem::Kind;
use crate::log::Event;
use crate::policy::{body_limit, cache};
use crate::ports::{FetchError, UpstreamRequest};
use crate::upstream::region::{is_retryable_method, is_retryable_status};

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

/// An origin response's headers, read through the ports.
pub struct ResponseHeaders<'a, P: Ports>(pub &'a P, pub &'a P::Response);

impl<P: Ports> HeaderView for ResponseHeaders<'_, P> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.response_header(self.1, name)
    }

    fn names(&self) -> Vec<String> {
        self.0.response_header_names(self.1)
    }
}

/// The header changes and the query string of the upstream request: the
/// gateway's own, then the chain's.
fn upstream_request<'q, P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'q, P, H>,
    cx: &Ctx,
) -> (HeaderEdits, Option<std::borrow::Cow<'q, str>>) {
    let (gw, ports, req) = (x.gw, x.ports, x.req);
    let mut edits = HeaderEdits::default();
    edits.remove_unwanted(req.headers, &gw.dropped_request_headers);
    if let Some(ip) = req.client_ip {
        edits.set("x-forwarded-for", ip);
    }
    edits.set("x-forwarded-proto", req.scheme);
    edits.set("x-forwarded-host", req.host);
    edits.set("x-request-id", cx.rid.as_str());
    edits.set("traceparent", traceparent(ports, req));
    let mut query = req.query.map(std::borrow::Cow::Borrowed);
    for policy in &x.route.chain {
        policy.on_upstream_request(x, cx, &mut edits, &mut query);
    }
    (edits, query)
}

/// Logs a circuit breaker state change as its own line.
fn log_transition<P: Ports>(ports: &P, origin: &str, region: &str, transition: &'static str) {
    ports.event(&Event::CircuitBreaker {
        origin,
        region,
        transition,
    });
}

/// Sends the request to the chosen region, failing over to the others in order.
pub(super) async fn forward<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    ctx: &mut Ctx,
) -> Result<Reply<P::Response>, Problem> {
    let (gw, state, ports, req) = (x.gw, x.state, x.ports, x.req);
    let (route, method) = (x.route, x.method);
    let origin_index = route.origin;
    let origin = &gw.origins[origin_index];
    let Some(upstream_path) = route.upstream_path(x.path, x.params) else {
        return Err(Problem::new(
            Kind::BadRequest,
            "this path cannot be forwarded: its rewrite would contain a dot segment",
        ));
    };
    let (headers, query) = upstream_request(x, ctx);
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
            region.base.len() + upstream_path.len() + 1 + query.as_ref().map_or(0, |q| q.len()),
        );
        url.push_str(&region.base);
        url.push_str(&upstream_path);
        if let Some(q) = &query {
            url.push('?');
            url.push_str(q);
        }
        let result = ports
            .fetch(UpstreamRequest {
                url: &url,
                method,
                headers: &headers,
                timeout_ms: route.timeout_ms,
                max_body_bytes: route.max_body_bytes(),
                body: ctx.body.as_deref(),
            })
            .await;
        if matches!(result, Err(FetchError::BodyTooLarge)) {
            // The client's fault, not the region's: no breaker record, no failover.
            ctx.log.region = Some(region.name.clone());
            ctx.upstream_ms = Some(ports.now_ms().saturating_sub(upstream_started));
            return Err(body_limit::too_large(
                route.max_body_bytes().unwrap_or_default(),
            ));
        }
        let result = match result {
            // The runtime lets statuses like 2 or 999 through from a lenient parse,
            // but no response can be built with them.
            Ok(r) if !(200..=599).contains(&ports.status(&r)) => Err(FetchError::Invalid),
            other => other,
        };
        let done = ports.now_ms();
        let (status, error) = match &result {
            Ok(r) => (Some(ports.status(r)), None),
            Err(FetchError::Timeout) => (None, Some("timeout")),
            Err(FetchError::Connect(_)) => (None, Some("connect")),
            Err(FetchError::Invalid) => (None, Some("invalid_response")),
            Err(FetchError::BodyTooLarge) => (None, Some("body_too_large")),
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
            edits.remove_unwanted(
                &ResponseHeaders(ports, &response),
                &[cache::STORED_AT, ORIGIN_CACHE_CONTROL],
            );
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
        Some(Err(FetchError::BodyTooLarge)) => Err(body_limit::too_large(
            route.max_body_bytes().unwrap_or_default(),
        )),
        Some(Err(FetchError::Invalid)) => Err(Problem::new(
            Kind::BadGateway,
            "the origin sent an invalid response",
        )),
    }
}
