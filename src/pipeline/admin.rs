//! `/__gateway/*`: health, cache purge, the docs and the consumers admin API,
//! answered by the gateway itself.

use super::*;
use crate::http::path::normalize;
use crate::http::problem::Kind;
use crate::policy::cache::phase::cache_key;
use crate::route::Match;

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the admin token (`Authorization: Bearer <GATEWAY_ADMIN_TOKEN>`).
fn authorize<H: HeaderView + ?Sized>(
    gw: &crate::gateway::Gateway,
    req: &Incoming<'_, H>,
    what: &str,
) -> Result<(), Problem> {
    let presented = req
        .headers
        .get("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_string));
    let authorized = match (&gw.admin_token, &presented) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if authorized {
        return Ok(());
    }
    let detail = if gw.admin_token.is_none() {
        format!("{what} is disabled: the GATEWAY_ADMIN_TOKEN secret is not set")
    } else {
        "the admin token is missing or wrong".to_string()
    };
    Err(Problem::new(Kind::Unauthorized, detail)
        .with_header("www-authenticate", "Bearer realm=\"gateway-admin\""))
}

/// Percent-decodes a query parameter value (`+` is a space).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `/__gateway/*`: answered by the gateway itself, never routed upstream.
pub(super) async fn endpoint<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, P, H>,
    own: &str,
) -> Result<Reply<P::Response>, Problem> {
    let Call { gw, req, .. } = *call;
    if own == "/consumers" || own.starts_with("/consumers/") {
        authorize(gw, req, "the consumers API")?;
        let admin = crate::policy::consumer::admin::Admin {
            gw,
            state: call.state,
            ports: call.ports,
            req,
        };
        return admin.handle(&own["/consumers".len()..]).await;
    }
    match own {
        "/health" => {
            if !matches!(req.method, "GET" | "HEAD") {
                return Err(
                    Problem::new(Kind::MethodNotAllowed, "this path allows GET, HEAD")
                        .with_header("allow", "GET, HEAD"),
                );
            }
            Ok(json_reply(
                200,
                serde_json::json!({
                    "status": "ok",
                    "routes": gw.route_count(),
                    "version": crate::gateway::VERSION,
                }),
            ))
        }
        "/cache" => {
            if req.method != "DELETE" {
                return Err(
                    Problem::new(Kind::MethodNotAllowed, "this path allows DELETE")
                        .with_header("allow", "DELETE"),
                );
            }
            purge(call).await
        }
        "/docs" | "/openapi.json" if gw.docs.is_some() => {
            if !matches!(req.method, "GET" | "HEAD") {
                return Err(
                    Problem::new(Kind::MethodNotAllowed, "this path allows GET, HEAD")
                        .with_header("allow", "GET, HEAD"),
                );
            }
            let Some(pages) = &gw.docs else {
                return Err(Problem::new(Kind::NotFound, "no such gateway endpoint"));
            };
            Ok(docs_reply(pages, own == "/docs"))
        }
        _ => Err(Problem::new(Kind::NotFound, "no such gateway endpoint")),
    }
}

/// The docs page or the OpenAPI document: generated at build time, public.
fn docs_reply<R>(pages: &crate::gateway::DocPages, html: bool) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    headers.set("cache-control", "public, max-age=300");
    headers.set("x-content-type-options", "nosniff");
    let (body, content_type) = if html {
        // Nothing but the page itself, its inline style and its empty icon may load.
        headers.set(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        );
        (pages.html.to_string(), "text/html; charset=utf-8")
    } else {
        (pages.openapi.to_string(), "application/json")
    };
    Reply::own(200, Body::Own(body, content_type), headers)
}

/// `DELETE /__gateway/cache?path=/api/items/1%3Fpage%3D2[&subject=SUB]`, with the admin token.
///
/// The entry purged is the one a GET for that path on this host would hit, with
/// this request's own `vary` headers (and `subject` on routes with auth).
async fn purge<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, P, H>,
) -> Result<Reply<P::Response>, Problem> {
    let Call { gw, ports, req, .. } = *call;
    authorize(gw, req, "cache purging")?;
    let target = query_param(req.query, "path")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            Problem::new(Kind::BadRequest, "give the path to purge: ?path=/some/path")
        })?;
    let (target_path, target_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    let path = normalize(&target_path)
        .map_err(|_| Problem::new(Kind::BadRequest, "the path to purge is not valid"))?;
    let route = match gw.table.lookup(req.host, &path, Some(Method::Get)) {
        Match::Found { route, .. } => gw
            .route(route)
            .map_err(|_| Problem::new(Kind::Unavailable, "that route is not available"))?,
        _ => {
            return Err(Problem::new(
                Kind::NotFound,
                "no GET route matches that path",
            ))
        }
    };
    let policy = route
        .cache()
        .ok_or_else(|| Problem::new(Kind::BadRequest, "that route is not cached"))?;
    // `?consumer=ID` names a consumer's entries on a route with an API key.
    let subject = match query_param(req.query, "consumer") {
        Some(id) => Some(format!("consumer\0{id}")),
        None => query_param(req.query, "subject"),
    };
    let key = cache_key(
        policy,
        req,
        &path,
        target_query.as_deref(),
        subject.as_deref(),
    )
    .ok_or_else(|| Problem::new(Kind::BadRequest, "that route is per user: give ?subject="))?;
    let purged = ports
        .cache_delete(&key)
        .await
        .map_err(|_| Problem::new(Kind::Unavailable, "the cache could not be reached"))?;
    Ok(json_reply(
        200,
        serde_json::json!({ "purged": purged, "route": route.id, "path": path }),
    ))
}
