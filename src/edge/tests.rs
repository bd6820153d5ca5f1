//! Tests of the edge against the real JavaScript `Headers`, `Response` and WebCrypto
//! (run by `wasm-bindgen-test-runner` under Node.js: `make test-wasm`).

use wasm_bindgen_test::wasm_bindgen_test;
use worker::wasm_bindgen::JsCast;
use worker::web_sys;

use super::{declares_body, edited, render, EdgePorts, LineHeaders};
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::pipeline::problem_reply;
use crate::ports::Ports;

/// Ports for a GET without bindings (no KV, metrics or limiter).
fn ports() -> EdgePorts {
    let request = web_sys::Request::new_with_str("https://gateway.test/").unwrap();
    let bindings = std::rc::Rc::new(super::Bindings {
        kv: None,
        metrics: None,
        limiter: None,
        env: worker::js_sys::Object::new().unchecked_into(),
    });
    EdgePorts::new(request, false, bindings)
}

fn headers(pairs: &[(&str, &str)]) -> web_sys::Headers {
    let h = web_sys::Headers::new().unwrap();
    for (n, v) in pairs {
        h.append(n, v).unwrap();
    }
    h
}

#[wasm_bindgen_test]
fn the_header_view_reads_runtime_headers_case_insensitively() {
    let h = headers(&[
        ("X-Request-Id", "abc"),
        ("accept", "a"),
        ("Accept", "b"),
        ("host", "api.example:8443"),
        ("x-empty", ""),
        ("x-colons", "a: b : c"),
    ]);
    let view = LineHeaders::read(&h);
    assert_eq!(view.get("x-request-id").as_deref(), Some("abc"));
    assert_eq!(view.get("ACCEPT").as_deref(), Some("a, b"));
    assert_eq!(view.get("host").as_deref(), Some("api.example:8443"));
    assert_eq!(view.get("x-empty").as_deref(), Some(""));
    assert_eq!(view.get("x-colons").as_deref(), Some("a: b : c"));
    assert_eq!(view.get("missing"), None);
    // What the view reads is what `Headers.get` answers, for every name.
    for name in view.names() {
        assert_eq!(view.get(&name), h.get(&name).unwrap(), "{name}");
    }
}

#[wasm_bindgen_test]
fn edits_apply_in_one_call_removals_then_sets_then_appends() {
    let h = headers(&[("x-a", "old"), ("vary", "origin"), ("keep", "1")]);
    let mut edits = HeaderEdits::default();
    edits.remove("x-a");
    edits.set("x-a", "new");
    edits.set("x-b", "with: colon");
    edits.append.push(("vary", "accept-encoding".to_string()));
    let out = edited(Some(&h), None, &edits);
    assert_eq!(out.get("x-a").unwrap().as_deref(), Some("new"));
    assert_eq!(out.get("x-b").unwrap().as_deref(), Some("with: colon"));
    assert_eq!(
        out.get("vary").unwrap().as_deref(),
        Some("origin, accept-encoding")
    );
    assert_eq!(out.get("keep").unwrap().as_deref(), Some("1"));
    // The source is copied, not edited.
    assert_eq!(h.get("x-a").unwrap().as_deref(), Some("old"));

    let own = edited(
        None,
        Some(("content-type", "text/plain")),
        &HeaderEdits::default(),
    );
    assert_eq!(
        own.get("content-type").unwrap().as_deref(),
        Some("text/plain")
    );
    let mut drop_it = HeaderEdits::default();
    drop_it.remove("Content-Type");
    let own = edited(None, Some(("content-type", "text/plain")), &drop_it);
    assert_eq!(own.get("content-type").unwrap(), None);
}

/// An edit that cannot cross as one line (a value with a line feed, a name with a
/// colon) is dropped whole: it never becomes a second header.
#[wasm_bindgen_test]
fn an_edit_cannot_smuggle_a_second_header() {
    let mut edits = HeaderEdits::default();
    edits.set("x-a", "1\nauthorization:Bearer forged");
    edits.set("x-b:authorization", "Bearer forged");
    edits.append.push(("vary", "x\nset-cookie:a=b".to_string()));
    edits.remove("x-keep\nx-c");
    edits.set("x-ok", "fine");
    let h = headers(&[("x-keep", "1"), ("x-c", "2")]);
    let out = edited(Some(&h), None, &edits);
    let mut names = LineHeaders::read(&out).names();
    names.sort();
    assert_eq!(names, ["x-c", "x-keep", "x-ok"]);
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
    let mut names = LineHeaders::read(&h).names();
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
    assert!(LineHeaders::read(&headers(&[])).names().is_empty());
    let mut edits = HeaderEdits::default();
    edits.remove_unwanted(&LineHeaders::read(&h), &["x-forwarded-for", "x-user-id"]);
    edits.set("x-forwarded-for", "203.0.113.7");
    let h = edited(Some(&h), None, &edits);
    let view = LineHeaders::read(&h);
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
    let h = edited(Some(&h), None, &edits);
    let view = LineHeaders::read(&h);
    assert_eq!(view.get("x-injected"), None);
    assert_eq!(view.get("x-good").as_deref(), Some("ok"));
}

#[wasm_bindgen_test]
async fn a_problem_renders_as_problem_json() {
    let reply = problem_reply::<super::EdgeResponse>(
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
    let ports = ports();
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
    assert!(!declares_body(&LineHeaders::read(&none)));
    let zero = headers(&[("content-length", "0")]);
    assert!(!declares_body(&LineHeaders::read(&zero)));
    let some = headers(&[("content-length", "12")]);
    assert!(declares_body(&LineHeaders::read(&some)));
    let chunked = headers(&[("transfer-encoding", "chunked")]);
    assert!(declares_body(&LineHeaders::read(&chunked)));
}

// --- WebCrypto signature verification, held to the Rust verifiers --------------

/// Signs `message` with a key WebCrypto generates for `alg` and returns the public
/// JWK (as JSON) and the signature: keys and signatures from an implementation
/// independent of both verifiers.
async fn webcrypto_signed(alg: &str, message: &[u8]) -> (String, Vec<u8>) {
    let script = r#"return (async () => {
        const [gen, sign] = {
            RS256: [{name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256"}, {name: "RSASSA-PKCS1-v1_5"}],
            RS512: [{name: "RSASSA-PKCS1-v1_5", modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-512"}, {name: "RSASSA-PKCS1-v1_5"}],
            PS256: [{name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256"}, {name: "RSA-PSS", saltLength: 32}],
            PS384: [{name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-384"}, {name: "RSA-PSS", saltLength: 48}],
            ES256: [{name: "ECDSA", namedCurve: "P-256"}, {name: "ECDSA", hash: "SHA-256"}],
            ES384: [{name: "ECDSA", namedCurve: "P-384"}, {name: "ECDSA", hash: "SHA-384"}],
            EdDSA: [{name: "Ed25519"}, {name: "Ed25519"}],
        }[alg];
        const pair = await crypto.subtle.generateKey(gen, true, ["sign", "verify"]);
        const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
        const sig = await crypto.subtle.sign(sign, pair.privateKey, message);
        return [JSON.stringify({keys: [{kty: jwk.kty, crv: jwk.crv, n: jwk.n, e: jwk.e, x: jwk.x, y: jwk.y}]}), new Uint8Array(sig)];
    })()"#;
    let f = worker::js_sys::Function::new_with_args("alg, message", script);
    let promise: worker::js_sys::Promise = f
        .call2(
            &worker::wasm_bindgen::JsValue::NULL,
            &alg.into(),
            &worker::js_sys::Uint8Array::from(message),
        )
        .unwrap()
        .dyn_into()
        .unwrap();
    let out: worker::js_sys::Array = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let jwks = out.get(0).as_string().unwrap();
    let sig = worker::js_sys::Uint8Array::new(&out.get(1)).to_vec();
    (jwks, sig)
}

/// `r || n - s`: the other valid ECDSA signature of the same message.
fn high_s(signature: &[u8], order: &[u8]) -> Vec<u8> {
    let half = signature.len() / 2;
    let (r, s) = signature.split_at(half);
    let mut out = vec![0u8; half];
    let mut borrow = 0i16;
    for i in (0..half).rev() {
        let d = i16::from(order[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    [r, &out].concat()
}

const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// What the Rust verifier and WebCrypto say of one signature.
async fn verdicts(
    key: &crate::policy::auth::Key,
    alg: crate::config::Algorithm,
    signing_input: &[u8],
    signature: &[u8],
) -> (bool, bool) {
    let check = crate::policy::auth::SignatureCheck {
        alg,
        key,
        signing_input,
        signature,
    };
    (
        check.verify_in_rust(),
        super::webcrypto::verify(&check).await,
    )
}

/// For every asymmetric algorithm: the genuine signature verifies through WebCrypto
/// and through the Rust verifier, and every altered one (a flipped bit in the
/// signature or the input, a truncated or empty signature, another algorithm of the
/// same key) fails through both: the two never disagree.
#[wasm_bindgen_test]
async fn webcrypto_and_the_rust_verifiers_agree_on_every_algorithm() {
    use crate::config::Algorithm as A;
    use crate::policy::auth::parse_jwks;

    let input = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
    let cases = [
        ("RS256", A::RS256, Some(A::PS256)),
        ("RS512", A::RS512, Some(A::RS256)),
        ("PS256", A::PS256, Some(A::RS256)),
        ("PS384", A::PS384, Some(A::PS256)),
        ("ES256", A::ES256, None),
        ("ES384", A::ES384, None),
        ("EdDSA", A::EdDSA, None),
    ];
    for (name, alg, other) in cases {
        let (jwks, signature) = webcrypto_signed(name, input).await;
        let set = parse_jwks(jwks.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = &set.keys()[0];
        let verdicts = |alg, signing_input, signature| verdicts(key, alg, signing_input, signature);
        assert_eq!(
            verdicts(alg, input, &signature).await,
            (true, true),
            "{name}: genuine"
        );
        // A second time, from the imported key the isolate keeps.
        assert_eq!(
            verdicts(alg, input, &signature).await,
            (true, true),
            "{name}: again"
        );

        let mut flipped = signature.clone();
        flipped[signature.len() / 2] ^= 1;
        let mut other_input = input.to_vec();
        other_input[3] ^= 1;
        let altered: [(&str, &[u8], &[u8]); 4] = [
            ("flipped signature bit", input, &flipped),
            ("flipped input bit", &other_input, &signature),
            (
                "truncated signature",
                input,
                &signature[..signature.len() - 1],
            ),
            ("empty signature", input, &[]),
        ];
        for (what, signing_input, sig) in altered {
            assert_eq!(
                verdicts(alg, signing_input, sig).await,
                (false, false),
                "{name}: {what}"
            );
        }
        if let Some(other) = other {
            assert_eq!(
                verdicts(other, input, &signature).await,
                (false, false),
                "{name} as {other:?}"
            );
        }
        let order: Option<&[u8]> = match alg {
            A::ES256 => Some(&P256_ORDER),
            A::ES384 => Some(&P384_ORDER),
            _ => None,
        };
        if let Some(order) = order {
            let (rust, webcrypto) = verdicts(alg, input, &high_s(&signature, order)).await;
            assert_eq!(rust, webcrypto, "{name}: the high-S twin of the signature");
        }
    }
}

/// A key of one type offered for another type's algorithm is refused by the edge
/// itself, before any import.
#[wasm_bindgen_test]
async fn webcrypto_refuses_a_key_of_the_wrong_type() {
    use crate::config::Algorithm as A;
    use crate::policy::auth::{parse_jwks, SignatureCheck};

    let input = b"a.b";
    let (jwks, signature) = webcrypto_signed("ES256", input).await;
    let set = parse_jwks(jwks.as_bytes()).unwrap();
    for alg in [A::ES384, A::EdDSA, A::RS256, A::PS256] {
        let check = SignatureCheck {
            alg,
            key: &set.keys()[0],
            signing_input: input,
            signature: &signature,
        };
        assert!(!super::webcrypto::verify(&check).await, "{alg:?}");
    }
}

#[wasm_bindgen_test]
fn the_request_is_read_in_one_call() {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers(&[("Content-Length", "2"), ("x-a", "1:2")]).into());
    init.set_body(&"hi".into());
    let request =
        web_sys::Request::new_with_str_and_init("https://api.example/v1/items?q=a%0Ab", &init)
            .unwrap();
    let read = super::RequestLines::read(&request);
    assert_eq!(read.method(), "POST");
    assert_eq!(read.url(), "https://api.example/v1/items?q=a%0Ab");
    assert!(read.has_body_stream());
    // Node.js has no `request.cf`; workerd's is read the same way.
    assert_eq!(read.cf_geo(), (None, None));
    assert_eq!(read.headers.get("x-a").as_deref(), Some("1:2"));
    assert_eq!(read.headers.get("content-length").as_deref(), Some("2"));
    assert!(declares_body(&read.headers));

    let get = web_sys::Request::new_with_str("https://api.example/").unwrap();
    let read = super::RequestLines::read(&get);
    assert_eq!(read.method(), "GET");
    assert!(!read.has_body_stream());
    assert!(read.headers.names().is_empty());
}

/// The clock is read once between two waits on the runtime (workerd's stands
/// still while the isolate runs) and again after each.
#[wasm_bindgen_test]
async fn the_clock_is_read_again_only_after_io() {
    let ports = ports();
    let first = ports.now_ms();
    // Node.js's clock runs on while wasm runs; the reading holds anyway.
    let until = worker::js_sys::Date::now() + 5.0;
    while worker::js_sys::Date::now() < until {}
    assert_eq!(ports.now_ms(), first);
    // A wait on the runtime (a WebCrypto verification) ends the reading.
    let input = b"a.b";
    let (jwks, signature) = webcrypto_signed("ES256", input).await;
    let set = crate::policy::auth::parse_jwks(jwks.as_bytes()).unwrap();
    let check = crate::policy::auth::SignatureCheck {
        alg: crate::config::Algorithm::ES256,
        key: &set.keys()[0],
        signing_input: input,
        signature: &signature,
    };
    assert_eq!(ports.now_ms(), first);
    assert!(ports.verify_signature(&check).await);
    assert!(ports.now_ms() >= first + 5);
}

/// A response's status and headers as the pipeline reads them through the ports:
/// the same answers as the runtime's own `status` and `Headers.get`, repeated
/// `set-cookie` included.
#[wasm_bindgen_test]
fn a_response_is_read_once_with_the_runtimes_answers() {
    let h = headers(&[
        ("Content-Type", "text/plain"),
        ("set-cookie", "a=1; Path=/"),
        ("set-cookie", "b=2"),
        ("connection", "close, x-hop"),
        ("x-time", "12:00:00"),
    ]);
    let init = web_sys::ResponseInit::new();
    init.set_status(203);
    init.set_headers(&h.into());
    let inner = web_sys::Response::new_with_opt_str_and_init(Some("hi"), &init).unwrap();
    let response = super::EdgeResponse::new(Clone::clone(&inner));
    let ports = ports();
    assert_eq!(ports.status(&response), 203);
    let names = ports.response_header_names(&response);
    assert_eq!(names.iter().filter(|n| *n == "set-cookie").count(), 2);
    for name in names.iter().chain(&["missing".to_string()]) {
        assert_eq!(
            ports.response_header(&response, name),
            inner.headers().get(name).unwrap(),
            "{name}"
        );
    }
}
