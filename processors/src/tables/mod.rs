//! Table topics every instance reads in full and keeps in memory to join
//! against (a Kafka Streams `GlobalKTable`): the internship catalog, the FX
//! rates and the coupon definitions, each with its history (the pure
//! [`rules::tables::History`]) so a command is priced at the versions it
//! was stamped with.

pub mod global;

pub use global::GlobalTable;
