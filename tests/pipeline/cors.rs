//! CORS

use super::*;

#[test]
fn an_allowed_preflight_is_answered_204_with_allow_headers() {
    let w = world(config());
    let out = w.send(
        &preflight("/api/items/7", APP, "GET")
            .header("Access-Control-Request-Headers", "X-Custom, Content-Type"),
    );
    assert_eq!(out.status, 204);
    assert_eq!(out.body, None);
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(
        out.h("access-control-allow-headers").as_deref(),
        Some("x-custom, content-type")
    );
    assert_eq!(out.h("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let vary = out.h("vary").unwrap();
    assert!(
        vary.starts_with("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        "{vary}"
    );
    assert!(out.has("x-request-id"));
    // Answered before auth, never forwarded.
    let out = w.send(&preflight("/api/me", APP, "GET"));
    assert_eq!(out.status, 204);
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["status"], 204);
}

#[test]
fn a_preflight_to_an_unmatched_path_is_answered_by_the_top_level_policy() {
    let w = world(config());
    let out = w.send(
        &preflight("/no/such/path", APP, "PUT").header("Access-Control-Request-Headers", "X-A"),
    );
    assert_eq!(out.status, 204, "{out:#?}");
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
    );
    assert_eq!(
        out.h("access-control-allow-headers").as_deref(),
        Some("x-a")
    );
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(w.ports.last_record()["status"], 204);
    assert!(w.ports.last_record().get("route").is_none());
    // So the page can read the real request's 404 and its request id.
    let out = w.send(&req("PUT", "/no/such/path").header("Origin", APP));
    assert_problem(&out, 404, "not-found");
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    let exposed = out.h("access-control-expose-headers").unwrap();
    assert!(
        exposed.split(", ").any(|h| h == "x-request-id"),
        "{exposed}"
    );
    // A disallowed origin gets no grant there either; nothing goes upstream.
    let out = w.send(&preflight("/no/such/path", "https://evil.test", "GET"));
    assert_eq!(out.status, 403);
    assert!(!out.has("access-control-allow-origin"));
    assert!(w.ports.sent().is_empty());
    // Without a top-level policy, such a preflight is an ordinary 404.
    let w = world(json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "routes": [{"id": "a", "path": "/a", "origin": "o",
                    "cors": {"origins": ["https://app.test"]}}]
    }));
    let out = w.send(&preflight("/nope", APP, "GET"));
    assert_problem(&out, 404, "not-found");
    assert!(!out.has("access-control-allow-origin"));
}

#[test]
fn the_gateway_own_headers_are_always_exposed_to_allowed_origins() {
    let w = world(config());
    let exposed = |out: &Out| -> Vec<String> {
        out.h("access-control-expose-headers")
            .unwrap_or_default()
            .split(", ")
            .map(str::to_string)
            .collect()
    };
    let out = w.send(&get("/api/me").header("Origin", APP));
    assert_problem(&out, 401, "unauthorized");
    assert!(out.has("www-authenticate"));
    let list = exposed(&out);
    // The policy's own list first, then the gateway's, each once.
    assert_eq!(list[0], "x-request-id");
    for name in GATEWAY_EXPOSED {
        assert_eq!(
            list.iter().filter(|h| *h == name).count(),
            1,
            "{name}: {list:?}"
        );
    }
    for name in ["x-quota-limit", "x-quota-remaining", "x-quota-reset"] {
        assert!(list.iter().any(|h| h == name), "{name}");
    }
    let out = w.send(&get("/rl/ip").header("Origin", APP));
    assert!(
        out.has("ratelimit-limit") && out.has("ratelimit-remaining") && out.has("ratelimit-reset")
    );
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed(&out).iter().any(|h| h == name), "{name}");
    }
    // Not to a disallowed origin.
    let out = w.send(&get("/rl/ip").header("Origin", "https://evil.test"));
    assert!(!out.has("access-control-expose-headers"));
}

#[test]
fn a_disallowed_preflight_gets_no_allow_headers() {
    let w = world(config());
    for r in [
        preflight("/api/items/7", "https://evil.test", "GET"),
        preflight("/api/items/7", "null", "GET"),
        preflight("/api/me", "https://app.test.evil.test", "GET"),
    ] {
        let out = w.send(&r);
        assert_eq!(out.status, 403, "{out:#?}");
        assert_eq!(out.body, None);
        for name in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            assert!(!out.has(name), "{name}: {out:#?}");
        }
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn actual_responses_and_gateway_errors_carry_cors_headers() {
    let w = world(config());
    w.ports.on(EU, respond(200, &[("vary", "Accept-Encoding")]));
    let cases = [
        (get("/api/items/1").country("DE"), 200),
        (get("/nope"), 404),
        (get("/api/me"), 401),
        (req("POST", "/api/items/1"), 405),
    ];
    for (r, status) in cases {
        let out = w.send(&r.header("Origin", APP));
        assert_eq!(out.status, status);
        assert_eq!(
            out.h("access-control-allow-origin").as_deref(),
            Some(APP),
            "{out:#?}"
        );
        assert_eq!(
            out.h("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            out.h("access-control-expose-headers").as_deref(),
            Some(GATEWAY_EXPOSED.join(", ").as_str())
        );
        let vary = out.h("vary").unwrap();
        assert!(vary.split(", ").any(|v| v == "Origin"), "{vary}");
        if status == 200 {
            assert!(
                vary.contains("Accept-Encoding"),
                "upstream vary lost: {vary}"
            );
        }
    }
    // A disallowed origin: no CORS grant, still Vary: Origin.
    let out = w.send(&get("/api/items/1").header("Origin", "https://evil.test"));
    assert!(!out.has("access-control-allow-origin"));
    assert!(!out.has("access-control-allow-credentials"));
    assert!(out.h("vary").unwrap().contains("Origin"));
}

/// An origin that grants every origin, with credentials, in mixed case.
fn permissive_origin() -> Outcome {
    respond(
        200,
        &[
            ("Access-Control-Allow-Origin", "https://evil.test"),
            ("access-control-allow-credentials", "true"),
            ("Access-Control-Expose-Headers", "x-internal"),
            ("access-control-allow-methods", "DELETE"),
            ("access-control-max-age", "86400"),
            ("x-internal", "1"),
        ],
    )
}

#[test]
fn the_policy_alone_decides_cors_headers_on_routes_with_one() {
    let w = world(config());
    w.ports.on(EU, permissive_origin());
    // The attack: a disallowed origin reads a credentialed answer the origin allowed.
    for (target, cached) in [
        ("/api/items/1", false),
        ("/c/creds", true),
        ("/c/creds", true),
    ] {
        let out = w.send(
            &get(target)
                .country("DE")
                .header("Origin", "https://evil.test"),
        );
        assert_eq!(out.status, 200);
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
            "access-control-allow-methods",
            "access-control-max-age",
        ] {
            assert!(!out.has(name), "{name} from the origin: {out:#?}");
        }
        assert_eq!(out.h("x-cache").is_some(), cached);
    }
    assert_eq!(w.ports.cache.borrow().len(), 1);
    // An allowed origin gets the policy's answer, one value each, origin's dropped.
    for _ in 0..2 {
        let out = w.send(&get("/c/creds").country("DE").header("Origin", APP));
        let values = |name: &str| -> Vec<String> {
            out.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(values("access-control-allow-origin"), [APP]);
        assert_eq!(values("access-control-allow-credentials"), ["true"]);
        assert!(!values("access-control-expose-headers")[0].contains("x-internal"));
        assert!(values("access-control-allow-methods").is_empty());
        assert!(values("access-control-max-age").is_empty());
    }
    // A route of its own policy: same rule.
    let out = w.send(&get("/partner").country("DE").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");
    assert!(!out.has("access-control-allow-credentials"));
}

#[test]
fn without_a_cors_policy_the_origin_cors_headers_pass_through() {
    let w = world(catch_all_config());
    w.ports.on("http://origin.test", permissive_origin());
    let out = w.send(&get("/x").header("Origin", "https://evil.test"));
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://evil.test")
    );
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(out.h("access-control-max-age").as_deref(), Some("86400"));
}

#[test]
fn a_route_cors_policy_overrides_the_top_level_one() {
    let w = world(config());
    let out = w.send(&get("/partner").header("Origin", "https://partner.test"));
    assert_eq!(out.status, 200);
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    assert!(!out.has("access-control-allow-credentials"));
    // No list of its own: the gateway's headers only.
    assert_eq!(
        out.h("access-control-expose-headers").as_deref(),
        Some(GATEWAY_EXPOSED.join(", ").as_str())
    );
    let out = w.send(&get("/partner").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");
    // Gateway errors of the route use the route's policy too.
    w.ports.on("http://", Outcome::Connect);
    let out = w.send(&get("/partner").header("Origin", "https://partner.test"));
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    let out = w.send(&get("/partner").header("Origin", APP));
    assert_problem(&out, 502, "bad-gateway");
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");

    let out = w.send(&preflight("/partner", "https://partner.test", "GET"));
    assert_eq!(out.status, 204);
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert!(!out.has("access-control-allow-credentials"), "{out:#?}");
}

#[test]

fn a_preflight_refused_by_the_route_policy_gets_no_grant_from_the_top_level_one() {
    let w = world(config());
    let out = w.send(&preflight("/partner", APP, "GET"));
    assert_refused_preflight(&out);
}

#[test]

fn a_preflight_refused_for_its_headers_gets_no_grant() {
    let w = world(config());
    let out = w.send(
        &preflight("/api/items/7", APP, "GET")
            .header("Access-Control-Request-Headers", "bad header"),
    );
    assert_refused_preflight(&out);
}

#[track_caller]
fn assert_refused_preflight(out: &Out) {
    assert_eq!(out.status, 403);
    assert_eq!(out.body, None);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert!(!out.has(name), "{name} on a refused preflight: {out:#?}");
    }
}

#[test]
fn without_any_cors_policy_no_cors_headers_are_added() {
    let mut cfg = config();
    cfg.as_object_mut().unwrap().remove("cors");
    let w = world(cfg);
    let out = w.send(&get("/api/items/1").header("Origin", APP));
    assert_eq!(out.status, 200);
    assert!(!out.has("access-control-allow-origin"));
    assert!(!out.has("vary"));
    let out = w.send(&get("/nope").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"));
}

#[test]

fn an_unanswered_preflight_does_not_bypass_the_route_methods() {
    let mut cfg = config();
    cfg.as_object_mut().unwrap().remove("cors");
    let w = world(cfg);
    let out = w.send(&preflight("/api/items/1", APP, "GET"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent());
}
