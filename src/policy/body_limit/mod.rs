//! `max_body_bytes`: the largest request body a route accepts.
//!
//! A declared `Content-Length` above the limit is answered 413 before anything goes
//! upstream (here). The ports carry the limit to the edge (`UpstreamRequest::
//! max_body_bytes`) and a cut upload back (`FetchError::BodyTooLarge`, answered 413
//! without failover), but the edge does not count a body of undeclared length yet.

/// The limit of a route that validates its body and declares none: 1 MiB.
pub const DEFAULT_VALIDATED_MAX: u64 = 1024 * 1024;

/// The request hook: 413 for a request whose declared body is over `max`.
pub fn on_request<R, H: crate::http::HeaderView + ?Sized>(
    max: u64,
    req: &crate::pipeline::Incoming<'_, H>,
) -> Result<crate::pipeline::Flow<R>, crate::http::problem::Problem> {
    let length = req.headers.get("content-length");
    if req.has_body && declared_too_large(length.as_deref(), max) {
        return Err(too_large(max));
    }
    Ok(crate::pipeline::Flow::Continue)
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
}
