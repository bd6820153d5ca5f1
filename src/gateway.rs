//! The compiled gateway: everything derived from the routes file, built once per isolate.

use crate::config::path::{parse_path, parse_rewrite, RewritePart};
use crate::config::{self, Method, RoutesFile};
use crate::http::headers::GATEWAY_OWNED_REQUEST;
use crate::policy::auth::phase::RouteAuth;
use crate::policy::auth::Provider;
use crate::policy::cache::CachePolicy;
use crate::policy::consumer::phase::{Consumers, KeyRule, PlanPolicy, PlanRt, PLAN_HEADER};
use crate::policy::cors::CorsPolicy;
use crate::policy::geo::GeoPolicy;
use crate::policy::headers::HeaderPolicy;
use crate::policy::ip::IpPolicy;
use crate::policy::query::QueryPolicy;
use crate::policy::ratelimit::phase::RouteLimit;
use crate::policy::validate::ValidatePolicy;
use crate::policy::Policy;
use crate::route::{Match, RouteTable};
use crate::upstream::region::Regions;
use crate::upstream::split::Split;

use std::sync::OnceLock;

/// The routes file embedded at build time, in its prepared form ([`config::prepared`]).
pub const EMBEDDED_ROUTES: &str = include_str!(concat!(env!("OUT_DIR"), "/routes.prepared"));

/// The same file as JSON (schemas inlined), which tests compare it with.
#[cfg(test)]
pub const EMBEDDED_ROUTES_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/routes.json"));

/// `GET /__gateway/docs` and `GET /__gateway/openapi.json`, generated at build
/// time from the embedded file; empty unless it has `"docs": true`.
pub const EMBEDDED_DOCS_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/docs.html"));
pub const EMBEDDED_OPENAPI: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The pages `"docs": true` serves.
#[derive(Debug, Clone)]
pub struct DocPages {
    pub html: std::borrow::Cow<'static, str>,
    pub openapi: std::borrow::Cow<'static, str>,
}

/// The build version reported by the health endpoint.
pub const VERSION: &str = env!("GATEWAY_BUILD_VERSION");

/// One region of an origin, ready to build URLs from.
#[derive(Debug)]
pub struct RegionRt {
    pub name: String,
    /// The base URL without a trailing slash: the upstream path is appended to it.
    /// For a service binding, `https://<binding, lower case>.service`.
    pub base: String,
    /// The service binding requests to this region go through.
    pub service: Option<String>,
}

/// An origin, compiled.
#[derive(Debug)]
pub struct OriginRt {
    pub name: String,
    pub regions: Vec<RegionRt>,
    /// Region choice by the caller's country and continent.
    pub choice: Regions,
    pub timeout_ms: u64,
    /// Failovers within this percentage of the origin's requests (10 s window).
    pub retry_budget_percent: Option<u32>,
    pub hedge: Option<config::Hedge>,
}

/// A route, compiled.
#[derive(Debug)]
pub struct RouteRt {
    pub id: String,
    /// The configured path template, for logs.
    pub path: String,
    /// The origin, or the first of a split.
    pub origin: usize,
    /// A weighted split over origins, with its sticky key.
    pub split: Option<(Split, Option<config::KeyKind>)>,
    pub rewrite: Option<Vec<RewritePart>>,
    /// The route's own `timeout_ms`; else the origin's.
    pub timeout_ms: Option<u64>,
    pub methods: Vec<Method>,
    /// The route's policies, in the order they see a request.
    pub chain: Vec<Policy>,
}

/// The request policies a route has, each its own or the top level's:
/// `(response_headers, [ip, geo, max_body_bytes])` and `[validate, request_headers,
/// query]`, in chain order.
fn request_policies(
    file: &RoutesFile,
    r: &config::Route,
    params: &[String],
) -> Result<(Vec<Policy>, Vec<Policy>), String> {
    let err = |field: &'static str| move |e: String| format!("route \"{}\": {field}: {e}", r.id);
    let mut before = Vec::new();
    let mut upstream = Vec::new();
    if let Some(rules) = r
        .response_headers
        .as_ref()
        .or(file.response_headers.as_ref())
    {
        if let Some(p) = HeaderPolicy::new(rules, params).map_err(err("response_headers"))? {
            before.push(Policy::ResponseHeaders(p));
        }
    }
    if let Some(rule) = r.ip.as_ref().or(file.ip.as_ref()) {
        if let Some(p) = IpPolicy::new(rule).map_err(err("ip"))? {
            before.push(Policy::Ip(p));
        }
    }
    if let Some(p) = r
        .geo
        .as_ref()
        .or(file.geo.as_ref())
        .and_then(GeoPolicy::new)
    {
        before.push(Policy::Geo(p));
    }
    // A validated body is read into memory: such a route always has a limit.
    let validate = r.validate.as_ref().or(file.validate.as_ref());
    let validates_body = validate.is_some_and(|v| v.body.is_some());
    let max = r.max_body_bytes.or(file.max_body_bytes);
    let max = max.or(validates_body.then_some(crate::policy::body_limit::DEFAULT_VALIDATED_MAX));
    if let Some(max) = max {
        before.push(Policy::BodyLimit(max));
    }
    // After auth and limits (the start of the upstream part), so that only
    // admitted requests cost a validation.
    if let Some(rule) = validate {
        let max = max.unwrap_or(crate::policy::body_limit::DEFAULT_VALIDATED_MAX);
        if let Some(p) = ValidatePolicy::new(rule, max).map_err(err("validate"))? {
            upstream.push(Policy::Validate(Box::new(p)));
        }
    }
    if let Some(rules) = r.request_headers.as_ref().or(file.request_headers.as_ref()) {
        if let Some(p) = HeaderPolicy::new(rules, params).map_err(err("request_headers"))? {
            upstream.push(Policy::RequestHeaders(p));
        }
    }
    if let Some(rules) = r.query.as_ref().or(file.query.as_ref()) {
        if let Some(p) = QueryPolicy::new(rules, params).map_err(err("query"))? {
            upstream.push(Policy::Query(p));
        }
    }
    Ok((before, upstream))
}

impl RouteRt {
    /// The route's CORS policy (its own, or the top-level one).
    pub fn cors(&self) -> Option<&CorsPolicy> {
        self.chain.iter().find_map(|p| match p {
            Policy::Cors(c) => Some(c),
            _ => None,
        })
    }

    /// Whether the route is a WebSocket route.
    pub fn websocket(&self) -> bool {
        matches!(self.chain.first(), Some(Policy::WebSocket(_)))
    }

    /// The route's `max_body_bytes`.
    pub fn max_body_bytes(&self) -> Option<u64> {
        self.chain.iter().find_map(|p| match p {
            Policy::BodyLimit(max) => Some(*max),
            _ => None,
        })
    }

    /// The route's token requirement.
    pub fn auth(&self) -> Option<&RouteAuth> {
        self.chain.iter().find_map(|p| match p {
            Policy::Auth(a) => Some(a),
            _ => None,
        })
    }

    /// The route's cache policy.
    pub fn cache(&self) -> Option<&CachePolicy> {
        self.chain.iter().find_map(|p| match p {
            Policy::Cache(c) => Some(c),
            _ => None,
        })
    }

    /// The upstream path: the rewrite template over the matched parameters, or the
    /// request path (already free of dot segments). `None` when the filled template
    /// has a dot segment, which the upstream URL parser would resolve: parameters
    /// that are harmless alone can spell one when a template glues them together
    /// (`/{a}{b}` with `%2` and `e%2e`).
    pub fn upstream_path<'a>(
        &self,
        request_path: &'a str,
        params: &[&str],
    ) -> Option<std::borrow::Cow<'a, str>> {
        match &self.rewrite {
            None => Some(std::borrow::Cow::Borrowed(request_path)),
            Some(parts) => {
                let mut out = String::with_capacity(request_path.len() + 16);
                for part in parts {
                    match part {
                        RewritePart::Literal(s) => out.push_str(s),
                        RewritePart::Param(i) => {
                            out.push_str(params.get(*i).copied().unwrap_or(""))
                        }
                    }
                }
                let dot = out.split('/').any(crate::http::path::is_dot_segment);
                (!dot).then_some(std::borrow::Cow::Owned(out))
            }
        }
    }
}

/// Everything the request pipeline reads; immutable once built.
#[derive(Debug)]
pub struct Gateway {
    /// The routes file. In a gateway started from the prepared form
    /// ([`Gateway::from_prepared`]) it holds the top level only and `routes` is
    /// empty: a route is read with [`Gateway::route`].
    pub file: RoutesFile,
    pub table: RouteTable,
    /// Route `i` of the table, compiled at start-up or on its first request.
    routes: Vec<LazyRoute>,
    pub origins: Vec<OriginRt>,
    /// Lower-cased request headers removed from every incoming request besides the
    /// hop-by-hop ones: those the gateway sets itself and the `forward_claims`
    /// headers of every provider, so none can be forged.
    pub dropped_request_headers: Vec<String>,
    /// Token providers in `file.jwt` order; one that could not be built (its
    /// secret is missing, say) holds the reason and fails its routes with 503.
    pub providers: Vec<Result<Provider, String>>,
    /// Plans and API key settings, when the file has `plans`.
    pub consumers: Option<Consumers>,
    /// The top-level CORS policy, for answers that match no route.
    pub cors: Option<CorsPolicy>,
    /// The `GATEWAY_ADMIN_TOKEN` secret, which allows cache purges.
    pub admin_token: Option<String>,
    /// What `/__gateway/docs` and `/__gateway/openapi.json` serve, when the file
    /// has `"docs": true` and the pages were given (see [`Gateway::with_embedded_docs`]).
    pub docs: Option<DocPages>,
}

/// One route: compiled, or its JSON in the prepared form until a request first
/// matches it. An isolate answers from a few of a file's routes; it compiles those.
#[derive(Debug)]
struct LazyRoute {
    json: Option<&'static str>,
    compiled: OnceLock<Result<RouteRt, String>>,
}

/// Where HMAC secrets come from: the name of a Worker secret or variable -> its value.
pub type Secrets<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Gateway {
    /// Parses, validates and compiles a routes file.
    pub fn from_json(text: &str, secrets: Secrets<'_>) -> Result<Gateway, Vec<String>> {
        let file = config::load(text)
            .map_err(|ps| ps.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        Gateway::compile(file, secrets).map_err(|e| vec![e])
    }

    /// Starts from the prepared form the build embedded ([`EMBEDDED_ROUTES`],
    /// see [`config::prepared`]). The build validated the file and refused to
    /// embed an invalid one, so nothing is validated here: the top level is
    /// parsed and compiled, the route table indexes every route by the host,
    /// methods and path the build wrote beside it, and a route's own JSON is
    /// parsed and compiled the first time a request matches it.
    pub fn from_prepared(text: &'static str, secrets: Secrets<'_>) -> Result<Gateway, String> {
        let prepared = config::prepared::read(text)?;
        let file: RoutesFile = serde_json::from_str(prepared.head)
            .map_err(|e| format!("the embedded routes file does not parse: {e}"))?;
        let table = RouteTable::from_prepared(&prepared.routes);
        let mut gw = Gateway::top_level(file, table, secrets);
        gw.routes = prepared
            .routes
            .iter()
            .map(|r| LazyRoute {
                json: Some(r.json),
                compiled: OnceLock::new(),
            })
            .collect();
        Ok(gw)
    }

    /// Compiles a validated routes file, every route at once.
    pub fn compile(file: RoutesFile, secrets: Secrets<'_>) -> Result<Gateway, String> {
        let templates = file
            .routes
            .iter()
            .map(|r| parse_path(&r.path).map_err(|e| format!("route \"{}\": path {e}", r.id)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut gw = Gateway::top_level(file, RouteTable::default(), secrets);
        let routes = gw
            .file
            .routes
            .iter()
            .zip(&templates)
            .map(|(r, t)| gw.compile_route(r, &t.params))
            .collect::<Result<Vec<_>, String>>()?;
        gw.routes = routes
            .into_iter()
            .map(|rt| LazyRoute {
                json: None,
                compiled: OnceLock::from(Ok(rt)),
            })
            .collect();
        gw.table = RouteTable::from_canonical(
            &gw.file,
            templates.into_iter().map(|t| t.canonical).collect(),
        );
        Ok(gw)
    }

    /// Route `i` of the table, compiled on its first use. `Err` holds why it
    /// could not be: never for a file the build validated, but the request it
    /// would have answered gets a 503 rather than the isolate a panic.
    pub fn route(&self, i: usize) -> Result<&RouteRt, &str> {
        let Some(lazy) = self.routes.get(i) else {
            return Err("no such route");
        };
        lazy.compiled
            .get_or_init(|| {
                let json = lazy.json.ok_or("a route without its source")?;
                let r: config::Route = serde_json::from_str(json)
                    .map_err(|e| format!("route {i} of the embedded file does not parse: {e}"))?;
                let template =
                    parse_path(&r.path).map_err(|e| format!("route \"{}\": path {e}", r.id))?;
                self.compile_route(&r, &template.params)
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// How many routes the file has.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Every route in file order, each compiled if it was not yet: for tools
    /// and tests; a request reads only its own with [`Gateway::route`].
    pub fn routes(&self) -> impl Iterator<Item = Result<&RouteRt, &str>> {
        (0..self.routes.len()).map(|i| self.route(i))
    }

    /// Everything but the routes: origins, providers, plans, headers, CORS.
    fn top_level(file: RoutesFile, table: RouteTable, secrets: Secrets<'_>) -> Gateway {
        let origins = file
            .origins
            .iter()
            .map(|(name, o)| OriginRt {
                name: name.clone(),
                regions: o
                    .regions
                    .iter()
                    .map(|r| RegionRt {
                        name: r.name.clone(),
                        base: match (&r.url, &r.service) {
                            (Some(url), _) => url.trim_end_matches('/').to_string(),
                            (None, Some(binding)) => {
                                format!("https://{}.service", binding.to_ascii_lowercase())
                            }
                            (None, None) => String::new(),
                        },
                        service: r.url.is_none().then(|| r.service.clone()).flatten(),
                    })
                    .collect(),
                choice: Regions::new(o),
                timeout_ms: o.timeout_ms,
                retry_budget_percent: o.retry_budget_percent,
                hedge: o.hedge,
            })
            .collect();
        let providers: Vec<Result<Provider, String>> = file
            .jwt
            .iter()
            .map(|(name, cfg)| {
                let secret = match &cfg.secret_var {
                    Some(var) => Some(secrets(var).ok_or_else(|| {
                        format!("jwt provider \"{name}\": secret_var \"{var}\" is not set")
                    })?),
                    None => None,
                };
                Provider::new(name, cfg, secret.as_deref().map(str::as_bytes))
            })
            .collect();
        let consumers = (!file.plans.is_empty()).then(|| {
            let keys = file.api_keys.clone().unwrap_or_default();
            Consumers {
                header: keys.header.to_ascii_lowercase(),
                forward_consumer: keys.forward_consumer.to_ascii_lowercase(),
                plans: file
                    .plans
                    .iter()
                    .map(|(name, p)| PlanRt {
                        name: name.clone(),
                        limit: p.rate_limit.as_ref().map(|l| RouteLimit {
                            limit: l.as_rate_limit(),
                            counter_id: Some(format!("~plan:{name}")),
                        }),
                        quota: p.quota,
                    })
                    .collect(),
            }
        });
        let mut dropped_request_headers: Vec<String> = GATEWAY_OWNED_REQUEST
            .iter()
            .map(|h| h.to_string())
            .chain(
                file.jwt
                    .values()
                    .flat_map(|p| p.forward_claims.values())
                    .map(|h| h.to_ascii_lowercase()),
            )
            .chain(
                consumers
                    .iter()
                    .flat_map(|c| [c.forward_consumer.clone(), PLAN_HEADER.to_string()]),
            )
            .collect();
        dropped_request_headers.sort();
        dropped_request_headers.dedup();
        let cors = file.cors.as_ref().map(|c| CorsPolicy::new(c, &Method::ALL));
        Gateway {
            admin_token: secrets("GATEWAY_ADMIN_TOKEN").filter(|t| !t.is_empty()),
            file,
            table,
            routes: Vec::new(),
            origins,
            dropped_request_headers,
            providers,
            consumers,
            cors,
            docs: None,
        }
    }

    /// One route's policy chain and upstream settings, over the compiled top level.
    fn compile_route(&self, r: &config::Route, params: &[String]) -> Result<RouteRt, String> {
        let file = &self.file;
        let origin_index = |name: &str| {
            file.origins
                .keys()
                .position(|n| n == name)
                .ok_or_else(|| format!("route \"{}\": unknown origin \"{name}\"", r.id))
        };
        let origin = origin_index(r.origin.first())?;
        let split = match &r.origin {
            config::OriginRef::One(_) => None,
            config::OriginRef::Split(list) => {
                let weights = list
                    .iter()
                    .map(|w| Ok((origin_index(&w.origin)?, w.weight)))
                    .collect::<Result<Vec<_>, String>>()?;
                Split::new(&weights).map(|s| (s, r.sticky.clone()))
            }
        };
        let rewrite = r
            .rewrite
            .as_deref()
            .map(|t| parse_rewrite(t, params))
            .transpose()
            .map_err(|e| format!("route \"{}\": rewrite {e}", r.id))?;
        // The chain, in the order the policies see a request.
        let (mut chain, upstream) = request_policies(file, r, params)?;
        if r.websocket {
            chain.insert(
                0,
                Policy::WebSocket(crate::policy::websocket::WebSocketPolicy),
            );
        }
        if let Some(cors) = CorsPolicy::for_route(file.cors.as_ref(), r) {
            chain.push(Policy::Cors(cors));
        }
        let mut plan = None;
        if let Some(a) = &r.auth {
            let mut jwt = Vec::new();
            for (name, scopes) in a.jwts() {
                let provider = file.jwt.keys().position(|n| n == name).ok_or_else(|| {
                    format!("route \"{}\": auth: unknown jwt provider \"{name}\"", r.id)
                })?;
                jwt.push((provider, scopes.to_vec()));
            }
            let api_key = a.api_key().map(|k| KeyRule {
                plans: k.plans.clone(),
            });
            if api_key.is_some() && self.consumers.is_some() {
                plan = Some(Policy::Plan(PlanPolicy));
            }
            chain.push(Policy::Auth(RouteAuth { jwt, api_key }));
        }
        if let Some(rl) = &r.rate_limit {
            chain.push(Policy::RateLimit(RouteLimit {
                limit: rl.clone(),
                counter_id: None,
            }));
        }
        chain.extend(plan);
        chain.extend(upstream);
        if let Some(cache) = CachePolicy::for_route(r) {
            chain.push(Policy::Cache(cache));
        }
        Ok(RouteRt {
            id: r.id.clone(),
            path: r.path.clone(),
            origin,
            split,
            rewrite,
            timeout_ms: r.timeout_ms,
            methods: crate::route::mask_methods(crate::route::route_method_mask(r)).collect(),
            chain,
        })
    }

    /// Serves the pages the build generated; only for a gateway of [`EMBEDDED_ROUTES`].
    pub fn with_embedded_docs(mut self) -> Gateway {
        if self.file.docs && !EMBEDDED_DOCS_HTML.is_empty() {
            self.docs = Some(DocPages {
                html: EMBEDDED_DOCS_HTML.into(),
                openapi: EMBEDDED_OPENAPI.into(),
            });
        }
        self
    }
}

impl Gateway {
    /// A route for this host and path, whatever its method (for the CORS policy of errors).
    pub fn route_for_any_method(&self, host: &str, path: &str) -> Option<&RouteRt> {
        Method::ALL
            .into_iter()
            .find_map(|m| match self.table.lookup(host, path, Some(m)) {
                Match::Found { route, .. } => self.route(route).ok(),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_compiles_without_validation_as_validated() {
        let prepared = Gateway::from_prepared(EMBEDDED_ROUTES, &|_| None).unwrap();
        let validated = Gateway::from_json(EMBEDDED_ROUTES_JSON, &|_| None).unwrap();
        assert!(prepared.route_count() > 0);
        assert!(prepared.file.routes.is_empty());
        let mut top_level = validated.file.clone();
        top_level.routes.clear();
        assert_eq!(format!("{:?}", prepared.file), format!("{top_level:?}"));
        assert_eq!(prepared.route_count(), validated.route_count());
        for (a, b) in prepared.routes().zip(validated.routes()) {
            assert_eq!(format!("{:?}", a.unwrap()), format!("{:?}", b.unwrap()));
        }
    }

    #[test]
    fn a_damaged_route_in_the_prepared_form_fails_alone() {
        let text = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
            "routes": [{"id": "a", "path": "/a", "origin": "o"},
                       {"id": "b", "path": "/b/{id}", "origin": "o", "rewrite": "/x/{id}"}]}"#;
        let file = config::load(text).unwrap();
        let prepared = config::prepared::write(text, &file).unwrap();
        // Route "b" loses its rewrite's parameter: it no longer compiles.
        let damaged = prepared.replace(r#""/x/{id}""#, r#""/x/{ix}""#);
        let gw = Gateway::from_prepared(Box::leak(damaged.into_boxed_str()), &|_| None).unwrap();
        assert_eq!(gw.route(0).unwrap().id, "a");
        assert!(
            gw.route(1).unwrap_err().contains("rewrite"),
            "{:?}",
            gw.route(1)
        );
        assert!(gw.route(2).is_err());
    }

    #[test]
    fn rewrite_uses_params() {
        let gw = Gateway::from_json(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h/base/"}]}},
                "routes": [{"id": "a", "path": "/api/{id}/{*rest}", "origin": "o", "rewrite": "/v1/{rest}/of/{id}"},
                           {"id": "b", "path": "/plain/{x}", "origin": "o"}]}"#,
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            gw.route(0)
                .unwrap()
                .upstream_path("/api/7/a/b", &["7", "a/b"])
                .unwrap(),
            "/v1/a/b/of/7"
        );
        assert_eq!(
            gw.route(1)
                .unwrap()
                .upstream_path("/plain/%2F", &["%2F"])
                .unwrap(),
            "/plain/%2F"
        );
        assert_eq!(gw.origins[0].regions[0].base, "http://h/base");
    }

    #[test]
    fn a_rewrite_that_spells_a_dot_segment_is_refused() {
        let gw = Gateway::from_json(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h/base/"}]}},
                "routes": [{"id": "a", "path": "/c/{a}/{b}", "origin": "o", "rewrite": "/p/{a}{b}"},
                           {"id": "b", "path": "/d/{a}", "origin": "o", "rewrite": "/p/.{a}/x"}]}"#,
            &|_| None,
        )
        .unwrap();
        for (a, b) in [
            ("%2", "e%2e"),
            (".%2", "e"),
            ("%2e", "."),
            ("%2E%2", "E"),
            (".", "."),
        ] {
            assert_eq!(
                gw.route(0).unwrap().upstream_path("/", &[a, b]),
                None,
                "{a} {b}"
            );
        }
        assert_eq!(
            gw.route(0)
                .unwrap()
                .upstream_path("/", &["a.", ".b"])
                .unwrap(),
            "/p/a..b"
        );
        assert_eq!(gw.route(1).unwrap().upstream_path("/", &["."]), None);
        assert_eq!(gw.route(1).unwrap().upstream_path("/", &["%2E"]), None);
        assert_eq!(
            gw.route(1).unwrap().upstream_path("/", &["x"]).unwrap(),
            "/p/.x/x"
        );
    }
}
