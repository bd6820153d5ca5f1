//! `query`: edits of the upstream query string. `remove` drops every occurrence of a
//! parameter; `set` drops every occurrence and adds `name=value` at the end. A
//! parameter's name is compared after form decoding (`%61` and `a` are one name, `+`
//! is a space); every parameter the rules do not name passes byte for byte, in order.

use std::borrow::Cow;

use crate::config::path::{parse_value_template, RewritePart};
use crate::config::QueryRules;

/// A compiled query rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPolicy {
    /// Names to set, form-encoded, with their value templates.
    set: Vec<(String, String, Vec<RewritePart>)>,
    /// Every decoded name this policy touches.
    names: Vec<String>,
}

/// Characters kept as they are in a query component; everything else is percent-encoded.
fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b)
}

/// Percent-encodes `text` into `out`. With `keep_escapes`, a `%` that starts an
/// escape (two hex digits) is kept as it is; any other `%` is encoded, so that a broken
/// escape cannot join the text after it (`%2` then `0` spelling `%20`).
fn encode_into(out: &mut String, text: &str, keep_escapes: bool) {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if keep(b) || (keep_escapes && escape) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The decoded name of one `name=value` piece.
fn decoded_name(piece: &str) -> Cow<'_, str> {
    let name = piece.split_once('=').map_or(piece, |(n, _)| n);
    if !name.contains(['%', '+']) {
        return Cow::Borrowed(name);
    }
    url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(n, _)| Cow::Owned(n.into_owned()))
        .unwrap_or(Cow::Borrowed(""))
}

impl QueryPolicy {
    /// Compiles validated rules for a route with these path parameters; `None` when empty.
    pub fn new(rules: &QueryRules, params: &[String]) -> Result<Option<QueryPolicy>, String> {
        let set = rules
            .set
            .iter()
            .map(|(name, value)| {
                let mut encoded = String::new();
                encode_into(&mut encoded, name, false);
                parse_value_template(value, params)
                    .map(|t| (name.clone(), encoded, t))
                    .map_err(|e| format!("\"{name}\": \"{value}\" {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let names: Vec<String> = rules
            .remove
            .iter()
            .cloned()
            .chain(set.iter().map(|(n, _, _)| n.clone()))
            .collect();
        Ok((!names.is_empty()).then_some(QueryPolicy { set, names }))
    }

    /// The upstream query string (without `?`) for the client's `query`; `None` for none.
    /// `params` are the matched path parameters, still percent-encoded as in the path.
    pub fn apply<'q>(&self, query: Option<&'q str>, params: &[&str]) -> Option<Cow<'q, str>> {
        let mut kept: Vec<&str> = Vec::new();
        let mut changed = !self.set.is_empty();
        for piece in query.into_iter().flat_map(|q| q.split('&')) {
            if !piece.is_empty() && self.names.iter().any(|n| *n == decoded_name(piece)) {
                changed = true;
            } else {
                kept.push(piece);
            }
        }
        if !changed {
            return query.map(Cow::Borrowed);
        }
        let mut out = kept.join("&");
        for (_, name, template) in &self.set {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            for part in template {
                match part {
                    RewritePart::Literal(s) => encode_into(&mut out, s, false),
                    RewritePart::Param(i) => {
                        encode_into(&mut out, params.get(*i).copied().unwrap_or(""), true)
                    }
                }
            }
        }
        (!out.is_empty()).then_some(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(set: &[(&str, &str)], remove: &[&str]) -> QueryPolicy {
        let rules = QueryRules {
            set: set
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|n| n.to_string()).collect(),
        };
        QueryPolicy::new(&rules, &["id".to_string()])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn other_parameters_pass_byte_for_byte() {
        let p = policy(&[("v", "2")], &["debug"]);
        let q = "a=1&a=2&b=%20x%2Fy&debug=1&c=%E2%9C%93&d=&e=a+b&f&g=%25&h=%3D%26%3F&A=1";
        assert_eq!(
            p.apply(Some(q), &[]).unwrap(),
            "a=1&a=2&b=%20x%2Fy&c=%E2%9C%93&d=&e=a+b&f&g=%25&h=%3D%26%3F&A=1&v=2"
        );
        // Empty pieces are kept too.
        assert_eq!(p.apply(Some("a&&b"), &[]).unwrap(), "a&&b&v=2");
        assert_eq!(p.apply(Some("&a"), &[]).unwrap(), "&a&v=2");
    }

    #[test]
    fn set_replaces_every_occurrence_in_any_spelling() {
        let p = policy(&[("page size", "10")], &["token"]);
        assert_eq!(
            p.apply(Some("page+size=99&x=1&page%20size=5&%74oken=s&token"), &[])
                .unwrap(),
            "x=1&page%20size=10"
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        let p = policy(&[], &["debug"]);
        assert_eq!(p.apply(Some("Debug=1&debug=2"), &[]).unwrap(), "Debug=1");
    }

    #[test]
    fn removing_everything_leaves_no_query_and_untouched_queries_are_borrowed() {
        let p = policy(&[], &["debug"]);
        assert_eq!(p.apply(Some("debug=1&debug"), &[]), None);
        assert!(matches!(
            p.apply(Some("x=1"), &[]),
            Some(Cow::Borrowed("x=1"))
        ));
        assert_eq!(p.apply(None, &[]), None);
    }

    // Found by the `edits` fuzz target: a parameter's broken escape was kept and
    // completed by the literal after it, so `{id}0` with `id` = `%2` sent a space.
    #[test]
    fn a_broken_escape_in_a_parameter_is_encoded() {
        let p = policy(&[("x", "{id}0")], &[]);
        assert_eq!(p.apply(None, &["%2"]).unwrap(), "x=%2520");
        assert_eq!(p.apply(None, &["%zz%"]).unwrap(), "x=%25zz%250");
        assert_eq!(p.apply(None, &["%4a%20"]).unwrap(), "x=%4a%200");
    }

    #[test]
    fn values_are_encoded_and_params_keep_their_escapes() {
        let p = policy(&[("user", "u {id}&x=y+z")], &[]);
        assert_eq!(
            p.apply(None, &["a%20b+c&d=e"]).unwrap(),
            "user=u%20a%20b%2Bc%26d%3De%26x%3Dy%2Bz"
        );
    }
}
