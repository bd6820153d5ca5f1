//! The consumer phases: an API key checked (the auth policy calls
//! [`check_key`] for a route's `api_key` alternative), then the consumer's
//! plan applied (`Policy::Plan`): its rate limit per consumer and its quota,
//! counted exactly by the global limiter.

use super::{
    hash_key, is_well_formed, key_kv_key, period_bounds, quota_counter, Cached, ConsumerRef,
    KeyRecord,
};
use crate::config::{Quota, QuotaPeriod};
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::{Event, LogLine};
use crate::pipeline::{Ctx, Exchange, Flow, Reply};
use crate::policy::ratelimit::global::{Ask, Ticket, Verdict};
use crate::policy::ratelimit::phase::{self as limit_phase, RouteLimit};
use crate::ports::Ports;

pub use crate::config::managed::PLAN_HEADER;

/// The file's consumer settings, compiled.
#[derive(Debug)]
pub struct Consumers {
    /// The request header holding the key, lower-case.
    pub header: String,
    /// The upstream header naming the consumer, lower-case.
    pub forward_consumer: String,
    pub plans: Vec<PlanRt>,
}

impl Consumers {
    pub fn plan(&self, name: &str) -> Option<&PlanRt> {
        self.plans.iter().find(|p| p.name == name)
    }
}

/// A plan, compiled.
#[derive(Debug)]
pub struct PlanRt {
    pub name: String,
    /// The plan's rate limit, counted per consumer across routes.
    pub limit: Option<RouteLimit>,
    pub quota: Option<Quota>,
}

/// A route's `api_key` alternative, compiled.
#[derive(Debug, Clone)]
pub struct KeyRule {
    /// The plans accepted; empty: any.
    pub plans: Vec<String>,
}

fn invalid_key() -> Problem {
    Problem::new(Kind::Unauthorized, "the API key is not valid")
}

/// Checks the request's API key against a route's rule. Malformed keys are
/// refused without a KV read; lookups are cached per isolate
/// ([`super::KeyCache`]).
pub async fn check_key<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    cx: &mut Ctx,
    rule: &KeyRule,
    key: &str,
) -> Result<ConsumerRef, Problem> {
    if !is_well_formed(key) {
        cx.log.api_key = Some("malformed");
        return Err(invalid_key());
    }
    let hash = hash_key(key);
    let cached = x.state.keys.borrow().get(&hash, x.ports.now_ms());
    let found = match cached {
        Cached::Found(c) => Some(c),
        Cached::Unknown => None,
        Cached::Miss => {
            let kv_key = key_kv_key(&hash);
            cx.log.kv_reads += 1;
            match x.ports.kv_get(&kv_key).await {
                Ok(value) => {
                    let found = value
                        .and_then(|text| serde_json::from_str::<KeyRecord>(&text).ok())
                        .map(|r| ConsumerRef {
                            id: r.consumer,
                            plan: r.plan,
                        });
                    x.state
                        .keys
                        .borrow_mut()
                        .put(&hash, found.clone(), x.ports.now_ms());
                    found
                }
                Err(e) => {
                    x.ports.event(&Event::KvError {
                        op: "get",
                        key: &kv_key,
                        error: &e,
                    });
                    cx.log.api_key = Some("kv_error");
                    return Err(Problem::new(
                        Kind::Unavailable,
                        "API keys cannot be checked right now",
                    )
                    .with_header("retry-after", "5"));
                }
            }
        }
    };
    let Some(consumer) = found else {
        cx.log.api_key = Some("unknown");
        return Err(invalid_key());
    };
    cx.log.consumer = Some(consumer.id.clone());
    let known_plan =
        x.gw.consumers
            .as_ref()
            .is_some_and(|c| c.plan(&consumer.plan).is_some());
    if !known_plan || (!rule.plans.is_empty() && !rule.plans.contains(&consumer.plan)) {
        cx.log.api_key = Some("plan_not_accepted");
        return Err(Problem::new(
            Kind::Forbidden,
            "this route does not accept the consumer's plan",
        ));
    }
    cx.log.api_key = Some("valid");
    Ok(consumer)
}

/// A quota decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds to the end of the period.
    pub reset_s: u64,
    /// The limiter could not be reached (the request was let through).
    pub limiter_error: bool,
}

impl QuotaDecision {
    /// The `x-quota-*` headers.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("x-quota-limit", self.limit.to_string()),
            ("x-quota-remaining", self.remaining.to_string()),
            ("x-quota-reset", self.reset_s.to_string()),
        ]
    }
}

/// What the plan policy learned about one request.
#[derive(Debug, Default)]
pub struct PlanState {
    limit: Option<limit_phase::State>,
    quota: Option<QuotaDecision>,
}

/// `Policy::Plan`: the consumer's plan, on routes with an `api_key` alternative.
#[derive(Debug, Clone, Copy)]
pub struct PlanPolicy;

impl PlanPolicy {
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
        state: &mut PlanState,
    ) -> Result<Flow<P::Response>, Problem> {
        let Some(consumer) = cx.consumer.clone() else {
            return Ok(Flow::Continue);
        };
        let Some(plan) = x.gw.consumers.as_ref().and_then(|c| c.plan(&consumer.plan)) else {
            return Ok(Flow::Continue);
        };
        if let Some(limit) = &plan.limit {
            let decided = limit
                .on_request(x, cx, state.limit.insert(Default::default()))
                .await;
            decided?;
        }
        if let Some(quota) = plan.quota {
            let decision = quota_decision(x, &consumer.id, quota).await;
            state.quota = Some(decision);
            if !decision.allowed {
                return Err(Problem::new(
                    Kind::QuotaExceeded,
                    "the consumer's quota for this period is used up",
                )
                .with_header("retry-after", decision.reset_s.to_string()));
            }
        }
        Ok(Flow::Continue)
    }

    pub fn on_response<R>(&self, state: &PlanState, reply: &mut Reply<R>) {
        if let Some(limit) = &state.limit {
            limit.on_response(reply);
        }
        if let Some(q) = &state.quota {
            for (name, value) in q.headers() {
                reply.headers.set(name, value);
            }
            reply.after.lease_work = true;
        }
    }

    pub fn on_log(&self, state: &PlanState, log: &mut LogLine) {
        if let Some(limit) = &state.limit {
            log.plan_rate_limit = limit.outcome();
        }
        log.quota = state.quota.map(|q| match (q.limiter_error, q.allowed) {
            (true, _) => "limiter_error",
            (false, true) => "allowed",
            (false, false) => "exceeded",
        });
    }
}

/// Takes one request from the consumer's quota for the current period.
async fn quota_decision<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    consumer: &str,
    quota: Quota,
) -> QuotaDecision {
    let counter = quota_counter(consumer, quota.period);
    let mut ticket = Ticket::default();
    let (verdict, end_ms) = loop {
        let (start_ms, end_ms) = period_bounds(x.ports.now_ms(), quota.period);
        let ask = Ask {
            counter: &counter,
            start_ms,
            end_ms,
            limit: quota.requests,
        };
        let leases = &x.state.leases;
        if let Some(v) = limit_phase::acquire(leases, x.ports, &ask, &mut ticket, &x.route.id).await
        {
            break (v, end_ms);
        }
    };
    let reset_s = end_ms
        .saturating_sub(x.ports.now_ms())
        .div_ceil(1000)
        .max(1);
    let decision = |allowed, remaining: u64, limiter_error| QuotaDecision {
        allowed,
        limit: quota.requests,
        remaining: remaining.min(quota.requests),
        reset_s,
        limiter_error,
    };
    match verdict {
        Verdict::Admit { remaining } => decision(true, remaining, false),
        Verdict::Deny => decision(false, 0, false),
        // Fail open, as a global limit does by default; the log line says so.
        Verdict::Unreachable => decision(true, quota.requests, true),
    }
}

/// Seconds of a period, for documentation and tests.
pub fn period_name(period: QuotaPeriod) -> &'static str {
    match period {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Month => "month",
    }
}
