//! The public contract between the pipeline's stages.
//!
//! Analytics tools read our topics directly, so everything that crosses Kafka
//! is defined here and only here: the topic catalog ([`topics`]), the Avro
//! schemas (`schemas/avro/*.avsc`, embedded at compile time), the Rust records
//! that mirror them ([`records`], checked against the `.avsc` files by tests),
//! the Confluent wire-format codec ([`codec`]), the Kafka header names
//! ([`headers`]) and the value types that make money and ids hard to get
//! wrong ([`money`], [`values`], [`ids`]).

pub mod catalog_doc;
pub mod codec;
pub mod codes;
pub mod headers;
pub mod ids;
pub mod money;
pub mod records;
pub mod sealed;
pub mod topics;
pub mod values;

pub use codec::{Codec, CodecError};
pub use money::{Currency, Money, MoneyError, Rounding};
pub use topics::{Topic, TopicDef, TopicNames};
