//! Human-readable views of a routes file: the route table and the changes between two files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use crate::config::{OnError, RateScope, Route, RoutesFile};

fn methods(r: &Route) -> String {
    match &r.methods {
        None => "ANY".into(),
        Some(ms) => ms.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
    }
}

fn auth(r: &Route) -> String {
    let Some(spec) = &r.auth else {
        return "-".into();
    };
    let alternatives: Vec<String> = spec
        .alternatives()
        .iter()
        .map(|a| match (&a.jwt, &a.api_key) {
            (Some(jwt), _) if a.scopes.is_empty() => format!("jwt:{jwt}"),
            (Some(jwt), _) => format!("jwt:{jwt} [{}]", a.scopes.join(" ")),
            (None, Some(k)) if k.plans.is_empty() => "key".into(),
            (None, Some(k)) => format!("key:{}", k.plans.join(",")),
            (None, None) => "?".into(),
        })
        .collect();
    alternatives.join(" | ")
}

fn limit(r: &Route) -> String {
    r.rate_limit.as_ref().map_or("-".into(), |l| {
        let scope = match (l.scope, l.on_error) {
            (RateScope::Isolate, _) => "",
            (RateScope::Global, None | Some(OnError::Allow)) => " global",
            (RateScope::Global, Some(OnError::Deny)) => " global deny-on-error",
        };
        format!("{}/{}s by {}{scope}", l.requests, l.window_s, l.key)
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
        None => r.origin.to_string(),
    }
}

/// The fields of a route that have a column of their own in [`table`].
const COLUMNS: [&str; 10] = [
    "id",
    "methods",
    "host",
    "path",
    "origin",
    "rewrite",
    "auth",
    "rate_limit",
    "cache",
    "cors",
];

/// Every other field a route sets, as `name=json`: new fields appear without
/// anyone listing them here.
fn other(r: &Route) -> String {
    let Ok(Value::Object(fields)) = serde_json::to_value(r) else {
        return "-".into();
    };
    let rest: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !COLUMNS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if rest.is_empty() {
        "-".into()
    } else {
        rest.join(" ")
    }
}

/// One row per route: id, methods, host, path, origin and upstream path, auth,
/// limit, cache, CORS, and every other field the route sets.
pub fn table(file: &RoutesFile) -> String {
    let header = [
        "ID", "METHODS", "HOST", "PATH", "UPSTREAM", "AUTH", "LIMIT", "CACHE", "CORS", "OTHER",
    ];
    let rows: Vec<[String; 10]> = file
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
                if r.cors.is_some() {
                    "own".into()
                } else {
                    "-".into()
                },
                other(r),
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

/// Compact JSON of a value, `-` when absent.
fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Every difference between two JSON values below `path`, as
/// `(dotted.path, before, after)`: objects field by field, anything else whole.
fn changes(
    path: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    out: &mut Vec<(String, String, String)>,
) {
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                changes(&sub, o.get(k), n.get(k), out);
            }
        }
        (o, n) if o != n => out.push((path.to_string(), show(o), show(n))),
        _ => {}
    }
}

/// A route's fields as JSON, by id.
fn routes_by_id(file: &RoutesFile) -> BTreeMap<&str, (&Route, Value)> {
    file.routes
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                (r, serde_json::to_value(r).unwrap_or_default()),
            )
        })
        .collect()
}

/// What a reviewer wants to see on a route change: routes added, removed and
/// changed, field by field, then every other section. Derived from the
/// serialized types, so every field of the file appears.
pub fn diff(old: &RoutesFile, new: &RoutesFile) -> String {
    let old_routes = routes_by_id(old);
    let new_routes = routes_by_id(new);
    let mut out = String::new();
    let summary = |r: &Route| format!("{} {} -> {}", methods(r), r.path, target(r));
    for (id, (r, _)) in &new_routes {
        if !old_routes.contains_key(id) {
            let _ = writeln!(out, "+ route \"{id}\": {}", summary(r));
        }
    }
    for (id, (r, _)) in &old_routes {
        if !new_routes.contains_key(id) {
            let _ = writeln!(out, "- route \"{id}\": {}", summary(r));
        }
    }
    for (id, (_, new_v)) in &new_routes {
        let Some((_, old_v)) = old_routes.get(id) else {
            continue;
        };
        let mut found = Vec::new();
        changes("", Some(old_v), Some(new_v), &mut found);
        for (field, before, after) in found {
            let _ = writeln!(out, "~ route \"{id}\": {field}: {before} -> {after}");
        }
    }
    let sections = |f: &RoutesFile| {
        let mut v = serde_json::to_value(f).unwrap_or_default();
        if let Value::Object(map) = &mut v {
            map.remove("routes");
            map.remove("$schema");
        }
        v
    };
    let mut found = Vec::new();
    changes("", Some(&sections(old)), Some(&sections(new)), &mut found);
    for (field, before, after) in found {
        let _ = writeln!(out, "~ {field}: {before} -> {after}");
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

    #[test]
    fn diff_names_the_docs_switch() {
        let base = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
            "routes": [{"id": "a", "path": "/a", "origin": "o"}]"#;
        let old = load(&format!("{base}}}")).unwrap();
        let new = load(&format!("{base}, \"docs\": true}}")).unwrap();
        assert_eq!(diff(&old, &new), "~ docs: - -> true\n");
    }

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
    fn diff_shows_a_change_of_rate_limit_scope() {
        let file = |rl: &str| {
            format!(
                r#"{{"origins": {{"o": {{"regions": [{{"name": "r", "url": "http://h"}}]}}}},
                   "routes": [{{"id": "l", "path": "/l", "origin": "o", "rate_limit": {rl}}}]}}"#
            )
        };
        let old = load(&file(r#"{"requests": 50, "window_s": 60}"#)).unwrap();
        let global = load(&file(
            r#"{"requests": 50, "window_s": 60, "scope": "global"}"#,
        ))
        .unwrap();
        let deny = load(&file(
            r#"{"requests": 50, "window_s": 60, "scope": "global", "on_error": "deny"}"#,
        ))
        .unwrap();
        assert_eq!(
            diff(&old, &global),
            "~ route \"l\": rate_limit.scope: - -> \"global\"\n"
        );
        assert_eq!(
            diff(&global, &deny),
            "~ route \"l\": rate_limit.on_error: - -> \"deny\"\n"
        );
        assert!(table(&deny).contains("50/60s by ip global deny-on-error"));
    }

    #[test]
    fn diff_names_added_removed_and_changed_fields() {
        let d = diff(&load(OLD).unwrap(), &load(NEW).unwrap());
        assert_eq!(
            d,
            "+ route \"added\": POST /a -> o\n\
             - route \"gone\": GET /g -> o\n\
             ~ route \"change\": cache: - -> {\"ttl_s\":30}\n\
             ~ route \"change\": methods: [\"GET\"] -> [\"GET\",\"PUT\"]\n\
             ~ route \"change\": rate_limit.requests: 10 -> 20\n\
             ~ route \"change\": rewrite: - -> \"/v2/{id}\"\n\
             ~ origins.o.regions: [{\"name\":\"r\",\"serves\":[],\"url\":\"http://h\"}] -> [{\"name\":\"r\",\"serves\":[],\"url\":\"http://h\"},{\"name\":\"s\",\"serves\":[],\"url\":\"http://s\"}]\n"
        );
    }

    #[test]
    fn validate_shows_in_the_table_and_the_diff() {
        let file = |top: &str, v: &str| {
            format!(
                r#"{{"origins": {{"o": {{"regions": [{{"name": "r", "url": "http://h"}}]}}}}, {top}
                   "routes": [{{"id": "v", "path": "/v", "origin": "o", "validate": {v}}}]}}"#
            )
        };
        let old = load(&file("", r#"{"body": {"type": "object"}}"#)).unwrap();
        let new = load(&file(
            r#""validate": {"query": {"t": {"type": "boolean"}}},"#,
            r#"{"body": {"type": "array"}, "query": {"n": {"type": "integer", "required": true}}}"#,
        ))
        .unwrap();
        let t = table(&new);
        assert!(
            t.contains(r#"validate={"body":{"type":"array"},"query":{"n":{"required":true,"type":"integer"}}}"#),
            "{t}"
        );
        let d = diff(&old, &new);
        assert!(
            d.contains(r#"~ route "v": validate.body.type: "object" -> "array""#),
            "{d}"
        );
        assert!(
            d.contains(
                r#"~ route "v": validate.query: - -> {"n":{"required":true,"type":"integer"}}"#
            ),
            "{d}"
        );
        assert!(d.contains("~ validate: - ->"), "{d}");
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

    #[test]
    fn every_field_appears_in_the_diff_and_the_table() {
        let old = load(OLD).unwrap();
        let mut new = old.clone();
        new.routes[0].timeout_ms = Some(500);
        new.cors = Some(serde_json::from_str(r#"{"origins": ["https://a.example"]}"#).unwrap());
        let d = diff(&old, &new);
        assert!(
            d.contains("~ route \"keep\": timeout_ms: - -> 500\n"),
            "{d}"
        );
        assert!(d.contains("~ cors: - -> {"), "{d}");
        let t = table(&new);
        assert!(t.lines().nth(1).unwrap().ends_with("timeout_ms=500"), "{t}");
    }
}
