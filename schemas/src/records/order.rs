//! `internhub.order.*`: the commands on `order.commands` and the order
//! snapshots on `order.snapshots` (and, unchanged, on the order processor's
//! changelog). An order embeds the cart as it was priced when it was placed
//! (`placed`), so the breakdown it charges is frozen with it.

use serde::{Deserialize, Serialize};

use super::cart::{CartSnapshot, CommandRejection};
use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCommand {
    pub command_id: String,
    pub order_token: String,
    /// Milliseconds since the Unix epoch.
    pub issued_at: i64,
    /// Who asked: a user id, `system` (timers) or a gateway name.
    pub actor: Option<String>,
    pub command: OrderCmd,
}

/// The Avro union of order command kinds. Variant order is the union's
/// branch order on the wire: append new kinds, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCmd {
    OpenOrder(OpenOrder),
    StartAttempt(StartAttempt),
    ExpireAttempt(ExpireAttempt),
    PaymentSucceeded(PaymentSucceeded),
    PaymentFailed(PaymentFailed),
    CouponAnswered(CouponAnswered),
    SessionOpened(SessionOpened),
    SessionFailed(SessionFailed),
    Reconcile(Reconcile),
    RequestRefund(RequestRefund),
    RefundStarted(RefundStarted),
    RefundNotStarted(RefundNotStarted),
    RefundSettled(RefundSettled),
}

/// The timer asks the gateway where an attempt's payment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    pub attempt: i32,
}

/// An admin asks to refund a paid order in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRefund {
    pub reason: String,
}

/// The gateway took the refund; its outcome comes by webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundStarted {
    pub refund_id: String,
    pub gateway: String,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
}

/// The gateway refused the refund call, or none answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotStarted {
    pub failure: String,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
}

/// The gateway's refund webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSettled {
    pub refund_id: String,
    pub gateway: String,
    pub amount: WireMoney,
    pub succeeded: bool,
}

/// How a payment that landed after its order expired (or failed) was
/// taken: `ORDER_LATE_PAYMENT` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LatePayment {
    /// Enrolled as if on time.
    Enrolled,
    /// Not enrolled: the money is to be given back.
    RefundDue,
}

impl LatePayment {
    pub fn as_str(self) -> &'static str {
        match self {
            LatePayment::Enrolled => "enrolled",
            LatePayment::RefundDue => "refund_due",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundState {
    Requested,
    Pending,
    Processed,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Requested => "requested",
            RefundState::Pending => "pending",
            RefundState::Processed => "processed",
            RefundState::Failed => "failed",
        }
    }
}

/// An order's refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefund {
    pub status: RefundState,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: i64,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub refund_id: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
}

/// The gateway worker opened a payment session for an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOpened {
    pub attempt: i32,
    pub gateway: String,
    pub session_id: String,
    pub checkout_url: Option<String>,
    pub razorpay_key_id: Option<String>,
    pub expires_at: i64,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
}

/// No gateway opened a session for the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFailed {
    pub attempt: i32,
    pub failure: String,
    pub timed_out: bool,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
}

/// One call to a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCall {
    pub gateway: String,
    /// `ok`, or the error's kind.
    pub outcome: String,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// The coupon processor's answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponAnswered {
    pub code: String,
    pub reserved: bool,
    pub refusal_code: Option<i32>,
    pub message: String,
    /// The reservation round answered (`ReserveCoupon::round`).
    #[serde(default)]
    pub round: i32,
}

/// An order's coupon and where its reservation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponHold {
    pub code: String,
    pub status: HoldStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldStatus {
    Requested,
    Reserved,
    Refused,
    Committed,
    Released,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Requested => "requested",
            HoldStatus::Reserved => "reserved",
            HoldStatus::Refused => "refused",
            HoldStatus::Committed => "committed",
            HoldStatus::Released => "released",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    pub cart: CartSnapshot,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    #[serde(default)]
    pub buyer_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAttempt {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireAttempt {
    pub attempt: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub attempt: i32,
    pub gateway: String,
    pub payment_ref: String,
    pub amount: WireMoney,
    /// How the buyer paid, when the gateway says (card, upi, …).
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub attempt: i32,
    pub gateway: String,
    pub failure: String,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    AwaitingPayment,
    Paid,
    Failed,
    Expired,
    Refunded,
}

impl OrderStatus {
    /// The lowercase name used in the API and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Failed => "failed",
            OrderStatus::Expired => "expired",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The status named by [`OrderStatus::as_str`].
    pub fn parse(s: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Pending,
            OrderStatus::AwaitingPayment,
            OrderStatus::Paid,
            OrderStatus::Failed,
            OrderStatus::Expired,
            OrderStatus::Refunded,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatus {
    Open,
    Paid,
    Failed,
    Expired,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Open => "open",
            AttemptStatus::Paid => "paid",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAttempt {
    pub number: i32,
    pub payment_token: String,
    pub opened_at: i64,
    pub expires_at: i64,
    pub status: AttemptStatus,
    pub gateway: Option<String>,
    pub payment_ref: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub checkout_url: Option<String>,
    #[serde(default)]
    pub razorpay_key_id: Option<String>,
    #[serde(default)]
    pub calls: Vec<GatewayCall>,
    /// Reconciliation look-ups asked for this attempt.
    #[serde(default)]
    pub lookups: i32,
    #[serde(default)]
    pub looked_up_at: Option<i64>,
    /// How the buyer paid (or tried to), when the gateway said.
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub seq: i32,
    pub from_status: Option<OrderStatus>,
    pub to_status: OrderStatus,
    pub reason: String,
    pub actor: String,
    pub correlation_id: String,
    pub at: i64,
    /// Set when refused: the order stayed in `from_status`.
    pub refused_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub event_id: String,
    pub order_token: String,
    pub version: i64,
    pub status: OrderStatus,
    pub cart_token: String,
    pub buyer_user_id: Option<String>,
    pub placed: CartSnapshot,
    pub attempts: Vec<PaymentAttempt>,
    pub history: Vec<Transition>,
    #[serde(default)]
    pub coupons: Vec<CouponHold>,
    pub rejection: Option<CommandRejection>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    #[serde(default)]
    pub buyer_email: Option<String>,
    #[serde(default)]
    pub late_payment: Option<LatePayment>,
    #[serde(default)]
    pub refund: Option<OrderRefund>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_command_id: String,
}

/// An order's outcome on `order.events`, once per transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    pub order_token: String,
    pub kind: OrderEventKind,
    pub at: i64,
    pub version: i64,
    pub buyer_user_id: Option<String>,
    pub total: WireMoney,
    pub attempt: i32,
    pub gateway: Option<String>,
    pub payment_ref: Option<String>,
    pub reason: String,
    pub late_payment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderEventKind {
    Paid,
    Failed,
    Expired,
    Refunded,
}
