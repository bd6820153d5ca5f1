//! The rate-limit phase: the request counted against its key's counter (in
//! the isolate, converging through KV; or, for `scope: "global"`, from leases
//! of the counter's budget held by its Durable Object), the `ratelimit-*`
//! headers on every answer after the decision, and the background work of both:
//! counters brought to KV, leases fetched ahead and given back.

use std::borrow::Cow;
use std::cell::RefCell;

use super::global::{self, Acquire, Ask, Leases, Ticket, Verdict};
use super::{counter_key, Decision, KeyKind, Limiter, Step, Then, WAIT_POLL_MS};
use crate::config::{OnError, RateLimit, RateScope};
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::Event;
use crate::pipeline::{Ctx, Exchange, Flow, Reply};
use crate::ports::Ports;

/// A route's rate limit, compiled.
#[derive(Debug, Clone)]
pub struct RouteLimit {
    pub limit: RateLimit,
    /// Names the counters in place of the route id: a plan's limit counts
    /// per consumer across every route (`~plan:NAME`, which no route id can be).
    pub counter_id: Option<String>,
}

/// What the rate-limit policy learned about one request.
#[derive(Debug, Default)]
pub struct State {
    decision: Option<Decision>,
    /// KV failed while deciding (the request was let through on what is known).
    kv_error: bool,
    /// A global limit's Durable Object could not be reached.
    limiter_error: bool,
    /// The limit is global: its leases, not KV counters, may need background work.
    global: bool,
}

impl State {
    /// `allowed`, `limited`, `kv_error` or `limiter_error`, once decided.
    pub fn outcome(&self) -> Option<&'static str> {
        if self.limiter_error {
            return Some("limiter_error");
        }
        let decision = self.decision.as_ref()?;
        Some(match (self.kv_error, decision.allowed) {
            (true, _) => "kv_error",
            (false, true) => "allowed",
            (false, false) => "limited",
        })
    }

    /// The `ratelimit-*` headers; a decided request asks for the background
    /// work of its scope (KV flush, or lease work).
    pub fn on_response<R>(&self, reply: &mut Reply<R>) {
        if let Some(d) = &self.decision {
            for (name, value) in d.headers() {
                reply.headers.set(name, value);
            }
        }
        if self.global {
            reply.after.lease_work = true;
        } else if self.decision.is_some() {
            reply.after.flush_limits = true;
        }
    }
}

impl RouteLimit {
    /// Counts the request; over the limit it is answered 429.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
        state: &mut State,
    ) -> Result<Flow<P::Response>, Problem> {
        let key_value = request_key(&self.limit.key, x.req, cx);
        if self.limit.scope == RateScope::Global {
            state.global = true;
            let decision = self.decide_global(x, key_value.as_deref(), state).await?;
            return self.verdict(decision, state);
        }
        let limiter = &x.state.limiter;
        let counter_id = self.counter_id.as_deref().unwrap_or(&x.route.id);
        let decision = loop {
            let now = x.ports.now_ms();
            let step =
                limiter
                    .borrow_mut()
                    .check(counter_id, &self.limit, key_value.as_deref(), now);
            match step {
                Step::Decided(d) => break d,
                Step::Read { kv_key } => {
                    let got = x.ports.kv_get(&kv_key).await;
                    if let Err(e) = &got {
                        state.kv_error = true;
                        x.ports.event(&Event::KvError {
                            op: "get",
                            key: &kv_key,
                            error: e,
                        });
                    }
                    limiter.borrow_mut().on_read(
                        &kv_key,
                        got.as_ref().map(|v| v.as_deref()),
                        x.ports.now_ms(),
                    );
                }
                Step::Wait { .. } => x.ports.sleep(WAIT_POLL_MS).await,
            }
        };
        self.verdict(decision, state)
    }

    fn verdict<R>(&self, decision: Decision, state: &mut State) -> Result<Flow<R>, Problem> {
        let allowed = decision.allowed;
        state.decision = Some(decision);
        if allowed {
            Ok(Flow::Continue)
        } else {
            Err(Problem::new(
                Kind::TooManyRequests,
                "too many requests; retry after the window resets",
            ))
        }
    }

    /// Decides one request against a global limit from the isolate's leases.
    /// `Err` is the 503 of a limit with `on_error: "deny"` whose limiter
    /// cannot be reached.
    async fn decide_global<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        key_value: Option<&str>,
        state: &mut State,
    ) -> Result<Decision, Problem> {
        let (ports, limit) = (x.ports, &self.limit);
        let counter_id = self.counter_id.as_deref().unwrap_or(&x.route.id);
        let mut ticket = Ticket::default();
        let (verdict, key) = loop {
            // Computed on every turn: a wait may cross into the next window.
            let key = counter_key(counter_id, limit, key_value, ports.now_ms());
            let ask = Ask {
                counter: key.series(),
                start_ms: key.window_start_ms,
                end_ms: key.window_end_ms,
                limit: u64::from(limit.requests),
            };
            let leases = &x.state.leases;
            if let Some(verdict) = acquire(leases, ports, &ask, &mut ticket, &x.route.id).await {
                break (verdict, key);
            }
        };
        let now = ports.now_ms();
        let reset_s = key
            .window_end_ms
            .saturating_sub(now)
            .div_ceil(1000)
            .clamp(1, u64::from(limit.window_s.max(1)));
        let decision = |allowed: bool, remaining: u64| Decision {
            allowed,
            limit: limit.requests,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_s,
        };
        Ok(match verdict {
            Verdict::Admit { remaining } => decision(true, remaining),
            Verdict::Deny => decision(false, 0),
            Verdict::Unreachable => {
                state.limiter_error = true;
                if limit.on_error == Some(OnError::Deny) {
                    return Err(Problem::new(
                        Kind::Unavailable,
                        "the rate limiter cannot be reached",
                    )
                    .with_header("retry-after", "1"));
                }
                // Fail open: nothing is known to be used.
                decision(true, u64::from(limit.requests))
            }
        })
    }
}

/// A request's value for a key (`rate_limit.key`, a split's `sticky`): the
/// client address, the verified subject, the consumer, a header; `None` for
/// `route` or when the request has none.
pub fn request_key<'a, H: HeaderView + ?Sized>(
    kind: &KeyKind,
    req: &'a crate::pipeline::Incoming<'a, H>,
    cx: &'a Ctx,
) -> Option<Cow<'a, str>> {
    match kind {
        KeyKind::Ip => req.client_ip.map(Cow::Borrowed),
        KeyKind::Sub => cx.subject().map(Cow::Borrowed),
        KeyKind::Consumer => cx.consumer.as_ref().map(|c| Cow::Borrowed(c.id.as_str())),
        KeyKind::Route => None,
        KeyKind::Header(name) => req.headers.get(name).map(Cow::Owned),
    }
}

/// Takes one unit of a global counter for one request: `None` when the
/// period ended while waiting (ask again, same ticket, with the next period).
pub async fn acquire<P: Ports>(
    leases: &RefCell<Leases>,
    ports: &P,
    ask: &Ask<'_>,
    ticket: &mut Ticket,
    route: &str,
) -> Option<Verdict> {
    loop {
        let now = ports.now_ms();
        if now >= ask.end_ms {
            return None;
        }
        let step = leases.borrow_mut().acquire(ask, now, ticket);
        match step {
            Acquire::Decided(v) => return Some(v),
            Acquire::Call(c) => {
                let got = ports.limiter_call(&c.body).await;
                if let Err(e) = &got {
                    ports.event(&Event::LimiterError {
                        route: Some(route),
                        counter: &c.body.counter,
                        error: e,
                    });
                }
                let now = ports.now_ms();
                leases.borrow_mut().on_reply(&c, got.map_err(|_| ()), now);
            }
            Acquire::Wait => ports.sleep(global::WAIT_POLL_MS).await,
        }
    }
}

/// Background lease work of global limits: leases fetched ahead for busy
/// counters, idle leases given back, spaced as the leases say; run after the
/// answer (`ctx.wait_until`).
pub async fn lease_work<P: Ports>(leases: &RefCell<Leases>, ports: &P) {
    loop {
        let due = leases.borrow_mut().take_due(ports.now_ms());
        for call in &due.calls {
            let got = ports.limiter_call(&call.body).await;
            if let Err(e) = &got {
                ports.event(&Event::LimiterError {
                    route: None,
                    counter: &call.body.counter,
                    error: e,
                });
            }
            leases
                .borrow_mut()
                .on_reply(call, got.map_err(|_| ()), ports.now_ms());
        }
        match (due.calls.is_empty(), due.next_at_ms) {
            (false, _) => {}
            (true, Some(at)) => {
                let now = ports.now_ms();
                ports.sleep(at.saturating_sub(now).max(1)).await;
            }
            (true, None) => break,
        }
    }
}

/// Writes due rate-limit counters to KV (reading first what must be merged),
/// spaced as the limiter says; run after the answer (`ctx.wait_until`).
pub async fn flush<P: Ports>(limiter: &RefCell<Limiter>, ports: &P) {
    loop {
        let due = limiter.borrow_mut().take_due(ports.now_ms());
        for key in &due.reads {
            let got = ports.kv_get(key).await;
            if let Err(e) = &got {
                ports.event(&Event::KvError {
                    op: "get",
                    key,
                    error: e,
                });
            }
            limiter
                .borrow_mut()
                .on_read(key, got.as_ref().map(|v| v.as_deref()), ports.now_ms());
        }
        for write in &due.writes {
            let result = ports
                .kv_put(&write.kv_key, &write.value, write.expiration_ttl_s)
                .await;
            match &result {
                Ok(()) => ports.event(&Event::KvWrite { key: &write.kv_key }),
                Err(e) => ports.event(&Event::KvError {
                    op: "put",
                    key: &write.kv_key,
                    error: e,
                }),
            }
            limiter
                .borrow_mut()
                .on_write_result(&write.kv_key, result.is_ok(), ports.now_ms());
        }
        match due.then() {
            Then::Stop => break,
            Then::TakeAgain => {}
            Then::SleepUntil(at) => {
                let now = ports.now_ms();
                ports.sleep(at.saturating_sub(now).max(1)).await;
            }
        }
    }
}
