//! `internhub.fx.FxRate`, the value of `fx.rates`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRate {
    /// Always `INR`: catalog prices are in INR.
    pub base: String,
    pub quote: String,
    /// Units of `quote` per 1 `base`, as decimal text.
    pub rate: String,
    /// Milliseconds since the Unix epoch.
    pub as_of: i64,
}
