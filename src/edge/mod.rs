//! The edge: the pipeline's ports on the Workers runtime. The only code that knows JavaScript.
//!
//! Bodies never enter wasm memory: the incoming request's stream is handed to
//! `fetch`, and the upstream response's stream to the client (teed into the
//! cache when the response is stored).

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::kv::KvStore;
use worker::wasm_bindgen::{JsCast, JsValue};
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

/// The isolate's randomness (request and trace ids, jitter, splits, API keys):
/// SHA-256 of a 256-bit seed and a counter, a hash DRBG whose seed is drawn from
/// `crypto.getRandomValues` once per isolate, so that a request draws none from
/// JavaScript. Without the seed, which never leaves wasm memory, its output
/// cannot be predicted.
struct Drbg {
    seed: [u8; 32],
    counter: u64,
}

thread_local! {
    static DRBG: std::cell::RefCell<Option<Drbg>> = const { std::cell::RefCell::new(None) };
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if getrandom02::getrandom(&mut seed).is_err() {
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&worker::js_sys::Math::random().to_bits().to_le_bytes());
        }
    }
    seed
}

fn random_bytes() -> [u8; 16] {
    use sha2::{Digest, Sha256};
    DRBG.with(|drbg| {
        let mut drbg = drbg.borrow_mut();
        let drbg = drbg.get_or_insert_with(|| Drbg {
            seed: seed(),
            counter: 0,
        });
        drbg.counter += 1;
        let digest = Sha256::new()
            .chain_update(drbg.seed)
            .chain_update(drbg.counter.to_le_bytes())
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    })
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

#[wasm_bindgen(module = "/src/edge/glue.js")]
extern "C" {
    /// Every header as `name:value` lines (glue.js; the edge reads them with the
    /// request, through `requestLines`).
    #[cfg(test)]
    #[wasm_bindgen(js_name = headerLines)]
    fn header_lines(headers: &web_sys::Headers) -> String;
    /// Method, URL, body stream, `cf` geo and header lines of a request (glue.js).
    #[wasm_bindgen(js_name = requestLines)]
    fn request_lines(request: &web_sys::Request) -> String;
    /// Every header of a response as `name:value` lines (glue.js).
    #[wasm_bindgen(js_name = responseHeaderLines)]
    fn response_header_lines(response: &web_sys::Response) -> String;
    /// A copy of `source` (or a new `Headers`) with the edits applied (glue.js).
    #[wasm_bindgen(js_name = editedHeaders)]
    fn edited_headers(
        source: Option<&web_sys::Headers>,
        remove: &str,
        set: &str,
        append: &str,
    ) -> web_sys::Headers;
    /// Builds and starts the upstream request with the incoming request's headers
    /// edited; rejects with "timeout" (glue.js).
    #[wasm_bindgen(catch, js_name = forward)]
    fn forward_js(
        fetcher: Option<&worker::worker_sys::Fetcher>,
        url: &str,
        method: &str,
        incoming: &web_sys::Request,
        remove: &str,
        set: &str,
        append: &str,
        body: Option<&JsValue>,
        timeout_ms: f64,
        controller: &web_sys::AbortController,
    ) -> Result<worker::js_sys::Promise, JsValue>;
    /// The client's response to an upstream one (glue.js).
    #[wasm_bindgen(catch, js_name = upstreamReply)]
    fn upstream_reply(
        upstream: &web_sys::Response,
        status: u16,
        with_body: bool,
        body: Option<&web_sys::ReadableStream>,
        remove: &str,
        set: &str,
        append: &str,
    ) -> Result<web_sys::Response, JsValue>;
    /// The gateway's own response (glue.js).
    #[wasm_bindgen(catch, js_name = ownReply)]
    fn own_reply(
        status: u16,
        text: Option<&str>,
        remove: &str,
        set: &str,
        append: &str,
    ) -> Result<web_sys::Response, JsValue>;
}

/// Headers read out of the runtime in one call: `name:value` lines, names
/// lower-cased, from `start` of `text` on.
struct LineHeaders {
    text: String,
    start: usize,
}

impl LineHeaders {
    #[cfg(test)]
    fn read(headers: &web_sys::Headers) -> Self {
        LineHeaders {
            text: header_lines(headers),
            start: 0,
        }
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.text[self.start..]
            .split('\n')
            .filter_map(|line| line.split_once(':'))
    }
}

/// The incoming request as glue.js `requestLines` reads it in one call: five
/// lines (method, URL, body stream, `cf` country and continent), then its headers.
struct RequestLines {
    fields: [std::ops::Range<usize>; 5],
    headers: LineHeaders,
}

impl RequestLines {
    fn read(request: &web_sys::Request) -> Self {
        let text = request_lines(request);
        let mut fields: [std::ops::Range<usize>; 5] = Default::default();
        let mut at = 0;
        for field in &mut fields {
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            *field = at..end;
            at = (end + 1).min(text.len());
        }
        RequestLines {
            fields,
            headers: LineHeaders { text, start: at },
        }
    }

    fn field(&self, i: usize) -> &str {
        &self.headers.text[self.fields[i].clone()]
    }

    fn method(&self) -> &str {
        self.field(0)
    }

    fn url(&self) -> &str {
        self.field(1)
    }

    fn has_body_stream(&self) -> bool {
        !self.field(2).is_empty()
    }

    /// The runtime's `cf.country` and `cf.continent`.
    fn cf_geo(&self) -> (Option<&str>, Option<&str>) {
        fn some(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        (some(self.field(3)), some(self.field(4)))
    }
}

impl HeaderView for LineHeaders {
    fn get(&self, name: &str) -> Option<String> {
        // `Headers` iterates a repeated name as one entry, except `set-cookie`,
        // whose entries are joined here as `Headers.get` joins them.
        crate::http::combined_value(self.entries(), name)
    }

    fn names(&self) -> Vec<String> {
        self.entries().map(|(n, _)| n.to_string()).collect()
    }
}

/// A response from an origin or the cache, with what the pipeline reads of it
/// read once: the status when it arrives, the headers (one call) on first use.
pub(crate) struct EdgeResponse {
    inner: web_sys::Response,
    status: u16,
    headers: OnceCell<LineHeaders>,
}

impl EdgeResponse {
    fn new(inner: web_sys::Response) -> Self {
        EdgeResponse {
            status: inner.status(),
            inner,
            headers: OnceCell::new(),
        }
    }

    fn headers(&self) -> &LineHeaders {
        self.headers.get_or_init(|| LineHeaders {
            text: response_header_lines(&self.inner),
            start: 0,
        })
    }
}

/// Whether a name or value can cross as part of a `name:value` line. One that
/// cannot (a "\n", or a ':' in a name) is one the runtime refuses anyway; it is
/// dropped, as `Headers.set` would refuse it, and never splits into two headers.
fn fits_a_line(name: &str, value: &str) -> bool {
    !name.contains([':', '\n']) && !value.contains('\n')
}

/// `edits` as the three strings glue.js applies: names to remove, `name:value`
/// lines to set, lines to append. `first` is set before the edits' own values
/// (a reply's `content-type`) unless they remove its name.
struct EditLines {
    remove: String,
    set: String,
    append: String,
}

impl EditLines {
    fn new(first: Option<(&str, &str)>, edits: &HeaderEdits) -> Self {
        let mut remove = String::new();
        for name in &edits.remove {
            if fits_a_line(name, "") {
                remove.push_str(name);
                remove.push('\n');
            }
        }
        let lines = |pairs: &mut dyn Iterator<Item = (&str, &str)>| {
            let mut out = String::new();
            for (name, value) in pairs.filter(|(n, v)| fits_a_line(n, v)) {
                out.push_str(name);
                out.push(':');
                out.push_str(value);
                out.push('\n');
            }
            out
        };
        let first =
            first.filter(|(name, _)| !edits.remove.iter().any(|r| r.eq_ignore_ascii_case(name)));
        let set = lines(
            &mut first
                .into_iter()
                .chain(edits.set.iter().map(|(n, v)| (n.as_ref(), v.as_str()))),
        );
        let append = lines(&mut edits.append.iter().map(|(n, v)| (*n, v.as_str())));
        EditLines {
            remove,
            set,
            append,
        }
    }
}

/// A copy of `source` (or new headers) with `edits` applied, in one call into
/// JavaScript: removals, then values set, then values appended.
fn edited(
    source: Option<&web_sys::Headers>,
    first: Option<(&str, &str)>,
    edits: &HeaderEdits,
) -> web_sys::Headers {
    let l = EditLines::new(first, edits);
    edited_headers(source, &l.remove, &l.set, &l.append)
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
    /// The clock as last read. workerd's clock stands still while an isolate runs
    /// and moves on only with I/O, so a reading holds until the next port that
    /// waits on the runtime completes (see [`EdgePorts::io`]).
    clock: Cell<Option<u64>>,
}

/// Forgets the clock reading when a port's I/O is over (or abandoned).
struct ClockAfterIo<'a>(&'a Cell<Option<u64>>);

impl Drop for ClockAfterIo<'_> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

impl EdgePorts {
    fn new(request: web_sys::Request, has_body: bool, bindings: Rc<Bindings>) -> Self {
        EdgePorts {
            request,
            has_body,
            body_sent: Cell::new(false),
            bindings,
            clock: Cell::new(None),
        }
    }

    /// Held by every port that waits on the runtime: when it is dropped, at the
    /// end of the port's future, the next `now_ms` reads the clock again.
    fn io(&self) -> ClockAfterIo<'_> {
        ClockAfterIo(&self.clock)
    }
}

impl Ports for EdgePorts {
    type Response = EdgeResponse;

    fn now_ms(&self) -> u64 {
        if let Some(now) = self.clock.get() {
            return now;
        }
        let now = worker::js_sys::Date::now() as u64;
        self.clock.set(Some(now));
        now
    }

    fn random_bytes(&self) -> [u8; 16] {
        random_bytes()
    }

    async fn sleep(&self, ms: u64) {
        let _io = self.io();
        Delay::from(Duration::from_millis(ms)).await;
    }

    async fn read_body(&self, max: u64) -> Result<Vec<u8>, BodyError> {
        let _io = self.io();
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

    async fn fetch(&self, up: UpstreamRequest<'_>) -> Result<EdgeResponse, FetchError> {
        let _io = self.io();
        // `max_body_bytes` is enforced on declared lengths by the pipeline; counting a
        // streamed body here (`up.max_body_bytes`, `FetchError::BodyTooLarge`) is not
        // done yet: the body of unknown length streams through unlimited.
        let body: Option<JsValue> = if let Some(bytes) = up.body {
            // Read into memory by a policy (`read_body`): sent as read.
            Some(worker::js_sys::Uint8Array::from(bytes).into())
        } else if self.has_body && !self.body_sent.replace(true) {
            self.request.body().map(Into::into)
        } else {
            None
        };
        let fetcher =
            match up.service {
                Some(binding) => {
                    Some(self.bindings.env.service(binding).ok().ok_or_else(|| {
                        FetchError::Connect(format!("no service binding {binding}"))
                    })?)
                }
                None => None,
            };
        let controller = web_sys::AbortController::new()
            .map_err(|_| FetchError::Connect("abort controller".into()))?;
        let fetcher: Option<&worker::worker_sys::Fetcher> = fetcher
            .as_ref()
            .map(|f| AsRef::<JsValue>::as_ref(f).unchecked_ref());
        let edits = EditLines::new(None, up.headers);
        let started = forward_js(
            fetcher,
            up.url,
            up.method.as_str(),
            &self.request,
            &edits.remove,
            &edits.set,
            &edits.append,
            body.as_ref(),
            up.timeout_ms as f64,
            &controller,
        )
        .map_err(|e| FetchError::Connect(format!("{e:?}")))?;
        // An attempt dropped before it answered (the loser of a hedge) is aborted.
        let mut guard = AbortOnDrop(&controller, true);
        let result = JsFuture::from(started).await;
        guard.1 = false;
        match result {
            Ok(value) => value
                .dyn_into::<web_sys::Response>()
                .map(EdgeResponse::new)
                .map_err(|_| FetchError::Connect("not a response".into())),
            Err(e) if e.as_string().as_deref() == Some("timeout") => Err(FetchError::Timeout),
            Err(e) => Err(FetchError::Connect(format!("{e:?}"))),
        }
    }

    fn status(&self, response: &EdgeResponse) -> u16 {
        response.status
    }

    fn response_header(&self, response: &EdgeResponse, name: &str) -> Option<String> {
        response.headers().get(name)
    }

    fn response_header_names(&self, response: &EdgeResponse) -> Vec<String> {
        response.headers().names()
    }

    async fn fetch_jwks(&self, url: &str) -> Result<JwksDocument, String> {
        let _io = self.io();
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
        let _io = self.io();
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.get(key).text().await.map_err(|e| e.to_string())
    }

    async fn kv_put(&self, key: &str, value: &str, expiration_ttl_s: u64) -> Result<(), String> {
        let _io = self.io();
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.put(key, value)
            .map_err(|e| e.to_string())?
            .expiration_ttl(expiration_ttl_s)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn kv_put_record(&self, key: &str, value: &str) -> Result<(), String> {
        let _io = self.io();
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.put(key, value)
            .map_err(|e| e.to_string())?
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn kv_delete(&self, key: &str) -> Result<(), String> {
        let _io = self.io();
        let kv = self.bindings.kv.as_ref().ok_or("no GATEWAY_KV binding")?;
        kv.delete(key).await.map_err(|e| e.to_string())
    }

    async fn limiter_call(&self, call: &LeaseCall) -> Result<LeaseReply, String> {
        let _io = self.io();
        let ns = self
            .bindings
            .limiter
            .as_ref()
            .ok_or("no GATEWAY_LIMITER binding")?;
        lease_call(ns, call).await
    }

    async fn cache_get(&self, key: &str) -> Result<Option<EdgeResponse>, String> {
        let _io = self.io();
        let hit = Cache::default()
            .get(key, false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(hit.map(|r| EdgeResponse::new(r.into())))
    }

    async fn cache_delete(&self, key: &str) -> Result<bool, String> {
        let _io = self.io();
        match Cache::default().delete(key, false).await {
            Ok(worker::CacheDeletionOutcome::Success) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool {
        let _io = self.io();
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
fn render(reply: Reply<EdgeResponse>) -> worker::Result<web_sys::Response> {
    render_with(reply, None)
}

fn render_with(
    reply: Reply<EdgeResponse>,
    ctx: Option<&Context>,
) -> worker::Result<web_sys::Response> {
    let response = match reply.body {
        Body::Upstream(upstream) => {
            let (status, upstream) = (upstream.status, upstream.inner);
            let mut body = None;
            if let (Some((key, _)), Some(ctx), false) = (&reply.after.store, ctx, reply.no_body) {
                if let Some(stream) = upstream.body() {
                    let branches = stream.tee();
                    let stored: web_sys::ReadableStream = branches.get(1).unchecked_into();
                    body = Some(branches.get(0).unchecked_into::<web_sys::ReadableStream>());
                    let store_headers =
                        edited(Some(&upstream.headers()), None, &reply.after.store_headers);
                    let store_init = web_sys::ResponseInit::new();
                    store_init.set_status(status);
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
            }
            let l = EditLines::new(None, &reply.headers);
            upstream_reply(
                &upstream,
                reply.status,
                !reply.no_body,
                body.as_ref(),
                &l.remove,
                &l.set,
                &l.append,
            )?
        }
        Body::Own(text, content_type) => {
            let l = EditLines::new(Some(("content-type", content_type)), &reply.headers);
            let text = (!reply.no_body).then_some(text);
            own_reply(reply.status, text.as_deref(), &l.remove, &l.set, &l.append)?
        }
        Body::Empty => {
            let l = EditLines::new(None, &reply.headers);
            own_reply(reply.status, None, &l.remove, &l.set, &l.append)?
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
    let read = RequestLines::read(inner);
    let url = match worker::Url::parse(read.url()) {
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
    let view = &read.headers;
    let host_header = view.get("host");
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    let client_ip = view.get("cf-connecting-ip");
    let (dev_country, dev_continent);
    let (country, continent) = if isolate.dev_geo {
        dev_country = view.get("x-dev-country");
        dev_continent = view.get("x-dev-continent");
        (dev_country.as_deref(), dev_continent.as_deref())
    } else {
        read.cf_geo()
    };
    let scheme = url.scheme().to_string();
    let incoming = Incoming {
        method: read.method(),
        scheme: &scheme,
        host: host_header.as_deref().unwrap_or(&authority),
        path: url.path(),
        query: url.query(),
        headers: view,
        client_ip: client_ip.as_deref(),
        country,
        continent,
        has_body: read.has_body_stream() && declares_body(view),
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
