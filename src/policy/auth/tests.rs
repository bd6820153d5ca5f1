//! Tests of JWT verification. Tokens are made by an independent implementation
//! (`jsonwebtoken`, backed by `ring`) or crafted by hand, never by `jwt-compact`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::config::JwtProvider;

// Fixed test keys, generated once with `openssl genpkey` (PKCS#8) and converted to JWKs.

const RSA_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDipM4sL9ZFz1m/\n\
Z8Gd5MYjyC9bkkvp9EdR1nT4Md+17iknM941QK3z4nq4FKD9j5y24fCuVHrLGJw+\n\
pfDlwjGbWpHxx6QtHonLW6AwQnochk8iFWSDeoYOgDZ+YU6XyW6PTx1s8+amxiTi\n\
Zc/rKuS2Xrrlkr8Clkg9ctKq00KDyu1nuqTt4Z/xcUSrUJPkU3n1ruDnmwpLGAus\n\
PRhJwTf7Z5pnE8Rws9X9ZrwP3oXr3ER3QzZ7WktOl4wrMvUVT0Y4bQ751Lhi18LT\n\
UHnOs8e0qTmZe5fhCn70avDyLXlU0ttr00TUnL2/EVZ9zzrqRSbfjGF2siK0tD1v\n\
qsojzOrJAgMBAAECggEAAjcLHspu5SrEHUdF0KW6PAJKWDJDVKuDAO1AImbWYWBM\n\
/amXm9ygdpg5i9ADzMaZCP6HTCTeOFrquAAGLTCrLHIDqCHD3H8GaLriA2a668ly\n\
P4qG+3P4mG6vWafYzUn2LydeScDOecXI+X92Oz2lk5S0bebzv/I5DYSwQ2QiK8iM\n\
uHcrTsBETyT4bRUUelYzX8cdHdMSqJZXCc5Mg0Wbl4cH0y7P+mOLqUJYKdsf4Akj\n\
YKR+cHVz0NxXKfcKbBjqlIzGJ8aOYPbsKfKTi3v2gILLk66Zmpwt7XPuEirw1Xum\n\
BQl8bnwVcwWBVfiVEUOu43z4KHqHOp9SD0uyfPCwCQKBgQD44tX4Ej8oo5WFMgNs\n\
Jx7ywFIQTMH8bECfDZqiUWEuwqxJ5RsfccVPXuGP26RaFatY0Xe4iCcDjqQHV9/i\n\
LiPgVOfoEiOV6MafeNPIgeO72b5OWFwdthSxMSEq+NyqR2fLV/qMJ2cPKgurjLvA\n\
zrkIYKD9/uo4Ry9Otz9ED3WWjQKBgQDpHzeAUxyL7Gw09gBkIA55Ol0OlMbgCs7H\n\
49h9vF+w1ijjTsGfhQR9GtIkus6QGCJd2JtMAgg0PWQFZyCO82ytC/JicEzzgVc7\n\
Yvv/A93XToIqagUu8Uq47RzMh5mNImip4hVJYBBWaKzLU26XJXB6wVMMjn0XVR5W\n\
/hAU6bRELQKBgQCnak5r1DpP59nIAuBye85BlESfWkKSvW6qjsgZr4wjnCewfUBF\n\
Yo5K2ZP45NIlFrZvxFc39b3okqabmeyrhEX1vKdSYAE38aDJ3Mj48wZxcgKlSKKO\n\
CdDZcCbTdRtaHzYefku2wzp75Nh8yOnyxBuLGxSwRizfNmMIHBOegJekcQKBgQCR\n\
JrTCG/28SdseJsYbkbIxXVuvxocF3PTflUipEW9rhg0za0g38PTYiKir4fzXz48m\n\
a8ZWTzWYgVkT3CBzobHbFYM4M8BWJgSQn5NUN64bb3CwxA6yKd9iwZCa8Rt0uyX8\n\
ER877qp9gvOELlC/n7onVNRHDzloG8GmXM7alqF9iQKBgQD4r8rPK879O+c9E4Yn\n\
B962PmqKOeb1vydjhOfwygY3xoqU2LCOTFu56dURsE9YtxxfheYYcxOiuxxqeg3G\n\
GYL9ylhXgPQdDfMechai9BU7L19u41XtEbETiF8q5EZuXK6Bq7cmIET3rClK1tIC\n\
k6zo3sDWUvrT1q3TDhNZTqQg2A==\n\
-----END PRIVATE KEY-----\n";
const RSA2_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC2ZkDy/9X9cu9L\n\
5tcfSaSUrfAaEDrmn17C0KwIgSO6LEkVbiee5y47tl8r0si0px6mdwoX7HZQ6USP\n\
utauypECt/1awH6nR+auSL7Hk51oV5RfKULQMSkjKxd9ssy6ouGSckDcULh2K6rh\n\
8VJgNa4F33pWuQucXNITJ3HnTy1kmOXayKxYtwBx1miooCQPaqn8BDlN8R+gVDD+\n\
hRhledF1HS0SoB6XZ3eLlClHUVAoqd9TWuCy10+rYYE9vZdbl+K5rjUbWkJ/U4Jp\n\
4J4lcr6kiHNannC/IY5NOOCeqkrgc44RLrY591twt1HzcUz5pZcse7ALaQDM7cm9\n\
7cq8popRAgMBAAECggEAC8RGngaCw7Ia8t67nlaYtJ4QoQsj/vBlY2mlIiVRQeI3\n\
0sHuR2eANDTx0yNqyZCwaaprRHDU5H0FQcUasrWkVjRlYT84IcrXJwN6tJL2yB5C\n\
QZipU+yf9pdXPBzWl+xduJ4Am4CPmHv9BEzA9NjxrDT8W5ozare9i6PIoCnw8o4j\n\
KtIAvLQl515e8M3NCaDxN7pkWRKXZx8EakXhDFyF4EJPabX/YHH8V5JOy7t3g7Dk\n\
s1gRj/srQU9T9zJrNxeyOO6WHuEdT4GlicPshLWOdIAN9aLWTNCE8aBTbz1upGnv\n\
on5Ef/hzPpbFTVt271tc1xAbf2DcFZMyn+XxpYDxcwKBgQDxJ2CsYmdBJ/4JVhJn\n\
/CKoT6QzlYOs3sFjHjOegGt8wGJBHW34Fv3rR1/f3oralJK/y9SNPRdyGl32w6le\n\
EHU+kNxr7wAbGcyw+yuYjHu1fy6EAis32Dfk/0hkdEYnv0WOtU/rjv1BNtWxccOq\n\
a7DCdX0AjImrzlP/N3yDBsxjgwKBgQDBoOXH/YYn7gsOGk6mZvv73DbDIvNg84sF\n\
bKXYQlnQSz0limY1fdEiKtWXxSPf7Uw7qUQCDlrC2DJcS4hD5jt1TikrAXe95i4e\n\
PJ0L7+6ZXXi1Gp6Z1cw88H4hbP7P5CjbmP4RFaFz48wETqXWInr1utKmr69rDJdW\n\
OIoStgxumwKBgGyr3w+vxHIDMKJKbD75yzBnu0oXnV/gfetJp99MZaOxGlXXij/b\n\
NI+6+URsB8yaWUse8mi3WAJuSVuzLnaaGguYwgvNhxGvXaN/fFThMbpHVtHcHFet\n\
EvsZ4yiJkTfGJPU7VYmERTIHIOM2rgL1RpFK2orNyhhnAUkoWu68uIw7AoGAUjDl\n\
OPZR+yMdiDf8iMAQWIHKsRxl6RKYQY4z+892Zmd5pjTQXAZzPqimEA17w/LruCuK\n\
lcDYH/s7rVfWmNPjC1FJQlsWJALQMr+R/l4zjuBRe7a3+h752ihPsgqdQ0vbWBPi\n\
TQg8h3/7uxxTYskyHprWDjFnKe6nUs8fNQAX2N8CgYEAz/uLSuJ0Ep7ewhH9MLlj\n\
IjqTc9Co0vRwFirAC5Zwl66yfvTJhqdsGNCo3HLNBW8n5qUD1HCMkRCJVHufbq09\n\
0g5hPwdCZHio9E4CK6cuAneDqjAc+cHW0t5qKuRBADXfvwaeUgqRVH5hPYtXRYS/\n\
v3kx1c1jmyeSOJ8iFqFMaLA=\n\
-----END PRIVATE KEY-----\n";
const P256_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxSh8Xuwffle5ssMq\n\
Yh7GS6IERBzzME8bmZhO+lz+Yy6hRANCAATmdylACJ3x8ZhkFQh1ph9C1VPo+Qg9\n\
SVqVw2O0FtpR+6W4Z4pW0m6E90Uzffc2XxZGFkd5E+zGi1F+DDnJNR7e\n\
-----END PRIVATE KEY-----\n";
const P384_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBRW49JzxXHC9TflelC\n\
nz/Y9myppKOB3KM/aHCaUEitDcpG/UwcEpzdyPECnQlct+KhZANiAAQd6DdYA995\n\
OrenQQKTc9azHGgsowMIQCUn24CRC4ZHteR853VLAR5wX1AwezioyqDsEYKMqr7J\n\
Mg0mUekCXEIYDD5pGEOPn4k/jQ4zGEYBeztLHTRMKbYN8aeQSyNLVmw=\n\
-----END PRIVATE KEY-----\n";
const ED_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIPbyUHAbyahC4XVbqf40vjCFnI3E9tEdiZf1whqVMna0\n\
-----END PRIVATE KEY-----\n";
const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4qTOLC/WRc9Zv2fBneTG\n\
I8gvW5JL6fRHUdZ0+DHfte4pJzPeNUCt8+J6uBSg/Y+ctuHwrlR6yxicPqXw5cIx\n\
m1qR8cekLR6Jy1ugMEJ6HIZPIhVkg3qGDoA2fmFOl8luj08dbPPmpsYk4mXP6yrk\n\
tl665ZK/ApZIPXLSqtNCg8rtZ7qk7eGf8XFEq1CT5FN59a7g55sKSxgLrD0YScE3\n\
+2eaZxPEcLPV/Wa8D96F69xEd0M2e1pLTpeMKzL1FU9GOG0O+dS4YtfC01B5zrPH\n\
tKk5mXuX4Qp+9Grw8i15VNLba9NE1Jy9vxFWfc866kUm34xhdrIitLQ9b6rKI8zq\n\
yQIDAQAB\n\
-----END PUBLIC KEY-----\n";

const RSA_N: &str = "4qTOLC_WRc9Zv2fBneTGI8gvW5JL6fRHUdZ0-DHfte4pJzPeNUCt8-J6uBSg_Y-ctuHwrlR6yxicPqXw5cIxm1qR8cekLR6Jy1ugMEJ6HIZPIhVkg3qGDoA2fmFOl8luj08dbPPmpsYk4mXP6yrktl665ZK_ApZIPXLSqtNCg8rtZ7qk7eGf8XFEq1CT5FN59a7g55sKSxgLrD0YScE3-2eaZxPEcLPV_Wa8D96F69xEd0M2e1pLTpeMKzL1FU9GOG0O-dS4YtfC01B5zrPHtKk5mXuX4Qp-9Grw8i15VNLba9NE1Jy9vxFWfc866kUm34xhdrIitLQ9b6rKI8zqyQ";
const RSA2_N: &str = "tmZA8v_V_XLvS-bXH0mklK3wGhA65p9ewtCsCIEjuixJFW4nnucuO7ZfK9LItKcepncKF-x2UOlEj7rWrsqRArf9WsB-p0fmrki-x5OdaFeUXylC0DEpIysXfbLMuqLhknJA3FC4diuq4fFSYDWuBd96VrkLnFzSEydx508tZJjl2sisWLcAcdZoqKAkD2qp_AQ5TfEfoFQw_oUYZXnRdR0tEqAel2d3i5QpR1FQKKnfU1rgstdPq2GBPb2XW5fiua41G1pCf1OCaeCeJXK-pIhzWp5wvyGOTTjgnqpK4HOOES62OfdbcLdR83FM-aWXLHuwC2kAzO3Jve3KvKaKUQ";
const RSA1024_N: &str = "wa44jlflRLPx4wemgpMghY77GiSEkT6HbpxjSaa0fPpUTtxkinOpauvYzOuTLCqf2boJ5z8823nzbgotNNLFoCHnKbjOsY1_ZDpN6s44vRbQfPK2QlGoLPCU5Sjbud7AsPMoA-mbSNLHulKvwATOd8901aFAkt5XPauR__Au-Bk";
const P256_X: &str = "5ncpQAid8fGYZBUIdaYfQtVT6PkIPUlalcNjtBbaUfs";
const P256_Y: &str = "pbhnilbSboT3RTN99zZfFkYWR3kT7MaLUX4MOck1Ht4";
const P384_X: &str = "Heg3WAPfeTq3p0ECk3PWsxxoLKMDCEAlJ9uAkQuGR7XkfOd1SwEecF9QMHs4qMqg";
const P384_Y: &str = "7BGCjKq-yTINJlHpAlxCGAw-aRhDj5-JP40OMxhGAXs7Sx00TCm2DfGnkEsjS1Zs";
/// The private scalar of `P384_PEM`, for signing with [`Es384`] itself.
const P384_D: &str = "515b8f49cf15c70bd4df95e9429f3fd8f66ca9a4a381dca33f68709a5048ad0dca46fd4c1c129cddc8f1029d095cb7e2";
const ED_X: &str = "guHMJmlvFlaDvj4j0pleNjhR8USS_blqJsbSyeyAMuI";

/// A 64-byte HMAC secret, long enough for HS512.
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://issuer.example";

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": RSA_N, "e": "AQAB"})
}

fn rsa2_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": RSA2_N, "e": "AQAB"})
}

fn p256_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": P256_X, "y": P256_Y})
}

fn p384_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-384", "kid": kid, "x": P384_X, "y": P384_Y})
}

fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": ED_X})
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap()
}

fn rsa2_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA2_PEM.as_bytes()).unwrap()
}

fn p256_key() -> EncodingKey {
    EncodingKey::from_ec_pem(P256_PEM.as_bytes()).unwrap()
}

fn p384_key() -> EncodingKey {
    EncodingKey::from_ec_pem(P384_PEM.as_bytes()).unwrap()
}

fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap()
}

fn secret_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET)
}

/// A provider config: `issuer` plus the given members.
fn config(members: Value) -> JwtProvider {
    let mut cfg = json!({"issuer": ISS});
    cfg.as_object_mut()
        .unwrap()
        .extend(members.as_object().unwrap().clone());
    serde_json::from_value(cfg).unwrap()
}

fn provider(members: Value) -> Provider {
    let cfg = config(members);
    let secret = cfg.secret_var.as_ref().map(|_| SECRET);
    Provider::new("test", &cfg, secret).unwrap()
}

fn secret_provider() -> Provider {
    provider(json!({"secret_var": "JWT_SECRET"}))
}

/// Inline keys of every type: kids `rsa`, `p256`, `p384`, `ed`.
fn keys_provider() -> Provider {
    provider(
        json!({"keys": {"keys": [rsa_jwk("rsa"), p256_jwk("p256"), p384_jwk("p384"), ed_jwk("ed")]}}),
    )
}

fn jwks_provider() -> Provider {
    provider(json!({"jwks_url": "https://issuer.example/jwks.json"}))
}

fn jwks(keys: Vec<Value>) -> KeySet {
    parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "user-1", "exp": NOW + 300})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn sign(alg: J, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header and payload text, signed by `jsonwebtoken`'s primitives.
fn sign_raw(alg: J, key: &EncodingKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn check(provider: &Provider, token: &str) -> Result<Verified, AuthError> {
    verify(provider, Some(&bearer(token)), None, NOW, &[])
}

fn check_with(provider: &Provider, token: &str, fetched: &KeySet) -> Result<Verified, AuthError> {
    verify(provider, Some(&bearer(token)), Some(fetched), NOW, &[])
}

fn assert_invalid(result: Result<Verified, AuthError>, reason: &str) {
    let error = result.expect_err("token accepted");
    assert_eq!(error, AuthError::Invalid(match_reason(reason)), "{error:?}");
    assert_eq!(error.status(), 401);
    assert_eq!(
        error.www_authenticate(),
        format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
    );
}

/// The `&'static str` of a reason, so that `AuthError` values compare.
fn match_reason(reason: &str) -> &'static str {
    [
        MALFORMED,
        TOO_LARGE,
        UNSUPPORTED_ALG,
        DISALLOWED_ALG,
        CRITICAL_HEADER,
        NO_KEY,
        BAD_SIGNATURE,
        BAD_CLAIMS,
        NO_EXP,
        EXPIRED,
        NOT_YET_VALID,
        WRONG_TYPE,
        WRONG_ISSUER,
        WRONG_AUDIENCE,
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or_else(|| panic!("unknown reason {reason}"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- every accepted algorithm ------------------------------------------------------------

#[test]
fn hmac_algorithms_verify_with_the_secret() {
    let provider = secret_provider();
    for alg in [J::HS256, J::HS384, J::HS512] {
        let token = sign(alg, &secret_key(), None, &claims());
        let verified = check(&provider, &token).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(verified.subject.as_deref(), Some("user-1"));
        assert_eq!(verified.expires_at_s, NOW + 300);
        // A kid is irrelevant to HMAC.
        let token = sign(alg, &secret_key(), Some("whatever"), &claims());
        assert!(check(&provider, &token).is_ok(), "{alg:?} with kid");
    }
}

#[test]
fn rsa_algorithms_verify_with_an_rsa_jwk() {
    let provider = keys_provider();
    for alg in [J::RS256, J::RS384, J::RS512, J::PS256, J::PS384, J::PS512] {
        for kid in [Some("rsa"), None] {
            let token = sign(alg, &rsa_key(), kid, &claims());
            let verified =
                check(&provider, &token).unwrap_or_else(|e| panic!("{alg:?} {kid:?}: {e:?}"));
            assert_eq!(verified.subject.as_deref(), Some("user-1"));
        }
    }
}

#[test]
fn ec_and_eddsa_algorithms_verify() {
    let provider = keys_provider();
    let cases = [
        (J::ES256, p256_key(), "p256"),
        (J::ES384, p384_key(), "p384"),
        (J::EdDSA, ed_key(), "ed"),
    ];
    for (alg, key, kid) in cases {
        for kid in [Some(kid), None] {
            let token = sign(alg, &key, kid, &claims());
            assert!(check(&provider, &token).is_ok(), "{alg:?} {kid:?}");
        }
    }
}

#[test]
fn fetched_keys_verify_for_a_jwks_provider() {
    let provider = jwks_provider();
    let fetched = jwks(vec![rsa_jwk("a"), rsa2_jwk("b"), p384_jwk("c")]);
    let token = sign(J::RS256, &rsa2_key(), Some("b"), &claims());
    assert!(check_with(&provider, &token, &fetched).is_ok());
    // Without kid, the compatible keys are tried.
    let token = sign(J::PS512, &rsa2_key(), None, &claims());
    assert!(check_with(&provider, &token, &fetched).is_ok());
    let token = sign(J::ES384, &p384_key(), None, &claims());
    assert!(check_with(&provider, &token, &fetched).is_ok());
    // The kid selects the key: the right kid with another key's signature fails.
    let token = sign(J::RS256, &rsa2_key(), Some("a"), &claims());
    assert_invalid(check_with(&provider, &token, &fetched), BAD_SIGNATURE);
}

#[test]
fn es384_algorithm_signs_and_verifies() {
    use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
    use p384::ecdsa::SigningKey;

    let d: Vec<u8> = (0..P384_D.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&P384_D[i..i + 2], 16).unwrap())
        .collect();
    let signing = SigningKey::from_slice(&d).unwrap();
    let verifying = *signing.verifying_key();
    assert_eq!(Es384.name(), "ES384");
    let signature = Es384.sign(&signing, b"message");
    assert_eq!(signature.as_bytes().len(), ES384_SIGNATURE_LEN);
    assert!(Es384.verify_signature(&signature, &verifying, b"message"));
    assert!(!Es384.verify_signature(&signature, &verifying, b"massage"));
    for len in [0, 1, 64, 95, 97, 200] {
        let bytes = vec![7u8; len];
        let odd = jwt_compact::alg::RsaSignature::try_from_slice(&bytes).unwrap();
        assert!(!Es384.verify_signature(&odd, &verifying, b"message"));
    }

    // A token signed here verifies through the provider, whose key is the JWK of the PEM.
    let header = b64(r#"{"alg":"ES384","kid":"p384"}"#);
    let input = format!("{header}.{}", b64(claims().to_string()));
    let signature = Es384.sign(&signing, input.as_bytes());
    let token = format!("{input}.{}", b64(signature.as_bytes()));
    assert!(check(&keys_provider(), &token).is_ok());
}

// ---- missing and malformed ---------------------------------------------------------------

#[test]
fn missing_token_asks_for_bearer() {
    let provider = secret_provider();
    for header in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer   "),
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearertoken"),
    ] {
        let error = verify(&provider, header, None, NOW, &[]).unwrap_err();
        assert_eq!(error, AuthError::Missing, "{header:?}");
        assert_eq!(error.status(), 401);
        assert_eq!(error.www_authenticate(), "Bearer");
    }
}

#[test]
fn bearer_scheme_is_case_insensitive_and_trimmed() {
    let provider = secret_provider();
    let token = sign(J::HS256, &secret_key(), None, &claims());
    for header in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer\t{token}"),
        format!("  Bearer   {token}  "),
    ] {
        assert!(
            verify(&provider, Some(&header), None, NOW, &[]).is_ok(),
            "{header}"
        );
    }
}

#[test]
fn malformed_tokens_are_invalid() {
    let provider = secret_provider();
    let good = sign(J::HS256, &secret_key(), None, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "garbage".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{good}.a.b"),
        "..".to_string(),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}+.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}/", parts[0], parts[1], parts[2]),
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64("[1,2]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(r#"{"typ":"JWT"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(r#"{"alg":256}"#), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","kid":7}"#),
            parts[1],
            parts[2]
        ),
        "a".repeat(MAX_TOKEN_BYTES),
    ];
    for token in &cases {
        assert_invalid(check(&provider, token), MALFORMED);
    }
}

#[test]
fn oversized_tokens_are_rejected_before_decoding() {
    let provider = secret_provider();
    // 100 KB of what would be a fine token shape, and one byte over the limit.
    let big = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS256"}"#),
        "A".repeat(100_000),
        "sig"
    );
    assert_invalid(check(&provider, &big), TOO_LARGE);
    assert_invalid(
        check(&provider, &"a".repeat(MAX_TOKEN_BYTES + 1)),
        TOO_LARGE,
    );
    assert_eq!(token_kid(Some(&bearer(&big))), None);
}

#[test]
fn unsupported_algorithms_and_critical_headers_are_invalid() {
    let provider = secret_provider();
    let payload = b64(claims().to_string());
    for alg in [
        "none", "None", "NONE", "hs256", "HS257", "ES512", "RSA-OAEP", "",
    ] {
        let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string());
        for signature in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_invalid(check(&provider, &token), UNSUPPORTED_ALG);
        }
    }
    let token = sign_raw(
        J::HS256,
        &secret_key(),
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        &claims().to_string(),
    );
    assert_invalid(check(&provider, &token), CRITICAL_HEADER);
}

#[test]
fn malformed_claims_are_invalid() {
    let provider = secret_provider();
    let header = r#"{"alg":"HS256"}"#;
    for payload in ["not json", "[1]", "\"text\"", "{\"exp\":", ""] {
        let token = sign_raw(J::HS256, &secret_key(), header, payload);
        assert_invalid(check(&provider, &token), BAD_CLAIMS);
    }
    for exp in [json!("1700000300"), json!(null), json!([1]), json!(true)] {
        let token = sign(J::HS256, &secret_key(), None, &with(claims(), "exp", exp));
        assert_invalid(check(&provider, &token), BAD_CLAIMS);
    }
    let token = sign(
        J::HS256,
        &secret_key(),
        None,
        &with(claims(), "nbf", json!("soon")),
    );
    assert_invalid(check(&provider, &token), BAD_CLAIMS);
}

// ---- signatures and keys ------------------------------------------------------------------

#[test]
fn bad_signatures_are_invalid() {
    let provider = secret_provider();
    let other = EncodingKey::from_secret(b"another secret that is long enough to be used!!");
    let token = sign(J::HS256, &other, None, &claims());
    assert_invalid(check(&provider, &token), BAD_SIGNATURE);

    // A payload swapped under a valid signature.
    let good = sign(J::HS256, &secret_key(), None, &claims());
    let evil = b64(with(claims(), "sub", json!("admin")).to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{evil}.{}", parts[0], parts[2]);
    assert_invalid(check(&provider, &forged), BAD_SIGNATURE);

    // An RSA signature by another key, an empty signature.
    let keys = keys_provider();
    let token = sign(J::RS256, &rsa2_key(), Some("rsa"), &claims());
    assert_invalid(check(&keys, &token), BAD_SIGNATURE);
    let token = sign(J::RS256, &rsa_key(), Some("rsa"), &claims());
    let unsigned = &token[..token.rfind('.').unwrap() + 1];
    assert_invalid(check(&keys, unsigned), BAD_SIGNATURE);
}

#[test]
fn signatures_of_any_length_never_panic() {
    let hmac = secret_provider();
    let keys = keys_provider();
    let payload = b64(claims().to_string());
    let algs = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ];
    for alg in algs {
        let header = b64(json!({"alg": alg}).to_string());
        for len in [
            0, 1, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 97, 255, 256, 257, 512, 1024,
        ] {
            let signature = b64((0..len).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>());
            let token = format!("{header}.{payload}.{signature}");
            let provider = if alg.starts_with("HS") { &hmac } else { &keys };
            assert_invalid(check(provider, &token), BAD_SIGNATURE);
        }
    }
}

#[test]
fn hmac_with_the_public_key_as_secret_is_rejected() {
    // Algorithm confusion: HS256 "signed" with the RSA public key the verifier holds.
    let confused: Vec<EncodingKey> = vec![
        EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
        EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(RSA_N).unwrap()),
        EncodingKey::from_secret(rsa_jwk("rsa").to_string().as_bytes()),
    ];
    let keys_only = keys_provider();
    let both = provider(json!({"secret_var": "JWT_SECRET", "keys": {"keys": [rsa_jwk("rsa")]}}));
    let jwks_only = jwks_provider();
    let fetched = jwks(vec![rsa_jwk("rsa")]);
    for key in &confused {
        for kid in [None, Some("rsa")] {
            let token = sign(J::HS256, key, kid, &claims());
            assert_invalid(check(&keys_only, &token), DISALLOWED_ALG);
            assert_invalid(check_with(&jwks_only, &token, &fetched), DISALLOWED_ALG);
            assert_invalid(check(&both, &token), BAD_SIGNATURE);
        }
    }
}

#[test]
fn algorithm_must_match_the_key() {
    let keys = keys_provider();
    // An ES256 header with kid of the RSA key; an RS256 signature presented as PS256.
    let token = sign(J::ES256, &p256_key(), Some("rsa"), &claims());
    assert_invalid(check(&keys, &token), NO_KEY);
    let token = sign(J::RS256, &rsa_key(), Some("rsa"), &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let relabeled = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"PS256","kid":"rsa"}"#),
        parts[1],
        parts[2]
    );
    assert_invalid(check(&keys, &relabeled), BAD_SIGNATURE);
    // No key of the type at all.
    let rsa_only = provider(json!({"keys": {"keys": [rsa_jwk("rsa")]}}));
    let token = sign(J::EdDSA, &ed_key(), None, &claims());
    assert_invalid(check(&rsa_only, &token), NO_KEY);
}

#[test]
fn jwk_alg_restricts_the_key() {
    let mut jwk = rsa_jwk("rsa");
    jwk["alg"] = json!("RS256");
    let provider = provider(json!({"keys": {"keys": [jwk]}}));
    assert!(check(
        &provider,
        &sign(J::RS256, &rsa_key(), Some("rsa"), &claims())
    )
    .is_ok());
    assert!(check(&provider, &sign(J::RS256, &rsa_key(), None, &claims())).is_ok());
    assert_invalid(
        check(
            &provider,
            &sign(J::PS256, &rsa_key(), Some("rsa"), &claims()),
        ),
        NO_KEY,
    );
    assert_invalid(
        check(&provider, &sign(J::RS512, &rsa_key(), None, &claims())),
        NO_KEY,
    );
}

#[test]
fn provider_algorithms_are_an_allow_list() {
    let provider = provider(json!({
        "keys": {"keys": [rsa_jwk("rsa"), p256_jwk("p256")]},
        "algorithms": ["RS256"],
    }));
    assert!(check(&provider, &sign(J::RS256, &rsa_key(), None, &claims())).is_ok());
    assert_invalid(
        check(&provider, &sign(J::RS384, &rsa_key(), None, &claims())),
        DISALLOWED_ALG,
    );
    assert_invalid(
        check(&provider, &sign(J::ES256, &p256_key(), None, &claims())),
        DISALLOWED_ALG,
    );
    // A secret-only provider takes no asymmetric token.
    let token = sign(J::RS256, &rsa_key(), None, &claims());
    assert_invalid(check(&secret_provider(), &token), DISALLOWED_ALG);
}

#[test]
fn unknown_kid() {
    let keys = keys_provider();
    let token = sign(J::RS256, &rsa_key(), Some("rotated"), &claims());
    let error = check(&keys, &token).unwrap_err();
    assert_eq!(error, AuthError::UnknownKid);
    assert_eq!(error.status(), 401);
    assert_eq!(
        error.www_authenticate(),
        "Bearer error=\"invalid_token\", error_description=\"unknown key id\""
    );
    let fetched = jwks(vec![rsa_jwk("rsa")]);
    assert_eq!(
        check_with(&jwks_provider(), &token, &fetched),
        Err(AuthError::UnknownKid)
    );
    // Keys fetched for a provider without jwks_url are not used.
    let token = sign(J::RS256, &rsa2_key(), Some("b"), &claims());
    assert_eq!(
        check_with(&keys, &token, &jwks(vec![rsa2_jwk("b")])),
        Err(AuthError::UnknownKid)
    );
}

#[test]
fn keys_unavailable_without_fetched_keys() {
    let provider = jwks_provider();
    for kid in [Some("a"), None] {
        let token = sign(J::RS256, &rsa_key(), kid, &claims());
        let error = verify(&provider, Some(&bearer(&token)), None, NOW, &[]).unwrap_err();
        assert_eq!(error, AuthError::KeysUnavailable);
        assert_eq!(error.status(), 503);
    }
    // Inline keys still work when the JWKS is unavailable.
    let both = provider_with_inline_and_jwks();
    let token = sign(J::RS256, &rsa_key(), Some("inline"), &claims());
    assert!(check(&both, &token).is_ok());
    let token = sign(J::RS256, &rsa2_key(), Some("remote"), &claims());
    assert_eq!(check(&both, &token), Err(AuthError::KeysUnavailable));
    assert!(check_with(&both, &token, &jwks(vec![rsa2_jwk("remote")])).is_ok());
}

fn provider_with_inline_and_jwks() -> Provider {
    provider(
        json!({"keys": {"keys": [rsa_jwk("inline")]}, "jwks_url": "https://issuer.example/jwks"}),
    )
}

#[test]
fn at_most_a_few_keys_are_tried_without_kid() {
    let provider = jwks_provider();
    let fetched = jwks(vec![
        rsa2_jwk("a"),
        rsa2_jwk("b"),
        rsa2_jwk("c"),
        rsa_jwk("d"),
    ]);
    assert_eq!(MAX_KEY_ATTEMPTS, 3);
    let token = sign(J::RS256, &rsa_key(), None, &claims());
    assert_invalid(check_with(&provider, &token, &fetched), BAD_SIGNATURE);
    let token = sign(J::RS256, &rsa_key(), Some("d"), &claims());
    assert!(check_with(&provider, &token, &fetched).is_ok());
}

// ---- time, issuer, audience ---------------------------------------------------------------

#[test]
fn expiry_with_leeway() {
    let provider = secret_provider();
    let at = |exp: Value| {
        check(
            &provider,
            &sign(J::HS256, &secret_key(), None, &with(claims(), "exp", exp)),
        )
    };
    assert!(at(json!(NOW + 1)).is_ok());
    assert!(at(json!(NOW)).is_ok(), "within the default 60 s leeway");
    assert!(at(json!(NOW - 59)).is_ok());
    assert_invalid(at(json!(NOW - 60)), EXPIRED);
    assert_invalid(at(json!(NOW - 3600)), EXPIRED);
    assert_invalid(at(json!(-1)), EXPIRED);

    let strict = provider_leeway(0);
    let at = |exp: Value| {
        check(
            &strict,
            &sign(J::HS256, &secret_key(), None, &with(claims(), "exp", exp)),
        )
    };
    assert_invalid(at(json!(NOW)), EXPIRED);
    assert!(
        at(json!(NOW as f64 + 0.5)).is_ok(),
        "fractional NumericDate"
    );
    assert!(at(json!(1e300)).is_ok());
}

fn provider_leeway(leeway_s: u64) -> Provider {
    provider(json!({"secret_var": "JWT_SECRET", "leeway_s": leeway_s}))
}

#[test]
fn exp_is_required() {
    let token = sign(J::HS256, &secret_key(), None, &without(claims(), "exp"));
    assert_invalid(check(&secret_provider(), &token), NO_EXP);
}

#[test]
fn not_before_with_leeway() {
    let provider = secret_provider();
    let at = |nbf: u64| {
        check(
            &provider,
            &sign(
                J::HS256,
                &secret_key(),
                None,
                &with(claims(), "nbf", json!(nbf)),
            ),
        )
    };
    assert!(at(NOW - 10).is_ok());
    assert!(at(NOW + 59).is_ok());
    assert!(at(NOW + 60).is_ok());
    assert_invalid(at(NOW + 61), NOT_YET_VALID);
    assert_invalid(at(NOW + 86_400), NOT_YET_VALID);
    let strict = provider_leeway(0);
    let token = sign(
        J::HS256,
        &secret_key(),
        None,
        &with(claims(), "nbf", json!(NOW + 1)),
    );
    assert_invalid(check(&strict, &token), NOT_YET_VALID);
}

#[test]
fn issuer_must_match() {
    let provider = secret_provider();
    for iss in [
        Some(json!("https://evil.example")),
        Some(json!("https://issuer.example/")),
        Some(json!(7)),
        None,
    ] {
        let claims = match &iss {
            Some(iss) => with(claims(), "iss", iss.clone()),
            None => without(claims(), "iss"),
        };
        let token = sign(J::HS256, &secret_key(), None, &claims);
        assert_invalid(check(&provider, &token), WRONG_ISSUER);
    }
}

#[test]
fn audience_must_match_when_configured() {
    let provider = provider(json!({"secret_var": "JWT_SECRET", "audiences": ["api", "admin-api"]}));
    let at = |aud: Option<Value>| {
        let claims = match aud {
            Some(aud) => with(claims(), "aud", aud),
            None => claims(),
        };
        check(&provider, &sign(J::HS256, &secret_key(), None, &claims))
    };
    assert!(at(Some(json!("api"))).is_ok());
    assert!(at(Some(json!("admin-api"))).is_ok());
    assert!(at(Some(json!(["other", "api"]))).is_ok());
    assert_invalid(at(Some(json!("other"))), WRONG_AUDIENCE);
    assert_invalid(at(Some(json!("API"))), WRONG_AUDIENCE);
    assert_invalid(at(Some(json!(["other", "more"]))), WRONG_AUDIENCE);
    assert_invalid(at(Some(json!([]))), WRONG_AUDIENCE);
    assert_invalid(at(Some(json!(1))), WRONG_AUDIENCE);
    assert_invalid(at(Some(json!([["api"]]))), WRONG_AUDIENCE);
    assert_invalid(at(None), WRONG_AUDIENCE);

    // Without audiences, aud is not checked.
    let token = sign(
        J::HS256,
        &secret_key(),
        None,
        &with(claims(), "aud", json!("anything")),
    );
    assert!(check(&secret_provider(), &token).is_ok());
}

// ---- scopes ------------------------------------------------------------------------------

#[test]
fn scopes_from_scope_and_scp() {
    let provider = secret_provider();
    let required = strings(&["read", "write"]);
    let run = |claims: Value| {
        let token = sign(J::HS256, &secret_key(), None, &claims);
        verify(&provider, Some(&bearer(&token)), None, NOW, &required)
    };
    let ok = run(with(claims(), "scope", json!("write  read extra"))).unwrap();
    assert_eq!(ok.scopes, strings(&["write", "read", "extra"]));
    assert!(run(with(claims(), "scp", json!(["read", "write"]))).is_ok());
    assert!(run(with(claims(), "scp", json!("read write"))).is_ok());
    assert!(run(with(
        with(claims(), "scope", json!("read")),
        "scp",
        json!(["write"])
    ))
    .is_ok());

    for claims in [
        with(claims(), "scope", json!("read")),
        with(claims(), "scope", json!("read-write")),
        with(claims(), "scp", json!(["read"])),
        with(claims(), "scp", json!(["read write"])),
        with(claims(), "scope", json!(42)),
        claims(),
    ] {
        let error = run(claims.clone()).unwrap_err();
        assert_eq!(
            error,
            AuthError::InsufficientScope("read write".into()),
            "{claims}"
        );
        assert_eq!(error.status(), 403);
        assert_eq!(
            error.www_authenticate(),
            "Bearer error=\"insufficient_scope\", scope=\"read write\""
        );
    }
    // No scope required: any token passes.
    let token = sign(J::HS256, &secret_key(), None, &claims());
    assert!(verify(&provider, Some(&bearer(&token)), None, NOW, &[]).is_ok());
}

// ---- forwarded claims --------------------------------------------------------------------

#[test]
fn claims_are_forwarded_as_headers() {
    let provider = provider(json!({
        "secret_var": "JWT_SECRET",
        "forward_claims": {
            "sub": "X-User",
            "tenant": "X-Tenant",
            "level": "X-Level",
            "profile": "X-Profile",
            "flag": "X-Flag",
            "absent": "X-Absent",
            "crlf": "X-Crlf",
            "lf": "X-Lf",
            "nul": "X-Nul",
            "tab": "X-Tab",
        }
    }));
    let mut all: Vec<&str> = provider.forward_headers().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        [
            "x-absent",
            "x-crlf",
            "x-flag",
            "x-level",
            "x-lf",
            "x-nul",
            "x-profile",
            "x-tab",
            "x-tenant",
            "x-user"
        ]
    );
    let claims = json!({
        "iss": ISS,
        "exp": NOW + 60,
        "sub": "user-1",
        "tenant": "acme corp",
        "level": 42,
        "profile": {"name": "Ann", "roles": ["a", "b"], "admin": false},
        "flag": true,
        "crlf": "x\r\nX-Injected: 1",
        "lf": "x\nX-Injected: 1",
        "nul": "x\u{0}y",
        "tab": "a\tb",
    });
    let token = sign(J::HS256, &secret_key(), None, &claims);
    let verified = check(&provider, &token).unwrap();
    let mut headers = forwarded_headers(&provider, &verified);
    headers.sort();
    assert_eq!(
        headers,
        vec![
            ("x-flag", "true".to_string()),
            ("x-level", "42".to_string()),
            (
                "x-profile",
                r#"{"admin":false,"name":"Ann","roles":["a","b"]}"#.to_string()
            ),
            ("x-tab", "a\tb".to_string()),
            ("x-tenant", "acme corp".to_string()),
            ("x-user", "user-1".to_string()),
        ]
    );
    for (_, value) in &headers {
        assert!(!value.contains(['\r', '\n', '\0']));
    }
}

// ---- configuration -----------------------------------------------------------------------

fn provider_error(members: Value, secret: Option<&[u8]>) -> String {
    Provider::new("corp", &config(members), secret).unwrap_err()
}

#[test]
fn provider_rejects_unusable_configuration() {
    let oct = json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0"});
    let weak = json!({"kty": "RSA", "kid": "weak", "n": RSA1024_N, "e": "AQAB"});
    let mut private = p256_jwk("priv");
    private["d"] = json!("AAAA");
    let mut enc = rsa_jwk("enc");
    enc["use"] = json!("enc");
    let mut oaep = rsa_jwk("oaep");
    oaep["alg"] = json!("RSA-OAEP");
    let mut hs = rsa_jwk("hs");
    hs["alg"] = json!("HS256");

    let cases: Vec<(Value, Option<&[u8]>, &str)> = vec![
        (
            json!({"keys": {"keys": [rsa_jwk("ok"), oct]}}),
            None,
            r#"keys[1] (kid "sym"): symmetric"#,
        ),
        (
            json!({"keys": {"keys": [weak]}}),
            None,
            r#"keys[0] (kid "weak"): RSA modulus has 1024 bits"#,
        ),
        (json!({"keys": {"keys": [private]}}), None, "private key"),
        (json!({"keys": {"keys": [enc]}}), None, "use \"enc\""),
        (
            json!({"keys": {"keys": [oaep]}}),
            None,
            "unsupported alg \"RSA-OAEP\"",
        ),
        (
            json!({"keys": {"keys": [hs]}}),
            None,
            "alg HS256 does not fit",
        ),
        (
            json!({"keys": {"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}}),
            None,
            "unsupported EC curve",
        ),
        (
            json!({"keys": {"keys": [{"kty": "RSA", "e": "AQAB"}]}}),
            None,
            "member n is missing",
        ),
        (
            json!({"secret_var": "JWT_SECRET"}),
            None,
            "secret_var \"JWT_SECRET\" is not set",
        ),
        (
            json!({"secret_var": "JWT_SECRET"}),
            Some(b"short"),
            "shorter than 32 bytes",
        ),
        (json!({}), None, "no key source"),
        (json!({"keys": {"keys": []}}), None, "no key source"),
        (
            json!({"jwks_url": "https://x", "algorithms": ["HS256"]}),
            None,
            "algorithm HS256 needs secret_var",
        ),
        (
            json!({"secret_var": "S", "algorithms": ["ES256"]}),
            Some(SECRET),
            "algorithm ES256 needs keys or jwks_url",
        ),
        (
            json!({"jwks_url": "https://x", "algorithms": []}),
            None,
            "algorithms is empty",
        ),
        (
            json!({"jwks_url": "https://x", "forward_claims": {"sub": "X User"}}),
            None,
            "is not a header name",
        ),
        (
            json!({"jwks_url": "https://x", "forward_claims": {"sub": ""}}),
            None,
            "is not a header name",
        ),
        (
            json!({"jwks_url": "https://x", "forward_claims": {"sub": "Host"}}),
            None,
            "reserved",
        ),
        (
            json!({"jwks_url": "https://x", "forward_claims": {"a": "X-A", "b": "x-a"}}),
            None,
            "used twice",
        ),
    ];
    for (members, secret, expected) in cases {
        let error = provider_error(members.clone(), secret);
        assert!(error.starts_with("jwt provider \"corp\": "), "{error}");
        assert!(error.contains(expected), "{members}: {error}");
    }
}

#[test]
fn provider_accessors() {
    let both = provider_with_inline_and_jwks();
    assert_eq!(both.name(), "test");
    assert!(both.needs_jwks());
    assert!(!keys_provider().needs_jwks());
    assert_eq!(secret_provider().forward_headers().count(), 0);

    let for_token = |provider: &Provider, token: &str| {
        let header = bearer(token);
        provider.needs_jwks_for(&Token::parse(Some(&header)).unwrap())
    };
    let inline = sign(J::RS256, &rsa_key(), Some("inline"), &claims());
    let remote = sign(J::RS256, &rsa_key(), Some("remote"), &claims());
    let no_kid = sign(J::RS256, &rsa_key(), None, &claims());
    let hmac = sign(J::HS256, &secret_key(), Some("remote"), &claims());
    assert!(!for_token(&both, &inline));
    assert!(for_token(&both, &remote));
    assert!(for_token(&both, &no_kid));
    assert!(!for_token(&both, &hmac));
    assert!(!for_token(&keys_provider(), &remote));
}

#[test]
fn padded_jwk_members_are_accepted() {
    let jwk = json!({"kty": "RSA", "kid": "rsa", "n": format!("{RSA_N}=="), "e": "AQAB"});
    let provider = provider(json!({"keys": {"keys": [jwk]}}));
    assert!(check(&provider, &sign(J::RS256, &rsa_key(), None, &claims())).is_ok());
}

// ---- JWKS documents ----------------------------------------------------------------------

#[test]
fn parse_jwks_skips_unusable_keys() {
    let mut private = p256_jwk("private");
    private["d"] = json!("AAAA");
    let mut enc = rsa_jwk("enc");
    enc["use"] = json!("enc");
    let body = json!({"keys": [
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        private,
        enc,
        {"kty": "XYZ", "kid": "unknown"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": ED_X},
        {"kty": "RSA", "kid": "weak", "n": RSA1024_N, "e": "AQAB"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "offcurve", "x": P256_X, "y": P256_X},
        {"kty": 5},
        "not an object",
        rsa_jwk("good"),
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": ED_X, "use": "sig", "x5c": ["..."]},
    ]});
    let set = parse_jwks(body.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.contains_kid("good"));
    assert!(set.contains_kid("ed"));
    assert!(!set.contains_kid("weak"));
    assert!(!set.is_empty());
}

#[test]
fn parse_jwks_fails_without_usable_keys() {
    for body in [
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
        r#"{"keys": []}"#,
        r#"{"keys": "none"}"#,
        r#"{"keyz": []}"#,
        "<html>",
        "",
    ] {
        assert!(parse_jwks(body.as_bytes()).is_err(), "{body}");
    }
    let huge = format!(r#"{{"keys": [], "pad": "{}"}}"#, " ".repeat(MAX_JWKS_BYTES));
    assert!(parse_jwks(huge.as_bytes()).unwrap_err().contains("larger"));
}

#[test]
fn parse_jwks_keeps_at_most_the_first_keys() {
    let keys: Vec<Value> = (0..MAX_JWKS_KEYS + 5)
        .map(|i| ed_jwk(&format!("k{i}")))
        .collect();
    let set = jwks(keys);
    assert_eq!(set.len(), MAX_JWKS_KEYS);
    assert!(set.contains_kid("k0"));
    assert!(!set.contains_kid(&format!("k{MAX_JWKS_KEYS}")));
}

// ---- peeking, errors, robustness ---------------------------------------------------------

#[test]
fn token_kid_peeks_without_verifying() {
    let token = sign(J::RS256, &rsa2_key(), Some("key-7"), &claims());
    assert_eq!(token_kid(Some(&bearer(&token))).as_deref(), Some("key-7"));
    let header = bearer(&token);
    let parsed = Token::parse(Some(&header)).unwrap();
    assert_eq!(parsed.kid(), Some("key-7"));
    assert_eq!(parsed.algorithm(), Algorithm::RS256);
    let no_kid = sign(J::RS256, &rsa2_key(), None, &claims());
    assert_eq!(token_kid(Some(&bearer(&no_kid))), None);
    assert_eq!(token_kid(Some("Bearer garbage")), None);
    assert_eq!(token_kid(None), None);
}

#[test]
fn error_responses() {
    assert_eq!(AuthError::Missing.reason(), "missing token");
    assert_eq!(AuthError::KeysUnavailable.www_authenticate(), "Bearer");
    assert_eq!(
        AuthError::KeysUnavailable.to_string(),
        "signing keys unavailable"
    );
    assert_eq!(AuthError::Invalid(EXPIRED).to_string(), "token expired");
    let odd = AuthError::InsufficientScope("a\"b c\\d\r\n".into());
    assert_eq!(
        odd.www_authenticate(),
        r#"Bearer error="insufficient_scope", scope="a\"b c\\d""#
    );
}

#[test]
fn mutated_tokens_never_panic_nor_pass() {
    let hmac = secret_provider();
    let keys = keys_provider();
    // (token, provider, step between mutated positions: RSA and P-384 are slow in debug)
    let tokens = [
        (sign(J::HS256, &secret_key(), None, &claims()), &hmac, 3),
        (
            sign(J::RS256, &rsa_key(), Some("rsa"), &claims()),
            &keys,
            17,
        ),
        (sign(J::ES256, &p256_key(), None, &claims()), &keys, 5),
        (
            sign(J::ES384, &p384_key(), Some("p384"), &claims()),
            &keys,
            19,
        ),
        (sign(J::EdDSA, &ed_key(), None, &claims()), &keys, 3),
    ];
    for (token, provider, step) in tokens {
        assert!(check(provider, &token).is_ok());
        let bytes = token.as_bytes();
        for i in (0..bytes.len()).step_by(step) {
            for replacement in [b'A', b'.', b'_', b' ', 0xff] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut mutated = bytes.to_vec();
                mutated[i] = replacement;
                let mutated = String::from_utf8_lossy(&mutated);
                // Changing only the unused low bits of a segment's last character is
                // caught as malformed base64, so no mutation may pass.
                if let Ok(v) = check(provider, &mutated) {
                    panic!("mutation at {i} passed: {v:?}");
                }
            }
            assert!(check(provider, &token[..i]).is_err());
        }
    }
}

// ---------------------------------------------------------------------------
// Remembered signatures

/// [`verify_token_seen`] with the Rust verifiers, whose futures are ready at once.
#[allow(clippy::too_many_arguments)]
fn seen_verify(
    provider: &Provider,
    index: usize,
    token: &Token<'_>,
    fetched: Option<&KeySet>,
    generation: u64,
    now_s: u64,
    scopes: &[String],
    seen: &mut SeenSignatures,
) -> Result<Verified, AuthError> {
    use futures_util::FutureExt as _;
    let cell = std::cell::RefCell::new(std::mem::take(seen));
    let result = verify_token_seen(
        provider,
        index,
        token,
        fetched,
        generation,
        now_s,
        scopes,
        &cell,
        &RustVerifier,
    )
    .now_or_never()
    .expect("the Rust verifiers are ready at once");
    *seen = cell.into_inner();
    result
}

fn seen_check(
    provider: &Provider,
    index: usize,
    token: &str,
    fetched: Option<&KeySet>,
    generation: u64,
    now_s: u64,
    seen: &mut SeenSignatures,
) -> Result<Verified, AuthError> {
    let header = bearer(token);
    let parsed = Token::parse(Some(&header))?;
    seen_verify(
        provider,
        index,
        &parsed,
        fetched,
        generation,
        now_s,
        &[],
        seen,
    )
}

#[test]
fn a_verified_signature_is_remembered_and_the_claims_still_checked() {
    let p = keys_provider();
    let mut seen = SeenSignatures::new();
    let token = sign(J::ES256, &p256_key(), Some("p256"), &claims());
    assert!(seen_check(&p, 0, &token, None, 0, NOW, &mut seen).is_ok());
    assert_eq!(seen.len(), 1);
    // Seen again: accepted, nothing added.
    let v = seen_check(&p, 0, &token, None, 0, NOW, &mut seen).unwrap();
    assert_eq!(v.subject.as_deref(), Some("user-1"));
    assert_eq!(seen.len(), 1);
    // The claims are checked on every request: the same token expires.
    assert_invalid(
        seen_check(&p, 0, &token, None, 0, NOW + 3600, &mut seen),
        EXPIRED,
    );
    // Scopes too.
    let header = bearer(&token);
    let parsed = Token::parse(Some(&header)).unwrap();
    let scoped = seen_verify(
        &p,
        0,
        &parsed,
        None,
        0,
        NOW,
        &strings(&["admin"]),
        &mut seen,
    );
    assert!(
        matches!(scoped, Err(AuthError::InsufficientScope(_))),
        "{scoped:?}"
    );
}

#[test]
fn only_the_exact_token_for_the_same_provider_and_key_set_skips_the_signature() {
    let p = keys_provider();
    let mut seen = SeenSignatures::new();
    let token = sign(J::ES256, &p256_key(), Some("p256"), &claims());
    seen_check(&p, 0, &token, None, 0, NOW, &mut seen).unwrap();
    // Another payload with the remembered signature: verified, and refused.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let other = with(claims(), "sub", json!("admin"));
    let forged = format!("{header}.{}.{signature}", b64(other.to_string()));
    assert_invalid(
        seen_check(&p, 0, &forged, None, 0, NOW, &mut seen),
        BAD_SIGNATURE,
    );
    // The remembered signature of a token under another provider index: verified
    // again (provider 1 has no such key).
    let other_provider = secret_provider();
    assert!(seen_check(&other_provider, 1, &token, None, 0, NOW, &mut seen).is_err());
    // Another key-set generation: verified again.
    let before = seen.len();
    seen_check(&p, 0, &token, None, 1, NOW, &mut seen).unwrap();
    assert_eq!(seen.len(), before, "the entry was refreshed, not added");
    // A disallowed algorithm is refused even when remembered.
    let hs_only = provider(json!({"keys": {"keys": [p256_jwk("p256")]}, "algorithms": ["RS256"]}));
    assert_invalid(
        seen_check(&hs_only, 0, &token, None, 1, NOW, &mut seen),
        DISALLOWED_ALG,
    );
}

#[test]
fn after_a_key_rotation_a_remembered_token_of_a_removed_key_is_refused() {
    let p = jwks_provider();
    let mut seen = SeenSignatures::new();
    let token = sign(J::RS256, &rsa_key(), Some("old"), &claims());
    let old = jwks(vec![rsa_jwk("old")]);
    seen_check(&p, 0, &token, Some(&old), 1, NOW, &mut seen).unwrap();
    seen_check(&p, 0, &token, Some(&old), 1, NOW, &mut seen).unwrap();
    // The JWKS was refetched without that key: generation 2.
    let new = jwks(vec![rsa2_jwk("new")]);
    assert!(seen_check(&p, 0, &token, Some(&new), 2, NOW, &mut seen).is_err());
}

#[test]
fn hmac_signatures_are_always_checked_not_remembered() {
    let p = secret_provider();
    let mut seen = SeenSignatures::new();
    let token = sign(J::HS256, &secret_key(), None, &claims());
    seen_check(&p, 0, &token, None, 0, NOW, &mut seen).unwrap();
    seen_check(&p, 0, &token, None, 0, NOW, &mut seen).unwrap();
    assert!(seen.is_empty());
}

#[test]
fn the_set_is_bounded() {
    let mut seen = SeenSignatures::new();
    for i in 0..seen::MAX_SEEN {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        seen.insert(id, 0);
    }
    assert_eq!(seen.len(), seen::MAX_SEEN);
    seen.insert([0xff; 32], 0);
    assert_eq!(seen.len(), 1);
    assert!(seen.contains(&[0xff; 32], 0));
    assert!(!seen.contains(&[0xff; 32], 1));
}

#[test]
fn a_required_access_token_type_refuses_other_types() {
    let at = provider(json!({"secret_var": "JWT_SECRET", "typ": "at+jwt"}));
    let plain = secret_provider();
    let payload = claims().to_string();
    let token = |typ: Option<Value>| {
        let mut header = json!({"alg": "HS256"});
        if let Some(t) = typ {
            header["typ"] = t;
        }
        sign_raw(J::HS256, &secret_key(), &header.to_string(), &payload)
    };
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+JWT",
    ] {
        assert!(check(&at, &token(Some(json!(typ)))).is_ok(), "{typ}");
        assert!(check(&plain, &token(Some(json!(typ)))).is_ok(), "{typ}");
    }
    // An ID token of the same issuer (typ JWT, or none), and look-alikes.
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("at+jwt "),
        json!("application/"),
        json!("applicationat+jwt"),
        json!("text/at+jwt"),
        json!("at+jwt; charset=utf-8"),
        json!(""),
        json!(7),
        json!(["at+jwt"]),
        json!(null),
    ] {
        assert_invalid(check(&at, &token(Some(typ.clone()))), WRONG_TYPE);
        if typ.is_string() {
            assert!(check(&plain, &token(Some(typ.clone()))).is_ok(), "{typ}");
        }
    }
    assert_invalid(check(&at, &token(None)), WRONG_TYPE);
    assert!(check(&plain, &token(None)).is_ok());
    // The type is checked on the remembered-signature path too, for asymmetric keys.
    let keys = provider(json!({"keys": {"keys": [p256_jwk("p256")]}, "typ": "at+jwt"}));
    let mut header = Header::new(J::ES256);
    header.kid = Some("p256".into());
    let id_token = jsonwebtoken::encode(&header, &claims(), &p256_key()).unwrap();
    header.typ = Some("at+jwt".into());
    let access = jsonwebtoken::encode(&header, &claims(), &p256_key()).unwrap();
    let mut seen = SeenSignatures::new();
    let (access, id_token) = (bearer(&access), bearer(&id_token));
    for _ in 0..2 {
        let t = Token::parse(Some(&access)).unwrap();
        assert!(seen_verify(&keys, 0, &t, None, 0, NOW, &[], &mut seen).is_ok());
        let t = Token::parse(Some(&id_token)).unwrap();
        assert_eq!(
            seen_verify(&keys, 0, &t, None, 0, NOW, &[], &mut seen),
            Err(AuthError::Invalid(WRONG_TYPE))
        );
    }
    assert!(typ_matches(TokenType::AtJwt, "APPLICATION/AT+JWT"));
    assert!(!typ_matches(
        TokenType::AtJwt,
        "application/application/at+jwt"
    ));
}

#[test]
fn only_at_jwt_is_a_known_token_type() {
    let ok: JwtProvider =
        serde_json::from_value(json!({"issuer": ISS, "secret_var": "S", "typ": "at+jwt"})).unwrap();
    assert_eq!(ok.typ, Some(TokenType::AtJwt));
    for bad in ["JWT", "AT+JWT", "application/at+jwt", ""] {
        let err = serde_json::from_value::<JwtProvider>(json!({"issuer": ISS, "typ": bad}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant"), "{bad}: {err}");
    }
}
