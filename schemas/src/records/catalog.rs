//! `internhub.catalog.Internship`, the value of `catalog.internships`.

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Internship {
    pub internship_id: String,
    pub title: String,
    pub category: String,
    pub base_price: WireMoney,
    pub tax_class: String,
    pub active: bool,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}
