//! `internhub.enrollment.*`: the commands on `enrollment.commands`, a
//! buyer's enrollments on `enrollment.snapshots` (and the processor's
//! changelog), and what the processor did on `enrollment.events`.

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
    AssignSeats(AssignSeats),
}

/// The buyer assigns seats of a paid line to people by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignSeats {
    pub order_token: String,
    pub internship_id: String,
    pub emails: Vec<String>,
    #[serde(default)]
    pub assigned_by: Option<String>,
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
    #[serde(default)]
    pub failed: Vec<FailedLine>,
}

/// A paid line that could not be enrolled (an `EnrollmentFailed` and a
/// support case went out with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedLine {
    pub order_token: String,
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub code: String,
    pub reason: String,
    pub at: i64,
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
    /// Of a block of seats: how many are assigned.
    #[serde(default)]
    pub seats_assigned: i32,
    /// Of an assigned seat: the block's enrollment id.
    #[serde(default)]
    pub seat_of: Option<String>,
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

/// `internhub.enrollment.EnrollmentEvent`, on `enrollment.events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentEvent {
    pub event_id: String,
    pub buyer_key: String,
    pub buyer_user_id: Option<String>,
    pub buyer_email: Option<String>,
    pub order_token: String,
    pub at: i64,
    pub event: EnrollmentEventKind,
}

/// The Avro union of event kinds: append, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollmentEventKind {
    EnrollmentCreated(EnrollmentCreated),
    EnrollmentFailed(EnrollmentFailed),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentCreated {
    pub enrollment_id: String,
    pub internship_id: String,
    pub title: String,
    pub seats: i32,
    pub access_granted: bool,
    pub email: Option<String>,
    pub seat_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentFailed {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub code: String,
    pub reason: String,
    pub catalog_version: i64,
}
