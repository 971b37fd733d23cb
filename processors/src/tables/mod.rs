//! Table topics every instance reads in full and keeps in memory to join
//! against (a Kafka Streams `GlobalKTable`): the internship catalog, the FX
//! rates and the coupon definitions, each with its history so a command is
//! priced at the versions it was stamped with.

pub mod catalog;
pub mod global;
pub mod history;

pub use global::{GlobalTable, Table};
pub use history::History;
