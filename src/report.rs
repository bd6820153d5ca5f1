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

fn target(r: &Route) -> String {
    match &r.rewrite {
        Some(rw) => format!("{} {}", r.origin, rw),
        None => r.origin.clone(),
    }
}

/// One row per route: id, methods, host, path, origin and upstream path, auth, limit, cache.
pub fn table(file: &RoutesFile) -> String {
    let header = [
        "ID", "METHODS", "HOST", "PATH", "UPSTREAM", "AUTH", "LIMIT", "CACHE",
    ];
    let rows: Vec<[String; 8]> = file
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
        let fields: [(&str, String, String); 9] = [
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
                let fields = changed_fields(oj.get(name), nj.get(name));
                let _ = writeln!(out, "~ jwt \"{name}\": {} changed", fields.join(", "));
            }
            _ => {}
        }
    }
    if oc != nc {
        let _ = writeln!(out, "~ cors: top-level policy changed");
    }
    if out.is_empty() {
        out.push_str("no route changes\n");
    }
    out
}

/// The members that differ between two JSON objects (`typ`, `audiences`, ...), in name order.
fn changed_fields(old: Option<&serde_json::Value>, new: Option<&serde_json::Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.and_then(serde_json::Value::as_object).unwrap_or(&empty);
    let new = new.and_then(serde_json::Value::as_object).unwrap_or(&empty);
    old.keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
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
    fn diff_names_the_changed_provider_fields() {
        let file = |jwt: &str| {
            load(&format!(
                r#"{{"origins": {{"o": {{"regions": [{{"name": "r", "url": "http://h"}}]}}}},
                    "jwt": {{"main": {jwt}}},
                    "routes": [{{"id": "a", "path": "/a", "origin": "o"}}]}}"#
            ))
            .unwrap()
        };
        let old = file(r#"{"issuer": "i", "secret_var": "S"}"#);
        let new = file(r#"{"issuer": "i", "secret_var": "S", "typ": "at+jwt", "leeway_s": 5}"#);
        assert_eq!(diff(&old, &new), "~ jwt \"main\": leeway_s, typ changed\n");
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
