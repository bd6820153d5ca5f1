//! The `auth` policy's part of `routes.json`: its serde types and their checks.
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

pub(crate) fn check_jwt(name: &str, p: &JwtProvider, problems: &mut Problems) {
    let subject = format!("jwt \"{name}\"");
    if p.issuer.is_empty() {
        problems.add(&subject, "issuer must not be empty");
    }
    if p.jwks_url.is_none() && p.keys.is_none() && p.secret_var.is_none() {
        problems.add(&subject, "needs a key source: jwks_url, keys or secret_var");
    }
    if let Some(url) = &p.jwks_url {
        if let Err(e) = check_base_url(url).or_else(|e| {
            // A JWKS URL may have a query string; only the scheme and host matter here.
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
                _ => Err(e),
            }
        }) {
            problems.add(&subject, format!("jwks_url {e}"));
        }
    }
    if let Some(var) = &p.secret_var {
        if var.is_empty() {
            problems.add(&subject, "secret_var must name a Worker secret or variable");
        }
    }
    if let Some(set) = &p.keys {
        if set.keys.is_empty() {
            problems.add(&subject, "keys must hold at least one key");
        }
        for (i, k) in set.keys.iter().enumerate() {
            let which = k
                .kid
                .clone()
                .map_or(format!("#{}", i + 1), |kid| format!("\"{kid}\""));
            if k.k.is_some() || k.kty == "oct" {
                problems.add(&subject, format!("keys: key {which} is symmetric; HMAC secrets belong in secret_var, never in a key set"));
            } else if k.d.is_some() {
                problems.add(&subject, format!("keys: key {which} holds a private key (\"d\"); publish only the public key"));
            } else if !matches!(k.kty.as_str(), "RSA" | "EC" | "OKP") {
                problems.add(
                    &subject,
                    format!("keys: key {which} has unsupported kty \"{}\"", k.kty),
                );
            }
            if let Some(alg) = &k.alg {
                match Algorithm::from_name(alg) {
                    Some(a) if a.is_hmac() => problems.add(
                        &subject,
                        format!("keys: key {which} declares HMAC alg \"{alg}\""),
                    ),
                    Some(_) => {}
                    None => problems.add(
                        &subject,
                        format!("keys: key {which} has unsupported alg \"{alg}\""),
                    ),
                }
            }
        }
    }
    if let Some(algs) = &p.algorithms {
        if algs.is_empty() {
            problems.add(&subject, "algorithms must not be empty (leave it out to allow every algorithm the keys support)");
        }
        let has_asym_keys = p.jwks_url.is_some() || p.keys.is_some();
        for alg in algs {
            if alg.is_hmac() && p.secret_var.is_none() {
                problems.add(
                    &subject,
                    format!(
                        "algorithms: {} needs secret_var (HMAC algorithms only use a secret)",
                        alg.as_str()
                    ),
                );
            }
            if !alg.is_hmac() && !has_asym_keys {
                problems.add(
                    &subject,
                    format!("algorithms: {} needs jwks_url or keys", alg.as_str()),
                );
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (claim, header) in &p.forward_claims {
        let lower = header.to_ascii_lowercase();
        if !is_token(header) {
            problems.add(
                &subject,
                format!("forward_claims: \"{claim}\" -> \"{header}\" is not a header name"),
            );
        } else if super::managed::is_reserved_for_claims(header) {
            problems.add(&subject, format!("forward_claims: \"{claim}\" -> \"{header}\" names a header the gateway manages itself"));
        } else if !seen.insert(lower) {
            problems.add(
                &subject,
                format!("forward_claims: header \"{header}\" is set from two claims"),
            );
        }
        if claim.is_empty() {
            problems.add(&subject, "forward_claims: empty claim name");
        }
    }
}

/// A route's `auth`: each alternative is a `jwt` or an `api_key` requirement.
pub(crate) fn check_auth(
    file: &RoutesFile,
    invalid: &Invalid,
    auth: &AuthSpec,
    subject: &str,
    problems: &mut Problems,
) {
    let list = auth.alternatives();
    if list.is_empty() {
        problems.add(subject, "auth: the list of alternatives is empty");
    }
    let many = matches!(auth, AuthSpec::Any(_));
    let mut keys = 0;
    for (i, a) in list.iter().enumerate() {
        let field = if many {
            format!("auth[{i}]")
        } else {
            "auth".to_string()
        };
        match (&a.jwt, &a.api_key) {
            (Some(_), Some(_)) => problems.add(
                subject,
                format!("{field}: an alternative has either jwt or api_key, not both (list them as two alternatives)"),
            ),
            (None, None) => problems.add(subject, format!("{field}: needs jwt or api_key")),
            _ => {}
        }
        if let Some(jwt) = &a.jwt {
            if !file.jwt.contains_key(jwt) && !invalid.jwt.contains(jwt) {
                problems.add(subject, format!("{field}: unknown jwt provider \"{jwt}\""));
            }
        }
        for s in &a.scopes {
            if s.is_empty() || s.contains(' ') {
                problems.add(subject, format!("{field}.scopes: \"{s}\" is not a scope"));
            }
        }
        if !a.scopes.is_empty() && a.jwt.is_none() {
            problems.add(
                subject,
                format!("{field}.scopes: only a jwt requirement has scopes"),
            );
        }
        if let Some(k) = &a.api_key {
            keys += 1;
            if file.plans.is_empty() && invalid.plans.is_empty() {
                problems.add(
                    subject,
                    format!(
                        "{field}.api_key: the file has no plans, so no consumer can hold a key"
                    ),
                );
            }
            for p in &k.plans {
                if !file.plans.contains_key(p) && !invalid.plans.contains(p) {
                    problems.add(
                        subject,
                        format!("{field}.api_key.plans: unknown plan \"{p}\""),
                    );
                }
            }
        }
    }
    if keys > 1 {
        problems.add(
            subject,
            "auth: at most one api_key alternative (list its plans together)",
        );
    }
}
