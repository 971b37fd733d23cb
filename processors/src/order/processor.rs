//! The adapter between the order rules and the runner: the snapshot is the
//! state and the output, with its audit events; what a change asks of others (sessions, look-ups
//! and refunds of the gateway worker, enrollments, invoices, coupon commands, the
//! reopening of a cart whose order failed for a coupon) is read from the
//! change by the rules. The timers ask for the expiry of every
//! attempt whose payment token ran out, and the look-up of every attempt
//! that waited too long for its webhook, as commands with ids derived from
//! the order and the attempt, so every tick until one is applied asks the
//! same. A payment that needs a person (`rules::order::review_reason`) is
//! refused on the order and its command sent to the dead letters, kind
//! `review`.

use std::collections::HashMap;

use futures::future::BoxFuture;

use rules::order::{self, Decision, OrderPolicy, OrderStamp};
use schemas::ids;
use schemas::records::audit::AuditEvent;
use schemas::records::cart::CartCommand;
use schemas::records::coupons::CouponCommand;
use schemas::records::dead_letter::DeadLetter;
use schemas::records::enrollment::EnrollmentCommand;
use schemas::records::invoices::{InvoiceRequest, LEDGER_KEY};
use schemas::records::order::{
    ExpireAttempt, OrderCmd, OrderCommand, OrderEvent, OrderSnapshot, Reconcile,
};
use schemas::records::payments::PaymentRequest;
use schemas::records::runtime::AppliedInput;
use schemas::records::webhooks::{Park, RetryAction, RetryCommand};
use schemas::topics::{
    AUDIT_EVENTS, CART_COMMANDS, COUPON_COMMANDS, DEAD_LETTERS, ENROLLMENT_COMMANDS,
    INVOICE_REQUESTS, ORDER_APPLIED, ORDER_CHANGELOG, ORDER_COMMANDS, ORDER_EVENTS,
    ORDER_SNAPSHOTS, PAYMENT_REQUESTS, WEBHOOKS_RETRY,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, whole_state, Emit, Encoded, Input, Outcome, Processor};

pub struct OrderProcessor {
    policy: OrderPolicy,
}

impl OrderProcessor {
    pub fn new(policy: OrderPolicy) -> OrderProcessor {
        OrderProcessor { policy }
    }
}

/// `order_payments_total{gateway,outcome}`: each payment attempt settled
/// (`succeeded` or `failed`), what the payment alerts divide. Counted as
/// the order processor decides; a batch redone after an aborted
/// transaction counts its payments again, so it is a rate to alert on,
/// not a ledger.
fn payments_metric() -> &'static prometheus::IntCounterVec {
    static M: std::sync::OnceLock<prometheus::IntCounterVec> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let m = prometheus::register_int_counter_vec!(
            "order_payments_total",
            "Payment attempts settled by the order processor, by gateway and outcome (succeeded, failed)",
            &["gateway", "outcome"]
        )
        .expect("metric registers once");
        for gateway in ["razorpay", "stripe"] {
            for outcome in ["succeeded", "failed"] {
                m.with_label_values(&[gateway, outcome]);
            }
        }
        m
    })
}

/// Registers the order processor's own metrics, so a first scrape has them.
pub fn register_metrics() {
    payments_metric();
}

fn count_payments(before: Option<&OrderSnapshot>, after: &OrderSnapshot) {
    use schemas::records::order::AttemptStatus;
    for a in order::audit::settled_attempts(before, after) {
        let outcome = match a.status {
            AttemptStatus::Paid => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Open | AttemptStatus::Expired => continue,
        };
        payments_metric()
            .with_label_values(&[a.gateway.as_deref().unwrap_or("none"), outcome])
            .inc();
    }
}

pub enum OrderOutput {
    Snapshot(OrderSnapshot),
    /// The timer's expiry of an attempt, back onto `order.commands`.
    Command(OrderCommand),
    /// A reservation, commit or release for the coupon processor.
    Coupon(CouponCommand),
    /// A payment session for the gateway worker to open.
    Session(PaymentRequest),
    /// A paid order's enrollment (or a refunded one's revocation), for
    /// the enrollment processor.
    Enroll(EnrollmentCommand),
    /// A payment command for a person to look at: the command as it came,
    /// re-encoded for `order.commands` so a replay sends it back there.
    Review {
        command: Box<OrderCommand>,
        letter: DeadLetter,
    },
    /// A paid order's tax invoice (or a refunded one's credit note), for
    /// the invoice processor.
    Invoice(InvoiceRequest),
    /// An outcome (paid, failed, expired, refunded) for `order.events`.
    Event(OrderEvent),
    /// A change of money or access for `audit.events`.
    Audit(AuditEvent),
    /// The cart of an order that failed for a coupon, reopened.
    Cart(CartCommand),
    /// A gateway's command for an order not known yet, parked on
    /// `webhooks.retry` (its id derived from the command's offset).
    Park {
        command: Box<OrderCommand>,
        reason: String,
        offset: i64,
    },
}

impl Emit for OrderOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            OrderOutput::Snapshot(s) => {
                Box::pin(encode_for(codec, &ORDER_SNAPSHOTS, &s.order_token, s))
            }
            OrderOutput::Command(c) => {
                Box::pin(encode_for(codec, &ORDER_COMMANDS, &c.order_token, c))
            }
            OrderOutput::Event(e) => Box::pin(encode_for(codec, &ORDER_EVENTS, &e.order_token, e)),
            OrderOutput::Audit(e) => Box::pin(encode_for(codec, &AUDIT_EVENTS, &e.subject_id, e)),
            OrderOutput::Cart(c) => Box::pin(encode_for(codec, &CART_COMMANDS, &c.cart_token, c)),
            OrderOutput::Coupon(c) => Box::pin(encode_for(codec, &COUPON_COMMANDS, &c.code, c)),
            OrderOutput::Session(r) => {
                Box::pin(encode_for(codec, &PAYMENT_REQUESTS, &r.order_token, r))
            }
            OrderOutput::Invoice(r) => {
                Box::pin(encode_for(codec, &INVOICE_REQUESTS, LEDGER_KEY, r))
            }
            OrderOutput::Enroll(e) => {
                Box::pin(encode_for(codec, &ENROLLMENT_COMMANDS, &e.buyer_key, e))
            }
            OrderOutput::Park {
                command,
                reason,
                offset,
            } => Box::pin(async move {
                let bytes = codec.encode(&ORDER_COMMANDS, command.as_ref()).await?;
                let park = RetryCommand {
                    id: ids::derived("retry-park", &command.order_token, *offset).to_string(),
                    order_token: command.order_token.clone(),
                    command_id: command.command_id.clone(),
                    at: command.issued_at,
                    action: RetryAction::Park(Park {
                        command: bytes,
                        reason: reason.clone(),
                    }),
                };
                encode_for(codec, &WEBHOOKS_RETRY, &park.order_token, &park).await
            }),
            OrderOutput::Review { command, letter } => Box::pin(async move {
                let value = codec.encode(&ORDER_COMMANDS, command.as_ref()).await?;
                let letter = DeadLetter {
                    key: Some(Codec::encode_key(&command.order_token)),
                    value: Some(value),
                    ..letter.clone()
                };
                let key = platform::stage::dead_letter_key(&letter);
                encode_for(codec, &DEAD_LETTERS, &key, &letter).await
            }),
        }
    }
}

whole_state!(OrderSnapshot);

impl Processor for OrderProcessor {
    type Input = OrderCommand;
    type State = OrderSnapshot;
    type Output = OrderOutput;

    const NAME: &'static str = "order-processor";

    fn input_topic(&self) -> &'static Topic<OrderCommand> {
        &ORDER_COMMANDS
    }

    fn changelog_topic(&self) -> &'static Topic<OrderSnapshot> {
        &ORDER_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &ORDER_APPLIED
    }

    fn input_id(input: &OrderCommand) -> &str {
        &input.command_id
    }

    fn apply(
        &self,
        state: Option<&OrderSnapshot>,
        input: &Input<OrderCommand>,
    ) -> Outcome<OrderSnapshot, OrderOutput> {
        let cmd = &input.value;
        let stamp = OrderStamp {
            command_id: &cmd.command_id,
            offset: input.offset,
            at_ms: cmd.issued_at,
            correlation_id: &input.correlation_id,
        };
        let review = order::review_reason(state, cmd).map(|reason| {
            tracing::error!(order = %platform::telemetry::token_ref(&input.key), %reason, "payment sent for review");
            OrderOutput::Review {
                command: Box::new(cmd.clone()),
                letter: DeadLetter {
                    stage: Self::NAME.into(),
                    reason,
                    kind: "review".into(),
                    source_topic: ORDER_COMMANDS.def.name.into(),
                    source_partition: input.partition,
                    source_offset: input.offset,
                    key: None,
                    value: None,
                    correlation_id: Some(input.correlation_id.clone()),
                    headers: Default::default(),
                    failed_at: cmd.issued_at,
                },
            }
        });
        match order::decide(state, cmd, &stamp, &self.policy) {
            Decision::Order(next, requests) => {
                count_payments(state, &next);
                let mut outputs = vec![OrderOutput::Snapshot(next.clone())];
                outputs.extend(review);
                outputs.extend(order::order_event(state, &next).map(OrderOutput::Event));
                let actor = cmd.actor.as_deref().unwrap_or("system");
                outputs.extend(
                    order::audit_events(state, &next, actor, &stamp)
                        .into_iter()
                        .map(OrderOutput::Audit),
                );
                outputs.extend(
                    order::cart_reopening(state, &next, cmd.issued_at).map(OrderOutput::Cart),
                );
                outputs.extend(
                    order::gateway_requests(state, &next)
                        .into_iter()
                        .map(OrderOutput::Session),
                );
                outputs.extend(
                    order::enrollment_requests(state, &next, cmd.issued_at)
                        .into_iter()
                        .map(OrderOutput::Enroll),
                );
                outputs.extend(
                    rules::invoice::requests(state, &next)
                        .into_iter()
                        .map(OrderOutput::Invoice),
                );
                // Ids derived from the order's command and the coupon: a
                // replay asks the coupon processor the very same thing.
                outputs.extend(requests.into_iter().map(|r| {
                    OrderOutput::Coupon(CouponCommand {
                        command_id: ids::derived(
                            "coupon-request",
                            &format!("{}/{}", input.key, r.code),
                            input.offset,
                        )
                        .to_string(),
                        order_token: input.key.clone(),
                        code: r.code,
                        issued_at: cmd.issued_at,
                        command: r.command,
                    })
                }));
                Outcome {
                    state: Some(next),
                    outputs,
                }
            }
            // A review without a change (a partial refund made at the
            // gateway) is still sent; the input is not recorded, so a
            // redelivery sends the same letter again (same key).
            Decision::Unchanged => Outcome {
                state: None,
                outputs: review.into_iter().collect(),
            },
            // Not recorded as applied: the redelivery (same command id)
            // is applied when the order is there.
            Decision::Park(reason) => {
                tracing::info!(order = %platform::telemetry::token_ref(&input.key), command = %cmd.command_id, %reason, "payment command parked for a retry");
                Outcome {
                    state: None,
                    outputs: vec![OrderOutput::Park {
                        command: Box::new(cmd.clone()),
                        reason,
                        offset: input.offset,
                    }],
                }
            }
            Decision::Dropped(r) => {
                tracing::warn!(code = r.code, message = %r.message, order = %platform::telemetry::token_ref(&input.key), "order command dropped");
                Outcome::nothing()
            }
        }
    }

    fn timers(&self, now_ms: i64, states: &HashMap<String, OrderSnapshot>) -> Vec<OrderOutput> {
        let command = |o: &OrderSnapshot, id: uuid::Uuid, command: OrderCmd| {
            OrderOutput::Command(OrderCommand {
                command_id: id.to_string(),
                order_token: o.order_token.clone(),
                issued_at: now_ms,
                actor: Some("system".into()),
                command,
            })
        };
        let mut out = Vec::new();
        for o in states.values() {
            if let Some(attempt) = order::due_expiry(o, now_ms, &self.policy) {
                let id = ids::derived("order-expire", &o.order_token, i64::from(attempt));
                out.push(command(
                    o,
                    id,
                    OrderCmd::ExpireAttempt(ExpireAttempt { attempt }),
                ));
            }
            if let Some(attempt) = order::due_reconcile(o, now_ms, &self.policy) {
                // Per attempt and look-up: the next tick asks the same one
                // until it is applied.
                let lookups = o.attempts.last().map_or(0, |a| a.lookups);
                let id = ids::derived(
                    "order-reconcile",
                    &format!("{}/{attempt}", o.order_token),
                    i64::from(lookups),
                );
                out.push(command(o, id, OrderCmd::Reconcile(Reconcile { attempt })));
            }
        }
        out
    }
}
