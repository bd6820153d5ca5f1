//! The request pipeline end to end, natively: `pipeline::handle` over a fake
//! runtime (clock, randomness, upstream, KV, cache, JWKS server, logs).
//!
//! This file is the shared harness (fake ports, requests, fixtures); the tests
//! are in one module per phase beside it.
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
use edge_gateway::ports::{BodyError, FetchError, JwksDocument, Ports, UpstreamRequest};
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
    /// Answers this status after this many ms of the fake clock (each poll
    /// advances the clock by 1 ms, so time passes while other futures wait).
    Slow(u64, u16),
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
    /// The service binding it went through, if any.
    service: Option<String>,
    /// The body sent: the bytes a policy read into memory, or `None` for the
    /// incoming stream passed through.
    body: Option<Vec<u8>>,
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
    /// The incoming request's body, for `read_body` (set by `World::send` from `Req::body`).
    body: RefCell<Vec<u8>>,
    /// Every `read_body` call: its limit.
    body_reads: RefCell<Vec<u64>>,
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

    async fn read_body(&self, max: u64) -> Result<Vec<u8>, BodyError> {
        self.body_reads.borrow_mut().push(max);
        yield_now().await;
        let body = self.body.borrow().clone();
        if body.len() as u64 > max {
            return Err(BodyError::TooLarge);
        }
        Ok(body)
    }

    async fn fetch(&self, request: UpstreamRequest<'_>) -> Result<Resp, FetchError> {
        let asked_at = self.clock.get();
        let mut headers = self.incoming.borrow().clone();
        request.headers.apply_to(&mut headers);
        self.sent.borrow_mut().push(Sent {
            url: request.url.to_string(),
            method: request.method,
            headers,
            timeout_ms: request.timeout_ms,
            max_body_bytes: request.max_body_bytes,
            service: request.service.map(str::to_string),
            body: request.body.map(<[u8]>::to_vec),
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
            Outcome::Slow(ms, status) => {
                let until = asked_at + ms;
                while self.clock.get() < until {
                    self.advance(1);
                    yield_now().await;
                }
                Ok(Resp {
                    status,
                    headers: Vec::new(),
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

    async fn verify_signature(
        &self,
        check: &edge_gateway::policy::auth::SignatureCheck<'_>,
    ) -> bool {
        check.verify_in_rust()
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

    async fn kv_put_record(&self, key: &str, value: &str) -> Result<(), String> {
        self.kv_put(key, value, 0).await
    }

    async fn kv_delete(&self, key: &str) -> Result<(), String> {
        yield_now().await;
        if self.kv_fail.get() {
            return Err("KV is down".into());
        }
        self.kv.borrow_mut().remove(key);
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
    body: Vec<u8>,
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
        body: Vec::new(),
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
    /// A body of these bytes (with its `Content-Length`).
    fn body(mut self, bytes: &[u8]) -> Req {
        self.has_body = true;
        self.body = bytes.to_vec();
        self.header("content-length", &bytes.len().to_string())
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

/// The gateway an isolate runs: validated as the build does, then started
/// from the prepared form the build embeds, each route compiled on first use.
fn prepared_gateway(text: &str, secrets: edge_gateway::gateway::Secrets<'_>) -> Gateway {
    let file = edge_gateway::config::load(text).expect("the routes file is valid");
    let form = edge_gateway::config::prepared::write(text, &file).expect("it is prepared");
    // An isolate holds its embedded file for its lifetime; a test leaks its own.
    let form: &'static str = Box::leak(form.into_boxed_str());
    let gw = Gateway::from_prepared(form, secrets).expect("the prepared form starts");
    Gateway::compile(file, secrets).expect("the routes file compiles");
    gw
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
    let gw = prepared_gateway(&config.to_string(), &lookup);
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
        *self.ports.body.borrow_mut() = r.body.clone();
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

/// The page origin the CORS policies of the tests allow.
const APP: &str = "https://app.test";

fn preflight(path: &str, origin: &str, method: &str) -> Req {
    req("OPTIONS", path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
}

// ---------------------------------------------------------------------------
// The tests, one module per phase.

mod auth;
mod consumers;
mod cors;
mod edge_cache;
mod global_limits;
mod log_line;
mod rate_limits;
mod regions;
mod request_policies;
mod routing;
mod validation;
mod websocket;
