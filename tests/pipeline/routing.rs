//! Routing

use super::*;

#[test]
fn unknown_path_is_404_problem_and_reaches_no_upstream() {
    let w = world(config());
    let out = w.send(&get("/nope"));
    let v = assert_problem(&out, 404, "not-found");
    assert_eq!(v["detail"], "no route matches this path");
    assert!(w.ports.sent().is_empty());
    let line = w.ports.last_record();
    assert_eq!(line["status"], 404);
    assert!(line.get("route").is_none(), "{line}");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let w = world(config());
    let out = w.send(&req("POST", "/api/items/7"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));

    let out = w.send(&req("DELETE", "/api/orders"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("POST, PUT"));

    // Method names are case-sensitive; an unknown method is refused the same way.
    for m in ["get", "BREW"] {
        let out = w.send(&req(m, "/api/items/7"));
        assert_problem(&out, 405, "method-not-allowed");
        assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn head_on_a_get_route_is_forwarded_as_head_and_answered_without_body() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "12"),
            ],
        ),
    );
    let out = w.send(&req("HEAD", "/api/items/7").country("DE"));
    assert_eq!(out.status, 200);
    assert!(out.no_body);
    assert_eq!(out.body, None);
    assert_eq!(out.h("content-length").as_deref(), Some("12"));
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, Method::Head);
    assert_eq!(sent[0].url, "http://eu.api.test/api/items/7");

    // A gateway error to a HEAD has no body either.
    let out = w.send(&req("HEAD", "/nope"));
    assert_eq!(out.status, 404);
    assert!(out.no_body);
    assert_eq!(out.body, None);
}

#[test]
fn health_is_answered_by_the_gateway_even_with_a_catch_all_route() {
    let w = world(catch_all_config());
    let out = w.send(&get("/__gateway/health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(out.h("cache-control").as_deref(), Some("no-store"));
    let v = out.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["routes"], 1);
    assert!(v["version"].is_string());

    let out = w.send(&req("HEAD", "/__gateway/health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.body, None);

    let out = w.send(&req("POST", "/__gateway/health"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));

    // Reached through dot segments and doubled slashes too.
    let out = w.send(&get("/x/../__gateway//health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.json()["status"], "ok");

    // The reserved prefix is reserved in any case: answered by the gateway, never routed upstream.
    let out = w.send(&get("/__GATEWAY/health"));
    assert_eq!(out.json()["status"], "ok");
    let out = w.send(&get("/__Gateway/other"));
    assert_problem(&out, 404, "not-found");

    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
    // The catch-all still works for other paths.
    assert_eq!(w.send(&get("/__gatewayx")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/__gatewayx"]);
}

#[test]
fn unknown_gateway_endpoints_are_404_and_never_reach_upstream() {
    let w = world(catch_all_config());
    for target in [
        "/__gateway/x",
        "/__gateway",
        "/__gateway/",
        "/__gateway/health/x",
        "/__gateway/cache/0000/x",
        "/a/%2e%2e/__gateway/x",
    ] {
        let out = w.send(&get(target));
        assert_problem(&out, 404, "not-found");
    }
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

#[test]
fn docs_pages_are_served_only_when_the_file_asks_for_them() {
    let mut file = catch_all_config();
    file["docs"] = json!(true);
    // The edge serves the pages build.rs generated; here they are generated the same way.
    let routes = edge_gateway::config::load(&file.to_string()).unwrap();
    let mut w = world(file);
    w.gw.docs = Some(edge_gateway::gateway::DocPages {
        html: edge_gateway::docs::page(&routes, "API reference", "t", "/__gateway/openapi.json")
            .into(),
        openapi: edge_gateway::openapi::export::document(&routes, "API reference", "t")
            .to_string()
            .into(),
    });
    let out = w.send(&get("/__gateway/docs"));
    assert_eq!(out.status, 200);
    assert_eq!(
        out.h("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(out
        .h("content-security-policy")
        .is_some_and(|c| c.starts_with("default-src 'none'")));
    let html = out.body.clone().unwrap();
    assert!(html.contains("data-route=\"all\""), "{html}");
    assert!(!html.contains("origin.test"), "no origin URL: {html}");
    let out = w.send(&get("/__gateway/openapi.json"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(out.json()["openapi"], "3.1.0");
    assert_eq!(w.send(&req("HEAD", "/__gateway/docs")).body, None);
    let out = w.send(&req("POST", "/__gateway/docs"));
    assert_problem(&out, 405, "method-not-allowed");
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());

    // Without `"docs": true` there is no such endpoint.
    let w = world(catch_all_config());
    assert_problem(&w.send(&get("/__gateway/docs")), 404, "not-found");
    assert_problem(&w.send(&get("/__gateway/openapi.json")), 404, "not-found");
}

#[test]
fn dot_segments_and_slashes_are_resolved_before_routing() {
    let w = world(config());
    for (target, upstream) in [
        ("/api/x/../items/7", "http://eu.api.test/api/items/7"),
        ("/api/./items//8", "http://eu.api.test/api/items/8"),
        (
            "/api/items/%2e%2e/items/9",
            "http://eu.api.test/api/items/9",
        ),
        ("/../../api/items/10", "http://eu.api.test/api/items/10"),
    ] {
        w.ports.clear_sent();
        let out = w.send(&get(target).country("DE"));
        assert_eq!(out.status, 200, "{target}");
        assert_eq!(w.ports.sent_urls(), [upstream], "{target}");
        assert_eq!(w.ports.last_record()["route"], "items");
    }
    // Dot segments cannot climb into another route's path either.
    let out = w.send(&get("/api/items/7/../../orders"));
    assert_problem(&out, 405, "method-not-allowed");
}

/// A protected prefix beside a catch-all without auth, on one host.
fn protected_and_catch_all_config() -> Value {
    json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "routes": [
            {"id": "admin", "path": "/admin/{*rest}", "origin": "o", "auth": {"jwt": "hs"},
             "rate_limit": {"requests": 1, "window_s": 60, "key": "route"}},
            {"id": "tenant", "path": "/t", "host": "a.tenant.test", "origin": "o"},
            {"id": "all", "path": "/{*rest}", "origin": "o"}
        ]
    })
}

#[test]
fn encoded_unreserved_characters_cannot_bypass_a_protected_route() {
    let w = world(protected_and_catch_all_config());
    // The attack: `%61` is `a`, so this is /admin/x, with its auth, not the catch-all.
    for target in [
        "/%61dmin/x",
        "/%61%64%6D%69%6E/x",
        "/x/%2e%2e/%61dmin/x",
        "/adm%69n/x",
    ] {
        let out = w.send(&get(target));
        assert_problem(&out, 401, "unauthorized");
        assert_eq!(w.ports.last_record()["route"], "admin", "{target}");
    }
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
    // With a token it is the admin route, and the origin receives the normalized path;
    // the route's one-request limit counts both spellings as one path.
    let ok = w.send(&get("/%61dmin/a%2Fb%7e").bearer(&user("alice")));
    assert_eq!(ok.status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/admin/a%2Fb~"]);
    let limited = w.send(&get("/admin/a%2Fb~").bearer(&user("alice")));
    assert_problem(&limited, 429, "rate-limited");
    // Other encodings are sent as they came.
    w.ports.clear_sent();
    assert_eq!(w.send(&get("/x%2Fy%20z%252e")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/x%2Fy%20z%252e"]);
}

#[test]
fn an_encoded_reserved_prefix_is_still_reserved() {
    let w = world(catch_all_config());
    for target in [
        "/%5F%5Fgateway/health",
        "/%5f_gateway/health",
        "/%5F%5F%67ateway/health",
    ] {
        let out = w.send(&get(target));
        assert_eq!(out.status, 200, "{target}");
        assert_eq!(out.json()["status"], "ok", "{target}");
    }
    assert_problem(&w.send(&get("/%5F%5Fgateway/nothing")), 404, "not-found");
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

#[test]
fn hosts_match_with_a_single_trailing_dot() {
    let w = world(protected_and_catch_all_config());
    for host in ["a.tenant.test", "A.Tenant.Test.", "a.tenant.test.:8443"] {
        let mut r = get("/t");
        r.host = host.into();
        w.send(&r);
        assert_eq!(w.ports.last_record()["route"], "tenant", "{host}");
    }
    let mut r = get("/t");
    r.host = "a.tenant.test..".into();
    w.send(&r);
    assert_eq!(w.ports.last_record()["route"], "all");
}

#[test]
fn rewrite_and_query_reach_the_upstream_with_the_route_timeout() {
    let w = world(config());
    let out = w.send(&get("/v1/users/42/a/b.txt?x=1&y=%20z").country("GB"));
    assert_eq!(out.status, 200);
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].url,
        "http://eu.api.test/internal/42/files/a/b.txt?x=1&y=%20z"
    );
    assert_eq!(sent[0].method, Method::Get);
    assert_eq!(sent[0].timeout_ms, 1234);

    // Without a route timeout, the origin's; a region's path prefix is kept.
    w.ports.clear_sent();
    w.send(&get("/api/items/5?q").continent("OC"));
    let sent = w.ports.sent();
    assert_eq!(sent[0].url, "http://ap.api.test/base/api/items/5?q");
    assert_eq!(sent[0].timeout_ms, 5000);

    // The default origin timeout is 10 s.
    w.ports.clear_sent();
    w.send(&get("/plain"));
    assert_eq!(w.ports.sent()[0].timeout_ms, 10_000);
}

#[test]
fn request_id_is_kept_when_valid_replaced_otherwise_and_sent_upstream() {
    let w = world(config());
    let out = w.send(&get("/api/items/1").header("X-Request-Id", "client-id_1.2"));
    assert_eq!(out.h("x-request-id").as_deref(), Some("client-id_1.2"));
    let sent = w.ports.sent();
    assert_eq!(sent[0].h("x-request-id").as_deref(), Some("client-id_1.2"));
    assert_eq!(w.ports.last_record()["request_id"], "client-id_1.2");

    for bad in ["has space", "", "a\u{7f}b", &"x".repeat(129)] {
        w.ports.clear_sent();
        let out = w.send(&get("/api/items/1").header("x-request-id", bad));
        let id = out.h("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let sent = w.ports.sent();
        // Exactly one x-request-id reaches the upstream: the gateway's.
        assert_eq!(
            sent[0]
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
                .count(),
            1
        );
        assert_eq!(sent[0].h("x-request-id").as_deref(), Some(id.as_str()));
        assert_eq!(w.ports.last_record()["request_id"], id.as_str());
    }

    // Generated ids differ between requests; errors carry them too.
    let a = w.send(&get("/nope")).h("x-request-id").unwrap();
    let b = w.send(&get("/nope")).h("x-request-id").unwrap();
    assert_ne!(a, b);
}

#[test]
fn x_forwarded_headers_are_the_gateways_own() {
    let w = world(config());
    w.send(
        &get("/api/items/1")
            .ip("198.51.100.9")
            .header("X-Forwarded-For", "6.6.6.6")
            .header("x-forwarded-for", "7.7.7.7")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "evil.test")
            .header("Forwarded", "for=6.6.6.6;host=evil.test")
            .header("accept", "application/json"),
    );
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("forwarded"), None);
    assert_eq!(sent.h("x-forwarded-for").as_deref(), Some("198.51.100.9"));
    assert_eq!(sent.h("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(sent.h("x-forwarded-host").as_deref(), Some(HOST));
    assert_eq!(sent.h("accept").as_deref(), Some("application/json"));
    assert_eq!(sent.h("host"), None, "the upstream URL decides the host");

    // Without a client address, a client's x-forwarded-for is still dropped.
    w.ports.clear_sent();
    let mut r = get("/api/items/1").header("x-forwarded-for", "6.6.6.6");
    r.client_ip = None;
    w.send(&r);
    assert_eq!(w.ports.sent()[0].h("x-forwarded-for"), None);
}

#[test]
fn hop_by_hop_headers_are_removed_in_both_directions() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("Connection", "close, X-Internal-Hop"),
                ("X-Internal-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "x-checksum"),
                ("content-type", "text/plain"),
                ("x-kept", "1"),
            ],
        ),
    );
    let out = w.send(
        &get("/api/items/1")
            .country("DE")
            .header("Connection", "keep-alive, X-Hop-Req")
            .header("X-Hop-Req", "1")
            .header("Keep-Alive", "timeout=5")
            .header("TE", "trailers")
            .header("Trailer", "x")
            .header("Transfer-Encoding", "chunked")
            .header("Upgrade", "websocket")
            .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
            .header("accept", "*/*"),
    );
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    for name in [
        "connection",
        "x-hop-req",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(sent.h(name), None, "request header {name} was forwarded");
    }
    assert_eq!(sent.h("accept").as_deref(), Some("*/*"));
    for name in [
        "connection",
        "x-internal-hop",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "trailer",
    ] {
        assert!(
            !out.has(name),
            "response header {name} was passed on: {out:#?}"
        );
    }
    assert_eq!(out.h("content-type").as_deref(), Some("text/plain"));
    assert_eq!(out.h("x-kept").as_deref(), Some("1"));
}

#[test]
fn forward_claims_headers_are_stripped_from_every_request_on_every_route() {
    let w = world(config());
    let forged = |r: Req| {
        r.header("X-User-Id", "admin")
            .header("x-user-email", "root@evil.test")
            .header("X-TENANT", "other")
            // Underscore spellings, which CGI-style servers read as the same header.
            .header("x_user_id", "admin")
            .header("X-User_Email", "root@evil.test")
            .header("x_tenant", "other")
            .header("x_forwarded_for", "6.6.6.6")
    };
    // Routes without auth, with another provider's auth, with the claims' provider.
    let token = user("alice");
    let requests = [
        forged(get("/api/items/1")),
        forged(req("POST", "/api/orders")),
        forged(get("/c/x")),
        forged(get("/api/tenant")).bearer(&es_token("k1")),
        forged(get("/api/me")).bearer(&token),
    ];
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    for r in &requests {
        w.ports.clear_sent();
        let out = w.send(r);
        assert_eq!(out.status, 200, "{} {out:#?}", r.path);
        let sent = &w.ports.sent()[0];
        assert_eq!(sent.h("x_forwarded_for"), None);
        match r.path.as_str() {
            "/api/me" => {
                assert_eq!(sent.h("x-user-id").as_deref(), Some("alice"));
                assert_eq!(
                    sent.h("x-user-email").as_deref(),
                    Some("alice@example.test")
                );
                assert_eq!(sent.h("x-tenant"), None);
                assert_eq!(sent.h("x_user_id"), None);
                assert_eq!(sent.h("x-user_email"), None);
            }
            "/api/tenant" => {
                assert_eq!(sent.h("x-tenant").as_deref(), Some("acme"));
                assert_eq!(sent.h("x-user-id"), None);
                assert_eq!(sent.h("x-user-email"), None);
            }
            _ => {
                for name in [
                    "x-user-id",
                    "x-user-email",
                    "x-tenant",
                    "x_user_id",
                    "x-user_email",
                    "x_tenant",
                ] {
                    assert_eq!(sent.h(name), None, "{name} forged on {}", r.path);
                }
            }
        }
    }
    // A token without the claim: the header is absent, not the client's copy.
    w.ports.clear_sent();
    let no_email =
        hs_token(&json!({"iss": HS_ISS, "sub": "bob", "scope": "read", "exp": NOW_S + 60}));
    let out = w.send(&forged(get("/api/me")).bearer(&no_email));
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-user-id").as_deref(), Some("bob"));
    assert_eq!(sent.h("x-user-email"), None);
}

#[test]
fn dev_geo_headers_are_never_forwarded() {
    let w = world(config());
    w.send(
        &get("/api/items/1")
            .header("X-Dev-Country", "US")
            .header("x-dev-continent", "NA"),
    );
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-dev-country"), None);
    assert_eq!(sent.h("x-dev-continent"), None);
    // The headers do not choose the region: the edge decides what `country` is.
    assert_eq!(sent.url, "http://ap.api.test/base/api/items/1");
}

fn is_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3] == "01"
        && parts[1..3].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[test]
fn traceparent_is_kept_when_valid_and_created_when_absent_or_invalid() {
    let w = world(config());
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    w.send(&get("/api/items/1").header("traceparent", valid));
    assert_eq!(w.ports.sent()[0].h("traceparent").as_deref(), Some(valid));

    let mut seen = Vec::new();
    for bad in [
        None,
        Some("garbage"),
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
    ] {
        w.ports.clear_sent();
        let mut r = get("/api/items/1");
        if let Some(b) = bad {
            r = r.header("traceparent", b);
        }
        w.send(&r);
        let tp = w.ports.sent()[0].h("traceparent").expect("a traceparent");
        assert!(is_traceparent(&tp), "{bad:?} -> {tp}");
        assert_ne!(Some(tp.as_str()), bad);
        assert!(!seen.contains(&tp), "trace ids repeat: {tp}");
        seen.push(tp);
    }
}

#[test]
fn server_timing_is_on_every_answer() {
    let w = world(config());
    let out = w.send(&get("/api/items/1"));
    let timing = out.h("server-timing").unwrap();
    assert!(
        timing.starts_with("gateway;dur=") && timing.contains(", upstream;dur=2"),
        "{timing}"
    );
    for r in [get("/nope"), get("/api/me"), get("/__gateway/health")] {
        let out = w.send(&r);
        let timing = out.h("server-timing").unwrap();
        assert!(timing.starts_with("gateway;dur="), "{timing}");
        assert!(!timing.contains("upstream"), "{timing}");
    }
}

#[test]
fn client_input_never_causes_a_500() {
    let w = world(config());
    let long = format!("/api/items/{}", "a".repeat(9000));
    let huge_token = "a".repeat(20_000);
    let cases: Vec<(Req, u16)> = vec![
        (get("api/items/1"), 400),
        (get(""), 400),
        (get("*"), 400),
        (get(&long), 414),
        (req("", "/api/items/1"), 405),
        (req("G\u{0}T", "/api/items/1"), 405),
        (
            get("/api/me").header("authorization", "Basic Zm9vOmJhcg=="),
            401,
        ),
        (get("/api/me").header("authorization", "Bearer "), 401),
        (get("/api/me").bearer(&huge_token), 401),
        (get("/api/me").bearer("a.b.c"), 401),
        (
            get("/api/me").bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            401,
        ),
        (get("/api/me").bearer("\u{0}\u{1}.\u{ff}.x"), 401),
        (
            get("/api/tenant")
                .bearer(&es_token("k1"))
                .header("x-request-id", "a\r\nb: c"),
            503,
        ),
        (
            req("DELETE", "/__gateway/cache?path=relative").bearer(ADMIN_TOKEN),
            400,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/nope%zz").bearer(ADMIN_TOKEN),
            404,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/api/items/1").bearer(ADMIN_TOKEN),
            400,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/ca").bearer(ADMIN_TOKEN),
            400,
        ),
        (req("DELETE", "/__gateway/cache").bearer(ADMIN_TOKEN), 400),
    ];
    w.ports.jwks_fail.set(true);
    for (r, status) in cases {
        let out = w.send(&r);
        let kind = match status {
            400 => "bad-request",
            401 => "unauthorized",
            404 => "not-found",
            405 => "method-not-allowed",
            414 => "uri-too-long",
            503 => "unavailable",
            _ => unreachable!(),
        };
        assert_problem(&out, status, kind);
    }
    // A preflight asking for a malformed method is refused by the path's policy.
    let out = w.send(
        &req("OPTIONS", "/api/items/1")
            .header("origin", "https://app.test")
            .header("access-control-request-method", "G E T"),
    );
    assert_eq!(out.status, 403);
    assert_eq!(out.h("access-control-allow-origin"), None);
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

#[test]
fn a_route_that_cannot_compile_answers_503_and_the_others_serve() {
    let text = json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "routes": [
            {"id": "good", "path": "/good", "origin": "o"},
            {"id": "bad", "path": "/bad/{id}", "origin": "o", "rewrite": "/x/{id}"}
        ]
    })
    .to_string();
    let file = edge_gateway::config::load(&text).unwrap();
    let form = edge_gateway::config::prepared::write(&text, &file).unwrap();
    // Only a damaged build holds a route that does not compile: its rewrite
    // names a parameter its path no longer has.
    let damaged = form.replace(r#""/x/{id}""#, r#""/x/{ix}""#);
    assert_ne!(damaged, form);
    let gw = Gateway::from_prepared(Box::leak(damaged.into_boxed_str()), &|_| None).unwrap();
    let w = World {
        state: IsolateState::new(&gw, "iso1".into()),
        gw,
        ports: Fake::new(),
    };
    let out = w.send(&get("/bad/7"));
    let v = assert_problem(&out, 503, "unavailable");
    assert_eq!(v["detail"], "this route is not available");
    assert!(w.ports.sent().is_empty());
    let line = w.ports.last_record();
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("rewrite")),
        "{line}"
    );
    // Asked again, the same answer: the failure is kept, not retried per request.
    assert_eq!(w.send(&get("/bad/8")).status, 503);
    assert_eq!(w.send(&get("/good")).status, 200);
}
