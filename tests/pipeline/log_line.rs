//! The log line

use super::*;

#[test]
fn one_log_line_per_request_with_what_happened() {
    let w = world(config());
    w.ports.on(US, Outcome::Connect);
    w.ports
        .on(AP, respond(200, &[("cache-control", "max-age=30")]));
    let token = user("alice");
    let out = w.send(
        &get("/full?x=1")
            .continent("NA")
            .bearer(&token)
            .header("x-request-id", "log-test-1"),
    );
    assert_eq!(out.status, 200);
    let records = w.ports.records();
    assert_eq!(records.len(), 1);
    let line = &records[0];
    assert_eq!(line["request_id"], "log-test-1");
    assert_eq!(line["route"], "full");
    assert_eq!(line["path_template"], "/full");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/full");
    assert_eq!(line["status"], 200);
    assert_eq!(line["region"], "ap");
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(line["failovers"], 1);
    assert_eq!(
        line["attempts"],
        json!([
            {"region": "us", "error": "connect", "ms": 1},
            {"region": "ap", "status": 200, "ms": FETCH_MS}
        ])
    );
    assert_eq!(line["cache"], "MISS");
    assert_eq!(line["rate_limit"], "allowed");
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["upstream_ms"], 1 + FETCH_MS);
    assert_eq!(line["duration_ms"], 1 + FETCH_MS);
    assert!(line.get("error").is_none(), "{line}");

    // Every kind of answer writes exactly one line.
    w.send(&get("/nope"));
    w.send(&get("/__gateway/health"));
    w.send(&preflight("/api/items/1", APP, "GET"));
    w.send(&get("/full?x=1").bearer(&token));
    w.send(&get("/full"));
    let records = w.ports.records();
    assert_eq!(records.len(), 6);
    assert_eq!(records[4]["cache"], "HIT");
    assert_eq!(records[4]["failovers"], 0);
    assert_eq!(records[5]["status"], 401);
    assert_eq!(records[5]["error"], "auth: missing token");
    assert!(records[5].get("subject").is_none());
}

#[test]
fn the_log_never_holds_the_authorization_header_or_token() {
    let w = world(config());
    let good = user("alice");
    let scoped = hs_token(&hs_claims("bob", "none"));
    let expired =
        hs_token(&json!({"iss": HS_ISS, "sub": "carol", "scope": "read", "exp": NOW_S - 999}));
    let tampered = format!("{}x", &good[..good.len() - 1]);
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    let es = es_token("k1");
    let requests = [
        get("/api/me").bearer(&good),
        get("/api/me").bearer(&scoped),
        get("/api/me").bearer(&expired),
        get("/api/me").bearer(&tampered),
        get("/api/tenant").bearer(&es),
        get("/api/items/1").bearer(&good),
        get("/api/broken").bearer(&good),
        req("DELETE", "/__gateway/cache?path=/c/x").bearer(ADMIN_TOKEN),
        req("DELETE", "/__gateway/cache?path=/c/x").bearer("guess-admin-token"),
    ];
    let statuses: Vec<u16> = requests.iter().map(|r| w.send(r).status).collect();
    assert_eq!(statuses, [200, 403, 401, 401, 200, 200, 503, 200, 401]);
    let raw = w.ports.records.borrow().clone();
    assert_eq!(raw.len(), requests.len());
    let events = w.ports.events();
    for secret in [
        good.as_str(),
        &scoped,
        &expired,
        &tampered,
        &es,
        ADMIN_TOKEN,
        "guess-admin-token",
        JWT_SECRET,
    ] {
        for line in &raw {
            assert!(!line.contains(secret), "{line}");
            // Not even the signature or payload part alone.
            for part in secret.split('.').filter(|p| p.len() > 16) {
                assert!(!line.contains(part), "{line}");
            }
        }
        for e in &events {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
    for line in &raw {
        assert!(!line.to_ascii_lowercase().contains("bearer"), "{line}");
    }
}
