//! `internhub.cart.*`: the commands on `cart.commands` and the snapshots on
//! `cart.snapshots` (and, unchanged, on the cart processor's changelog).

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartCommand {
    pub command_id: String,
    pub cart_token: String,
    /// Milliseconds since the Unix epoch, stamped by the ingress.
    pub issued_at: i64,
    pub command: Command,
    /// The table versions the command is priced at, stamped by the ingress
    /// when it accepts the command (follow-up commands inherit their
    /// cause's): a replay of the command prices the same, whatever the
    /// tables hold by then. `None` on commands written before the stamp
    /// existed: those are priced from the tables as the processor has them.
    #[serde(default)]
    pub tables_at: Option<PricedWith>,
}

/// The Avro union of command kinds. Variant order is the union's branch
/// order on the wire: append new kinds, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateCart(CreateCart),
    AddItem(AddItem),
    UpdateQuantity(UpdateQuantity),
    RemoveItem(RemoveItem),
    SetBuyer(SetBuyer),
    ShareCart(ShareCart),
    ExpireCart(ExpireCart),
    AttachAnalytics(AttachAnalytics),
    AttachOwner(AttachOwner),
    MergeInto(MergeInto),
    AbsorbItems(AbsorbItems),
    ChoosePlan(ChoosePlan),
    ApplyCoupon(ApplyCoupon),
    RemoveCoupon(RemoveCoupon),
    PlaceOrder(PlaceOrder),
    ReopenCart(ReopenCart),
}

/// The order placed from the cart failed before payment because a coupon
/// could not be honoured: the cart is open again, the coupon a blocker
/// until it is removed (written by the order processor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReopenCart {
    pub reopened_order_token: String,
    pub refused_coupon: String,
    pub refusal_code: i32,
    pub reason: String,
}

/// Check the cart out under `order_token` (derived from the cart token:
/// a cart yields one order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_token: String,
    pub actor_user_id: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    #[serde(default)]
    pub buyer_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyCoupon {
    pub code: String,
    pub actor_user_id: Option<String>,
    /// The coupon's uses as the ingress read them when it accepted the
    /// command (`None`: unknown, counted as none).
    #[serde(default)]
    pub used: Option<i32>,
    #[serde(default)]
    pub used_by_user: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveCoupon {
    pub coupon_code: String,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoosePlan {
    pub plan_id: String,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCart {
    pub share_token: String,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireCart {
    pub ttl_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachAnalytics {
    pub pairs: std::collections::BTreeMap<String, String>,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachOwner {
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeInto {
    pub target_cart_token: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsorbItems {
    pub source_cart_token: String,
    pub items: Vec<ItemRequest>,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateQuantity {
    pub internship_id: String,
    pub new_quantity: i32,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveItem {
    pub internship_id: String,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBuyer {
    pub country: String,
    pub state: Option<String>,
    pub gstin: Option<String>,
    pub display_currency: Option<String>,
    pub actor_user_id: Option<String>,
}

impl Command {
    /// The authenticated user sending the command, if any.
    pub fn actor(&self) -> Option<&str> {
        match self {
            Command::CreateCart(c) => c.owner_user_id.as_deref(),
            Command::AddItem(c) => c.actor_user_id.as_deref(),
            Command::UpdateQuantity(c) => c.actor_user_id.as_deref(),
            Command::RemoveItem(c) => c.actor_user_id.as_deref(),
            Command::SetBuyer(c) => c.actor_user_id.as_deref(),
            Command::ShareCart(c) => c.actor_user_id.as_deref(),
            Command::AttachAnalytics(c) => c.actor_user_id.as_deref(),
            Command::ChoosePlan(c) => c.actor_user_id.as_deref(),
            Command::ApplyCoupon(c) => c.actor_user_id.as_deref(),
            Command::RemoveCoupon(c) => c.actor_user_id.as_deref(),
            Command::PlaceOrder(c) => c.actor_user_id.as_deref(),
            // Issued by the processors themselves, or by the ingress for
            // the logged-in user named in the command: the rules check those.
            Command::ExpireCart(_) | Command::ReopenCart(_) => None,
            Command::AttachOwner(c) => Some(&c.user_id),
            Command::MergeInto(c) => Some(&c.user_id),
            Command::AbsorbItems(c) => Some(&c.user_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCart {
    pub currency: String,
    pub owner_user_id: Option<String>,
    pub items: Vec<ItemRequest>,
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRequest {
    pub internship_id: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddItem {
    pub internship_id: String,
    pub quantity: i32,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartSnapshot {
    pub event_id: String,
    pub cart_token: String,
    pub version: i64,
    pub status: CartStatus,
    pub currency: String,
    pub lines: Vec<CartLine>,
    pub subtotal: WireMoney,
    pub total: WireMoney,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_command_id: String,
    pub rejection: Option<CommandRejection>,
    pub owner_user_id: Option<String>,
    pub discount_total: WireMoney,
    pub tax_total: WireMoney,
    pub taxes: Vec<TaxLine>,
    pub tax_inclusive: bool,
    pub buyer: Option<BuyerDetails>,
    pub fx: Option<FxQuote>,
    pub share_token: Option<String>,
    pub device_id: Option<String>,
    pub analytics: std::collections::BTreeMap<String, String>,
    pub merged_into: Option<String>,
    pub coupons: Vec<String>,
    pub discounts: Vec<AppliedDiscount>,
    /// The table versions the snapshot was priced from.
    #[serde(default)]
    pub priced_with: Option<PricedWith>,
    /// Set once converted: the order the cart was placed as.
    #[serde(default)]
    pub order_token: Option<String>,
    /// How many times the cart was reopened after an order placed from it
    /// failed before payment (the next order's token derives from it).
    #[serde(default)]
    pub placements: i32,
    /// The coupons refused at the last placement and still applied.
    #[serde(default)]
    pub refused_coupons: Vec<RefusedCoupon>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedCoupon {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedWith {
    pub catalog: i64,
    pub fx_rates: i64,
    pub coupons: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDiscount {
    pub code: String,
    pub name: String,
    pub amount: WireMoney,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxLine {
    pub name: String,
    /// Decimal fraction as text, e.g. `0.09`.
    pub rate: String,
    pub amount: WireMoney,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerDetails {
    pub country: String,
    pub state: Option<String>,
    pub gstin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxQuote {
    pub base: String,
    pub quote: String,
    pub rate: String,
    pub as_of: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CartStatus {
    Active,
    Converted,
    Expired,
    Merged,
}

impl CartStatus {
    /// The lowercase name used in the API and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            CartStatus::Active => "active",
            CartStatus::Converted => "converted",
            CartStatus::Expired => "expired",
            CartStatus::Merged => "merged",
        }
    }

    /// The status named by [`CartStatus::as_str`].
    pub fn parse(s: &str) -> Option<CartStatus> {
        [
            CartStatus::Active,
            CartStatus::Converted,
            CartStatus::Expired,
            CartStatus::Merged,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price: WireMoney,
    pub line_total: WireMoney,
    pub base_unit_price: WireMoney,
    pub line_subtotal: WireMoney,
    pub line_discount: WireMoney,
    pub tax_class: String,
    pub available: bool,
    pub plan: Option<ChosenPlan>,
    pub category: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenPlan {
    pub plan_id: String,
    pub value: i32,
    /// `month` or `year`.
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejection {
    pub command_id: String,
    pub code: i32,
    pub message: String,
}
