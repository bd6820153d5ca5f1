//! What the gateway writes down: one line per request, and typed event lines for
//! what happens beside requests (breaker changes, KV and cache failures).
//!
//! Neither ever holds a token, a secret or an `authorization` header.

use serde::Serialize;

/// One upstream attempt, for the log line.
#[derive(Debug, Serialize)]
pub struct Attempt {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub ms: u64,
}

/// The one JSON log line written per request. Never holds tokens or secrets.
#[derive(Debug, Default, Serialize)]
pub struct LogLine {
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_template: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<u64>,
    /// The origin a weighted split chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Attempts after the first: how many times another region was tried.
    pub failovers: usize,
    /// A hedged attempt was sent (both attempts are in `attempts`; the loser's
    /// error is `cancelled`), or `budget` when the hedging budget was spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge: Option<&'static str>,
    /// A failover was not tried: the origin's retry budget was spent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retry_budget_exhausted: bool,
    /// `HIT`, `MISS` or `BYPASS` on cached routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// `allowed`, `limited`, `kv_error` or `limiter_error` on rate-limited routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<&'static str>,
    /// The verified token subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The consumer of the request's API key (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// How the API key fared: `valid`, `malformed` (refused without a KV
    /// read), `unknown`, `plan_not_accepted` or `kv_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<&'static str>,
    /// KV reads made to check the API key (0 when the isolate knew it).
    #[serde(skip_serializing_if = "is_zero")]
    pub kv_reads: u32,
    /// The consumer plan's rate limit: as `rate_limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_rate_limit: Option<&'static str>,
    /// The consumer's quota: `allowed`, `exceeded` or `limiter_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<&'static str>,
    /// Why the gateway answered with an error (never a token or secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A line about something other than one request's outcome, written as
/// `{"event": "<name>", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A region's circuit breaker changed state.
    CircuitBreaker {
        origin: &'a str,
        region: &'a str,
        transition: &'static str,
    },
    /// A KV read or write failed; rate limits fail open.
    KvError {
        op: &'static str,
        key: &'a str,
        error: &'a str,
    },
    /// A global rate limit's Durable Object could not be reached.
    LimiterError {
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<&'a str>,
        counter: &'a str,
        error: &'a str,
    },
    /// A rate-limit counter reached KV.
    KvWrite { key: &'a str },
    /// The edge cache failed; the request went upstream.
    CacheError { op: &'static str, error: &'a str },
    /// A provider's JWK Set could not be fetched or parsed.
    JwksError { provider: &'a str, error: &'a str },
    /// Part of the configuration could not be built (a secret is missing, say).
    ConfigError { error: &'a str },
    /// A metrics data point could not be written.
    MetricsError { error: &'a str },
}

impl Event<'_> {
    /// The JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"event\":\"unknown\"}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json() {
        let line = Event::KvError {
            op: "put",
            key: "rl:x",
            error: "down",
        }
        .to_json();
        assert_eq!(
            line,
            r#"{"event":"kv_error","op":"put","key":"rl:x","error":"down"}"#
        );
        assert_eq!(
            Event::CircuitBreaker {
                origin: "o",
                region: "r",
                transition: "open"
            }
            .to_json(),
            r#"{"event":"circuit_breaker","origin":"o","region":"r","transition":"open"}"#
        );
    }
}
