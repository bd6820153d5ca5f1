//! Header rules: hop-by-hop headers, the headers the gateway owns, safe values.

use std::borrow::Cow;

use super::HeaderView;

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway always removes from what it forwards, because it
/// sets them itself (or because they only have meaning between client and gateway).
pub const GATEWAY_OWNED_REQUEST: [&str; 8] = [
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-dev-country",
    "x-dev-continent",
];

/// The lower-cased header names listed in a `Connection` header value.
pub fn connection_tokens(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Whether a value may be put into a header: no CR, LF or NUL, and not overlong.
pub fn is_safe_value(value: &str) -> bool {
    value.len() <= 8 * 1024 && !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Changes to apply to a copy of a header set: first `remove`, then `set`, then `append`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderEdits {
    pub remove: Vec<Cow<'static, str>>,
    pub set: Vec<(Cow<'static, str>, String)>,
    /// Values added beside existing ones (`Vary`).
    pub append: Vec<(&'static str, String)>,
}

impl HeaderEdits {
    pub fn remove(&mut self, name: impl Into<Cow<'static, str>>) {
        self.remove.push(name.into());
    }

    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.set.push((name.into(), value.into()));
    }

    pub fn append(&mut self, name: &'static str, value: impl Into<String>) {
        self.append.push((name, value.into()));
    }

    /// Removes the hop-by-hop headers, including those named by `Connection`.
    pub fn remove_hop_by_hop(&mut self, headers: &(impl HeaderView + ?Sized)) {
        self.remove
            .extend(HOP_BY_HOP.iter().map(|h| Cow::Borrowed(*h)));
        if let Some(connection) = headers.get("connection") {
            self.remove
                .extend(connection_tokens(&connection).map(Cow::Owned));
        }
    }

    /// The value this edit list sets for `name`, if any (last one wins).
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Applies the edits to a list of headers (what the edge does on runtime headers).
    pub fn apply_to(&self, headers: &mut Vec<(String, String)>) {
        headers.retain(|(n, _)| !self.remove.iter().any(|r| r.eq_ignore_ascii_case(n)));
        for (name, value) in &self.set {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value.clone()));
        }
        for (name, value) in &self.append {
            headers.push((name.to_string(), value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_includes_connection_tokens() {
        let incoming = [("Connection", "close, X-Secret-Hop"), ("x-secret-hop", "1")];
        let mut edits = HeaderEdits::default();
        edits.remove_hop_by_hop(&incoming);
        assert!(edits.remove.iter().any(|h| h == "x-secret-hop"));
        assert!(edits.remove.iter().any(|h| h == "transfer-encoding"));
        let mut list = vec![
            ("x-secret-hop".to_string(), "1".to_string()),
            ("Keep-Alive".to_string(), "5".to_string()),
            ("accept".to_string(), "*/*".to_string()),
        ];
        edits.set("x-request-id", "r1");
        edits.apply_to(&mut list);
        assert_eq!(
            list,
            vec![
                ("accept".to_string(), "*/*".to_string()),
                ("x-request-id".to_string(), "r1".to_string())
            ]
        );
    }

    #[test]
    fn unsafe_values() {
        assert!(is_safe_value("abc def"));
        assert!(!is_safe_value("a\r\nb"));
        assert!(!is_safe_value("a\0b"));
        assert!(!is_safe_value(&"a".repeat(9000)));
    }
}
