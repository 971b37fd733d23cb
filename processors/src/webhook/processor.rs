//! What a gateway's event means for our order, and the adapter that applies
//! it once per event id.
//!
//! - `payment.captured` and `order.paid` (Razorpay), and
//!   `checkout.session.completed` when paid or
//!   `checkout.session.async_payment_succeeded` (Stripe) → the attempt is
//!   paid. Both Razorpay events of one payment carry one command id
//!   (derived from the order and the attempt), so the order applies the
//!   payment once, whichever arrives first.
//! - `payment.failed`, `payment_intent.payment_failed`,
//!   `checkout.session.async_payment_failed` → the attempt failed (one
//!   command per event: the order refuses a failure after a success).
//! - Razorpay `refund.processed`/`refund.failed`, Stripe refunds that
//!   succeeded or failed → the order's refund settled (one command per
//!   refund and outcome), found through the order reference we put in the
//!   refund's notes/metadata.
//! - Intermediate events (a session completed but unpaid, an expired
//!   session: our own timer expires the attempt) change nothing.
//!
//! An event whose payment names no order of ours is not dropped silently:
//! it goes to the dead letters with the reason.

use futures::future::BoxFuture;

use gateways::{PaymentEvent, PaymentRef, WebhookEvent};
use schemas::ids;
use schemas::records::dead_letter::DeadLetter;
use schemas::records::order::{
    OrderCmd, OrderCommand, PaymentFailed, PaymentSucceeded, RefundSettled,
};
use schemas::records::runtime::AppliedInput;
use schemas::records::webhooks::{InboundWebhook, WebhookLog};
use schemas::records::WireMoney;
use schemas::topics::{
    DEAD_LETTERS, ORDER_COMMANDS, WEBHOOKS_INBOUND, WEBHOOK_APPLIED, WEBHOOK_CHANGELOG,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, whole_state, Emit, Encoded, Input, Outcome, Processor};

pub struct WebhookProcessor;

pub enum WebhookOutput {
    Order(OrderCommand),
    Dead(DeadLetter),
}

impl Emit for WebhookOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            WebhookOutput::Order(c) => {
                Box::pin(encode_for(codec, &ORDER_COMMANDS, &c.order_token, c))
            }
            WebhookOutput::Dead(d) => Box::pin(async move {
                let key = platform::stage::dead_letter_key(d);
                encode_for(codec, &DEAD_LETTERS, &key, d).await
            }),
        }
    }
}

/// Our order and attempt, from the reference we gave the gateway
/// (`<order token>-<attempt>`).
fn order_of(at: &PaymentRef) -> Option<(String, i32)> {
    let reference = at.order_id.as_ref()?.as_str();
    let (token, attempt) = reference.rsplit_once('-')?;
    Some((token.to_owned(), attempt.parse().ok()?))
}

/// What `event` asks of our order: `Ok(None)` when nothing, `Err(reason)`
/// when it should but names no order of ours.
pub fn command_for(event: &WebhookEvent, at_ms: i64) -> Result<Option<OrderCommand>, String> {
    let gateway = event.gateway.as_str().to_owned();
    let (at, outcome) = match &event.event {
        PaymentEvent::PaymentCaptured { at, amount } | PaymentEvent::OrderPaid { at, amount } => {
            let amount = WireMoney::try_from(amount).map_err(|e| e.to_string())?;
            let payment_ref = at
                .payment_id
                .clone()
                .or_else(|| at.session_id.clone())
                .unwrap_or_else(|| event.id.clone());
            (at, Ok((amount, payment_ref)))
        }
        PaymentEvent::PaymentFailed { at, reason } => (
            at,
            Err(reason.clone().unwrap_or_else(|| event.kind.clone())),
        ),
        PaymentEvent::RefundProcessed {
            order_id,
            refund_id,
            amount,
            ..
        }
        | PaymentEvent::RefundFailed {
            order_id,
            refund_id,
            amount,
            ..
        } => {
            let succeeded = matches!(event.event, PaymentEvent::RefundProcessed { .. });
            let at = PaymentRef {
                order_id: order_id.clone(),
                ..PaymentRef::default()
            };
            let (order_token, _) = order_of(&at)
                .ok_or_else(|| format!("{gateway} {} names no order of ours", event.kind))?;
            return Ok(Some(OrderCommand {
                // One per refund and outcome: Stripe's refund.created and
                // refund.updated of one refund settle it once.
                command_id: ids::derived(
                    "refund-settled",
                    &format!("{gateway}/{refund_id}"),
                    i64::from(succeeded),
                )
                .to_string(),
                order_token,
                issued_at: at_ms,
                actor: Some(gateway.clone()),
                command: OrderCmd::RefundSettled(RefundSettled {
                    refund_id: refund_id.clone(),
                    gateway,
                    amount: WireMoney::try_from(amount).map_err(|e| e.to_string())?,
                    succeeded,
                }),
            }));
        }
        PaymentEvent::AwaitingPayment { .. }
        | PaymentEvent::SessionExpired { .. }
        | PaymentEvent::Ignored => return Ok(None),
    };
    let (order_token, attempt) =
        order_of(at).ok_or_else(|| format!("{gateway} {} names no order of ours", event.kind))?;
    let (command_id, command) = match outcome {
        // One id for every success event of one attempt: applied once.
        Ok((amount, payment_ref)) => (
            ids::derived("payment-succeeded", &order_token, i64::from(attempt)),
            OrderCmd::PaymentSucceeded(PaymentSucceeded {
                method: at.method.clone(),
                attempt,
                gateway: gateway.clone(),
                payment_ref,
                amount,
            }),
        ),
        Err(failure) => (
            ids::derived("payment-event", &format!("{gateway}/{}", event.id), 0),
            OrderCmd::PaymentFailed(PaymentFailed {
                method: at.method.clone(),
                attempt,
                gateway: gateway.clone(),
                failure,
            }),
        ),
    };
    Ok(Some(OrderCommand {
        command_id: command_id.to_string(),
        order_token,
        issued_at: at_ms,
        actor: Some(gateway),
        command,
    }))
}

/// Reads a verified webhook as received.
fn event_of(w: &InboundWebhook) -> Result<WebhookEvent, String> {
    match w.gateway.as_str() {
        "razorpay" => gateways::razorpay::transformers::event(&w.event_id, w.body.as_bytes()),
        "stripe" => gateways::stripe::transformers::event(w.body.as_bytes()),
        other => return Err(format!("unknown gateway {other}")),
    }
    .map_err(|e| e.to_string())
}

whole_state!(WebhookLog);

impl Processor for WebhookProcessor {
    type Input = InboundWebhook;
    type State = WebhookLog;
    type Output = WebhookOutput;

    const NAME: &'static str = "webhook-processor";

    fn input_topic(&self) -> &'static Topic<InboundWebhook> {
        &WEBHOOKS_INBOUND
    }

    fn changelog_topic(&self) -> &'static Topic<WebhookLog> {
        &WEBHOOK_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &WEBHOOK_APPLIED
    }

    /// The gateway's event id: a webhook delivered again (gateways retry,
    /// and send duplicates) is applied once.
    fn input_id(input: &InboundWebhook) -> &str {
        &input.event_id
    }

    fn apply(
        &self,
        state: Option<&WebhookLog>,
        input: &Input<InboundWebhook>,
    ) -> Outcome<WebhookLog, WebhookOutput> {
        let w = &input.value;
        if state.is_some_and(|s| s.event_ids.contains(&w.event_id)) {
            // Older than the 24 h of applied ids: still known here.
            return Outcome::nothing();
        }
        let mut log = state.cloned().unwrap_or_else(|| WebhookLog {
            key: input.key.clone(),
            version: input.offset,
            event_ids: Vec::new(),
        });
        log.version = input.offset;
        log.event_ids.push(w.event_id.clone());
        let output = match event_of(w).and_then(|e| command_for(&e, w.received_at)) {
            Ok(Some(command)) => Some(WebhookOutput::Order(command)),
            Ok(None) => {
                tracing::info!(gateway = %w.gateway, kind = %w.kind, event = %w.event_id, "webhook needs nothing of an order");
                None
            }
            Err(reason) => {
                tracing::error!(gateway = %w.gateway, kind = %w.kind, event = %w.event_id, %reason, "webhook sent to the dead letters");
                Some(WebhookOutput::Dead(DeadLetter {
                    stage: Self::NAME.into(),
                    reason,
                    kind: "unmatched".into(),
                    source_topic: WEBHOOKS_INBOUND.def.name.into(),
                    source_partition: input.partition,
                    source_offset: input.offset,
                    key: Some(input.key.clone().into_bytes()),
                    value: Some(w.body.clone().into_bytes()),
                    correlation_id: Some(input.correlation_id.clone()),
                    headers: Default::default(),
                    failed_at: w.received_at,
                }))
            }
        };
        Outcome {
            state: Some(log),
            outputs: output.into_iter().collect(),
        }
    }
}
