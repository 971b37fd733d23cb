//! Queries over the read model the sinks write: carts here, orders in
//! [`orders`].

pub mod orders;

use schemas::codes::ErrorCode;
use schemas::records::cart::{CartStatus, RefusedCoupon};
use serde::Serialize;
use sqlx::PgPool;

/// A cart as the API returns it. Amounts are minor units with a currency.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CartView {
    pub cart_token: String,
    pub version: i64,
    pub status: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_total_minor: i64,
    pub tax_total_minor: i64,
    pub total_minor: i64,
    /// True when line prices include the taxes (total = subtotal − discounts).
    pub tax_inclusive: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    pub owner_user_id: Option<String>,
    #[serde(skip)]
    pub rejection_command_id: Option<String>,
    #[serde(skip)]
    pub rejection_code: Option<i32>,
    #[serde(skip)]
    pub rejection_message: Option<String>,
    #[serde(skip)]
    pub buyer_country: Option<String>,
    #[serde(skip)]
    pub buyer_state: Option<String>,
    #[serde(skip)]
    pub buyer_gstin: Option<String>,
    #[serde(skip)]
    pub fx_base: Option<String>,
    #[serde(skip)]
    pub fx_rate: Option<rust_decimal::Decimal>,
    #[serde(skip)]
    pub fx_as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The token of the read-only view, once shared.
    pub share_token: Option<String>,
    /// For a merged cart: the cart that took its items.
    pub merged_into: Option<String>,
    /// Set once the cart is converted: the order it was placed as.
    pub order_token: Option<String>,
    /// Attribution pairs.
    #[schema(value_type = Object)]
    pub analytics: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    #[sqlx(json)]
    pub items: Vec<CartItemView>,
    /// Coupon codes applied, in order.
    #[schema(value_type = Vec<String>)]
    pub coupons: sqlx::types::Json<Vec<String>>,
    /// Coupons refused when the cart was last placed (they ran out before
    /// payment, and the cart was opened again): each blocks checkout until
    /// it is removed.
    #[schema(value_type = Vec<RefusedCouponView>)]
    pub refused_coupons: sqlx::types::Json<Vec<RefusedCouponView>>,
    /// How many times the cart was opened again after an order placed from
    /// it failed before payment: its next order's token derives from it.
    pub placements: i32,
    /// What each coupon took off.
    #[sqlx(json)]
    pub discounts: Vec<DiscountView>,
    #[sqlx(json)]
    pub taxes: Vec<TaxView>,
    #[sqlx(skip)]
    pub buyer: Option<BuyerView>,
    /// The rate the prices were converted at (absent for INR).
    #[sqlx(skip)]
    pub fx: Option<FxView>,
    /// What stops this cart from being checked out, each with its code
    /// (empty: ready). Order placement enforces the same list.
    #[sqlx(skip)]
    pub checkout_blockers: Vec<Blocker>,
    #[sqlx(skip)]
    pub last_rejection: Option<RejectionView>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CartItemView {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub currency: String,
    pub unit_price_minor: i64,
    /// `unit_price_minor × quantity`.
    pub line_subtotal_minor: i64,
    pub line_discount_minor: i64,
    /// `line_subtotal_minor − line_discount_minor`.
    pub line_total_minor: i64,
    pub tax_class: String,
    /// False when the internship left the catalog: the line blocks checkout.
    pub available: bool,
    /// The billing period chosen for the line, if any.
    pub plan_id: Option<String>,
    pub plan_value: Option<i32>,
    pub plan_unit: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DiscountView {
    pub code: String,
    pub name: String,
    pub currency: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaxView {
    pub name: String,
    /// Decimal fraction, e.g. `0.09`.
    #[schema(value_type = String)]
    pub rate: rust_decimal::Decimal,
    pub currency: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuyerView {
    pub country: String,
    pub state: Option<String>,
    pub gstin: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FxView {
    pub base: String,
    pub quote: String,
    #[schema(value_type = String)]
    pub rate: rust_decimal::Decimal,
    pub as_of: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RefusedCouponView {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Blocker {
    pub code: i32,
    pub message: String,
}

/// Why a cart cannot be checked out as it stands: the rule's
/// ([`rules::cart::checkout_blockers`]), over the cart as Postgres has it.
pub fn checkout_blockers(cart: &CartView) -> Vec<Blocker> {
    let Some(status) = CartStatus::parse(&cart.status) else {
        // Only a sink bug writes another status: say so rather than guess.
        return vec![Blocker {
            code: ErrorCode::CartNotModifiable.code(),
            message: format!("the cart is {}", cart.status),
        }];
    };
    let refused: Vec<RefusedCoupon> = cart
        .refused_coupons
        .iter()
        .map(|r| RefusedCoupon {
            code: r.code.clone(),
            reason: r.reason.clone(),
        })
        .collect();
    rules::cart::checkout_blockers(
        status,
        cart.items
            .iter()
            .map(|i| (i.internship_id.as_str(), i.available)),
        &refused,
    )
    .into_iter()
    .map(|b| Blocker {
        code: b.code.code(),
        message: b.message,
    })
    .collect()
}

/// A command the processor refused, in the error body every refusal uses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectionView {
    pub command_id: String,
    #[serde(flatten)]
    pub body: crate::error::ErrorBody,
}

/// Who owns a cart and what state it is in, when the read model has it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Access {
    pub owner_user_id: Option<String>,
    pub status: String,
    pub version: i64,
}

pub async fn access(pool: &PgPool, token: &str) -> Result<Option<Access>, sqlx::Error> {
    sqlx::query_as("SELECT owner_user_id, status, version FROM carts WHERE cart_token = $1")
        .bind(token)
        .fetch_optional(pool)
        .await
}

/// The user's active cart (the newest, should a race have made two).
pub async fn active_cart_of(
    pool: &PgPool,
    user_id: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cart_token, version FROM carts WHERE owner_user_id = $1 AND status = 'active' ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// One statement: the cart's row with its lines, discounts and tax lines
/// as JSON arrays (a read is on every long-poll wake-up, so four round
/// trips per read were most of the ingress's statements).
const CART: &str = "
    SELECT c.cart_token, c.version, c.status, c.currency, c.subtotal_minor, c.discount_total_minor,
           c.tax_total_minor, c.total_minor, c.tax_inclusive, c.created_at, c.updated_at, c.owner_user_id,
           c.buyer_country, c.buyer_state, c.buyer_gstin, c.fx_base, c.fx_rate, c.fx_as_of, c.share_token,
           c.merged_into, c.analytics, c.coupons, c.order_token, c.refused_coupons, c.placements,
           c.rejection_command_id, c.rejection_code, c.rejection_message,
           COALESCE((SELECT json_agg(json_build_object(
                         'internship_id', i.internship_id, 'title', i.title, 'quantity', i.quantity,
                         'currency', i.currency, 'unit_price_minor', i.unit_price_minor,
                         'line_subtotal_minor', i.line_subtotal_minor, 'line_discount_minor', i.line_discount_minor,
                         'line_total_minor', i.line_total_minor, 'tax_class', i.tax_class,
                         'available', i.available, 'plan_id', i.plan_id, 'plan_value', i.plan_value,
                         'plan_unit', i.plan_unit) ORDER BY i.position)
                     FROM cart_items i WHERE i.cart_token = c.cart_token), '[]') AS items,
           COALESCE((SELECT json_agg(json_build_object(
                         'code', d.code, 'name', d.name, 'currency', d.currency, 'amount_minor', d.amount_minor)
                         ORDER BY d.position)
                     FROM cart_discounts d WHERE d.cart_token = c.cart_token), '[]') AS discounts,
           COALESCE((SELECT json_agg(json_build_object(
                         'name', t.name, 'rate', t.rate::text, 'currency', t.currency, 'amount_minor', t.amount_minor)
                         ORDER BY t.position)
                     FROM cart_tax_lines t WHERE t.cart_token = c.cart_token), '[]') AS taxes
    FROM carts c WHERE c.cart_token = $1";

pub async fn cart(pool: &PgPool, token: &str) -> Result<Option<CartView>, sqlx::Error> {
    let Some(mut cart) = sqlx::query_as::<_, CartView>(CART)
        .bind(token)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    cart.buyer = cart.buyer_country.clone().map(|country| BuyerView {
        country,
        state: cart.buyer_state.clone(),
        gstin: cart.buyer_gstin.clone(),
    });
    if let (Some(base), Some(rate), Some(as_of)) =
        (cart.fx_base.clone(), cart.fx_rate, cart.fx_as_of)
    {
        cart.fx = Some(FxView {
            base,
            quote: cart.currency.clone(),
            rate: rate.normalize(),
            as_of,
        });
    }
    if let (Some(command_id), Some(code), Some(message)) = (
        cart.rejection_command_id.clone(),
        cart.rejection_code,
        cart.rejection_message.clone(),
    ) {
        cart.last_rejection = Some(RejectionView {
            command_id,
            body: crate::error::rejection_body(code, message),
        });
    }
    cart.checkout_blockers = checkout_blockers(&cart);
    Ok(Some(cart))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, available: bool) -> CartItemView {
        CartItemView {
            internship_id: id.into(),
            title: id.into(),
            quantity: 1,
            currency: "INR".into(),
            unit_price_minor: 100,
            line_subtotal_minor: 100,
            line_discount_minor: 0,
            line_total_minor: 100,
            tax_class: "standard".into(),
            available,
            plan_id: None,
            plan_value: None,
            plan_unit: None,
        }
    }

    fn cart(status: &str, items: Vec<CartItemView>) -> CartView {
        let t = chrono::DateTime::from_timestamp_millis(0).unwrap();
        CartView {
            cart_token: "t".into(),
            version: 1,
            status: status.into(),
            currency: "INR".into(),
            subtotal_minor: 0,
            discount_total_minor: 0,
            tax_total_minor: 0,
            total_minor: 0,
            tax_inclusive: false,
            created_at: t,
            updated_at: t,
            owner_user_id: None,
            rejection_command_id: None,
            rejection_code: None,
            rejection_message: None,
            buyer_country: None,
            buyer_state: None,
            buyer_gstin: None,
            fx_base: None,
            fx_rate: None,
            fx_as_of: None,
            share_token: None,
            merged_into: None,
            order_token: None,
            analytics: sqlx::types::Json(Default::default()),
            coupons: sqlx::types::Json(vec![]),
            refused_coupons: sqlx::types::Json(vec![]),
            placements: 0,
            discounts: vec![],
            items,
            taxes: vec![],
            buyer: None,
            fx: None,
            checkout_blockers: vec![],
            last_rejection: None,
        }
    }

    fn codes(c: &CartView) -> Vec<i32> {
        checkout_blockers(c).iter().map(|b| b.code).collect()
    }

    #[test]
    fn an_unavailable_line_an_empty_cart_or_a_closed_cart_blocks_checkout() {
        assert!(codes(&cart("active", vec![item("a", true)])).is_empty());
        assert_eq!(
            codes(&cart("active", vec![item("a", true), item("b", false)])),
            [1003]
        );
        assert_eq!(codes(&cart("active", vec![])), [1008]);
        assert_eq!(codes(&cart("expired", vec![item("a", true)])), [1002]);
        assert_eq!(codes(&cart("merged", vec![item("a", true)])), [1005]);
    }
}
