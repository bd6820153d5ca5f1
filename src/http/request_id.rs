//! Request ids: a client's is kept when it is well-formed, otherwise a new one is made.

/// Whether a client-sent `x-request-id` is kept: 1 to 128 characters from `[A-Za-z0-9._-]`.
pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new request id from 16 random bytes: 32 lower-case hex characters.
pub fn generate(random: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in random {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// The request id to use: the client's when valid, else `fresh()`.
pub fn choose(client: Option<&str>, fresh: impl FnOnce() -> String) -> String {
    match client {
        Some(id) if is_valid(id) => id.to_string(),
        _ => fresh(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        assert!(is_valid("abc-123_X.y"));
        assert!(is_valid(&"a".repeat(128)));
        assert!(!is_valid(&"a".repeat(129)));
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("a\r\nx: y"));
        assert!(!is_valid("é"));
    }

    #[test]
    fn generation_and_choice() {
        let id = generate([0xab; 16]);
        assert_eq!(id, "ab".repeat(16));
        assert_eq!(choose(Some("keep-me"), || "new".into()), "keep-me");
        assert_eq!(choose(Some("bad id"), || "new".into()), "new");
        assert_eq!(choose(None, || "new".into()), "new");
    }
}
