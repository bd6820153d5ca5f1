//! Header rules: hop-by-hop headers, the headers the gateway owns, safe values.

use std::borrow::Cow;

use super::HeaderView;

/// The headers the gateway manages: `request_headers` and `response_headers` rules
/// cannot name them. The one list, kept with the configuration (the build checks it).
pub use crate::config::managed::{is_managed, HOP_BY_HOP, MANAGED_HEADERS, MANAGED_PREFIXES};

/// Request headers the gateway always removes from what it forwards (kept with
/// the other lists in `config::managed`).
pub use crate::config::managed::OWNED_REQUEST as GATEWAY_OWNED_REQUEST;

/// Whether two header names are the same name as any server could read them:
/// ASCII case ignored, and `_` equal to `-`.
pub fn same_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
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

    /// Marks for removal each header present in `headers` that is hop-by-hop (or named
    /// by `Connection`) or that `also` lists. Names are compared as
    /// [`same_name`] does, so `x_user_id` goes wherever `x-user-id` goes: servers in
    /// the CGI tradition read both as one variable (`HTTP_X_USER_ID`). Only present
    /// headers are listed, so applying the edits touches nothing else.
    pub fn remove_unwanted<S: AsRef<str>>(
        &mut self,
        headers: &(impl HeaderView + ?Sized),
        also: &[S],
    ) {
        let connection = headers.get("connection");
        let listed: Vec<&str> = connection.as_deref().map_or_else(Vec::new, |v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        });
        for name in headers.names() {
            let unwanted = HOP_BY_HOP.iter().any(|h| same_name(&name, h))
                || listed.iter().any(|h| same_name(&name, h))
                || also.iter().any(|h| same_name(&name, h.as_ref()));
            if unwanted && !self.remove.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
                self.remove.push(Cow::Owned(name));
            }
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
        let incoming = [
            ("Connection", "close, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("Keep-Alive", "5"),
            ("accept", "*/*"),
        ];
        let mut edits = HeaderEdits::default();
        edits.remove_unwanted(&incoming, &[] as &[&str]);
        assert_eq!(edits.remove, ["connection", "x-secret-hop", "keep-alive"]);
        let mut list: Vec<(String, String)> = incoming
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
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
    fn only_present_headers_are_removed() {
        let mut edits = HeaderEdits::default();
        edits.remove_unwanted(&[("accept", "*/*")], &["x-user-id", "x-forwarded-for"]);
        assert!(edits.remove.is_empty());
    }

    #[test]
    fn underscore_and_case_spellings_are_the_same_name() {
        let incoming = [
            ("X_User_Id", "forged"),
            ("x-user_id", "forged"),
            ("X_FORWARDED_FOR", "6.6.6.6"),
            ("transfer_encoding", "chunked"),
            ("x-user-idx", "kept"),
            ("x-user", "kept"),
        ];
        let mut edits = HeaderEdits::default();
        edits.remove_unwanted(&incoming, &["x-user-id", "x-forwarded-for"]);
        assert_eq!(
            edits.remove,
            [
                "x_user_id",
                "x-user_id",
                "x_forwarded_for",
                "transfer_encoding"
            ]
        );
        assert!(same_name("X_A-b", "x-a_B"));
        assert!(!same_name("x-a", "x-ab"));
        assert!(!same_name("x.a", "x-a"));
    }

    #[test]
    fn unsafe_values() {
        assert!(is_safe_value("abc def"));
        assert!(!is_safe_value("a\r\nb"));
        assert!(!is_safe_value("a\0b"));
        assert!(!is_safe_value(&"a".repeat(9000)));
    }
}
