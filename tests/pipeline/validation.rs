//! `validate`: typed query parameters and JSON Schema bodies, through the whole
//! pipeline. Invalid requests are answered 400 / 413 / 415 and never reach the
//! upstream; valid bodies are sent upstream as the bytes read.

use super::*;

fn user_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "email"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "email": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}
        },
        "additionalProperties": false,
        "$defs": {"tag": {"type": "string", "maxLength": 8}}
    })
}

fn validation_config() -> Value {
    json!({
        "origins": {"api": {"regions": [{"name": "eu", "url": "http://eu.api.test"}]}},
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        // The top level's rule: every route without its own validates `page`.
        "validate": {"query": {"page": {"type": "integer"}}},
        "routes": [
            {"id": "users", "path": "/users", "methods": ["GET", "POST"], "origin": "api",
             "validate": {"body": user_schema(),
                          "query": {"dry_run": {"type": "boolean"},
                                    "ref": {"pattern": "^[a-z]{3}-\\d+$", "required": false}}}},
            {"id": "small", "path": "/small", "methods": ["POST"], "origin": "api",
             "max_body_bytes": 64, "validate": {"body": {"type": "array"}}},
            {"id": "secured", "path": "/secured", "methods": ["POST"], "origin": "api",
             "auth": {"jwt": "hs"}, "validate": {"body": {"type": "object"}}},
            {"id": "search", "path": "/search", "methods": ["GET"], "origin": "api",
             "validate": {"query": {"q": {"required": true}, "limit": {"type": "integer"},
                                    "min": {"type": "number"}}}},
            {"id": "inherits", "path": "/inherits", "methods": ["GET"], "origin": "api"},
            {"id": "off", "path": "/off", "methods": ["GET"], "origin": "api", "validate": {}}
        ]
    })
}

fn post_json(path: &str, body: &str) -> Req {
    req("POST", path)
        .header("content-type", "application/json")
        .body(body.as_bytes())
}

/// A 400/413/415 problem with the contract's fields, plus `errors` when given.
#[track_caller]
fn assert_refused(out: &Out, status: u16) -> Value {
    assert_eq!(out.status, status, "{out:#?}");
    assert_eq!(
        out.h("content-type").as_deref(),
        Some("application/problem+json")
    );
    let v = out.json();
    assert_eq!(v["status"], status);
    assert_eq!(v["request_id"].as_str(), out.h("x-request-id").as_deref());
    for field in ["type", "title", "detail"] {
        assert!(v[field].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    }
    v
}

fn pointers(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| {
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
            e["pointer"].as_str().expect("a pointer").to_string()
        })
        .collect()
}

#[test]
fn a_valid_body_goes_upstream_as_the_bytes_read() {
    let w = world(validation_config());
    let body = r#"{"name": "Ada",  "email": "ada@example.test", "tags": ["x"]}"#;
    let out = w.send(&post_json("/users?dry_run=true&ref=abc-12", body));
    assert_eq!(out.status, 200, "{out:#?}");
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body.as_deref(), Some(body.as_bytes()));
    assert_eq!(
        sent[0].url,
        "http://eu.api.test/users?dry_run=true&ref=abc-12"
    );
    // Read at most the default limit of a validated route, which is also sent on.
    assert_eq!(*w.ports.body_reads.borrow(), [1024 * 1024]);
    assert_eq!(sent[0].max_body_bytes, Some(1024 * 1024));
}

#[test]
fn an_invalid_body_is_400_with_pointers_and_never_sent() {
    let w = world(validation_config());
    let out = w.send(&post_json(
        "/users",
        r#"{"name": "", "age": -1, "tags": ["ok", "far too long", 3], "admin": true}"#,
    ));
    let v = assert_refused(&out, 400);
    assert_eq!(v["type"], "urn:edge-gateway:problem:bad-request");
    let mut p = pointers(&v);
    p.sort();
    p.dedup();
    assert_eq!(p, ["", "/age", "/name", "/tags/1", "/tags/2"], "{v}");
    // The missing property and the unexpected one are named.
    let details = v["errors"].to_string();
    assert!(details.contains("email"), "{details}");
    assert!(details.contains("admin"), "{details}");
    assert!(w.ports.sent().is_empty());
    let log = w.ports.last_record();
    assert_eq!(log["status"], 400);
    assert_eq!(log["route"], "users");
}

#[test]
fn at_most_twenty_errors() {
    let w = world(validation_config());
    let tags: Vec<Value> = (0..40).map(Value::from).collect();
    let body = json!({"name": "a", "email": "e", "tags": tags}).to_string();
    let v = assert_refused(&w.send(&post_json("/users", &body)), 400);
    let p = pointers(&v);
    assert_eq!(p.len(), 20);
    assert_eq!(p[0], "/tags/0");
}

#[test]
fn not_json_is_415_or_400() {
    let w = world(validation_config());
    // No JSON type: 415, whatever the body, and the body is not read.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut r = req("POST", "/users").body(br#"{"name": "a", "email": "e"}"#);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        let v = assert_refused(&w.send(&r), 415);
        assert_eq!(v["type"], "urn:edge-gateway:problem:unsupported-media-type");
    }
    assert!(w.ports.body_reads.borrow().is_empty());
    // A JSON type whose body does not parse: 400, pointing at the whole body.
    for body in ["{\"name\": ", "not json", ""] {
        let v = assert_refused(&w.send(&post_json("/users", body)), 400);
        assert_eq!(pointers(&v), [""], "{v}");
    }
    // `+json` types and parameters are JSON.
    let out = w.send(
        &req("POST", "/users")
            .header(
                "content-type",
                "application/merge-patch+json; charset=utf-8",
            )
            .body(br#"{"name": "a", "email": "e"}"#),
    );
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent().len(), 1);
}

#[test]
fn a_body_over_the_limit_is_413() {
    let w = world(validation_config());
    // Declared: refused before reading.
    let big = format!("[{}1]", "1,".repeat(40));
    let out = w.send(&post_json("/small", &big));
    let v = assert_refused(&out, 413);
    assert!(v["detail"].as_str().unwrap().contains("64 bytes"));
    assert!(w.ports.body_reads.borrow().is_empty());
    // Streamed (no length): read up to the limit, then refused.
    let mut r = req("POST", "/small")
        .header("content-type", "application/json")
        .with_body();
    r.body = big.into_bytes();
    let out = w.send(&r);
    assert_refused(&out, 413);
    assert_eq!(*w.ports.body_reads.borrow(), [64]);
    assert!(w.ports.sent().is_empty());
    // Within the limit.
    let out = w.send(&post_json("/small", "[1, 2]"));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent()[0].body.as_deref(), Some(&b"[1, 2]"[..]));
}

#[test]
fn get_requests_skip_the_body_schema_but_not_the_query() {
    let w = world(validation_config());
    let out = w.send(&get("/users"));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent()[0].body, None);
    let v = assert_refused(&w.send(&get("/users?dry_run=maybe&ref=abc-x")), 400);
    assert_eq!(pointers(&v), ["/query/dry_run", "/query/ref"], "{v}");
    assert_eq!(w.ports.sent().len(), 1);
}

#[test]
fn query_parameters_are_typed_required_and_matched() {
    let w = world(validation_config());
    let ok = [
        "/search?q=x",
        "/search?q=a+b&limit=10&min=-1.5e2",
        "/search?q=&limit=%2B3",
    ];
    for target in ok {
        assert_eq!(w.send(&get(target)).status, 200, "{target}");
    }
    let cases: [(&str, &[&str]); 4] = [
        ("/search", &["/query/q"]),
        ("/search?limit=ten", &["/query/limit", "/query/q"]),
        (
            "/search?q=x&limit=1.5&min=abc",
            &["/query/limit", "/query/min"],
        ),
        ("/search?q=x&limit=1&limit=z", &["/query/limit"]),
    ];
    for (target, want) in cases {
        w.ports.clear_sent();
        let v = assert_refused(&w.send(&get(target)), 400);
        assert_eq!(pointers(&v), want, "{target}: {v}");
        assert!(w.ports.sent().is_empty());
    }
}

#[test]
fn the_top_level_rule_applies_unless_a_route_replaces_it() {
    let w = world(validation_config());
    let v = assert_refused(&w.send(&get("/inherits?page=two")), 400);
    assert_eq!(pointers(&v), ["/query/page"]);
    assert_eq!(w.send(&get("/inherits?page=2")).status, 200);
    // A route's own rule replaces the top level's, an empty one switches it off.
    assert_eq!(w.send(&get("/search?q=x&page=two")).status, 200);
    assert_eq!(w.send(&get("/off?page=two")).status, 200);
}

#[test]
fn auth_is_checked_before_the_body_is_read() {
    let w = world(validation_config());
    let out = w.send(&post_json("/secured", "[]"));
    assert_eq!(out.status, 401);
    assert!(w.ports.body_reads.borrow().is_empty());
    let out = w.send(&post_json("/secured", "[]").bearer(&user("u1")));
    assert_refused(&out, 400);
    let out = w.send(&post_json("/secured", "{}").bearer(&user("u1")));
    assert_eq!(out.status, 200);
}

#[test]
fn an_uncompilable_schema_fails_the_gateway() {
    let mut config = validation_config();
    config["routes"][1]["validate"]["body"] = json!({"type": "list"});
    let e = Gateway::from_json(&config.to_string(), &|_| None).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("route \"small\": validate.body: not a valid JSON Schema"),
        "{e:?}"
    );
}
