//! Request policies: ip, geo, max_body_bytes, header and query edits.

use super::*;

fn policies_config() -> Value {
    json!({
        "origins": {
            "api": {"regions": [{"name": "eu", "url": "http://eu.api.test", "serves": ["EU"]},
                                {"name": "us", "url": "http://us.api.test", "serves": ["*"]}]}
        },
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET", "forward_claims": {"sub": "X-User-Id"}}},
        "ip": {"deny": ["198.51.100.0/24", "2001:db8:bad::/48"]},
        "request_headers": {"set": {"x-edge": "top"}},
        "max_body_bytes": 5000,
        "routes": [
            {"id": "open", "path": "/open", "origin": "api"},
            {"id": "office", "path": "/office/{*rest}", "origin": "api",
             "ip": {"allow": ["10.0.0.0/8", "2001:db8:1::/48"], "deny": ["10.66.0.0/16"]}},
            {"id": "no-ip", "path": "/no-ip", "origin": "api", "ip": {}},
            {"id": "eu-only", "path": "/eu", "origin": "api", "geo": {"allow": ["EU", "CA"], "deny": ["RU"]}},
            {"id": "not-kp", "path": "/not-kp", "origin": "api", "geo": {"deny": ["KP"]}},
            {"id": "upload", "path": "/upload", "methods": ["POST"], "origin": "api", "max_body_bytes": 1000},
            {"id": "edits", "path": "/edits/{tenant}/{*rest}", "origin": "api", "auth": {"jwt": "hs"},
             "rewrite": "/t/{tenant}/{rest}",
             "request_headers": {"set": {"x-tenant": "t-{tenant}", "x-api-version": "2", "authorization": "Bearer upstream-key"},
                                 "remove": ["cookie", "x-debug"]},
             "response_headers": {"set": {"x-frame-options": "DENY", "x-served-for": "{tenant}"},
                                  "remove": ["server", "x-powered-by"]},
             "query": {"set": {"tenant": "{tenant}", "v": "2"}, "remove": ["debug", "token"]}},
            {"id": "cached-edits", "path": "/ce", "methods": ["GET"], "origin": "api", "cache": {"ttl_s": 60},
             "response_headers": {"set": {"x-frame-options": "DENY"}, "remove": ["server"]}}
        ]
    })
}

#[test]
fn ip_rules_refuse_denied_and_not_allowed_addresses_before_upstream() {
    let w = world(policies_config());
    let cases = [
        // The top-level deny list applies to routes without their own `ip`.
        ("/open", "198.51.100.7", 403),
        ("/open", "::ffff:198.51.100.7", 403),
        ("/open", "2001:db8:bad:1::1", 403),
        ("/open", "198.51.101.7", 200),
        // A route's own rule replaces the top level's.
        ("/office/x", "10.1.2.3", 200),
        ("/office/x", "::ffff:10.1.2.3", 200),
        ("/office/x", "2001:db8:1:ffff::1", 200),
        ("/office/x", "10.66.0.1", 403),
        ("/office/x", "11.0.0.1", 403),
        ("/office/x", "198.51.100.7", 403),
        ("/office/x", "2001:db8:2::1", 403),
        ("/office/x", "garbage", 403),
        ("/no-ip", "198.51.100.7", 200),
    ];
    for (path, ip, status) in cases {
        w.ports.clear_sent();
        let out = w.send(&get(path).ip(ip));
        if status == 403 {
            let v = assert_problem(&out, 403, "forbidden");
            assert!(v["detail"].as_str().unwrap().contains("address"), "{v}");
            assert!(w.ports.sent().is_empty(), "{path} {ip} reached upstream");
        } else {
            assert_eq!(out.status, status, "{path} {ip}");
            assert_eq!(w.ports.sent().len(), 1, "{path} {ip}");
        }
    }
    // No address at all: refused where an allow list exists.
    let mut r = get("/office/x");
    r.client_ip = None;
    assert_problem(&w.send(&r), 403, "forbidden");
    let mut r = get("/open");
    r.client_ip = None;
    assert_eq!(w.send(&r).status, 200);
}

#[test]
fn geo_rules_read_the_country_and_continent_as_region_choice_does() {
    let w = world(policies_config());
    let cases = [
        ("/eu", Some("DE"), Some("EU"), 200),
        ("/eu", Some("CA"), Some("NA"), 200),
        ("/eu", Some("US"), Some("NA"), 403),
        ("/eu", Some("RU"), Some("EU"), 403),
        ("/eu", None, None, 403),
        ("/not-kp", Some("KP"), Some("AS"), 403),
        ("/not-kp", Some("JP"), Some("AS"), 200),
        ("/not-kp", None, None, 200),
    ];
    for (path, country, continent, status) in cases {
        w.ports.clear_sent();
        let mut r = get(path);
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        let out = w.send(&r);
        if status == 403 {
            let v = assert_problem(&out, 403, "forbidden");
            assert!(v["detail"].as_str().unwrap().contains("location"), "{v}");
            assert!(w.ports.sent().is_empty());
        } else {
            assert_eq!(out.status, 200, "{path} {country:?}");
        }
    }
    // Region choice is unchanged by the rule.
    w.ports.clear_sent();
    w.send(&get("/eu").country("DE").continent("EU"));
    assert!(w.ports.sent()[0].url.starts_with("http://eu.api.test/"));
}

#[test]
fn a_declared_body_over_the_limit_is_413_before_upstream() {
    let w = world(policies_config());
    let over = req("POST", "/upload")
        .header("content-length", "1001")
        .with_body();
    let out = w.send(&over);
    let v = assert_problem(&out, 413, "payload-too-large");
    assert!(v["detail"].as_str().unwrap().contains("1000 bytes"), "{v}");
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["status"], 413);
    // At the limit: forwarded, and the edge is told the limit.
    let at = req("POST", "/upload")
        .header("content-length", "1000")
        .with_body();
    assert_eq!(w.send(&at).status, 200);
    assert_eq!(w.ports.sent()[0].max_body_bytes, Some(1000));
    // The top level's limit applies to routes without their own.
    w.ports.clear_sent();
    let top = req("POST", "/open")
        .header("content-length", "5001")
        .with_body();
    assert_problem(&w.send(&top), 413, "payload-too-large");
    assert!(w.ports.sent().is_empty());
    let top = req("POST", "/open")
        .header("content-length", "5000")
        .with_body();
    assert_eq!(w.send(&top).status, 200);
    assert_eq!(w.ports.sent()[0].max_body_bytes, Some(5000));
}

#[test]
fn a_chunked_body_is_read_up_to_the_limit_and_sent_as_read() {
    let w = world(policies_config());
    let chunked = |body: &[u8]| {
        let mut r = req("POST", "/upload")
            .header("transfer-encoding", "chunked")
            .with_body();
        r.body = body.to_vec();
        r
    };
    let out = w.send(&chunked(&[7; 1001]));
    assert_problem(&out, 413, "payload-too-large");
    assert!(out.json()["detail"]
        .as_str()
        .unwrap()
        .contains("1000 bytes"));
    // Read no further than the limit, and nothing went upstream.
    assert_eq!(*w.ports.body_reads.borrow(), [1000]);
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["status"], 413);
    let out = w.send(&chunked(&[7; 1000]));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent()[0].body.as_deref(), Some(&[7u8; 1000][..]));
    // A declared length within the limit streams: it is not read.
    w.ports.clear_sent();
    let out = w.send(&req("POST", "/upload").body(&[1; 1000]));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.body_reads.borrow().len(), 2);
    assert_eq!(w.ports.sent()[0].body, None);
}

#[test]
fn an_upload_the_edge_cuts_is_413_without_failover() {
    // The port contract for an edge that counts while it streams: the fetch
    // fails as `BodyTooLarge`.
    let w = world(policies_config());
    w.ports.streamed_body.set(Some(1001));
    let out = w.send(&req("POST", "/upload").body(&[1; 10]));
    assert_problem(&out, 413, "payload-too-large");
    // One attempt: the client's body is not the region's failure.
    assert_eq!(w.ports.sent().len(), 1);
    assert_eq!(w.ports.last_record()["status"], 413);
}

#[test]
fn header_edits_come_after_the_gateways_own_rules() {
    let w = world(policies_config());
    let token = hs_token(&hs_claims("alice", ""));
    let r = get("/edits/acme/a/b?x=1&debug=1&x=2&%74oken=t&tenant=forged&e=a+b%2F")
        .bearer(&token)
        .header("x-api-version", "1")
        .header("X_Api_Version", "1")
        .header("cookie", "session=1")
        .header("x_debug", "1")
        .header("x-edge", "client")
        .header("x-user-id", "forged")
        .header("x-forwarded-for", "6.6.6.6")
        .header("accept", "application/json");
    let out = w.send(&r);
    assert_eq!(out.status, 200, "{out:#?}");
    let sent = &w.ports.sent()[0];
    // The route's own rules replace the top level's (`x-edge: top` is not set).
    assert_eq!(sent.h("x-edge").as_deref(), Some("client"));
    assert_eq!(sent.h("x-tenant").as_deref(), Some("t-acme"));
    assert_eq!(sent.h("x-api-version").as_deref(), Some("2"));
    assert_eq!(
        sent.h("authorization").as_deref(),
        Some("Bearer upstream-key")
    );
    assert_eq!(sent.h("cookie"), None);
    assert_eq!(sent.h("x_debug"), None);
    // The gateway's own rules still hold.
    assert_eq!(sent.h("x-user-id").as_deref(), Some("alice"));
    assert_eq!(sent.h("x-forwarded-for").as_deref(), Some("203.0.113.7"));
    assert!(sent.h("x-request-id").is_some());
    assert_eq!(sent.h("accept").as_deref(), Some("application/json"));
    // The query: named parameters edited, every other one byte for byte.
    assert_eq!(
        sent.url,
        "http://us.api.test/t/acme/a/b?x=1&x=2&e=a+b%2F&tenant=acme&v=2"
    );
}

#[test]
fn top_level_header_edits_apply_where_a_route_has_none() {
    let w = world(policies_config());
    w.send(&get("/open").header("x-edge", "client"));
    assert_eq!(w.ports.sent()[0].h("x-edge").as_deref(), Some("top"));
}

#[test]
fn response_header_edits_apply_to_the_origins_answers_fresh_and_cached() {
    let w = world(policies_config());
    w.ports.on(
        "http://us.api.test/t/",
        respond(
            200,
            &[
                ("server", "nginx"),
                ("x-powered-by", "php"),
                ("x-frame-options", "SAMEORIGIN"),
            ],
        ),
    );
    let token = hs_token(&hs_claims("alice", ""));
    let out = w.send(&get("/edits/acme/x").bearer(&token));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("server"), None);
    assert_eq!(out.h("x-powered-by"), None);
    assert_eq!(out.h("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(out.h("x-served-for").as_deref(), Some("acme"));
    assert!(out.has("x-request-id") && out.has("server-timing"));
    // The gateway's own answers on the route are not the origin's: not edited.
    let out = w.send(&get("/edits/acme/x"));
    assert_problem(&out, 401, "unauthorized");
    assert_eq!(out.h("x-frame-options"), None);
    // A cached route: the stored copy keeps the origin's headers; every answer is edited.
    w.ports.on(
        "http://us.api.test/ce",
        respond(200, &[("server", "nginx")]),
    );
    let miss = w.send(&get("/ce"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(miss.h("server"), None);
    let hit = w.send(&get("/ce"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("server"), None);
    assert_eq!(hit.h("x-frame-options").as_deref(), Some("DENY"));
}
