//! `request_headers` and `response_headers`: header edits applied after the gateway's
//! own header rules, on the upstream request and on the origin's response.
//!
//! `remove` first, then `set` (a set replaces every value the header had). A name
//! matches every spelling a server could read as it (case, and `_` for `-`), so a
//! client cannot slip `x_api_key` past a removal of `x-api-key`. Values are templates
//! over the route's path parameters (`{id}`). The headers the gateway manages cannot
//! be named here (validation refuses them), so an edit never undoes the gateway's own.

use crate::config::path::{parse_value_template, RewritePart};
use crate::config::HeaderRules;
use crate::http::headers::{is_safe_value, HeaderEdits};
use crate::http::HeaderView;

/// A compiled header rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Lower-cased names to set, with their value templates.
    set: Vec<(String, Vec<RewritePart>)>,
    /// Every name this policy touches (removed and set), lower-cased: present spellings
    /// of them are removed first.
    names: Vec<String>,
}

/// Fills a value template with the matched path parameters.
pub fn render(template: &[RewritePart], params: &[&str]) -> String {
    let mut out = String::new();
    for part in template {
        match part {
            RewritePart::Literal(s) => out.push_str(s),
            RewritePart::Param(i) => out.push_str(params.get(*i).copied().unwrap_or("")),
        }
    }
    out
}

impl HeaderPolicy {
    /// Compiles validated rules for a route with these path parameters; `None` when empty.
    pub fn new(rules: &HeaderRules, params: &[String]) -> Result<Option<HeaderPolicy>, String> {
        let set = rules
            .set
            .iter()
            .map(|(name, value)| {
                parse_value_template(value, params)
                    .map(|t| (name.to_ascii_lowercase(), t))
                    .map_err(|e| format!("\"{name}\": \"{value}\" {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let names: Vec<String> = rules
            .remove
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .chain(set.iter().map(|(n, _)| n.clone()))
            .collect();
        Ok((!names.is_empty()).then_some(HeaderPolicy { set, names }))
    }

    /// Adds this policy's edits, after those already in `edits`, for a message whose
    /// headers are `headers`.
    pub fn edit(
        &self,
        headers: &(impl HeaderView + ?Sized),
        params: &[&str],
        edits: &mut HeaderEdits,
    ) {
        edits.remove_unwanted(headers, &self.names);
        for (name, template) in &self.set {
            let value = render(template, params);
            // Path parameters never carry CR or LF; an overlong value is not sent.
            if is_safe_value(&value) {
                edits.set(name.clone(), value);
            } else {
                edits.remove(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(set: &[(&str, &str)], remove: &[&str], params: &[&str]) -> HeaderPolicy {
        let rules = HeaderRules {
            set: set
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|n| n.to_string()).collect(),
        };
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        HeaderPolicy::new(&rules, &params).unwrap().unwrap()
    }

    fn apply(incoming: &[(&str, &str)], edits: &HeaderEdits) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = incoming
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        edits.apply_to(&mut list);
        list
    }

    #[test]
    fn set_replaces_every_spelling_and_remove_drops_them() {
        let p = policy(
            &[("X-Api-Version", "2"), ("x-tenant", "t-{id}")],
            &["Cookie", "x-api-key"],
            &["id"],
        );
        let incoming = [
            ("x-api-version", "1"),
            ("X_Api_Version", "1"),
            ("cookie", "a=b"),
            ("x_api_key", "secret"),
            ("accept", "*/*"),
        ];
        let mut edits = HeaderEdits::default();
        p.edit(&incoming, &["42"], &mut edits);
        assert_eq!(
            apply(&incoming, &edits),
            vec![
                ("accept".to_string(), "*/*".to_string()),
                ("x-api-version".to_string(), "2".to_string()),
                ("x-tenant".to_string(), "t-42".to_string()),
            ]
        );
    }

    #[test]
    fn edits_come_after_the_gateways_own_and_keep_them() {
        // The gateway's own rules: strip a forged header, set x-request-id.
        let incoming = [
            ("x-request-id", "forged"),
            ("x-user-id", "forged"),
            ("x-a", "1"),
        ];
        let mut edits = HeaderEdits::default();
        edits.remove_unwanted(&incoming, &["x-user-id"]);
        edits.set("x-request-id", "rid-1");
        policy(&[("x-a", "2")], &[], &[]).edit(&incoming, &[], &mut edits);
        assert_eq!(
            apply(&incoming, &edits),
            vec![
                ("x-request-id".to_string(), "rid-1".to_string()),
                ("x-a".to_string(), "2".to_string()),
            ]
        );
    }

    #[test]
    fn an_unsafe_rendered_value_is_not_sent() {
        let p = policy(&[("x-p", "{id}")], &[], &["id"]);
        let mut edits = HeaderEdits::default();
        p.edit(&[("x-p", "old")], &["a\r\nb"], &mut edits);
        assert_eq!(apply(&[("x-p", "old")], &edits), vec![]);
    }

    #[test]
    fn empty_rules_are_no_policy() {
        assert_eq!(
            HeaderPolicy::new(&HeaderRules::default(), &[]).unwrap(),
            None
        );
    }
}
