//! The rate-limit phase: the request counted against its key's counter, the
//! `ratelimit-*` headers on every answer after the decision, and the
//! background protocol that brings counters to KV.

use std::borrow::Cow;
use std::cell::RefCell;

use super::{Decision, KeyKind, Limiter, Step, Then, WAIT_POLL_MS};
use crate::config::RateLimit;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::Event;
use crate::pipeline::{Ctx, Exchange, Flow, Reply};
use crate::ports::Ports;

/// A route's rate limit, compiled.
#[derive(Debug, Clone)]
pub struct RouteLimit {
    pub limit: RateLimit,
    pub key: KeyKind,
}

/// What the rate-limit policy learned about one request.
#[derive(Debug, Default)]
pub struct State {
    decision: Option<Decision>,
    /// KV failed while deciding (the request was let through on what is known).
    kv_error: bool,
}

impl State {
    /// `allowed`, `limited` or `kv_error`, once decided.
    pub fn outcome(&self) -> Option<&'static str> {
        let decision = self.decision.as_ref()?;
        Some(match (self.kv_error, decision.allowed) {
            (true, _) => "kv_error",
            (false, true) => "allowed",
            (false, false) => "limited",
        })
    }

    /// The `ratelimit-*` headers; a counted request asks for its counter to reach KV.
    pub fn on_response<R>(&self, reply: &mut Reply<R>) {
        if let Some(d) = &self.decision {
            for (name, value) in d.headers() {
                reply.headers.set(name, value);
            }
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
        let key_value: Option<Cow<'_, str>> = match &self.key {
            KeyKind::Ip => x.req.client_ip.map(Cow::Borrowed),
            KeyKind::Sub => cx.subject().map(Cow::Borrowed),
            KeyKind::Route => None,
            KeyKind::Header(name) => x.req.headers.get(name).map(Cow::Owned),
        };
        let limiter = &x.state.limiter;
        let decision = loop {
            let now = x.ports.now_ms();
            let step =
                limiter
                    .borrow_mut()
                    .check(&x.route.id, &self.limit, key_value.as_deref(), now);
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
