//! `internhub.support.SupportCase`, on `support.cases`: something a person
//! must handle, opened by a pipeline stage in the same transaction as its
//! cause (today: a paid order line the enrollment processor could not
//! enroll).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportCase {
    pub case_id: String,
    pub order_token: String,
    pub buyer_key: String,
    pub buyer_user_id: Option<String>,
    pub buyer_email: Option<String>,
    /// What opened it: `enrollment_failed`.
    pub kind: String,
    /// The cause's code (`internship_closed`, `internship_unknown`).
    pub code: String,
    pub reason: String,
    pub internship_id: Option<String>,
    pub opened_at: i64,
    pub cause_event_id: String,
}
