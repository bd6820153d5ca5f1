//! The `cors` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Cross-origin resource sharing policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins (`https://app.example.com`), or `["*"]` for any.
    pub origins: Vec<String>,
    /// Methods allowed in preflight; default: the route's methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<Method>>,
    /// Request headers allowed in preflight; default: those the preflight asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Response headers exposed to the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Allow credentials (cookies, `Authorization`).
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
}

pub(crate) fn check_cors(cors: &Cors, subject: &str, problems: &mut Problems) {
    if cors.origins.is_empty() {
        problems.add(
            subject,
            "cors.origins must list at least one origin or \"*\"",
        );
    }
    for origin in &cors.origins {
        if origin == "*" {
            if cors.credentials {
                problems.add(
                    subject,
                    "cors.credentials cannot be true with origins [\"*\"] (browsers refuse it)",
                );
            }
            continue;
        }
        let ok = url::Url::parse(origin)
            .map(|u| u.origin().ascii_serialization() == origin.to_ascii_lowercase())
            .unwrap_or(false);
        if !ok {
            problems.add(
                subject,
                format!("cors.origins: \"{origin}\" must be \"*\" or an origin such as \"https://app.example.com\" (scheme, host, optional port, no path)"),
            );
        }
    }
    for h in cors.headers.iter().flatten().chain(&cors.expose_headers) {
        if !is_token(h) {
            problems.add(subject, format!("cors: \"{h}\" is not a header name"));
        }
    }
}
