//! Auth

use super::*;

#[test]
fn missing_token_is_401_with_a_bare_bearer_challenge() {
    let w = world(config());
    for r in [
        get("/api/me"),
        get("/api/me").header("authorization", "Basic dTpw"),
        get("/api/me").header("authorization", "Bearer"),
    ] {
        let out = w.send(&r);
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], "a bearer token is required");
        assert_eq!(out.h("www-authenticate").as_deref(), Some("Bearer"));
    }
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["error"], "auth: missing token");
}

#[test]
fn bad_tokens_are_401_invalid_token() {
    let w = world(config());
    let good = user("alice");
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other_payload = hs_claims("mallory", "read admin");
    let forged_payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(other_payload.to_string())
    };
    let wrong_secret = jsonwebtoken::encode(
        &Header::new(J::HS256),
        &hs_claims("alice", "read"),
        &EncodingKey::from_secret(b"another secret that is long enough!!"),
    )
    .unwrap();
    let cases = [
        (
            format!("{head}.{forged_payload}.{sig}"),
            "invalid signature",
        ),
        (wrong_secret, "invalid signature"),
        (
            hs_token(&json!({"iss": HS_ISS, "sub": "a", "scope": "read", "exp": NOW_S - 3600})),
            "token expired",
        ),
        (
            hs_token(
                &json!({"iss": "https://other.test", "sub": "a", "scope": "read", "exp": NOW_S + 60}),
            ),
            "wrong issuer",
        ),
        (
            hs_token(&json!({"iss": HS_ISS, "sub": "a", "scope": "read"})),
            "missing exp",
        ),
        ("not-a-token".to_string(), "malformed token"),
    ];
    for (token, reason) in cases {
        let out = w.send(&get("/api/me").bearer(&token));
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], format!("invalid token: {reason}"));
        assert_eq!(
            out.h("www-authenticate").unwrap(),
            format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
        );
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn a_provider_requiring_at_jwt_refuses_id_tokens_of_the_same_issuer() {
    let w = world(json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "jwt": {"at": {"issuer": HS_ISS, "secret_var": "JWT_SECRET", "typ": "at+jwt"},
                "any": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "routes": [{"id": "strict", "path": "/strict", "origin": "o", "auth": {"jwt": "at"}},
                   {"id": "lax", "path": "/lax", "origin": "o", "auth": {"jwt": "any"}}]
    }));
    let token = |typ: Option<&str>| {
        let mut header = Header::new(J::HS256);
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(
            &header,
            &hs_claims("alice", "read"),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        assert_eq!(
            w.send(&get("/strict").bearer(&token(Some(typ)))).status,
            200,
            "{typ}"
        );
    }
    for typ in [Some("JWT"), None, Some("id+jwt")] {
        let out = w.send(&get("/strict").bearer(&token(typ)));
        assert_problem(&out, 401, "unauthorized");
        assert_eq!(
            out.h("www-authenticate").as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"wrong token type\""),
            "{typ:?}"
        );
        assert_eq!(
            w.send(&get("/lax").bearer(&token(typ))).status,
            200,
            "{typ:?}"
        );
    }
}

#[test]
fn a_missing_scope_is_403_insufficient_scope() {
    let w = world(config());
    let out = w.send(&get("/api/admin").bearer(&user("alice")));
    let v = assert_problem(&out, 403, "forbidden");
    assert_eq!(v["detail"], "the token lacks a required scope");
    assert_eq!(
        out.h("www-authenticate").as_deref(),
        Some("Bearer error=\"insufficient_scope\", scope=\"read admin\"")
    );
    assert!(w.ports.sent().is_empty());

    let out = w.send(&get("/api/admin").bearer(&hs_token(&hs_claims("root", "admin read"))));
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-user-id").as_deref(), Some("root"));
    // The token itself still goes upstream: the gateway does not strip Authorization.
    assert!(sent.h("authorization").is_some());
}

#[test]
fn jwks_burst_causes_one_fetch() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    let token = es_token("k1");
    let burst: Vec<Req> = (0..8).map(|_| get("/api/tenant").bearer(&token)).collect();
    let outs = w.send_all(&burst);
    for out in &outs {
        assert_eq!(out.status, 200, "{out:#?}");
    }
    assert_eq!(w.ports.jwks_fetches.get(), 1);
    assert_eq!(*w.ports.jwks_urls.borrow(), [JWKS_URL]);
    assert_eq!(w.ports.sent().len(), 8);
    // Later requests use the cached keys.
    w.ports.advance(60_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 1);
    assert_eq!(w.ports.last_record()["subject"], "svc-1");
}

#[test]
fn an_unknown_kid_refetches_only_after_ten_seconds() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    assert_eq!(
        w.send(&get("/api/tenant").bearer(&es_token("k1"))).status,
        200
    );
    assert_eq!(w.ports.jwks_fetches.get(), 1);

    // The issuer rotates in a new key; the gateway does not know it yet.
    w.ports.set_jwks(vec![p256_jwk("k1"), ed_jwk("k2")]);
    let rotated = ed_token("k2");
    w.ports.advance(1_000);
    let out = w.send(&get("/api/tenant").bearer(&rotated));
    assert_problem(&out, 401, "unauthorized");
    assert_eq!(
        out.h("www-authenticate").as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"unknown key id\"")
    );
    w.ports.advance(8_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&rotated)).status, 401);
    assert_eq!(w.ports.jwks_fetches.get(), 1, "refetched within 10 s");

    w.ports.advance(1_000);
    let out = w.send(&get("/api/tenant").bearer(&rotated));
    assert_eq!(out.status, 200, "{out:#?}");
    assert_eq!(w.ports.jwks_fetches.get(), 2);
    // Both keys now verify without fetching.
    assert_eq!(
        w.send(&get("/api/tenant").bearer(&es_token("k1"))).status,
        200
    );
    assert_eq!(w.send(&get("/api/tenant").bearer(&rotated)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 2);
}

#[test]
fn jwks_down_with_keys_cached_still_accepts_tokens() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    *w.ports.jwks_cache_control.borrow_mut() = Some("public, max-age=60".into());
    let token = es_token("k1");
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);

    w.ports.jwks_fail.set(true);
    w.ports.advance(61_000);
    let out = w.send(&get("/api/tenant").bearer(&token));
    assert_eq!(out.status, 200, "{out:#?}");
    assert_eq!(w.ports.jwks_fetches.get(), 2);
    let errors: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "jwks_error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["provider"], "keys");

    // Retries are spaced: not on every request.
    w.ports.advance(1_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 2);
}

#[test]
fn jwks_down_with_nothing_cached_is_503() {
    let w = world(config());
    w.ports.jwks_fail.set(true);
    let token = es_token("k1");
    let out = w.send(&get("/api/tenant").bearer(&token));
    let v = assert_problem(&out, 503, "unavailable");
    assert_eq!(v["detail"], "the token issuer's keys cannot be fetched");
    assert_eq!(out.h("retry-after").as_deref(), Some("10"));
    assert!(w.ports.sent().is_empty());

    // Once the issuer is back (after the retry delay), tokens pass.
    w.ports.jwks_fail.set(false);
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    w.ports.advance(10_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
}

#[test]
fn a_provider_whose_secret_is_not_set_fails_only_its_routes() {
    let w = world(config());
    let token = hs_token(&json!({"iss": "https://broken.test", "sub": "a", "exp": NOW_S + 60}));
    for r in [get("/api/broken"), get("/api/broken").bearer(&token)] {
        let out = w.send(&r);
        let v = assert_problem(&out, 503, "unavailable");
        assert_eq!(
            v["detail"],
            "token verification is not configured for this route"
        );
        assert!(!out.has("www-authenticate"));
    }
    assert!(w.ports.sent().is_empty());
    let line = w.ports.last_record();
    assert!(
        line["error"].as_str().unwrap().contains("UNSET_SECRET"),
        "{line}"
    );

    assert_eq!(w.send(&get("/api/me").bearer(&user("alice"))).status, 200);
    assert_eq!(w.send(&get("/api/items/1")).status, 200);
}
