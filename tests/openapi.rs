//! `gateway import openapi` and `gateway export openapi`, run as a user would:
//! the Petstore examples (3.0 YAML, 3.1 JSON), GitHub's REST API description
//! (the `@octokit/openapi` npm package, a pinned devDependency), and round trips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

fn gateway(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the gateway binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gateway-openapi-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Imports `input` into `dir/routes.json`; the parsed file and stderr.
fn import(input: &str, dir: &Path) -> (Value, String) {
    let out = dir.join("routes.json");
    let (code, stdout, err) =
        gateway(&["import", "openapi", input, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty(), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    (serde_json::from_str(&text).unwrap(), err)
}

/// `gateway check` accepts the file.
fn assert_checks(path: &Path, routes: usize) {
    let (code, out, err) = gateway(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("{}: ok, {routes} routes\n", path.display())),
        "{out}"
    );
}

fn route<'a>(file: &'a Value, id: &str) -> &'a Value {
    file["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no route {id}"))
}

#[test]
fn petstore_3_0_yaml_imports_with_its_body_schema() {
    let dir = scratch("petstore30");
    let (file, err) = import("tests/fixtures/openapi/petstore-3.0.yaml", &dir);
    assert_checks(&dir.join("routes.json"), 3);
    assert_eq!(
        file["origins"]["api"]["regions"][0]["url"],
        "http://petstore.swagger.io/v1"
    );
    let summary: Vec<(String, String, Value)> = file["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["methods"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("listPets".into(), "/pets".into(), json!(["GET"])),
            ("createPets".into(), "/pets".into(), json!(["POST"])),
            ("showPetById".into(), "/pets/{petId}".into(), json!(["GET"])),
        ]
    );
    // The body schema is the route's `validate.body`, written beside the file.
    assert_eq!(
        file["routes"][1]["validate"],
        json!({"body": "schemas/createPets.json"})
    );
    assert!(file["routes"][0].get("validate").is_none());
    assert!(
        err.contains("route \"createPets\": request body schema"),
        "{err}"
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("schemas/createPets.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$ref"], "#/$defs/Pet");
    assert_eq!(schema["$defs"]["Pet"]["required"], json!(["id", "name"]));
    // OpenAPI 3.0's `nullable` in 2020-12 spelling.
    assert_eq!(
        schema["$defs"]["Pet"]["properties"]["tag"]["type"],
        json!(["string", "null"])
    );
}

#[test]
fn petstore_3_1_maps_security_and_reports_what_it_cannot_map() {
    let dir = scratch("petstore31");
    let (file, err) = import("tests/fixtures/openapi/petstore-3.1.json", &dir);
    assert_checks(&dir.join("routes.json"), 8);
    // Server variables at their defaults; a relative server is reported.
    assert_eq!(
        file["origins"]["api"]["regions"][0]["url"],
        "https://eu.petstore.example.com/v2"
    );
    assert!(err.contains("servers: \"/sandbox\" is not used"), "{err}");
    // `security: []` overrides the top-level requirement.
    assert!(route(&file, "listPets").get("auth").is_none());
    assert_eq!(
        route(&file, "createPet")["auth"],
        json!({"jwt": "oauth", "scopes": ["pets:write"]})
    );
    // The top-level requirement; path-level $ref'd parameters; names made valid.
    assert_eq!(
        route(&file, "showPetById")["auth"],
        json!({"jwt": "bearerAuth"})
    );
    assert_eq!(route(&file, "showPetById")["path"], "/pets/{pet_id}");
    assert!(
        err.contains("path parameter \"pet-id\" is \"pet_id\""),
        "{err}"
    );
    // operationIds made valid and unique; a missing one made from method and path.
    assert_eq!(route(&file, "pets-update")["methods"], json!(["PUT"]));
    assert_eq!(route(&file, "listPets-2")["path"], "/stores/{storeId}/pets");
    assert!(
        err.contains("no operationId; route id \"delete-pets-pet-id\""),
        "{err}"
    );
    // A path item by $ref.
    assert_eq!(route(&file, "getPhoto")["path"], "/pets/{pet_id}/photo");
    // apiKey has no mapping: said loudly, never dropped silently.
    assert!(route(&file, "delete-pets-pet-id").get("auth").is_none());
    assert!(
        err.contains(
            "route \"delete-pets-pet-id\": imported WITHOUT auth: API key in header \"X-API-Key\""
        ),
        "{err}"
    );
    assert!(
        err.contains("TRACE is not a method the gateway routes"),
        "{err}"
    );
    assert!(
        err.contains("request body of type image/png is not JSON"),
        "{err}"
    );
    assert!(
        err.contains("of 2 alternative security requirements"),
        "{err}"
    );
    // Providers are placeholders the user fills in.
    assert_eq!(
        file["jwt"]["bearerAuth"]["issuer"],
        "https://issuer.example.com/"
    );
    assert!(err.contains("jwt \"bearerAuth\": fill in"), "{err}");
    assert!(file["jwt"].get("apiKey").is_none());
    // Request bodies by $ref and `+json` media types, with recursive schemas.
    let create: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("schemas/createPet.json")).unwrap())
            .unwrap();
    assert_eq!(create["$ref"], "#/$defs/NewPet");
    assert_eq!(
        create["$defs"]["Owner"]["properties"]["friends"]["items"]["$ref"],
        "#/$defs/Owner"
    );
    let update: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("schemas/pets-update.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(update["$defs"]["Pet"]["allOf"][0]["$ref"], "#/$defs/NewPet");
    assert!(!dir.join("schemas/uploadPhoto.json").exists());
}

#[test]
fn import_prints_to_stdout_without_out_and_writes_schemas_in_the_current_directory() {
    let dir = scratch("stdout");
    let input =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/petstore-3.0.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["import", "openapi", input.to_str().unwrap()])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file["routes"].as_array().unwrap().len(), 3);
    assert!(dir.join("schemas/createPets.json").exists());
}

#[test]
fn import_refuses_swagger_2_and_broken_files() {
    let dir = scratch("refuse");
    let swagger = dir.join("swagger.yaml");
    std::fs::write(&swagger, "swagger: '2.0'\npaths: {}\n").unwrap();
    let (code, _, err) = gateway(&["import", "openapi", swagger.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("Swagger 2.0"), "{err}");
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"openapi\": ").unwrap();
    let (code, _, err) = gateway(&["import", "openapi", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not valid JSON"), "{err}");
}

/// GitHub's REST API: over a thousand operations.
#[test]
fn github_rest_api_imports_and_checks() {
    let spec = "node_modules/@octokit/openapi/generated/api.github.com.json";
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(spec).exists(),
        "{spec} is missing: run `npm ci` (or `make tools`)"
    );
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(spec)).unwrap(),
    )
    .unwrap();
    let operations = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().keys())
        .filter(|k| {
            ["get", "put", "post", "delete", "patch", "head", "options"].contains(&k.as_str())
        })
        .count();
    assert!(operations > 1000, "{operations}");

    let dir = scratch("github");
    let (file, err) = import(spec, &dir);
    let routes = file["routes"].as_array().unwrap();
    // Every operation but one: `/compare/{base}...{head}` has two parameters in
    // one segment, which the router cannot match; it is reported, not dropped silently.
    assert_eq!(routes.len(), operations - 1, "{err}");
    assert!(
        err.contains("route \"repos-compare-commits\": path \"/repos/{owner}/{repo}/compare/{base}...{head}\" is not valid")
            && err.contains("route left out"),
        "{err}"
    );
    assert_checks(&dir.join("routes.json"), operations - 1);
    assert_eq!(
        file["origins"]["api"]["regions"][0]["url"],
        "https://api.github.com"
    );
    let r = route(&file, "repos-get");
    assert_eq!(r["path"], "/repos/{owner}/{repo}");
    assert_eq!(r["methods"], json!(["GET"]));
    assert_eq!(
        route(&file, "repos-get-content")["path"],
        "/repos/{owner}/{repo}/contents/{path}"
    );
    assert_eq!(
        route(&file, "issues-create")["path"],
        "/repos/{owner}/{repo}/issues"
    );
    assert!(err.contains("operationIds changed to route ids"), "{err}");
    // A `-` in a parameter name becomes `_`.
    assert!(routes
        .iter()
        .any(|r| r["path"] == "/enterprises/{enterprise}/teams/{enterprise_team}/memberships"));
    // Request bodies: one schema per JSON body, each the route's `validate.body`
    // (and `gateway check` above compiled every one of them).
    assert!(dir.join("schemas/issues-create.json").exists());
    assert_eq!(
        route(&file, "issues-create")["validate"]["body"],
        "schemas/issues-create.json"
    );
    let validated = routes
        .iter()
        .filter(|r| r.get("validate").is_some())
        .count();
    assert!(validated > 100, "{validated} validated routes");
    assert!(err.contains("route \"repos-upload-release-asset\": request body of type application/octet-stream is not JSON"));
}

#[test]
fn export_is_openapi_3_1_and_reimports_every_route() {
    let (code, out, err) = gateway(&["export", "openapi", "tests/fixtures/tooling.routes.json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let get_user = &doc["paths"]["/api/users/{id}"]["get"];
    assert_eq!(get_user["operationId"], "get-user");
    assert_eq!(get_user["security"], json!([{"main": ["users:read"]}]));
    assert_eq!(
        get_user["parameters"],
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}])
    );
    assert_eq!(
        get_user["x-gateway-rate-limit"],
        json!({"requests": 100, "window_s": 60, "key": "sub"})
    );
    assert_eq!(
        get_user["x-gateway-cache"],
        json!({"ttl_s": 30, "vary": ["accept-language"]})
    );
    // GET implies HEAD: not listed twice.
    assert!(doc["paths"]["/api/users/{id}"].get("head").is_none());
    // Several methods: one operation each, ids suffixed.
    assert_eq!(
        doc["paths"]["/api/users/{id}"]["patch"]["operationId"],
        "update-user-patch"
    );
    // The catch-all.
    let files = &doc["paths"]["/files/{rest}"]["post"];
    assert_eq!(files["parameters"][0]["x-gateway-catch-all"], true);
    assert_eq!(
        doc["components"]["securitySchemes"]["main"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "a JWT issued by https://auth.example.com/",
               "x-gateway-issuer": "https://auth.example.com/"})
    );
    // Two routes on one path and method, on other hosts.
    assert_eq!(doc["paths"]["/"]["get"]["operationId"], "tenant-home");
    assert_eq!(
        doc["paths"]["/"]["get"]["x-gateway-host"],
        "*.tenant.example.com"
    );
    assert_eq!(
        doc["paths"]["/"]["get"]["x-gateway-also-routes"][0]["operationId"],
        "home"
    );
    // No origin URLs.
    assert!(!out.contains("internal.example.com"), "{out}");

    // Round trip.
    let dir = scratch("roundtrip");
    let exported = dir.join("exported.json");
    std::fs::write(&exported, &out).unwrap();
    let (back, _) = import(exported.to_str().unwrap(), &dir);
    assert_checks(&dir.join("routes.json"), 7);
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tooling.routes.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for r in original["routes"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let b = route(&back, id);
        for field in ["path", "host", "origin", "auth", "rate_limit", "cache"] {
            assert_eq!(b[field], r[field], "route {id}: {field}");
        }
        let mut want_methods = r["methods"].clone();
        if let Value::Array(ms) = &mut want_methods {
            ms.sort_by_key(|m| {
                ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                    .iter()
                    .position(|x| *x == m.as_str().unwrap())
            });
        }
        assert_eq!(b["methods"], want_methods, "route {id}: methods");
    }
    assert_eq!(back["jwt"]["main"]["issuer"], "https://auth.example.com/");
}

#[test]
fn validation_is_exported_and_reimported() {
    use edge_gateway::config::schema;
    let (code, out, err) = gateway(&["export", "openapi", "tests/fixtures/validate.routes.json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let create = &doc["paths"]["/users"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/create-user"})
    );
    // The file's `$defs` are components of their own, the references follow.
    let components = &doc["components"]["schemas"];
    assert_eq!(
        components["create-user"]["properties"]["roles"]["items"],
        json!({"$ref": "#/components/schemas/create-user.role"})
    );
    assert_eq!(
        components["create-user.role"],
        json!({"enum": ["admin", "editor", "viewer"]})
    );
    assert_eq!(
        create["parameters"],
        json!([
            {"name": "dry_run", "in": "query", "required": false, "schema": {"type": "boolean"}},
            {"name": "ref", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[a-z]{3}-\\d+$"}}
        ])
    );
    assert!(create["responses"]["400"].is_object());
    assert!(create["responses"]["415"].is_object());
    // A GET has no body; the top level's query rule applies to a route without its own.
    assert!(doc["paths"]["/users"]["get"].get("requestBody").is_none());
    assert_eq!(
        doc["paths"]["/users/{id}"]["get"]["parameters"][1],
        json!({"name": "trace", "in": "query", "required": false, "schema": {"type": "boolean"}})
    );
    assert!(doc["paths"]["/tags"]["put"]["requestBody"].is_object());

    // Round trip: every route back, the validated ones with a schema that accepts
    // and refuses what the original does.
    let dir = scratch("validate-roundtrip");
    let exported = dir.join("exported.json");
    std::fs::write(&exported, &out).unwrap();
    let (back, _) = import(exported.to_str().unwrap(), &dir);
    assert_checks(&dir.join("routes.json"), 4);
    for id in ["create-user", "list-users", "get-user", "tags"] {
        route(&back, id);
    }
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let original = schema::compile(&read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas/create-user.json"),
    ))
    .unwrap();
    let body = route(&back, "create-user")["validate"]["body"]
        .as_str()
        .unwrap()
        .to_string();
    let imported = schema::compile(&read(&dir.join(body))).unwrap();
    for (instance, valid) in [
        (
            json!({"name": "Ada", "email": "ada@example.test", "roles": ["admin"]}),
            true,
        ),
        (
            json!({"name": "Ada", "email": "ada@example.test", "roles": ["root"]}),
            false,
        ),
        (json!({"name": "Ada"}), false),
        (json!({"name": "Ada", "email": "a@b", "extra": 1}), false),
    ] {
        assert_eq!(original.is_valid(&instance), valid, "{instance}");
        assert_eq!(imported.is_valid(&instance), valid, "{instance}");
    }
}
