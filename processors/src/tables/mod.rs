//! Global tables: compacted topics every instance reads in full and keeps
//! in memory to join against (a Kafka Streams `GlobalKTable`): the
//! internship catalog and the FX rates.

pub mod catalog;
pub mod global;

pub use global::GlobalTable;
