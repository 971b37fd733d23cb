//! `internhub.webhooks.*`: verified gateway webhooks as received
//! (`webhooks.inbound`) and the webhook processor's state.

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
