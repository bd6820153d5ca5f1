//! WebSocket routes: only upgrades, checked by the chain, sent upstream as upgrades.

use super::*;

fn ws_config() -> Value {
    json!({
        "origins": {"chat": {"regions": [{"name": "one", "url": "http://chat.test"}]}},
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "routes": [
            {"id": "ws", "path": "/ws/{room}", "origin": "chat", "websocket": true,
             "auth": {"jwt": "hs"}, "rate_limit": {"requests": 2, "window_s": 60, "key": "sub"},
             "cors": {"origins": ["https://app.test"]}},
            {"id": "plain", "path": "/plain", "origin": "chat"}
        ]
    })
}

fn upgrade(path: &str) -> Req {
    get(path)
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
}

#[test]
fn an_upgrade_passes_the_chain_and_reaches_the_origin_as_an_upgrade() {
    let w = world(ws_config());
    w.ports.on(
        "http://chat.test/",
        respond(101, &[("upgrade", "websocket")]),
    );
    let out = w.send(&upgrade("/ws/lobby").bearer(&user("alice")));
    assert_eq!(out.status, 101);
    assert!(out.body.is_none());
    let up = &w.ports.sent()[0];
    assert_eq!(up.h("upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        up.h("sec-websocket-key").as_deref(),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(up.url, "http://chat.test/ws/lobby");
    assert_eq!(w.ports.last_record()["status"], 101);
}

#[test]
fn auth_limits_and_the_origin_check_apply_to_the_upgrade() {
    let w = world(ws_config());
    w.ports.on("http://chat.test/", respond(101, &[]));
    assert_problem(&w.send(&upgrade("/ws/a")), 401, "unauthorized");
    let token = user("bob");
    let evil = w.send(
        &upgrade("/ws/a")
            .bearer(&token)
            .header("origin", "https://evil.test"),
    );
    assert_problem(&evil, 403, "forbidden");
    let app = w.send(
        &upgrade("/ws/a")
            .bearer(&token)
            .header("origin", "https://app.test"),
    );
    assert_eq!(app.status, 101);
    assert_eq!(w.send(&upgrade("/ws/a").bearer(&token)).status, 101);
    assert_problem(
        &w.send(&upgrade("/ws/a").bearer(&token)),
        429,
        "rate-limited",
    );
    assert_eq!(
        w.ports.sent().len(),
        2,
        "refused upgrades never reach the origin"
    );
}

#[test]
fn a_plain_request_on_a_websocket_route_is_426_and_an_upgrade_elsewhere_is_not_forwarded() {
    let w = world(ws_config());
    let plain = w.send(&get("/ws/a").bearer(&user("carol")));
    assert_problem(&plain, 426, "upgrade-required");
    assert_eq!(plain.h("upgrade").as_deref(), Some("websocket"));
    assert_problem(
        &w.send(&req("POST", "/ws/a").bearer(&user("carol"))),
        405,
        "method-not-allowed",
    );
    assert!(w.ports.sent().is_empty());
    // On a route without websocket: the upgrade headers are hop-by-hop, removed.
    let out = w.send(&upgrade("/plain").header("connection", "upgrade"));
    assert_eq!(out.status, 200);
    let up = &w.ports.sent()[0];
    assert_eq!(up.h("upgrade"), None);
    assert_eq!(up.h("connection"), None);
}
