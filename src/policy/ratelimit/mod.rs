//! Rate limiting over Workers KV: exact within an isolate, convergent across
//! isolates, gentle on KV.
//!
//! This module is pure: it never does I/O and never reads a clock. The edge
//! layer passes the time in (`now_ms`, milliseconds since the epoch), runs the
//! KV reads and writes this module asks for, and reports their results. The
//! design note `docs/rate-limiting.md` says the same at more length.
//!
//! # The problem
//!
//! A route's `rate_limit: {requests, window_s, key}` admits `requests` requests
//! per window and key value. Counters live in Workers KV (binding
//! `GATEWAY_KV`), which is eventually consistent (a write is visible at once in
//! the location that made it, elsewhere up to about 60 s later), has no atomic
//! increment, takes about one write per second per key, and can expire a key
//! (`expiration_ttl`, at least 60 s). A read-increment-write per request
//! over-admits (concurrent requests read the same count) and overloads KV.
//!
//! # The algorithm
//!
//! * **Fixed windows.** Window `i = now_s / window_s` covers the seconds
//!   `[i * window_s, (i + 1) * window_s)`. One KV key per route, key value and
//!   window: `rl:{route_id}:{hash}:{window_s}:{i}` ([`counter_key`]). The hash
//!   is SHA-256 over the key spec and the value, truncated to 128 bits (hex):
//!   no address, subject or header value appears in a key name, and a value of
//!   any length gives a key of at most [`MAX_KV_KEY_LEN`] bytes. Requests
//!   without a value (no such header) share one counter.
//! * **A G-counter per key.** The value is `{"<isolate id>": count, ...}`. Each
//!   isolate (random id, from the caller) owns one entry: how many requests it
//!   admitted in that window. Merging takes the per-entry maximum, which is
//!   commutative, associative and idempotent, so a value may be read late,
//!   twice or out of order. The window's count is the sum of the entries. An
//!   isolate writes the merged map with its own entry set to its own count, so
//!   it also passes on what it learnt from others.
//! * **Exact within the isolate.** [`Limiter::check`] compares the count the
//!   isolate knows (its own admissions plus the others' entries) with
//!   `requests` and, when it admits, raises its own entry, synchronously. The
//!   isolate runs one request at a time between awaits, so however many
//!   requests are in flight, one isolate never admits more than `requests` per
//!   window and key.
//! * **One blocking read per cold counter.** The first request for a counter
//!   the isolate does not hold gets [`Step::Read`]: it reads the key and
//!   reports with [`Limiter::on_read`]. Requests for that counter arriving in
//!   the meantime get [`Step::Wait`] and ask again; once the read is reported,
//!   each is decided in turn against the merged count. A read not reported
//!   within [`READ_TIMEOUT_MS`] stops the waiting: they are decided on what
//!   the isolate knows. When the isolate held the same counter in the
//!   previous window, the new window starts warm: nobody waits, a background
//!   read is due at once.
//! * **Read, merge, write; at most once a second each.** Admissions only raise
//!   the own entry in memory. A write is due when the own entry is ahead of
//!   what KV holds and the counter's last write started [`WRITE_INTERVAL_MS`]
//!   or more ago (never two in flight). If the last read started
//!   [`READ_INTERVAL_MS`] or more ago, a read goes first and the write follows
//!   once it is reported, so the write carries what others wrote instead of
//!   erasing it (KV keeps the last write). While a counter has traffic and is
//!   not exhausted, a refresh read is also due once a second; an exhausted
//!   counter is only read before a write (counts only grow: nothing could
//!   re-open it). All of this is handed out by [`Limiter::take_due`] and run
//!   after the response, in `ctx.wait_until`.
//! * **Trailing flush.** When a write is pending but not yet allowed,
//!   [`Due::next_at_ms`] tells one caller to come back then, so the last
//!   admissions are persisted about a second after them. Only one caller holds
//!   that duty at a time; if it goes away, the next `take_due` after the time
//!   takes it over.
//! * **Repair.** A read showing the own entry below what the isolate knows
//!   (another location overwrote the key without seeing it) makes the entry
//!   due for writing again.
//! * **Expiry.** Each write sets `expiration_ttl = max(60, seconds left in the
//!   window + 60)`: a window's key disappears by itself about a minute after
//!   the window ends.
//! * **Bounded memory.** A counter is forgotten [`WARM_GRACE_MS`] after its
//!   window ends, and nothing is written for a window that is over. At most
//!   [`MAX_COUNTERS`] counters are held; when full, the [`EVICT_BATCH`] least
//!   recently used go. A map keeps its [`MAX_ENTRIES`] largest entries (see
//!   below); a stored value longer than [`MAX_VALUE_BYTES`] or not a JSON
//!   object is ignored (and replaced by the next write).
//! * **Fail open.** A failed or unreported read or write never denies a
//!   request: the decision uses what the isolate knows (its own admissions
//!   stay exactly limited), the caller logs the failure, reads are retried
//!   within a second while the counter has traffic, writes after a backoff of
//!   2, 4, 8 ... up to [`MAX_WRITE_BACKOFF_MS`]. No input makes this module
//!   panic.
//!
//! # Bounding the map, and why there is no "others" entry
//!
//! Many isolates admitting for one key (a hostile fan-out across locations)
//! would grow the map without bound. It keeps the [`MAX_ENTRIES`] largest
//! entries (ties broken by id), the writer's own always among them, and
//! drops the rest. Folding the rest into an "others" entry cannot be done
//! soundly on a max-merged map: with max-merge, two writers that folded
//! different entries lose one of the two sums, and an entry folded by one
//! writer but still listed by another (its owner always lists itself) is
//! counted twice; with sum-merge, reading the same value twice counts it
//! twice, so the entry inflates without bound. Dropping keeps the merge a
//! lattice and the error one-sided: the count an isolate sees is never above
//! the true count, so the bound can only over-admit, never wrongly deny. It
//! only acts with more than `MAX_ENTRIES` isolates on one key in one window,
//! and each dropped entry is no larger than the smallest kept one.
//!
//! # Honest limits
//!
//! * **Over-admission across isolates.** What isolate `j` admits becomes
//!   visible to another isolate after a delay `D`: up to one write spacing
//!   ([`WRITE_INTERVAL_MS`], longer while writes fail), the read and write
//!   round trips, KV propagation (none within a location; up to about 60 s,
//!   the read cache TTL, across locations), and up to one read spacing of the
//!   reader ([`READ_INTERVAL_MS`], and only while the reader has traffic).
//!   With `k` isolates on one key, a window admits at most
//!   `min(k * requests, requests + sum over j of a_j)`, where `a_j` is what
//!   isolate `j` admits during the last `D` before the others stop. Within
//!   one location `D` is about 2 s (two isolates at 10 requests/s each with a
//!   limit of 100 admit 110 in the tests); across locations it is about a
//!   minute, so for windows of a minute or less each location limits mostly
//!   on its own, up to `requests` per isolate in the worst case.
//! * **Further losses.** Entries dropped by the map bound (more than
//!   `MAX_ENTRIES` isolates only); an entry overwritten by another location
//!   when its owner stops writing before it can repair it; admissions of an
//!   isolate that dies, or evicts the counter, before its trailing write
//!   (under a second's worth). An isolate that evicted a counter (more than
//!   `MAX_COUNTERS` in use, least recently used first) and meets it again in
//!   the same window learns its own past admissions back from KV, minus
//!   those not yet written: only then can one isolate exceed `requests`.
//! * **Fixed windows.** A client can get up to `2 * requests` through in a
//!   short span straddling a window boundary.
//! * **KV write rate.** "One write per second" holds per isolate and counter;
//!   many isolates writing one key together exceed KV's per-key rate, some
//!   writes fail, and the backoff absorbs it.
//! * **Privacy.** Hashes of low-entropy values (IPv4 addresses) can be
//!   reversed by brute force by whoever can list the namespace.
//!
//! # The protocol (what the edge does)
//!
//! One [`Limiter`] per isolate, created with a random id (e.g. 16 hex
//! characters; ids outside `[A-Za-z0-9_-]{1,32}` are hashed), shared by all
//! requests, e.g. in an `Rc<RefCell<_>>`. Never hold a borrow across an
//! `.await`; pass a fresh `now_ms` to every call.
//!
//! 1. Find the key value: [`KeyKind::parse`] the route's `rate_limit.key`,
//!    then [`KeyKind::value`] per request (with the *verified* subject).
//! 2. Loop on [`Limiter::check`]:
//!    * [`Step::Decided`]: done, go to 3.
//!    * [`Step::Read`]: this request reads for everyone. `GET` the `kv_key`,
//!      report it with [`Limiter::on_read`] (an error too, after logging it:
//!      that is what fails open), call `check` again. Report even if the
//!      request is being abandoned; if it never reports, the waiters give up
//!      after [`READ_TIMEOUT_MS`].
//!    * [`Step::Wait`]: another request is reading. Sleep [`WAIT_POLL_MS`] (or
//!      await a signal the reader fires after `on_read`), call `check` again.
//! 3. If not [`Decision::allowed`], answer 429. Either way add
//!    [`Decision::headers`] to the response (`retry-after` is among them on a
//!    429).
//! 4. After answering (429s too), in `ctx.wait_until`, loop: take
//!    [`Limiter::take_due`]; `GET` each of [`Due::reads`] and report it with
//!    `on_read`; `PUT` each of [`Due::writes`] with its `expiration_ttl_s` and
//!    report it with [`Limiter::on_write_result`]; then follow [`Due::then`]:
//!    [`Then::TakeAgain`] at once (a write may be waiting for the read just
//!    reported), [`Then::SleepUntil`] a time then take again (this caller holds
//!    the trailing flush), or [`Then::Stop`]. Report every read and write
//!    handed out, success or failure; one never reported is given up after
//!    [`READ_TIMEOUT_MS`] or [`WRITE_TIMEOUT_MS`].
//!
//! ```text
//! let decision = loop {
//!     match limiter.borrow_mut().check(route_id, rate_limit, key_value, now()) {
//!         Step::Decided(d) => break d,
//!         Step::Read { kv_key } => {
//!             let got = kv.get(&kv_key).text().await;   // Result<Option<String>, _>
//!             if let Err(e) = &got { log(e) }
//!             limiter.borrow_mut().on_read(&kv_key, got.as_ref().map(|v| v.as_deref()), now());
//!         }
//!         Step::Wait { .. } => sleep(WAIT_POLL_MS).await,
//!     }
//! };
//! // ... answer with decision.headers(), then in ctx.wait_until:
//! loop {
//!     let due = limiter.borrow_mut().take_due(now());
//!     for key in &due.reads { /* get, log an error, on_read */ }
//!     for w in &due.writes { /* put with expiration_ttl(w.expiration_ttl_s), log an error, on_write_result */ }
//!     match due.then() {
//!         Then::TakeAgain => {}
//!         Then::SleepUntil(t) => sleep(t.saturating_sub(now())).await,
//!         Then::Stop => break,
//!     }
//! }
//! ```

pub mod global;
mod key;
pub mod phase;
mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::config::RateLimit;

pub use key::{counter_key, CounterKey, KeyKind, CLIENT_IP_HEADER, KV_PREFIX, MAX_KV_KEY_LEN};
pub use value::{MAX_ENTRIES, MAX_VALUE_BYTES};

use value::Entries;

/// Least spacing of two reads of one counter (start to start), in milliseconds.
pub const READ_INTERVAL_MS: u64 = 1_000;
/// Least spacing of two writes of one counter (start to start), in milliseconds.
pub const WRITE_INTERVAL_MS: u64 = 1_000;
/// A read not reported within this long is given up: waiting requests are
/// decided without it and another read may be issued.
pub const READ_TIMEOUT_MS: u64 = 2_000;
/// A write not reported within this long counts as failed.
pub const WRITE_TIMEOUT_MS: u64 = 10_000;
/// Longest spacing of write retries after failures, in milliseconds.
pub const MAX_WRITE_BACKOFF_MS: u64 = 30_000;
/// Suggested sleep before asking again after [`Step::Wait`], in milliseconds.
pub const WAIT_POLL_MS: u64 = 25;
/// How long a counter is kept after its window ends, so that the next window
/// of a hot key starts warm (without a blocking read).
pub const WARM_GRACE_MS: u64 = 2_000;
/// Most counters an isolate holds.
pub const MAX_COUNTERS: usize = 4_096;
/// How many least recently used counters are evicted when the limit is reached.
pub const EVICT_BATCH: usize = MAX_COUNTERS / 8;
/// Most reads plus writes one [`Limiter::take_due`] hands out; the rest come
/// in the next batches (the caller takes again after reporting).
pub const MAX_IO_PER_TAKE: usize = 50;
/// Shortest `expiration_ttl` KV accepts, in seconds.
pub const MIN_TTL_S: u64 = 60;
/// How long a key outlives its window, in seconds.
pub const TTL_MARGIN_S: u64 = 60;

/// Expired counters are swept at most this often.
const SWEEP_INTERVAL_MS: u64 = 1_000;

/// The outcome of one [`Limiter::check`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The request is decided; its admission, if any, is already counted.
    Decided(Decision),
    /// Read `kv_key` from KV, report it with [`Limiter::on_read`], then call
    /// [`Limiter::check`] again. Given to one request per cold counter.
    Read {
        /// The KV key to read.
        kv_key: String,
    },
    /// Another request is reading this counter: wait (about [`WAIT_POLL_MS`],
    /// or until that read is reported), then call [`Limiter::check`] again.
    Wait {
        /// The KV key being read.
        kv_key: String,
    },
}

/// A rate-limit decision, for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admit the request; otherwise answer 429.
    pub allowed: bool,
    /// `requests` of the route's limit.
    pub limit: u32,
    /// Requests left in this window after this one, as far as this isolate knows.
    pub remaining: u32,
    /// Seconds until the window ends, rounded up: from 1 to `window_s`.
    pub reset_s: u64,
}

impl Decision {
    /// `retry-after` seconds for a denied request (the window's end), `None`
    /// when admitted.
    pub fn retry_after(&self) -> Option<u64> {
        (!self.allowed).then_some(self.reset_s)
    }

    /// The response headers of a rate-limited route, for every response:
    /// `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (delta
    /// seconds, at least 1), and `retry-after` when denied.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_s.to_string()),
        ];
        if let Some(seconds) = self.retry_after() {
            headers.push(("retry-after", seconds.to_string()));
        }
        headers
    }
}

/// A KV write to run (in `ctx.wait_until`) and report with
/// [`Limiter::on_write_result`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The KV key.
    pub kv_key: String,
    /// The JSON text to store.
    pub value: String,
    /// The `expiration_ttl` to store it with, in seconds (at least 60).
    pub expiration_ttl_s: u64,
}

/// Background KV work, from [`Limiter::take_due`].
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// KV keys to read and report with [`Limiter::on_read`].
    pub reads: Vec<String>,
    /// Writes to run and report with [`Limiter::on_write_result`].
    pub writes: Vec<Write>,
    /// The trailing flush, handed to this caller: call [`Limiter::take_due`]
    /// again at this time (milliseconds since the epoch), when writes are
    /// pending but spaced. Only set in a batch without reads and writes;
    /// always later than the `now_ms` it was computed for.
    pub next_at_ms: Option<u64>,
}

impl Due {
    /// Nothing to do now and nothing to come back for.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty() && self.next_at_ms.is_none()
    }

    /// What to do once every read and write of this batch has been reported.
    pub fn then(&self) -> Then {
        if !self.reads.is_empty() || !self.writes.is_empty() {
            Then::TakeAgain
        } else if let Some(at) = self.next_at_ms {
            Then::SleepUntil(at)
        } else {
            Then::Stop
        }
    }
}

/// The flush loop's next move, from [`Due::then`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// This caller holds the trailing flush: sleep until this time
    /// (milliseconds since the epoch), then call [`Limiter::take_due`] again.
    SleepUntil(u64),
    /// Call [`Limiter::take_due`] again now: the reported results may have
    /// made more work due (a write waiting for a read, admissions made during
    /// a write, a repair), and the next batch may hand out the trailing flush.
    TakeAgain,
    /// Nothing left for this caller.
    Stop,
}

/// All rate-limit counters of one isolate. See the module documentation for
/// the protocol.
#[derive(Debug)]
pub struct Limiter {
    isolate_id: String,
    counters: HashMap<String, Counter>,
    /// The trailing flush handed out and not yet come due.
    flush_at_ms: Option<u64>,
    next_sweep_ms: u64,
}

/// One counter: one route, key value and window.
#[derive(Debug)]
struct Counter {
    window_end_ms: u64,
    /// Admitted by this isolate in this window.
    own: u32,
    /// Entries of other isolates, at most `MAX_ENTRIES - 1`.
    others: Entries,
    others_total: u64,
    /// The first read came back, failed or was given up.
    loaded: bool,
    /// Start of the last read.
    read_started_ms: Option<u64>,
    read_in_flight: bool,
    /// Traffic asked for a background read.
    refresh_wanted: bool,
    /// What KV is believed to hold for this isolate's entry.
    persisted: u32,
    /// The own count being written.
    write_in_flight: Option<u32>,
    write_started_ms: u64,
    next_write_ms: u64,
    write_failures: u32,
    last_used_ms: u64,
}

impl Counter {
    fn new(window_end_ms: u64, now_ms: u64) -> Counter {
        Counter {
            window_end_ms,
            own: 0,
            others: Entries::new(),
            others_total: 0,
            loaded: false,
            read_started_ms: None,
            read_in_flight: false,
            refresh_wanted: false,
            persisted: 0,
            write_in_flight: None,
            write_started_ms: 0,
            next_write_ms: 0,
            write_failures: 0,
            last_used_ms: now_ms,
        }
    }

    fn total(&self) -> u64 {
        u64::from(self.own) + self.others_total
    }

    fn reading(&self, now_ms: u64) -> bool {
        self.read_in_flight
            && self
                .read_started_ms
                .is_some_and(|s| now_ms < s.saturating_add(READ_TIMEOUT_MS))
    }

    fn may_read(&self, now_ms: u64) -> bool {
        !self.reading(now_ms)
            && self
                .read_started_ms
                .is_none_or(|s| now_ms >= s.saturating_add(READ_INTERVAL_MS))
    }

    fn start_read(&mut self, now_ms: u64) {
        self.read_in_flight = true;
        self.read_started_ms = Some(now_ms);
        self.refresh_wanted = false;
    }

    fn merge(&mut self, own_id: &str, mut incoming: Entries) {
        let stored_own = incoming.remove(own_id).unwrap_or(0);
        // An entry with this isolate's id is this isolate's: never behind it.
        self.own = self.own.max(stored_own);
        // What KV holds now; below what was written means it was overwritten
        // (last writer wins) and the entry is written again.
        self.persisted = stored_own;
        value::merge(&mut self.others, &incoming);
        value::truncate(&mut self.others, MAX_ENTRIES - 1);
        self.others_total = value::total(&self.others);
    }

    fn dirty(&self) -> bool {
        self.own > self.persisted
    }

    /// A write reported neither way within `WRITE_TIMEOUT_MS` failed.
    fn expire_write(&mut self, now_ms: u64) {
        if self.write_in_flight.is_some()
            && now_ms >= self.write_started_ms.saturating_add(WRITE_TIMEOUT_MS)
        {
            self.write_in_flight = None;
            self.write_failed(now_ms);
        }
    }

    fn write_failed(&mut self, now_ms: u64) {
        self.write_failures = self.write_failures.saturating_add(1);
        let backoff = WRITE_INTERVAL_MS
            .checked_shl(self.write_failures.min(16))
            .unwrap_or(MAX_WRITE_BACKOFF_MS)
            .min(MAX_WRITE_BACKOFF_MS);
        self.next_write_ms = self.next_write_ms.max(now_ms.saturating_add(backoff));
    }
}

/// `max(60, seconds left in the window + 60)`.
fn expiration_ttl_s(window_end_ms: u64, now_ms: u64) -> u64 {
    let left_s = window_end_ms.saturating_sub(now_ms).div_ceil(1000);
    (left_s + TTL_MARGIN_S).max(MIN_TTL_S)
}

fn earliest(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Limiter {
    /// A limiter for the isolate with this random id. An id outside
    /// `[A-Za-z0-9_-]{1,32}` is replaced by 16 hex characters of its SHA-256.
    pub fn new(isolate_id: impl Into<String>) -> Limiter {
        let id = isolate_id.into();
        let isolate_id = if value::is_isolate_id(&id) {
            id
        } else {
            key::hex_digest(&[b"isolate\0", id.as_bytes()], 8)
        };
        Limiter {
            isolate_id,
            counters: HashMap::new(),
            flush_at_ms: None,
            next_sweep_ms: 0,
        }
    }

    /// The id this isolate's entries are stored under.
    pub fn isolate_id(&self) -> &str {
        &self.isolate_id
    }

    /// How many counters are held.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// No counter is held.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Decides a request of route `route_id` with the route's `limit` and the
    /// request's key value (see [`KeyKind::value`]), or says what to do first.
    /// An admission is counted before this returns. `requests == 0` denies
    /// everything; `window_s == 0` is taken as 1.
    pub fn check(
        &mut self,
        route_id: &str,
        limit: &RateLimit,
        key_value: Option<&str>,
        now_ms: u64,
    ) -> Step {
        self.sweep(now_ms, false);
        let key = counter_key(route_id, limit, key_value, now_ms);
        let reset_s = key
            .window_end_ms
            .saturating_sub(now_ms)
            .div_ceil(1000)
            .max(1);

        if !self.counters.contains_key(&key.kv_key) {
            let warm = key
                .previous_kv_key()
                .and_then(|previous| self.counters.get(&previous))
                .is_some_and(|previous| previous.loaded);
            self.make_room(now_ms);
            let mut counter = Counter::new(key.window_end_ms, now_ms);
            if warm {
                counter.loaded = true;
                counter.refresh_wanted = true;
            } else {
                counter.start_read(now_ms);
            }
            self.counters.insert(key.kv_key.clone(), counter);
            if !warm {
                return Step::Read { kv_key: key.kv_key };
            }
        }

        let Some(counter) = self.counters.get_mut(&key.kv_key) else {
            // Unreachable: inserted above. Fail open rather than panic.
            return Step::Decided(Decision {
                allowed: true,
                limit: limit.requests,
                remaining: limit.requests,
                reset_s,
            });
        };
        counter.last_used_ms = now_ms;
        if !counter.loaded {
            if counter.reading(now_ms) {
                return Step::Wait { kv_key: key.kv_key };
            }
            // The read was lost or is too slow: decide on what is known.
            counter.loaded = true;
        }

        let requests = u64::from(limit.requests);
        let allowed = counter.total() < requests;
        if allowed {
            counter.own = counter.own.saturating_add(1);
        }
        let used = counter.total();
        if used < requests && counter.may_read(now_ms) {
            counter.refresh_wanted = true;
        }
        Step::Decided(Decision {
            allowed,
            limit: limit.requests,
            remaining: u32::try_from(requests.saturating_sub(used)).unwrap_or(u32::MAX),
            reset_s,
        })
    }

    /// Reports a KV read of `kv_key`: `Ok(Some(text))` the stored value,
    /// `Ok(None)` no such key, `Err(_)` a failure (the caller logs it; the
    /// counter carries on with what it knows). Any value may be reported any
    /// time: merging is idempotent. Unknown keys are ignored.
    pub fn on_read<E>(&mut self, kv_key: &str, result: Result<Option<&str>, E>, now_ms: u64) {
        let Some(counter) = self.counters.get_mut(kv_key) else {
            return;
        };
        counter.read_in_flight = false;
        counter.loaded = true;
        counter.last_used_ms = counter.last_used_ms.max(now_ms);
        match result {
            Ok(Some(text)) => {
                // A corrupt value is ignored; the next write replaces it.
                if let Some(entries) = value::parse(text) {
                    counter.merge(&self.isolate_id, entries);
                }
            }
            Ok(None) => counter.merge(&self.isolate_id, Entries::new()),
            Err(_) => {}
        }
    }

    /// The background reads and writes due at `now_ms`, marked in flight, and
    /// when to come back for the writes still pending. Run them (in
    /// `ctx.wait_until`) and report each one.
    pub fn take_due(&mut self, now_ms: u64) -> Due {
        self.sweep(now_ms, false);
        if self.flush_at_ms.is_some_and(|at| now_ms >= at) {
            self.flush_at_ms = None;
        }
        let mut due = Due::default();
        let mut next: Option<u64> = None;
        let mut budget = MAX_IO_PER_TAKE;
        for (kv_key, counter) in &mut self.counters {
            if now_ms >= counter.window_end_ms {
                continue; // over: nobody needs it any more
            }
            counter.expire_write(now_ms);
            let write_ready = counter.dirty()
                && counter.write_in_flight.is_none()
                && now_ms >= counter.next_write_ms;
            if counter.dirty() && !write_ready && counter.write_in_flight.is_none() {
                next = earliest(next, counter.next_write_ms);
            }
            if budget == 0 {
                continue;
            }
            if (counter.refresh_wanted || write_ready) && counter.may_read(now_ms) {
                budget -= 1;
                // Read, merge, then write: a write goes out only after the
                // read is reported (the caller takes again), so it carries
                // what others wrote and does not erase it (last writer wins).
                counter.start_read(now_ms);
                due.reads.push(kv_key.clone());
            } else if write_ready {
                budget -= 1;
                counter.write_in_flight = Some(counter.own);
                counter.write_started_ms = now_ms;
                counter.next_write_ms = now_ms.saturating_add(WRITE_INTERVAL_MS);
                due.writes.push(Write {
                    kv_key: kv_key.clone(),
                    value: value::render(&counter.others, &self.isolate_id, counter.own),
                    expiration_ttl_s: expiration_ttl_s(counter.window_end_ms, now_ms),
                });
            }
        }
        // A batch with work is followed by another take (`Then::TakeAgain`),
        // which hands the trailing flush out. One trailing flush at a time:
        // only hand it out when nobody holds it for an earlier or equal time.
        if !due.reads.is_empty() || !due.writes.is_empty() {
            return due;
        }
        due.next_at_ms = next.filter(|&at| {
            if self.flush_at_ms.is_some_and(|held| held <= at) {
                false
            } else {
                self.flush_at_ms = Some(at);
                true
            }
        });
        due
    }

    /// Reports a KV write of `kv_key` from [`Due::writes`]. A failure (the
    /// caller logs it) is retried later with backoff; nothing is denied
    /// because of it. Unknown keys and late reports are ignored.
    pub fn on_write_result(&mut self, kv_key: &str, ok: bool, now_ms: u64) {
        let Some(counter) = self.counters.get_mut(kv_key) else {
            return;
        };
        let Some(sent) = counter.write_in_flight.take() else {
            return;
        };
        if ok {
            counter.persisted = counter.persisted.max(sent);
            counter.write_failures = 0;
        } else {
            counter.write_failed(now_ms);
        }
    }

    /// Forgets counters whose window ended more than `WARM_GRACE_MS` ago;
    /// at most once a second unless `force`.
    fn sweep(&mut self, now_ms: u64, force: bool) {
        if !force && now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        let cutoff = now_ms.saturating_sub(WARM_GRACE_MS);
        self.counters.retain(|_, c| c.window_end_ms > cutoff);
    }

    /// Makes room for one more counter: sweeps, then evicts the `EVICT_BATCH`
    /// least recently used counters when still full.
    fn make_room(&mut self, now_ms: u64) {
        if self.counters.len() < MAX_COUNTERS {
            return;
        }
        self.sweep(now_ms, true);
        if self.counters.len() < MAX_COUNTERS {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self
            .counters
            .iter()
            .map(|(k, c)| (c.last_used_ms, k.clone()))
            .collect();
        let n = EVICT_BATCH.clamp(1, by_age.len());
        by_age.select_nth_unstable_by_key(n - 1, |(used, _)| *used);
        for (_, k) in by_age.into_iter().take(n) {
            self.counters.remove(&k);
        }
    }
}
