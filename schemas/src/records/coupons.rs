//! `internhub.coupons.Coupon`, the value of `coupons.definitions`.

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub code: String,
    pub name: String,
    pub kind: CouponKind,
    pub percent: Option<String>,
    pub cap: Option<WireMoney>,
    pub amounts: Vec<WireMoney>,
    pub tiers: Vec<Tier>,
    pub referrer_user_id: Option<String>,
    pub scope_internships: Vec<String>,
    pub scope_categories: Vec<String>,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub min_order: Option<WireMoney>,
    pub usage_limit: Option<i32>,
    pub per_user_limit: Option<i32>,
    pub combinable: bool,
    pub active: bool,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CouponKind {
    Percentage,
    Fixed,
    FreeEnrollment,
    BulkTiers,
    Referral,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub min_seats: i32,
    pub percent: String,
}
