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
//!
//! Money received is never dropped: a payment that lands after its order
//! expired or failed still pays it, marked `late_payment` and, by
//! [`OrderPolicy::late_payment`], enrolled or flagged for a refund. A
//! payment that does not match the order (amount, currency), or a second
//! payment of a paid order, is refused and sent for review
//! ([`review_reason`]). An attempt waiting too long is looked up at the
//! gateway ([`due_reconcile`]); a refund is asked of the gateway and the
//! order becomes REFUNDED on the gateway's word (its webhook).

use schemas::codes::ErrorCode;
use schemas::ids;
use schemas::records::cart::{CartCommand, CartSnapshot, CommandRejection};
use schemas::records::coupons::{CommitCoupon, CouponCmd, ReleaseCoupon, ReserveCoupon};
use schemas::records::order::{
    AttemptStatus, CouponAnswered, CouponHold, ExpireAttempt, HoldStatus, LatePayment, OrderCmd,
    OrderCommand, OrderRefund, OrderSnapshot, OrderStatus, PaymentAttempt, PaymentFailed,
    PaymentSucceeded, Reconcile, RefundNotStarted, RefundSettled, RefundStarted, RefundState,
    RequestRefund, SessionFailed, SessionOpened, StartAttempt, Transition,
};
use schemas::records::payments::{LookUpJob, PaymentRequest, RefundJob};

/// The order's timing and its choices about late money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    /// How long a payment token is valid: 30 minutes unless configured.
    pub attempt_ttl_ms: i64,
    /// What a payment after expiry does: enrol (the default: the buyer
    /// paid) or flag the order for a refund.
    pub late_payment: LatePayment,
    /// How long an attempt with a session waits for its webhook before
    /// the gateway is asked (and again after as long, and once more after
    /// its token expired).
    pub reconcile_after_ms: i64,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        OrderPolicy {
            attempt_ttl_ms: 30 * 60 * 1000,
            late_payment: LatePayment::Enrolled,
            reconcile_after_ms: 10 * 60 * 1000,
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
    /// No order yet for a gateway's word about a payment (its webhook was
    /// faster than our own pipeline): park it and try again later
    /// (`processors::webhook::retry`), never drop it.
    Park(String),
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
    let ctx = Ctx {
        command,
        stamp,
        policy,
        actor: command.actor.as_deref().unwrap_or("system"),
        current: order
            .and_then(|o| o.attempts.last())
            .map(|a| a.number)
            .unwrap_or(0),
    };
    let Some(order) = order else {
        return no_order_yet(&ctx);
    };
    let mut next = order.clone();
    next.version = stamp.offset;
    next.updated_at = stamp.at_ms;
    next.last_command_id = stamp.command_id.to_owned();
    next.event_id = ids::derived("order-snapshot", &order.order_token, stamp.offset).to_string();
    next.rejection = None;
    match &command.command {
        // The order exists: a placement repeated (the cart processor's
        // retry) changes nothing.
        OrderCmd::OpenOrder(_) => Decision::Unchanged,
        OrderCmd::StartAttempt(s) => start_attempt(&ctx, order, next, s),
        OrderCmd::CouponAnswered(a) => coupon_answered(&ctx, order, next, a),
        OrderCmd::SessionOpened(s) => session_opened(&ctx, order, next, s),
        OrderCmd::SessionFailed(f) => session_failed(&ctx, order, next, f),
        OrderCmd::ExpireAttempt(e) => expire_attempt(&ctx, order, next, e),
        OrderCmd::PaymentSucceeded(p) => payment_succeeded(&ctx, order, next, p),
        OrderCmd::Reconcile(r) => reconcile(&ctx, order, next, r),
        OrderCmd::RequestRefund(r) => request_refund(&ctx, order, next, r),
        OrderCmd::RefundStarted(s) => refund_started(next, s),
        OrderCmd::RefundNotStarted(s) => refund_not_started(next, s),
        OrderCmd::RefundSettled(s) => refund_settled(&ctx, order, next, s),
        OrderCmd::PaymentFailed(f) => payment_failed(&ctx, order, next, f),
    }
}

/// What every command's decision shares: the command, where it stands,
/// the policy, who sent it and the order's current attempt.
struct Ctx<'a> {
    command: &'a OrderCommand,
    stamp: &'a OrderStamp<'a>,
    policy: &'a OrderPolicy,
    /// The command's actor, `system` when it names none.
    actor: &'a str,
    /// The number of the order's latest attempt (0 before its first).
    current: i32,
}

/// Decides a command for an order not recorded yet: a placement opens it.
fn no_order_yet(ctx: &Ctx<'_>) -> Decision {
    let command = ctx.command;
    match &command.command {
        OrderCmd::OpenOrder(open) => {
            let mut order = open_order(
                command,
                &open.cart,
                open.success_url.clone(),
                open.cancel_url.clone(),
                open.buyer_email.clone(),
                ctx.stamp,
                ctx.actor,
            );
            let requests = reserve_or_open(&mut order, "placed", ctx.stamp, ctx.policy, ctx.actor);
            Decision::Order(order, requests)
        }
        OrderCmd::PaymentSucceeded(_) | OrderCmd::PaymentFailed(_) | OrderCmd::RefundSettled(_) => {
            Decision::Park(format!("no order {} yet", command.order_token))
        }
        OrderCmd::StartAttempt(_)
        | OrderCmd::ExpireAttempt(_)
        | OrderCmd::CouponAnswered(_)
        | OrderCmd::SessionOpened(_)
        | OrderCmd::SessionFailed(_)
        | OrderCmd::Reconcile(_)
        | OrderCmd::RequestRefund(_)
        | OrderCmd::RefundStarted(_)
        | OrderCmd::RefundNotStarted(_) => Decision::Dropped(CommandRejection {
            command_id: ctx.stamp.command_id.to_owned(),
            code: ErrorCode::PaymentInvalidState.code(),
            message: "no such order".into(),
        }),
    }
}

/// Decides a coupon processor's answer to a reservation of the order's.
fn coupon_answered(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    a: &CouponAnswered,
) -> Decision {
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
            h.code == a.code && matches!(h.status, HoldStatus::Reserved | HoldStatus::Committed)
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
                    reason: format!("answered after the order was {}", order.status.as_str()),
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
            open_next_attempt(
                &mut next,
                "coupons reserved",
                ctx.stamp,
                ctx.policy,
                ctx.actor,
            );
        }
        return Decision::Order(next, Vec::new());
    }
    set_hold(&mut next, &a.code, HoldStatus::Refused);
    let requests = release_all(&mut next, "another coupon of the order was refused");
    transition(
        &mut next,
        OrderStatus::Failed,
        &format!("coupon {} refused: {}", a.code, a.message),
        ctx.actor,
        ctx.stamp,
    );
    let code = a
        .refusal_code
        .unwrap_or(ErrorCode::CouponNotApplicable.code());
    next.rejection = Some(CommandRejection {
        command_id: ctx.stamp.command_id.to_owned(),
        code,
        message: a.message.clone(),
    });
    Decision::Order(next, requests)
}

/// Decides a payment session opened at the gateway for an attempt.
fn session_opened(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    s: &SessionOpened,
) -> Decision {
    let open = order.status == OrderStatus::AwaitingPayment && s.attempt == ctx.current;
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

/// Decides a payment session the gateway could not open for an attempt.
fn session_failed(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    f: &SessionFailed,
) -> Decision {
    let open = order.status == OrderStatus::AwaitingPayment && f.attempt == ctx.current;
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
        ctx.actor,
        ctx.stamp,
    );
    let code = if f.timed_out {
        ErrorCode::GatewayTimeout
    } else {
        ErrorCode::PaymentFailed
    };
    next.rejection = Some(CommandRejection {
        command_id: ctx.stamp.command_id.to_owned(),
        code: code.code(),
        message: f.failure.clone(),
    });
    Decision::Order(next, requests)
}

/// Decides a look-up at the gateway of an attempt waiting for its webhook.
fn reconcile(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    r: &Reconcile,
) -> Decision {
    if due_reconcile(order, ctx.stamp.at_ms, ctx.policy) != Some(r.attempt) {
        // Answered meanwhile, or asked already by an earlier tick.
        return Decision::Unchanged;
    }
    if let Some(a) = next.attempts.iter_mut().find(|a| a.number == r.attempt) {
        a.lookups += 1;
        a.looked_up_at = Some(ctx.stamp.at_ms);
    }
    Decision::Order(next, Vec::new())
}

/// Decides a gateway's word that the current attempt's payment failed.
fn payment_failed(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    f: &PaymentFailed,
) -> Decision {
    let open = order.status == OrderStatus::AwaitingPayment && f.attempt == ctx.current;
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
            ctx.actor,
            ctx.stamp,
        );
    }
    set_attempt(
        &mut next,
        f.attempt,
        AttemptStatus::Failed,
        Some(&f.gateway),
        None,
    );
    set_method(&mut next, f.attempt, f.method.as_deref());
    let requests = release_all(&mut next, "the payment failed");
    transition(
        &mut next,
        OrderStatus::Failed,
        &format!("payment failed at {}: {}", f.gateway, f.failure),
        ctx.actor,
        ctx.stamp,
    );
    Decision::Order(next, requests)
}

/// Decides a timer's expiry of the coupons' reservation round or of the
/// current attempt's payment token.
fn expire_attempt(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    e: &ExpireAttempt,
) -> Decision {
    if order.status == OrderStatus::Pending && e.attempt == reservation_round(order) {
        let requests = release_all(&mut next, "its coupons were not reserved in time");
        transition(
            &mut next,
            OrderStatus::Expired,
            "its coupons were not reserved in time",
            ctx.actor,
            ctx.stamp,
        );
        return Decision::Order(next, requests);
    }
    let open = order.status == OrderStatus::AwaitingPayment && e.attempt == ctx.current;
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
        ctx.actor,
        ctx.stamp,
    );
    Decision::Order(next, requests)
}

/// Decides a new payment attempt for a failed or expired order.
fn start_attempt(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    s: &StartAttempt,
) -> Decision {
    if let Some(code) = failed_for_a_coupon(order) {
        return refuse(
            next,
            order.status,
            ErrorCode::PaymentInvalidState,
            &format!(
                "coupon {code} ran out before payment and the cart is open again: \
                 remove the coupon from the cart and place the order again"
            ),
            ctx.actor,
            ctx.stamp,
        );
    }
    match order.status {
        OrderStatus::Failed | OrderStatus::Expired => {
            let requests = reserve_or_open(&mut next, &s.reason, ctx.stamp, ctx.policy, ctx.actor);
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
            ctx.actor,
            ctx.stamp,
        ),
    }
}

/// Decides a gateway's word that a payment of the order succeeded.
fn payment_succeeded(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    p: &PaymentSucceeded,
) -> Decision {
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
            ctx.actor,
            ctx.stamp,
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
            ctx.actor,
            ctx.stamp,
        );
    }
    let current = ctx.current;
    let reason = match order.status {
        OrderStatus::AwaitingPayment if p.attempt == current => {
            format!("paid through {} ({})", p.gateway, p.payment_ref)
        }
        // Money received is never dropped: a payment that lands
        // after its attempt expired or failed still pays the order.
        other => format!(
            "paid through {} ({}) while {} (attempt {}, current {current})",
            p.gateway,
            p.payment_ref,
            other.as_str(),
            p.attempt
        ),
    };
    if matches!(order.status, OrderStatus::Expired | OrderStatus::Failed) {
        next.late_payment = Some(ctx.policy.late_payment);
    }
    // The attempt still open (a newer one than the payment's) is
    // closed: the order is paid.
    let open = next
        .attempts
        .iter()
        .find(|a| a.status == AttemptStatus::Open && a.number != p.attempt)
        .map(|a| a.number);
    if let Some(n) = open {
        set_attempt(&mut next, n, AttemptStatus::Expired, None, None);
    }
    set_attempt(
        &mut next,
        p.attempt,
        AttemptStatus::Paid,
        Some(&p.gateway),
        Some(&p.payment_ref),
    );
    set_method(&mut next, p.attempt, p.method.as_deref());
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
    transition(&mut next, OrderStatus::Paid, &reason, ctx.actor, ctx.stamp);
    Decision::Order(next, requests)
}

/// Decides a request to refund a paid order (or to try its failed refund again).
fn request_refund(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    r: &RequestRefund,
) -> Decision {
    let again = order
        .refund
        .as_ref()
        .is_some_and(|f| f.status == RefundState::Failed);
    let refundable = order.status == OrderStatus::Paid
        && (order.refund.is_none() || again)
        && paid_attempt(order).is_some();
    if !refundable {
        let why = match &order.refund {
            Some(f) if order.status == OrderStatus::Paid => {
                format!("a refund is {} already", f.status.as_str())
            }
            _ => format!("a refund needs a paid order, not {}", order.status.as_str()),
        };
        return refuse(
            next,
            order.status,
            ErrorCode::PaymentInvalidState,
            &why,
            ctx.actor,
            ctx.stamp,
        );
    }
    next.refund = Some(OrderRefund {
        status: RefundState::Requested,
        reason: r.reason.clone(),
        requested_by: ctx.actor.to_owned(),
        requested_at: ctx.stamp.at_ms,
        gateway: None,
        refund_id: None,
        failure: None,
        calls: Vec::new(),
    });
    Decision::Order(next, Vec::new())
}

/// Decides the gateway's acceptance of the refund asked of it.
fn refund_started(mut next: OrderSnapshot, s: &RefundStarted) -> Decision {
    match next.refund.as_mut() {
        Some(f) if f.status == RefundState::Requested => {
            f.status = RefundState::Pending;
            f.gateway = Some(s.gateway.clone());
            f.refund_id = Some(s.refund_id.clone());
            f.calls = s.calls.clone();
            Decision::Order(next, Vec::new())
        }
        // Its webhook came first, or a repeat.
        _ => Decision::Unchanged,
    }
}

/// Decides the gateway's refusal of the refund asked of it.
fn refund_not_started(mut next: OrderSnapshot, s: &RefundNotStarted) -> Decision {
    match next.refund.as_mut() {
        Some(f) if f.status == RefundState::Requested => {
            f.status = RefundState::Failed;
            f.failure = Some(s.failure.clone());
            f.calls = s.calls.clone();
            Decision::Order(next, Vec::new())
        }
        _ => Decision::Unchanged,
    }
}

/// Decides a gateway's word (its webhook) that a refund succeeded or failed.
fn refund_settled(
    ctx: &Ctx<'_>,
    order: &OrderSnapshot,
    mut next: OrderSnapshot,
    s: &RefundSettled,
) -> Decision {
    let full = s.amount == order.placed.total;
    if order.status != OrderStatus::Paid || (s.succeeded && !full) {
        // Refunded already (a second event of the same refund), or
        // a partial refund made at the gateway: `review_reason`
        // sends the latter to a person.
        return Decision::Unchanged;
    }
    let f = next.refund.get_or_insert_with(|| OrderRefund {
        // Made at the gateway's dashboard: the money is back all
        // the same.
        status: RefundState::Pending,
        reason: "refunded at the gateway".into(),
        requested_by: s.gateway.clone(),
        requested_at: ctx.stamp.at_ms,
        gateway: None,
        refund_id: None,
        failure: None,
        calls: Vec::new(),
    });
    f.gateway = Some(s.gateway.clone());
    f.refund_id = Some(s.refund_id.clone());
    if !s.succeeded {
        f.status = RefundState::Failed;
        f.failure = Some(format!("refund {} failed at {}", s.refund_id, s.gateway));
        return Decision::Order(next, Vec::new());
    }
    f.status = RefundState::Processed;
    transition(
        &mut next,
        OrderStatus::Refunded,
        &format!("refunded through {} ({})", s.gateway, s.refund_id),
        ctx.actor,
        ctx.stamp,
    );
    Decision::Order(next, Vec::new())
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
        refund: None,
        look_up: None,
    })
}

/// Everything `after` asks of the gateway worker that `before` did not:
/// a payment session for a new attempt, a look-up of an attempt
/// (reconciliation), a refund. Request ids are derived from what asked
/// (the attempt and its look-up count, the refund's time), so a replay
/// asks the same and the gateway's idempotency key holds.
pub fn gateway_requests(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
) -> Vec<PaymentRequest> {
    let mut out: Vec<PaymentRequest> = session_request(before, after).into_iter().collect();
    for a in &after.attempts {
        let asked = before
            .and_then(|b| b.attempts.iter().find(|x| x.number == a.number))
            .map_or(0, |x| x.lookups);
        if a.lookups > asked {
            if let (Some(gateway), Some(session_id)) = (&a.gateway, &a.session_id) {
                let mut r = job_request(after, a.number, "payment-look-up", a.lookups.into());
                r.look_up = Some(LookUpJob {
                    gateway: gateway.clone(),
                    session_id: session_id.clone(),
                });
                out.push(r);
            }
        }
    }
    let requested = |o: Option<&OrderSnapshot>| {
        o.and_then(|o| o.refund.as_ref())
            .filter(|f| f.status == RefundState::Requested)
            .map(|f| f.requested_at)
    };
    if let Some(at) = requested(Some(after)).filter(|at| requested(before) != Some(*at)) {
        if let Some(a) = paid_attempt(after) {
            let mut r = job_request(after, a.number, "payment-refund", at);
            r.refund = Some(RefundJob {
                gateway: a.gateway.clone().unwrap_or_default(),
                payment_ref: a.payment_ref.clone().unwrap_or_default(),
                reason: after
                    .refund
                    .as_ref()
                    .map(|f| f.reason.clone())
                    .unwrap_or_default(),
            });
            out.push(r);
        }
    }
    out
}

fn job_request(order: &OrderSnapshot, attempt: i32, kind: &str, n: i64) -> PaymentRequest {
    PaymentRequest {
        request_id: ids::derived(kind, &format!("{}/{attempt}", order.order_token), n).to_string(),
        order_token: order.order_token.clone(),
        attempt,
        amount: order.placed.total.clone(),
        description: format!("Order {}", order.order_token),
        buyer_user_id: order.buyer_user_id.clone(),
        cart_token: order.cart_token.clone(),
        success_url: None,
        cancel_url: None,
        expires_at: 0,
        refund: None,
        look_up: None,
    }
}

/// The attempt that paid the order, with the gateway and payment to refund.
pub(crate) fn paid_attempt(order: &OrderSnapshot) -> Option<&PaymentAttempt> {
    order
        .attempts
        .iter()
        .find(|a| a.status == AttemptStatus::Paid && a.gateway.is_some() && a.payment_ref.is_some())
}

/// Why a payment event needs a person rather than a rule: it does not
/// match the order (amount, currency), it is a second payment of an order
/// paid already (the buyer was charged twice), or a partial refund was
/// made at the gateway. The order processor refuses such a payment on the
/// order and sends the command to the dead letters for review.
pub fn review_reason(order: Option<&OrderSnapshot>, command: &OrderCommand) -> Option<String> {
    let order = order?;
    match &command.command {
        OrderCmd::PaymentSucceeded(p) => {
            let expected = &order.placed.total;
            if p.amount != *expected {
                return Some(format!(
                    "payment {} of {} {} does not match order {}'s {} {}",
                    p.payment_ref,
                    p.amount.amount_minor,
                    p.amount.currency,
                    order.order_token,
                    expected.amount_minor,
                    expected.currency
                ));
            }
            let paid = matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded);
            let same = order
                .attempts
                .iter()
                .any(|a| a.payment_ref.as_deref() == Some(p.payment_ref.as_str()));
            (paid && !same).then(|| {
                format!(
                    "second payment {} through {} for order {}, which is {} already: refund it",
                    p.payment_ref,
                    p.gateway,
                    order.order_token,
                    order.status.as_str()
                )
            })
        }
        OrderCmd::RefundSettled(s) if s.succeeded && s.amount != order.placed.total => {
            Some(format!(
                "partial refund {} of {} {} made at {} for order {} ({} {})",
                s.refund_id,
                s.amount.amount_minor,
                s.amount.currency,
                s.gateway,
                order.order_token,
                order.placed.total.amount_minor,
                order.placed.total.currency
            ))
        }
        _ => None,
    }
}

/// The attempt of `order` due a look-up at its gateway at `now_ms`: one
/// with a session still waiting for its outcome after
/// [`OrderPolicy::reconcile_after_ms`] (since it opened or was last looked
/// up), or one whose token expired and that was not looked up since,
/// once that long after (a payment whose webhook was missed just before
/// the expiry is found then).
/// Whether an order in `status` may still get a payment session without
/// the buyer doing anything: while its coupons are reserved (pending) or
/// its attempt is open. Paid, refunded, failed and expired orders get none
/// (the last two until the buyer starts a new attempt).
pub fn session_may_come(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Pending | OrderStatus::AwaitingPayment)
}

pub fn due_reconcile(order: &OrderSnapshot, now_ms: i64, policy: &OrderPolicy) -> Option<i32> {
    let a = order.attempts.last()?;
    a.session_id.as_ref()?;
    let due = match (order.status, a.status) {
        (OrderStatus::AwaitingPayment, AttemptStatus::Open) => {
            let since = a.looked_up_at.unwrap_or(a.opened_at);
            now_ms.saturating_sub(since) >= policy.reconcile_after_ms
        }
        (OrderStatus::Expired, AttemptStatus::Expired) => {
            a.looked_up_at.is_none_or(|t| t < a.expires_at)
                && now_ms.saturating_sub(a.expires_at) >= policy.reconcile_after_ms
        }
        _ => false,
    };
    due.then_some(a.number)
}

/// What `after` asks of the enrollment processor that `before` did not:
/// the enrollment of an order that became PAID (unless its late payment
/// is to be refunded), the revocation of one that became REFUNDED.
pub fn enrollment_requests(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
    at_ms: i64,
) -> Vec<schemas::records::enrollment::EnrollmentCommand> {
    use schemas::records::enrollment::{EnrollmentCmd, EnrollmentCommand, RevokeOrder};
    let mut out = Vec::new();
    if after.late_payment != Some(LatePayment::RefundDue) {
        out.extend(enrollment_request(before, after, at_ms));
    }
    let was = before.map(|b| b.status);
    if after.status == OrderStatus::Refunded && was != Some(OrderStatus::Refunded) {
        out.push(EnrollmentCommand {
            command_id: ids::derived("revoke-order", &after.order_token, 0).to_string(),
            buyer_key: crate::enrollment::buyer_key(
                after.buyer_user_id.as_deref(),
                &after.order_token,
            ),
            issued_at: at_ms,
            command: EnrollmentCmd::RevokeOrder(RevokeOrder {
                order_token: after.order_token.clone(),
                reason: "the order was refunded".into(),
            }),
        });
    }
    out
}

/// What `after` asks of the cart processor that `before` did not: an order
/// that failed because a coupon could not be honoured (it ran out between
/// the cart's apply and the order's reservation, or the buyer's uses did)
/// reopens its cart, the refused coupon a blocker there, so the buyer can
/// drop it and place the cart again at the price without it: in two calls,
/// never charged a price they did not see. The command's id is derived
/// from the order and its version: a replay asks the same.
pub fn cart_reopening(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
    at_ms: i64,
) -> Option<CartCommand> {
    use schemas::records::cart::{Command, ReopenCart};
    if after.status != OrderStatus::Failed || before.map(|b| b.status) == Some(OrderStatus::Failed)
    {
        return None;
    }
    let refused = after
        .coupons
        .iter()
        .find(|h| h.status == HoldStatus::Refused)?;
    let rejection = after.rejection.as_ref();
    Some(CartCommand {
        command_id: ids::derived("cart-reopen", &after.order_token, after.version).to_string(),
        cart_token: after.placed.cart_token.clone(),
        issued_at: at_ms,
        command: Command::ReopenCart(ReopenCart {
            reopened_order_token: after.order_token.clone(),
            refused_coupon: refused.code.clone(),
            refusal_code: rejection.map_or(ErrorCode::CouponNotApplicable.code(), |r| r.code),
            reason: rejection.map_or_else(|| "refused".to_owned(), |r| r.message.clone()),
        }),
        tables_at: None,
    })
}

/// Whether the order failed because a coupon was refused: its cart was
/// reopened then, and the buyer continues there, not by paying this order
/// again.
pub fn failed_for_a_coupon(order: &OrderSnapshot) -> Option<&str> {
    (order.status == OrderStatus::Failed)
        .then(|| {
            order
                .coupons
                .iter()
                .find(|h| h.status == HoldStatus::Refused)
        })
        .flatten()
        .map(|h| h.code.as_str())
}

/// The outcome `after` reached that `before` had not: OrderPaid,
/// OrderFailed, OrderExpired or OrderRefunded, under an id derived from the
/// order and its version (a replay emits the same event).
pub fn order_event(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
) -> Option<schemas::records::order::OrderEvent> {
    use schemas::records::order::{OrderEvent, OrderEventKind};
    if before.map(|b| b.status) == Some(after.status) {
        return None;
    }
    let kind = match after.status {
        OrderStatus::Paid => OrderEventKind::Paid,
        OrderStatus::Failed => OrderEventKind::Failed,
        OrderStatus::Expired => OrderEventKind::Expired,
        OrderStatus::Refunded => OrderEventKind::Refunded,
        OrderStatus::Pending | OrderStatus::AwaitingPayment => return None,
    };
    let last = after.history.last()?;
    let attempt = match kind {
        OrderEventKind::Paid | OrderEventKind::Refunded => paid_attempt(after),
        OrderEventKind::Failed | OrderEventKind::Expired => after.attempts.last(),
    };
    Some(OrderEvent {
        event_id: ids::derived("order-event", &after.order_token, after.version).to_string(),
        order_token: after.order_token.clone(),
        kind,
        at: last.at,
        version: after.version,
        buyer_user_id: after.buyer_user_id.clone(),
        total: after.placed.total.clone(),
        attempt: attempt.map_or(0, |a| a.number),
        gateway: attempt.and_then(|a| a.gateway.clone()),
        payment_ref: attempt.and_then(|a| a.payment_ref.clone()),
        reason: last.reason.clone(),
        late_payment: after.late_payment.map(|l| l.as_str().to_owned()),
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
        late_payment: None,
        refund: None,
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
        method: None,
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
        lookups: 0,
        looked_up_at: None,
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

/// Keeps how the buyer paid (or tried to), when the gateway said.
fn set_method(order: &mut OrderSnapshot, number: i32, method: Option<&str>) {
    if let (Some(m), Some(a)) = (
        method,
        order.attempts.iter_mut().find(|a| a.number == number),
    ) {
        a.method = Some(m.to_owned());
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

pub mod audit;
pub use audit::audit_events;

#[cfg(test)]
mod tests;
