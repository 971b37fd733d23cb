//! The webhook processor: turns verified gateway webhooks
//! (`webhooks.inbound`, keyed by the gateway's session) into payment
//! outcomes for our orders (`order.commands`), each event once.
//!
//! - [`processor`]: the mapping (pure) and its adapter to the runner;
//! - [`service`]: wiring for the `processors webhook` binary.

pub mod processor;
pub mod service;
