//! Arbitrary text as an OpenAPI description through `gateway import openapi`
//! (`openapi::import::parse`, JSON or YAML, then `import`); and, for inputs that
//! start with `ROUTES\n`, a routes file through `export` and back through `import`.
//!
//! Checks (besides no panic and bounded time and memory):
//! - a refusal comes with a message;
//! - a success is what the README promises, a routes file that passes `gateway
//!   check`: the text the command prints (`to_string_pretty` of the file) passes
//!   `config::load`, and `Gateway::compile` (every secret set to 64 `0`s, as
//!   `gateway check` does) builds it with every jwt provider usable;
//! - at least one route; every request-body schema belongs to an imported route,
//!   is written to `schemas/ROUTE-ID.json` (one plain file name under `schemas/`, so
//!   never outside the output directory) and is a JSON Schema (an object or a
//!   boolean);
//! - bounded output: the routes file and the schemas are at most a fixed multiple of
//!   the (alias-expanded) description, and every note is at most a few KiB;
//! - round trip: an export of a file `config::load` accepts imports again, with the
//!   same number of routes and, for routes whose path and provider names survive
//!   the import's renaming (parameter names of `[A-Za-z0-9_]`, no literal braces),
//!   the same id, path, host, methods (sorted; GET implies HEAD), origin name,
//!   auth, rate limit and cache, as the README says.
#![no_main]

use edge_gateway::config::{self, Method, RoutesFile};
use edge_gateway::gateway::Gateway;
use edge_gateway::openapi::{export, import};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What `gateway check` runs on a file, its `validate.body` files being `schemas`
/// (what the import writes beside it).
fn gateway_check(text: &str, schemas: &[(String, Value)]) -> Result<RoutesFile, String> {
    let joined = |ps: Vec<config::Problem>| {
        ps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut file = config::load(text).map_err(joined)?;
    config::schema::inline(&mut file, &mut |path| {
        schemas
            .iter()
            .find(|(name, _)| name == path)
            .map(|(_, schema)| schema.to_string())
            .ok_or_else(|| format!("no schema file {path} was written"))
    })
    .map_err(joined)?;
    let gw = Gateway::compile(file.clone(), &|_| Some("0".repeat(64)))?;
    for p in gw.providers {
        p?;
    }
    Ok(file)
}

fn check_imported(imported: &import::Imported, doc: &Value) {
    let text = serde_json::to_string_pretty(&imported.file).expect("a routes file serializes");
    if let Err(e) = gateway_check(&text, &imported.schemas) {
        panic!("the imported routes file fails `gateway check`: {e}\n{text}");
    }
    let file = &imported.file;
    assert!(
        !file.routes.is_empty(),
        "an import without routes succeeded"
    );
    let ids: Vec<&str> = file.routes.iter().map(|r| r.id.as_str()).collect();
    for (id, path) in &imported.bodies {
        assert!(
            ids.contains(&id.as_str()),
            "schema of a route not imported: {id}"
        );
        assert_eq!(path, &format!("schemas/{id}.json"));
        let name = path.strip_prefix("schemas/").unwrap();
        assert!(
            !name.contains(['/', '\\']) && name != "." && name != ".." && !name.is_empty(),
            "schema path {path:?} is not one file under schemas/"
        );
    }
    let mut paths: Vec<&str> = imported.schemas.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    let mut want: Vec<&str> = imported.bodies.values().map(String::as_str).collect();
    want.sort();
    assert_eq!(paths, want, "schemas written are not the routes' bodies");
    // Bounded output, against the document as parsed (YAML aliases expanded).
    let doc_len = serde_json::to_string(doc).map_or(0, |s| s.len());
    let budget = 64 * 1024 + 64 * doc_len;
    assert!(
        text.len() <= budget,
        "routes file of {} bytes from a description of {doc_len}",
        text.len()
    );
    let mut schema_bytes = 0;
    for (path, schema) in &imported.schemas {
        assert!(
            schema.is_object(),
            "{path} is not a JSON Schema: {schema}"
        );
        schema_bytes += serde_json::to_string(schema).unwrap().len();
    }
    assert!(
        schema_bytes <= budget * (1 + file.routes.len()),
        "{schema_bytes} bytes of schemas from a description of {doc_len}"
    );
    for note in &imported.notes {
        assert!(
            note.len() <= 4 * 1024 + 4 * doc_len.min(4096),
            "a note of {} bytes",
            note.len()
        );
    }
}

/// A route path that the import gives back as it was.
fn round_trips(path: &str) -> bool {
    if path.contains("{{") || path.contains("}}") {
        return false;
    }
    let (_, params) = export::openapi_path(path);
    params.iter().all(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn sorted_methods(route: &config::Route) -> Option<Vec<Method>> {
    route.methods.as_ref().map(|ms| {
        let mut ms = ms.clone();
        ms.sort();
        ms.dedup();
        ms
    })
}

fn round_trip(text: &str) {
    let Ok(file) = config::load(text) else {
        return;
    };
    let doc = export::document(&file, "fuzz", "0");
    let printed = serde_json::to_string_pretty(&doc).expect("a document serializes");
    let parsed = import::parse(&printed).expect("an exported document parses");
    let back = match import::import(&parsed) {
        Ok(b) => b,
        Err(e) => panic!("an export does not import again: {e}\n{printed}"),
    };
    check_imported(&back, &parsed);
    // Renamed parameters and literal braces can make two routes conflict after the
    // round trip (`/a/{{x}}` and `/a/{y}`): the count is checked when no path changes.
    if file.routes.iter().all(|r| round_trips(&r.path)) {
        assert_eq!(
            back.file.routes.len(),
            file.routes.len(),
            "routes lost in the round trip: {:?}\n{printed}",
            back.notes
        );
    }
    let providers_kept = file
        .jwt
        .keys()
        .all(|name| import::sanitize_id(name) == *name);
    for r in &file.routes {
        if !round_trips(&r.path) {
            continue;
        }
        let b = back
            .file
            .routes
            .iter()
            .find(|b| b.id == r.id)
            .unwrap_or_else(|| panic!("route {} not given back\n{printed}", r.id));
        assert_eq!(b.path, r.path, "route {}: path", r.id);
        assert_eq!(b.host, r.host, "route {}: host", r.id);
        assert_eq!(b.origin, r.origin, "route {}: origin", r.id);
        let (want, got) = (sorted_methods(r), sorted_methods(b));
        // GET implies HEAD, and a list of every method is no list.
        let norm = |m: Option<Vec<Method>>| {
            m.map(|mut ms| {
                if ms.contains(&Method::Get) && !ms.contains(&Method::Head) {
                    ms.push(Method::Head);
                    ms.sort();
                }
                ms
            })
            .filter(|ms| ms.len() < Method::ALL.len())
        };
        assert_eq!(norm(got), norm(want), "route {}: methods", r.id);
        if providers_kept {
            assert_eq!(
                serde_json::to_value(&b.auth).unwrap(),
                serde_json::to_value(&r.auth).unwrap(),
                "route {}: auth",
                r.id
            );
        }
        assert_eq!(
            serde_json::to_value(&b.rate_limit).unwrap(),
            serde_json::to_value(&r.rate_limit).unwrap(),
            "route {}: rate_limit",
            r.id
        );
        assert_eq!(
            serde_json::to_value(&b.cache).unwrap(),
            serde_json::to_value(&r.cache).unwrap(),
            "route {}: cache",
            r.id
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(routes) = text.strip_prefix("ROUTES\n") {
        round_trip(routes);
        return;
    }
    let doc = match import::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    match import::import(&doc) {
        Ok(imported) => check_imported(&imported, &doc),
        Err(e) => {
            assert!(!e.is_empty(), "a refusal without a reason");
        }
    }
});
