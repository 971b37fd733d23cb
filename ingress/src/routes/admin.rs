//! `/api/v1/admin`: endpoints for operators, only with `role = admin`.
//! Every accepted change is written to the audit log.
//!
//! - `PUT /internships/{internship_id}`: create or replace a catalog entry
//!   (published to the compacted `catalog.internships`; the cart processors
//!   price from it);
//! - `PUT /fx-rates/{currency}`: publish the INR → currency rate (to the
//!   compacted `fx.rates`; carts keep the rate's time on their snapshot).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use schemas::records::catalog::{BillingPeriod, Internship, PeriodUnit};
use schemas::records::fx::FxRate;
use schemas::records::WireMoney;
use schemas::topics::{CATALOG_INTERNSHIPS, FX_RATES};
use schemas::values::InternshipId;
use schemas::Currency;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/internships/{internship_id}", put(put_internship))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InternshipInput {
    /// 1-200 characters.
    pub title: String,
    /// 1-64 characters of a-z, 0-9 and '-'.
    pub category: String,
    /// Tax-exclusive base price in minor units of `currency` (0 to 10^12).
    pub price_minor: i64,
    /// ISO 4217 code; INR until display currencies arrive.
    pub currency: String,
    /// `standard` or `exempt`.
    #[serde(default = "standard")]
    pub tax_class: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// Optional plans, each a length of access with its own price (INR).
    #[serde(default)]
    pub billing_periods: Vec<PeriodInput>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodInput {
    /// Unique across the catalog: 1-64 of a-z, 0-9 and '-'.
    pub plan_id: String,
    /// 1 to 36.
    pub value: i32,
    /// `month` or `year`.
    pub unit: String,
    pub price_minor: i64,
}

fn standard() -> String {
    "standard".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Published {
    pub internship_id: String,
    /// Offset of the record in `catalog.internships`.
    pub offset: i64,
}

fn validate(id: &str, input: &InternshipInput) -> Result<Internship, ApiError> {
    let mut errors = Vec::new();
    if InternshipId::parse(id).is_err() {
        errors.push("internship_id: 1-64 characters of a-z, 0-9 and '-'".to_owned());
    }
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        errors.push("title: 1-200 printable characters".to_owned());
    }
    if InternshipId::parse(&input.category).is_err() {
        errors.push("category: 1-64 characters of a-z, 0-9 and '-'".to_owned());
    }
    if !(0..=1_000_000_000_000).contains(&input.price_minor) {
        errors.push("price_minor: between 0 and 10^12".to_owned());
    }
    match Currency::parse(&input.currency) {
        Ok(c) if c == Currency::INR => {}
        Ok(c) => errors.push(format!("currency: catalog prices are in INR, not {c}")),
        Err(e) => errors.push(format!("currency: {e}")),
    }
    if !matches!(input.tax_class.as_str(), "standard" | "exempt") {
        errors.push("tax_class: standard or exempt".to_owned());
    }
    let mut periods = Vec::new();
    for (i, p) in input.billing_periods.iter().enumerate() {
        let unit = match p.unit.as_str() {
            "month" => Some(PeriodUnit::Month),
            "year" => Some(PeriodUnit::Year),
            _ => None,
        };
        let ok = InternshipId::parse(&p.plan_id).is_ok()
            && (1..=36).contains(&p.value)
            && (0..=1_000_000_000_000).contains(&p.price_minor);
        match (unit, ok) {
            (Some(unit), true) => periods.push(BillingPeriod {
                plan_id: p.plan_id.clone(),
                value: p.value,
                unit,
                price: WireMoney { amount_minor: p.price_minor, currency: "INR".into() },
            }),
            _ => errors.push(format!("billing_periods[{i}]: plan_id a slug, value 1-36, unit month or year, price_minor 0 to 10^12")),
        }
    }
    if input.billing_periods.len() > 12 {
        errors.push("billing_periods: at most 12".to_owned());
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Internship {
        billing_periods: periods,
        internship_id: id.to_owned(),
        title: title.to_owned(),
        category: input.category.clone(),
        base_price: WireMoney {
            amount_minor: input.price_minor,
            currency: "INR".into(),
        },
        tax_class: input.tax_class.clone(),
        active: input.active,
        updated_at: chrono::Utc::now().timestamp_millis(),
    })
}

/// Create or replace a catalog entry.
#[utoipa::path(
    put,
    path = "/api/v1/admin/internships/{internship_id}",
    tag = "admin",
    params(("internship_id" = String, Path, description = "catalog slug")),
    request_body = InternshipInput,
    responses(
        (status = 202, description = "published to the catalog topic", body = Published),
        (status = 401, description = "no or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "not an admin", body = crate::error::ErrorBody),
        (status = 422, description = "invalid entry", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_internship(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(internship_id): Path<String>,
    ApiJson(input): ApiJson<InternshipInput>,
) -> Result<Response, ApiError> {
    let item = validate(&internship_id, &input)?;
    let causation = uuid::Uuid::new_v4().to_string();
    let offset = state
        .commands
        .send(&CATALOG_INTERNSHIPS, &item.internship_id, &item, &causation)
        .await?;
    tracing::info!(target: "audit", event = "admin_change", admin = %admin.id, internship_id = %item.internship_id,
        price_minor = item.base_price.amount_minor, active = item.active, "catalog entry published");
    Ok((
        StatusCode::ACCEPTED,
        Json(Published {
            internship_id: item.internship_id,
            offset,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FxRateInput {
    /// Units of the currency per 1 INR, as a decimal string, e.g. `"0.012"`.
    pub rate: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FxPublished {
    pub quote: String,
    pub rate: String,
    pub as_of: chrono::DateTime<chrono::Utc>,
    /// Offset of the record in `fx.rates`.
    pub offset: i64,
}

/// Publish the rate from INR to a display currency.
#[utoipa::path(
    put,
    path = "/api/v1/admin/fx-rates/{currency}",
    tag = "admin",
    params(("currency" = String, Path, description = "ISO 4217 code, e.g. USD")),
    request_body(content = FxRateInput, example = json!({"rate": "0.012"})),
    responses(
        (status = 202, description = "published to the rates topic", body = FxPublished),
        (status = 401, description = "no or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "not an admin", body = crate::error::ErrorBody),
        (status = 422, description = "invalid rate", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_fx_rate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(currency): Path<String>,
    ApiJson(input): ApiJson<FxRateInput>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let quote = match Currency::parse(&currency) {
        Ok(c) if c == Currency::INR => {
            errors.push("currency: INR is the base; its rate is 1".to_owned());
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(format!("currency: {e}"));
            None
        }
    };
    let rate = match input.rate.trim().parse::<rust_decimal::Decimal>() {
        Ok(r) if r > rust_decimal::Decimal::ZERO && r < rust_decimal::Decimal::from(1_000_000) => {
            Some(r.normalize())
        }
        _ => {
            errors.push("rate: a decimal above 0 and below 1,000,000".to_owned());
            None
        }
    };
    let (Some(quote), Some(rate)) = (quote, rate) else {
        return Err(ApiError::Validation(errors));
    };
    let now = chrono::Utc::now();
    let record = FxRate {
        base: "INR".into(),
        quote: quote.code().to_owned(),
        rate: rate.to_string(),
        as_of: now.timestamp_millis(),
    };
    let causation = uuid::Uuid::new_v4().to_string();
    let offset = state
        .commands
        .send(&FX_RATES, quote.code(), &record, &causation)
        .await?;
    tracing::info!(target: "audit", event = "admin_change", admin = %admin.id, currency = quote.code(), rate = %rate, "fx rate published");
    let body = FxPublished {
        quote: record.quote,
        rate: record.rate,
        as_of: now,
        offset,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
