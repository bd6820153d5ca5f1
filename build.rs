//! Embeds the routes file into the Worker and refuses to build an invalid one.
//!
//! The file is `routes.json` at the repository root, or the one named by the
//! `GATEWAY_ROUTES` environment variable (absolute, or relative to the root).

#[allow(dead_code, unused_imports)]
#[path = "src/config/mod.rs"]
mod config;
// Validation finds path conflicts with the route table the Worker runs.
#[allow(dead_code)]
#[path = "src/http/path.rs"]
pub mod http_path;
#[allow(dead_code)]
#[path = "src/route.rs"]
mod route;
mod http {
    pub use super::http_path as path;
}
// `"docs": true`: the page and the OpenAPI document, generated here.
#[allow(dead_code)]
#[path = "src/docs.rs"]
mod docs;
#[allow(dead_code)]
#[path = "src/openapi/export.rs"]
mod export;

use std::path::PathBuf;

/// The title of the docs page and of the OpenAPI document.
const DOCS_TITLE: &str = "API reference";

fn main() {
    println!("cargo:rerun-if-env-changed=GATEWAY_ROUTES");
    println!("cargo:rerun-if-env-changed=GATEWAY_BUILD_VERSION");
    println!("cargo:rerun-if-changed=src/config");
    // Each policy's types and checks (`src/policy/<name>/config.rs`, compiled as part of `config`).
    println!("cargo:rerun-if-changed=src/policy");
    println!("cargo:rerun-if-changed=src/route.rs");
    println!("cargo:rerun-if-changed=src/http/path.rs");
    println!("cargo:rerun-if-changed=src/docs.rs");
    println!("cargo:rerun-if-changed=src/openapi/export.rs");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let path = match std::env::var("GATEWAY_ROUTES") {
        Ok(p) if !p.is_empty() => root.join(p),
        _ => root.join("routes.json"),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("cannot read routes file {}: {e}", path.display());
        std::process::exit(1);
    });
    let refuse = |problems: Vec<config::Problem>| -> ! {
        eprintln!("invalid routes file {}:", path.display());
        for p in &problems {
            eprintln!("  {p}");
            println!("cargo:warning={p}");
        }
        std::process::exit(1);
    };
    let mut file = config::load(&text).unwrap_or_else(|problems| refuse(problems));
    // `validate.body` schemas: read beside the routes file, compiled once here to
    // refuse one the validator cannot compile, and embedded inline.
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    config::schema::inline(&mut file, &mut |p| {
        let schema = dir.join(p);
        println!("cargo:rerun-if-changed={}", schema.display());
        std::fs::read_to_string(&schema).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|problems| refuse(problems));
    // Embedded without its formatting: a smaller module and less to parse at start-up.
    let compact = config::schema::embedded_text(&text, &file);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("routes.json");
    // What an isolate starts from: the top level, and each route's table entry
    // beside its JSON (`src/config/prepared.rs`).
    let prepared = config::prepared::write(&compact, &file).unwrap_or_else(|e| {
        eprintln!("cannot prepare routes file {}: {e}", path.display());
        std::process::exit(1);
    });
    std::fs::write(out.with_file_name("routes.prepared"), prepared).expect("OUT_DIR is writable");
    // The file itself, for the tests that compare the two.
    std::fs::write(&out, compact).expect("OUT_DIR is writable");
    let version = std::env::var("GATEWAY_BUILD_VERSION")
        .unwrap_or_else(|_| std::env::var("CARGO_PKG_VERSION").expect("cargo sets it"));
    println!("cargo:rustc-env=GATEWAY_BUILD_VERSION={version}");
    // Empty unless the file asks for them, so they cost nothing otherwise.
    let (html, openapi) = if file.docs {
        (
            docs::page(&file, DOCS_TITLE, &version, "/__gateway/openapi.json"),
            export::document(&file, DOCS_TITLE, &version).to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    let dir = out.parent().expect("OUT_DIR is a directory");
    std::fs::write(dir.join("docs.html"), html).expect("OUT_DIR is writable");
    std::fs::write(dir.join("openapi.json"), openapi).expect("OUT_DIR is writable");
}
