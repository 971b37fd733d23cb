//! Orders as the API returns them, read from the tables the orders sink
//! writes (`orders`, `order_attempts`, `order_status_history`).

use serde::Serialize;
use sqlx::PgPool;

use super::RejectionView;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderView {
    pub order_token: String,
    /// The order's version (the offset of its last command).
    pub version: i64,
    /// `pending`, `awaiting_payment`, `paid`, `failed`, `expired` or `refunded`.
    pub status: String,
    /// Not shown: a guest's cart token is a bearer secret, and an order
    /// token may be shared more widely than the cart's.
    #[serde(skip)]
    pub cart_token: String,
    pub buyer_user_id: Option<String>,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_total_minor: i64,
    pub tax_total_minor: i64,
    pub total_minor: i64,
    /// The cart as priced when the order was placed (lines, discounts,
    /// taxes, totals, FX rate and its time, table versions): what is charged.
    #[schema(value_type = Object)]
    pub placed: serde_json::Value,
    /// The order's coupons and where their reservations stand
    /// (`requested`, `reserved`, `refused`, `committed`, `released`).
    #[schema(value_type = Vec<Object>)]
    pub coupons: serde_json::Value,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    /// Where the order's emails go.
    pub buyer_email: Option<String>,
    /// Set when the payment landed after the order expired or failed:
    /// `enrolled` (taken as if on time) or `refund_due` (not enrolled; the
    /// money is to be refunded).
    pub late_payment: Option<String>,
    /// The order's refund, once one was asked for: `status` (`requested`,
    /// `pending`, `processed`, `failed`), `reason`, `requested_by`,
    /// `requested_at`, `gateway`, `refund_id`, `failure`.
    #[schema(value_type = Option<Object>)]
    pub refund: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    pub rejection_command_id: Option<String>,
    #[serde(skip)]
    pub rejection_code: Option<i32>,
    #[serde(skip)]
    pub rejection_message: Option<String>,
    /// Payment attempts, oldest first; the last is the current one.
    #[sqlx(json)]
    pub attempts: Vec<AttemptView>,
    /// Every transition, and every refused one (`refused_code` set).
    #[sqlx(json)]
    pub history: Vec<TransitionView>,
    /// The last command the order refused, in the error body refusals use.
    #[sqlx(skip)]
    pub last_rejection: Option<RejectionView>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub number: i32,
    /// The buyer's handle on this attempt; valid until `expires_at`.
    pub payment_token: String,
    /// `open`, `paid`, `failed` or `expired`.
    pub status: String,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub gateway: Option<String>,
    pub payment_ref: Option<String>,
    /// The gateway's session: Razorpay order id, or Stripe Checkout Session id.
    pub session_id: Option<String>,
    /// Stripe: where to send the buyer (the hosted checkout page).
    pub checkout_url: Option<String>,
    /// Razorpay: open Razorpay Checkout with this key id, `session_id` as
    /// its `order_id`, and the order's total and currency.
    pub razorpay_key_id: Option<String>,
    /// Every gateway call made to open the session.
    #[schema(value_type = Vec<Object>)]
    pub calls: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TransitionView {
    pub seq: i32,
    pub from_status: Option<String>,
    pub to_status: String,
    pub reason: String,
    pub actor: String,
    pub correlation_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Set when the transition was refused: the order stayed where it was.
    pub refused_code: Option<i32>,
}

const ORDER_COLUMNS: &str = "order_token, version, status, cart_token, buyer_user_id, currency, subtotal_minor,
    discount_total_minor, tax_total_minor, total_minor, placed, coupons, success_url, cancel_url, buyer_email, late_payment, refund, created_at, updated_at,
    rejection_command_id, rejection_code, rejection_message";

/// What of the frozen cart an order shows: its pricing, not the cart's
/// private handles (share token, device id, attribution).
const PRIVATE_CART_FIELDS: [&str; 4] = ["share_token", "device_id", "analytics", "cart_token"];

fn hide_private(order: &mut OrderView) {
    if let Some(placed) = order.placed.as_object_mut() {
        for field in PRIVATE_CART_FIELDS {
            placed.remove(field);
        }
    }
}

/// The order `token` with its attempts and history, in one statement
/// (one snapshot, so the three parts are of one version, and one round
/// trip: a long-poll reads the order at every change).
pub async fn order(pool: &PgPool, token: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(mut order) = sqlx::query_as::<_, OrderView>(&format!(
        "SELECT {ORDER_COLUMNS},
            COALESCE((SELECT json_agg(json_build_object(
                          'number', a.number, 'payment_token', a.payment_token, 'status', a.status,
                          'opened_at', a.opened_at, 'expires_at', a.expires_at, 'gateway', a.gateway,
                          'payment_ref', a.payment_ref, 'session_id', a.session_id,
                          'checkout_url', a.checkout_url, 'razorpay_key_id', a.razorpay_key_id,
                          'calls', a.calls) ORDER BY a.number)
                      FROM order_attempts a WHERE a.order_token = o.order_token), '[]') AS attempts,
            COALESCE((SELECT json_agg(json_build_object(
                          'seq', h.seq, 'from_status', h.from_status, 'to_status', h.to_status,
                          'reason', h.reason, 'actor', h.actor, 'correlation_id', h.correlation_id,
                          'at', h.at, 'refused_code', h.refused_code) ORDER BY h.seq)
                      FROM order_status_history h WHERE h.order_token = o.order_token), '[]') AS history
         FROM orders o WHERE o.order_token = $1"
    ))
    .bind(token)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    hide_private(&mut order);
    if let (Some(command_id), Some(code), Some(message)) = (
        order.rejection_command_id.clone(),
        order.rejection_code,
        order.rejection_message.clone(),
    ) {
        let mut body = crate::error::rejection_body(code, message);
        if let Some(coupon) = refused_coupon(&order) {
            // The buyer's way on: the cart is open again (see
            // `rules::order::cart_reopening`).
            body.error.suggested_action = format!(
                "Coupon {coupon} ran out before payment, and your cart is open again at \
                 /api/v1/cart/{cart}. Remove the coupon (DELETE /api/v1/cart/{cart}/coupon/{coupon}), \
                 read the new price on the cart, then place the order again (POST /api/v1/order \
                 with the cart_token and, as cart_version, the version the removal answered).",
                cart = order.cart_token
            );
        }
        order.last_rejection = Some(RejectionView { command_id, body });
    }
    Ok(Some(order))
}

/// The coupon a failed order was refused for, if that is why it failed.
fn refused_coupon(order: &OrderView) -> Option<&str> {
    if order.status != "failed" {
        return None;
    }
    order
        .coupons
        .as_array()?
        .iter()
        .find(|h| {
            h["status"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("refused"))
        })
        .and_then(|h| h["code"].as_str())
}

/// `user`'s orders, newest first (without attempts and history: read one
/// order for those).
pub async fn orders_of(
    pool: &PgPool,
    user: &str,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let mut orders = sqlx::query_as::<_, OrderView>(&format!(
        "SELECT {ORDER_COLUMNS}, '[]'::json AS attempts, '[]'::json AS history
         FROM orders WHERE buyer_user_id = $1 ORDER BY created_at DESC, order_token LIMIT $2"
    ))
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    orders.iter_mut().for_each(hide_private);
    Ok(orders)
}
