//! Circuit breakers, one per (origin, region), living in one isolate.
//!
//! ```text
//!            failures consecutive failures
//!   Closed ------------------------------> Open { until }
//!     ^                                     |  now >= until: the next request
//!     | trial succeeds                      v  is let through as the trial
//!     +------------------------------ HalfOpen { trial expires }
//!                   trial fails: Open for another cooldown
//! ```
//!
//! * **Closed** counts consecutive failed attempts; a success resets the count.
//!   Reaching `circuit_breaker.failures` opens the breaker for `cooldown_s`.
//! * **Open** skips the region until the cooldown has passed. Results of
//!   requests admitted before the breaker opened are ignored.
//! * After the cooldown, exactly **one** request is admitted as the trial
//!   ([`Admit::Trial`]) and the breaker is **HalfOpen**: every other request
//!   skips the region while the trial is in flight. The trial's success closes
//!   the breaker, its failure re-opens it for another cooldown.
//!
//! **Lost trials.** A trial whose result is never recorded (the client went
//! away, the isolate dropped the request, a bug) must not keep the region
//! half-open for ever. The trial therefore expires `max(cooldown, origin
//! timeout_ms)` after it was admitted: it is presumed failed and the next
//! request becomes a new trial ([`Transition::TrialExpired`]). A trial slower
//! than that (a route `timeout_ms` above both) may thus overlap a second trial,
//! which is harmless: whichever result is recorded first decides.
//!
//! While half-open, any recorded result decides, including a late one from a
//! request admitted while the breaker was still closed (possible only when an
//! attempt can outlast the cooldown): the breaker has no per-request tickets.
//!
//! What counts as a failure is the caller's choice; the intent is a
//! connection error, a timeout, or a retryable status (502, 503, 504, see
//! [`super::region::is_retryable_status`]). Time is passed in as Unix
//! milliseconds; the breaker never reads a clock and tolerates a clock that
//! stands still or goes backwards (it then simply waits longer).
//!
//! Origins are addressed by index, in the order given to [`Breakers::new`]
//! (the order of `RoutesFile::origins`), regions by their index in the
//! origin's `regions`. Unknown indices behave like an origin without breaker.

use std::fmt;

use crate::config::Origin;

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests flow; this many attempts in a row have failed.
    Closed {
        /// Failed attempts since the last success (or since closing).
        consecutive_failures: u32,
    },
    /// Requests skip the region until `until_ms`.
    Open {
        /// End of the cooldown, Unix milliseconds.
        until_ms: u64,
    },
    /// One trial request is in flight; others skip the region.
    ///
    /// There is no half-open state without a trial: the breaker becomes
    /// half-open when the trial is admitted.
    HalfOpen {
        /// When the trial is presumed lost and another may be admitted, Unix milliseconds.
        trial_expires_ms: u64,
    },
}

/// The answer of [`Breakers::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send the request; the breaker is closed (or the origin has none).
    Allowed,
    /// Send the request as the half-open trial. The breaker just changed
    /// state; log the transition (open->half_open, or a new trial after a
    /// lost one).
    Trial(Transition),
    /// Do not send to this region now: it is open or its trial is in flight.
    Skip,
}

impl Admit {
    /// True unless [`Admit::Skip`].
    pub fn is_admitted(self) -> bool {
        !matches!(self, Admit::Skip)
    }

    /// The transition to log, for [`Admit::Trial`].
    pub fn transition(self) -> Option<Transition> {
        match self {
            Admit::Trial(t) => Some(t),
            _ => None,
        }
    }
}

/// A state change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `failures` consecutive failures: the region is skipped for the cooldown.
    ClosedToOpen,
    /// The cooldown passed; a trial request was admitted.
    OpenToHalfOpen,
    /// The trial succeeded.
    HalfOpenToClosed,
    /// The trial failed: another cooldown.
    HalfOpenToOpen,
    /// The previous trial was never recorded and expired; a new trial was admitted.
    TrialExpired,
}

impl Transition {
    /// A stable name for logs: `closed->open`, `open->half_open`,
    /// `half_open->closed`, `half_open->open`, `half_open->half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::ClosedToOpen => "closed->open",
            Transition::OpenToHalfOpen => "open->half_open",
            Transition::HalfOpenToClosed => "half_open->closed",
            Transition::HalfOpenToOpen => "half_open->open",
            Transition::TrialExpired => "half_open->half_open",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Breaker settings of one origin, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Settings {
    failures: u32,
    cooldown_ms: u64,
    trial_ttl_ms: u64,
}

#[derive(Debug, Clone)]
struct OriginBreakers {
    /// `None`: the origin has no `circuit_breaker`; nothing is ever skipped.
    settings: Option<Settings>,
    states: Box<[State]>,
}

/// Every breaker of the isolate: one per (origin, region).
#[derive(Debug, Clone)]
pub struct Breakers {
    origins: Box<[OriginBreakers]>,
}

const CLOSED: State = State::Closed {
    consecutive_failures: 0,
};

impl Breakers {
    /// One closed breaker per region of every origin with a `circuit_breaker`;
    /// origin indices follow the iteration order.
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a Origin>) -> Breakers {
        let origins = origins
            .into_iter()
            .map(|origin| {
                let settings = origin.circuit_breaker.map(|cb| {
                    let cooldown_ms = cb.cooldown_s.saturating_mul(1000);
                    Settings {
                        failures: cb.failures.max(1),
                        cooldown_ms,
                        trial_ttl_ms: cooldown_ms.max(origin.timeout_ms),
                    }
                });
                let states = match settings {
                    Some(_) => vec![CLOSED; origin.regions.len()].into_boxed_slice(),
                    None => Box::default(),
                };
                OriginBreakers { settings, states }
            })
            .collect();
        Breakers { origins }
    }

    /// The state of a breaker; `None` when the origin has no breaker (or the
    /// indices are unknown).
    pub fn state(&self, origin_idx: usize, region_idx: usize) -> Option<State> {
        self.origins
            .get(origin_idx)?
            .states
            .get(region_idx)
            .copied()
    }

    /// Asks to send one attempt to a region at `now_ms`.
    ///
    /// May change state: after the cooldown, the first caller gets
    /// [`Admit::Trial`] and the breaker becomes half-open. Every admitted
    /// attempt should be followed by [`record`](Self::record).
    pub fn try_acquire(&mut self, origin_idx: usize, region_idx: usize, now_ms: u64) -> Admit {
        let Some((settings, state)) = self.slot(origin_idx, region_idx) else {
            return Admit::Allowed;
        };
        let transition = match *state {
            State::Closed { .. } => return Admit::Allowed,
            State::Open { until_ms } if now_ms < until_ms => return Admit::Skip,
            State::Open { .. } => Transition::OpenToHalfOpen,
            State::HalfOpen { trial_expires_ms } if now_ms < trial_expires_ms => {
                return Admit::Skip;
            }
            State::HalfOpen { .. } => Transition::TrialExpired,
        };
        *state = State::HalfOpen {
            trial_expires_ms: now_ms.saturating_add(settings.trial_ttl_ms),
        };
        Admit::Trial(transition)
    }

    /// Records the outcome of an admitted attempt; returns the state change, if any.
    pub fn record(
        &mut self,
        origin_idx: usize,
        region_idx: usize,
        success: bool,
        now_ms: u64,
    ) -> Option<Transition> {
        let (settings, state) = self.slot(origin_idx, region_idx)?;
        let open = State::Open {
            until_ms: now_ms.saturating_add(settings.cooldown_ms),
        };
        match (*state, success) {
            (State::Closed { .. }, true) => {
                *state = CLOSED;
                None
            }
            (
                State::Closed {
                    consecutive_failures,
                },
                false,
            ) => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= settings.failures {
                    *state = open;
                    Some(Transition::ClosedToOpen)
                } else {
                    *state = State::Closed {
                        consecutive_failures: failures,
                    };
                    None
                }
            }
            // Late results of attempts admitted before the breaker opened.
            (State::Open { .. }, _) => None,
            (State::HalfOpen { .. }, true) => {
                *state = CLOSED;
                Some(Transition::HalfOpenToClosed)
            }
            (State::HalfOpen { .. }, false) => {
                *state = open;
                Some(Transition::HalfOpenToOpen)
            }
        }
    }

    /// Whether [`try_acquire`](Self::try_acquire) would admit an attempt now,
    /// without changing anything.
    pub fn would_admit(&self, origin_idx: usize, region_idx: usize, now_ms: u64) -> bool {
        match self.state(origin_idx, region_idx) {
            None | Some(State::Closed { .. }) => true,
            Some(State::Open { until_ms }) => now_ms >= until_ms,
            Some(State::HalfOpen { trial_expires_ms }) => now_ms >= trial_expires_ms,
        }
    }

    /// The regions of `order` that would be admitted now, lazily, in order,
    /// without changing anything. Empty when every region is open (or has its
    /// trial in flight): then answer 503 without fetching.
    ///
    /// This is a preview: acquire each region with
    /// [`try_acquire`](Self::try_acquire) (or use
    /// [`next_admitted`](Self::next_admitted)) right before its attempt, so that
    /// a half-open region is only claimed as a trial when it is really tried.
    pub fn regions_to_try<'a>(
        &'a self,
        origin_idx: usize,
        order: impl IntoIterator<Item = usize> + 'a,
        now_ms: u64,
    ) -> impl Iterator<Item = usize> + 'a {
        order
            .into_iter()
            .filter(move |&r| self.would_admit(origin_idx, r, now_ms))
    }

    /// True when no region of the origin would be admitted now: every one is
    /// open, or half-open with its trial in flight. Never true for an origin
    /// without breaker.
    pub fn all_open(&self, origin_idx: usize, now_ms: u64) -> bool {
        match self.origins.get(origin_idx) {
            Some(o) if o.settings.is_some() => {
                (0..o.states.len()).all(|r| !self.would_admit(origin_idx, r, now_ms))
            }
            _ => false,
        }
    }

    /// Takes regions from `order` until one is admitted, acquiring it: the
    /// failover loop's step. `None` when `order` is exhausted; if that happens
    /// on the first call, every region is open (answer 503).
    ///
    /// ```
    /// # use edge_gateway::upstream::breaker::Breakers;
    /// # let mut breakers = Breakers::new([]);
    /// # let now_ms = 0;
    /// let mut order = [0usize, 1, 2].into_iter();
    /// while let Some((region, _admit)) = breakers.next_admitted(0, &mut order, now_ms) {
    ///     let success = true; // fetch from `region`...
    ///     breakers.record(0, region, success, now_ms);
    ///     if success { break; }
    /// }
    /// ```
    pub fn next_admitted(
        &mut self,
        origin_idx: usize,
        order: &mut impl Iterator<Item = usize>,
        now_ms: u64,
    ) -> Option<(usize, Admit)> {
        order.find_map(|r| {
            let admit = self.try_acquire(origin_idx, r, now_ms);
            admit.is_admitted().then_some((r, admit))
        })
    }

    fn slot(&mut self, origin_idx: usize, region_idx: usize) -> Option<(Settings, &mut State)> {
        let o = self.origins.get_mut(origin_idx)?;
        let settings = o.settings?;
        Some((settings, o.states.get_mut(region_idx)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CircuitBreaker, Region};

    const S: u64 = 1000;

    fn origin(regions: usize, cb: Option<(u32, u64)>) -> Origin {
        Origin {
            regions: (0..regions)
                .map(|i| Region {
                    name: format!("r{i}"),
                    url: Some(format!("https://r{i}.example.com")),
                    service: None,
                    serves: vec![],
                })
                .collect(),
            timeout_ms: 2 * S,
            circuit_breaker: cb.map(|(failures, cooldown_s)| CircuitBreaker {
                failures,
                cooldown_s,
            }),
            retry_budget_percent: None,
            hedge: None,
        }
    }

    /// Origin 0: three regions, opens after 3 failures for 30 s. Origin 1: no breaker.
    fn breakers() -> Breakers {
        Breakers::new(&[origin(3, Some((3, 30))), origin(2, None)])
    }

    fn fail(b: &mut Breakers, region: usize, now: u64) -> Option<Transition> {
        assert!(b.try_acquire(0, region, now).is_admitted());
        b.record(0, region, false, now)
    }

    #[test]
    fn opens_after_n_consecutive_failures() {
        let mut b = breakers();
        assert_eq!(fail(&mut b, 0, 0), None);
        assert_eq!(fail(&mut b, 0, 1), None);
        assert_eq!(
            b.state(0, 0),
            Some(State::Closed {
                consecutive_failures: 2
            })
        );
        assert_eq!(fail(&mut b, 0, 2), Some(Transition::ClosedToOpen));
        assert_eq!(
            b.state(0, 0),
            Some(State::Open {
                until_ms: 2 + 30 * S
            })
        );
        assert_eq!(b.try_acquire(0, 0, 3), Admit::Skip);
        // Other regions are unaffected.
        assert_eq!(b.try_acquire(0, 1, 3), Admit::Allowed);
    }

    #[test]
    fn success_resets_the_count() {
        let mut b = breakers();
        fail(&mut b, 0, 0);
        fail(&mut b, 0, 0);
        assert_eq!(b.record(0, 0, true, 0), None);
        assert_eq!(b.state(0, 0), Some(CLOSED));
        assert_eq!(fail(&mut b, 0, 0), None);
        assert_eq!(fail(&mut b, 0, 0), None);
        assert_eq!(fail(&mut b, 0, 0), Some(Transition::ClosedToOpen));
    }

    #[test]
    fn single_failure_threshold() {
        let mut b = Breakers::new(&[origin(1, Some((1, 5)))]);
        assert_eq!(fail(&mut b, 0, 0), Some(Transition::ClosedToOpen));
        assert_eq!(b.try_acquire(0, 0, 4_999), Admit::Skip);
        assert_eq!(
            b.try_acquire(0, 0, 5_000),
            Admit::Trial(Transition::OpenToHalfOpen)
        );
    }

    fn opened_at(now: u64) -> Breakers {
        let mut b = breakers();
        for _ in 0..3 {
            fail(&mut b, 0, now);
        }
        b
    }

    #[test]
    fn stays_open_for_the_cooldown() {
        let mut b = opened_at(10);
        for now in [10, 11, 15 * S, 30 * S + 9] {
            assert_eq!(b.try_acquire(0, 0, now), Admit::Skip, "at {now}");
            assert!(!b.would_admit(0, 0, now));
        }
        // Late failures of earlier attempts do not extend the cooldown,
        // late successes do not close it.
        assert_eq!(b.record(0, 0, false, 20 * S), None);
        assert_eq!(b.record(0, 0, true, 20 * S), None);
        assert_eq!(
            b.state(0, 0),
            Some(State::Open {
                until_ms: 10 + 30 * S
            })
        );
        assert!(b.would_admit(0, 0, 30 * S + 10));
    }

    #[test]
    fn exactly_one_trial_after_the_cooldown() {
        let mut b = opened_at(0);
        let t = 30 * S;
        assert_eq!(
            b.try_acquire(0, 0, t),
            Admit::Trial(Transition::OpenToHalfOpen)
        );
        assert_eq!(
            Admit::Trial(Transition::OpenToHalfOpen).transition(),
            Some(Transition::OpenToHalfOpen)
        );
        assert_eq!(
            b.state(0, 0),
            Some(State::HalfOpen {
                trial_expires_ms: t + 30 * S
            })
        );
        // Concurrent requests while the trial is in flight skip the region.
        for now in [t, t + 1, t + 10 * S] {
            assert_eq!(b.try_acquire(0, 0, now), Admit::Skip);
        }
    }

    #[test]
    fn trial_success_closes() {
        let mut b = opened_at(0);
        let t = 31 * S;
        assert!(matches!(b.try_acquire(0, 0, t), Admit::Trial(_)));
        assert_eq!(
            b.record(0, 0, true, t + 100),
            Some(Transition::HalfOpenToClosed)
        );
        assert_eq!(b.state(0, 0), Some(CLOSED));
        assert_eq!(b.try_acquire(0, 0, t + 101), Admit::Allowed);
        assert_eq!(b.try_acquire(0, 0, t + 102), Admit::Allowed);
        // The count starts again from zero.
        assert_eq!(fail(&mut b, 0, t + 200), None);
        assert_eq!(fail(&mut b, 0, t + 200), None);
        assert_eq!(fail(&mut b, 0, t + 200), Some(Transition::ClosedToOpen));
    }

    #[test]
    fn trial_failure_reopens_for_another_cooldown() {
        let mut b = opened_at(0);
        let t = 30 * S;
        assert!(matches!(b.try_acquire(0, 0, t), Admit::Trial(_)));
        assert_eq!(
            b.record(0, 0, false, t + 500),
            Some(Transition::HalfOpenToOpen)
        );
        assert_eq!(
            b.state(0, 0),
            Some(State::Open {
                until_ms: t + 500 + 30 * S
            })
        );
        assert_eq!(b.try_acquire(0, 0, t + 30 * S), Admit::Skip);
        assert_eq!(
            b.try_acquire(0, 0, t + 500 + 30 * S),
            Admit::Trial(Transition::OpenToHalfOpen)
        );
    }

    #[test]
    fn a_lost_trial_expires() {
        let mut b = opened_at(0);
        let t = 30 * S;
        assert!(matches!(b.try_acquire(0, 0, t), Admit::Trial(_)));
        // Never recorded. Skipped until the trial expires (cooldown 30 s > timeout 2 s)...
        assert_eq!(b.try_acquire(0, 0, t + 30 * S - 1), Admit::Skip);
        // ...then a new trial.
        assert_eq!(
            b.try_acquire(0, 0, t + 30 * S),
            Admit::Trial(Transition::TrialExpired)
        );
        assert_eq!(b.try_acquire(0, 0, t + 30 * S), Admit::Skip);
        assert_eq!(
            b.record(0, 0, true, t + 31 * S),
            Some(Transition::HalfOpenToClosed)
        );
    }

    #[test]
    fn trial_lifetime_covers_the_origin_timeout() {
        let mut o = origin(1, Some((1, 1)));
        o.timeout_ms = 10 * S;
        let mut b = Breakers::new([&o]);
        fail(&mut b, 0, 0);
        assert!(matches!(b.try_acquire(0, 0, S), Admit::Trial(_)));
        assert_eq!(b.try_acquire(0, 0, 2 * S), Admit::Skip);
        assert_eq!(b.try_acquire(0, 0, 11 * S - 1), Admit::Skip);
        assert_eq!(
            b.try_acquire(0, 0, 11 * S),
            Admit::Trial(Transition::TrialExpired)
        );
    }

    #[test]
    fn origins_without_breaker_never_skip() {
        let mut b = breakers();
        for now in 0..10 {
            assert_eq!(b.try_acquire(1, 0, now), Admit::Allowed);
            assert_eq!(b.record(1, 0, false, now), None);
        }
        assert_eq!(b.state(1, 0), None);
        assert!(!b.all_open(1, 10));
        assert_eq!(b.regions_to_try(1, [1, 0], 10).collect::<Vec<_>>(), [1, 0]);
        // Unknown indices behave the same.
        assert_eq!(b.try_acquire(7, 0, 0), Admit::Allowed);
        assert_eq!(b.try_acquire(0, 9, 0), Admit::Allowed);
        assert_eq!(b.record(0, 9, false, 0), None);
        assert!(!b.all_open(7, 0));
    }

    #[test]
    fn failover_skips_open_regions_and_detects_all_open() {
        let mut b = breakers();
        let now = 100;
        for _ in 0..3 {
            fail(&mut b, 1, now);
        }
        assert_eq!(
            b.regions_to_try(0, [1, 2, 0], now).collect::<Vec<_>>(),
            [2, 0]
        );
        assert!(!b.all_open(0, now));
        for _ in 0..3 {
            fail(&mut b, 2, now);
            fail(&mut b, 0, now);
        }
        assert!(b.all_open(0, now));
        assert_eq!(b.regions_to_try(0, [1, 2, 0], now).count(), 0);
        assert_eq!(b.next_admitted(0, &mut [1, 2, 0].into_iter(), now), None);
        // Once the cooldown passed, regions are offered again (as trials).
        let later = now + 30 * S;
        assert!(!b.all_open(0, later));
        assert_eq!(
            b.regions_to_try(0, [1, 2, 0], later).collect::<Vec<_>>(),
            [1, 2, 0]
        );
    }

    #[test]
    fn next_admitted_claims_one_trial_at_a_time() {
        let mut b = breakers();
        for r in 0..3 {
            for _ in 0..3 {
                fail(&mut b, r, 0);
            }
        }
        let t = 30 * S;
        // Request A: region 1 is tried first and becomes the trial.
        let mut a = [1, 2, 0].into_iter();
        assert_eq!(
            b.next_admitted(0, &mut a, t),
            Some((1, Admit::Trial(Transition::OpenToHalfOpen)))
        );
        // Regions 2 and 0 were not claimed: they are still open, past their cooldown.
        assert_eq!(b.state(0, 2), Some(State::Open { until_ms: 30 * S }));
        // Request B, concurrent: region 1's trial is in flight, so B takes region 2's trial.
        let mut bo = [1, 2, 0].into_iter();
        assert_eq!(
            b.next_admitted(0, &mut bo, t + 1),
            Some((2, Admit::Trial(Transition::OpenToHalfOpen)))
        );
        // Request C takes region 0's; request D finds nothing: 503.
        assert_eq!(
            b.next_admitted(0, &mut [1, 2, 0].into_iter(), t + 2)
                .map(|x| x.0),
            Some(0)
        );
        assert!(b.all_open(0, t + 3));
        assert_eq!(b.next_admitted(0, &mut [1, 2, 0].into_iter(), t + 3), None);
        // A's trial fails: A fails over, but every other region has its trial in flight.
        assert_eq!(
            b.record(0, 1, false, t + 4),
            Some(Transition::HalfOpenToOpen)
        );
        assert_eq!(b.next_admitted(0, &mut a, t + 4), None);
        // B's trial succeeds: region 2 serves everyone again.
        assert_eq!(
            b.record(0, 2, true, t + 5),
            Some(Transition::HalfOpenToClosed)
        );
        assert!(!b.all_open(0, t + 6));
        assert_eq!(
            b.next_admitted(0, &mut [1, 2, 0].into_iter(), t + 6),
            Some((2, Admit::Allowed))
        );
    }

    #[test]
    fn transition_names() {
        let all = [
            (Transition::ClosedToOpen, "closed->open"),
            (Transition::OpenToHalfOpen, "open->half_open"),
            (Transition::HalfOpenToClosed, "half_open->closed"),
            (Transition::HalfOpenToOpen, "half_open->open"),
            (Transition::TrialExpired, "half_open->half_open"),
        ];
        for (t, name) in all {
            assert_eq!(t.as_str(), name);
            assert_eq!(t.to_string(), name);
        }
        assert_eq!(Admit::Allowed.transition(), None);
        assert!(!Admit::Skip.is_admitted());
    }

    #[test]
    fn huge_cooldowns_saturate() {
        let mut b = Breakers::new(&[origin(1, Some((1, u64::MAX)))]);
        fail(&mut b, 0, u64::MAX - 1);
        assert_eq!(b.state(0, 0), Some(State::Open { until_ms: u64::MAX }));
        assert_eq!(b.try_acquire(0, 0, u64::MAX - 1), Admit::Skip);
    }
}
