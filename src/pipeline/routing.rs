//! The routing phase: the path normalized, `/__gateway/*` and CORS preflights
//! answered, the route found; then the route's chain runs.

use super::*;
use crate::http::path::{normalize, PathError};
use crate::http::problem::Kind;
use crate::policy::cors::{self, CorsPolicy};
use crate::route::Match;

/// Notes the route in the log line.
fn log_route(cx: &mut Ctx, route: &RouteRt) {
    cx.log.route = Some(route.id.clone());
    cx.log.path_template = Some(route.path.clone());
}

/// An answer that no route's chain decorates: the CORS headers of `policy`, if any.
fn without_chain<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, P, H>,
    cx: &mut Ctx,
    answer: Result<Reply<P::Response>, Problem>,
    policy: Option<&CorsPolicy>,
) -> Reply<P::Response> {
    let mut reply = match answer {
        Ok(reply) => reply,
        Err(problem) => cx.problem_reply(problem),
    };
    if let Some(policy) = policy {
        cors::phase::on_response(policy, call.ports, call.req, &mut reply);
    }
    reply
}

/// Routes the request and runs it through its route.
pub(super) async fn run<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, P, H>,
    cx: &mut Ctx,
) -> Reply<P::Response> {
    let Call { gw, req, .. } = *call;
    let path = match normalize(req.path) {
        Ok(path) => path,
        Err(e) => {
            let problem = match e {
                PathError::TooLong => {
                    Problem::new(Kind::UriTooLong, "the request path is too long")
                }
                PathError::NotOriginForm => {
                    Problem::new(Kind::BadRequest, "the request target must be a path")
                }
            };
            return without_chain(call, cx, Err(problem), gw.cors.as_ref());
        }
    };
    let reserved = crate::config::validate::RESERVED_PREFIX;
    if path.len() >= reserved.len()
        && path.as_bytes()[..reserved.len()].eq_ignore_ascii_case(reserved.as_bytes())
    {
        let own = &path[reserved.len()..];
        if own.is_empty() || own.starts_with('/') {
            let answer = admin::endpoint(call, own).await;
            return without_chain(call, cx, answer, gw.cors.as_ref());
        }
    }

    if let Some((route, reply)) = cors::phase::preflight(gw, req, &path) {
        // A preflight answer carries its own CORS headers and nothing else of the chain.
        if let Some(route) = route {
            log_route(cx, route);
        }
        return reply;
    }

    let method = Method::parse(req.method);
    let (route_index, params, method) = match (gw.table.lookup(req.host, &path, method), method) {
        (Match::Found { route, params }, Some(method)) => (route, params, method),
        (Match::MethodNotAllowed { allow }, _) => {
            // The answer still carries the CORS headers of the path's routes.
            let problem = Problem::new(Kind::MethodNotAllowed, format!("this path allows {allow}"))
                .with_header("allow", allow);
            let policy = gw
                .route_for_any_method(req.host, &path)
                .and_then(RouteRt::cors);
            return without_chain(call, cx, Err(problem), policy);
        }
        // A method no route can allow never finds a route.
        (Match::NotFound | Match::Found { .. }, _) => {
            let problem = Problem::new(Kind::NotFound, "no route matches this path");
            return without_chain(call, cx, Err(problem), gw.cors.as_ref());
        }
    };
    let route = match gw.route(route_index) {
        Ok(route) => route,
        Err(error) => {
            // Only a damaged build gets here: the build compiled nothing it did
            // not validate. The request is answered; the reason goes to the log.
            cx.log.error = Some(format!("config: {error}"));
            let problem = Problem::new(Kind::Unavailable, "this route is not available");
            return without_chain(call, cx, Err(problem), gw.cors.as_ref());
        }
    };
    log_route(cx, route);
    let x = Exchange {
        gw,
        state: call.state,
        ports: call.ports,
        req,
        route,
        path: &path,
        params: &params,
        method,
    };
    if req.has_body && matches!(method, Method::Get | Method::Head) {
        // The runtime cannot send such a request on; dropping the body would lose data.
        let problem = Problem::new(
            Kind::BadRequest,
            "GET and HEAD requests cannot carry a body",
        );
        return run_chain(&x, cx, Some(problem)).await;
    }
    run_chain(&x, cx, None).await
}
