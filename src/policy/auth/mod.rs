//! JSON Web Token verification for routes with `auth.jwt`: pure and I/O free.
//!
//! # Flow
//!
//! 1. Once per isolate, compile every `jwt` provider with [`Provider::new`]. Inline `keys`
//!    are imported there; the caller passes the bytes of the `secret_var` secret.
//! 2. Per request, [`Token::parse`] the `Authorization` header; an error is final.
//! 3. When [`Provider::needs_jwks_for`] the token, ask the provider's [`JwksCache`] for a
//!    [`Plan`], fetch `jwks_url` when told to, and pass [`JwksCache::keys`] to
//!    [`verify_token`]. `None` there (nothing cached, fetch failed) yields
//!    [`AuthError::KeysUnavailable`], which the caller answers with 503.
//! 4. On success, remove every client-sent header named by [`Provider::forward_headers`]
//!    from the upstream request, then set [`forwarded_headers`].
//!
//! [`verify`] parses and verifies in one call, for providers without `jwks_url` or callers
//! that hold the keys already.
//!
//! # Rules
//!
//! - The token comes from `Authorization: Bearer <token>` (scheme case-insensitive). No
//!   header, another scheme, or an empty token is [`AuthError::Missing`].
//! - Tokens longer than [`MAX_TOKEN_BYTES`] are rejected before any decoding.
//! - Only compact JWS with `alg` among HS256/384/512, RS256/384/512, PS256/384/512, ES256,
//!   ES384 and EdDSA; `none` and anything else is rejected, as is a `crit` header.
//! - `HS*` verifies only with the `secret_var` secret, never with a JWK: public keys can't be
//!   used as HMAC secrets (algorithm confusion). Other algorithms verify only with keys of
//!   the matching type (RSA: `RS*`/`PS*`; EC P-256: `ES256`; EC P-384: `ES384`; OKP Ed25519:
//!   `EdDSA`) whose own `alg`, if any, equals the token's; and the provider's `algorithms`
//!   must allow it.
//! - `kid` selects the key. Without `kid`, at most [`MAX_KEY_ATTEMPTS`] compatible keys
//!   are tried.
//! - **`exp` is required**: tokens without it are rejected, as most verifiers do by default.
//!   `exp` and `nbf` are checked with the provider's `leeway_s`; `iss` must equal `issuer`;
//!   with `audiences`, `aud` (string or array) must contain one of them.
//! - Scopes come from `scope` and `scp` (space separated string or array of strings);
//!   every scope a route requires must be granted.
//! - Forwarded claims: a string as is, any other JSON value as compact JSON. A value with
//!   a control character (CR, LF, NUL, ...; tab excepted) is **not forwarded**: the header is
//!   left unset, as for a missing claim, and the token still passes.

mod es384;
pub mod jwks;
mod keys;
pub mod phase;
pub mod seen;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cell::RefCell;

pub use es384::{Es384, ES384_SIGNATURE_LEN};
pub use jwks::{max_age, JwksCache, Plan};
pub use keys::{
    parse_jwks, Key, KeySet, PublicKey, MAX_JWKS_BYTES, MAX_JWKS_KEYS, MAX_RSA_BITS, MIN_RSA_BITS,
};

use crate::config::validate::is_token;
use crate::config::{Algorithm, JwtProvider, TokenType};
use keys::{AlgSet, HmacKeys};
use seen::SeenSignatures;

/// Longest token accepted, in bytes; longer ones are malformed without being decoded.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys tried for a token without `kid`.
pub const MAX_KEY_ATTEMPTS: usize = 3;
/// Shortest `secret_var` secret accepted for `HS*` (the HS256 minimum of RFC 7518 3.2).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

const MALFORMED: &str = "malformed token";
const TOO_LARGE: &str = "token too large";
const UNSUPPORTED_ALG: &str = "unsupported algorithm";
const DISALLOWED_ALG: &str = "algorithm not allowed";
const CRITICAL_HEADER: &str = "unsupported critical header";
const NO_KEY: &str = "no key for algorithm";
const BAD_SIGNATURE: &str = "invalid signature";
const BAD_CLAIMS: &str = "malformed claims";
const NO_EXP: &str = "missing exp";
const EXPIRED: &str = "token expired";
const NOT_YET_VALID: &str = "token not yet valid";
const WRONG_ISSUER: &str = "wrong issuer";
const WRONG_AUDIENCE: &str = "wrong audience";
const WRONG_TYPE: &str = "wrong token type";

/// Why a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token: no `Authorization` header, another scheme, or an empty token.
    Missing,
    /// The token is malformed, badly signed, expired, for someone else, ... The text is a
    /// short fixed reason for logs and `error_description`; it never contains token content.
    Invalid(&'static str),
    /// No key has the token's `kid`.
    UnknownKid,
    /// A required scope is not granted; holds all required scopes, space separated.
    InsufficientScope(String),
    /// The provider's keys could not be fetched and none are cached.
    KeysUnavailable,
}

impl AuthError {
    /// HTTP status to answer with: 401, 403 for scopes, 503 when keys are unavailable.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid(_) | AuthError::UnknownKid => 401,
            AuthError::InsufficientScope(_) => 403,
            AuthError::KeysUnavailable => 503,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 section 3). For [`AuthError::KeysUnavailable`]
    /// it is a bare `Bearer`, which a 503 may as well omit.
    pub fn www_authenticate(&self) -> String {
        match self {
            AuthError::Missing | AuthError::KeysUnavailable => "Bearer".to_string(),
            AuthError::Invalid(_) | AuthError::UnknownKid => format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quoted(self.reason())
            ),
            AuthError::InsufficientScope(scopes) => format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                quoted(scopes)
            ),
        }
    }

    /// A short reason for logs.
    pub fn reason(&self) -> &str {
        match self {
            AuthError::Missing => "missing token",
            AuthError::Invalid(reason) => reason,
            AuthError::UnknownKid => "unknown key id",
            AuthError::InsufficientScope(_) => "insufficient scope",
            AuthError::KeysUnavailable => "signing keys unavailable",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AuthError {}

/// The body of a quoted-string: visible ASCII and spaces, `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| matches!(c, ' '..='~')) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A token provider compiled from its configuration: keys imported, lists indexed.
#[derive(Debug)]
pub struct Provider {
    name: String,
    issuer: String,
    audiences: Option<Vec<String>>,
    algorithms: AlgSet,
    leeway_s: u64,
    hmac: Option<HmacKeys>,
    inline: Option<KeySet>,
    jwks: bool,
    /// `(claim, lower-case header)`, in configuration order.
    forward: Vec<(String, String)>,
    /// The required header `typ`, if any.
    typ: Option<TokenType>,
}

impl Provider {
    /// Compiles the provider `name`. `secret` is the value of its `secret_var` (ignored when
    /// `secret_var` is not configured). Fails, with a message naming the provider and the
    /// offending key or setting, when:
    /// - an inline key is unusable (symmetric, private, weak, unknown type or `alg`, ...);
    /// - `secret_var` is configured but `secret` is `None` or shorter than
    ///   [`MIN_HMAC_SECRET_BYTES`];
    /// - `algorithms` lists an algorithm no key source can verify, or nothing can be verified;
    /// - a `forward_claims` header name is not an HTTP token or is reserved or repeated.
    pub fn new(name: &str, cfg: &JwtProvider, secret: Option<&[u8]>) -> Result<Provider, String> {
        let fail = |message: String| format!("jwt provider {name:?}: {message}");
        let hmac = match (&cfg.secret_var, secret) {
            (None, _) => None,
            (Some(var), None) => return Err(fail(format!("secret_var {var:?} is not set"))),
            (Some(var), Some(secret)) if secret.len() < MIN_HMAC_SECRET_BYTES => {
                return Err(fail(format!(
                    "secret {var:?} is shorter than {MIN_HMAC_SECRET_BYTES} bytes"
                )))
            }
            (Some(_), Some(secret)) => Some(HmacKeys::new(secret)),
        };
        let inline = match &cfg.keys {
            Some(set) => Some(KeySet::from_config(set).map_err(fail)?),
            None => None,
        };

        let mut supported = AlgSet::EMPTY;
        if hmac.is_some() {
            supported = supported.union(AlgSet::HMAC);
        }
        if cfg.jwks_url.is_some() || inline.as_ref().is_some_and(|k| !k.is_empty()) {
            supported = supported.union(AlgSet::ASYMMETRIC);
        }
        if supported.is_empty() {
            return Err(fail(
                "no key source: set jwks_url, keys or secret_var".into(),
            ));
        }
        let algorithms = match &cfg.algorithms {
            None => supported,
            Some(list) => {
                if let Some(alg) = list.iter().find(|a| !supported.contains(**a)) {
                    let needs = if alg.is_hmac() {
                        "secret_var"
                    } else {
                        "keys or jwks_url"
                    };
                    return Err(fail(format!("algorithm {} needs {needs}", alg.as_str())));
                }
                AlgSet::from_slice(list)
            }
        };
        if algorithms.is_empty() {
            return Err(fail("algorithms is empty".into()));
        }

        let mut forward: Vec<(String, String)> = Vec::with_capacity(cfg.forward_claims.len());
        for (claim, header) in &cfg.forward_claims {
            let lower = header.to_ascii_lowercase();
            if !is_token(&lower) {
                return Err(fail(format!(
                    "forward_claims: {header:?} is not a header name"
                )));
            }
            if crate::config::managed::is_reserved_for_claims(&lower) {
                return Err(fail(format!(
                    "forward_claims: header {header:?} is reserved"
                )));
            }
            if forward.iter().any(|(_, h)| *h == lower) {
                return Err(fail(format!(
                    "forward_claims: header {header:?} is used twice"
                )));
            }
            forward.push((claim.clone(), lower));
        }

        Ok(Provider {
            name: name.to_string(),
            issuer: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            algorithms,
            leeway_s: cfg.leeway_s,
            hmac,
            inline,
            jwks: cfg.jwks_url.is_some(),
            forward,
            typ: cfg.typ,
        })
    }

    /// The provider's name in `routes.json`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the provider has a `jwks_url` whose keys the caller must fetch and cache.
    pub fn needs_jwks(&self) -> bool {
        self.jwks
    }

    /// Whether verifying `token` may need the fetched JWKS: the provider has a `jwks_url`,
    /// the token's algorithm is allowed and asymmetric, and its `kid` (if any) is not one
    /// of the inline keys. Lets the caller skip the cache for tokens it will reject anyway.
    pub fn needs_jwks_for(&self, token: &Token<'_>) -> bool {
        self.jwks
            && !token.alg.is_hmac()
            && self.algorithms.contains(token.alg)
            && !token
                .kid()
                .is_some_and(|kid| self.inline.as_ref().is_some_and(|k| k.contains_kid(kid)))
    }

    /// Lower-case names of the headers set from claims. The caller must strip these from the
    /// client's request, so that a header left unset cannot be supplied by the client.
    pub fn forward_headers(&self) -> impl Iterator<Item = &str> {
        self.forward.iter().map(|(_, header)| header.as_str())
    }

    /// The keys to try for a token with an asymmetric `alg`, in order: those of the inline
    /// set, then of `fetched`, that accept `alg` and have the token's `kid` (any key
    /// without one), at most [`MAX_KEY_ATTEMPTS`]. None is an error: the keys are
    /// unavailable, no key has the `kid`, or none fits the algorithm.
    fn signature_keys<'k>(
        &'k self,
        token: &Token<'_>,
        fetched: Option<&'k KeySet>,
    ) -> Result<[Option<&'k Key>; MAX_KEY_ATTEMPTS], AuthError> {
        let fetched = fetched.filter(|_| self.jwks);
        let keys = [self.inline.as_ref(), fetched]
            .into_iter()
            .flatten()
            .flat_map(KeySet::keys);
        let (mut chosen, mut tried, mut kid_known) = ([None; MAX_KEY_ATTEMPTS], 0, false);
        for key in keys {
            if let Some(kid) = token.kid() {
                if key.kid() != Some(kid) {
                    continue;
                }
                kid_known = true;
            }
            if !key.accepts(token.alg) {
                continue;
            }
            chosen[tried] = Some(key);
            tried += 1;
            if tried == MAX_KEY_ATTEMPTS {
                break;
            }
        }
        if tried > 0 {
            Ok(chosen)
        } else if self.jwks && fetched.is_none() {
            Err(AuthError::KeysUnavailable)
        } else if token.kid().is_some() && !kid_known {
            Err(AuthError::UnknownKid)
        } else {
            Err(AuthError::Invalid(NO_KEY))
        }
    }

    /// Verifies the token's signature: `HS*` with the secret, here; any other
    /// algorithm with the inline keys or `fetched`, through `verifier`.
    async fn check_signature<V: SignatureVerifier + ?Sized>(
        &self,
        verifier: &V,
        token: &Token<'_>,
        fetched: Option<&KeySet>,
    ) -> Result<(), AuthError> {
        let (alg, input, signature) = (token.alg, token.signing_input.as_bytes(), &token.signature);
        if alg.is_hmac() {
            return match &self.hmac {
                Some(hmac) if hmac.verify(alg, input, signature) => Ok(()),
                _ => Err(AuthError::Invalid(BAD_SIGNATURE)),
            };
        }
        for key in self.signature_keys(token, fetched)?.into_iter().flatten() {
            let check = SignatureCheck {
                alg,
                key,
                signing_input: input,
                signature,
            };
            if verifier.verify_signature(&check).await {
                return Ok(());
            }
        }
        Err(AuthError::Invalid(BAD_SIGNATURE))
    }
}

/// One asymmetric signature to check (`RS*`, `PS*`, `ES256`, `ES384`, `EdDSA`): the key
/// is one that [`Key::accepts`]-style rules picked for the token's algorithm, so the
/// pair always fits.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    pub alg: Algorithm,
    pub key: &'a Key,
    /// `header.payload` of the token, the signed bytes.
    pub signing_input: &'a [u8],
    /// The decoded signature (for ECDSA, `r || s` as JWS and WebCrypto both have it).
    pub signature: &'a [u8],
}

impl SignatureCheck<'_> {
    /// Checks the signature with the Rust verifiers (`jwt-compact`, `p384`). The
    /// native verifier; in wasm only for the tests that hold WebCrypto to it.
    #[cfg(any(not(target_arch = "wasm32"), test))]
    pub fn verify_in_rust(&self) -> bool {
        self.key
            .verify(self.alg, self.signing_input, self.signature)
    }
}

/// Who checks asymmetric signatures: on the Worker, the runtime's WebCrypto (native
/// code, a fraction of the Rust verifiers' cost in wasm); natively, the Rust verifiers.
/// `false` for a signature that does not verify or cannot be checked.
#[allow(async_fn_in_trait)]
pub trait SignatureVerifier {
    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool;
}

/// The Rust verifiers, as a [`SignatureVerifier`]: their futures are ready at once.
#[cfg(any(not(target_arch = "wasm32"), test))]
#[derive(Debug, Clone, Copy, Default)]
pub struct RustVerifier;

#[cfg(any(not(target_arch = "wasm32"), test))]
impl SignatureVerifier for RustVerifier {
    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool {
        check.verify_in_rust()
    }
}

/// A decoded, not yet verified token: parse it once, ask for its `kid`, then verify it.
/// Its `Debug` shows only `alg` and `kid`, never token content.
pub struct Token<'a> {
    /// `header.payload`, the signed bytes.
    signing_input: &'a str,
    alg: Algorithm,
    kid: Option<String>,
    typ: Typ,
    /// The decoded payload (JSON), parsed only after the signature checks out.
    claims: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl<'a> Token<'a> {
    /// Takes the bearer token from an `Authorization` header value and decodes it.
    ///
    /// Errors: [`AuthError::Missing`] without a bearer token; [`AuthError::Invalid`] for a
    /// token longer than [`MAX_TOKEN_BYTES`] (checked first), not three base64url parts,
    /// a header that is not JSON, an `alg` other than the supported ones, or a `crit` header.
    pub fn parse(authorization: Option<&'a str>) -> Result<Token<'a>, AuthError> {
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            #[serde(default)]
            kid: Option<String>,
            #[serde(default)]
            crit: Option<Value>,
            #[serde(default)]
            typ: Option<Value>,
        }

        let token = authorization.and_then(bearer).ok_or(AuthError::Missing)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(TOO_LARGE));
        }
        let malformed = |_| AuthError::Invalid(MALFORMED);
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Invalid(MALFORMED));
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header = URL_SAFE_NO_PAD.decode(header).map_err(malformed)?;
        let header: Header =
            serde_json::from_slice(&header).map_err(|_| AuthError::Invalid(MALFORMED))?;
        if header.crit.is_some() {
            return Err(AuthError::Invalid(CRITICAL_HEADER));
        }
        let alg = Algorithm::from_name(&header.alg).ok_or(AuthError::Invalid(UNSUPPORTED_ALG))?;
        let claims = URL_SAFE_NO_PAD.decode(payload).map_err(malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(malformed)?;
        Ok(Token {
            signing_input,
            alg,
            kid: header.kid,
            typ: match header.typ {
                None => Typ::Absent,
                Some(Value::String(t)) => Typ::Is(t),
                Some(_) => Typ::NotAString,
            },
            claims,
            signature,
        })
    }

    /// The `alg` of the header.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` of the header, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// The header `typ` of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Typ {
    Absent,
    Is(String),
    NotAString,
}

/// Whether a header `typ` names `required`. `typ` is a media type (RFC 7515 4.1.9):
/// compared ASCII case-insensitively, and the `application/` prefix may be left out;
/// so for `at+jwt`, `at+jwt` and `application/at+jwt` in any case (RFC 9068 2.1).
pub fn typ_matches(required: TokenType, typ: &str) -> bool {
    const APPLICATION: &str = "application/";
    let subtype = if typ.len() > APPLICATION.len()
        && typ.as_bytes()[..APPLICATION.len()].eq_ignore_ascii_case(APPLICATION.as_bytes())
    {
        &typ[APPLICATION.len()..]
    } else {
        typ
    };
    subtype.eq_ignore_ascii_case(required.as_str())
}

/// The token of a `Bearer` credential, trimmed; `None` for another scheme or an empty token.
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim_start_matches([' ', '\t']);
    let bytes = value.as_bytes();
    if bytes.len() < 7
        || !bytes[..6].eq_ignore_ascii_case(b"bearer")
        || !matches!(bytes[6], b' ' | b'\t')
    {
        return None;
    }
    // Byte 6 is ASCII, so 7 is a char boundary.
    let token = value[7..].trim_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

/// The `kid` of the bearer token in `authorization`, without verifying anything; `None`
/// when there is no kid or the token is rejected by [`Token::parse`]. Prefer parsing once
/// with [`Token::parse`] and calling [`Token::kid`].
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn token_kid(authorization: Option<&str>) -> Option<String> {
    Token::parse(authorization).ok()?.kid
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `sub` claim, when a string.
    pub subject: Option<String>,
    /// Granted scopes, from `scope` then `scp`.
    pub scopes: Vec<String>,
    /// `exp`, in unix seconds (fractions dropped).
    pub expires_at_s: u64,
    /// Header values of the provider's `forward_claims`, in its order; `None`: not set.
    forwarded: Vec<Option<String>>,
}

/// Parses and verifies the bearer token in `authorization` with the Rust verifiers
/// (see [`verify_token`]).
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn verify(
    provider: &Provider,
    authorization: Option<&str>,
    fetched: Option<&KeySet>,
    now_s: u64,
    scopes: &[String],
) -> Result<Verified, AuthError> {
    use futures_util::FutureExt as _;
    let token = Token::parse(authorization)?;
    verify_token(provider, &token, fetched, now_s, scopes, &RustVerifier)
        .now_or_never()
        .expect("the Rust verifiers are ready at once")
}

/// Verifies a parsed token for `provider` at `now_s` (unix seconds) and checks that it grants
/// every scope of `scopes`; `verifier` checks asymmetric signatures.
///
/// `fetched` is the provider's cached JWKS, used only when it has a `jwks_url`; pass `None`
/// when no keys could be obtained: a token that needs them then fails with
/// [`AuthError::KeysUnavailable`]. The checks, in order: algorithm allowed, signature, `exp`
/// (required) and `nbf` with leeway, the header `typ` (when required), `iss`, `aud`, scopes.
pub async fn verify_token<V: SignatureVerifier + ?Sized>(
    provider: &Provider,
    token: &Token<'_>,
    fetched: Option<&KeySet>,
    now_s: u64,
    scopes: &[String],
    verifier: &V,
) -> Result<Verified, AuthError> {
    if !provider.algorithms.contains(token.alg) {
        return Err(AuthError::Invalid(DISALLOWED_ALG));
    }
    provider.check_signature(verifier, token, fetched).await?;
    check_claims(provider, token, now_s, scopes)
}

/// [`verify_token`], skipping the signature check for a token whose signature was
/// already verified for this provider (`provider_index`) with the key set of this
/// `generation` (see [`seen`]); the claims are checked every time. A signature that
/// verifies is remembered in `seen`, which is not borrowed while `verifier` works.
/// HMAC signatures are always checked: that costs less than looking one up.
#[allow(clippy::too_many_arguments)]
pub async fn verify_token_seen<V: SignatureVerifier + ?Sized>(
    provider: &Provider,
    provider_index: usize,
    token: &Token<'_>,
    fetched: Option<&KeySet>,
    generation: u64,
    now_s: u64,
    scopes: &[String],
    seen: &RefCell<SeenSignatures>,
    verifier: &V,
) -> Result<Verified, AuthError> {
    // verify_token refuses a disallowed algorithm before anything else.
    if token.alg.is_hmac() || !provider.algorithms.contains(token.alg) {
        return verify_token(provider, token, fetched, now_s, scopes, verifier).await;
    }
    let id = SeenSignatures::id(provider_index, token);
    let known = seen.borrow().contains(&id, generation);
    if !known {
        provider.check_signature(verifier, token, fetched).await?;
        seen.borrow_mut().insert(id, generation);
    }
    check_claims(provider, token, now_s, scopes)
}

/// The claims of a token whose signature checks out: the header `typ` when the provider
/// requires one, `exp` (required) and `nbf` with leeway, `iss`, `aud`, scopes.
fn check_claims(
    provider: &Provider,
    token: &Token<'_>,
    now_s: u64,
    scopes: &[String],
) -> Result<Verified, AuthError> {
    if let Some(required) = provider.typ {
        if !matches!(&token.typ, Typ::Is(t) if typ_matches(required, t)) {
            return Err(AuthError::Invalid(WRONG_TYPE));
        }
    }
    let mut claims: Map<String, Value> =
        serde_json::from_slice(&token.claims).map_err(|_| AuthError::Invalid(BAD_CLAIMS))?;
    let now = now_s as f64;
    let leeway = provider.leeway_s as f64;
    let exp = numeric_date(claims.get("exp").ok_or(AuthError::Invalid(NO_EXP))?)?;
    if now >= exp + leeway {
        return Err(AuthError::Invalid(EXPIRED));
    }
    if let Some(nbf) = claims.get("nbf") {
        if now + leeway < numeric_date(nbf)? {
            return Err(AuthError::Invalid(NOT_YET_VALID));
        }
    }
    if !matches!(claims.get("iss"), Some(Value::String(iss)) if *iss == provider.issuer) {
        return Err(AuthError::Invalid(WRONG_ISSUER));
    }
    if let Some(audiences) = &provider.audiences {
        let fits = |aud: &Value| matches!(aud, Value::String(a) if audiences.contains(a));
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(fits),
            Some(aud) => fits(aud),
            None => false,
        };
        if !ok {
            return Err(AuthError::Invalid(WRONG_AUDIENCE));
        }
    }
    let granted = granted_scopes(&claims);
    if !scopes.iter().all(|s| granted.contains(s)) {
        return Err(AuthError::InsufficientScope(scopes.join(" ")));
    }

    let forwarded = provider
        .forward
        .iter()
        .map(|(claim, _)| claims.get(claim).and_then(header_value))
        .collect();
    let subject = match claims.remove("sub") {
        Some(Value::String(sub)) => Some(sub),
        _ => None,
    };
    Ok(Verified {
        subject,
        scopes: granted,
        expires_at_s: exp as u64,
        forwarded,
    })
}

/// A NumericDate claim (RFC 7519: seconds, possibly fractional).
fn numeric_date(value: &Value) -> Result<f64, AuthError> {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or(AuthError::Invalid(BAD_CLAIMS))
}

/// Scopes of the `scope` and `scp` claims, each a space separated string or an array.
fn granted_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(list)) => scopes.extend(
                list.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    scopes
}

/// A claim as a header value: strings as is, other values as compact JSON; `None` when the
/// result holds a control character other than tab (CR, LF and NUL above all).
fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).ok()?,
    };
    (!text.chars().any(|c| c.is_ascii_control() && c != '\t')).then_some(text)
}

/// The headers to set on the upstream request: `(lower-case name, value)` for every
/// `forward_claims` entry whose claim is present and forwardable.
pub fn forwarded_headers<'p>(
    provider: &'p Provider,
    verified: &Verified,
) -> Vec<(&'p str, String)> {
    provider
        .forward
        .iter()
        .zip(&verified.forwarded)
        .filter_map(|((_, header), value)| Some((header.as_str(), value.clone()?)))
        .collect()
}
