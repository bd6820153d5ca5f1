//! Verification keys: imported once from JWKs (or an HMAC secret), used per request.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
#[cfg(any(not(target_arch = "wasm32"), test))]
use jwt_compact::alg::Rsa;
use jwt_compact::alg::{
    Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, RsaPublicKey,
};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};

use super::es384::Es384;
use crate::config::{Algorithm, Jwk, JwkSet};

/// Smallest RSA modulus accepted, in bits (RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the limit of the `rsa` crate).
pub const MAX_RSA_BITS: usize = 4096;
/// Largest JWKS document [`parse_jwks`] reads, in bytes.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;
/// Most keys kept from one JWKS document; later ones are ignored.
pub const MAX_JWKS_KEYS: usize = 64;

/// Base64url for JWK members: padding tolerated (some issuers pad), bits strict.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type P256Key = <Es256 as JwsAlgorithm>::VerifyingKey;
type P384Key = <Es384 as JwsAlgorithm>::VerifyingKey;
type Ed25519Key = <Ed25519 as JwsAlgorithm>::VerifyingKey;

/// A set of [`Algorithm`]s, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgSet(u16);

impl AlgSet {
    pub(crate) const EMPTY: AlgSet = AlgSet(0);
    pub(crate) const HMAC: AlgSet = AlgSet::of(Algorithm::HS256)
        .with(Algorithm::HS384)
        .with(Algorithm::HS512);
    pub(crate) const RSA: AlgSet = AlgSet::of(Algorithm::RS256)
        .with(Algorithm::RS384)
        .with(Algorithm::RS512)
        .with(Algorithm::PS256)
        .with(Algorithm::PS384)
        .with(Algorithm::PS512);
    pub(crate) const ALL: AlgSet = AlgSet((1 << Algorithm::ALL.len()) - 1);
    pub(crate) const ASYMMETRIC: AlgSet = AlgSet(AlgSet::ALL.0 & !AlgSet::HMAC.0);

    pub(crate) const fn of(alg: Algorithm) -> AlgSet {
        AlgSet(1 << alg as u16)
    }

    pub(crate) const fn with(self, alg: Algorithm) -> AlgSet {
        AlgSet(self.0 | AlgSet::of(alg).0)
    }

    pub(crate) fn from_slice(algs: &[Algorithm]) -> AlgSet {
        algs.iter().fold(AlgSet::EMPTY, |set, &a| set.with(a))
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & AlgSet::of(alg).0 != 0
    }

    pub(crate) fn union(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 | other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

/// Imported public key material. On wasm the runtime verifies signatures (WebCrypto,
/// through [`crate::ports::Ports::verify_signature`]), so only the import reads it there:
/// building it checks the key (a point on its curve, a usable modulus) on every target.
#[cfg_attr(all(target_arch = "wasm32", not(test)), allow(dead_code))]
enum Material {
    Rsa(RsaPublicKey),
    P256(P256Key),
    P384(P384Key),
    Ed25519(Ed25519Key),
}

/// Numbers the keys of this isolate (or process): a runtime that keeps its own form
/// of a key (a WebCrypto `CryptoKey`) files it under [`Key::id`].
static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

/// One public key, ready to verify signatures.
pub struct Key {
    id: u64,
    kid: Option<String>,
    /// Algorithms this key verifies: its type's, narrowed by the JWK's own `alg`.
    algs: AlgSet,
    material: Material,
    public: PublicBytes,
}

/// The public key as bytes, in the forms a runtime imports: the RSA modulus and
/// exponent (big-endian, no leading zeros), the uncompressed SEC1 point of an EC key,
/// the 32 bytes of an Ed25519 key.
enum PublicBytes {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A public key as a runtime imports it (see [`Key::public`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey<'a> {
    /// RSA: modulus and public exponent, big-endian without leading zeros.
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// EC P-256: the uncompressed SEC1 point `04 || x || y` (65 bytes).
    P256 { point: &'a [u8] },
    /// EC P-384: the uncompressed SEC1 point `04 || x || y` (97 bytes).
    P384 { point: &'a [u8] },
    /// Ed25519: the 32-byte public key.
    Ed25519 { x: &'a [u8] },
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kty = match self.material {
            Material::Rsa(_) => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
        };
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kty", &kty)
            .field(
                "algs",
                &self.algs.iter().map(Algorithm::as_str).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Key {
    /// Imports a public JWK. Refuses symmetric and private keys, keys not meant for
    /// signatures, unknown types, curves and algorithms, and RSA moduli outside
    /// [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`].
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<Key, String> {
        if jwk.kty == "oct" || jwk.k.is_some() {
            return Err("symmetric (oct) keys are not accepted; use secret_var".into());
        }
        if jwk.d.is_some() {
            return Err("private key material (d) is not accepted".into());
        }
        if let Some(use_) = &jwk.use_ {
            if use_ != "sig" {
                return Err(format!("key use {use_:?} is not \"sig\""));
            }
        }
        let (material, public, type_algs) = match jwk.kty.as_str() {
            "RSA" => {
                let (key, n, e) = rsa_key(jwk)?;
                (Material::Rsa(key), PublicBytes::Rsa { n, e }, AlgSet::RSA)
            }
            "EC" => match jwk.crv.as_deref() {
                Some("P-256") => {
                    let point = ec_point(jwk, 32)?;
                    let key =
                        <P256Key as jwt_compact::alg::VerifyingKey<Es256>>::from_slice(&point)
                            .map_err(|_| "not a valid P-256 point".to_string())?;
                    let public = PublicBytes::P256(point);
                    (Material::P256(key), public, AlgSet::of(Algorithm::ES256))
                }
                Some("P-384") => {
                    let point = ec_point(jwk, 48)?;
                    let key = P384Key::from_sec1_bytes(&point)
                        .map_err(|_| "not a valid P-384 point".to_string())?;
                    let public = PublicBytes::P384(point);
                    (Material::P384(key), public, AlgSet::of(Algorithm::ES384))
                }
                other => return Err(format!("unsupported EC curve {other:?}")),
            },
            "OKP" => match jwk.crv.as_deref() {
                Some("Ed25519") => {
                    let x = member(jwk.x.as_deref(), "x")?;
                    if x.len() != 32 {
                        return Err("Ed25519 x must be 32 bytes".into());
                    }
                    let key =
                        <Ed25519Key as jwt_compact::alg::VerifyingKey<Ed25519>>::from_slice(&x)
                            .map_err(|_| "not a valid Ed25519 key".to_string())?;
                    let public = PublicBytes::Ed25519(x);
                    (Material::Ed25519(key), public, AlgSet::of(Algorithm::EdDSA))
                }
                other => return Err(format!("unsupported OKP curve {other:?}")),
            },
            other => return Err(format!("unsupported key type {other:?}")),
        };
        let algs = match &jwk.alg {
            None => type_algs,
            Some(name) => match Algorithm::from_name(name) {
                Some(alg) if type_algs.contains(alg) => AlgSet::of(alg),
                Some(alg) => return Err(format!("alg {} does not fit the key type", alg.as_str())),
                None => return Err(format!("unsupported alg {name:?}")),
            },
        };
        Ok(Key {
            id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
            kid: jwk.kid.clone(),
            algs,
            material,
            public,
        })
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A number no other key imported by this process has: a key fetched again
    /// (a JWKS refresh) is a new key with a new id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The public key, for a runtime to import.
    pub fn public(&self) -> PublicKey<'_> {
        match &self.public {
            PublicBytes::Rsa { n, e } => PublicKey::Rsa { n, e },
            PublicBytes::P256(point) => PublicKey::P256 { point },
            PublicBytes::P384(point) => PublicKey::P384 { point },
            PublicBytes::Ed25519(x) => PublicKey::Ed25519 { x },
        }
    }

    /// Whether this key may verify `alg`: the key type fits and the JWK's `alg`, if any, agrees.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.algs.contains(alg)
    }

    /// Checks `signature` over `signing_input` with `alg` in Rust; `false` for any mismatch
    /// or malformed signature, never a panic. Native only: in the Worker the runtime
    /// verifies, and the wasm tests use this as the oracle it is checked against.
    #[cfg(any(not(target_arch = "wasm32"), test))]
    pub(crate) fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        let (s, sig) = (signing_input, signature);
        match (&self.material, alg) {
            (Material::Rsa(k), Algorithm::RS256) => check(&Rsa::rs256(), k, s, sig),
            (Material::Rsa(k), Algorithm::RS384) => check(&Rsa::rs384(), k, s, sig),
            (Material::Rsa(k), Algorithm::RS512) => check(&Rsa::rs512(), k, s, sig),
            (Material::Rsa(k), Algorithm::PS256) => check(&Rsa::ps256(), k, s, sig),
            (Material::Rsa(k), Algorithm::PS384) => check(&Rsa::ps384(), k, s, sig),
            (Material::Rsa(k), Algorithm::PS512) => check(&Rsa::ps512(), k, s, sig),
            (Material::P256(k), Algorithm::ES256) => check(&Es256, k, s, sig),
            (Material::P384(k), Algorithm::ES384) => check(&Es384, k, s, sig),
            (Material::Ed25519(k), Algorithm::EdDSA) => check(&Ed25519, k, s, sig),
            _ => false,
        }
    }
}

/// Verifies with a `jwt-compact` algorithm, checking the signature length first
/// (some `try_from_slice` implementations assume it).
fn check<A: JwsAlgorithm>(
    alg: &A,
    key: &A::VerifyingKey,
    signing_input: &[u8],
    signature: &[u8],
) -> bool {
    if let Some(len) = <A::Signature as AlgorithmSignature>::LENGTH {
        if signature.len() != len.get() {
            return false;
        }
    }
    match A::Signature::try_from_slice(signature) {
        Ok(signature) => alg.verify_signature(&signature, key, signing_input),
        Err(_) => false,
    }
}

fn member(value: Option<&str>, name: &str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("member {name} is missing"))?;
    JWK_B64
        .decode(value)
        .map_err(|_| format!("member {name} is not base64url"))
}

/// The uncompressed SEC1 point `04 || x || y` of an EC JWK.
fn ec_point(jwk: &Jwk, coordinate_len: usize) -> Result<Vec<u8>, String> {
    let x = member(jwk.x.as_deref(), "x")?;
    let y = member(jwk.y.as_deref(), "y")?;
    if x.len() != coordinate_len || y.len() != coordinate_len {
        return Err(format!("x and y must be {coordinate_len} bytes each"));
    }
    let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// The RSA key of a JWK, with its modulus and exponent as stripped bytes.
fn rsa_key(jwk: &Jwk) -> Result<(RsaPublicKey, Vec<u8>, Vec<u8>), String> {
    let n = member(jwk.n.as_deref(), "n")?;
    let e = member(jwk.e.as_deref(), "e")?;
    let n = strip_leading_zeros(&n);
    let bits = match n.first() {
        Some(&first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} required"
        ));
    }
    let e = strip_leading_zeros(&e);
    let jwk = JsonWebKey::Rsa {
        modulus: Cow::Borrowed(n),
        public_exponent: Cow::Borrowed(e),
        private_parts: None,
    };
    let key = RsaPublicKey::try_from(&jwk).map_err(|_| "not a valid RSA public key".to_string())?;
    Ok((key, n.to_vec(), e.to_vec()))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Public keys from an inline JWK Set or a fetched JWKS document, parsed once.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Imports every key of an inline set; the first unusable key is an error that names it
    /// (`keys[1] (kid "k2"): ...`).
    pub(crate) fn from_config(set: &JwkSet) -> Result<KeySet, String> {
        let keys = set
            .keys
            .iter()
            .enumerate()
            .map(|(i, jwk)| Key::from_jwk(jwk).map_err(|e| format!("{}: {e}", describe(i, jwk))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeySet { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}

fn describe(index: usize, jwk: &Jwk) -> String {
    match &jwk.kid {
        Some(kid) => format!("keys[{index}] (kid {kid:?})"),
        None => format!("keys[{index}]"),
    }
}

/// Parses a JWKS document (`{"keys": [...]}`) as fetched from a `jwks_url`.
///
/// Keys that cannot be used (symmetric `oct` keys, keys with private members, keys whose
/// `use` is not `sig`, unknown types, curves or algorithms, weak or malformed keys) are
/// skipped rather than failing the whole set; so are keys after the first
/// [`MAX_JWKS_KEYS`]. Fails when the body exceeds [`MAX_JWKS_BYTES`], is not a JWK Set,
/// or holds no usable key.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }

    if body.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    let total = document.keys.len();
    let keys: Vec<Key> = document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| Key::from_jwk(&jwk).ok())
        .take(MAX_JWKS_KEYS)
        .collect();
    if keys.is_empty() {
        return Err(format!("JWKS has no usable key (of {total})"));
    }
    Ok(KeySet { keys })
}

/// The HMAC secret of a provider, keyed once for each `HS*` algorithm. Zeroed on drop.
pub(crate) struct HmacKeys {
    hs256: Hs256Key,
    hs384: Hs384Key,
    hs512: Hs512Key,
}

impl fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKeys(..)")
    }
}

impl HmacKeys {
    pub(crate) fn new(secret: &[u8]) -> HmacKeys {
        HmacKeys {
            hs256: Hs256Key::new(secret),
            hs384: Hs384Key::new(secret),
            hs512: Hs512Key::new(secret),
        }
    }

    /// Checks an `HS*` signature (constant-time comparison); `false` for other algorithms.
    pub(crate) fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        let (s, sig) = (signing_input, signature);
        match alg {
            Algorithm::HS256 => check(&Hs256, &self.hs256, s, sig),
            Algorithm::HS384 => check(&Hs384, &self.hs384, s, sig),
            Algorithm::HS512 => check(&Hs512, &self.hs512, s, sig),
            _ => false,
        }
    }
}
