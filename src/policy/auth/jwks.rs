//! The JWKS cache of one provider: a sans-IO state machine driven by the caller's clock.
//!
//! The caller owns the HTTP fetch and at most one in-flight fetch per provider:
//!
//! ```text
//! match cache.plan(now_ms, token.kid()) {
//!     Plan::UseCached | Plan::UseStale => verify with cache.keys(),
//!     Plan::Fetch => {
//!         cache.fetch_started(now_ms);
//!         let result = fetch jwks_url, then parse_jwks(body);
//!         cache.on_fetched(later_ms, result, max_age(cache-control header));
//!         verify with cache.keys()          // the old keys if the fetch failed
//!     }
//!     Plan::AwaitFetch => wait for the in-flight fetch, then verify with cache.keys(),
//!     Plan::Unavailable => answer 503 (AuthError::KeysUnavailable),
//! }
//! ```
//!
//! Keys live for the response's `Cache-Control: max-age`, clamped to
//! [[`MIN_MAX_AGE_S`], [`MAX_MAX_AGE_S`]], or [`DEFAULT_MAX_AGE_S`] without one. Expired keys
//! are refetched; when that fails they are kept and used (stale) until a fetch succeeds, with
//! retries at most every [`RETRY_AFTER_FAILURE_MS`]. A `kid` missing from fresh keys (key
//! rotation) triggers a refetch at most every [`UNKNOWN_KID_REFETCH_MS`].

use std::rc::Rc;

use super::KeySet;

/// Lifetime of fetched keys when the response has no `max-age`, in seconds.
pub const DEFAULT_MAX_AGE_S: u64 = 10 * 60;
/// Shortest lifetime of fetched keys, in seconds, whatever `max-age` says.
pub const MIN_MAX_AGE_S: u64 = 60;
/// Longest lifetime of fetched keys, in seconds, whatever `max-age` says.
pub const MAX_MAX_AGE_S: u64 = 24 * 60 * 60;
/// Least time between fetch attempts caused by an unknown `kid`, in milliseconds.
pub const UNKNOWN_KID_REFETCH_MS: u64 = 10_000;
/// Least time between a failed fetch and the next attempt, in milliseconds.
pub const RETRY_AFTER_FAILURE_MS: u64 = 10_000;
/// After this long, in milliseconds, a fetch never reported to
/// [`JwksCache::on_fetched`] is taken as abandoned and another may start.
pub const FETCH_TIMEOUT_MS: u64 = 30_000;

/// What the caller should do before verifying a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The cached keys are fresh (or the `kid` refetch is throttled): verify with them.
    UseCached,
    /// The cached keys expired and the last refresh failed recently: verify with them anyway.
    UseStale,
    /// Fetch the JWKS now and wait for it: call [`JwksCache::fetch_started`], then
    /// [`JwksCache::on_fetched`].
    Fetch,
    /// A fetch is in flight: wait for it rather than starting another.
    AwaitFetch,
    /// No keys and the last fetch failed recently: [`super::AuthError::KeysUnavailable`].
    Unavailable,
}

/// The cached key set of one provider and the times that drive refetching.
#[derive(Debug, Default)]
pub struct JwksCache {
    /// Shared so that a request can verify with them while another replaces them.
    keys: Option<Rc<KeySet>>,
    expires_at_ms: u64,
    last_attempt_ms: Option<u64>,
    last_failure: Option<(u64, String)>,
    in_flight_since_ms: Option<u64>,
    /// Moves on each time the keys are replaced (see [`JwksCache::generation`]).
    generation: u64,
}

impl JwksCache {
    /// An empty cache: the first plan is [`Plan::Fetch`].
    pub fn new() -> JwksCache {
        JwksCache::default()
    }

    /// Decides what to do for a token with this `kid` at `now_ms` (any monotonic-enough
    /// millisecond clock, the same for every call).
    pub fn plan(&self, now_ms: u64, kid: Option<&str>) -> Plan {
        // What to do when no fetch may start now.
        let fallback = match &self.keys {
            None => Plan::Unavailable,
            Some(_) if now_ms >= self.expires_at_ms => Plan::UseStale,
            Some(keys) => {
                if kid.is_none_or(|kid| keys.contains_kid(kid)) {
                    return Plan::UseCached;
                }
                // Fresh keys without this kid: maybe rotated, refetch unless throttled.
                return if self.in_flight(now_ms) {
                    Plan::AwaitFetch
                } else if self.since_attempt(now_ms) >= UNKNOWN_KID_REFETCH_MS {
                    Plan::Fetch
                } else {
                    Plan::UseCached
                };
            }
        };
        if self.in_flight(now_ms) {
            return Plan::AwaitFetch;
        }
        let failed_recently = self
            .last_failure
            .as_ref()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) < RETRY_AFTER_FAILURE_MS);
        if failed_recently {
            fallback
        } else {
            Plan::Fetch
        }
    }

    /// Records that the caller started a fetch at `now_ms`; plans say [`Plan::AwaitFetch`]
    /// until [`JwksCache::on_fetched`] or [`FETCH_TIMEOUT_MS`].
    pub fn fetch_started(&mut self, now_ms: u64) {
        self.in_flight_since_ms = Some(now_ms);
        self.last_attempt_ms = Some(now_ms);
    }

    /// Records a fetch outcome. Success replaces the keys, which then live for
    /// `max_age_s` (from [`max_age`]) clamped as documented in the module; failure keeps
    /// the previous keys and delays the next attempt by [`RETRY_AFTER_FAILURE_MS`].
    pub fn on_fetched(
        &mut self,
        now_ms: u64,
        result: Result<KeySet, String>,
        max_age_s: Option<u64>,
    ) {
        self.in_flight_since_ms = None;
        if self.last_attempt_ms.is_none() {
            self.last_attempt_ms = Some(now_ms);
        }
        match result {
            Ok(keys) => {
                self.keys = Some(Rc::new(keys));
                self.generation += 1;
                self.expires_at_ms = now_ms.saturating_add(lifetime_s(max_age_s) * 1000);
                self.last_failure = None;
            }
            Err(error) => self.last_failure = Some((now_ms, error)),
        }
    }

    /// Counts the successful fetches: which key set verified a remembered signature.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The last good keys, possibly expired; `None` before the first successful fetch.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_deref()
    }

    /// [`JwksCache::keys`], to hold while the cache is not borrowed (a signature
    /// check waits on the runtime).
    pub fn shared_keys(&self) -> Option<Rc<KeySet>> {
        self.keys.clone()
    }

    /// When the keys expire, in the caller's milliseconds; `None` without keys.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.keys.as_ref().map(|_| self.expires_at_ms)
    }

    /// The error of the last fetch, when it failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_failure.as_ref().map(|(_, e)| e.as_str())
    }

    fn in_flight(&self, now_ms: u64) -> bool {
        self.in_flight_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) < FETCH_TIMEOUT_MS)
    }

    fn since_attempt(&self, now_ms: u64) -> u64 {
        self.last_attempt_ms
            .map_or(u64::MAX, |at| now_ms.saturating_sub(at))
    }
}

/// How long fetched keys live, in seconds, for a response's `max-age`.
pub fn lifetime_s(max_age_s: Option<u64>) -> u64 {
    max_age_s
        .unwrap_or(DEFAULT_MAX_AGE_S)
        .clamp(MIN_MAX_AGE_S, MAX_MAX_AGE_S)
}

/// The `max-age` of a `Cache-Control` value, in seconds. Directive names are
/// case-insensitive and the value may be quoted; `no-cache` and `no-store` count as 0 (so
/// the keys get the minimum lifetime). `None` without a valid `max-age`. Values too large
/// for `u64` saturate.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut max_age = None;
    let mut no_cache = false;
    for directive in cache_control.split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            no_cache = true;
        } else if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
            let value = value.unwrap_or("");
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                max_age = Some(value.bytes().fold(0u64, |n, b| {
                    n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                }));
            }
        }
    }
    if no_cache {
        Some(0)
    } else {
        max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::auth::parse_jwks;

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
        "x":"5ncpQAid8fGYZBUIdaYfQtVT6PkIPUlalcNjtBbaUfs",
        "y":"pbhnilbSboT3RTN99zZfFkYWR3kT7MaLUX4MOck1Ht4"}]}"#;
    const T0: u64 = 1_000_000;

    fn keys() -> Result<KeySet, String> {
        parse_jwks(JWKS.as_bytes())
    }

    /// A cache that fetched successfully at `T0` with the default lifetime.
    fn warm() -> JwksCache {
        let mut cache = JwksCache::new();
        cache.fetch_started(T0);
        cache.on_fetched(T0, keys(), None);
        cache
    }

    #[test]
    fn burst_of_requests_makes_one_fetch() {
        let mut cache = JwksCache::new();
        let mut fetches = 0;
        for i in 0..100 {
            match cache.plan(T0 + i, Some("k1")) {
                Plan::Fetch => {
                    fetches += 1;
                    cache.fetch_started(T0 + i);
                }
                Plan::AwaitFetch => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(fetches, 1);
        cache.on_fetched(T0 + 200, keys(), Some(300));
        assert_eq!(cache.plan(T0 + 201, Some("k1")), Plan::UseCached);
        assert_eq!(cache.plan(T0 + 201, None), Plan::UseCached);
        assert_eq!(cache.keys().map(KeySet::len), Some(1));
    }

    #[test]
    fn keys_expire_after_lifetime() {
        let cache = warm();
        let lifetime = DEFAULT_MAX_AGE_S * 1000;
        assert_eq!(cache.expires_at_ms(), Some(T0 + lifetime));
        assert_eq!(cache.plan(T0 + lifetime - 1, None), Plan::UseCached);
        assert_eq!(cache.plan(T0 + lifetime, None), Plan::Fetch);
    }

    #[test]
    fn unknown_kid_refetch_is_throttled() {
        let mut cache = warm();
        // Fetched at T0: an unknown kid within 10 s uses the cached keys (and fails).
        assert_eq!(cache.plan(T0 + 1, Some("new")), Plan::UseCached);
        assert_eq!(
            cache.plan(T0 + UNKNOWN_KID_REFETCH_MS - 1, Some("new")),
            Plan::UseCached
        );
        let t1 = T0 + UNKNOWN_KID_REFETCH_MS;
        assert_eq!(cache.plan(t1, Some("new")), Plan::Fetch);
        cache.fetch_started(t1);
        assert_eq!(cache.plan(t1 + 1, Some("new")), Plan::AwaitFetch);
        // A known kid never waits for the refetch.
        assert_eq!(cache.plan(t1 + 1, Some("k1")), Plan::UseCached);
        cache.on_fetched(t1 + 50, keys(), None);
        // Still unknown after the refetch: throttled again from the attempt's start.
        assert_eq!(cache.plan(t1 + 100, Some("new")), Plan::UseCached);
        assert_eq!(
            cache.plan(t1 + UNKNOWN_KID_REFETCH_MS, Some("new")),
            Plan::Fetch
        );
    }

    #[test]
    fn failed_refresh_keeps_keys() {
        let mut cache = warm();
        let t1 = T0 + DEFAULT_MAX_AGE_S * 1000;
        assert_eq!(cache.plan(t1, None), Plan::Fetch);
        cache.fetch_started(t1);
        cache.on_fetched(t1 + 10, Err("HTTP 500".into()), None);
        assert_eq!(cache.keys().map(KeySet::len), Some(1));
        assert_eq!(cache.last_error(), Some("HTTP 500"));
        assert_eq!(cache.plan(t1 + 20, None), Plan::UseStale);
        assert_eq!(
            cache.plan(t1 + 10 + RETRY_AFTER_FAILURE_MS, None),
            Plan::Fetch
        );
        // A later success replaces the keys and clears the error.
        cache.on_fetched(t1 + 20_000, keys(), Some(120));
        assert_eq!(cache.last_error(), None);
        assert_eq!(cache.plan(t1 + 20_001, None), Plan::UseCached);
        assert_eq!(cache.expires_at_ms(), Some(t1 + 20_000 + 120_000));
    }

    #[test]
    fn failed_refetch_for_unknown_kid_keeps_fresh_keys() {
        let mut cache = warm();
        let t1 = T0 + UNKNOWN_KID_REFETCH_MS;
        cache.fetch_started(t1);
        cache.on_fetched(t1 + 5, Err("timeout".into()), None);
        assert_eq!(cache.plan(t1 + 6, Some("k1")), Plan::UseCached);
        assert_eq!(cache.plan(t1 + 6, Some("new")), Plan::UseCached);
    }

    #[test]
    fn nothing_cached_and_failure_is_unavailable() {
        let mut cache = JwksCache::new();
        assert_eq!(cache.plan(T0, None), Plan::Fetch);
        cache.fetch_started(T0);
        cache.on_fetched(T0 + 5, Err("connection refused".into()), None);
        assert!(cache.keys().is_none());
        assert_eq!(cache.expires_at_ms(), None);
        assert_eq!(cache.plan(T0 + 6, Some("k1")), Plan::Unavailable);
        assert_eq!(
            cache.plan(T0 + 5 + RETRY_AFTER_FAILURE_MS, None),
            Plan::Fetch
        );
    }

    #[test]
    fn abandoned_fetch_times_out() {
        let mut cache = JwksCache::new();
        cache.fetch_started(T0);
        assert_eq!(
            cache.plan(T0 + FETCH_TIMEOUT_MS - 1, None),
            Plan::AwaitFetch
        );
        assert_eq!(cache.plan(T0 + FETCH_TIMEOUT_MS, None), Plan::Fetch);
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let mut cache = warm();
        assert_eq!(cache.plan(0, Some("new")), Plan::UseCached);
        cache.fetch_started(T0 + 50);
        assert_eq!(cache.plan(T0, Some("new")), Plan::AwaitFetch);
        cache.on_fetched(u64::MAX, keys(), Some(u64::MAX));
        assert_eq!(cache.expires_at_ms(), Some(u64::MAX));
    }

    #[test]
    fn max_age_is_clamped() {
        assert_eq!(lifetime_s(None), DEFAULT_MAX_AGE_S);
        assert_eq!(lifetime_s(Some(0)), MIN_MAX_AGE_S);
        assert_eq!(lifetime_s(Some(5)), 60);
        assert_eq!(lifetime_s(Some(3600)), 3600);
        assert_eq!(lifetime_s(Some(10_000_000)), MAX_MAX_AGE_S);

        let mut cache = JwksCache::new();
        cache.on_fetched(T0, keys(), Some(5));
        assert_eq!(cache.expires_at_ms(), Some(T0 + 60_000));
        cache.on_fetched(T0, keys(), Some(999_999_999));
        assert_eq!(cache.expires_at_ms(), Some(T0 + 86_400_000));
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(max_age("max-age=300"), Some(300));
        assert_eq!(max_age("public, max-age=3600, must-revalidate"), Some(3600));
        assert_eq!(max_age("Public,MAX-AGE = 42"), Some(42));
        assert_eq!(max_age("max-age=\"120\""), Some(120));
        assert_eq!(max_age("s-maxage=100"), None);
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age("max-age=1h"), None);
        assert_eq!(max_age("max-age="), None);
        assert_eq!(max_age("max-age"), None);
        assert_eq!(max_age(""), None);
        assert_eq!(max_age("no-cache"), Some(0));
        assert_eq!(max_age("max-age=600, no-store"), Some(0));
        assert_eq!(max_age("max-age=10, max-age=20"), Some(10));
        assert_eq!(max_age("max-age=99999999999999999999999"), Some(u64::MAX));
    }
}
