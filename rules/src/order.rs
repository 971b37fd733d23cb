//! An order's life, pure: what each command does to an order (`decide`)
//! and which payment attempts are due to expire (`due_expiries`).
//!
//! ```text
//! PENDING ─► AWAITING_PAYMENT ─► PAID ─► REFUNDED
//!                 │    ▲
//!                 ▼    │ StartAttempt (a new payment token)
//!           FAILED | EXPIRED
//! ```
//!
//! An order opens from a converted cart, frozen as it was priced. Its
//! coupons are reserved first (the coupon processor counts their uses,
//! `crate::redemption`): the order waits in PENDING for every answer, and a
//! refusal fails it with the coupon's code. Then its payment attempt opens.
//! A paid order commits its coupons, a failed or expired one releases them. Each attempt has its own payment token,
//! derived from the order and the attempt number, valid for
//! [`OrderPolicy::attempt_ttl_ms`]. Every transition is recorded with its
//! reason, actor, correlation id and time; a command that would make an
//! invalid transition is refused and the refusal recorded, never applied:
//! PAID never moves back, a late failure after a success changes nothing.

use schemas::codes::ErrorCode;
use schemas::ids;
use schemas::records::cart::{CartSnapshot, CommandRejection};
use schemas::records::coupons::{CommitCoupon, CouponCmd, ReleaseCoupon, ReserveCoupon};
use schemas::records::order::{
    AttemptStatus, CouponHold, HoldStatus, OrderCmd, OrderCommand, OrderSnapshot, OrderStatus,
    PaymentAttempt, Transition,
};
use schemas::records::payments::PaymentRequest;

/// How long a payment token is valid: 30 minutes unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    pub attempt_ttl_ms: i64,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        OrderPolicy {
            attempt_ttl_ms: 30 * 60 * 1000,
        }
    }
}

/// Where a command stands: its id, offset, time and correlation id.
#[derive(Debug, Clone)]
pub struct OrderStamp<'a> {
    pub command_id: &'a str,
    pub offset: i64,
    pub at_ms: i64,
    pub correlation_id: &'a str,
}

/// A command for the coupon processor: a reservation, commit or release
/// of `code` for this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRequest {
    pub code: String,
    pub command: CouponCmd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The order after the command (a transition, or a refusal recorded),
    /// and what it asks of its coupons.
    Order(OrderSnapshot, Vec<CouponRequest>),
    /// Nothing to record: a repeat of a placement, a timer's expiry for an
    /// attempt that is no longer open.
    Unchanged,
    /// No order to record anything on.
    Dropped(CommandRejection),
}

/// The payment token of `order`'s attempt `number`: derived, so a replay
/// issues the same one, and unguessable without the order token.
pub fn payment_token(order_token: &str, number: i32) -> String {
    ids::derived("payment-token", order_token, i64::from(number))
        .simple()
        .to_string()
}

pub fn decide(
    order: Option<&OrderSnapshot>,
    command: &OrderCommand,
    stamp: &OrderStamp<'_>,
    policy: &OrderPolicy,
) -> Decision {
    let actor = command.actor.as_deref().unwrap_or("system");
    let Some(order) = order else {
        return match &command.command {
            OrderCmd::OpenOrder(open) => {
                let mut order = open_order(
                    command,
                    &open.cart,
                    open.success_url.clone(),
                    open.cancel_url.clone(),
                    open.buyer_email.clone(),
                    stamp,
                    actor,
                );
                let requests = reserve_or_open(&mut order, "placed", stamp, policy, actor);
                Decision::Order(order, requests)
            }
            OrderCmd::StartAttempt(_)
            | OrderCmd::ExpireAttempt(_)
            | OrderCmd::PaymentSucceeded(_)
            | OrderCmd::PaymentFailed(_)
            | OrderCmd::CouponAnswered(_)
            | OrderCmd::SessionOpened(_)
            | OrderCmd::SessionFailed(_) => Decision::Dropped(CommandRejection {
                command_id: stamp.command_id.to_owned(),
                code: ErrorCode::PaymentInvalidState.code(),
                message: "no such order".into(),
            }),
        };
    };
    let mut next = order.clone();
    next.version = stamp.offset;
    next.updated_at = stamp.at_ms;
    next.last_command_id = stamp.command_id.to_owned();
    next.event_id = ids::derived("order-snapshot", &order.order_token, stamp.offset).to_string();
    next.rejection = None;
    let current = order.attempts.last().map(|a| a.number).unwrap_or(0);
    match &command.command {
        // The order exists: a placement repeated (the cart processor's
        // retry) changes nothing.
        OrderCmd::OpenOrder(_) => Decision::Unchanged,
        OrderCmd::StartAttempt(s) => match order.status {
            OrderStatus::Failed | OrderStatus::Expired => {
                let requests = reserve_or_open(&mut next, &s.reason, stamp, policy, actor);
                Decision::Order(next, requests)
            }
            other => refuse(
                next,
                other,
                ErrorCode::PaymentInvalidState,
                &format!(
                    "a new payment attempt needs a failed or expired order, not {}",
                    other.as_str()
                ),
                actor,
                stamp,
            ),
        },
        OrderCmd::CouponAnswered(a) => {
            if a.round != reservation_round(order) {
                // An answer to an earlier round: that round's release was
                // sent when it ended, after its reservation, to the same
                // coupon partition, so nothing is left to give back.
                return Decision::Unchanged;
            }
            let requested = order
                .coupons
                .iter()
                .any(|h| h.code == a.code && h.status == HoldStatus::Requested);
            if order.status != OrderStatus::Pending || !requested {
                // An answer the order no longer waits for: a reservation it
                // holds for nothing is given back.
                if !a.reserved {
                    return Decision::Unchanged;
                }
                let held = order.coupons.iter().any(|h| {
                    h.code == a.code
                        && matches!(h.status, HoldStatus::Reserved | HoldStatus::Committed)
                });
                if held {
                    return Decision::Unchanged;
                }
                set_hold(&mut next, &a.code, HoldStatus::Released);
                return Decision::Order(
                    next,
                    vec![CouponRequest {
                        code: a.code.clone(),
                        command: CouponCmd::ReleaseCoupon(ReleaseCoupon {
                            reason: format!(
                                "answered after the order was {}",
                                order.status.as_str()
                            ),
                        }),
                    }],
                );
            }
            if a.reserved {
                set_hold(&mut next, &a.code, HoldStatus::Reserved);
                if next
                    .coupons
                    .iter()
                    .all(|h| h.status == HoldStatus::Reserved)
                {
                    open_next_attempt(&mut next, "coupons reserved", stamp, policy, actor);
                }
                return Decision::Order(next, Vec::new());
            }
            set_hold(&mut next, &a.code, HoldStatus::Refused);
            let requests = release_all(&mut next, "another coupon of the order was refused");
            transition(
                &mut next,
                OrderStatus::Failed,
                &format!("coupon {} refused: {}", a.code, a.message),
                actor,
                stamp,
            );
            let code = a
                .refusal_code
                .unwrap_or(ErrorCode::CouponNotApplicable.code());
            next.rejection = Some(CommandRejection {
                command_id: stamp.command_id.to_owned(),
                code,
                message: a.message.clone(),
            });
            Decision::Order(next, requests)
        }
        OrderCmd::SessionOpened(s) => {
            let open = order.status == OrderStatus::AwaitingPayment && s.attempt == current;
            let known = order
                .attempts
                .iter()
                .any(|a| a.number == s.attempt && a.session_id.is_some());
            if !open || known {
                // A session for an attempt that ended meanwhile (its token
                // expired, the buyer paid through another) is not offered;
                // one answered twice is kept as first answered.
                return Decision::Unchanged;
            }
            if let Some(a) = next.attempts.iter_mut().find(|a| a.number == s.attempt) {
                a.gateway = Some(s.gateway.clone());
                a.session_id = Some(s.session_id.clone());
                a.checkout_url = s.checkout_url.clone();
                a.razorpay_key_id = s.razorpay_key_id.clone();
                a.calls = s.calls.clone();
            }
            Decision::Order(next, Vec::new())
        }
        OrderCmd::SessionFailed(f) => {
            let open = order.status == OrderStatus::AwaitingPayment && f.attempt == current;
            if !open {
                return Decision::Unchanged;
            }
            if let Some(a) = next.attempts.iter_mut().find(|a| a.number == f.attempt) {
                a.status = AttemptStatus::Failed;
                a.calls = f.calls.clone();
            }
            let requests = release_all(&mut next, "no payment session could be opened");
            transition(
                &mut next,
                OrderStatus::Failed,
                &format!("no payment session: {}", f.failure),
                actor,
                stamp,
            );
            let code = if f.timed_out {
                ErrorCode::GatewayTimeout
            } else {
                ErrorCode::PaymentFailed
            };
            next.rejection = Some(CommandRejection {
                command_id: stamp.command_id.to_owned(),
                code: code.code(),
                message: f.failure.clone(),
            });
            Decision::Order(next, requests)
        }
        OrderCmd::ExpireAttempt(e)
            if order.status == OrderStatus::Pending && e.attempt == reservation_round(order) =>
        {
            let requests = release_all(&mut next, "its coupons were not reserved in time");
            transition(
                &mut next,
                OrderStatus::Expired,
                "its coupons were not reserved in time",
                actor,
                stamp,
            );
            Decision::Order(next, requests)
        }
        OrderCmd::ExpireAttempt(e) => {
            let open = order.status == OrderStatus::AwaitingPayment && e.attempt == current;
            if !open {
                // Paid, failed or superseded meanwhile: the timer's view
                // was older than the order.
                return Decision::Unchanged;
            }
            set_attempt(&mut next, e.attempt, AttemptStatus::Expired, None, None);
            let requests = release_all(&mut next, "the payment token expired");
            transition(
                &mut next,
                OrderStatus::Expired,
                &format!("payment token of attempt {} expired", e.attempt),
                actor,
                stamp,
            );
            Decision::Order(next, requests)
        }
        OrderCmd::PaymentSucceeded(p) => {
            if order.status == OrderStatus::Paid || order.status == OrderStatus::Refunded {
                return refuse(
                    next,
                    order.status,
                    ErrorCode::PaymentInvalidState,
                    &format!(
                        "already {}: payment {} not applied again",
                        order.status.as_str(),
                        p.payment_ref
                    ),
                    actor,
                    stamp,
                );
            }
            let expected = &order.placed.total;
            if p.amount != *expected {
                return refuse(
                    next,
                    order.status,
                    ErrorCode::PaymentFailed,
                    &format!(
                        "payment {} of {} {} does not match the order's {} {}",
                        p.payment_ref,
                        p.amount.amount_minor,
                        p.amount.currency,
                        expected.amount_minor,
                        expected.currency
                    ),
                    actor,
                    stamp,
                );
            }
            let reason = match order.status {
                OrderStatus::AwaitingPayment if p.attempt == current => {
                    format!("paid through {} ({})", p.gateway, p.payment_ref)
                }
                // Money received is never dropped: a payment that lands
                // after its attempt expired or failed still pays the order
                // (what happens next, enrol or refund, is the next rule).
                other => format!(
                    "paid through {} ({}) while {} (attempt {}, current {current})",
                    p.gateway,
                    p.payment_ref,
                    other.as_str(),
                    p.attempt
                ),
            };
            set_attempt(
                &mut next,
                p.attempt,
                AttemptStatus::Paid,
                Some(&p.gateway),
                Some(&p.payment_ref),
            );
            // Every coupon the order was priced with is used now, even one
            // whose reservation was released meanwhile.
            let mut requests = Vec::new();
            for hold in next
                .coupons
                .iter_mut()
                .filter(|h| h.status != HoldStatus::Refused)
            {
                hold.status = HoldStatus::Committed;
                requests.push(CouponRequest {
                    code: hold.code.clone(),
                    command: CouponCmd::CommitCoupon(CommitCoupon {
                        payment_ref: p.payment_ref.clone(),
                        user_id: next.buyer_user_id.clone(),
                    }),
                });
            }
            transition(&mut next, OrderStatus::Paid, &reason, actor, stamp);
            Decision::Order(next, requests)
        }
        OrderCmd::PaymentFailed(f) => {
            let open = order.status == OrderStatus::AwaitingPayment && f.attempt == current;
            if !open {
                return refuse(
                    next,
                    order.status,
                    ErrorCode::PaymentInvalidState,
                    &format!(
                        "failure of attempt {} ({}) ignored: the order is {}",
                        f.attempt,
                        f.failure,
                        order.status.as_str()
                    ),
                    actor,
                    stamp,
                );
            }
            set_attempt(
                &mut next,
                f.attempt,
                AttemptStatus::Failed,
                Some(&f.gateway),
                None,
            );
            let requests = release_all(&mut next, "the payment failed");
            transition(
                &mut next,
                OrderStatus::Failed,
                &format!("payment failed at {}: {}", f.gateway, f.failure),
                actor,
                stamp,
            );
            Decision::Order(next, requests)
        }
    }
}

/// An order without coupons opens its next payment attempt; one with
/// coupons waits in PENDING while they are reserved.
fn reserve_or_open(
    order: &mut OrderSnapshot,
    reason: &str,
    stamp: &OrderStamp<'_>,
    policy: &OrderPolicy,
    actor: &str,
) -> Vec<CouponRequest> {
    if order.coupons.is_empty() {
        open_next_attempt(order, reason, stamp, policy, actor);
        return Vec::new();
    }
    if order.status != OrderStatus::Pending {
        transition(
            order,
            OrderStatus::Pending,
            &format!("{reason}: reserving its coupons again"),
            actor,
            stamp,
        );
    }
    let user = order.buyer_user_id.clone();
    let version = order.placed.priced_with.as_ref().map(|p| p.coupons);
    let round = reservation_round(order);
    order
        .coupons
        .iter_mut()
        .map(|hold| {
            hold.status = HoldStatus::Requested;
            CouponRequest {
                code: hold.code.clone(),
                command: CouponCmd::ReserveCoupon(ReserveCoupon {
                    user_id: user.clone(),
                    coupons_version: version,
                    round,
                }),
            }
        })
        .collect()
}

/// The round of reservations an order is in (or would start): the number
/// of the attempt it opens once its coupons are reserved. An answer names
/// its round, so one that arrives after its round ended is told apart.
fn reservation_round(order: &OrderSnapshot) -> i32 {
    order.attempts.last().map(|a| a.number).unwrap_or(0) + 1
}

fn open_next_attempt(
    order: &mut OrderSnapshot,
    reason: &str,
    stamp: &OrderStamp<'_>,
    policy: &OrderPolicy,
    actor: &str,
) {
    let number = order.attempts.last().map(|a| a.number).unwrap_or(0) + 1;
    open_attempt(order, number, stamp, policy);
    transition(
        order,
        OrderStatus::AwaitingPayment,
        &format!("{reason}: payment attempt {number} opened"),
        actor,
        stamp,
    );
}

fn set_hold(order: &mut OrderSnapshot, code: &str, status: HoldStatus) {
    if let Some(h) = order.coupons.iter_mut().find(|h| h.code == code) {
        h.status = status;
    }
}

/// Gives back every coupon the order holds.
fn release_all(order: &mut OrderSnapshot, reason: &str) -> Vec<CouponRequest> {
    order
        .coupons
        .iter_mut()
        .filter(|h| matches!(h.status, HoldStatus::Reserved | HoldStatus::Requested))
        .map(|h| {
            h.status = HoldStatus::Released;
            CouponRequest {
                code: h.code.clone(),
                command: CouponCmd::ReleaseCoupon(ReleaseCoupon {
                    reason: reason.to_owned(),
                }),
            }
        })
        .collect()
}

/// The payment session to open when `after` opened an attempt that
/// `before` did not have: its request id (the gateway idempotency key) is
/// derived from the order and the attempt, so a replay asks for the same
/// session. The order is charged as one line of its total (tax included,
/// discounts off), so the gateway's lines always add up to what is owed.
pub fn session_request(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
) -> Option<PaymentRequest> {
    let attempt = after.attempts.last()?;
    let known = before.is_some_and(|b| b.attempts.iter().any(|a| a.number == attempt.number));
    if known || attempt.status != AttemptStatus::Open {
        return None;
    }
    let titles: Vec<String> = after
        .placed
        .lines
        .iter()
        .map(|l| format!("{} × {}", l.title, l.quantity))
        .collect();
    let mut description = titles.join(", ");
    if description.chars().count() > 200 {
        description = description.chars().take(199).collect::<String>() + "…";
    }
    if description.is_empty() {
        description = format!("Order {}", after.order_token);
    }
    Some(PaymentRequest {
        request_id: ids::derived(
            "payment-session",
            &after.order_token,
            i64::from(attempt.number),
        )
        .to_string(),
        order_token: after.order_token.clone(),
        attempt: attempt.number,
        amount: after.placed.total.clone(),
        description,
        buyer_user_id: after.buyer_user_id.clone(),
        cart_token: after.cart_token.clone(),
        success_url: after.success_url.clone(),
        cancel_url: after.cancel_url.clone(),
        expires_at: attempt.expires_at,
    })
}

/// The enrollment `after` asks for when it became PAID (from `before`):
/// every line of the frozen cart, for the buyer, under an id derived from
/// the order, so a replay asks once.
pub fn enrollment_request(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
    at_ms: i64,
) -> Option<schemas::records::enrollment::EnrollmentCommand> {
    use schemas::records::enrollment::{EnrollOrder, EnrollmentCmd, EnrollmentCommand, PaidLine};
    let was_paid = before.is_some_and(|b| b.status == OrderStatus::Paid);
    if was_paid || after.status != OrderStatus::Paid {
        return None;
    }
    Some(EnrollmentCommand {
        command_id: ids::derived("enroll-order", &after.order_token, 0).to_string(),
        buyer_key: crate::enrollment::buyer_key(after.buyer_user_id.as_deref(), &after.order_token),
        issued_at: at_ms,
        command: EnrollmentCmd::EnrollOrder(EnrollOrder {
            order_token: after.order_token.clone(),
            buyer_user_id: after.buyer_user_id.clone(),
            buyer_email: after.buyer_email.clone(),
            lines: after
                .placed
                .lines
                .iter()
                .map(|l| PaidLine {
                    internship_id: l.internship_id.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        }),
    })
}

/// The attempt of `order` whose payment token has expired by `now_ms`, if
/// it is still open: what the order processor's timer asks to expire.
///
/// An order waiting in PENDING for its coupon reservations as long as a
/// payment token lives is expired too (its coupons released): a
/// reservation never answered (a dead-lettered request, say) must not keep
/// it there forever. Its "attempt" is then the round it waits in.
pub fn due_expiry(order: &OrderSnapshot, now_ms: i64, policy: &OrderPolicy) -> Option<i32> {
    if order.status == OrderStatus::Pending {
        let since = order.history.last().map_or(order.created_at, |t| t.at);
        return (since.saturating_add(policy.attempt_ttl_ms) <= now_ms)
            .then(|| reservation_round(order));
    }
    let attempt = order.attempts.last()?;
    (order.status == OrderStatus::AwaitingPayment
        && attempt.status == AttemptStatus::Open
        && attempt.expires_at <= now_ms)
        .then_some(attempt.number)
}

fn open_order(
    command: &OrderCommand,
    cart: &CartSnapshot,
    success_url: Option<String>,
    cancel_url: Option<String>,
    buyer_email: Option<String>,
    stamp: &OrderStamp<'_>,
    actor: &str,
) -> OrderSnapshot {
    let mut order = OrderSnapshot {
        event_id: ids::derived("order-snapshot", &command.order_token, stamp.offset).to_string(),
        order_token: command.order_token.clone(),
        version: stamp.offset,
        status: OrderStatus::Pending,
        cart_token: cart.cart_token.clone(),
        buyer_user_id: cart.owner_user_id.clone(),
        placed: cart.clone(),
        attempts: Vec::new(),
        history: Vec::new(),
        coupons: cart
            .coupons
            .iter()
            .map(|code| CouponHold {
                code: code.clone(),
                status: HoldStatus::Requested,
            })
            .collect(),
        rejection: None,
        success_url,
        cancel_url,
        buyer_email,
        created_at: stamp.at_ms,
        updated_at: stamp.at_ms,
        last_command_id: stamp.command_id.to_owned(),
    };
    order.history.push(Transition {
        seq: 1,
        from_status: None,
        to_status: OrderStatus::Pending,
        reason: format!("placed from cart {}", cart.cart_token),
        actor: actor.to_owned(),
        correlation_id: stamp.correlation_id.to_owned(),
        at: stamp.at_ms,
        refused_code: None,
    });
    order
}

fn open_attempt(
    order: &mut OrderSnapshot,
    number: i32,
    stamp: &OrderStamp<'_>,
    policy: &OrderPolicy,
) {
    order.attempts.push(PaymentAttempt {
        number,
        payment_token: payment_token(&order.order_token, number),
        opened_at: stamp.at_ms,
        expires_at: stamp.at_ms.saturating_add(policy.attempt_ttl_ms),
        status: AttemptStatus::Open,
        gateway: None,
        payment_ref: None,
        session_id: None,
        checkout_url: None,
        razorpay_key_id: None,
        calls: Vec::new(),
    });
}

fn set_attempt(
    order: &mut OrderSnapshot,
    number: i32,
    status: AttemptStatus,
    gateway: Option<&str>,
    payment_ref: Option<&str>,
) {
    if let Some(a) = order.attempts.iter_mut().find(|a| a.number == number) {
        a.status = status;
        if let Some(g) = gateway {
            a.gateway = Some(g.to_owned());
        }
        if let Some(r) = payment_ref {
            a.payment_ref = Some(r.to_owned());
        }
    }
}

fn transition(
    order: &mut OrderSnapshot,
    to: OrderStatus,
    reason: &str,
    actor: &str,
    stamp: &OrderStamp<'_>,
) {
    let from = order.status;
    order.history.push(Transition {
        seq: order.history.len() as i32 + 1,
        from_status: Some(from),
        to_status: to,
        reason: reason.to_owned(),
        actor: actor.to_owned(),
        correlation_id: stamp.correlation_id.to_owned(),
        at: stamp.at_ms,
        refused_code: None,
    });
    order.status = to;
}

/// Records a refused transition: the order stays where it was.
fn refuse(
    mut order: OrderSnapshot,
    stays: OrderStatus,
    code: ErrorCode,
    message: &str,
    actor: &str,
    stamp: &OrderStamp<'_>,
) -> Decision {
    order.history.push(Transition {
        seq: order.history.len() as i32 + 1,
        from_status: Some(stays),
        to_status: stays,
        reason: message.to_owned(),
        actor: actor.to_owned(),
        correlation_id: stamp.correlation_id.to_owned(),
        at: stamp.at_ms,
        refused_code: Some(code.code()),
    });
    order.rejection = Some(CommandRejection {
        command_id: stamp.command_id.to_owned(),
        code: code.code(),
        message: message.to_owned(),
    });
    Decision::Order(order, Vec::new())
}

#[cfg(test)]
mod tests;
