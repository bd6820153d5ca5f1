//! An API gateway for Cloudflare Workers.
pub mod config;
pub mod policy;
pub mod upstream;
