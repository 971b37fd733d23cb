//! Queries over the read model the sinks write.

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
    pub total_minor: i64,
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
    #[sqlx(skip)]
    pub items: Vec<CartItemView>,
    #[sqlx(skip)]
    pub last_rejection: Option<RejectionView>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CartItemView {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub currency: String,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

/// A command the processor refused, in the error body every refusal uses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectionView {
    pub command_id: String,
    #[serde(flatten)]
    pub body: crate::error::ErrorBody,
}

/// The owner of a cart: `None` when the cart is not in the read model,
/// `Some(None)` for a guest cart.
pub async fn owner(pool: &PgPool, token: &str) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner_user_id FROM carts WHERE cart_token = $1")
        .bind(token)
        .fetch_optional(pool)
        .await
}

pub async fn cart(pool: &PgPool, token: &str) -> Result<Option<CartView>, sqlx::Error> {
    let Some(mut cart) = sqlx::query_as::<_, CartView>(
        "SELECT cart_token, version, status, currency, subtotal_minor, total_minor, created_at, updated_at, owner_user_id,
                rejection_command_id, rejection_code, rejection_message
         FROM carts WHERE cart_token = $1",
    )
    .bind(token)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    cart.items = sqlx::query_as::<_, CartItemView>(
        "SELECT internship_id, title, quantity, currency, unit_price_minor, line_total_minor
         FROM cart_items WHERE cart_token = $1 ORDER BY position",
    )
    .bind(token)
    .fetch_all(pool)
    .await?;
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
    Ok(Some(cart))
}
