//! The route table: host, then path (matchit), then method.
//!
//! Built once per isolate from a validated routes file. Hosts are looked up
//! exactly first, then by wildcard suffix (longest first), then among the routes
//! that name no host. The first table whose paths match decides: a route for the
//! method, or 405 with the methods that path allows.

use std::collections::HashMap;

use crate::config::path::parse_path;
use crate::config::validate::route_methods;
use crate::config::{Method, Route, RoutesFile};
use crate::http::path::is_dot_segment;

/// Why a route cannot join the table; `route` and `with` index the routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The same path (up to parameter names) on the same host, for these methods too.
    Methods {
        route: usize,
        with: usize,
        methods: Vec<Method>,
    },
    /// Paths that match the same requests ambiguously (matchit refuses them).
    Ambiguous { route: usize, with: usize },
    /// A path matchit cannot take, or one that does not parse.
    Invalid { route: usize, error: String },
}

impl Conflict {
    /// The message `gateway check` prints, naming the other route.
    pub fn message(&self, routes: &[Route]) -> String {
        let id = |i: usize| routes.get(i).map_or("?", |r| r.id.as_str());
        match self {
            Conflict::Methods {
                route,
                with,
                methods,
            } => {
                let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                format!(
                    "path \"{}\" conflicts with route \"{}\" for {} on the same host",
                    routes[*route].path,
                    id(*with),
                    methods.join(", ")
                )
            }
            Conflict::Ambiguous { route, with } => format!(
                "path \"{}\" conflicts with route \"{}\" on the same host (ambiguous match)",
                routes[*route].path,
                id(*with)
            ),
            Conflict::Invalid { route, error } => {
                format!("path \"{}\" is not valid: {error}", routes[*route].path)
            }
        }
    }

    /// The route that could not join.
    pub fn route(&self) -> usize {
        match self {
            Conflict::Methods { route, .. }
            | Conflict::Ambiguous { route, .. }
            | Conflict::Invalid { route, .. } => *route,
        }
    }
}

/// Positional path parameters of a match (in the order the route's path names them).
pub type Params<'p> = Vec<&'p str>;

/// The outcome of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'t, 'p> {
    Found {
        route: usize,
        params: Params<'p>,
    },
    /// The path matches, not for this method; the `Allow` header value.
    MethodNotAllowed {
        allow: &'t str,
    },
    NotFound,
}

#[derive(Debug, Default)]
struct Slot {
    by_method: [Option<usize>; Method::ALL.len()],
    allow: String,
    /// The first route on this path.
    first: usize,
}

#[derive(Debug, Default)]
struct Table {
    router: matchit::Router<usize>,
    slots: Vec<Slot>,
    /// Canonical path -> its slot, to merge routes that share a path.
    paths: HashMap<String, usize>,
}

impl Table {
    fn insert(
        &mut self,
        canonical: &str,
        route: usize,
        methods: &[Method],
    ) -> Result<(), Conflict> {
        let slot = match self.paths.get(canonical) {
            Some(&slot) => slot,
            None => {
                let index = self.slots.len();
                self.router.insert(canonical, index).map_err(|e| match e {
                    matchit::InsertError::Conflict { with } => Conflict::Ambiguous {
                        route,
                        with: self
                            .paths
                            .get(&with)
                            .map_or(route, |&s| self.slots[s].first),
                    },
                    other => Conflict::Invalid {
                        route,
                        error: other.to_string(),
                    },
                })?;
                self.slots.push(Slot {
                    first: route,
                    ..Slot::default()
                });
                self.paths.insert(canonical.to_string(), index);
                index
            }
        };
        let slot = &mut self.slots[slot];
        let taken: Vec<(Method, usize)> = methods
            .iter()
            .filter_map(|m| slot.by_method[m.index()].map(|other| (*m, other)))
            .collect();
        if let Some(&(_, with)) = taken.first() {
            return Err(Conflict::Methods {
                route,
                with,
                methods: taken
                    .into_iter()
                    .filter(|(_, other)| *other == with)
                    .map(|(m, _)| m)
                    .collect(),
            });
        }
        for m in methods {
            slot.by_method[m.index()] = Some(route);
        }
        slot.allow = Method::ALL
            .iter()
            .filter(|m| slot.by_method[m.index()].is_some())
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(())
    }

    fn lookup<'p>(&self, path: &'p str, method: Option<Method>) -> Option<Match<'_, 'p>> {
        let matched = self.router.at(path).ok()?;
        let params: Params<'p> = matched.params.iter().map(|(_, v)| v).collect();
        // A parameter sharing its segment with a prefix or suffix (`/img/{name}.png`) can
        // be a dot segment (`/img/...png` gives `..`), which a rewrite such as `/{name}`
        // would forward as a path that climbs out of the origin's base path. Such a
        // match is refused; whole-segment parameters never are one (`normalize`).
        if params.iter().any(|p| is_dot_segment(p)) {
            return None;
        }
        let slot = &self.slots[*matched.value];
        let route = method.and_then(|m| slot.by_method[m.index()]);
        Some(match route {
            Some(route) => Match::Found { route, params },
            None => Match::MethodNotAllowed { allow: &slot.allow },
        })
    }
}

/// Routes grouped by host.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, Table>,
    /// `(".example.com", table)`, longest suffix first.
    wildcard: Vec<(String, Table)>,
    any: Table,
}

impl RouteTable {
    /// Indexes the routes of a validated file; route `i` is `file.routes[i]`.
    pub fn build(file: &RoutesFile) -> Result<RouteTable, String> {
        let (table, conflicts) = RouteTable::build_from(file.routes.iter().enumerate());
        match conflicts.first() {
            None => Ok(table),
            Some(c) => Err(format!(
                "route \"{}\": {}",
                file.routes[c.route()].id,
                c.message(&file.routes)
            )),
        }
    }

    /// Indexes routes given with their index in the file, and says which could
    /// not join the table and why: the one check of path conflicts, used by
    /// validation and at start-up alike.
    pub fn build_from<'r>(
        routes: impl IntoIterator<Item = (usize, &'r Route)>,
    ) -> (RouteTable, Vec<Conflict>) {
        let mut table = RouteTable::default();
        let mut conflicts = Vec::new();
        for (i, route) in routes {
            let template = match parse_path(&route.path) {
                Ok(t) => t,
                Err(error) => {
                    conflicts.push(Conflict::Invalid { route: i, error });
                    continue;
                }
            };
            let methods: Vec<Method> = route_methods(route).into_iter().collect();
            let target = match route.host.as_deref().map(str::to_ascii_lowercase) {
                None => &mut table.any,
                Some(host) => match host.strip_prefix('*') {
                    Some(suffix) => {
                        let suffix = suffix.to_string();
                        match table.wildcard.iter().position(|(s, _)| *s == suffix) {
                            Some(pos) => &mut table.wildcard[pos].1,
                            None => {
                                table.wildcard.push((suffix, Table::default()));
                                &mut table.wildcard.last_mut().expect("just pushed").1
                            }
                        }
                    }
                    None => table.exact.entry(host).or_default(),
                },
            };
            if let Err(c) = target.insert(&template.canonical, i, &methods) {
                conflicts.push(c);
            }
        }
        table
            .wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        (table, conflicts)
    }

    /// Finds the route for a host (any case, port allowed, a single trailing dot
    /// ignored), a normalized path and a method (`None` for a method no route can allow).
    pub fn lookup<'p>(&self, host: &str, path: &'p str, method: Option<Method>) -> Match<'_, 'p> {
        let host = host_for_matching(host);
        let exact = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.exact.get(&host.to_ascii_lowercase())
        } else {
            self.exact.get(host)
        };
        let wildcard = self.wildcard.iter().filter_map(|(suffix, t)| {
            let ends = host.len() > suffix.len()
                && host.as_bytes()[host.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes());
            ends.then_some(t)
        });
        exact
            .into_iter()
            .chain(wildcard)
            .chain(std::iter::once(&self.any))
            .find_map(|t| t.lookup(path, method))
            .unwrap_or(Match::NotFound)
    }
}

/// The host as routes match it (case aside): without the port and without a single
/// trailing dot (`a.tenant.test.:8787` -> `a.tenant.test`; the fully qualified
/// spelling names the same host). A second dot stays: `a..` is no host name.
pub fn host_for_matching(host: &str) -> &str {
    let host = host_without_port(host);
    host.strip_suffix('.').unwrap_or(host)
}

/// `example.com:8443` -> `example.com`; `[::1]:80` -> `[::1]`.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn table() -> RouteTable {
        let file = load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://127.0.0.1:1"}]}},
                "routes": [
                  {"id": "get-user", "path": "/api/users/{id}", "methods": ["GET"], "origin": "o"},
                  {"id": "put-user", "path": "/api/users/{uid}", "methods": ["PUT", "DELETE"], "origin": "o"},
                  {"id": "files", "path": "/files/{*rest}", "origin": "o"},
                  {"id": "tenant", "path": "/api/users/{id}", "host": "*.tenants.example.com", "methods": ["GET"], "origin": "o"},
                  {"id": "deep", "path": "/api/users/{id}", "host": "*.eu.tenants.example.com", "methods": ["GET"], "origin": "o"},
                  {"id": "exact", "path": "/only-here", "host": "API.example.com", "origin": "o"}
                ]}"#,
        )
        .unwrap();
        RouteTable::build(&file).unwrap()
    }

    fn found(m: Match) -> (usize, Vec<String>) {
        match m {
            Match::Found { route, params } => {
                (route, params.iter().map(|s| s.to_string()).collect())
            }
            other => panic!("expected a route, got {other:?}"),
        }
    }

    #[test]
    fn methods_share_a_path() {
        let t = table();
        assert_eq!(
            found(t.lookup("x", "/api/users/7", Some(Method::Get))),
            (0, vec!["7".into()])
        );
        assert_eq!(
            found(t.lookup("x", "/api/users/7", Some(Method::Head))).0,
            0
        );
        assert_eq!(
            found(t.lookup("x", "/api/users/7", Some(Method::Delete))).0,
            1
        );
        assert_eq!(
            t.lookup("x", "/api/users/7", Some(Method::Post)),
            Match::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE"
            }
        );
        assert_eq!(
            t.lookup("x", "/api/users/7", None),
            Match::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE"
            }
        );
        assert_eq!(
            t.lookup("x", "/api/users", Some(Method::Get)),
            Match::NotFound
        );
        assert_eq!(
            t.lookup("x", "/api/users/7/x", Some(Method::Get)),
            Match::NotFound
        );
    }

    #[test]
    fn catch_all() {
        let t = table();
        assert_eq!(
            found(t.lookup("x", "/files/a/b%2Fc", Some(Method::Post))),
            (2, vec!["a/b%2Fc".into()])
        );
    }

    #[test]
    fn hosts() {
        let t = table();
        assert_eq!(
            found(t.lookup(
                "acme.tenants.example.com",
                "/api/users/1",
                Some(Method::Get)
            ))
            .0,
            3
        );
        assert_eq!(
            found(t.lookup(
                "ACME.Tenants.example.com:443",
                "/api/users/1",
                Some(Method::Get)
            ))
            .0,
            3
        );
        assert_eq!(
            found(t.lookup("a.b.tenants.example.com", "/api/users/1", Some(Method::Get))).0,
            3
        );
        assert_eq!(
            found(t.lookup(
                "x.eu.tenants.example.com",
                "/api/users/1",
                Some(Method::Get)
            ))
            .0,
            4
        );
        // The bare domain is not a subdomain of itself.
        assert_eq!(
            found(t.lookup("tenants.example.com", "/api/users/1", Some(Method::Get))).0,
            0
        );
        assert_eq!(
            found(t.lookup("api.example.com:8787", "/only-here", Some(Method::Get))).0,
            5
        );
        assert_eq!(
            t.lookup("other.example.com", "/only-here", Some(Method::Get)),
            Match::NotFound
        );
        // One trailing dot is the same host (any case, with a port or without).
        assert_eq!(
            found(t.lookup(
                "acme.tenants.example.com.",
                "/api/users/1",
                Some(Method::Get)
            ))
            .0,
            3
        );
        assert_eq!(
            found(t.lookup("API.example.com.:8787", "/only-here", Some(Method::Get))).0,
            5
        );
        assert_eq!(
            t.lookup("api.example.com..", "/only-here", Some(Method::Get)),
            Match::NotFound
        );
        assert_eq!(host_for_matching("a.tenant.test."), "a.tenant.test");
        assert_eq!(host_for_matching("a.tenant.test.:443"), "a.tenant.test");
        assert_eq!(host_for_matching("[::1]:80"), "[::1]");
        // A host-specific path falls through to the host-less routes.
        assert_eq!(
            found(t.lookup("api.example.com", "/api/users/1", Some(Method::Get))).0,
            0
        );
    }

    /// Found by the `path_match_rewrite` fuzz target: `/img/...png` matched
    /// `/img/{name}.png` with `name = ".."`, and the rewrite `/{name}` sent the
    /// origin `/base/..`, which `fetch` resolves above the base path.
    #[test]
    fn a_parameter_is_never_a_dot_segment() {
        let file = load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://127.0.0.1:1/base"}]}},
                "routes": [
                  {"id": "image", "path": "/img/{name}.png", "origin": "o", "rewrite": "/{name}"},
                  {"id": "version", "path": "/v{ver}/status", "origin": "o", "rewrite": "/{ver}/health"}
                ]}"#,
        )
        .unwrap();
        let t = RouteTable::build(&file).unwrap();
        for path in [
            "/img/...png",
            "/img/..png",
            "/img/%2e%2E.png",
            "/img/.%2e.png",
            "/v../status",
            "/v%2E/status",
        ] {
            assert_eq!(
                t.lookup("x", path, Some(Method::Get)),
                Match::NotFound,
                "{path}"
            );
        }
        assert_eq!(
            found(t.lookup("x", "/img/..a.png", Some(Method::Get))),
            (0, vec!["..a".into()])
        );
        assert_eq!(
            found(t.lookup("x", "/v2/status", Some(Method::Get))),
            (1, vec!["2".into()])
        );
    }

    #[test]
    fn ports_are_ignored() {
        assert_eq!(host_without_port("a.example.com:80"), "a.example.com");
        assert_eq!(host_without_port("[::1]:8787"), "[::1]");
        assert_eq!(host_without_port("localhost"), "localhost");
    }

    #[test]
    fn conflicts_are_typed_and_name_both_routes() {
        let file: RoutesFile = serde_json::from_str(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://127.0.0.1:1"}]}},
                "routes": [
                  {"id": "a", "path": "/u/{id}", "methods": ["GET"], "origin": "o"},
                  {"id": "b", "path": "/u/{name}", "methods": ["POST"], "origin": "o"},
                  {"id": "c", "path": "/u/{x}", "methods": ["PUT", "GET"], "origin": "o"},
                  {"id": "d", "path": "/v/{a}", "origin": "o"},
                  {"id": "e", "path": "/v/{*rest}", "origin": "o"},
                  {"id": "f", "path": "/u/{x}", "host": "api.example.com", "origin": "o"}
                ]}"#,
        )
        .unwrap();
        let (table, conflicts) = RouteTable::build_from(file.routes.iter().enumerate());
        assert_eq!(conflicts.len(), 2, "{conflicts:?}");
        assert_eq!(
            conflicts[0],
            Conflict::Methods {
                route: 2,
                with: 0,
                methods: vec![Method::Get, Method::Head],
            }
        );
        assert_eq!(
            conflicts[0].message(&file.routes),
            "path \"/u/{x}\" conflicts with route \"a\" for GET, HEAD on the same host"
        );
        assert!(
            matches!(conflicts[1], Conflict::Ambiguous { route: 4, with: 3 }),
            "{conflicts:?}"
        );
        // What joined still routes; a conflicting route took nothing.
        assert!(matches!(
            table.lookup("x", "/u/1", Some(Method::Put)),
            Match::MethodNotAllowed { .. }
        ));
        assert!(RouteTable::build(&file)
            .unwrap_err()
            .starts_with("route \"c\": path"));
    }
}
