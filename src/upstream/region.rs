//! Region choice and failover order for one origin.
//!
//! [`Regions`] is compiled once per isolate from an [`Origin`]: every code a
//! region `serves` is indexed to the first region listing it, so choosing a
//! region for a request is two binary searches over a few bytes and allocates
//! nothing.
//!
//! Choice, for a caller's country and continent (Cloudflare's `cf.country`
//! and `cf.continent`):
//! 1. the first region whose `serves` lists the country;
//! 2. else the first region listing the continent;
//! 3. else the first region listing `*`;
//! 4. else the first region.
//!
//! Codes are compared case-insensitively. Note that some continent codes are
//! also country codes (`AF` Afghanistan, `AS` American Samoa, `NA` Namibia,
//! `SA` Saudi Arabia): a region serving the continent `AF` is also the
//! country match for a caller from Afghanistan. The routes file cannot tell
//! the two apart; step 1 simply wins.
//!
//! Failover then tries the chosen region first and the others in array order
//! after it, wrapping around, each at most once ([`Regions::order`]).

use crate::config::{Method, Origin};

/// The regions of one origin, compiled for choosing and failing over.
#[derive(Debug, Clone)]
pub struct Regions {
    /// Number of regions (at least 1 in a validated file).
    len: usize,
    /// Each upper-cased two-letter code with the first region listing it, sorted by code.
    first_by_code: Box<[([u8; 2], usize)]>,
    /// The first region listing `*`.
    wildcard: Option<usize>,
}

impl Regions {
    /// Compiles the `serves` lists of `origin`'s regions.
    ///
    /// Entries that are neither `*` nor two bytes long (rejected by validation)
    /// can never match and are ignored.
    pub fn new(origin: &Origin) -> Regions {
        let mut first_by_code: Vec<([u8; 2], usize)> = Vec::new();
        let mut wildcard = None;
        for (idx, region) in origin.regions.iter().enumerate() {
            for code in &region.serves {
                if code == "*" {
                    wildcard.get_or_insert(idx);
                } else if let Some(code) = code_key(code) {
                    first_by_code.push((code, idx));
                }
            }
        }
        // Sort by code, then region index, and keep the first region of each code.
        first_by_code.sort_unstable();
        first_by_code.dedup_by_key(|(code, _)| *code);
        Regions {
            len: origin.regions.len(),
            first_by_code: first_by_code.into_boxed_slice(),
            wildcard,
        }
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the origin has no region (never the case in a validated file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index of the region serving a caller from `country` on `continent`.
    ///
    /// Returns 0 (the first region) when nothing matches, and also for an
    /// origin without regions, which validation rejects.
    pub fn choose(&self, country: Option<&str>, continent: Option<&str>) -> usize {
        country
            .and_then(|c| self.lookup(c))
            .or_else(|| continent.and_then(|c| self.lookup(c)))
            .or(self.wildcard)
            .unwrap_or(0)
    }

    /// Failover order starting at `chosen`: `chosen`, then the regions after
    /// it in array order, wrapping around; every region exactly once.
    ///
    /// `chosen` is taken modulo the number of regions; an origin without
    /// regions yields nothing.
    pub fn order(&self, chosen: usize) -> impl Iterator<Item = usize> + use<> {
        let len = self.len;
        let start = chosen.checked_rem(len).unwrap_or(0);
        (0..len).map(move |i| (start + i) % len)
    }

    /// [`choose`](Self::choose) followed by [`order`](Self::order).
    pub fn failover_order(
        &self,
        country: Option<&str>,
        continent: Option<&str>,
    ) -> impl Iterator<Item = usize> + use<> {
        self.order(self.choose(country, continent))
    }

    fn lookup(&self, code: &str) -> Option<usize> {
        let key = code_key(code)?;
        self.first_by_code
            .binary_search_by(|(c, _)| c.cmp(&key))
            .ok()
            .map(|i| self.first_by_code[i].1)
    }
}

/// A two-byte code, upper-cased; `None` for anything else.
fn code_key(code: &str) -> Option<[u8; 2]> {
    match *code.as_bytes() {
        [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

/// True for the statuses after which another region is tried: 502, 503 and 504.
///
/// Other statuses, 500 included, are the origin's answer and are returned as is.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// True when a request with this method may be sent to another region after
/// a failed attempt (retryable status, connection error or timeout): the
/// idempotent methods GET, HEAD, OPTIONS, PUT and DELETE. POST and PATCH are
/// never retried.
pub fn is_retryable_method(method: Method) -> bool {
    method.is_idempotent()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Region;

    fn origin(regions: &[(&str, &[&str])]) -> Origin {
        Origin {
            regions: regions
                .iter()
                .map(|(name, serves)| Region {
                    name: name.to_string(),
                    url: Some(format!("https://{name}.example.com")),
                    service: None,
                    serves: serves.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            timeout_ms: 1000,
            circuit_breaker: None,
            retry_budget_percent: None,
            hedge: None,
        }
    }

    fn three() -> Regions {
        Regions::new(&origin(&[
            ("eu", &["EU", "AF"]),
            ("us", &["NA", "SA", "GB"]),
            ("ap", &["AS", "OC", "*"]),
        ]))
    }

    #[test]
    fn country_wins_over_continent() {
        let r = three();
        // GB is in Europe, but "us" lists the country explicitly.
        assert_eq!(r.choose(Some("GB"), Some("EU")), 1);
        assert_eq!(r.choose(Some("FR"), Some("EU")), 0);
    }

    #[test]
    fn continent_then_wildcard_then_first() {
        let r = three();
        assert_eq!(r.choose(Some("BR"), Some("SA")), 1);
        assert_eq!(r.choose(Some("JP"), Some("AS")), 2);
        // Unknown continent: the wildcard region.
        assert_eq!(r.choose(Some("XX"), Some("AN")), 2);
        assert_eq!(r.choose(None, None), 2);

        let no_wildcard = Regions::new(&origin(&[("a", &["EU"]), ("b", &["NA"])]));
        assert_eq!(no_wildcard.choose(Some("JP"), Some("AS")), 0);
        assert_eq!(no_wildcard.choose(None, None), 0);
        let no_serves = Regions::new(&origin(&[("a", &[]), ("b", &[])]));
        assert_eq!(no_serves.choose(Some("DE"), Some("EU")), 0);
    }

    #[test]
    fn first_listing_region_wins() {
        let r = Regions::new(&origin(&[
            ("a", &["NA"]),
            ("b", &["DE", "*"]),
            ("c", &["DE", "EU", "*"]),
            ("d", &["EU"]),
        ]));
        assert_eq!(r.choose(Some("DE"), Some("EU")), 1);
        assert_eq!(r.choose(Some("FR"), Some("EU")), 2);
        assert_eq!(r.choose(Some("JP"), Some("AS")), 1);
    }

    #[test]
    fn codes_compare_case_insensitively() {
        let r = three();
        assert_eq!(r.choose(Some("gb"), None), 1);
        assert_eq!(r.choose(Some("fr"), Some("eu")), 0);
        assert_eq!(r.choose(None, Some("Na")), 1);
    }

    #[test]
    fn odd_inputs_fall_through() {
        let r = three();
        assert_eq!(r.choose(Some(""), Some("EUR")), 2);
        assert_eq!(r.choose(Some("T1"), Some("É")), 2);
        // A country equal to a continent code matches as a country.
        assert_eq!(r.choose(Some("AF"), Some("AS")), 0);
    }

    #[test]
    fn order_wraps_and_visits_each_once() {
        let r = three();
        assert_eq!(r.order(0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(r.order(1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(r.order(2).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(r.order(4).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(
            r.failover_order(Some("JP"), Some("AS")).collect::<Vec<_>>(),
            [2, 0, 1]
        );

        let one = Regions::new(&origin(&[("only", &[])]));
        assert_eq!(one.order(0).collect::<Vec<_>>(), [0]);
        let none = Regions::new(&origin(&[]));
        assert!(none.is_empty());
        assert_eq!(none.order(3).count(), 0);
        assert_eq!(none.choose(Some("DE"), None), 0);
    }

    #[test]
    fn retryable_statuses_and_methods() {
        for s in [502, 503, 504] {
            assert!(is_retryable_status(s));
        }
        for s in [200, 304, 404, 429, 500, 501, 505, 599] {
            assert!(!is_retryable_status(s), "{s}");
        }
        for m in [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Put,
            Method::Delete,
        ] {
            assert!(is_retryable_method(m), "{m:?}");
        }
        assert!(!is_retryable_method(Method::Post));
        assert!(!is_retryable_method(Method::Patch));
    }
}
