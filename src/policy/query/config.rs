//! The `query` policy's part of `routes.json`: its serde types and their checks.
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

/// Query string edits: `remove` first, then `set`; every other parameter passes byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRules {
    /// Parameter name -> value (replaces every occurrence; added at the end).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Parameter names removed (every occurrence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

pub(crate) fn check_query_rules(rules: &QueryRules, subject: &str, problems: &mut Problems) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (op, name) in rules
        .set
        .keys()
        .map(|n| ("set", n))
        .chain(rules.remove.iter().map(|n| ("remove", n)))
    {
        if name.is_empty() {
            problems.add(
                subject,
                format!("query.{op}: a parameter name must not be empty"),
            );
        } else if !seen.insert(name) {
            problems.add(
                subject,
                format!("query: \"{name}\" is named twice (set and remove)"),
            );
        }
    }
}
