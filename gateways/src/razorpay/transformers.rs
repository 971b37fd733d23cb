//! Razorpay's wire structs and the pure conversions to and from ours. No
//! I/O: the client in `mod.rs` sends what these build and hands back what
//! they read. The simulator serializes the same structs, so the shapes it
//! answers are the ones the client reads (and docs/gateways.md describes).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use schemas::{Currency, Money};

use crate::error::{GatewayError, TransformError, WebhookError};
use crate::model::{minor_units, IdempotencyKey, OrderId, RefundRequest, SessionRequest};
use crate::model::{Checkout, PaymentEvent, PaymentRef, PaymentStatus, Refund, RefundStatus};
use crate::model::{Session, WebhookEvent};
use crate::Gateway;

/// `receipt` (orders and refunds): at most 40 characters.
pub const MAX_RECEIPT: usize = 40;
/// `notes`: at most 15 pairs, values of at most 256 characters.
pub const MAX_NOTES: usize = 15;
pub const MAX_NOTE_VALUE: usize = 256;
/// The note that carries our order id on orders, payments and refunds.
pub const ORDER_ID_NOTE: &str = "order_id";

/// Razorpay's `notes`: string pairs. Razorpay writes an empty set as `[]`
/// (and may write numbers as values); both are read here, and an empty set
/// is written the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes(pub BTreeMap<String, String>);

impl Notes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl Serialize for Notes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            use serde::ser::SerializeSeq;
            s.serialize_seq(Some(0))?.end()
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Notes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Notes, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Map(BTreeMap<String, serde_json::Value>),
            List(Vec<serde_json::Value>),
            Null(()),
        }
        match Wire::deserialize(d)? {
            Wire::Map(m) => Ok(Notes(
                m.into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect(),
            )),
            Wire::List(l) if l.is_empty() => Ok(Notes::default()),
            Wire::List(_) => Err(serde::de::Error::custom("notes is a non-empty list")),
            Wire::Null(()) => Ok(Notes::default()),
        }
    }
}

/// `POST /v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOrder {
    pub amount: i64,
    pub currency: String,
    pub receipt: String,
    pub notes: Notes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Created,
    Attempted,
    Paid,
}

/// The order entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    #[serde(default)]
    pub entity: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_paid: i64,
    #[serde(default)]
    pub amount_due: i64,
    pub currency: String,
    pub receipt: Option<String>,
    pub status: OrderStatus,
    #[serde(default)]
    pub attempts: u32,
    pub notes: Notes,
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentState {
    Created,
    Authorized,
    Captured,
    Refunded,
    Failed,
}

/// The payment entity (the fields we read or the simulator fills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    #[serde(default)]
    pub entity: String,
    pub amount: i64,
    pub currency: String,
    pub status: PaymentState,
    pub order_id: Option<String>,
    pub method: Option<String>,
    #[serde(default)]
    pub captured: bool,
    #[serde(default)]
    pub amount_refunded: i64,
    pub refund_status: Option<String>,
    pub email: Option<String>,
    pub contact: Option<String>,
    pub notes: Notes,
    pub error_code: Option<String>,
    pub error_description: Option<String>,
    pub error_source: Option<String>,
    pub error_step: Option<String>,
    pub error_reason: Option<String>,
    #[serde(default)]
    pub created_at: i64,
}

/// `POST /v1/payments/{id}/refund`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRefund {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    pub receipt: String,
    pub notes: Notes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundState {
    Pending,
    Processed,
    Failed,
}

/// The refund entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundEntity {
    pub id: String,
    pub entity: String,
    pub amount: i64,
    pub currency: String,
    pub payment_id: String,
    pub notes: Notes,
    pub receipt: Option<String>,
    pub status: RefundState,
    pub created_at: i64,
}

/// A list answer (`GET /v1/orders`, `…/payments`, `…/refunds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection<T> {
    pub entity: String,
    pub count: usize,
    pub items: Vec<T>,
}

impl<T> Collection<T> {
    pub fn of(items: Vec<T>) -> Collection<T> {
        Collection {
            entity: "collection".into(),
            count: items.len(),
            items,
        }
    }
}

/// Every non-2xx answer: `{"error":{"code","description",…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A webhook body. Fields we never read (`entity`, `account_id`,
/// `contains`, `created_at`, and on the entities `entity`, `captured`,
/// `attempts`, …) default when absent: an event refused for one would be
/// retried by Razorpay for a day and then dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub entity: String,
    #[serde(default)]
    pub account_id: String,
    pub event: String,
    #[serde(default)]
    pub contains: Vec<String>,
    pub payload: EventPayload,
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Wrapped<Payment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Wrapped<Order>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Wrapped<RefundEntity>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wrapped<T> {
    pub entity: T,
}

/// The events we tell apart. An event type we do not know is `Other`, and
/// every known one is matched by name below, so adding one here makes the
/// compiler ask what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    OrderPaid,
    RefundCreated,
    RefundProcessed,
    RefundFailed,
    Other(String),
}

impl EventKind {
    pub fn parse(name: &str) -> EventKind {
        match name {
            "payment.authorized" => EventKind::PaymentAuthorized,
            "payment.captured" => EventKind::PaymentCaptured,
            "payment.failed" => EventKind::PaymentFailed,
            "order.paid" => EventKind::OrderPaid,
            "refund.created" => EventKind::RefundCreated,
            "refund.processed" => EventKind::RefundProcessed,
            "refund.failed" => EventKind::RefundFailed,
            other => EventKind::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventKind::PaymentAuthorized => "payment.authorized",
            EventKind::PaymentCaptured => "payment.captured",
            EventKind::PaymentFailed => "payment.failed",
            EventKind::OrderPaid => "order.paid",
            EventKind::RefundCreated => "refund.created",
            EventKind::RefundProcessed => "refund.processed",
            EventKind::RefundFailed => "refund.failed",
            EventKind::Other(name) => name,
        }
    }
}

// ---------------------------------------------------------------------------
// Ours → theirs
// ---------------------------------------------------------------------------

/// The order to create for a session request: the amount in minor units
/// (at least ₹1.00 in INR), `receipt` = our order id, `notes` = our ids.
pub fn create_order(request: &SessionRequest) -> Result<CreateOrder, TransformError> {
    request.check()?;
    let amount = minor_units(&request.amount)?;
    if request.amount.currency() == Currency::INR && amount < 100 {
        return Err(TransformError::BelowMinimum {
            amount: request.amount,
            minimum: Money::from_minor(100, Currency::INR),
        });
    }
    let receipt = request.order_id.as_str().to_owned();
    if receipt.chars().count() > MAX_RECEIPT {
        return Err(TransformError::TooLong {
            field: "receipt".into(),
            len: receipt.chars().count(),
            max: MAX_RECEIPT,
        });
    }
    Ok(CreateOrder {
        amount,
        currency: request.amount.currency().code().to_owned(),
        receipt,
        notes: notes(&request.order_id, &request.metadata)?,
    })
}

/// Our order id and metadata as Razorpay notes, within Razorpay's limits.
pub fn notes(
    order_id: &OrderId,
    metadata: &BTreeMap<String, String>,
) -> Result<Notes, TransformError> {
    let mut notes = BTreeMap::new();
    notes.insert(ORDER_ID_NOTE.to_owned(), order_id.as_str().to_owned());
    for (k, v) in metadata {
        notes.insert(k.clone(), v.clone());
    }
    if notes.len() > MAX_NOTES {
        return Err(TransformError::TooMany {
            field: "notes",
            count: notes.len(),
            max: MAX_NOTES,
        });
    }
    for (k, v) in &notes {
        let len = v.chars().count();
        if len > MAX_NOTE_VALUE {
            return Err(TransformError::TooLong {
                field: format!("notes.{k}"),
                len,
                max: MAX_NOTE_VALUE,
            });
        }
    }
    Ok(Notes(notes))
}

/// Whether an order found by receipt is the one `wanted` would create.
pub fn order_matches(order: &Order, wanted: &CreateOrder) -> bool {
    order.receipt.as_deref() == Some(wanted.receipt.as_str())
        && order.amount == wanted.amount
        && order.currency == wanted.currency
}

/// A refund's receipt: the idempotency key when it fits in 40 characters,
/// else a digest of it (the same key always gives the same receipt).
pub fn refund_receipt(key: &IdempotencyKey) -> String {
    if key.as_str().len() <= MAX_RECEIPT {
        key.as_str().to_owned()
    } else {
        let digest = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        format!("k_{}", &digest[..MAX_RECEIPT - 2])
    }
}

pub fn create_refund(request: &RefundRequest) -> Result<CreateRefund, TransformError> {
    let amount = match &request.amount {
        Some(m) => {
            let minor = minor_units(m)?;
            if minor <= 0 {
                return Err(TransformError::NotPositive(*m));
            }
            Some(minor)
        }
        None => None,
    };
    Ok(CreateRefund {
        amount,
        receipt: refund_receipt(&request.idempotency_key),
        notes: notes(&request.order_id, &BTreeMap::new())?,
    })
}

// ---------------------------------------------------------------------------
// Theirs → ours
// ---------------------------------------------------------------------------

fn money(minor: i64, code: &str) -> Result<Money, String> {
    let currency = Currency::parse(code).map_err(|e| e.to_string())?;
    Ok(Money::from_minor(minor, currency))
}

/// The session for an order: what Razorpay Checkout needs.
pub fn session(
    order: &Order,
    request: &SessionRequest,
    key_id: &str,
) -> Result<Session, GatewayError> {
    let currency = Currency::parse(&order.currency)
        .map_err(|e| GatewayError::Decode(format!("order {}: {e}", order.id)))?;
    Ok(Session {
        gateway: Gateway::Razorpay,
        id: order.id.clone(),
        expires_at: request.expires_at,
        checkout: Checkout::Razorpay {
            key_id: key_id.to_owned(),
            order_id: order.id.clone(),
            amount_minor: order.amount,
            currency,
            prefill: request.buyer.clone(),
        },
    })
}

/// Where an order's payment stands, from its payment attempts: a captured
/// (or since refunded) payment means paid; an authorized one is being
/// captured; otherwise the newest failure, or nothing yet.
pub fn payment_status(payments: &[Payment]) -> Result<PaymentStatus, GatewayError> {
    let mut newest_first: Vec<&Payment> = payments.iter().collect();
    newest_first.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let mut processing = false;
    let mut failed: Option<&Payment> = None;
    for p in &newest_first {
        match p.status {
            PaymentState::Captured | PaymentState::Refunded => {
                let amount = money(p.amount, &p.currency)
                    .map_err(|e| GatewayError::Decode(format!("payment {}: {e}", p.id)))?;
                return Ok(PaymentStatus::Paid {
                    payment_id: p.id.clone(),
                    amount,
                });
            }
            PaymentState::Authorized => processing = true,
            PaymentState::Failed => {
                failed = failed.or(Some(p));
            }
            PaymentState::Created => {}
        }
    }
    if processing {
        return Ok(PaymentStatus::Processing);
    }
    Ok(match failed {
        Some(p) => PaymentStatus::Failed {
            payment_id: Some(p.id.clone()),
            reason: p.error_description.clone(),
        },
        None => PaymentStatus::Open,
    })
}

pub fn refund(entity: &RefundEntity) -> Result<Refund, GatewayError> {
    let amount = money(entity.amount, &entity.currency)
        .map_err(|e| GatewayError::Decode(format!("refund {}: {e}", entity.id)))?;
    Ok(Refund {
        gateway: Gateway::Razorpay,
        id: entity.id.clone(),
        payment_id: entity.payment_id.clone(),
        amount,
        status: refund_status(entity.status),
    })
}

fn refund_status(state: RefundState) -> RefundStatus {
    match state {
        RefundState::Pending => RefundStatus::Pending,
        RefundState::Processed => RefundStatus::Processed,
        RefundState::Failed => RefundStatus::Failed,
    }
}

/// `(code, description)` of an error body.
pub fn read_error(body: &[u8]) -> Option<(String, String)> {
    let e: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((e.error.code, e.error.description))
}

/// A verified webhook body, read. `event_id` is the `x-razorpay-event-id`
/// header (Razorpay's body has no id of its own).
pub fn event(event_id: &str, raw_body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let body: Event =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::Payload(e.to_string()))?;
    let kind = EventKind::parse(&body.event);
    let event = match &kind {
        EventKind::PaymentCaptured => {
            let p = payment_of(&body)?;
            PaymentEvent::PaymentCaptured {
                at: payment_ref(p)?,
                amount: money(p.amount, &p.currency).map_err(WebhookError::Payload)?,
            }
        }
        EventKind::PaymentFailed => {
            let p = payment_of(&body)?;
            PaymentEvent::PaymentFailed {
                at: payment_ref(p)?,
                reason: p.error_description.clone(),
            }
        }
        EventKind::OrderPaid => {
            let o = &body
                .payload
                .order
                .as_ref()
                .ok_or_else(|| WebhookError::Payload("order.paid without an order".into()))?
                .entity;
            let order_id = match o.receipt.as_deref().or(o.notes.get(ORDER_ID_NOTE)) {
                Some(raw) => Some(our_order_id(raw)?),
                None => None,
            };
            PaymentEvent::OrderPaid {
                at: PaymentRef {
                    method: body
                        .payload
                        .payment
                        .as_ref()
                        .and_then(|p| p.entity.method.clone()),
                    order_id,
                    session_id: Some(o.id.clone()),
                    payment_id: body.payload.payment.as_ref().map(|p| p.entity.id.clone()),
                },
                amount: money(o.amount_paid, &o.currency).map_err(WebhookError::Payload)?,
            }
        }
        EventKind::RefundProcessed | EventKind::RefundFailed => {
            let r = &body
                .payload
                .refund
                .as_ref()
                .ok_or_else(|| WebhookError::Payload(format!("{} without a refund", body.event)))?
                .entity;
            let amount = money(r.amount, &r.currency).map_err(WebhookError::Payload)?;
            let (refund_id, payment_id) = (r.id.clone(), Some(r.payment_id.clone()));
            let order_id = match r.notes.get(ORDER_ID_NOTE) {
                Some(raw) => Some(our_order_id(raw)?),
                None => None,
            };
            if kind == EventKind::RefundProcessed {
                PaymentEvent::RefundProcessed {
                    order_id,
                    refund_id,
                    payment_id,
                    amount,
                }
            } else {
                PaymentEvent::RefundFailed {
                    order_id,
                    refund_id,
                    payment_id,
                    amount,
                }
            }
        }
        // Authorization is followed by capture (orders capture
        // automatically); a created refund by its outcome.
        EventKind::PaymentAuthorized | EventKind::RefundCreated => PaymentEvent::Ignored,
        EventKind::Other(_) => PaymentEvent::Ignored,
    };
    Ok(WebhookEvent {
        gateway: Gateway::Razorpay,
        id: event_id.to_owned(),
        kind: body.event.clone(),
        event,
    })
}

fn payment_of(body: &Event) -> Result<&Payment, WebhookError> {
    body.payload
        .payment
        .as_ref()
        .map(|w| &w.entity)
        .ok_or_else(|| WebhookError::Payload(format!("{} without a payment", body.event)))
}

fn payment_ref(p: &Payment) -> Result<PaymentRef, WebhookError> {
    Ok(PaymentRef {
        method: p.method.clone(),
        order_id: match p.notes.get(ORDER_ID_NOTE) {
            Some(raw) => Some(our_order_id(raw)?),
            None => None,
        },
        session_id: p.order_id.clone(),
        payment_id: Some(p.id.clone()),
    })
}

fn our_order_id(raw: &str) -> Result<OrderId, WebhookError> {
    OrderId::parse(raw).map_err(|e| WebhookError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Buyer, Line};

    fn request(amount: Money) -> SessionRequest {
        SessionRequest {
            order_id: OrderId::parse("ord_01HZX").unwrap(),
            idempotency_key: IdempotencyKey::parse("session:ord_01HZX:1").unwrap(),
            amount,
            lines: vec![Line {
                name: "Rust backend internship".into(),
                unit_amount: amount,
                quantity: 1,
            }],
            buyer: Buyer {
                email: Some("asha@example.com".into()),
                name: Some("Asha".into()),
                phone: Some("+919900000000".into()),
            },
            success_url: "https://shop.test/ok".into(),
            cancel_url: "https://shop.test/cancel".into(),
            expires_at: 1_800_000_000,
            metadata: BTreeMap::from([("cart_token".to_owned(), "c0ffee".to_owned())]),
        }
    }

    #[test]
    fn an_order_is_in_paise_with_our_ids() {
        let order = create_order(&request(Money::from_minor(29500, Currency::INR))).unwrap();
        assert_eq!(
            serde_json::to_value(&order).unwrap(),
            serde_json::json!({
                "amount": 29500,
                "currency": "INR",
                "receipt": "ord_01HZX",
                "notes": {"order_id": "ord_01HZX", "cart_token": "c0ffee"}
            })
        );
    }

    #[test]
    fn inr_below_one_rupee_is_refused() {
        assert!(matches!(
            create_order(&request(Money::from_minor(99, Currency::INR))),
            Err(TransformError::BelowMinimum { .. })
        ));
        assert!(create_order(&request(Money::from_minor(100, Currency::INR))).is_ok());
    }

    #[test]
    fn zero_and_three_decimal_currencies_follow_razorpays_rules() {
        // JPY has no minor unit: ¥500 is 500.
        let jpy = create_order(&request(Money::from_minor(500, Currency::JPY))).unwrap();
        assert_eq!((jpy.amount, jpy.currency.as_str()), (500, "JPY"));
        // KWD has three decimals, and the last must be 0.
        let kwd = create_order(&request(Money::from_minor(5120, Currency::KWD))).unwrap();
        assert_eq!(kwd.amount, 5120);
        assert!(matches!(
            create_order(&request(Money::from_minor(5124, Currency::KWD))),
            Err(TransformError::ThreeDecimalNotRoundedToTen(_))
        ));
    }

    #[test]
    fn notes_stay_within_razorpays_limits() {
        let id = OrderId::parse("o1").unwrap();
        let fourteen: BTreeMap<_, _> = (0..14).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(notes(&id, &fourteen).unwrap().0.len(), 15);
        let fifteen: BTreeMap<_, _> = (0..15).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            notes(&id, &fifteen),
            Err(TransformError::TooMany {
                field: "notes",
                count: 16,
                max: 15
            })
        );
        let long = BTreeMap::from([("k".to_owned(), "x".repeat(257))]);
        assert!(matches!(
            notes(&id, &long),
            Err(TransformError::TooLong { max: 256, .. })
        ));
        let fits = BTreeMap::from([("k".to_owned(), "x".repeat(256))]);
        assert!(notes(&id, &fits).is_ok());
    }

    #[test]
    fn the_receipt_is_the_order_id_within_40_characters() {
        let mut r = request(Money::from_minor(29500, Currency::INR));
        r.order_id = OrderId::parse(&"a".repeat(40)).unwrap();
        assert_eq!(create_order(&r).unwrap().receipt.len(), 40);
    }

    #[test]
    fn refund_receipts_fit_and_are_stable() {
        let short = IdempotencyKey::parse("refund:o1:1").unwrap();
        assert_eq!(refund_receipt(&short), "refund:o1:1");
        let long = IdempotencyKey::parse(&"k".repeat(200)).unwrap();
        assert_eq!(refund_receipt(&long).len(), 40);
        assert_eq!(refund_receipt(&long), refund_receipt(&long));
    }

    #[test]
    fn notes_read_razorpays_empty_list_and_numbers() {
        let n: Notes = serde_json::from_str("[]").unwrap();
        assert_eq!(n, Notes::default());
        let n: Notes = serde_json::from_str(r#"{"a":"x","b":7}"#).unwrap();
        assert_eq!(n.get("b"), Some("7"));
        assert_eq!(serde_json::to_string(&Notes::default()).unwrap(), "[]");
    }

    fn payment(id: &str, status: PaymentState, created_at: i64) -> Payment {
        Payment {
            id: id.into(),
            entity: "payment".into(),
            amount: 29500,
            currency: "INR".into(),
            status,
            order_id: Some("order_1".into()),
            method: Some("upi".into()),
            captured: status == PaymentState::Captured,
            amount_refunded: 0,
            refund_status: None,
            email: None,
            contact: None,
            notes: Notes::default(),
            error_code: None,
            error_description: (status == PaymentState::Failed).then(|| "declined".to_owned()),
            error_source: None,
            error_step: None,
            error_reason: None,
            created_at,
        }
    }

    #[test]
    fn payment_status_prefers_a_capture_over_failures() {
        assert_eq!(payment_status(&[]), Ok(PaymentStatus::Open));
        assert_eq!(
            payment_status(&[payment("pay_a", PaymentState::Failed, 1)]),
            Ok(PaymentStatus::Failed {
                payment_id: Some("pay_a".into()),
                reason: Some("declined".into())
            })
        );
        assert_eq!(
            payment_status(&[
                payment("pay_a", PaymentState::Failed, 1),
                payment("pay_b", PaymentState::Captured, 2),
                payment("pay_c", PaymentState::Failed, 3),
            ]),
            Ok(PaymentStatus::Paid {
                payment_id: "pay_b".into(),
                amount: Money::from_minor(29500, Currency::INR)
            })
        );
        assert_eq!(
            payment_status(&[payment("pay_a", PaymentState::Authorized, 1)]),
            Ok(PaymentStatus::Processing)
        );
    }

    const CAPTURED: &str = r#"{
      "entity": "event", "account_id": "acc_BFQ7uQEaa7j2z7",
      "event": "payment.captured", "contains": ["payment"],
      "payload": {"payment": {"entity": {
        "id": "pay_DESlfW9H8K9uqM", "entity": "payment", "amount": 29500,
        "currency": "INR", "status": "captured", "order_id": "order_DESlLckIVRkHWj",
        "invoice_id": null, "international": false, "method": "upi",
        "amount_refunded": 0, "refund_status": null, "captured": true,
        "description": null, "card_id": null, "bank": null, "wallet": null,
        "vpa": "asha@okbank", "email": "asha@example.com", "contact": "+919900000000",
        "notes": {"order_id": "ord_01HZX"}, "fee": 590, "tax": 90,
        "error_code": null, "error_description": null, "error_source": null,
        "error_step": null, "error_reason": null, "created_at": 1567674599
      }}},
      "created_at": 1567674606
    }"#;

    #[test]
    fn a_captured_payment_reads_as_ours() {
        let e = event("evt_1", CAPTURED.as_bytes()).unwrap();
        assert_eq!(e.id, "evt_1");
        assert_eq!(e.kind, "payment.captured");
        assert_eq!(
            e.event,
            PaymentEvent::PaymentCaptured {
                at: PaymentRef {
                    method: Some("upi".into()),
                    order_id: Some(OrderId::parse("ord_01HZX").unwrap()),
                    session_id: Some("order_DESlLckIVRkHWj".into()),
                    payment_id: Some("pay_DESlfW9H8K9uqM".into()),
                },
                amount: Money::from_minor(29500, Currency::INR),
            }
        );
    }

    #[test]
    fn an_event_without_the_fields_we_do_not_read_is_accepted() {
        let mut body: serde_json::Value = serde_json::from_str(CAPTURED).unwrap();
        for field in ["entity", "account_id", "contains", "created_at"] {
            body.as_object_mut().unwrap().remove(field);
        }
        let payment = body["payload"]["payment"]["entity"]
            .as_object_mut()
            .unwrap();
        for field in ["entity", "captured", "created_at", "fee", "tax", "vpa"] {
            payment.remove(field);
        }
        let read = event("evt_4", &serde_json::to_vec(&body).unwrap()).unwrap();
        let full = event("evt_4", CAPTURED.as_bytes()).unwrap();
        assert_eq!(read.event, full.event);
    }

    #[test]
    fn an_unknown_event_is_ignored_and_a_broken_one_is_an_error() {
        let other = CAPTURED.replace("payment.captured", "payment.dispute.created");
        assert_eq!(
            event("evt_2", other.as_bytes()).unwrap().event,
            PaymentEvent::Ignored
        );
        let broken = r#"{"entity":"event","account_id":"a","event":"order.paid","contains":[],"payload":{},"created_at":1}"#;
        assert!(matches!(
            event("evt_3", broken.as_bytes()),
            Err(WebhookError::Payload(_))
        ));
    }
}
