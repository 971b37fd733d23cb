//! The enrollment processor: enrolls a paid order's buyer, once, with the
//! rules of `rules::enrollment`, keyed by the buyer so one buyer's
//! enrollments are decided in one place.
//!
//! - [`processor`]: the adapter between those rules and the runner;
//! - [`service`]: wiring for the `processors enrollment` binary.

pub mod processor;
pub mod service;
