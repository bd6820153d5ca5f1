//! Route matching and isolate start-up with 10,000 routes.
//!
//! `cargo bench --bench routing` (part of `make bench`). The routes file is
//! generated: 250 services of 40 routes each, a realistic mix of static paths,
//! one- and two-parameter paths, catch-alls, and two routes sharing a path with
//! different methods; 200 services answer on any host, 30 on an exact host and
//! 20 on a wildcard host. Lookups cycle through 1,024 prepared requests each:
//!
//! - `lookup/hit`: a route matches (every kind of path and host);
//! - `lookup/miss`: no route matches (404), some sharing a long prefix with routes;
//! - `lookup/method_not_allowed`: the path matches, the method does not (405).
//!
//! Start-up is what a new isolate does once: `Gateway::from_prepared` (read the
//! prepared form the build wrote of the validated file, `src/config/prepared.rs`:
//! compile its top level, index every route). The route table builds each bucket
//! of routes (see `src/route.rs`) on first use, and a route is parsed and
//! compiled on its first request, so `gateway_from_prepared_then_1024_requests`
//! adds what the first 1,024 requests of an isolate build. Beside it `Gateway::from_json`, which
//! also validates (what `gateway check` and the build do), and the parts
//! `config::load` and `RouteTable::build`.
//!
//! Timings here are native (x86-64); the Worker runs the same code as wasm in V8,
//! typically 1.5 to 3 times slower.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use edge_gateway::config::{self, Method};
use edge_gateway::gateway::Gateway;
use edge_gateway::route::{Match, RouteTable};
use serde_json::{json, Value};

const SERVICES: usize = 250;
const ROUTES_PER_SERVICE: usize = 40;
const ROUTES: usize = SERVICES * ROUTES_PER_SERVICE;
const REQUESTS: usize = 1024;

#[derive(Clone, Copy)]
enum HostKind {
    Any,
    Exact,
    Wildcard,
}

fn host_kind(service: usize) -> HostKind {
    match service {
        0..200 => HostKind::Any,
        200..230 => HostKind::Exact,
        _ => HostKind::Wildcard,
    }
}

/// The host a client sends for a service's routes.
fn request_host(service: usize) -> String {
    match host_kind(service) {
        HostKind::Any => "api.example.com".to_string(),
        HostKind::Exact => format!("api{service}.example.com"),
        HostKind::Wildcard => format!("acme.t{service}.example.com"),
    }
}

/// One generated route and a request that it answers.
struct Generated {
    route: Value,
    request_path: String,
    method: Method,
}

fn service_routes(s: usize) -> Vec<Generated> {
    let mut out = Vec::with_capacity(ROUTES_PER_SERVICE);
    let mut push = |id: String, path: String, methods: &[&str], request_path: String| {
        let mut route =
            json!({ "id": id, "path": path, "origin": format!("o{}", s % 8), "methods": methods });
        match host_kind(s) {
            HostKind::Any => {}
            HostKind::Exact => route["host"] = json!(format!("api{s}.example.com")),
            HostKind::Wildcard => route["host"] = json!(format!("*.t{s}.example.com")),
        }
        let method = Method::parse(methods[0]).expect("a known method");
        out.push(Generated {
            route,
            request_path,
            method,
        });
    };
    // 16 static paths.
    for k in 0..16 {
        let path = format!("/v1/svc{s}/r{k}");
        push(format!("s{s}-static-{k}"), path.clone(), &["GET"], path);
    }
    // 11 one-parameter paths, and a second route on the first of them (other methods).
    for k in 0..11 {
        push(
            format!("s{s}-param-{k}"),
            format!("/v1/svc{s}/r{k}/{{id}}"),
            &["GET"],
            format!("/v1/svc{s}/r{k}/{}", 1000 + k),
        );
    }
    push(
        format!("s{s}-param-0-write"),
        format!("/v1/svc{s}/r0/{{id}}"),
        &["PUT", "DELETE"],
        format!("/v1/svc{s}/r0/77"),
    );
    // 8 two-parameter paths.
    for k in 0..8 {
        push(
            format!("s{s}-nested-{k}"),
            format!("/v1/svc{s}/r{k}/{{id}}/items/{{item}}"),
            &["GET", "POST"],
            format!("/v1/svc{s}/r{k}/42/items/item-{k}"),
        );
    }
    // 4 catch-alls.
    for k in 0..4 {
        push(
            format!("s{s}-files-{k}"),
            format!("/files/svc{s}/b{k}/{{*rest}}"),
            &["GET"],
            format!("/files/svc{s}/b{k}/2026/reports/q{k}.csv"),
        );
    }
    out
}

struct Fixture {
    text: String,
    /// (host, path, method, expected route index)
    hits: Vec<(String, String, Method, usize)>,
    misses: Vec<(String, String, Method)>,
    not_allowed: Vec<(String, String, Method)>,
}

/// A small deterministic generator (no `rand` dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

fn fixture() -> Fixture {
    let mut routes = Vec::with_capacity(ROUTES);
    let mut requests = Vec::with_capacity(ROUTES);
    for s in 0..SERVICES {
        for g in service_routes(s) {
            requests.push((request_host(s), g.request_path, g.method, routes.len()));
            routes.push(g.route);
        }
    }
    assert_eq!(routes.len(), ROUTES);
    let origins: serde_json::Map<String, Value> = (0..8)
        .map(|i| {
            (
                format!("o{i}"),
                json!({ "regions": [
                    { "name": "eu", "url": format!("https://o{i}-eu.internal.example.com"), "serves": ["EU"] },
                    { "name": "us", "url": format!("https://o{i}-us.internal.example.com"), "serves": ["*"] }
                ] }),
            )
        })
        .collect();
    let text = serde_json::to_string(&json!({ "origins": origins, "routes": routes }))
        .expect("serializable");

    let mut rng = Lcg(0x5eed);
    let hits = (0..REQUESTS)
        .map(|_| requests[rng.next(requests.len())].clone())
        .collect();
    let misses = (0..REQUESTS)
        .map(|i| {
            let s = rng.next(SERVICES);
            let path = match i % 4 {
                // Shares "/v1/svcN/rK/" with real routes, then goes astray.
                0 => format!("/v1/svc{s}/r{}/1/unknown/deeper", rng.next(16)),
                1 => format!("/v1/svc{s}/nothing-here"),
                2 => format!("/v2/svc{s}/r1"),
                _ => format!("/static/assets/app-{i}.js"),
            };
            (request_host(s), path, Method::Get)
        })
        .collect();
    let not_allowed = (0..REQUESTS)
        .map(|_| {
            let s = rng.next(SERVICES);
            (
                request_host(s),
                format!("/v1/svc{s}/r{}", rng.next(16)),
                Method::Delete,
            )
        })
        .collect();
    Fixture {
        text,
        hits,
        misses,
        not_allowed,
    }
}

fn check(table: &RouteTable, f: &Fixture) {
    for (host, path, method, expected) in &f.hits {
        match table.lookup(host, path, Some(*method)) {
            Match::Found { route, .. } => assert_eq!(route, *expected, "{host} {path}"),
            other => panic!("{host} {path}: expected route {expected}, got {other:?}"),
        }
    }
    for (host, path, method) in &f.misses {
        assert_eq!(
            table.lookup(host, path, Some(*method)),
            Match::NotFound,
            "{host} {path}"
        );
    }
    for (host, path, method) in &f.not_allowed {
        assert!(
            matches!(
                table.lookup(host, path, Some(*method)),
                Match::MethodNotAllowed { .. }
            ),
            "{host} {path}"
        );
    }
}

fn routing(c: &mut Criterion) {
    let f = fixture();
    let gw = Gateway::from_json(&f.text, &|_| None).expect("the generated routes are valid");
    assert_eq!(gw.route_count(), ROUTES);
    check(&gw.table, &f);

    let mut group = c.benchmark_group("lookup_10k_routes");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut i = 0usize;
    group.bench_function("hit", |b| {
        b.iter(|| {
            let (host, path, method, _) = &f.hits[i % REQUESTS];
            i = i.wrapping_add(1);
            black_box(
                gw.table
                    .lookup(black_box(host), black_box(path), Some(*method)),
            );
        })
    });
    let mut i = 0usize;
    group.bench_function("miss", |b| {
        b.iter(|| {
            let (host, path, method) = &f.misses[i % REQUESTS];
            i = i.wrapping_add(1);
            black_box(
                gw.table
                    .lookup(black_box(host), black_box(path), Some(*method)),
            );
        })
    });
    let mut i = 0usize;
    group.bench_function("method_not_allowed", |b| {
        b.iter(|| {
            let (host, path, method) = &f.not_allowed[i % REQUESTS];
            i = i.wrapping_add(1);
            black_box(
                gw.table
                    .lookup(black_box(host), black_box(path), Some(*method)),
            );
        })
    });
    group.finish();

    let mut group = c.benchmark_group("startup_10k_routes");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // What the build embeds; an isolate holds it for its lifetime.
    let prepared: &'static str = {
        let file = config::load(&f.text).expect("valid");
        let text = config::prepared::write(&f.text, &file).expect("prepared");
        Box::leak(text.into_boxed_str())
    };
    // An isolate never drops its gateway: leave the drop out of the timing.
    group.bench_function("gateway_from_prepared", |b| {
        b.iter_with_large_drop(|| Gateway::from_prepared(black_box(prepared), &|_| None))
    });
    // The table's buckets and the routes are built on first use: start-up plus
    // the first requests of a busy isolate (1,024 requests over every kind of
    // route, most buckets, several hundred routes) shows what that defers.
    group.bench_function("gateway_from_prepared_then_1024_requests", |b| {
        b.iter_with_large_drop(|| {
            let gw = Gateway::from_prepared(black_box(prepared), &|_| None).expect("valid");
            for (host, path, method, _) in &f.hits {
                if let Match::Found { route, .. } = gw.table.lookup(host, path, Some(*method)) {
                    black_box(gw.route(route).expect("compiles"));
                }
            }
            gw
        })
    });
    group.bench_function("gateway_from_json", |b| {
        b.iter_with_large_drop(|| Gateway::from_json(black_box(&f.text), &|_| None))
    });
    group.bench_function("config_load", |b| {
        b.iter_with_large_drop(|| config::load(black_box(&f.text)))
    });
    let file = config::load(&f.text).expect("valid");
    group.bench_function("route_table_build", |b| {
        b.iter_with_large_drop(|| RouteTable::build(black_box(&file)))
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
