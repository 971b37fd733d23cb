//! `internhub.cart.*`: the commands on `cart.commands` and the snapshots on
//! `cart.snapshots` (and, unchanged, on the cart processor's changelog).

use serde::{Deserialize, Serialize};

use super::WireMoney;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartCommand {
    pub command_id: String,
    pub cart_token: String,
    /// Milliseconds since the Unix epoch, stamped by the ingress.
    pub issued_at: i64,
    pub command: Command,
}

/// The Avro union of command kinds. Variant order is the union's branch
/// order on the wire: append new kinds, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateCart(CreateCart),
    AddItem(AddItem),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCart {
    pub currency: String,
    pub owner_user_id: Option<String>,
    pub items: Vec<ItemRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRequest {
    pub internship_id: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddItem {
    pub internship_id: String,
    pub quantity: i32,
    pub actor_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartSnapshot {
    pub event_id: String,
    pub cart_token: String,
    pub version: i64,
    pub status: CartStatus,
    pub currency: String,
    pub lines: Vec<CartLine>,
    pub subtotal: WireMoney,
    pub total: WireMoney,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_command_id: String,
    pub rejection: Option<CommandRejection>,
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CartStatus {
    Active,
    Converted,
    Expired,
    Merged,
}

impl CartStatus {
    /// The lowercase name used in the API and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            CartStatus::Active => "active",
            CartStatus::Converted => "converted",
            CartStatus::Expired => "expired",
            CartStatus::Merged => "merged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price: WireMoney,
    pub line_total: WireMoney,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejection {
    pub command_id: String,
    pub code: i32,
    pub message: String,
}
