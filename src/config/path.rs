//! Route path templates (matchit syntax) and rewrite templates.

/// A parsed route path: the matchit pattern with parameters renamed by position
/// (`{p0}`, `{*p1}`), so routes that differ only in parameter names share one
/// matchit entry, and the route's own parameter names in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub canonical: String,
    pub params: Vec<String>,
    pub catch_all: bool,
}

/// One piece of a rewrite template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewritePart {
    Literal(String),
    /// Index into the route's parameters.
    Param(usize),
}

fn valid_param_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a route path in matchit syntax.
pub fn parse_path(path: &str) -> Result<PathTemplate, String> {
    if !path.starts_with('/') {
        return Err("must start with \"/\"".into());
    }
    if path.contains('?') || path.contains('#') {
        return Err("must not contain \"?\" or \"#\"".into());
    }
    let mut canonical = String::with_capacity(path.len());
    let mut params: Vec<String> = Vec::new();
    let mut catch_all = false;
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                canonical.push_str("{{");
                i += 2;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                canonical.push_str("}}");
                i += 2;
            }
            b'{' => {
                if catch_all {
                    return Err("a catch-all parameter must be the last part".into());
                }
                let end = path[i..]
                    .find('}')
                    .map(|e| i + e)
                    .ok_or_else(|| "unclosed \"{\"".to_string())?;
                let inner = &path[i + 1..end];
                let (star, name) = match inner.strip_prefix('*') {
                    Some(n) => (true, n),
                    None => (false, inner),
                };
                if !valid_param_name(name) {
                    return Err(format!(
                        "parameter \"{{{inner}}}\" must be a name of letters, digits and \"_\""
                    ));
                }
                if params.iter().any(|p| p == name) {
                    return Err(format!("parameter \"{name}\" appears twice"));
                }
                if star {
                    if !canonical.ends_with('/') || end + 1 != path.len() {
                        return Err(format!(
                            "catch-all \"{{*{name}}}\" must be a whole last segment"
                        ));
                    }
                    catch_all = true;
                    canonical.push_str(&format!("{{*p{}}}", params.len()));
                } else {
                    canonical.push_str(&format!("{{p{}}}", params.len()));
                }
                params.push(name.to_string());
                i = end + 1;
            }
            b'}' => return Err("unmatched \"}\"".into()),
            _ => {
                let next = path[i..]
                    .find(['{', '}'])
                    .map(|e| i + e)
                    .unwrap_or(path.len());
                canonical.push_str(&path[i..next]);
                i = next;
            }
        }
    }
    Ok(PathTemplate {
        canonical,
        params,
        catch_all,
    })
}

/// Parses a rewrite template against the route's parameters.
pub fn parse_rewrite(template: &str, params: &[String]) -> Result<Vec<RewritePart>, String> {
    if !template.starts_with('/') {
        return Err("must start with \"/\"".into());
    }
    if template.contains(['?', '#']) {
        return Err("must not contain \"?\" or \"#\" (the query string is passed through)".into());
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "unclosed \"{\"".to_string())?;
        let name = after[..close].trim_start_matches('*');
        let index = params
            .iter()
            .position(|p| p == name)
            .ok_or_else(|| format!("uses parameter \"{name}\" that the path does not define"))?;
        if !literal.is_empty() {
            parts.push(RewritePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(RewritePart::Param(index));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("unmatched \"}\"".into());
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(RewritePart::Literal(literal));
    }
    Ok(parts)
}

/// Parses a header or query value template: literal text with the route's parameters
/// as `{name}`; `{{` and `}}` are literal braces.
pub fn parse_value_template(template: &str, params: &[String]) -> Result<Vec<RewritePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let rest = &template[i + 1..];
                let close = rest.find('}').ok_or_else(|| {
                    "unclosed \"{\" (write \"{{\" for a literal brace)".to_string()
                })?;
                let name = &rest[..close];
                let index = params.iter().position(|p| p == name).ok_or_else(|| {
                    format!("uses parameter \"{name}\" that the path does not define")
                })?;
                if !literal.is_empty() {
                    parts.push(RewritePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(RewritePart::Param(index));
                for _ in 0..rest[..=close].chars().count() {
                    chars.next();
                }
            }
            '}' => return Err("unmatched \"}\" (write \"}}\" for a literal brace)".into()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(RewritePart::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_params_by_position() {
        let t = parse_path("/api/users/{id}/files/{*rest}").unwrap();
        assert_eq!(t.canonical, "/api/users/{p0}/files/{*p1}");
        assert_eq!(t.params, vec!["id", "rest"]);
        assert!(t.catch_all);
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(parse_path("api").is_err());
        assert!(parse_path("/a/{id").is_err());
        assert!(parse_path("/a/{}").is_err());
        assert!(parse_path("/a/{*rest}/b").is_err());
        assert!(parse_path("/a/{id}/{id}").is_err());
        assert!(parse_path("/a/x{*rest}").is_err());
        assert!(parse_path("/a?x=1").is_err());
    }

    #[test]
    fn rewrite_refers_to_params() {
        let params = vec!["id".to_string(), "rest".to_string()];
        assert_eq!(
            parse_rewrite("/v1/{id}/{rest}", &params).unwrap(),
            vec![
                RewritePart::Literal("/v1/".into()),
                RewritePart::Param(0),
                RewritePart::Literal("/".into()),
                RewritePart::Param(1)
            ]
        );
        let err = parse_rewrite("/v1/{idx}", &params).unwrap_err();
        assert!(err.contains("\"idx\""), "{err}");
    }

    #[test]
    fn value_templates() {
        let params = vec!["id".to_string(), "rest".to_string()];
        assert_eq!(
            parse_value_template("user-{id}", &params).unwrap(),
            vec![RewritePart::Literal("user-".into()), RewritePart::Param(0)]
        );
        assert_eq!(
            parse_value_template("{{\"a\": {rest}}}", &params).unwrap(),
            vec![
                RewritePart::Literal("{\"a\": ".into()),
                RewritePart::Param(1),
                RewritePart::Literal("}".into())
            ]
        );
        assert_eq!(parse_value_template("", &params).unwrap(), vec![]);
        assert!(parse_value_template("{nope}", &params)
            .unwrap_err()
            .contains("\"nope\""));
        assert!(parse_value_template("{id", &params).is_err());
        assert!(parse_value_template("a}b", &params).is_err());
    }
}
