//! The routes file: its types, its validation and its JSON Schema.
//!
//! This module depends on nothing else in the crate but the route table
//! (`crate::route`, which finds path conflicts) and the path helpers it uses, so
//! the build script can compile them too and refuse to embed an invalid file.

pub mod managed;
pub mod path;
pub mod prepared;
pub mod schema;
pub mod types;
pub mod validate;

// Each policy's part of the file is in its folder, `src/policy/<name>/config.rs`,
// and compiled here: the build script compiles this module on its own.
#[path = "../policy/auth/config.rs"]
pub mod auth;
#[path = "../policy/cache/config.rs"]
pub mod cache;
#[path = "../policy/consumer/config.rs"]
pub mod consumer;
#[path = "../policy/cors/config.rs"]
pub mod cors;
#[path = "../policy/geo/config.rs"]
pub mod geo;
#[path = "../policy/headers/config.rs"]
pub mod headers;
#[path = "../policy/ip/config.rs"]
pub mod ip;
#[path = "../policy/query/config.rs"]
pub mod query;
#[path = "../policy/ratelimit/config.rs"]
pub mod ratelimit;
#[path = "../policy/validate/config.rs"]
pub mod validate_config;

pub use auth::*;
pub use cache::*;
pub use consumer::*;
pub use cors::*;
pub use geo::*;
pub use headers::*;
pub use ip::*;
pub use query::*;
pub use ratelimit::*;
pub use types::*;
pub use validate::{load, Problem};
pub use validate_config::*;

/// The JSON Schema of `routes.json`, generated from the types.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(RoutesFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
