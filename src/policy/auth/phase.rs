//! The auth phase: the bearer token, verified against the route's provider;
//! the provider's `forward_claims` set on the upstream request.

use super::jwks::Plan;
use super::{
    forwarded_headers, parse_jwks, verify_token_seen, AuthError, SignatureCheck, SignatureVerifier,
    Token, Verified,
};
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::log::Event;
use crate::pipeline::{Ctx, Exchange, Flow};
use crate::policy::auth::jwks::max_age;
use crate::policy::consumer::phase::{check_key, KeyRule, PLAN_HEADER};
use crate::policy::ratelimit::WAIT_POLL_MS;
use crate::ports::Ports;

/// A route's `auth`, compiled: its `jwt` alternatives and its `api_key` one.
#[derive(Debug, Clone)]
pub struct RouteAuth {
    /// `(provider, scopes)`: the provider is an index into `Gateway::providers`;
    /// every one of the scopes is required.
    pub jwt: Vec<(usize, Vec<String>)>,
    /// The `api_key` alternative.
    pub api_key: Option<KeyRule>,
}

impl RouteAuth {
    /// A route that takes one provider's tokens.
    pub fn jwt(provider: usize, scopes: Vec<String>) -> RouteAuth {
        RouteAuth {
            jwt: vec![(provider, scopes)],
            api_key: None,
        }
    }

    /// Checks the request's credentials: a bearer token is judged by the `jwt`
    /// alternatives, an API key by the `api_key` one; the request passes when
    /// one of them does. The verified identity or consumer goes into `cx`.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
    ) -> Result<Flow<P::Response>, Problem> {
        let authorization = x.req.headers.get("authorization");
        let bearer = !matches!(
            Token::parse(authorization.as_deref()),
            Err(AuthError::Missing)
        );
        let mut failure: Option<Problem> = None;
        let mut note = |p: Problem| {
            // A refusal for scope or plan says more than "invalid".
            if failure
                .as_ref()
                .is_none_or(|f| f.kind != Kind::Forbidden && p.kind == Kind::Forbidden)
            {
                failure = Some(p);
            }
        };
        // Without an API key alternative, a missing token is judged too (401 Bearer).
        if bearer || self.api_key.is_none() {
            for (provider, scopes) in &self.jwt {
                match authenticate(x, *provider, scopes, cx).await {
                    Ok(verified) => {
                        cx.log.subject = verified.subject.clone();
                        cx.identity = Some(verified);
                        cx.provider = Some(*provider);
                        cx.log.error = None;
                        return Ok(Flow::Continue);
                    }
                    Err(p) => note(p),
                }
            }
        }
        let consumers = x.gw.consumers.as_ref();
        if let (Some(rule), Some(c)) = (&self.api_key, consumers) {
            if let Some(key) = x.req.headers.get(&c.header).filter(|k| !k.is_empty()) {
                match check_key(x, cx, rule, &key).await {
                    Ok(consumer) => {
                        cx.consumer = Some(consumer);
                        cx.log.error = None;
                        return Ok(Flow::Continue);
                    }
                    Err(p) => note(p),
                }
            }
        }
        Err(failure.unwrap_or_else(|| self.missing(x)))
    }

    /// 401 for a request with no credential this route judges; the
    /// `WWW-Authenticate` names every scheme it accepts.
    fn missing<P: Ports, H: HeaderView + ?Sized>(&self, x: &Exchange<'_, P, H>) -> Problem {
        let header =
            x.gw.consumers
                .as_ref()
                .map_or("x-api-key", |c| c.header.as_str());
        let mut challenges = Vec::new();
        if !self.jwt.is_empty() {
            challenges.push("Bearer".to_string());
        }
        challenges.push(format!("ApiKey header=\"{header}\""));
        let detail = if self.jwt.is_empty() {
            "an API key is required"
        } else {
            "a bearer token or an API key is required"
        };
        Problem::new(Kind::Unauthorized, detail)
            .with_header("www-authenticate", challenges.join(", "))
    }

    /// The provider's `forward_claims` headers from the verified token; the
    /// consumer headers; never the API key itself.
    pub fn on_upstream_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &Ctx,
        edits: &mut HeaderEdits,
    ) {
        if let (Some(v), Some(i)) = (&cx.identity, cx.provider) {
            if let Some(Ok(provider)) = x.gw.providers.get(i) {
                for (name, value) in forwarded_headers(provider, v) {
                    edits.set(name.to_string(), value);
                }
            }
        }
        if let (Some(_), Some(c)) = (&self.api_key, &x.gw.consumers) {
            edits.remove(c.header.clone());
            if let Some(consumer) = &cx.consumer {
                edits.set(c.forward_consumer.clone(), consumer.id.clone());
                edits.set(PLAN_HEADER, consumer.plan.clone());
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
    // The keys are held, not the cache: another request may refresh it meanwhile.
    let (keys, generation) = {
        let cached = cache.borrow();
        (cached.shared_keys(), cached.generation())
    };
    verify_token_seen(
        provider,
        provider_index,
        &token,
        keys.as_deref(),
        generation,
        now_s,
        scopes,
        &state.seen,
        &ViaPorts(ports),
    )
    .await
    .map_err(|e| fail(e, ctx))
}

/// The runtime's signature check ([`Ports::verify_signature`]) as the verifier.
struct ViaPorts<'p, P>(&'p P);

impl<P: Ports> SignatureVerifier for ViaPorts<'_, P> {
    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool {
        self.0.verify_signature(check).await
    }
}
