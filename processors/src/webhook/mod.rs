//! The webhook processor: turns verified gateway webhooks
//! (`webhooks.inbound`, keyed by the gateway's session) into payment
//! outcomes for our orders (`order.commands`), each event once.
//!
//! - [`processor`]: the mapping (pure) and its adapter to the runner;
//! - [`retry`]: the stage that redelivers, with backoff, what arrived
//!   before its order (`processors webhook-retry`);
//! - [`service`]: wiring for both binaries.

pub mod processor;
pub mod retry;
pub mod service;
