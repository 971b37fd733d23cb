//! Razorpay's API as the simulator answers it: Basic auth with the
//! configured key id and secret, orders (create, list by receipt, fetch,
//! their payments), payments and refunds, with Razorpay's validation
//! messages and error body (`{"error":{"code":"BAD_REQUEST_ERROR",…}}`; an
//! unknown id is a 400, as Razorpay answers it). Paying, failing and
//! refunding send the webhooks Razorpay sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use schemas::Currency;

use super::checkout::{Done, PayMethod, SimError};
use super::webhooks::Outgoing;
use super::{new_id, now, App};
use gateways::razorpay::transformers::{
    Collection, CreateOrder, ErrorBody, ErrorDetail, Event, EventKind, EventPayload, Notes, Order,
    OrderStatus, Payment, PaymentState, RefundEntity, RefundState, Wrapped, MAX_NOTES,
    MAX_NOTE_VALUE, MAX_RECEIPT,
};
use gateways::Gateway;

pub(crate) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/v1/orders", post(create_order).get(list_orders))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/payments", get(order_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/refund", post(refund))
        .route("/v1/payments/{id}/refunds", get(payment_refunds))
        .route_layer(middleware::from_fn_with_state(app, auth))
}

/// An answer in Razorpay's error shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RzError {
    pub status: StatusCode,
    pub description: String,
    pub field: Option<String>,
}

impl RzError {
    fn bad(description: impl Into<String>, field: Option<&str>) -> RzError {
        RzError {
            status: StatusCode::BAD_REQUEST,
            description: description.into(),
            field: field.map(str::to_owned),
        }
    }

    fn no_such_id() -> RzError {
        RzError::bad("The id provided does not exist", None)
    }
}

impl IntoResponse for RzError {
    fn into_response(self) -> Response {
        let validation = self.status == StatusCode::BAD_REQUEST;
        let body = ErrorBody {
            error: ErrorDetail {
                code: "BAD_REQUEST_ERROR".into(),
                description: self.description,
                field: self.field,
                source: validation.then(|| "business".to_owned()),
                step: validation.then(|| "payment_initiation".to_owned()),
                reason: validation.then(|| "input_validation_failed".to_owned()),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Basic auth with the configured key id and secret.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let expected = format!(
        "{}:{}",
        app.config.razorpay.key_id, app.config.razorpay.key_secret
    );
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|d| String::from_utf8(d).ok());
    if given.as_deref() != Some(expected.as_str()) {
        return RzError {
            status: StatusCode::UNAUTHORIZED,
            description: "Authentication failed".into(),
            field: None,
        }
        .into_response();
    }
    next.run(req).await
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, RzError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(RzError::bad("The request body is not valid JSON", None)),
    }
}

fn refuse_unknown(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), RzError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(RzError::bad(
            format!("{k} is/are not required and should not be sent"),
            Some(k),
        )),
        None => Ok(()),
    }
}

fn notes_of(body: &Map<String, Value>) -> Result<Notes, RzError> {
    let map = match body.get("notes") {
        None | Some(Value::Null) => return Ok(Notes::default()),
        Some(Value::Array(a)) if a.is_empty() => return Ok(Notes::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(RzError::bad("The notes must be an array", Some("notes"))),
    };
    if map.len() > MAX_NOTES {
        return Err(RzError::bad(
            format!("Number of notes cannot be more than {MAX_NOTES}"),
            Some("notes"),
        ));
    }
    let mut notes = BTreeMap::new();
    for (k, v) in map {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(RzError::bad(
                    "The notes values must be strings",
                    Some("notes"),
                ))
            }
        };
        if v.chars().count() > MAX_NOTE_VALUE {
            return Err(RzError::bad(
                format!("The notes.{k} may not be greater than {MAX_NOTE_VALUE} characters."),
                Some("notes"),
            ));
        }
        notes.insert(k.clone(), v);
    }
    Ok(Notes(notes))
}

fn receipt_of(body: &Map<String, Value>) -> Result<Option<String>, RzError> {
    match body.get("receipt") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) if r.chars().count() <= MAX_RECEIPT => Ok(Some(r.clone())),
        Some(Value::String(_)) => Err(RzError::bad(
            format!("The receipt may not be greater than {MAX_RECEIPT} characters."),
            Some("receipt"),
        )),
        Some(_) => Err(RzError::bad(
            "The receipt must be a string.",
            Some("receipt"),
        )),
    }
}

/// An integer amount, at least 100 minor units, a multiple of 10 in a
/// three-decimal currency.
fn amount_of(value: Option<&Value>, currency: Currency) -> Result<Option<i64>, RzError> {
    let Some(value) = value else { return Ok(None) };
    let amount = value
        .as_i64()
        .ok_or_else(|| RzError::bad("The amount must be an integer.", Some("amount")))?;
    if amount < 100 {
        let minimum = schemas::Money::from_minor(100, currency).amount();
        return Err(RzError::bad(
            format!("The amount must be atleast {currency} {minimum}"),
            Some("amount"),
        ));
    }
    if currency.exponent() == 3 && amount % 10 != 0 {
        return Err(RzError::bad(
            "The amount must be a multiple of 10 for three-decimal currencies",
            Some("amount"),
        ));
    }
    Ok(Some(amount))
}

/// `POST /v1/orders`, validated as Razorpay validates it.
pub(crate) fn validate_order(body: &[u8]) -> Result<CreateOrder, RzError> {
    let body = json_object(body)?;
    refuse_unknown(
        &body,
        &[
            "amount",
            "currency",
            "receipt",
            "notes",
            "partial_payment",
            "first_payment_min_amount",
        ],
    )?;
    let currency = match body.get("currency") {
        None | Some(Value::Null) => {
            return Err(RzError::bad(
                "The currency field is required.",
                Some("currency"),
            ))
        }
        Some(Value::String(c)) if c.len() == 3 && c.chars().all(|x| x.is_ascii_uppercase()) => {
            Currency::parse(c)
                .map_err(|_| RzError::bad("Currency is not supported", Some("currency")))?
        }
        Some(_) => return Err(RzError::bad("Currency is not supported", Some("currency"))),
    };
    let amount = amount_of(body.get("amount").filter(|v| !v.is_null()), currency)?
        .ok_or_else(|| RzError::bad("The amount field is required.", Some("amount")))?;
    Ok(CreateOrder {
        amount,
        currency: currency.code().to_owned(),
        receipt: receipt_of(&body)?.unwrap_or_default(),
        notes: notes_of(&body)?,
    })
}

async fn create_order(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<Order>, RzError> {
    let wanted = validate_order(&body)?;
    let order = Order {
        id: new_id("order_", 14),
        entity: "order".into(),
        amount: wanted.amount,
        amount_paid: 0,
        amount_due: wanted.amount,
        currency: wanted.currency,
        receipt: (!wanted.receipt.is_empty()).then_some(wanted.receipt),
        status: OrderStatus::Created,
        attempts: 0,
        notes: wanted.notes,
        created_at: now(),
    };
    let mut store = app.store();
    store.order_ids.push(order.id.clone());
    if let Some(receipt) = &order.receipt {
        store
            .order_ids_by_receipt
            .entry(receipt.clone())
            .or_default()
            .push(order.id.clone());
    }
    store.orders.insert(order.id.clone(), order.clone());
    Ok(Json(order))
}

#[derive(Deserialize)]
struct ListQuery {
    receipt: Option<String>,
    count: Option<String>,
    skip: Option<String>,
}

fn bounded(raw: Option<&str>, name: &str, default: usize, max: usize) -> Result<usize, RzError> {
    match raw {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(RzError::bad(
                format!("The {name} must be an integer between 0 and {max}."),
                Some(name),
            )),
        },
    }
}

/// `GET /v1/orders[?receipt=…&count=…&skip=…]`, newest first.
async fn list_orders(
    State(app): State<Arc<App>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Collection<Order>>, RzError> {
    let count = bounded(q.count.as_deref(), "count", 10, 100)?;
    let skip = bounded(q.skip.as_deref(), "skip", 0, usize::MAX)?;
    let store = app.store();
    let ids = match &q.receipt {
        Some(receipt) => store
            .order_ids_by_receipt
            .get(receipt)
            .map_or(&[][..], Vec::as_slice),
        None => &store.order_ids[..],
    };
    let items = ids
        .iter()
        .rev()
        .filter_map(|id| store.orders.get(id))
        .skip(skip)
        .take(count)
        .cloned()
        .collect();
    Ok(Json(Collection::of(items)))
}

async fn get_order(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Order>, RzError> {
    app.store()
        .orders
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(RzError::no_such_id)
}

async fn order_payments(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Collection<Payment>>, RzError> {
    let store = app.store();
    if !store.orders.contains_key(&id) {
        return Err(RzError::no_such_id());
    }
    let items = store
        .payment_ids_by_order
        .get(&id)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .rev()
        .filter_map(|p| store.payments.get(p))
        .cloned()
        .collect();
    Ok(Json(Collection::of(items)))
}

async fn get_payment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Payment>, RzError> {
    app.store()
        .payments
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(RzError::no_such_id)
}

async fn payment_refunds(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Collection<RefundEntity>>, RzError> {
    let store = app.store();
    if !store.payments.contains_key(&id) {
        return Err(RzError::no_such_id());
    }
    let items = store
        .rz_refund_ids
        .iter()
        .rev()
        .filter_map(|r| store.rz_refunds.get(r))
        .filter(|r| r.payment_id == id)
        .cloned()
        .collect();
    Ok(Json(Collection::of(items)))
}

/// `POST /v1/payments/{id}/refund`: processed at once, `refund.processed`
/// sent.
async fn refund(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RefundEntity>, RzError> {
    let body = json_object(&body)?;
    refuse_unknown(&body, &["amount", "speed", "notes", "receipt"])?;
    let notes = notes_of(&body)?;
    let receipt = receipt_of(&body)?;
    let (refund, event) = {
        let mut store = app.store();
        let payment = store
            .payments
            .get_mut(&id)
            .ok_or_else(RzError::no_such_id)?;
        let currency = Currency::parse(&payment.currency)
            .map_err(|_| RzError::bad("Currency is not supported", None))?;
        match payment.status {
            PaymentState::Captured => {}
            PaymentState::Refunded => {
                return Err(RzError::bad(
                    "The payment has been fully refunded already",
                    None,
                ))
            }
            PaymentState::Created | PaymentState::Authorized | PaymentState::Failed => {
                return Err(RzError::bad("Only captured payments can be refunded", None))
            }
        }
        let remaining = payment.amount - payment.amount_refunded;
        let amount =
            amount_of(body.get("amount").filter(|v| !v.is_null()), currency)?.unwrap_or(remaining);
        if amount > remaining {
            return Err(RzError::bad(
                "The refund amount provided is greater than amount captured",
                Some("amount"),
            ));
        }
        payment.amount_refunded += amount;
        let full = payment.amount_refunded == payment.amount;
        payment.refund_status = Some(if full { "full" } else { "partial" }.into());
        if full {
            payment.status = PaymentState::Refunded;
        }
        let payment = payment.clone();
        let refund = RefundEntity {
            id: new_id("rfnd_", 14),
            entity: "refund".into(),
            amount,
            currency: payment.currency.clone(),
            payment_id: payment.id.clone(),
            notes,
            receipt,
            status: RefundState::Processed,
            created_at: now(),
        };
        store.rz_refund_ids.push(refund.id.clone());
        store.rz_refunds.insert(refund.id.clone(), refund.clone());
        let event = event(
            &app,
            EventKind::RefundProcessed,
            EventPayload {
                refund: Some(Wrapped {
                    entity: refund.clone(),
                }),
                payment: Some(Wrapped { entity: payment }),
                order: None,
            },
        );
        (refund, event)
    };
    app.outbox.send(vec![event]).await;
    Ok(Json(refund))
}

/// The buyer pays an order: a captured payment, the order paid,
/// `payment.captured` and `order.paid` sent; the browser's success fields
/// answered, signed with the key secret.
pub(crate) async fn pay(app: &App, order_id: &str, method: PayMethod) -> Result<Done, SimError> {
    let (payment, events) = {
        let mut store = app.store();
        let order = store
            .orders
            .get_mut(order_id)
            .ok_or_else(|| SimError::NotFound(format!("no order {order_id}")))?;
        match order.status {
            OrderStatus::Paid => {
                return Err(SimError::Conflict(format!(
                    "order {order_id} is already paid"
                )))
            }
            OrderStatus::Created | OrderStatus::Attempted => {}
        }
        let payment = Payment {
            status: PaymentState::Captured,
            captured: true,
            ..new_payment(order, method)
        };
        order.status = OrderStatus::Paid;
        order.attempts += 1;
        order.amount_paid = order.amount;
        order.amount_due = 0;
        let order = order.clone();
        store.add_payment(order_id, payment.clone());
        let captured = event(
            app,
            EventKind::PaymentCaptured,
            EventPayload {
                payment: Some(Wrapped {
                    entity: payment.clone(),
                }),
                ..EventPayload::default()
            },
        );
        let paid = event(
            app,
            EventKind::OrderPaid,
            EventPayload {
                payment: Some(Wrapped {
                    entity: payment.clone(),
                }),
                order: Some(Wrapped { entity: order }),
                refund: None,
            },
        );
        (payment, vec![captured, paid])
    };
    app.outbox.send(events).await;
    let signature = gateways::razorpay::webhook::sign_checkout(
        &app.config.razorpay.key_secret,
        order_id,
        &payment.id,
    );
    Ok(Done {
        provider: Gateway::Razorpay,
        status: "paid",
        fields: vec![
            ("razorpay_payment_id", payment.id),
            ("razorpay_order_id", order_id.to_owned()),
            ("razorpay_signature", signature),
        ],
        redirect: None,
    })
}

/// A failed attempt: a failed payment, the order `attempted` (still
/// payable), `payment.failed` sent.
pub(crate) async fn fail(app: &App, order_id: &str, method: PayMethod) -> Result<Done, SimError> {
    let (payment, event) = {
        let mut store = app.store();
        let order = store
            .orders
            .get_mut(order_id)
            .ok_or_else(|| SimError::NotFound(format!("no order {order_id}")))?;
        match order.status {
            OrderStatus::Paid => {
                return Err(SimError::Conflict(format!(
                    "order {order_id} is already paid"
                )))
            }
            OrderStatus::Created | OrderStatus::Attempted => {}
        }
        let payment = Payment {
            status: PaymentState::Failed,
            error_code: Some("BAD_REQUEST_ERROR".into()),
            error_description: Some("Payment failed because the bank declined it".into()),
            error_source: Some("bank".into()),
            error_step: Some("payment_authorization".into()),
            error_reason: Some("payment_declined".into()),
            ..new_payment(order, method)
        };
        order.status = OrderStatus::Attempted;
        order.attempts += 1;
        store.add_payment(order_id, payment.clone());
        let e = event(
            app,
            EventKind::PaymentFailed,
            EventPayload {
                payment: Some(Wrapped {
                    entity: payment.clone(),
                }),
                ..EventPayload::default()
            },
        );
        (payment, e)
    };
    app.outbox.send(vec![event]).await;
    Ok(Done {
        provider: Gateway::Razorpay,
        status: "failed",
        fields: vec![
            ("razorpay_payment_id", payment.id),
            ("razorpay_order_id", order_id.to_owned()),
        ],
        redirect: None,
    })
}

fn new_payment(order: &Order, method: PayMethod) -> Payment {
    Payment {
        id: new_id("pay_", 14),
        entity: "payment".into(),
        amount: order.amount,
        currency: order.currency.clone(),
        status: PaymentState::Created,
        order_id: Some(order.id.clone()),
        method: Some(method.as_str().into()),
        captured: false,
        amount_refunded: 0,
        refund_status: None,
        email: None,
        contact: None,
        // Checkout passes the order's notes on to its payments.
        notes: order.notes.clone(),
        error_code: None,
        error_description: None,
        error_source: None,
        error_step: None,
        error_reason: None,
        created_at: now(),
    }
}

/// A webhook body: `contains` lists the entities in the payload.
fn event(app: &App, kind: EventKind, payload: EventPayload) -> Outgoing {
    let mut contains = Vec::new();
    if payload.refund.is_some() {
        contains.push("refund".to_owned());
    }
    if payload.payment.is_some() {
        contains.push("payment".to_owned());
    }
    if payload.order.is_some() {
        contains.push("order".to_owned());
    }
    let body = Event {
        entity: "event".into(),
        account_id: app.config.razorpay.account_id.clone(),
        event: kind.as_str().to_owned(),
        contains,
        payload,
        created_at: now(),
    };
    Outgoing {
        provider: Gateway::Razorpay,
        kind: kind.as_str().to_owned(),
        event_id: new_id("", 14),
        // Plain structs with string keys always serialize.
        body: serde_json::to_vec(&body).expect("an event serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateways::model::{Buyer, IdempotencyKey, Line, OrderId, SessionRequest};
    use schemas::Money;

    fn refused(body: &str) -> String {
        validate_order(body.as_bytes()).unwrap_err().description
    }

    #[test]
    fn what_our_client_sends_is_accepted() {
        let amount = Money::from_minor(29500, Currency::INR);
        let request = SessionRequest {
            order_id: OrderId::parse("ord_1").unwrap(),
            idempotency_key: IdempotencyKey::parse("k").unwrap(),
            amount,
            lines: vec![Line {
                name: "x".into(),
                unit_amount: amount,
                quantity: 1,
            }],
            buyer: Buyer::default(),
            success_url: "https://shop.test/ok".into(),
            cancel_url: "https://shop.test/cancel".into(),
            expires_at: 0,
            metadata: BTreeMap::new(),
        };
        let sent = gateways::razorpay::transformers::create_order(&request).unwrap();
        let body = serde_json::to_vec(&sent).unwrap();
        assert_eq!(validate_order(&body), Ok(sent));
    }

    #[test]
    fn orders_are_validated_as_razorpay_does() {
        assert_eq!(
            refused(r#"{"currency":"INR"}"#),
            "The amount field is required."
        );
        assert_eq!(
            refused(r#"{"amount":99,"currency":"INR"}"#),
            "The amount must be atleast INR 1.00"
        );
        assert_eq!(
            refused(r#"{"amount":100.5,"currency":"INR"}"#),
            "The amount must be an integer."
        );
        assert_eq!(
            refused(r#"{"amount":100}"#),
            "The currency field is required."
        );
        assert_eq!(
            refused(r#"{"amount":100,"currency":"XYZ"}"#),
            "Currency is not supported"
        );
        assert_eq!(
            refused(&format!(
                r#"{{"amount":100,"currency":"INR","receipt":"{}"}}"#,
                "r".repeat(41)
            )),
            "The receipt may not be greater than 40 characters."
        );
        let sixteen: Map<String, Value> = (0..16).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            refused(
                &serde_json::json!({"amount":100,"currency":"INR","notes":sixteen}).to_string()
            ),
            "Number of notes cannot be more than 15"
        );
        assert_eq!(
            refused(r#"{"amount":100,"currency":"INR","colour":"red"}"#),
            "colour is/are not required and should not be sent"
        );
        assert_eq!(
            refused(r#"{"amount":1005,"currency":"KWD"}"#),
            "The amount must be a multiple of 10 for three-decimal currencies"
        );
        assert!(validate_order(br#"{"amount":500,"currency":"JPY"}"#).is_ok());
    }
}
