//! The adapter between the order rules and the runner: the snapshot is the
//! state and the output; the timer asks for the expiry of every attempt
//! whose payment token ran out, as a command with an id derived from the
//! order and the attempt, so every tick until it is applied asks for the
//! same expiry.

use std::collections::HashMap;

use futures::future::BoxFuture;

use rules::order::{self, Decision, OrderPolicy, OrderStamp};
use schemas::ids;
use schemas::records::coupons::CouponCommand;
use schemas::records::enrollment::EnrollmentCommand;
use schemas::records::order::{ExpireAttempt, OrderCmd, OrderCommand, OrderSnapshot};
use schemas::records::payments::PaymentRequest;
use schemas::records::runtime::AppliedInput;
use schemas::topics::{
    COUPON_COMMANDS, ENROLLMENT_COMMANDS, ORDER_APPLIED, ORDER_CHANGELOG, ORDER_COMMANDS,
    ORDER_SNAPSHOTS, PAYMENT_REQUESTS,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, Emit, Encoded, Input, Outcome, Processor};

pub struct OrderProcessor {
    policy: OrderPolicy,
}

impl OrderProcessor {
    pub fn new(policy: OrderPolicy) -> OrderProcessor {
        OrderProcessor { policy }
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
    /// A paid order's enrollment, for the enrollment processor.
    Enroll(EnrollmentCommand),
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
            OrderOutput::Coupon(c) => Box::pin(encode_for(codec, &COUPON_COMMANDS, &c.code, c)),
            OrderOutput::Session(r) => {
                Box::pin(encode_for(codec, &PAYMENT_REQUESTS, &r.order_token, r))
            }
            OrderOutput::Enroll(e) => {
                Box::pin(encode_for(codec, &ENROLLMENT_COMMANDS, &e.buyer_key, e))
            }
        }
    }
}

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

    fn applied_offset(state: &OrderSnapshot) -> i64 {
        state.version
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
        match order::decide(state, cmd, &stamp, &self.policy) {
            Decision::Order(next, requests) => {
                let mut outputs = vec![OrderOutput::Snapshot(next.clone())];
                if let Some(request) = order::session_request(state, &next) {
                    outputs.push(OrderOutput::Session(request));
                }
                if let Some(enroll) = order::enrollment_request(state, &next, cmd.issued_at) {
                    outputs.push(OrderOutput::Enroll(enroll));
                }
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
            Decision::Unchanged => Outcome::nothing(),
            Decision::Dropped(r) => {
                tracing::warn!(code = r.code, message = %r.message, order = %input.key, "order command dropped");
                Outcome::nothing()
            }
        }
    }

    fn timers(&self, now_ms: i64, states: &HashMap<String, OrderSnapshot>) -> Vec<OrderOutput> {
        states
            .values()
            .filter_map(|o| {
                let attempt = order::due_expiry(o, now_ms, &self.policy)?;
                Some(OrderOutput::Command(OrderCommand {
                    command_id: ids::derived("order-expire", &o.order_token, i64::from(attempt))
                        .to_string(),
                    order_token: o.order_token.clone(),
                    issued_at: now_ms,
                    actor: Some("system".into()),
                    command: OrderCmd::ExpireAttempt(ExpireAttempt { attempt }),
                }))
            })
            .collect()
    }
}
