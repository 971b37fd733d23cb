//! `GET /api/v1/orders/{order_token}/seats`: a bulk order's seat report,
//! for the company's HR or L&D buyer: every seat of every block, whom it is
//! assigned to and whether they are enrolled, as JSON or CSV
//! (`Accept: text/csv` or `?format=csv`). Seats not assigned yet are
//! listed too, so the report always has one row per seat bought.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new().routes(routes!(seat_report))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatReport {
    pub order_token: String,
    /// One per block of seats (a line of quantity > 1).
    pub blocks: Vec<SeatBlock>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatBlock {
    pub internship_id: String,
    pub title: String,
    /// `active`, or `revoked` (the order was refunded).
    pub status: String,
    pub seats: i32,
    pub seats_assigned: i32,
    /// Every seat, the assigned ones first (by when), then the free ones.
    pub rows: Vec<SeatRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatRow {
    /// 1 to `seats`.
    pub seat: i32,
    /// The holder's address; absent for a free seat, or once the holder
    /// was erased.
    pub email: Option<String>,
    /// `assigned` or `free`.
    pub assignment: String,
    /// Whether the holder is enrolled with access now.
    pub enrolled: bool,
    #[schema(value_type = Option<String>)]
    pub enrollment_id: Option<uuid::Uuid>,
    pub assigned_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (the default) or `csv`; `Accept: text/csv` also asks for CSV.
    pub format: Option<String>,
}

/// The seat report of a bulk order: each seat, whom it is assigned to,
/// whether they enrolled. For the order's buyer (a guest by the order's
/// token) and admins.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{order_token}/seats",
    tag = "enrollments",
    params(("order_token" = String, Path, description = "the order token"), ReportQuery),
    responses(
        (status = 200, description = "the report (JSON, or CSV with one row per seat)", body = SeatReport),
        (status = 404, description = "no such order (or not the caller's) (3003)", body = ErrorBody),
        (status = 422, description = "a malformed order token or format", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn seat_report(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::Validation(vec![format!(
                "format: json or csv, not {other:?}"
            )]))
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let token = super::orders::readable(&state, &caller, &token).await?;
    let mut report = read(&state, token.as_str()).await?;
    for block in &mut report.blocks {
        for row in &mut block.rows {
            crate::personal::open_field(&state.vault, &mut row.email).await?;
        }
    }
    if csv {
        return Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"seats-{}.csv\"", token.as_str()),
                ),
            ],
            to_csv(&report),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

type Row = (
    uuid::Uuid,
    String,
    String,
    i32,
    String,
    bool,
    chrono::DateTime<chrono::Utc>,
    Option<String>,
    i32,
    Option<uuid::Uuid>,
);

/// The order's blocks and the seats assigned from them, as stored
/// (emails still sealed).
async fn read(state: &AppState, order: &str) -> Result<SeatReport, ApiError> {
    let rows = sqlx::query_as::<_, Row>(
        "SELECT enrollment_id, internship_id, title, seats, status, access_granted, enrolled_at,
                email, seats_assigned, seat_of
         FROM enrollments WHERE order_token = $1
         ORDER BY enrolled_at, enrollment_id",
    )
    .bind(order)
    .fetch_all(&state.pool)
    .await?;
    Ok(SeatReport {
        order_token: order.to_owned(),
        blocks: blocks(&rows),
    })
}

/// Pure: the rows of `enrollments` of one order, as blocks with a row per
/// seat (assigned ones in the order they were assigned, then free ones).
fn blocks(rows: &[Row]) -> Vec<SeatBlock> {
    rows.iter()
        .filter(|r| r.3 > 1 && r.9.is_none())
        .map(|b| {
            let mut out: Vec<SeatRow> = rows
                .iter()
                .filter(|s| s.9 == Some(b.0))
                .map(|s| SeatRow {
                    seat: 0,
                    email: s.7.clone(),
                    assignment: "assigned".into(),
                    enrolled: s.4 == "active" && s.5,
                    enrollment_id: Some(s.0),
                    assigned_at: Some(s.6),
                })
                .collect();
            while out.len() < usize::try_from(b.3).unwrap_or(0) {
                out.push(SeatRow {
                    seat: 0,
                    email: None,
                    assignment: "free".into(),
                    enrolled: false,
                    enrollment_id: None,
                    assigned_at: None,
                });
            }
            for (n, row) in out.iter_mut().enumerate() {
                row.seat = i32::try_from(n + 1).unwrap_or(i32::MAX);
            }
            SeatBlock {
                internship_id: b.1.clone(),
                title: b.2.clone(),
                status: b.4.clone(),
                seats: b.3,
                seats_assigned: b.8,
                rows: out,
            }
        })
        .collect()
}

/// One line per seat, RFC 4180 quoting.
fn to_csv(report: &SeatReport) -> String {
    fn field(v: &str) -> String {
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_owned()
        }
    }
    let mut out = String::from(
        "order_token,internship_id,title,seat,email,assignment,enrolled,enrollment_id,assigned_at\r\n",
    );
    for b in &report.blocks {
        for r in &b.rows {
            let cells = [
                report.order_token.clone(),
                b.internship_id.clone(),
                b.title.clone(),
                r.seat.to_string(),
                r.email.clone().unwrap_or_default(),
                r.assignment.clone(),
                r.enrolled.to_string(),
                r.enrollment_id.map(|u| u.to_string()).unwrap_or_default(),
                r.assigned_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn every_seat_is_a_row_and_the_csv_quotes_what_needs_it() {
        let block = uuid::Uuid::from_u128(1);
        let row =
            |id: u128, seats: i32, email: Option<&str>, of: Option<uuid::Uuid>, s: i64| -> Row {
                (
                    uuid::Uuid::from_u128(id),
                    "go".into(),
                    "Go, \"fast\"".into(),
                    seats,
                    "active".into(),
                    of.is_some(),
                    at(s),
                    email.map(Into::into),
                    if of.is_none() { 2 } else { 0 },
                    of,
                )
            };
        let rows = vec![
            row(1, 3, None, None, 10),
            row(2, 1, Some("a@x.com"), Some(block), 20),
            row(3, 1, Some("b@x.com"), Some(block), 30),
            // A personal enrollment of another line: not a block.
            row(4, 1, Some("me@x.com"), None, 5),
        ];
        let report = SeatReport {
            order_token: "o1".into(),
            blocks: blocks(&rows),
        };
        assert_eq!(report.blocks.len(), 1);
        let b = &report.blocks[0];
        assert_eq!((b.seats, b.seats_assigned, b.rows.len()), (3, 2, 3));
        let seats: Vec<_> = b
            .rows
            .iter()
            .map(|r| {
                (
                    r.seat,
                    r.email.as_deref(),
                    r.assignment.as_str(),
                    r.enrolled,
                )
            })
            .collect();
        assert_eq!(
            seats,
            [
                (1, Some("a@x.com"), "assigned", true),
                (2, Some("b@x.com"), "assigned", true),
                (3, None, "free", false)
            ]
        );
        let csv = to_csv(&report);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 5, "{csv}");
        assert!(
            lines[1].starts_with("o1,go,\"Go, \"\"fast\"\"\",1,a@x.com,assigned,true,"),
            "{csv}"
        );
        assert!(
            lines[3].starts_with("o1,go,\"Go, \"\"fast\"\"\",3,,free,false,,"),
            "{csv}"
        );
    }
}
