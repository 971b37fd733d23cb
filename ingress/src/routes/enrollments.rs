//! `GET /api/v1/me/enrollments`: the signed-in user's enrollments and seats,
//! as the enrollments sink wrote them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(my_enrollments))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EnrollmentView {
    #[schema(value_type = String)]
    pub enrollment_id: uuid::Uuid,
    pub order_token: String,
    pub internship_id: String,
    pub title: String,
    /// 1: the caller is enrolled; more: seats the caller owns, to assign.
    pub seats: i32,
    /// `active` or `revoked`.
    pub status: String,
    pub access_granted: bool,
    pub progress_percent: i32,
    pub certificate_eligible: bool,
    pub enrolled_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollmentList {
    /// Newest first.
    pub enrollments: Vec<EnrollmentView>,
}

/// The signed-in user's enrollments (and seats bought for others).
#[utoipa::path(
    get,
    path = "/api/v1/me/enrollments",
    tag = "enrollments",
    responses(
        (status = 200, description = "the caller's enrollments", body = EnrollmentList),
        (status = 401, description = "no bearer token, or an invalid one", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn my_enrollments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some(user) = caller.user_id() else {
        return Err(ApiError::Unauthorized(
            "sign in to list your enrollments".into(),
        ));
    };
    let enrollments = sqlx::query_as::<_, EnrollmentView>(
        "SELECT enrollment_id, order_token, internship_id, title, seats, status, access_granted,
                progress_percent, certificate_eligible, enrolled_at
         FROM enrollments WHERE buyer_user_id = $1 ORDER BY enrolled_at DESC, internship_id LIMIT 200",
    )
    .bind(user)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(EnrollmentList { enrollments }).into_response())
}
