//! The object side: the budget book of one counter, kept by its Durable Object.
//!
//! Pure: the object loads a [`Book`] from its storage, applies each
//! [`LeaseCall`] with its own clock, stores the book again and answers the
//! [`LeaseReply`]. Nothing here does I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LeaseCall, LeaseReply};

/// Periods a book keeps at once: the current one and the one before (an
/// isolate whose clock lags a little still gets the right answer).
pub const MAX_PERIODS: usize = 2;

/// Holders whose leases a period tracks. A holder beyond that still gets
/// grants, but cannot give anything back (its returns are ignored: safe).
pub const MAX_HOLDERS: usize = 512;

/// How long after its end, on the object's clock, a period is still
/// answered; later calls for it get nothing, so a book may be deleted then.
pub const PERIOD_GRACE_MS: u64 = 60_000;

/// The ledger of one period `[start_ms, end_ms)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodBook {
    pub end_ms: u64,
    /// Units granted in this period, all holders together.
    pub granted: u64,
    /// Units given back unused.
    pub returned: u64,
    /// Holder id -> units granted to it and not given back (spent or held).
    pub leases: BTreeMap<String, u64>,
}

impl PeriodBook {
    /// Units leased out and not returned: an upper bound of what was admitted.
    pub fn used(&self) -> u64 {
        self.granted.saturating_sub(self.returned)
    }
}

/// The budget book of one counter: its periods by start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// Period start (ms) -> its ledger; at most [`MAX_PERIODS`].
    pub periods: BTreeMap<u64, PeriodBook>,
    /// Periods starting before this were dropped: calls for them get nothing
    /// (re-opening one would grant its budget a second time).
    pub closed_before_ms: u64,
}

impl Book {
    /// Applies one call at `now_ms` (the object's clock): takes back what the
    /// holder gives back (never more than it holds), then grants
    /// `min(want, share)` where the share is half of what is left, rounded
    /// up. The invariant: in every period, `granted - returned <= limit` for
    /// the largest limit any call named, and each grant keeps it for the
    /// limit of its own call.
    pub fn apply(&mut self, call: &LeaseCall, now_ms: u64) -> LeaseReply {
        let refused = LeaseReply {
            granted: 0,
            available: 0,
        };
        if call.start_ms >= call.end_ms
            || call.start_ms < self.closed_before_ms
            || call.end_ms.saturating_add(PERIOD_GRACE_MS) <= now_ms
        {
            return refused;
        }
        if !self.periods.contains_key(&call.start_ms) {
            // A period older than every kept one while the book is full: it
            // was dropped before (or never seen and already superseded).
            if self.periods.len() >= MAX_PERIODS
                && self
                    .periods
                    .keys()
                    .next()
                    .is_some_and(|&oldest| call.start_ms < oldest)
            {
                return refused;
            }
            self.periods.insert(
                call.start_ms,
                PeriodBook {
                    end_ms: call.end_ms,
                    ..PeriodBook::default()
                },
            );
            while self.periods.len() > MAX_PERIODS {
                if let Some((start, _)) = self.periods.pop_first() {
                    self.closed_before_ms = self.closed_before_ms.max(start.saturating_add(1));
                }
            }
        }
        let Some(period) = self.periods.get_mut(&call.start_ms) else {
            return refused;
        };
        if call.give_back > 0 {
            if let Some(held) = period.leases.get_mut(&call.holder) {
                let back = call.give_back.min(*held);
                *held -= back;
                period.returned = period.returned.saturating_add(back);
            }
        }
        let available = call.limit.saturating_sub(period.used());
        let share = available.div_ceil(2);
        let granted = call.want.min(share);
        if granted > 0 {
            let room = period.leases.len() < MAX_HOLDERS;
            if !call.holder.is_empty() && (room || period.leases.contains_key(&call.holder)) {
                *period.leases.entry(call.holder.clone()).or_insert(0) += granted;
            }
            period.granted = period.granted.saturating_add(granted);
        }
        LeaseReply {
            granted,
            available: available - granted,
        }
    }

    /// When the whole book may be deleted (every period over and past its
    /// grace), in ms on the object's clock; `None` when it is empty.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.periods
            .values()
            .map(|p| p.end_ms.saturating_add(PERIOD_GRACE_MS))
            .max()
    }
}
