//! The `gateway` command line and the generated schema, run as a user would.

use std::process::Command;

fn gateway(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the gateway binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_repository_routes_and_prints_the_table() {
    let (code, out, err) = gateway(&["check", "routes.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("routes.json: ok, 4 routes\n"), "{out}");
    assert!(
        out.contains("get-user") && out.contains("/api/users/{id}"),
        "{out}"
    );
}

#[test]
fn check_prints_every_problem_naming_route_and_field() {
    let (code, out, err) = gateway(&["check", "tests/fixtures/invalid.routes.json"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    for needle in [
        "4 problems",
        "route \"get-user\": unknown origin \"userz\"",
        "route \"list-users\": unknown field `rate_limt`",
        "route \"bad-rewrite\": rewrite \"/v1/{id}\" uses parameter \"id\" that the path does not define",
        "route \"internal\": path \"/__gateway/debug\" is under /__gateway/",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_names_every_request_policy_problem() {
    let (code, out, err) = gateway(&["check", "tests/fixtures/invalid-policies.routes.json"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    for needle in [
        "5 problems",
        "file: ip.allow: \"10.0.0.1/8\" has bits set past its /8 prefix",
        "route \"get-user\": geo.deny: \"Germany\" is not a continent code",
        "route \"get-user\": request_headers.set: \"x-request-id\" is managed by the gateway",
        "route \"get-user\": response_headers.remove: \"access-control-allow-origin\" is managed by the gateway",
        "route \"get-user\": request_headers.set \"x-user\": \"{name}\" uses parameter \"name\" that the path does not define",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_reports_type_errors_unknown_fields_and_semantic_problems_together() {
    let (code, out, err) = gateway(&["check", "tests/fixtures/mixed.routes.json"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let expected = [
        "origin \"users\": timeout_ms: invalid type: string \"10s\", expected u64",
        "jwt \"main\": typ: unknown variant `id+jwt`, expected `at+jwt`",
        "route \"get-user\": unknown field `rate_limt`",
        "route \"get-user\": cache.ttl_s: invalid type: string \"60\", expected u32",
        "route \"get-user\": unknown origin \"userz\"",
        "route \"get-user\": rewrite \"/v1/{uid}\" uses parameter \"uid\"",
        "route \"list-users\": methods[1]: unknown variant `LIST`",
        "route \"list-users\": auth: unknown jwt provider \"mian\"",
    ];
    for needle in expected {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(
        err.starts_with(&format!(
            "tests/fixtures/mixed.routes.json: {} problems\n",
            expected.len()
        )),
        "{err}"
    );
}

#[test]
fn check_diff_shows_route_changes() {
    let (code, out, err) = gateway(&[
        "check",
        "--diff",
        "tests/fixtures/old.routes.json",
        "tests/fixtures/new.routes.json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "+ route \"health-check\": GET /status -> users /healthz\n\
         - route \"files\": GET,POST /files/{*rest} -> files /{rest}\n\
         ~ route \"get-user\": methods: [\"GET\",\"HEAD\"] -> [\"GET\"]\n\
         ~ route \"get-user\": timeout_ms: - -> 2000\n"
    );
}

#[test]
fn unknown_commands_print_usage() {
    let (code, _, err) = gateway(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("usage:"));
}

#[test]
fn the_committed_schema_is_generated_from_the_types() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/routes.schema.json"))
            .expect("routes.schema.json exists");
    assert!(
        committed == edge_gateway::config::schema_json(),
        "routes.schema.json is stale: run `make schema` and commit it"
    );
}

#[test]
fn the_schema_rejects_unknown_fields() {
    let schema: serde_json::Value =
        serde_json::from_str(&edge_gateway::config::schema_json()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["$defs"]["Route"]["additionalProperties"], false);
}
