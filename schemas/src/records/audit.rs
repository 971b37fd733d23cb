//! `internhub.audit.AuditEvent`, on `audit.events`: one change of money or
//! access (an order's transition, a payment, a refund, a coupon's use),
//! written by the stage that made it in the same transaction, appended to
//! the `audit_log` table by the audit sink and never changed.

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: String,
    pub at: i64,
    /// `<subject>.<verb>`: `order.paid`, `refund.requested`, `coupon.committed`…
    pub action: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub subject_version: i64,
    /// The signed-in person concerned (a user id); `None` for a guest.
    pub person: Option<String>,
    /// `user:<id>`, `admin:<id>`, a gateway, or `system`.
    pub actor: String,
    pub reason: String,
    pub correlation_id: String,
    pub amount: Option<WireMoney>,
}
