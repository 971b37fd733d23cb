//! Payment gateways as connectors, the simulator being one more.
//!
//! Each gateway is a module with the same three parts, as Hyperswitch
//! splits its connectors:
//!
//! - `mod.rs`: the HTTP client (base URL, credentials, the calls), the only
//!   place that does I/O;
//! - `transformers.rs`: the gateway's wire structs and pure conversions,
//!   our [`SessionRequest`] → their payload, their answer → our [`Session`],
//!   [`PaymentStatus`], [`Refund`] or [`WebhookEvent`];
//! - `webhook.rs`: signature checks over the raw body, with no clock inside
//!   (the time comes in as a value).
//!
//! [`razorpay`] speaks `POST /v1/orders` (Basic auth, amounts in minor
//! units, `receipt` = our order id) and answers the data Razorpay's
//! checkout needs; [`stripe`] speaks `POST /v1/checkout/sessions`
//! (form-encoded, `Idempotency-Key`) and answers the hosted page's URL.
//! Both implement [`Connector`]. Neither retries: the caller wraps a call in
//! [`retry::run`], which retries what [`GatewayError::retryable`] allows
//! (timeouts, 5xx, 429) with exponential backoff and jitter and returns
//! every attempt. A retried create is safe because Stripe's calls carry
//! the caller's idempotency key and the Razorpay client looks the order up
//! by `receipt` before creating one.
//!
//! The clients call the providers' APIs by default and need their keys
//! (no defaults). In development and tests, `RAZORPAY_BASE_URL` and
//! `STRIPE_BASE_URL` point them at the gateway simulator
//! (`standins/gateway-simulator`), which speaks the same endpoints; this
//! crate knows nothing of it.

pub mod error;
pub mod model;
pub mod razorpay;
pub mod retry;
pub mod secrets;
pub mod stripe;
pub mod telemetry;

mod http;

use std::fmt;
use std::future::Future;

pub use error::{GatewayError, TransformError, WebhookError};
pub use model::{
    Buyer, Checkout, IdempotencyKey, Line, OrderId, PaymentEvent, PaymentRef, PaymentStatus,
    Refund, RefundRequest, RefundStatus, Session, SessionRequest, WebhookEvent,
};
pub use secrets::WebhookSecrets;

/// The gateways we integrate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gateway {
    Razorpay,
    Stripe,
}

impl Gateway {
    pub fn as_str(self) -> &'static str {
        match self {
            Gateway::Razorpay => "razorpay",
            Gateway::Stripe => "stripe",
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every gateway client does. A worker is generic over it, so the
/// same retry and recording code drives Razorpay, Stripe and the simulator
/// (which is reached through either client).
pub trait Connector {
    fn gateway(&self) -> Gateway;

    /// Opens a payment session for an order: a Razorpay order, a Stripe
    /// Checkout Session. Safe to call again with the same request.
    fn create_session(
        &self,
        request: &SessionRequest,
    ) -> impl Future<Output = Result<Session, GatewayError>> + Send;

    /// Where the payment of a session stands (reconciliation), by the
    /// gateway's id of it ([`Session::id`]).
    fn look_up(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<PaymentStatus, GatewayError>> + Send;

    /// Refunds a payment (all of it when no amount is given). Safe to call
    /// again with the same request.
    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Result<Refund, GatewayError>> + Send;
}
