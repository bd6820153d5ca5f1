//! The I/O the pipeline needs, as small traits: the edge implements them over
//! the Workers runtime, tests over plain Rust.

use crate::config::Method;
use crate::http::headers::HeaderEdits;
use crate::log::{Event, LogLine};
use crate::policy::auth::SignatureCheck;
use crate::policy::ratelimit::global::{LeaseCall, LeaseReply};

/// Why an upstream attempt failed before a response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No response headers within the attempt's timeout.
    Timeout,
    /// Connection refused, reset, DNS failure, TLS failure, ...
    Connect(String),
    /// An answer the runtime parsed but cannot pass on: a status outside 200-599.
    Invalid,
    /// The request body grew past `max_body_bytes` while it streamed: the upload was cut.
    BodyTooLarge,
}

/// Why the incoming body could not be read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It is longer than the limit given: reading stopped there.
    TooLarge,
    /// The runtime failed to read it (the client disconnected, say).
    Read(String),
}

/// One upstream attempt.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    pub url: &'a str,
    pub method: Method,
    /// Applied to a copy of the incoming request's headers.
    pub headers: &'a HeaderEdits,
    pub timeout_ms: u64,
    /// The route's `max_body_bytes`: an edge that counts a body of undeclared length
    /// cuts it before it passes this and answers [`FetchError::BodyTooLarge`] (the
    /// Workers edge does not count yet).
    pub max_body_bytes: Option<u64>,
    /// Send through this Worker service binding instead of the network.
    pub service: Option<&'a str>,
    /// The request body, when a policy read it into memory ([`Ports::read_body`]):
    /// these bytes are sent instead of the incoming stream.
    pub body: Option<&'a [u8]>,
}

/// A fetched JWK Set: the body and the response's `Cache-Control`.
#[derive(Debug)]
pub struct JwksDocument {
    pub body: Vec<u8>,
    pub cache_control: Option<String>,
}

/// The runtime, as the pipeline sees it.
#[allow(async_fn_in_trait)]
pub trait Ports {
    /// An upstream or cached response whose body the pipeline never reads.
    type Response;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// 16 random bytes (request ids, trace ids).
    fn random_bytes(&self) -> [u8; 16];
    /// Waits; used while another request of this isolate fetches what this one needs.
    async fn sleep(&self, ms: u64);
    /// Reads the incoming request body into memory, at most `max` bytes: past
    /// them it stops reading and answers [`BodyError::TooLarge`]. The stream is
    /// consumed: the request then goes upstream with the bytes read
    /// ([`UpstreamRequest::body`]).
    async fn read_body(&self, max: u64) -> Result<Vec<u8>, BodyError>;
    /// Sends the request upstream, with the incoming body when it has one.
    async fn fetch(&self, request: UpstreamRequest<'_>) -> Result<Self::Response, FetchError>;
    /// The status of a response.
    fn status(&self, response: &Self::Response) -> u16;
    /// A header of a response.
    fn response_header(&self, response: &Self::Response, name: &str) -> Option<String>;
    /// The header names of a response, lower-cased.
    fn response_header_names(&self, response: &Self::Response) -> Vec<String>;
    /// Checks an asymmetric token signature (`RS*`, `PS*`, `ES*`, `EdDSA`); `false`
    /// when it does not verify or cannot be checked. The Workers edge asks WebCrypto;
    /// a native edge calls [`SignatureCheck::verify_in_rust`].
    async fn verify_signature(&self, check: &SignatureCheck<'_>) -> bool;
    /// Fetches a JWK Set.
    async fn fetch_jwks(&self, url: &str) -> Result<JwksDocument, String>;
    /// Reads a rate-limit counter from KV.
    async fn kv_get(&self, key: &str) -> Result<Option<String>, String>;
    /// Writes a rate-limit counter to KV, to expire after `expiration_ttl_s` seconds.
    async fn kv_put(&self, key: &str, value: &str, expiration_ttl_s: u64) -> Result<(), String>;
    /// Writes a record to KV that never expires.
    async fn kv_put_record(&self, key: &str, value: &str) -> Result<(), String>;
    /// Deletes a KV entry (deleting an absent one succeeds).
    async fn kv_delete(&self, key: &str) -> Result<(), String>;
    /// Sends one lease call to the Durable Object of a global rate limit
    /// (named `call.counter`, binding `GATEWAY_LIMITER`); gives up after
    /// `policy::ratelimit::global::CALL_TIMEOUT_MS`.
    async fn limiter_call(&self, call: &LeaseCall) -> Result<LeaseReply, String>;
    /// Looks a key up in the edge cache.
    async fn cache_get(&self, key: &str) -> Result<Option<Self::Response>, String>;
    /// Removes a key from the edge cache; whether there was an entry.
    async fn cache_delete(&self, key: &str) -> Result<bool, String>;
    /// Writes the request's log line (and metrics).
    fn record(&self, line: &LogLine);
    /// Writes one event line (circuit breaker changes, KV failures).
    fn event(&self, event: &Event<'_>);
}
