//! The edge: the pipeline's ports on the Workers runtime. The only code that knows JavaScript.
//!
//! Bodies never enter wasm memory: the incoming request's stream is handed to
//! `fetch`, and the upstream response's stream to the client (teed into the
//! cache when the response is stored).

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::kv::KvStore;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, console_log, event, web_sys, AnalyticsEngineDataPointBuilder,
    AnalyticsEngineDataset, Cache, Context, Delay, Env, ObjectNamespace, Request, RequestInit,
    Response,
};

use crate::gateway::{Gateway, EMBEDDED_ROUTES};
use crate::http::headers::HeaderEdits;
use crate::http::HeaderView;
use crate::log::{Event, LogLine};
use crate::pipeline::{self, Body, Incoming, IsolateState, Reply};
use crate::policy::auth::{SignatureCheck, MAX_JWKS_BYTES};
use crate::policy::ratelimit::global::{LeaseCall, LeaseReply, CALL_TIMEOUT_MS};
use crate::ports::{BodyError, FetchError, JwksDocument, Ports, UpstreamRequest};

/// How long a JWKS fetch may take.
const JWKS_TIMEOUT_MS: u64 = 5_000;

/// How much of a refused upload (past `max_body_bytes`) is read and dropped so the
/// connection stays usable; past this the rest is left unread.
const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// What an isolate builds once and keeps: the compiled gateway, its state, its settings.
struct Isolate {
    gw: Gateway,
    state: IsolateState,
    bindings: Rc<Bindings>,
    /// `DEV_GEO_HEADERS=true`: the caller's location comes from `x-dev-*` headers.
    dev_geo: bool,
}

thread_local! {
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom02::getrandom(&mut bytes).is_err() {
        let t = worker::js_sys::Math::random().to_bits().to_le_bytes();
        bytes[..8].copy_from_slice(&t);
    }
    bytes
}

/// The isolate's gateway, compiled from the embedded routes on first use.
fn isolate(env: &Env) -> Rc<Isolate> {
    ISOLATE.with(|cell| {
        cell.get_or_init(|| {
            let secret = |name: &str| {
                env.secret(name)
                    .map(|s| s.to_string())
                    .or_else(|_| env.var(name).map(|v| v.to_string()))
                    .ok()
            };
            // The build validated the file, so this cannot fail for an embedded file.
            let gw = Gateway::from_prepared(EMBEDDED_ROUTES, &secret)
                .expect("the embedded routes file was validated at build time")
                .with_embedded_docs();
            for p in gw.providers.iter().filter_map(|p| p.as_ref().err()) {
                console_error!("{}", Event::ConfigError { error: p }.to_json());
            }
            let dev_geo = env
                .var("DEV_GEO_HEADERS")
                .map(|v| v.to_string() == "true")
                .unwrap_or(false);
            let id = crate::http::request_id::generate(random_bytes());
            Rc::new(Isolate {
                state: IsolateState::new(&gw, id[..16].to_string()),
                bindings: Rc::new(Bindings {
                    kv: env.kv("GATEWAY_KV").ok(),
                    metrics: env.analytics_engine("GATEWAY_METRICS").ok(),
                    limiter: env.durable_object("GATEWAY_LIMITER").ok(),
                    env: env.clone(),
                }),
                gw,
                dev_geo,
            })
        })
        .clone()
    })
}

struct JsHeaders<'a>(&'a web_sys::Headers);

impl HeaderView for JsHeaders<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }

    fn names(&self) -> Vec<String> {
        header_names(self.0)
    }
}

/// The (lower-cased) names of a `Headers`, in four calls into JavaScript whatever
/// their number: one string of names joined by newlines, which no name can contain.
fn header_names(headers: &web_sys::Headers) -> Vec<String> {
    let joined: String = worker::js_sys::Array::from(&headers.keys())
        .join("\n")
        .into();
    if joined.is_empty() {
        return Vec::new();
    }
    joined.split('\n').map(str::to_string).collect()
}

fn apply(headers: &web_sys::Headers, edits: &HeaderEdits) {
    for name in &edits.remove {
        let _ = headers.delete(name);
    }
    for (name, value) in &edits.set {
        // A value the runtime refuses (it never should: values are checked) is dropped, not fatal.
        let _ = headers.set(name, value);
    }
    for (name, value) in &edits.append {
        let _ = headers.append(name, value);
    }
}

/// Whether the request framing announces a body. The runtime hands the Worker an
/// (empty) body stream for every method but GET and HEAD, even when the client
/// sent none; only `Transfer-Encoding` or a non-zero `Content-Length` mean one.
fn declares_body(headers: &impl HeaderView) -> bool {
    headers.get("transfer-encoding").is_some()
        || headers
            .get("content-length")
            .is_some_and(|l| l.trim().parse::<u64>().map_or(true, |n| n > 0))
}

fn event_line(event: &Event<'_>) {
    console_log!("{}", event.to_json());
}

/// A started `fetch` (global, or through a service binding) with a deadline for
/// the response headers.
async fn fetch_with_timeout(
    fetch: worker::js_sys::Promise,
    controller: &web_sys::AbortController,
    timeout_ms: u64,
) -> Result<web_sys::Response, FetchError> {
    let fetch = JsFuture::from(fetch);
    let timeout = Delay::from(Duration::from_millis(timeout_ms));
    match select(fetch, timeout).await {
        Either::Left((Ok(value), _)) => value
            .dyn_into::<web_sys::Response>()
            .map_err(|_| FetchError::Connect("not a response".into())),
        Either::Left((Err(e), _)) => Err(FetchError::Connect(format!("{e:?}"))),
        Either::Right(_) => {
            controller.abort();
            Err(FetchError::Timeout)
        }
    }
}

/// Aborts a fetch whose future is dropped while it is still armed.
struct AbortOnDrop<'a>(&'a web_sys::AbortController, bool);

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.abort();
        }
    }
}

/// The env bindings the ports use, looked up once per isolate: the runtime hands
/// every request of an isolate the same binding objects.
struct Bindings {
    kv: Option<KvStore>,
    metrics: Option<AnalyticsEngineDataset>,
    limiter: Option<ObjectNamespace>,
    /// For regions with a `service` binding.
    env: Env,
}

struct EdgePorts {
    request: web_sys::Request,
    /// The request announces a body (see [`declares_body`]).
    has_body: bool,
    body_sent: Cell<bool>,
    bindings: Rc<Bindings>,
}

impl EdgePorts {
    fn new(request: web_sys::Request, has_body: bool, bindings: Rc<Bindings>) -> Self {
        EdgePorts {
            request,
            has_body,
            body_sent: Cell::new(false),
            bindings,
        }
    }
}

impl Ports for EdgePorts {
    type Response = web_sys::Response;

    fn now_ms(&self) -> u64 {
        worker::js_sys::Date::now() as u64
    }

    fn random_bytes(&self) -> [u8; 16] {
        random_bytes()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }

    async fn read_body(&self, max: u64) -> Result<Vec<u8>, BodyError> {
        let Some(stream) = self.request.body() else {
            return Ok(Vec::new());
        };
        if !self.has_body || self.body_sent.replace(true) {
            return Ok(Vec::new());
        }
        let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        let unreadable = |e: worker::wasm_bindgen::JsValue| BodyError::Read(format!("{e:?}"));
        let mut out = Vec::new();
        loop {
            let step = JsFuture::from(reader.read()).await.map_err(unreadable)?;
            let done = worker::js_sys::Reflect::get(&step, &"done".into()).map_err(unreadable)?;
            if done.is_truthy() {
                return Ok(out);
            }
            let value = worker::js_sys::Reflect::get(&step, &"value".into()).map_err(unreadable)?;
            let chunk = worker::js_sys::Uint8Array::new(&value);
            let len = chunk.length() as usize;
            if (out.len() + len) as u64 > max {
                // Nothing more is kept. The rest of the upload is read and dropped
                // (up to DRAIN_MAX_BYTES, never copied into wasm): an upload left
                // unread, or a cancelled stream, makes the next request on the
                // connection fail under `wrangler dev` (503 "Your worker restarted
                // mid-request").
                let mut drained = 0u64;
                while drained < DRAIN_MAX_BYTES {
                    let Ok(step) = JsFuture::from(reader.read()).await else {
                        break;
                    };
                    let done = worker::js_sys::Reflect::get(&step, &"done".into())
                        .map_or(true, |d| d.is_truthy());
                    if done {
                        break;
                    }
                    drained += worker::js_sys::Reflect::get(&step, &"value".into())
                        .map_or(0, |v| {
                            u64::from(worker::js_sys::Uint8Array::new(&v).length())
                        });
                }
                reader.release_lock();
                return Err(BodyError::TooLarge);
            }
            let start = out.len();
            out.resize(start + len, 0);
            chunk.copy_to(&mut out[start..]);
        }
    }

    async fn fetch(&self, up: UpstreamRequest<'_>) -> Result<web_sys::Response, FetchError> {
        let headers = web_sys::Headers::new_with_headers(&self.request.headers())
            .map_err(|_| FetchError::Connect("headers".into()))?;
        apply(&headers, up.headers);
        let init = web_sys::RequestInit::new();
        init.set_method(up.method.as_str());
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        // `max_body_bytes` is enforced on declared lengths by the pipeline; counting a
        // streamed body here (`up.max_body_bytes`, `FetchError::BodyTooLarge`) is not
        // done yet: the body of unknown length streams through unlimited.
        if let Some(bytes) = up.body {
            // Read into memory by a policy (`read_body`): sent as read.
            init.set_body(&worker::js_sys::Uint8Array::from(bytes).into());
        } else if let Some(body) = self.request.body() {
            if self.has_body && !self.body_sent.replace(true) {
                init.set_body(&body);
            }
        }
        let controller = web_sys::AbortController::new()
            .map_err(|_| FetchError::Connect("abort controller".into()))?;
        init.set_signal(Some(&controller.signal()));
        let request = web_sys::Request::new_with_str_and_init(up.url, &init)
            .map_err(|e| FetchError::Connect(format!("{e:?}")))?;
        let started = match up.service {
            Some(binding) => {
                let fetcher =
                    self.bindings.env.service(binding).ok().ok_or_else(|| {
                        FetchError::Connect(format!("no service binding {binding}"))
                    })?;
                let raw: &worker::worker_sys::Fetcher = fetcher.as_ref().unchecked_ref();
                raw.fetch(&request)
                    .map_err(|e| FetchError::Connect(format!("{e:?}")))?
            }
            None => {
                let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
                global.fetch_with_request(&request)
            }
        };
        // An attempt dropped before it answered (the loser of a hedge) is aborted.
        let mut guard = AbortOnDrop(&controller, true);
        let result = fetch_with_timeout(started, &controller, up.timeout_ms).await;
        guard.1 = false;
        result
    }

    fn status(&self, response: &web_sys::Response) -> u16 {
        response.status()
    }

    fn response_header(&self, response: &web_sys::Response, name: &str) -> Option<String> {
        response.headers().get(name).ok().flatten()
    }

    fn response_header_names(&self, response: &web_sys::Response) -> Vec<String> {
        header_names(&response.headers())
    }

    async fn fetch_jwks(&self, url: &str) -> Result<JwksDocument, String> {
        let init = web_sys::RequestInit::new();
        init.set_method("GET");
        let controller =
            web_sys::AbortController::new().map_err(|_| "abort controller".to_string())?;
        init.set_signal(Some(&controller.signal()));
        let request =
            web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| format!("{e:?}"))?;
        let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
        let started = global.fetch_with_request(&request);
        let response = fetch_with_timeout(started, &controller, JWKS_TIMEOUT_MS)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if response.status() != 200 {
            return Err(format!("JWKS answered {}", response.status()));
        }
        let length = response
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|l| l.parse::<usize>().ok());
        if length.is_some_and(|l| l > MAX_JWKS_BYTES) {
            return Err("JWKS too large".into());
        }
        let cache_control = response.headers().get("cache-control").ok().flatten();
        let buffer = response.array_buffer().map_err(|e| format!("{e:?}"))?;
        let buffer = JsFuture::from(buffer).await.map_err(|e| format!("{e:?}"))?;
        let body = worker::js_sys::Uint8Array::new(&buffer).to_vec();
        Ok(JwksDocument {
            body,
            cache_control,
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.get(key).text().await.map_err(|e| e.to_string())
    }

    async fn kv_put(&self, key: &str, value: &str, expiration_ttl_s: u64) -> Result<(), String> {
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.put(key, value)
            .map_err(|e| e.to_string())?
            .expiration_ttl(expiration_ttl_s)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn kv_put_record(&self, key: &str, value: &str) -> Result<(), String> {
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.put(key, value)
            .map_err(|e| e.to_string())?
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn kv_delete(&self, key: &str) -> Result<(), String> {
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.delete(key).await.map_err(|e| e.to_string())
    }

    async fn limiter_call(&self, call: &LeaseCall) -> Result<LeaseReply, String> {
        let ns = self
            .bindings
            .limiter
            .as_ref()
            .ok_or("no GATEWAY_LIMITER binding")?;
        lease_call(ns, call).await
    }

    async fn cache_get(&self, key: &str) -> Result<Option<web_sys::Response>, String> {
        let hit = Cache::default()
            .get(key, false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(hit.map(web_sys::Response::from))
    }

    async fn cache_delete(&self, key: &str) -> Result<bool, String> {
        match Cache::default().delete(key, false).await {
            Ok(worker::CacheDeletionOutcome::Success) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool {
        webcrypto::verify(check).await
    }

    fn record(&self, line: &LogLine) {
        if let Ok(json) = serde_json::to_string(line) {
            console_log!("{}", json);
        }
        if let Some(metrics) = &self.bindings.metrics {
            let point = AnalyticsEngineDataPointBuilder::new()
                .indexes([line.route.as_deref().unwrap_or("-")])
                .blobs([
                    line.route.as_deref().unwrap_or("-"),
                    line.method.as_str(),
                    line.region.as_deref().unwrap_or("-"),
                    line.cache.unwrap_or("-"),
                    line.rate_limit.unwrap_or("-"),
                    line.consumer.as_deref().unwrap_or("-"),
                ])
                .doubles([
                    f64::from(line.status),
                    line.duration_ms as f64,
                    line.upstream_ms.unwrap_or(0) as f64,
                    line.failovers as f64,
                ])
                .build();
            if let Err(e) = metrics.write_data_point(&point) {
                let error = e.to_string();
                console_error!("{}", Event::MetricsError { error: &error }.to_json());
            }
        }
    }

    fn event(&self, event: &Event<'_>) {
        event_line(event);
    }
}

/// One lease call to the counter's Durable Object (named by the counter id),
/// given up after `CALL_TIMEOUT_MS`.
async fn lease_call(ns: &ObjectNamespace, call: &LeaseCall) -> Result<LeaseReply, String> {
    let stub = ns
        .id_from_name(&call.counter)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_string(call).map_err(|e| e.to_string())?;
    let headers = worker::Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request =
        Request::new_with_init("https://limiter/lease", &init).map_err(|e| e.to_string())?;
    let answer = Box::pin(async move {
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        if response.status_code() != 200 {
            return Err(format!(
                "limiter answered {}: {}",
                response.status_code(),
                text.chars().take(200).collect::<String>()
            ));
        }
        serde_json::from_str::<LeaseReply>(&text).map_err(|e| e.to_string())
    });
    let timeout = Delay::from(Duration::from_millis(CALL_TIMEOUT_MS));
    let result = match select(answer, timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err("limiter timed out".into()),
    };
    result
}

/// Builds the client response; when the reply is to be cached, tees the body into the cache.
/// It goes to the runtime as it is (no `worker::Response` round trip, which would
/// drop the origin's reason phrase).
fn render(reply: Reply<web_sys::Response>) -> worker::Result<web_sys::Response> {
    render_with(reply, None)
}

fn render_with(
    reply: Reply<web_sys::Response>,
    ctx: Option<&Context>,
) -> worker::Result<web_sys::Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    let response = match reply.body {
        Body::Upstream(upstream) => {
            let headers = web_sys::Headers::new_with_headers(&upstream.headers())?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            if reply.status == upstream.status() {
                init.set_status_text(&upstream.status_text());
            }
            if reply.status == 101 {
                // A WebSocket route's upgrade: the origin's socket goes to the
                // client and the runtime proxies it both ways.
                let socket = worker::js_sys::Reflect::get(&upstream, &"webSocket".into())?;
                if !socket.is_null() && !socket.is_undefined() {
                    worker::js_sys::Reflect::set(&init, &"webSocket".into(), &socket)?;
                }
            }
            let mut body = if reply.no_body { None } else { upstream.body() };
            if let (Some((key, _)), Some(ctx), Some(stream)) = (&reply.after.store, ctx, &body) {
                let branches = stream.tee();
                let client: web_sys::ReadableStream = branches.get(0).unchecked_into();
                let stored: web_sys::ReadableStream = branches.get(1).unchecked_into();
                body = Some(client);
                let store_headers = web_sys::Headers::new_with_headers(&upstream.headers())?;
                apply(&store_headers, &reply.after.store_headers);
                let store_init = web_sys::ResponseInit::new();
                store_init.set_status(upstream.status());
                store_init.set_headers(&store_headers);
                let to_store = web_sys::Response::new_with_opt_readable_stream_and_init(
                    Some(&stored),
                    &store_init,
                )?;
                let key = key.clone();
                ctx.wait_until(async move {
                    if let Err(e) = Cache::default()
                        .put(key.as_str(), Response::from(to_store))
                        .await
                    {
                        event_line(&Event::CacheError {
                            op: "put",
                            error: &e.to_string(),
                        });
                    }
                });
            }
            web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)?
        }
        Body::Own(text, content_type) => {
            let headers = web_sys::Headers::new()?;
            headers.set("content-type", content_type)?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            let text = (!reply.no_body).then_some(text);
            web_sys::Response::new_with_opt_str_and_init(text.as_deref(), &init)?
        }
        Body::Empty => {
            let headers = web_sys::Headers::new()?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            web_sys::Response::new_with_opt_str_and_init(None, &init)?
        }
    };
    Ok(response)
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let isolate = isolate(&env);
    let inner = &req;
    let url = match worker::Url::parse(&req.url()) {
        Ok(url) => url,
        Err(e) => {
            console_error!("unparsable request URL: {e}");
            return render(pipeline::problem_reply(
                crate::http::problem::Problem::new(
                    crate::http::problem::Kind::BadRequest,
                    "the request URL is not valid",
                ),
                "-",
            ));
        }
    };
    let headers = inner.headers();
    let view = JsHeaders(&headers);
    let host_header = view.get("host");
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    let client_ip = view.get("cf-connecting-ip");
    let (country, continent) = if isolate.dev_geo {
        (view.get("x-dev-country"), view.get("x-dev-continent"))
    } else {
        use worker::worker_sys::ext::RequestExt;
        let cf = req.cf();
        (
            cf.as_ref().and_then(|c| c.country().ok().flatten()),
            cf.as_ref().and_then(|c| c.continent().ok().flatten()),
        )
    };
    let method = inner.method();
    let scheme = url.scheme().to_string();
    let incoming = Incoming {
        method: &method,
        scheme: &scheme,
        host: host_header.as_deref().unwrap_or(&authority),
        path: url.path(),
        query: url.query(),
        headers: &view,
        client_ip: client_ip.as_deref(),
        country: country.as_deref(),
        continent: continent.as_deref(),
        has_body: inner.body().is_some() && declares_body(&view),
    };
    // `Clone::clone` copies the handle; `Request.clone()` would tee the body.
    let ports = EdgePorts::new(
        Clone::clone(inner),
        incoming.has_body,
        isolate.bindings.clone(),
    );
    let reply = pipeline::handle(&isolate.gw, &isolate.state, &ports, &incoming).await;
    if reply.after.flush_limits && isolate.bindings.kv.is_some() {
        let background = EdgePorts::new(Clone::clone(inner), false, isolate.bindings.clone());
        let isolate = isolate.clone();
        ctx.wait_until(async move {
            crate::policy::ratelimit::phase::flush(&isolate.state.limiter, &background).await;
        });
    }
    if reply.after.lease_work && isolate.bindings.limiter.is_some() {
        let background = EdgePorts::new(Clone::clone(inner), false, isolate.bindings.clone());
        let isolate = isolate.clone();
        ctx.wait_until(async move {
            crate::policy::ratelimit::phase::lease_work(&isolate.state.leases, &background).await;
        });
    }
    render_with(reply, Some(&ctx))
}

mod limiter;
mod webcrypto;

#[cfg(test)]
mod tests;
