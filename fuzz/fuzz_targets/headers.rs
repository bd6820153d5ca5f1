//! Arbitrary request/response headers through the gateway's header rules: hop-by-hop
//! removal and edits, `is_safe_value`, request ids, `Cache-Control`, conditional
//! requests, `Age`, and CORS preflights and actual responses.
//!
//! Input: one header a line, `name:value` (the value's leading spaces trimmed); a
//! line without `:` is a name with an empty value. Byte 0 picks the clock and the
//! CORS policy.
//!
//! Checks (besides no panic): after the edits no hop-by-hop header nor one named by
//! `Connection` is left, set headers appear once with their value and the rest keep
//! their order; `is_safe_value` and the request-id choice agree with their rules;
//! `Cache-Control` values are capped and the TTL never exceeds the route's;
//! `If-None-Match: *` always matches; every CORS header value the gateway would send is
//! header-safe, a refused preflight carries no `access-control-allow-*`, and an
//! accepted one echoes only an allowed origin.
#![no_main]

use std::sync::OnceLock;

use edge_gateway::config::Cors;
use edge_gateway::config::Method;
use edge_gateway::http::headers::{is_safe_value, HeaderEdits, HOP_BY_HOP};
use edge_gateway::http::request_id;
use edge_gateway::http::HeaderView;
use edge_gateway::policy::cache::{self, CacheControl};
use edge_gateway::policy::cors::{append_vary, CorsPolicy, ALLOW_ORIGIN};
use libfuzzer_sys::fuzz_target;

struct Policy {
    policy: CorsPolicy,
    /// Configured origins, as written; empty for `*`.
    origins: Vec<&'static str>,
}

fn policies() -> &'static [Policy] {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        let make = |json: &str, methods: &[Method], origins: Vec<&'static str>| {
            let cors: Cors = serde_json::from_str(json).expect("a CORS config");
            Policy {
                policy: CorsPolicy::new(&cors, methods),
                origins,
            }
        };
        vec![
            make(
                r#"{"origins": ["https://app.example.com", "https://Other.example:8443"],
                    "credentials": true, "max_age_s": 600, "expose_headers": ["x-request-id", "ETag"]}"#,
                &[Method::Get, Method::Put],
                vec!["https://app.example.com", "https://other.example:8443"],
            ),
            make(
                r#"{"origins": ["*"], "methods": ["GET", "POST"], "headers": ["Content-Type", "x-api-key"]}"#,
                &Method::ALL,
                vec![],
            ),
            make(
                r#"{"origins": ["http://localhost:8787"], "headers": []}"#,
                &[Method::Delete],
                vec!["http://localhost:8787"],
            ),
        ]
    })
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header_safe(v: &str) -> bool {
    is_safe_value(v) && !v.bytes().any(|b| b.is_ascii_control() && b != b'\t')
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let list: Vec<(&str, &str)> = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n, v.trim_start_matches(' ')),
            None => (l, ""),
        })
        .collect();
    let headers: &[(&str, &str)] = &list;
    let get = |name: &str| HeaderView::get(headers, name);

    // is_safe_value, against its rule.
    for (_, v) in headers {
        let rule = v.len() <= 8 * 1024 && !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
        assert_eq!(is_safe_value(v), rule, "{v:?}");
    }

    // Request id: the client's when well-formed, else a fresh one.
    let client_id = get("x-request-id");
    let id = request_id::choose(client_id.as_deref(), || "fresh".to_string());
    let valid = client_id.as_deref().is_some_and(|c| {
        (1..=128).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    if valid {
        assert_eq!(Some(id.as_str()), client_id.as_deref());
    } else {
        assert_eq!(id, "fresh");
    }
    assert!(header_safe(&id));

    // Hop-by-hop removal and edits, on a copy of the list.
    let mut edits = HeaderEdits::default();
    edits.remove_unwanted(headers, &["x-forwarded-for"]);
    edits.set("x-request-id", id.clone());
    edits.set("X-Forwarded-Proto", "https");
    edits.append("vary", "Origin");
    let named: Vec<String> = get("connection")
        .map(|c| {
            c.split(',')
                .map(|t| t.trim().to_ascii_lowercase().replace('_', "-"))
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    edits.apply_to(&mut out);
    assert!(out.len() <= headers.len() + 3);
    // Headers the gateway sets or appends itself come after the removals, whatever
    // `Connection` names.
    let own = ["x-request-id", "x-forwarded-proto", "vary"];
    // Names compare with `_` read as `-` (`x_forwarded_for` is removed too).
    for (n, _) in &out {
        let lower = n.to_ascii_lowercase().replace('_', "-");
        assert!(!HOP_BY_HOP.contains(&lower.as_str()), "{n} kept");
        assert!(
            !named.contains(&lower) || own.contains(&lower.as_str()),
            "{n} (named by Connection) kept"
        );
        assert_ne!(lower, "x-forwarded-for");
    }
    let ids: Vec<&(String, String)> = out
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].1, id);
    assert_eq!(edits.value_of("X-REQUEST-ID"), Some(id.as_str()));
    let kept: Vec<&(String, String)> = out
        .iter()
        .filter(|(n, _)| !own.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .collect();
    let expected: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            let folded = lower.replace('_', "-");
            !HOP_BY_HOP.contains(&folded.as_str())
                && !named.contains(&folded)
                && folded != "x-forwarded-for"
                && ![
                    "x-request-id",
                    "x-forwarded-proto",
                    "vary",
                ]
                .contains(&lower.as_str())
        })
        .copied()
        .collect();
    assert_eq!(
        kept.iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        expected
    );

    // Cache-Control and the TTL it allows.
    let now_ms: u64 = match select & 3 {
        0 => 1_700_000_000_000,
        1 => 0,
        2 => u64::MAX,
        _ => 1_000,
    };
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("cache-control") {
            continue;
        }
        let cc = CacheControl::parse(value);
        assert_eq!(cc, CacheControl::parse(&format!(" ,\t,{value}")));
        for v in [cc.max_age, cc.s_maxage].into_iter().flatten() {
            assert!(v <= 1 << 31);
        }
        for route_ttl in [1, 300, u32::MAX] {
            let ttl = cache::ttl(route_ttl, Some(value));
            assert!(ttl.is_none_or(|t| (1..=route_ttl).contains(&t)));
        }
        assert_eq!(
            cache::storable(200, Some(value), false),
            !(cc.no_store || cc.private || cc.no_cache)
        );
        let _ = cache::storable_with_authorization(Some(value));
    }
    if let Some(age) = cache::age_s(get(cache::STORED_AT).as_deref(), now_ms) {
        assert!(age <= now_ms / 1000);
    }
    // A stored response varies only on the route's `vary` headers (or Accept-Encoding).
    let by_language = cache::CachePolicy::new(
        &edge_gateway::config::CacheRule {
            ttl_s: 60,
            vary: vec!["Accept-Language".into()],
        },
        false,
    );
    if let Some(v) = get("vary") {
        if by_language.vary_storable(Some(&v)) {
            assert!(
                v.split(',')
                    .map(|h| h.trim_matches([' ', '\t']))
                    .filter(|h| !h.is_empty())
                    .all(|h| h.eq_ignore_ascii_case("accept-encoding")
                        || h.eq_ignore_ascii_case("accept-language")),
                "{v:?}"
            );
        }
    }

    // Conditional requests.
    let inm = get("if-none-match");
    let ims = get("if-modified-since");
    let etag = get("etag");
    let last_modified = get("last-modified");
    let nm = cache::not_modified(
        inm.as_deref(),
        ims.as_deref(),
        etag.as_deref(),
        last_modified.as_deref(),
    );
    match inm.as_deref() {
        Some(list) if list.trim() == "*" => assert!(nm),
        Some(_) => {}
        None => {
            if ims.is_none() || last_modified.is_none() {
                assert!(!nm);
            }
        }
    }
    if let Some(tag) = etag.as_deref() {
        let t = tag.trim();
        let strong = t.len() >= 2
            && t.starts_with('"')
            && t.ends_with('"')
            && !t[1..t.len() - 1].contains('"');
        if strong {
            assert!(
                cache::not_modified(Some(t), None, Some(tag), None),
                "{t:?} does not match itself"
            );
        }
    }

    // CORS.
    let origin = get("origin");
    let acrm = get("access-control-request-method");
    let acrh = get("access-control-request-headers");
    let Policy { policy, origins } = &policies()[usize::from(select >> 2) % 3];
    let allowed_origin =
        |o: &str| origins.is_empty() || origins.iter().any(|c| c.eq_ignore_ascii_case(o));
    if let Some(o) = origin.as_deref() {
        assert_eq!(policy.allows_origin(o), allowed_origin(o), "{o:?}");
    }
    match policy.preflight(origin.as_deref(), acrm.as_deref(), acrh.as_deref()) {
        None => assert!(origin.is_none() || acrm.is_none()),
        Some(p) => {
            let o = origin.as_deref().unwrap();
            assert_eq!(p.status, if p.allowed { 204 } else { 403 });
            for (name, value) in &p.headers {
                assert!(header_safe(value), "{name}: {value:?}");
                assert_eq!(*name, name.to_ascii_lowercase());
            }
            if p.allowed {
                assert!(allowed_origin(o));
                assert!(is_token(acrm.as_deref().unwrap().trim()));
                let allow = p.headers.iter().find(|(n, _)| *n == ALLOW_ORIGIN).unwrap();
                assert!(allow.1 == "*" || allow.1 == o);
            } else {
                assert!(p
                    .headers
                    .iter()
                    .all(|(n, _)| !n.starts_with("access-control-allow-")));
            }
        }
    }
    let existing_vary = get("vary");
    for (name, value) in policy.actual_headers(origin.as_deref()) {
        assert!(header_safe(value), "{name}: {value:?}");
        if name == ALLOW_ORIGIN {
            assert!(origin.as_deref().is_some_and(allowed_origin));
        }
        if name == "vary" {
            let merged = append_vary(existing_vary.as_deref(), value);
            if existing_vary.as_deref().is_some_and(is_safe_value) {
                assert!(is_safe_value(&merged) || merged.len() > 8 * 1024);
            }
            let has_star = existing_vary
                .as_deref()
                .is_some_and(|v| v.split(',').any(|e| e.trim() == "*"));
            if !has_star {
                assert!(merged
                    .split(',')
                    .any(|e| e.trim().eq_ignore_ascii_case(value)));
            }
        }
    }
});
