//! The stateful stream processors.
//!
//! [`runner`] is the one Kafka loop every processor runs in: it consumes a
//! command topic, restores per-partition state from a changelog, calls the
//! processor's pure `apply`, produces outputs and the state change, and
//! stores offsets only after the broker acknowledged all of it. Each
//! processor folder holds its domain rules as pure functions (`cart/`:
//! cart contents and prices) and a thin adapter to the runner. [`tables`]
//! holds the global tables processors join against (the catalog).

pub mod cart;
pub mod runner;
pub mod tables;
