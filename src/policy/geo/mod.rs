//! `geo`: allow and deny lists over the caller's country and continent codes, read as
//! region choice reads them (`request.cf`, or the `x-dev-*` headers under
//! `DEV_GEO_HEADERS`). A code matches when it is the caller's country or continent
//! (so `NA` is Namibia and North America alike, as in `serves`). Deny is checked first;
//! a non-empty `allow` refuses a caller whose location is unknown.

use crate::config::GeoRule;

/// A compiled `geo` rule; codes upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoPolicy {
    allow: Vec<[u8; 2]>,
    deny: Vec<[u8; 2]>,
}

fn code(s: &str) -> Option<[u8; 2]> {
    match *s.trim().as_bytes() {
        [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

impl GeoPolicy {
    /// Compiles a validated rule; `None` when it restricts nothing.
    pub fn new(rule: &GeoRule) -> Option<GeoPolicy> {
        let list = |l: &[String]| l.iter().filter_map(|c| code(c)).collect::<Vec<_>>();
        let policy = GeoPolicy {
            allow: list(&rule.allow),
            deny: list(&rule.deny),
        };
        (!policy.allow.is_empty() || !policy.deny.is_empty()).then_some(policy)
    }

    /// Whether a caller from `country` on `continent` may pass.
    pub fn admits(&self, country: Option<&str>, continent: Option<&str>) -> bool {
        let caller: Vec<[u8; 2]> = [country, continent]
            .into_iter()
            .flatten()
            .filter_map(code)
            .collect();
        if caller.iter().any(|c| self.deny.contains(c)) {
            return false;
        }
        self.allow.is_empty() || caller.iter().any(|c| self.allow.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> GeoPolicy {
        let s = |l: &[&str]| l.iter().map(|e| e.to_string()).collect();
        GeoPolicy::new(&GeoRule {
            allow: s(allow),
            deny: s(deny),
        })
        .unwrap()
    }

    #[test]
    fn countries_and_continents() {
        let p = policy(&["EU", "US"], &["RU"]);
        assert!(p.admits(Some("DE"), Some("EU")));
        assert!(p.admits(Some("US"), Some("NA")));
        assert!(!p.admits(Some("CA"), Some("NA")));
        assert!(
            !p.admits(Some("RU"), Some("EU")),
            "deny wins over the continent's allow"
        );
        assert!(
            p.admits(Some("de"), Some("eu")),
            "codes compare case-insensitively"
        );
    }

    #[test]
    fn unknown_locations() {
        let allow = policy(&["DE"], &[]);
        assert!(!allow.admits(None, None));
        assert!(!allow.admits(Some(""), Some("EUROPE")));
        let deny = policy(&[], &["KP", "AN"]);
        assert!(deny.admits(None, None));
        assert!(
            !deny.admits(None, Some("AN")),
            "a continent alone is enough to deny"
        );
        assert!(deny.admits(Some("DE"), Some("EU")));
    }

    #[test]
    fn a_code_is_the_country_or_the_continent() {
        let p = policy(&[], &["NA"]);
        assert!(!p.admits(Some("NA"), Some("AF")), "Namibia");
        assert!(!p.admits(Some("US"), Some("NA")), "North America");
    }

    #[test]
    fn an_empty_rule_restricts_nothing() {
        assert_eq!(GeoPolicy::new(&GeoRule::default()), None);
    }
}
