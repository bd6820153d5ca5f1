//! The `ratelimit` policy's part of `routes.json`: its serde types.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Rate limit of a route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests admitted per window and key.
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// Window length in seconds.
    #[schemars(range(min = 1))]
    pub window_s: u32,
    /// `ip` (default), `sub`, `consumer`, `route`, or `header:NAME`.
    #[serde(default)]
    #[schemars(
        with = "String",
        regex(pattern = r"^(ip|sub|consumer|route|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")
    )]
    pub key: KeyKind,
    /// `isolate` (default): exact per isolate, converging through KV.
    /// `global`: exact across isolates and locations, counted by Durable Objects.
    #[serde(default, skip_serializing_if = "RateScope::is_default")]
    pub scope: RateScope,
    /// What a `global` limit does when its Durable Object cannot be reached:
    /// `allow` (default: let the request through and log it) or `deny` (503).
    /// Only with `scope: "global"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
}

/// What a rate limit counts by: `rate_limit.key`, parsed once, with the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum KeyKind {
    /// The client address (`cf-connecting-ip`).
    #[default]
    Ip,
    /// The verified token's `sub` claim.
    Sub,
    /// The consumer of the request's API key.
    Consumer,
    /// Nothing: one counter for the whole route.
    Route,
    /// The value of a request header; the name is kept lowercase.
    Header(String),
}

impl KeyKind {
    /// Parses `ip`, `sub`, `route` or `header:NAME` (NAME a header token, lowercased).
    pub fn parse(spec: &str) -> Option<KeyKind> {
        match spec {
            "ip" => Some(KeyKind::Ip),
            "sub" => Some(KeyKind::Sub),
            "consumer" => Some(KeyKind::Consumer),
            "route" => Some(KeyKind::Route),
            _ => spec
                .strip_prefix("header:")
                .filter(|name| super::validate::is_token(name))
                .map(|name| KeyKind::Header(name.to_ascii_lowercase())),
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Ip => f.write_str("ip"),
            KeyKind::Sub => f.write_str("sub"),
            KeyKind::Consumer => f.write_str("consumer"),
            KeyKind::Route => f.write_str("route"),
            KeyKind::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl TryFrom<String> for KeyKind {
    type Error = String;

    fn try_from(spec: String) -> Result<Self, Self::Error> {
        KeyKind::parse(&spec).ok_or_else(|| {
            format!("rate_limit.key \"{spec}\" must be ip, sub, consumer, route or header:NAME")
        })
    }
}

impl From<KeyKind> for String {
    fn from(key: KeyKind) -> String {
        key.to_string()
    }
}

/// Where a rate limit is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    /// Exact per isolate; isolates converge through KV.
    #[default]
    Isolate,
    /// Exact everywhere: budgets leased from a Durable Object.
    Global,
}

impl RateScope {
    pub(crate) fn is_default(&self) -> bool {
        *self == RateScope::Isolate
    }
}

impl<'de> Deserialize<'de> for RateScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "isolate" => Ok(RateScope::Isolate),
            "global" => Ok(RateScope::Global),
            other => Err(serde::de::Error::custom(format!(
                "rate_limit.scope \"{other}\" must be \"isolate\" or \"global\""
            ))),
        }
    }
}

/// What a global limit does when its limiter cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Let the request through; the log line says `limiter_error`.
    Allow,
    /// Answer 503.
    Deny,
}

impl<'de> Deserialize<'de> for OnError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "allow" => Ok(OnError::Allow),
            "deny" => Ok(OnError::Deny),
            other => Err(serde::de::Error::custom(format!(
                "rate_limit.on_error \"{other}\" must be \"allow\" or \"deny\""
            ))),
        }
    }
}

/// The checks of one `rate_limit`, a route's or a plan's: what does not depend on
/// the route it is on.
pub(crate) fn check_rate_limit(rl: &RateLimit, subject: &str, problems: &mut Problems) {
    if rl.requests == 0 {
        problems.add(subject, "rate_limit.requests must be at least 1");
    }
    if rl.window_s == 0 {
        problems.add(subject, "rate_limit.window_s must be at least 1");
    }
    if rl.on_error.is_some() && rl.scope != RateScope::Global {
        problems.add(
            subject,
            "rate_limit.on_error is only valid with rate_limit.scope \"global\"",
        );
    }
}
