//! `GET /api/v1/admin/analytics`: the dashboard's numbers from the
//! analytics views (`sinks/migrations/*_analytics.sql`), for the storefront's
//! admin page: the funnel, revenue by day and currency, and payment success
//! by gateway. The same views feed the `analytics_*` gauges Grafana draws.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Funnel {
    pub carts_created: i64,
    pub orders_placed: i64,
    pub orders_paid: i64,
    pub orders_enrolled: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RevenueDay {
    pub currency: String,
    pub day: chrono::NaiveDate,
    pub paid_orders: i64,
    /// Gross revenue in the currency's minor units (refunds not taken off).
    pub gross_minor: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PaymentSuccess {
    pub gateway: String,
    pub method: String,
    pub paid: i64,
    pub failed: i64,
    pub expired: i64,
    /// Paid among the decided attempts, 0 to 1; absent while none is decided.
    #[schema(value_type = Option<String>)]
    pub success_rate: Option<rust_decimal::Decimal>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Analytics {
    pub funnel: Funnel,
    /// The last 14 UTC days with a payment, newest first.
    pub revenue: Vec<RevenueDay>,
    pub payments: Vec<PaymentSuccess>,
}

/// The dashboard's numbers: checkout funnel, revenue per day and currency,
/// payment success per gateway and method.
#[utoipa::path(
    get,
    path = "/api/v1/admin/analytics",
    tag = "admin",
    responses(
        (status = 200, description = "the numbers", body = Analytics),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn analytics(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Response, ApiError> {
    let funnel = sqlx::query_as::<_, Funnel>(
        "SELECT carts_created, orders_placed, orders_paid, orders_enrolled FROM analytics_funnel",
    )
    .fetch_one(&state.pool)
    .await?;
    let revenue = sqlx::query_as::<_, RevenueDay>(
        "SELECT currency::text AS currency, day, paid_orders, gross_minor::bigint AS gross_minor
         FROM analytics_revenue_daily
         WHERE day > (now() AT TIME ZONE 'UTC')::date - 14
         ORDER BY day DESC, currency",
    )
    .fetch_all(&state.pool)
    .await?;
    let payments = sqlx::query_as::<_, PaymentSuccess>(
        "SELECT gateway, method, paid, failed, expired, success_rate
         FROM analytics_payment_success ORDER BY gateway, method",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Analytics {
        funnel,
        revenue,
        payments,
    })
    .into_response())
}
