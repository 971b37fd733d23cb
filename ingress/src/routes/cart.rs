//! `/api/v1/cart`: create a cart, add items, read a cart.
//!
//! Writes are validated here and become commands on `cart.commands`; the
//! answer (201/202) comes after the broker acknowledged the command and
//! carries the `version` the cart will have once the command is applied.
//! `GET` reads Postgres; with `Prefer: wait=N` and `?version=V` it answers
//! as soon as version V is visible, or after N seconds with what is there,
//! flagged `"stale": true`; with `Prefer: wait=N` alone it waits for a
//! cart that is not in Postgres yet (just created) to appear.
//!
//! Every id a write mints comes from [`CommandIds`]: derived from the
//! request's `Idempotency-Key` when it has one, random otherwise.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use schemas::codes::ErrorCode;
use schemas::records::cart::{
    AbsorbItems, AddItem, ApplyCoupon, CartCommand, ChoosePlan, Command, CreateCart, ItemRequest,
    RemoveCoupon, RemoveItem, SetBuyer, UpdateQuantity,
};
use schemas::values::{CartToken, InternshipId, Quantity};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::CommandIds;
use crate::read_model::{self, CartView};
use crate::AppState;

/// Longest `Prefer: wait` honoured.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart))
        .routes(routes!(add_item))
        .routes(routes!(update_quantity, remove_item))
        .routes(routes!(set_buyer))
        .routes(routes!(choose_plan))
        .routes(routes!(apply_coupon))
        .routes(routes!(remove_coupon))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCartRequest {
    #[serde(default)]
    pub items: Vec<ItemInput>,
    #[serde(default)]
    pub currency: Option<String>,
    /// The guest's device (1-128 of A-Z a-z 0-9 - _ . :), kept on the cart.
    #[serde(default)]
    pub device_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub internship_id: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub cart_token: String,
    /// The cart's version once this command is applied; pass it to
    /// `GET /api/v1/cart/{token}?version=` with `Prefer: wait=N`.
    pub version: i64,
    /// The command written; absent when nothing was (an existing cart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

/// Validates one item, collecting every problem rather than the first.
fn validate_item(
    i: usize,
    item: &ItemInput,
    max: u32,
    errors: &mut Vec<String>,
) -> Option<ItemRequest> {
    let id = InternshipId::parse(&item.internship_id)
        .map_err(|e| errors.push(format!("items[{i}].internship_id: {e}")))
        .ok();
    let qty = Quantity::new(item.quantity)
        .ok()
        .filter(|q| q.get() <= max)
        .ok_or(format!("quantity must be between 1 and {max}"))
        .map_err(|e| errors.push(format!("items[{i}].quantity: {e}")))
        .ok();
    Some(ItemRequest {
        internship_id: id?.as_str().to_owned(),
        quantity: qty?.get() as i32,
    })
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Create a cart, optionally with items. With a bearer token the cart
/// belongs to that user; without one it is a guest cart, authorized by its
/// token alone.
#[utoipa::path(
    post,
    path = "/api/v1/cart",
    tag = "cart",
    request_body(content = CreateCartRequest, example = json!({"items": [{"internship_id": "rust-backend-2027", "quantity": 2}]})),
    responses(
        (status = 200, description = "the caller already has an active cart: that one (with the items added)", body = Accepted),
        (status = 201, description = "accepted by the broker; `version` is the cart's version once applied", body = Accepted,
         example = json!({"cart_token": "6f1c0e0b2b7d4f6e9a0c3d5e7f9a1b2c", "version": 12, "command_id": "8b8cfdee-725c-4b8f-b0af-fbf6e3ad3981"})),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 401, description = "invalid bearer token", body = ErrorBody),
        (status = 422, description = "invalid request", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn create_cart(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    ApiJson(req): ApiJson<CreateCartRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let limits = state.limits;
    if req.items.len() > limits.max_lines {
        errors.push(format!("items: at most {} items", limits.max_lines));
    }
    let items: Vec<ItemRequest> = req
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| validate_item(i, it, limits.max_quantity, &mut errors))
        .collect();
    let currency = match req.currency.as_deref() {
        None => "INR".to_owned(),
        Some(c) => match schemas::Currency::parse(c) {
            Ok(c) => c.code().to_owned(),
            Err(e) => {
                errors.push(format!("currency: {e}"));
                String::new()
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let device_id = req.device_id.filter(|d| !d.is_empty());
    if device_id.as_ref().is_some_and(|d| {
        d.len() > 128
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    }) {
        return Err(ApiError::Validation(vec![
            "device_id: 1-128 of A-Z a-z 0-9 - _ . :".into(),
        ]));
    }
    open_cart(&state, &caller, &ids, currency, items, device_id).await
}

/// Opens a cart for `caller`: a new guest cart, a new cart for a user
/// without one, or — at most one active cart per user — the user's active
/// cart (200), with `items` added to it. Either way one command, id
/// position 0; a new cart's token comes from `ids` too, so a retry with the
/// same `Idempotency-Key` writes to the same cart.
pub(crate) async fn open_cart(
    state: &AppState,
    caller: &Caller,
    ids: &CommandIds,
    currency: String,
    items: Vec<ItemRequest>,
    device_id: Option<String>,
) -> Result<Response, ApiError> {
    if let Some(user) = caller.user_id() {
        if let Some((existing, version)) = read_model::active_cart_of(&state.pool, user).await? {
            let token = CartToken::parse(&existing).map_err(|e| ApiError::Internal(e.into()))?;
            let (version, command_id) = if items.is_empty() {
                (version, None)
            } else {
                let command = CartCommand {
                    command_id: ids.command(0).to_string(),
                    cart_token: existing.clone(),
                    issued_at: now_ms(),
                    command: Command::AbsorbItems(AbsorbItems {
                        source_cart_token: String::new(),
                        items,
                        user_id: user.to_owned(),
                    }),
                    tables_at: None,
                };
                (
                    state.commands.send_cart(&command).await?,
                    Some(command.command_id),
                )
            };
            let body = Accepted {
                cart_token: token.into(),
                version,
                command_id,
            };
            return Ok((StatusCode::OK, Json(body)).into_response());
        }
    }
    let token = ids.new_cart();
    let command = CartCommand {
        command_id: ids.command(0).to_string(),
        cart_token: token.as_str().to_owned(),
        issued_at: now_ms(),
        command: Command::CreateCart(CreateCart {
            currency,
            owner_user_id: caller.user_id().map(str::to_owned),
            items,
            device_id,
        }),
        tables_at: None,
    };
    let version = state.commands.send_cart(&command).await?;
    crate::http_metrics::metrics().carts_created.inc();
    let location = format!("/api/v1/cart/{}", token);
    let body = Accepted {
        cart_token: token.into(),
        version,
        command_id: Some(command.command_id),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Add seats of an internship to a cart (merged into its line if present).
#[utoipa::path(
    post,
    path = "/api/v1/cart/{token}/items",
    tag = "cart",
    params(("token" = String, Path, description = "the cart token")),
    request_body(content = ItemInput, example = json!({"internship_id": "data-science-2027", "quantity": 2})),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 401, description = "invalid bearer token", body = ErrorBody),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "invalid request", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn add_item(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(item): ApiJson<ItemInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    authorize(&state, &caller, &token).await?;
    let mut errors = Vec::new();
    let Some(item) = validate_item(0, &item, state.limits.max_quantity, &mut errors) else {
        let errors = errors
            .into_iter()
            .map(|e| e.trim_start_matches("items[0].").to_owned())
            .collect();
        return Err(ApiError::Validation(errors));
    };
    let actor = caller.user_id().map(str::to_owned);
    send_to_cart(
        &state,
        token,
        ids.command(0),
        Command::AddItem(AddItem {
            internship_id: item.internship_id,
            quantity: item.quantity,
            actor_user_id: actor,
        }),
    )
    .await
    .map(accepted)
}

/// Writes a command with id `command_id` (from [`CommandIds`]) for an
/// existing cart; what was accepted, with the version it will produce.
pub(crate) async fn send_to_cart(
    state: &AppState,
    token: CartToken,
    command_id: uuid::Uuid,
    command: Command,
) -> Result<Accepted, ApiError> {
    let command = CartCommand {
        command_id: command_id.to_string(),
        cart_token: token.as_str().to_owned(),
        issued_at: now_ms(),
        command,
        tables_at: None,
    };
    let version = state.commands.send_cart(&command).await?;
    Ok(Accepted {
        cart_token: token.into(),
        version,
        command_id: Some(command.command_id),
    })
}

/// 202 with what was accepted.
pub(crate) fn accepted(body: Accepted) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityInput {
    /// 0 to 1000; 0 removes the line.
    pub quantity: i64,
}

/// Set the quantity of a line (0 removes it).
#[utoipa::path(
    put,
    path = "/api/v1/cart/{token}/items/{internship_id}",
    tag = "cart",
    params(("token" = String, Path, description = "the cart token"), ("internship_id" = String, Path, description = "the line's internship")),
    request_body(content = QuantityInput, example = json!({"quantity": 5})),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "invalid request", body = ErrorBody),
    )
)]
pub async fn update_quantity(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path((token, internship_id)): Path<(String, String)>,
    ApiJson(input): ApiJson<QuantityInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let mut errors = Vec::new();
    if InternshipId::parse(&internship_id).is_err() {
        errors.push("internship_id: 1-64 characters of a-z, 0-9 and '-'".to_owned());
    }
    let max = state.limits.max_quantity;
    if !(0..=i64::from(max)).contains(&input.quantity) {
        errors.push(format!("quantity: between 0 and {max}"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    authorize(&state, &caller, &token).await?;
    let actor = caller.user_id().map(str::to_owned);
    let command = Command::UpdateQuantity(UpdateQuantity {
        internship_id,
        new_quantity: input.quantity as i32,
        actor_user_id: actor,
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(accepted)
}

/// Remove a line.
#[utoipa::path(
    delete,
    path = "/api/v1/cart/{token}/items/{internship_id}",
    tag = "cart",
    params(("token" = String, Path, description = "the cart token"), ("internship_id" = String, Path, description = "the line's internship")),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "invalid request", body = ErrorBody),
    )
)]
pub async fn remove_item(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path((token, internship_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    if InternshipId::parse(&internship_id).is_err() {
        return Err(ApiError::Validation(vec![
            "internship_id: 1-64 characters of a-z, 0-9 and '-'".to_owned(),
        ]));
    }
    authorize(&state, &caller, &token).await?;
    let actor = caller.user_id().map(str::to_owned);
    send_to_cart(
        &state,
        token,
        ids.command(0),
        Command::RemoveItem(RemoveItem {
            internship_id,
            actor_user_id: actor,
        }),
    )
    .await
    .map(accepted)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyerInput {
    /// ISO 3166-1 alpha-2, e.g. `IN`.
    pub country: String,
    /// For India: the GST state (code or name), e.g. `KA`.
    #[serde(default)]
    pub state: Option<String>,
    /// 15-character GSTIN of a business buyer in India.
    #[serde(default)]
    pub gstin: Option<String>,
    /// ISO 4217 display currency; a rate must be published for it.
    #[serde(default)]
    pub currency: Option<String>,
}

/// Set the buyer's location (for tax) and display currency.
#[utoipa::path(
    put,
    path = "/api/v1/cart/{token}/buyer",
    tag = "cart",
    params(("token" = String, Path, description = "the cart token")),
    request_body(content = BuyerInput, example = json!({"country": "IN", "state": "MH", "currency": "INR"})),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "invalid request", body = ErrorBody),
    )
)]
pub async fn set_buyer(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<BuyerInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let mut errors = Vec::new();
    let country = schemas::values::country_code(&input.country).unwrap_or_else(|e| {
        errors.push(format!("country: {e}"));
        String::new()
    });
    if input
        .state
        .as_ref()
        .is_some_and(|s| s.len() > 64 || s.chars().any(char::is_control))
    {
        errors.push("state: at most 64 printable characters".to_owned());
    }
    if let Some(g) = &input.gstin {
        if g.len() != 15 || !g.bytes().all(|b| b.is_ascii_alphanumeric()) || country != "IN" {
            errors.push("gstin: 15 letters and digits, for a buyer in India".to_owned());
        }
    }
    let currency = match input
        .currency
        .as_deref()
        .map(schemas::Currency::parse)
        .transpose()
    {
        Ok(c) => c.map(|c| c.code().to_owned()),
        Err(e) => {
            errors.push(format!("currency: {e}"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    authorize(&state, &caller, &token).await?;
    // Validated above, sealed here: the processors and the read model only
    // ever hold it encrypted.
    let gstin = match input.gstin {
        Some(g) => {
            let person = crate::personal::person(&caller, &token);
            Some(crate::personal::seal(&state.vault, &person, &g.to_ascii_uppercase()).await?)
        }
        None => None,
    };
    let command = Command::SetBuyer(SetBuyer {
        country,
        state: input.state,
        gstin,
        display_currency: currency,
        actor_user_id: caller.user_id().map(str::to_owned),
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(accepted)
}

/// Whether `caller` may use a cart owned by `owner`: a guest cart by anyone
/// holding its token, a user's cart by that user (or an admin). A denial is
/// answered like an unknown cart, so a stolen token reveals nothing, and is
/// written to the audit log.
pub(crate) fn owns(caller: &Caller, owner: Option<&str>, token: &str) -> bool {
    let allowed = match owner {
        None => true,
        Some(owner) => caller.user_id() == Some(owner) || caller.is_admin(),
    };
    if !allowed {
        tracing::warn!(target: "audit", event = "ownership_denied", caller = ?caller.user_id(),
            cart = %platform::telemetry::token_ref(token), "cart belongs to another user");
    }
    allowed
}

/// Refuses a write to a cart the caller may not change: a user's cart
/// takes writes from that user only (an admin included, as the processor's
/// rule says). A cart not yet in the read model passes here; the processor
/// applies the same rule to it.
pub(crate) async fn authorize(
    state: &AppState,
    caller: &Caller,
    token: &CartToken,
) -> Result<(), ApiError> {
    let Some(access) = read_model::access(&state.pool, token.as_str()).await? else {
        return Ok(());
    };
    if let Some(owner) = &access.owner_user_id {
        if caller.user_id() != Some(owner.as_str()) {
            tracing::warn!(target: "audit", event = "ownership_denied", caller = ?caller.user_id(),
                cart = %platform::telemetry::token_ref(token.as_str()), "write to another user's cart");
            return Err(ApiError::Domain(
                ErrorCode::CartNotFound,
                "cart not found".into(),
            ));
        }
    }
    match access.status.as_str() {
        "expired" => Err(ApiError::Domain(
            ErrorCode::CartExpired,
            "the cart expired after a day without activity".into(),
        )),
        "active" => Ok(()),
        other => Err(ApiError::Domain(
            ErrorCode::CartNotModifiable,
            format!("the cart is {other}"),
        )),
    }
}

/// A malformed token names no cart: 404, like an unknown one, so the API
/// does not tell tokens that exist from tokens that never could.
pub(crate) fn parse_token(raw: &str) -> Result<CartToken, ApiError> {
    CartToken::parse(raw)
        .map_err(|_| ApiError::Domain(ErrorCode::CartNotFound, "cart not found".into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Wait for at least this version (with `Prefer: wait=N`).
    pub version: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartResponse {
    #[serde(flatten)]
    pub cart: CartView,
    /// True when the version asked for was not visible when the wait ended.
    pub stale: bool,
}

/// `Prefer: wait=N` (RFC 7240), capped at [`MAX_WAIT`].
pub(crate) fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            if k.trim().eq_ignore_ascii_case("wait") {
                v.trim()
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(|s| Duration::from_secs(s).min(MAX_WAIT))
            } else {
                None
            }
        })
}

/// Read a cart. With `Prefer: wait=N` (at most 30) and `?version=V`, the
/// answer comes as soon as version V is visible, or after N seconds with
/// what is there and `"stale": true`. With `Prefer: wait=N` and no version,
/// a cart not visible yet (just created) is waited for up to N seconds
/// before the answer is 404.
#[utoipa::path(
    get,
    path = "/api/v1/cart/{token}",
    tag = "cart",
    params(
        ("token" = String, Path, description = "the cart token"),
        ReadQuery,
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds for `version`, or for a cart not visible yet to appear"),
    ),
    responses(
        (status = 200, description = "the cart", body = CartResponse),
        (status = 401, description = "invalid bearer token", body = ErrorBody),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn get_cart(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let wait = preferred_wait(&headers);
    let wanted = q.version.unwrap_or(i64::MIN);
    // Without a version, waiting means waiting for the cart to exist: a
    // client reading the cart it just created must not get 404 for the
    // time the processor and the sink take to apply it.
    let (cart, stale) = match wait {
        Some(wait) => wait_for_version(&state, token.as_str(), wanted, wait).await?,
        None => (read_model::cart(&state.pool, token.as_str()).await?, false),
    };
    let Some(mut cart) = cart.filter(|c| owns(&caller, c.owner_user_id.as_deref(), token.as_str()))
    else {
        return Err(ApiError::Domain(
            ErrorCode::CartNotFound,
            "cart not found".into(),
        ));
    };
    crate::personal::open_cart(&state.vault, &mut cart).await?;
    let mut response = Json(CartResponse {
        stale: stale || cart.version < wanted,
        cart,
    })
    .into_response();
    if let Some(wait) = wait {
        if let Ok(v) = HeaderValue::from_str(&format!("wait={}", wait.as_secs())) {
            response.headers_mut().insert("preference-applied", v);
        }
    }
    Ok(response)
}

/// Reads until the cart exists at `wanted` or later, waking on the sink's
/// notifications, or until `wait` has passed; `true` when it was not seen.
pub(crate) async fn wait_for_version(
    state: &AppState,
    token: &str,
    wanted: i64,
    wait: Duration,
) -> Result<(Option<CartView>, bool), ApiError> {
    let (cart, seen) = state
        .waiters
        .wait_until(
            token,
            wait,
            wanted,
            || read_model::cart(&state.pool, token),
            |c: &Option<CartView>| c.as_ref().map(|c| c.version),
        )
        .await?;
    Ok((cart, !seen))
}

/// Choose a billing period: the line whose internship offers the plan is
/// priced at it.
#[utoipa::path(
    put,
    path = "/api/v1/cart/{token}/plan/{plan_id}",
    tag = "cart",
    params(("token" = String, Path, description = "the cart token"), ("plan_id" = String, Path, description = "a plan from the catalog")),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "invalid plan id", body = ErrorBody),
    )
)]
pub async fn choose_plan(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path((token, plan_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    if InternshipId::parse(&plan_id).is_err() {
        return Err(ApiError::Validation(vec![
            "plan_id: 1-64 characters of a-z, 0-9 and '-'".to_owned(),
        ]));
    }
    authorize(&state, &caller, &token).await?;
    let command = Command::ChoosePlan(ChoosePlan {
        plan_id,
        actor_user_id: caller.user_id().map(str::to_owned),
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(accepted)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCouponInput {
    pub code: String,
}

pub(crate) fn coupon_code(raw: &str) -> Result<String, ApiError> {
    schemas::values::coupon_code(raw).map_err(|e| ApiError::Validation(vec![format!("code: {e}")]))
}

/// Apply a coupon; a refusal is recorded on the cart with its own code
/// (2001-2012).
#[utoipa::path(
    post,
    path = "/api/v1/cart/{token}/coupon",
    tag = "coupons",
    params(("token" = String, Path, description = "the cart token")),
    request_body(content = ApplyCouponInput, example = json!({"code": "WELCOME10"})),
    responses(
        (status = 202, description = "accepted by the broker; read the cart at `version` for the outcome", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "malformed code", body = ErrorBody),
    )
)]
pub async fn apply_coupon(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<ApplyCouponInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let code = coupon_code(&input.code)?;
    authorize(&state, &caller, &token).await?;
    // The coupon's uses as the coupon processor counted them, stamped on
    // the command: the cart's limits check reads them, and so does a replay.
    let (used, used_by_user) = super::coupons::used(&state, &code, caller.user_id()).await?;
    let count = |n: u32| Some(i32::try_from(n).unwrap_or(i32::MAX));
    let command = Command::ApplyCoupon(ApplyCoupon {
        code,
        actor_user_id: caller.user_id().map(str::to_owned),
        used: count(used),
        used_by_user: count(used_by_user),
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(accepted)
}

/// Remove a coupon from a cart.
#[utoipa::path(
    delete,
    path = "/api/v1/cart/{token}/coupon/{code}",
    tag = "coupons",
    params(("token" = String, Path, description = "the cart token"), ("code" = String, Path, description = "the coupon code")),
    responses(
        (status = 202, description = "accepted by the broker", body = Accepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 422, description = "malformed code", body = ErrorBody),
    )
)]
pub async fn remove_coupon(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path((token, code)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let token = parse_token(&token)?;
    let code = coupon_code(&code)?;
    authorize(&state, &caller, &token).await?;
    let command = Command::RemoveCoupon(RemoveCoupon {
        coupon_code: code,
        actor_user_id: caller.user_id().map(str::to_owned),
    });
    send_to_cart(&state, token, ids.command(0), command)
        .await
        .map(accepted)
}
