//! The coupon processor: counts every use of a coupon in one place (its
//! commands are keyed by the code) with the rules of `rules::redemption`,
//! and answers each reservation to its order.
//!
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors coupon` binary.

pub mod processor;
pub mod service;
