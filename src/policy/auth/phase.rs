//! The auth phase: the bearer token, verified against the route's provider;
//! the provider's `forward_claims` set on the upstream request.

use super::jwks::Plan;
use super::{forwarded_headers, parse_jwks, verify_token_seen, AuthError, Token, Verified};
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::Event;
use crate::pipeline::{Ctx, Exchange, Flow};
use crate::policy::auth::jwks::max_age;
use crate::policy::ratelimit::WAIT_POLL_MS;
use crate::ports::Ports;

/// A route's token requirement, compiled.
#[derive(Debug, Clone)]
pub struct RouteAuth {
    /// The provider: an index into `Gateway::providers`.
    pub provider: usize,
    /// Every one of these scopes is required.
    pub scopes: Vec<String>,
}

impl RouteAuth {
    /// Verifies the request's bearer token; the verified identity goes into `cx`.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
    ) -> Result<Flow<P::Response>, Problem> {
        let verified = authenticate(x, self.provider, &self.scopes, cx).await?;
        cx.log.subject = verified.subject.clone();
        cx.identity = Some(verified);
        Ok(Flow::Continue)
    }

    /// The provider's `forward_claims` headers, from the verified token.
    pub fn on_upstream_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &Ctx,
        edits: &mut HeaderEdits,
    ) {
        if let (Some(v), Ok(provider)) = (&cx.identity, &x.gw.providers[self.provider]) {
            for (name, value) in forwarded_headers(provider, v) {
                edits.set(name.to_string(), value);
            }
        }
    }
}

/// Verifies the bearer token of a request for a provider.
async fn authenticate<P: Ports, H: HeaderView + ?Sized>(
    x: &Exchange<'_, P, H>,
    provider_index: usize,
    scopes: &[String],
    ctx: &mut Ctx,
) -> Result<Verified, Problem> {
    let (gw, state, ports, req) = (x.gw, x.state, x.ports, x.req);
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
    let fail = |e: AuthError, ctx: &mut Ctx| {
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
                        ports.event(&Event::JwksError {
                            provider: provider.name(),
                            error: e,
                        });
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
