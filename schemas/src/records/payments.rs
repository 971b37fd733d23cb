//! `internhub.payments.*`: the payment sessions the order processor asks
//! the gateway worker to open (`payment.requests`).

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Derived from the order and the attempt: the gateway idempotency key.
    pub request_id: String,
    pub order_token: String,
    pub attempt: i32,
    pub amount: WireMoney,
    pub description: String,
    pub buyer_user_id: Option<String>,
    pub cart_token: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub expires_at: i64,
    /// Set: refund this attempt's payment instead of opening a session.
    #[serde(default)]
    pub refund: Option<RefundJob>,
    /// Set: look up where this attempt's payment stands (reconciliation).
    #[serde(default)]
    pub look_up: Option<LookUpJob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundJob {
    pub gateway: String,
    /// Razorpay `pay_…`, Stripe `pi_…`.
    pub payment_ref: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookUpJob {
    pub gateway: String,
    /// Razorpay `order_…`, Stripe `cs_…`.
    pub session_id: String,
}

/// What a request asks of the gateway worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job<'a> {
    OpenSession,
    Refund(&'a RefundJob),
    LookUp(&'a LookUpJob),
}

impl PaymentRequest {
    pub fn job(&self) -> Job<'_> {
        match (&self.refund, &self.look_up) {
            (Some(r), _) => Job::Refund(r),
            (None, Some(l)) => Job::LookUp(l),
            (None, None) => Job::OpenSession,
        }
    }
}
