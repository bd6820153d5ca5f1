//! A request path, host and method through `http::path::normalize`, the route table
//! of a fixed gateway, and `RouteRt::upstream_path`.
//!
//! Input: `METHOD \n HOST \n PATH` (the path is the rest, newlines included); with
//! fewer lines the method is `GET` and the host `example.com`. The path is used twice:
//! as given (raw bytes, the worst case), and as the `url` crate yields it from a
//! request URL, which is what the Worker matches (`Url::path()`).
//!
//! Checks:
//! - `normalize`: refuses exactly overlong and non-origin-form paths; the result starts
//!   with `/`, has no `//`, no dot segment (`.`, `..`, or their `%2e` forms), is no
//!   longer than the input, is a fixed point, and is the input itself when that was
//!   already clean.
//! - lookup: a found route allows the method and gets one non-empty parameter per
//!   template parameter, taken from the path (a segment parameter never holds `/`);
//!   `405` lists the allowed methods, never the requested one.
//! - `upstream_path` is exactly the rewrite template filled with the raw parameters
//!   (the request path when there is no rewrite), starts with `/` but not `//`.
//! - For paths as the Worker sees them: the upstream path has no dot segment, and the
//!   URL the gateway fetches (`base + upstream path`, parsed as `fetch` would) keeps
//!   the origin's host and stays under its base path.
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use edge_gateway::config::Method;
use edge_gateway::gateway::Gateway;
use edge_gateway::http::path::{normalize, PathError, MAX_PATH_LEN};
use edge_gateway::route::{host_without_port, Match};
use libfuzzer_sys::fuzz_target;

/// `(id, path, rewrite)` of the fixed gateway's routes, in file order.
const ROUTES: [(&str, &str, Option<&str>); 13] = [
    ("get-user", "/api/users/{id}", Some("/v1/users/{id}")),
    ("update-user", "/api/users/{id}", Some("/v1/users/{id}")),
    (
        "user-files",
        "/api/users/{id}/files/{*rest}",
        Some("/v1/{rest}/of/{id}"),
    ),
    ("files", "/files/{*rest}", Some("/{rest}")),
    ("plain", "/plain/{x}", None),
    ("tenant", "/api/users/{id}", Some("/t/{id}")),
    ("exact", "/only-here", Some("/elsewhere")),
    ("me", "/api/users/me", Some("/v1/me")),
    ("image", "/img/{name}.png", Some("/images/{name}")),
    ("version", "/v{ver}/status", Some("/{ver}/health")),
    ("site", "/{*page}", Some("/site/{page}")),
    ("swap", "/a/{x}/b/{y}", Some("/{y}/{x}/z")),
    ("glue", "/g/{x}/{y}", Some("/glued/{x}{y}")),
];

const FILE: &str = r#"{
  "origins": {
    "users": {"regions": [{"name": "eu", "url": "http://127.0.0.1:9101"}]},
    "files": {"regions": [{"name": "us", "url": "http://127.0.0.1:9102/storage/"}]}
  },
  "routes": [
    {"id": "get-user", "path": "/api/users/{id}", "methods": ["GET"], "origin": "users", "rewrite": "/v1/users/{id}"},
    {"id": "update-user", "path": "/api/users/{id}", "methods": ["PUT", "DELETE"], "origin": "users", "rewrite": "/v1/users/{id}"},
    {"id": "user-files", "path": "/api/users/{id}/files/{*rest}", "origin": "files", "rewrite": "/v1/{rest}/of/{id}"},
    {"id": "files", "path": "/files/{*rest}", "methods": ["GET", "POST"], "origin": "files", "rewrite": "/{rest}"},
    {"id": "plain", "path": "/plain/{x}", "origin": "files"},
    {"id": "tenant", "path": "/api/users/{id}", "host": "*.tenants.example.com", "methods": ["GET"], "origin": "users", "rewrite": "/t/{id}"},
    {"id": "exact", "path": "/only-here", "host": "API.example.com", "origin": "users", "rewrite": "/elsewhere"},
    {"id": "me", "path": "/api/users/me", "methods": ["GET"], "origin": "users", "rewrite": "/v1/me"},
    {"id": "image", "path": "/img/{name}.png", "methods": ["GET"], "origin": "files", "rewrite": "/images/{name}"},
    {"id": "version", "path": "/v{ver}/status", "methods": ["GET"], "origin": "files", "rewrite": "/{ver}/health"},
    {"id": "site", "path": "/{*page}", "host": "static.example.com", "origin": "files", "rewrite": "/site/{page}"},
    {"id": "swap", "path": "/a/{x}/b/{y}", "origin": "files", "rewrite": "/{y}/{x}/z"},
    {"id": "glue", "path": "/g/{x}/{y}", "origin": "files", "rewrite": "/glued/{x}{y}"}
  ]
}"#;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        let gw = Gateway::from_json(FILE, &|_| None).expect("the fixed routes file compiles");
        for (rt, (id, path, _)) in gw.routes().map(Result::unwrap).zip(ROUTES) {
            assert_eq!((rt.id.as_str(), rt.path.as_str()), (id, path));
        }
        gw
    })
}

/// Parameter names of a template, in order, and whether each is a catch-all.
fn param_names(template: &str) -> Vec<(&str, bool)> {
    template
        .split('{')
        .skip(1)
        .map(|s| {
            let name = &s[..s.find('}').unwrap()];
            match name.strip_prefix('*') {
                Some(n) => (n, true),
                None => (name, false),
            }
        })
        .collect()
}

/// The rewrite template filled with the parameters: the oracle for `upstream_path`.
fn fill(rewrite: &str, names: &[(&str, bool)], params: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = rewrite;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap();
        let name = rest[open + 1..close].trim_start_matches('*');
        let i = names.iter().position(|(n, _)| *n == name).unwrap();
        out.push_str(params[i]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A dot segment as a URL parser reads one: `.`, `..`, with any dot written `%2e`/`%2E`.
fn is_dot_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | "%2e" | ".." | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// Whether a path spells an unreserved character (`A-Z a-z 0-9 - . _ ~`) as a
/// percent-encoding, which normalization decodes (RFC 3986 6.2.2.2).
fn has_encoded_unreserved(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    })
}

fn check_normalize(raw: &str) -> Option<Cow<'_, str>> {
    let result = normalize(raw);
    let n = match result {
        Err(PathError::TooLong) => {
            assert!(raw.len() > MAX_PATH_LEN);
            return None;
        }
        Err(PathError::NotOriginForm) => {
            assert!(raw.len() <= MAX_PATH_LEN && !raw.starts_with('/'));
            return None;
        }
        Ok(n) => n,
    };
    assert!(raw.len() <= MAX_PATH_LEN && raw.starts_with('/'));
    assert!(n.starts_with('/'), "{raw:?} -> {n:?}");
    assert!(!n.contains("//"), "{raw:?} -> {n:?}");
    assert!(
        !n.split('/').any(is_dot_segment),
        "dot segment left: {raw:?} -> {n:?}"
    );
    assert!(n.len() <= raw.len(), "{raw:?} -> {n:?} grew");
    assert!(
        matches!(normalize(&n), Ok(Cow::Borrowed(again)) if again == n),
        "not a fixed point: {raw:?} -> {n:?}"
    );
    assert!(
        !has_encoded_unreserved(&n),
        "an encoded unreserved character left: {raw:?} -> {n:?}"
    );
    let clean = !raw.contains("//")
        && !raw.split('/').any(is_dot_segment)
        && !has_encoded_unreserved(raw);
    if clean {
        assert!(matches!(n, Cow::Borrowed(_)) && n == raw, "{raw:?} changed");
    }
    Some(n)
}

fn check_lookup(host: &str, path: &str, method_name: &str, as_worker_sees_it: bool) {
    let gw = gateway();
    let method = Method::parse(method_name);
    match gw.table.lookup(host, path, method) {
        Match::NotFound => {}
        Match::MethodNotAllowed { allow } => {
            assert!(!allow.is_empty());
            if let Some(m) = method {
                assert!(
                    !allow.split(", ").any(|a| a == m.as_str()),
                    "405 for {method_name} which {allow:?} allows"
                );
            }
        }
        Match::Found { route, params } => {
            let rt = gw.route(route).expect("compiled");
            let m = method.expect("a route for a method no route can allow");
            assert!(rt.methods.contains(&m), "{} does not allow {m:?}", rt.id);
            let (_, template, rewrite) = ROUTES[route];
            let names = param_names(template);
            assert_eq!(params.len(), names.len(), "{}: {params:?}", rt.id);
            let range = path.as_ptr() as usize..path.as_ptr() as usize + path.len() + 1;
            for (p, (_, catch_all)) in params.iter().zip(&names) {
                assert!(!p.is_empty(), "{}: empty parameter in {path:?}", rt.id);
                assert!(
                    range.contains(&(p.as_ptr() as usize)),
                    "parameter not from the path"
                );
                if !catch_all {
                    assert!(!p.contains('/'), "{}: segment parameter {p:?}", rt.id);
                }
            }
            let expected = match rewrite {
                None => path.to_string(),
                Some(r) => fill(r, &names, &params),
            };
            // A filled template that spells a dot segment is refused, never sent.
            let Some(upstream) = rt.upstream_path(path, &params) else {
                assert!(
                    expected.split('/').any(is_dot_segment),
                    "{}: {path:?} refused, but {expected:?} is clean",
                    rt.id
                );
                return;
            };
            assert_eq!(upstream, expected, "{}: {path:?}", rt.id);
            assert!(upstream.starts_with('/'), "{}: {upstream:?}", rt.id);
            assert!(
                !upstream.starts_with("//"),
                "{}: {path:?} -> {upstream:?}",
                rt.id
            );
            if as_worker_sees_it {
                assert!(
                    !upstream.split('/').any(is_dot_segment),
                    "{}: {path:?} -> upstream {upstream:?} has a dot segment",
                    rt.id
                );
                let origin = &gw.origins[rt.origin];
                let base = &origin.regions[0].base;
                let base_url = url::Url::parse(base).unwrap();
                let full = url::Url::parse(&format!("{base}{upstream}"))
                    .unwrap_or_else(|e| panic!("{}: {base}{upstream}: {e}", rt.id));
                assert_eq!(full.host_str(), base_url.host_str());
                assert_eq!(full.port(), base_url.port());
                let base_path = base_url.path().trim_end_matches('/');
                assert!(
                    full.path().starts_with(base_path),
                    "{}: {path:?} escapes {base}: {full}",
                    rt.id
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let (method, host, raw) = match (lines.next(), lines.next(), lines.next()) {
        (Some(m), Some(h), Some(p)) => (m, h, p),
        (Some(h), Some(p), None) => ("GET", h, p),
        (Some(p), None, None) => ("GET", "example.com", p),
        _ => return,
    };
    let bare = host_without_port(host);
    assert!(host.starts_with(bare));

    if let Some(n) = check_normalize(raw) {
        check_lookup(host, &n, method, false);
    }
    // The path as the Worker gets it: `Url::path()` of the request URL.
    if raw.starts_with('/') {
        if let Ok(url) = url::Url::parse(&format!("http://gateway.test{raw}")) {
            if let Some(n) = check_normalize(url.path()) {
                check_lookup(host, &n, method, true);
            }
        }
    }
});
