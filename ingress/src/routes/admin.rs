//! `/api/v1/admin`: endpoints for operators, only with `role = admin`.
//! Every accepted change is written to the audit log.
//!
//! - `PUT /internships/{internship_id}`: create or replace a catalog entry
//!   (published to `catalog.internships`; the cart processors price from
//!   it);
//! - `PUT /coupons/{code}`: create or replace a coupon (to
//!   `coupons.definitions`; carts re-check their coupons on every change);
//! - `PUT /fx-rates/{currency}`: publish the INR → currency rate (to
//!   `fx.rates`; carts keep the rate's time on their snapshot);
//! - `POST /orders/{order_token}/refund`: refund a paid order in full (a
//!   RequestRefund on `order.commands`; the gateway worker asks the
//!   gateway, the order becomes REFUNDED on the gateway's webhook and its
//!   enrollments are revoked).
//!
//! Table topics keep every version: commands name the versions they are
//! priced at (see `crate::table_versions`).
//!
//! Each record's causation id comes from [`CommandIds`] (derived from the
//! request's `Idempotency-Key` when it has one).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use schemas::codes::ErrorCode;
use schemas::records::catalog::{BillingPeriod, Internship, PeriodUnit};
use schemas::records::coupons::{Coupon as CouponRecord, CouponKind, Tier};
use schemas::records::fx::FxRate;
use schemas::records::order::{OrderCmd, OrderCommand, RefundState, RequestRefund};
use schemas::records::WireMoney;
use schemas::topics::{CATALOG_INTERNSHIPS, COUPONS, FX_RATES, ORDER_COMMANDS};
use schemas::values::{InternshipId, OrderToken};
use schemas::Currency;

use crate::auth::Admin;
use crate::commands::AuditedChange;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotency::CommandIds;
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
    request_body(content = InternshipInput, example = json!({"title": "ML Research", "category": "data", "price_minor": 5990000, "currency": "INR", "billing_periods": [{"plan_id": "ml-research-2027-3m", "value": 3, "unit": "month", "price_minor": 2995000}]})),
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
    ids: CommandIds,
    Path(internship_id): Path<String>,
    ApiJson(input): ApiJson<InternshipInput>,
) -> Result<Response, ApiError> {
    let item = validate(&internship_id, &input)?;
    let causation = ids.command(0).to_string();
    let offset = state
        .commands
        .send(&CATALOG_INTERNSHIPS, &item.internship_id, &item, &causation)
        .await?;
    state
        .commands
        .audit(AuditedChange {
            actor: format!("admin:{}", admin.id),
            person: None,
            command_id: &causation,
            action: "internship.published",
            subject_kind: "internship",
            subject_id: &item.internship_id,
            offset,
            reason: format!(
                "{} at {} {}, {}",
                item.title,
                item.base_price.amount_minor,
                item.base_price.currency,
                if item.active { "active" } else { "inactive" }
            ),
            amount: Some(item.base_price.clone()),
        })
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
    ids: CommandIds,
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
    let causation = ids.command(0).to_string();
    let offset = state
        .commands
        .send(&FX_RATES, quote.code(), &record, &causation)
        .await?;
    state
        .commands
        .audit(AuditedChange {
            actor: format!("admin:{}", admin.id),
            person: None,
            command_id: &causation,
            action: "fx_rate.published",
            subject_kind: "fx_rate",
            subject_id: quote.code(),
            offset,
            reason: format!("1 INR = {rate} {}", quote.code()),
            amount: None,
        })
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponDefinitionInput {
    pub name: String,
    /// `percentage`, `fixed`, `free_enrollment`, `bulk_tiers` or `referral`.
    pub kind: String,
    /// percentage, referral: a fraction in (0, 1], e.g. `"0.10"`.
    #[serde(default)]
    pub percent: Option<String>,
    /// percentage: the most it takes off, in paise.
    #[serde(default)]
    pub cap_minor: Option<i64>,
    /// fixed: the amount per currency.
    #[serde(default)]
    pub amounts: Vec<AmountInput>,
    /// bulk_tiers: a fraction from a number of seats up.
    #[serde(default)]
    pub tiers: Vec<TierInput>,
    /// referral: the referring user's account id (the token subject); they
    /// cannot use the code.
    #[serde(default)]
    pub referrer_user_id: Option<String>,
    /// free_enrollment: the internships it makes free; otherwise a scope.
    #[serde(default)]
    pub scope_internships: Vec<String>,
    #[serde(default)]
    pub scope_categories: Vec<String>,
    #[serde(default)]
    pub valid_from: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// In paise, compared with the cart's subtotal after conversion.
    #[serde(default)]
    pub min_order_minor: Option<i64>,
    #[serde(default)]
    pub usage_limit: Option<i32>,
    #[serde(default)]
    pub per_user_limit: Option<i32>,
    #[serde(default)]
    pub combinable: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountInput {
    pub currency: String,
    pub amount_minor: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    pub min_seats: i32,
    pub percent: String,
}

fn fraction_ok(p: &str) -> bool {
    p.parse::<rust_decimal::Decimal>()
        .is_ok_and(|d| d > rust_decimal::Decimal::ZERO && d <= rust_decimal::Decimal::ONE)
}

fn coupon_record(code: &str, c: &CouponDefinitionInput) -> Result<CouponRecord, ApiError> {
    let mut errors = Vec::new();
    // The path's code is the key as given: it must already be upper case.
    if schemas::values::coupon_code(code).ok().as_deref() != Some(code) {
        errors.push(format!(
            "code: {} (upper case)",
            schemas::values::ValueError::CouponCode
        ));
    }
    if c.name.trim().is_empty() || c.name.len() > 200 {
        errors.push("name: 1-200 characters".to_owned());
    }
    let kind = match c.kind.as_str() {
        "percentage" => Some(CouponKind::Percentage),
        "fixed" => Some(CouponKind::Fixed),
        "free_enrollment" => Some(CouponKind::FreeEnrollment),
        "bulk_tiers" => Some(CouponKind::BulkTiers),
        "referral" => Some(CouponKind::Referral),
        _ => {
            errors.push(
                "kind: percentage, fixed, free_enrollment, bulk_tiers or referral".to_owned(),
            );
            None
        }
    };
    let needs_percent = matches!(kind, Some(CouponKind::Percentage | CouponKind::Referral));
    if needs_percent && !c.percent.as_deref().is_some_and(fraction_ok) {
        errors.push("percent: a fraction above 0 and at most 1".to_owned());
    }
    if kind == Some(CouponKind::Referral) && c.referrer_user_id.as_deref().is_none_or(str::is_empty)
    {
        errors.push("referrer_user_id: required for a referral code".to_owned());
    }
    let mut amounts = Vec::new();
    for a in &c.amounts {
        match Currency::parse(&a.currency) {
            Ok(cur) if (0..=1_000_000_000_000).contains(&a.amount_minor) => {
                amounts.push(WireMoney {
                    amount_minor: a.amount_minor,
                    currency: cur.code().to_owned(),
                })
            }
            _ => errors.push("amounts: a known currency and an amount from 0 to 10^12".to_owned()),
        }
    }
    if kind == Some(CouponKind::Fixed) && amounts.is_empty() {
        errors.push("amounts: a fixed coupon needs at least one amount".to_owned());
    }
    if kind == Some(CouponKind::FreeEnrollment) && c.scope_internships.is_empty() {
        errors.push(
            "scope_internships: name the internships a free-enrollment coupon covers".to_owned(),
        );
    }
    if kind == Some(CouponKind::BulkTiers)
        && (c.tiers.is_empty()
            || c.tiers
                .iter()
                .any(|t| t.min_seats < 1 || !fraction_ok(&t.percent)))
    {
        errors.push(
            "tiers: at least one, each with min_seats ≥ 1 and a fraction in (0, 1]".to_owned(),
        );
    }
    if c.scope_internships
        .iter()
        .chain(&c.scope_categories)
        .any(|s| InternshipId::parse(s).is_err())
    {
        errors.push("scope: slugs of a-z, 0-9 and '-'".to_owned());
    }
    if c.valid_from.zip(c.valid_until).is_some_and(|(f, u)| f >= u) {
        errors.push("valid_until: after valid_from".to_owned());
    }
    if c.usage_limit.is_some_and(|n| n < 1) || c.per_user_limit.is_some_and(|n| n < 1) {
        errors.push("usage_limit, per_user_limit: at least 1".to_owned());
    }
    if c.cap_minor.is_some_and(|m| m < 0) || c.min_order_minor.is_some_and(|m| m < 0) {
        errors.push("cap_minor, min_order_minor: not negative".to_owned());
    }
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let inr = |m: i64| WireMoney {
        amount_minor: m,
        currency: "INR".into(),
    };
    Ok(CouponRecord {
        code: code.to_owned(),
        name: c.name.trim().to_owned(),
        kind,
        percent: c.percent.clone(),
        cap: c.cap_minor.map(inr),
        amounts,
        tiers: c
            .tiers
            .iter()
            .map(|t| Tier {
                min_seats: t.min_seats,
                percent: t.percent.clone(),
            })
            .collect(),
        referrer_user_id: c.referrer_user_id.clone(),
        scope_internships: c.scope_internships.clone(),
        scope_categories: c.scope_categories.clone(),
        valid_from: c.valid_from.map(|t| t.timestamp_millis()),
        valid_until: c.valid_until.map(|t| t.timestamp_millis()),
        min_order: c.min_order_minor.map(inr),
        usage_limit: c.usage_limit,
        per_user_limit: c.per_user_limit,
        combinable: c.combinable,
        active: c.active,
        updated_at: chrono::Utc::now().timestamp_millis(),
    })
}

/// Create or replace a coupon.
#[utoipa::path(
    put,
    path = "/api/v1/admin/coupons/{code}",
    tag = "admin",
    params(("code" = String, Path, description = "upper case, e.g. WELCOME10")),
    request_body(content = CouponDefinitionInput, example = json!({"name": "Welcome 10 %", "kind": "percentage", "percent": "0.10", "cap_minor": 100000, "per_user_limit": 1})),
    responses(
        (status = 202, description = "published to the coupons topic", body = CouponPublished),
        (status = 401, description = "no or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "not an admin", body = crate::error::ErrorBody),
        (status = 422, description = "invalid definition", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_coupon(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ids: CommandIds,
    Path(code): Path<String>,
    ApiJson(input): ApiJson<CouponDefinitionInput>,
) -> Result<Response, ApiError> {
    let mut record = coupon_record(&code, &input)?;
    // The referrer is named by their account here, by their pseudonym on
    // the topic, as every customer is.
    record.referrer_user_id = record.referrer_user_id.map(|u| state.pseudonyms.user(&u));
    let causation = ids.command(0).to_string();
    let offset = state
        .commands
        .send(&COUPONS, &record.code, &record, &causation)
        .await?;
    state
        .commands
        .audit(AuditedChange {
            actor: format!("admin:{}", admin.id),
            person: None,
            command_id: &causation,
            action: "coupon.published",
            subject_kind: "coupon",
            subject_id: &record.code,
            offset,
            reason: format!(
                "{} ({}), {}",
                record.name,
                input.kind,
                if record.active { "active" } else { "inactive" }
            ),
            amount: None,
        })
        .await?;
    tracing::info!(target: "audit", event = "admin_change", admin = %admin.id, coupon = %record.code, active = record.active, "coupon published");
    Ok((
        StatusCode::ACCEPTED,
        Json(CouponPublished {
            code: record.code,
            offset,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// Why, for the order's record (1-500 characters).
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundAccepted {
    pub order_token: String,
    /// The order's version once the request is applied (read it with
    /// `Prefer: wait` and `?version`).
    pub version: i64,
    pub command_id: String,
}

/// Refund a paid order in full through the gateway that took the payment.
/// The order shows the refund as requested, then pending; it becomes
/// `refunded` when the gateway's refund webhook arrives.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{order_token}/refund",
    tag = "admin",
    params(("order_token" = String, Path, description = "the order token")),
    request_body(content = RefundInput, example = json!({"reason": "the buyer asked within 14 days"})),
    responses(
        (status = 202, description = "the refund request is accepted", body = RefundAccepted),
        (status = 401, description = "no or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "no such order", body = crate::error::ErrorBody),
        (status = 409, description = "the order is not paid, or a refund is under way (3002)", body = crate::error::ErrorBody),
        (status = 422, description = "invalid request", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn refund_order(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<RefundInput>,
) -> Result<Response, ApiError> {
    let token = OrderToken::parse(&token)
        .map_err(|e| ApiError::Validation(vec![format!("order_token: {e}")]))?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Validation(
            vec!["reason: 1-500 characters".into()],
        ));
    }
    let order = crate::read_model::orders::order(&state.pool, token.as_str())
        .await?
        .ok_or_else(|| ApiError::Domain(ErrorCode::OrderNotFound, "order not found".into()))?;
    // What the read model shows now; the order processor decides (a
    // refund asked twice at once is refused there and recorded).
    let refund_status = order
        .refund
        .as_ref()
        .and_then(|r| r["status"].as_str())
        .map(str::to_owned);
    let under_way = refund_status
        .as_deref()
        .is_some_and(|s| s != RefundState::Failed.as_str());
    if order.status != "paid" || under_way {
        return Err(ApiError::Domain(
            ErrorCode::PaymentInvalidState,
            match refund_status {
                Some(s) if order.status == "paid" => format!("a refund is {s} already"),
                _ => format!("a refund needs a paid order, not {}", order.status),
            },
        ));
    }
    let command = OrderCommand {
        command_id: ids.command(0).to_string(),
        order_token: token.as_str().to_owned(),
        issued_at: chrono::Utc::now().timestamp_millis(),
        actor: Some(format!("admin:{}", admin.id)),
        command: OrderCmd::RequestRefund(RequestRefund {
            reason: reason.to_owned(),
        }),
    };
    let version = state
        .commands
        .send(
            &ORDER_COMMANDS,
            token.as_str(),
            &command,
            &command.command_id,
        )
        .await?;
    tracing::info!(target: "audit", event = "admin_change", admin = %admin.id, order = %platform::telemetry::token_ref(token.as_str()), "refund requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(RefundAccepted {
            order_token: token.as_str().to_owned(),
            version,
            command_id: command.command_id,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CouponPublished {
    pub code: String,
    /// Offset of the record in `coupons.definitions`.
    pub offset: i64,
}
