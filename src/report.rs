//! Human-readable views of a routes file: the route table and the changes between two files.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::config::{Route, RoutesFile};

fn methods(r: &Route) -> String {
    match &r.methods {
        None => "ANY".into(),
        Some(ms) => ms.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
    }
}

fn auth(r: &Route) -> String {
    match &r.auth {
        None => "-".into(),
        Some(a) if a.scopes.is_empty() => format!("jwt:{}", a.jwt),
        Some(a) => format!("jwt:{} [{}]", a.jwt, a.scopes.join(" ")),
    }
}

fn limit(r: &Route) -> String {
    r.rate_limit.as_ref().map_or("-".into(), |l| {
        format!("{}/{}s by {}", l.requests, l.window_s, l.key)
    })
}

fn cache(r: &Route) -> String {
    r.cache.as_ref().map_or("-".into(), |c| {
        if c.vary.is_empty() {
            format!("{}s", c.ttl_s)
        } else {
            format!("{}s vary {}", c.ttl_s, c.vary.join(","))
        }
    })
}

/// A policy's settings as compact JSON, `-` when absent.
fn json<T: serde::Serialize>(v: Option<&T>) -> String {
    v.map_or("-".into(), |v| serde_json::to_string(v).unwrap_or_default())
}

/// The request policies in effect on a route (its own, else the top level's), in short.
fn policies(file: &RoutesFile, r: &Route) -> String {
    let mut out = Vec::new();
    if let Some(max) = r.max_body_bytes.or(file.max_body_bytes) {
        out.push(format!("body<={max}"));
    }
    let ip = r.ip.as_ref().or(file.ip.as_ref());
    if ip.is_some_and(|i| !i.allow.is_empty() || !i.deny.is_empty()) {
        out.push("ip".to_string());
    }
    let geo = r.geo.as_ref().or(file.geo.as_ref());
    if geo.is_some_and(|g| !g.allow.is_empty() || !g.deny.is_empty()) {
        out.push("geo".to_string());
    }
    let edits = [
        (
            "req-headers",
            r.request_headers.as_ref().or(file.request_headers.as_ref()),
        ),
        (
            "resp-headers",
            r.response_headers
                .as_ref()
                .or(file.response_headers.as_ref()),
        ),
    ];
    for (name, rules) in edits {
        if rules.is_some_and(|h| !h.set.is_empty() || !h.remove.is_empty()) {
            out.push(name.to_string());
        }
    }
    let query = r.query.as_ref().or(file.query.as_ref());
    if query.is_some_and(|q| !q.set.is_empty() || !q.remove.is_empty()) {
        out.push("query".to_string());
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

fn target(r: &Route) -> String {
    match &r.rewrite {
        Some(rw) => format!("{} {}", r.origin, rw),
        None => r.origin.clone(),
    }
}

/// One row per route: id, methods, host, path, origin and upstream path, auth, limit,
/// cache and the request policies in effect.
pub fn table(file: &RoutesFile) -> String {
    let header = [
        "ID", "METHODS", "HOST", "PATH", "UPSTREAM", "AUTH", "LIMIT", "CACHE", "POLICIES",
    ];
    let rows: Vec<[String; 9]> = file
        .routes
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                methods(r),
                r.host.clone().unwrap_or_else(|| "*".into()),
                r.path.clone(),
                target(r),
                auth(r),
                limit(r),
                cache(r),
                policies(file, r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    out
}

/// What a reviewer wants to see on a route change: routes added, removed and changed, field by field.
pub fn diff(old: &RoutesFile, new: &RoutesFile) -> String {
    let old_routes: BTreeMap<&str, &Route> =
        old.routes.iter().map(|r| (r.id.as_str(), r)).collect();
    let new_routes: BTreeMap<&str, &Route> =
        new.routes.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut out = String::new();
    for (id, r) in &new_routes {
        if !old_routes.contains_key(id) {
            let _ = writeln!(
                out,
                "+ route \"{id}\": {} {} -> {}",
                methods(r),
                r.path,
                target(r)
            );
        }
    }
    for (id, r) in &old_routes {
        if !new_routes.contains_key(id) {
            let _ = writeln!(
                out,
                "- route \"{id}\": {} {} -> {}",
                methods(r),
                r.path,
                target(r)
            );
        }
    }
    for (id, new_r) in &new_routes {
        let Some(old_r) = old_routes.get(id) else {
            continue;
        };
        let mut fields: Vec<(&str, String, String)> = vec![
            ("path", old_r.path.clone(), new_r.path.clone()),
            (
                "host",
                old_r.host.clone().unwrap_or("*".into()),
                new_r.host.clone().unwrap_or("*".into()),
            ),
            ("methods", methods(old_r), methods(new_r)),
            ("upstream", target(old_r), target(new_r)),
            ("auth", auth(old_r), auth(new_r)),
            ("rate_limit", limit(old_r), limit(new_r)),
            ("cache", cache(old_r), cache(new_r)),
            (
                "timeout_ms",
                old_r.timeout_ms.map_or("-".into(), |t| t.to_string()),
                new_r.timeout_ms.map_or("-".into(), |t| t.to_string()),
            ),
            (
                "cors",
                old_r
                    .cors
                    .as_ref()
                    .map_or("-".into(), |c| serde_json::to_string(c).unwrap_or_default()),
                new_r
                    .cors
                    .as_ref()
                    .map_or("-".into(), |c| serde_json::to_string(c).unwrap_or_default()),
            ),
        ];
        fields.extend([
            (
                "max_body_bytes",
                json(old_r.max_body_bytes.as_ref()),
                json(new_r.max_body_bytes.as_ref()),
            ),
            ("ip", json(old_r.ip.as_ref()), json(new_r.ip.as_ref())),
            ("geo", json(old_r.geo.as_ref()), json(new_r.geo.as_ref())),
            (
                "request_headers",
                json(old_r.request_headers.as_ref()),
                json(new_r.request_headers.as_ref()),
            ),
            (
                "response_headers",
                json(old_r.response_headers.as_ref()),
                json(new_r.response_headers.as_ref()),
            ),
            (
                "query",
                json(old_r.query.as_ref()),
                json(new_r.query.as_ref()),
            ),
            ("policies", policies(old, old_r), policies(new, new_r)),
        ]);
        for (name, before, after) in fields {
            if before != after {
                let _ = writeln!(out, "~ route \"{id}\": {name}: {before} -> {after}");
            }
        }
    }
    let sections = |f: &RoutesFile| {
        (
            serde_json::to_value(&f.origins).unwrap_or_default(),
            serde_json::to_value(&f.jwt).unwrap_or_default(),
            serde_json::to_value(&f.cors).unwrap_or_default(),
        )
    };
    let (oo, oj, oc) = sections(old);
    let (no, nj, nc) = sections(new);
    for name in old
        .origins
        .keys()
        .chain(new.origins.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (old.origins.get(name), new.origins.get(name)) {
            (None, Some(_)) => {
                let _ = writeln!(out, "+ origin \"{name}\"");
            }
            (Some(_), None) => {
                let _ = writeln!(out, "- origin \"{name}\"");
            }
            _ if oo.get(name) != no.get(name) => {
                let _ = writeln!(
                    out,
                    "~ origin \"{name}\": regions, timeout or circuit breaker changed"
                );
            }
            _ => {}
        }
    }
    for name in old
        .jwt
        .keys()
        .chain(new.jwt.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (old.jwt.get(name), new.jwt.get(name)) {
            (None, Some(_)) => {
                let _ = writeln!(out, "+ jwt \"{name}\"");
            }
            (Some(_), None) => {
                let _ = writeln!(out, "- jwt \"{name}\"");
            }
            _ if oj.get(name) != nj.get(name) => {
                let _ = writeln!(out, "~ jwt \"{name}\": provider settings changed");
            }
            _ => {}
        }
    }
    if oc != nc {
        let _ = writeln!(out, "~ cors: top-level policy changed");
    }
    let top = [
        (
            "max_body_bytes",
            json(old.max_body_bytes.as_ref()),
            json(new.max_body_bytes.as_ref()),
        ),
        ("ip", json(old.ip.as_ref()), json(new.ip.as_ref())),
        ("geo", json(old.geo.as_ref()), json(new.geo.as_ref())),
        (
            "request_headers",
            json(old.request_headers.as_ref()),
            json(new.request_headers.as_ref()),
        ),
        (
            "response_headers",
            json(old.response_headers.as_ref()),
            json(new.response_headers.as_ref()),
        ),
        ("query", json(old.query.as_ref()), json(new.query.as_ref())),
    ];
    for (name, before, after) in top {
        if before != after {
            let _ = writeln!(out, "~ top-level {name}: {before} -> {after}");
        }
    }
    if out.is_empty() {
        out.push_str("no route changes\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    const OLD: &str = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
        "routes": [
          {"id": "keep", "path": "/k", "origin": "o"},
          {"id": "gone", "path": "/g", "methods": ["GET"], "origin": "o"},
          {"id": "change", "path": "/c/{id}", "methods": ["GET"], "origin": "o",
           "rate_limit": {"requests": 10, "window_s": 60}}
        ]}"#;
    const NEW: &str = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}, {"name": "s", "url": "http://s"}]}},
        "routes": [
          {"id": "keep", "path": "/k", "origin": "o"},
          {"id": "change", "path": "/c/{id}", "methods": ["GET", "PUT"], "origin": "o", "rewrite": "/v2/{id}",
           "rate_limit": {"requests": 20, "window_s": 60}, "cache": {"ttl_s": 30}},
          {"id": "added", "path": "/a", "methods": ["POST"], "origin": "o"}
        ]}"#;

    #[test]
    fn diff_names_added_removed_and_changed_fields() {
        let d = diff(&load(OLD).unwrap(), &load(NEW).unwrap());
        assert_eq!(
            d,
            "+ route \"added\": POST /a -> o\n\
             - route \"gone\": GET /g -> o\n\
             ~ route \"change\": methods: GET -> GET,PUT\n\
             ~ route \"change\": upstream: o -> o /v2/{id}\n\
             ~ route \"change\": rate_limit: 10/60s by ip -> 20/60s by ip\n\
             ~ route \"change\": cache: - -> 30s\n\
             ~ origin \"o\": regions, timeout or circuit breaker changed\n"
        );
    }

    #[test]
    fn diff_and_table_show_request_policies() {
        let old = load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
                "ip": {"deny": ["10.0.0.0/8"]},
                "routes": [{"id": "a", "path": "/a/{id}", "origin": "o"},
                           {"id": "b", "path": "/b", "origin": "o", "ip": {}}]}"#,
        )
        .unwrap();
        let new = load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
                "ip": {"deny": ["10.0.0.0/16"]}, "max_body_bytes": 1000,
                "routes": [{"id": "a", "path": "/a/{id}", "origin": "o",
                            "geo": {"allow": ["EU"]}, "query": {"remove": ["debug"]},
                            "request_headers": {"set": {"x-id": "{id}"}},
                            "response_headers": {"remove": ["server"]}},
                           {"id": "b", "path": "/b", "origin": "o", "ip": {}}]}"#,
        )
        .unwrap();
        assert_eq!(
            diff(&old, &new),
            "~ route \"a\": geo: - -> {\"allow\":[\"EU\"]}\n\
             ~ route \"a\": request_headers: - -> {\"set\":{\"x-id\":\"{id}\"}}\n\
             ~ route \"a\": response_headers: - -> {\"remove\":[\"server\"]}\n\
             ~ route \"a\": query: - -> {\"remove\":[\"debug\"]}\n\
             ~ route \"a\": policies: ip -> body<=1000,ip,geo,req-headers,resp-headers,query\n\
             ~ route \"b\": policies: - -> body<=1000\n\
             ~ top-level max_body_bytes: - -> 1000\n\
             ~ top-level ip: {\"deny\":[\"10.0.0.0/8\"]} -> {\"deny\":[\"10.0.0.0/16\"]}\n"
        );
        let t = table(&new);
        assert!(t.lines().next().unwrap().ends_with("POLICIES"), "{t}");
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .ends_with("body<=1000,ip,geo,req-headers,resp-headers,query"),
            "{t}"
        );
        assert!(t.lines().nth(2).unwrap().ends_with("body<=1000"), "{t}");
    }

    #[test]
    fn identical_files_have_no_changes() {
        let f = load(OLD).unwrap();
        assert_eq!(diff(&f, &f), "no route changes\n");
    }

    #[test]
    fn table_lists_every_route() {
        let t = table(&load(NEW).unwrap());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[2].contains("/c/{id}")
                && lines[2].contains("20/60s by ip")
                && lines[2].contains("30s")
        );
    }
}
