//! `internhub.enrollment.*`: the commands on `enrollment.commands` and a
//! buyer's enrollments on `enrollment.snapshots` (and the processor's
//! changelog).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentCommand {
    pub command_id: String,
    pub buyer_key: String,
    pub issued_at: i64,
    pub command: EnrollmentCmd,
}

/// The Avro union of enrollment command kinds: append, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollmentCmd {
    EnrollOrder(EnrollOrder),
    RevokeOrder(RevokeOrder),
}

/// A refunded order's enrollments are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeOrder {
    pub order_token: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollOrder {
    pub order_token: String,
    pub buyer_user_id: Option<String>,
    #[serde(default)]
    pub buyer_email: Option<String>,
    pub lines: Vec<PaidLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentBook {
    pub buyer_key: String,
    pub version: i64,
    pub buyer_user_id: Option<String>,
    pub orders: Vec<String>,
    pub enrollments: Vec<Enrollment>,
    #[serde(default)]
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub enrollment_id: String,
    pub order_token: String,
    pub internship_id: String,
    pub title: String,
    pub seats: i32,
    pub status: EnrollmentStatus,
    pub access_granted: bool,
    pub progress_percent: i32,
    pub certificate_eligible: bool,
    pub enrolled_at: i64,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnrollmentStatus {
    Active,
    Revoked,
}

impl EnrollmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Active => "active",
            EnrollmentStatus::Revoked => "revoked",
        }
    }
}
