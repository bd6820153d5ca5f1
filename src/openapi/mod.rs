//! OpenAPI and the routes file: `gateway import openapi` and `gateway export openapi`.

pub mod export;
pub mod import;
