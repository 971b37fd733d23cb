//! `internhub.runtime.AppliedInput`: a processor's record that it applied
//! an input id to a key (see `processors/src/runner`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedInput {
    pub key: String,
    pub input_id: String,
    pub offset: i64,
    pub applied_at: i64,
}
