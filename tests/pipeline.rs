//! The request pipeline end to end, natively: `pipeline::handle` over a fake
//! runtime (clock, randomness, upstream, KV, cache, JWKS server, logs).
//!
//! Every test builds a gateway from a JSON routes file, sends requests through
//! `handle`, renders the reply the way the edge would (upstream headers with
//! the reply's edits applied, or the gateway's own body) and asserts exact
//! statuses and headers, what reached the upstream, and the log line.
//! Cacheable replies are stored in the fake cache the way `render_with` in
//! `src/edge/mod.rs` stores them (the upstream headers with the reply's
//! `store_headers` edits applied), so later requests can hit.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use edge_gateway::config::{KeyKind, Method, RateLimit};
use edge_gateway::gateway::Gateway;
use edge_gateway::http::HeaderView;
use edge_gateway::log::Event;
use edge_gateway::pipeline::{self, Body, Incoming, IsolateState, LogLine, ORIGIN_CACHE_CONTROL};
use edge_gateway::policy::cache;
use edge_gateway::policy::cors::GATEWAY_EXPOSED;
use edge_gateway::policy::ratelimit::global::{Book, LeaseCall, LeaseReply};
use edge_gateway::policy::ratelimit::{self, counter_key};
use edge_gateway::ports::{FetchError, JwksDocument, Ports, UpstreamRequest};
use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Executor: a noop waker and polling; every pending future of the fakes has
// already woken itself (it only yields), so polling again makes progress.

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future never completed");
}

/// Runs futures concurrently on this thread, polling them in turn.
fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(&mut cx) {
                    Poll::Ready(v) => out[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending {
            return out.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("the futures never completed");
}

/// Pending once, then ready: lets other requests run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

// ---------------------------------------------------------------------------
// The fake runtime.

/// The start of a 60 s window (and of a 10 s one): rate-limit resets are whole windows.
const T0_MS: u64 = 1_700_000_040_000;
const NOW_S: u64 = T0_MS / 1000;
/// Milliseconds every upstream response takes.
const FETCH_MS: u64 = 2;

/// An upstream (or cached) response.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn header_of(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// What the scripted upstream does for a URL prefix.
#[derive(Debug, Clone)]
enum Outcome {
    Respond(u16, Vec<(String, String)>),
    Timeout,
    Connect,
}

fn respond(status: u16, headers: &[(&str, &str)]) -> Outcome {
    Outcome::Respond(
        status,
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

struct Rule {
    prefix: String,
    once: VecDeque<Outcome>,
    always: Option<Outcome>,
}

/// One request the upstream got.
#[derive(Debug, Clone)]
struct Sent {
    url: String,
    method: Method,
    /// The incoming headers with the request's edits applied.
    headers: Vec<(String, String)>,
    timeout_ms: u64,
    max_body_bytes: Option<u64>,
}

impl Sent {
    fn h(&self, name: &str) -> Option<String> {
        header_of(&self.headers, name)
    }
}

#[derive(Default)]
struct Fake {
    clock: Cell<u64>,
    random_calls: Cell<u64>,
    /// The headers of the request being handled (the edge copies them for upstream).
    incoming: RefCell<Vec<(String, String)>>,
    rules: RefCell<Vec<Rule>>,
    sent: RefCell<Vec<Sent>>,
    kv: RefCell<HashMap<String, String>>,
    kv_fail: Cell<bool>,
    kv_reads: RefCell<Vec<String>>,
    /// Every KV write: key, value, expiration TTL.
    kv_writes: RefCell<Vec<(String, String, u64)>>,
    cache: RefCell<HashMap<String, Resp>>,
    jwks_body: RefCell<String>,
    jwks_cache_control: RefCell<Option<String>>,
    jwks_fail: Cell<bool>,
    jwks_fetches: Cell<u32>,
    jwks_urls: RefCell<Vec<String>>,
    records: RefCell<Vec<String>>,
    events: RefCell<Vec<Value>>,
    /// Global rate-limit objects by name, shared by every isolate of the test.
    limiter: RefCell<HashMap<String, Book>>,
    limiter_fail: Cell<bool>,
    limiter_calls: RefCell<Vec<LeaseCall>>,
    /// The length of the streamed request body (no `Content-Length`), as the edge
    /// would count it against `max_body_bytes`.
    streamed_body: Cell<Option<u64>>,
}

impl Fake {
    fn new() -> Fake {
        let fake = Fake::default();
        fake.clock.set(T0_MS);
        fake
    }

    fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    /// Every request to URLs starting with `prefix` gets `outcome` (longest prefix wins).
    fn on(&self, prefix: &str, outcome: Outcome) {
        let mut rules = self.rules.borrow_mut();
        match rules.iter_mut().find(|r| r.prefix == prefix) {
            Some(r) => r.always = Some(outcome),
            None => rules.push(Rule {
                prefix: prefix.to_string(),
                once: VecDeque::new(),
                always: Some(outcome),
            }),
        }
    }

    /// The next request to `prefix` gets `outcome`, before the `on` rule applies again.
    fn once(&self, prefix: &str, outcome: Outcome) {
        let mut rules = self.rules.borrow_mut();
        match rules.iter_mut().find(|r| r.prefix == prefix) {
            Some(r) => r.once.push_back(outcome),
            None => rules.push(Rule {
                prefix: prefix.to_string(),
                once: VecDeque::from([outcome]),
                always: None,
            }),
        }
    }

    fn outcome_for(&self, url: &str) -> Outcome {
        let mut rules = self.rules.borrow_mut();
        let best = rules
            .iter_mut()
            .filter(|r| url.starts_with(&r.prefix))
            .filter(|r| !r.once.is_empty() || r.always.is_some())
            .max_by_key(|r| r.prefix.len());
        match best {
            Some(rule) => match rule.once.pop_front() {
                Some(o) => o,
                None => rule.always.clone().expect("filtered"),
            },
            None => respond(200, &[("content-type", "text/plain")]),
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.borrow().clone()
    }

    fn sent_urls(&self) -> Vec<String> {
        self.sent.borrow().iter().map(|s| s.url.clone()).collect()
    }

    fn clear_sent(&self) {
        self.sent.borrow_mut().clear();
    }

    fn records(&self) -> Vec<Value> {
        self.records
            .borrow()
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    fn last_record(&self) -> Value {
        self.records().pop().expect("a log line")
    }

    fn events(&self) -> Vec<Value> {
        self.events.borrow().clone()
    }

    fn set_jwks(&self, keys: Vec<Value>) {
        *self.jwks_body.borrow_mut() = json!({ "keys": keys }).to_string();
    }
}

impl Ports for Fake {
    type Response = Resp;

    fn now_ms(&self) -> u64 {
        self.clock.get()
    }

    fn random_bytes(&self) -> [u8; 16] {
        let n = self.random_calls.get() + 1;
        self.random_calls.set(n);
        let mut bytes = [0xab; 16];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes
    }

    async fn sleep(&self, ms: u64) {
        self.advance(ms);
        yield_now().await;
    }

    async fn fetch(&self, request: UpstreamRequest<'_>) -> Result<Resp, FetchError> {
        let mut headers = self.incoming.borrow().clone();
        request.headers.apply_to(&mut headers);
        self.sent.borrow_mut().push(Sent {
            url: request.url.to_string(),
            method: request.method,
            headers,
            timeout_ms: request.timeout_ms,
            max_body_bytes: request.max_body_bytes,
        });
        // The edge's port contract: a streamed body past the limit is cut before it
        // is sent whole, and the fetch fails as `BodyTooLarge`.
        if let (Some(len), Some(max)) = (self.streamed_body.get(), request.max_body_bytes) {
            if len > max {
                yield_now().await;
                return Err(FetchError::BodyTooLarge);
            }
        }
        let outcome = self.outcome_for(request.url);
        yield_now().await;
        match outcome {
            Outcome::Respond(status, headers) => {
                self.advance(FETCH_MS);
                Ok(Resp {
                    status,
                    headers,
                    body: format!("{} {}", request.method.as_str(), request.url),
                })
            }
            Outcome::Timeout => {
                self.advance(request.timeout_ms);
                Err(FetchError::Timeout)
            }
            Outcome::Connect => {
                self.advance(1);
                Err(FetchError::Connect("connection refused".into()))
            }
        }
    }

    fn status(&self, response: &Resp) -> u16 {
        response.status
    }

    fn response_header(&self, response: &Resp, name: &str) -> Option<String> {
        header_of(&response.headers, name)
    }

    fn response_header_names(&self, response: &Resp) -> Vec<String> {
        response
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    async fn fetch_jwks(&self, url: &str) -> Result<JwksDocument, String> {
        self.jwks_fetches.set(self.jwks_fetches.get() + 1);
        self.jwks_urls.borrow_mut().push(url.to_string());
        // Slow enough that concurrent requests see the fetch in flight.
        for _ in 0..3 {
            self.advance(5);
            yield_now().await;
        }
        if self.jwks_fail.get() {
            return Err("JWKS answered 500".into());
        }
        Ok(JwksDocument {
            body: self.jwks_body.borrow().as_bytes().to_vec(),
            cache_control: self.jwks_cache_control.borrow().clone(),
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        self.kv_reads.borrow_mut().push(key.to_string());
        yield_now().await;
        if self.kv_fail.get() {
            return Err("KV is down".into());
        }
        Ok(self.kv.borrow().get(key).cloned())
    }

    async fn kv_put(&self, key: &str, value: &str, expiration_ttl_s: u64) -> Result<(), String> {
        self.kv_writes
            .borrow_mut()
            .push((key.to_string(), value.to_string(), expiration_ttl_s));
        yield_now().await;
        if self.kv_fail.get() {
            return Err("KV is down".into());
        }
        self.kv
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn limiter_call(&self, call: &LeaseCall) -> Result<LeaseReply, String> {
        self.limiter_calls.borrow_mut().push(call.clone());
        // A round trip: other requests run meanwhile.
        for _ in 0..2 {
            self.advance(1);
            yield_now().await;
        }
        if self.limiter_fail.get() {
            return Err("limiter unreachable".into());
        }
        let now = self.clock.get();
        let mut objects = self.limiter.borrow_mut();
        Ok(objects
            .entry(call.counter.clone())
            .or_default()
            .apply(call, now))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Resp>, String> {
        Ok(self.cache.borrow().get(key).cloned())
    }

    async fn cache_delete(&self, key: &str) -> Result<bool, String> {
        Ok(self.cache.borrow_mut().remove(key).is_some())
    }

    fn record(&self, line: &LogLine) {
        self.records
            .borrow_mut()
            .push(serde_json::to_string(line).unwrap());
    }

    fn event(&self, event: &Event<'_>) {
        self.events
            .borrow_mut()
            .push(serde_json::from_str(&event.to_json()).expect("events are JSON"));
    }
}

// ---------------------------------------------------------------------------
// Requests and rendered replies.

struct Hdrs<'a>(&'a [(String, String)]);

impl HeaderView for Hdrs<'_> {
    fn get(&self, name: &str) -> Option<String> {
        header_of(self.0, name)
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.to_ascii_lowercase()).collect()
    }
}

const HOST: &str = "api.example.test";

#[derive(Debug, Clone)]
struct Req {
    method: String,
    scheme: String,
    host: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    client_ip: Option<String>,
    country: Option<String>,
    continent: Option<String>,
    has_body: bool,
}

fn req(method: &str, target: &str) -> Req {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Req {
        method: method.to_string(),
        scheme: "https".into(),
        host: HOST.into(),
        path,
        query,
        headers: vec![("host".into(), HOST.into())],
        client_ip: Some("203.0.113.7".into()),
        country: None,
        continent: None,
        has_body: false,
    }
}

fn get(target: &str) -> Req {
    req("GET", target)
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }
    fn ip(mut self, ip: &str) -> Req {
        self.client_ip = Some(ip.to_string());
        self
    }
    fn country(mut self, c: &str) -> Req {
        self.country = Some(c.to_string());
        self
    }
    fn continent(mut self, c: &str) -> Req {
        self.continent = Some(c.to_string());
        self
    }
    fn with_body(mut self) -> Req {
        self.has_body = true;
        self
    }
}

/// A reply as the client would see it, plus the work left to the edge.
#[derive(Debug)]
struct Out {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
    no_body: bool,
    store: Option<(String, u32)>,
    flush_limits: bool,
}

impl Out {
    fn h(&self, name: &str) -> Option<String> {
        header_of(&self.headers, name)
    }
    fn has(&self, name: &str) -> bool {
        self.h(name).is_some()
    }
    fn json(&self) -> Value {
        serde_json::from_str(self.body.as_deref().expect("a body")).expect("a JSON body")
    }
}

fn incoming<'a>(r: &'a Req, view: &'a Hdrs<'a>) -> Incoming<'a, Hdrs<'a>> {
    Incoming {
        method: &r.method,
        scheme: &r.scheme,
        host: &r.host,
        path: &r.path,
        query: r.query.as_deref(),
        headers: view,
        client_ip: r.client_ip.as_deref(),
        country: r.country.as_deref(),
        continent: r.continent.as_deref(),
        has_body: r.has_body,
    }
}

struct World {
    gw: Gateway,
    state: IsolateState,
    ports: Fake,
}

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

fn world(config: Value) -> World {
    world_with(
        config,
        &[
            ("JWT_SECRET", JWT_SECRET),
            ("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
}

fn world_with(config: Value, secrets: &[(&str, &str)]) -> World {
    let secrets: Vec<(String, String)> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| {
        secrets
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let gw = Gateway::from_json(&config.to_string(), &lookup).expect("the routes file compiles");
    let state = IsolateState::new(&gw, "iso1".into());
    World {
        gw,
        state,
        ports: Fake::new(),
    }
}

impl World {
    fn send(&self, r: &Req) -> Out {
        *self.ports.incoming.borrow_mut() = r.headers.clone();
        let view = Hdrs(&r.headers);
        let reply = block_on(pipeline::handle(
            &self.gw,
            &self.state,
            &self.ports,
            &incoming(r, &view),
        ));
        self.render(reply)
    }

    /// Sends requests concurrently, each through the isolate state it names
    /// (`None`: this world's own), all over this world's ports.
    fn send_all_via(&self, reqs: &[(Option<&IsolateState>, Req)]) -> Vec<Out> {
        let views: Vec<Hdrs<'_>> = reqs.iter().map(|(_, r)| Hdrs(&r.headers)).collect();
        let incomings: Vec<Incoming<'_, Hdrs<'_>>> = reqs
            .iter()
            .zip(&views)
            .map(|((_, r), view)| incoming(r, view))
            .collect();
        let futures: Vec<_> = incomings
            .iter()
            .zip(reqs)
            .map(|(inc, (state, _))| {
                pipeline::handle(&self.gw, state.unwrap_or(&self.state), &self.ports, inc)
            })
            .collect();
        let replies = join_all(futures);
        replies.into_iter().map(|r| self.render(r)).collect()
    }

    /// Sends requests concurrently (interleaved at every await). The upstream
    /// sees the first request's headers.
    fn send_all(&self, reqs: &[Req]) -> Vec<Out> {
        if let Some(first) = reqs.first() {
            *self.ports.incoming.borrow_mut() = first.headers.clone();
        }
        let views: Vec<Hdrs<'_>> = reqs.iter().map(|r| Hdrs(&r.headers)).collect();
        let incomings: Vec<Incoming<'_, Hdrs<'_>>> = reqs
            .iter()
            .zip(&views)
            .map(|(r, view)| incoming(r, view))
            .collect();
        let futures: Vec<_> = incomings
            .iter()
            .map(|inc| pipeline::handle(&self.gw, &self.state, &self.ports, inc))
            .collect();
        let replies = join_all(futures);
        replies.into_iter().map(|r| self.render(r)).collect()
    }

    /// What the edge does with a reply: build the client response and, when
    /// told to, store the upstream response (as `render_with` does).
    fn render(&self, reply: pipeline::Reply<Resp>) -> Out {
        let store = reply.after.store.clone();
        let flush_limits = reply.after.flush_limits;
        let (headers, body) = match reply.body {
            Body::Upstream(upstream) => {
                if let Some((key, _ttl)) = &store {
                    let mut stored = upstream.headers.clone();
                    reply.after.store_headers.apply_to(&mut stored);
                    self.ports.cache.borrow_mut().insert(
                        key.clone(),
                        Resp {
                            status: upstream.status,
                            headers: stored,
                            body: upstream.body.clone(),
                        },
                    );
                }
                let mut headers = upstream.headers.clone();
                reply.headers.apply_to(&mut headers);
                let body = (!reply.no_body && !matches!(reply.status, 101 | 204 | 205 | 304))
                    .then_some(upstream.body);
                (headers, body)
            }
            Body::Own(text, content_type) => {
                let mut headers = vec![("content-type".to_string(), content_type.to_string())];
                reply.headers.apply_to(&mut headers);
                (headers, (!reply.no_body).then_some(text))
            }
            Body::Empty => {
                let mut headers = Vec::new();
                reply.headers.apply_to(&mut headers);
                (headers, None)
            }
        };
        Out {
            status: reply.status,
            headers,
            body,
            no_body: reply.no_body,
            store,
            flush_limits,
        }
    }
}

/// Asserts the problem+json contract and returns the body.
#[track_caller]
fn assert_problem(out: &Out, status: u16, kind: &str) -> Value {
    assert_eq!(out.status, status, "{out:#?}");
    assert_eq!(
        out.h("content-type").as_deref(),
        Some("application/problem+json"),
        "{out:#?}"
    );
    assert_eq!(
        out.h("cache-control").as_deref(),
        Some("no-store"),
        "{out:#?}"
    );
    let v = out.json();
    let object = v.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["detail", "request_id", "status", "title", "type"],
        "{v}"
    );
    assert_eq!(v["type"], format!("urn:edge-gateway:problem:{kind}"), "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["detail"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!(
        v["request_id"].as_str(),
        out.h("x-request-id").as_deref(),
        "{v}"
    );
    v
}

// ---------------------------------------------------------------------------
// Tokens. HS256 with the secret above; ES256 and EdDSA with the fixed test
// keys of `src/policy/auth/tests.rs`.

const HS_ISS: &str = "https://issuer.test";
const KEYS_ISS: &str = "https://keys.test";
const JWKS_URL: &str = "https://keys.test/.well-known/jwks.json";

const P256_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxSh8Xuwffle5ssMq\n\
Yh7GS6IERBzzME8bmZhO+lz+Yy6hRANCAATmdylACJ3x8ZhkFQh1ph9C1VPo+Qg9\n\
SVqVw2O0FtpR+6W4Z4pW0m6E90Uzffc2XxZGFkd5E+zGi1F+DDnJNR7e\n\
-----END PRIVATE KEY-----\n";
const P256_X: &str = "5ncpQAid8fGYZBUIdaYfQtVT6PkIPUlalcNjtBbaUfs";
const P256_Y: &str = "pbhnilbSboT3RTN99zZfFkYWR3kT7MaLUX4MOck1Ht4";
const ED_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIPbyUHAbyahC4XVbqf40vjCFnI3E9tEdiZf1whqVMna0\n\
-----END PRIVATE KEY-----\n";
const ED_X: &str = "guHMJmlvFlaDvj4j0pleNjhR8USS_blqJsbSyeyAMuI";

fn p256_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": P256_X, "y": P256_Y})
}

fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": ED_X})
}

fn hs_claims(sub: &str, scope: &str) -> Value {
    json!({
        "iss": HS_ISS,
        "sub": sub,
        "scope": scope,
        "email": format!("{sub}@example.test"),
        "exp": NOW_S + 3600,
    })
}

fn hs_token(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(J::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn user(sub: &str) -> String {
    hs_token(&hs_claims(sub, "read"))
}

fn keys_claims() -> Value {
    json!({"iss": KEYS_ISS, "sub": "svc-1", "tenant": "acme", "exp": NOW_S + 7200})
}

fn es_token(kid: &str) -> String {
    let mut header = Header::new(J::ES256);
    header.kid = Some(kid.to_string());
    let key = EncodingKey::from_ec_pem(P256_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &keys_claims(), &key).unwrap()
}

fn ed_token(kid: &str) -> String {
    let mut header = Header::new(J::EdDSA);
    header.kid = Some(kid.to_string());
    let key = EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &keys_claims(), &key).unwrap()
}

// ---------------------------------------------------------------------------
// The routes file most tests use.

const EU: &str = "http://eu.api.test";
const US: &str = "http://us.api.test";
const AP: &str = "http://ap.api.test/base";

fn config() -> Value {
    json!({
        "origins": {
            "api": {
                "regions": [
                    {"name": "eu", "url": "http://eu.api.test/", "serves": ["EU", "GB", "DE"]},
                    {"name": "us", "url": "http://us.api.test", "serves": ["NA"]},
                    {"name": "ap", "url": "http://ap.api.test/base", "serves": ["*"]}
                ],
                "timeout_ms": 5000
            },
            "plain": {
                "regions": [
                    {"name": "one", "url": "http://one.test", "serves": ["FR"]},
                    {"name": "two", "url": "http://two.test", "serves": ["AS"]}
                ]
            },
            "cb": {
                "regions": [
                    {"name": "a", "url": "http://a.cb.test"},
                    {"name": "b", "url": "http://b.cb.test"}
                ],
                "timeout_ms": 1000,
                "circuit_breaker": {"failures": 2, "cooldown_s": 30}
            }
        },
        "jwt": {
            "hs": {
                "issuer": HS_ISS,
                "secret_var": "JWT_SECRET",
                "forward_claims": {"sub": "X-User-Id", "email": "x-user-email"}
            },
            "keys": {
                "issuer": KEYS_ISS,
                "jwks_url": JWKS_URL,
                "forward_claims": {"tenant": "X-Tenant"}
            },
            "broken": {"issuer": "https://broken.test", "secret_var": "UNSET_SECRET"}
        },
        "cors": {
            "origins": ["https://app.test"],
            "expose_headers": ["X-Request-Id"],
            "credentials": true,
            "max_age_s": 600
        },
        "routes": [
            {"id": "items", "path": "/api/items/{id}", "methods": ["GET"], "origin": "api"},
            {"id": "orders", "path": "/api/orders", "methods": ["POST", "PUT"], "origin": "api"},
            {"id": "files", "path": "/v1/users/{id}/{*rest}", "origin": "api",
             "rewrite": "/internal/{id}/files/{rest}", "timeout_ms": 1234},
            {"id": "plain", "path": "/plain", "methods": ["GET"], "origin": "plain"},
            {"id": "cb", "path": "/cb", "methods": ["GET", "POST"], "origin": "cb"},
            {"id": "me", "path": "/api/me", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "hs", "scopes": ["read"]}},
            {"id": "admin", "path": "/api/admin", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "hs", "scopes": ["read", "admin"]}},
            {"id": "tenant", "path": "/api/tenant", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "keys"}},
            {"id": "broken", "path": "/api/broken", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "broken"}},
            {"id": "rl-ip", "path": "/rl/ip", "methods": ["GET"], "origin": "api",
             "rate_limit": {"requests": 3, "window_s": 60}},
            {"id": "rl-key", "path": "/rl/key", "methods": ["GET"], "origin": "api",
             "rate_limit": {"requests": 2, "window_s": 60, "key": "header:X-Api-Key"}},
            {"id": "rl-sub", "path": "/rl/sub", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "hs"},
             "rate_limit": {"requests": 2, "window_s": 60, "key": "sub"}},
            {"id": "cached", "path": "/c/{*rest}", "origin": "api", "cache": {"ttl_s": 120}},
            {"id": "cached-vary", "path": "/cv", "methods": ["GET"], "origin": "api",
             "cache": {"ttl_s": 120, "vary": ["Accept-Language"]}},
            {"id": "cached-auth", "path": "/ca", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "hs"}, "cache": {"ttl_s": 120}},
            {"id": "cached-limited", "path": "/crl", "methods": ["GET"], "origin": "api",
             "rate_limit": {"requests": 5, "window_s": 60}, "cache": {"ttl_s": 120}},
            {"id": "full", "path": "/full", "methods": ["GET"], "origin": "api",
             "auth": {"jwt": "hs"},
             "rate_limit": {"requests": 10, "window_s": 60, "key": "sub"},
             "cache": {"ttl_s": 60}},
            {"id": "partner", "path": "/partner", "methods": ["GET"], "origin": "api",
             "cors": {"origins": ["https://partner.test"]}}
        ]
    })
}

/// A file with a catch-all route: whatever is not the gateway's own reaches it.
fn catch_all_config() -> Value {
    json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "routes": [{"id": "all", "path": "/{*rest}", "origin": "o"}]
    })
}

// ===========================================================================
// Routing

#[test]
fn unknown_path_is_404_problem_and_reaches_no_upstream() {
    let w = world(config());
    let out = w.send(&get("/nope"));
    let v = assert_problem(&out, 404, "not-found");
    assert_eq!(v["detail"], "no route matches this path");
    assert!(w.ports.sent().is_empty());
    let line = w.ports.last_record();
    assert_eq!(line["status"], 404);
    assert!(line.get("route").is_none(), "{line}");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let w = world(config());
    let out = w.send(&req("POST", "/api/items/7"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));

    let out = w.send(&req("DELETE", "/api/orders"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("POST, PUT"));

    // Method names are case-sensitive; an unknown method is refused the same way.
    for m in ["get", "BREW"] {
        let out = w.send(&req(m, "/api/items/7"));
        assert_problem(&out, 405, "method-not-allowed");
        assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn head_on_a_get_route_is_forwarded_as_head_and_answered_without_body() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "12"),
            ],
        ),
    );
    let out = w.send(&req("HEAD", "/api/items/7").country("DE"));
    assert_eq!(out.status, 200);
    assert!(out.no_body);
    assert_eq!(out.body, None);
    assert_eq!(out.h("content-length").as_deref(), Some("12"));
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, Method::Head);
    assert_eq!(sent[0].url, "http://eu.api.test/api/items/7");

    // A gateway error to a HEAD has no body either.
    let out = w.send(&req("HEAD", "/nope"));
    assert_eq!(out.status, 404);
    assert!(out.no_body);
    assert_eq!(out.body, None);
}

#[test]
fn health_is_answered_by_the_gateway_even_with_a_catch_all_route() {
    let w = world(catch_all_config());
    let out = w.send(&get("/__gateway/health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(out.h("cache-control").as_deref(), Some("no-store"));
    let v = out.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["routes"], 1);
    assert!(v["version"].is_string());

    let out = w.send(&req("HEAD", "/__gateway/health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.body, None);

    let out = w.send(&req("POST", "/__gateway/health"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));

    // Reached through dot segments and doubled slashes too.
    let out = w.send(&get("/x/../__gateway//health"));
    assert_eq!(out.status, 200);
    assert_eq!(out.json()["status"], "ok");

    // The reserved prefix is reserved in any case: answered by the gateway, never routed upstream.
    let out = w.send(&get("/__GATEWAY/health"));
    assert_eq!(out.json()["status"], "ok");
    let out = w.send(&get("/__Gateway/other"));
    assert_problem(&out, 404, "not-found");

    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
    // The catch-all still works for other paths.
    assert_eq!(w.send(&get("/__gatewayx")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/__gatewayx"]);
}

#[test]
fn unknown_gateway_endpoints_are_404_and_never_reach_upstream() {
    let w = world(catch_all_config());
    for target in [
        "/__gateway/x",
        "/__gateway",
        "/__gateway/",
        "/__gateway/health/x",
        "/__gateway/cache/0000/x",
        "/a/%2e%2e/__gateway/x",
    ] {
        let out = w.send(&get(target));
        assert_problem(&out, 404, "not-found");
    }
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

#[test]
fn docs_pages_are_served_only_when_the_file_asks_for_them() {
    let mut file = catch_all_config();
    file["docs"] = json!(true);
    let mut w = world(file);
    // The edge serves the pages build.rs generated; here they are generated the same way.
    w.gw.docs = Some(edge_gateway::gateway::DocPages {
        html: edge_gateway::docs::page(&w.gw.file, "API reference", "t", "/__gateway/openapi.json")
            .into(),
        openapi: edge_gateway::openapi::export::document(&w.gw.file, "API reference", "t")
            .to_string()
            .into(),
    });
    let out = w.send(&get("/__gateway/docs"));
    assert_eq!(out.status, 200);
    assert_eq!(
        out.h("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(out
        .h("content-security-policy")
        .is_some_and(|c| c.starts_with("default-src 'none'")));
    let html = out.body.clone().unwrap();
    assert!(html.contains("data-route=\"all\""), "{html}");
    assert!(!html.contains("origin.test"), "no origin URL: {html}");
    let out = w.send(&get("/__gateway/openapi.json"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(out.json()["openapi"], "3.1.0");
    assert_eq!(w.send(&req("HEAD", "/__gateway/docs")).body, None);
    let out = w.send(&req("POST", "/__gateway/docs"));
    assert_problem(&out, 405, "method-not-allowed");
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());

    // Without `"docs": true` there is no such endpoint.
    let w = world(catch_all_config());
    assert_problem(&w.send(&get("/__gateway/docs")), 404, "not-found");
    assert_problem(&w.send(&get("/__gateway/openapi.json")), 404, "not-found");
}

#[test]
fn dot_segments_and_slashes_are_resolved_before_routing() {
    let w = world(config());
    for (target, upstream) in [
        ("/api/x/../items/7", "http://eu.api.test/api/items/7"),
        ("/api/./items//8", "http://eu.api.test/api/items/8"),
        (
            "/api/items/%2e%2e/items/9",
            "http://eu.api.test/api/items/9",
        ),
        ("/../../api/items/10", "http://eu.api.test/api/items/10"),
    ] {
        w.ports.clear_sent();
        let out = w.send(&get(target).country("DE"));
        assert_eq!(out.status, 200, "{target}");
        assert_eq!(w.ports.sent_urls(), [upstream], "{target}");
        assert_eq!(w.ports.last_record()["route"], "items");
    }
    // Dot segments cannot climb into another route's path either.
    let out = w.send(&get("/api/items/7/../../orders"));
    assert_problem(&out, 405, "method-not-allowed");
}

/// A protected prefix beside a catch-all without auth, on one host.
fn protected_and_catch_all_config() -> Value {
    json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "routes": [
            {"id": "admin", "path": "/admin/{*rest}", "origin": "o", "auth": {"jwt": "hs"},
             "rate_limit": {"requests": 1, "window_s": 60, "key": "route"}},
            {"id": "tenant", "path": "/t", "host": "a.tenant.test", "origin": "o"},
            {"id": "all", "path": "/{*rest}", "origin": "o"}
        ]
    })
}

#[test]
fn encoded_unreserved_characters_cannot_bypass_a_protected_route() {
    let w = world(protected_and_catch_all_config());
    // The attack: `%61` is `a`, so this is /admin/x, with its auth, not the catch-all.
    for target in [
        "/%61dmin/x",
        "/%61%64%6D%69%6E/x",
        "/x/%2e%2e/%61dmin/x",
        "/adm%69n/x",
    ] {
        let out = w.send(&get(target));
        assert_problem(&out, 401, "unauthorized");
        assert_eq!(w.ports.last_record()["route"], "admin", "{target}");
    }
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
    // With a token it is the admin route, and the origin receives the normalized path;
    // the route's one-request limit counts both spellings as one path.
    let ok = w.send(&get("/%61dmin/a%2Fb%7e").bearer(&user("alice")));
    assert_eq!(ok.status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/admin/a%2Fb~"]);
    let limited = w.send(&get("/admin/a%2Fb~").bearer(&user("alice")));
    assert_problem(&limited, 429, "rate-limited");
    // Other encodings are sent as they came.
    w.ports.clear_sent();
    assert_eq!(w.send(&get("/x%2Fy%20z%252e")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://origin.test/x%2Fy%20z%252e"]);
}

#[test]
fn an_encoded_reserved_prefix_is_still_reserved() {
    let w = world(catch_all_config());
    for target in [
        "/%5F%5Fgateway/health",
        "/%5f_gateway/health",
        "/%5F%5F%67ateway/health",
    ] {
        let out = w.send(&get(target));
        assert_eq!(out.status, 200, "{target}");
        assert_eq!(out.json()["status"], "ok", "{target}");
    }
    assert_problem(&w.send(&get("/%5F%5Fgateway/nothing")), 404, "not-found");
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

#[test]
fn hosts_match_with_a_single_trailing_dot() {
    let w = world(protected_and_catch_all_config());
    for host in ["a.tenant.test", "A.Tenant.Test.", "a.tenant.test.:8443"] {
        let mut r = get("/t");
        r.host = host.into();
        w.send(&r);
        assert_eq!(w.ports.last_record()["route"], "tenant", "{host}");
    }
    let mut r = get("/t");
    r.host = "a.tenant.test..".into();
    w.send(&r);
    assert_eq!(w.ports.last_record()["route"], "all");
}

#[test]
fn rewrite_and_query_reach_the_upstream_with_the_route_timeout() {
    let w = world(config());
    let out = w.send(&get("/v1/users/42/a/b.txt?x=1&y=%20z").country("GB"));
    assert_eq!(out.status, 200);
    let sent = w.ports.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].url,
        "http://eu.api.test/internal/42/files/a/b.txt?x=1&y=%20z"
    );
    assert_eq!(sent[0].method, Method::Get);
    assert_eq!(sent[0].timeout_ms, 1234);

    // Without a route timeout, the origin's; a region's path prefix is kept.
    w.ports.clear_sent();
    w.send(&get("/api/items/5?q").continent("OC"));
    let sent = w.ports.sent();
    assert_eq!(sent[0].url, "http://ap.api.test/base/api/items/5?q");
    assert_eq!(sent[0].timeout_ms, 5000);

    // The default origin timeout is 10 s.
    w.ports.clear_sent();
    w.send(&get("/plain"));
    assert_eq!(w.ports.sent()[0].timeout_ms, 10_000);
}

#[test]
fn request_id_is_kept_when_valid_replaced_otherwise_and_sent_upstream() {
    let w = world(config());
    let out = w.send(&get("/api/items/1").header("X-Request-Id", "client-id_1.2"));
    assert_eq!(out.h("x-request-id").as_deref(), Some("client-id_1.2"));
    let sent = w.ports.sent();
    assert_eq!(sent[0].h("x-request-id").as_deref(), Some("client-id_1.2"));
    assert_eq!(w.ports.last_record()["request_id"], "client-id_1.2");

    for bad in ["has space", "", "a\u{7f}b", &"x".repeat(129)] {
        w.ports.clear_sent();
        let out = w.send(&get("/api/items/1").header("x-request-id", bad));
        let id = out.h("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let sent = w.ports.sent();
        // Exactly one x-request-id reaches the upstream: the gateway's.
        assert_eq!(
            sent[0]
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
                .count(),
            1
        );
        assert_eq!(sent[0].h("x-request-id").as_deref(), Some(id.as_str()));
        assert_eq!(w.ports.last_record()["request_id"], id.as_str());
    }

    // Generated ids differ between requests; errors carry them too.
    let a = w.send(&get("/nope")).h("x-request-id").unwrap();
    let b = w.send(&get("/nope")).h("x-request-id").unwrap();
    assert_ne!(a, b);
}

#[test]
fn x_forwarded_headers_are_the_gateways_own() {
    let w = world(config());
    w.send(
        &get("/api/items/1")
            .ip("198.51.100.9")
            .header("X-Forwarded-For", "6.6.6.6")
            .header("x-forwarded-for", "7.7.7.7")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "evil.test")
            .header("Forwarded", "for=6.6.6.6;host=evil.test")
            .header("accept", "application/json"),
    );
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("forwarded"), None);
    assert_eq!(sent.h("x-forwarded-for").as_deref(), Some("198.51.100.9"));
    assert_eq!(sent.h("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(sent.h("x-forwarded-host").as_deref(), Some(HOST));
    assert_eq!(sent.h("accept").as_deref(), Some("application/json"));
    assert_eq!(sent.h("host"), None, "the upstream URL decides the host");

    // Without a client address, a client's x-forwarded-for is still dropped.
    w.ports.clear_sent();
    let mut r = get("/api/items/1").header("x-forwarded-for", "6.6.6.6");
    r.client_ip = None;
    w.send(&r);
    assert_eq!(w.ports.sent()[0].h("x-forwarded-for"), None);
}

#[test]
fn hop_by_hop_headers_are_removed_in_both_directions() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("Connection", "close, X-Internal-Hop"),
                ("X-Internal-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "x-checksum"),
                ("content-type", "text/plain"),
                ("x-kept", "1"),
            ],
        ),
    );
    let out = w.send(
        &get("/api/items/1")
            .country("DE")
            .header("Connection", "keep-alive, X-Hop-Req")
            .header("X-Hop-Req", "1")
            .header("Keep-Alive", "timeout=5")
            .header("TE", "trailers")
            .header("Trailer", "x")
            .header("Transfer-Encoding", "chunked")
            .header("Upgrade", "websocket")
            .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
            .header("accept", "*/*"),
    );
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    for name in [
        "connection",
        "x-hop-req",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(sent.h(name), None, "request header {name} was forwarded");
    }
    assert_eq!(sent.h("accept").as_deref(), Some("*/*"));
    for name in [
        "connection",
        "x-internal-hop",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "trailer",
    ] {
        assert!(
            !out.has(name),
            "response header {name} was passed on: {out:#?}"
        );
    }
    assert_eq!(out.h("content-type").as_deref(), Some("text/plain"));
    assert_eq!(out.h("x-kept").as_deref(), Some("1"));
}

#[test]
fn forward_claims_headers_are_stripped_from_every_request_on_every_route() {
    let w = world(config());
    let forged = |r: Req| {
        r.header("X-User-Id", "admin")
            .header("x-user-email", "root@evil.test")
            .header("X-TENANT", "other")
            // Underscore spellings, which CGI-style servers read as the same header.
            .header("x_user_id", "admin")
            .header("X-User_Email", "root@evil.test")
            .header("x_tenant", "other")
            .header("x_forwarded_for", "6.6.6.6")
    };
    // Routes without auth, with another provider's auth, with the claims' provider.
    let token = user("alice");
    let requests = [
        forged(get("/api/items/1")),
        forged(req("POST", "/api/orders")),
        forged(get("/c/x")),
        forged(get("/api/tenant")).bearer(&es_token("k1")),
        forged(get("/api/me")).bearer(&token),
    ];
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    for r in &requests {
        w.ports.clear_sent();
        let out = w.send(r);
        assert_eq!(out.status, 200, "{} {out:#?}", r.path);
        let sent = &w.ports.sent()[0];
        assert_eq!(sent.h("x_forwarded_for"), None);
        match r.path.as_str() {
            "/api/me" => {
                assert_eq!(sent.h("x-user-id").as_deref(), Some("alice"));
                assert_eq!(
                    sent.h("x-user-email").as_deref(),
                    Some("alice@example.test")
                );
                assert_eq!(sent.h("x-tenant"), None);
                assert_eq!(sent.h("x_user_id"), None);
                assert_eq!(sent.h("x-user_email"), None);
            }
            "/api/tenant" => {
                assert_eq!(sent.h("x-tenant").as_deref(), Some("acme"));
                assert_eq!(sent.h("x-user-id"), None);
                assert_eq!(sent.h("x-user-email"), None);
            }
            _ => {
                for name in [
                    "x-user-id",
                    "x-user-email",
                    "x-tenant",
                    "x_user_id",
                    "x-user_email",
                    "x_tenant",
                ] {
                    assert_eq!(sent.h(name), None, "{name} forged on {}", r.path);
                }
            }
        }
    }
    // A token without the claim: the header is absent, not the client's copy.
    w.ports.clear_sent();
    let no_email =
        hs_token(&json!({"iss": HS_ISS, "sub": "bob", "scope": "read", "exp": NOW_S + 60}));
    let out = w.send(&forged(get("/api/me")).bearer(&no_email));
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-user-id").as_deref(), Some("bob"));
    assert_eq!(sent.h("x-user-email"), None);
}

#[test]
fn dev_geo_headers_are_never_forwarded() {
    let w = world(config());
    w.send(
        &get("/api/items/1")
            .header("X-Dev-Country", "US")
            .header("x-dev-continent", "NA"),
    );
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-dev-country"), None);
    assert_eq!(sent.h("x-dev-continent"), None);
    // The headers do not choose the region: the edge decides what `country` is.
    assert_eq!(sent.url, "http://ap.api.test/base/api/items/1");
}

fn is_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3] == "01"
        && parts[1..3].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[test]
fn traceparent_is_kept_when_valid_and_created_when_absent_or_invalid() {
    let w = world(config());
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    w.send(&get("/api/items/1").header("traceparent", valid));
    assert_eq!(w.ports.sent()[0].h("traceparent").as_deref(), Some(valid));

    let mut seen = Vec::new();
    for bad in [
        None,
        Some("garbage"),
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
    ] {
        w.ports.clear_sent();
        let mut r = get("/api/items/1");
        if let Some(b) = bad {
            r = r.header("traceparent", b);
        }
        w.send(&r);
        let tp = w.ports.sent()[0].h("traceparent").expect("a traceparent");
        assert!(is_traceparent(&tp), "{bad:?} -> {tp}");
        assert_ne!(Some(tp.as_str()), bad);
        assert!(!seen.contains(&tp), "trace ids repeat: {tp}");
        seen.push(tp);
    }
}

#[test]
fn server_timing_is_on_every_answer() {
    let w = world(config());
    let out = w.send(&get("/api/items/1"));
    let timing = out.h("server-timing").unwrap();
    assert!(
        timing.starts_with("gateway;dur=") && timing.contains(", upstream;dur=2"),
        "{timing}"
    );
    for r in [get("/nope"), get("/api/me"), get("/__gateway/health")] {
        let out = w.send(&r);
        let timing = out.h("server-timing").unwrap();
        assert!(timing.starts_with("gateway;dur="), "{timing}");
        assert!(!timing.contains("upstream"), "{timing}");
    }
}

#[test]
fn client_input_never_causes_a_500() {
    let w = world(config());
    let long = format!("/api/items/{}", "a".repeat(9000));
    let huge_token = "a".repeat(20_000);
    let cases: Vec<(Req, u16)> = vec![
        (get("api/items/1"), 400),
        (get(""), 400),
        (get("*"), 400),
        (get(&long), 414),
        (req("", "/api/items/1"), 405),
        (req("G\u{0}T", "/api/items/1"), 405),
        (
            get("/api/me").header("authorization", "Basic Zm9vOmJhcg=="),
            401,
        ),
        (get("/api/me").header("authorization", "Bearer "), 401),
        (get("/api/me").bearer(&huge_token), 401),
        (get("/api/me").bearer("a.b.c"), 401),
        (
            get("/api/me").bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            401,
        ),
        (get("/api/me").bearer("\u{0}\u{1}.\u{ff}.x"), 401),
        (
            get("/api/tenant")
                .bearer(&es_token("k1"))
                .header("x-request-id", "a\r\nb: c"),
            503,
        ),
        (
            req("DELETE", "/__gateway/cache?path=relative").bearer(ADMIN_TOKEN),
            400,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/nope%zz").bearer(ADMIN_TOKEN),
            404,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/api/items/1").bearer(ADMIN_TOKEN),
            400,
        ),
        (
            req("DELETE", "/__gateway/cache?path=/ca").bearer(ADMIN_TOKEN),
            400,
        ),
        (req("DELETE", "/__gateway/cache").bearer(ADMIN_TOKEN), 400),
    ];
    w.ports.jwks_fail.set(true);
    for (r, status) in cases {
        let out = w.send(&r);
        let kind = match status {
            400 => "bad-request",
            401 => "unauthorized",
            404 => "not-found",
            405 => "method-not-allowed",
            414 => "uri-too-long",
            503 => "unavailable",
            _ => unreachable!(),
        };
        assert_problem(&out, status, kind);
    }
    // A preflight asking for a malformed method is refused by the path's policy.
    let out = w.send(
        &req("OPTIONS", "/api/items/1")
            .header("origin", "https://app.test")
            .header("access-control-request-method", "G E T"),
    );
    assert_eq!(out.status, 403);
    assert_eq!(out.h("access-control-allow-origin"), None);
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent_urls());
}

// ===========================================================================
// Regions

#[test]
fn region_is_chosen_by_country_then_continent_then_wildcard_then_first() {
    let w = world(config());
    let cases = [
        (Some("DE"), Some("EU"), EU),
        (Some("gb"), Some("EU"), EU), // country listed directly, any case
        (Some("GB"), Some("NA"), EU), // the country wins over the continent
        (Some("US"), Some("NA"), US),
        (None, Some("na"), US),
        (Some("FR"), Some("EU"), EU),
        (Some("JP"), Some("AS"), AP), // nothing listed: the wildcard
        (None, None, AP),
    ];
    for (country, continent, base) in cases {
        w.ports.clear_sent();
        let mut r = get("/api/items/1");
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        w.send(&r);
        assert_eq!(
            w.ports.sent_urls(),
            [format!("{base}/api/items/1")],
            "{country:?} {continent:?}"
        );
    }
    // No wildcard: the first region; a continent, a country.
    for (country, continent, base) in [
        (Some("US"), Some("NA"), "http://one.test"),
        (None, None, "http://one.test"),
        (Some("FR"), None, "http://one.test"),
        (Some("JP"), Some("AS"), "http://two.test"),
    ] {
        w.ports.clear_sent();
        let mut r = get("/plain");
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        w.send(&r);
        assert_eq!(w.ports.sent_urls(), [format!("{base}/plain")]);
    }
}

#[test]
fn get_fails_over_in_wrap_around_order_each_region_once() {
    let w = world(config());
    // us chosen: then ap, then eu (wrapping around); every one fails.
    w.ports.on(US, Outcome::Connect);
    w.ports.on(AP, Outcome::Timeout);
    w.ports.on(
        EU,
        respond(503, &[("content-type", "text/html"), ("retry-after", "3")]),
    );
    let out = w.send(&get("/api/items/1").continent("NA"));
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://us.api.test/api/items/1",
            "http://ap.api.test/base/api/items/1",
            "http://eu.api.test/api/items/1"
        ]
    );
    // The last attempt's answer is the origin's own 503, passed on.
    assert_eq!(out.status, 503);
    assert_eq!(out.h("content-type").as_deref(), Some("text/html"));
    assert_eq!(out.h("retry-after").as_deref(), Some("3"));
    let line = w.ports.last_record();
    assert_eq!(line["failovers"], 2);
    assert_eq!(line["region"], "eu");
    assert_eq!(line["upstream_status"], 503);
    assert_eq!(
        line["attempts"],
        json!([
            {"region": "us", "error": "connect", "ms": 1},
            {"region": "ap", "error": "timeout", "ms": 5000},
            {"region": "eu", "status": 503, "ms": FETCH_MS}
        ])
    );

    // 502 and 504 fail over too; the first success ends it.
    for failing in [502, 504] {
        w.ports.clear_sent();
        w.ports.on(EU, respond(failing, &[]));
        w.ports.on(US, respond(200, &[]));
        let out = w.send(&get("/api/items/2").country("DE"));
        assert_eq!(out.status, 200);
        assert_eq!(
            w.ports.sent_urls(),
            [
                "http://eu.api.test/api/items/2",
                "http://us.api.test/api/items/2"
            ]
        );
        assert_eq!(w.ports.last_record()["region"], "us");
        assert_eq!(w.ports.last_record()["failovers"], 1);
    }

    // 500 and 404 are the origin's answers: no failover.
    for status in [500, 404, 429] {
        w.ports.clear_sent();
        w.ports.on(EU, respond(status, &[]));
        let out = w.send(&get("/api/items/3").country("DE"));
        assert_eq!(out.status, status);
        assert_eq!(w.ports.sent_urls().len(), 1);
    }
}

#[test]
fn a_status_no_response_can_carry_is_a_502_and_fails_over() {
    // The runtime's parser lets `HTTP/1.1 999` or `HTTP/1.1 2x0` (status 2) through.
    for bad in [2, 99, 600, 999] {
        let w = world(config());
        w.ports.on("http://", respond(bad, &[]));
        let out = w.send(&get("/api/items/1"));
        let v = assert_problem(&out, 502, "bad-gateway");
        assert_eq!(v["detail"], "the origin sent an invalid response");
        assert_eq!(w.ports.sent().len(), 3, "each region tried once");
        let line = w.ports.last_record();
        assert_eq!(line["attempts"][0]["error"], "invalid_response", "{line}");
        // A POST is not retried.
        w.ports.clear_sent();
        let out = w.send(&req("POST", "/api/orders"));
        assert_eq!(out.status, 502);
        assert_eq!(w.ports.sent().len(), 1);
    }
}

#[test]
fn the_last_failure_decides_the_answer_when_every_region_fails() {
    let w = world(config());
    w.ports.on("http://", Outcome::Connect);
    let out = w.send(&get("/api/items/1"));
    let v = assert_problem(&out, 502, "bad-gateway");
    assert_eq!(v["detail"], "the origin could not be reached");
    assert_eq!(w.ports.sent().len(), 3);

    w.ports.clear_sent();
    w.ports.on("http://", Outcome::Timeout);
    let out = w.send(&get("/api/items/1"));
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 3);

    // Mixed: the last attempt was a timeout.
    w.ports.clear_sent();
    w.ports.on(AP, Outcome::Connect);
    w.ports.on(EU, respond(502, &[]));
    w.ports.on(US, Outcome::Timeout);
    let out = w.send(&get("/api/items/1").continent("OC"));
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://ap.api.test/base/api/items/1",
            "http://eu.api.test/api/items/1",
            "http://us.api.test/api/items/1"
        ]
    );
}

#[test]
fn post_and_requests_with_a_body_are_never_retried() {
    let w = world(config());
    // Sent once, even though the next region would answer.
    w.ports.once(EU, Outcome::Connect);
    let out = w.send(&req("POST", "/api/orders").country("DE").with_body());
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(w.ports.sent_urls(), ["http://eu.api.test/api/orders"]);
    assert_eq!(w.ports.last_record()["failovers"], 0);
    assert_eq!(
        w.send(&req("POST", "/api/orders").country("DE")).status,
        200
    );

    w.ports.on(EU, Outcome::Connect);

    w.ports.clear_sent();
    let out = w.send(&req("POST", "/api/orders").country("DE"));
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(w.ports.sent().len(), 1);

    w.ports.clear_sent();
    w.ports.on(EU, respond(503, &[]));
    let out = w.send(&req("POST", "/api/orders").country("DE"));
    assert_eq!(out.status, 503);
    assert_eq!(w.ports.sent().len(), 1);

    w.ports.clear_sent();
    w.ports.on(EU, Outcome::Timeout);
    let out = w.send(&req("PUT", "/api/orders").country("DE").with_body());
    assert_problem(&out, 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 1);

    // A GET or HEAD with a body is refused outright (it cannot be sent on).
    w.ports.clear_sent();
    let out = w.send(&get("/api/items/1").country("DE").with_body());
    assert_problem(&out, 400, "bad-request");
    let out = w.send(&req("HEAD", "/api/items/1").country("DE").with_body());
    assert_eq!(out.status, 400);
    assert!(w.ports.sent().is_empty());

    // A PUT without a body is idempotent: it fails over.
    w.ports.clear_sent();
    let out = w.send(&req("PUT", "/api/orders").country("DE"));
    assert_eq!(out.status, 200);
    assert_eq!(w.ports.sent().len(), 2);
    assert_eq!(w.ports.sent()[1].method, Method::Put);
}

fn breaker_events(w: &World) -> Vec<(String, String)> {
    w.ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "circuit_breaker")
        .map(|e| {
            assert_eq!(e["origin"], "cb");
            (
                e["region"].as_str().unwrap().to_string(),
                e["transition"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(region: &str, transition: &str) -> (String, String) {
    (region.to_string(), transition.to_string())
}

#[test]
fn breaker_opens_after_n_failures_and_admits_one_trial_after_the_cooldown() {
    let w = world(config());
    w.ports.on("http://a.cb.test", Outcome::Connect);
    w.ports.on("http://b.cb.test", respond(200, &[]));

    for _ in 0..2 {
        let out = w.send(&get("/cb"));
        assert_eq!(out.status, 200);
    }
    assert_eq!(
        w.ports.sent_urls(),
        [
            "http://a.cb.test/cb",
            "http://b.cb.test/cb",
            "http://a.cb.test/cb",
            "http://b.cb.test/cb"
        ]
    );
    assert_eq!(breaker_events(&w), [ev("a", "closed->open")]);

    // Open: region a is no longer fetched.
    w.ports.clear_sent();
    for _ in 0..3 {
        assert_eq!(w.send(&get("/cb")).status, 200);
        assert_eq!(w.ports.last_record()["failovers"], 0);
    }
    w.ports.advance(29_000);
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(w.ports.sent_urls(), ["http://b.cb.test/cb"; 4]);

    // After the cooldown, one trial; while it is in flight the others skip a.
    w.ports.advance(1_000);
    w.ports.clear_sent();
    let outs = w.send_all(&[get("/cb"), get("/cb"), get("/cb")]);
    assert!(outs.iter().all(|o| o.status == 200));
    let to_a = w
        .ports
        .sent_urls()
        .iter()
        .filter(|u| u.contains("a.cb"))
        .count();
    assert_eq!(to_a, 1, "{:?}", w.ports.sent_urls());
    assert_eq!(
        breaker_events(&w),
        [
            ev("a", "closed->open"),
            ev("a", "open->half_open"),
            ev("a", "half_open->open")
        ]
    );

    // Open again for another cooldown; then a trial that succeeds closes it.
    w.ports.clear_sent();
    w.send(&get("/cb"));
    assert_eq!(w.ports.sent_urls(), ["http://b.cb.test/cb"]);
    w.ports.advance(30_000);
    w.ports.on("http://a.cb.test", respond(200, &[]));
    w.ports.clear_sent();
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(w.send(&get("/cb")).status, 200);
    assert_eq!(
        w.ports.sent_urls(),
        ["http://a.cb.test/cb", "http://a.cb.test/cb"]
    );
    assert_eq!(
        breaker_events(&w)[3..],
        [ev("a", "open->half_open"), ev("a", "half_open->closed")]
    );
}

#[test]
fn all_regions_open_is_503_without_any_fetch() {
    let w = world(config());
    w.ports.on("http://a.cb.test", respond(503, &[]));
    w.ports.on("http://b.cb.test", Outcome::Timeout);
    assert_problem(&w.send(&get("/cb")), 504, "gateway-timeout");
    assert_problem(&w.send(&get("/cb")), 504, "gateway-timeout");
    assert_eq!(w.ports.sent().len(), 4);
    assert_eq!(
        breaker_events(&w),
        [ev("a", "closed->open"), ev("b", "closed->open")]
    );

    w.ports.clear_sent();
    for r in [get("/cb"), req("POST", "/cb"), req("HEAD", "/cb")] {
        let out = w.send(&r);
        assert_eq!(out.status, 503);
        if r.method != "HEAD" {
            let v = assert_problem(&out, 503, "unavailable");
            assert!(
                v["detail"].as_str().unwrap().contains("every region"),
                "{v}"
            );
        }
        assert_eq!(out.h("retry-after").as_deref(), Some("5"));
        let line = w.ports.last_record();
        assert_eq!(line["status"], 503);
        assert!(line.get("attempts").is_none(), "{line}");
        assert!(line.get("region").is_none(), "{line}");
        assert_eq!(line["failovers"], 0);
    }
    assert!(w.ports.sent().is_empty());

    // Other origins are not affected.
    assert_eq!(w.send(&get("/api/items/1")).status, 200);
}

// ===========================================================================
// Auth

#[test]
fn missing_token_is_401_with_a_bare_bearer_challenge() {
    let w = world(config());
    for r in [
        get("/api/me"),
        get("/api/me").header("authorization", "Basic dTpw"),
        get("/api/me").header("authorization", "Bearer"),
    ] {
        let out = w.send(&r);
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], "a bearer token is required");
        assert_eq!(out.h("www-authenticate").as_deref(), Some("Bearer"));
    }
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["error"], "auth: missing token");
}

#[test]
fn bad_tokens_are_401_invalid_token() {
    let w = world(config());
    let good = user("alice");
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other_payload = hs_claims("mallory", "read admin");
    let forged_payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(other_payload.to_string())
    };
    let wrong_secret = jsonwebtoken::encode(
        &Header::new(J::HS256),
        &hs_claims("alice", "read"),
        &EncodingKey::from_secret(b"another secret that is long enough!!"),
    )
    .unwrap();
    let cases = [
        (
            format!("{head}.{forged_payload}.{sig}"),
            "invalid signature",
        ),
        (wrong_secret, "invalid signature"),
        (
            hs_token(&json!({"iss": HS_ISS, "sub": "a", "scope": "read", "exp": NOW_S - 3600})),
            "token expired",
        ),
        (
            hs_token(
                &json!({"iss": "https://other.test", "sub": "a", "scope": "read", "exp": NOW_S + 60}),
            ),
            "wrong issuer",
        ),
        (
            hs_token(&json!({"iss": HS_ISS, "sub": "a", "scope": "read"})),
            "missing exp",
        ),
        ("not-a-token".to_string(), "malformed token"),
    ];
    for (token, reason) in cases {
        let out = w.send(&get("/api/me").bearer(&token));
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], format!("invalid token: {reason}"));
        assert_eq!(
            out.h("www-authenticate").unwrap(),
            format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
        );
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn a_provider_requiring_at_jwt_refuses_id_tokens_of_the_same_issuer() {
    let w = world(json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "jwt": {"at": {"issuer": HS_ISS, "secret_var": "JWT_SECRET", "typ": "at+jwt"},
                "any": {"issuer": HS_ISS, "secret_var": "JWT_SECRET"}},
        "routes": [{"id": "strict", "path": "/strict", "origin": "o", "auth": {"jwt": "at"}},
                   {"id": "lax", "path": "/lax", "origin": "o", "auth": {"jwt": "any"}}]
    }));
    let token = |typ: Option<&str>| {
        let mut header = Header::new(J::HS256);
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(
            &header,
            &hs_claims("alice", "read"),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        assert_eq!(
            w.send(&get("/strict").bearer(&token(Some(typ)))).status,
            200,
            "{typ}"
        );
    }
    for typ in [Some("JWT"), None, Some("id+jwt")] {
        let out = w.send(&get("/strict").bearer(&token(typ)));
        assert_problem(&out, 401, "unauthorized");
        assert_eq!(
            out.h("www-authenticate").as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"wrong token type\""),
            "{typ:?}"
        );
        assert_eq!(
            w.send(&get("/lax").bearer(&token(typ))).status,
            200,
            "{typ:?}"
        );
    }
}

#[test]
fn a_missing_scope_is_403_insufficient_scope() {
    let w = world(config());
    let out = w.send(&get("/api/admin").bearer(&user("alice")));
    let v = assert_problem(&out, 403, "forbidden");
    assert_eq!(v["detail"], "the token lacks a required scope");
    assert_eq!(
        out.h("www-authenticate").as_deref(),
        Some("Bearer error=\"insufficient_scope\", scope=\"read admin\"")
    );
    assert!(w.ports.sent().is_empty());

    let out = w.send(&get("/api/admin").bearer(&hs_token(&hs_claims("root", "admin read"))));
    assert_eq!(out.status, 200);
    let sent = &w.ports.sent()[0];
    assert_eq!(sent.h("x-user-id").as_deref(), Some("root"));
    // The token itself still goes upstream: the gateway does not strip Authorization.
    assert!(sent.h("authorization").is_some());
}

#[test]
fn jwks_burst_causes_one_fetch() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    let token = es_token("k1");
    let burst: Vec<Req> = (0..8).map(|_| get("/api/tenant").bearer(&token)).collect();
    let outs = w.send_all(&burst);
    for out in &outs {
        assert_eq!(out.status, 200, "{out:#?}");
    }
    assert_eq!(w.ports.jwks_fetches.get(), 1);
    assert_eq!(*w.ports.jwks_urls.borrow(), [JWKS_URL]);
    assert_eq!(w.ports.sent().len(), 8);
    // Later requests use the cached keys.
    w.ports.advance(60_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 1);
    assert_eq!(w.ports.last_record()["subject"], "svc-1");
}

#[test]
fn an_unknown_kid_refetches_only_after_ten_seconds() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    assert_eq!(
        w.send(&get("/api/tenant").bearer(&es_token("k1"))).status,
        200
    );
    assert_eq!(w.ports.jwks_fetches.get(), 1);

    // The issuer rotates in a new key; the gateway does not know it yet.
    w.ports.set_jwks(vec![p256_jwk("k1"), ed_jwk("k2")]);
    let rotated = ed_token("k2");
    w.ports.advance(1_000);
    let out = w.send(&get("/api/tenant").bearer(&rotated));
    assert_problem(&out, 401, "unauthorized");
    assert_eq!(
        out.h("www-authenticate").as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"unknown key id\"")
    );
    w.ports.advance(8_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&rotated)).status, 401);
    assert_eq!(w.ports.jwks_fetches.get(), 1, "refetched within 10 s");

    w.ports.advance(1_000);
    let out = w.send(&get("/api/tenant").bearer(&rotated));
    assert_eq!(out.status, 200, "{out:#?}");
    assert_eq!(w.ports.jwks_fetches.get(), 2);
    // Both keys now verify without fetching.
    assert_eq!(
        w.send(&get("/api/tenant").bearer(&es_token("k1"))).status,
        200
    );
    assert_eq!(w.send(&get("/api/tenant").bearer(&rotated)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 2);
}

#[test]
fn jwks_down_with_keys_cached_still_accepts_tokens() {
    let w = world(config());
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    *w.ports.jwks_cache_control.borrow_mut() = Some("public, max-age=60".into());
    let token = es_token("k1");
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);

    w.ports.jwks_fail.set(true);
    w.ports.advance(61_000);
    let out = w.send(&get("/api/tenant").bearer(&token));
    assert_eq!(out.status, 200, "{out:#?}");
    assert_eq!(w.ports.jwks_fetches.get(), 2);
    let errors: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "jwks_error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["provider"], "keys");

    // Retries are spaced: not on every request.
    w.ports.advance(1_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
    assert_eq!(w.ports.jwks_fetches.get(), 2);
}

#[test]
fn jwks_down_with_nothing_cached_is_503() {
    let w = world(config());
    w.ports.jwks_fail.set(true);
    let token = es_token("k1");
    let out = w.send(&get("/api/tenant").bearer(&token));
    let v = assert_problem(&out, 503, "unavailable");
    assert_eq!(v["detail"], "the token issuer's keys cannot be fetched");
    assert_eq!(out.h("retry-after").as_deref(), Some("10"));
    assert!(w.ports.sent().is_empty());

    // Once the issuer is back (after the retry delay), tokens pass.
    w.ports.jwks_fail.set(false);
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    w.ports.advance(10_000);
    assert_eq!(w.send(&get("/api/tenant").bearer(&token)).status, 200);
}

#[test]
fn a_provider_whose_secret_is_not_set_fails_only_its_routes() {
    let w = world(config());
    let token = hs_token(&json!({"iss": "https://broken.test", "sub": "a", "exp": NOW_S + 60}));
    for r in [get("/api/broken"), get("/api/broken").bearer(&token)] {
        let out = w.send(&r);
        let v = assert_problem(&out, 503, "unavailable");
        assert_eq!(
            v["detail"],
            "token verification is not configured for this route"
        );
        assert!(!out.has("www-authenticate"));
    }
    assert!(w.ports.sent().is_empty());
    let line = w.ports.last_record();
    assert!(
        line["error"].as_str().unwrap().contains("UNSET_SECRET"),
        "{line}"
    );

    assert_eq!(w.send(&get("/api/me").bearer(&user("alice"))).status, 200);
    assert_eq!(w.send(&get("/api/items/1")).status, 200);
}

// ===========================================================================
// Rate limits

#[test]
fn a_limit_of_n_admits_exactly_n_then_429() {
    let w = world(config());
    for remaining in ["2", "1", "0"] {
        let out = w.send(&get("/rl/ip"));
        assert_eq!(out.status, 200);
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some(remaining));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(!out.has("retry-after"));
        assert!(out.flush_limits);
        assert_eq!(w.ports.last_record()["rate_limit"], "allowed");
    }
    for _ in 0..2 {
        let out = w.send(&get("/rl/ip"));
        let v = assert_problem(&out, 429, "rate-limited");
        assert_eq!(v["title"], "Rate limit exceeded");
        assert_eq!(out.h("retry-after").as_deref(), Some("60"));
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(out.flush_limits);
        assert_eq!(w.ports.last_record()["rate_limit"], "limited");
    }
    assert_eq!(w.ports.sent().len(), 3);
    // One blocking KV read for the cold counter, none of it a raw address.
    let reads = w.ports.kv_reads.borrow().clone();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(reads[0].starts_with("rl:rl-ip:"), "{reads:?}");
    assert!(!reads[0].contains("203.0.113.7"));

    // Later in the window the reset counts down; the next window admits again.
    w.ports.advance(30_000);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 429);
    assert_eq!(out.h("retry-after").as_deref(), Some("30"));
    w.ports.advance(30_000);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("2"));
}

#[test]
fn rate_limit_headers_are_on_every_answer_after_the_decision() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(200, &[("cache-control", "max-age=60"), ("etag", "\"e\"")]),
    );
    let expect = |out: &Out, remaining: &str| {
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"), "{out:#?}");
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some(remaining));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
    };
    let miss = w.send(&get("/crl").country("DE"));
    expect(&miss, "4");
    let hit = w.send(&get("/crl"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    expect(&hit, "3");
    let not_modified = w.send(&get("/crl").header("if-none-match", "\"e\""));
    assert_eq!(not_modified.status, 304);
    expect(&not_modified, "2");
    for region in [EU, US, AP] {
        w.ports.on(region, Outcome::Connect);
    }
    let failed = w.send(&get("/crl?other").country("DE"));
    assert_problem(&failed, 502, "bad-gateway");
    expect(&failed, "1");
    // A preflight is answered before the limit and does not count.
    let pre = w.send(&preflight("/crl", APP, "GET"));
    assert_eq!(pre.status, 204);
    assert!(!pre.has("ratelimit-limit"));
    expect(&w.send(&get("/crl")), "0");
}

#[test]
fn counters_are_per_key_value() {
    let w = world(config());
    // ip: another address has its own counter.
    for _ in 0..3 {
        assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.1")).status, 200);
    }
    assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.1")).status, 429);
    assert_eq!(w.send(&get("/rl/ip").ip("192.0.2.2")).status, 200);
    // The header does not matter to an ip key.
    assert_eq!(
        w.send(&get("/rl/ip").ip("192.0.2.1").header("x-api-key", "z"))
            .status,
        429
    );

    // header:X-Api-Key: by header value, whatever the address.
    let keyed = |key: &str, ip: &str| get("/rl/key").header("X-API-KEY", key).ip(ip);
    assert_eq!(w.send(&keyed("k1", "192.0.2.1")).status, 200);
    assert_eq!(w.send(&keyed("k1", "192.0.2.2")).status, 200);
    assert_eq!(w.send(&keyed("k1", "192.0.2.3")).status, 429);
    assert_eq!(w.send(&keyed("k2", "192.0.2.3")).status, 200);
    // Without the header: one shared counter.
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.8")).status, 200);
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.9")).status, 200);
    assert_eq!(w.send(&get("/rl/key").ip("192.0.2.10")).status, 429);

    // sub: by verified subject, whatever the address.
    let alice = user("alice");
    let bob = user("bob");
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.1"))
            .status,
        200
    );
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.2"))
            .status,
        200
    );
    let out = w.send(&get("/rl/sub").bearer(&alice).ip("192.0.2.3"));
    assert_eq!(out.status, 429);
    assert_eq!(w.ports.last_record()["subject"], "alice");
    assert_eq!(
        w.send(&get("/rl/sub").bearer(&bob).ip("192.0.2.3")).status,
        200
    );
    // A rejected token never counts.
    assert_eq!(w.send(&get("/rl/sub").bearer("x.y.z")).status, 401);
    assert_eq!(w.send(&get("/rl/sub").bearer(&bob)).status, 200);
    assert_eq!(w.send(&get("/rl/sub").bearer(&bob)).status, 429);

    // Routes do not share counters.
    assert_eq!(w.send(&get("/crl").ip("192.0.2.1")).status, 200);
}

#[test]
fn counts_of_other_isolates_read_from_kv_are_honoured() {
    let w = world(config());
    let limit = RateLimit {
        requests: 3,
        window_s: 60,
        key: KeyKind::Ip,
        scope: Default::default(),
        on_error: None,
    };
    let key = counter_key("rl-ip", &limit, Some("203.0.113.7"), T0_MS);
    w.ports
        .kv
        .borrow_mut()
        .insert(key.kv_key.clone(), json!({"other-isolate": 2}).to_string());
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(w.send(&get("/rl/ip")).status, 429);
    assert_eq!(*w.ports.kv_reads.borrow(), [key.kv_key]);
}

#[test]
fn a_failing_kv_fails_open_and_is_logged() {
    let w = world(config());
    w.ports.kv_fail.set(true);
    let out = w.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("2"));
    assert!(out.flush_limits);
    let line = w.ports.last_record();
    assert_eq!(line["rate_limit"], "kv_error");
    let events: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "kv_error")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["op"], "get");
    assert!(events[0]["key"].as_str().unwrap().starts_with("rl:rl-ip:"));
    assert_eq!(events[0]["error"], "KV is down");

    // The isolate's own admissions stay exactly limited.
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 429);
}

#[test]
fn the_background_flush_brings_counts_to_kv_for_other_isolates() {
    let w = world(config());
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    let writes = w.ports.kv_writes.borrow().clone();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let (key, value, ttl) = &writes[0];
    assert!(key.starts_with("rl:rl-ip:"), "{key}");
    let entries: Value = serde_json::from_str(value).unwrap();
    let counted: u64 = entries
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2);
    assert!(*ttl >= 60);
    assert!(w.ports.events().iter().any(|e| e["event"] == "kv_write"));

    // Another isolate reads the two admissions: one of three is left.
    let other = world(config());
    *other.ports.kv.borrow_mut() = w.ports.kv.borrow().clone();
    let out = other.send(&get("/rl/ip"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(other.send(&get("/rl/ip")).status, 429);
}

#[test]
fn a_failed_kv_write_is_logged_and_retried() {
    let w = world(config());
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    w.ports.kv_fail.set(true);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    let failed: Vec<Value> = w
        .ports
        .events()
        .into_iter()
        .filter(|e| e["event"] == "kv_error")
        .collect();
    assert!(failed.iter().any(|e| e["op"] == "put"), "{failed:?}");
    assert!(w.ports.kv.borrow().is_empty());
    // KV is back: the next flush writes the count.
    w.ports.kv_fail.set(false);
    w.ports.advance(30_000);
    assert_eq!(w.send(&get("/rl/ip")).status, 200);
    block_on(ratelimit::phase::flush(&w.state.limiter, &w.ports));
    assert_eq!(w.ports.kv.borrow().len(), 1);
}

#[test]
fn concurrent_requests_on_a_cold_counter_are_limited_exactly() {
    let w = world(config());
    let burst: Vec<Req> = (0..6).map(|_| get("/rl/ip")).collect();
    let outs = w.send_all(&burst);
    let allowed = outs.iter().filter(|o| o.status == 200).count();
    let limited = outs.iter().filter(|o| o.status == 429).count();
    assert_eq!((allowed, limited), (3, 3));
    assert_eq!(w.ports.kv_reads.borrow().len(), 1);
}

#[test]
fn flush_limits_is_asked_for_on_rate_limited_routes_only() {
    let w = world(config());
    // Admitted and forwarded, and denied (429): both ask for a flush.
    assert!(w.send(&get("/crl")).flush_limits);
    for n in 0..4 {
        // Distinct queries: misses, not hits (hits are covered by flush_limits_is_set_on_cache_hits).
        assert!(w.send(&get(&format!("/crl?n={n}"))).flush_limits);
    }
    let denied = w.send(&get("/crl"));
    assert_eq!(denied.status, 429);
    assert!(denied.flush_limits);
    // Routes without a limit, and answers before routing, never ask.
    assert!(!w.send(&get("/api/items/1")).flush_limits);
    assert!(!w.send(&get("/c/x")).flush_limits);
    assert!(!w.send(&get("/nope")).flush_limits);
    assert!(!w.send(&get("/__gateway/health")).flush_limits);
}

#[test]

fn flush_limits_is_set_on_cache_hits() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let miss = w.send(&get("/crl").country("DE"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert!(miss.flush_limits);
    // The hit is an admission: it counts (remaining went down).
    let hit = w.send(&get("/crl").country("DE"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("ratelimit-remaining").as_deref(), Some("3"));
    assert!(hit.flush_limits, "a cache hit was admitted but not flushed");
}

#[test]

fn flush_limits_is_set_when_the_upstream_fails() {
    let w = world(config());
    for (outcome, status) in [(Outcome::Connect, 502), (Outcome::Timeout, 504)] {
        w.ports.on("http://", outcome);
        let out = w.send(&get("/rl/ip"));
        assert_eq!(out.status, status);
        assert!(out.has("ratelimit-remaining"));
        assert!(out.flush_limits, "an admitted {status} was not flushed");
    }
}

// ===========================================================================
// Cache

#[test]
fn get_misses_then_hits_with_age() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("cache-control", "public, max-age=300"),
                ("etag", "\"v1\""),
                ("x-gateway-stored-at", "1"),
                ("x-gateway-origin-cache-control", "spoofed"),
            ],
        ),
    );
    let out = w.send(&get("/c/a?b=2&a=1").country("DE"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(
        out.h("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    assert!(
        !out.has("x-gateway-stored-at"),
        "a spoofed storage time passed: {out:#?}"
    );
    assert!(!out.has(ORIGIN_CACHE_CONTROL), "{out:#?}");
    assert!(!out.has("age"));
    let (key, ttl) = out.store.clone().expect("stored");
    assert_eq!(
        ttl, 120,
        "the route's ttl is lower than the origin's max-age"
    );
    assert!(
        key.starts_with("https://api.example.test/__gateway/cache/"),
        "{key}"
    );
    assert!(key.ends_with("/c/a?a=1&b=2"), "{key}");
    assert_eq!(w.ports.last_record()["cache"], "MISS");

    w.ports.advance(7_000);
    let hit = w.send(&get("/c/a?a=1&b=2").country("DE"));
    assert_eq!(hit.status, 200);
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("age").as_deref(), Some("7"));
    assert_eq!(
        hit.h("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    assert_eq!(hit.h("etag").as_deref(), Some("\"v1\""));
    assert_eq!(hit.h("content-type").as_deref(), Some("application/json"));
    assert_eq!(hit.body, out.body);
    assert!(hit.store.is_none());
    for name in [cache::STORED_AT, ORIGIN_CACHE_CONTROL] {
        assert!(!hit.has(name), "{name} leaked: {hit:#?}");
    }
    assert!(hit.has("x-request-id") && hit.has("server-timing"));
    assert_eq!(w.ports.sent().len(), 1);
    let line = w.ports.last_record();
    assert_eq!(line["cache"], "HIT");
    assert!(line.get("region").is_none());

    // A HEAD is answered from the GET entry, without a body.
    let head = w.send(&req("HEAD", "/c/a?a=1&b=2"));
    assert_eq!(head.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(head.body, None);
    assert_eq!(w.ports.sent().len(), 1);

    // Without an origin cache-control, a hit has none either.
    w.ports.on(EU, respond(200, &[]));
    let first = w.send(&get("/c/plain").country("DE"));
    assert_eq!(first.store.as_ref().unwrap().1, 120);
    let hit = w.send(&get("/c/plain").country("DE"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("age").as_deref(), Some("0"));
    assert!(!hit.has("cache-control"), "{hit:#?}");
}

#[test]
fn a_hit_never_carries_the_hop_by_hop_headers_the_origin_connection_names() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("content-type", "application/json"),
                ("connection", "x-secret, X_Other"),
                ("x-secret", "1"),
                ("x_other", "2"),
                ("keep-alive", "timeout=5"),
                ("upgrade", "h2c"),
                ("x-end-to-end", "kept"),
            ],
        ),
    );
    let miss = w.send(&get("/c/hop").country("DE"));
    let hit = w.send(&get("/c/hop").country("DE"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    for out in [&miss, &hit] {
        for name in ["connection", "x-secret", "x_other", "keep-alive", "upgrade"] {
            assert!(!out.has(name), "{name} served: {out:#?}");
        }
        assert_eq!(out.h("x-end-to-end").as_deref(), Some("kept"));
    }
    let stored = w.ports.cache.borrow();
    let entry = stored.values().next().expect("one entry");
    for name in ["connection", "x-secret", "x_other", "keep-alive", "upgrade"] {
        assert!(header_of(&entry.headers, name).is_none(), "{name} stored");
    }
}

#[test]
fn other_methods_bypass_the_cache() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let out = w.send(&req(m, "/c/x").country("DE"));
        assert_eq!(out.status, 200);
        assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"), "{m}");
        assert!(out.store.is_none());
        assert_eq!(w.ports.last_record()["cache"], "BYPASS");
    }
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(
        w.send(&get("/c/x").country("DE")).h("x-cache").as_deref(),
        Some("MISS")
    );
    // A HEAD miss is not stored (it has no body).
    let head = w.send(&req("HEAD", "/c/y").country("DE"));
    assert_eq!(head.h("x-cache").as_deref(), Some("MISS"));
    assert!(head.store.is_none());
}

#[test]
fn unstorable_responses_are_never_stored() {
    let w = world(config());
    let cases: [(&str, Outcome); 8] = [
        (
            "/c/no-store",
            respond(200, &[("cache-control", "no-store")]),
        ),
        (
            "/c/private",
            respond(200, &[("cache-control", "private, max-age=60")]),
        ),
        (
            "/c/no-cache",
            respond(200, &[("cache-control", "no-cache")]),
        ),
        (
            "/c/max-age-0",
            respond(200, &[("cache-control", "max-age=0")]),
        ),
        (
            "/c/cookie",
            respond(
                200,
                &[("set-cookie", "s=1"), ("cache-control", "max-age=60")],
            ),
        ),
        (
            "/c/missing",
            respond(404, &[("cache-control", "max-age=60")]),
        ),
        (
            "/c/vary-star",
            respond(200, &[("vary", "*"), ("cache-control", "max-age=60")]),
        ),
        ("/c/error", respond(500, &[("cache-control", "max-age=60")])),
    ];
    for (path, outcome) in cases {
        w.ports.on(&format!("{EU}{path}"), outcome);
        for _ in 0..2 {
            let out = w.send(&get(path).country("DE"));
            assert_eq!(out.h("x-cache").as_deref(), Some("MISS"), "{path}");
            assert!(out.store.is_none(), "{path} would be stored");
        }
    }
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(w.ports.sent().len(), 16);
    // The set-cookie is passed to the client.
    let out = w.send(&get("/c/cookie").country("DE"));
    assert_eq!(out.h("set-cookie").as_deref(), Some("s=1"));
}

#[test]
fn a_request_with_authorization_on_a_public_route_is_stored_only_when_public() {
    let w = world(config());
    w.ports.on(
        &format!("{EU}/c/authz"),
        respond(200, &[("cache-control", "max-age=60")]),
    );
    let out = w.send(&get("/c/authz").country("DE").bearer("opaque"));
    assert_eq!(out.h("x-cache").as_deref(), Some("MISS"));
    assert!(out.store.is_none());
    w.ports.on(
        &format!("{EU}/c/authz"),
        respond(200, &[("cache-control", "public, max-age=60")]),
    );
    let out = w.send(&get("/c/authz").country("DE").bearer("opaque"));
    assert_eq!(out.store.as_ref().map(|s| s.1), Some(60));
}

#[test]
fn auth_routes_are_cached_per_subject() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let alice = user("alice");
    let bob = user("bob");
    let a1 = w.send(&get("/ca").country("DE").bearer(&alice));
    assert_eq!(a1.h("x-cache").as_deref(), Some("MISS"));
    let key = a1.store.clone().unwrap().0;
    assert!(!key.contains("alice"), "{key}");
    let a2 = w.send(&get("/ca").country("DE").bearer(&alice));
    assert_eq!(a2.h("x-cache").as_deref(), Some("HIT"));
    let b1 = w.send(&get("/ca").country("DE").bearer(&bob));
    assert_eq!(b1.h("x-cache").as_deref(), Some("MISS"));
    assert_ne!(b1.store.clone().unwrap().0, key);
    assert_eq!(
        w.send(&get("/ca").bearer(&bob)).h("x-cache").as_deref(),
        Some("HIT")
    );
    assert_eq!(w.ports.sent().len(), 2);
    // No token: 401 before the cache is consulted.
    let out = w.send(&get("/ca"));
    assert_eq!(out.status, 401);
    assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"));
    // A token without a subject cannot share entries: bypass.
    let anonymous = hs_token(&json!({"iss": HS_ISS, "exp": NOW_S + 60}));
    let out = w.send(&get("/ca").country("DE").bearer(&anonymous));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("x-cache").as_deref(), Some("BYPASS"));
    assert!(out.store.is_none());
}

#[test]
fn vary_headers_separate_entries() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    let lang = |v: &str| get("/cv").country("DE").header("Accept-Language", v);
    let x = |out: Out| out.h("x-cache").unwrap();
    assert_eq!(x(w.send(&lang("en"))), "MISS");
    assert_eq!(x(w.send(&lang("en"))), "HIT");
    assert_eq!(x(w.send(&lang("fr"))), "MISS");
    assert_eq!(x(w.send(&lang("fr"))), "HIT");
    assert_eq!(x(w.send(&get("/cv"))), "MISS");
    assert_eq!(x(w.send(&get("/cv"))), "HIT");
    assert_eq!(x(w.send(&lang(""))), "MISS");
    // Other headers do not matter.
    assert_eq!(x(w.send(&lang("en").header("accept", "text/html"))), "HIT");
    assert_eq!(w.ports.sent().len(), 4);
}

#[test]
fn a_response_varying_on_a_header_outside_the_key_is_not_stored() {
    let w = world(config());
    let x = |out: &Out| out.h("x-cache").unwrap();
    // The leak: `Vary: Cookie` on a route whose key ignores cookies.
    w.ports
        .on(EU, respond(200, &[("vary", "Accept-Encoding, Cookie")]));
    let alice = w.send(&get("/c/me").country("DE").header("cookie", "session=alice"));
    assert_eq!(x(&alice), "MISS");
    assert!(alice.store.is_none());
    let bob = w.send(&get("/c/me").country("DE").header("cookie", "session=bob"));
    assert_eq!(x(&bob), "MISS", "bob was served alice's variant");
    assert_eq!(w.ports.sent().len(), 2);
    assert!(w.ports.cache.borrow().is_empty());
    // A `Vary` within the route's list (and Accept-Encoding) is stored.
    w.ports.on(
        EU,
        respond(200, &[("vary", "accept-language, Accept-Encoding")]),
    );
    let lang = || get("/cv").country("DE").header("Accept-Language", "en");
    assert!(w.send(&lang()).store.is_some());
    assert_eq!(x(&w.send(&lang())), "HIT");
    // Only Accept-Encoding: stored.
    w.ports.on(EU, respond(200, &[("vary", "Accept-Encoding")]));
    assert!(w.send(&get("/c/enc").country("DE")).store.is_some());
}

#[test]
fn repeated_query_parameters_keep_their_order_in_the_key() {
    let w = world(config());
    let x = |out: Out| out.h("x-cache").unwrap();
    assert_eq!(x(w.send(&get("/c/q?a=1&a=2").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=2&a=1").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=1&a=2").country("DE"))), "HIT");
    // Distinct names may come in any order.
    assert_eq!(x(w.send(&get("/c/q?b=0&a=1&a=2").country("DE"))), "MISS");
    assert_eq!(x(w.send(&get("/c/q?a=1&b=0&a=2").country("DE"))), "HIT");
    assert_eq!(w.ports.sent().len(), 3);
}

#[test]
fn a_successful_unsafe_request_invalidates_the_entry_of_its_url() {
    let w = world(config());
    let x = |out: &Out| out.h("x-cache").unwrap();
    let prime = |target: &str| {
        w.send(&get(target).country("DE"));
        assert_eq!(x(&w.send(&get(target).country("DE"))), "HIT", "{target}");
    };
    for (i, m) in ["POST", "PUT", "PATCH", "DELETE"].into_iter().enumerate() {
        let target = format!("/c/doc{i}?v=1");
        prime(&target);
        prime("/c/other");
        w.ports
            .once(EU, respond(if i % 2 == 0 { 201 } else { 204 }, &[]));
        let out = w.send(&req(m, &target).country("DE"));
        assert_eq!(x(&out), "BYPASS");
        assert_eq!(x(&w.send(&get(&target).country("DE"))), "MISS", "{m}");
        // Another URL (or another query) keeps its entry.
        assert_eq!(x(&w.send(&get("/c/other").country("DE"))), "HIT", "{m}");
    }
    // A failed write invalidates nothing.
    prime("/c/kept");
    for status in [400, 409, 500] {
        w.ports.once(EU, respond(status, &[]));
        w.send(&req("DELETE", "/c/kept").country("DE"));
        assert_eq!(x(&w.send(&get("/c/kept").country("DE"))), "HIT", "{status}");
    }
    // The normalized path is the same URL.
    prime("/c/enc");
    w.send(&req("PUT", "/c/%65nc").country("DE"));
    assert_eq!(x(&w.send(&get("/c/enc").country("DE"))), "MISS");
}

#[test]
fn if_none_match_on_a_hit_is_304_without_body() {
    let w = world(config());
    w.ports.on(
        EU,
        respond(
            200,
            &[
                ("etag", "\"v1\""),
                ("content-type", "text/plain"),
                ("content-length", "20"),
                ("cache-control", "max-age=60"),
                ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ],
        ),
    );
    w.send(&get("/c/e").country("DE"));
    for inm in ["\"v1\"", "W/\"v1\"", "\"v0\", \"v1\"", "*"] {
        let out = w.send(&get("/c/e").header("if-none-match", inm));
        assert_eq!(out.status, 304, "{inm}");
        assert!(out.no_body);
        assert_eq!(out.body, None);
        assert_eq!(out.h("x-cache").as_deref(), Some("HIT"));
        assert_eq!(out.h("etag").as_deref(), Some("\"v1\""));
        assert!(
            !out.has("content-length") && !out.has("content-type"),
            "{out:#?}"
        );
    }
    let out = w.send(&get("/c/e").header("if-none-match", "\"v2\""));
    assert_eq!(out.status, 200);
    assert!(out.body.is_some());
    // If-Modified-Since, without If-None-Match.
    let out = w.send(&get("/c/e").header("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"));
    assert_eq!(out.status, 304);
    assert_eq!(w.ports.sent().len(), 1);
    assert_eq!(w.ports.last_record()["status"], 304);
}

#[test]
fn purge_needs_the_admin_token() {
    let w = world(config());
    w.ports
        .on(EU, respond(200, &[("cache-control", "max-age=60")]));
    w.send(&get("/c/p?x=1").country("DE"));
    assert_eq!(w.ports.cache.borrow().len(), 1);

    let purge = |token: Option<&str>| {
        let r = req("DELETE", "/__gateway/cache?path=%2Fc%2Fp%3Fx%3D1");
        match token {
            Some(t) => r.bearer(t),
            None => r,
        }
    };
    for token in [None, Some("wrong"), Some("admin-token-for-tests-012345678")] {
        let out = w.send(&purge(token));
        let v = assert_problem(&out, 401, "unauthorized");
        assert_eq!(v["detail"], "the admin token is missing or wrong");
        assert_eq!(
            out.h("www-authenticate").as_deref(),
            Some("Bearer realm=\"gateway-admin\"")
        );
    }
    assert_eq!(w.ports.cache.borrow().len(), 1);

    let out = w.send(&purge(Some(ADMIN_TOKEN)));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        out.json(),
        json!({"purged": true, "route": "cached", "path": "/c/p"})
    );
    assert!(w.ports.cache.borrow().is_empty());
    assert_eq!(w.send(&purge(Some(ADMIN_TOKEN))).json()["purged"], false);
    assert_eq!(
        w.send(&get("/c/p?x=1")).h("x-cache").as_deref(),
        Some("MISS")
    );

    // Only DELETE.
    let out = w.send(&get("/__gateway/cache?path=/c/p").bearer(ADMIN_TOKEN));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("DELETE"));

    // Per-subject entries need the subject.
    let alice = user("alice");
    w.send(&get("/ca").bearer(&alice));
    assert_eq!(w.ports.cache.borrow().len(), 2);
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/ca").bearer(ADMIN_TOKEN));
    assert_problem(&out, 400, "bad-request");
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/ca&subject=alice").bearer(ADMIN_TOKEN));
    assert_eq!(out.json()["purged"], true);
    assert_eq!(w.ports.cache.borrow().len(), 1);
    assert!(w.ports.sent().len() == 3);
}

#[test]
fn purge_is_disabled_without_the_admin_secret() {
    let w = world_with(config(), &[("JWT_SECRET", JWT_SECRET)]);
    let out = w.send(&req("DELETE", "/__gateway/cache?path=/c/p").bearer(ADMIN_TOKEN));
    let v = assert_problem(&out, 401, "unauthorized");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_ADMIN_TOKEN"),
        "{v}"
    );
    // An empty secret counts as unset.
    let w = world_with(
        config(),
        &[("JWT_SECRET", JWT_SECRET), ("GATEWAY_ADMIN_TOKEN", "")],
    );
    let out =
        w.send(&req("DELETE", "/__gateway/cache?path=/c/p").header("authorization", "Bearer "));
    assert_problem(&out, 401, "unauthorized");
}

// ===========================================================================
// CORS

const APP: &str = "https://app.test";

fn preflight(path: &str, origin: &str, method: &str) -> Req {
    req("OPTIONS", path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
}

#[test]
fn an_allowed_preflight_is_answered_204_with_allow_headers() {
    let w = world(config());
    let out = w.send(
        &preflight("/api/items/7", APP, "GET")
            .header("Access-Control-Request-Headers", "X-Custom, Content-Type"),
    );
    assert_eq!(out.status, 204);
    assert_eq!(out.body, None);
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(
        out.h("access-control-allow-headers").as_deref(),
        Some("x-custom, content-type")
    );
    assert_eq!(out.h("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let vary = out.h("vary").unwrap();
    assert!(
        vary.starts_with("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        "{vary}"
    );
    assert!(out.has("x-request-id"));
    // Answered before auth, never forwarded.
    let out = w.send(&preflight("/api/me", APP, "GET"));
    assert_eq!(out.status, 204);
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["status"], 204);
}

#[test]
fn a_preflight_to_an_unmatched_path_is_answered_by_the_top_level_policy() {
    let w = world(config());
    let out = w.send(
        &preflight("/no/such/path", APP, "PUT").header("Access-Control-Request-Headers", "X-A"),
    );
    assert_eq!(out.status, 204, "{out:#?}");
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
    );
    assert_eq!(
        out.h("access-control-allow-headers").as_deref(),
        Some("x-a")
    );
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(w.ports.last_record()["status"], 204);
    assert!(w.ports.last_record().get("route").is_none());
    // So the page can read the real request's 404 and its request id.
    let out = w.send(&req("PUT", "/no/such/path").header("Origin", APP));
    assert_problem(&out, 404, "not-found");
    assert_eq!(out.h("access-control-allow-origin").as_deref(), Some(APP));
    let exposed = out.h("access-control-expose-headers").unwrap();
    assert!(
        exposed.split(", ").any(|h| h == "x-request-id"),
        "{exposed}"
    );
    // A disallowed origin gets no grant there either; nothing goes upstream.
    let out = w.send(&preflight("/no/such/path", "https://evil.test", "GET"));
    assert_eq!(out.status, 403);
    assert!(!out.has("access-control-allow-origin"));
    assert!(w.ports.sent().is_empty());
    // Without a top-level policy, such a preflight is an ordinary 404.
    let w = world(json!({
        "origins": {"o": {"regions": [{"name": "r", "url": "http://origin.test"}]}},
        "routes": [{"id": "a", "path": "/a", "origin": "o",
                    "cors": {"origins": ["https://app.test"]}}]
    }));
    let out = w.send(&preflight("/nope", APP, "GET"));
    assert_problem(&out, 404, "not-found");
    assert!(!out.has("access-control-allow-origin"));
}

#[test]
fn the_gateway_own_headers_are_always_exposed_to_allowed_origins() {
    let w = world(config());
    let exposed = |out: &Out| -> Vec<String> {
        out.h("access-control-expose-headers")
            .unwrap_or_default()
            .split(", ")
            .map(str::to_string)
            .collect()
    };
    let out = w.send(&get("/api/me").header("Origin", APP));
    assert_problem(&out, 401, "unauthorized");
    assert!(out.has("www-authenticate"));
    let list = exposed(&out);
    // The policy's own list first, then the gateway's, each once.
    assert_eq!(list[0], "x-request-id");
    for name in GATEWAY_EXPOSED {
        assert_eq!(
            list.iter().filter(|h| *h == name).count(),
            1,
            "{name}: {list:?}"
        );
    }
    for name in ["x-quota-limit", "x-quota-remaining", "x-quota-reset"] {
        assert!(list.iter().any(|h| h == name), "{name}");
    }
    let out = w.send(&get("/rl/ip").header("Origin", APP));
    assert!(
        out.has("ratelimit-limit") && out.has("ratelimit-remaining") && out.has("ratelimit-reset")
    );
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed(&out).iter().any(|h| h == name), "{name}");
    }
    // Not to a disallowed origin.
    let out = w.send(&get("/rl/ip").header("Origin", "https://evil.test"));
    assert!(!out.has("access-control-expose-headers"));
}

#[test]
fn a_disallowed_preflight_gets_no_allow_headers() {
    let w = world(config());
    for r in [
        preflight("/api/items/7", "https://evil.test", "GET"),
        preflight("/api/items/7", "null", "GET"),
        preflight("/api/me", "https://app.test.evil.test", "GET"),
    ] {
        let out = w.send(&r);
        assert_eq!(out.status, 403, "{out:#?}");
        assert_eq!(out.body, None);
        for name in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            assert!(!out.has(name), "{name}: {out:#?}");
        }
    }
    assert!(w.ports.sent().is_empty());
}

#[test]
fn actual_responses_and_gateway_errors_carry_cors_headers() {
    let w = world(config());
    w.ports.on(EU, respond(200, &[("vary", "Accept-Encoding")]));
    let cases = [
        (get("/api/items/1").country("DE"), 200),
        (get("/nope"), 404),
        (get("/api/me"), 401),
        (req("POST", "/api/items/1"), 405),
    ];
    for (r, status) in cases {
        let out = w.send(&r.header("Origin", APP));
        assert_eq!(out.status, status);
        assert_eq!(
            out.h("access-control-allow-origin").as_deref(),
            Some(APP),
            "{out:#?}"
        );
        assert_eq!(
            out.h("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            out.h("access-control-expose-headers").as_deref(),
            Some(GATEWAY_EXPOSED.join(", ").as_str())
        );
        let vary = out.h("vary").unwrap();
        assert!(vary.split(", ").any(|v| v == "Origin"), "{vary}");
        if status == 200 {
            assert!(
                vary.contains("Accept-Encoding"),
                "upstream vary lost: {vary}"
            );
        }
    }
    // A disallowed origin: no CORS grant, still Vary: Origin.
    let out = w.send(&get("/api/items/1").header("Origin", "https://evil.test"));
    assert!(!out.has("access-control-allow-origin"));
    assert!(!out.has("access-control-allow-credentials"));
    assert!(out.h("vary").unwrap().contains("Origin"));
}

/// An origin that grants every origin, with credentials, in mixed case.
fn permissive_origin() -> Outcome {
    respond(
        200,
        &[
            ("Access-Control-Allow-Origin", "https://evil.test"),
            ("access-control-allow-credentials", "true"),
            ("Access-Control-Expose-Headers", "x-internal"),
            ("access-control-allow-methods", "DELETE"),
            ("access-control-max-age", "86400"),
            ("x-internal", "1"),
        ],
    )
}

#[test]
fn the_policy_alone_decides_cors_headers_on_routes_with_one() {
    let w = world(config());
    w.ports.on(EU, permissive_origin());
    // The attack: a disallowed origin reads a credentialed answer the origin allowed.
    for (target, cached) in [
        ("/api/items/1", false),
        ("/c/creds", true),
        ("/c/creds", true),
    ] {
        let out = w.send(
            &get(target)
                .country("DE")
                .header("Origin", "https://evil.test"),
        );
        assert_eq!(out.status, 200);
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
            "access-control-allow-methods",
            "access-control-max-age",
        ] {
            assert!(!out.has(name), "{name} from the origin: {out:#?}");
        }
        assert_eq!(out.h("x-cache").is_some(), cached);
    }
    assert_eq!(w.ports.cache.borrow().len(), 1);
    // An allowed origin gets the policy's answer, one value each, origin's dropped.
    for _ in 0..2 {
        let out = w.send(&get("/c/creds").country("DE").header("Origin", APP));
        let values = |name: &str| -> Vec<String> {
            out.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(values("access-control-allow-origin"), [APP]);
        assert_eq!(values("access-control-allow-credentials"), ["true"]);
        assert!(!values("access-control-expose-headers")[0].contains("x-internal"));
        assert!(values("access-control-allow-methods").is_empty());
        assert!(values("access-control-max-age").is_empty());
    }
    // A route of its own policy: same rule.
    let out = w.send(&get("/partner").country("DE").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");
    assert!(!out.has("access-control-allow-credentials"));
}

#[test]
fn without_a_cors_policy_the_origin_cors_headers_pass_through() {
    let w = world(catch_all_config());
    w.ports.on("http://origin.test", permissive_origin());
    let out = w.send(&get("/x").header("Origin", "https://evil.test"));
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://evil.test")
    );
    assert_eq!(
        out.h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(out.h("access-control-max-age").as_deref(), Some("86400"));
}

#[test]
fn a_route_cors_policy_overrides_the_top_level_one() {
    let w = world(config());
    let out = w.send(&get("/partner").header("Origin", "https://partner.test"));
    assert_eq!(out.status, 200);
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    assert!(!out.has("access-control-allow-credentials"));
    // No list of its own: the gateway's headers only.
    assert_eq!(
        out.h("access-control-expose-headers").as_deref(),
        Some(GATEWAY_EXPOSED.join(", ").as_str())
    );
    let out = w.send(&get("/partner").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");
    // Gateway errors of the route use the route's policy too.
    w.ports.on("http://", Outcome::Connect);
    let out = w.send(&get("/partner").header("Origin", "https://partner.test"));
    assert_problem(&out, 502, "bad-gateway");
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    let out = w.send(&get("/partner").header("Origin", APP));
    assert_problem(&out, 502, "bad-gateway");
    assert!(!out.has("access-control-allow-origin"), "{out:#?}");

    let out = w.send(&preflight("/partner", "https://partner.test", "GET"));
    assert_eq!(out.status, 204);
    assert_eq!(
        out.h("access-control-allow-origin").as_deref(),
        Some("https://partner.test")
    );
    assert_eq!(
        out.h("access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert!(!out.has("access-control-allow-credentials"), "{out:#?}");
}

#[test]

fn a_preflight_refused_by_the_route_policy_gets_no_grant_from_the_top_level_one() {
    let w = world(config());
    let out = w.send(&preflight("/partner", APP, "GET"));
    assert_refused_preflight(&out);
}

#[test]

fn a_preflight_refused_for_its_headers_gets_no_grant() {
    let w = world(config());
    let out = w.send(
        &preflight("/api/items/7", APP, "GET")
            .header("Access-Control-Request-Headers", "bad header"),
    );
    assert_refused_preflight(&out);
}

#[track_caller]
fn assert_refused_preflight(out: &Out) {
    assert_eq!(out.status, 403);
    assert_eq!(out.body, None);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert!(!out.has(name), "{name} on a refused preflight: {out:#?}");
    }
}

#[test]
fn without_any_cors_policy_no_cors_headers_are_added() {
    let mut cfg = config();
    cfg.as_object_mut().unwrap().remove("cors");
    let w = world(cfg);
    let out = w.send(&get("/api/items/1").header("Origin", APP));
    assert_eq!(out.status, 200);
    assert!(!out.has("access-control-allow-origin"));
    assert!(!out.has("vary"));
    let out = w.send(&get("/nope").header("Origin", APP));
    assert!(!out.has("access-control-allow-origin"));
}

#[test]

fn an_unanswered_preflight_does_not_bypass_the_route_methods() {
    let mut cfg = config();
    cfg.as_object_mut().unwrap().remove("cors");
    let w = world(cfg);
    let out = w.send(&preflight("/api/items/1", APP, "GET"));
    assert_problem(&out, 405, "method-not-allowed");
    assert_eq!(out.h("allow").as_deref(), Some("GET, HEAD"));
    assert!(w.ports.sent().is_empty(), "{:?}", w.ports.sent());
}

// ===========================================================================
// The log line

#[test]
fn one_log_line_per_request_with_what_happened() {
    let w = world(config());
    w.ports.on(US, Outcome::Connect);
    w.ports
        .on(AP, respond(200, &[("cache-control", "max-age=30")]));
    let token = user("alice");
    let out = w.send(
        &get("/full?x=1")
            .continent("NA")
            .bearer(&token)
            .header("x-request-id", "log-test-1"),
    );
    assert_eq!(out.status, 200);
    let records = w.ports.records();
    assert_eq!(records.len(), 1);
    let line = &records[0];
    assert_eq!(line["request_id"], "log-test-1");
    assert_eq!(line["route"], "full");
    assert_eq!(line["path_template"], "/full");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/full");
    assert_eq!(line["status"], 200);
    assert_eq!(line["region"], "ap");
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(line["failovers"], 1);
    assert_eq!(
        line["attempts"],
        json!([
            {"region": "us", "error": "connect", "ms": 1},
            {"region": "ap", "status": 200, "ms": FETCH_MS}
        ])
    );
    assert_eq!(line["cache"], "MISS");
    assert_eq!(line["rate_limit"], "allowed");
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["upstream_ms"], 1 + FETCH_MS);
    assert_eq!(line["duration_ms"], 1 + FETCH_MS);
    assert!(line.get("error").is_none(), "{line}");

    // Every kind of answer writes exactly one line.
    w.send(&get("/nope"));
    w.send(&get("/__gateway/health"));
    w.send(&preflight("/api/items/1", APP, "GET"));
    w.send(&get("/full?x=1").bearer(&token));
    w.send(&get("/full"));
    let records = w.ports.records();
    assert_eq!(records.len(), 6);
    assert_eq!(records[4]["cache"], "HIT");
    assert_eq!(records[4]["failovers"], 0);
    assert_eq!(records[5]["status"], 401);
    assert_eq!(records[5]["error"], "auth: missing token");
    assert!(records[5].get("subject").is_none());
}

#[test]
fn the_log_never_holds_the_authorization_header_or_token() {
    let w = world(config());
    let good = user("alice");
    let scoped = hs_token(&hs_claims("bob", "none"));
    let expired =
        hs_token(&json!({"iss": HS_ISS, "sub": "carol", "scope": "read", "exp": NOW_S - 999}));
    let tampered = format!("{}x", &good[..good.len() - 1]);
    w.ports.set_jwks(vec![p256_jwk("k1")]);
    let es = es_token("k1");
    let requests = [
        get("/api/me").bearer(&good),
        get("/api/me").bearer(&scoped),
        get("/api/me").bearer(&expired),
        get("/api/me").bearer(&tampered),
        get("/api/tenant").bearer(&es),
        get("/api/items/1").bearer(&good),
        get("/api/broken").bearer(&good),
        req("DELETE", "/__gateway/cache?path=/c/x").bearer(ADMIN_TOKEN),
        req("DELETE", "/__gateway/cache?path=/c/x").bearer("guess-admin-token"),
    ];
    let statuses: Vec<u16> = requests.iter().map(|r| w.send(r).status).collect();
    assert_eq!(statuses, [200, 403, 401, 401, 200, 200, 503, 200, 401]);
    let raw = w.ports.records.borrow().clone();
    assert_eq!(raw.len(), requests.len());
    let events = w.ports.events();
    for secret in [
        good.as_str(),
        &scoped,
        &expired,
        &tampered,
        &es,
        ADMIN_TOKEN,
        "guess-admin-token",
        JWT_SECRET,
    ] {
        for line in &raw {
            assert!(!line.contains(secret), "{line}");
            // Not even the signature or payload part alone.
            for part in secret.split('.').filter(|p| p.len() > 16) {
                assert!(!line.contains(part), "{line}");
            }
        }
        for e in &events {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
    for line in &raw {
        assert!(!line.to_ascii_lowercase().contains("bearer"), "{line}");
    }
}

// ===========================================================================
// Global rate limits (leases from a Durable Object, here an in-memory book)

fn global_config() -> Value {
    json!({
        "origins": {"api": {"regions": [{"name": "one", "url": "http://one.test", "serves": ["*"]}]}},
        "routes": [
            {"id": "g", "path": "/g", "origin": "api",
             "rate_limit": {"requests": 5, "window_s": 60, "key": "route", "scope": "global"}},
            {"id": "g-deny", "path": "/g-deny", "origin": "api",
             "rate_limit": {"requests": 5, "window_s": 60, "key": "route", "scope": "global", "on_error": "deny"}},
            {"id": "g-high", "path": "/g-high", "origin": "api",
             "rate_limit": {"requests": 1000000, "window_s": 60, "key": "ip", "scope": "global"}}
        ]
    })
}

#[test]
fn a_global_limit_admits_exactly_n_across_isolates_with_headers_and_429s() {
    let w = world(global_config());
    let other = IsolateState::new(&w.gw, "iso2".into());
    let burst: Vec<(Option<&IsolateState>, Req)> = (0..20)
        .map(|i| (if i % 2 == 0 { None } else { Some(&other) }, get("/g")))
        .collect();
    let outs = w.send_all_via(&burst);
    let ok: Vec<&Out> = outs.iter().filter(|o| o.status == 200).collect();
    assert_eq!(
        ok.len(),
        5,
        "{:?}",
        outs.iter().map(|o| o.status).collect::<Vec<_>>()
    );
    for out in &outs {
        assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(out.h("ratelimit-reset").as_deref(), Some("60"));
        assert!(!out.flush_limits, "global limits never write KV");
    }
    for out in outs.iter().filter(|o| o.status != 200) {
        assert_problem(out, 429, "rate-limited");
        assert_eq!(out.h("retry-after").as_deref(), Some("60"));
        assert_eq!(out.h("ratelimit-remaining").as_deref(), Some("0"));
    }
    // Both isolates asked; the object's name carries no key value.
    let calls = w.ports.limiter_calls.borrow().clone();
    assert!(calls.iter().any(|c| c.holder == "iso1") && calls.iter().any(|c| c.holder == "iso2"));
    assert!(calls.iter().all(|c| c.counter.starts_with("rl:g:")));
    assert!(calls.len() < 20, "{} calls", calls.len());
    assert!(w.ports.kv_reads.borrow().is_empty());
    let records = w.ports.records();
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rate_limit"] == "allowed")
            .count(),
        5
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rate_limit"] == "limited")
            .count(),
        15
    );
    // Exhausted: the next requests are refused without asking.
    let before = w.ports.limiter_calls.borrow().len();
    assert_eq!(w.send(&get("/g")).status, 429);
    assert_eq!(w.ports.limiter_calls.borrow().len(), before);
    // The next window has the whole budget again.
    w.ports.advance(60_000);
    let outs = w.send_all(&(0..8).map(|_| get("/g")).collect::<Vec<_>>());
    assert_eq!(outs.iter().filter(|o| o.status == 200).count(), 5);
}

#[test]
fn concurrent_requests_of_one_isolate_share_one_limiter_call() {
    let w = world(global_config());
    let outs = w.send_all(&(0..4).map(|_| get("/g")).collect::<Vec<_>>());
    assert!(outs.iter().all(|o| o.status == 200));
    // The first call asks for 1; the three queued behind it ask in one call,
    // which gets half of the 4 left (2); the last one asks once more.
    let calls = w.ports.limiter_calls.borrow().clone();
    let wants: Vec<u64> = calls.iter().map(|c| c.want).collect();
    assert_eq!(wants, vec![1, 3, 1]);
}

#[test]
fn a_high_global_limit_costs_few_limiter_calls() {
    let w = world(global_config());
    for _ in 0..2_000 {
        assert_eq!(w.send(&get("/g-high")).status, 200);
        // What the edge runs after answering.
        let due = w.state.leases.borrow_mut().take_due(w.ports.now_ms());
        for c in due.calls {
            let reply = block_on(w.ports.limiter_call(&c.body));
            w.state
                .leases
                .borrow_mut()
                .on_reply(&c, reply.map_err(|_| ()), w.ports.now_ms());
        }
    }
    let calls = w.ports.limiter_calls.borrow().len();
    assert!(calls <= 40, "{calls} limiter calls for 2,000 requests");
}

#[test]
fn an_unreachable_limiter_fails_open_and_is_logged_unless_on_error_is_deny() {
    let w = world(global_config());
    w.ports.limiter_fail.set(true);
    let out = w.send(&get("/g"));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(w.ports.last_record()["rate_limit"], "limiter_error");
    let events = w.ports.events();
    let e = events
        .iter()
        .find(|e| e["event"] == "limiter_error")
        .expect("an event");
    assert_eq!(e["route"], "g");
    assert_eq!(e["error"], "limiter unreachable");

    let out = w.send(&get("/g-deny"));
    let v = assert_problem(&out, 503, "unavailable");
    assert_eq!(v["status"], 503);
    assert_eq!(out.h("retry-after").as_deref(), Some("1"));
    assert_eq!(w.ports.last_record()["rate_limit"], "limiter_error");
    assert_eq!(
        w.ports.sent().len(),
        1,
        "a denied request never reaches the origin"
    );

    // Back: after the retry spacing the limiter is asked again and counts.
    w.ports.limiter_fail.set(false);
    w.ports.advance(1_000);
    assert_eq!(w.send(&get("/g-deny")).status, 200);
    assert_eq!(w.ports.last_record()["rate_limit"], "allowed");
}

// ===========================================================================
// Request policies: ip, geo, max_body_bytes, header and query edits.

fn policies_config() -> Value {
    json!({
        "origins": {
            "api": {"regions": [{"name": "eu", "url": "http://eu.api.test", "serves": ["EU"]},
                                {"name": "us", "url": "http://us.api.test", "serves": ["*"]}]}
        },
        "jwt": {"hs": {"issuer": HS_ISS, "secret_var": "JWT_SECRET", "forward_claims": {"sub": "X-User-Id"}}},
        "ip": {"deny": ["198.51.100.0/24", "2001:db8:bad::/48"]},
        "request_headers": {"set": {"x-edge": "top"}},
        "max_body_bytes": 5000,
        "routes": [
            {"id": "open", "path": "/open", "origin": "api"},
            {"id": "office", "path": "/office/{*rest}", "origin": "api",
             "ip": {"allow": ["10.0.0.0/8", "2001:db8:1::/48"], "deny": ["10.66.0.0/16"]}},
            {"id": "no-ip", "path": "/no-ip", "origin": "api", "ip": {}},
            {"id": "eu-only", "path": "/eu", "origin": "api", "geo": {"allow": ["EU", "CA"], "deny": ["RU"]}},
            {"id": "not-kp", "path": "/not-kp", "origin": "api", "geo": {"deny": ["KP"]}},
            {"id": "upload", "path": "/upload", "methods": ["POST"], "origin": "api", "max_body_bytes": 1000},
            {"id": "edits", "path": "/edits/{tenant}/{*rest}", "origin": "api", "auth": {"jwt": "hs"},
             "rewrite": "/t/{tenant}/{rest}",
             "request_headers": {"set": {"x-tenant": "t-{tenant}", "x-api-version": "2", "authorization": "Bearer upstream-key"},
                                 "remove": ["cookie", "x-debug"]},
             "response_headers": {"set": {"x-frame-options": "DENY", "x-served-for": "{tenant}"},
                                  "remove": ["server", "x-powered-by"]},
             "query": {"set": {"tenant": "{tenant}", "v": "2"}, "remove": ["debug", "token"]}},
            {"id": "cached-edits", "path": "/ce", "methods": ["GET"], "origin": "api", "cache": {"ttl_s": 60},
             "response_headers": {"set": {"x-frame-options": "DENY"}, "remove": ["server"]}}
        ]
    })
}

#[test]
fn ip_rules_refuse_denied_and_not_allowed_addresses_before_upstream() {
    let w = world(policies_config());
    let cases = [
        // The top-level deny list applies to routes without their own `ip`.
        ("/open", "198.51.100.7", 403),
        ("/open", "::ffff:198.51.100.7", 403),
        ("/open", "2001:db8:bad:1::1", 403),
        ("/open", "198.51.101.7", 200),
        // A route's own rule replaces the top level's.
        ("/office/x", "10.1.2.3", 200),
        ("/office/x", "::ffff:10.1.2.3", 200),
        ("/office/x", "2001:db8:1:ffff::1", 200),
        ("/office/x", "10.66.0.1", 403),
        ("/office/x", "11.0.0.1", 403),
        ("/office/x", "198.51.100.7", 403),
        ("/office/x", "2001:db8:2::1", 403),
        ("/office/x", "garbage", 403),
        ("/no-ip", "198.51.100.7", 200),
    ];
    for (path, ip, status) in cases {
        w.ports.clear_sent();
        let out = w.send(&get(path).ip(ip));
        if status == 403 {
            let v = assert_problem(&out, 403, "forbidden");
            assert!(v["detail"].as_str().unwrap().contains("address"), "{v}");
            assert!(w.ports.sent().is_empty(), "{path} {ip} reached upstream");
        } else {
            assert_eq!(out.status, status, "{path} {ip}");
            assert_eq!(w.ports.sent().len(), 1, "{path} {ip}");
        }
    }
    // No address at all: refused where an allow list exists.
    let mut r = get("/office/x");
    r.client_ip = None;
    assert_problem(&w.send(&r), 403, "forbidden");
    let mut r = get("/open");
    r.client_ip = None;
    assert_eq!(w.send(&r).status, 200);
}

#[test]
fn geo_rules_read_the_country_and_continent_as_region_choice_does() {
    let w = world(policies_config());
    let cases = [
        ("/eu", Some("DE"), Some("EU"), 200),
        ("/eu", Some("CA"), Some("NA"), 200),
        ("/eu", Some("US"), Some("NA"), 403),
        ("/eu", Some("RU"), Some("EU"), 403),
        ("/eu", None, None, 403),
        ("/not-kp", Some("KP"), Some("AS"), 403),
        ("/not-kp", Some("JP"), Some("AS"), 200),
        ("/not-kp", None, None, 200),
    ];
    for (path, country, continent, status) in cases {
        w.ports.clear_sent();
        let mut r = get(path);
        r.country = country.map(str::to_string);
        r.continent = continent.map(str::to_string);
        let out = w.send(&r);
        if status == 403 {
            let v = assert_problem(&out, 403, "forbidden");
            assert!(v["detail"].as_str().unwrap().contains("location"), "{v}");
            assert!(w.ports.sent().is_empty());
        } else {
            assert_eq!(out.status, 200, "{path} {country:?}");
        }
    }
    // Region choice is unchanged by the rule.
    w.ports.clear_sent();
    w.send(&get("/eu").country("DE").continent("EU"));
    assert!(w.ports.sent()[0].url.starts_with("http://eu.api.test/"));
}

#[test]
fn a_declared_body_over_the_limit_is_413_before_upstream() {
    let w = world(policies_config());
    let over = req("POST", "/upload")
        .header("content-length", "1001")
        .with_body();
    let out = w.send(&over);
    let v = assert_problem(&out, 413, "payload-too-large");
    assert!(v["detail"].as_str().unwrap().contains("1000 bytes"), "{v}");
    assert!(w.ports.sent().is_empty());
    assert_eq!(w.ports.last_record()["status"], 413);
    // At the limit: forwarded, and the edge is told the limit.
    let at = req("POST", "/upload")
        .header("content-length", "1000")
        .with_body();
    assert_eq!(w.send(&at).status, 200);
    assert_eq!(w.ports.sent()[0].max_body_bytes, Some(1000));
    // The top level's limit applies to routes without their own.
    w.ports.clear_sent();
    let top = req("POST", "/open")
        .header("content-length", "5001")
        .with_body();
    assert_problem(&w.send(&top), 413, "payload-too-large");
    assert!(w.ports.sent().is_empty());
    let top = req("POST", "/open")
        .header("content-length", "5000")
        .with_body();
    assert_eq!(w.send(&top).status, 200);
    assert_eq!(w.ports.sent()[0].max_body_bytes, Some(5000));
}

#[test]
fn a_streamed_body_over_the_limit_is_413_without_failover() {
    let w = world(policies_config());
    w.ports.streamed_body.set(Some(1001));
    let out = w.send(
        &req("POST", "/upload")
            .header("transfer-encoding", "chunked")
            .with_body(),
    );
    assert_problem(&out, 413, "payload-too-large");
    // One attempt: the client's body is not the region's failure.
    assert_eq!(w.ports.sent().len(), 1);
    assert_eq!(w.ports.last_record()["status"], 413);
    w.ports.streamed_body.set(Some(1000));
    w.ports.clear_sent();
    let out = w.send(
        &req("POST", "/upload")
            .header("transfer-encoding", "chunked")
            .with_body(),
    );
    assert_eq!(out.status, 200);
}

#[test]
fn header_edits_come_after_the_gateways_own_rules() {
    let w = world(policies_config());
    let token = hs_token(&hs_claims("alice", ""));
    let r = get("/edits/acme/a/b?x=1&debug=1&x=2&%74oken=t&tenant=forged&e=a+b%2F")
        .bearer(&token)
        .header("x-api-version", "1")
        .header("X_Api_Version", "1")
        .header("cookie", "session=1")
        .header("x_debug", "1")
        .header("x-edge", "client")
        .header("x-user-id", "forged")
        .header("x-forwarded-for", "6.6.6.6")
        .header("accept", "application/json");
    let out = w.send(&r);
    assert_eq!(out.status, 200, "{out:#?}");
    let sent = &w.ports.sent()[0];
    // The route's own rules replace the top level's (`x-edge: top` is not set).
    assert_eq!(sent.h("x-edge").as_deref(), Some("client"));
    assert_eq!(sent.h("x-tenant").as_deref(), Some("t-acme"));
    assert_eq!(sent.h("x-api-version").as_deref(), Some("2"));
    assert_eq!(
        sent.h("authorization").as_deref(),
        Some("Bearer upstream-key")
    );
    assert_eq!(sent.h("cookie"), None);
    assert_eq!(sent.h("x_debug"), None);
    // The gateway's own rules still hold.
    assert_eq!(sent.h("x-user-id").as_deref(), Some("alice"));
    assert_eq!(sent.h("x-forwarded-for").as_deref(), Some("203.0.113.7"));
    assert!(sent.h("x-request-id").is_some());
    assert_eq!(sent.h("accept").as_deref(), Some("application/json"));
    // The query: named parameters edited, every other one byte for byte.
    assert_eq!(
        sent.url,
        "http://us.api.test/t/acme/a/b?x=1&x=2&e=a+b%2F&tenant=acme&v=2"
    );
}

#[test]
fn top_level_header_edits_apply_where_a_route_has_none() {
    let w = world(policies_config());
    w.send(&get("/open").header("x-edge", "client"));
    assert_eq!(w.ports.sent()[0].h("x-edge").as_deref(), Some("top"));
}

#[test]
fn response_header_edits_apply_to_the_origins_answers_fresh_and_cached() {
    let w = world(policies_config());
    w.ports.on(
        "http://us.api.test/t/",
        respond(
            200,
            &[
                ("server", "nginx"),
                ("x-powered-by", "php"),
                ("x-frame-options", "SAMEORIGIN"),
            ],
        ),
    );
    let token = hs_token(&hs_claims("alice", ""));
    let out = w.send(&get("/edits/acme/x").bearer(&token));
    assert_eq!(out.status, 200);
    assert_eq!(out.h("server"), None);
    assert_eq!(out.h("x-powered-by"), None);
    assert_eq!(out.h("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(out.h("x-served-for").as_deref(), Some("acme"));
    assert!(out.has("x-request-id") && out.has("server-timing"));
    // The gateway's own answers on the route are not the origin's: not edited.
    let out = w.send(&get("/edits/acme/x"));
    assert_problem(&out, 401, "unauthorized");
    assert_eq!(out.h("x-frame-options"), None);
    // A cached route: the stored copy keeps the origin's headers; every answer is edited.
    w.ports.on(
        "http://us.api.test/ce",
        respond(200, &[("server", "nginx")]),
    );
    let miss = w.send(&get("/ce"));
    assert_eq!(miss.h("x-cache").as_deref(), Some("MISS"));
    assert_eq!(miss.h("server"), None);
    let hit = w.send(&get("/ce"));
    assert_eq!(hit.h("x-cache").as_deref(), Some("HIT"));
    assert_eq!(hit.h("server"), None);
    assert_eq!(hit.h("x-frame-options").as_deref(), Some("DENY"));
}
