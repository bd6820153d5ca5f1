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

/// Records one finished attempt: its breaker, its entry in the log line.
/// Returns whether it failed (no answer, or a status worth another region).
fn settle<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    ctx: &mut Ctx,
    origin_index: usize,
    region_index: usize,
    started: u64,
    result: &Result<P::Response, FetchError>,
) -> bool {
    let (ports, state) = (x.ports, x.state);
    let origin = &x.gw.origins[origin_index];
    let region = &origin.regions[region_index];
    let done = ports.now_ms();
    let (status, error) = match result {
        Ok(r) => (Some(ports.status(r)), None),
        Err(FetchError::Timeout) => (None, Some("timeout")),
        Err(FetchError::Connect(_)) => (None, Some("connect")),
        Err(FetchError::Invalid) => (None, Some("invalid_response")),
        Err(FetchError::BodyTooLarge) => (None, Some("body_too_large")),
    };
    let failed = status.is_none_or(is_retryable_status);
    let transition = state
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
        ms: done.saturating_sub(started),
    });
    ctx.log.region = Some(region.name.clone());
    ctx.log.upstream_status = status;
    failed
}

/// Whether a finished attempt is an answer to pass on (not one worth another region).
fn good<P: Ports>(ports: &P, result: &Result<P::Response, FetchError>) -> bool {
    matches!(result, Ok(r) if !is_retryable_status(ports.status(r)))
}

/// The first attempt of a hedged origin: when it has no response headers
/// after `after_ms` and the hedging budget allows, the next admitted region
/// gets the same request; the first good answer wins and the other attempt
/// is cancelled (dropped: the edge aborts its fetch) and logged as such. The
/// winner, or the last to finish when neither is good, is returned unsettled;
/// a failed loser is settled here.
#[allow(clippy::too_many_arguments)]
async fn hedged<P, H, F, Fut>(
    x: &Exchange<'_, P, H>,
    ctx: &mut Ctx,
    origin_index: usize,
    order: &mut impl Iterator<Item = usize>,
    hedge: crate::config::Hedge,
    first_region: usize,
    first_started: u64,
    send: &F,
) -> (usize, u64, Result<P::Response, FetchError>)
where
    P: Ports,
    H: HeaderView + ?Sized,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<P::Response, FetchError>>,
{
    use futures_util::future::{select, Either};
    let (ports, state) = (x.ports, x.state);
    let origin = &x.gw.origins[origin_index];
    let mut first = std::pin::pin!(send(first_region));
    let timer = std::pin::pin!(ports.sleep(hedge.after_ms));
    if let Either::Left((result, _)) = select(first.as_mut(), timer).await {
        return (first_region, first_started, result);
    }
    let now = ports.now_ms();
    if !state.hedge_budgets.borrow_mut()[origin_index].try_spend(hedge.budget_percent, now) {
        ctx.log.hedge = Some("budget");
        return (first_region, first_started, first.await);
    }
    let second = state
        .breakers
        .borrow_mut()
        .next_admitted(origin_index, order, now);
    let Some((second_region, admit)) = second else {
        return (first_region, first_started, first.await);
    };
    if let Some(t) = admit.transition() {
        log_transition(
            ports,
            &origin.name,
            &origin.regions[second_region].name,
            t.as_str(),
        );
    }
    ctx.log.hedge = Some("sent");
    let mut second = std::pin::pin!(send(second_region));
    let cancelled = |ctx: &mut Ctx, region: usize, started: u64| {
        ctx.log.attempts.push(Attempt {
            region: origin.regions[region].name.clone(),
            status: None,
            error: Some("cancelled"),
            ms: ports.now_ms().saturating_sub(started),
        });
    };
    match select(first.as_mut(), second.as_mut()).await {
        Either::Left((a, _)) if good(ports, &a) => {
            cancelled(ctx, second_region, now);
            (first_region, first_started, a)
        }
        Either::Left((a, _)) => {
            settle(x, ctx, origin_index, first_region, first_started, &a);
            (second_region, now, second.await)
        }
        Either::Right((b, _)) if good(ports, &b) => {
            cancelled(ctx, first_region, first_started);
            (second_region, now, b)
        }
        Either::Right((b, _)) => {
            settle(x, ctx, origin_index, second_region, now, &b);
            (first_region, first_started, first.await)
        }
    }
}

/// Whether an origin's status can be passed on: 200-599, or 101 on a WebSocket route.
fn valid_status(status: u16, websocket: bool) -> bool {
    (200..=599).contains(&status) || (status == 101 && websocket)
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
    let origin_index = match &route.split {
        None => route.origin,
        Some((split, sticky)) => {
            let value = sticky
                .as_ref()
                .and_then(|k| crate::policy::ratelimit::phase::request_key(k, req, ctx));
            // Randomness only when there is no sticky value to hash.
            let random = match value {
                Some(_) => 0,
                None => {
                    let b = ports.random_bytes();
                    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                }
            };
            let chosen = split.pick(value.as_deref(), random);
            ctx.log.origin = Some(gw.origins[chosen].name.clone());
            chosen
        }
    };
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
    if origin.retry_budget_percent.is_some() {
        state.retry_budgets.borrow_mut()[origin_index].note_request(upstream_started);
    }
    // Hedging: only idempotent requests without a body, never an upgrade.
    let hedge = origin.hedge.filter(|_| may_retry && !route.websocket());
    if hedge.is_some() {
        state.hedge_budgets.borrow_mut()[origin_index].note_request(upstream_started);
    }
    let websocket = route.websocket();
    // A body a policy read into memory (validation) goes instead of the stream.
    let body = ctx.body.take();
    // One attempt at a region: its URL, the fetch, a status no response can carry mapped to Invalid.
    let send = |region_index: usize| {
        let region = &origin.regions[region_index];
        let (headers, query, upstream_path, body) = (&headers, &query, &upstream_path, &body);
        async move {
            let mut url = String::with_capacity(
                region.base.len() + upstream_path.len() + 1 + query.as_ref().map_or(0, |q| q.len()),
            );
            url.push_str(&region.base);
            url.push_str(upstream_path);
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            let result = ports
                .fetch(UpstreamRequest {
                    url: &url,
                    method,
                    headers,
                    timeout_ms: route.timeout_ms.unwrap_or(origin.timeout_ms),
                    max_body_bytes: route.max_body_bytes(),
                    service: region.service.as_deref(),
                    body: body.as_deref(),
                })
                .await;
            match result {
                // The runtime lets statuses like 2 or 999 through from a lenient parse,
                // but no response can be built with them; a 101 is the answer only
                // to a WebSocket route's upgrade.
                Ok(r) if !valid_status(ports.status(&r), websocket) => Err(FetchError::Invalid),
                other => other,
            }
        }
    };
    loop {
        let now = ports.now_ms();
        if let (Some(percent), Some(_)) = (origin.retry_budget_percent, &last) {
            // A failover: only within the origin's retry budget.
            let spent = state.retry_budgets.borrow_mut()[origin_index].try_spend(percent, now);
            if !spent {
                ctx.log.retry_budget_exhausted = true;
                break;
            }
        }
        let admitted = state
            .breakers
            .borrow_mut()
            .next_admitted(origin_index, &mut order, now);
        let Some((region_index, admit)) = admitted else {
            break;
        };
        if let Some(t) = admit.transition() {
            log_transition(
                ports,
                &origin.name,
                &origin.regions[region_index].name,
                t.as_str(),
            );
        }
        let (region_index, started, result) = match (hedge, &last) {
            (Some(h), None) => {
                hedged(
                    x,
                    ctx,
                    origin_index,
                    &mut order,
                    h,
                    region_index,
                    now,
                    &send,
                )
                .await
            }
            _ => (region_index, now, send(region_index).await),
        };
        if matches!(result, Err(FetchError::BodyTooLarge)) {
            // The client's fault, not the region's: no breaker record, no failover.
            ctx.log.region = Some(origin.regions[region_index].name.clone());
            ctx.upstream_ms = Some(ports.now_ms().saturating_sub(upstream_started));
            return Err(body_limit::too_large(
                route.max_body_bytes().unwrap_or_default(),
            ));
        }
        let failed = settle(x, ctx, origin_index, region_index, started, &result);
        last = Some(result);
        if !failed || !may_retry {
            break;
        }
    }
    ctx.upstream_ms = Some(ports.now_ms().saturating_sub(upstream_started));
    // A hedged attempt is not a failover.
    let hedges = usize::from(ctx.log.hedge == Some("sent"));
    ctx.log.failovers = ctx.log.attempts.len().saturating_sub(1 + hedges);
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
