//! Retry budgets: extra attempts of an origin (failovers) kept within a
//! percentage of the origin's requests over the last 10 seconds, so that a
//! failing region cannot multiply the load on the others (a retry storm).
//!
//! Counted per isolate in ten one-second buckets; pure (the caller passes the
//! clock).

/// The window the budget is counted over, in seconds.
pub const WINDOW_S: u64 = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    second: u64,
    requests: u64,
    spent: u64,
}

/// Requests and extra attempts of one origin over the last [`WINDOW_S`] seconds.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    buckets: [Bucket; WINDOW_S as usize],
}

impl Budget {
    pub fn new() -> Budget {
        Budget::default()
    }

    fn bucket(&mut self, now_ms: u64) -> &mut Bucket {
        let second = now_ms / 1000;
        let b = &mut self.buckets[(second % WINDOW_S) as usize];
        if b.second != second {
            *b = Bucket {
                second,
                ..Bucket::default()
            };
        }
        b
    }

    /// Counts one request of the origin.
    pub fn note_request(&mut self, now_ms: u64) {
        self.bucket(now_ms).requests += 1;
    }

    /// `(requests, extra attempts)` over the window ending at `now_ms`.
    pub fn totals(&self, now_ms: u64) -> (u64, u64) {
        let now = now_ms / 1000;
        self.buckets
            .iter()
            .filter(|b| b.second + WINDOW_S > now && b.second <= now)
            .fold((0, 0), |(r, s), b| (r + b.requests, s + b.spent))
    }

    /// Takes one extra attempt when that keeps the extra attempts within
    /// `percent` of the requests over the window; says whether it did.
    pub fn try_spend(&mut self, percent: u32, now_ms: u64) -> bool {
        let (requests, spent) = self.totals(now_ms);
        let allowed = (spent + 1) * 100 <= u64::from(percent) * requests;
        if allowed {
            self.bucket(now_ms).spent += 1;
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_attempts_stay_within_the_percentage() {
        let mut b = Budget::new();
        let mut granted = 0;
        for i in 0..50u64 {
            b.note_request(1_000 + i);
            if b.try_spend(20, 1_000 + i) {
                granted += 1;
            }
            let (requests, spent) = b.totals(1_000 + i);
            assert!(spent * 100 <= 20 * requests, "{spent} of {requests}");
        }
        assert_eq!(granted, 10);
    }

    #[test]
    fn zero_percent_allows_none_and_100_percent_one_per_request() {
        let mut b = Budget::new();
        for i in 0..10 {
            b.note_request(i);
            assert!(!b.try_spend(0, i));
        }
        let mut b = Budget::new();
        for i in 0..10 {
            b.note_request(i);
            assert!(b.try_spend(100, i));
            assert!(
                !b.try_spend(100, i),
                "a second extra attempt for one request"
            );
        }
    }

    #[test]
    fn the_window_slides_over_ten_seconds() {
        let mut b = Budget::new();
        for _ in 0..10 {
            b.note_request(0);
        }
        assert!(b.try_spend(10, 0));
        assert!(!b.try_spend(10, 500));
        // 9.9 s later the requests still count; 10 s later they do not.
        assert_eq!(b.totals(9_999), (10, 1));
        assert_eq!(b.totals(10_000), (0, 0));
        assert!(
            !b.try_spend(10, 10_000),
            "no requests in the window, no budget"
        );
        // A bucket reused after the window starts from zero.
        b.note_request(20_000);
        assert_eq!(b.totals(20_000), (1, 0));
    }
}
