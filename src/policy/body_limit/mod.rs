//! `max_body_bytes`: the largest request body a route accepts.
//!
//! A declared `Content-Length` above the limit is answered 413 before anything goes
//! upstream (here). The ports carry the limit to the edge (`UpstreamRequest::
//! max_body_bytes`) and a cut upload back (`FetchError::BodyTooLarge`, answered 413
//! without failover), but the edge does not count a body of undeclared length yet.

/// The limit of a route that validates its body and declares none: 1 MiB.
pub const DEFAULT_VALIDATED_MAX: u64 = 1024 * 1024;

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
