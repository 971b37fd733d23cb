//! `internhub.coupons.*`: coupon definitions (`coupons.definitions`), the
//! uses of a coupon for an order (`coupon.commands`) and a coupon's uses
//! (`coupon.usage`).

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

/// A use of a coupon for one order, on `coupon.commands` (keyed by code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponCommand {
    pub command_id: String,
    pub code: String,
    pub order_token: String,
    pub issued_at: i64,
    pub command: CouponCmd,
}

/// The Avro union of coupon command kinds: append, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CouponCmd {
    ReserveCoupon(ReserveCoupon),
    CommitCoupon(CommitCoupon),
    ReleaseCoupon(ReleaseCoupon),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveCoupon {
    pub user_id: Option<String>,
    pub coupons_version: Option<i64>,
    /// The order's reservation round (its next attempt's number).
    #[serde(default)]
    pub round: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCoupon {
    pub payment_ref: String,
    /// The buyer, for a use whose reservation was released meanwhile.
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCoupon {
    pub reason: String,
}

/// A coupon's uses, on `coupon.usage` and the coupon processor's changelog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponUsage {
    pub event_id: String,
    pub code: String,
    pub version: i64,
    pub redemptions: Vec<Redemption>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    pub order_token: String,
    pub user_id: Option<String>,
    pub status: RedemptionStatus,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedemptionStatus {
    Reserved,
    Committed,
}

impl RedemptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionStatus::Reserved => "reserved",
            RedemptionStatus::Committed => "committed",
        }
    }
}
