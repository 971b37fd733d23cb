//! `internhub.coupons.*`: coupon definitions (`coupons.definitions`), the
//! uses of a coupon for an order (`coupon.commands`) and each order's use
//! of a coupon (`coupon.redemptions`).

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

/// One order's use of one coupon, as a coupon command left it: on
/// `coupon.redemptions` (keyed `code/order_token`) and the coupon
/// processor's changelog. Records of one coupon share its partition of
/// `coupon.commands`' offsets as `version`, so the newest is the highest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRedemption {
    pub event_id: String,
    pub code: String,
    pub order_token: String,
    pub user_id: Option<String>,
    pub status: RedemptionStatus,
    pub at: i64,
    pub version: i64,
    /// The coupon's reservations held after this change.
    pub reserved: i32,
    /// The coupon's uses after this change.
    pub committed: i32,
    pub updated_at: i64,
}

impl CouponRedemption {
    /// The record's key on `coupon.redemptions` and the changelog.
    pub fn key(&self) -> String {
        format!("{}/{}", self.code, self.order_token)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedemptionStatus {
    Reserved,
    Committed,
    Released,
}

impl RedemptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionStatus::Reserved => "reserved",
            RedemptionStatus::Committed => "committed",
            RedemptionStatus::Released => "released",
        }
    }
}
