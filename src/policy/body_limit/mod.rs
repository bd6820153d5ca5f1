//! `max_body_bytes`: the largest request body a route accepts.
//!
//! A declared `Content-Length` above the limit is answered 413 before anything goes
//! upstream. A body of undeclared length (`Transfer-Encoding: chunked`) is read
//! into memory up to the limit ([`Ports::read_body`]): past it the request is
//! answered 413 and nothing of it goes upstream; within it the bytes read are sent
//! (`Ctx::body`). A declared length within the limit streams untouched: the HTTP
//! framing already bounds it. (The ports also carry a cut upload back as
//! `FetchError::BodyTooLarge`, answered 413 without failover, for an edge that
//! counts while it streams.)

use crate::http::HeaderView;
use crate::pipeline::{Ctx, Flow, Incoming};
use crate::ports::{BodyError, Ports};

/// The limit of a route that validates its body and declares none: 1 MiB.
pub const DEFAULT_VALIDATED_MAX: u64 = 1024 * 1024;

/// The request hook: 413 for a request whose body is over `max`.
pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
    max: u64,
    ports: &P,
    req: &Incoming<'_, H>,
    cx: &mut Ctx,
) -> Result<Flow<P::Response>, crate::http::problem::Problem> {
    if !req.has_body {
        return Ok(Flow::Continue);
    }
    let length = req.headers.get("content-length");
    if declared_too_large(length.as_deref(), max) {
        return Err(too_large(max));
    }
    if needs_reading(length.as_deref()) {
        match ports.read_body(max).await {
            Ok(bytes) => cx.body = Some(bytes),
            Err(BodyError::TooLarge) => return Err(too_large(max)),
            Err(BodyError::Read(e)) => {
                cx.log.error = Some(format!("request body: {e}"));
                return Err(crate::http::problem::Problem::new(
                    crate::http::problem::Kind::BadRequest,
                    "the request body could not be read whole",
                ));
            }
        }
    }
    Ok(Flow::Continue)
}

/// Whether a body must be read to be bounded: it declares no valid length.
pub fn needs_reading(content_length: Option<&str>) -> bool {
    content_length.is_none_or(|l| l.trim().parse::<u64>().is_err())
}

/// The answer to a body over the route's limit.
pub fn too_large(max: u64) -> crate::http::problem::Problem {
    crate::http::problem::Problem::new(
        crate::http::problem::Kind::PayloadTooLarge,
        format!("the request body is larger than this route's limit of {max} bytes"),
    )
}

/// Whether a declared `Content-Length` is over `max`. A value that is not a length
/// (the runtime refuses those before the Worker runs) is not judged here.
pub fn declared_too_large(content_length: Option<&str>, max: u64) -> bool {
    content_length
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| l > max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths() {
        assert!(!declared_too_large(Some("100"), 100));
        assert!(declared_too_large(Some("101"), 100));
        assert!(declared_too_large(Some(" 18446744073709551615 "), 100));
        assert!(!declared_too_large(None, 100));
        assert!(!declared_too_large(Some("abc"), 100));
    }

    #[test]
    fn only_undeclared_lengths_are_read() {
        assert!(needs_reading(None));
        assert!(needs_reading(Some("abc")));
        assert!(!needs_reading(Some("10")));
        assert!(!needs_reading(Some(" 0 ")));
    }
}
