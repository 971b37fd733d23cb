//! Stripe's wire structs and the pure conversions to and from ours. Stripe
//! takes form-encoded bodies with nested keys
//! (`line_items[0][price_data][unit_amount]`), so requests are built as an
//! ordered list of pairs, exactly as docs/gateways.md writes them; answers and
//! webhooks are JSON. The simulator serializes the same structs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use schemas::{Currency, Money};

use crate::error::{GatewayError, TransformError, WebhookError};
use crate::model::{minor_units, OrderId, RefundRequest, SessionRequest};
use crate::model::{Checkout, PaymentEvent, PaymentRef, PaymentStatus, Refund, RefundStatus};
use crate::model::{Session, WebhookEvent};
use crate::Gateway;

/// `metadata`: at most 50 keys of at most 40 characters, values of at
/// most 500.
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY: usize = 40;
pub const MAX_METADATA_VALUE: usize = 500;
/// The metadata key that carries our order id.
pub const ORDER_ID_KEY: &str = "order_id";

/// A form body: ordered `(key, value)` pairs.
pub type Form = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPaymentStatus {
    Paid,
    Unpaid,
    NoPaymentRequired,
}

/// The Checkout Session object (the fields we read or the simulator fills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub url: Option<String>,
    pub status: Option<SessionStatus>,
    pub payment_status: SessionPaymentStatus,
    pub expires_at: i64,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `null` until the buyer attempts to pay (Stripe creates the
    /// PaymentIntent lazily since API version 2022-08-01).
    pub payment_intent: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub mode: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub customer_email: Option<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    pub currency: String,
    pub status: PaymentIntentStatus,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub last_payment_error: Option<PaymentError>,
    pub latest_charge: Option<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentError {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub payment_intent: Option<String>,
    pub refunded: bool,
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

/// The Refund object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundObject {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub status: RefundState,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created: i64,
}

/// Every non-2xx answer: `{"error":{"type","message",…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// A webhook body (an Event object). Envelope fields we never read
/// (`object`, `created`, `livemode`, `pending_webhooks`, `request`) default
/// when absent: Stripe's API versions add and drop them, and an event
/// refused for one would be retried for days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub api_version: Option<String>,
    #[serde(default)]
    pub created: i64,
    pub data: EventData,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub pending_webhooks: u32,
    #[serde(default)]
    pub request: Option<EventRequest>,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The API request that caused the event, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRequest {
    pub id: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// The events we tell apart; every known one is matched by name below, so
/// adding one here makes the compiler ask what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    CheckoutSessionCompleted,
    CheckoutSessionAsyncPaymentSucceeded,
    CheckoutSessionAsyncPaymentFailed,
    CheckoutSessionExpired,
    PaymentIntentPaymentFailed,
    RefundCreated,
    RefundUpdated,
    RefundFailed,
    ChargeRefunded,
    Other(String),
}

impl EventKind {
    pub fn parse(name: &str) -> EventKind {
        match name {
            "checkout.session.completed" => EventKind::CheckoutSessionCompleted,
            "checkout.session.async_payment_succeeded" => {
                EventKind::CheckoutSessionAsyncPaymentSucceeded
            }
            "checkout.session.async_payment_failed" => EventKind::CheckoutSessionAsyncPaymentFailed,
            "checkout.session.expired" => EventKind::CheckoutSessionExpired,
            "payment_intent.payment_failed" => EventKind::PaymentIntentPaymentFailed,
            "refund.created" => EventKind::RefundCreated,
            "refund.updated" => EventKind::RefundUpdated,
            "refund.failed" => EventKind::RefundFailed,
            "charge.refunded" => EventKind::ChargeRefunded,
            other => EventKind::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventKind::CheckoutSessionCompleted => "checkout.session.completed",
            EventKind::CheckoutSessionAsyncPaymentSucceeded => {
                "checkout.session.async_payment_succeeded"
            }
            EventKind::CheckoutSessionAsyncPaymentFailed => "checkout.session.async_payment_failed",
            EventKind::CheckoutSessionExpired => "checkout.session.expired",
            EventKind::PaymentIntentPaymentFailed => "payment_intent.payment_failed",
            EventKind::RefundCreated => "refund.created",
            EventKind::RefundUpdated => "refund.updated",
            EventKind::RefundFailed => "refund.failed",
            EventKind::ChargeRefunded => "charge.refunded",
            EventKind::Other(name) => name,
        }
    }
}

// ---------------------------------------------------------------------------
// Ours → theirs
// ---------------------------------------------------------------------------

/// The form of `POST /v1/checkout/sessions`: payment mode, our order id as
/// `client_reference_id` and in the metadata of both the session and the
/// payment intent (so failure events carry it), inline `price_data` lines,
/// `expires_at` = our payment token's expiry.
pub fn create_session_form(request: &SessionRequest) -> Result<Form, TransformError> {
    request.check()?;
    let mut form: Form = vec![
        ("mode".into(), "payment".into()),
        ("success_url".into(), request.success_url.clone()),
        ("cancel_url".into(), request.cancel_url.clone()),
        (
            "client_reference_id".into(),
            request.order_id.as_str().to_owned(),
        ),
    ];
    if let Some(email) = &request.buyer.email {
        form.push(("customer_email".into(), email.clone()));
    }
    form.push(("expires_at".into(), request.expires_at.to_string()));
    let metadata = metadata(&request.order_id, &request.metadata)?;
    for (k, v) in &metadata {
        form.push((format!("metadata[{k}]"), v.clone()));
    }
    for (k, v) in &metadata {
        form.push((format!("payment_intent_data[metadata][{k}]"), v.clone()));
    }
    for (i, line) in request.lines.iter().enumerate() {
        let unit_amount = minor_units(&line.unit_amount)?;
        let currency = line.unit_amount.currency().code().to_ascii_lowercase();
        form.push((format!("line_items[{i}][price_data][currency]"), currency));
        form.push((
            format!("line_items[{i}][price_data][unit_amount]"),
            unit_amount.to_string(),
        ));
        form.push((
            format!("line_items[{i}][price_data][product_data][name]"),
            line.name.clone(),
        ));
        form.push((
            format!("line_items[{i}][quantity]"),
            line.quantity.to_string(),
        ));
    }
    Ok(form)
}

/// Our order id and metadata, within Stripe's metadata limits, order id
/// first.
pub fn metadata(
    order_id: &OrderId,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, TransformError> {
    let mut out = vec![(ORDER_ID_KEY.to_owned(), order_id.as_str().to_owned())];
    out.extend(
        extra
            .iter()
            .filter(|(k, _)| k.as_str() != ORDER_ID_KEY)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if out.len() > MAX_METADATA_KEYS {
        return Err(TransformError::TooMany {
            field: "metadata",
            count: out.len(),
            max: MAX_METADATA_KEYS,
        });
    }
    for (k, v) in &out {
        if k.is_empty() || k.contains(['[', ']']) {
            return Err(TransformError::InvalidValue {
                kind: "metadata key",
                value: k.clone(),
                reason: "non-empty, without brackets",
            });
        }
        if k.chars().count() > MAX_METADATA_KEY {
            return Err(TransformError::TooLong {
                field: format!("metadata key {k}"),
                len: k.chars().count(),
                max: MAX_METADATA_KEY,
            });
        }
        if v.chars().count() > MAX_METADATA_VALUE {
            return Err(TransformError::TooLong {
                field: format!("metadata[{k}]"),
                len: v.chars().count(),
                max: MAX_METADATA_VALUE,
            });
        }
    }
    Ok(out)
}

/// The form of `POST /v1/refunds`.
pub fn create_refund_form(request: &RefundRequest) -> Result<Form, TransformError> {
    let mut form: Form = vec![("payment_intent".into(), request.payment_id.clone())];
    if let Some(amount) = &request.amount {
        let minor = minor_units(amount)?;
        if minor <= 0 {
            return Err(TransformError::NotPositive(*amount));
        }
        form.push(("amount".into(), minor.to_string()));
    }
    form.push((
        format!("metadata[{ORDER_ID_KEY}]"),
        request.order_id.as_str().to_owned(),
    ));
    Ok(form)
}

// ---------------------------------------------------------------------------
// Theirs → ours
// ---------------------------------------------------------------------------

fn money(minor: i64, code: &str) -> Result<Money, String> {
    let currency = Currency::parse(code).map_err(|e| e.to_string())?;
    Ok(Money::from_minor(minor, currency))
}

pub fn session(session: &CheckoutSession) -> Result<Session, GatewayError> {
    let url = session
        .url
        .clone()
        .ok_or_else(|| GatewayError::Decode(format!("session {} has no url", session.id)))?;
    Ok(Session {
        gateway: Gateway::Stripe,
        id: session.id.clone(),
        expires_at: session.expires_at,
        checkout: Checkout::Redirect { url },
    })
}

fn session_amount(session: &CheckoutSession) -> Result<Money, String> {
    match (session.amount_total, session.currency.as_deref()) {
        (Some(total), Some(currency)) => money(total, currency),
        _ => Err(format!(
            "session {} has no amount_total or currency",
            session.id
        )),
    }
}

/// Where a session's payment stands, from `status` and `payment_status`.
pub fn payment_status(session: &CheckoutSession) -> Result<PaymentStatus, GatewayError> {
    let status = session
        .status
        .ok_or_else(|| GatewayError::Decode(format!("session {} has no status", session.id)))?;
    Ok(match (status, session.payment_status) {
        (SessionStatus::Open, _) => PaymentStatus::Open,
        (
            SessionStatus::Complete,
            SessionPaymentStatus::Paid | SessionPaymentStatus::NoPaymentRequired,
        ) => PaymentStatus::Paid {
            payment_id: session.payment_intent.clone().ok_or_else(|| {
                GatewayError::Decode(format!("paid session {} has no payment_intent", session.id))
            })?,
            amount: session_amount(session).map_err(GatewayError::Decode)?,
        },
        (SessionStatus::Complete, SessionPaymentStatus::Unpaid) => PaymentStatus::Processing,
        (SessionStatus::Expired, _) => PaymentStatus::Expired,
    })
}

pub fn refund(object: &RefundObject) -> Result<Refund, GatewayError> {
    let amount = money(object.amount, &object.currency)
        .map_err(|e| GatewayError::Decode(format!("refund {}: {e}", object.id)))?;
    let payment_id = object
        .payment_intent
        .clone()
        .or_else(|| object.charge.clone())
        .ok_or_else(|| GatewayError::Decode(format!("refund {} names no payment", object.id)))?;
    Ok(Refund {
        gateway: Gateway::Stripe,
        id: object.id.clone(),
        payment_id,
        amount,
        status: refund_status(object.status),
    })
}

fn refund_status(state: RefundState) -> RefundStatus {
    match state {
        RefundState::Pending | RefundState::RequiresAction => RefundStatus::Pending,
        RefundState::Succeeded => RefundStatus::Processed,
        RefundState::Failed | RefundState::Canceled => RefundStatus::Failed,
    }
}

/// `(code, message)` of an error body: Stripe's `code` when it gives one,
/// else the error's `type`.
pub fn read_error(body: &[u8]) -> Option<(String, String)> {
    let e: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((e.error.code.unwrap_or(e.error.kind), e.error.message))
}

/// A verified webhook body, read.
pub fn event(raw_body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let body: Event =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::Payload(e.to_string()))?;
    let kind = EventKind::parse(&body.kind);
    let event = match &kind {
        EventKind::CheckoutSessionCompleted => {
            let s: CheckoutSession = object(&body)?;
            match s.payment_status {
                SessionPaymentStatus::Paid | SessionPaymentStatus::NoPaymentRequired => {
                    PaymentEvent::OrderPaid {
                        at: session_ref(&s)?,
                        amount: session_amount(&s).map_err(WebhookError::Payload)?,
                    }
                }
                // A delayed method: the async events tell the outcome.
                SessionPaymentStatus::Unpaid => PaymentEvent::AwaitingPayment {
                    at: session_ref(&s)?,
                },
            }
        }
        EventKind::CheckoutSessionAsyncPaymentSucceeded => {
            let s: CheckoutSession = object(&body)?;
            PaymentEvent::OrderPaid {
                at: session_ref(&s)?,
                amount: session_amount(&s).map_err(WebhookError::Payload)?,
            }
        }
        EventKind::CheckoutSessionAsyncPaymentFailed => {
            let s: CheckoutSession = object(&body)?;
            PaymentEvent::PaymentFailed {
                at: session_ref(&s)?,
                reason: None,
            }
        }
        EventKind::CheckoutSessionExpired => {
            let s: CheckoutSession = object(&body)?;
            PaymentEvent::SessionExpired {
                at: session_ref(&s)?,
            }
        }
        EventKind::PaymentIntentPaymentFailed => {
            let pi: PaymentIntent = object(&body)?;
            PaymentEvent::PaymentFailed {
                at: PaymentRef {
                    method: None,
                    order_id: our_order_id(pi.metadata.get(ORDER_ID_KEY))?,
                    session_id: None,
                    payment_id: Some(pi.id.clone()),
                },
                reason: pi.last_payment_error.and_then(|e| e.message),
            }
        }
        EventKind::RefundCreated | EventKind::RefundUpdated | EventKind::RefundFailed => {
            let r: RefundObject = object(&body)?;
            let amount = money(r.amount, &r.currency).map_err(WebhookError::Payload)?;
            let payment_id = r.payment_intent.clone().or_else(|| r.charge.clone());
            let order_id = our_order_id(r.metadata.get(ORDER_ID_KEY))?;
            match refund_status(r.status) {
                RefundStatus::Processed => PaymentEvent::RefundProcessed {
                    order_id,
                    refund_id: r.id,
                    payment_id,
                    amount,
                },
                RefundStatus::Failed => PaymentEvent::RefundFailed {
                    order_id,
                    refund_id: r.id,
                    payment_id,
                    amount,
                },
                RefundStatus::Pending => PaymentEvent::Ignored,
            }
        }
        // The refund events carry the refund's own id; the charge's
        // summary adds nothing.
        EventKind::ChargeRefunded => PaymentEvent::Ignored,
        EventKind::Other(_) => PaymentEvent::Ignored,
    };
    Ok(WebhookEvent {
        gateway: Gateway::Stripe,
        id: body.id.clone(),
        kind: body.kind.clone(),
        event,
    })
}

fn object<T: serde::de::DeserializeOwned>(body: &Event) -> Result<T, WebhookError> {
    serde_json::from_value(body.data.object.clone())
        .map_err(|e| WebhookError::Payload(format!("{}: {e}", body.kind)))
}

fn session_ref(s: &CheckoutSession) -> Result<PaymentRef, WebhookError> {
    Ok(PaymentRef {
        method: None,
        order_id: our_order_id(
            s.client_reference_id
                .as_ref()
                .or(s.metadata.get(ORDER_ID_KEY)),
        )?,
        session_id: Some(s.id.clone()),
        payment_id: s.payment_intent.clone(),
    })
}

fn our_order_id(raw: Option<&String>) -> Result<Option<OrderId>, WebhookError> {
    raw.map(|r| OrderId::parse(r).map_err(|e| WebhookError::Payload(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Buyer, IdempotencyKey, Line};

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    fn request(lines: Vec<Line>) -> SessionRequest {
        let currency = lines[0].unit_amount.currency();
        let total = lines
            .iter()
            .map(|l| l.unit_amount.times(l.quantity).unwrap())
            .fold(Money::zero(currency), |a, b| a.checked_add(&b).unwrap());
        SessionRequest {
            order_id: OrderId::parse("ord_01HZX").unwrap(),
            idempotency_key: IdempotencyKey::parse("session:ord_01HZX:1").unwrap(),
            amount: total,
            lines,
            buyer: Buyer {
                email: Some("asha@example.com".into()),
                ..Buyer::default()
            },
            success_url: "https://shop.test/ok?session={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://shop.test/cancel".into(),
            expires_at: 1_800_000_000,
            metadata: BTreeMap::from([("cart_token".to_owned(), "c0ffee".to_owned())]),
        }
    }

    fn line(name: &str, unit: Money, quantity: u32) -> Line {
        Line {
            name: name.into(),
            unit_amount: unit,
            quantity,
        }
    }

    fn pairs(form: &Form) -> Vec<(&str, &str)> {
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn the_form_has_protocols_nested_keys_exactly() {
        let form = create_session_form(&request(vec![
            line("Rust backend internship", inr(49900), 1),
            line("Data science internship", inr(29900), 2),
        ]))
        .unwrap();
        assert_eq!(
            pairs(&form),
            vec![
                ("mode", "payment"),
                (
                    "success_url",
                    "https://shop.test/ok?session={CHECKOUT_SESSION_ID}"
                ),
                ("cancel_url", "https://shop.test/cancel"),
                ("client_reference_id", "ord_01HZX"),
                ("customer_email", "asha@example.com"),
                ("expires_at", "1800000000"),
                ("metadata[order_id]", "ord_01HZX"),
                ("metadata[cart_token]", "c0ffee"),
                ("payment_intent_data[metadata][order_id]", "ord_01HZX"),
                ("payment_intent_data[metadata][cart_token]", "c0ffee"),
                ("line_items[0][price_data][currency]", "inr"),
                ("line_items[0][price_data][unit_amount]", "49900"),
                (
                    "line_items[0][price_data][product_data][name]",
                    "Rust backend internship"
                ),
                ("line_items[0][quantity]", "1"),
                ("line_items[1][price_data][currency]", "inr"),
                ("line_items[1][price_data][unit_amount]", "29900"),
                (
                    "line_items[1][price_data][product_data][name]",
                    "Data science internship"
                ),
                ("line_items[1][quantity]", "2"),
            ]
        );
    }

    #[test]
    fn zero_and_three_decimal_currencies_follow_stripes_rules() {
        let jpy = create_session_form(&request(vec![line(
            "x",
            Money::from_minor(500, Currency::JPY),
            1,
        )]))
        .unwrap();
        assert!(pairs(&jpy).contains(&("line_items[0][price_data][currency]", "jpy")));
        assert!(pairs(&jpy).contains(&("line_items[0][price_data][unit_amount]", "500")));
        let kwd = create_session_form(&request(vec![line(
            "x",
            Money::from_minor(5120, Currency::KWD),
            1,
        )]))
        .unwrap();
        assert!(pairs(&kwd).contains(&("line_items[0][price_data][unit_amount]", "5120")));
        assert!(matches!(
            create_session_form(&request(vec![line(
                "x",
                Money::from_minor(5124, Currency::KWD),
                1
            )])),
            Err(TransformError::ThreeDecimalNotRoundedToTen(_))
        ));
    }

    #[test]
    fn metadata_stays_within_stripes_limits() {
        let id = OrderId::parse("o1").unwrap();
        let many: BTreeMap<_, _> = (0..49).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(metadata(&id, &many).unwrap().len(), 50);
        let too_many: BTreeMap<_, _> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(matches!(
            metadata(&id, &too_many),
            Err(TransformError::TooMany { max: 50, .. })
        ));
        let long_key = BTreeMap::from([("k".repeat(41), "v".to_owned())]);
        assert!(matches!(
            metadata(&id, &long_key),
            Err(TransformError::TooLong { max: 40, .. })
        ));
        let long_value = BTreeMap::from([("k".to_owned(), "v".repeat(501))]);
        assert!(matches!(
            metadata(&id, &long_value),
            Err(TransformError::TooLong { max: 500, .. })
        ));
        let bracket = BTreeMap::from([("a]b".to_owned(), "v".to_owned())]);
        assert!(matches!(
            metadata(&id, &bracket),
            Err(TransformError::InvalidValue { .. })
        ));
    }

    #[test]
    fn a_refund_form_names_the_payment_intent() {
        let form = create_refund_form(&RefundRequest {
            order_id: OrderId::parse("o1").unwrap(),
            payment_id: "pi_123".into(),
            amount: Some(inr(1000)),
            idempotency_key: IdempotencyKey::parse("refund:o1:1").unwrap(),
        })
        .unwrap();
        assert_eq!(
            pairs(&form),
            vec![
                ("payment_intent", "pi_123"),
                ("amount", "1000"),
                ("metadata[order_id]", "o1")
            ]
        );
    }

    fn session_json(status: &str, payment_status: &str) -> CheckoutSession {
        serde_json::from_value(serde_json::json!({
            "id": "cs_test_a1", "object": "checkout.session",
            "url": "https://checkout.stripe.com/c/pay/cs_test_a1",
            "status": status, "payment_status": payment_status,
            "expires_at": 1_800_000_000, "client_reference_id": "ord_01HZX",
            "metadata": {"order_id": "ord_01HZX"},
            "payment_intent": if status == "open" { serde_json::Value::Null } else { "pi_1".into() },
            "amount_total": 49900, "currency": "inr", "mode": "payment",
            "success_url": null, "cancel_url": null, "customer_email": null,
            "created": 1_700_000_000, "livemode": false,
            "consent": null, "ui_mode": "hosted"
        }))
        .unwrap()
    }

    #[test]
    fn look_up_reads_status_and_payment_status() {
        assert_eq!(
            payment_status(&session_json("open", "unpaid")),
            Ok(PaymentStatus::Open)
        );
        assert_eq!(
            payment_status(&session_json("complete", "paid")),
            Ok(PaymentStatus::Paid {
                payment_id: "pi_1".into(),
                amount: inr(49900)
            })
        );
        assert_eq!(
            payment_status(&session_json("complete", "unpaid")),
            Ok(PaymentStatus::Processing)
        );
        assert_eq!(
            payment_status(&session_json("expired", "unpaid")),
            Ok(PaymentStatus::Expired)
        );
    }

    fn event_json(kind: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1", "object": "event", "api_version": "2024-06-20",
            "created": 1_700_000_000, "data": {"object": object},
            "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "type": kind
        }))
        .unwrap()
    }

    #[test]
    fn an_event_without_the_envelope_fields_we_do_not_read_is_accepted() {
        let paid = serde_json::to_value(session_json("complete", "paid")).unwrap();
        let mut object = paid.clone();
        for field in ["object", "created", "livemode", "mode"] {
            object.as_object_mut().unwrap().remove(field);
        }
        // Only what we read: the id, the type and the object.
        let minimal = serde_json::to_vec(&serde_json::json!({
            "id": "evt_2", "type": "checkout.session.completed", "data": {"object": object}
        }))
        .unwrap();
        let full = event(&event_json("checkout.session.completed", paid)).unwrap();
        let read = event(&minimal).unwrap();
        assert_eq!(read.id, "evt_2");
        assert_eq!(read.event, full.event);
    }

    #[test]
    fn completed_is_paid_only_when_payment_status_is_paid() {
        let paid = serde_json::to_value(session_json("complete", "paid")).unwrap();
        let e = event(&event_json("checkout.session.completed", paid)).unwrap();
        assert_eq!(e.id, "evt_1");
        assert_eq!(
            e.event,
            PaymentEvent::OrderPaid {
                at: PaymentRef {
                    method: None,
                    order_id: Some(OrderId::parse("ord_01HZX").unwrap()),
                    session_id: Some("cs_test_a1".into()),
                    payment_id: Some("pi_1".into()),
                },
                amount: inr(49900)
            }
        );
        let unpaid = serde_json::to_value(session_json("complete", "unpaid")).unwrap();
        assert!(matches!(
            event(&event_json("checkout.session.completed", unpaid))
                .unwrap()
                .event,
            PaymentEvent::AwaitingPayment { .. }
        ));
    }

    #[test]
    fn a_failed_payment_intent_carries_our_order_id() {
        let pi = serde_json::json!({
            "id": "pi_9", "object": "payment_intent", "amount": 49900, "currency": "inr",
            "status": "requires_payment_method", "metadata": {"order_id": "ord_01HZX"},
            "last_payment_error": {"type": "card_error", "code": "card_declined",
                                   "decline_code": "generic_decline", "message": "Your card was declined."},
            "latest_charge": null, "created": 1, "livemode": false
        });
        assert_eq!(
            event(&event_json("payment_intent.payment_failed", pi))
                .unwrap()
                .event,
            PaymentEvent::PaymentFailed {
                at: PaymentRef {
                    method: None,
                    order_id: Some(OrderId::parse("ord_01HZX").unwrap()),
                    session_id: None,
                    payment_id: Some("pi_9".into()),
                },
                reason: Some("Your card was declined.".into())
            }
        );
    }

    #[test]
    fn unknown_events_are_ignored() {
        assert_eq!(
            event(&event_json("customer.created", serde_json::json!({})))
                .unwrap()
                .event,
            PaymentEvent::Ignored
        );
        assert!(matches!(event(b"{not json"), Err(WebhookError::Payload(_))));
    }
}
