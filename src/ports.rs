//! The I/O the pipeline needs, as small traits: the edge implements them over
//! the Workers runtime, tests over plain Rust.

use crate::config::Method;
use crate::http::headers::HeaderEdits;

/// Why an upstream attempt failed before a response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No response headers within the attempt's timeout.
    Timeout,
    /// Connection refused, reset, DNS failure, TLS failure, ...
    Connect(String),
}

/// One upstream attempt.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    pub url: &'a str,
    pub method: Method,
    /// Applied to a copy of the incoming request's headers.
    pub headers: &'a HeaderEdits,
    pub timeout_ms: u64,
}

/// The runtime, as the pipeline sees it.
#[allow(async_fn_in_trait)]
pub trait Ports {
    /// An upstream response whose body the pipeline never reads.
    type Response;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// 16 random bytes (request ids).
    fn random_bytes(&self) -> [u8; 16];
    /// Sends the request upstream, with the incoming body when it has one.
    async fn fetch(&self, request: UpstreamRequest<'_>) -> Result<Self::Response, FetchError>;
    /// The status of an upstream response.
    fn status(&self, response: &Self::Response) -> u16;
    /// A header of an upstream response.
    fn response_header(&self, response: &Self::Response, name: &str) -> Option<String>;
    /// Writes one log line.
    fn log(&self, line: &str);
}
