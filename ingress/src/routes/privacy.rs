//! A person's own data: `GET /api/v1/me/personal-data` exports everything
//! we hold about them as JSON (carts, orders, enrollments, the email
//! addresses those carry), opened; `DELETE /api/v1/me/personal-data` erases it by
//! destroying their data key (`platform::pii`): every field sealed under
//! it, in every topic, table, rebuild and backup, no longer opens, while
//! their orders keep their money facts. The erasure is an event on the
//! audit trail, once (its id derives from the request's Idempotency-Key;
//! erasing twice changes nothing more).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::Caller;
use crate::commands::AuditedChange;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::CommandIds;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new().routes(routes!(export_me, erase_me))
}

/// The most carts and orders an export holds (newest first).
const EXPORT_LIMIT: i64 = 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PersonalData {
    pub user_id: String,
    /// The person's carts, their personal fields opened.
    pub carts: Vec<crate::read_model::CartView>,
    /// The person's orders, their personal fields opened.
    pub orders: Vec<crate::read_model::orders::OrderView>,
    pub enrollments: Vec<super::enrollments::EnrollmentView>,
    /// Every email address those carry (the orders' buyer address, the
    /// enrollments' holders), once each.
    pub emails: Vec<String>,
}

/// Everything held about the signed-in person, as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/me/personal-data",
    tag = "privacy",
    responses(
        (status = 200, description = "the person's data", body = PersonalData),
        (status = 401, description = "not signed in", body = ErrorBody),
    )
)]
pub async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some(user) = caller.user_id() else {
        return Err(ApiError::Unauthorized(
            "sign in to export your personal data".into(),
        ));
    };
    let tokens: Vec<String> = sqlx::query_scalar(
        "SELECT cart_token FROM carts WHERE owner_user_id = $1 ORDER BY updated_at DESC LIMIT $2",
    )
    .bind(user)
    .bind(EXPORT_LIMIT)
    .fetch_all(&state.pool)
    .await?;
    let mut carts = Vec::with_capacity(tokens.len());
    for token in tokens {
        if let Some(mut cart) = crate::read_model::cart(&state.pool, &token).await? {
            crate::personal::open_cart(&state.vault, &mut cart).await?;
            carts.push(cart);
        }
    }
    let mut orders = crate::read_model::orders::orders_of(&state.pool, user, EXPORT_LIMIT).await?;
    for order in &mut orders {
        crate::personal::open_order(&state.vault, order).await?;
    }
    let mut enrollments = super::enrollments::enrollments_of(&state.pool, user, None).await?;
    for e in &mut enrollments {
        crate::personal::open_field(&state.vault, &mut e.email).await?;
    }
    let mut emails: Vec<String> = orders
        .iter()
        .filter_map(|o| o.buyer_email.clone())
        .chain(enrollments.iter().filter_map(|e| e.email.clone()))
        .collect();
    emails.sort();
    emails.dedup();
    Ok(Json(PersonalData {
        user_id: user.to_owned(),
        carts,
        orders,
        enrollments,
        emails,
    })
    .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erased {
    /// Whether a data key was destroyed now (false: there was none, or it
    /// was destroyed before).
    pub erased: bool,
}

/// Erase the signed-in person's personal data: their data key is
/// destroyed, so what was sealed under it (a GSTIN) reads as absent from
/// now on, everywhere. Orders, their totals and their history stay.
#[utoipa::path(
    delete,
    path = "/api/v1/me/personal-data",
    tag = "privacy",
    responses(
        (status = 200, description = "erased", body = Erased),
        (status = 401, description = "not signed in", body = ErrorBody),
    )
)]
pub async fn erase_me(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
) -> Result<Response, ApiError> {
    let Some(user) = caller.user_id() else {
        return Err(ApiError::Unauthorized(
            "sign in to erase your personal data".into(),
        ));
    };
    // Their own key, the keys of guest carts they signed in with, and of
    // orders placed with the address their token names.
    let own = state
        .vault
        .erase(&crate::personal::user_person(user))
        .await
        .map_err(crate::personal::pii_error)?;
    let mut linked = state
        .vault
        .erase_alias(&crate::personal::user_alias(user))
        .await
        .map_err(crate::personal::pii_error)?;
    if let Some(email) = caller.0.as_ref().and_then(|u| u.email.as_deref()) {
        linked += state
            .vault
            .erase_alias(&crate::personal::email_alias(&state.pseudonyms, email))
            .await
            .map_err(crate::personal::pii_error)?;
    }
    let erased = own || linked > 0;
    let command_id = ids.command(0).to_string();
    state
        .commands
        .audit(AuditedChange {
            actor: format!("user:{user}"),
            person: Some(user.to_owned()),
            command_id: &command_id,
            action: "person.erased",
            subject_kind: "person",
            subject_id: user,
            offset: 0,
            reason: match (own, linked) {
                (false, 0) => "no data key to destroy".into(),
                (true, 0) => "the person's data key was destroyed".into(),
                (true, n) => format!("the person's data key and {n} linked key(s) were destroyed"),
                (false, n) => format!("{n} linked key(s) were destroyed (the person had none)"),
            },
            amount: None,
        })
        .await?;
    Ok(Json(Erased { erased }).into_response())
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseByEmail {
    /// The address the person gave (a guest at checkout, or a buyer).
    pub email: String,
    /// Why (the person's request, its ticket): kept in the audit trail.
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasedByEmail {
    /// How many data keys were destroyed (each guest cart or buyer the
    /// address placed orders as).
    pub erased_keys: u64,
}

/// Erase a person by email (a guest has no account to do it themselves):
/// the data keys of every order placed with the address are destroyed.
/// The audit trail records the erasure under the address's one-way
/// reference, never the address.
#[utoipa::path(
    post,
    path = "/api/v1/admin/erasures",
    tag = "admin",
    request_body(content = EraseByEmail, example = json!({"email": "guest@example.com", "reason": "the guest asked by email, ticket 4711"})),
    responses(
        (status = 200, description = "erased", body = ErasedByEmail),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 422, description = "a malformed email or an empty reason", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn erase_by_email(
    State(state): State<AppState>,
    crate::auth::Admin(admin): crate::auth::Admin,
    ids: CommandIds,
    crate::extract::ApiJson(input): crate::extract::ApiJson<EraseByEmail>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let email = match schemas::values::Email::parse(&input.email) {
        Ok(e) => Some(String::from(e)),
        Err(e) => {
            errors.push(format!("email: {e}"));
            None
        }
    };
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        errors.push("reason: 1-500 characters".into());
    }
    let (Some(email), true) = (email, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let alias = crate::personal::email_alias(&state.pseudonyms, &email);
    let erased_keys = state
        .vault
        .erase_alias(&alias)
        .await
        .map_err(crate::personal::pii_error)?;
    let command_id = ids.command(0).to_string();
    state
        .commands
        .audit(AuditedChange {
            actor: format!("admin:{}", admin.id),
            person: None,
            command_id: &command_id,
            action: "person.erased",
            subject_kind: "email",
            subject_id: &alias,
            offset: 0,
            reason: format!("{reason} ({erased_keys} data key(s) destroyed)"),
            amount: None,
        })
        .await?;
    Ok(Json(ErasedByEmail { erased_keys }).into_response())
}
