//! The `ip` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Client address rules: a denied address, or one outside a non-empty `allow`, gets 403.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses admitted; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// CIDRs or single addresses refused (checked first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

pub(crate) fn check_ip(rule: &IpRule, subject: &str, problems: &mut Problems) {
    for (list, entries) in [("allow", &rule.allow), ("deny", &rule.deny)] {
        for entry in entries {
            if let Err(e) = parse_cidr(entry) {
                problems.add(subject, format!("ip.{list}: {e}"));
            }
        }
    }
}

/// Parses one entry of an `ip` list: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address. A prefix with host bits set (`10.0.0.1/8`) is refused: it is almost always a typo.
pub fn parse_cidr(entry: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(addr) = entry.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(addr));
    }
    let net: ipnet::IpNet = entry.parse().map_err(|_| {
        format!("\"{entry}\" is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an IP address")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "\"{entry}\" has bits set past its /{} prefix (the network is \"{}\")",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}
