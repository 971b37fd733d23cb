//! The cart processor: applies cart commands to carts, prices them from the
//! catalog and emits a snapshot per command. The rules themselves (what a
//! command does, what a cart costs, coupons) are the `rules` crate's.
//!
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors cart` binary.

pub mod processor;
pub mod service;
