//! The cart processor: applies cart commands to carts, prices them from the
//! catalog and emits a snapshot per command.
//!
//! - [`rules`]: what a command does to a cart (pure);
//! - [`pricing`]: what a cart costs (pure);
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors cart` binary.

pub mod coupons;
pub mod pricing;
pub mod processor;
pub mod rules;
pub mod service;
