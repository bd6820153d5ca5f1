//! The `validate` policy's configuration and request checks: an arbitrary rule
//! (the JSON of a route's `validate`, schema included) compiled as an isolate
//! compiles it, then an arbitrary query string and body checked against it.
//!
//! Input: `RULE \0 QUERY \0 BODY` (missing parts are empty). RULE is parsed as a
//! `ValidateRule`; one that does not parse, or whose schema or patterns do not
//! compile, must be refused with a message, never a panic.
//!
//! Checks (besides no panic and bounded time): at most 20 errors a request; body
//! pointers are JSON pointers (`""` or `/...`), query pointers `/query/NAME`; a
//! body the policy accepts is JSON the compiled schema accepts, a refused one is
//! 400 with its errors; `is_valid` and `errors` agree; the config check
//! (`config::load`) and the compile agree on inline schemas.
#![no_main]

use edge_gateway::config::{self, schema, BodySchema, ValidateRule};
use edge_gateway::policy::validate::ValidatePolicy;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // `config::schema::compile` catches a panic of the validator crate (a bug it
    // has on some patterns) and makes it an error; libFuzzer's panic hook would
    // abort before that. Any other panic still reaches libFuzzer's own catch and
    // is a crash.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let mut parts = data.splitn(3, |b| *b == 0);
    let rule = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let Ok(rule_text) = std::str::from_utf8(rule) else {
        return;
    };
    let Ok(rule) = serde_json::from_str::<ValidateRule>(rule_text) else {
        return;
    };
    let compiled = ValidatePolicy::new(&rule, 1 << 20);
    // The file check refuses what the compile refuses (a path body is not read here).
    let file = format!(
        r#"{{"origins": {{"o": {{"regions": [{{"name": "r", "url": "http://o.test"}}]}}}},
            "routes": [{{"id": "r", "path": "/r", "origin": "o", "validate": {rule_text}}}]}}"#
    );
    let inline = matches!(rule.body, Some(BodySchema::Inline(_)) | None);
    match (&compiled, config::load(&file)) {
        (Ok(_), Err(problems)) => panic!("compiled, but the file check refuses: {problems:?}"),
        (Err(e), Ok(_)) if inline => panic!("the file check accepts what does not compile: {e}"),
        (Err(e), _) => assert!(!e.is_empty()),
        _ => {}
    }
    let Ok(Some(policy)) = compiled else {
        return;
    };
    let query = String::from_utf8_lossy(query);
    let errors = policy.query_errors(Some(&query));
    assert!(errors.len() <= schema::MAX_ERRORS);
    for e in &errors {
        assert!(e.pointer.starts_with("/query/"), "{e:?}");
        assert!(!e.detail.is_empty());
    }
    match policy.check_body(body) {
        Ok(()) => {
            if let Some(s) = &policy.body {
                let v: Value = serde_json::from_slice(body).expect("an accepted body is JSON");
                assert!(s.is_valid(&v));
                assert!(s.errors(&v).is_empty());
            }
        }
        Err(problem) => {
            assert_eq!(problem.status(), 400);
            assert!(!problem.errors.is_empty() && problem.errors.len() <= schema::MAX_ERRORS);
            for e in &problem.errors {
                assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{e:?}");
            }
            if let (Some(s), Ok(v)) = (&policy.body, serde_json::from_slice::<Value>(body)) {
                assert!(!s.is_valid(&v));
            }
        }
    }
});
