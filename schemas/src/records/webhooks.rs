//! `internhub.webhooks.*`: verified gateway webhooks as received
//! (`webhooks.inbound`), the webhook processor's state, and the retry
//! stage's parked commands (`webhooks.retry`) and state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundWebhook {
    pub gateway: String,
    pub event_id: String,
    pub kind: String,
    pub received_at: i64,
    /// The raw body, as signed.
    pub body: String,
    pub signature: String,
}

/// The events applied for one gateway session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookLog {
    pub key: String,
    pub version: i64,
    pub event_ids: Vec<String>,
}

/// A parked order command, or its redelivery (`webhooks.retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCommand {
    pub id: String,
    pub order_token: String,
    pub command_id: String,
    pub at: i64,
    pub action: RetryAction,
}

/// Branch order is the Avro union's: append, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryAction {
    Park(Park),
    Redeliver(Redeliver),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Park {
    /// The order command as written (Confluent wire format).
    // apache-avro writes `bytes` only for values serde marks as bytes.
    #[serde(with = "apache_avro::serde::bytes")]
    pub command: Vec<u8>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeliver {
    pub retry: i32,
}

/// The retry stage's state per order token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryBook {
    pub key: String,
    pub version: i64,
    pub parked: Vec<Parked>,
    pub tried: Vec<Tried>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub command_id: String,
    #[serde(with = "apache_avro::serde::bytes")]
    pub command: Vec<u8>,
    pub reason: String,
    pub retries: i32,
    pub due_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    pub command_id: String,
    pub retries: i32,
    pub last_at: i64,
}
