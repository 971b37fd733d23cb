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
}
