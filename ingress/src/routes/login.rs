//! A guest cart meeting a login.
//!
//! - `POST /api/v1/cart/{token}/auth/check`: what logging in would do to
//!   this cart (nothing, attach it to the user, or merge it into the
//!   user's active cart);
//! - `POST /api/v1/cart/{token}/auth/login` (bearer token required): does
//!   it. A merge marks the guest cart `merged` and the cart processor sends
//!   its items on to the user's cart, so at most one cart stays active.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use schemas::codes::ErrorCode;
use schemas::records::cart::{AttachOwner, Command, MergeInto};

use super::cart::{authorize, parse_token, send_to_cart};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::CommandIds;
use crate::read_model;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(check))
        .routes(routes!(login))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginAction {
    /// The cart is already the caller's.
    None,
    /// The guest cart becomes the caller's.
    Attach,
    /// The guest cart's items move into the caller's active cart.
    Merge,
    /// There is no caller to log in (no bearer token).
    LoginRequired,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginCheck {
    pub guest_cart: bool,
    pub action: LoginAction,
    /// The caller's active cart the items would move into.
    pub merge_into: Option<String>,
}

async fn plan(state: &AppState, caller: &Caller, token: &str) -> Result<LoginCheck, ApiError> {
    let access = read_model::access(&state.pool, token)
        .await?
        .ok_or_else(|| ApiError::Domain(ErrorCode::CartNotFound, "cart not found".into()))?;
    let guest_cart = access.owner_user_id.is_none();
    let Some(user) = caller.user_id() else {
        return Ok(LoginCheck {
            guest_cart,
            action: LoginAction::LoginRequired,
            merge_into: None,
        });
    };
    if !guest_cart {
        return Ok(LoginCheck {
            guest_cart,
            action: LoginAction::None,
            merge_into: None,
        });
    }
    match read_model::active_cart_of(&state.pool, user).await? {
        Some((other, _)) if other != token => Ok(LoginCheck {
            guest_cart,
            action: LoginAction::Merge,
            merge_into: Some(other),
        }),
        _ => Ok(LoginCheck {
            guest_cart,
            action: LoginAction::Attach,
            merge_into: None,
        }),
    }
}

/// What logging in would do to this cart.
#[utoipa::path(post, path = "/api/v1/cart/{token}/auth/check", tag = "cart",
    params(("token" = String, Path, description = "the cart token")),
    responses(
        (status = 200, description = "the plan", body = LoginCheck),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
    ))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<LoginCheck>, ApiError> {
    let token = parse_token(&token)?;
    authorize(&state, &caller, &token).await?;
    Ok(Json(plan(&state, &caller, token.as_str()).await?))
}

/// Attach a guest cart to the logged-in caller, or merge it into theirs.
#[utoipa::path(post, path = "/api/v1/cart/{token}/auth/login", tag = "cart",
    params(("token" = String, Path, description = "the guest cart's token")),
    responses(
        (status = 200, description = "the cart is already the caller's: nothing written", body = LoginResult),
        (status = 202, description = "attached or merged; `cart_token` is the cart to use from now on", body = LoginResult),
        (status = 401, description = "no or invalid bearer token", body = ErrorBody),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let Some(user) = caller.user_id().map(str::to_owned) else {
        return Err(ApiError::Unauthorized(
            "logging a cart in requires a bearer token".into(),
        ));
    };
    authorize(&state, &caller, &token).await?;
    let plan = plan(&state, &caller, token.as_str()).await?;
    let guest = token.as_str().to_owned();
    let (command, use_cart) = match (plan.action, plan.merge_into) {
        (LoginAction::Merge, Some(target)) => (
            Command::MergeInto(MergeInto {
                target_cart_token: target.clone(),
                user_id: user.clone(),
            }),
            target,
        ),
        (LoginAction::Attach, _) => (
            Command::AttachOwner(AttachOwner {
                user_id: user.clone(),
            }),
            guest.clone(),
        ),
        _ => {
            let version = read_model::access(&state.pool, &guest)
                .await?
                .map(|a| a.version)
                .unwrap_or(-1);
            let body = LoginResult {
                cart_token: guest,
                guest_cart_version: version,
                merged: false,
            };
            return Ok((StatusCode::OK, Json(body)).into_response());
        }
    };
    // What the guest sealed under the cart's key is the user's now: their
    // erasure must reach it.
    crate::personal::link_guest_cart(&state.vault, &user, &token).await?;
    let merged = use_cart != guest;
    let version = send_to_cart(&state, token, ids.command(0), command)
        .await?
        .version;
    let body = LoginResult {
        cart_token: use_cart,
        guest_cart_version: version,
        merged,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResult {
    /// The cart to use from now on: the guest cart (attached), or the
    /// user's cart it was merged into.
    pub cart_token: String,
    /// The guest cart's version once the login is applied.
    pub guest_cart_version: i64,
    pub merged: bool,
}
