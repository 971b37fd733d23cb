//! The one error model. Every non-2xx answer, from every route and layer,
//! has the body
//!
//! ```json
//! {"status": 422, "success": false,
//!  "error": {"code": 422, "message": "...", "validation_messages": ["..."],
//!            "correlation_id": "...", "retryable": false, "suggested_action": "..."}}
//! ```
//!
//! Domain codes come from [`schemas::codes::ErrorCode`] (1001 cart not
//! found, ...); errors of HTTP itself use the status as their code (400,
//! 404, 405, 409, 413, 415, 422, 429, 500, 503, 504). Internal errors are
//! logged with their cause and answered with a generic message: no database
//! or Kafka text reaches a client.
//!
//! A write whose outcome is unknown (the broker did not confirm in time) is
//! not "unavailable": the record may have been written. It answers 504 with
//! the command id and asks for a retry with the same `Idempotency-Key`,
//! which writes the very same command id (see [`crate::idempotency`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use schemas::codes::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON")]
    MalformedJson(String),
    #[error("the request is invalid")]
    Validation(Vec<String>),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("{1}")]
    Domain(ErrorCode, String),
    /// The cart cannot be checked out: every blocker, each with its code
    /// (the body's code is the first one's; all are listed in
    /// `validation_messages` as `<code>: <message>`).
    #[error("the cart cannot be checked out")]
    CheckoutBlocked(Vec<(ErrorCode, String)>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    #[error("the request took too long")]
    Timeout,
    /// Any other status a layer produced without a body of ours.
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A dependency (Kafka, Postgres) is unavailable: nothing was accepted.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The broker did not confirm the command in time: it may or may not
    /// have been written.
    #[error("the broker did not confirm command {command_id} in time: it may or may not have been accepted")]
    OutcomeUnknown {
        command_id: String,
        #[source]
        cause: anyhow::Error,
    },
    /// The `Idempotency-Key` was first used for another method, path or body.
    #[error(
        "this Idempotency-Key was already used for a different request (method, path or body)"
    )]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInFlight,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub status: u16,
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: i32,
    pub message: String,
    pub validation_messages: Vec<String>,
    pub correlation_id: String,
    pub retryable: bool,
    pub suggested_action: String,
    /// The command written, when the outcome of writing it is unknown (504).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Domain(code, _) => domain_status(*code),
            ApiError::CheckoutBlocked(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Status(s, _) => *s,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OutcomeUnknown { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> i32 {
        match self {
            ApiError::Domain(code, _) => code.code(),
            ApiError::CheckoutBlocked(blockers) => blockers
                .first()
                .map(|(c, _)| c.code())
                .unwrap_or(i32::from(StatusCode::CONFLICT.as_u16())),
            other => i32::from(other.status().as_u16()),
        }
    }

    fn suggested_action(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Send a well-formed JSON body.",
            ApiError::Validation(_) => {
                "Correct the fields listed in validation_messages and retry."
            }
            ApiError::UnsupportedMediaType => "Send the body with Content-Type: application/json.",
            ApiError::PayloadTooLarge => "Send a smaller request body.",
            ApiError::Domain(ErrorCode::CartNotFound, _) => {
                "Check the cart token, or create a new cart."
            }
            ApiError::Domain(ErrorCode::CartExpired, _) => "Create a new cart.",
            ApiError::Domain(ErrorCode::InternshipUnavailable, _) => {
                "Choose an internship from the catalog."
            }
            ApiError::Domain(ErrorCode::CartLimitExceeded, _) => {
                "Reduce the quantity or the number of items."
            }
            ApiError::Domain(ErrorCode::PaymentFailed, _) => {
                "Start a new payment attempt (POST /api/v1/order/{order_token}/pay)."
            }
            ApiError::Domain(ErrorCode::PaymentInvalidState, _) => {
                "Read the order (GET /api/v1/order/{order_token}) and act on its status."
            }
            ApiError::Domain(ErrorCode::OrderNotFound, _) => "Check the order token.",
            ApiError::Domain(ErrorCode::DocumentNotIssued, _) => {
                "Wait for the order to be paid (or refunded, for a credit note), then list its documents (GET /api/v1/orders/{order_token}/invoices)."
            }
            ApiError::Domain(ErrorCode::GatewayTimeout, _) => {
                "Retry with the same Idempotency-Key; the gateway call is made at most once."
            }
            ApiError::Domain(ErrorCode::SeatsExhausted, _) => {
                "Read your enrollments (GET /api/v1/me/enrollments) for the seats left, and assign at most that many new emails."
            }
            ApiError::Domain(..) => "Correct the request and retry.",
            ApiError::CheckoutBlocked(_) => {
                "Resolve each blocker listed in validation_messages (read the cart), then place the order again."
            }
            ApiError::Unauthorized(_) => "Send a valid bearer token in the Authorization header.",
            ApiError::Forbidden(_) => "Use an account with the required role.",
            ApiError::RateLimited { .. } => {
                "Wait for the number of seconds in Retry-After, then retry."
            }
            ApiError::Timeout => "Retry the request.",
            ApiError::Status(..) => "Check the request against /openapi.json.",
            ApiError::RouteNotFound => "Check the URL against /openapi.json.",
            ApiError::MethodNotAllowed => "Use a method this route allows.",
            ApiError::Unavailable(_) | ApiError::Internal(_) => {
                "Retry later; the request was not accepted."
            }
            ApiError::OutcomeUnknown { .. } => {
                "Retry with the same Idempotency-Key and the same body: the retry writes the same \
                 command id, which is applied at most once. Without a key, read the cart before \
                 retrying, or the command may be applied twice."
            }
            ApiError::IdempotencyKeyReused => {
                "Send a new request with a new Idempotency-Key; repeat a request only with its own \
                 key and the very same body."
            }
            ApiError::IdempotencyKeyInFlight => {
                "Retry after Retry-After seconds with the same Idempotency-Key; the first answer \
                 will be replayed."
            }
        }
    }
}

fn domain_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::CartNotFound => StatusCode::NOT_FOUND,
        ErrorCode::CartExpired => StatusCode::GONE,
        ErrorCode::CartAlreadyExists => StatusCode::CONFLICT,
        ErrorCode::CartNotModifiable => StatusCode::CONFLICT,
        ErrorCode::ItemNotInCart => StatusCode::NOT_FOUND,
        ErrorCode::PlanNotAvailable => StatusCode::UNPROCESSABLE_ENTITY,
        // Every coupon refusal: the request was understood, the coupon does not apply.
        ErrorCode::CouponUnknown
        | ErrorCode::CouponExpired
        | ErrorCode::CouponNotYetValid
        | ErrorCode::CouponMinimumNotReached
        | ErrorCode::CouponNotApplicable
        | ErrorCode::CouponNotCombinable
        | ErrorCode::CouponUsedUp
        | ErrorCode::CouponPerUserLimit
        | ErrorCode::CouponOwnReferral
        | ErrorCode::CouponTooMany
        | ErrorCode::CouponAlreadyApplied => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InternshipUnavailable
        | ErrorCode::InvalidBuyerDetails
        | ErrorCode::CartLimitExceeded
        | ErrorCode::CurrencyNotSupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::PaymentFailed => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::PaymentInvalidState => StatusCode::CONFLICT,
        ErrorCode::OrderNotFound | ErrorCode::DocumentNotIssued => StatusCode::NOT_FOUND,
        ErrorCode::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::SeatsExhausted => StatusCode::CONFLICT,
        ErrorCode::NoSeatsToAssign => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The error body of a refusal a processor recorded (read back later, so
/// its correlation id is the current request's).
pub fn rejection_body(code: i32, message: String) -> ErrorBody {
    let error = match ErrorCode::from_code(code) {
        Some(c) => ApiError::Domain(c, message),
        None => ApiError::Status(StatusCode::UNPROCESSABLE_ENTITY, message),
    };
    error.body()
}

impl ApiError {
    fn body(&self) -> ErrorBody {
        let status = self.status();
        let validation_messages = match self {
            ApiError::Validation(m) => m.clone(),
            ApiError::MalformedJson(m) => vec![m.clone()],
            ApiError::CheckoutBlocked(blockers) => blockers
                .iter()
                .map(|(c, m)| format!("{}: {m}", c.code()))
                .collect(),
            _ => Vec::new(),
        };
        ErrorBody {
            status: status.as_u16(),
            success: false,
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                validation_messages,
                correlation_id: crate::correlation::current(),
                retryable: matches!(
                    self,
                    ApiError::Unavailable(_)
                        | ApiError::Internal(_)
                        | ApiError::RateLimited { .. }
                        | ApiError::Timeout
                        | ApiError::OutcomeUnknown { .. }
                        | ApiError::IdempotencyKeyInFlight
                        | ApiError::Domain(ErrorCode::GatewayTimeout, _)
                ),
                suggested_action: self.suggested_action().to_owned(),
                command_id: match self {
                    ApiError::OutcomeUnknown { command_id, .. } => Some(command_id.clone()),
                    _ => None,
                },
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            ApiError::Unavailable(e) => tracing::warn!(error = ?e, "dependency unavailable"),
            ApiError::OutcomeUnknown { command_id, cause } => {
                tracing::warn!(error = ?cause, command_id, "outcome of a write unknown")
            }
            other => tracing::info!(status = status.as_u16(), error = %other, "request refused"),
        }
        let body = self.body();
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            ApiError::RateLimited { retry_after } => Some(retry_after),
            // The first request is usually answered within a second.
            ApiError::IdempotencyKeyInFlight => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Gives every non-2xx answer the error body: a layer that answers on its
/// own (a timeout, a CORS refusal, a limit) produces a bare status, which
/// is replaced here by the body for that status.
pub async fn normalize(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let ours = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.as_u16() < 400 || ours {
        return response;
    }
    let error = match status {
        StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        s if s.is_server_error() => ApiError::Internal(anyhow::anyhow!("a layer answered {s}")),
        s => ApiError::Status(
            s,
            s.canonical_reason()
                .unwrap_or("request refused")
                .to_lowercase(),
        ),
    };
    let mut replaced = error.into_response();
    // Keep what the layer said beyond the status (Allow, Retry-After, CORS).
    for (name, value) in response.headers() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

pub async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable(e.into()),
            other => ApiError::Internal(other.into()),
        }
    }
}
