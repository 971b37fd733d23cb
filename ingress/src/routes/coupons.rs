//! Checking coupons against a cart without changing it, with the very
//! rules the cart processor applies (`rules::coupons`), on the
//! cart and coupon definitions in Postgres.
//!
//! - `POST /api/v1/cart/discount/validate`: would this code apply to this
//!   cart, and what would it take off? A refusal answers 422 with the
//!   rule's own code (2001-2012);
//! - `GET /api/v1/cart/{token}/discounts`: the coupons on offer, each with
//!   whether it applies to the cart and, if not, why. Referral codes are
//!   personal and not listed.
//!
//! Usage limits are checked against the coupon processor's count, as the
//! coupon-usage sink has it (`coupon_redemptions`); order placement
//! enforces them exactly (`rules::redemption`).
//!
//! A request reads the cart, the definitions of every coupon it weighs and
//! the uses of the limited ones in a fixed number of queries ([`Known`]),
//! however many coupons are on offer: the list is public to every cart
//! holder, so its cost must not grow with the catalog of coupons.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use rules::coupons::{self, CheckContext, Coupon, DiscountLine};
use rules::pricing::{self, Buyer, Fx, LineInput, TaxClass};
use schemas::codes::ErrorCode;
use schemas::records::coupons::Coupon as CouponRecord;
use schemas::values::CartToken;
use schemas::{Currency, Money};

use super::cart::parse_token;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(validate))
        .routes(routes!(list))
}

/// A cart as the coupon rules need it.
struct CartFacts {
    lines: Vec<LineInput>,
    buyer: Option<Buyer>,
    fx: Option<Fx>,
    owner: Option<String>,
    applied: Vec<String>,
}

async fn facts(
    state: &AppState,
    caller: &Caller,
    token: &CartToken,
) -> Result<CartFacts, ApiError> {
    type Row = (
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<rust_decimal::Decimal>,
        Option<chrono::DateTime<chrono::Utc>>,
        sqlx::types::Json<Vec<String>>,
    );
    let not_found = || ApiError::Domain(ErrorCode::CartNotFound, "cart not found".into());
    let (owner, currency, country, st, fx_rate, fx_as_of, applied): Row = sqlx::query_as(
        "SELECT owner_user_id, currency, buyer_country, buyer_state, fx_rate, fx_as_of, coupons FROM carts WHERE cart_token = $1",
    )
    .bind(token.as_str())
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    if !super::cart::owns(caller, owner.as_deref(), token.as_str()) {
        return Err(not_found());
    }
    let rows: Vec<(String, String, String, i32, i64, String)> = sqlx::query_as(
        "SELECT internship_id, title, category, quantity, base_unit_price_minor, tax_class FROM cart_items WHERE cart_token = $1 ORDER BY position",
    )
    .bind(token.as_str())
    .fetch_all(&state.pool)
    .await?;
    let lines = rows
        .into_iter()
        .map(
            |(internship_id, title, category, quantity, price, tax)| LineInput {
                internship_id,
                title,
                category,
                quantity: quantity.max(0) as u32,
                unit_price: Money::from_minor(price, Currency::INR),
                tax_class: TaxClass::parse(&tax),
            },
        )
        .collect();
    let currency = Currency::parse(&currency).map_err(|e| ApiError::Internal(e.into()))?;
    let fx = match (currency == Currency::INR, fx_rate, fx_as_of) {
        (false, Some(rate), Some(as_of)) => Some(Fx {
            currency,
            rate,
            as_of_ms: as_of.timestamp_millis(),
        }),
        _ => None,
    };
    Ok(CartFacts {
        lines,
        buyer: country.map(|country| Buyer { country, state: st }),
        fx,
        owner,
        applied: applied.0,
    })
}

/// The coupons a request weighs (the cart's and the candidates) and the
/// uses of those with a limit, each read in one query.
struct Known {
    coupons: HashMap<String, Coupon>,
    /// (all uses, the cart owner's) of each limited coupon used so far.
    uses: HashMap<String, (u32, u32)>,
}

impl Known {
    async fn load(
        state: &AppState,
        codes: &[String],
        user: Option<&str>,
    ) -> Result<Known, ApiError> {
        let rows: Vec<(String, sqlx::types::Json<CouponRecord>)> =
            sqlx::query_as("SELECT code, definition FROM coupons WHERE code = ANY($1)")
                .bind(codes)
                .fetch_all(&state.pool)
                .await?;
        let coupons = rows
            .into_iter()
            .filter_map(|(code, d)| Coupon::from_record(&d.0).map(|c| (code, c)))
            .collect();
        let counted: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT r.code, count(*), count(*) FILTER (WHERE r.user_id = $2)
             FROM coupon_redemptions r JOIN coupons c ON c.code = r.code
             WHERE r.code = ANY($1)
               AND (c.definition->>'usage_limit' IS NOT NULL OR c.definition->>'per_user_limit' IS NOT NULL)
             GROUP BY r.code",
        )
        .bind(codes)
        .bind(user)
        .fetch_all(&state.pool)
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        let uses = counted
            .into_iter()
            .map(|(code, all, mine)| (code, (count(all), count(mine))))
            .collect();
        Ok(Known { coupons, uses })
    }

    fn uses_of(&self, code: &str) -> (u32, u32) {
        self.uses.get(code).copied().unwrap_or((0, 0))
    }
}

/// How many orders hold or used `code`, in all and by `user`; (0, 0)
/// for a coupon with neither limit, whose uses no rule reads. Postgres
/// evaluates the uncorrelated `EXISTS` once, so a popular coupon without
/// limits costs no scan of its uses.
pub(crate) async fn used(
    state: &AppState,
    code: &str,
    user: Option<&str>,
) -> Result<(u32, u32), ApiError> {
    let (all, mine): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE user_id = $2) FROM coupon_redemptions
         WHERE code = $1
           AND EXISTS (SELECT 1 FROM coupons c WHERE c.code = $1
                       AND (c.definition->>'usage_limit' IS NOT NULL OR c.definition->>'per_user_limit' IS NOT NULL))",
    )
    .bind(code)
    .bind(user)
    .fetch_one(&state.pool)
    .await?;
    Ok((
        u32::try_from(all).unwrap_or(u32::MAX),
        u32::try_from(mine).unwrap_or(u32::MAX),
    ))
}

/// Checks coupon `code` after the cart's coupons, on what [`Known`]
/// read; the discount it would give when it applies.
fn evaluate(
    state: &AppState,
    cart: &CartFacts,
    known: &Known,
    code: &str,
) -> Result<Result<Money, coupons::Refusal>, ApiError> {
    let candidate = known.coupons.get(code).cloned();
    let policy = &state.pricing;
    let priced = pricing::price(
        &cart.lines,
        cart.buyer.as_ref(),
        cart.fx.as_ref(),
        policy,
        &[],
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    let lines = DiscountLine::of(&cart.lines, priced.lines.iter().map(|p| p.line_subtotal));
    let mut applied = Vec::new();
    for c in &cart.applied {
        if c == code {
            return Ok(Err(coupons::Refusal::AlreadyApplied));
        }
        if let Some(c) = known.coupons.get(c) {
            applied.push(c.clone());
        }
    }
    // The coupon processor's count (reservations and uses), as the
    // coupon-usage sink has it: orders enforce the limit exactly, this
    // answers with what is known now.
    let usage = known.uses_of(code);
    let check = coupons::check(
        candidate.as_ref(),
        &CheckContext {
            now_ms: chrono::Utc::now().timestamp_millis(),
            user_id: cart.owner.as_deref(),
            lines: &lines,
            subtotal: priced.subtotal,
            fx: cart.fx.as_ref(),
            applied: &applied,
            max_per_cart: rules::coupons::MAX_PER_CART,
            used: usage.0,
            used_by_user: usage.1,
            rounding: policy.rounding,
        },
    );
    if let Err(r) = check {
        return Ok(Err(r));
    }
    let mut all = applied;
    all.extend(candidate);
    let (_, discounts) = coupons::allocate(
        &all,
        &lines,
        priced.currency,
        cart.fx.as_ref(),
        policy.rounding,
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Ok(discounts
        .last()
        .map(|d| d.amount)
        .unwrap_or(Money::zero(priced.currency))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    pub cart_token: String,
    pub code: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub code: String,
    pub valid: bool,
    /// What the coupon would take off, in the cart's currency.
    pub discount_minor: i64,
    pub currency: String,
}

/// Would a coupon apply to a cart? Nothing is written.
#[utoipa::path(
    post,
    path = "/api/v1/cart/discount/validate",
    tag = "coupons",
    request_body(content = ValidateRequest, example = json!({"cart_token": "6f1c0e0b2b7d4f6e9a0c3d5e7f9a1b2c", "code": "WELCOME10"})),
    responses(
        (status = 200, description = "the coupon applies", body = Validation),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "the coupon does not apply: code 2001-2012 says why", body = ErrorBody),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<Validation>, ApiError> {
    let token = parse_token(&req.cart_token)?;
    let code = super::cart::coupon_code(&req.code)?;
    let cart = facts(&state, &caller, &token).await?;
    let mut codes = cart.applied.clone();
    codes.push(code.clone());
    let known = Known::load(&state, &codes, cart.owner.as_deref()).await?;
    match evaluate(&state, &cart, &known, &code)? {
        Ok(discount) => Ok(Json(Validation {
            code,
            valid: true,
            discount_minor: discount
                .to_minor()
                .map_err(|e| ApiError::Internal(e.into()))?,
            currency: discount.currency().code().to_owned(),
        })),
        Err(r) => Err(ApiError::Domain(r.error_code(), r.message())),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Offer {
    pub code: String,
    pub name: String,
    pub applicable: bool,
    /// When applicable: what it would take off.
    pub discount_minor: Option<i64>,
    /// When not: the rule's code (2001-2012) and message.
    pub reason_code: Option<i32>,
    pub reason: Option<String>,
}

/// The coupons on offer and whether each applies to this cart.
#[utoipa::path(
    get,
    path = "/api/v1/cart/{token}/discounts",
    tag = "coupons",
    params(("token" = String, Path, description = "the cart token")),
    responses(
        (status = 200, description = "every active, non-referral coupon", body = Vec<Offer>),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<Vec<Offer>>, ApiError> {
    let token = parse_token(&token)?;
    let cart = facts(&state, &caller, &token).await?;
    let codes: Vec<(String, String)> = sqlx::query_as(
        "SELECT code, name FROM coupons WHERE active AND kind <> 'referral' AND (valid_until IS NULL OR valid_until > now()) ORDER BY code LIMIT 100",
    )
    .fetch_all(&state.pool)
    .await?;
    let mut weighed: Vec<String> = codes.iter().map(|(c, _)| c.clone()).collect();
    weighed.extend(cart.applied.iter().cloned());
    let known = Known::load(&state, &weighed, cart.owner.as_deref()).await?;
    let mut offers = Vec::with_capacity(codes.len());
    for (code, name) in codes {
        let offer = match evaluate(&state, &cart, &known, &code)? {
            Ok(d) => Offer {
                code,
                name,
                applicable: true,
                discount_minor: d.to_minor().ok(),
                reason_code: None,
                reason: None,
            },
            Err(r) => Offer {
                code,
                name,
                applicable: false,
                discount_minor: None,
                reason_code: Some(r.code()),
                reason: Some(r.message()),
            },
        };
        offers.push(offer);
    }
    Ok(Json(offers))
}
