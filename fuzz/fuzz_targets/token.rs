//! Arbitrary `Authorization` values through what the auth phase runs (`Token::parse`,
//! then `verify_token_seen` with the native verifier, twice), for providers of every key type, plus
//! `parse_jwks` on arbitrary bytes.
//!
//! Input: byte 0 picks the mode, byte 1 the required scopes and the clock, the rest is
//! the header value (or JWKS body, or a claims set that the target signs itself):
//!
//! | byte 0 % 9 | what |
//! | --- | --- |
//! | 0 | HMAC provider (`secret_var`), every `HS*` |
//! | 1 | strict HMAC provider: HS256 only, `audiences`, no leeway, `forward_claims` |
//! | 2..=5 | inline JWK: RSA, EC P-256, EC P-384, OKP Ed25519 |
//! | 6 | every inline key plus `jwks_url`, with no fetched keys |
//! | 7 | the rest is `header JSON \n claims` (or only claims): signed here with the secret, so the claim checks are reached |
//! | 8 | the rest is a JWKS body for `parse_jwks`; fixed tokens of every algorithm are verified against it |
//!
//! Checks: no panic; every error maps to 401/403/503 with a header-safe
//! `WWW-Authenticate`; a success really is one (HMAC signature recomputed, claims
//! re-checked independently); forwarded claim values hold no control character.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_gateway::config::JwtProvider;
use edge_gateway::http::headers::is_safe_value;
use edge_gateway::policy::auth::seen::SeenSignatures;
use edge_gateway::policy::auth::{
    forwarded_headers, parse_jwks, verify_token_seen, AuthError, KeySet, Provider, RustVerifier,
    Token, Verified, MAX_JWKS_KEYS, MAX_TOKEN_BYTES,
};
use futures_util::FutureExt as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The HMAC secret (64 bytes, as in the unit tests).
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ISS: &str = "https://issuer.example";
const NOW: u64 = 1_700_000_000;
const SCOPES: [&str; 3] = ["read", "write", "admin"];

// Generated once from the test keys of src/policy/auth/tests.rs with an independent
// JWT implementation (jsonwebtoken 9); claims: iss, sub, exp = NOW + 300, nbf, scope
// "read write", aud "api", email, roles. Verifiable only at the fixed NOW below.
const RSA_N: &str = "4qTOLC_WRc9Zv2fBneTGI8gvW5JL6fRHUdZ0-DHfte4pJzPeNUCt8-J6uBSg_Y-ctuHwrlR6yxicPqXw5cIxm1qR8cekLR6Jy1ugMEJ6HIZPIhVkg3qGDoA2fmFOl8luj08dbPPmpsYk4mXP6yrktl665ZK_ApZIPXLSqtNCg8rtZ7qk7eGf8XFEq1CT5FN59a7g55sKSxgLrD0YScE3-2eaZxPEcLPV_Wa8D96F69xEd0M2e1pLTpeMKzL1FU9GOG0O-dS4YtfC01B5zrPHtKk5mXuX4Qp-9Grw8i15VNLba9NE1Jy9vxFWfc866kUm34xhdrIitLQ9b6rKI8zqyQ";
const P256_X: &str = "5ncpQAid8fGYZBUIdaYfQtVT6PkIPUlalcNjtBbaUfs";
const P256_Y: &str = "pbhnilbSboT3RTN99zZfFkYWR3kT7MaLUX4MOck1Ht4";
const P384_X: &str = "Heg3WAPfeTq3p0ECk3PWsxxoLKMDCEAlJ9uAkQuGR7XkfOd1SwEecF9QMHs4qMqg";
const P384_Y: &str = "7BGCjKq-yTINJlHpAlxCGAw-aRhDj5-JP40OMxhGAXs7Sx00TCm2DfGnkEsjS1Zs";
const ED_X: &str = "guHMJmlvFlaDvj4j0pleNjhR8USS_blqJsbSyeyAMuI";
const TOKENS: [&str; 7] = [
    // hs256
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.oH9XA7Pf0S45kvtLHX-kH1f-3znZJE2d6NcJLSYmVQc",
    // hs512
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.hFAfMwsO4X9a3F2km5CctLaD5sEVJ5Ch2axDNAKgD1Pkm0xlQFckD1ALG2_OrabwRxierm_TurkFd1REI4o_bg",
    // rs256
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6InJzYSJ9.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.bntUTkVKweiF3i_qkhzZk0S4EUDZJDR2eJnrgQ-R1rTCLpn4qOOXVKYmDHB_KqkKtDv2BK4gicATNPRqwRkcsnF49bB15V6h9-VRn6k701obOTBgl9NN6TNZie3SSYsPbe40wqYqmIV9mIyDt3HrGdzOY7t9XtgIL6oaFzPlcyX2ITwt8E1kT9NXw5k75Vf2ZqOc_xssFW2IcumoLcfLoDlNJWiP2W21kTjUS38gvuEVpXrut-h3yiMz7Gd5fP0kkAuAnTRYK2WTC3oKDjyg9Fj4KnV1P2k380b5GByxNffu-3WmqWaJ3jXwXljA1VhNL0Lbg_oZxWkk_7LqNC3kiA",
    // ps384
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJQUzM4NCIsImtpZCI6InJzYSJ9.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.cwyuqTJq1Mm-Z4TziYMfTB7ExON-P5gT4pYG5VGRtq6eDbDXt1oZaQqxnWc5C9iJ0YemZHAhtX1rcRLLPKX4FsrA_ETx311wv6JSro6PJQ_HJEqO15IVBCbNSyUin6lIugIi5slzE8z34Kne1v-yFmr9ZEjMQqTmFZoO4C7t8GBy6c02dAEhwZBAr4QdlVAlhPVAx3hN-5XyHnaeOl52OGK_bKUVrJ9POjyWdud0v-Sl_VX8GFvrjJaHEBC-VmAyZGp2CJ3PHPcJBEqBDoWOKMlPZy-0htP8LqvzEGfjd6aHccRPTmh-8Zb2sa6wui6AMBN3jHwBy5GbFaOXQirx3w",
    // es256
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiIsImtpZCI6InAyNTYifQ.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.Ky25tnWQ2bziwaCk2xJZ8KDXeP_Jht3R_p_SpKfl2YT_rmcPyPWWKhSjZU7ZTHgBgUWdrb-1qo05YsQBz90DRw",
    // es384
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzM4NCIsImtpZCI6InAzODQifQ.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.RW0pSY8dg2J1sdwwwS3oGDp1BD05kMsVW212RL5sLaO7yJGGwdu2UunS18m_TaDXwTDwqRgHmSzlg3zZ7IfW4tzacrSXG2a_L5YardV735VdXIKTJ8xGRlgoHArXeVJ-",
    // eddsa
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImVkIn0.eyJhdWQiOiJhcGkiLCJlbWFpbCI6ImFAYi5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMzAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwibmJmIjoxNjk5OTk5MDAwLCJyb2xlcyI6WyJ4IiwieSJdLCJzY29wZSI6InJlYWQgd3JpdGUiLCJzdWIiOiJ1c2VyLTEifQ.p3mZc8bE3-b51Czv2JM5kO9OeW-IOgj20vXqNdaBENW4DV-xrDHShfWUrs9SldlX2hYxtjiEMNkwYFPdu2r_Bg",
];

struct Providers {
    /// Indexed by mode 0..=6.
    by_mode: Vec<(Provider, u64)>,
    /// `jwks_url` only: verifies with the fetched set of mode 8.
    jwks: Provider,
}

fn provider(members: Value, secret: Option<&[u8]>) -> (Provider, u64) {
    let mut cfg = json!({ "issuer": ISS });
    cfg.as_object_mut()
        .unwrap()
        .extend(members.as_object().unwrap().clone());
    let cfg: JwtProvider = serde_json::from_value(cfg).expect("a provider config");
    let leeway = cfg.leeway_s;
    (
        Provider::new("fuzz", &cfg, secret).expect("the provider compiles"),
        leeway,
    )
}

fn providers() -> &'static Providers {
    static P: OnceLock<Providers> = OnceLock::new();
    P.get_or_init(|| {
        let rsa = json!({"kty": "RSA", "kid": "rsa", "n": RSA_N, "e": "AQAB"});
        let p256 = json!({"kty": "EC", "crv": "P-256", "kid": "p256", "x": P256_X, "y": P256_Y});
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": P384_X, "y": P384_Y});
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": ED_X});
        let keys = |k: &[&Value]| json!({ "keys": { "keys": k } });
        let by_mode = vec![
            provider(json!({"secret_var": "S"}), Some(SECRET)),
            provider(
                json!({"secret_var": "S", "algorithms": ["HS256"], "audiences": ["api"], "leeway_s": 0,
                       "forward_claims": {"sub": "x-user", "email": "X-Email", "roles": "x-roles", "n": "x-n"}}),
                Some(SECRET),
            ),
            provider(keys(&[&rsa]), None),
            provider(keys(&[&p256]), None),
            provider(keys(&[&p384]), None),
            provider(keys(&[&ed]), None),
            provider(
                json!({"keys": {"keys": [rsa, p256, p384, ed]}, "jwks_url": "https://issuer.example/jwks"}),
                None,
            ),
        ];
        let jwks = provider(json!({"jwks_url": "https://issuer.example/jwks"}), None).0;
        Providers { by_mode, jwks }
    })
}

/// What the auth phase does with a request's `Authorization`: parse it once, then
/// verify it with the isolate's memory of verified signatures. A second
/// verification of the same token (from that memory, for asymmetric keys) must agree.
fn verify(
    provider: &Provider,
    authorization: Option<&str>,
    fetched: Option<&KeySet>,
    now: u64,
    required: &[String],
) -> Result<Verified, AuthError> {
    let token = Token::parse(authorization)?;
    let seen = RefCell::new(SeenSignatures::new());
    let check = || {
        verify_token_seen(provider, 0, &token, fetched, 1, now, required, &seen, &RustVerifier)
            .now_or_never()
            .expect("the Rust verifiers are ready at once")
    };
    let (first, again) = (check(), check());
    assert_eq!(first, again, "a remembered signature decided otherwise");
    first
}

/// The bearer token of a header value, as RFC 6750 puts it (an independent reading).
fn bearer(value: &str) -> Option<&str> {
    let v = value.trim_start_matches([' ', '\t']);
    let scheme = v.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !matches!(v.as_bytes().get(6), Some(b' ' | b'\t'))
    {
        return None;
    }
    Some(v[7..].trim_matches([' ', '\t'])).filter(|t| !t.is_empty())
}

fn hmac(alg: &str, input: &[u8]) -> Vec<u8> {
    match alg {
        "HS256" => Hmac::<sha2::Sha256>::new_from_slice(SECRET)
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
        "HS384" => Hmac::<sha2::Sha384>::new_from_slice(SECRET)
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
        "HS512" => Hmac::<sha2::Sha512>::new_from_slice(SECRET)
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
        _ => Vec::new(),
    }
}

fn check_error(e: &AuthError, required: &[String]) {
    assert!(matches!(e.status(), 401 | 403 | 503), "{e:?}");
    let www = e.www_authenticate();
    assert!(www.starts_with("Bearer"), "{www:?}");
    assert!(
        is_safe_value(&www) && www.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "unsafe WWW-Authenticate {www:?}"
    );
    assert!(!e.reason().is_empty());
    if let AuthError::InsufficientScope(s) = e {
        assert!(!required.is_empty());
        assert_eq!(*s, required.join(" "));
    }
}

/// What a verified token must satisfy, re-checked from its claims.
fn check_verified(
    provider: &Provider,
    v: &Verified,
    claims: &[u8],
    leeway: u64,
    now: u64,
    required: &[String],
    strict: bool,
) {
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(claims).expect("verified claims are a JSON object");
    assert_eq!(claims.get("iss"), Some(&json!(ISS)));
    let exp = claims["exp"].as_f64().expect("exp is a number");
    assert!((now as f64) < exp + leeway as f64, "expired token accepted");
    if let Some(nbf) = claims.get("nbf") {
        assert!(nbf.as_f64().expect("nbf is a number") <= (now + leeway) as f64);
    }
    if strict {
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == "api",
            Some(Value::Array(l)) => l.iter().any(|a| a == "api"),
            _ => false,
        };
        assert!(aud_ok, "wrong audience accepted");
    }
    for s in required {
        assert!(v.scopes.contains(s), "scope {s} not granted but accepted");
    }
    assert_eq!(
        v.subject.as_deref(),
        claims.get("sub").and_then(Value::as_str)
    );
    for (name, value) in forwarded_headers(provider, v) {
        assert!(
            !value.chars().any(|c| c.is_ascii_control() && c != '\t'),
            "{name}: control character forwarded"
        );
        assert_eq!(name, name.to_ascii_lowercase());
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, flags, rest @ ..] = data else {
        return;
    };
    let p = providers();
    let required: Vec<String> = SCOPES
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect();
    // Around exp (NOW + 300) and nbf (NOW - 1000) of the fixed tokens.
    let now = match flags >> 4 {
        0..=11 => NOW,
        12 => NOW + 300,
        13 => NOW - 1061,
        14 => 0,
        _ => u64::MAX,
    };
    match mode % 9 {
        m @ 0..=6 => {
            let auth = String::from_utf8_lossy(rest);
            let (provider, leeway) = &p.by_mode[m as usize];
            let parsed = Token::parse(Some(&auth));
            match &parsed {
                Err(AuthError::Missing) => assert!(bearer(&auth).is_none()),
                Err(AuthError::Invalid(_)) => {}
                Err(e) => panic!("parse failed with {e:?}"),
                Ok(_) => assert!(bearer(&auth).is_some_and(|t| t.len() <= MAX_TOKEN_BYTES)),
            }
            match verify(provider, Some(&auth), None, now, &required) {
                Err(e) => {
                    check_error(&e, &required);
                    if m != 6 {
                        assert_ne!(
                            e,
                            AuthError::KeysUnavailable,
                            "no jwks_url, yet keys unavailable"
                        );
                    }
                }
                Ok(v) => {
                    let token = bearer(&auth).expect("a verified token came from a bearer header");
                    let parts: Vec<&str> = token.split('.').collect();
                    assert_eq!(parts.len(), 3);
                    let header: Value =
                        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
                    let alg = header["alg"].as_str().unwrap();
                    if m <= 1 {
                        let input = &token[..parts[0].len() + 1 + parts[1].len()];
                        assert_eq!(
                            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
                            hmac(alg, input.as_bytes()),
                            "HMAC token accepted with a wrong signature"
                        );
                    } else {
                        assert!(!alg.starts_with("HS"), "{alg} accepted without a secret");
                    }
                    let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
                    check_verified(provider, &v, &claims, *leeway, now, &required, m == 1);
                }
            }
        }
        7 => {
            // A token signed here: the claim checks run on arbitrary claims.
            let strict = flags & 8 != 0;
            let (provider, leeway) = &p.by_mode[usize::from(strict)];
            let (header, claims, alg) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let header = &rest[..i];
                    let alg = serde_json::from_slice::<Value>(header)
                        .ok()
                        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    (header.to_vec(), &rest[i + 1..], alg)
                }
                None => {
                    let alg = if strict {
                        "HS256"
                    } else {
                        ["HS256", "HS384", "HS512"][usize::from(flags >> 6) % 3]
                    };
                    (
                        format!(r#"{{"alg":"{alg}"}}"#).into_bytes(),
                        rest,
                        alg.to_string(),
                    )
                }
            };
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(&header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let sig = hmac(
                if alg.starts_with("HS") { &alg } else { "HS256" },
                input.as_bytes(),
            );
            let token = format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(sig));
            match verify(provider, Some(&token), None, now, &required) {
                Err(e) => {
                    check_error(&e, &required);
                    let own_header = !rest.contains(&b'\n');
                    if own_header {
                        assert_ne!(
                            e,
                            AuthError::Invalid("invalid signature"),
                            "a correctly signed token"
                        );
                        assert_ne!(e, AuthError::Invalid("malformed token"));
                    }
                }
                Ok(v) => {
                    assert!(alg.starts_with("HS"));
                    check_verified(provider, &v, claims, *leeway, now, &required, strict);
                }
            }
        }
        _ => {
            // A fetched JWKS document.
            match parse_jwks(rest) {
                Err(e) => assert!(!e.is_empty()),
                Ok(set) => {
                    assert!((1..=MAX_JWKS_KEYS).contains(&set.len()));
                    assert!(!set.is_empty());
                    let _ = set.contains_kid("rsa");
                    for t in TOKENS {
                        let auth = format!("Bearer {t}");
                        match verify(&p.jwks, Some(&auth), Some(&set), now, &required) {
                            Err(e) => check_error(&e, &required),
                            Ok(v) => {
                                assert!(
                                    !t.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUz"),
                                    "HMAC token accepted by a JWKS"
                                );
                                let claims = URL_SAFE_NO_PAD
                                    .decode(t.split('.').nth(1).unwrap())
                                    .unwrap();
                                check_verified(&p.jwks, &v, &claims, 60, now, &required, false);
                            }
                        }
                    }
                }
            }
        }
    }
});
