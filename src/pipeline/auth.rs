//! The auth phase: the bearer token, verified against the route's provider.

use super::*;

/// Verifies the bearer token of a request for a provider.
pub(super) async fn authenticate<P: Ports, H: HeaderView + ?Sized>(
    call: &Call<'_, '_, P, H>,
    provider_index: usize,
    scopes: &[String],
    ctx: &mut Ctx<'_>,
) -> Result<Verified, Problem> {
    let Call {
        gw,
        state,
        ports,
        req,
    } = *call;
    let provider = match &gw.providers[provider_index] {
        Ok(p) => p,
        Err(reason) => {
            ctx.log.error = Some(reason.clone());
            return Err(Problem::new(
                Kind::Unavailable,
                "token verification is not configured for this route",
            ));
        }
    };
    let authorization = req.headers.get("authorization");
    let fail = |e: AuthError, ctx: &mut Ctx<'_>| {
        ctx.log.error = Some(format!("auth: {}", e.reason()));
        let kind = match e.status() {
            403 => Kind::Forbidden,
            503 => Kind::Unavailable,
            _ => Kind::Unauthorized,
        };
        let detail = match e {
            AuthError::Missing => "a bearer token is required".to_string(),
            AuthError::InsufficientScope(_) => "the token lacks a required scope".to_string(),
            AuthError::KeysUnavailable => "the token issuer's keys cannot be fetched".to_string(),
            ref other => format!("invalid token: {}", other.reason()),
        };
        let mut p = Problem::new(kind, detail);
        if kind != Kind::Unavailable {
            p = p.with_header("www-authenticate", e.www_authenticate());
        } else {
            p = p.with_header("retry-after", "10");
        }
        p
    };
    let token = match Token::parse(authorization.as_deref()) {
        Ok(t) => t,
        Err(e) => return Err(fail(e, ctx)),
    };
    let cache = &state.jwks[provider_index];
    let now_s = ports.now_ms() / 1000;
    if provider.needs_jwks_for(&token) {
        loop {
            let now = ports.now_ms();
            let plan = cache.borrow().plan(now, token.kid());
            match plan {
                Plan::UseCached | Plan::UseStale | Plan::Unavailable => break,
                Plan::AwaitFetch => ports.sleep(WAIT_POLL_MS).await,
                Plan::Fetch => {
                    cache.borrow_mut().fetch_started(now);
                    let url = gw
                        .file
                        .jwt
                        .values()
                        .nth(provider_index)
                        .and_then(|p| p.jwks_url.as_deref())
                        .unwrap_or_default();
                    let result = ports.fetch_jwks(url).await;
                    let (parsed, age) = match result {
                        Ok(doc) => (
                            parse_jwks(&doc.body),
                            doc.cache_control.as_deref().and_then(max_age),
                        ),
                        Err(e) => (Err(e), None),
                    };
                    if let Err(e) = &parsed {
                        ports.event(
                            &serde_json::json!({"event": "jwks_error", "provider": provider.name(), "error": e})
                                .to_string(),
                        );
                    }
                    cache.borrow_mut().on_fetched(ports.now_ms(), parsed, age);
                }
            }
        }
    }
    let result = {
        let cached = cache.borrow();
        verify_token_seen(
            provider,
            provider_index,
            &token,
            cached.keys(),
            cached.generation(),
            now_s,
            scopes,
            &mut state.seen.borrow_mut(),
        )
    };
    result.map_err(|e| fail(e, ctx))
}
