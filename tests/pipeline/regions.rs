//! Regions

use super::*;

#[test]
fn region_is_chosen_by_country_then_continent_then_wildcard_then_first() {
    let w = world(config());
    let cases = [
        (Some("DE"), Some("EU"), EU),
        (Some("gb"), Some("EU"), EU), // country listed directly, any case
        (Some("GB"), Some("NA"), EU), // the country wins over the continent
        (Some("US"), Some("NA"), US),
        (None, Some("na"), US),
        (Some("FR"), Some("EU"), EU),
        (Some("JP"), Some("AS"), AP), // nothing listed: the wildcard
        (None, None, AP),
    ];
    for (country, continent, base) in cases {
        w.ports.clear_sent();
        let mut r = get("/api/items/1");
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        w.send(&r);
        assert_eq!(
            w.ports.sent_urls(),
            [format!("{base}/api/items/1")],
            "{country:?} {continent:?}"
        );
    }
    // No wildcard: the first region; a continent, a country.
    for (country, continent, base) in [
        (Some("US"), Some("NA"), "http://one.test"),
        (None, None, "http://one.test"),
        (Some("FR"), None, "http://one.test"),
        (Some("JP"), Some("AS"), "http://two.test"),
    ] {
        w.ports.clear_sent();
        let mut r = get("/plain");
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        w.send(&r);
        assert_eq!(w.ports.sent_urls(), [format!("{base}/plain")]);
    }
}

#[test]
fn get_fails_over_in_wrap_around_order_each_region_once() {
    let w = world(config());
    // us chosen: then ap, then eu (wrapping around); every one fails.
    w.ports.on(US, Outcome::Connect);
    w.ports.on(AP, Outcome::Timeout);
    w.ports.on(
        EU,
        respond(503, &[("content-type", "text/html"), ("retry-after", "3")]),
    );
    let out = w.send(&get("/api/items/1").continent("NA"));
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://us.api.test/api/items/1",
            "http://ap.api.test/base/api/items/1",
            "http://eu.api.test/api/items/1"
        ]
    );
    // The last attempt's answer is the origin's own 503, passed on.
    assert_eq!(out.status, 503);
    assert_eq!(out.h("content-type").as_deref(), Some("text/html"));
    assert_eq!(out.h("retry-after").as_deref(), Some("3"));
    let line = w.ports.last_record();
    assert_eq!(line["failovers"], 2);
    assert_eq!(line["region"], "eu");
    assert_eq!(line["upstream_status"], 503);
    assert_eq!(
        line["attempts"],
        json!([
            {"region": "us", "error": "connect", "ms": 1},
            {"region": "ap", "error": "timeout", "ms": 5000},
            {"region": "eu", "status": 503, "ms": FETCH_MS}
        ])
    );

    // 502 and 504 fail over too; the first success ends it.
    for failing in [502, 504] {
        w.ports.clear_sent();
        w.ports.on(EU, respond(failing, &[]));
        w.ports.on(US, respond(200, &[]));
        let out = w.send(&get("/api/items/2").country("DE"));
        assert_eq!(out.status, 200);
        assert_eq!(
            w.ports.sent_urls(),
            [
                "http://eu.api.test/api/items/2",
                "http://us.api.test/api/items/2"
            ]
        );
        assert_eq!(w.ports.last_record()["region"], "us");
        assert_eq!(w.ports.last_record()["failovers"], 1);
    }

    // 500 and 404 are the origin's answers: no failover.
    for status in [500, 404, 429] {
        w.ports.clear_sent();
        w.ports.on(EU, respond(status, &[]));
        let out = w.send(&get("/api/items/3").country("DE"));
        assert_eq!(out.status, status);
        assert_eq!(w.ports.sent_urls().len(), 1);
    }
}

#[test]
fn a_status_no_response_can_carry_is_a_502_and_fails_over() {
    // The runtime's parser lets `HTTP/1.1 999` or `HTTP/1.1 2x0` (status 2) through.
    for bad in [2, 99, 600, 999] {
        let w = world(config());
        w.ports.on("http://", respond(bad, &[]));
        let out = w.send(&get("/api/items/1"));
        let v = assert_problem(&out, 502, "bad-gateway");
        assert_eq!(v["detail"], "the origin sent an invalid response");
        assert_eq!(w.ports.sent().len(), 3, "each region tried once");
        let line = w.ports.last_record();
        assert_eq!(line["attempts"][0]["error"], "invalid_response", "{line}");
        // A POST is not retried.
        w.ports.clear_sent();
        let out = w.send(&req("POST", "/api/orders"));
        assert_eq!(out.status, 502);
        assert_eq!(w.ports.sent().len(), 1);
    }
}

#[test]
fn the_last_failure_decides_the_answer_when_every_region_fails() {
    let w = world(config());
    w.ports.on("http://", Outcome::Connect);
    let out = w.send(&get("/api/items/1"));
    let v = assert_problem(&out, 502, "bad-gateway");
    assert_eq!(v["detail"], "the origin could not be reached");
    assert_eq!(w.ports.sent().len(), 3);

    w.ports.clear_sent();
    w.ports.on("http://", Outcome::Timeout);
    let out = w.send(&get("/api/items/1"));
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 3);

    // Mixed: the last attempt was a timeout.
    w.ports.clear_sent();
    w.ports.on(AP, Outcome::Connect);
    w.ports.on(EU, respond(502, &[]));
    w.ports.on(US, Outcome::Timeout);
    let out = w.send(&get("/api/items/1").continent("OC"));
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://ap.api.test/base/api/items/1",
            "http://eu.api.test/api/items/1",
            "http://us.api.test/api/items/1"
        ]
    );
}

#[test]
fn post_and_requests_with_a_body_are_never_retried() {
    let w = world(config());
    // Sent once, even though the next region would answer.
    w.ports.once(EU, Outcome::Connect);
    let out = w.send(&req("POST", "/api/orders").country("DE").with_body());
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(w.ports.sent_urls(), ["http://eu.api.test/api/orders"]);
    assert_eq!(w.ports.last_record()["failovers"], 0);
    assert_eq!(
        w.send(&req("POST", "/api/orders").country("DE")).status,
        200
    );

    w.ports.on(EU, Outcome::Connect);

    w.ports.clear_sent();
    let out = w.send(&req("POST", "/api/orders").country("DE"));
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(w.ports.sent().len(), 1);

    w.ports.clear_sent();
    w.ports.on(EU, respond(503, &[]));
    let out = w.send(&req("POST", "/api/orders").country("DE"));
    assert_eq!(out.status, 503);
    assert_eq!(w.ports.sent().len(), 1);

    w.ports.clear_sent();
    w.ports.on(EU, Outcome::Timeout);
    let out = w.send(&req("PUT", "/api/orders").country("DE").with_body());
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 1);

    // A GET or HEAD with a body is refused outright (it cannot be sent on).
    w.ports.clear_sent();
    let out = w.send(&get("/api/items/1").country("DE").with_body());
    assert_problem(&out, 400, "bad-request");
    let out = w.send(&req("HEAD", "/api/items/1").country("DE").with_body());
    assert_eq!(out.status, 400);
    assert!(w.ports.sent().is_empty());

    // A PUT without a body is idempotent: it fails over.
    w.ports.clear_sent();
    let out = w.send(&req("PUT", "/api/orders").country("DE"));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent().len(), 2);
    assert_eq!(w.ports.sent()[1].method, Method::Put);
}

fn breaker_events(w: &World) -> Vec<(String, String)> {
    w.ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "circuit_breaker")
        .map(|e| {
            assert_eq!(e["origin"], "cb");
            (
                e["region"].as_str().unwrap().to_string(),
                e["transition"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(region: &str, transition: &str) -> (String, String) {
    (region.to_string(), transition.to_string())
}

#[test]
fn breaker_opens_after_n_failures_and_admits_one_trial_after_the_cooldown() {
    let w = world(config());
    w.ports.on("http://a.cb.test", Outcome::Connect);
    w.ports.on("http://b.cb.test", respond(200, &[]));

    for _ in 0..2 {
        let out = w.send(&get("/cb"));
        assert_eq!(out.status, 200);
    }
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://a.cb.test/cb",
            "http://b.cb.test/cb",
            "http://a.cb.test/cb",
            "http://b.cb.test/cb"
        ]
    );
    assert_eq!(breaker_events(&w), [ev("a", "closed->open")]);

    // Open: region a is no longer fetched.
    w.ports.clear_sent();
    for _ in 0..3 {
        assert_eq!(w.send(&get("/cb")).status, 200);
        assert_eq!(w.ports.last_record()["failovers"], 0);
    }
    w.ports.advance(29_000);
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://b.cb.test/cb"; 4]);

    // After the cooldown, one trial; while it is in flight the others skip a.
    w.ports.advance(1_000);
    w.ports.clear_sent();
    let outs = w.send_all(&[get("/cb"), get("/cb"), get("/cb")]);
    assert!(outs.iter().all(|o| o.status == 200));
    let to_a = w
        .ports
        .sent_urls()
        .iter()
        .filter(|u| u.contains("a.cb"))
        .count();
    assert_eq!(to_a, 1, "{:?}", w.ports.sent_urls());
    assert_eq!(
        breaker_events(&w),
        [
            ev("a", "closed->open"),
            ev("a", "open->half_open"),
            ev("a", "half_open->open")
        ]
    );

    // Open again for another cooldown; then a trial that succeeds closes it.
    w.ports.clear_sent();
    w.send(&get("/cb"));
    assert_eq!(w.ports.sent_urls(), ["http://b.cb.test/cb"]);
    w.ports.advance(30_000);
    w.ports.on("http://a.cb.test", respond(200, &[]));
    w.ports.clear_sent();
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(
        w.ports.sent_urls(),
        ["http://a.cb.test/cb", "http://a.cb.test/cb"]
    );
    assert_eq!(
        breaker_events(&w)[3..],
        [ev("a", "open->half_open"), ev("a", "half_open->closed")]
    );
}

#[test]
fn all_regions_open_is_503_without_any_fetch() {
    let w = world(config());
    w.ports.on("http://a.cb.test", respond(503, &[]));
    w.ports.on("http://b.cb.test", Outcome::Timeout);
    assert_problem(&w.send(&get("/cb")), 504, "gateway-timeout");
    assert_problem(&w.send(&get("/cb")), 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 4);
    assert_eq!(
        breaker_events(&w),
        [ev("a", "closed->open"), ev("b", "closed->open")]
    );

    w.ports.clear_sent();
    for r in [get("/cb"), req("POST", "/cb"), req("HEAD", "/cb")] {
        let out = w.send(&r);
        assert_eq!(out.status, 503);
        if r.method != "HEAD" {
            let v = assert_problem(&out, 503, "unavailable");
            assert!(
                v["detail"].as_str().unwrap().contains("every region"),
                "{v}"
            );
        }
        assert_eq!(out.h("retry-after").as_deref(), Some("5"));
        let line = w.ports.last_record();
        assert_eq!(line["status"], 503);
        assert!(line.get("attempts").is_none(), "{line}");
        assert!(line.get("region").is_none(), "{line}");
        assert_eq!(line["failovers"], 0);
    }
    assert!(w.ports.sent().is_empty());

    // Other origins are not affected.
    assert_eq!(w.send(&get("/api/items/1")).status, 200);
}

#[test]
fn a_service_binding_region_goes_through_the_binding_and_fails_over_like_a_url() {
    let w = world(json!({
        "origins": {"users": {
            "regions": [
                {"name": "local", "service": "USERS", "serves": ["*"]},
                {"name": "remote", "url": "http://remote.test/base"}
            ],
            "timeout_ms": 500,
            "circuit_breaker": {"failures": 1, "cooldown_s": 30}
        }},
        "routes": [{"id": "u", "path": "/u/{id}", "origin": "users", "rewrite": "/v1/users/{id}"}]
    }));
    let out = w.send(&get("/u/7?x=1").header("x-forwarded-for", "6.6.6.6"));
    assert_eq!(out.status, 200);
    let sent = w.ports.sent();
    assert_eq!(sent[0].service.as_deref(), Some("USERS"));
    assert_eq!(sent[0].url, "https://users.service/v1/users/7?x=1");
    // The same header rules as a URL region.
    assert_eq!(sent[0].h("x-forwarded-for").as_deref(), Some("203.0.113.7"));
    assert_eq!(sent[0].timeout_ms, 500);
    assert_eq!(w.ports.last_record()["region"], "local");

    // The binding's Worker fails: failover to the URL region, the breaker opens.
    w.ports.on("https://users.service/", respond(503, &[]));
    w.ports.clear_sent();
    let out = w.send(&get("/u/8"));
    assert_eq!(out.status, 200);
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].service, None);
    assert_eq!(sent[1].url, "http://remote.test/base/v1/users/8");
    w.ports.clear_sent();
    assert_eq!(w.send(&get("/u/9")).status, 200);
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1, "the open breaker skips the binding");
    assert_eq!(sent[0].service, None);
}

#[test]
fn a_weighted_split_spreads_requests_and_a_sticky_key_keeps_its_origin() {
    let w = world(json!({
        "origins": {
            "v1": {"regions": [{"name": "one", "url": "http://v1.test"}], "timeout_ms": 700},
            "v2": {"regions": [{"name": "two", "url": "http://v2.test"}], "timeout_ms": 900}
        },
        "routes": [
            {"id": "split", "path": "/s", "origin": [{"origin": "v1", "weight": 75}, {"origin": "v2", "weight": 25}]},
            {"id": "sticky", "path": "/k", "origin": [{"origin": "v1", "weight": 50}, {"origin": "v2", "weight": 50}],
             "sticky": "header:x-user"},
            {"id": "drain", "path": "/d", "origin": [{"origin": "v1", "weight": 0}, {"origin": "v2", "weight": 1}]}
        ]
    }));
    for _ in 0..400 {
        assert_eq!(w.send(&get("/s")).status, 200);
    }
    let sent = w.ports.sent();
    let v1 = sent
        .iter()
        .filter(|s| s.url.starts_with("http://v1.test"))
        .count();
    assert!((240..=360).contains(&v1), "{v1} of 400 to v1 (75 %)");
    // Each origin's own timeout.
    assert!(sent.iter().all(|s| s.timeout_ms
        == if s.url.starts_with("http://v1") {
            700
        } else {
            900
        }));
    let records = w.ports.records();
    assert!(records
        .iter()
        .all(|r| r["origin"] == "v1" || r["origin"] == "v2"));
    assert_eq!(
        records.iter().filter(|r| r["origin"] == "v1").count(),
        v1,
        "the log line names the origin chosen"
    );

    // The same key value, the same origin, every time; different values spread.
    w.ports.clear_sent();
    let mut by_user = std::collections::BTreeMap::new();
    for round in 0..5 {
        for user in 0..40 {
            w.send(&get("/k").header("x-user", &format!("user-{user}")));
            let url = w.ports.sent().last().unwrap().url.clone();
            let first = by_user.entry(user).or_insert_with(|| url.clone());
            assert_eq!(*first, url, "user-{user} moved in round {round}");
        }
    }
    let on_v1 = by_user
        .values()
        .filter(|u| u.starts_with("http://v1"))
        .count();
    assert!((8..=32).contains(&on_v1), "{on_v1} of 40 users on v1");

    // Weight 0: drained.
    w.ports.clear_sent();
    for _ in 0..20 {
        w.send(&get("/d"));
    }
    assert!(w
        .ports
        .sent()
        .iter()
        .all(|s| s.url.starts_with("http://v2.test")));
}

#[test]
fn a_retry_budget_keeps_failovers_within_its_share_of_requests() {
    let w = world(json!({
        "origins": {"api": {
            "regions": [
                {"name": "first", "url": "http://first.test", "serves": ["*"]},
                {"name": "second", "url": "http://second.test"}
            ],
            "retry_budget_percent": 20
        }},
        "routes": [{"id": "r", "path": "/r", "origin": "api"}]
    }));
    w.ports.on("http://first.test/", respond(503, &[]));
    let statuses: Vec<u16> = (0..50).map(|_| w.send(&get("/r")).status).collect();
    // One failover (answered 200 by the second region) per five requests.
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 40);
    let records = w.ports.records();
    assert_eq!(
        records
            .iter()
            .filter(|r| r["retry_budget_exhausted"] == true)
            .count(),
        40
    );
    assert_eq!(records.iter().filter(|r| r["failovers"] == 1).count(), 10);
    let to_second = w
        .ports
        .sent()
        .iter()
        .filter(|s| s.url.starts_with("http://second"))
        .count();
    assert_eq!(to_second, 10);
    // Ten seconds later the window has moved on: the old requests no longer count.
    w.ports.advance(10_000);
    assert_eq!(
        w.send(&get("/r")).status,
        503,
        "1 request: 20 % of it is no failover"
    );
}

fn hedge_config(budget_percent: u32) -> Value {
    json!({
        "origins": {"api": {
            "regions": [
                {"name": "slow", "url": "http://slow.test", "serves": ["*"]},
                {"name": "fast", "url": "http://fast.test"}
            ],
            "timeout_ms": 5000,
            "hedge": {"after_ms": 100, "budget_percent": budget_percent}
        }},
        "routes": [{"id": "h", "path": "/h", "origin": "api"}]
    })
}

#[test]
fn a_slow_first_attempt_is_hedged_the_first_good_answer_wins_and_the_loser_is_cancelled() {
    let w = world(hedge_config(100));
    w.ports.on("http://slow.test/", Outcome::Slow(1000, 200));
    let started = w.ports.now_ms();
    let out = w.send(&get("/h"));
    assert_eq!(out.status, 200);
    assert!(
        out.body.as_deref().unwrap().contains("http://fast.test/h"),
        "{out:?}"
    );
    assert!(
        w.ports.now_ms() - started < 300,
        "the answer waited for the slow region"
    );
    let sent = w.ports.sent_urls();
    assert_eq!(sent, ["http://slow.test/h", "http://fast.test/h"]);
    let line = w.ports.last_record();
    assert_eq!(line["hedge"], "sent");
    assert_eq!(line["region"], "fast");
    assert_eq!(line["failovers"], 0);
    let attempts = line["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{line}");
    assert!(attempts
        .iter()
        .any(|a| a["region"] == "slow" && a["error"] == "cancelled"));
    assert!(attempts
        .iter()
        .any(|a| a["region"] == "fast" && a["status"] == 200));
}

#[test]
fn a_first_attempt_that_answers_in_time_is_not_hedged() {
    let w = world(hedge_config(100));
    w.ports.on("http://slow.test/", Outcome::Slow(50, 200));
    assert_eq!(w.send(&get("/h")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://slow.test/h"]);
    assert!(w.ports.last_record().get("hedge").is_none());
}

#[test]
fn hedges_stay_within_their_budget_and_never_hedge_a_body_or_a_post() {
    let w = world(hedge_config(10));
    w.ports.on("http://slow.test/", Outcome::Slow(150, 200));
    for _ in 0..30 {
        assert_eq!(w.send(&get("/h")).status, 200);
    }
    let records = w.ports.records();
    let hedged = records.iter().filter(|r| r["hedge"] == "sent").count();
    assert_eq!(hedged, 3, "10 % of 30");
    assert_eq!(
        records.iter().filter(|r| r["hedge"] == "budget").count(),
        27
    );
    w.ports.clear_sent();
    let post = w.send(&req("POST", "/h").header("content-length", "2").with_body());
    assert_eq!(post.status, 200);
    assert_eq!(
        w.ports.sent().len(),
        1,
        "a request with a body is never sent twice"
    );
}

#[test]
fn when_the_hedge_fails_the_first_attempt_still_answers() {
    let w = world(hedge_config(100));
    w.ports.on("http://slow.test/", Outcome::Slow(400, 200));
    w.ports.on("http://fast.test/", respond(503, &[]));
    let out = w.send(&get("/h"));
    assert_eq!(out.status, 200);
    assert!(out.body.as_deref().unwrap().contains("http://slow.test/h"));
    let line = w.ports.last_record();
    let attempts = line["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{line}");
    assert!(attempts
        .iter()
        .any(|a| a["region"] == "fast" && a["status"] == 503));
    assert!(attempts
        .iter()
        .any(|a| a["region"] == "slow" && a["status"] == 200));
}
