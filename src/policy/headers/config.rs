//! The `headers` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use std::collections::BTreeSet;

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Header edits: `remove` first, then `set`. Values may use the route's `{param}`s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Header name -> value (replaces any value the header had).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Header names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

pub(crate) fn check_header_rules(
    rules: &HeaderRules,
    field: &str,
    claims: &[&str],
    subject: &str,
    problems: &mut Problems,
) {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let names = rules
        .set
        .keys()
        .map(|n| ("set", n))
        .chain(rules.remove.iter().map(|n| ("remove", n)));
    for (op, name) in names {
        if !is_token(name) {
            problems.add(
                subject,
                format!("{field}.{op}: \"{name}\" is not a header name"),
            );
            continue;
        }
        if super::managed::is_managed(name, claims.iter().copied()) {
            problems.add(
                subject,
                format!("{field}.{op}: \"{name}\" is managed by the gateway and cannot be set or removed"),
            );
        }
        let folded = name.to_ascii_lowercase().replace('_', "-");
        if !seen.insert(folded) {
            problems.add(
                subject,
                format!("{field}: \"{name}\" is named twice (set and remove, or two spellings)"),
            );
        }
    }
    for (name, value) in &rules.set {
        if !is_header_value(value) {
            problems.add(
                subject,
                format!(
                    "{field}.set \"{name}\": the value must be printable text of at most 8 KiB"
                ),
            );
        }
    }
}
