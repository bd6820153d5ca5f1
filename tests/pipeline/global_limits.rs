//! Global rate limits (leases from a Durable Object, here an in-memory book)

use super::*;

fn global_config() -> Value {
    json!({
        "origins": {"api": {"regions": [{"name": "one", "url": "http://one.test", "serves": ["*"]}]}},
        "routes": [
            {"id": "g", "path": "/g", "origin": "api",
             "rate_limit": {"requests": 5, "window_s": 60, "key": "route", "scope": "global"}},
            {"id": "g-deny", "path": "/g-deny", "origin": "api",
             "rate_limit": {"requests": 5, "window_s": 60, "key": "route", "scope": "global", "on_error": "deny"}},
            {"id": "g-high", "path": "/g-high", "origin": "api",
             "rate_limit": {"requests": 1000000, "window_s": 60, "key": "ip", "scope": "global"}}
        ]
    })
}

#[test]
fn a_global_limit_admits_exactly_n_across_isolates_with_headers_and_429s() {
    let w = world(global_config());
    let other = IsolateState::new(&w.gw, "iso2".into());
    let burst: Vec<(Option<&IsolateState>, Req)> = (0..20)
        .map(|i| (if i % 2 == 0 { None } else { Some(&other) }, get("/g")))
        .collect();
    let outs = w.send_all_via(&burst);
    let ok: Vec<&Out> = outs.iter().filter(|o| o.status == 200).collect();
    assert_eq!(
        ok.len(),
        5,
        "{:?}",
        outs.iter().map(|o| o.status).collect::<Vec<_>>()
    );
    for out in &outs {
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(!out.flush_limits, "global limits never write KV");
    }
    for out in outs.iter().filter(|o| o.status != 200) {
        assert_problem(out, 429, "rate-limited");
        assert_eq!(out.h("retry-after").as_deref(), Some("60"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    }
    // Both isolates asked; the object's name carries no key value.
    let calls = w.ports.limiter_calls.borrow().clone();
    assert!(calls.iter().any(|c| c.holder == "iso1") && calls.iter().any(|c| c.holder == "iso2"));
    assert!(calls.iter().all(|c| c.counter.starts_with("rl:g:")));
    assert!(calls.len() < 20, "{} calls", calls.len());
    assert!(w.ports.kv_reads.borrow().is_empty());
    let records = w.ports.records();
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rate_limit"] == "allowed")
            .count(),
        5
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rate_limit"] == "limited")
            .count(),
        15
    );
    // Exhausted: the next requests are refused without asking.
    let before = w.ports.limiter_calls.borrow().len();
    assert_eq!(w.send(&get("/g")).status, 429);
    assert_eq!(w.ports.limiter_calls.borrow().len(), before);
    // The next window has the whole budget again.
    w.ports.advance(60_000);
    let outs = w.send_all(&(0..8).map(|_| get("/g")).collect::<Vec<_>>());
    assert_eq!(outs.iter().filter(|o| o.status == 200).count(), 5);
}

#[test]
fn concurrent_requests_of_one_isolate_share_one_limiter_call() {
    let w = world(global_config());
    let outs = w.send_all(&(0..4).map(|_| get("/g")).collect::<Vec<_>>());
    assert!(outs.iter().all(|o| o.status == 200));
    // The first call asks for 1; the three queued behind it ask in one call,
    // which gets half of the 4 left (2); the last one asks once more.
    let calls = w.ports.limiter_calls.borrow().clone();
    let wants: Vec<u64> = calls.iter().map(|c| c.want).collect();
    assert_eq!(wants, vec![1, 3, 1]);
}

#[test]
fn a_high_global_limit_costs_few_limiter_calls() {
    let w = world(global_config());
    for _ in 0..2_000 {
        assert_eq!(w.send(&get("/g-high")).status, 200);
        // What the edge runs after answering.
        let due = w.state.leases.borrow_mut().take_due(w.ports.now_ms());
        for c in due.calls {
            let reply = block_on(w.ports.limiter_call(&c.body));
            w.state
                .leases
                .borrow_mut()
                .on_reply(&c, reply.map_err(|_| ()), w.ports.now_ms());
        }
    }
    let calls = w.ports.limiter_calls.borrow().len();
    assert!(calls <= 40, "{calls} limiter calls for 2,000 requests");
}

#[test]
fn an_unreachable_limiter_fails_open_and_is_logged_unless_on_error_is_deny() {
    let w = world(global_config());
    w.ports.limiter_fail.set(true);
    let out = w.send(&get("/g"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(w.ports.last_record()["rate_limit"], "limiter_error");
    let events = w.ports.events();
    let e = events
        .iter()
        .find(|e| e["event"] == "limiter_error")
        .expect("an event");
    assert_eq!(e["route"], "g");
    assert_eq!(e["error"], "limiter unreachable");

    let out = w.send(&get("/g-deny"));
    let v = assert_problem(&out, 503, "unavailable");
    assert_eq!(v["status"], 503);
    assert_eq!(out.h("retry-after").as_deref(), Some("1"));
    assert_eq!(w.ports.last_record()["rate_limit"], "limiter_error");
    assert_eq!(
        w.ports.sent().len(),
        1,
        "a denied request never reaches the origin"
    );

    // Back: after the retry spacing the limiter is asked again and counts.
    w.ports.limiter_fail.set(false);
    w.ports.advance(1_000);
    assert_eq!(w.send(&get("/g-deny")).status, 200);
    assert_eq!(w.ports.last_record()["rate_limit"], "allowed");
}
