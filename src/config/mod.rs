//! The routes file: its types, its validation and its JSON Schema.
//!
//! This module depends on nothing else in the crate but the route table
//! (`crate::route`, which finds path conflicts) and the path helpers it uses, so
//! the build script can compile them too and refuse to embed an invalid file.

pub mod managed;
pub mod path;
pub mod schema;
pub mod types;
pub mod validate;

pub use types::*;
pub use validate::{load, Problem};

/// The JSON Schema of `routes.json`, generated from the types.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(RoutesFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
