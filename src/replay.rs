//! `gateway replay`: requests through the real pipeline, natively and offline.
//!
//! Each request runs through [`pipeline::handle`], the code the Worker runs,
//! over ports that never touch the network: the upstream "answers" 200 and
//! records the URL it was asked for, KV and the cache are empty and record the
//! keys asked for, JWKS cannot be fetched. Every request starts from a fresh
//! isolate state, so one request's rate-limit count never decides another's.
//!
//! Auth, offline: a request without a token gets the 401 the gateway answers.
//! A token is verified when its provider's keys are at hand: inline `keys`, or
//! a `secret_var` whose value is in the environment of the command. Otherwise
//! the decision is "needs jwt NAME": the token would be checked against the
//! issuer's keys, which replay does not fetch.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use serde::Serialize;
use serde_json::Value;

use crate::gateway::{Gateway, Secrets};
use crate::log::Event;
use crate::pipeline::{self, Body, Incoming, IsolateState, LogLine};
use crate::policy::ratelimit::global::{LeaseCall, LeaseReply};
use crate::ports::{FetchError, JwksDocument, Ports, UpstreamRequest};

/// A fixed clock: the start of a day, so every rate-limit window begins at it.
const NOW_MS: u64 = 1_767_225_600_000;

/// One request to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// `http` or `https` (default).
    pub scheme: String,
    pub host: String,
    /// The path, with its query string when there is one.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub has_body: bool,
    /// The body, when the request file gives it (validated routes check it).
    pub body: Option<String>,
}

impl Request {
    /// `GET host/path?query`, as the reports name a request.
    pub fn label(&self) -> String {
        format!("{} {}{}", self.method, self.host, self.path)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The gateway answers itself.
    Status { status: u16, detail: String },
    /// The request goes upstream.
    Upstream {
        origin: String,
        region: String,
        url: String,
    },
    /// A token that only the provider's remote keys can verify.
    NeedsJwt { provider: String },
}

/// Everything replay reports about one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub route: Option<String>,
    pub decision: Decision,
    /// The rate-limit counter, without its window: `rl:ROUTE:HASH:WINDOW_S`.
    pub rate_limit_key: Option<String>,
    pub cache_key: Option<String>,
}

impl Outcome {
    /// One line: route, decision, rate-limit key and cache key.
    pub fn render(&self) -> String {
        let mut out = format!("route={}", self.route.as_deref().unwrap_or("-"));
        match &self.decision {
            Decision::Status { status, detail } => {
                out.push_str(&format!(" status={status} ({detail})"))
            }
            Decision::Upstream {
                origin,
                region,
                url,
            } => out.push_str(&format!(" upstream={origin}/{region} {url}")),
            Decision::NeedsJwt { provider } => out.push_str(&format!(" needs=jwt {provider}")),
        }
        if let Some(k) = &self.rate_limit_key {
            out.push_str(&format!(" limit={k}"));
        }
        if let Some(k) = &self.cache_key {
            out.push_str(&format!(" cache={k}"));
        }
        out
    }
}

/// Reads requests: a HAR file (`{"log": {"entries": [...]}}`) or JSON lines of
/// `{"method", "host", "path", "headers"}` (`headers` an object or a list of
/// `[name, value]` pairs; optional `scheme`, `url` instead of host and path,
/// `country`, `continent`, `body`). Blank lines and lines starting with `#` are skipped.
pub fn parse_requests(text: &str) -> Result<Vec<Request>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            if let Some(entries) = v.pointer("/log/entries").and_then(Value::as_array) {
                return entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| har_entry(e).map_err(|m| format!("HAR entry {}: {m}", i + 1)))
                    .collect();
            }
        }
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        out.push(json_line(&v).map_err(|m| format!("line {}: {m}", i + 1))?);
    }
    Ok(out)
}

fn split_url(url: &str) -> Result<(String, String, String), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("url \"{url}\": {e}"))?;
    let host = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("")),
        None => parsed.host_str().unwrap_or("").to_string(),
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    Ok((parsed.scheme().to_string(), host, path))
}

fn har_entry(e: &Value) -> Result<Request, String> {
    let req = e.get("request").ok_or("no request")?;
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .ok_or("no request.method")?;
    let url = req
        .get("url")
        .and_then(Value::as_str)
        .ok_or("no request.url")?;
    let (scheme, host, path) = split_url(url)?;
    let headers: Vec<(String, String)> = req
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    Some((
                        h.get("name")?.as_str()?.to_string(),
                        h.get("value")?.as_str()?.to_string(),
                    ))
                })
                // HTTP/2 pseudo-headers are not headers.
                .filter(|(n, _)| !n.starts_with(':'))
                .collect()
        })
        .unwrap_or_default();
    let body = req
        .pointer("/postData/text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok(Request {
        method: method.to_string(),
        scheme,
        host,
        path,
        headers,
        has_body: body.is_some(),
        body,
        ..Request::default()
    })
}

fn json_line(v: &Value) -> Result<Request, String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let method = s("method").unwrap_or_else(|| "GET".into());
    let (scheme, host, path) = match s("url") {
        Some(url) => split_url(&url)?,
        None => (
            s("scheme").unwrap_or_else(|| "https".into()),
            s("host").ok_or("no \"host\" (or \"url\")")?,
            s("path").ok_or("no \"path\" (or \"url\")")?,
        ),
    };
    if !path.starts_with('/') {
        return Err(format!("path \"{path}\" must start with \"/\""));
    }
    let headers = match v.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("header \"{k}\" must be a string, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([Value::String(n), Value::String(v)]) => Ok((n.clone(), v.clone())),
                _ => Err("headers must be an object or a list of [name, value]".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("headers must be an object or a list of [name, value]".into()),
    };
    Ok(Request {
        method,
        scheme,
        host,
        path,
        headers,
        country: s("country"),
        continent: s("continent"),
        has_body: v.get("body").is_some_and(|b| !b.is_null()),
        body: match v.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(other) => Some(other.to_string()),
        },
    })
}

/// What the log line said: route, region, error, the origin a split chose.
type Logged = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The ports replay runs on: no network, everything asked for is recorded.
#[derive(Default)]
struct ReplayPorts {
    random: Cell<u64>,
    fetched: RefCell<Option<String>>,
    kv_keys: RefCell<Vec<String>>,
    cache_keys: RefCell<Vec<String>>,
    jwks_asked: Cell<bool>,
    log: RefCell<Option<Logged>>,
    /// The request's body, if the request file gives it.
    body: Option<String>,
}

impl Ports for ReplayPorts {
    type Response = u16;

    fn now_ms(&self) -> u64 {
        NOW_MS
    }
    fn random_bytes(&self) -> [u8; 16] {
        let n = self.random.get() + 1;
        self.random.set(n);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_be_bytes());
        b
    }
    async fn sleep(&self, _ms: u64) {}
    async fn read_body(&self, max: u64) -> Result<Vec<u8>, crate::ports::BodyError> {
        let body = self.body.clone().unwrap_or_default().into_bytes();
        if body.len() as u64 > max {
            return Err(crate::ports::BodyError::TooLarge);
        }
        Ok(body)
    }
    async fn fetch(&self, request: UpstreamRequest<'_>) -> Result<u16, FetchError> {
        *self.fetched.borrow_mut() = Some(request.url.to_string());
        Ok(200)
    }
    fn status(&self, response: &u16) -> u16 {
        *response
    }
    fn response_header(&self, _: &u16, _: &str) -> Option<String> {
        None
    }
    fn response_header_names(&self, _: &u16) -> Vec<String> {
        Vec::new()
    }
    async fn verify_signature(&self, check: &crate::policy::auth::SignatureCheck<'_>) -> bool {
        check.verify_in_rust()
    }
    async fn fetch_jwks(&self, _url: &str) -> Result<JwksDocument, String> {
        self.jwks_asked.set(true);
        Err("replay does not fetch keys".into())
    }
    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        self.kv_keys.borrow_mut().push(key.to_string());
        Ok(None)
    }
    async fn kv_put(&self, _key: &str, _value: &str, _ttl_s: u64) -> Result<(), String> {
        Ok(())
    }
    async fn kv_put_record(&self, _key: &str, _value: &str) -> Result<(), String> {
        Err("replay does not write".into())
    }
    async fn kv_delete(&self, _key: &str) -> Result<(), String> {
        Err("replay does not write".into())
    }
    async fn limiter_call(&self, call: &LeaseCall) -> Result<LeaseReply, String> {
        // A global limit's counter: the whole budget is free, as in a fresh window.
        self.kv_keys.borrow_mut().push(format!("{}:", call.counter));
        Ok(LeaseReply {
            granted: call.want.min(call.limit),
            available: call.limit.saturating_sub(call.want),
        })
    }
    async fn cache_get(&self, key: &str) -> Result<Option<u16>, String> {
        self.cache_keys.borrow_mut().push(key.to_string());
        Ok(None)
    }
    async fn cache_delete(&self, _key: &str) -> Result<bool, String> {
        Ok(false)
    }
    fn record(&self, line: &LogLine) {
        *self.log.borrow_mut() = Some((
            line.route.clone(),
            line.region.clone(),
            line.error.clone(),
            line.origin.clone(),
        ));
    }
    fn event(&self, _event: &Event<'_>) {}
}

/// Polls a future whose every pending point has already woken itself.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A gateway compiled for replay, and the providers it cannot verify tokens of.
pub struct Replayer {
    pub gw: Gateway,
    /// Provider indexes whose keys are neither inline nor given by a secret.
    offline_only: BTreeSet<usize>,
}

impl Replayer {
    /// Compiles a validated routes file. `secrets` gives `secret_var` values;
    /// a provider whose secret is not given gets a stand-in, and its tokens
    /// are reported as "needs jwt" rather than checked.
    pub fn new(file: crate::config::RoutesFile, secrets: Secrets<'_>) -> Result<Replayer, String> {
        let mut offline_only = BTreeSet::new();
        for (i, p) in file.jwt.values().enumerate() {
            let has_inline = p.keys.as_ref().is_some_and(|k| !k.keys.is_empty());
            let has_secret = p.secret_var.as_deref().and_then(secrets).is_some();
            if !has_inline && !has_secret {
                offline_only.insert(i);
            }
        }
        let stand_in = |name: &str| secrets(name).or_else(|| Some("0".repeat(64)));
        let gw = Gateway::compile(file, &stand_in)?;
        Ok(Replayer { gw, offline_only })
    }

    /// Runs one request.
    pub fn run(&self, r: &Request) -> Outcome {
        let gw = &self.gw;
        let state = IsolateState::new(gw, "replay".into());
        let ports = ReplayPorts {
            body: r.body.clone(),
            ..ReplayPorts::default()
        };
        let (path, query) = match r.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (r.path.as_str(), None),
        };
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let incoming = Incoming {
            method: &r.method,
            scheme: if r.scheme.is_empty() {
                "https"
            } else {
                &r.scheme
            },
            host: &r.host,
            path,
            query,
            headers: headers.as_slice(),
            client_ip: r.header("cf-connecting-ip"),
            country: r.country.as_deref().or(r.header("cf-ipcountry")),
            continent: r.continent.as_deref(),
            has_body: r.has_body,
        };
        let reply = block_on(pipeline::handle(gw, &state, &ports, &incoming));
        let (route_id, region, error, split_origin) =
            ports.log.borrow_mut().take().unwrap_or_default();
        let route = route_id
            .as_deref()
            .and_then(|id| gw.routes().flatten().find(|rt| rt.id == id));
        let rate_limit_key = ports.kv_keys.borrow().first().map(|k| {
            // Without the window index, which depends on the clock.
            match k.rfind(':') {
                Some(i) => k[..i].to_string(),
                None => k.clone(),
            }
        });
        let cache_key = ports.cache_keys.borrow().first().cloned();
        let auth_unverifiable = route
            .and_then(|rt| rt.auth())
            .and_then(|a| a.jwt.iter().find(|(p, _)| self.offline_only.contains(p)))
            .filter(|_| r.header("authorization").is_some())
            .filter(|_| {
                error.as_deref().is_some_and(|e| e.starts_with("auth:")) || ports.jwks_asked.get()
            });
        let decision = if let Some((provider, _)) = auth_unverifiable {
            Decision::NeedsJwt {
                provider: gw
                    .file
                    .jwt
                    .keys()
                    .nth(*provider)
                    .cloned()
                    .unwrap_or_default(),
            }
        } else {
            match (&reply.body, ports.fetched.borrow().clone(), route) {
                (Body::Upstream(_), Some(url), Some(rt)) => Decision::Upstream {
                    origin: split_origin.unwrap_or_else(|| gw.origins[rt.origin].name.clone()),
                    region: region.unwrap_or_default(),
                    url,
                },
                _ => Decision::Status {
                    status: reply.status,
                    detail: own_detail(&reply.body)
                        .unwrap_or_else(|| status_text(reply.status).to_string()),
                },
            }
        };
        Outcome {
            route: route_id,
            decision,
            rate_limit_key,
            cache_key,
        }
    }
}

fn own_detail<R>(body: &Body<R>) -> Option<String> {
    match body {
        Body::Own(text, _) => serde_json::from_str::<Value>(text).ok().and_then(|v| {
            v.get("detail")
                .or_else(|| v.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        _ => None,
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        204 => "answered by the gateway: CORS preflight",
        _ => "answered by the gateway",
    }
}

/// The requests whose outcome differs between two gateways: (request, old, new).
pub fn diff<'a>(
    old: &Replayer,
    new: &Replayer,
    requests: &'a [Request],
) -> Vec<(&'a Request, Outcome, Outcome)> {
    requests
        .iter()
        .filter_map(|r| {
            let (a, b) = (old.run(r), new.run(r));
            (a != b).then_some((r, a, b))
        })
        .collect()
}

/// The report of a replay diff, for people (and pull-request comments).
pub fn render_diff(changes: &[(&Request, Outcome, Outcome)], total: usize) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        out.push_str(&format!("no request of {total} changes its decision\n"));
        return out;
    }
    out.push_str(&format!("{} of {total} requests change:\n", changes.len()));
    for (r, a, b) in changes {
        out.push_str(&format!(
            "{}\n  - {}\n  + {}\n",
            r.label(),
            a.render(),
            b.render()
        ));
    }
    out
}
