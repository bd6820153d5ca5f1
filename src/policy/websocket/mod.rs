//! `"websocket": true` routes: the upgrade request is checked like any other
//! (auth, limits, the rest of the chain) plus the CORS origin check a browser
//! cannot make for a WebSocket, then sent upstream as an upgrade; the origin's
//! `101` is returned with its socket, which the runtime then proxies both ways
//! (text and binary messages unaltered, close codes and reasons passed on).
//!
//! On such a route the upgrade handshake is the one exception to the
//! hop-by-hop rule: `Upgrade: websocket` reaches the origin. On every other
//! route `Upgrade` is removed like any hop-by-hop header, so an upgrade is
//! never forwarded as one.

use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::pipeline::{Exchange, Flow};
use crate::ports::Ports;

/// Whether the request asks for a WebSocket (`Upgrade` names `websocket`).
pub fn is_websocket_upgrade<H: HeaderView + ?Sized>(headers: &H) -> bool {
    headers.get("upgrade").is_some_and(|v| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// The WebSocket policy of a route; first in its chain.
#[derive(Debug, Clone, Copy)]
pub struct WebSocketPolicy;

impl WebSocketPolicy {
    /// 426 for a request that is not a WebSocket upgrade; 403 for a browser
    /// page whose origin the route's CORS policy does not allow.
    pub fn on_request<P: Ports, H: HeaderView + ?Sized, R>(
        &self,
        x: &Exchange<'_, P, H>,
    ) -> Result<Flow<R>, Problem> {
        if !is_websocket_upgrade(x.req.headers) {
            return Err(Problem::new(
                Kind::UpgradeRequired,
                "this route accepts WebSocket upgrades only",
            )
            .with_header("upgrade", "websocket"));
        }
        if let (Some(cors), Some(origin)) = (x.route.cors(), x.req.headers.get("origin")) {
            if !cors.allows_origin(&origin) {
                return Err(Problem::new(
                    Kind::Forbidden,
                    "this page's origin may not open a WebSocket on this route",
                ));
            }
        }
        Ok(Flow::Continue)
    }

    /// The upgrade reaches the origin (the gateway removed it with the other
    /// hop-by-hop headers).
    pub fn on_upstream_request(&self, edits: &mut HeaderEdits) {
        edits.set("upgrade", "websocket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H(Vec<(&'static str, &'static str)>);
    impl HeaderView for H {
        fn get(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        }
        fn names(&self) -> Vec<String> {
            self.0.iter().map(|(n, _)| n.to_ascii_lowercase()).collect()
        }
    }

    #[test]
    fn an_upgrade_names_websocket_in_any_case_and_list() {
        assert!(is_websocket_upgrade(&H(vec![("Upgrade", "websocket")])));
        assert!(is_websocket_upgrade(&H(vec![("upgrade", "WebSocket")])));
        assert!(is_websocket_upgrade(&H(vec![(
            "upgrade",
            "h2c, websocket"
        )])));
        assert!(!is_websocket_upgrade(&H(vec![("upgrade", "h2c")])));
        assert!(!is_websocket_upgrade(&H(vec![("upgrade", "websockets")])));
        assert!(!is_websocket_upgrade(&H(vec![])));
    }
}
