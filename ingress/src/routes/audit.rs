//! `GET /api/v1/admin/audit`: the audit trail (the `audit_log` table the
//! audit sink appends `audit.events` to), for admins, by order, by person
//! and by time, newest first. Read-only: nothing on this side can change
//! the trail, and the table refuses it anyway.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use schemas::values::OrderToken;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The most events one answer holds.
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub event_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// `<subject>.<verb>`: `order.paid`, `refund.requested`, `coupon.committed`…
    pub action: String,
    /// What changed: `order`, `internship`, `fx_rate`, `coupon`.
    pub subject_kind: String,
    pub subject_id: String,
    pub subject_version: i64,
    /// The signed-in person concerned; absent for a guest.
    pub person: Option<String>,
    /// `user:<id>`, `admin:<id>`, a gateway, or `system`.
    pub actor: String,
    pub reason: String,
    pub correlation_id: String,
    /// The money the change moved or priced, in minor units.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditTrail {
    /// Newest first.
    pub events: Vec<AuditEntry>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only the events of this order.
    pub order_token: Option<String>,
    /// Only the events of this kind of subject: `order`, `internship`,
    /// `fx_rate`, `coupon`.
    pub subject_kind: Option<String>,
    /// Only the events of this subject (with `subject_kind`).
    pub subject_id: Option<String>,
    /// Only the events concerning this person: their account's id (the
    /// token subject), or the pseudonym the trail names them by.
    pub person: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this instant (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many (1-500, default 200).
    pub limit: Option<i64>,
}

/// The audit trail: every change of money or access (order transitions
/// and refusals, payments, refunds, coupon uses, admins' changes to the
/// catalog, exchange rates and coupons) with its actor, reason and
/// correlation id.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "the events, newest first", body = AuditTrail),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 422, description = "a malformed order token, person or limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit_trail(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let order = q.order_token.as_deref().map(OrderToken::parse).transpose();
    let order = order.unwrap_or_else(|e| {
        errors.push(format!("order_token: {e}"));
        None
    });
    if q.subject_id.is_some() && q.subject_kind.is_none() {
        errors.push("subject_id: needs subject_kind".into());
    }
    if q.person
        .as_deref()
        .is_some_and(|p| p.is_empty() || p.len() > 200)
    {
        errors.push("person: 1-200 characters".into());
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(format!("limit: 1-{MAX_LIMIT}"));
    }
    if let (Some(since), Some(until)) = (q.since, q.until) {
        if since > until {
            errors.push("since: after until".into());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let events = sqlx::query_as::<_, AuditEntry>(
        "SELECT event_id, at, action, subject_kind, subject_id, subject_version, person, actor,
                reason, correlation_id, amount_minor, currency
         FROM audit_log
         WHERE ($1::text IS NULL OR (subject_kind = 'order' AND subject_id = $1))
           AND ($2::text IS NULL OR person = $2 OR person = $8)
           AND ($3::timestamptz IS NULL OR at >= $3)
           AND ($4::timestamptz IS NULL OR at < $4)
           AND ($6::text IS NULL OR subject_kind = $6)
           AND ($7::text IS NULL OR subject_id = $7)
         ORDER BY at DESC, event_id LIMIT $5",
    )
    .bind(order.as_ref().map(OrderToken::as_str))
    .bind(q.person.as_deref())
    .bind(q.since)
    .bind(q.until)
    .bind(limit)
    .bind(q.subject_kind.as_deref())
    .bind(q.subject_id.as_deref())
    .bind(q.person.as_deref().map(|p| state.pseudonyms.user(p)))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(AuditTrail { events }).into_response())
}
