//! Request path normalization: what is matched against the routes.
//!
//! RFC 3986 section 6.2.2, in this order:
//!
//! 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
//!    (`/%61dmin` is `/admin`, `/%5F%5Fgateway` is `/__gateway`); every other
//!    percent-encoding stays exactly as sent, hex case included (so `%2F` inside
//!    a segment stays part of that segment and reaches the origin unchanged);
//! 2. dot segments are resolved, including those that step 1 made (`%2e%2e`
//!    is `..`), and runs of slashes collapse to one.
//!
//! The result never climbs above `/`. Everything that reads the path (routing,
//! the reserved prefix, auth, limits, cache keys, rewrites, the origin) reads
//! the normalized one.

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

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XX` at the start of `bytes` encodes, when it is unreserved.
fn encoded_unreserved(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', hi, lo, ..] => {
            let b = hex_value(*hi)? << 4 | hex_value(*lo)?;
            is_unreserved(b).then_some(b)
        }
        _ => None,
    }
}

/// Decodes the percent-encoded unreserved characters of `raw` (RFC 3986 6.2.2.2)
/// and leaves every other byte, and every other percent-encoding, as it is;
/// borrows when there is nothing to decode.
///
/// Decoding can join a literal `%` and a decoded hex digit into a new encoding
/// (`%6%31` gives `%61`), which an origin decoding again would read as `a`: so
/// it decodes until nothing is left to decode (each round shortens the path),
/// and the path the gateway judges is the one the origin reads.
pub fn decode_unreserved(raw: &str) -> Cow<'_, str> {
    match decode_unreserved_once(raw) {
        Cow::Borrowed(path) => Cow::Borrowed(path),
        Cow::Owned(mut path) => {
            while let Cow::Owned(next) = decode_unreserved_once(&path) {
                path = next;
            }
            Cow::Owned(path)
        }
    }
}

fn decode_unreserved_once(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let Some(first) = (0..bytes.len()).find(|&i| encoded_unreserved(&bytes[i..]).is_some()) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut i = first;
    let mut copied_from = first;
    while i < bytes.len() {
        if let Some(b) = encoded_unreserved(&bytes[i..]) {
            out.push_str(&raw[copied_from..i]);
            out.push(char::from(b));
            i += 3;
            copied_from = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[copied_from..]);
    Cow::Owned(out)
}

/// Normalizes a request path (see the module documentation); borrows when
/// nothing changes.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    Ok(match decode_unreserved(raw) {
        Cow::Borrowed(path) => resolve_dots(path).map_or(Cow::Borrowed(path), Cow::Owned),
        Cow::Owned(path) => Cow::Owned(resolve_dots(&path).unwrap_or(path)),
    })
}

/// Resolves dot segments and collapses runs of slashes in a path that starts with
/// `/`; `None` when there is nothing to change.
fn resolve_dots(raw: &str) -> Option<String> {
    let needs_work = raw.contains("//") || raw.split('/').any(|seg| is_dot(seg) || is_dot_dot(seg));
    if !needs_work {
        return None;
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
    Some(path)
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
    fn decodes_unreserved_characters_first() {
        // The attacks: an encoded letter of a protected prefix, an encoded reserved prefix.
        assert_eq!(n("/%61dmin/x"), "/admin/x");
        assert_eq!(n("/%41%44MIN"), "/ADMIN");
        assert_eq!(n("/%5F%5Fgateway/health"), "/__gateway/health");
        assert_eq!(n("/%5f%5fgateway/health"), "/__gateway/health");
        assert_eq!(n("/a%2Db%2ec%5Fd%7Ee%30"), "/a-b.c_d~e0");
        // Decoded dots then make dot segments, which are resolved.
        assert_eq!(n("/a/%2e%2e/admin"), "/admin");
        assert_eq!(n("/a/%2E./%2e/b"), "/b");
        assert_eq!(n("/a%2e%2e/b"), "/a../b");
        // Everything else stays exactly as sent, hex case included.
        assert_eq!(n("/files/a%2Fb%2fc"), "/files/a%2Fb%2fc");
        assert_eq!(n("/%61/a%2F..%2Fb"), "/a/a%2F..%2Fb");
        assert_eq!(n("/x%20y%3F%23%25%2e"), "/x%20y%3F%23%25.");
        // `%25` is `%`, reserved: `%2561` is not `%61`, and not `a`.
        assert_eq!(n("/%2561dmin"), "/%2561dmin");
        // Malformed or truncated encodings stay.
        assert_eq!(n("/%6"), "/%6");
        assert_eq!(n("/%zz%6g%"), "/%zz%6g%");
        assert_eq!(n("/%C3%A9"), "/%C3%A9");
        assert!(matches!(normalize("/%7Bid%7D"), Ok(Cow::Borrowed(_))));
        assert_eq!(decode_unreserved("/%61%"), "/a%");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in [
            "/%61dmin/x",
            "/a/%2e%2e/%2e/b/",
            "/%252e%252e/x",
            "//%2F/.%2e/%7e",
            "/%5F%5Fgateway",
        ] {
            let once = n(p);
            assert_eq!(n(&once), once, "{p}");
        }
    }

    #[test]
    fn refuses_long_and_relative_paths() {
        assert_eq!(normalize(&"/a".repeat(5000)), Err(PathError::TooLong));
        assert_eq!(normalize("a/b"), Err(PathError::NotOriginForm));
        assert_eq!(normalize(""), Err(PathError::NotOriginForm));
    }

    #[test]
    fn decoding_that_spells_a_new_encoding_decodes_it_too() {
        assert_eq!(normalize("/%6%31dmin/x").unwrap(), "/admin/x");
        assert_eq!(normalize("/%4%44%4E!?E!?").unwrap(), "/MN!?E!?");
        assert_eq!(normalize("/%%32%65%2e/a").unwrap(), "/a");
        // A `%` that starts no encoding, and reserved encodings, stay as sent.
        assert_eq!(normalize("/100%/%2F%6").unwrap(), "/100%/%2F%6");
        for raw in ["/%6%31dmin", "/%4%44%4E!?E!?", "/%%32%65%2e/a"] {
            let once = normalize(raw).unwrap().into_owned();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }
}
