//! Tests of the edge against the real JavaScript `Headers` and `Response`
//! (run by `wasm-bindgen-test-runner` under Node.js: `make test-wasm`).

use wasm_bindgen_test::wasm_bindgen_test;
use worker::wasm_bindgen::JsCast;
use worker::web_sys;

use super::{apply, declares_body, render, EdgePorts, JsHeaders};
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::pipeline::problem_reply;
use crate::ports::Ports;

fn headers(pairs: &[(&str, &str)]) -> web_sys::Headers {
    let h = web_sys::Headers::new().unwrap();
    for (n, v) in pairs {
        h.append(n, v).unwrap();
    }
    h
}

#[wasm_bindgen_test]
fn the_header_view_reads_runtime_headers_case_insensitively() {
    let h = headers(&[("X-Request-Id", "abc"), ("accept", "a"), ("Accept", "b")]);
    let view = JsHeaders(&h);
    assert_eq!(view.get("x-request-id").as_deref(), Some("abc"));
    assert_eq!(view.get("ACCEPT").as_deref(), Some("a, b"));
    assert_eq!(view.get("missing"), None);
}

#[wasm_bindgen_test]
fn edits_remove_hop_by_hop_and_set_owned_headers() {
    let h = headers(&[
        ("connection", "close, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("x-forwarded-for", "6.6.6.6"),
        ("X_User_Id", "forged"),
        ("accept", "*/*"),
    ]);
    let mut names = JsHeaders(&h).names();
    names.sort();
    assert_eq!(
        names,
        [
            "accept",
            "connection",
            "keep-alive",
            "x-forwarded-for",
            "x-hop",
            "x_user_id"
        ]
    );
    assert!(JsHeaders(&headers(&[])).names().is_empty());
    let mut edits = HeaderEdits::default();
    edits.remove_unwanted(&JsHeaders(&h), &["x-forwarded-for", "x-user-id"]);
    edits.set("x-forwarded-for", "203.0.113.7");
    apply(&h, &edits);
    let view = JsHeaders(&h);
    assert_eq!(view.get("x-hop"), None);
    assert_eq!(view.get("keep-alive"), None);
    assert_eq!(view.get("connection"), None);
    assert_eq!(view.get("x_user_id"), None);
    assert_eq!(view.get("x-forwarded-for").as_deref(), Some("203.0.113.7"));
    assert_eq!(view.get("accept").as_deref(), Some("*/*"));
}

#[wasm_bindgen_test]
fn an_unsafe_value_is_dropped_not_fatal() {
    let h = headers(&[]);
    let mut edits = HeaderEdits::default();
    edits.set("x-bad", "a\r\nx-injected: 1");
    edits.set("x-good", "ok");
    apply(&h, &edits);
    let view = JsHeaders(&h);
    assert_eq!(view.get("x-injected"), None);
    assert_eq!(view.get("x-good").as_deref(), Some("ok"));
}

#[wasm_bindgen_test]
async fn a_problem_renders_as_problem_json() {
    let reply = problem_reply::<web_sys::Response>(
        Problem::new(Kind::MethodNotAllowed, "use GET").with_header("allow", "GET, HEAD"),
        "rid-7",
    );
    let response: web_sys::Response = render(reply).unwrap();
    assert_eq!(response.status(), 405);
    let h = response.headers();
    assert_eq!(
        h.get("content-type").unwrap().as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(h.get("allow").unwrap().as_deref(), Some("GET, HEAD"));
    let text = wasm_bindgen_futures::JsFuture::from(response.text().unwrap())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text.as_string().unwrap()).unwrap();
    assert_eq!(body["request_id"], "rid-7");
    assert_eq!(body["status"], 405);
}

#[wasm_bindgen_test]
fn random_bytes_come_from_the_runtime() {
    let request = web_sys::Request::new_with_str("https://gateway.test/").unwrap();
    let bindings = std::rc::Rc::new(super::Bindings {
        kv: None,
        metrics: None,
        limiter: None,
        env: worker::js_sys::Object::new().unchecked_into(),
    });
    let ports = EdgePorts::new(Clone::clone(&request), false, bindings);
    let a = ports.random_bytes();
    let b = ports.random_bytes();
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 16]);
    assert!(ports.now_ms() > 1_700_000_000_000);
}

#[wasm_bindgen_test]
fn the_embedded_routes_compile_in_wasm() {
    let gw =
        crate::gateway::Gateway::from_prepared(crate::gateway::EMBEDDED_ROUTES, &|_| None).unwrap();
    assert!(gw.route_count() > 0);
    for route in gw.routes() {
        assert!(route.is_ok(), "{route:?}");
    }
}

#[wasm_bindgen_test]
fn only_framing_headers_announce_a_body() {
    let none = headers(&[]);
    assert!(!declares_body(&JsHeaders(&none)));
    let zero = headers(&[("content-length", "0")]);
    assert!(!declares_body(&JsHeaders(&zero)));
    let some = headers(&[("content-length", "12")]);
    assert!(declares_body(&JsHeaders(&some)));
    let chunked = headers(&[("transfer-encoding", "chunked")]);
    assert!(declares_body(&JsHeaders(&chunked)));
}
