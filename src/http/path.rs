//! Request path normalization: what is matched against the routes.
//!
//! The path is kept percent-encoded (so `%2F` inside a segment stays part of
//! that segment and reaches the origin unchanged), dot segments are resolved,
//! including their encoded forms (`%2e`, `.%2E`), and runs of slashes collapse
//! to one. The result never climbs above `/`.

use std::borrow::Cow;

/// The longest request path the gateway accepts (bytes, percent-encoded).
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Longer than [`MAX_PATH_LEN`].
    TooLong,
    /// Not an origin-form path (does not start with `/`).
    NotOriginForm,
}

fn is_dot(seg: &str) -> bool {
    seg == "." || seg.eq_ignore_ascii_case("%2e")
}

fn is_dot_dot(seg: &str) -> bool {
    matches!(seg.len(), 2 | 4 | 6) && {
        let lower = seg.to_ascii_lowercase();
        matches!(lower.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e")
    }
}

/// Whether a segment is a dot segment as a URL parser reads one: `.` or `..`, with any
/// dot possibly written `%2e`/`%2E`.
pub fn is_dot_segment(seg: &str) -> bool {
    is_dot(seg) || is_dot_dot(seg)
}

/// Normalizes a request path; borrows when nothing changes.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    let needs_work = raw.contains("//") || raw.split('/').any(|seg| is_dot(seg) || is_dot_dot(seg));
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = raw[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        if is_dot(seg) {
            trailing_slash = i == last;
        } else if is_dot_dot(seg) {
            out.pop();
            trailing_slash = i == last;
        } else if seg.is_empty() {
            trailing_slash = i == last;
        } else {
            out.push(seg);
            trailing_slash = false;
        }
    }
    let mut path = String::with_capacity(raw.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        normalize(p).unwrap().into_owned()
    }

    #[test]
    fn leaves_clean_paths_alone() {
        assert!(matches!(normalize("/api/users/1"), Ok(Cow::Borrowed(_))));
        assert_eq!(n("/"), "/");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/a/..b/c."), "/a/..b/c.");
    }

    #[test]
    fn resolves_dot_segments() {
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/a/b/../c"), "/a/c");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(n("/.."), "/");
    }

    #[test]
    fn resolves_encoded_dot_segments() {
        assert_eq!(n("/a/%2e%2e/b"), "/b");
        assert_eq!(n("/a/%2E%2e/b"), "/b");
        assert_eq!(n("/a/.%2e/b"), "/b");
        assert_eq!(n("/a/%2e./b"), "/b");
        assert_eq!(n("/a/%2e/b"), "/a/b");
    }

    #[test]
    fn collapses_slashes_and_keeps_encoded_slashes() {
        assert_eq!(n("//a///b//"), "/a/b/");
        assert_eq!(n("/files/a%2F..%2Fb"), "/files/a%2F..%2Fb");
    }

    #[test]
    fn refuses_long_and_relative_paths() {
        assert_eq!(normalize(&"/a".repeat(5000)), Err(PathError::TooLong));
        assert_eq!(normalize("a/b"), Err(PathError::NotOriginForm));
        assert_eq!(normalize(""), Err(PathError::NotOriginForm));
    }
}
