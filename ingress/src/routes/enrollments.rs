//! Enrollments: the signed-in user's enrollments and seats, and the
//! assignment of an order's seats to people.
//!
//! - `GET /api/v1/me/enrollments`: as the enrollments sink wrote them;
//! - `POST /api/v1/orders/{order_token}/seats/assign`: the order's buyer
//!   assigns seats of a paid line of quantity > 1 by email. The enrollment
//!   processor decides (from the buyer's book, never from the read model);
//!   this handler answers early what the read model already shows (an
//!   order not paid, no seats of that internship, too few seats left for
//!   the new emails), with the very rule the processor applies
//!   ([`rules::enrollment::plan_seats`]), then writes `AssignSeats` to
//!   `enrollment.commands` keyed by the buyer;
//! - `GET /api/v1/admin/support-cases`: the support cases (paid lines that
//!   could not be enrolled) as the support-cases sink wrote them, for
//!   people to act on (registered in the admin group, `routes::api`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use rules::enrollment::{self, SeatRefusal};
use schemas::codes::ErrorCode;
use schemas::records::enrollment::{
    AssignSeats, Enrollment, EnrollmentCmd, EnrollmentCommand, EnrollmentStatus,
};
use schemas::topics::ENROLLMENT_COMMANDS;
use schemas::values::{Email, InternshipId, OrderToken};

use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::CommandIds;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(my_enrollments))
        .routes(routes!(assign_seats))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EnrollmentView {
    #[schema(value_type = String)]
    pub enrollment_id: uuid::Uuid,
    pub order_token: String,
    pub internship_id: String,
    pub title: String,
    /// 1: an enrollment of one person; more: a block of seats the caller
    /// owns, to assign.
    pub seats: i32,
    /// Of a block of seats: how many are not assigned yet (absent otherwise).
    pub seats_left: Option<i32>,
    /// `active` or `revoked`.
    pub status: String,
    pub access_granted: bool,
    pub progress_percent: i32,
    pub certificate_eligible: bool,
    pub enrolled_at: chrono::DateTime<chrono::Utc>,
    /// Who the enrollment is for: the caller's email, or the address a seat
    /// was assigned to.
    pub email: Option<String>,
    /// Of an assigned seat: the block it came from.
    #[schema(value_type = Option<String>)]
    pub seat_of: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollmentList {
    /// Newest first.
    pub enrollments: Vec<EnrollmentView>,
    /// With `?order=` and `Prefer: wait=N`: true when the order had no
    /// enrollment visible yet when the wait ended.
    pub stale: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentsQuery {
    /// Only the enrollments of this order (with `Prefer: wait=N`, waits
    /// up to N seconds for the first of them to be visible).
    pub order: Option<String>,
}

/// The signed-in user's enrollments, seats bought for others, and the
/// seats assigned from them; a guest reads their order's with `?order=T`
/// (the order token is their credential). With `?order=T`, only order T's; adding
/// `Prefer: wait=N` (at most 30) answers as soon as order T's first
/// enrollment is visible, or after N seconds with `"stale": true`: a
/// checkout's confirmation page waits here instead of polling.
#[utoipa::path(
    get,
    path = "/api/v1/me/enrollments",
    tag = "enrollments",
    params(
        EnrollmentsQuery,
        ("Prefer" = Option<String>, Header, description = "`wait=N` with `order`: wait up to N seconds for the order's first enrollment"),
    ),
    responses(
        (status = 200, description = "the caller's enrollments", body = EnrollmentList),
        (status = 401, description = "no bearer token and no order, or an invalid token", body = ErrorBody),
        (status = 422, description = "malformed order token", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn my_enrollments(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EnrollmentsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let order = q
        .order
        .as_deref()
        .map(super::orders::parse_order)
        .transpose()?;
    // A guest's order token is their credential for that order: with it,
    // they read the order's enrollments (a guest has no others).
    let owner = match (caller.user_id(), &order) {
        (Some(user), _) => Owner::User(user.to_owned()),
        (None, Some(order)) => Owner::Guest(enrollment::buyer_key(None, order.as_str())),
        (None, None) => {
            return Err(ApiError::Unauthorized(
                "sign in to list your enrollments (a guest names the order: ?order=)".into(),
            ))
        }
    };
    let read = || async {
        match &owner {
            Owner::User(user) => enrollments_of(&state.pool, user, order.as_ref()).await,
            Owner::Guest(key) => guest_enrollments_of(&state.pool, key).await,
        }
    };
    let (enrollments, seen) = match (&order, super::cart::preferred_wait(&headers)) {
        (Some(order), Some(wait)) => {
            state
                .waiters
                .wait_until(
                    &platform::wakeups::enrolled_key(order.as_str()),
                    wait,
                    1,
                    read,
                    |list: &Vec<EnrollmentView>| (!list.is_empty()).then_some(1),
                )
                .await?
        }
        _ => (read().await?, true),
    };
    let mut enrollments = enrollments;
    for e in &mut enrollments {
        crate::personal::open_field(&state.vault, &mut e.email).await?;
    }
    Ok(Json(EnrollmentList {
        enrollments,
        stale: !seen,
    })
    .into_response())
}

/// Whose enrollments a request reads.
enum Owner {
    User(String),
    /// A guest's order, by its buyer key (`guest:<order token>`).
    Guest(String),
}

/// The columns of an [`EnrollmentView`], from `enrollments`.
const VIEW_COLUMNS: &str = "enrollment_id, order_token, internship_id, title, seats,
    CASE WHEN seats > 1 AND seat_of IS NULL THEN seats - seats_assigned END AS seats_left,
    status, access_granted, progress_percent, certificate_eligible, enrolled_at, email, seat_of";

/// A guest order's enrollments (its buyer key), newest first.
async fn guest_enrollments_of(
    pool: &sqlx::PgPool,
    buyer_key: &str,
) -> Result<Vec<EnrollmentView>, sqlx::Error> {
    sqlx::query_as::<_, EnrollmentView>(&format!(
        "SELECT {VIEW_COLUMNS} FROM enrollments WHERE buyer_key = $1 AND buyer_user_id IS NULL
         ORDER BY enrolled_at DESC, internship_id, email LIMIT 200"
    ))
    .bind(buyer_key)
    .fetch_all(pool)
    .await
}

/// `user`'s enrollments, newest first; only `order`'s when given.
pub(crate) async fn enrollments_of(
    pool: &sqlx::PgPool,
    user: &str,
    order: Option<&OrderToken>,
) -> Result<Vec<EnrollmentView>, sqlx::Error> {
    sqlx::query_as::<_, EnrollmentView>(&format!(
        "SELECT {VIEW_COLUMNS} FROM enrollments
         WHERE buyer_user_id = $1 AND ($2::text IS NULL OR order_token = $2)
         ORDER BY enrolled_at DESC, internship_id, email LIMIT 200"
    ))
    .bind(user)
    .bind(order.map(OrderToken::as_str))
    .fetch_all(pool)
    .await
}

/// The most emails one request assigns: a block of seats is bounded by the
/// cart's quantity limit, and a body this size stays far below 64 KiB.
const MAX_EMAILS: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignSeatsInput {
    /// The internship of the order's line of quantity > 1.
    pub internship_id: String,
    /// One seat per address (1 to 100, each once). An address already
    /// holding an active enrollment of the internship is not assigned
    /// again, and takes no seat.
    pub emails: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatsAccepted {
    pub order_token: String,
    pub internship_id: String,
    /// The `AssignSeats` command written; its enrollments appear in
    /// `GET /api/v1/me/enrollments` once applied.
    pub command_id: String,
}

/// Assign seats of a paid order to people by email: each gets an
/// enrollment of their own with access granted. All or nothing: when fewer
/// seats are left than new addresses, nothing is assigned (409, 5001).
#[utoipa::path(
    post,
    path = "/api/v1/orders/{order_token}/seats/assign",
    tag = "enrollments",
    params(("order_token" = String, Path, description = "the order token")),
    request_body(content = AssignSeatsInput, example = json!({"internship_id": "data-science-2027", "emails": ["asha@example.com", "ravi@example.com"]})),
    responses(
        (status = 202, description = "the assignment is accepted; read GET /api/v1/me/enrollments", body = SeatsAccepted),
        (status = 404, description = "no such order (or not the caller's) (3003)", body = ErrorBody),
        (status = 409, description = "the order is not paid (3002), or fewer seats are left than new emails (5001)", body = ErrorBody),
        (status = 422, description = "invalid request (a malformed email, no emails, a repeated email), or the order holds no seats of that internship (5002)", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn assign_seats(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<AssignSeatsInput>,
) -> Result<Response, ApiError> {
    let token = OrderToken::parse(&token)
        .map_err(|e| ApiError::Validation(vec![format!("order_token: {e}")]))?;
    let (internship, emails) = validate(&input)?;
    let not_found = || ApiError::Domain(ErrorCode::OrderNotFound, "order not found".into());
    let order = sqlx::query_as::<_, (String, Option<String>, serde_json::Value)>(
        "SELECT status, buyer_user_id, placed FROM orders WHERE order_token = $1",
    )
    .bind(token.as_str())
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let (status, buyer, placed) = order;
    // The buyer only: a guest's order by its token, a user's by that user
    // (not even an admin assigns a buyer's seats).
    if buyer
        .as_deref()
        .is_some_and(|b| caller.user_id() != Some(b))
    {
        return Err(not_found());
    }
    if status != "paid" {
        return Err(ApiError::Domain(
            ErrorCode::PaymentInvalidState,
            format!("the order is {status}: its seats can be assigned once it is paid"),
        ));
    }
    // Each address sealed under its holder's own key, with its blind
    // index: the rules compare the index, nothing behind us reads it.
    let mut sealed = Vec::with_capacity(emails.len());
    for email in &emails {
        let holder = crate::personal::seat_holder(&state, email).await?;
        sealed.push(crate::personal::seal_email(&state, &holder, email).await?);
    }
    let emails = sealed;
    let buyer_key = enrollment::buyer_key(buyer.as_deref(), token.as_str());
    let book = book_of(&state.pool, &buyer_key, token.as_str()).await?;
    let ordered_block = placed["lines"].as_array().is_some_and(|lines| {
        lines.iter().any(|l| {
            l["internship_id"] == internship.as_str() && l["quantity"].as_i64().unwrap_or(0) > 1
        })
    });
    match enrollment::plan_seats(&book, token.as_str(), internship.as_str(), &emails) {
        Ok(_) => {}
        // Paid, with seats in the order, but not in the read model yet:
        // the processor has the order's enrollment ahead of this command
        // (same buyer, same partition) and decides.
        Err(SeatRefusal::NoSeats) if ordered_block && book.is_empty() => {}
        Err(SeatRefusal::NoSeats) => {
            return Err(ApiError::Domain(
                ErrorCode::NoSeatsToAssign,
                SeatRefusal::NoSeats.to_string(),
            ))
        }
        Err(refusal @ SeatRefusal::NotEnough { .. }) => {
            return Err(ApiError::Domain(
                ErrorCode::SeatsExhausted,
                refusal.to_string(),
            ))
        }
    }
    let command = EnrollmentCommand {
        command_id: ids.command(0).to_string(),
        buyer_key: buyer_key.clone(),
        issued_at: chrono::Utc::now().timestamp_millis(),
        command: EnrollmentCmd::AssignSeats(AssignSeats {
            order_token: token.as_str().to_owned(),
            internship_id: internship.as_str().to_owned(),
            emails,
            assigned_by: caller.user_id().map(str::to_owned),
        }),
    };
    state
        .commands
        .send(
            &ENROLLMENT_COMMANDS,
            &buyer_key,
            &command,
            &command.command_id,
        )
        .await?;
    let body = SeatsAccepted {
        order_token: token.as_str().to_owned(),
        internship_id: internship.as_str().to_owned(),
        command_id: command.command_id,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The internship and the emails (normalized by [`Email`]), or every
/// problem at once.
fn validate(input: &AssignSeatsInput) -> Result<(InternshipId, Vec<String>), ApiError> {
    let mut errors = Vec::new();
    let internship = InternshipId::parse(&input.internship_id)
        .map_err(|e| errors.push(format!("internship_id: {e}")))
        .ok();
    if input.emails.is_empty() || input.emails.len() > MAX_EMAILS {
        errors.push(format!("emails: 1 to {MAX_EMAILS} addresses"));
    }
    let mut emails: Vec<String> = Vec::new();
    for (i, raw) in input.emails.iter().enumerate().take(MAX_EMAILS) {
        match Email::parse(raw) {
            // One seat per person: a repeat is a mistake in the request.
            Ok(e) if emails.iter().any(|x| x.eq_ignore_ascii_case(e.as_str())) => {
                errors.push(format!("emails[{i}]: {} is listed twice", e.as_str()))
            }
            Ok(e) => emails.push(e.into()),
            Err(e) => errors.push(format!("emails[{i}]: {e}")),
        }
    }
    match internship {
        Some(internship) if errors.is_empty() => Ok((internship, emails)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The buyer's enrollments of `order` as the read model holds them, as the
/// wire records [`enrollment::plan_seats`] reads (the rest of the book does
/// not bear on the order's seats but for the emails holding each
/// internship, which are read whatever order they came with).
async fn book_of(
    pool: &sqlx::PgPool,
    buyer_key: &str,
    order: &str,
) -> Result<Vec<Enrollment>, sqlx::Error> {
    type Row = (
        uuid::Uuid,
        String,
        String,
        String,
        i32,
        String,
        bool,
        i32,
        bool,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
        i32,
        Option<uuid::Uuid>,
    );
    let rows = sqlx::query_as::<_, Row>(
        "SELECT enrollment_id, order_token, internship_id, title, seats, status, access_granted,
                progress_percent, certificate_eligible, enrolled_at, email, seats_assigned, seat_of
         FROM enrollments
         WHERE buyer_key = $1
           AND (order_token = $2 OR internship_id IN
                (SELECT internship_id FROM enrollments WHERE buyer_key = $1 AND order_token = $2))",
    )
    .bind(buyer_key)
    .bind(order)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Enrollment {
            enrollment_id: r.0.to_string(),
            order_token: r.1,
            internship_id: r.2,
            title: r.3,
            seats: r.4,
            status: if r.5 == "active" {
                EnrollmentStatus::Active
            } else {
                EnrollmentStatus::Revoked
            },
            access_granted: r.6,
            progress_percent: r.7,
            certificate_eligible: r.8,
            enrolled_at: r.9.timestamp_millis(),
            email: r.10,
            seats_assigned: r.11,
            seat_of: r.12.map(|u| u.to_string()),
        })
        .collect())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SupportCaseView {
    #[schema(value_type = String)]
    pub case_id: uuid::Uuid,
    pub order_token: String,
    pub buyer_user_id: Option<String>,
    pub buyer_email: Option<String>,
    /// What opened it: `enrollment_failed`.
    pub kind: String,
    /// `internship_closed` or `internship_unknown`.
    pub code: String,
    pub reason: String,
    pub internship_id: Option<String>,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    /// The `enrollment.events` record that opened it.
    pub cause_event_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SupportCaseList {
    /// Newest first, at most 200.
    pub cases: Vec<SupportCaseView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// Only the cases of this order.
    pub order_token: Option<String>,
}

/// The support cases: paid order lines that could not be enrolled (say,
/// the internship closed after payment), each with its order, buyer and
/// reason.
#[utoipa::path(
    get,
    path = "/api/v1/admin/support-cases",
    tag = "admin",
    params(CaseQuery),
    responses(
        (status = 200, description = "the cases, newest first", body = SupportCaseList),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 422, description = "malformed order token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn support_cases(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(q): Query<CaseQuery>,
) -> Result<Response, ApiError> {
    let order = q
        .order_token
        .as_deref()
        .map(OrderToken::parse)
        .transpose()
        .map_err(|e| ApiError::Validation(vec![format!("order_token: {e}")]))?;
    let mut cases = sqlx::query_as::<_, SupportCaseView>(
        "SELECT case_id, order_token, buyer_user_id, buyer_email, kind, code, reason, internship_id,
                opened_at, cause_event_id
         FROM support_cases WHERE $1::text IS NULL OR order_token = $1
         ORDER BY opened_at DESC, case_id LIMIT 200",
    )
    .bind(order.as_ref().map(OrderToken::as_str))
    .fetch_all(&state.pool)
    .await?;
    for case in &mut cases {
        crate::personal::open_field(&state.vault, &mut case.buyer_email).await?;
    }
    Ok(Json(SupportCaseList { cases }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_each_once_and_all_problems_reported() {
        let input = |emails: &[&str]| AssignSeatsInput {
            internship_id: "data-science".into(),
            emails: emails.iter().map(|e| (*e).to_owned()).collect(),
        };
        let (id, emails) = validate(&input(&["a@X.com", " b@x.com "])).unwrap();
        assert_eq!(id.as_str(), "data-science");
        assert_eq!(emails, ["a@x.com", "b@x.com"]);
        let Err(ApiError::Validation(errors)) = validate(&input(&["a@x.com", "nope", "A@x.com"]))
        else {
            panic!("refused");
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("emails[1]: "), "{errors:?}");
        assert_eq!(errors[1], "emails[2]: A@x.com is listed twice");
        let Err(ApiError::Validation(errors)) = validate(&input(&[])) else {
            panic!("refused");
        };
        assert_eq!(errors, ["emails: 1 to 100 addresses"]);
    }
}
