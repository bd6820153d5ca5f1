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

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GATEWAY_ROUTES");
    println!("cargo:rerun-if-env-changed=GATEWAY_BUILD_VERSION");
    println!("cargo:rerun-if-changed=src/config");
    println!("cargo:rerun-if-changed=src/route.rs");
    println!("cargo:rerun-if-changed=src/http/path.rs");
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
    if let Err(problems) = config::load(&text) {
        eprintln!("invalid routes file {}:", path.display());
        for p in &problems {
            eprintln!("  {p}");
            println!("cargo:warning={p}");
        }
        std::process::exit(1);
    }
    // Embedded without its formatting: a smaller module and less to parse at start-up.
    let compact = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| v.to_string())
        .unwrap_or(text);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("routes.json");
    std::fs::write(&out, compact).expect("OUT_DIR is writable");
    let version = std::env::var("GATEWAY_BUILD_VERSION")
        .unwrap_or_else(|_| std::env::var("CARGO_PKG_VERSION").expect("cargo sets it"));
    println!("cargo:rustc-env=GATEWAY_BUILD_VERSION={version}");
}
