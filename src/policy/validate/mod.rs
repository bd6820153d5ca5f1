//! `validate`: typed query parameters and a JSON Schema for the body.
//!
//! A request that fails is answered here and never goes upstream:
//!
//! - query parameters of the wrong type, missing when required, or not matching
//!   their pattern: 400 with an `errors` entry each, pointer `/query/NAME`;
//! - a body whose `content-type` is not JSON (`application/json`, or any
//!   `application/*+json`): 415, without reading it;
//! - a body over the route's `max_body_bytes` (default 1 MiB): 413;
//! - a JSON type whose body does not parse: 400, the pointer `""` (the whole body);
//! - a body the schema refuses: 400, one entry per error (at most 20), each a JSON
//!   pointer into the body (`/items/0/name`, `""` for the body itself).
//!
//! The schema is compiled once per isolate (`ValidatePolicy::new`, from
//! `Gateway::compile`); the body is read into memory up to the limit, validated,
//! and the same bytes are sent upstream.

pub mod phase;

use std::borrow::Cow;

use serde_json::Value;

use crate::config::schema::{self, Compiled, MAX_ERRORS};
use crate::config::{BodySchema, ParamType, ValidateRule};
use crate::http::problem::{FieldError, Kind, Problem};

/// One typed query parameter, compiled.
#[derive(Debug)]
pub struct QueryCheck {
    pub name: String,
    pub kind: ParamType,
    pub required: bool,
    pub pattern: Option<(String, Compiled)>,
}

/// A route's `validate`, compiled.
#[derive(Debug)]
pub struct ValidatePolicy {
    pub body: Option<Compiled>,
    pub query: Vec<QueryCheck>,
    /// The route's `max_body_bytes`: how much of the body is read into memory.
    pub max_body_bytes: u64,
}

impl ValidatePolicy {
    /// Compiles a rule; `None` when it checks nothing (`"validate": {}` turns
    /// the top level's off for a route). A body given as a path must have been
    /// inlined (`config::schema::inline`, which the build does).
    pub fn new(rule: &ValidateRule, max_body_bytes: u64) -> Result<Option<ValidatePolicy>, String> {
        let body = match &rule.body {
            None => None,
            Some(BodySchema::Inline(s)) => Some(
                schema::compile(&Value::Object(s.clone()))
                    .map_err(|e| format!("body: not a valid JSON Schema: {e}"))?,
            ),
            Some(BodySchema::Path(p)) => {
                return Err(format!(
                    "body \"{p}\": the schema file was not read (it is embedded by the build and by `gateway check`)"
                ))
            }
        };
        let query = rule
            .query
            .iter()
            .map(|(name, q)| {
                if name.is_empty() {
                    return Err("query: a parameter name must not be empty".to_string());
                }
                let pattern = q
                    .pattern
                    .as_ref()
                    .map(|p| {
                        schema::compile_pattern(p)
                            .map(|c| (p.clone(), c))
                            .map_err(|e| format!("query \"{name}\": pattern {e}"))
                    })
                    .transpose()?;
                Ok(QueryCheck {
                    name: name.clone(),
                    kind: q.kind,
                    required: q.required,
                    pattern,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if body.is_none() && query.is_empty() {
            return Ok(None);
        }
        Ok(Some(ValidatePolicy {
            body,
            query,
            max_body_bytes,
        }))
    }

    /// The query string's errors (empty: it passes).
    pub fn query_errors(&self, query: Option<&str>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.query.is_empty() {
            return errors;
        }
        let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = match query {
            Some(q) => url::form_urlencoded::parse(q.as_bytes()).collect(),
            None => Vec::new(),
        };
        for check in &self.query {
            let pointer = format!("/query/{}", escape_pointer(&check.name));
            let mut seen = false;
            for (_, value) in pairs.iter().filter(|(n, _)| *n == check.name) {
                seen = true;
                if let Some(detail) = check.problem(value) {
                    errors.push(FieldError {
                        pointer: pointer.clone(),
                        detail,
                    });
                }
            }
            if !seen && check.required {
                errors.push(FieldError {
                    pointer,
                    detail: format!("the query parameter \"{}\" is required", check.name),
                });
            }
        }
        errors.truncate(MAX_ERRORS);
        errors
    }

    /// Whether the request's body is validated: POST, PUT and PATCH requests, and
    /// any other request that carries a body, on a route with a body schema.
    pub fn checks_body(&self, method: &str, has_body: bool) -> bool {
        self.body.is_some() && (has_body || matches!(method, "POST" | "PUT" | "PATCH"))
    }

    /// The verdict on a body read whole: `Ok` to send it upstream as it is.
    pub fn check_body(&self, bytes: &[u8]) -> Result<(), Problem> {
        let Some(schema) = &self.body else {
            return Ok(());
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            let detail = if bytes.iter().all(u8::is_ascii_whitespace) {
                "the request body is empty; this route expects a JSON body".to_string()
            } else {
                format!("the request body is not valid JSON: {e}")
            };
            Problem::new(Kind::BadRequest, "the request body is not valid JSON").with_errors(vec![
                FieldError {
                    pointer: String::new(),
                    detail,
                },
            ])
        })?;
        let errors = schema.errors(&value);
        if errors.is_empty() {
            return Ok(());
        }
        Err(invalid(
            "the request body does not match this route's schema",
            errors
                .into_iter()
                .map(|(pointer, detail)| FieldError { pointer, detail })
                .collect(),
        ))
    }
}

impl QueryCheck {
    /// What is wrong with one (decoded) value, if anything.
    fn problem(&self, value: &str) -> Option<String> {
        let typed = match self.kind {
            ParamType::String => true,
            ParamType::Integer => is_integer(value),
            ParamType::Number => is_number(value),
            ParamType::Boolean => matches!(value, "true" | "false"),
        };
        if !typed {
            return Some(format!(
                "\"{}\" is not {}",
                shorten(value),
                match self.kind {
                    ParamType::Integer => "an integer",
                    ParamType::Number => "a number",
                    ParamType::Boolean => "a boolean (true or false)",
                    ParamType::String => "a string",
                }
            ));
        }
        match &self.pattern {
            Some((p, compiled)) if !compiled.is_valid(&Value::String(value.to_string())) => Some(
                format!("\"{}\" does not match the pattern \"{p}\"", shorten(value)),
            ),
            _ => None,
        }
    }
}

/// A 400 listing what is wrong.
pub fn invalid(detail: &'static str, errors: Vec<FieldError>) -> Problem {
    Problem::new(Kind::BadRequest, detail).with_errors(errors)
}

/// 415: the body is not declared as JSON.
pub fn not_json_type(content_type: Option<&str>) -> Problem {
    Problem::new(
        Kind::UnsupportedMediaType,
        match content_type {
            None => {
                "this route expects a JSON body (content-type: application/json); none was declared"
                    .to_string()
            }
            Some(t) => format!(
                "this route expects a JSON body (content-type: application/json), not \"{}\"",
                shorten(t)
            ),
        },
    )
}

/// Whether a `content-type` is JSON: `application/json` or `application/*+json`,
/// any case, with or without parameters.
pub fn is_json_type(content_type: Option<&str>) -> bool {
    let Some(t) = content_type else {
        return false;
    };
    let essence = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json"
        || subtype
            .strip_suffix("+json")
            .is_some_and(|s| !s.is_empty() && !s.contains('/'))
}

/// An optional sign and digits.
fn is_integer(v: &str) -> bool {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A JSON number (an optional `+` too), finite.
fn is_number(v: &str) -> bool {
    let unsigned = v.strip_prefix('+').unwrap_or(v);
    if (unsigned.starts_with('-') && v.starts_with('+'))
        || !unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return false;
    }
    serde_json::from_str::<serde_json::Number>(unsigned).is_ok()
}

/// RFC 6901: `~` as `~0`, `/` as `~1`.
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A client value quoted in a detail: at most 64 characters.
fn shorten(v: &str) -> String {
    if v.chars().count() > 64 {
        v.chars().take(64).collect::<String>() + "..."
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueryParam;
    use serde_json::json;

    fn policy(body: Option<Value>, query: &[(&str, QueryParam)]) -> ValidatePolicy {
        let rule = ValidateRule {
            body: body.map(|b| match b {
                Value::Object(o) => BodySchema::Inline(o),
                _ => panic!("an object"),
            }),
            query: query
                .iter()
                .map(|(n, q)| (n.to_string(), q.clone()))
                .collect(),
        };
        ValidatePolicy::new(&rule, 1000).unwrap().unwrap()
    }

    fn param(kind: ParamType, required: bool, pattern: Option<&str>) -> QueryParam {
        QueryParam {
            kind,
            required,
            pattern: pattern.map(str::to_string),
        }
    }

    #[test]
    fn json_types() {
        for t in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
            "application/vnd.api+json ;x=1",
        ] {
            assert!(is_json_type(Some(t)), "{t}");
        }
        for t in [
            "text/json",
            "application/jsonx",
            "application/+json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!is_json_type(Some(t)), "{t}");
        }
        assert!(!is_json_type(None));
    }

    #[test]
    fn query_types_required_and_patterns() {
        let p = policy(
            None,
            &[
                ("limit", param(ParamType::Integer, true, None)),
                ("ratio", param(ParamType::Number, false, None)),
                ("full", param(ParamType::Boolean, false, None)),
                (
                    "sort",
                    param(ParamType::String, false, Some("^(name|date)$")),
                ),
                ("a/b", param(ParamType::Integer, false, None)),
            ],
        );
        assert!(p.query_errors(Some("limit=10")).is_empty());
        assert!(p
            .query_errors(Some("limit=-3&ratio=1.5e3&full=true&sort=name&other=x"))
            .is_empty());
        assert!(p.query_errors(Some("limit=%2B7&sort=d%61te")).is_empty());
        let e = p.query_errors(None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].pointer, "/query/limit");
        assert!(e[0].detail.contains("required"));
        let e = p.query_errors(Some(
            "limit=1&limit=x&ratio=NaN&full=yes&sort=size&a%2Fb=1.5",
        ));
        let pointers: Vec<&str> = e.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/query/a~1b",
                "/query/full",
                "/query/limit",
                "/query/ratio",
                "/query/sort"
            ]
        );
        assert!(e[2].detail.contains("\"x\" is not an integer"), "{e:?}");
        assert!(e[4].detail.contains("pattern"), "{e:?}");
        // An empty value is present but not an integer.
        assert_eq!(p.query_errors(Some("limit=")).len(), 1);
        assert_eq!(p.query_errors(Some("limit")).len(), 1);
    }

    #[test]
    fn numbers_and_integers() {
        for v in ["0", "-1", "+5", "123456789012345678901234567890"] {
            assert!(is_integer(v), "{v}");
        }
        for v in ["", "-", "1.0", "1e3", " 1", "0x10"] {
            assert!(!is_integer(v), "{v}");
        }
        for v in ["0", "-1.5", "+2", "1e-3", "10E+2"] {
            assert!(is_number(v), "{v}");
        }
        for v in ["", "NaN", "Infinity", ".5", "1.", "+-1", "--1", "1 "] {
            assert!(!is_number(v), "{v}");
        }
    }

    #[test]
    fn bodies() {
        let p = policy(
            Some(json!({
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}
            })),
            &[],
        );
        assert!(p.checks_body("POST", false));
        assert!(p.checks_body("PATCH", false));
        assert!(!p.checks_body("GET", false));
        assert!(p.checks_body("DELETE", true));
        assert!(p.check_body(br#"{"name": "a", "age": 3}"#).is_ok());
        let e = p.check_body(br#"{"age": -1}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        let pointers: Vec<&str> = e.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&""), "{e:?}");
        assert!(pointers.contains(&"/age"), "{e:?}");
        let e = p.check_body(b"{\"name\": ").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.errors[0].pointer, "");
        assert!(e.errors[0].detail.contains("not valid JSON"), "{e:?}");
        let e = p.check_body(b"").unwrap_err();
        assert!(e.errors[0].detail.contains("empty"), "{e:?}");
        assert_eq!(not_json_type(Some("text/plain")).status(), 415);
        assert_eq!(not_json_type(None).status(), 415);
    }

    #[test]
    fn an_empty_rule_checks_nothing_and_paths_must_be_inlined() {
        assert!(ValidatePolicy::new(&ValidateRule::default(), 10)
            .unwrap()
            .is_none());
        let rule = ValidateRule {
            body: Some(BodySchema::Path("schemas/x.json".into())),
            ..ValidateRule::default()
        };
        assert!(ValidatePolicy::new(&rule, 10)
            .unwrap_err()
            .contains("schemas/x.json"));
        // As the file check says (found by the fuzz target).
        let rule = ValidateRule {
            query: [(String::new(), QueryParam::default())].into(),
            ..ValidateRule::default()
        };
        assert!(ValidatePolicy::new(&rule, 10)
            .unwrap_err()
            .contains("must not be empty"));
    }
}
