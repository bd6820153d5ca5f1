//! The `consumer` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// `{"api_key": {"plans": [...]}}`: the consumer's plan must be listed (any
/// plan when the list is absent or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequirement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<String>,
}

/// `api_keys`: the request header holding the key and the upstream header
/// naming the consumer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeys {
    /// The request header that carries the key; default `x-api-key`.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// The upstream header that carries the consumer id; default `x-consumer-id`.
    #[serde(default = "default_consumer_header")]
    pub forward_consumer: String,
}

impl Default for ApiKeys {
    fn default() -> Self {
        ApiKeys {
            header: default_key_header(),
            forward_consumer: default_consumer_header(),
        }
    }
}

fn default_key_header() -> String {
    "x-api-key".into()
}

fn default_consumer_header() -> String {
    "x-consumer-id".into()
}

/// A consumer plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Requests per window and consumer, on every route the consumer calls,
    /// besides each route's own `rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<PlanRateLimit>,
    /// Requests per calendar period (UTC) and consumer, counted exactly
    /// across isolates and locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A plan's rate limit: always per consumer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRateLimit {
    #[schemars(range(min = 1))]
    pub requests: u32,
    #[schemars(range(min = 1))]
    pub window_s: u32,
    /// As a route's `rate_limit.scope`.
    #[serde(default, skip_serializing_if = "RateScope::is_default")]
    pub scope: RateScope,
    /// As a route's `rate_limit.on_error`; only with `scope: "global"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
}

impl PlanRateLimit {
    /// The limit as a route limit keyed by consumer.
    pub fn as_rate_limit(&self) -> RateLimit {
        RateLimit {
            requests: self.requests,
            window_s: self.window_s,
            key: KeyKind::Consumer,
            scope: self.scope,
            on_error: self.on_error,
        }
    }
}

/// A plan's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests admitted per period.
    #[schemars(range(min = 1))]
    pub requests: u64,
    /// `day` or `month`: calendar periods in UTC.
    pub period: QuotaPeriod,
}

/// A quota's calendar period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl<'de> Deserialize<'de> for QuotaPeriod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "day" => Ok(QuotaPeriod::Day),
            "month" => Ok(QuotaPeriod::Month),
            other => Err(serde::de::Error::custom(format!(
                "quota.period \"{other}\" must be \"day\" or \"month\""
            ))),
        }
    }
}

/// `plans` and `api_keys`.
pub(crate) fn check_consumers(file: &RoutesFile, problems: &mut Problems) {
    for (name, plan) in &file.plans {
        let subject = format!("plan \"{name}\"");
        if !is_name(name) {
            problems.add(
                &subject,
                "a plan name is 1 to 64 characters from A-Z a-z 0-9 . _ -",
            );
        }
        if let Some(rl) = &plan.rate_limit {
            check_rate_limit(&rl.as_rate_limit(), &subject, problems);
        }
        if plan.quota.is_some_and(|q| q.requests == 0) {
            problems.add(&subject, "quota.requests must be at least 1");
        }
    }
    let Some(keys) = &file.api_keys else {
        return;
    };
    if file.plans.is_empty() {
        problems.add("api_keys", "api_keys needs plans: a consumer is on a plan");
    }
    let claims: Vec<&str> = file
        .jwt
        .values()
        .flat_map(|p| p.forward_claims.values())
        .map(String::as_str)
        .collect();
    for (field, name) in [
        ("header", &keys.header),
        ("forward_consumer", &keys.forward_consumer),
    ] {
        if !is_token(name) {
            problems.add(
                "api_keys",
                format!("{field}: \"{name}\" is not a header name"),
            );
        } else if super::managed::is_managed(name, claims.iter().copied())
            || name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case(super::managed::PLAN_HEADER)
        {
            problems.add(
                "api_keys",
                format!("{field}: \"{name}\" is a header the gateway manages or reads itself"),
            );
        }
    }
    if keys.header.eq_ignore_ascii_case(&keys.forward_consumer) {
        problems.add("api_keys", "header and forward_consumer must differ");
    }
}
