//! The order processor: applies order commands to orders (keyed by order
//! token) with the rules of `rules::order`, emits a snapshot per command
//! and, from its timer, the expiry of payment attempts whose token ran out.
//!
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors order` binary.

pub mod processor;
pub mod service;
