//! JSON Schemas of `validate`: compiling them (once: at build time to refuse a
//! file, once per isolate to run them) and validating instances, over the `boon`
//! crate (draft 2020-12 by default; a schema's `$schema` may name an older draft).
//!
//! Nothing is ever fetched: references resolve inside the schema itself and to
//! the JSON Schema metaschemas boon carries; any other URL (`http:`, `file:`) is a
//! compile error. Format assertions are off, as draft 2020-12 says by default
//! (`format` is an annotation).
//!
//! The same functions serve the Worker, the build script, `gateway check` and the
//! official test suite's run (`tests/json_schema_suite.rs`).

use std::fmt;

use serde_json::{Map, Value};

use super::validate::Problem;
use super::{BodySchema, RoutesFile, ValidateRule};

/// The base URL a schema is compiled under. It is never fetched: it only gives
/// `$ref`s inside the schema (`#/$defs/x`) a base.
const BASE: &str = "https://edge-gateway.invalid/schema.json";

/// At most this many errors are reported for one instance.
pub const MAX_ERRORS: usize = 20;

/// Longest detail of one error, in characters.
const MAX_DETAIL: usize = 300;

/// Refuses every URL: no schema is loaded from anywhere at run or build time.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("\"{url}\" is not loaded: only references inside the schema resolve").into())
    }
}

/// A compiled schema, ready to validate instances.
pub struct Compiled {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Compiled(schema)")
    }
}

/// Compiles a schema (draft 2020-12 unless its `$schema` says otherwise).
///
/// boon 0.6 panics ("encountered bug in jsonschema compiler") on a `pattern` its
/// metaschema check accepts but the `regex` crate refuses (`\\porp`, read as a
/// Unicode property): that panic is caught and is a compile error here. Schemas
/// are compiled natively first (the build script, `gateway check`), where panics
/// unwind, so no such schema reaches the Worker (whose panics abort).
pub fn compile(schema: &Value) -> Result<Compiled, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compile_unguarded(schema)))
        .unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the validator failed");
            let text = text.replace(
                "encountered bug in jsonschema compiler. please report: ",
                "",
            );
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Err(lines.join(" "))
        })
}

fn compile_unguarded(schema: &Value) -> Result<Compiled, String> {
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V2020_12);
    compiler.use_loader(Box::new(NoLoader));
    compiler
        .add_resource(BASE, schema.clone())
        .map_err(|e| describe(&e))?;
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile(BASE, &mut schemas)
        .map_err(|e| describe(&e))?;
    Ok(Compiled { schemas, index })
}

/// A compile error in one line, without the internal base URL.
fn describe(e: &boon::CompileError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    let text = text
        .replace(&format!("{BASE}#"), "#")
        .replace(BASE, "the schema");
    // One line: the regex parser draws its error over several.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

impl Compiled {
    /// Whether the instance is valid.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.schemas.validate(instance, self.index).is_ok()
    }

    /// What is wrong with the instance: (JSON pointer into it, detail), at most
    /// [`MAX_ERRORS`], the innermost errors first found; empty when it is valid.
    pub fn errors(&self, instance: &Value) -> Vec<(String, String)> {
        let Err(error) = self.schemas.validate(instance, self.index) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        leaves(&error, &mut out);
        if out.is_empty() {
            out.push((error.instance_location.to_string(), error.kind.to_string()));
        }
        for (_, detail) in &mut out {
            if detail.chars().count() > MAX_DETAIL {
                *detail = detail.chars().take(MAX_DETAIL).collect::<String>() + "...";
            }
        }
        out.dedup();
        out.truncate(MAX_ERRORS);
        out
    }
}

/// The errors without causes: each names one keyword at one place.
fn leaves(e: &boon::ValidationError<'_, '_>, out: &mut Vec<(String, String)>) {
    if out.len() >= MAX_ERRORS {
        return;
    }
    if e.causes.is_empty() {
        out.push((e.instance_location.to_string(), e.kind.to_string()));
    }
    for cause in &e.causes {
        leaves(cause, out);
    }
}

/// Compiles a query parameter's `pattern` (an ECMA-262 regular expression, as JSON
/// Schema's `pattern` keyword).
pub fn compile_pattern(pattern: &str) -> Result<Compiled, String> {
    compile(&serde_json::json!({ "pattern": pattern })).map_err(|e| {
        // boon names the keyword's place; the caller names the parameter.
        format!("\"{pattern}\" is not an ECMA-262 regular expression ({e})")
    })
}

/// The schema objects of a file's `validate.body` entries, each with the subject
/// that names it (`file`, `route "x"`).
fn bodies_mut(file: &mut RoutesFile) -> Vec<(String, &mut BodySchema)> {
    let mut out = Vec::new();
    if let Some(ValidateRule { body: Some(b), .. }) = file.validate.as_mut() {
        out.push(("file".to_string(), b));
    }
    for r in &mut file.routes {
        let subject = format!("route \"{}\"", r.id);
        if let Some(ValidateRule { body: Some(b), .. }) = r.validate.as_mut() {
            out.push((subject, b));
        }
    }
    out
}

/// Replaces every `validate.body` path with the schema it names, read by `read`
/// (a path relative to the routes file -> its text), and checks that each
/// compiles. Every problem is reported, naming the route and the file.
pub fn inline(
    file: &mut RoutesFile,
    read: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    for (subject, body) in bodies_mut(file) {
        let BodySchema::Path(path) = &*body else {
            continue;
        };
        let path = path.clone();
        let problem = |message: String| Problem {
            subject: subject.clone(),
            message: format!("validate.body \"{path}\": {message}"),
        };
        let text = match read(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(format!("cannot be read: {e}")));
                continue;
            }
        };
        let schema: Map<String, Value> = match serde_json::from_str(&text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.push(problem("a schema file must hold a JSON object".into()));
                continue;
            }
            Err(e) => {
                problems.push(problem(format!("not valid JSON: {e}")));
                continue;
            }
        };
        if let Err(e) = compile(&Value::Object(schema.clone())) {
            problems.push(problem(format!("not a valid JSON Schema: {e}")));
            continue;
        }
        *body = BodySchema::Inline(schema);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// [`inline`] reading files relative to `dir` (the routes file's directory).
pub fn inline_from_dir(file: &mut RoutesFile, dir: &std::path::Path) -> Result<(), Vec<Problem>> {
    inline(file, &mut |p| {
        std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
    })
}

/// The embedded form of a routes file: its text without formatting, every
/// `validate.body` path replaced by the schema `file` (already inlined) holds.
pub fn embedded_text(text: &str, file: &RoutesFile) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let inline_of = |v: &Option<ValidateRule>| match v {
        Some(ValidateRule {
            body: Some(BodySchema::Inline(s)),
            ..
        }) => Some(Value::Object(s.clone())),
        _ => None,
    };
    if let Some(schema) = inline_of(&file.validate) {
        value["validate"]["body"] = schema;
    }
    if let Some(routes) = value.get_mut("routes").and_then(Value::as_array_mut) {
        for (item, route) in routes.iter_mut().zip(&file.routes) {
            if let Some(schema) = inline_of(&route.validate) {
                item["validate"]["body"] = schema;
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_point_into_the_instance() {
        let s = compile(&json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "additionalProperties": false
        }))
        .unwrap();
        assert!(s.is_valid(&json!({"name": "a", "tags": ["x"]})));
        assert!(s.errors(&json!({"name": "a"})).is_empty());
        let errors = s.errors(&json!({"tags": ["x", 2], "extra": 1}));
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert!(pointers.contains(&""), "{errors:?}");
        assert!(pointers.contains(&"/tags/1"), "{errors:?}");
        let missing = errors.iter().find(|(p, _)| p.is_empty()).unwrap();
        assert!(
            errors.iter().any(|(_, d)| d.contains("name")),
            "{missing:?} {errors:?}"
        );
        // Pointers escape `~` and `/` (RFC 6901).
        let s = compile(&json!({"properties": {"a/b~c": {"type": "integer"}}})).unwrap();
        assert_eq!(s.errors(&json!({"a/b~c": "x"}))[0].0, "/a~1b~0c");
    }

    #[test]
    fn at_most_twenty_errors() {
        let s = compile(&json!({"type": "array", "items": {"type": "integer"}})).unwrap();
        let many: Vec<Value> = (0..50).map(|i| json!(format!("{i}"))).collect();
        let errors = s.errors(&Value::Array(many));
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[0].0, "/0");
    }

    #[test]
    fn broken_schemas_and_remote_references_do_not_compile() {
        for (schema, needle) in [
            (json!({"type": "strnig"}), "type"),
            (json!({"pattern": "("}), "pattern"),
            (json!({"$ref": "#/$defs/missing"}), "missing"),
            (json!({"$ref": "http://127.0.0.1:9/s.json"}), "not loaded"),
            (json!({"$ref": "file:///etc/passwd"}), "not loaded"),
            (json!({"$ref": "other.json"}), "not loaded"),
            (json!({"minimum": "1"}), "minimum"),
        ] {
            let e = compile(&schema).unwrap_err();
            assert!(e.contains(needle), "{schema}: {e}");
            assert!(!e.contains(BASE), "{e}");
        }
        // The metaschemas are known without fetching them.
        compile(&json!({"$schema": "https://json-schema.org/draft/2020-12/schema"})).unwrap();
        compile(&json!({"$schema": "http://json-schema.org/draft-07/schema#"})).unwrap();
    }

    #[test]
    fn a_pattern_the_validator_chokes_on_is_an_error_not_a_panic() {
        // Found by the `validate` fuzz target: boon panicked on it.
        let e = compile(&json!({"pattern": "^[E-z]+\\porpertiesd{2}$"})).unwrap_err();
        assert!(e.contains("Unicode property not found"), "{e}");
        assert!(compile_pattern("\\porp").is_err());
    }

    #[test]
    fn patterns_are_ecma_262() {
        let p = compile_pattern(r"^\d{3}$").unwrap();
        assert!(p.is_valid(&json!("123")));
        assert!(!p.is_valid(&json!("1234")));
        assert!(compile_pattern("(").is_err());
    }

    #[test]
    fn paths_are_inlined_and_every_problem_is_named() {
        let mut file = crate::config::load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://o.test"}]}},
                "validate": {"body": "top.json"},
                "routes": [
                  {"id": "a", "path": "/a", "origin": "o", "validate": {"body": "a.json"}},
                  {"id": "b", "path": "/b", "origin": "o", "validate": {"body": "missing.json"}},
                  {"id": "c", "path": "/c", "origin": "o", "validate": {"body": "broken.json"}},
                  {"id": "d", "path": "/d", "origin": "o", "validate": {"body": "list.json"}},
                  {"id": "e", "path": "/e", "origin": "o", "validate": {"body": {"type": "object"}}},
                  {"id": "f", "path": "/f", "origin": "o"}
                ]}"#,
        )
        .unwrap();
        let mut read = |p: &str| match p {
            "top.json" => Ok(r#"{"type": "object"}"#.to_string()),
            "a.json" => Ok(r#"{"type": "array"}"#.to_string()),
            "broken.json" => Ok(r#"{"type": 7}"#.to_string()),
            "list.json" => Ok("[1]".to_string()),
            _ => Err("No such file or directory".to_string()),
        };
        let problems: Vec<String> = inline(&mut file.clone(), &mut read)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with(
            r#"route "b": validate.body "missing.json": cannot be read: No such file"#
        ));
        assert!(problems[1]
            .starts_with(r#"route "c": validate.body "broken.json": not a valid JSON Schema"#));
        assert_eq!(
            problems[2],
            r#"route "d": validate.body "list.json": a schema file must hold a JSON object"#
        );
        file.routes
            .retain(|r| !["b", "c", "d"].contains(&r.id.as_str()));
        inline(&mut file, &mut read).unwrap();
        let text = serde_json::to_string(&file).unwrap();
        let embedded: Value = serde_json::from_str(&embedded_text(&text, &file)).unwrap();
        assert_eq!(embedded["validate"]["body"], json!({"type": "object"}));
        assert_eq!(
            embedded["routes"][0]["validate"]["body"],
            json!({"type": "array"})
        );
        assert_eq!(
            embedded["routes"][1]["validate"]["body"],
            json!({"type": "object"})
        );
        assert!(embedded["routes"][2].get("validate").is_none());
    }
}
