//! CORS decisions: preflight answers and the headers of actual responses.
//!
//! A [`CorsPolicy`] is compiled once per isolate from the route's `cors`, or
//! the top-level one when the route has none: origins lower-cased and sorted,
//! header values joined in advance, so that answering allocates nothing
//! except an echoed `Access-Control-Request-Headers`.
//!
//! # Preflights
//!
//! A preflight is an `OPTIONS` request with `Origin` and
//! `Access-Control-Request-Method` ([`is_preflight`]). The gateway answers it
//! itself and never forwards it:
//!
//! * allowed origin: `204` with `access-control-allow-origin` (the request's
//!   origin, or `*` for `origins: ["*"]`), `access-control-allow-methods` (the
//!   configured methods, else the route's, `HEAD` added after `GET`),
//!   `access-control-allow-headers` (the configured list, else the requested
//!   headers echoed after checking each is a header token, lower-cased),
//!   `access-control-max-age` when configured,
//!   `access-control-allow-credentials: true` when configured;
//! * disallowed origin, a requested method that is not a token, or requested
//!   headers that are not tokens (when they would be echoed): `403` without
//!   any `access-control-allow-*` header. A 403 rather than a bare 204 makes
//!   the refusal visible in the browser's network panel and in logs, and
//!   cannot be mistaken for a success by non-browser clients.
//!
//! Both carry `Vary: Origin, Access-Control-Request-Method,
//! Access-Control-Request-Headers`. The requested method is not checked
//! against the allowed ones: the browser does that with
//! `access-control-allow-methods`, and the route answers 405 to the actual
//! request anyway.
//!
//! # Actual responses
//!
//! Every response of a route with a policy, whatever its status (gateway
//! errors included), gets [`CorsPolicy::actual_headers`]: for an allowed
//! origin `access-control-allow-origin`, `access-control-expose-headers` (the
//! configured list, then the headers the gateway itself adds that a page needs,
//! [`GATEWAY_EXPOSED`]) and `access-control-allow-credentials` (when configured); and
//! `Vary: Origin` whenever the answer depends on the origin, that is for every
//! policy except `["*"]`, even when the request had no or a disallowed
//! `Origin` (a shared cache must not hand that answer to another origin).
//! `Vary` must be appended to the upstream's, not replace it: [`append_vary`].
//!
//! On a route with a policy the gateway alone decides the CORS headers: the
//! origin's own `access-control-*` response headers ([`is_cors_header`]) are
//! removed before the policy's are set, so that an origin that allows every
//! origin (or echoes `Origin` with credentials) cannot grant a disallowed one.
//! Routes without a policy pass the origin's CORS headers through.
//!
//! # Origins
//!
//! Compared exactly, ASCII case-insensitively (validation guarantees that
//! configured origins are serialized origins: scheme, host, optional port).
//! `null` matches only `*`. `origins: ["*"]` with `credentials: true` is
//! rejected by validation, since browsers refuse it; should it reach this
//! module anyway, `*` is sent and credentials are not allowed.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::config::validate::is_token;
use crate::config::{Cors, Method, Route};

pub mod phase;

/// `access-control-allow-origin`.
pub const ALLOW_ORIGIN: &str = "access-control-allow-origin";
/// `access-control-allow-methods`.
pub const ALLOW_METHODS: &str = "access-control-allow-methods";
/// `access-control-allow-headers`.
pub const ALLOW_HEADERS: &str = "access-control-allow-headers";
/// `access-control-allow-credentials`.
pub const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";
/// `access-control-expose-headers`.
pub const EXPOSE_HEADERS: &str = "access-control-expose-headers";
/// `access-control-max-age`.
pub const MAX_AGE: &str = "access-control-max-age";
/// `vary`.
pub const VARY: &str = "vary";

/// The response headers the gateway itself adds that a page needs to read: always
/// exposed to allowed origins, besides the policy's own `expose_headers`.
pub const GATEWAY_EXPOSED: [&str; 9] = [
    "x-request-id",
    "www-authenticate",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-quota-limit",
    "x-quota-remaining",
    "x-quota-reset",
];

/// The `Vary` of actual responses whose CORS headers depend on the origin.
pub const VARY_ACTUAL: &str = "Origin";
/// The `Vary` of preflight answers.
pub const VARY_PREFLIGHT: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// A CORS policy compiled for one route.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// `origins` lists `*`.
    any_origin: bool,
    /// Lower-case allowed origins, sorted, without duplicates.
    origins: Box<[Box<str>]>,
    /// `credentials`, unless `any_origin`.
    credentials: bool,
    allow_methods: Option<Box<str>>,
    /// `None`: echo the requested headers.
    allow_headers: Option<Box<str>>,
    expose_headers: Option<Box<str>>,
    max_age: Option<Box<str>>,
}

/// The gateway's answer to a preflight request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight<'a> {
    /// True when the origin (and request) is allowed: status 204 with allow headers.
    pub allowed: bool,
    /// `204` when allowed, else `403`.
    pub status: u16,
    /// Response headers, lower-case names; no body.
    pub headers: Vec<(&'static str, Cow<'a, str>)>,
}

impl CorsPolicy {
    /// Compiles `cors` for a route allowing `route_methods` (pass
    /// `route.methods.as_deref().unwrap_or(&Method::ALL)`), used when `cors`
    /// lists no `methods`.
    pub fn new(cors: &Cors, route_methods: &[Method]) -> CorsPolicy {
        let any_origin = cors.origins.iter().any(|o| o.trim() == "*");
        let mut origins: Vec<Box<str>> = if any_origin {
            Vec::new()
        } else {
            cors.origins
                .iter()
                .map(|o| o.trim().to_ascii_lowercase().into_boxed_str())
                .collect()
        };
        origins.sort_unstable();
        origins.dedup();

        let methods: Vec<Method> = match &cors.methods {
            Some(configured) => configured.clone(),
            None => {
                let mut m = route_methods.to_vec();
                if m.contains(&Method::Get) && !m.contains(&Method::Head) {
                    let at = m
                        .iter()
                        .position(|x| *x == Method::Get)
                        .map_or(m.len(), |i| i + 1);
                    m.insert(at, Method::Head);
                }
                m
            }
        };
        let allow_methods = join(unique(methods.iter().map(|m| m.as_str())));
        let allow_headers = cors
            .headers
            .as_ref()
            .map(|h| join_lower(unique(h.iter().map(|h| h.trim()))).unwrap_or_default());
        let expose_headers = join_lower(unique(
            cors.expose_headers
                .iter()
                .map(|h| h.trim())
                .chain(GATEWAY_EXPOSED),
        ));

        CorsPolicy {
            any_origin,
            origins: origins.into_boxed_slice(),
            credentials: cors.credentials && !any_origin,
            allow_methods,
            allow_headers,
            expose_headers,
            max_age: cors.max_age_s.map(|s| s.to_string().into_boxed_str()),
        }
    }

    /// The policy of `route`: its own `cors`, else `top` (the file's), else none.
    pub fn for_route(top: Option<&Cors>, route: &Route) -> Option<CorsPolicy> {
        let cors = route.cors.as_ref().or(top)?;
        Some(CorsPolicy::new(
            cors,
            route.methods.as_deref().unwrap_or(&Method::ALL),
        ))
    }

    /// Whether a request `Origin` is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.any_origin
            || self
                .origins
                .binary_search_by(|allowed| cmp_lower(allowed, origin))
                .is_ok()
    }

    /// Whether the CORS headers depend on the request's origin, i.e. the
    /// policy is not `["*"]`: then every response carries `Vary: Origin`.
    pub fn varies_by_origin(&self) -> bool {
        !self.any_origin
    }

    /// The answer to an `OPTIONS` request, or `None` when it is not a
    /// preflight (no `Origin` or no `Access-Control-Request-Method`): then
    /// handle it as an ordinary request. See the module documentation.
    pub fn preflight<'a>(
        &'a self,
        origin: Option<&'a str>,
        req_method: Option<&str>,
        req_headers: Option<&str>,
    ) -> Option<Preflight<'a>> {
        let origin = origin?;
        let req_method = req_method?;
        let reject = || Preflight {
            allowed: false,
            status: 403,
            headers: vec![(VARY, Cow::Borrowed(VARY_PREFLIGHT))],
        };
        if !self.allows_origin(origin) || !is_token(req_method.trim()) {
            return Some(reject());
        }
        let allow_headers: Option<Cow<'a, str>> = match &self.allow_headers {
            Some(configured) => (!configured.is_empty()).then_some(Cow::Borrowed(&**configured)),
            None => match req_headers.map(echo_headers) {
                None => None,
                Some(Err(())) => return Some(reject()),
                Some(Ok(echo)) => (!echo.is_empty()).then_some(Cow::Owned(echo)),
            },
        };

        let mut headers = Vec::with_capacity(6);
        headers.push((ALLOW_ORIGIN, Cow::Borrowed(self.allow_origin_value(origin))));
        if let Some(m) = &self.allow_methods {
            headers.push((ALLOW_METHODS, Cow::Borrowed(&**m)));
        }
        if let Some(h) = allow_headers {
            headers.push((ALLOW_HEADERS, h));
        }
        if let Some(age) = &self.max_age {
            headers.push((MAX_AGE, Cow::Borrowed(&**age)));
        }
        if self.credentials {
            headers.push((ALLOW_CREDENTIALS, Cow::Borrowed("true")));
        }
        headers.push((VARY, Cow::Borrowed(VARY_PREFLIGHT)));
        Some(Preflight {
            allowed: true,
            status: 204,
            headers,
        })
    }

    /// The CORS headers of an actual (non-preflight) response, whatever its
    /// status, for a request with this `Origin`. Allocates nothing. Append the
    /// `vary` entry to any existing `Vary` ([`append_vary`]); set the others.
    pub fn actual_headers<'a>(
        &'a self,
        origin: Option<&'a str>,
    ) -> impl Iterator<Item = (&'static str, &'a str)> + 'a {
        let allowed = origin.filter(|o| self.allows_origin(o));
        let [mut allow, mut expose, mut credentials] = [None, None, None];
        if let Some(origin) = allowed {
            allow = Some((ALLOW_ORIGIN, self.allow_origin_value(origin)));
            expose = self.expose_headers.as_deref().map(|h| (EXPOSE_HEADERS, h));
            credentials = self.credentials.then_some((ALLOW_CREDENTIALS, "true"));
        }
        let vary = self.varies_by_origin().then_some((VARY, VARY_ACTUAL));
        [allow, expose, credentials, vary].into_iter().flatten()
    }

    fn allow_origin_value<'a>(&'a self, origin: &'a str) -> &'a str {
        if self.any_origin {
            "*"
        } else {
            origin
        }
    }
}

/// Whether a response header is a CORS response header (`access-control-*`,
/// any case), which the policy alone decides on a route that has one.
pub fn is_cors_header(name: &str) -> bool {
    const PREFIX: &str = "access-control-";
    name.len() >= PREFIX.len()
        && name.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &str, origin: Option<&str>, req_method: Option<&str>) -> bool {
    method == "OPTIONS" && origin.is_some() && req_method.is_some()
}

/// `existing` `Vary` with the comma-separated names of `add` appended, those
/// already present (case-insensitively) left out; `*` absorbs everything.
/// Borrows when nothing changes.
pub fn append_vary<'a>(existing: Option<&'a str>, add: &'a str) -> Cow<'a, str> {
    let existing = match existing.map(str::trim) {
        None | Some("") => return Cow::Borrowed(add),
        Some(e) => e,
    };
    let present = |name: &str| {
        existing
            .split(',')
            .any(|e| e.trim().eq_ignore_ascii_case(name))
    };
    if present("*") {
        return Cow::Borrowed(existing);
    }
    let mut out = Cow::Borrowed(existing);
    for name in add.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !present(name) {
            let s = out.to_mut();
            s.push_str(", ");
            s.push_str(name);
        }
    }
    out
}

/// Checks and normalizes `Access-Control-Request-Headers`: comma-separated
/// header names (empty elements ignored), lower-cased and joined with `, `.
fn echo_headers(requested: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(requested.len());
    for name in requested.split(',').map(|n| n.trim_matches([' ', '\t'])) {
        if name.is_empty() {
            continue;
        }
        if !is_token(name) {
            return Err(());
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.extend(name.chars().map(|c| c.to_ascii_lowercase()));
    }
    Ok(out)
}

/// Compares a lower-case `allowed` with `origin` lower-cased, without allocating.
fn cmp_lower(allowed: &str, origin: &str) -> Ordering {
    allowed
        .bytes()
        .cmp(origin.bytes().map(|b| b.to_ascii_lowercase()))
}

/// Distinct values in first-seen order (ASCII case-insensitive).
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !v.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(v)) {
            out.push(v);
        }
    }
    out
}

/// Values joined with `, `; `None` when there are none.
fn join(values: Vec<&str>) -> Option<Box<str>> {
    (!values.is_empty()).then(|| values.join(", ").into_boxed_str())
}

/// Header names, lower-cased, joined with `, `; `None` when there are none.
fn join_lower(values: Vec<&str>) -> Option<Box<str>> {
    join(values).map(|s| s.to_ascii_lowercase().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: None,
            headers: None,
            expose_headers: vec![],
            credentials: false,
            max_age_s: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn headers<'a>(p: &'a Preflight<'a>) -> Vec<(&'static str, &'a str)> {
        p.headers.iter().map(|(n, v)| (*n, v.as_ref())).collect()
    }

    fn actual<'a>(p: &'a CorsPolicy, origin: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
        p.actual_headers(origin).collect()
    }

    const APP: &str = "https://app.example.com";

    fn list_policy() -> CorsPolicy {
        let mut c = cors(&["https://App.Example.com", "http://localhost:3000"]);
        c.methods = Some(vec![Method::Get, Method::Post, Method::Get]);
        c.headers = Some(strings(&["Authorization", "Content-Type"]));
        c.expose_headers = strings(&["X-Request-Id", "ETag"]);
        c.credentials = true;
        c.max_age_s = Some(600);
        CorsPolicy::new(&c, &[Method::Get])
    }

    #[test]
    fn cors_headers_are_recognized_in_any_case() {
        for name in [
            ALLOW_ORIGIN,
            ALLOW_CREDENTIALS,
            "Access-Control-Allow-Methods",
            "ACCESS-CONTROL-EXPOSE-HEADERS",
            "access-control-max-age",
            "access-control-allow-private-network",
        ] {
            assert!(is_cors_header(name), "{name}");
        }
        for name in [
            "access-control",
            "vary",
            "x-access-control-allow-origin",
            "origin",
        ] {
            assert!(!is_cors_header(name), "{name}");
        }
    }

    #[test]
    fn preflight_from_allowed_origin() {
        let p = list_policy();
        let pf = p
            .preflight(Some(APP), Some("POST"), Some("content-type"))
            .unwrap();
        assert!(pf.allowed);
        assert_eq!(pf.status, 204);
        assert_eq!(
            headers(&pf),
            [
                (ALLOW_ORIGIN, APP),
                (ALLOW_METHODS, "GET, POST"),
                (ALLOW_HEADERS, "authorization, content-type"),
                (MAX_AGE, "600"),
                (ALLOW_CREDENTIALS, "true"),
                (VARY, VARY_PREFLIGHT),
            ]
        );
        // Configured values are borrowed, not copied.
        assert!(pf
            .headers
            .iter()
            .all(|(_, v)| matches!(v, Cow::Borrowed(_))));
    }

    #[test]
    fn requested_method_is_left_to_the_browser() {
        // PUT is not allowed: the browser sees that in allow-methods
        // (method names are case-sensitive and kept upper-case).
        let p = list_policy();
        let pf = p.preflight(Some(APP), Some("PUT"), None).unwrap();
        assert_eq!(pf.status, 204);
        let methods = headers(&pf)
            .iter()
            .find(|(n, _)| *n == ALLOW_METHODS)
            .unwrap()
            .1;
        assert_eq!(methods, "GET, POST");
    }

    #[test]
    fn origin_comparison_is_exact_but_case_insensitive() {
        let p = list_policy();
        assert!(p.allows_origin("https://app.example.com"));
        assert!(p.allows_origin("HTTPS://APP.EXAMPLE.COM"));
        assert!(p.allows_origin("http://localhost:3000"));
        for o in [
            "https://app.example.com/",
            "https://app.example.com:443",
            "http://app.example.com",
            "https://evil-app.example.com",
            "https://app.example.com.evil.com",
            "http://localhost",
            "null",
            "",
        ] {
            assert!(!p.allows_origin(o), "{o}");
        }
        // The request's spelling is echoed.
        let o = "HTTPS://App.example.com";
        assert_eq!(actual(&p, Some(o))[0], (ALLOW_ORIGIN, o));
    }

    #[test]
    fn preflight_from_disallowed_origin_is_refused() {
        let p = list_policy();
        let pf = p
            .preflight(Some("https://evil.com"), Some("GET"), Some("x-a"))
            .unwrap();
        assert!(!pf.allowed);
        assert_eq!(pf.status, 403);
        assert_eq!(headers(&pf), [(VARY, VARY_PREFLIGHT)]);
    }

    #[test]
    fn not_a_preflight() {
        let p = list_policy();
        assert_eq!(p.preflight(None, Some("GET"), None), None);
        assert_eq!(p.preflight(Some(APP), None, None), None);
        assert!(is_preflight("OPTIONS", Some(APP), Some("GET")));
        assert!(!is_preflight("OPTIONS", Some(APP), None));
        assert!(!is_preflight("OPTIONS", None, Some("GET")));
        assert!(!is_preflight("GET", Some(APP), Some("GET")));
    }

    #[test]
    fn requested_headers_are_echoed_after_validation() {
        let p = CorsPolicy::new(&cors(&[APP]), &[Method::Get]);
        let pf = p
            .preflight(
                Some(APP),
                Some("GET"),
                Some("X-Custom , content-type,,authorization"),
            )
            .unwrap();
        assert_eq!(
            headers(&pf)[2],
            (ALLOW_HEADERS, "x-custom, content-type, authorization")
        );
        // Nothing requested, or only empty elements: no allow-headers.
        for rh in [None, Some(""), Some(" , ")] {
            let pf = p.preflight(Some(APP), Some("GET"), rh).unwrap();
            assert!(pf.allowed);
            assert!(
                headers(&pf).iter().all(|(n, _)| *n != ALLOW_HEADERS),
                "{rh:?}"
            );
        }
        // Anything that is not a header name is refused, never echoed.
        for rh in ["x-a\r\nset-cookie: a=b", "x a", "x-a, (b)", "é"] {
            let pf = p.preflight(Some(APP), Some("GET"), Some(rh)).unwrap();
            assert_eq!(pf.status, 403, "{rh:?}");
            assert!(headers(&pf)
                .iter()
                .all(|(n, _)| *n != ALLOW_HEADERS && *n != ALLOW_ORIGIN));
        }
        // A method that is not a token is refused too.
        let pf = p.preflight(Some(APP), Some("GET /"), None).unwrap();
        assert_eq!(pf.status, 403);
        let pf = p.preflight(Some(APP), Some(""), None).unwrap();
        assert_eq!(pf.status, 403);
    }

    #[test]
    fn configured_headers_do_not_echo() {
        let p = list_policy();
        let pf = p
            .preflight(Some(APP), Some("GET"), Some("x-other, x a"))
            .unwrap();
        assert_eq!(pf.status, 204);
        assert_eq!(
            headers(&pf)[2],
            (ALLOW_HEADERS, "authorization, content-type")
        );
    }

    #[test]
    fn methods_default_to_the_route_with_head_after_get() {
        let p = CorsPolicy::new(&cors(&[APP]), &[Method::Post, Method::Get, Method::Delete]);
        let pf = p.preflight(Some(APP), Some("DELETE"), None).unwrap();
        assert_eq!(headers(&pf)[1], (ALLOW_METHODS, "POST, GET, HEAD, DELETE"));
        let all = CorsPolicy::new(&cors(&[APP]), &Method::ALL);
        let pf = all.preflight(Some(APP), Some("PATCH"), None).unwrap();
        assert_eq!(
            headers(&pf)[1],
            (
                ALLOW_METHODS,
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            )
        );
        // No methods at all: no header.
        let none = CorsPolicy::new(&cors(&[APP]), &[]);
        let pf = none.preflight(Some(APP), Some("GET"), None).unwrap();
        assert_eq!(headers(&pf), [(ALLOW_ORIGIN, APP), (VARY, VARY_PREFLIGHT)]);
    }

    #[test]
    fn wildcard_without_credentials() {
        let mut c = cors(&["*"]);
        c.expose_headers = strings(&["X-Request-Id"]);
        let p = CorsPolicy::new(&c, &[Method::Get]);
        assert!(!p.varies_by_origin());
        assert!(p.allows_origin("null"));
        let pf = p
            .preflight(Some("https://any.example"), Some("GET"), Some("x-a"))
            .unwrap();
        assert_eq!(
            headers(&pf),
            [
                (ALLOW_ORIGIN, "*"),
                (ALLOW_METHODS, "GET, HEAD"),
                (ALLOW_HEADERS, "x-a"),
                (VARY, VARY_PREFLIGHT),
            ]
        );
        assert_eq!(
            actual(&p, Some("https://any.example")),
            [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, ALWAYS_EXPOSED)]
        );
        // No Origin: nothing at all, not even Vary.
        assert_eq!(actual(&p, None), []);
    }

    #[test]
    fn wildcard_with_credentials_never_allows_credentials() {
        let mut c = cors(&["*", APP]);
        c.credentials = true;
        let p = CorsPolicy::new(&c, &[Method::Get]);
        assert_eq!(
            actual(&p, Some(APP)),
            [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, ALWAYS_EXPOSED)]
        );
        let pf = p.preflight(Some(APP), Some("GET"), None).unwrap();
        assert!(headers(&pf).iter().all(|(n, _)| *n != ALLOW_CREDENTIALS));
    }

    #[test]
    fn actual_headers_for_allowed_disallowed_and_missing_origins() {
        let p = list_policy();
        assert_eq!(
            actual(&p, Some(APP)),
            [
                (ALLOW_ORIGIN, APP),
                (
                    EXPOSE_HEADERS,
                    "x-request-id, etag, www-authenticate, retry-after, ratelimit-limit, \
                     ratelimit-remaining, ratelimit-reset, x-quota-limit, x-quota-remaining, \
                     x-quota-reset"
                ),
                (ALLOW_CREDENTIALS, "true"),
                (VARY, "Origin"),
            ]
        );
        assert_eq!(actual(&p, Some("https://evil.com")), [(VARY, "Origin")]);
        assert_eq!(actual(&p, None), [(VARY, "Origin")]);
        let plain = CorsPolicy::new(&cors(&[APP]), &[Method::Get]);
        // Without a configured list, the gateway's own headers are still exposed.
        assert_eq!(
            actual(&plain, Some(APP)),
            [
                (ALLOW_ORIGIN, APP),
                (EXPOSE_HEADERS, ALWAYS_EXPOSED),
                (VARY, "Origin")
            ]
        );
        // Configured names are not repeated, whatever their case.
        let mut c = cors(&[APP]);
        c.expose_headers = strings(&["RateLimit-Reset", "X-Trace"]);
        let p = CorsPolicy::new(&c, &[Method::Get]);
        let expose = actual(&p, Some(APP))[1].1;
        assert_eq!(expose.matches("ratelimit-reset").count(), 1, "{expose}");
        assert!(
            expose.starts_with("ratelimit-reset, x-trace, x-request-id"),
            "{expose}"
        );
    }

    /// What an allowed origin is always exposed to, without a configured list.
    const ALWAYS_EXPOSED: &str = "x-request-id, www-authenticate, retry-after, ratelimit-limit, \
        ratelimit-remaining, ratelimit-reset, x-quota-limit, x-quota-remaining, x-quota-reset";

    #[test]
    fn empty_configured_headers_allow_none() {
        let mut c = cors(&[APP]);
        c.headers = Some(vec![]);
        let p = CorsPolicy::new(&c, &[Method::Get]);
        let pf = p.preflight(Some(APP), Some("GET"), Some("x-a")).unwrap();
        assert_eq!(pf.status, 204);
        assert!(headers(&pf).iter().all(|(n, _)| *n != ALLOW_HEADERS));
    }

    #[test]
    fn route_policy_overrides_the_top_level_one() {
        let top = cors(&["https://top.example"]);
        let plain: Route =
            serde_json::from_str(r#"{"id": "a", "path": "/a", "origin": "o", "methods": ["PUT"]}"#)
                .unwrap();
        let own: Route = serde_json::from_str(
            r#"{"id": "b", "path": "/b", "origin": "o", "cors": {"origins": ["https://own.example"]}}"#,
        )
        .unwrap();
        let p = CorsPolicy::for_route(Some(&top), &plain).unwrap();
        assert!(p.allows_origin("https://top.example"));
        let pf = p
            .preflight(Some("https://top.example"), Some("PUT"), None)
            .unwrap();
        assert_eq!(headers(&pf)[1], (ALLOW_METHODS, "PUT"));
        let p = CorsPolicy::for_route(Some(&top), &own).unwrap();
        assert!(p.allows_origin("https://own.example"));
        assert!(!p.allows_origin("https://top.example"));
        assert!(CorsPolicy::for_route(None, &own).is_some());
        assert!(CorsPolicy::for_route(None, &plain).is_none());
    }

    #[test]
    fn vary_is_appended() {
        assert_eq!(append_vary(None, "Origin"), "Origin");
        assert_eq!(append_vary(Some(""), "Origin"), "Origin");
        assert_eq!(
            append_vary(Some("Accept-Encoding"), "Origin"),
            "Accept-Encoding, Origin"
        );
        assert!(matches!(
            append_vary(Some("accept-encoding, origin"), "Origin"),
            Cow::Borrowed(_)
        ));
        assert_eq!(append_vary(Some("*"), "Origin"), "*");
        assert_eq!(
            append_vary(Some("Origin"), VARY_PREFLIGHT),
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );
    }
}
