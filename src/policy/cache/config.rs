//! The `cache` policy's part of `routes.json`: its serde types.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Edge cache rule of a route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Seconds a response is kept (a lower origin `max-age` wins).
    #[schemars(range(min = 1))]
    pub ttl_s: u32,
    /// Request headers whose values are added to the cache key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary: Vec<String>,
}
