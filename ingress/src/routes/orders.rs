//! Orders: placing one from a cart, reading it, listing the caller's, and
//! paying again after a failed or expired attempt.
//!
//! - `POST /api/v1/order`: checks the cart out. The cart processor decides
//!   (the cart's checkout blockers, priced from its own state, never from
//!   the read model); this handler answers early what the read model
//!   already shows at the caller's last write (`cart_version`, or the
//!   cart's first version: "buy now" works right after creating it): a
//!   cart placed already (200 with its order: a cart yields one order) or
//!   blocked (409 with every blocker's code);
//! - `GET /api/v1/order/{order_token}`: the order, its frozen cart, its
//!   payment attempts and history, with `Prefer: wait=N` for an order just
//!   placed;
//! - `GET /api/v1/me/orders`: the signed-in user's orders;
//! - `POST /api/v1/order/{order_token}/pay`: a new payment attempt (a new
//!   payment token) after a failure or expiry.
//!
//! Return URLs must start with a configured origin (`ORDER_RETURN_ORIGINS`,
//! https only unless `ORDER_RETURN_HTTP_ALLOWED=true` in development), so
//! the checkout can never be used as an open redirect.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use schemas::codes::ErrorCode;
use schemas::records::cart::{Command, PlaceOrder};
use schemas::records::order::{AttemptStatus, OrderCmd, OrderCommand, OrderStatus, StartAttempt};
use schemas::topics::ORDER_COMMANDS;
use schemas::values::{Email, OrderToken};

use super::cart::{owns, parse_token, preferred_wait, send_to_cart, wait_for_version};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::CommandIds;
use crate::read_model::{self, orders::OrderView};
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
        .routes(routes!(my_orders))
        .routes(routes!(pay_again))
}

/// Where a buyer may be sent back to after paying.
#[derive(Debug, Clone, Default)]
pub struct ReturnUrls {
    /// `ORDER_RETURN_ORIGINS`: comma-separated origins (`https://shop.example`).
    pub origins: Vec<String>,
    /// `ORDER_RETURN_HTTP_ALLOWED`: accept http origins (development only).
    pub allow_http: bool,
}

impl ReturnUrls {
    pub fn from_env() -> ReturnUrls {
        use platform::config::var;
        ReturnUrls {
            origins: var("ORDER_RETURN_ORIGINS", "")
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            allow_http: var("ORDER_RETURN_HTTP_ALLOWED", "false") == "true",
        }
    }

    /// `url` when it is on an allowed origin (scheme, host and port exactly).
    fn check(&self, field: &str, url: &str) -> Result<(), String> {
        let origin_end = url
            .find("://")
            .map(|i| i + 3)
            .map(|start| url[start..].find('/').map_or(url.len(), |j| start + j));
        let Some(end) = origin_end else {
            return Err(format!("{field}: not an absolute URL"));
        };
        let origin = &url[..end];
        let secure = origin.starts_with("https://");
        let allowed_http = self.allow_http && origin.starts_with("http://");
        if !(secure || allowed_http) {
            return Err(format!("{field}: must be https"));
        }
        if url.len() > 2048 || url.chars().any(char::is_whitespace) {
            return Err(format!("{field}: not a valid URL"));
        }
        if !self.origins.iter().any(|o| o == origin) {
            return Err(format!("{field}: {origin} is not an allowed return origin"));
        }
        Ok(())
    }
}

/// How long a placement waits for the read model to show the cart (or the
/// version the caller last wrote) before deciding without it.
const PLACEMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderInput {
    pub cart_token: String,
    /// Where the gateway's hosted page sends the buyer after paying; must
    /// be on an allowed origin.
    pub success_url: Option<String>,
    /// Where it sends a buyer who cancels; same rule.
    pub cancel_url: Option<String>,
    /// Where the order's emails go; defaults to the signed-in user's
    /// `email` claim.
    pub email: Option<String>,
    /// The `version` the caller's last write to the cart answered: the
    /// placement is checked against the cart at that version or later, so
    /// a write just made counts. Without it, a cart created a moment ago
    /// ("buy now") is waited for all the same.
    #[serde(default)]
    pub cart_version: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderAccepted {
    pub order_token: String,
    pub cart_token: String,
    /// The cart's version once the placement is applied.
    pub cart_version: i64,
    /// The command written; absent when the cart was placed already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

/// Place an order from a cart: the cart is converted and its priced
/// breakdown frozen into the order. Without an Idempotency-Key a cart still
/// yields one order: placing it again answers 200 with that order.
#[utoipa::path(
    post,
    path = "/api/v1/order",
    tag = "orders",
    request_body(content = PlaceOrderInput, example = json!({"cart_token": "6f1c0e5b9a2d4c7e8f1a3b5c7d9e0f12", "success_url": "https://shop.example/paid"})),
    responses(
        (status = 202, description = "placement accepted; read the order with Prefer: wait", body = OrderAccepted),
        (status = 200, description = "the cart was placed already: its order", body = OrderAccepted),
        (status = 404, description = "no such cart (or not the caller's)", body = ErrorBody),
        (status = 409, description = "the cart cannot be checked out: every blocker's code in validation_messages", body = ErrorBody),
        (status = 410, description = "the cart expired", body = ErrorBody),
        (status = 422, description = "invalid request (a return URL not on an allowed origin)", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn place_order(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    ApiJson(input): ApiJson<PlaceOrderInput>,
) -> Result<Response, ApiError> {
    let token = parse_token(&input.cart_token)?;
    let mut errors: Vec<String> = [
        ("success_url", &input.success_url),
        ("cancel_url", &input.cancel_url),
    ]
    .into_iter()
    .filter_map(|(field, url)| url.as_deref().map(|u| state.return_urls.check(field, u)))
    .filter_map(Result::err)
    .collect();
    let email = match input.email.as_deref().map(Email::parse) {
        Some(Ok(e)) => Some(String::from(e)),
        Some(Err(e)) => {
            errors.push(format!("email: {e}"));
            None
        }
        None => caller.email().map(str::to_owned),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if input.cart_version.is_some_and(|v| v < 0) {
        return Err(ApiError::Validation(vec![
            "cart_version: a version a write to the cart answered (0 or more)".into(),
        ]));
    }
    // Read-your-writes: the caller's own last write counts, a placement
    // right after creating the cart ("buy now") included. The read model is
    // waited on, briefly, until it shows the cart at the version the caller
    // names (or at all); a cart still not visible then is unknown (the
    // processor would drop its placement all the same).
    let (cart, behind) = wait_for_version(
        &state,
        token.as_str(),
        input.cart_version.unwrap_or(0),
        PLACEMENT_WAIT,
    )
    .await?;
    let cart = cart
        .filter(|c| may_act(&caller, c.owner_user_id.as_deref()))
        .ok_or_else(|| ApiError::Domain(ErrorCode::CartNotFound, "cart not found".into()))?;
    // One order per placement: a cart opened again after its order failed
    // for a coupon is placed as a new order (the processor refuses a token
    // prepared against an older state of the cart).
    let order_token = OrderToken::of_placement(&token, cart.placements);
    // What the read model shows answers early; a view older than the
    // caller's last write answers nothing, and the cart processor, which
    // applies the cart's commands in order, decides alone.
    if !behind {
        if cart.order_token.as_deref() == Some(order_token.as_str()) {
            let body = OrderAccepted {
                order_token: order_token.as_str().to_owned(),
                cart_token: token.as_str().to_owned(),
                cart_version: cart.version,
                command_id: None,
            };
            return Ok(with_location(
                (StatusCode::OK, Json(body)).into_response(),
                &order_token,
            ));
        }
        if cart.status == "expired" {
            return Err(ApiError::Domain(
                ErrorCode::CartExpired,
                "the cart expired after a day without activity".into(),
            ));
        }
        let blockers = read_model::checkout_blockers(&cart);
        if !blockers.is_empty() {
            return Err(ApiError::CheckoutBlocked(
                blockers
                    .into_iter()
                    .map(|b| {
                        let code =
                            ErrorCode::from_code(b.code).unwrap_or(ErrorCode::CartNotModifiable);
                        (code, b.message)
                    })
                    .collect(),
            ));
        }
    }
    // Checked above, sealed here: only the ingress (for the person) and
    // the notification worker (to send) ever open it.
    let email = match email {
        Some(e) => {
            let person = crate::personal::person(&caller, &token);
            crate::personal::link_email(&state, &e, &person).await?;
            Some(crate::personal::seal_email(&state, &person, &e).await?)
        }
        None => None,
    };
    let accepted = send_to_cart(
        &state,
        token.clone(),
        ids.command(0),
        Command::PlaceOrder(PlaceOrder {
            order_token: order_token.as_str().to_owned(),
            actor_user_id: caller.user_id().map(str::to_owned),
            success_url: input.success_url,
            cancel_url: input.cancel_url,
            buyer_email: email,
        }),
    )
    .await?;
    let body = OrderAccepted {
        order_token: order_token.as_str().to_owned(),
        cart_token: token.as_str().to_owned(),
        cart_version: accepted.version,
        command_id: accepted.command_id,
    };
    Ok(with_location(
        (StatusCode::ACCEPTED, Json(body)).into_response(),
        &order_token,
    ))
}

/// Who may check a cart out or pay an order: the holder of its token when
/// it is a guest's, its user when it is a user's. An admin may read any
/// order but not act for a buyer (the cart processor would refuse it too).
fn may_act(caller: &Caller, owner: Option<&str>) -> bool {
    owner.is_none_or(|o| caller.user_id() == Some(o))
}

fn with_location(mut response: Response, order: &OrderToken) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/order/{}", order.as_str())) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

pub(crate) fn parse_order(raw: &str) -> Result<OrderToken, ApiError> {
    OrderToken::parse(raw).map_err(|e| ApiError::Validation(vec![format!("order_token: {e}")]))
}

fn not_found() -> ApiError {
    ApiError::Domain(ErrorCode::OrderNotFound, "order not found".into())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderResponse {
    #[serde(flatten)]
    pub order: OrderView,
    /// True when the version asked for was not visible when the wait ended.
    pub stale: bool,
}

/// What a read of an order may wait for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderReadQuery {
    /// Wait for at least this version (with `Prefer: wait=N`).
    pub version: Option<i64>,
    /// With `Prefer: wait=N`, wait for what the page needs rather than
    /// the next version: `session`, until the newest payment attempt has
    /// its session at the gateway, or the order will not get one (paid,
    /// failed, expired, refunded).
    #[param(inline)]
    pub until: Option<Until>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    Session,
}

impl Until {
    fn reached(self, order: &OrderView) -> bool {
        match self {
            // The newest attempt open with its session (an earlier
            // attempt's session, before a new attempt opens, is not it),
            // or no session to wait for (`rules::order::session_may_come`).
            Until::Session => {
                let open = AttemptStatus::Open.as_str();
                order
                    .attempts
                    .last()
                    .is_some_and(|a| a.status == open && a.session_id.is_some())
                    || OrderStatus::parse(&order.status)
                        .is_none_or(|s| !rules::order::session_may_come(s))
            }
        }
    }
}

/// Read an order: its frozen cart, payment attempts (the last is the
/// current one) and history. With `Prefer: wait=N` (at most 30) an order
/// just placed is waited for, `?version=V` waits for that version, and
/// `?until=session` for its payment session (one request for a checkout
/// page, however many steps the order takes to get there).
#[utoipa::path(
    get,
    path = "/api/v1/order/{order_token}",
    tag = "orders",
    params(
        ("order_token" = String, Path, description = "the order token"),
        OrderReadQuery,
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds for the order (or `version`, or `until`) to be visible"),
    ),
    responses(
        (status = 200, description = "the order", body = OrderResponse),
        (status = 401, description = "invalid bearer token", body = ErrorBody),
        (status = 404, description = "no such order (or not the caller's)", body = ErrorBody),
        (status = 422, description = "malformed order token", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    Query(q): Query<OrderReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = parse_order(&token)?;
    let wanted = q.version.unwrap_or(i64::MIN);
    let reached = |o: &Option<OrderView>| {
        o.as_ref()
            .is_some_and(|o| q.until.is_none_or(|u| u.reached(o)))
    };
    let (order, seen) = match preferred_wait(&headers) {
        Some(wait) => {
            state
                .waiters
                .wait_for(
                    token.as_str(),
                    wait,
                    wanted,
                    || read_model::orders::order(&state.pool, token.as_str()),
                    |o: &Option<OrderView>| o.as_ref().map(|o| o.version),
                    reached,
                )
                .await?
        }
        None => {
            let order = read_model::orders::order(&state.pool, token.as_str()).await?;
            let seen = order.as_ref().is_some_and(|o| o.version >= wanted) && reached(&order);
            (order, seen)
        }
    };
    let mut order = order
        .filter(|o| owns(&caller, o.buyer_user_id.as_deref(), token.as_str()))
        .ok_or_else(not_found)?;
    crate::personal::open_order(&state.vault, &mut order).await?;
    Ok(Json(OrderResponse {
        order,
        stale: !seen,
    })
    .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderList {
    /// Newest first, at most 50; read one order for its attempts and history.
    pub orders: Vec<OrderView>,
}

/// The signed-in user's orders.
#[utoipa::path(
    get,
    path = "/api/v1/me/orders",
    tag = "orders",
    responses(
        (status = 200, description = "the caller's orders", body = OrderList),
        (status = 401, description = "no bearer token, or an invalid one", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn my_orders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some(user) = caller.user_id() else {
        return Err(ApiError::Unauthorized("sign in to list your orders".into()));
    };
    let mut orders = read_model::orders::orders_of(&state.pool, user, 50).await?;
    for order in &mut orders {
        crate::personal::open_order(&state.vault, order).await?;
    }
    Ok(Json(OrderList { orders }).into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayAccepted {
    pub order_token: String,
    /// The order's version once the new attempt is open.
    pub version: i64,
    pub command_id: String,
}

/// Start a new payment attempt (a new payment token) for an order whose
/// last attempt failed or expired.
#[utoipa::path(
    post,
    path = "/api/v1/order/{order_token}/pay",
    tag = "orders",
    params(("order_token" = String, Path, description = "the order token")),
    responses(
        (status = 202, description = "the new attempt is accepted; read the order with Prefer: wait and ?version", body = PayAccepted),
        (status = 404, description = "no such order (or not the caller's)", body = ErrorBody),
        (status = 409, description = "the order is not failed or expired (3002)", body = ErrorBody),
        (status = 422, description = "malformed order token", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn pay_again(
    State(state): State<AppState>,
    caller: Caller,
    ids: CommandIds,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token = parse_order(&token)?;
    let order = read_model::orders::order(&state.pool, token.as_str())
        .await?
        .filter(|o| may_act(&caller, o.buyer_user_id.as_deref()))
        .ok_or_else(not_found)?;
    if order.status != "failed" && order.status != "expired" {
        return Err(ApiError::Domain(
            ErrorCode::PaymentInvalidState,
            format!(
                "the order is {}: a new attempt needs a failed or expired one",
                order.status
            ),
        ));
    }
    let command = OrderCommand {
        command_id: ids.command(0).to_string(),
        order_token: token.as_str().to_owned(),
        issued_at: chrono::Utc::now().timestamp_millis(),
        actor: caller.user_id().map(str::to_owned),
        command: OrderCmd::StartAttempt(StartAttempt {
            reason: "the buyer asked to pay again".into(),
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
    let body = PayAccepted {
        order_token: token.as_str().to_owned(),
        version,
        command_id: command.command_id,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The order's token, checked, once the caller may read the order's
/// reports and documents: its buyer (a guest's order: its token's holder)
/// or an admin. Any other caller is told the order does not exist.
pub(crate) async fn readable(
    state: &AppState,
    caller: &Caller,
    token: &str,
) -> Result<OrderToken, ApiError> {
    let token = OrderToken::parse(token)
        .map_err(|e| ApiError::Validation(vec![format!("order_token: {e}")]))?;
    let not_found = || ApiError::Domain(ErrorCode::OrderNotFound, "order not found".into());
    let buyer: Option<String> = sqlx::query_scalar::<_, Option<String>>(
        "SELECT buyer_user_id FROM orders WHERE order_token = $1",
    )
    .bind(token.as_str())
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    if !owns(caller, buyer.as_deref(), token.as_str()) {
        return Err(not_found());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_be_on_an_allowed_https_origin() {
        let urls = ReturnUrls {
            origins: vec!["https://shop.example".into()],
            allow_http: false,
        };
        assert!(urls.check("u", "https://shop.example/paid?x=1").is_ok());
        assert!(urls.check("u", "https://shop.example").is_ok());
        assert!(urls.check("u", "https://shop.example.evil.com/x").is_err());
        assert!(urls
            .check("u", "https://evil.com/https://shop.example/")
            .is_err());
        assert!(urls.check("u", "http://shop.example/paid").is_err());
        assert!(urls.check("u", "//shop.example/paid").is_err());
        assert!(urls.check("u", "javascript:alert(1)").is_err());
        let dev = ReturnUrls {
            origins: vec!["http://localhost:3000".into()],
            allow_http: true,
        };
        assert!(dev.check("u", "http://localhost:3000/done").is_ok());
        assert!(dev.check("u", "http://localhost:3001/done").is_err());
    }
}
