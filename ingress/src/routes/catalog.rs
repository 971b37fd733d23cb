//! The catalog as buyers see it, and price estimates.
//!
//! - `GET /api/v1/internships`: the active internships (from the read model);
//! - `POST /api/v1/cart/estimate`: what a set of items would cost a buyer,
//!   computed by the very pricing rules the cart processor applies
//!   (`rules::pricing`), from the catalog and rates in Postgres.
//!   Nothing is written.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use rules::pricing::{self, Breakdown, Buyer, Fx, LineInput, TaxClass};
use schemas::codes::ErrorCode;
use schemas::values::{InternshipId, Quantity};
use schemas::{Currency, Money};

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list_internships))
        .routes(routes!(estimate))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InternshipView {
    pub internship_id: String,
    pub title: String,
    pub category: String,
    pub currency: String,
    /// Tax-exclusive (unless the deployment prices tax-inclusive) base price.
    pub price_minor: i64,
    pub tax_class: String,
    /// Plans: `[{plan_id, value, unit, price_minor, currency}]`.
    #[schema(value_type = Vec<Object>)]
    pub billing_periods: sqlx::types::Json<serde_json::Value>,
}

/// The active internships.
#[utoipa::path(get, path = "/api/v1/internships", tag = "catalog",
    responses((status = 200, description = "the catalog", body = Vec<InternshipView>)))]
pub async fn list_internships(
    State(state): State<AppState>,
) -> Result<Json<Vec<InternshipView>>, ApiError> {
    let rows = sqlx::query_as::<_, InternshipView>(
        "SELECT internship_id, title, category, currency, price_minor, tax_class, billing_periods FROM internships WHERE active ORDER BY title",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    pub items: Vec<crate::routes::cart::ItemInput>,
    /// ISO 3166-1 alpha-2; without it the estimate assumes the seller's state.
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 4217 display currency (a rate must be published for it).
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EstimateLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub line_subtotal_minor: i64,
    pub line_discount_minor: i64,
    pub line_total_minor: i64,
    pub tax_class: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EstimateTax {
    pub name: String,
    pub rate: String,
    pub amount_minor: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Estimate {
    pub currency: String,
    pub items: Vec<EstimateLine>,
    pub taxes: Vec<EstimateTax>,
    pub subtotal_minor: i64,
    pub discount_total_minor: i64,
    pub tax_total_minor: i64,
    pub total_minor: i64,
    pub tax_inclusive: bool,
    /// The rate used, when the currency is not INR.
    pub fx_rate: Option<String>,
    pub fx_as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// Price a set of items for a buyer without creating a cart.
#[utoipa::path(
    post,
    path = "/api/v1/cart/estimate",
    tag = "cart",
    request_body(content = EstimateRequest,
        example = json!({"items": [{"internship_id": "rust-backend-2027", "quantity": 3}], "country": "IN", "state": "MH"})),
    responses(
        (status = 200, description = "the full breakdown", body = Estimate),
        (status = 422, description = "invalid request, unknown internship or currency", body = ErrorBody),
    )
)]
pub async fn estimate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EstimateRequest>,
) -> Result<Json<Estimate>, ApiError> {
    let mut errors = Vec::new();
    if req.items.is_empty() || req.items.len() > 50 {
        errors.push("items: between 1 and 50 items".to_owned());
    }
    let mut wanted: Vec<(String, u32)> = Vec::new();
    for (i, item) in req.items.iter().enumerate() {
        match (
            InternshipId::parse(&item.internship_id),
            Quantity::new(item.quantity),
        ) {
            (Ok(id), Ok(q)) => wanted.push((id.as_str().to_owned(), q.get())),
            (Err(e), _) => errors.push(format!("items[{i}].internship_id: {e}")),
            (_, Err(e)) => errors.push(format!("items[{i}].quantity: {e}")),
        }
    }
    let country = match req
        .country
        .as_deref()
        .map(schemas::values::country_code)
        .transpose()
    {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("country: {e}"));
            None
        }
    };
    let currency = match req.currency.as_deref().map(Currency::parse).transpose() {
        Ok(c) => c.unwrap_or(Currency::INR),
        Err(e) => {
            errors.push(format!("currency: {e}"));
            Currency::INR
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let ids: Vec<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
    let rows: Vec<(String, String, String, i64, String, String)> = sqlx::query_as(
        "SELECT internship_id, title, currency, price_minor, tax_class, category FROM internships WHERE active AND internship_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&state.pool)
    .await?;
    let found: HashMap<&str, &(String, String, String, i64, String, String)> =
        rows.iter().map(|r| (r.0.as_str(), r)).collect();
    let mut lines = Vec::with_capacity(wanted.len());
    for (id, quantity) in &wanted {
        let Some((_, title, cur, price, tax, category)) = found.get(id.as_str()).copied() else {
            return Err(ApiError::Domain(
                ErrorCode::InternshipUnavailable,
                format!("internship {id} is not available"),
            ));
        };
        let cur = Currency::parse(cur).map_err(|e| ApiError::Internal(e.into()))?;
        lines.push(LineInput {
            internship_id: id.clone(),
            title: title.clone(),
            category: category.clone(),
            quantity: *quantity,
            unit_price: Money::from_minor(*price, cur),
            tax_class: TaxClass::parse(tax),
        });
    }
    let fx = if currency == Currency::INR {
        None
    } else {
        let row: Option<(rust_decimal::Decimal, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT rate, as_of FROM fx_rates WHERE quote = $1 AND base = 'INR'")
                .bind(currency.code())
                .fetch_optional(&state.pool)
                .await?;
        let (rate, as_of) = row.ok_or_else(|| {
            ApiError::Domain(
                ErrorCode::CurrencyNotSupported,
                format!("no exchange rate is published for {currency}"),
            )
        })?;
        Some(Fx {
            currency,
            rate,
            as_of_ms: as_of.timestamp_millis(),
        })
    };
    let buyer = country.map(|country| Buyer {
        country,
        state: req.state.clone(),
    });
    let b = pricing::price(&lines, buyer.as_ref(), fx.as_ref(), &state.pricing, &[])
        .map_err(|e| ApiError::Domain(ErrorCode::CartLimitExceeded, e.to_string()))?;
    view(&b, fx.as_ref())
        .map(Json)
        .map_err(|e| ApiError::Internal(e.into()))
}

fn view(b: &Breakdown, fx: Option<&Fx>) -> Result<Estimate, schemas::MoneyError> {
    let minor = |m: &Money| m.to_minor();
    Ok(Estimate {
        currency: b.currency.code().to_owned(),
        items: b
            .lines
            .iter()
            .map(|l| {
                Ok(EstimateLine {
                    internship_id: l.internship_id.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    unit_price_minor: minor(&l.unit_price)?,
                    line_subtotal_minor: minor(&l.line_subtotal)?,
                    line_discount_minor: minor(&l.line_discount)?,
                    line_total_minor: minor(&l.line_total)?,
                    tax_class: l.tax_class.as_str().to_owned(),
                })
            })
            .collect::<Result<_, schemas::MoneyError>>()?,
        taxes: b
            .taxes
            .iter()
            .map(|t| {
                Ok(EstimateTax {
                    name: t.name.clone(),
                    rate: t.rate.normalize().to_string(),
                    amount_minor: minor(&t.amount)?,
                })
            })
            .collect::<Result<_, schemas::MoneyError>>()?,
        subtotal_minor: minor(&b.subtotal)?,
        discount_total_minor: minor(&b.discount_total)?,
        tax_total_minor: minor(&b.tax_total)?,
        total_minor: minor(&b.total)?,
        tax_inclusive: b.tax_inclusive,
        fx_rate: fx.map(|f| f.rate.normalize().to_string()),
        fx_as_of: fx.and_then(|f| chrono::DateTime::from_timestamp_millis(f.as_of_ms)),
    })
}
