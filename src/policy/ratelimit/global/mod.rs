//! Exact global counters: budgets kept by Durable Objects, leased to isolates.
//!
//! One counter (a route's key in one window, or later a consumer's quota in
//! one calendar period) is a counter id, a limit and a period
//! `[start_ms, end_ms)`. Its Durable Object (named by the counter id) keeps a
//! [`Book`]: per period, units granted, units given back, and what each
//! holder was granted. An isolate holds [`Leases`]: it asks the object for a
//! lease of some units, spends them locally (one per admitted request), asks
//! for more when they run out (or ahead of time when the budget is plentiful)
//! and gives back what it did not use.
//!
//! Exactness: the object grants at most `limit - (granted - returned)` per
//! period; an isolate admits only from units granted to it for the request's
//! period, and gives back only units it has not spent. So per period the
//! admissions are at most `granted - returned <= limit`, whatever the number
//! of isolates, the delays, lost replies or dead isolates (whose leases are
//! lost budget for that period, never admissions). `docs/rate-limiting.md`
//! has the proof, the cost and the limits.
//!
//! Both sides are pure: no I/O, no clock. The edge moves [`LeaseCall`]s and
//! [`LeaseReply`]s as JSON between them.

mod book;
mod lease;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use book::{Book, PeriodBook, MAX_HOLDERS, MAX_PERIODS, PERIOD_GRACE_MS};
pub use lease::{
    Acquire, Ask, Call, Due, Leases, Ticket, Verdict, CALL_TIMEOUT_MS, IDLE_RETURN_MS,
    LEASE_HORIZON_MS, MAX_HOLDERS_LOCAL, PLENTY_FACTOR, RECHECK_EXHAUSTED_MS, RETRY_AFTER_ERROR_MS,
    WAIT_POLL_MS,
};

/// One call from an isolate to a counter's object: give back unused units,
/// then ask for more (either may be zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCall {
    /// The counter id, also the object's name.
    pub counter: String,
    /// The period the units are for, `[start_ms, end_ms)`.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The counter's limit per period.
    pub limit: u64,
    /// The asking isolate's id (its returns are checked against its grants).
    pub holder: String,
    /// Units asked for.
    pub want: u64,
    /// Unused units given back (never more than the holder was granted).
    pub give_back: u64,
}

/// The object's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseReply {
    /// Units granted for the call's period.
    pub granted: u64,
    /// Units left unleased in that period after this call.
    pub available: u64,
}

/// The longest counter id the gateway makes (the object name), in bytes.
pub const MAX_COUNTER_ID_LEN: usize = 128;
