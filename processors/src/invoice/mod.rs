//! The invoice processor: numbers the GST tax invoices and credit notes
//! that orders ask for, with the rules of `rules::invoice`, all under one
//! key (the seller's ledger) so each series is consecutive.
//!
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors invoice` binary.

pub mod processor;
pub mod service;
