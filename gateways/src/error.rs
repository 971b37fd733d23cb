//! The three ways a gateway interaction fails: a call ([`GatewayError`]),
//! a request we cannot express in a gateway's terms ([`TransformError`],
//! found before anything is sent), and a webhook we must not believe
//! ([`WebhookError`]).

use std::time::Duration;

use schemas::{Currency, Money, MoneyError};

/// Why a call to a gateway did not give us its answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// No answer within the client's timeout. The request may or may not
    /// have been applied: only an idempotent retry may follow.
    #[error("the gateway did not answer in time")]
    Timeout,
    /// A 5xx answer.
    #[error("the gateway is unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    /// A 429 answer, with the wait it asked for, if any.
    #[error("the gateway rate-limited the call")]
    RateLimited { retry_after: Option<Duration> },
    /// Any other 4xx: the gateway refused this request, and will refuse it
    /// again. `code` is the gateway's own (Razorpay `error.code`, Stripe
    /// `error.code`, else `error.type`).
    #[error("the gateway refused the call (HTTP {status}, {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The connection failed (refused, reset, TLS) before an answer.
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    /// A 2xx answer we cannot read: a change on their side or a bug on ours.
    #[error("cannot read the gateway's answer: {0}")]
    Decode(String),
    /// The request cannot be put in the gateway's terms; nothing was sent.
    #[error("the request cannot be sent to the gateway: {0}")]
    Invalid(#[from] TransformError),
    /// The gateway already holds an object for our reference (a Razorpay
    /// order with our receipt) whose terms differ from this request.
    #[error("the gateway holds a conflicting object: {0}")]
    Conflict(String),
}

impl GatewayError {
    /// Whether the same call may succeed if made again: timeouts, 5xx and
    /// 429 only. A 4xx never becomes a success by repetition.
    pub fn retryable(&self) -> bool {
        match self {
            GatewayError::Timeout
            | GatewayError::Unavailable { .. }
            | GatewayError::RateLimited { .. } => true,
            GatewayError::Rejected { .. }
            | GatewayError::Transport(_)
            | GatewayError::Decode(_)
            | GatewayError::Invalid(_)
            | GatewayError::Conflict(_) => false,
        }
    }

    /// The HTTP status the gateway answered, when it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GatewayError::Unavailable { status } | GatewayError::Rejected { status, .. } => {
                Some(*status)
            }
            GatewayError::RateLimited { .. } => Some(429),
            GatewayError::Timeout
            | GatewayError::Transport(_)
            | GatewayError::Decode(_)
            | GatewayError::Invalid(_)
            | GatewayError::Conflict(_) => None,
        }
    }

    /// A short, bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::Timeout => "timeout",
            GatewayError::Unavailable { .. } => "unavailable",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::Rejected { .. } => "rejected",
            GatewayError::Transport(_) => "transport",
            GatewayError::Decode(_) => "decode",
            GatewayError::Invalid(_) => "invalid",
            GatewayError::Conflict(_) => "conflict",
        }
    }
}

/// Why a request cannot be expressed in a gateway's terms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("{0} is not a positive amount")]
    NotPositive(Money),
    #[error("{amount} is below the gateway's minimum of {minimum}")]
    BelowMinimum { amount: Money, minimum: Money },
    /// Razorpay and Stripe take three-decimal currencies (KWD, BHD, OMR) in
    /// minor units whose last digit is 0.
    #[error("{0} must be a multiple of 10 minor units (three-decimal currency)")]
    ThreeDecimalNotRoundedToTen(Money),
    #[error("the order has no lines")]
    NoLines,
    #[error("line {index} has quantity 0")]
    ZeroQuantity { index: usize },
    #[error("line {index} has an empty name")]
    EmptyName { index: usize },
    #[error("line {index} is in {line}, the order in {order}")]
    CurrencyMismatch {
        index: usize,
        line: Currency,
        order: Currency,
    },
    #[error("the lines add up to {lines}, the order to {amount}")]
    LinesDoNotAddUp { lines: Money, amount: Money },
    #[error("{field} has {len} characters, at most {max} allowed")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{field} has {count} entries, at most {max} allowed")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{kind} {value:?} is not valid: {reason}")]
    InvalidValue {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Why a webhook is rejected. Whatever the reason, the body must not be
/// acted on; the sender retries (with the right signature, if it is real).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("no signature header")]
    MissingSignature,
    #[error("malformed signature header: {0}")]
    MalformedSignature(&'static str),
    /// No configured secret produces any of the signatures.
    #[error("the signature does not match")]
    Forged,
    /// Signed, but too long ago (or too far ahead): a replay.
    #[error("the signature is {age_secs} s away from now")]
    Stale { age_secs: i64 },
    #[error("no webhook secret configured")]
    NoSecrets,
    /// Authentic, but not an event we can read.
    #[error("cannot read the event: {0}")]
    Payload(String),
}
