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
    pub billing_periods: Vec<BillingPeriod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPeriod {
    pub plan_id: String,
    pub value: i32,
    pub unit: PeriodUnit,
    pub price: WireMoney,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeriodUnit {
    Month,
    Year,
}

impl PeriodUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodUnit::Month => "month",
            PeriodUnit::Year => "year",
        }
    }
}
