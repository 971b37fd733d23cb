//! Webhook intake: `POST /webhooks/razorpay` and `POST /webhooks/stripe`.
//!
//! The signature is checked over the raw body as received (Razorpay: hex
//! HMAC-SHA256 with the webhook secret; Stripe: `t=`/`v1=` with a 300 s
//! tolerance and any of several `v1`), with the previous secret accepted
//! until its deadline after a rotation. Forged, stale or malformed → 400
//! with the error body, nothing written. Valid → the raw payload, its
//! signature, event id and receive time are written to `webhooks.inbound`
//! (keyed by the gateway's session id), and only once the broker
//! acknowledged it the answer is 200: a gateway retries anything else, so
//! nothing it sent is lost. What an event does to an order is the webhook
//! processor's, never this handler's.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use gateways::{razorpay, stripe, PaymentEvent, WebhookEvent, WebhookSecrets};
use schemas::records::webhooks::InboundWebhook;
use schemas::topics::WEBHOOKS_INBOUND;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// How far a Stripe signature's time may be from ours (Stripe's libraries'
/// default).
const STRIPE_TOLERANCE_SECS: i64 = 300;

/// The webhook secrets, each with the previous one during a rotation.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub razorpay: WebhookSecrets,
    pub stripe: WebhookSecrets,
}

impl WebhookConfig {
    /// `RAZORPAY_WEBHOOK_SECRET`, `STRIPE_WEBHOOK_SECRET` (required), and
    /// during a rotation `…_PREVIOUS` with `…_PREVIOUS_UNTIL` (unix seconds
    /// until which it is accepted).
    pub fn from_env() -> anyhow::Result<WebhookConfig> {
        let secrets = |name: &str| -> anyhow::Result<WebhookSecrets> {
            let current = platform::config::secret(name)?;
            let Some(previous) = platform::config::optional_secret(&format!("{name}_PREVIOUS"))
            else {
                return Ok(WebhookSecrets::new(current));
            };
            let until: i64 = platform::config::var(&format!("{name}_PREVIOUS_UNTIL"), "0")
                .parse()
                .map_err(|e| anyhow::anyhow!("{name}_PREVIOUS_UNTIL: {e}"))?;
            Ok(WebhookSecrets::new(previous).rotate(current, until))
        };
        Ok(WebhookConfig {
            razorpay: secrets("RAZORPAY_WEBHOOK_SECRET")?,
            stripe: secrets("STRIPE_WEBHOOK_SECRET")?,
        })
    }
}

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(razorpay_webhook))
        .routes(routes!(stripe_webhook))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Received {
    pub received: bool,
    pub event_id: String,
}

/// A Razorpay webhook (`X-Razorpay-Signature`, `x-razorpay-event-id`).
#[utoipa::path(
    post,
    path = "/webhooks/razorpay",
    tag = "webhooks",
    request_body(content = Object, description = "the event as Razorpay signed it (the raw body is verified; any event is taken, those we do not act on are recorded and ignored)", content_type = "application/json",
        example = json!({"entity": "event", "account_id": "acc_simulator0001", "event": "order.paid", "contains": ["payment", "order"], "payload": {"payment": {"entity": {"id": "pay_29QQoUBi66xm2f", "entity": "payment", "amount": 5299380, "currency": "INR", "status": "captured", "captured": true, "order_id": "order_DBJOWzybf0sJbb", "method": "upi", "notes": {"order_id": "31cac799781b5055892a1f01273328d2"}, "created_at": 1796590370}}, "order": {"entity": {"id": "order_DBJOWzybf0sJbb", "entity": "order", "amount": 5299380, "amount_paid": 5299380, "amount_due": 0, "currency": "INR", "receipt": "31cac799781b5055892a1f01273328d2-1", "status": "paid", "attempts": 1, "notes": {"order_id": "31cac799781b5055892a1f01273328d2"}, "created_at": 1796590368}}}, "created_at": 1796590371})),
    responses(
        (status = 200, description = "verified and recorded", body = Received),
        (status = 400, description = "forged, malformed or unreadable: nothing recorded", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "not recorded: retry", body = ErrorBody),
        (status = 504, description = "the broker did not confirm: retry", body = ErrorBody),
    )
)]
pub async fn razorpay_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    counted("razorpay", receive_razorpay(&state, &headers, &body).await)
}

async fn receive_razorpay(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let signature = header(headers, "x-razorpay-signature");
    let now = chrono::Utc::now().timestamp();
    razorpay::webhook::verify(body, signature, &state.webhooks.razorpay.accepted_at(now))
        .map_err(refused)?;
    let event_id = header(headers, "x-razorpay-event-id")
        .ok_or_else(|| refused("no x-razorpay-event-id header"))?;
    let event = razorpay::transformers::event(event_id, body).map_err(refused)?;
    record(state, event, body, signature.unwrap_or_default()).await
}

/// A Stripe webhook (`Stripe-Signature: t=…,v1=…`).
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "webhooks",
    request_body(content = Object, description = "the event as Stripe signed it (the raw body is verified; any event is taken, those we do not act on are recorded and ignored)", content_type = "application/json",
        example = json!({"id": "evt_1QxYz2", "object": "event", "type": "checkout.session.completed", "api_version": "2024-06-20", "created": 1796590376, "livemode": false, "pending_webhooks": 1, "data": {"object": {"id": "cs_test_McTdcQawdV6yMdp5r1mRG8a7", "object": "checkout.session", "status": "complete", "payment_status": "paid", "amount_total": 143640, "currency": "usd", "client_reference_id": "20ead7e62626514093f7bf55d1108b15-1", "metadata": {"order_id": "20ead7e62626514093f7bf55d1108b15"}, "payment_intent": "pi_vbCCCI7CuZtj5LM3RFth65rH", "expires_at": 1796592173, "mode": "payment", "created": 1796590373, "livemode": false}}})),
    responses(
        (status = 200, description = "verified and recorded", body = Received),
        (status = 400, description = "forged, stale, malformed or unreadable: nothing recorded", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "not recorded: retry", body = ErrorBody),
        (status = 504, description = "the broker did not confirm: retry", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    counted("stripe", receive_stripe(&state, &headers, &body).await)
}

async fn receive_stripe(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let signature = header(headers, "stripe-signature");
    let now = chrono::Utc::now().timestamp();
    stripe::webhook::verify(
        body,
        signature,
        &state.webhooks.stripe.accepted_at(now),
        now,
        STRIPE_TOLERANCE_SECS,
    )
    .map_err(refused)?;
    let event = stripe::transformers::event(body).map_err(refused)?;
    record(state, event, body, signature.unwrap_or_default()).await
}

/// Counts a webhook by what became of it (`webhooks_received_total`, what
/// the `WebhookFailureRateHigh` alert divides): `accepted` (recorded),
/// `refused` (forged, stale or malformed: the gateway should not resend
/// it), `failed` (not recorded: the gateway retries).
fn counted(gateway: &str, answer: Result<Response, ApiError>) -> Result<Response, ApiError> {
    let outcome = match &answer {
        Ok(_) => "accepted",
        Err(ApiError::Status(status, _)) if status.is_client_error() => "refused",
        Err(_) => "failed",
    };
    crate::http_metrics::metrics()
        .webhooks
        .with_label_values(&[gateway, outcome])
        .inc();
    answer
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refused(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(target: "audit", event = "webhook_refused", reason = %e, "webhook refused");
    ApiError::Status(StatusCode::BAD_REQUEST, format!("webhook refused: {e}"))
}

/// The key of an event on `webhooks.inbound`: the gateway's session (so
/// every event of one payment lands in one partition, in order), else our
/// order, else the event itself.
fn key_of(event: &WebhookEvent) -> String {
    let at = match &event.event {
        PaymentEvent::PaymentCaptured { at, .. }
        | PaymentEvent::OrderPaid { at, .. }
        | PaymentEvent::AwaitingPayment { at }
        | PaymentEvent::PaymentFailed { at, .. }
        | PaymentEvent::SessionExpired { at } => Some(at),
        PaymentEvent::RefundProcessed { order_id, .. }
        | PaymentEvent::RefundFailed { order_id, .. } => {
            // No session in a refund: our order reference keeps one
            // order's refund events in order.
            return order_id
                .as_ref()
                .map_or_else(|| event.id.clone(), |o| o.as_str().to_owned());
        }
        PaymentEvent::Ignored => None,
    };
    at.and_then(|a| {
        a.session_id
            .clone()
            .or_else(|| a.order_id.as_ref().map(|o| o.as_str().to_owned()))
    })
    .unwrap_or_else(|| event.id.clone())
}

async fn record(
    state: &AppState,
    event: WebhookEvent,
    body: &[u8],
    signature: &str,
) -> Result<Response, ApiError> {
    let raw = std::str::from_utf8(body).map_err(refused)?;
    let inbound = InboundWebhook {
        gateway: event.gateway.as_str().to_owned(),
        event_id: event.id.clone(),
        kind: event.kind.clone(),
        received_at: chrono::Utc::now().timestamp_millis(),
        body: raw.to_owned(),
        signature: signature.to_owned(),
    };
    state
        .commands
        .send(&WEBHOOKS_INBOUND, &key_of(&event), &inbound, &event.id)
        .await?;
    let answer = Received {
        received: true,
        event_id: event.id,
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}
