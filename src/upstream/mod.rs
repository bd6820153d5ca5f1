//! Everything about reaching an origin: region choice, failover order, circuit breaking.
pub mod breaker;
pub mod budget;
pub mod region;
pub mod split;
