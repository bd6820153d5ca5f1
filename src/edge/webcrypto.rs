//! Token signatures verified by the runtime's WebCrypto: RSASSA-PKCS1-v1_5, RSA-PSS,
//! ECDSA P-256 and P-384 and Ed25519 run as native code in workerd, at a fraction of
//! what the same arithmetic costs compiled to wasm.
//!
//! A key is imported once per isolate and algorithm and kept, with the parameters
//! of its `verify` call, so a warm check is one call into JavaScript. The Rust
//! verifiers stay the oracle this path is tested against (`tests.rs`).

use std::cell::RefCell;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use worker::js_sys::{self, Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{CryptoKey, SubtleCrypto};

use crate::config::Algorithm;
use crate::policy::auth::{PublicKey, SignatureCheck};

/// Imported keys kept per isolate; past this the table starts again (a JWKS that
/// rotates keeps its current keys, which are imported again on their next use).
const MAX_IMPORTED: usize = 256;

struct Imported {
    key: CryptoKey,
    /// The `verify` call's algorithm parameters.
    params: Object,
}

thread_local! {
    static SUBTLE: Option<SubtleCrypto> = subtle();
    static IMPORTED: RefCell<HashMap<(u64, Algorithm), Imported>> = RefCell::new(HashMap::new());
}

fn subtle() -> Option<SubtleCrypto> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    Reflect::get(&crypto, &"subtle".into())
        .ok()?
        .dyn_into()
        .ok()
}

fn object(members: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (name, value) in members {
        let _ = Reflect::set(&o, &JsValue::from_str(name), value);
    }
    o
}

fn hash(name: &str) -> JsValue {
    object(&[("name", name.into())]).into()
}

/// How `alg` imports its key and calls `verify`: (import format and key data,
/// import parameters, verify parameters). `None` when the key does not fit the
/// algorithm (the core never pairs them so; this keeps the edge from trusting it).
fn plan(alg: Algorithm, public: PublicKey<'_>) -> Option<(&'static str, Object, Object, Object)> {
    let raw = |bytes: &[u8]| Object::from(Uint8Array::from(bytes));
    let rsa = |name: &str, sha: &str, salt: Option<u32>| {
        let PublicKey::Rsa { n, e } = public else {
            return None;
        };
        let jwk = object(&[
            ("kty", "RSA".into()),
            ("n", URL_SAFE_NO_PAD.encode(n).into()),
            ("e", URL_SAFE_NO_PAD.encode(e).into()),
        ]);
        let import = object(&[("name", name.into()), ("hash", hash(sha))]);
        let verify = match salt {
            Some(len) => object(&[("name", name.into()), ("saltLength", len.into())]),
            None => object(&[("name", name.into())]),
        };
        Some(("jwk", jwk, import, verify))
    };
    let ecdsa = |point: &[u8], curve: &str, sha: &str| {
        let import = object(&[("name", "ECDSA".into()), ("namedCurve", curve.into())]);
        let verify = object(&[("name", "ECDSA".into()), ("hash", hash(sha))]);
        Some(("raw", raw(point), import, verify))
    };
    match (alg, public) {
        (Algorithm::RS256, _) => rsa("RSASSA-PKCS1-v1_5", "SHA-256", None),
        (Algorithm::RS384, _) => rsa("RSASSA-PKCS1-v1_5", "SHA-384", None),
        (Algorithm::RS512, _) => rsa("RSASSA-PKCS1-v1_5", "SHA-512", None),
        (Algorithm::PS256, _) => rsa("RSA-PSS", "SHA-256", Some(32)),
        (Algorithm::PS384, _) => rsa("RSA-PSS", "SHA-384", Some(48)),
        (Algorithm::PS512, _) => rsa("RSA-PSS", "SHA-512", Some(64)),
        (Algorithm::ES256, PublicKey::P256 { point }) => ecdsa(point, "P-256", "SHA-256"),
        (Algorithm::ES384, PublicKey::P384 { point }) => ecdsa(point, "P-384", "SHA-384"),
        (Algorithm::EdDSA, PublicKey::Ed25519 { x }) => {
            let params = object(&[("name", "Ed25519".into())]);
            Some(("raw", raw(x), params.clone(), params))
        }
        _ => None,
    }
}

/// The key of `check`, imported (or taken from the table) with its verify parameters.
async fn imported(
    subtle: &SubtleCrypto,
    check: &SignatureCheck<'_>,
) -> Option<(CryptoKey, Object)> {
    let id = (check.key.id(), check.alg);
    let known = IMPORTED.with(|t| {
        t.borrow()
            .get(&id)
            .map(|i| (i.key.clone(), i.params.clone()))
    });
    if known.is_some() {
        return known;
    }
    let (format, data, import, params) = plan(check.alg, check.key.public())?;
    let usages = Array::of1(&"verify".into());
    let promise = subtle
        .import_key_with_object(format, &data, &import, false, &usages)
        .ok()?;
    let key: CryptoKey = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
    IMPORTED.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() >= MAX_IMPORTED {
            t.clear();
        }
        t.insert(
            id,
            Imported {
                key: key.clone(),
                params: params.clone(),
            },
        );
    });
    Some((key, params))
}

/// Whether the signature of `check` verifies; `false` also when the runtime cannot
/// check it (no WebCrypto, a key it refuses to import).
pub(crate) async fn verify(check: &SignatureCheck<'_>) -> bool {
    let Some(subtle) = SUBTLE.with(Clone::clone) else {
        return false;
    };
    let Some((key, params)) = imported(&subtle, check).await else {
        return false;
    };
    // WebCrypto copies both byte ranges before `verify` returns, so views into
    // wasm memory are safe here.
    let Ok(promise) = subtle.verify_with_object_and_u8_array_and_u8_array(
        &params,
        &key,
        check.signature,
        check.signing_input,
    ) else {
        return false;
    };
    matches!(JsFuture::from(promise).await, Ok(v) if v.as_bool() == Some(true))
}
