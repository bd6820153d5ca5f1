//! `max_body_bytes`: the largest request body a route accepts.
//!
//! A declared `Content-Length` above the limit is answered 413 before anything goes
//! upstream (here). A body without a declared length is counted by the edge as it
//! streams to the origin: the chunk that would pass the limit is never sent, the upload
//! is cut, and the request is answered 413 (or, when the origin has already answered,
//! the upload is aborted). So the origin never receives an oversized body whole.

/// The limit of a route that validates its body and declares none: 1 MiB.
pub const DEFAULT_VALIDATED_MAX: u64 = 1024 * 1024;

/// Whether a declared `Content-Length` is over `max`. A value that is not a length
/// (the runtime refuses those before the Worker runs) is not judged here.
pub fn declared_too_large(content_length: Option<&str>, max: u64) -> bool {
    content_length
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| l > max)
}

/// Whether the edge must count the body as it streams: a body is announced but its
/// length is not (a declared length is enforced by the HTTP framing itself).
pub fn needs_counting(has_body: bool, content_length: Option<&str>) -> bool {
    has_body
        && content_length
            .and_then(|l| l.trim().parse::<u64>().ok())
            .is_none()
}

/// The streamed-body count: bytes seen so far against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub max: u64,
    pub seen: u64,
}

impl Counter {
    pub fn new(max: u64) -> Counter {
        Counter { max, seen: 0 }
    }

    /// Counts a chunk of `len` bytes; `false` when it would take the body past the
    /// limit (the chunk must then not be sent).
    pub fn admit(&mut self, len: u64) -> bool {
        self.seen = self.seen.saturating_add(len);
        self.seen <= self.max
    }
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
    fn counting_is_for_bodies_of_unknown_length() {
        assert!(needs_counting(true, None));
        assert!(!needs_counting(true, Some("10")));
        assert!(!needs_counting(false, None));
    }

    #[test]
    fn the_chunk_that_passes_the_limit_is_refused() {
        let mut c = Counter::new(10);
        assert!(c.admit(4));
        assert!(c.admit(6));
        assert!(!c.admit(1));
        let mut c = Counter::new(10);
        assert!(!c.admit(11));
    }
}
