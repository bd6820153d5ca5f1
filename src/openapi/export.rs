//! A routes file as an OpenAPI 3.1 document.
//!
//! Pure: it reads only the configuration types, so the build script compiles it
//! too (for `GET /__gateway/openapi.json`). The document holds no secrets and no
//! origin URLs: origins appear by name only.
//!
//! Mapping, which `import` reads back:
//! - the route path in matchit syntax becomes an OpenAPI path template (`{id}`
//!   stays, the catch-all `{*rest}` becomes `{rest}` with a path parameter marked
//!   `x-gateway-catch-all: true`; literal `{{`/`}}` become `{`/`}`);
//! - one operation per configured method (GET without HEAD: HEAD is implied and
//!   not listed; no `methods`: every method), each with `x-gateway-route` naming
//!   the route, and `operationId` the route id (suffixed by the method when the
//!   route has several);
//! - `auth` becomes `security` over a bearer scheme per jwt provider;
//! - `host`, `origin`, `rate_limit` and `cache` become `x-gateway-host`,
//!   `x-gateway-origin`, `x-gateway-rate-limit` and `x-gateway-cache`;
//! - `validate`: the body schema (once inlined, as the build and the CLI do)
//!   becomes the `requestBody` of POST, PUT and PATCH operations, a component
//!   schema named by the route id (its `$defs` are components `ROUTE.NAME`, and
//!   its local `$ref`s point there); typed query parameters become `in: query`
//!   parameters.

use serde_json::{json, Map, Value};

use crate::config::{BodySchema, Method, Route, RoutesFile};

/// A body schema's local `$ref` (`#`, `#/$defs/x/...`, `#/properties/...`) as a
/// pointer into the document's components.
fn component_ref(route: &str, r: &str) -> Option<String> {
    let pointer = r.strip_prefix('#')?;
    if let Some(rest) = pointer.strip_prefix("/$defs/") {
        let (name, tail) = rest.split_once('/').map_or((rest, ""), |(n, t)| (n, t));
        let name = name.replace("~1", "/").replace("~0", "~");
        let sep = if tail.is_empty() { "" } else { "/" };
        return Some(format!(
            "#/components/schemas/{}{sep}{tail}",
            component_name(route, Some(&name))
        ));
    }
    Some(format!("#/components/schemas/{route}{pointer}"))
}

/// A component name: `ROUTE` for the body, `ROUTE.DEF` for one of its `$defs`
/// (characters OpenAPI does not allow in a name become `_`).
fn component_name(route: &str, def: Option<&str>) -> String {
    match def {
        None => route.to_string(),
        Some(d) => {
            let d: String = d
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{route}.{d}")
        }
    }
}

/// Rewrites every local `$ref` of a schema to its component.
fn rewrite_refs(route: &str, v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for (k, val) in obj.iter_mut() {
                match (k.as_str(), &*val) {
                    ("$ref" | "$dynamicRef", Value::String(r)) => {
                        if let Some(new) = component_ref(route, r) {
                            *val = Value::String(new);
                        }
                    }
                    _ => rewrite_refs(route, val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_refs(route, i)),
        _ => {}
    }
}

/// The component schemas of a route's body schema: the body, then its `$defs`.
fn body_components(route: &str, schema: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut root = schema.clone();
    root.remove("$schema");
    let defs = root.remove("$defs");
    let mut out = Vec::new();
    if let Some(Value::Object(defs)) = defs {
        for (name, mut def) in defs {
            rewrite_refs(route, &mut def);
            out.push((component_name(route, Some(&name)), def));
        }
    }
    let mut root = Value::Object(root);
    rewrite_refs(route, &mut root);
    out.insert(0, (component_name(route, None), root));
    out
}

/// The title given when the caller has none.
pub const DEFAULT_TITLE: &str = "API";

/// A route path as an OpenAPI path template, and its parameters (name, catch-all).
pub fn openapi_path(path: &str) -> (String, Vec<(String, bool)>) {
    let mut out = String::with_capacity(path.len());
    let mut params = Vec::new();
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            out.push('{');
            rest = &rest[2..];
        } else if rest.starts_with("}}") {
            out.push('}');
            rest = &rest[2..];
        } else if c == '{' {
            let Some(end) = rest.find('}') else {
                out.push_str(rest);
                break;
            };
            let inner = &rest[1..end];
            let (name, catch_all) = match inner.strip_prefix('*') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            out.push('{');
            out.push_str(name);
            out.push('}');
            params.push((name.to_string(), catch_all));
            rest = &rest[end + 1..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    (out, params)
}

/// The methods a route is exported with.
pub fn exported_methods(route: &Route) -> Vec<Method> {
    match &route.methods {
        None => Method::ALL.to_vec(),
        Some(ms) => {
            let mut ms = ms.clone();
            ms.sort();
            ms.dedup();
            ms
        }
    }
}

fn operation(file: &RoutesFile, route: &Route, method: Method, several: bool) -> Value {
    let (_, params) = openapi_path(&route.path);
    let mut op = Map::new();
    let op_id = if several {
        format!("{}-{}", route.id, method.as_str().to_ascii_lowercase())
    } else {
        route.id.clone()
    };
    op.insert("operationId".into(), json!(op_id));
    op.insert("x-gateway-route".into(), json!(route.id));
    op.insert("x-gateway-origin".into(), json!(route.origin));
    if let Some(host) = &route.host {
        op.insert("x-gateway-host".into(), json!(host));
    }
    if !params.is_empty() {
        let ps: Vec<Value> = params
            .iter()
            .map(|(name, catch_all)| {
                let mut p = json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "schema": {"type": "string"},
                });
                if *catch_all {
                    p["description"] = json!("the rest of the path, slashes included");
                    p["x-gateway-catch-all"] = json!(true);
                }
                p
            })
            .collect();
        op.insert("parameters".into(), Value::Array(ps));
    }
    let mut responses = Map::new();
    responses.insert(
        "default".into(),
        json!({"description": "the origin's response"}),
    );
    if let Some(auth) = &route.auth {
        let alternatives: Vec<Value> = auth
            .alternatives()
            .iter()
            .map(|a| match &a.jwt {
                Some(jwt) => json!({ jwt.clone(): a.scopes }),
                None => json!({ API_KEY_SCHEME: [] }),
            })
            .collect();
        op.insert("security".into(), Value::Array(alternatives));
        let what = if auth.api_key().is_some() {
            "the credential (bearer token or API key) is missing or not valid"
        } else {
            "the bearer token is missing or not valid"
        };
        responses.insert("401".into(), json!({ "description": what }));
        if auth.jwts().any(|(_, scopes)| !scopes.is_empty()) || auth.api_key().is_some() {
            responses.insert(
                "403".into(),
                json!({"description": "the token lacks a required scope, or the consumer's plan is not accepted"}),
            );
        }
        if file.plans.values().any(|p| p.quota.is_some()) && auth.api_key().is_some() {
            responses.insert(
                "429".into(),
                json!({"description": "a rate limit or the consumer's quota is used up"}),
            );
        }
    } else if !file.jwt.is_empty() {
        // The document may declare a default elsewhere; this operation needs no token.
        op.insert("security".into(), json!([]));
    }
    if let Some(rl) = &route.rate_limit {
        op.insert(
            "x-gateway-rate-limit".into(),
            // Every field as the routes file writes it (`scope` and `on_error` only
            // when set), so that an import gives the same limit back.
            serde_json::to_value(rl).unwrap_or_else(|_| json!({})),
        );
        responses.insert(
            "429".into(),
            json!({"description": "over the rate limit; retry after `retry-after` seconds"}),
        );
    }
    if let Some(cache) = &route.cache {
        let mut c = json!({"ttl_s": cache.ttl_s});
        if !cache.vary.is_empty() {
            c["vary"] = json!(cache.vary);
        }
        op.insert("x-gateway-cache".into(), c);
    }
    if let Some(rule) = route.validate.as_ref().or(file.validate.as_ref()) {
        let mut ps = op
            .remove("parameters")
            .and_then(|p| p.as_array().cloned())
            .unwrap_or_default();
        for (name, q) in &rule.query {
            let mut schema = json!({"type": q.kind.as_str()});
            if let Some(p) = &q.pattern {
                schema["pattern"] = json!(p);
            }
            ps.push(json!({"name": name, "in": "query", "required": q.required, "schema": schema}));
        }
        if !ps.is_empty() {
            op.insert("parameters".into(), Value::Array(ps));
        }
        let with_body = matches!(method, Method::Post | Method::Put | Method::Patch);
        if let (Some(BodySchema::Inline(_)), true) = (&rule.body, with_body) {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": {"application/json": {"schema": {
                        "$ref": format!("#/components/schemas/{}", component_name(&route.id, None))
                    }}}
                }),
            );
            responses.insert(
                "415".into(),
                json!({"description": "the body is not declared as JSON"}),
            );
        }
        responses.insert(
            "400".into(),
            json!({"description": "the request does not validate; `errors` lists JSON pointers"}),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// The OpenAPI 3.1 document of a routes file.
pub fn document(file: &RoutesFile, title: &str, version: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in &file.routes {
        let (path, _) = openapi_path(&route.path);
        let methods = exported_methods(route);
        // GET implies HEAD: HEAD is listed only when the route does not allow GET.
        let listed: Vec<Method> = methods
            .iter()
            .copied()
            .filter(|m| !(*m == Method::Head && methods.contains(&Method::Get)))
            .collect();
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        for m in &listed {
            let key = m.as_str().to_ascii_lowercase();
            if let Value::Object(item) = item {
                // Two routes on other hosts may share a path and method: OpenAPI has
                // one operation there, the first route's; the others are listed by id.
                match item.get_mut(&key) {
                    Some(existing) => {
                        let op = operation(file, route, *m, listed.len() > 1);
                        if let Some(obj) = existing.as_object_mut() {
                            if let Value::Array(list) = obj
                                .entry("x-gateway-also-routes")
                                .or_insert_with(|| json!([]))
                            {
                                list.push(op);
                            }
                        }
                    }
                    None => {
                        item.insert(key, operation(file, route, *m, listed.len() > 1));
                    }
                }
            }
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
    });
    let mut schemes = Map::new();
    if !file.plans.is_empty() {
        let keys = file.api_keys.clone().unwrap_or_default();
        schemes.insert(
            API_KEY_SCHEME.into(),
            json!({"type": "apiKey", "in": "header", "name": keys.header,
                   "description": "a consumer's API key (gwk_...)"}),
        );
    }
    if !file.jwt.is_empty() {
        let jwt: Map<String, Value> = file
            .jwt
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    json!({
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": format!("a JWT issued by {}", p.issuer),
                        "x-gateway-issuer": p.issuer,
                    }),
                )
            })
            .collect();
        schemes.extend(jwt);
    }
    if !schemes.is_empty() {
        doc["components"] = json!({ "securitySchemes": schemes });
    }
    let mut schemas = Map::new();
    for route in &file.routes {
        if let Some(BodySchema::Inline(schema)) = route
            .validate
            .as_ref()
            .or(file.validate.as_ref())
            .and_then(|v| v.body.as_ref())
        {
            schemas.extend(body_components(&route.id, schema));
        }
    }
    if !schemas.is_empty() {
        if doc.get("components").is_none() {
            doc["components"] = json!({});
        }
        doc["components"]["schemas"] = Value::Object(schemas);
    }
    doc
}

/// The security scheme of API keys in the exported document.
pub const API_KEY_SCHEME: &str = "gatewayApiKey";
