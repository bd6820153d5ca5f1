//! Request policies: one module a policy, each owning its decision logic and tests.
pub mod auth;
pub mod cache;
pub mod cors;
pub mod ratelimit;
