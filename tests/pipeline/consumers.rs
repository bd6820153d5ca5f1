//! Consumers: the admin API, API keys on routes, plans, quotas.

use super::*;

fn consumers_config() -> Value {
    json!({
        "origins": {"api": {"regions": [{"name": "one", "url": "http://one.test", "serves": ["*"]}]}},
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "plans": {
            "free": {"rate_limit": {"requests": 3, "window_s": 60}},
            "pro": {"quota": {"requests": 30, "period": "day"}},
            "tiny": {"quota": {"requests": 2, "period": "month"}}
        },
        "routes": [
            {"id": "any", "path": "/any", "origin": "api", "auth": {"api_key": {}}},
            {"id": "pro-only", "path": "/pro", "origin": "api", "auth": {"api_key": {"plans": ["pro"]}}},
            {"id": "either", "path": "/either", "origin": "api",
             "auth": [{"jwt": "hs", "scopes": ["read"]}, {"api_key": {"plans": ["pro", "free"]}}]},
            {"id": "open", "path": "/open", "origin": "api"},
            {"id": "cached", "path": "/cached", "origin": "api", "auth": {"api_key": {}},
             "cache": {"ttl_s": 60}},
            {"id": "per-consumer", "path": "/per-consumer", "origin": "api", "auth": {"api_key": {}},
             "rate_limit": {"requests": 1, "window_s": 60, "key": "consumer"}}
        ]
    })
}

fn admin(method: &str, path: &str) -> Req {
    req(method, &format!("/__gateway/consumers{path}")).bearer(ADMIN_TOKEN)
}

impl World {
    /// An admin request with a JSON body.
    fn admin_send(&self, method: &str, path: &str, body: Option<Value>) -> Out {
        let mut r = admin(method, path);
        if let Some(body) = body {
            r = r
                .header("content-type", "application/json")
                .body(body.to_string().as_bytes());
        }
        self.send(&r)
    }

    /// Creates a consumer with one key; returns the key.
    fn consumer_with_key(&self, id: &str, plan: &str) -> String {
        let created = self.admin_send("POST", "", Some(json!({"id": id, "plan": plan})));
        assert_eq!(created.status, 201, "{created:?}");
        let key = self.admin_send("POST", &format!("/{id}/keys"), None);
        assert_eq!(key.status, 201, "{key:?}");
        key.json()["key"].as_str().unwrap().to_string()
    }
}

fn with_key(path: &str, key: &str) -> Req {
    get(path).header("x-api-key", key)
}

#[test]
fn the_admin_lifecycle_with_its_errors() {
    let w = world(consumers_config());
    // Without the admin token, or with a wrong one: 401, nothing changes.
    let body = json!({"id": "acme", "plan": "pro"}).to_string();
    let anonymous = w.send(&req("POST", "/__gateway/consumers").body(body.as_bytes()));
    assert_problem(&anonymous, 401, "unauthorized");
    let wrong = w.send(
        &req("POST", "/__gateway/consumers")
            .bearer("nope")
            .body(body.as_bytes()),
    );
    assert_problem(&wrong, 401, "unauthorized");
    assert!(w.ports.kv.borrow().is_empty());

    let created = w.admin_send(
        "POST",
        "",
        Some(json!({"id": "acme", "plan": "pro", "metadata": {"team": "billing"}})),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["plan"], "pro");
    assert_eq!(created.h("cache-control").as_deref(), Some("no-store"));
    let again = w.admin_send("POST", "", Some(json!({"id": "acme", "plan": "pro"})));
    assert_problem(&again, 409, "conflict");
    let unknown_plan = w.admin_send("POST", "", Some(json!({"id": "b", "plan": "gold"})));
    assert_problem(&unknown_plan, 400, "bad-request");
    let bad_id = w.admin_send("POST", "", Some(json!({"id": "a b", "plan": "pro"})));
    assert_problem(&bad_id, 400, "bad-request");
    let extra = w.admin_send(
        "POST",
        "",
        Some(json!({"id": "c", "plan": "pro", "key": "x"})),
    );
    assert_problem(&extra, 400, "bad-request");
    assert_problem(&w.admin_send("GET", "/nobody", None), 404, "not-found");
    assert_problem(
        &w.admin_send("PUT", "/acme", None),
        405,
        "method-not-allowed",
    );

    let key = w.admin_send("POST", "/acme/keys", None);
    assert_eq!(key.status, 201);
    let key_body = key.json();
    let secret = key_body["key"].as_str().unwrap().to_string();
    let key_id = key_body["key_id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("gwk_") && secret.len() == 42, "{secret}");

    let read = w.admin_send("GET", "/acme", None);
    assert_eq!(read.status, 200);
    let v = read.json();
    assert_eq!(v["plan"], "pro");
    assert_eq!(v["metadata"]["team"], "billing");
    assert_eq!(v["keys"][0]["key_id"], key_id.as_str());
    assert_eq!(v["keys"][0]["last4"], &secret[38..]);
    assert_eq!(v["quota"]["limit"], 30);
    assert_eq!(v["quota"]["used"], 0);
    assert!(!read.body.as_deref().unwrap().contains(&secret));
    assert!(!read.body.as_deref().unwrap().contains(&secret[4..20]));

    // The key works; the plan gates.
    assert_eq!(w.send(&with_key("/pro", &secret)).status, 200);
    let changed = w.admin_send("PATCH", "/acme", Some(json!({"plan": "free"})));
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json()["plan"], "free");
    // At once in this isolate.
    assert_problem(&w.send(&with_key("/pro", &secret)), 403, "forbidden");
    assert_eq!(w.send(&with_key("/any", &secret)).status, 200);

    // Revoked: refused at once.
    let bad_key_id = w.admin_send("DELETE", "/acme/keys/k_AAAAAAAAAAAA", None);
    assert_problem(&bad_key_id, 404, "not-found");
    let revoked = w.admin_send("DELETE", &format!("/acme/keys/{key_id}"), None);
    assert_eq!(revoked.status, 204);
    assert_problem(&w.send(&with_key("/any", &secret)), 401, "unauthorized");
    // Even when this isolate forgets: the record is gone from KV.
    let fresh = IsolateState::new(&w.gw, "iso2".into());
    let out = w.send_all_via(&[(Some(&fresh), with_key("/any", &secret))]);
    assert_problem(&out[0], 401, "unauthorized");

    // A deleted consumer's keys stop working.
    let second = w.admin_send("POST", "/acme/keys", None).json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w.send(&with_key("/any", &second)).status, 200);
    assert_eq!(w.admin_send("DELETE", "/acme", None).status, 204);
    assert_problem(&w.send(&with_key("/any", &second)), 401, "unauthorized");
    assert_problem(&w.admin_send("GET", "/acme", None), 404, "not-found");

    // No key in plain text at rest, nor in a log line.
    for (k, v) in w.ports.kv.borrow().iter() {
        for s in [&secret, &second] {
            assert!(
                !k.contains(s.as_str()) && !v.contains(s.as_str()),
                "{k} = {v}"
            );
            assert!(!v.contains(&s[4..36]), "{k} = {v}");
        }
    }
    for line in w.ports.records.borrow().iter() {
        assert!(
            !line.contains(&secret[4..36]) && !line.contains(&second[4..36]),
            "{line}"
        );
    }
}

#[test]
fn the_origin_sees_the_consumer_never_the_key_and_forged_headers_are_stripped() {
    let w = world(consumers_config());
    let key = w.consumer_with_key("acme", "pro");
    let out = w.send(
        &with_key("/any", &key)
            .header("x-consumer-id", "forged")
            .header("x-consumer-plan", "enterprise"),
    );
    assert_eq!(out.status, 200);
    let sent = w.ports.sent();
    let up = sent.last().unwrap();
    assert_eq!(up.h("x-consumer-id").as_deref(), Some("acme"));
    assert_eq!(up.h("x-consumer-plan").as_deref(), Some("pro"));
    assert_eq!(up.h("x-api-key"), None);
    let line = w.ports.last_record();
    assert_eq!(line["consumer"], "acme");
    assert_eq!(line["api_key"], "valid");
    // On a route without auth, client copies are stripped too.
    w.ports.clear_sent();
    let open = w.send(
        &get("/open")
            .header("x-consumer-id", "forged")
            .header("X-Consumer-Plan", "enterprise"),
    );
    assert_eq!(open.status, 200);
    let up = &w.ports.sent()[0];
    assert_eq!(up.h("x-consumer-id"), None);
    assert_eq!(up.h("x-consumer-plan"), None);
}

#[test]
fn malformed_keys_cost_no_kv_read_and_unknown_ones_one() {
    let w = world(consumers_config());
    let out = w.send(&with_key("/any", "gwk_not-a-real-key"));
    assert_problem(&out, 401, "unauthorized");
    assert!(w.ports.kv_reads.borrow().is_empty());
    let line = w.ports.last_record();
    assert_eq!(line["api_key"], "malformed");
    assert!(line.get("kv_reads").is_none(), "{line}");

    // Well formed but unknown: one read, then remembered briefly.
    let made_up = edge_gateway::policy::consumer::generate_key(&[9u8; 24]);
    for _ in 0..5 {
        assert_problem(&w.send(&with_key("/any", &made_up)), 401, "unauthorized");
    }
    assert_eq!(w.ports.kv_reads.borrow().len(), 1);
    assert_eq!(w.ports.records()[1]["kv_reads"], 1);
    assert_eq!(w.ports.records()[1]["api_key"], "unknown");
    w.ports
        .advance(edge_gateway::policy::consumer::NEGATIVE_TTL_MS);
    assert_problem(&w.send(&with_key("/any", &made_up)), 401, "unauthorized");
    assert_eq!(w.ports.kv_reads.borrow().len(), 2);

    // No credential at all: the schemes the route takes.
    let none = w.send(&get("/any"));
    assert_problem(&none, 401, "unauthorized");
    assert_eq!(
        none.h("www-authenticate").as_deref(),
        Some("ApiKey header=\"x-api-key\"")
    );
}

#[test]
fn kv_down_answers_503_not_500() {
    let w = world(consumers_config());
    w.ports.kv_fail.set(true);
    let made_up = edge_gateway::policy::consumer::generate_key(&[9u8; 24]);
    let out = w.send(&with_key("/any", &made_up));
    assert_problem(&out, 503, "unavailable");
    let create = w.admin_send("POST", "", Some(json!({"id": "acme", "plan": "pro"})));
    assert_problem(&create, 503, "unavailable");
}

#[test]
fn either_alternative_passes_a_list() {
    let w = world(consumers_config());
    let key = w.consumer_with_key("acme", "free");
    assert_eq!(w.send(&get("/either").bearer(&user("alice"))).status, 200);
    assert_eq!(w.ports.last_record()["subject"], "alice");
    assert_eq!(w.send(&with_key("/either", &key)).status, 200);
    assert_eq!(w.ports.last_record()["consumer"], "acme");
    let none = w.send(&get("/either"));
    assert_problem(&none, 401, "unauthorized");
    assert_eq!(
        none.h("www-authenticate").as_deref(),
        Some("Bearer, ApiKey header=\"x-api-key\"")
    );
    // A bad token with a good key: the key passes it.
    assert_eq!(
        w.send(&with_key("/either", &key).bearer("not.a.token"))
            .status,
        200
    );
    // A token lacking the scope: 403, as on a jwt route.
    let no_scope = hs_token(&hs_claims("bob", "write"));
    assert_problem(&w.send(&get("/either").bearer(&no_scope)), 403, "forbidden");
    // A plan the route does not list: 403.
    let tiny = w.consumer_with_key("small", "tiny");
    assert_problem(&w.send(&with_key("/either", &tiny)), 403, "forbidden");
    assert_eq!(w.ports.last_record()["api_key"], "plan_not_accepted");
}

#[test]
fn a_quota_is_exact_across_isolates_counts_down_and_resets_with_the_period() {
    let w = world(consumers_config());
    let key = w.consumer_with_key("acme", "pro");
    let other = IsolateState::new(&w.gw, "iso2".into());
    let burst: Vec<(Option<&IsolateState>, Req)> = (0..50)
        .map(|i| {
            let state = if i % 2 == 0 { None } else { Some(&other) };
            (state, with_key("/any", &key))
        })
        .collect();
    let outs = w.send_all_via(&burst);
    let ok = outs.iter().filter(|o| o.status == 200).count();
    assert_eq!(
        ok,
        30,
        "{:?}",
        outs.iter().map(|o| o.status).collect::<Vec<_>>()
    );
    for out in &outs {
        assert_eq!(out.h("x-quota-limit").as_deref(), Some("30"));
        let reset: u64 = out.h("x-quota-reset").unwrap().parse().unwrap();
        assert!(reset > 0 && reset <= 86_400, "{reset}");
    }
    for out in outs.iter().filter(|o| o.status != 200) {
        let v = assert_problem(out, 429, "quota-exceeded");
        assert_ne!(v["type"], "urn:edge-gateway:problem:rate-limited");
        assert_eq!(out.h("x-quota-remaining").as_deref(), Some("0"));
        assert_eq!(out.h("retry-after"), out.h("x-quota-reset"));
    }
    let records = w.ports.records();
    assert_eq!(
        records.iter().filter(|r| r["quota"] == "allowed").count(),
        30
    );
    assert_eq!(
        records.iter().filter(|r| r["quota"] == "exceeded").count(),
        20
    );

    // The next UTC day: a fresh quota.
    let now = w.ports.now_ms();
    let next_day = (now / 86_400_000 + 1) * 86_400_000;
    w.ports.advance(next_day - now);
    let out = w.send(&with_key("/any", &key));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("x-quota-reset").as_deref(), Some("86400"));
}

#[test]
fn quota_headers_count_down_in_one_isolate() {
    let w = world(consumers_config());
    let key = w.consumer_with_key("acme", "tiny");
    let first = w.send(&with_key("/any", &key));
    let second = w.send(&with_key("/any", &key));
    let third = w.send(&with_key("/any", &key));
    assert_eq!(first.h("x-quota-remaining").as_deref(), Some("1"));
    assert_eq!(second.h("x-quota-remaining").as_deref(), Some("0"));
    assert_problem(&third, 429, "quota-exceeded");
    // The admin view counts what is used.
    let read = w.admin_send("GET", "/acme", None).json();
    assert_eq!(read["quota"]["used"], 2, "{read}");
    assert_eq!(read["quota"]["period"], "month");
}

#[test]
fn a_plan_rate_limit_is_per_consumer_across_routes() {
    let w = world(consumers_config());
    let a = w.consumer_with_key("a", "free");
    let b = w.consumer_with_key("b", "free");
    assert_eq!(w.send(&with_key("/any", &a)).status, 200);
    assert_eq!(w.send(&with_key("/either", &a)).status, 200);
    assert_eq!(w.send(&with_key("/any", &a)).status, 200);
    let limited = w.send(&with_key("/either", &a));
    assert_problem(&limited, 429, "rate-limited");
    assert_eq!(w.ports.last_record()["plan_rate_limit"], "limited");
    assert_eq!(w.send(&with_key("/any", &b)).status, 200);
}

#[test]
fn rate_limit_key_consumer_counts_per_consumer() {
    let w = world(consumers_config());
    let a = w.consumer_with_key("a", "pro");
    let b = w.consumer_with_key("b", "pro");
    assert_eq!(w.send(&with_key("/per-consumer", &a)).status, 200);
    assert_problem(&w.send(&with_key("/per-consumer", &a)), 429, "rate-limited");
    assert_eq!(w.send(&with_key("/per-consumer", &b)).status, 200);
}

#[test]
fn the_cache_key_holds_the_consumer() {
    let w = world(consumers_config());
    let a = w.consumer_with_key("a", "pro");
    let b = w.consumer_with_key("b", "pro");
    w.ports.on(
        "http://one.test/cached",
        respond(200, &[("cache-control", "public, max-age=60")]),
    );
    assert_eq!(
        w.send(&with_key("/cached", &a)).h("x-cache").as_deref(),
        Some("MISS")
    );
    assert_eq!(
        w.send(&with_key("/cached", &a)).h("x-cache").as_deref(),
        Some("HIT")
    );
    assert_eq!(
        w.send(&with_key("/cached", &b)).h("x-cache").as_deref(),
        Some("MISS")
    );
    // Purged per consumer.
    let purge =
        w.send(&req("DELETE", "/__gateway/cache?path=/cached&consumer=a").bearer(ADMIN_TOKEN));
    assert_eq!(purge.json()["purged"], true, "{purge:?}");
    assert_eq!(
        w.send(&with_key("/cached", &a)).h("x-cache").as_deref(),
        Some("MISS")
    );
}
