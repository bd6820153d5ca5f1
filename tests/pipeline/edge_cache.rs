//! Cache

use super::*;

#[test]
fn get_misses_then_hits_with_age() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("cache-control", "public, max-age=300"),
                ("etag", "\"v1\""),
                ("x-gateway-stored-at", "1"),
                ("x-gateway-origin-cache-control", "spoofed"),
            ],
        ),
    );
    let out = w.send(&get("/c/a?b=2&a=1").country("DE"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(
        out.h("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    assert!(
        !out.has("x-gateway-stored-at"),
        "a spoofed storage time passed: {out:#?}"
    );
    assert!(!out.has(ORIGIN_CACHE_CONTROL), "{out:#?}");
    assert!(!out.has("age"));
    let (key, ttl) = out.store.clone().expect("stored");
    assert_eq!(
        ttl, 120,
        "the route's ttl is lower than the origin's max-age"
    );
    assert!(
        key.starts_with("https://api.example.test/__gateway/cache/"),
        "{key}"
    );
    assert!(key.ends_with("/c/a?a=1&b=2"), "{key}");
    assert_eq!(w.ports.last_record()["cache"], "MISS");

    w.ports.advance(7_000);
    let hit = w.send(&get("/c/a?a=1&b=2").country("DE"));
    assert_eq!(hit.status, 200);
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("age").as_deref(), Some("7"));
    assert_eq!(
        hit.h("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    assert_eq!(hit.h("etag").as_deref(), Some("\"v1\""));
    assert_eq!(hit.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(hit.body, out.body);
    assert!(hit.store.is_none());
    for name in [cache::STORED_AT, ORIGIN_CACHE_CONTROL] {
        assert!(!hit.has(name), "{name} leaked: {hit:#?}");
    }
    assert!(hit.has("x-request-id") && hit.has("server-timing"));
    assert_eq!(w.ports.sent().len(), 1);
    let line = w.ports.last_record();
    assert_eq!(line["cache"], "HIT");
    assert!(line.get("region").is_none());

    // A HEAD is answered from the GET entry, without a body.
    let head = w.send(&req("HEAD", "/c/a?a=1&b=2"));
    assert_eq!(head.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(head.body, None);
    assert_eq!(w.ports.sent().len(), 1);

    // Without an origin cache-control, a hit has none either.
    w.ports.on(EU, respond(200, &[]));
    let first = w.send(&get("/c/plain").country("DE"));
    assert_eq!(first.store.as_ref().unwrap().1, 120);
    let hit = w.send(&get("/c/plain").country("DE"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("age").as_deref(), Some("0"));
    assert!(!hit.has("cache-control"), "{hit:#?}");
}

#[test]
fn a_hit_never_carries_the_hop_by_hop_headers_the_origin_connection_names() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("connection", "x-secret, X_Other"),
                ("x-secret", "1"),
                ("x_other", "2"),
                ("keep-alive", "timeout=5"),
                ("upgrade", "h2c"),
                ("x-end-to-end", "kept"),
            ],
        ),
    );
    let miss = w.send(&get("/c/hop").country("DE"));
    let hit = w.send(&get("/c/hop").country("DE"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    for out in [&miss, &hit] {
        for name in ["connection", "x-secret", "x_other", "keep-alive", "upgrade"] {
            assert!(!out.has(name), "{name} served: {out:#?}");
        }
        assert_eq!(out.h("x-end-to-end").as_deref(), Some("kept"));
    }
    let stored = w.ports.cache.borrow();
    let entry = stored.values().next().expect("one entry");
    for name in ["connection", "x-secret", "x_other", "keep-alive", "upgrade"] {
        assert!(header_of(&entry.headers, name).is_none(), "{name} stored");
    }
}

#[test]
fn other_methods_bypass_the_cache() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let out = w.send(&req(m, "/c/x").country("DE"));
        assert_eq!(out.status, 200);
        assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"), "{m}");
        assert!(out.store.is_none());
        assert_eq!(w.ports.last_record()["cache"], "BYPASS");
    }
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(
        w.send(&get("/c/x").country("DE")).h("x-cache").as_deref(),
        Some("MISS")
    );
    // A HEAD miss is not stored (it has no body).
    let head = w.send(&req("HEAD", "/c/y").country("DE"));
    assert_eq!(head.h("x-cache").as_deref(), Some("MISS"));
    assert!(head.store.is_none());
}

#[test]
fn unstorable_responses_are_never_stored() {
    let w = world(config());
    let cases: [(&str, Outcome); 8] = [
        (
            "/c/no-store",
            respond(200, &[("cache-control", "no-store")]),
        ),
        (
            "/c/private",
            respond(200, &[("cache-control", "private, max-age=60")]),
        ),
        (
            "/c/no-cache",
            respond(200, &[("cache-control", "no-cache")]),
        ),
        (
            "/c/max-age-0",
            respond(200, &[("cache-control", "max-age=0")]),
        ),
        (
            "/c/cookie",
            respond(
                200,
                &[("set-cookie", "s=1"), ("cache-control", "max-age=60")],
            ),
        ),
        (
            "/c/missing",
            respond(404, &[("cache-control", "max-age=60")]),
        ),
        (
            "/c/vary-star",
            respond(200, &[("vary", "*"), ("cache-control", "max-age=60")]),
        ),
        ("/c/error", respond(500, &[("cache-control", "max-age=60")])),
    ];
    for (path, outcome) in cases {
        w.ports.on(&format!("{EU}{path}"), outcome);
        for _ in 0..2 {
            let out = w.send(&get(path).country("DE"));
            assert_eq!(out.h("x-cache").as_deref(), Some("MISS"), "{path}");
            assert!(out.store.is_none(), "{path} would be stored");
        }
    }
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(w.ports.sent().len(), 16);
    // The set-cookie is passed to the client.
    let out = w.send(&get("/c/cookie").country("DE"));
    assert_eq!(out.h("set-cookie").as_deref(), Some("s=1"));
}

#[test]
fn a_request_with_authorization_on_a_public_route_is_stored_only_when_public() {
    let w = world(config());
    w.ports.on(
        &format!("{EU}/c/authz"),
        respond(200, &[("cache-control", "max-age=60")]),
    );
    let out = w.send(&get("/c/authz").country("DE").bearer("opaque"));
    assert_eq!(out.h("x-cache").as_deref(), Some("MISS"));
    assert!(out.store.is_none());
    w.ports.on(
        &format!("{EU}/c/authz"),
        respond(200, &[("cache-control", "public, max-age=60")]),
    );
    let out = w.send(&get("/c/authz").country("DE").bearer("opaque"));
    assert_eq!(out.store.as_ref().map(|s| s.1), Some(60));
}

#[test]
fn auth_routes_are_cached_per_subject() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let alice = user("alice");
    let bob = user("bob");
    let a1 = w.send(&get("/ca").country("DE").bearer(&alice));
    assert_eq!(a1.h("x-cache").as_deref(), Some("MISS"));
    let key = a1.store.clone().unwrap().0;
    assert!(!key.contains("alice"), "{key}");
    let a2 = w.send(&get("/ca").country("DE").bearer(&alice));
    assert_eq!(a2.h("x-cache").as_deref(), Some("HIT"));
    let b1 = w.send(&get("/ca").country("DE").bearer(&bob));
    assert_eq!(b1.h("x-cache").as_deref(), Some("MISS"));
    assert_ne!(b1.store.clone().unwrap().0, key);
    assert_eq!(
        w.send(&get("/ca").bearer(&bob)).h("x-cache").as_deref(),
        Some("HIT")
    );
    assert_eq!(w.ports.sent().len(), 2);
    // No token: 401 before the cache is consulted.
    let out = w.send(&get("/ca"));
    assert_eq!(out.status, 401);
    assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"));
    // A token without a subject cannot share entries: bypass.
    let anonymous = hs_token(&json!({"iss": HS_ISS, "exp": NOW_S + 60}));
    let out = w.send(&get("/ca").country("DE").bearer(&anonymous));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"));
    assert!(out.store.is_none());
}

#[test]
fn vary_headers_separate_entries() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let lang = |v: &str| get("/cv").country("DE").header("Accept-Language", v);
    let x = |out: Out| out.h("x-cache").unwrap();
    assert_eq!(x(w.send(&lang("en"))), "MISS");
    assert_eq!(x(w.send(&lang("en"))), "HIT");
    assert_eq!(x(w.send(&lang("fr"))), "MISS");
    assert_eq!(x(w.send(&lang("fr"))), "HIT");
    assert_eq!(x(w.send(&get("/cv"))), "MISS");
    assert_eq!(x(w.send(&get("/cv"))), "HIT");
    assert_eq!(x(w.send(&lang(""))), "MISS");
    // Other headers do not matter.
    assert_eq!(x(w.send(&lang("en").header("accept", "text/html"))), "HIT");
    assert_eq!(w.ports.sent().len(), 4);
}

#[test]
fn a_response_varying_on_a_header_outside_the_key_is_not_stored() {
    let w = world(config());
    let x = |out: &Out| out.h("x-cache").unwrap();
    // The leak: `Vary: Cookie` on a route whose key ignores cookies.
    w.ports
        .on(EU, respond(200, &[("vary", "Accept-Encoding, Cookie")]));
    let alice = w.send(&get("/c/me").country("DE").header("cookie", "session=alice"));
    assert_eq!(x(&alice), "MISS");
    assert!(alice.store.is_none());
    let bob = w.send(&get("/c/me").country("DE").header("cookie", "session=bob"));
    assert_eq!(x(&bob), "MISS", "bob was served alice's variant");
    assert_eq!(w.ports.sent().len(), 2);
    assert!(w.ports.cache.borrow().is_empty());
    // A `Vary` within the route's list (and Accept-Encoding) is stored.
    w.ports.on(
        EU,
        respond(200, &[("vary", "accept-language, Accept-Encoding")]),
    );
    let lang = || get("/cv").country("DE").header("Accept-Language", "en");
    assert!(w.send(&lang()).store.is_some());
    assert_eq!(x(&w.send(&lang())), "HIT");
    // Only Accept-Encoding: stored.
    w.ports.on(EU, respond(200, &[("vary", "Accept-Encoding")]));
    assert!(w.send(&get("/c/enc").country("DE")).store.is_some());
}

#[test]
fn repeated_query_parameters_keep_their_order_in_the_key() {
    let w = world(config());
    let x = |out: Out| out.h("x-cache").unwrap();
    assert_eq!(x(w.send(&get("/c/q?a=1&a=2").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=2&a=1").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=1&a=2").country("DE"))), "HIT");
    // Distinct names may come in any order.
    assert_eq!(x(w.send(&get("/c/q?b=0&a=1&a=2").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=1&b=0&a=2").country("DE"))), "HIT");
    assert_eq!(w.ports.sent().len(), 3);
}

#[test]
fn a_successful_unsafe_request_invalidates_the_entry_of_its_url() {
    let w = world(config());
    let x = |out: &Out| out.h("x-cache").unwrap();
    let prime = |target: &str| {
        w.send(&get(target).country("DE"));
        assert_eq!(x(&w.send(&get(target).country("DE"))), "HIT", "{target}");
    };
    for (i, m) in ["POST", "PUT", "PATCH", "DELETE"].into_iter().enumerate() {
        let target = format!("/c/doc{i}?v=1");
        prime(&target);
        prime("/c/other");
        w.ports
            .once(EU, respond(if i % 2 == 0 { 201 } else { 204 }, &[]));
        let out = w.send(&req(m, &target).country("DE"));
        assert_eq!(x(&out), "BYPASS");
        assert_eq!(x(&w.send(&get(&target).country("DE"))), "MISS", "{m}");
        // Another URL (or another query) keeps its entry.
        assert_eq!(x(&w.send(&get("/c/other").country("DE"))), "HIT", "{m}");
    }
    // A failed write invalidates nothing.
    prime("/c/kept");
    for status in [400, 409, 500] {
        w.ports.once(EU, respond(status, &[]));
        w.send(&req("DELETE", "/c/kept").country("DE"));
        assert_eq!(x(&w.send(&get("/c/kept").country("DE"))), "HIT", "{status}");
    }
    // The normalized path is the same URL.
    prime("/c/enc");
    w.send(&req("PUT", "/c/%65nc").country("DE"));
    assert_eq!(x(&w.send(&get("/c/enc").country("DE"))), "MISS");
}

#[test]
fn if_none_match_on_a_hit_is_304_without_body() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("etag", "\"v1\""),
                ("content-type", "text/plain"),
                ("content-length", "20"),
                ("cache-control", "max-age=60"),
                ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ],
        ),
    );
    w.send(&get("/c/e").country("DE"));
    for inm in ["\"v1\"", "W/\"v1\"", "\"v0\", \"v1\"", "*"] {
        let out = w.send(&get("/c/e").header("if-none-match", inm));
        assert_eq!(out.status, 304, "{inm}");
        assert!(out.no_body);
        assert_eq!(out.body, None);
        assert_eq!(out.h("x-cache").as_deref(), Some("HIT"));
        assert_eq!(out.h("etag").as_deref(), Some("\"v1\""));
        assert!(
            !out.has("content-length") && !out.has("content-type"),
            "{out:#?}"
        );
    }
    let out = w.send(&get("/c/e").header("if-none-match", "\"v2\""));
    assert_eq!(out.status, 200);
    assert!(out.body.is_some());
    // If-Modified-Since, without If-None-Match.
    let out = w.send(&get("/c/e").header("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"));
    assert_eq!(out.status, 304);
    assert_eq!(w.ports.sent().len(), 1);
    assert_eq!(w.ports.last_record()["status"], 304);
}

#[test]
fn purge_needs_the_admin_token() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    w.send(&get("/c/p?x=1").country("DE"));
    assert_eq!(w.ports.cache.borrow().len(), 1);

    let purge = |token: Option<&str>| {
        let r = req("DELETE", "/__gateway/cache?path=%2Fc%2Fp%3Fx%3D1");
        match token {
            Some(t) => r.bearer(t),
            None => r,
        }
    };
    for token in [None, Some("wrong"), Some("admin-token-for-tests-012345678")] {
        let out = w.send(&purge(token));
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], "the admin token is missing or wrong");
        assert_eq!(
            out.h("www-authenticate").as_deref(),
            Some("Bearer realm=\"gateway-admin\"")
        );
    }
    assert_eq!(w.ports.cache.borrow().len(), 1);

    let out = w.send(&purge(Some(ADMIN_TOKEN)));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        out.json(),
        json!({"purged": true, "route": "cached", "path": "/c/p"})
    );
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(w.send(&purge(Some(ADMIN_TOKEN))).json()["purged"], false);
    assert_eq!(
        w.send(&get("/c/p?x=1")).h("x-cache").as_deref(),
        Some("MISS")
    );

    // Only DELETE.
    let out = w.send(&get("/__gateway/cache?path=/c/p").bearer(ADMIN_TOKEN));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("DELETE"));

    // Per-subject entries need the subject.
    let alice = user("alice");
    w.send(&get("/ca").bearer(&alice));
    assert_eq!(w.ports.cache.borrow().len(), 2);
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/ca").bearer(ADMIN_TOKEN));
    assert_problem(&out, 400, "bad-request");
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/ca&subject=alice").bearer(ADMIN_TOKEN));
    assert_eq!(out.json()["purged"], true);
    assert_eq!(w.ports.cache.borrow().len(), 1);
    assert!(w.ports.sent().len() == 3);
}

#[test]
fn purge_is_disabled_without_the_admin_secret() {
    let w = world_with(config(), &[("JWT_SECRET", JWT_SECRET)]);
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/c/p").bearer(ADMIN_TOKEN));
    let v = assert_problem(&out, 401, "unauthorized");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_ADMIN_TOKEN"),
        "{v}"
    );
    // An empty secret counts as unset.
    let w = world_with(
        config(),
        &[("JWT_SECRET", JWT_SECRET), ("GATEWAY_ADMIN_TOKEN", "")],
    );
    let out =
        w.send(&req("DELETE", "/__gateway/cache?path=/c/p").header("authorization", "Bearer "));
    assert_problem(&out, 401, "unauthorized");
}
