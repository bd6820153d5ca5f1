//! Rate limits

use super::*;

#[test]
fn a_limit_of_n_admits_exactly_n_then_429() {
    let w = world(config());
    for remaining in ["2", "1", "0"] {
        let out = w.send(&get("/rl/ip"));
        assert_eq!(out.status, 200);
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some(remaining));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(!out.has("retry-after"));
        assert!(out.flush_limits);
        assert_eq!(w.ports.last_record()["rate_limit"], "allowed");
    }
    for _ in 0..2 {
        let out = w.send(&get("/rl/ip"));
        let v = assert_problem(&out, 429, "rate-limited");
        assert_eq!(v["title"], "Rate limit exceeded");
        assert_eq!(out.h("retry-after").as_deref(), Some("60"));
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(out.flush_limits);
        assert_eq!(w.ports.last_record()["rate_limit"], "limited");
    }
    assert_eq!(w.ports.sent().len(), 3);
    // One blocking KV read for the cold counter, none of it a raw address.
    let reads = w.ports.kv_reads.borrow().clone();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(reads[0].starts_with("rl:rl-ip:"), "{reads:?}");
    assert!(!reads[0].contains("203.0.113.7"));

    // Later in the window the reset counts down; the next window admits again.
    w.ports.advance(30_000);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 429);
    assert_eq!(out.h("retry-after").as_deref(), Some("30"));
    w.ports.advance(30_000);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("2"));
}

#[test]
fn rate_limit_headers_are_on_every_answer_after_the_decision() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(200, &[("cache-control", "max-age=60"), ("etag", "\"e\"")]),
    );
    let expect = |out: &Out, remaining: &str| {
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"), "{out:#?}");
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some(remaining));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
    };
    let miss = w.send(&get("/crl").country("DE"));
    expect(&miss, "4");
    let hit = w.send(&get("/crl"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    expect(&hit, "3");
    let not_modified = w.send(&get("/crl").header("if-none-match", "\"e\""));
    assert_eq!(not_modified.status, 304);
    expect(&not_modified, "2");
    for region in [EU, US, AP] {
        w.ports.on(region, Outcome::Connect);
    }
    let failed = w.send(&get("/crl?other").country("DE"));
    assert_problem(&failed, 502, "bad-gateway");
    expect(&failed, "1");
    // A preflight is answered before the limit and does not count.
    let pre = w.send(&preflight("/crl", APP, "GET"));
    assert_eq!(pre.status, 204);
    assert!(!pre.has("ratelimit-limit"));
    expect(&w.send(&get("/crl")), "0");
}

#[test]
fn counters_are_per_key_value() {
    let w = world(config());
    // ip: another address has its own counter.
    for _ in 0..3 {
        assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.1")).status, 200);
    }
    assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.1")).status, 429);
    assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.2")).status, 200);
    // The header does not matter to an ip key.
    assert_eq!(
        w.send(&get("/rl/ip").ip("192.0.2.1").header("x-api-key", "z"))
            .status,
        429
    );

    // header:X-Api-Key: by header value, whatever the address.
    let keyed = |key: &str, ip: &str| get("/rl/key").header("X-API-KEY", key).ip(ip);
    assert_eq!(w.send(&keyed("k1", "192.0.2.1")).status, 200);
    assert_eq!(w.send(&keyed("k1", "192.0.2.2")).status, 200);
    assert_eq!(w.send(&keyed("k1", "192.0.2.3")).status, 429);
    assert_eq!(w.send(&keyed("k2", "192.0.2.3")).status, 200);
    // Without the header: one shared counter.
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.8")).status, 200);
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.9")).status, 200);
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.10")).status, 429);

    // sub: by verified subject, whatever the address.
    let alice = user("alice");
    let bob = user("bob");
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.1"))
            .status,
        200
    );
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.2"))
            .status,
        200
    );
    let out = w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.3"));
    assert_eq!(out.status, 429);
    assert_eq!(w.ports.last_record()["subject"], "alice");
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&bob).ip("192.0.2.3")).status,
        200
    );
    // A rejected token never counts.
    assert_eq!(w.send(&get("/rl/sub").bearer("x.y.z")).status, 401);
    assert_eq!(w.send(&get("/rl/sub").bearer(&bob)).status, 200);
    assert_eq!(w.send(&get("/rl/sub").bearer(&bob)).status, 429);

    // Routes do not share counters.
    assert_eq!(w.send(&get("/crl").ip("192.0.2.1")).status, 200);
}

#[test]
fn counts_of_other_isolates_read_from_kv_are_honoured() {
    let w = world(config());
    let limit = RateLimit {
        requests: 3,
        window_s: 60,
        key: KeyKind::Ip,
        scope: Default::default(),
        on_error: None,
    };
    let key = counter_key("rl-ip", &limit, Some("203.0.113.7"), T0_MS);
    w.ports
        .kv
        .borrow_mut()
        .insert(key.kv_key.clone(), json!({"other-isolate": 2}).to_string());
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(w.send(&get("/rl/ip")).status, 429);
    assert_eq!(*w.ports.kv_reads.borrow(), [key.kv_key]);
}

#[test]
fn a_failing_kv_fails_open_and_is_logged() {
    let w = world(config());
    w.ports.kv_fail.set(true);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("2"));
    assert!(out.flush_limits);
    let line = w.ports.last_record();
    assert_eq!(line["rate_limit"], "kv_error");
    let events: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "kv_error")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["op"], "get");
    assert!(events[0]["key"].as_str().unwrap().starts_with("rl:rl-ip:"));
    assert_eq!(events[0]["error"], "KV is down");

    // The isolate's own admissions stay exactly limited.
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 429);
}

#[test]
fn the_background_flush_brings_counts_to_kv_for_other_isolates() {
    let w = world(config());
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    let writes = w.ports.kv_writes.borrow().clone();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let (key, value, ttl) = &writes[0];
    assert!(key.starts_with("rl:rl-ip:"), "{key}");
    let entries: Value = serde_json::from_str(value).unwrap();
    let counted: u64 = entries
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2);
    assert!(*ttl >= 60);
    assert!(w.ports.events().iter().any(|e| e["event"] == "kv_write"));

    // Another isolate reads the two admissions: one of three is left.
    let other = world(config());
    *other.ports.kv.borrow_mut() = w.ports.kv.borrow().clone();
    let out = other.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(other.send(&get("/rl/ip")).status, 429);
}

#[test]
fn a_failed_kv_write_is_logged_and_retried() {
    let w = world(config());
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    w.ports.kv_fail.set(true);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    let failed: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "kv_error")
        .collect();
    assert!(failed.iter().any(|e| e["op"] == "put"), "{failed:?}");
    assert!(w.ports.kv.borrow().is_empty());
    // KV is back: the next flush writes the count.
    w.ports.kv_fail.set(false);
    w.ports.advance(30_000);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    assert_eq!(w.ports.kv.borrow().len(), 1);
}

#[test]
fn concurrent_requests_on_a_cold_counter_are_limited_exactly() {
    let w = world(config());
    let burst: Vec<Req> = (0..6).map(|_| get("/rl/ip")).collect();
    let outs = w.send_all(&burst);
    let allowed = outs.iter().filter(|o| o.status == 200).count();
    let limited = outs.iter().filter(|o| o.status == 429).count();
    assert_eq!((allowed, limited), (3, 3));
    assert_eq!(w.ports.kv_reads.borrow().len(), 1);
}

#[test]
fn flush_limits_is_asked_for_on_rate_limited_routes_only() {
    let w = world(config());
    // Admitted and forwarded, and denied (429): both ask for a flush.
    assert!(w.send(&get("/crl")).flush_limits);
    for n in 0..4 {
        // Distinct queries: misses, not hits (hits are covered by flush_limits_is_set_on_cache_hits).
        assert!(w.send(&get(&format!("/crl?n={n}"))).flush_limits);
    }
    let denied = w.send(&get("/crl"));
    assert_eq!(denied.status, 429);
    assert!(denied.flush_limits);
    // Routes without a limit, and answers before routing, never ask.
    assert!(!w.send(&get("/api/items/1")).flush_limits);
    assert!(!w.send(&get("/c/x")).flush_limits);
    assert!(!w.send(&get("/nope")).flush_limits);
    assert!(!w.send(&get("/__gateway/health")).flush_limits);
}

#[test]

fn flush_limits_is_set_on_cache_hits() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let miss = w.send(&get("/crl").country("DE"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert!(miss.flush_limits);
    // The hit is an admission: it counts (remaining went down).
    let hit = w.send(&get("/crl").country("DE"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("ratelimit-remaining").as_deref(), Some("3"));
    assert!(hit.flush_limits, "a cache hit was admitted but not flushed");
}

#[test]

fn flush_limits_is_set_when_the_upstream_fails() {
    let w = world(config());
    for (outcome, status) in [(Outcome::Connect, 502), (Outcome::Timeout, 504)] {
        w.ports.on("http://", outcome);
        let out = w.send(&get("/rl/ip"));
        assert_eq!(out.status, status);
        assert!(out.has("ratelimit-remaining"));
        assert!(out.flush_limits, "an admitted {status} was not flushed");
    }
}
