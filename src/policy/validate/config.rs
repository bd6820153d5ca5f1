//! The `validate` policy's part of `routes.json`: its serde types and their checks.
//!
//! Compiled as part of `crate::config` (declared in `src/config/mod.rs`), so the
//! build script, which compiles `src/config/` on its own, validates it too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use serde_json::Value;

#[allow(unused_imports)]
use super::validate::*;
#[allow(unused_imports)]
use super::*;

/// Request validation: a request that fails gets 400 (415 for a body that is not
/// JSON) and is never sent upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRule {
    /// A JSON Schema (draft 2020-12) for the JSON request body of POST, PUT and PATCH
    /// requests (and of any request that carries a body): the path of a `.json`
    /// file relative to the routes file, embedded at build time, or the schema
    /// itself as an object. The route's `max_body_bytes` (default 1 MiB) bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodySchema>,
    /// Query parameters by name: their type, whether they are required, a pattern.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, QueryParam>,
}

/// Where a body schema is: a file, or inline (the build embeds files inline).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BodySchema {
    /// A path relative to the routes file (`schemas/create-user.json`).
    Path(String),
    /// The schema itself.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// One typed query parameter. Every occurrence of the parameter is checked, after
/// percent-decoding (`+` is a space); parameters not listed pass unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryParam {
    /// `integer` (an optional sign and digits), `number` (a JSON number),
    /// `boolean` (`true` or `false`) or `string` (default).
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// The request must carry the parameter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// An ECMA-262 regular expression the decoded value must match somewhere (as JSON
    /// Schema's `pattern`: anchor it with `^...$` to match the whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The type of a query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Integer,
    Number,
    Boolean,
    #[default]
    String,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::String => "string",
        }
    }
}

/// `validate`: a body schema path that can name a file beside the routes file (or
/// an inline schema that compiles), query parameters with names and patterns.
/// The files themselves are read and compiled by `config::schema::inline`.
pub(crate) fn check_validate(rule: &ValidateRule, subject: &str, problems: &mut Problems) {
    match &rule.body {
        Some(BodySchema::Path(p)) => {
            if p.is_empty() {
                problems.add(subject, "validate.body: the schema path must not be empty");
            } else if p.starts_with('/') || p.starts_with('\\') || p.contains("://") {
                problems.add(
                    subject,
                    format!("validate.body \"{p}\": must be a path relative to the routes file"),
                );
            }
        }
        Some(BodySchema::Inline(schema)) => {
            if let Err(e) = super::schema::compile(&Value::Object(schema.clone())) {
                problems.add(
                    subject,
                    format!("validate.body: not a valid JSON Schema: {e}"),
                );
            }
        }
        None => {}
    }
    for (name, param) in &rule.query {
        if name.is_empty() {
            problems.add(
                subject,
                "validate.query: a parameter name must not be empty",
            );
        }
        if let Some(pattern) = &param.pattern {
            if let Err(e) = super::schema::compile_pattern(pattern) {
                problems.add(subject, format!("validate.query \"{name}\": pattern {e}"));
            }
        }
    }
}
