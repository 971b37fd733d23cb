//! Global tables: compacted topics every instance reads in full and keeps
//! in memory to join against (a Kafka Streams `GlobalKTable`).

pub mod catalog;
