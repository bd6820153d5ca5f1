//! `request_headers`, `response_headers` and `query` edits: rules as a routes file
//! declares them (`config::load`, then `Gateway::compile`), value templates over the
//! route's path parameters, arbitrary parameter values, headers and query strings.
//!
//! Input: one item a line. `H name=value` / `h name`: a `request_headers` set /
//! remove; `O name=value` / `o name`: `response_headers`; `Q name=value` / `q name`:
//! `query`; `T`: the rules go to the top level instead of the route; `P value`: the
//! next path parameter of the route `/r/{a}/{b}/{*c}` (missing ones are `x`);
//! `I name:value`: a request header; `U name:value`: a header of the origin's
//! answer; `?query`: the request's query string.
//!
//! Checks (besides no panic), for every file `config::load` accepts:
//! - headers, on both sides, against the gateway's own edits alone (what the
//!   pipeline does before the policy): every header the gateway manages
//!   (`config::managed`, the jwt provider's `forward_claims` header included) comes
//!   out exactly as without the policy; every header the rules do not name passes
//!   byte for byte and in order; no header in any spelling of a removed name is
//!   left; a set header is there exactly once, with the template filled by a
//!   reference renderer written here, or not at all when that value is not
//!   header-safe; the output is at most the input without the policy plus what the
//!   policy sets;
//! - query: every parameter whose form-decoded name the rules do not name passes
//!   byte for byte and in order; the set parameters follow, one each, in name
//!   order, whose names decode to the configured names and whose values decode to
//!   the filled template (parameters percent-decoded, as they are still encoded in
//!   the path) and carry no `&`, `=`, `+`, `#` or space, so no parameter can be
//!   injected; an untouched query is returned as it was; the length is bounded by the
//!   input plus three bytes per byte set.
#![no_main]

use std::borrow::Cow;
use std::collections::BTreeMap;

use edge_gateway::config::{self, managed::is_managed};
use edge_gateway::gateway::Gateway;
use edge_gateway::http::headers::{is_safe_value, same_name, HeaderEdits, GATEWAY_OWNED_REQUEST};
use edge_gateway::policy::cache::{ORIGIN_CACHE_CONTROL, STORED_AT};
use edge_gateway::policy::headers::HeaderPolicy;
use edge_gateway::policy::query::QueryPolicy;
use edge_gateway::policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const PARAMS: [&str; 3] = ["a", "b", "c"];
const CLAIM_HEADER: &str = "x-user-id";

#[derive(Default)]
struct Rules {
    set: BTreeMap<String, String>,
    remove: Vec<String>,
}

impl Rules {
    fn json(&self) -> Option<Value> {
        (!self.set.is_empty() || !self.remove.is_empty())
            .then(|| json!({"set": self.set, "remove": self.remove}))
    }

    fn named(&self, header: &str) -> bool {
        self.set
            .keys()
            .chain(&self.remove)
            .any(|n| same_name(n, header))
    }
}

/// The reference renderer: `{{`, `}}` are braces, `{name}` the parameter.
fn render(template: &str, params: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{{") {
            out.push('{');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("}}") {
            out.push('}');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').expect("a validated template");
            let i = PARAMS
                .iter()
                .position(|p| *p == &r[..end])
                .expect("a parameter");
            out.push_str(params[i]);
            rest = &r[end + 1..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Percent-decoding (`%XY` with two hex digits; anything else as it is).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A value template filled as the query edit means it: literals as written,
/// parameters decoded.
fn render_decoded(template: &str, params: &[&str]) -> String {
    // Literal text and decoded parameters, joined as bytes, read as form decoding
    // reads them (invalid UTF-8 replaced once, over the whole value).
    let mut bytes = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{{") {
            bytes.push(b'{');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("}}") {
            bytes.push(b'}');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').unwrap();
            let i = PARAMS.iter().position(|p| *p == &r[..end]).unwrap();
            bytes.extend(percent_decode(params[i]));
            rest = &r[end + 1..];
        } else {
            let c = rest.chars().next().unwrap();
            let mut buf = [0; 4];
            bytes.extend(c.encode_utf8(&mut buf).as_bytes());
            rest = &rest[c.len_utf8()..];
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(n, _)| n.into_owned())
        .unwrap_or_default()
}

fn size(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// The header checks, for one side: `own` are the gateway's edits before the policy.
fn check_headers(
    side: &str,
    rules: &Rules,
    policy: Option<&HeaderPolicy>,
    incoming: &[(&str, &str)],
    own: HeaderEdits,
    params: &[&str],
) {
    let Some(policy) = policy else {
        assert!(rules.json().is_none(), "{side}: rules but no policy");
        return;
    };
    let mut full = own.clone();
    policy.edit(incoming, params, &mut full);
    let list: Vec<(String, String)> = incoming
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let (mut without, mut with) = (list.clone(), list);
    own.apply_to(&mut without);
    full.apply_to(&mut with);
    let managed = |n: &str| is_managed(n, [CLAIM_HEADER]);
    let pick = |l: &[(String, String)], f: &dyn Fn(&str) -> bool| -> Vec<(String, String)> {
        l.iter().filter(|(n, _)| f(n)).cloned().collect()
    };
    assert_eq!(
        pick(&with, &managed),
        pick(&without, &managed),
        "{side}: a managed header changed"
    );
    let other = |n: &str| !rules.named(n);
    assert_eq!(
        pick(&with, &other),
        pick(&without, &other),
        "{side}: a header the rules do not name changed"
    );
    for name in &rules.remove {
        assert!(
            !with.iter().any(|(n, _)| same_name(n, name)),
            "{side}: removed {name:?} is still there: {with:?}"
        );
    }
    let mut added = 0;
    for (name, template) in &rules.set {
        let value = render(template, params);
        let found: Vec<&(String, String)> =
            with.iter().filter(|(n, _)| same_name(n, name)).collect();
        if is_safe_value(&value) {
            assert_eq!(
                found.len(),
                1,
                "{side}: {name:?} set {} times: {with:?}",
                found.len()
            );
            assert_eq!(found[0].1, value, "{side}: {name:?}");
            added += name.len() + value.len();
        } else {
            assert!(found.is_empty(), "{side}: unsafe value for {name:?} sent");
        }
    }
    assert!(
        size(&with) <= size(&without) + added,
        "{side}: {} bytes, {} without the policy plus {added} set",
        size(&with),
        size(&without)
    );
}

fn check_query(rules: &Rules, policy: Option<&QueryPolicy>, query: Option<&str>, params: &[&str]) {
    let Some(policy) = policy else {
        assert!(rules.json().is_none(), "query: rules but no policy");
        return;
    };
    let out = policy.apply(query, params);
    let names: Vec<&String> = rules.set.keys().chain(&rules.remove).collect();
    let pieces: Vec<&str> = query.map_or_else(Vec::new, |q| q.split('&').collect());
    let kept: Vec<&str> = pieces
        .iter()
        .copied()
        .filter(|p| {
            p.is_empty() || {
                let name = p.split_once('=').map_or(*p, |(n, _)| n);
                !names.iter().any(|n| **n == form_decode(name))
            }
        })
        .collect();
    if rules.set.is_empty() && kept.len() == pieces.len() {
        assert_eq!(out.as_deref(), query, "an untouched query changed");
        assert!(matches!(out, None | Some(Cow::Borrowed(_))));
        return;
    }
    // Joined, a single empty piece is no piece.
    let kept_empty = kept.join("&").is_empty();
    let Some(out) = out else {
        assert!(kept_empty && rules.set.is_empty(), "query dropped");
        return;
    };
    let got: Vec<&str> = out.split('&').collect();
    let (head, tail) = if kept_empty {
        (&got[..0], &got[..])
    } else {
        assert!(got.len() >= kept.len(), "{out:?}");
        got.split_at(kept.len())
    };
    let kept: &[&str] = if kept_empty { &[] } else { &kept };
    assert_eq!(head, kept, "kept parameters changed: {out:?}");
    assert_eq!(tail.len(), rules.set.len(), "set parameters: {out:?}");
    let mut budget = query.map_or(0, str::len);
    for (piece, (name, template)) in tail.iter().zip(&rules.set) {
        let (n, v) = piece.split_once('=').expect("name=value");
        assert_eq!(form_decode(n), *name, "set name in {piece:?}");
        for part in [n, v] {
            assert!(
                part.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"&=+#".contains(&b)),
                "{piece:?} is not encoded"
            );
        }
        let want = render_decoded(template, params);
        let decoded = url::form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(decoded, want, "value of {name:?} in {piece:?}");
        budget += 2 + 3 * (name.len() + render(template, params).len());
    }
    assert!(
        out.len() <= budget,
        "query of {} bytes, at most {budget}",
        out.len()
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (mut req, mut resp, mut query) = (Rules::default(), Rules::default(), Rules::default());
    let mut top = false;
    let mut params: Vec<&str> = Vec::new();
    let mut incoming: Vec<(&str, &str)> = Vec::new();
    let mut answer: Vec<(&str, &str)> = Vec::new();
    let mut qs: Option<&str> = None;
    for line in text.split('\n') {
        let Some(kind) = line.chars().next() else {
            continue;
        };
        let body = &line[kind.len_utf8()..];
        let rest = body.strip_prefix(' ').unwrap_or(body);
        let rules = match kind {
            'H' | 'h' => &mut req,
            'O' | 'o' => &mut resp,
            'Q' | 'q' => &mut query,
            'T' => {
                top = true;
                continue;
            }
            'P' => {
                params.push(rest);
                continue;
            }
            'I' | 'U' => {
                let (n, v) = rest.split_once(':').unwrap_or((rest, ""));
                let v = v.trim_start_matches(' ');
                if kind == 'I' {
                    incoming.push((n, v))
                } else {
                    answer.push((n, v))
                }
                continue;
            }
            '?' => {
                qs = Some(rest);
                continue;
            }
            _ => continue,
        };
        if kind.is_ascii_uppercase() {
            let (n, v) = rest.split_once('=').unwrap_or((rest, ""));
            rules.set.insert(n.to_string(), v.to_string());
        } else {
            rules.remove.push(rest.to_string());
        }
    }
    while params.len() < PARAMS.len() {
        params.push("x");
    }
    params.truncate(PARAMS.len());

    let mut holder = json!({});
    for (field, rules) in [
        ("request_headers", &req),
        ("response_headers", &resp),
        ("query", &query),
    ] {
        if let Some(v) = rules.json() {
            holder[field] = v;
        }
    }
    let mut route = json!({"id": "r", "path": "/r/{a}/{b}/{*c}", "origin": "o"});
    let mut file = json!({
        "origins": {"o": {"regions": [{"name": "eu", "url": "https://origin.example/base"}]}},
        "jwt": {"main": {"issuer": "https://issuer.example", "secret_var": "S",
                         "forward_claims": {"sub": CLAIM_HEADER}}},
    });
    let target = if top { &mut file } else { &mut route };
    if let Value::Object(h) = holder {
        for (k, v) in h {
            target[k] = v;
        }
    }
    file["routes"] = json!([route]);
    let Ok(loaded) = config::load(&file.to_string()) else {
        return;
    };
    let gw = Gateway::compile(loaded, &|_| Some("0".repeat(64))).expect("a loaded file compiles");
    let chain = &gw.route(0).expect("compiled").chain;
    let request_policy = chain.iter().find_map(|p| match p {
        Policy::RequestHeaders(h) => Some(h),
        _ => None,
    });
    let response_policy = chain.iter().find_map(|p| match p {
        Policy::ResponseHeaders(h) => Some(h),
        _ => None,
    });
    let query_policy = chain.iter().find_map(|p| match p {
        Policy::Query(q) => Some(q),
        _ => None,
    });

    // The gateway's own request edits (pipeline/upstream.rs), then the policy's.
    let mut own = HeaderEdits::default();
    let dropped: Vec<&str> = GATEWAY_OWNED_REQUEST
        .iter()
        .copied()
        .chain([CLAIM_HEADER])
        .collect();
    own.remove_unwanted(incoming.as_slice(), &dropped);
    own.set("x-forwarded-for", "203.0.113.9");
    own.set("x-forwarded-proto", "https");
    own.set("x-forwarded-host", "api.example");
    own.set("x-request-id", "rid-1");
    own.set(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    check_headers("request", &req, request_policy, &incoming, own, &params);

    // The origin's answer: the gateway removes hop-by-hop and its own stored headers.
    let mut own = HeaderEdits::default();
    own.remove_unwanted(answer.as_slice(), &[STORED_AT, ORIGIN_CACHE_CONTROL]);
    own.set("x-request-id", "rid-1");
    check_headers("response", &resp, response_policy, &answer, own, &params);

    check_query(&query, query_policy, qs, &params);
});
