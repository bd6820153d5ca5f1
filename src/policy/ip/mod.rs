//! `ip`: allow and deny lists of CIDRs over the client address (`cf-connecting-ip`).
//!
//! Deny is checked first; then, when `allow` is not empty, the address must be in it.
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address it maps, and an
//! IPv4 address also matches IPv6 entries written in mapped form (`::ffff:192.0.2.0/120`).
//! An unknown or unparsable address is refused by a non-empty `allow`, and cannot be
//! denied by a deny list alone.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::parse_cidr;
use crate::config::IpRule;

/// A compiled `ip` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

fn contains(net: &IpNet, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpNet::V6(v6), IpAddr::V4(v4)) => v6.contains(&v4.to_ipv6_mapped()),
        (net, addr) => net.contains(&addr),
    }
}

impl IpPolicy {
    /// Compiles a validated rule; `None` when it restricts nothing.
    pub fn new(rule: &IpRule) -> Result<Option<IpPolicy>, String> {
        let parse = |list: &[String]| -> Result<Vec<IpNet>, String> {
            list.iter().map(|e| parse_cidr(e)).collect()
        };
        let policy = IpPolicy {
            allow: parse(&rule.allow)?,
            deny: parse(&rule.deny)?,
        };
        Ok((!policy.allow.is_empty() || !policy.deny.is_empty()).then_some(policy))
    }

    /// Whether the client address may pass.
    pub fn admits(&self, client: Option<&str>) -> bool {
        let addr = client
            .and_then(|c| c.trim().parse::<IpAddr>().ok())
            .map(|a| a.to_canonical());
        let Some(addr) = addr else {
            return self.allow.is_empty();
        };
        if self.deny.iter().any(|n| contains(n, addr)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| contains(n, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> IpPolicy {
        let s = |l: &[&str]| l.iter().map(|e| e.to_string()).collect();
        IpPolicy::new(&IpRule {
            allow: s(allow),
            deny: s(deny),
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn ipv4_prefix_edges() {
        let p = policy(&["10.1.0.0/16"], &[]);
        assert!(p.admits(Some("10.1.0.0")));
        assert!(p.admits(Some("10.1.255.255")));
        assert!(!p.admits(Some("10.0.255.255")));
        assert!(!p.admits(Some("10.2.0.0")));
        let all = policy(&["0.0.0.0/0"], &[]);
        assert!(all.admits(Some("255.255.255.255")));
        assert!(
            !all.admits(Some("2001:db8::1")),
            "an IPv4 /0 is not every IPv6 address"
        );
        let host = policy(&["192.0.2.7"], &[]);
        assert!(host.admits(Some("192.0.2.7")));
        assert!(!host.admits(Some("192.0.2.8")));
    }

    #[test]
    fn ipv6_prefix_edges() {
        let p = policy(&["2001:db8:abcd::/48"], &[]);
        assert!(p.admits(Some("2001:db8:abcd::")));
        assert!(p.admits(Some("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff")));
        assert!(p.admits(Some("2001:DB8:ABCD:0:0:0:0:1")));
        assert!(!p.admits(Some("2001:db8:abce::")));
        assert!(!p.admits(Some("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_its_ipv4_address() {
        let p = policy(&["192.0.2.0/24"], &["192.0.2.66/32"]);
        assert!(p.admits(Some("::ffff:192.0.2.1")));
        assert!(p.admits(Some("::FFFF:c000:0201")));
        assert!(!p.admits(Some("::ffff:192.0.2.66")));
        assert!(!p.admits(Some("::ffff:198.51.100.1")));
        // An entry in mapped form matches the plain IPv4 address too.
        let mapped = policy(&["::ffff:198.51.100.0/120"], &[]);
        assert!(mapped.admits(Some("198.51.100.9")));
        assert!(mapped.admits(Some("::ffff:198.51.100.9")));
        assert!(!mapped.admits(Some("198.51.101.9")));
        // The IPv4-compatible form (deprecated) is not a mapping.
        assert!(!p.admits(Some("::192.0.2.1")));
    }

    #[test]
    fn deny_wins_and_empty_allow_admits_the_rest() {
        let p = policy(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert!(p.admits(Some("10.1.2.3")));
        assert!(!p.admits(Some("10.9.2.3")));
        let deny_only = policy(&[], &["203.0.113.0/24", "2001:db8::/32"]);
        assert!(!deny_only.admits(Some("203.0.113.200")));
        assert!(!deny_only.admits(Some("2001:db8::5")));
        assert!(deny_only.admits(Some("203.0.114.1")));
    }

    #[test]
    fn unknown_addresses() {
        let allow = policy(&["10.0.0.0/8"], &[]);
        let deny_only = policy(&[], &["10.0.0.0/8"]);
        for bad in [
            None,
            Some(""),
            Some("not-an-ip"),
            Some("10.0.0.1:80"),
            Some("[::1]"),
        ] {
            assert!(!allow.admits(bad), "{bad:?}");
            assert!(deny_only.admits(bad), "{bad:?}");
        }
        assert!(allow.admits(Some(" 10.0.0.1 ")));
    }

    #[test]
    fn an_empty_rule_restricts_nothing() {
        assert_eq!(IpPolicy::new(&IpRule::default()).unwrap(), None);
    }

    #[test]
    fn invalid_entries_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "::1/129",
            "10.0.0",
            "x/8",
            "10.0.0.0/",
            "2001:db8::1/32",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("10.0.0.1/8")
            .unwrap_err()
            .contains("\"10.0.0.0/8\""));
    }
}
