//! `internhub.runtime.DeadLetter`: a record a stage gave up on, with the
//! reason and the original bytes, so it can be inspected and replayed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stage: String,
    pub reason: String,
    pub kind: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    // apache-avro writes `bytes` only for values serde marks as bytes.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub key: Option<Vec<u8>>,
    // apache-avro writes `bytes` only for values serde marks as bytes.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub correlation_id: Option<String>,
    pub failed_at: i64,
}
