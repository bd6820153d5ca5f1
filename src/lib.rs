//! An API gateway for Cloudflare Workers.
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod docs;
pub mod gateway;
pub mod http;
pub mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod openapi;
pub mod pipeline;
pub mod policy;
pub mod ports;
#[cfg(not(target_arch = "wasm32"))]
pub mod replay;
pub mod report;
pub mod route;
pub mod upstream;

#[cfg(target_arch = "wasm32")]
mod edge;
