//! An API gateway for Cloudflare Workers.
pub mod config;
pub mod gateway;
pub mod http;
pub mod log;
pub mod pipeline;
pub mod policy;
pub mod ports;
pub mod report;
pub mod route;
pub mod upstream;

#[cfg(target_arch = "wasm32")]
mod edge;
