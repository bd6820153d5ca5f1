//! The rate-limit phase of a `scope: "global"` limit: leases of the counter's
//! budget from its Durable Object, spent in this isolate (see
//! `policy::ratelimit::global`).

use crate::config::{OnError, RateLimit};
use crate::gateway::RouteRt;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::policy::ratelimit::global::{Acquire, Ask, Ticket, Verdict, WAIT_POLL_MS};
use crate::policy::ratelimit::{counter_key, Decision};
use crate::ports::Ports;

use super::{Call, Ctx};

/// Decides one request against a global limit. `Err` is the 503 of a limit
/// with `on_error: "deny"` whose limiter cannot be reached.
pub(super) async fn decide<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, '_, P, H>,
    ctx: &mut Ctx<'_>,
    route: &RouteRt,
    limit: &RateLimit,
    key_value: Option<&str>,
) -> Result<Decision, Problem> {
    let Call { state, ports, .. } = *call;
    let mut ticket = Ticket::default();
    ctx.leased = true;
    let (verdict, key) = loop {
        let now = ports.now_ms();
        // Computed on every turn: a wait may cross into the next window.
        let key = counter_key(&route.id, limit, key_value, now);
        let ask = Ask {
            counter: key.series(),
            start_ms: key.window_start_ms,
            end_ms: key.window_end_ms,
            limit: u64::from(limit.requests),
        };
        let step = state.leases.borrow_mut().acquire(&ask, now, &mut ticket);
        match step {
            Acquire::Decided(v) => break (v, key),
            Acquire::Call(c) => {
                let got = ports.limiter_call(&c.body).await;
                if let Err(e) = &got {
                    ports.event(
                        &serde_json::json!({"event": "limiter_error", "route": route.id, "counter": c.body.counter, "error": e})
                            .to_string(),
                    );
                }
                let now = ports.now_ms();
                state
                    .leases
                    .borrow_mut()
                    .on_reply(&c, got.map_err(|_| ()), now);
            }
            Acquire::Wait => ports.sleep(WAIT_POLL_MS).await,
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
            ctx.log.rate_limit = Some("limiter_error");
            if limit.on_error == Some(OnError::Deny) {
                return Err(
                    Problem::new(Kind::Unavailable, "the rate limiter cannot be reached")
                        .with_header("retry-after", "1"),
                );
            }
            // Fail open: nothing is known to be used.
            decision(true, u64::from(limit.requests))
        }
    })
}
