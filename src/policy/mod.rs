//! Request policies: one module a policy, each owning its decision logic and tests.
pub mod auth;
pub mod body_limit;
pub mod cache;
pub mod cors;
pub mod geo;
pub mod headers;
pub mod ip;
pub mod query;
pub mod ratelimit;
