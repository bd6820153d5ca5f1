//! An OpenAPI 3.0 or 3.1 description (JSON or YAML) as a routes file.
//!
//! One route per operation (operations of one exported route, marked
//! `x-gateway-route`, become one route again), ids from `operationId`, path
//! templates as matchit paths, the first server as the origin, bearer, OAuth 2
//! and OpenID Connect security as `auth` over a jwt provider whose issuer and
//! keys the user fills in, and one JSON Schema per JSON request body. Everything
//! that has no mapping is returned as a note, so the command can report it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::config::{self, Auth, CacheRule, JwtProvider, Method, Origin, RateLimit, Region, Route};
use crate::config::{BodySchema, OriginRef, Problem, RoutesFile, ValidateRule};

/// The origin name used when the description names none.
pub const ORIGIN: &str = "api";
/// The origin URL used when the description has no absolute server URL.
pub const PLACEHOLDER_ORIGIN_URL: &str = "https://origin.example.com";
/// The issuer placeholder of an imported jwt provider.
pub const PLACEHOLDER_ISSUER: &str = "https://issuer.example.com/";
/// The JWK Set URL placeholder of an imported jwt provider.
pub const PLACEHOLDER_JWKS_URL: &str = "https://issuer.example.com/.well-known/jwks.json";

/// The result of an import.
#[derive(Debug)]
pub struct Imported {
    /// The routes file; it passes `config::load`.
    pub file: RoutesFile,
    /// Request-body schemas: (path relative to the routes file, JSON Schema 2020-12).
    pub schemas: Vec<(String, Value)>,
    /// Route id -> the schema path of its request body.
    pub bodies: BTreeMap<String, String>,
    /// What could not be mapped, or was filled with a placeholder.
    pub notes: Vec<String>,
}

/// Parses a description: JSON when it looks like JSON, YAML otherwise.
pub fn parse(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))
    } else {
        let left = std::cell::Cell::new(yaml_budget(trimmed.len()));
        let de = serde_yaml_ng::Deserializer::from_str(trimmed);
        serde::de::DeserializeSeed::deserialize(Bounded(&left), de)
            .map_err(|e| format!("not valid YAML: {e}"))
    }
}

/// How many values a YAML text of `len` bytes may expand to. Every alias (`*a`)
/// copies its anchor's value, so a few KiB of nested aliases would otherwise build
/// hundreds of millions of values (gigabytes) before the import even starts;
/// without aliases a text never holds more values than bytes.
fn yaml_budget(len: usize) -> usize {
    1_000_000 + 16 * len
}

/// A [`Value`] deserialized with at most `left` values in all.
struct Bounded<'a>(&'a std::cell::Cell<usize>);

impl Bounded<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "the document expands to too many values through its aliases",
            )),
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.take()?;
            let v = map.next_value_seed(Bounded(self.0))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A route id made of `[A-Za-z0-9._-]`, at most 64 characters. A name that is
/// already a valid route id is kept as it is (an exported `-home` comes back as
/// `-home`); others are mended, without leading or trailing dashes.
pub fn sanitize_id(raw: &str) -> String {
    if crate::config::validate::is_name(raw) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut last_dash = false;
    for c in raw.chars() {
        let ok = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if ok {
            out.push(c);
            last_dash = c == '-';
        } else if !last_dash && !out.is_empty() {
            out.push('-');
            last_dash = true;
        }
    }
    let out = out.trim_matches('-');
    out.chars()
        .take(64)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A parameter name of letters, digits and `_`.
fn sanitize_param(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "param".into()
    } else {
        s
    }
}

/// Resolves a JSON pointer fragment (`#/components/schemas/Pet`) in the document.
fn resolve_pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = percent_decode(reference.strip_prefix('#')?);
    if fragment.is_empty() {
        return Some(doc);
    }
    doc.pointer(&fragment)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Follows `$ref`s (local ones only) until an object without one; at most 32 hops.
fn deref<'a>(
    doc: &'a Value,
    mut v: &'a Value,
    notes: &mut Vec<String>,
    at: &str,
) -> Option<&'a Value> {
    for _ in 0..32 {
        match v.get("$ref").and_then(Value::as_str) {
            None => return Some(v),
            Some(r) if r.starts_with('#') => match resolve_pointer(doc, r) {
                Some(target) => v = target,
                None => {
                    notes.push(format!("{at}: $ref \"{r}\" points nowhere; skipped"));
                    return None;
                }
            },
            Some(r) => {
                notes.push(format!(
                    "{at}: $ref \"{r}\" is not local to the document (only \"#/...\" references are resolved); skipped"
                ));
                return None;
            }
        }
    }
    notes.push(format!("{at}: $ref chain too long; skipped"));
    None
}

/// The first server as an origin URL, with its variables at their defaults. One
/// pass over the template: a default is not read as a template again (so a default
/// that names another variable cannot make the URL grow exponentially).
fn server_url(server: &Value) -> Option<String> {
    let template = server.get("url")?.as_str()?;
    let vars = server.get("variables").and_then(Value::as_object);
    let mut url = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        url.push_str(&rest[..open]);
        let after = &rest[open..];
        let default = after.find('}').and_then(|close| {
            vars?
                .get(&after[1..close])?
                .get("default")?
                .as_str()
                .map(|d| (d, close))
        });
        match default {
            Some((d, close)) => {
                url.push_str(d);
                rest = &after[close + 1..];
            }
            None => {
                url.push('{');
                rest = &after[1..];
            }
        }
    }
    url.push_str(rest);
    Some(url)
}

fn is_json_media(media: &str) -> bool {
    let base = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    base == "application/json" || (base.starts_with("application/") && base.ends_with("+json"))
}

/// The JSON Schema of an operation's JSON request body, if it has one; what
/// cannot be used (no schema, a type that is not JSON) is noted.
fn request_body(
    doc: &Value,
    op: &Value,
    id: &str,
    at: &str,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let body = deref(doc, op.get("requestBody")?, notes, at)?;
    let content = body.get("content").and_then(Value::as_object);
    let json_media = content.and_then(|c| c.iter().find(|(k, _)| is_json_media(k)));
    match json_media {
        Some((_, media)) => match media.get("schema") {
            Some(schema) => {
                return Some(body_schema(doc, schema, notes, &format!("route \"{id}\"")));
            }
            None => notes.push(format!(
                "route \"{id}\": the JSON request body has no schema; nothing to validate"
            )),
        },
        None => {
            let types: Vec<&str> = content
                .map(|c| c.keys().map(String::as_str).collect())
                .unwrap_or_default();
            notes.push(format!(
                "route \"{id}\": request body of type {} is not JSON; not validated",
                if types.is_empty() {
                    "(none given)".to_string()
                } else {
                    types.join(", ")
                }
            ));
        }
    }
    None
}

/// Turns an OpenAPI schema into a JSON Schema 2020-12 document: component schemas
/// it references (transitively) go to `$defs`, OpenAPI 3.0's `nullable` and
/// boolean `exclusiveMinimum`/`exclusiveMaximum` become their 2020-12 spelling.
pub fn body_schema(doc: &Value, schema: &Value, notes: &mut Vec<String>, at: &str) -> Value {
    let v30 = doc
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3.0"));
    let mut defs: BTreeMap<String, Value> = BTreeMap::new();
    let mut todo = Walk {
        names: Vec::new(),
        inlined: false,
        inline_left: INLINE_BUDGET,
    };
    let mut root = convert(doc, schema, v30, &mut todo, notes, at, 0);
    while let Some(name) = todo.names.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let pointer = format!("/components/schemas/{}", escape_pointer(&name));
        let converted = match doc.pointer(&pointer) {
            Some(s) => convert(doc, s, v30, &mut todo, notes, at, 0),
            None => {
                notes.push(format!(
                    "{at}: schema \"{name}\" is referenced but not defined; left open"
                ));
                json!({})
            }
        };
        defs.insert(name, converted);
    }
    if todo.inline_left == 0 {
        notes.push(format!(
            "{at}: the request body schema inlines more than {INLINE_BUDGET} values through $refs outside components/schemas; the rest is left open"
        ));
    }
    if let Value::Object(obj) = &mut root {
        let mut out = Map::new();
        out.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        for (k, v) in std::mem::take(obj) {
            out.insert(k, v);
        }
        if !defs.is_empty() {
            out.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
        }
        Value::Object(out)
    } else {
        root
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// How many values one request-body schema may copy in through `$ref`s that are
/// inlined (those outside `#/components/schemas/`). Component schemas are converted
/// once each, into `$defs`; an inlined `$ref` is copied at every use, so without a
/// bound a chain of targets that each use the next twice grows exponentially.
const INLINE_BUDGET: usize = 10_000;

/// What a schema conversion carries along.
struct Walk {
    /// Component schemas referenced, still to convert into `$defs`.
    names: Vec<String>,
    /// Whether the value being converted was reached through an inlined `$ref`.
    inlined: bool,
    /// Values that inlined `$ref`s may still copy in.
    inline_left: usize,
}

fn convert(
    doc: &Value,
    v: &Value,
    v30: bool,
    todo: &mut Walk,
    notes: &mut Vec<String>,
    at: &str,
    depth: usize,
) -> Value {
    if depth > 64 {
        return json!({});
    }
    if todo.inlined {
        if todo.inline_left == 0 {
            return json!({});
        }
        todo.inline_left -= 1;
    }
    match v {
        Value::Object(obj) => {
            if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
                let decoded = percent_decode(r);
                if let Some(name) = decoded.strip_prefix("#/components/schemas/") {
                    if !name.contains('/') {
                        let name = unescape_pointer(name);
                        todo.names.push(name.clone());
                        let mut out = Map::new();
                        out.insert(
                            "$ref".into(),
                            json!(format!("#/$defs/{}", escape_pointer(&name))),
                        );
                        // 3.1 allows siblings of $ref; keep them.
                        for (k, val) in obj {
                            if k != "$ref" {
                                out.insert(
                                    k.clone(),
                                    convert(doc, val, v30, todo, notes, at, depth + 1),
                                );
                            }
                        }
                        return Value::Object(out);
                    }
                }
                return match deref(doc, v, notes, at) {
                    Some(target) => {
                        let outer = std::mem::replace(&mut todo.inlined, true);
                        let converted = convert(doc, target, v30, todo, notes, at, depth + 1);
                        todo.inlined = outer;
                        converted
                    }
                    None => json!({}),
                };
            }
            let mut out = Map::new();
            for (k, val) in obj {
                let converted = match k.as_str() {
                    // Maps of schemas.
                    "properties" | "patternProperties" | "$defs" | "definitions"
                    | "dependentSchemas" => match val {
                        Value::Object(m) => Value::Object(
                            m.iter()
                                .map(|(n, s)| {
                                    (n.clone(), convert(doc, s, v30, todo, notes, at, depth + 1))
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    // Literal values, never schemas.
                    "enum" | "const" | "example" | "examples" | "default" | "required"
                    | "discriminator" | "xml" | "externalDocs" => val.clone(),
                    _ => convert(doc, val, v30, todo, notes, at, depth + 1),
                };
                out.insert(k.clone(), converted);
            }
            if v30 {
                if out.remove("nullable") == Some(Value::Bool(true)) {
                    match out.get_mut("type") {
                        Some(Value::String(t)) => {
                            let t = t.clone();
                            out.insert("type".into(), json!([t, "null"]));
                        }
                        Some(_) => {}
                        None => {}
                    }
                    if let Some(Value::Array(values)) = out.get_mut("enum") {
                        if !values.contains(&Value::Null) {
                            values.push(Value::Null);
                        }
                    }
                }
                for (flag, bound) in [
                    ("exclusiveMaximum", "maximum"),
                    ("exclusiveMinimum", "minimum"),
                ] {
                    match out.get(flag) {
                        Some(Value::Bool(true)) => {
                            if let Some(b) = out.remove(bound) {
                                out.insert(flag.into(), b);
                            } else {
                                out.remove(flag);
                            }
                        }
                        Some(Value::Bool(false)) => {
                            out.remove(flag);
                        }
                        _ => {}
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|s| convert(doc, s, v30, todo, notes, at, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a security scheme becomes.
#[derive(Debug, Clone)]
enum SchemeMap {
    /// A jwt provider of this name.
    Jwt(String),
    /// No mapping, with the reason.
    None(String),
}

struct Op<'a> {
    /// OpenAPI path and method.
    path: &'a str,
    method: &'a str,
    op: &'a Value,
    params: Vec<Value>,
}

/// Imports a parsed description.
pub fn import(doc: &Value) -> Result<Imported, String> {
    let version =
        doc.get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| match doc.get("swagger") {
                Some(_) => "this is a Swagger 2.0 description: only OpenAPI 3.0 and 3.1 are read"
                    .to_string(),
                None => "not an OpenAPI description: no \"openapi\" version field".to_string(),
            })?;
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(format!(
            "OpenAPI {version} is not supported: only 3.0 and 3.1 are read"
        ));
    }
    let mut notes: Vec<String> = Vec::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| "the description has no \"paths\"".to_string())?;

    // The origin: the first absolute server URL.
    let servers: Vec<String> = doc
        .get("servers")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(server_url).collect())
        .unwrap_or_default();
    let base = servers
        .iter()
        .find(|u| u.starts_with("https://") || u.starts_with("http://"))
        .cloned();
    let mut server_notes: Vec<String> = Vec::new();
    let origin_url = match &base {
        Some(u) => {
            for other in servers.iter().filter(|s| Some(*s) != base.as_ref()) {
                server_notes.push(format!(
                    "servers: \"{other}\" is not used; origin \"{ORIGIN}\" is \"{}\" (add it as a region or another origin if it serves the same API)",
                    u.trim_end_matches('/')
                ));
            }
            u.trim_end_matches('/').to_string()
        }
        None => {
            server_notes.push(match servers.first() {
                Some(rel) => format!(
                    "servers: \"{rel}\" is not an absolute http(s) URL; origin \"{ORIGIN}\" has the placeholder \"{PLACEHOLDER_ORIGIN_URL}\": fill in its URL"
                ),
                None => format!(
                    "servers: none; origin \"{ORIGIN}\" has the placeholder \"{PLACEHOLDER_ORIGIN_URL}\": fill in its URL"
                ),
            });
            PLACEHOLDER_ORIGIN_URL.to_string()
        }
    };

    // Security schemes.
    let mut schemes: BTreeMap<String, SchemeMap> = BTreeMap::new();
    let mut providers: BTreeMap<String, JwtProvider> = BTreeMap::new();
    if let Some(defs) = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    {
        for (name, scheme) in defs {
            let at = format!("securityScheme \"{name}\"");
            let Some(scheme) = deref(doc, scheme, &mut notes, &at) else {
                continue;
            };
            let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
            let http_scheme = scheme
                .get("scheme")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let mapped = match kind {
                "http" if http_scheme == "bearer" => true,
                "oauth2" | "openIdConnect" => true,
                "apiKey" => {
                    let place = format!(
                        "{} \"{}\"",
                        scheme.get("in").and_then(Value::as_str).unwrap_or("?"),
                        scheme.get("name").and_then(Value::as_str).unwrap_or("?")
                    );
                    schemes.insert(
                        name.clone(),
                        SchemeMap::None(format!(
                            "API key in {place} (\"{name}\") has no mapping to a routes file yet"
                        )),
                    );
                    false
                }
                "http" => {
                    schemes.insert(
                        name.clone(),
                        SchemeMap::None(format!(
                            "HTTP {http_scheme} authentication (\"{name}\") has no mapping"
                        )),
                    );
                    false
                }
                other => {
                    schemes.insert(
                        name.clone(),
                        SchemeMap::None(format!(
                            "security scheme type \"{other}\" (\"{name}\") has no mapping"
                        )),
                    );
                    false
                }
            };
            if !mapped {
                continue;
            }
            let provider = {
                let s = sanitize_id(name);
                if s.is_empty() {
                    "main".to_string()
                } else {
                    s
                }
            };
            let issuer = scheme
                .get("x-gateway-issuer")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    scheme
                        .get("openIdConnectUrl")
                        .and_then(Value::as_str)
                        .and_then(|u| u.strip_suffix(".well-known/openid-configuration"))
                        .map(str::to_string)
                });
            providers.insert(
                provider.clone(),
                JwtProvider {
                    issuer: issuer
                        .clone()
                        .unwrap_or_else(|| PLACEHOLDER_ISSUER.to_string()),
                    audiences: None,
                    jwks_url: Some(PLACEHOLDER_JWKS_URL.to_string()),
                    keys: None,
                    secret_var: None,
                    algorithms: None,
                    leeway_s: config::default_leeway_s(),
                    forward_claims: BTreeMap::new(),
                    typ: None,
                },
            );
            schemes.insert(name.clone(), SchemeMap::Jwt(provider));
        }
    }
    let top_security = doc.get("security");

    // Operations, in document order.
    let mut ops: Vec<Op<'_>> = Vec::new();
    for (path, item) in paths {
        let at = format!("path \"{path}\"");
        let Some(item) = deref(doc, item, &mut notes, &at) else {
            continue;
        };
        let path_params: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| deref(doc, p, &mut notes, &at).cloned())
                    .collect()
            })
            .unwrap_or_default();
        if item.get("servers").is_some() {
            notes.push(format!(
                "{at}: its own servers are not used; it goes to origin \"{ORIGIN}\""
            ));
        }
        for method in OPERATION_KEYS {
            let Some(op) = item.get(method) else { continue };
            if method == "trace" {
                notes.push(format!(
                    "{at}: TRACE is not a method the gateway routes; operation skipped"
                ));
                continue;
            }
            let mut params = path_params.clone();
            if let Some(own) = op.get("parameters").and_then(Value::as_array) {
                for p in own {
                    if let Some(p) = deref(doc, p, &mut notes, &at) {
                        let key = (p.get("name").cloned(), p.get("in").cloned());
                        params.retain(|q| (q.get("name").cloned(), q.get("in").cloned()) != key);
                        params.push(p.clone());
                    }
                }
            }
            ops.push(Op {
                path,
                method,
                op,
                params,
            });
            // Exported documents list routes that share a path and method here.
            if let Some(also) = op.get("x-gateway-also-routes").and_then(Value::as_array) {
                for other in also {
                    let params = other
                        .get("parameters")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    ops.push(Op {
                        path,
                        method,
                        op: other,
                        params,
                    });
                }
            }
        }
    }

    let mut routes: Vec<Route> = Vec::new();
    let mut origins: BTreeSet<String> = BTreeSet::new();
    let mut used_ids: BTreeSet<String> = BTreeSet::new();
    let mut used_providers: BTreeSet<String> = BTreeSet::new();
    // x-gateway-route -> index in routes (one route of several operations).
    let mut grouped: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    let mut schemas: Vec<(String, Value)> = Vec::new();
    // operationIds that are not valid (or unique) route ids: said once, with examples.
    let mut renamed: Vec<String> = Vec::new();

    for Op {
        path,
        method,
        op,
        params,
    } in &ops
    {
        let upper = method.to_ascii_uppercase();
        let at = format!("{upper} {path}");
        let Some(m) = Method::parse(&upper) else {
            continue;
        };
        // The path: OpenAPI templates are matchit templates but for parameter names
        // and catch-alls.
        let catch_alls: BTreeSet<String> = params
            .iter()
            .filter(|p| {
                p.get("in").and_then(Value::as_str) == Some("path")
                    && p.get("x-gateway-catch-all").and_then(Value::as_bool) == Some(true)
            })
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let Some(route_path) = matchit_path(path, &catch_alls, &mut notes, &at) else {
            continue;
        };
        let host = op
            .get("x-gateway-host")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(group) = op.get("x-gateway-route").and_then(Value::as_str) {
            if let Some(&i) = grouped.get(&(group.to_string(), route_path.clone())) {
                if routes[i].host == host {
                    if let Some(ms) = &mut routes[i].methods {
                        if !ms.contains(&m) {
                            ms.push(m);
                        }
                    }
                    // The route's body schema: the first operation of the group that has one.
                    let id = routes[i].id.clone();
                    if !bodies.contains_key(&id) {
                        if let Some(converted) = request_body(doc, op, &id, &at, &mut notes) {
                            let file = format!("schemas/{id}.json");
                            schemas.push((file.clone(), converted));
                            bodies.insert(id.clone(), file.clone());
                            routes[i].validate = Some(ValidateRule {
                                body: Some(BodySchema::Path(file)),
                                query: BTreeMap::new(),
                            });
                        }
                    }
                    continue;
                }
            }
        }

        // A name, or the weighted split an export wrote.
        let origin = match op.get("x-gateway-origin") {
            Some(Value::String(name)) if !name.is_empty() => OriginRef::One(name.clone()),
            Some(v @ Value::Array(_)) => serde_json::from_value(v.clone())
                .unwrap_or_else(|_| OriginRef::One(ORIGIN.to_string())),
            _ => OriginRef::One(ORIGIN.to_string()),
        };
        for name in origin.names() {
            origins.insert(name.to_string());
        }

        // The id.
        let wanted = op
            .get("x-gateway-route")
            .or_else(|| op.get("operationId"))
            .and_then(Value::as_str)
            .map(sanitize_id)
            .filter(|s| !s.is_empty());
        let base = match &wanted {
            Some(id) => id.clone(),
            None => {
                let generated = sanitize_id(
                    &format!("{method}{}", path.replace(['{', '}'], "")).replace('/', "-"),
                );
                let generated = if generated.is_empty() {
                    method.to_string()
                } else {
                    generated
                };
                notes.push(format!(
                    "{at}: no operationId; route id \"{generated}\" made from the method and path"
                ));
                generated
            }
        };
        let mut id = base.clone();
        let mut n = 2;
        while used_ids.contains(&id) {
            let suffix = format!("-{n}");
            let keep = 64usize.saturating_sub(suffix.len()).min(base.len());
            id = format!("{}{suffix}", &base[..keep]);
            n += 1;
        }
        if let Some(raw) = op.get("operationId").and_then(Value::as_str) {
            if raw != id && op.get("x-gateway-route").is_none() {
                renamed.push(format!("\"{raw}\" -> \"{id}\""));
            }
        }
        used_ids.insert(id.clone());

        // Auth.
        let security = op.get("security").or(top_security);
        let auth = security.and_then(|s| map_security(s, &schemes, &mut notes, &id));
        if let Some(jwt) = auth.as_ref().and_then(|a| a.jwt.clone()) {
            used_providers.insert(jwt);
        }
        let auth = auth.map(crate::config::AuthSpec::One);

        // Extensions written by `export`.
        let rate_limit = op.get("x-gateway-rate-limit").and_then(|v| {
            serde_json::from_value::<RateLimit>(v.clone())
                .map_err(|e| {
                    notes.push(format!(
                        "route \"{id}\": x-gateway-rate-limit: {e}; ignored"
                    ))
                })
                .ok()
        });
        let cache = op.get("x-gateway-cache").and_then(|v| {
            serde_json::from_value::<CacheRule>(v.clone())
                .map_err(|e| notes.push(format!("route \"{id}\": x-gateway-cache: {e}; ignored")))
                .ok()
        });

        // The request body.
        if let Some(converted) = request_body(doc, op, &id, &at, &mut notes) {
            // A schema file holds an object (what `gateway check` and the build read):
            // the boolean schemas are written as their object forms.
            let converted = match converted {
                Value::Bool(true) => json!({}),
                Value::Bool(false) => json!({"not": {}}),
                other => other,
            };
            if converted.is_object() {
                let file = format!("schemas/{id}.json");
                schemas.push((file.clone(), converted));
                bodies.insert(id.clone(), file);
            } else {
                notes.push(format!(
                    "route \"{id}\": the JSON request body's schema is not a schema object; nothing to validate"
                ));
            }
        }

        if let Some(group) = op.get("x-gateway-route").and_then(Value::as_str) {
            grouped.insert((group.to_string(), route_path.clone()), routes.len());
        }
        let validate = bodies.get(&id).map(|file| ValidateRule {
            body: Some(BodySchema::Path(file.clone())),
            query: BTreeMap::new(),
        });
        routes.push(Route {
            id,
            path: route_path,
            host,
            methods: Some(vec![m]),
            origin,
            sticky: None,
            websocket: false,
            rewrite: None,
            auth,
            rate_limit,
            cache,
            timeout_ms: None,
            cors: None,
            max_body_bytes: None,
            ip: None,
            geo: None,
            request_headers: None,
            response_headers: None,
            query: None,
            validate,
        });
    }
    if !renamed.is_empty() {
        let shown: Vec<&str> = renamed.iter().take(3).map(String::as_str).collect();
        notes.push(format!(
            "{} operationId{} changed to route ids (unique, 1 to 64 of A-Z a-z 0-9 . _ -), e.g. {}",
            renamed.len(),
            if renamed.len() == 1 { "" } else { "s" },
            shown.join(", ")
        ));
    }
    // A route of every method is a route without a method list.
    for r in &mut routes {
        if let Some(ms) = &mut r.methods {
            ms.sort();
            // GET implies HEAD.
            let all = Method::ALL
                .iter()
                .all(|m| ms.contains(m) || (*m == Method::Head && ms.contains(&Method::Get)));
            if all {
                r.methods = None;
            }
        }
    }
    providers.retain(|name, _| used_providers.contains(name));
    for (name, p) in &providers {
        let what = if p.issuer == PLACEHOLDER_ISSUER {
            "\"issuer\" and \"jwks_url\""
        } else {
            "\"jwks_url\""
        };
        notes.push(format!(
            "jwt \"{name}\": fill in {what} (or \"keys\" or \"secret_var\") of the token issuer"
        ));
    }
    if origins.contains(ORIGIN) {
        notes.append(&mut server_notes);
    }
    let mut origin_map = BTreeMap::new();
    for name in &origins {
        let url = if name == ORIGIN {
            origin_url.clone()
        } else {
            notes.push(format!(
                "origin \"{name}\" has the placeholder \"{PLACEHOLDER_ORIGIN_URL}\": fill in its URL"
            ));
            PLACEHOLDER_ORIGIN_URL.to_string()
        };
        origin_map.insert(
            name.clone(),
            Origin {
                regions: vec![Region {
                    service: None,
                    name: "default".into(),
                    url: Some(url),
                    serves: vec!["*".into()],
                }],
                timeout_ms: config::types::default_timeout_ms(),
                circuit_breaker: None,
                retry_budget_percent: None,
                hedge: None,
            },
        );
    }
    let mut file = RoutesFile {
        schema: None,
        origins: origin_map,
        jwt: providers,
        plans: Default::default(),
        api_keys: None,
        cors: None,
        routes,
        docs: false,
        max_body_bytes: None,
        ip: None,
        geo: None,
        request_headers: None,
        response_headers: None,
        query: None,
        validate: None,
    };

    // A converted schema the validator refuses is not used, and said.
    for r in &mut file.routes {
        let Some(path) = bodies.get(&r.id) else {
            continue;
        };
        let Some((_, schema)) = schemas.iter().find(|(p, _)| p == path) else {
            continue;
        };
        if let Err(e) = config::schema::compile(schema) {
            notes.push(format!(
                "route \"{}\": the request body schema does not compile ({e}); not validated",
                r.id
            ));
            r.validate = None;
            bodies.remove(&r.id);
        }
    }
    // Whatever the routes file refuses (conflicting paths, say) is left out, and said.
    for _ in 0..file.routes.len() + 1 {
        let text = serde_json::to_string(&file).map_err(|e| e.to_string())?;
        match config::load(&text) {
            Ok(_) => {
                bodies.retain(|id, _| file.routes.iter().any(|r| &r.id == id));
                schemas.retain(|(p, _)| bodies.values().any(|b| b == p));
                return Ok(Imported {
                    file,
                    schemas,
                    bodies,
                    notes,
                });
            }
            Err(problems) => {
                let bad: BTreeSet<String> = problems
                    .iter()
                    .filter_map(|p: &Problem| {
                        p.subject
                            .strip_prefix("route \"")
                            .and_then(|s| s.strip_suffix('"'))
                            .map(str::to_string)
                    })
                    .collect();
                if bad.is_empty() {
                    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "the imported routes file is not valid: {}",
                        all.join("; ")
                    ));
                }
                for p in &problems {
                    if p.subject.starts_with("route \"") {
                        notes.push(format!("{p}; route left out"));
                    }
                }
                // A conflict names the later route of the pair: the earlier one stays.
                file.routes.retain(|r| !bad.contains(&r.id));
                if file.routes.is_empty() {
                    return Err("no operation could be imported".into());
                }
            }
        }
    }
    Err("the imported routes file could not be made valid".into())
}

/// An OpenAPI path template as a matchit path; `None` (with a note) when it has none.
fn matchit_path(
    path: &str,
    catch_alls: &BTreeSet<String>,
    notes: &mut Vec<String>,
    at: &str,
) -> Option<String> {
    if !path.starts_with('/') {
        notes.push(format!(
            "{at}: the path does not start with \"/\"; operation skipped"
        ));
        return None;
    }
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            notes.push(format!(
                "{at}: unclosed \"{{\" in the path; operation skipped"
            ));
            return None;
        };
        let name = &rest[start + 1..start + len];
        let clean = sanitize_param(name);
        if clean != name {
            notes.push(format!(
                "{at}: path parameter \"{name}\" is \"{clean}\" in the route (letters, digits and _ only)"
            ));
        }
        let tail = &rest[start + len + 1..];
        if catch_alls.contains(name) && tail.is_empty() && out.ends_with('/') {
            out.push_str(&format!("{{*{clean}}}"));
        } else {
            out.push_str(&format!("{{{clean}}}"));
        }
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// A list of security requirements as `auth`, when one maps.
fn map_security(
    security: &Value,
    schemes: &BTreeMap<String, SchemeMap>,
    notes: &mut Vec<String>,
    id: &str,
) -> Option<Auth> {
    let alternatives = security.as_array()?;
    if alternatives.is_empty() {
        return None;
    }
    if alternatives
        .iter()
        .any(|a| a.as_object().is_some_and(Map::is_empty))
    {
        notes.push(format!(
            "route \"{id}\": its security is optional (an empty requirement): imported without auth"
        ));
        return None;
    }
    let mut chosen: Option<Auth> = None;
    let mut unmapped: Vec<String> = Vec::new();
    for alt in alternatives {
        let Some(req) = alt.as_object() else { continue };
        let mut jwt: Vec<(String, Vec<String>)> = Vec::new();
        let mut ok = true;
        for (name, scopes) in req {
            match schemes.get(name) {
                Some(SchemeMap::Jwt(p)) => jwt.push((
                    p.clone(),
                    scopes
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                )),
                Some(SchemeMap::None(why)) => {
                    unmapped.push(why.clone());
                    ok = false;
                }
                None => {
                    unmapped.push(format!("security scheme \"{name}\" is not defined"));
                    ok = false;
                }
            }
        }
        if ok && jwt.len() == 1 && chosen.is_none() {
            let (provider, scopes) = jwt.remove(0);
            chosen = Some(Auth {
                jwt: Some(provider),
                scopes,
                api_key: None,
            });
        } else if ok && jwt.len() > 1 {
            unmapped.push("a requirement of several token schemes at once".into());
        }
    }
    match &chosen {
        Some(a) if alternatives.len() > 1 => notes.push(format!(
            "route \"{id}\": of {} alternative security requirements, jwt \"{}\" is used",
            alternatives.len(),
            a.jwt.as_deref().unwrap_or_default()
        )),
        Some(_) => {}
        None => {
            unmapped.dedup();
            notes.push(format!(
                "route \"{id}\": imported WITHOUT auth: {}",
                unmapped.join("; ")
            ));
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found while writing the `openapi_import` fuzz target: 2.4 KiB of nested
    // aliases expanded to 27 million values (1.2 GB, 34 s) before the import began.
    #[test]
    fn yaml_aliases_are_bounded() {
        let row = |item: &str| format!("[{}]", vec![item; 300].join(","));
        let bomb = format!(
            "openapi: 3.1.0\npaths: {{}}\nx:\n  a: &a {}\n  b: &b {}\n  c: {}\n",
            row("1"),
            row("*a"),
            row("*b")
        );
        let e = parse(&bomb).unwrap_err();
        assert!(e.contains("too many values through its aliases"), "{e}");
        // Aliases within the budget, every kind of value: as serde_yaml_ng reads them.
        let text = "openapi: 3.0.0\nx: &x {a: [1, -2, 2.5, true, null, ~, 'q'], 200: {b: c}}\ny: [*x, *x]\nz: 18446744073709551615\n";
        assert_eq!(
            parse(text).unwrap(),
            serde_yaml_ng::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn ids_are_sanitized() {
        assert_eq!(sanitize_id("pets/list all"), "pets-list-all");
        assert_eq!(sanitize_id("repos.get"), "repos.get");
        assert_eq!(sanitize_id("///"), "");
        assert_eq!(sanitize_id(&"a".repeat(80)).len(), 64);
        // Valid route ids stay as they are, dashes at either end included.
        assert_eq!(sanitize_id("-tenant-home"), "-tenant-home");
        assert_eq!(sanitize_id("home-"), "home-");
        assert_eq!(sanitize_id("-bad id-"), "bad-id");
    }

    #[test]
    fn paths_become_matchit_paths() {
        let mut notes = vec![];
        let none = BTreeSet::new();
        assert_eq!(
            matchit_path("/pets/{pet-id}/toys", &none, &mut notes, "x").unwrap(),
            "/pets/{pet_id}/toys"
        );
        assert!(notes[0].contains("\"pet-id\" is \"pet_id\""));
        let rest: BTreeSet<String> = ["rest".to_string()].into();
        assert_eq!(
            matchit_path("/files/{rest}", &rest, &mut notes, "x").unwrap(),
            "/files/{*rest}"
        );
        assert_eq!(
            matchit_path("/r.{format}", &none, &mut notes, "x").unwrap(),
            "/r.{format}"
        );
    }

    // Found by the `openapi_import` fuzz target: each default naming the next
    // variable twice doubled the URL per variable (2^40 bytes for 40 of them).
    #[test]
    fn server_variables_are_filled_in_one_pass() {
        let server = json!({"url": "https://{a}.example/{b}/{c}{", "variables": {
            "a": {"default": "{b}{b}"}, "b": {"default": "v1"}}});
        assert_eq!(
            server_url(&server).unwrap(),
            "https://{b}{b}.example/v1/{c}{"
        );
        let mut vars = Map::new();
        for i in 0..40 {
            vars.insert(
                format!("v{i}"),
                json!({"default": format!("{{v{0}}}{{v{0}}}", i + 1)}),
            );
        }
        let server = json!({"url": "https://h/{v0}", "variables": vars});
        assert_eq!(server_url(&server).unwrap(), "https://h/{v1}{v1}");
    }

    // Found by the `openapi_import` fuzz target: inlined `$ref`s (outside
    // components/schemas) that each use the next twice took 2^40 steps.
    #[test]
    fn inlined_refs_are_bounded() {
        let mut x = Map::new();
        for i in 0..40 {
            x.insert(
                format!("r{i}"),
                json!([{"$ref": format!("#/x/r{}", i + 1)}, {"$ref": format!("#/x/r{}", i + 1)}]),
            );
        }
        x.insert("r40".into(), json!({"type": "string"}));
        let doc = json!({"openapi": "3.1.0", "x": x});
        let mut notes = vec![];
        let s = body_schema(&doc, &json!({"$ref": "#/x/r0"}), &mut notes, "t");
        assert!(serde_json::to_string(&s).unwrap().len() < 200_000);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("more than 10000 values"), "{notes:?}");
        // A few inlined references are copied whole, without a note.
        let doc = json!({"openapi": "3.1.0", "x": {"n": {"type": "integer"}}});
        let mut notes = vec![];
        let s = body_schema(
            &doc,
            &json!({"type": "array", "prefixItems": [{"$ref": "#/x/n"}, {"$ref": "#/x/n"}]}),
            &mut notes,
            "t",
        );
        assert_eq!(
            s["prefixItems"],
            json!([{"type": "integer"}, {"type": "integer"}])
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    // Found by the `openapi_import` fuzz target: a body schema of `5` was written
    // as the schema file `5`, which is no JSON Schema.
    #[test]
    fn a_body_schema_that_is_no_schema_is_not_written() {
        let doc = json!({"openapi": "3.1.0", "x": 5, "paths": {
            "/a": {"post": {"operationId": "a", "requestBody": {"content": {
                "application/json": {"schema": 5}}}}},
            "/b": {"post": {"operationId": "b", "requestBody": {"content": {
                "application/json": {"schema": {"$ref": "#/x"}}}}}},
            "/c": {"post": {"operationId": "c", "requestBody": {"content": {
                "application/json": {"schema": true}}}}}}});
        let imported = import(&doc).unwrap();
        assert_eq!(imported.bodies.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(imported.schemas.len(), 1);
        // `true` is written as `{}`: a schema file holds an object.
        assert_eq!(imported.schemas[0].1, json!({}));
        for id in ["a", "b"] {
            assert!(
                imported
                    .notes
                    .iter()
                    .any(|n| n.contains(&format!("route \"{id}\"")) && n.contains("not a schema")),
                "{:?}",
                imported.notes
            );
        }
    }

    // Found by the `openapi_import` fuzz target: the export left out `scope` and
    // `on_error`, so a global limit came back as a per-isolate one.
    #[test]
    fn a_global_rate_limit_survives_export_and_import() {
        let file = config::load(
            r#"{"origins": {"api": {"regions": [{"name": "eu", "url": "https://api.example"}]}},
                "routes": [{"id": "g", "path": "/g", "origin": "api",
                  "rate_limit": {"requests": 5, "window_s": 60, "key": "route", "scope": "global", "on_error": "deny"}},
                  {"id": "i", "path": "/i", "origin": "api", "rate_limit": {"requests": 1, "window_s": 1}}]}"#,
        )
        .unwrap();
        let doc = crate::openapi::export::document(&file, "t", "1");
        assert_eq!(
            doc["paths"]["/i"]["get"]["x-gateway-rate-limit"],
            json!({"requests": 1, "window_s": 1, "key": "ip"})
        );
        let back = import(&doc).unwrap();
        for (a, b) in file.routes.iter().zip(&back.file.routes) {
            assert_eq!(
                serde_json::to_value(&a.rate_limit).unwrap(),
                serde_json::to_value(&b.rate_limit).unwrap(),
                "{}",
                a.id
            );
        }
    }

    #[test]
    fn schemas_move_components_to_defs_and_nullable_to_types() {
        let doc = json!({
            "openapi": "3.0.3",
            "components": {"schemas": {
                "Pet": {"type": "object", "properties": {
                    "name": {"type": "string", "nullable": true},
                    "age": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                    "parent": {"$ref": "#/components/schemas/Pet"},
                    "tag": {"$ref": "#/components/schemas/Tag"}}},
                "Tag": {"type": "string", "enum": ["a"], "nullable": true}
            }}
        });
        let mut notes = vec![];
        let s = body_schema(
            &doc,
            &json!({"$ref": "#/components/schemas/Pet"}),
            &mut notes,
            "t",
        );
        assert_eq!(s["$ref"], "#/$defs/Pet");
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let pet = &s["$defs"]["Pet"];
        assert_eq!(pet["properties"]["name"]["type"], json!(["string", "null"]));
        assert_eq!(pet["properties"]["age"]["exclusiveMinimum"], json!(0));
        assert!(pet["properties"]["age"].get("minimum").is_none());
        assert_eq!(pet["properties"]["parent"]["$ref"], "#/$defs/Pet");
        assert_eq!(s["$defs"]["Tag"]["enum"], json!(["a", null]));
        assert!(notes.is_empty(), "{notes:?}");
    }
}
