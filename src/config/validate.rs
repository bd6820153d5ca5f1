//! Loading and validating `routes.json`: every problem is reported at once,
//! each naming the origin, provider or route and the field it is about.

#[allow(unused_imports)]
use super::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::path::{parse_path, parse_rewrite};
use super::{Cors, JwtProvider, KeyKind, Method, Origin, OriginRef, Route, RoutesFile};

/// One problem in a routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What the problem is about: `route "get-user"`, `origin "users"`, `jwt "main"`, `file`.
    pub subject: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The fields of the file's top level.
const TOP_LEVEL_FIELDS: [&str; 15] = [
    "$schema",
    "docs",
    "origins",
    "jwt",
    "plans",
    "api_keys",
    "cors",
    "max_body_bytes",
    "ip",
    "geo",
    "request_headers",
    "response_headers",
    "query",
    "validate",
    "routes",
];

/// The prefix of paths the gateway answers itself.
pub const RESERVED_PREFIX: &str = "/__gateway";

/// Whether `id` is a name of the file's kind (`[A-Za-z0-9._-]{1,64}`): route
/// ids, plan names, consumer ids.
pub fn is_name(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A route's `origin` (one, or a weighted split) and its `sticky` key.
fn check_route_origin(
    file: &RoutesFile,
    invalid: &Invalid,
    route: &Route,
    subject: &str,
    problems: &mut Problems,
) {
    let known = |name: &str| file.origins.contains_key(name) || invalid.origins.contains(name);
    match &route.origin {
        OriginRef::One(name) => {
            if !known(name) {
                problems.add(subject, format!("unknown origin \"{name}\""));
            }
        }
        OriginRef::Split(list) => {
            if list.is_empty() {
                problems.add(subject, "origin: a split lists at least one origin");
            }
            let mut seen = BTreeSet::new();
            for w in list {
                if !known(&w.origin) {
                    problems.add(subject, format!("origin: unknown origin \"{}\"", w.origin));
                }
                if !seen.insert(w.origin.as_str()) {
                    problems.add(subject, format!("origin: \"{}\" is listed twice", w.origin));
                }
            }
            let total: u64 = list.iter().map(|w| u64::from(w.weight)).sum();
            if !list.is_empty() && total == 0 {
                problems.add(subject, "origin: the weights add up to 0");
            }
        }
    }
    let Some(sticky) = &route.sticky else {
        return;
    };
    if !matches!(route.origin, OriginRef::Split(_)) {
        problems.add(subject, "sticky is only valid with a split origin (a list)");
    }
    let auth = route.auth.as_ref();
    match sticky {
        KeyKind::Route => problems.add(
            subject,
            "sticky must be ip, sub, consumer or header:NAME (\"route\" is one value for all)",
        ),
        KeyKind::Sub if auth.is_none_or(|a| a.jwts().next().is_none()) => problems.add(
            subject,
            "sticky \"sub\" needs a jwt requirement in the route's auth",
        ),
        KeyKind::Consumer if auth.is_none_or(|a| a.api_key().is_none()) => problems.add(
            subject,
            "sticky \"consumer\" needs an api_key requirement in the route's auth",
        ),
        _ => {}
    }
}

#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, subject: &str, message: impl Into<String>) {
        self.0.push(Problem {
            subject: subject.to_string(),
            message: message.into(),
        });
    }
}

/// Parses and validates a routes file.
pub fn load(text: &str) -> Result<RoutesFile, Vec<Problem>> {
    let mut problems = Problems::default();
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.add("file", format!("not valid JSON: {e}"));
            return Err(problems.0);
        }
    };
    let Value::Object(top) = value else {
        problems.add("file", "must be a JSON object");
        return Err(problems.0);
    };
    for key in top.keys() {
        if !TOP_LEVEL_FIELDS.contains(&key.as_str()) {
            let expected: Vec<String> = TOP_LEVEL_FIELDS
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect();
            problems.add(
                "file",
                format!(
                    "unknown field \"{key}\", expected one of {}",
                    expected.join(", ")
                ),
            );
        }
    }
    let schema = match top.get("$schema") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.add("file", "\"$schema\" must be a string");
            None
        }
    };

    let docs = match top.get("docs") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.add("file", "\"docs\" must be true or false");
            false
        }
    };

    let mut invalid = BTreeSet::new();
    let origins: BTreeMap<String, Origin> =
        section_map(&top, "origins", "origin", true, &mut invalid, &mut problems);
    let mut invalid_jwt = BTreeSet::new();
    let jwt: BTreeMap<String, JwtProvider> =
        section_map(&top, "jwt", "jwt", false, &mut invalid_jwt, &mut problems);
    let mut invalid_plans = BTreeSet::new();
    let plans = section_map(
        &top,
        "plans",
        "plan",
        false,
        &mut invalid_plans,
        &mut problems,
    );
    let api_keys = top
        .get("api_keys")
        .and_then(|v| parse_part(v, "api_keys", &mut problems));
    let cors: Option<Cors> = top
        .get("cors")
        .and_then(|v| parse_part(v, "cors", &mut problems));

    fn part<T: DeserializeOwned>(
        top: &serde_json::Map<String, Value>,
        name: &str,
        problems: &mut Problems,
    ) -> Option<T> {
        top.get(name).and_then(|v| parse_part(v, name, problems))
    }
    let max_body_bytes = part(&top, "max_body_bytes", &mut problems);
    let ip = part(&top, "ip", &mut problems);
    let geo = part(&top, "geo", &mut problems);
    let request_headers = part(&top, "request_headers", &mut problems);
    let response_headers = part(&top, "response_headers", &mut problems);
    let query = part(&top, "query", &mut problems);
    let validate = part(&top, "validate", &mut problems);

    let mut routes = Vec::new();
    let mut routes_ok = true;
    match top.get("routes") {
        None => problems.add("file", "missing field \"routes\""),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let subject = match item.get("id").and_then(Value::as_str) {
                    Some(id) => format!("route \"{id}\""),
                    None => format!("route #{}", i + 1),
                };
                match parse_part::<Route>(item, &subject, &mut problems) {
                    Some(r) => routes.push(r),
                    None => routes_ok = false,
                }
            }
        }
        Some(_) => problems.add("file", "\"routes\" must be an array"),
    }

    let file = RoutesFile {
        schema,
        origins,
        jwt,
        plans,
        api_keys,
        cors,
        max_body_bytes,
        ip,
        geo,
        request_headers,
        response_headers,
        query,
        validate,
        routes,
        docs,
    };
    let invalid = Invalid {
        routes: !routes_ok,
        origins: invalid,
        jwt: invalid_jwt,
        plans: invalid_plans,
    };
    check(&file, &invalid, &mut problems);
    if problems.0.is_empty() {
        Ok(file)
    } else {
        Err(problems.0)
    }
}

/// What is in the file but too broken to check further: references to these names
/// are not reported as unknown, and a file whose routes did not all parse is not
/// reported as having none.
pub(crate) struct Invalid {
    pub(crate) routes: bool,
    pub(crate) origins: BTreeSet<String>,
    pub(crate) jwt: BTreeSet<String>,
    pub(crate) plans: BTreeSet<String>,
}

/// The entries of an object section that parse; the names of the others go to `invalid`.
fn section_map<T: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    field: &str,
    kind: &str,
    required: bool,
    invalid: &mut BTreeSet<String>,
    problems: &mut Problems,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    match top.get(field) {
        None if required => problems.add("file", format!("missing field \"{field}\"")),
        None => {}
        Some(Value::Object(entries)) => {
            for (name, v) in entries {
                let subject = format!("{kind} \"{name}\"");
                match parse_part(v, &subject, problems) {
                    Some(parsed) => {
                        out.insert(name.clone(), parsed);
                    }
                    None => {
                        invalid.insert(name.clone());
                    }
                }
            }
        }
        Some(_) => problems.add("file", format!("\"{field}\" must be an object")),
    }
    out
}

/// Deserializes one part of the file from the parsed tree, without copying it
/// when it is valid. When it is not, every field problem of the part is reported
/// (see [`field_problems`]), each naming its field, and the part is still returned
/// when what remains without the faulty optional fields is valid, so that the
/// semantic checks also run on it.
fn parse_part<T: DeserializeOwned>(v: &Value, subject: &str, problems: &mut Problems) -> Option<T> {
    match T::deserialize(v) {
        Ok(t) => Some(t),
        Err(_) => {
            let (found, rest) = field_problems::<T>(v);
            for message in found {
                problems.add(subject, message);
            }
            rest
        }
    }
}

/// Most field problems collected in one part of the file.
const MAX_FIELD_PROBLEMS: usize = 100;

/// Every field problem of `v` as a `T`: deserialize, note the problem and where it
/// is (`cache.ttl_s: invalid type ...`, `unknown field ...`), remove that field,
/// and again, until the rest deserializes. serde reports a missing field only after
/// reading every other field of its object, so removing a faulty required field
/// hides nothing: its "missing field" is then not reported again, and the object
/// that lost it is dropped in turn. When that object is the part itself or an
/// element of a list, the part yields no value (so that the semantic checks do not
/// report what the removal caused, such as an empty list).
fn field_problems<T: DeserializeOwned>(v: &Value) -> (Vec<String>, Option<T>) {
    let mut rest = v.clone();
    let mut found = Vec::new();
    let mut removed: Vec<Vec<String>> = Vec::new();
    let mut complete = true;
    for _ in 0..MAX_FIELD_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, T>(&rest) {
            Ok(t) => return (found, complete.then_some(t)),
            Err(e) => e,
        };
        let mut at: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let message = error.into_inner().to_string();
        if let Some(field) = quoted_field(&message, "missing field `") {
            let mut missing = at.clone();
            missing.push(field.to_string());
            if removed.contains(&missing) {
                // Caused by a removal: the problem is reported already.
                let in_list = at
                    .last()
                    .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
                complete &= !in_list;
                if at.is_empty() || !remove_at(&mut rest, &at) {
                    return (found, None);
                }
                removed.push(at);
                continue;
            }
        }
        // An unknown field is named by the message: the path is where it is.
        if let Some(field) = quoted_field(&message, "unknown field `") {
            if at.last().map(String::as_str) != Some(field) {
                at.push(field.to_string());
            }
            let place = &at[..at.len() - 1];
            found.push(if place.is_empty() {
                message.clone()
            } else {
                format!("{}: {message}", dotted(place))
            });
        } else if at.is_empty() || message.starts_with(&dotted(&at)) {
            // Messages of the file's own types already name their field.
            found.push(message.clone());
        } else {
            found.push(format!("{}: {message}", dotted(&at)));
        }
        if at.is_empty() || !remove_at(&mut rest, &at) {
            return (found, None);
        }
        removed.push(at);
    }
    (found, None)
}

/// The name between `prefix` (ending in a backquote) and the next backquote.
fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `["regions", "0", "url"]` -> `regions[0].url`.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Removes the member or element at `path`; false when there is none.
fn remove_at(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for part in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(part) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(items) => {
                match part.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match node {
        Value::Object(map) => map.remove(last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// An HTTP token (RFC 9110 5.6.2): what a header name may be.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("\"{url}\" must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{url}\" has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("\"{url}\" must not have a query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("\"{url}\" must not carry credentials"));
    }
    Ok(())
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host \"{host}\" must be a host name or \"*.\" followed by one (no port, no scheme)"
        ))
    }
}

fn check_origin(name: &str, origin: &Origin, problems: &mut Problems) {
    let subject = format!("origin \"{name}\"");
    if origin.regions.is_empty() {
        problems.add(&subject, "regions must list at least one region");
    }
    let mut names = BTreeSet::new();
    for region in &origin.regions {
        if region.name.is_empty() {
            problems.add(&subject, "regions: a region has an empty name");
        } else if !names.insert(region.name.as_str()) {
            problems.add(
                &subject,
                format!("regions: region name \"{}\" is used twice", region.name),
            );
        }
        match (&region.url, &region.service) {
            (Some(url), None) => {
                if let Err(e) = check_base_url(url) {
                    problems.add(&subject, format!("region \"{}\": url {e}", region.name));
                }
            }
            (None, Some(binding)) => {
                let ok = binding
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && binding
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && binding.len() <= 64;
                if !ok {
                    problems.add(
                        &subject,
                        format!("region \"{}\": service \"{binding}\" is not a binding name ([A-Za-z_][A-Za-z0-9_]*)", region.name),
                    );
                }
            }
            (Some(_), Some(_)) => problems.add(
                &subject,
                format!(
                    "region \"{}\": has both url and service; give exactly one",
                    region.name
                ),
            ),
            (None, None) => problems.add(
                &subject,
                format!("region \"{}\": needs url or service", region.name),
            ),
        }
        for code in &region.serves {
            let valid =
                code == "*" || (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()));
            if !valid {
                problems.add(
                    &subject,
                    format!("region \"{}\": serves: \"{code}\" is not a continent code, an upper-case ISO country code or \"*\"", region.name),
                );
            }
        }
    }
    if origin.timeout_ms == 0 {
        problems.add(&subject, "timeout_ms must be at least 1");
    }
    if origin.retry_budget_percent.is_some_and(|p| p > 100) {
        problems.add(&subject, "retry_budget_percent must be 0 to 100");
    }
    if let Some(h) = origin.hedge {
        if h.after_ms == 0 {
            problems.add(&subject, "hedge.after_ms must be at least 1");
        }
        if !(1..=100).contains(&h.budget_percent) {
            problems.add(&subject, "hedge.budget_percent must be 1 to 100");
        }
        if origin.regions.len() < 2 {
            problems.add(
                &subject,
                "hedge needs at least two regions (the hedge goes to the next one)",
            );
        }
    }
    if let Some(cb) = origin.circuit_breaker {
        if cb.failures == 0 {
            problems.add(&subject, "circuit_breaker.failures must be at least 1");
        }
        if cb.cooldown_s == 0 {
            problems.add(&subject, "circuit_breaker.cooldown_s must be at least 1");
        }
    }
}

/// The methods a route answers: its list (GET implying HEAD), or all.
pub fn route_methods(route: &Route) -> BTreeSet<Method> {
    if route.websocket {
        return [Method::Get].into_iter().collect();
    }
    match &route.methods {
        None => Method::ALL.into_iter().collect(),
        Some(list) => {
            let mut set: BTreeSet<Method> = list.iter().copied().collect();
            if set.contains(&Method::Get) {
                set.insert(Method::Head);
            }
            set
        }
    }
}

fn check(file: &RoutesFile, invalid: &Invalid, problems: &mut Problems) {
    for (name, origin) in &file.origins {
        check_origin(name, origin, problems);
    }
    for (name, provider) in &file.jwt {
        check_jwt(name, provider, problems);
    }
    if let Some(cors) = &file.cors {
        check_cors(cors, "cors", problems);
    }
    check_policies(file, None, problems);
    check_consumers(file, problems);

    let mut ids: HashMap<&str, usize> = HashMap::new();
    // The routes whose paths parse: the route table finds their conflicts.
    let mut routable = Vec::with_capacity(file.routes.len());
    for (index, route) in file.routes.iter().enumerate() {
        let subject = format!("route \"{}\"", route.id);
        if route.id.is_empty() {
            problems.add(&format!("route #{}", index + 1), "id must not be empty");
        } else if !route
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            || route.id.len() > 64
        {
            problems.add(
                &subject,
                "id must be 1 to 64 characters from A-Z a-z 0-9 . _ -",
            );
        }
        if ids.insert(route.id.as_str(), index).is_some() {
            problems.add(&subject, "id is used by more than one route");
        }
        check_route_origin(file, invalid, route, &subject, problems);
        if route.websocket {
            if route
                .methods
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| *m != Method::Get))
            {
                problems.add(&subject, "websocket: a WebSocket route allows GET only");
            }
            if route.cache.is_some() {
                problems.add(&subject, "websocket: a WebSocket route cannot be cached");
            }
        }
        if let Some(host) = &route.host {
            if let Err(e) = check_host_pattern(host) {
                problems.add(&subject, e);
            }
        }
        if let Some(methods) = &route.methods {
            if methods.is_empty() {
                problems.add(
                    &subject,
                    "methods must not be empty (leave it out to allow all)",
                );
            }
            let unique: BTreeSet<_> = methods.iter().collect();
            if unique.len() != methods.len() {
                problems.add(&subject, "methods lists a method twice");
            }
        }
        if route.timeout_ms == Some(0) {
            problems.add(&subject, "timeout_ms must be at least 1");
        }
        if let Some(auth) = &route.auth {
            check_auth(file, invalid, auth, &subject, problems);
        }
        if let Some(rl) = &route.rate_limit {
            check_rate_limit(rl, &subject, problems);
            let auth = route.auth.as_ref();
            if rl.key == KeyKind::Sub && auth.is_none_or(|a| a.jwts().next().is_none()) {
                problems.add(
                    &subject,
                    "rate_limit.key \"sub\" needs a jwt requirement in the route's auth",
                );
            }
            if rl.key == KeyKind::Consumer && auth.is_none_or(|a| a.api_key().is_none()) {
                problems.add(
                    &subject,
                    "rate_limit.key \"consumer\" needs an api_key requirement in the route's auth",
                );
            }
        }
        if let Some(cache) = &route.cache {
            if cache.ttl_s == 0 {
                problems.add(&subject, "cache.ttl_s must be at least 1");
            }
            for h in &cache.vary {
                if !is_token(h) {
                    problems.add(
                        &subject,
                        format!("cache.vary: \"{h}\" is not a header name"),
                    );
                }
            }
        }
        if let Some(cors) = &route.cors {
            check_cors(cors, &subject, problems);
        }
        check_policies(file, Some(route), problems);

        let lower_path = route.path.to_ascii_lowercase();
        if lower_path == RESERVED_PREFIX || lower_path.starts_with("/__gateway/") {
            problems.add(
                &subject,
                format!(
                    "path \"{}\" is under /__gateway/, which is reserved for the gateway",
                    route.path
                ),
            );
            continue;
        }
        let template = match parse_path(&route.path) {
            Ok(t) => t,
            Err(e) => {
                problems.add(&subject, format!("path \"{}\" {e}", route.path));
                continue;
            }
        };
        if let Some(rewrite) = &route.rewrite {
            if let Err(e) = parse_rewrite(rewrite, &template.params) {
                problems.add(&subject, format!("rewrite \"{rewrite}\" {e}"));
            }
        }
        routable.push(index);
    }
    let (_, conflicts) =
        crate::route::RouteTable::build_from(routable.iter().map(|&i| (i, &file.routes[i])));
    for c in conflicts {
        let subject = format!("route \"{}\"", file.routes[c.route()].id);
        problems.add(&subject, c.message(&file.routes));
    }
    if !invalid.routes && file.routes.is_empty() {
        problems.add("file", "routes must list at least one route");
    }
}

/// A header value a rule may set: printable, tabs allowed, at most 8 KiB.
pub(crate) fn is_header_value(v: &str) -> bool {
    v.len() <= 8 * 1024 && !v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// The request policies of the top level (`route` = None) or of one route. Templates
/// are checked against each route's parameters, also where the route inherits the
/// top level's rules.
fn check_policies(file: &RoutesFile, route: Option<&Route>, problems: &mut Problems) {
    let subject = match route {
        Some(r) => format!("route \"{}\"", r.id),
        None => "file".to_string(),
    };
    let keys = file.api_keys.clone().unwrap_or_default();
    let consumer_headers = [keys.forward_consumer.as_str(), super::managed::PLAN_HEADER];
    let claims: Vec<&str> = file
        .jwt
        .values()
        .flat_map(|p| p.forward_claims.values())
        .map(String::as_str)
        .chain(
            consumer_headers
                .into_iter()
                .filter(|_| !file.plans.is_empty()),
        )
        .collect();
    // The rules this part of the file declares itself.
    let (max_body_bytes, ip, geo, request_headers, response_headers, query) = match route {
        Some(r) => (
            r.max_body_bytes,
            r.ip.as_ref(),
            r.geo.as_ref(),
            r.request_headers.as_ref(),
            r.response_headers.as_ref(),
            r.query.as_ref(),
        ),
        None => (
            file.max_body_bytes,
            file.ip.as_ref(),
            file.geo.as_ref(),
            file.request_headers.as_ref(),
            file.response_headers.as_ref(),
            file.query.as_ref(),
        ),
    };
    if max_body_bytes == Some(0) {
        problems.add(&subject, "max_body_bytes must be at least 1");
    }
    if let Some(rule) = ip {
        check_ip(rule, &subject, problems);
    }
    if let Some(rule) = geo {
        check_geo(rule, &subject, problems);
    }
    if let Some(rules) = request_headers {
        check_header_rules(rules, "request_headers", &claims, &subject, problems);
    }
    if let Some(rules) = response_headers {
        check_header_rules(rules, "response_headers", &claims, &subject, problems);
    }
    if let Some(rules) = query {
        check_query_rules(rules, &subject, problems);
    }
    let validate = match route {
        Some(r) => r.validate.as_ref(),
        None => file.validate.as_ref(),
    };
    if let Some(rule) = validate {
        check_validate(rule, &subject, problems);
    }
    // Value templates, against this route's parameters.
    let Some(route) = route else { return };
    let Ok(template) = parse_path(&route.path) else {
        return;
    };
    let mut values: Vec<(String, &str, bool)> = Vec::new();
    for (field, top, mine) in [
        (
            "request_headers",
            &file.request_headers,
            &route.request_headers,
        ),
        (
            "response_headers",
            &file.response_headers,
            &route.response_headers,
        ),
    ] {
        if let Some(rules) = mine.as_ref().or(top.as_ref()) {
            for (name, value) in &rules.set {
                values.push((format!("{field}.set \"{name}\""), value, mine.is_none()));
            }
        }
    }
    if let Some(rules) = route.query.as_ref().or(file.query.as_ref()) {
        for (name, value) in &rules.set {
            values.push((
                format!("query.set \"{name}\""),
                value,
                route.query.is_none(),
            ));
        }
    }
    for (what, value, inherited) in values {
        if let Err(e) = super::path::parse_value_template(value, &template.params) {
            let from = if inherited {
                " (from the top level)"
            } else {
                ""
            };
            problems.add(&subject, format!("{what}{from}: \"{value}\" {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(routes: &str) -> String {
        format!(
            r#"{{"origins": {{"users": {{"regions": [{{"name": "eu", "url": "http://127.0.0.1:9000", "serves": ["EU"]}}]}}}},
                 "routes": {routes}}}"#
        )
    }

    fn problems(text: &str) -> Vec<String> {
        load(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn accepts_a_minimal_file() {
        let file = load(&minimal(
            r#"[{"id": "a", "path": "/a", "origin": "users"}]"#,
        ))
        .unwrap();
        assert_eq!(file.routes.len(), 1);
        assert_eq!(file.origins["users"].timeout_ms, 10_000);
    }

    #[test]
    fn names_the_route_and_the_origin() {
        let p = problems(&minimal(
            r#"[{"id": "get-user", "path": "/u/{id}", "origin": "userz"}]"#,
        ));
        assert_eq!(p, vec![r#"route "get-user": unknown origin "userz""#]);
    }

    #[test]
    fn unknown_fields_are_errors_and_all_are_reported() {
        let p = problems(&minimal(
            r#"[{"id": "a", "path": "/a", "origin": "users", "rate_limt": {}},
                {"id": "b", "path": "/b", "origin": "nope"},
                {"id": "c", "path": "/c/{id}", "origin": "users", "rewrite": "/x/{idx}"}]"#,
        ));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with("route \"a\": unknown field `rate_limt`"),
            "{p:?}"
        );
        assert!(
            p[1].contains("route \"b\": unknown origin \"nope\""),
            "{p:?}"
        );
        assert!(
            p[2].contains("route \"c\": rewrite \"/x/{idx}\" uses parameter \"idx\""),
            "{p:?}"
        );
    }

    #[test]
    fn docs_is_a_boolean() {
        let base = r#"{"origins": {"users": {"regions": [{"name": "r", "url": "http://h"}]}},
            "routes": [{"id": "a", "path": "/a", "origin": "users"}]"#;
        assert!(load(&format!("{base}, \"docs\": true}}")).unwrap().docs);
        assert!(!load(&format!("{base}}}")).unwrap().docs);
        let p = load(&format!("{base}, \"docs\": {{\"origins\": true}}}}")).unwrap_err();
        assert_eq!(p[0].to_string(), "file: \"docs\" must be true or false");
    }

    #[test]
    fn conflicting_paths_per_method_and_host() {
        let p = problems(&minimal(
            r#"[{"id": "a", "path": "/u/{id}", "origin": "users", "methods": ["GET"]},
                {"id": "b", "path": "/u/{name}", "origin": "users", "methods": ["POST"]},
                {"id": "c", "path": "/u/{x}", "origin": "users", "methods": ["GET", "PUT"]},
                {"id": "d", "path": "/u/{x}", "origin": "users", "host": "api.example.com"}]"#,
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("route \"c\": path \"/u/{x}\" conflicts with route \"a\" for GET, HEAD"),
            "{p:?}"
        );
    }

    #[test]
    fn reserved_paths_duplicate_ids_bad_urls_and_empty_regions() {
        let text = r#"{"origins": {"o": {"regions": []}, "p": {"regions": [{"name": "x", "url": "ftp://h"}]}},
            "routes": [{"id": "a", "path": "/__gateway/x", "origin": "o"}, {"id": "a", "path": "/b", "origin": "p"}]}"#;
        let p = problems(text);
        assert!(
            p.iter()
                .any(|s| s.starts_with("origin \"o\": regions must list")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|s| s.starts_with("origin \"p\": region \"x\": url")),
            "{p:?}"
        );
        assert!(p.iter().any(|s| s.contains("reserved")), "{p:?}");
        assert!(
            p.iter()
                .any(|s| s == "route \"a\": id is used by more than one route"),
            "{p:?}"
        );
    }

    #[test]
    fn websocket_routes_are_get_only_and_uncached() {
        let p = problems(
            r#"{"origins": {"a": {"regions": [{"name": "x", "url": "https://a"}]}},
                "routes": [
                  {"id": "post", "path": "/1", "origin": "a", "websocket": true, "methods": ["GET", "POST"]},
                  {"id": "cached", "path": "/2", "origin": "a", "websocket": true, "cache": {"ttl_s": 5}},
                  {"id": "ok", "path": "/3", "origin": "a", "websocket": true, "methods": ["GET"]}]}"#,
        );
        for needle in [
            "route \"post\": websocket: a WebSocket route allows GET only",
            "route \"cached\": websocket: a WebSocket route cannot be cached",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:#?}"
            );
        }
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    #[test]
    fn splits_and_sticky_keys_are_checked() {
        let p = problems(
            r#"{"origins": {"a": {"regions": [{"name": "x", "url": "https://a"}]},
                            "b": {"regions": [{"name": "y", "url": "https://b"}]}},
                "routes": [
                  {"id": "unknown", "path": "/1", "origin": [{"origin": "a", "weight": 1}, {"origin": "zz", "weight": 1}]},
                  {"id": "twice", "path": "/2", "origin": [{"origin": "a", "weight": 1}, {"origin": "a", "weight": 2}]},
                  {"id": "zero", "path": "/3", "origin": [{"origin": "a", "weight": 0}, {"origin": "b", "weight": 0}]},
                  {"id": "empty", "path": "/4", "origin": []},
                  {"id": "not-split", "path": "/5", "origin": "a", "sticky": "ip"},
                  {"id": "route-key", "path": "/6", "origin": [{"origin": "a", "weight": 1}], "sticky": "route"},
                  {"id": "sub", "path": "/7", "origin": [{"origin": "a", "weight": 1}], "sticky": "sub"},
                  {"id": "number", "path": "/8", "origin": 5},
                  {"id": "ok", "path": "/9", "origin": [{"origin": "a", "weight": 90}, {"origin": "b", "weight": 10}],
                   "sticky": "header:x-user"}]}"#,
        );
        for needle in [
            "route \"unknown\": origin: unknown origin \"zz\"",
            "route \"twice\": origin: \"a\" is listed twice",
            "route \"zero\": origin: the weights add up to 0",
            "route \"empty\": origin: a split lists at least one origin",
            "route \"not-split\": sticky is only valid with a split origin",
            "route \"route-key\": sticky must be ip, sub, consumer or header:NAME",
            "route \"sub\": sticky \"sub\" needs a jwt requirement",
            "route \"number\": origin must be an origin name or a list",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:#?}"
            );
        }
        assert!(!p.iter().any(|s| s.starts_with("route \"ok\"")), "{p:#?}");
    }

    #[test]
    fn a_region_has_exactly_one_of_url_and_service() {
        let p = problems(
            r#"{"origins": {"o": {"regions": [
                   {"name": "both", "url": "https://h", "service": "USERS"},
                   {"name": "neither"},
                   {"name": "bad", "service": "9lives"},
                   {"name": "dash", "service": "MY-SVC"},
                   {"name": "ok", "service": "USERS_V2"}]}},
                "routes": [{"id": "a", "path": "/a", "origin": "o"}]}"#,
        );
        for needle in [
            "origin \"o\": region \"both\": has both url and service",
            "origin \"o\": region \"neither\": needs url or service",
            "origin \"o\": region \"bad\": service \"9lives\" is not a binding name",
            "origin \"o\": region \"dash\": service \"MY-SVC\" is not a binding name",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:#?}"
            );
        }
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn consumer_rules() {
        let text = r#"{"origins": {"o": {"regions": [{"name": "x", "url": "https://h"}]}},
            "jwt": {"m": {"issuer": "i", "jwks_url": "https://idp/jwks"}},
            "plans": {"free": {"rate_limit": {"requests": 0, "window_s": 60, "on_error": "deny"},
                               "quota": {"requests": 0, "period": "month"}},
                      "bad plan": {},
                      "pro": {"quota": {"requests": 10, "period": "day"}}},
            "api_keys": {"header": "authorization", "forward_consumer": "x-forwarded-for"},
            "request_headers": {"set": {"x-consumer-plan": "gold"}},
            "routes": [
              {"id": "a", "path": "/a", "origin": "o", "auth": {"api_key": {"plans": ["gold"]}}},
              {"id": "b", "path": "/b", "origin": "o", "auth": {"jwt": "m", "api_key": {}}},
              {"id": "c", "path": "/c", "origin": "o", "auth": []},
              {"id": "d", "path": "/d", "origin": "o", "auth": [{"api_key": {}}, {"api_key": {"plans": ["pro"]}}]},
              {"id": "e", "path": "/e", "origin": "o", "auth": [{"jwt": "m"}, {"scopes": ["x"], "api_key": {}}]},
              {"id": "f", "path": "/f", "origin": "o", "auth": {"jwt": "m"},
               "rate_limit": {"requests": 1, "window_s": 1, "key": "consumer"}},
              {"id": "g", "path": "/g", "origin": "o", "auth": [{"jwt": "m"}, {"api_key": {"plans": ["pro"]}}],
               "rate_limit": {"requests": 1, "window_s": 1, "key": "consumer"}},
              {"id": "h", "path": "/h", "origin": "o", "auth": {}}]}"#;
        let p = problems(text);
        for needle in [
            "plan \"free\": rate_limit.requests must be at least 1",
            "plan \"free\": rate_limit.on_error is only valid",
            "plan \"free\": quota.requests must be at least 1",
            "plan \"bad plan\": a plan name is",
            "api_keys: header: \"authorization\" is a header the gateway manages",
            "api_keys: forward_consumer: \"x-forwarded-for\" is a header the gateway manages",
            "file: request_headers.set: \"x-consumer-plan\" is managed by the gateway",
            "route \"a\": auth.api_key.plans: unknown plan \"gold\"",
            "route \"b\": auth: an alternative has either jwt or api_key, not both",
            "route \"c\": auth: the list of alternatives is empty",
            "route \"d\": auth: at most one api_key alternative",
            "route \"e\": auth[1].scopes: only a jwt requirement has scopes",
            "route \"f\": rate_limit.key \"consumer\" needs an api_key requirement",
            "route \"h\": auth: needs jwt or api_key",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:?}"
            );
        }
        assert!(!p.iter().any(|s| s.starts_with("route \"g\"")), "{p:?}");
        let quota_period = problems(
            r#"{"origins": {"o": {"regions": [{"name": "x", "url": "https://h"}]}},
                "plans": {"p": {"quota": {"requests": 1, "period": "week"}}}, "routes": []}"#,
        );
        assert!(
            quota_period
                .iter()
                .any(|s| s.contains("quota.period \"week\" must be \"day\" or \"month\"")),
            "{quota_period:?}"
        );
        let no_plans = problems(
            r#"{"origins": {"o": {"regions": [{"name": "x", "url": "https://h"}]}},
                "api_keys": {},
                "routes": [{"id": "a", "path": "/a", "origin": "o", "auth": {"api_key": {}}}]}"#,
        );
        for needle in [
            "api_keys: api_keys needs plans",
            "route \"a\": auth.api_key: the file has no plans",
        ] {
            assert!(
                no_plans.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {no_plans:?}"
            );
        }
        let good = problems(
            r#"{"origins": {"o": {"regions": [{"name": "x", "url": "https://h"}]}},
                "jwt": {"m": {"issuer": "i", "jwks_url": "https://idp/jwks"}},
                "plans": {"free": {"rate_limit": {"requests": 60, "window_s": 60},
                                   "quota": {"requests": 10000, "period": "month"}}},
                "api_keys": {"header": "x-key", "forward_consumer": "x-who"},
                "routes": [{"id": "a", "path": "/a", "origin": "o", "auth": {"api_key": {"plans": ["free"]}},
                            "rate_limit": {"requests": 5, "window_s": 1, "key": "consumer"}},
                           {"id": "b", "path": "/b", "origin": "o",
                            "auth": [{"jwt": "m", "scopes": ["s"]}, {"api_key": {}}]}]}"#,
        );
        assert!(good.is_empty(), "{good:?}");
    }

    #[test]
    fn jwt_rules() {
        let text = r#"{"origins": {"o": {"regions": [{"name": "x", "url": "https://h"}]}},
            "jwt": {"m": {"issuer": "i", "algorithms": ["HS256"], "keys": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
                          "forward_claims": {"sub": "x-forwarded-for"}},
                    "n": {"issuer": "i"}},
            "routes": [{"id": "a", "path": "/a", "origin": "o", "auth": {"jwt": "zz"},
                        "rate_limit": {"requests": 1, "window_s": 1, "key": "sub"}},
                       {"id": "b", "path": "/b", "origin": "o", "rate_limit": {"requests": 1, "window_s": 1, "key": "sub"}}]}"#;
        let p = problems(text);
        for needle in [
            "jwt \"m\": keys: key #1 is symmetric",
            "jwt \"m\": algorithms: HS256 needs secret_var",
            "jwt \"m\": forward_claims: \"sub\" -> \"x-forwarded-for\"",
            "jwt \"n\": needs a key source",
            "route \"a\": auth: unknown jwt provider \"zz\"",
            "route \"b\": rate_limit.key \"sub\" needs a jwt requirement",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:?}"
            );
        }
    }

    #[test]
    fn a_route_limit_and_a_plan_limit_get_the_same_checks() {
        let text = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://o.test", "serves": ["*"]}]}},
            "plans": {"free": {"rate_limit": {"requests": 0, "window_s": 0, "on_error": "deny"}}},
            "routes": [{"id": "lim", "path": "/a", "origin": "o",
                        "rate_limit": {"requests": 0, "window_s": 0, "on_error": "deny"}}]}"#;
        let problems: Vec<String> = load(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        for subject in ["route \"lim\"", "plan \"free\""] {
            for message in [
                "rate_limit.requests must be at least 1",
                "rate_limit.window_s must be at least 1",
                "rate_limit.on_error is only valid with rate_limit.scope \"global\"",
            ] {
                let line = format!("{subject}: {message}");
                assert!(problems.contains(&line), "{line} not in {problems:#?}");
            }
        }
    }

    #[test]
    fn rate_limit_scope_and_on_error_are_checked() {
        let file = |rl: &str| {
            format!(
                r#"{{"origins": {{"o": {{"regions": [{{"name": "r", "url": "http://o.test", "serves": ["*"]}}]}}}},
                   "routes": [{{"id": "lim", "path": "/a", "origin": "o", "rate_limit": {rl}}}]}}"#
            )
        };
        let problems = |rl: &str| -> Vec<String> {
            match load(&file(rl)) {
                Ok(_) => vec![],
                Err(ps) => ps.iter().map(ToString::to_string).collect(),
            }
        };
        assert_eq!(
            problems(r#"{"requests": 1, "window_s": 1, "scope": "planet"}"#),
            vec!["route \"lim\": rate_limit.scope \"planet\" must be \"isolate\" or \"global\""]
        );
        assert_eq!(
            problems(r#"{"requests": 1, "window_s": 1, "on_error": "deny"}"#),
            vec![
                "route \"lim\": rate_limit.on_error is only valid with rate_limit.scope \"global\""
            ]
        );
        assert_eq!(
            problems(r#"{"requests": 1, "window_s": 1, "scope": "isolate", "on_error": "allow"}"#),
            vec![
                "route \"lim\": rate_limit.on_error is only valid with rate_limit.scope \"global\""
            ]
        );
        assert_eq!(
            problems(r#"{"requests": 1, "window_s": 1, "scope": "global", "on_error": "maybe"}"#),
            vec!["route \"lim\": rate_limit.on_error \"maybe\" must be \"allow\" or \"deny\""]
        );
        assert!(problems(
            r#"{"requests": 1, "window_s": 1, "scope": "global", "on_error": "deny"}"#
        )
        .is_empty());
        assert!(problems(r#"{"requests": 1, "window_s": 1, "scope": "global"}"#).is_empty());
        assert!(problems(r#"{"requests": 1, "window_s": 1, "scope": "isolate"}"#).is_empty());
    }

    #[test]
    fn every_problem_of_a_part_is_reported_with_its_field() {
        let p = problems(&minimal(
            r#"[{"id": "a", "path": "/a/{id}", "origin": "userz", "rate_limt": {}, "timeout_ms": "5",
                 "cache": {"ttl_s": "60", "vary": ["x"], "tll": 1}, "rewrite": "/x/{idx}",
                 "methods": ["GET", "FETCH"]},
                {"id": "b", "path": 7, "origin": "users", "rate_limit": {"requests": -1, "window_s": 1}},
                {"id": "c", "path": "/c", "origin": "users"}]"#,
        ));
        for needle in [
            "route \"a\": unknown field `rate_limt`",
            "route \"a\": timeout_ms: invalid type: string \"5\"",
            "route \"a\": cache.ttl_s: invalid type: string \"60\"",
            "route \"a\": cache: unknown field `tll`",
            "route \"a\": methods[1]: unknown variant `FETCH`",
            // The semantic checks ran on what parsed.
            "route \"a\": unknown origin \"userz\"",
            "route \"a\": rewrite \"/x/{idx}\" uses parameter \"idx\"",
            "route \"b\": path: invalid type: integer `7`",
            "route \"b\": rate_limit.requests: invalid value: integer `-1`",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:#?}"
            );
        }
        // Nothing is reported twice, and a removed required field is not "missing".
        assert_eq!(p.len(), 9, "{p:#?}");
        assert!(!p.iter().any(|s| s.contains("missing field")), "{p:#?}");
        assert!(!p.iter().any(|s| s.contains("route \"c\"")), "{p:#?}");
    }

    #[test]
    fn origins_and_providers_report_every_field_too() {
        let text = r#"{"origins": {"o": {"regions": [{"name": "x", "url": 5, "serve": ["EU"]}], "timeout_ms": -3},
                       "p": {"regions": [{"name": "y", "url": "ftp://h"}], "circuit_breaker": {"failures": 1}}},
            "jwt": {"m": {"issuer": "i", "secret_var": "S", "typ": "JWT", "leeway": 5}},
            "cors": {"origins": "*", "credential": true},
            "routes": [{"id": "a", "path": "/a", "origin": "o", "auth": {"jwt": "m"}}],
            "extra": 1}"#;
        let p = problems(text);
        for needle in [
            "origin \"o\": regions[0].url: invalid type: integer `5`",
            "origin \"o\": regions[0]: unknown field `serve`",
            "origin \"o\": timeout_ms: invalid value: integer `-3`",
            "origin \"p\": circuit_breaker: missing field `cooldown_s`",
            "origin \"p\": region \"y\": url \"ftp://h\" must be http or https",
            "jwt \"m\": typ: unknown variant `JWT`, expected `at+jwt`",
            "jwt \"m\": unknown field `leeway`",
            "cors: origins: invalid type: string \"*\"",
            "cors: unknown field `credential`",
            "file: unknown field \"extra\"",
            // The faulty url is set aside, so the region has none left.
            "origin \"o\": region \"x\": needs url or service",
        ] {
            assert!(
                p.iter().any(|s| s.starts_with(needle)),
                "missing {needle}: {p:#?}"
            );
        }
        assert_eq!(p.len(), 11, "{p:#?}");
    }

    #[test]
    fn field_paths_are_dotted() {
        assert_eq!(
            dotted(&["regions".into(), "0".into(), "url".into()]),
            "regions[0].url"
        );
        assert_eq!(dotted(&["cache".into()]), "cache");
        assert_eq!(
            quoted_field("unknown field `a`, expected", "unknown field `"),
            Some("a")
        );
        assert_eq!(quoted_field("missing field `id`", "unknown field `"), None);
    }

    #[test]
    fn syntax_errors_are_one_problem() {
        let p = problems("{\"origins\": ");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("file: not valid JSON"));
    }

    fn with_top(top: &str, routes: &str) -> String {
        format!(
            r#"{{"origins": {{"users": {{"regions": [{{"name": "eu", "url": "http://127.0.0.1:9000"}}]}}}},
                 "jwt": {{"main": {{"issuer": "i", "secret_var": "S", "forward_claims": {{"sub": "x-user-id"}}}}}},
                 {top}
                 "routes": {routes}}}"#
        )
    }

    #[test]
    fn validate_problems_are_named() {
        let p = problems(&with_top(
            r#""validate": {"body": "/etc/schema.json", "query": {"": {}}},"#,
            r#"[{"id": "a", "path": "/a", "origin": "users",
                 "validate": {"body": {"type": "strnig"}, "query": {"n": {"type": "int"}}}},
                {"id": "b", "path": "/b", "origin": "users",
                 "validate": {"body": "", "query": {"q": {"pattern": "a("}}, "extra": 1}},
                {"id": "c", "path": "/c", "origin": "users",
                 "validate": {"body": "http://example.com/s.json", "query": {"x": {"pattern": "^x"}}}},
                {"id": "d", "path": "/d", "origin": "users", "validate": {}}]"#,
        ));
        let want = [
            r#"route "a": validate.query.n.type: unknown variant `int`, expected one of `integer`, `number`, `boolean`, `string`"#,
            r#"route "b": validate: unknown field `extra`, expected `body` or `query`"#,
            r#"file: validate.body "/etc/schema.json": must be a path relative to the routes file"#,
            r#"file: validate.query: a parameter name must not be empty"#,
            // Inline schemas and patterns are compiled: the validator's own words follow.
            r#"route "a": validate.body: not a valid JSON Schema: "#,
            r#"route "b": validate.body: the schema path must not be empty"#,
            r#"route "b": validate.query "q": pattern "a(" is not an ECMA-262 regular expression ("#,
            r#"route "c": validate.body "http://example.com/s.json": must be a path relative to the routes file"#,
        ];
        assert_eq!(p.len(), want.len(), "{p:#?}");
        for (got, w) in p.iter().zip(want) {
            assert!(got.starts_with(w), "{w}\n{p:#?}");
        }
        assert!(p[4].contains("at '/type'"), "{p:#?}");
    }

    #[test]
    fn request_policies_are_accepted_at_both_levels() {
        let text = with_top(
            r#""max_body_bytes": 1000, "ip": {"deny": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]},
               "geo": {"allow": ["EU", "US", "T1"]},
               "request_headers": {"set": {"x-api-version": "2"}, "remove": ["cookie"]},
               "response_headers": {"remove": ["server"]}, "query": {"remove": ["debug"]},"#,
            r#"[{"id": "a", "path": "/a/{id}", "origin": "users", "max_body_bytes": 10,
                 "ip": {}, "request_headers": {"set": {"x-id": "{id}", "x-json": "{{\"id\": {id}}}"}},
                 "query": {"set": {"user": "{id}"}}}]"#,
        );
        let file = load(&text).unwrap();
        assert_eq!(file.max_body_bytes, Some(1000));
        assert_eq!(file.routes[0].max_body_bytes, Some(10));
    }

    #[test]
    fn every_request_policy_problem_is_named() {
        let p = problems(&with_top(
            r#""max_body_bytes": 0, "ip": {"allow": ["10.0.0.1/8", "nope"]},
               "geo": {"deny": ["de", "EUR"]},
               "request_headers": {"set": {"x-forwarded-for": "1.2.3.4", "x-a": "{id}"}},"#,
            r#"[{"id": "a", "path": "/a/{name}", "origin": "users"},
                {"id": "b", "path": "/b", "origin": "users", "max_body_bytes": 0,
                 "ip": {"deny": ["::1/200"]}, "geo": {"allow": ["??"]},
                 "request_headers": {"set": {"x_user_id": "forged", "bad name": "v", "x-v": "a\u0001b", "x-p": "{nope}"},
                                     "remove": ["x-request-id", "Traceparent", "x-v"]},
                 "response_headers": {"set": {"access-control-allow-origin": "*", "x-cache": "HIT", "x-s": "{id"},
                                      "remove": ["ratelimit-remaining", "server-timing", "transfer-encoding"]},
                 "query": {"set": {"": "x", "q": "{nope}"}, "remove": ["q"]}}]"#,
        ));
        let expected = [
            r#"file: max_body_bytes must be at least 1"#,
            r#"file: ip.allow: "10.0.0.1/8" has bits set past its /8 prefix (the network is "10.0.0.0/8")"#,
            r#"file: ip.allow: "nope" is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an IP address"#,
            r#"file: geo.deny: "de" is not a continent code (AF AN AS EU NA OC SA) or an upper-case ISO 3166 country code"#,
            r#"file: geo.deny: "EUR" is not a continent code (AF AN AS EU NA OC SA) or an upper-case ISO 3166 country code"#,
            r#"file: request_headers.set: "x-forwarded-for" is managed by the gateway and cannot be set or removed"#,
            r#"route "a": request_headers.set "x-a" (from the top level): "{id}" uses parameter "id""#,
            r#"route "b": max_body_bytes must be at least 1"#,
            r#"route "b": ip.deny: "::1/200" is not a CIDR"#,
            r#"route "b": geo.allow: "??" is not a continent code"#,
            r#"route "b": request_headers.set: "bad name" is not a header name"#,
            r#"route "b": request_headers.set: "x_user_id" is managed by the gateway"#,
            r#"route "b": request_headers.remove: "x-request-id" is managed by the gateway"#,
            r#"route "b": request_headers.remove: "Traceparent" is managed by the gateway"#,
            r#"route "b": request_headers: "x-v" is named twice"#,
            r#"route "b": request_headers.set "x-v": the value must be printable text"#,
            r#"route "b": response_headers.set: "access-control-allow-origin" is managed"#,
            r#"route "b": response_headers.set: "x-cache" is managed"#,
            r#"route "b": response_headers.remove: "ratelimit-remaining" is managed"#,
            r#"route "b": response_headers.remove: "server-timing" is managed"#,
            r#"route "b": response_headers.remove: "transfer-encoding" is managed"#,
            r#"route "b": query.set: a parameter name must not be empty"#,
            r#"route "b": query: "q" is named twice"#,
            r#"route "b": request_headers.set "x-p": "{nope}" uses parameter "nope" that the path does not define"#,
            r#"route "b": response_headers.set "x-s": "{id" unclosed"#,
            r#"route "b": query.set "q": "{nope}" uses parameter "nope""#,
        ];
        for e in expected {
            assert!(p.iter().any(|p| p.starts_with(e)), "missing {e}\nin {p:#?}");
        }
        // The top level's request_headers are checked once against route "a" (which
        // inherits them) and not against route "b" (which has its own).
        assert_eq!(p.len(), expected.len(), "{p:#?}");
    }

    #[test]
    fn request_policy_types_are_checked() {
        let p = problems(&with_top(
            r#""ip": ["10.0.0.0/8"], "max_body_bytes": -1,"#,
            r#"[{"id": "a", "path": "/a", "origin": "users", "geo": {"allow": ["EU"], "block": []}}]"#,
        ));
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("max_body_bytes: invalid value"), "{p:#?}");
        assert!(p[1].starts_with("ip: [0]: invalid type"), "{p:#?}");
        assert!(
            p[2].starts_with("route \"a\": geo: unknown field `block`"),
            "{p:#?}"
        );
    }
}
