//! Sharing a cart, and attribution data.
//!
//! - `POST /api/v1/cart/{token}/share`: returns the read-only share token
//!   (derived from the cart token: sharing twice gives the same link);
//! - `GET /api/v1/cart/shared/{share_token}`: the shared cart's items and
//!   prices, without buyer, owner or cart token;
//! - `POST /api/v1/cart/shared/{share_token}/clone`: a new cart with the
//!   same items (the caller's, or a guest cart);
//! - `PUT /api/v1/cart/{token}/analytics`: attribution pairs (utm_*, …).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use schemas::codes::ErrorCode;
use schemas::records::cart::{AttachAnalytics, Command, ItemRequest, ShareCart};
use schemas::values::{share_token_for, CartToken};

use super::cart::{authorize, open_cart, parse_token, send_to_cart, Accepted};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::CommandIds;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(share_cart))
        .routes(routes!(shared_cart))
        .routes(routes!(clone_shared))
        .routes(routes!(attach_analytics))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Shared {
    pub share_token: String,
    /// The cart's version once sharing is applied.
    pub version: i64,
}

/// Share a cart read-only.
#[utoipa::path(post, path = "/api/v1/cart/{token}/share", tag = "sharing",
    params(("token" = String, Path, description = "the cart token")),
    responses(
        (status = 202, description = "shared; the view is at /api/v1/cart/shared/{share_token}", body = Shared),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
    ))]
pub async fn share_cart(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    authorize(&state, &caller, &token).await?;
    let share_token = share_token_for(&token);
    let command = Command::ShareCart(ShareCart {
        share_token: share_token.clone(),
        actor_user_id: caller.user_id().map(str::to_owned),
    });
    let version = send_to_cart(&state, token, ids.command(0), command)
        .await?
        .version;
    Ok((
        StatusCode::ACCEPTED,
        Json(Shared {
            share_token,
            version,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SharedItem {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    pub available: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedCart {
    pub currency: String,
    pub items: Vec<SharedItem>,
    pub subtotal_minor: i64,
}

/// The read-only view of a shared cart.
#[utoipa::path(get, path = "/api/v1/cart/shared/{share_token}", tag = "sharing",
    params(("share_token" = String, Path, description = "from POST /cart/{token}/share")),
    responses(
        (status = 200, description = "items and prices", body = SharedCart),
        (status = 404, description = "no cart is shared under this token", body = ErrorBody),
    ))]
pub async fn shared_cart(
    State(state): State<AppState>,
    Path(share_token): Path<String>,
) -> Result<Json<SharedCart>, ApiError> {
    let (cart, items) = load_shared(&state, &share_token).await?;
    Ok(Json(SharedCart {
        currency: cart.0,
        subtotal_minor: cart.1,
        items,
    }))
}

async fn load_shared(
    state: &AppState,
    share_token: &str,
) -> Result<((String, i64, String), Vec<SharedItem>), ApiError> {
    let not_found = || {
        ApiError::Domain(
            ErrorCode::CartNotFound,
            "no cart is shared under this token".into(),
        )
    };
    CartToken::parse(share_token).map_err(|_| not_found())?;
    let cart: (String, i64, String) = sqlx::query_as(
        "SELECT currency, subtotal_minor, cart_token FROM carts WHERE share_token = $1",
    )
    .bind(share_token)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let items = sqlx::query_as::<_, SharedItem>(
        "SELECT internship_id, title, quantity, unit_price_minor, line_total_minor, available
         FROM cart_items WHERE cart_token = $1 ORDER BY position",
    )
    .bind(&cart.2)
    .fetch_all(&state.pool)
    .await?;
    Ok((cart, items))
}

/// Start a new cart with a shared cart's items.
#[utoipa::path(post, path = "/api/v1/cart/shared/{share_token}/clone", tag = "sharing",
    params(("share_token" = String, Path, description = "from POST /cart/{token}/share")),
    responses(
        (status = 201, description = "a new cart with the same items", body = Accepted),
        (status = 200, description = "the caller's active cart, with the items added", body = Accepted),
        (status = 404, description = "no cart is shared under this token", body = ErrorBody),
    ))]
pub async fn clone_shared(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(share_token): Path<String>,
) -> Result<Response, ApiError> {
    let (_, items) = load_shared(&state, &share_token).await?;
    // Lines whose internship left the catalog are not copied.
    let items = items
        .into_iter()
        .filter(|i| i.available)
        .map(|i| ItemRequest {
            internship_id: i.internship_id,
            quantity: i.quantity,
        })
        .collect();
    open_cart(&state, &caller, &ids, "INR".into(), items, None).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsInput {
    /// At most 20 pairs; keys 1-64 characters, values at most 256.
    pub pairs: BTreeMap<String, String>,
}

/// Attach attribution data to a cart.
#[utoipa::path(put, path = "/api/v1/cart/{token}/analytics", tag = "cart",
    params(("token" = String, Path, description = "the cart token")),
    request_body(content = AnalyticsInput, example = json!({"pairs": {"utm_source": "newsletter", "utm_campaign": "spring"}})),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "too many or too long pairs", body = ErrorBody),
    ))]
pub async fn attach_analytics(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<AnalyticsInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let bad_key = |k: &String| {
        k.is_empty()
            || k.len() > 64
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let mut errors = Vec::new();
    if input.pairs.is_empty() || input.pairs.len() > 20 {
        errors.push("pairs: 1 to 20 pairs".to_owned());
    }
    if input.pairs.keys().any(bad_key) {
        errors.push("pairs: keys are 1-64 of A-Z a-z 0-9 - _ .".to_owned());
    }
    if input
        .pairs
        .values()
        .any(|v| v.len() > 256 || v.chars().any(char::is_control))
    {
        errors.push("pairs: values are at most 256 printable characters".to_owned());
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    authorize(&state, &caller, &token).await?;
    let command = Command::AttachAnalytics(AttachAnalytics {
        pairs: input.pairs,
        actor_user_id: caller.user_id().map(str::to_owned),
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(super::cart::accepted)
}
