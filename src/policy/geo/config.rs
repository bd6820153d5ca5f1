//! The `geo` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Location rules over the caller's country and continent codes, as region choice reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoRule {
    /// Country (ISO 3166 alpha-2) or continent codes admitted; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Country or continent codes refused (checked first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

pub(crate) fn check_geo(rule: &GeoRule, subject: &str, problems: &mut Problems) {
    for (list, codes) in [("allow", &rule.allow), ("deny", &rule.deny)] {
        for code in codes {
            if !is_geo_code(code) {
                problems.add(
                    subject,
                    format!("geo.{list}: \"{code}\" is not a continent code (AF AN AS EU NA OC SA) or an upper-case ISO 3166 country code"),
                );
            }
        }
    }
}

/// A country or continent code as the runtime reports them: two upper-case letters or
/// digits, the first a letter (`DE`, `EU`, Cloudflare's `T1` and `XX`).
pub fn is_geo_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 2
        && b[0].is_ascii_uppercase()
        && (b[1].is_ascii_uppercase() || b[1].is_ascii_digit())
}
