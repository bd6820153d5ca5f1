//! The serde types of `routes.json`.
//!
//! These types are the single source of truth for the file format: the JSON
//! Schema (`routes.schema.json`) is generated from them and unknown fields are
//! rejected everywhere except inside JSON Web Keys, which carry many optional
//! members defined elsewhere (`x5c`, `x5t`, ...).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::*;

/// The whole routes file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Edge gateway routes")]
pub struct RoutesFile {
    /// Editor hint: the path of this schema. Ignored by the gateway.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Upstream services by name.
    pub origins: BTreeMap<String, Origin>,
    /// Token providers by name, referenced from a route's `auth.jwt`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jwt: BTreeMap<String, JwtProvider>,
    /// Consumer plans by name: a rate limit and a quota per consumer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, Plan>,
    /// Where API keys are read from and how the consumer is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeys>,
    /// CORS policy for every route that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Default for every route (a route's own replaces it): largest request body accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Client address allow and deny lists (CIDRs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpRule>,
    /// Country and continent allow and deny lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoRule>,
    /// Header edits on the upstream request, after the gateway's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderRules>,
    /// Header edits on the origin's response, after the gateway's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderRules>,
    /// Parameter edits on the upstream query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QueryRules>,
    /// Request validation for every route that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateRule>,
    /// The routes, matched by host, path and method.
    pub routes: Vec<Route>,
    /// Serve `GET /__gateway/docs` (an HTML page of the routes, generated at build
    /// time) and `GET /__gateway/openapi.json`. They show route paths, methods,
    /// auth, limits and cache rules, never origin URLs, keys or secrets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub docs: bool,
}

/// A microservice deployed in one or more regions.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// Regional deployments, in failover order.
    #[schemars(length(min = 1))]
    pub regions: Vec<Region>,
    /// Time allowed for one attempt, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    /// Skip a region after consecutive failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Failover attempts beyond the first attempt stay within this percentage
    /// of the origin's requests over the last 10 seconds (per isolate); past
    /// it a failed attempt is answered as if no region were left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub retry_budget_percent: Option<u32>,
    /// Hedged requests: an idempotent request without a body whose attempt
    /// has no response headers after `after_ms` also goes to the next region;
    /// the first good answer wins and the other attempt is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<Hedge>,
}

/// An origin's hedging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hedge {
    /// How long the first attempt may go without response headers before the
    /// second starts, in milliseconds.
    #[schemars(range(min = 1))]
    pub after_ms: u64,
    /// Hedged attempts stay within this percentage of the origin's requests
    /// over the last 10 seconds (per isolate), so a slow origin never doubles
    /// its load.
    #[schemars(range(min = 1, max = 100))]
    pub budget_percent: u32,
}

pub(crate) fn default_timeout_ms() -> u64 {
    10_000
}

/// One regional deployment of an origin.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Unique within the origin; used in logs.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `http` or `https` base URL; a path prefix is prepended to the upstream path.
    /// Exactly one of `url` and `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: Option<String>,
    /// A Worker service binding (`[[services]]` in `wrangler.toml`) that
    /// requests go through instead of a URL. Exactly one of `url` and `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub service: Option<String>,
    /// Continent codes (AF AN AS EU NA OC SA), ISO 3166 alpha-2 country codes, or `*`.
    #[serde(default)]
    pub serves: Vec<String>,
}

/// Circuit breaker settings for every region of an origin.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Consecutive failed attempts that open the breaker.
    #[schemars(range(min = 1))]
    pub failures: u32,
    /// Seconds a region is skipped once open; then one trial request decides.
    #[schemars(range(min = 1))]
    pub cooldown_s: u64,
}

/// HTTP methods a route can allow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Parses a request method; method names are case-sensitive (RFC 9110).
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Safe to send again after a failed attempt (RFC 9110 9.2.2).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }
}

/// One route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique; used in logs, metrics and rate-limit keys.
    #[schemars(length(min = 1))]
    pub id: String,
    /// matchit syntax: `/users/{id}`, catch-all `/files/{*rest}`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// Exact host, or `*.example.com` for any subdomain; default any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Allowed methods; default all. GET implies HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<Method>>,
    /// Name of an entry in `origins`, or a weighted split over several:
    /// `[{"origin": "users-v1", "weight": 90}, {"origin": "users-v2", "weight": 10}]`.
    pub origin: OriginRef,
    /// With a split `origin`: the same value of this key (`ip`, `sub`,
    /// `consumer` or `header:NAME`) always goes to the same origin while the
    /// weights do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "Option<String>",
        regex(pattern = r"^(ip|sub|consumer|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")
    )]
    pub sticky: Option<KeyKind>,
    /// Upstream path template over the path's parameters; default the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub rewrite: Option<String>,
    /// Require a verified token or an API key: one requirement, or a list of
    /// alternatives of which the request must satisfy one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Limit requests per key and window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Serve from and fill the edge cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheRule>,
    /// Accept `Upgrade: websocket` requests (GET only) and proxy the
    /// connection to the origin once the chain has passed the upgrade.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket: bool,
    /// Overrides the origin's `timeout_ms` for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Overrides the top-level CORS policy for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Replaces the top-level `max_body_bytes`: largest request body accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Client address allow and deny lists (CIDRs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpRule>,
    /// Country and continent allow and deny lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoRule>,
    /// Header edits on the upstream request, after the gateway's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderRules>,
    /// Header edits on the origin's response, after the gateway's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderRules>,
    /// Parameter edits on the upstream query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QueryRules>,
    /// Replaces the top-level `validate`: the JSON body schema and typed query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateRule>,
}

/// A route's `origin`: one origin by name, or a weighted split.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum OriginRef {
    One(String),
    Split(Vec<WeightedOrigin>),
}

/// One origin of a split and its share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedOrigin {
    /// Name of an entry in `origins`.
    pub origin: String,
    /// Relative share of the route's requests; 0 sends it none.
    pub weight: u32,
}

impl OriginRef {
    /// The origin names, in file order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            OriginRef::One(name) => vec![name.as_str()],
            OriginRef::Split(list) => list.iter().map(|w| w.origin.as_str()).collect(),
        }
    }

    /// The first origin named.
    pub fn first(&self) -> &str {
        match self {
            OriginRef::One(name) => name,
            OriginRef::Split(list) => list.first().map_or("", |w| w.origin.as_str()),
        }
    }
}

impl From<&str> for OriginRef {
    fn from(name: &str) -> Self {
        OriginRef::One(name.to_string())
    }
}

impl std::fmt::Display for OriginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginRef::One(name) => f.write_str(name),
            OriginRef::Split(list) => {
                for (i, w) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", w.origin, w.weight)?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for OriginRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OriginRef::One(name) => name.serialize(s),
            OriginRef::Split(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for OriginRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        const REFUSED: &str = "origin must be an origin name or a list of {\"origin\", \"weight\"}";
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OriginRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an origin name or a list of {\"origin\", \"weight\"}")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<OriginRef, E> {
                Ok(OriginRef::One(name.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, name: String) -> Result<OriginRef, E> {
                Ok(OriginRef::One(name))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<OriginRef, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(OriginRef::Split)
            }
            // Anything else: the message validation shows.
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<OriginRef, E> {
                Err(E::custom(REFUSED))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<OriginRef, E> {
                Err(E::custom(REFUSED))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<OriginRef, E> {
                Err(E::custom(REFUSED))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<OriginRef, E> {
                Err(E::custom(REFUSED))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<OriginRef, E> {
                Err(E::custom(REFUSED))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<OriginRef, A::Error> {
                Err(serde::de::Error::custom(REFUSED))
            }
        }
        // Without copying the value first (this runs for every route an isolate reads).
        d.deserialize_any(Visit)
    }
}
