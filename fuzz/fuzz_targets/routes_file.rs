//! Arbitrary text as `routes.json`: `config::load`, then `Gateway::compile`.
//!
//! Checks: no panic; a file that `load` accepts also compiles (the build script
//! only runs `load`, so a compile error would first show at run time); every
//! compiled route is reachable through the route table with its own path; the
//! prepared form the build writes of it reads back to the same routes.
#![no_main]

use edge_gateway::config::{self, Method};
use edge_gateway::gateway::Gateway;
use edge_gateway::http::path::normalize;
use edge_gateway::route::Match;
use libfuzzer_sys::fuzz_target;

/// A concrete request path for a route template: every parameter becomes `x`,
/// `{{`/`}}` become the literal brace.
fn concrete(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(end) = tail.strip_prefix('{').and_then(|t| t.find('}')) {
            out.push('x');
            rest = &tail[end + 2..];
        } else {
            out.push_str(tail);
            rest = "";
        }
    }
    out.push_str(rest);
    out
}

/// The prepared form (`config::prepared`) of an accepted file: the top level and
/// every route read back as written, with the table entry the route table needs.
fn prepared_form_reads_back(text: &str, file: &config::RoutesFile) {
    let form = config::prepared::write(text, file).expect("an accepted file is prepared");
    let read = config::prepared::read(&form).expect("a written form reads");
    let head: config::RoutesFile = serde_json::from_str(read.head).expect("the top level parses");
    assert!(head.routes.is_empty());
    assert_eq!(read.routes.len(), file.routes.len());
    for (r, route) in read.routes.iter().zip(&file.routes) {
        assert_eq!(r.host, route.host.as_deref());
        assert_eq!(r.canonical, config::path::parse_path(&route.path).unwrap().canonical);
        let back: config::Route = serde_json::from_str(r.json).expect("a route's JSON parses");
        assert_eq!(
            serde_json::to_value(&back).expect("a route serializes"),
            serde_json::to_value(route).expect("a route serializes")
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = match config::load(text) {
        Ok(file) => file,
        Err(problems) => {
            assert!(!problems.is_empty(), "load failed without a problem");
            for p in &problems {
                let _ = p.to_string();
            }
            return;
        }
    };
    let routes = file.routes.clone();
    prepared_form_reads_back(text, &file);
    let gw = match Gateway::compile(file, &|_| Some("0".repeat(64))) {
        Ok(gw) => gw,
        Err(e) => panic!("load accepted a file that does not compile: {e}"),
    };
    assert_eq!(gw.route_count(), routes.len());
    for (i, route) in routes.iter().enumerate() {
        let rt = gw.route(i).expect("compiled");
        assert!(!rt.methods.is_empty(), "route {} allows no method", rt.id);
        // A route whose own path does not survive normalization can never be
        // reached (say "/a/./b"); that is a configuration smell, not a crash.
        let path = concrete(&route.path);
        match normalize(&path) {
            Ok(n) if n == path => {}
            _ => continue,
        }
        let host = match route.host.as_deref() {
            None => "any.example".to_string(),
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => format!("a{suffix}"),
                None => h.to_string(),
            },
        };
        let method: Method = rt.methods[0];
        match gw.table.lookup(&host, &path, Some(method)) {
            Match::NotFound => panic!(
                "route {} ({}) is not found by its own path {path:?} on host {host:?}",
                rt.id, route.path
            ),
            Match::MethodNotAllowed { allow } => assert!(!allow.is_empty()),
            Match::Found { route: j, params } => {
                assert!(j < gw.route_count());
                if let Some(up) = gw.route(j).expect("compiled").upstream_path(&path, &params) {
                    assert!(!up.split('/').any(edge_gateway::http::path::is_dot_segment));
                }
            }
        }
    }
});
