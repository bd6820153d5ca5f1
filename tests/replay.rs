//! `gateway replay` and `gateway check --diff OLD NEW --replay REQUESTS`: the
//! pipeline the Worker runs, over requests, offline.

use std::process::Command;

use edge_gateway::config;
use edge_gateway::replay::{self, Decision, Replayer, Request};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const OLD: &str = "tests/fixtures/replay/old.routes.json";
const NEW: &str = "tests/fixtures/replay/new.routes.json";
const REQUESTS: &str = "tests/fixtures/replay/requests.jsonl";

fn gateway(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("REPLAY_TEST_SECRET")
        .output()
        .expect("the gateway binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn load(path: &str) -> config::RoutesFile {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap();
    config::load(&text).unwrap()
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        method: "GET".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..Request::default()
    }
}

#[test]
fn replay_prints_route_decision_and_keys_per_request() {
    let (code, out, err) = gateway(&["replay", OLD, REQUESTS]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    // Region choice by the caller's location; rewrite; rate-limit key by ip; cache key.
    assert!(lines[0].starts_with(
        "GET api.example.com/api/users/42  route=get-user upstream=users/us https://users-us.internal.example.com/v1/users/42 limit=rl:get-user:"
    ), "{out}");
    assert!(
        lines[0].contains(" cache=https://api.example.com/"),
        "{out}"
    );
    assert!(lines[0].ends_with("/api/users/42"), "{out}");
    assert!(
        lines[1].contains(
            "upstream=users/eu https://users-eu.internal.example.com/v1/users/42?fields=name"
        ),
        "{out}"
    );
    assert!(
        lines[2].ends_with("route=orders upstream=legacy/dc1 https://legacy.internal.example.com/app/orders/2024/17"),
        "{out}"
    );
    assert!(
        lines[5].ends_with("route=- status=405 (this path allows GET, HEAD)"),
        "{out}"
    );
    assert!(
        lines[6].ends_with("route=- status=404 (no route matches this path)"),
        "{out}"
    );
    assert!(
        lines[7].contains("/__gateway/health  route=- status=200"),
        "{out}"
    );
}

#[test]
fn replay_diff_prints_only_the_requests_whose_decision_changes() {
    let (code, out, err) = gateway(&["check", "--diff", OLD, NEW, "--replay", REQUESTS]);
    assert_eq!(code, 0, "{err}");
    let blocks: Vec<&str> = out.split("\nGET ").collect();
    assert!(out.starts_with("5 of 8 requests change:\n"), "{out}");
    assert_eq!(blocks.len(), 6, "{out}");
    // A cache key changes (the route now varies on accept-language); nothing else does.
    let users = blocks[1];
    assert!(
        users.starts_with("api.example.com/api/users/42\n"),
        "{users}"
    );
    let (old, new) = users.split_once("\n  + ").unwrap();
    let old = old.split_once("  - ").unwrap().1;
    assert_ne!(old, new.trim_end());
    assert_eq!(
        old.split(" cache=").next(),
        new.split(" cache=").next(),
        "only the cache key changes: {users}"
    );
    // A request moves to another origin.
    assert!(out.contains(
        "GET api.example.com/api/orders/2024/17\n  - route=orders upstream=legacy/dc1 https://legacy.internal.example.com/app/orders/2024/17\n  + route=orders upstream=users/us https://users-us.internal.example.com/orders/2024/17\n"
    ), "{out}");
    // Auth is added: without a token 401, with one the remote keys decide.
    assert!(out.contains(
        "GET api.example.com/api/profile\n  - route=profile upstream=users/us https://users-us.internal.example.com/api/profile\n  + route=profile status=401 (a bearer token is required)\n"
    ), "{out}");
    assert!(out.contains("  + route=profile needs=jwt main\n"), "{out}");
    // Unchanged decisions are not printed.
    assert!(
        !out.contains("/nowhere") && !out.contains("DELETE"),
        "{out}"
    );
}

#[test]
fn replay_diff_of_a_file_with_itself_changes_nothing() {
    let (code, out, err) = gateway(&["check", "--diff", OLD, OLD, "--replay", REQUESTS]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "no request of 8 changes its decision\n");
}

/// Tokens are verified when the provider's secret is given.
#[test]
fn tokens_are_verified_with_a_given_secret() {
    let secret = "replay-secret-0123456789abcdef0123456789";
    let with_secret = |name: &str| (name == "REPLAY_TEST_SECRET").then(|| secret.to_string());
    let replayer = Replayer::new(load(OLD), &with_secret).unwrap();
    let token = |key: &str, sub: &str| {
        jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"iss": "https://local.example.com/", "sub": sub, "exp": 4_000_000_000u64}),
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let good = format!("Bearer {}", token(secret, "ada"));
    let other = format!("Bearer {}", token(secret, "bob"));
    let bad = format!(
        "Bearer {}",
        token("another secret, not the provider's", "ada")
    );

    let a = replayer.run(&get("/api/me", &[("authorization", &good)]));
    assert_eq!(
        a.decision,
        Decision::Upstream {
            origin: "users".into(),
            region: "us".into(),
            url: "https://users-us.internal.example.com/api/me".into()
        }
    );
    // Rate limited by subject: another subject, another counter.
    let b = replayer.run(&get("/api/me", &[("authorization", &other)]));
    assert!(a.rate_limit_key.as_deref().unwrap().starts_with("rl:me:"));
    assert_ne!(a.rate_limit_key, b.rate_limit_key);
    let c = replayer.run(&get("/api/me", &[("authorization", &bad)]));
    assert!(
        matches!(&c.decision, Decision::Status { status: 401, detail } if detail.starts_with("invalid token")),
        "{c:?}"
    );
    assert_eq!(c.rate_limit_key, None);

    // Without the secret the token cannot be checked offline.
    let offline = Replayer::new(load(OLD), &|_| None).unwrap();
    assert_eq!(
        offline
            .run(&get("/api/me", &[("authorization", &good)]))
            .decision,
        Decision::NeedsJwt {
            provider: "local".into()
        }
    );
    assert!(matches!(
        offline.run(&get("/api/me", &[])).decision,
        Decision::Status { status: 401, .. }
    ));
}

#[test]
fn har_files_are_read() {
    let har = json!({"log": {"version": "1.2", "entries": [
        {"request": {"method": "GET", "url": "https://api.example.com/api/users/7?x=1",
                     "headers": [{"name": ":authority", "value": "api.example.com"},
                                 {"name": "cf-connecting-ip", "value": "192.0.2.1"}]}},
        {"request": {"method": "POST", "url": "http://api.example.com:8443/api/orders/new",
                     "headers": [], "postData": {"mimeType": "application/json", "text": "{}"}}}
    ]}});
    let requests = replay::parse_requests(&har.to_string()).unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/api/users/7?x=1");
    assert_eq!(
        requests[0].headers,
        vec![("cf-connecting-ip".to_string(), "192.0.2.1".to_string())]
    );
    assert_eq!(requests[1].host, "api.example.com:8443");
    assert_eq!(requests[1].scheme, "http");
    assert!(requests[1].has_body);
    let replayer = Replayer::new(load(OLD), &|_| None).unwrap();
    let out = replayer.run(&requests[1]);
    assert_eq!(out.route.as_deref(), Some("orders"));
    assert!(
        matches!(&out.decision, Decision::Upstream { url, .. } if url == "https://legacy.internal.example.com/app/orders/new")
    );
}

#[test]
fn bad_request_files_are_refused_with_the_line() {
    let e = replay::parse_requests(
        "{\"method\": \"GET\", \"host\": \"h\", \"path\": \"/\"}\nnot json\n",
    )
    .unwrap_err();
    assert!(e.starts_with("line 2: not JSON"), "{e}");
    let e = replay::parse_requests("{\"method\": \"GET\", \"host\": \"h\", \"path\": \"x\"}")
        .unwrap_err();
    assert_eq!(e, "line 1: path \"x\" must start with \"/\"");
}

/// The sample requests the pull-request check replays exist and match the routes file.
#[test]
fn the_repository_sample_requests_replay() {
    let (code, out, err) = gateway(&["replay", "routes.json", "requests.jsonl"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 5, "{out}");
    assert!(out.contains("route=get-user upstream=users/eu"), "{out}");
}

#[test]
fn validated_routes_check_the_replayed_body_and_query() {
    let file = config::load(
        r#"{"origins": {"o": {"regions": [{"name": "r", "url": "https://o.internal.example.com"}]}},
            "routes": [{"id": "create", "path": "/things", "methods": ["POST"], "origin": "o",
                        "validate": {"body": {"type": "object", "required": ["name"]},
                                     "query": {"dry": {"type": "boolean"}}}}]}"#,
    )
    .unwrap();
    let replayer = Replayer::new(file, &|_| None).unwrap();
    let lines = [
        r#"{"method": "POST", "url": "https://api.example.com/things", "headers": {"content-type": "application/json"}, "body": {"name": "a"}}"#,
        r#"{"method": "POST", "url": "https://api.example.com/things", "headers": {"content-type": "application/json"}, "body": "{\"nom\": 1}"}"#,
        r#"{"method": "POST", "url": "https://api.example.com/things", "headers": {"content-type": "text/plain"}, "body": "x"}"#,
        r#"{"method": "POST", "url": "https://api.example.com/things?dry=maybe", "headers": {"content-type": "application/json"}, "body": {"name": "a"}}"#,
    ];
    let requests = replay::parse_requests(&lines.join("\n")).unwrap();
    let statuses: Vec<Option<u16>> = requests
        .iter()
        .map(|r| match replayer.run(r).decision {
            Decision::Status { status, .. } => Some(status),
            Decision::Upstream { .. } => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, [None, Some(400), Some(415), Some(400)]);
}
