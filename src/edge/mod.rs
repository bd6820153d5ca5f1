//! The edge: the pipeline's ports on the Workers runtime. The only code that knows JavaScript.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use futures_util::future::{select, Either};
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, console_log, event, web_sys, Context, Env, Request, Response};

use crate::gateway::{Gateway, EMBEDDED_ROUTES};
use crate::http::HeaderView;
use crate::pipeline::{self, Body, Incoming, IsolateState, Reply};
use crate::ports::{FetchError, Ports, UpstreamRequest};

/// What an isolate builds once and keeps: the compiled gateway, its state, its settings.
struct Isolate {
    gw: Gateway,
    state: IsolateState,
    /// `DEV_GEO_HEADERS=true`: the caller's location comes from `x-dev-*` headers.
    dev_geo: bool,
}

thread_local! {
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

/// The isolate's gateway, compiled from the embedded routes on first use.
fn isolate(env: &Env) -> Rc<Isolate> {
    ISOLATE.with(|cell| {
        cell.get_or_init(|| {
            // The build validated the file, so this cannot fail for an embedded file.
            let gw = Gateway::from_json(EMBEDDED_ROUTES)
                .expect("the embedded routes file was validated at build time");
            let dev_geo = env
                .var("DEV_GEO_HEADERS")
                .map(|v| v.to_string() == "true")
                .unwrap_or(false);
            Rc::new(Isolate {
                state: IsolateState::new(&gw),
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
}

fn apply(headers: &web_sys::Headers, edits: &crate::http::headers::HeaderEdits) {
    for name in &edits.remove {
        let _ = headers.delete(name);
    }
    for (name, value) in &edits.set {
        // A value the runtime refuses (it never should: values are checked) is dropped, not fatal.
        let _ = headers.set(name, value);
    }
}

struct EdgePorts<'a> {
    request: &'a web_sys::Request,
    body_sent: Cell<bool>,
}

impl<'a> EdgePorts<'a> {
    fn new(request: &'a web_sys::Request) -> Self {
        EdgePorts {
            request,
            body_sent: Cell::new(false),
        }
    }
}

impl Ports for EdgePorts<'_> {
    type Response = web_sys::Response;

    fn now_ms(&self) -> u64 {
        worker::js_sys::Date::now() as u64
    }

    fn random_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        if getrandom02::getrandom(&mut bytes).is_err() {
            let t = worker::js_sys::Math::random().to_bits().to_le_bytes();
            bytes[..8].copy_from_slice(&t);
        }
        bytes
    }

    async fn fetch(&self, up: UpstreamRequest<'_>) -> Result<web_sys::Response, FetchError> {
        let headers = web_sys::Headers::new_with_headers(&self.request.headers())
            .map_err(|_| FetchError::Connect("headers".into()))?;
        apply(&headers, up.headers);
        let init = web_sys::RequestInit::new();
        init.set_method(up.method.as_str());
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        if let Some(body) = self.request.body() {
            if !self.body_sent.replace(true) {
                init.set_body(&body);
            }
        }
        let controller = web_sys::AbortController::new()
            .map_err(|_| FetchError::Connect("abort controller".into()))?;
        init.set_signal(Some(&controller.signal()));
        let request = web_sys::Request::new_with_str_and_init(up.url, &init)
            .map_err(|e| FetchError::Connect(format!("{e:?}")))?;
        let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
        let fetch = JsFuture::from(global.fetch_with_request(&request));
        let timeout = worker::Delay::from(std::time::Duration::from_millis(up.timeout_ms));
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

    fn status(&self, response: &web_sys::Response) -> u16 {
        response.status()
    }

    fn response_header(&self, response: &web_sys::Response, name: &str) -> Option<String> {
        response.headers().get(name).ok().flatten()
    }

    fn log(&self, line: &str) {
        console_log!("{}", line);
    }
}

fn render(reply: Reply<web_sys::Response>) -> worker::Result<Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    let response = match reply.body {
        Body::Upstream(upstream) => {
            let headers = web_sys::Headers::new_with_headers(&upstream.headers())?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            init.set_status_text(&upstream.status_text());
            let body = if matches!(reply.status, 101 | 204 | 205 | 304) {
                None
            } else {
                upstream.body()
            };
            web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)?
        }
        Body::Own(text, content_type) => {
            let headers = web_sys::Headers::new()?;
            headers.set("content-type", content_type)?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            web_sys::Response::new_with_opt_str_and_init(Some(&text), &init)?
        }
        Body::Empty => {
            let headers = web_sys::Headers::new()?;
            apply(&headers, &reply.headers);
            init.set_headers(&headers);
            web_sys::Response::new_with_opt_str_and_init(None, &init)?
        }
    };
    Ok(Response::from(response))
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let isolate = isolate(&env);
    let inner = req.inner();
    let url = match req.url() {
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
        let cf = req.cf();
        (cf.and_then(|c| c.country()), cf.and_then(|c| c.continent()))
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
        has_body: inner.body().is_some(),
    };
    let ports = EdgePorts::new(inner);
    let reply = pipeline::handle(&isolate.gw, &isolate.state, &ports, &incoming).await;
    render(reply)
}

#[cfg(test)]
mod tests;
