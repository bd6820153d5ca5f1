//! The CORS phase: preflights answered while routing, the CORS headers of
//! every other answer added on the way back.

use super::{is_cors_header, is_preflight, CorsPolicy, VARY};
use crate::config::Method;
use crate::gateway::{Gateway, RouteRt};
use crate::http::headers::HeaderEdits;
use crate::http::HeaderView;
use crate::pipeline::{Body, Incoming, Reply};
use crate::ports::Ports;
use crate::route::Match;

/// The answer to a CORS preflight, and the route whose policy gave it, when
/// the request is one and the route for the method it asks about has a policy
/// that answers it; otherwise the request is an ordinary `OPTIONS` request. A
/// preflight to a path no route matches is answered by the top-level policy
/// (no route then), so that the page can go on to read the 404 of its real request.
pub fn preflight<'g, R, H: HeaderView + ?Sized>(
    gw: &'g Gateway,
    req: &Incoming<'_, H>,
    path: &str,
) -> Option<(Option<&'g RouteRt>, Reply<R>)> {
    let origin = req.headers.get("origin");
    let asked = req.headers.get("access-control-request-method");
    if !is_preflight(req.method, origin.as_deref(), asked.as_deref()) {
        return None;
    }
    let method = asked.as_deref().and_then(Method::parse);
    let route = match gw.table.lookup(req.host, path, method) {
        Match::Found { route, .. } => gw.route(route).ok(),
        // Asked for a method the path does not allow: the path's policy answers,
        // and its allow-methods do not offer the method.
        _ => gw.route_for_any_method(req.host, path),
    };
    let policy = match route {
        Some(route) => route.cors()?,
        None => gw.cors.as_ref()?,
    };
    let requested_headers = req.headers.get("access-control-request-headers");
    let answer = policy.preflight(
        origin.as_deref(),
        asked.as_deref(),
        requested_headers.as_deref(),
    )?;
    let mut headers = HeaderEdits::default();
    for (name, value) in answer.headers {
        headers.set(name, value.into_owned());
    }
    Some((route, Reply::own(answer.status, Body::Empty, headers)))
}

/// The CORS headers of an answer other than a preflight's, whatever its
/// status. The policy alone answers: the origin's (or a stored entry's)
/// `access-control-*` headers are removed.
pub fn on_response<P: Ports, H: HeaderView + ?Sized>(
    policy: &CorsPolicy,
    ports: &P,
    req: &Incoming<'_, H>,
    reply: &mut Reply<P::Response>,
) {
    if let Body::Upstream(response) = &reply.body {
        for name in ports.response_header_names(response) {
            if is_cors_header(&name) {
                reply.headers.remove(name);
            }
        }
    }
    let origin = req.headers.get("origin");
    for (name, value) in policy.actual_headers(origin.as_deref()) {
        if name == VARY {
            reply.headers.append(name, value);
        } else {
            reply.headers.set(name, value.to_string());
        }
    }
}
