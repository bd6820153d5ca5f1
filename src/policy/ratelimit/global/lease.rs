//! The isolate side: leases of budget held by one isolate, spent locally.
//!
//! Pure: the caller passes the time in, runs the [`Call`]s this module hands
//! out against the counter's Durable Object and reports each reply with
//! [`Leases::on_reply`]. Requests of one isolate share one call in flight per
//! counter: while it runs, the others get [`Acquire::Wait`].

use std::collections::HashMap;

use super::{LeaseCall, LeaseReply};

/// A call not answered within this long counts as failed (the edge gives
/// up on it at the same time); its late reply is ignored.
pub const CALL_TIMEOUT_MS: u64 = 3_000;
/// After a failed call, requests are decided by `on_error` without asking
/// for this long, so an unreachable limiter costs one try a second.
pub const RETRY_AFTER_ERROR_MS: u64 = 1_000;
/// After the object said nothing is left, requests without a local lease
/// are refused without asking for this long (budget given back by other
/// isolates shows up at the next ask).
pub const RECHECK_EXHAUSTED_MS: u64 = 1_000;
/// A lease aims to last this long at the isolate's recent rate.
pub const LEASE_HORIZON_MS: u64 = 1_000;
/// A lease unused for this long is given back (in the background).
pub const IDLE_RETURN_MS: u64 = 2_000;
/// Leases beyond the immediate demand (prefetching) only while the object
/// has at least this many times the lease left: the last part of a budget
/// is handed out request by request, so nothing is stranded in idle leases.
pub const PLENTY_FACTOR: u64 = 4;
/// Suggested sleep before asking again after [`Acquire::Wait`], in ms.
pub const WAIT_POLL_MS: u64 = 5;
/// Most counters an isolate holds leases for.
pub const MAX_HOLDERS_LOCAL: usize = 4_096;

/// The counter and period a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The counter id (also the name of its Durable Object).
    pub counter: &'a str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub limit: u64,
}

/// How one request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted from a lease; `remaining` is what this isolate knows is left
    /// (its own lease plus what the object had unleased at its last answer).
    Admit { remaining: u64 },
    /// Over the limit.
    Deny,
    /// The limiter could not be reached: the route's `on_error` decides.
    Unreachable,
}

/// The next step of one request.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    Decided(Verdict),
    /// Run this call, report it with [`Leases::on_reply`], then ask again.
    Call(Call),
    /// A call for this counter is in flight: sleep [`WAIT_POLL_MS`], ask again.
    Wait,
}

/// One call to a counter's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Matches the reply to the call ([`Leases::on_reply`]).
    pub id: u64,
    pub body: LeaseCall,
}

/// Background calls (leases fetched ahead, leases given back) and when to
/// come back for more.
#[derive(Debug, Default)]
pub struct Due {
    pub calls: Vec<Call>,
    /// Take again at this time (only one caller at a time is told so).
    pub next_at_ms: Option<u64>,
}

/// What one request carries between its [`Leases::acquire`] calls.
#[derive(Debug, Default)]
pub struct Ticket {
    /// Counted in the queue of the holder of the period starting then.
    queued_in: Option<u64>,
    /// Counted in the demand estimate.
    counted: bool,
}

#[derive(Debug)]
struct Flight {
    id: u64,
    started_ms: u64,
}

#[derive(Debug)]
struct Holder {
    start_ms: u64,
    end_ms: u64,
    limit: u64,
    /// Unspent units of this period's lease.
    local: u64,
    in_flight: Option<Flight>,
    /// Requests waiting for the call in flight (the demand of the next call).
    queued: u64,
    /// What the object had left unleased at its last answer.
    available: Option<u64>,
    exhausted_until_ms: u64,
    failed_until_ms: u64,
    last_demand_ms: u64,
    /// Requests in the current and the previous second.
    bucket_start_ms: u64,
    bucket: u64,
    previous_bucket: u64,
    prefetch_wanted: bool,
}

impl Holder {
    fn new(ask: &Ask<'_>, now_ms: u64) -> Holder {
        Holder {
            start_ms: ask.start_ms,
            end_ms: ask.end_ms,
            limit: ask.limit,
            local: 0,
            in_flight: None,
            queued: 0,
            available: None,
            exhausted_until_ms: 0,
            failed_until_ms: 0,
            last_demand_ms: now_ms,
            bucket_start_ms: now_ms,
            bucket: 0,
            previous_bucket: 0,
            prefetch_wanted: false,
        }
    }

    fn note_demand(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.bucket_start_ms);
        if elapsed >= 2_000 {
            self.previous_bucket = 0;
            self.bucket = 0;
            self.bucket_start_ms = now_ms;
        } else if elapsed >= 1_000 {
            self.previous_bucket = self.bucket;
            self.bucket = 0;
            self.bucket_start_ms += 1_000;
        }
        self.bucket += 1;
        self.last_demand_ms = now_ms;
    }

    /// The lease that would last [`LEASE_HORIZON_MS`] at the recent rate.
    fn target(&self) -> u64 {
        let per_s = self.bucket.max(self.previous_bucket);
        (per_s * LEASE_HORIZON_MS / 1_000).max(1)
    }

    /// The object has plenty left compared with a lease: prefetching is safe
    /// (it cannot strand a noticeable part of the budget).
    fn plenty(&self) -> bool {
        let target = self.target();
        target > 1
            && self
                .available
                .is_some_and(|a| a >= target.saturating_mul(PLENTY_FACTOR))
    }

    fn release(&mut self, ticket: &mut Ticket) {
        if ticket.queued_in.take() == Some(self.start_ms) {
            self.queued = self.queued.saturating_sub(1);
        }
    }

    fn enqueue(&mut self, ticket: &mut Ticket) {
        if ticket.queued_in != Some(self.start_ms) {
            ticket.queued_in = Some(self.start_ms);
            self.queued += 1;
        }
    }

    fn expire_flight(&mut self, now_ms: u64) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| now_ms >= f.started_ms.saturating_add(CALL_TIMEOUT_MS))
        {
            self.in_flight = None;
            self.failed_until_ms = now_ms.saturating_add(RETRY_AFTER_ERROR_MS);
        }
    }
}

/// The leases of one isolate, by counter.
#[derive(Debug)]
pub struct Leases {
    holder_id: String,
    holders: HashMap<String, Holder>,
    next_id: u64,
    /// The time one background caller was told to come back at.
    sleeper_at_ms: Option<u64>,
}

impl Leases {
    /// Empty; `holder_id` names this isolate at the objects (random, per isolate).
    pub fn new(holder_id: String) -> Leases {
        Leases {
            holder_id,
            holders: HashMap::new(),
            next_id: 1,
            sleeper_at_ms: None,
        }
    }

    /// Decides one request at `now_ms`, or says how to get there. Call again
    /// after running a [`Acquire::Call`] or sleeping on [`Acquire::Wait`],
    /// with the same `ticket` and a fresh `now_ms`.
    pub fn acquire(&mut self, ask: &Ask<'_>, now_ms: u64, ticket: &mut Ticket) -> Acquire {
        if !self.holders.contains_key(ask.counter) {
            self.make_room(now_ms);
            self.holders
                .insert(ask.counter.to_string(), Holder::new(ask, now_ms));
        }
        let holder = self.holders.get_mut(ask.counter).expect("inserted above");
        if ask.start_ms > holder.start_ms {
            // A new period: the old lease can only be spent in its own period.
            *holder = Holder::new(ask, now_ms);
        } else if ask.start_ms < holder.start_ms {
            // The clock went back across a boundary: the old period's budget
            // is no longer known here. Refusing cannot over-admit.
            holder.release(ticket);
            return Acquire::Decided(Verdict::Deny);
        }
        holder.limit = ask.limit;
        if !ticket.counted {
            ticket.counted = true;
            holder.note_demand(now_ms);
        }
        holder.expire_flight(now_ms);

        if holder.local > 0 {
            holder.local -= 1;
            holder.release(ticket);
            if holder.in_flight.is_none()
                && holder.plenty()
                && holder.local.saturating_mul(2) < holder.target()
            {
                holder.prefetch_wanted = true;
            }
            let remaining = holder.local + holder.available.unwrap_or(0);
            return Acquire::Decided(Verdict::Admit { remaining });
        }
        if holder.in_flight.is_some() {
            holder.enqueue(ticket);
            return Acquire::Wait;
        }
        if now_ms < holder.failed_until_ms {
            holder.release(ticket);
            return Acquire::Decided(Verdict::Unreachable);
        }
        if now_ms < holder.exhausted_until_ms {
            holder.release(ticket);
            return Acquire::Decided(Verdict::Deny);
        }
        holder.enqueue(ticket);
        let want = if holder.plenty() {
            holder.queued.max(holder.target())
        } else {
            holder.queued.max(1)
        };
        let call = self.make_call(ask.counter, want, 0);
        let holder = self.holders.get_mut(ask.counter).expect("present");
        holder.in_flight = Some(Flight {
            id: call.id,
            started_ms: now_ms,
        });
        holder.prefetch_wanted = false;
        Acquire::Call(call)
    }

    fn make_call(&mut self, counter: &str, want: u64, give_back: u64) -> Call {
        let h = &self.holders[counter];
        let body = LeaseCall {
            counter: counter.to_string(),
            start_ms: h.start_ms,
            end_ms: h.end_ms,
            limit: h.limit,
            holder: self.holder_id.clone(),
            want,
            give_back,
        };
        let id = self.next_id;
        self.next_id += 1;
        Call { id, body }
    }

    /// Reports the reply to call `id` (an error too: the caller logs it).
    /// Replies to calls that were given up, or of a period that is over
    /// here, are ignored: what they granted is lost, never spent twice.
    pub fn on_reply(&mut self, call: &Call, result: Result<LeaseReply, ()>, now_ms: u64) {
        let Some(holder) = self.holders.get_mut(&call.body.counter) else {
            return;
        };
        if holder.start_ms != call.body.start_ms {
            return;
        }
        if let Ok(reply) = &result {
            // Any answer tells what is left, returns included.
            holder.available = Some(reply.available);
        }
        if holder.in_flight.as_ref().map(|f| f.id) != Some(call.id) {
            return;
        }
        holder.in_flight = None;
        match result {
            Ok(reply) => {
                holder.local = holder.local.saturating_add(reply.granted);
                holder.failed_until_ms = 0;
                holder.exhausted_until_ms = if reply.available == 0 {
                    now_ms.saturating_add(RECHECK_EXHAUSTED_MS)
                } else {
                    0
                };
            }
            Err(()) => {
                holder.failed_until_ms = now_ms.saturating_add(RETRY_AFTER_ERROR_MS);
            }
        }
    }

    /// Background calls due at `now_ms`: leases fetched ahead for busy
    /// counters, idle leases given back. Run them after answering and report
    /// each with [`Leases::on_reply`].
    pub fn take_due(&mut self, now_ms: u64) -> Due {
        self.holders.retain(|_, h| h.end_ms > now_ms);
        let mut due = Due::default();
        let mut next: Option<u64> = None;
        let counters: Vec<String> = self.holders.keys().cloned().collect();
        for counter in counters {
            let holder = self.holders.get_mut(&counter).expect("listed");
            holder.expire_flight(now_ms);
            if holder.in_flight.is_some() {
                continue;
            }
            if holder.prefetch_wanted && holder.plenty() {
                holder.prefetch_wanted = false;
                let want = holder.target().saturating_sub(holder.local).max(1);
                let call = self.make_call(&counter, want, 0);
                self.holders.get_mut(&counter).expect("listed").in_flight = Some(Flight {
                    id: call.id,
                    started_ms: now_ms,
                });
                due.calls.push(call);
                continue;
            }
            holder.prefetch_wanted = false;
            if holder.local == 0 {
                continue;
            }
            let idle_at = holder.last_demand_ms.saturating_add(IDLE_RETURN_MS);
            if now_ms >= idle_at {
                let back = std::mem::take(&mut holder.local);
                let call = self.make_call(&counter, 0, back);
                due.calls.push(call);
            } else {
                next = Some(next.map_or(idle_at, |n| n.min(idle_at)));
            }
        }
        if due.calls.is_empty() {
            if let Some(at) = next {
                let held = self.sleeper_at_ms.is_some_and(|s| s > now_ms && s <= at);
                if !held {
                    self.sleeper_at_ms = Some(at);
                    due.next_at_ms = Some(at);
                }
            }
        }
        due
    }

    /// Units this isolate holds unspent for `counter` (tests and metrics).
    pub fn held(&self, counter: &str) -> u64 {
        self.holders.get(counter).map_or(0, |h| h.local)
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.holders.len() < MAX_HOLDERS_LOCAL {
            return;
        }
        self.holders.retain(|_, h| h.end_ms > now_ms);
        if self.holders.len() < MAX_HOLDERS_LOCAL {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self
            .holders
            .iter()
            .map(|(k, h)| (h.last_demand_ms, k.clone()))
            .collect();
        let n = (MAX_HOLDERS_LOCAL / 8).clamp(1, by_age.len());
        by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, k) in by_age.into_iter().take(n) {
            self.holders.remove(&k);
        }
    }
}
