//! The request policies' hooks (`ip`, `geo`, `max_body_bytes`, `request_headers`,
//! `query`, `response_headers`): the one place each hook calls into `crate::policy`.

use super::upstream::ResponseHeaders;
use super::*;
use crate::policy::body_limit;

/// On the request, before auth: the client address, its location, a declared body length.
pub(super) fn check_request<H: HeaderView + ?Sized>(
    route: &RouteRt,
    req: &Incoming<'_, H>,
) -> Result<(), Problem> {
    let p = &route.policies;
    if p.ip.as_ref().is_some_and(|ip| !ip.admits(req.client_ip)) {
        return Err(Problem::new(
            Kind::Forbidden,
            "this client address is not allowed on this route",
        ));
    }
    if p.geo
        .as_ref()
        .is_some_and(|geo| !geo.admits(req.country, req.continent))
    {
        return Err(Problem::new(
            Kind::Forbidden,
            "requests from this location are not allowed on this route",
        ));
    }
    if let Some(max) = p.max_body_bytes {
        let length = req.headers.get("content-length");
        if req.has_body && body_limit::declared_too_large(length.as_deref(), max) {
            return Err(too_large(max));
        }
    }
    Ok(())
}

/// The answer to a body over the route's limit.
pub(super) fn too_large(max: u64) -> Problem {
    Problem::new(
        Kind::PayloadTooLarge,
        format!("the request body is larger than this route's limit of {max} bytes"),
    )
}

/// On the upstream request: the route's header edits, after the gateway's own.
pub(super) fn edit_upstream_headers<H: HeaderView + ?Sized>(
    route: &RouteRt,
    req: &Incoming<'_, H>,
    params: &[&str],
    edits: &mut HeaderEdits,
) {
    if let Some(p) = &route.policies.request_headers {
        p.edit(req.headers, params, edits);
    }
}

/// On the upstream request: the query string the origin receives.
pub(super) fn upstream_query<'q>(
    route: &RouteRt,
    query: Option<&'q str>,
    params: &[&str],
) -> Option<Cow<'q, str>> {
    match &route.policies.query {
        Some(p) => p.apply(query, params),
        None => query.map(Cow::Borrowed),
    }
}

/// On the response from the origin (fresh or from the cache): the route's header edits.
pub(super) fn edit_response<P: Ports>(
    ports: &P,
    route: &RouteRt,
    params: &[&str],
    reply: &mut Reply<P::Response>,
) {
    if let (Some(p), Body::Upstream(response)) = (&route.policies.response_headers, &reply.body) {
        p.edit(
            &ResponseHeaders(ports, response),
            params,
            &mut reply.headers,
        );
    }
}
