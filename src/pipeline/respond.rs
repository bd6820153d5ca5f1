//! The last phase: headers every answer carries, whoever decided it.

use super::*;

/// Headers every answer carries, whoever decided it.
pub(super) fn decorate<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, '_, P, H>,
    ctx: &mut Ctx<'_>,
    reply: &mut Reply<P::Response>,
    started: u64,
) {
    let Call { gw, ports, req, .. } = *call;
    let h = &mut reply.headers;
    h.set("x-request-id", ctx.rid.clone());
    if let Some(d) = &ctx.limit {
        for (name, value) in d.headers() {
            h.set(name, value);
        }
    }
    if let Some(x) = ctx.x_cache {
        h.set(cache::X_CACHE, x.as_str());
        ctx.log.cache = Some(x.as_str());
    }
    let total = ports.now_ms().saturating_sub(started);
    let timing = match ctx.upstream_ms {
        Some(up) => format!(
            "gateway;dur={}, upstream;dur={up}",
            total.saturating_sub(up)
        ),
        None => format!("gateway;dur={total}"),
    };
    h.set("server-timing", timing);
    let policy: Option<&CorsPolicy> = match ctx.route {
        _ if ctx.preflight_answered => None,
        Some(route) => route.cors.as_ref(),
        None => gw.cors.as_ref(),
    };
    if let Some(policy) = policy {
        // The policy alone answers: the origin's (or a stored entry's) CORS headers go.
        if let Body::Upstream(response) = &reply.body {
            for name in ports.response_header_names(response) {
                if cors::is_cors_header(&name) {
                    h.remove(name);
                }
            }
        }
        let origin = req.headers.get("origin");
        for (name, value) in policy.actual_headers(origin.as_deref()) {
            if name == cors::VARY {
                h.append(name, value);
            } else {
                h.set(name, value.to_string());
            }
        }
    }
}
