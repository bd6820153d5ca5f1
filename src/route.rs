//! The route table: host, then path (matchit), then method.
//!
//! Built once per isolate from a validated routes file. Hosts are looked up
//! exactly first, then by wildcard suffix (longest first), then among the routes
//! that name no host. The first table whose paths match decides: a route for the
//! method, or 405 with the methods that path allows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::config::path::parse_path;
use crate::config::prepared::PreparedRoute;
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

/// How many leading literal path segments name a bucket (see [`Group`]).
const BUCKET_DEPTH: usize = 3;

/// One route as the table holds it until its bucket is first needed.
#[derive(Debug)]
struct Entry {
    route: usize,
    /// Borrowed from the prepared form an isolate starts from.
    canonical: Cow<'static, str>,
    methods: u8,
}

/// The routes of one host (or of every host), in buckets by the leading literal
/// segments of their paths (`/v1/users/{id}` is in `v1/users`; at most
/// [`BUCKET_DEPTH`] segments, a segment with a parameter ends the key). A
/// bucket's matchit table is built the first time a request needs it, so an
/// isolate with 10,000 routes indexes only the few its requests reach.
///
/// A path can only match routes whose key is a segment prefix of the path. It is
/// looked up in the bucket of its longest such key, then in the buckets of the
/// shorter keys, then in the root bucket (routes whose first segment is a
/// parameter); the first that matches decides. That is the order matchit itself
/// prefers (a literal segment before a parameter, with backtracking), so the
/// answer is the one a single table of every route gives: a property test below
/// compares them.
#[derive(Debug, Default)]
struct Group {
    entries: Vec<Entry>,
    /// Bucket key -> index in `buckets`; the root bucket (key `""`) is 0.
    keys: HashMap<Box<str>, usize, BuildHasherDefault<Fnv>>,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Indices into `Group::entries`, in file order.
    entries: Vec<u32>,
    table: OnceLock<Table>,
}

/// FNV-1a over bucket keys: a few bytes each, hashed once per route at start-up
/// and up to [`BUCKET_DEPTH`] times per request. Only the routes file inserts
/// keys, so a client cannot flood the map with colliding ones.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The key of a canonical path: its first literal segments (no `{` or `}`), at
/// most [`BUCKET_DEPTH`], without the leading `/`.
fn bucket_key(canonical: &str) -> &str {
    let rest = &canonical[1..];
    let mut end = 0;
    for (depth, segment) in rest.split('/').enumerate() {
        if depth == BUCKET_DEPTH || segment.contains(['{', '}']) {
            break;
        }
        end = if depth == 0 {
            segment.len()
        } else {
            end + 1 + segment.len()
        };
    }
    &rest[..end]
}

pub(crate) fn mask_methods(mask: u8) -> impl Iterator<Item = Method> {
    Method::ALL
        .into_iter()
        .filter(move |m| mask & (1 << m.index()) != 0)
}

impl Group {
    /// Sorts the entries into buckets; builds no table.
    fn index(&mut self) {
        self.keys.insert("".into(), 0);
        self.buckets.push(Bucket::default());
        for (i, e) in self.entries.iter().enumerate() {
            let key = bucket_key(&e.canonical);
            let b = match self.keys.get(key) {
                Some(&b) => b,
                None => {
                    self.keys.insert(key.into(), self.buckets.len());
                    self.buckets.push(Bucket::default());
                    self.buckets.len() - 1
                }
            };
            self.buckets[b].entries.push(i as u32);
        }
    }

    /// One bucket holding every entry, its table built now: what validation
    /// checks conflicts with.
    fn eager(&mut self) -> Vec<Conflict> {
        let entries: Vec<u32> = (0..self.entries.len() as u32).collect();
        let (table, conflicts) = self.build(&entries);
        self.keys.insert("".into(), 0);
        self.buckets.push(Bucket {
            entries,
            table: OnceLock::from(table),
        });
        conflicts
    }

    fn build(&self, entries: &[u32]) -> (Table, Vec<Conflict>) {
        let mut table = Table::default();
        let mut conflicts = Vec::new();
        let mut methods = Vec::with_capacity(Method::ALL.len());
        for &i in entries {
            let e = &self.entries[i as usize];
            methods.clear();
            methods.extend(mask_methods(e.methods));
            if let Err(c) = table.insert(&e.canonical, e.route, &methods) {
                conflicts.push(c);
            }
        }
        (table, conflicts)
    }

    fn table(&self, bucket: usize) -> &Table {
        let b = &self.buckets[bucket];
        // The file was validated: a conflict cannot happen here, and a route that
        // had one would be left out, as validation reports.
        b.table.get_or_init(|| self.build(&b.entries).0)
    }

    fn lookup<'p>(&self, path: &'p str, method: Option<Method>) -> Option<Match<'_, 'p>> {
        if self.buckets.len() > 1 {
            let rest = path.strip_prefix('/').unwrap_or(path);
            let mut ends = [0usize; BUCKET_DEPTH];
            let mut depth = 0;
            for (i, b) in rest.bytes().enumerate() {
                if b == b'/' {
                    ends[depth] = i;
                    depth += 1;
                    if depth == BUCKET_DEPTH {
                        break;
                    }
                }
            }
            if depth < BUCKET_DEPTH {
                ends[depth] = rest.len();
                depth += 1;
            }
            for &end in ends[..depth].iter().rev() {
                if let Some(&b) = self.keys.get(&rest[..end]) {
                    if b != 0 {
                        if let Some(m) = self.table(b).lookup(path, method) {
                            return Some(m);
                        }
                    }
                }
            }
        }
        self.table(0).lookup(path, method)
    }
}

/// Routes grouped by host.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, Group>,
    /// `(".example.com", routes)`, longest suffix first.
    wildcard: Vec<(String, Group)>,
    any: Group,
}

/// The methods a route answers, one bit per `Method::index`.
pub(crate) fn route_method_mask(route: &Route) -> u8 {
    let bit = |m: Method| 1u8 << m.index();
    if route.websocket {
        return bit(Method::Get);
    }
    match &route.methods {
        None => Method::ALL.into_iter().fold(0, |acc, m| acc | bit(m)),
        Some(list) => list.iter().fold(0, |acc, &m| {
            acc | bit(m)
                | if m == Method::Get {
                    bit(Method::Head)
                } else {
                    0
                }
        }),
    }
}

impl RouteTable {
    /// Indexes the routes of a validated file, as an isolate does; route `i` is
    /// `file.routes[i]`. Buckets are built on first use (see [`Group`]).
    pub fn build(file: &RoutesFile) -> Result<RouteTable, String> {
        let canonical = file
            .routes
            .iter()
            .map(|r| {
                parse_path(&r.path).map(|t| t.canonical).map_err(|e| {
                    format!("route \"{}\": path \"{}\" is not valid: {e}", r.id, r.path)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RouteTable::from_canonical(file, canonical))
    }

    /// [`RouteTable::build`] from the routes' canonical paths (`canonical[i]` is
    /// `file.routes[i]`'s), already parsed.
    pub fn from_canonical(file: &RoutesFile, canonical: Vec<String>) -> RouteTable {
        let mut table = RouteTable::default();
        for ((i, route), canonical) in file.routes.iter().enumerate().zip(canonical) {
            table.group_of(route.host.as_deref()).entries.push(Entry {
                route: i,
                canonical: Cow::Owned(canonical),
                methods: route_method_mask(route),
            });
        }
        table.finish();
        table.groups_mut().for_each(Group::index);
        table
    }

    /// [`RouteTable::build`] from the routes of a prepared form (route `i` is
    /// `routes[i]`), whose paths the build has parsed: nothing is copied.
    pub fn from_prepared(routes: &[PreparedRoute<'static>]) -> RouteTable {
        let mut table = RouteTable::default();
        for (i, r) in routes.iter().enumerate() {
            table.group_of(r.host).entries.push(Entry {
                route: i,
                canonical: Cow::Borrowed(r.canonical),
                methods: r.methods,
            });
        }
        table.finish();
        table.groups_mut().for_each(Group::index);
        table
    }

    /// Indexes routes given with their index in the file into one table per
    /// host, built at once, and says which could not join the table and why:
    /// the check of path conflicts that validation runs.
    pub fn build_from<'r>(
        routes: impl IntoIterator<Item = (usize, &'r Route)>,
    ) -> (RouteTable, Vec<Conflict>) {
        let (mut table, mut conflicts) = RouteTable::collect(routes);
        for group in table.groups_mut() {
            conflicts.extend(group.eager());
        }
        conflicts.sort_by_key(Conflict::route);
        (table, conflicts)
    }

    fn groups_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        self.exact
            .values_mut()
            .chain(self.wildcard.iter_mut().map(|(_, g)| g))
            .chain(std::iter::once(&mut self.any))
    }

    /// Sorts routes by host and parses their paths.
    fn collect<'r>(
        routes: impl IntoIterator<Item = (usize, &'r Route)>,
    ) -> (RouteTable, Vec<Conflict>) {
        let mut table = RouteTable::default();
        let mut invalid = Vec::new();
        for (i, route) in routes {
            match parse_path(&route.path) {
                Ok(t) => table.group_of(route.host.as_deref()).entries.push(Entry {
                    route: i,
                    canonical: Cow::Owned(t.canonical),
                    methods: route_method_mask(route),
                }),
                Err(error) => invalid.push(Conflict::Invalid { route: i, error }),
            }
        }
        table.finish();
        (table, invalid)
    }

    /// The group of a route's `host`.
    fn group_of(&mut self, host: Option<&str>) -> &mut Group {
        let Some(host) = host else {
            return &mut self.any;
        };
        let host = host.to_ascii_lowercase();
        match host.strip_prefix('*') {
            Some(suffix) => match self.wildcard.iter().position(|(s, _)| s == suffix) {
                Some(pos) => &mut self.wildcard[pos].1,
                None => {
                    self.wildcard.push((suffix.to_string(), Group::default()));
                    &mut self.wildcard.last_mut().expect("just pushed").1
                }
            },
            None => self.exact.entry(host).or_default(),
        }
    }

    fn finish(&mut self) {
        self.wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
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
        // An isolate's table trusts the validated file; given this one, it leaves
        // out what conflicts just the same.
        let isolate = RouteTable::build(&file).unwrap();
        for method in Method::ALL {
            assert_eq!(
                isolate.lookup("x", "/u/1", Some(method)),
                table.lookup("x", "/u/1", Some(method))
            );
        }
        assert_eq!(
            isolate.lookup("x", "/v/1/2", Some(Method::Get)),
            Match::NotFound
        );
    }
}

/// The bucketed table an isolate builds answers every request as one matchit
/// table of all the routes (the validated, conflict-free ones) would.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod bucket_tests {
    use super::*;
    use proptest::prelude::*;

    /// Segments that make literal, parameter, partial-parameter and catch-all paths,
    /// and requests that share or miss their prefixes.
    const ROUTE_SEGMENTS: [&str; 11] = [
        "a", "b", "v1", "svc", "", "{x}", "{y}", "x{z}", "{w}.png", "a.png", "{*rest}",
    ];
    const REQUEST_SEGMENTS: [&str; 9] = ["a", "b", "v1", "svc", "", "xa", "q.png", "a.png", "x"];

    fn route_path(segments: &[usize]) -> String {
        let mut path = String::new();
        for (i, &s) in segments.iter().enumerate() {
            let seg = ROUTE_SEGMENTS[s];
            if seg == "{*rest}" && i + 1 != segments.len() {
                continue;
            }
            path.push('/');
            // Parameter names must differ within a path.
            path.push_str(&seg.replace('{', &format!("{{p{i}")).replace("{p{i}*", "{*"));
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    fn file(routes: &[(Vec<usize>, u8, u8)]) -> RoutesFile {
        let hosts = [None, Some("api.example.com"), Some("*.t.example.com")];
        let methods = [None, Some(vec!["GET"]), Some(vec!["POST", "PUT"])];
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .enumerate()
            .map(|(i, (segments, host, method))| {
                let mut r = serde_json::json!({
                    "id": format!("r{i}"), "path": route_path(segments), "origin": "o"
                });
                if let Some(h) = hosts[*host as usize % 3] {
                    r["host"] = h.into();
                }
                if let Some(m) = &methods[*method as usize % 3] {
                    r["methods"] = serde_json::json!(m);
                }
                r
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "origins": {"o": {"regions": [{"name": "r", "url": "http://127.0.0.1:1"}]}},
            "routes": routes
        }))
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn buckets_answer_as_one_table(
            routes in proptest::collection::vec(
                (proptest::collection::vec(0usize..ROUTE_SEGMENTS.len(), 0..6), any::<u8>(), any::<u8>()),
                1..40,
            ),
            requests in proptest::collection::vec(
                (proptest::collection::vec(0usize..REQUEST_SEGMENTS.len(), 0..7), 0u8..3, 0usize..Method::ALL.len()),
                1..60,
            ),
        ) {
            let mut file = file(&routes);
            // Keep what validation accepts: drop the routes that conflict, until none do.
            loop {
                let (_, conflicts) = RouteTable::build_from(file.routes.iter().enumerate());
                if conflicts.is_empty() {
                    break;
                }
                let drop: std::collections::BTreeSet<usize> = conflicts.iter().map(Conflict::route).collect();
                let kept = file.routes.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, r)| r.clone()).collect();
                file.routes = kept;
            }
            let (one, _) = RouteTable::build_from(file.routes.iter().enumerate());
            let buckets = RouteTable::build(&file).unwrap();
            for (segments, host, method) in &requests {
                let mut path: String = segments.iter().map(|&s| format!("/{}", REQUEST_SEGMENTS[s])).collect();
                if path.is_empty() {
                    path.push('/');
                }
                let host = ["x.example.com", "api.example.com", "a.t.example.com"][*host as usize];
                let method = Some(Method::ALL[*method]);
                prop_assert_eq!(
                    buckets.lookup(host, &path, method),
                    one.lookup(host, &path, method),
                    "{} {} over {:?}", host, path,
                    file.routes.iter().map(|r| (&r.path, &r.host)).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn bucket_keys_are_leading_literal_segments() {
        for (path, key) in [
            ("/", ""),
            ("/{id}", ""),
            ("/v1", "v1"),
            ("/v1/", "v1/"),
            ("/v1/users/{id}", "v1/users"),
            ("/v1/svc17/r3/{id}", "v1/svc17/r3"),
            ("/a/b/c/d/e", "a/b/c"),
            ("/img/{name}.png", "img"),
            ("/x/{{literal}}/y", "x"),
            ("/files/{*rest}", "files"),
        ] {
            assert_eq!(
                bucket_key(&parse_path(path).unwrap().canonical),
                key,
                "{path}"
            );
        }
    }
}
