//! The serde types of `routes.json`.
//!
//! These types are the single source of truth for the file format: the JSON
//! Schema (`routes.schema.json`) is generated from them and unknown fields are
//! rejected everywhere except inside JSON Web Keys, which carry many optional
//! members defined elsewhere (`x5c`, `x5t`, ...).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// A token issuer whose JWTs the gateway verifies.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    /// The `iss` claim must equal this.
    pub issuer: String,
    /// The `aud` claim must contain one of these, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// URL of a JWK Set, fetched and cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub jwks_url: Option<String>,
    /// An inline JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<JwkSet>,
    /// Name of a Worker secret or variable holding an HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_var: Option<String>,
    /// Allowed `alg` values; default: every algorithm the keys support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<Algorithm>>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// Claim name -> upstream request header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forward_claims: BTreeMap<String, String>,
    /// The token type required in the token's header `typ`: `at+jwt` accepts only
    /// OAuth 2.0 access tokens (RFC 9068: `typ` is `at+jwt` or `application/at+jwt`,
    /// any case), so that ID tokens of the same issuer are refused. Without it,
    /// `typ` is not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<TokenType>,
}

/// A token type a provider can require (the JOSE header `typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TokenType {
    /// An OAuth 2.0 access token in JWT format (RFC 9068).
    #[serde(rename = "at+jwt")]
    AtJwt,
}

impl TokenType {
    /// The value as written in `routes.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::AtJwt => "at+jwt",
        }
    }
}

pub(crate) fn default_leeway_s() -> u64 {
    60
}

/// A JWS algorithm the gateway can verify. `none` does not exist here.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

/// A JSON Web Key Set: `{"keys": [...]}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// A public JSON Web Key (RFC 7517). Members the gateway does not use are allowed and ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// A symmetric key member. Never accepted: HMAC secrets come from `secret_var`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// A private key member. Never accepted in a public key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

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

/// A route's `auth`: one requirement, or a list of alternatives.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum AuthSpec {
    One(Auth),
    Any(Vec<Auth>),
}

impl AuthSpec {
    /// The alternatives, in file order (one for a single requirement).
    pub fn alternatives(&self) -> &[Auth] {
        match self {
            AuthSpec::One(a) => std::slice::from_ref(a),
            AuthSpec::Any(list) => list,
        }
    }

    /// The `jwt` alternatives.
    pub fn jwts(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.alternatives()
            .iter()
            .filter_map(|a| a.jwt.as_deref().map(|j| (j, a.scopes.as_slice())))
    }

    /// The first `api_key` alternative.
    pub fn api_key(&self) -> Option<&ApiKeyRequirement> {
        self.alternatives().iter().find_map(|a| a.api_key.as_ref())
    }
}

impl Serialize for AuthSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuthSpec::One(a) => a.serialize(s),
            AuthSpec::Any(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AuthSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decided by the JSON type, so that an error names the field at fault
        // rather than "matches no variant".
        let value = serde_json::Value::deserialize(d)?;
        let spec = if value.is_array() {
            serde_json::from_value(value).map(AuthSpec::Any)
        } else {
            serde_json::from_value(value).map(AuthSpec::One)
        };
        spec.map_err(serde::de::Error::custom)
    }
}

/// One way to satisfy a route's `auth`: a bearer token of a provider (`jwt`,
/// with `scopes`) or an API key of a consumer (`api_key`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Name of an entry in `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// With `jwt`: every listed scope is required (`scope` claim, space separated, or `scp` array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A valid API key of a consumer on one of `plans`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyRequirement>,
}

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
    fn is_default(&self) -> bool {
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

/// Request validation: a request that fails gets 400 (415 for a body that is not
/// JSON) and is never sent upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRule {
    /// A JSON Schema (draft 2020-12) for the JSON request body of POST, PUT and PATCH
    /// requests (and of any request that carries a body): the path of a `.json`
    /// file relative to the routes file, embedded at build time, or the schema
    /// itself as an object. The route's `max_body_bytes` (default 1 MiB) bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodySchema>,
    /// Query parameters by name: their type, whether they are required, a pattern.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, QueryParam>,
}

/// Where a body schema is: a file, or inline (the build embeds files inline).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BodySchema {
    /// A path relative to the routes file (`schemas/create-user.json`).
    Path(String),
    /// The schema itself.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// One typed query parameter. Every occurrence of the parameter is checked, after
/// percent-decoding (`+` is a space); parameters not listed pass unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryParam {
    /// `integer` (an optional sign and digits), `number` (a JSON number),
    /// `boolean` (`true` or `false`) or `string` (default).
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// The request must carry the parameter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// An ECMA-262 regular expression the decoded value must match somewhere (as JSON
    /// Schema's `pattern`: anchor it with `^...$` to match the whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The type of a query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Integer,
    Number,
    Boolean,
    #[default]
    String,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::String => "string",
        }
    }
}
