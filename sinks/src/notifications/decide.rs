//! Which emails a snapshot asks for, to whom, under which id: pure
//! functions of one record, no clock and no I/O, so a record read twice
//! asks for the very same notifications.
//!
//! - An order whose status is PAID asks for its confirmation, once per
//!   order: the id is derived from ("order-paid", order token), not from
//!   the snapshot, because every later snapshot of a paid order (a coupon
//!   committed, a refused second payment) is PAID too. A REFUNDED order
//!   asks for nothing: a confirmation then would be news of the past.
//! - An order that became FAILED out of AWAITING_PAYMENT (its payment
//!   failed, or no gateway opened a session) asks for a payment-failure
//!   email, once per order and attempt. A FAILED that came out of PENDING
//!   (a coupon refused) is no payment's failure and asks for nothing.
//! - Each active enrollment in a buyer's book asks for an enrollment email,
//!   once per enrollment id (every book re-lists the buyer's enrollments).
//!
//! A notification without an address (or with one that is not an email
//! address) is a [`Decision::Skip`], counted by the worker, never an error.

use lettre::message::Mailbox;
use uuid::Uuid;

use schemas::ids;
use schemas::records::enrollment::{EnrollmentBook, EnrollmentStatus};
use schemas::records::order::{AttemptStatus, LatePayment, OrderSnapshot, OrderStatus};
use schemas::records::WireMoney;
use schemas::values::Email;
use schemas::{Money, MoneyError};

use super::templates::{self, ConfirmationView, EnrollmentView, FailureView, LineView, Rendered};

/// The kinds of email, a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    OrderConfirmation,
    PaymentFailed,
    Enrollment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderConfirmation => "order_confirmation",
            Kind::PaymentFailed => "payment_failed",
            Kind::Enrollment => "enrollment",
        }
    }
}

/// Why a wanted notification has nobody to go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NoAddress,
    InvalidAddress,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoAddress => "no_address",
            SkipReason::InvalidAddress => "invalid_address",
        }
    }
}

/// An email to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Derived from the cause: the sent-log's key and the Message-ID's.
    pub id: Uuid,
    pub kind: Kind,
    /// The order token or enrollment id the email is about.
    pub subject_key: String,
    pub to: Mailbox,
    pub rendered: Rendered,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send(Notification),
    Skip {
        id: Uuid,
        kind: Kind,
        subject_key: String,
        reason: SkipReason,
    },
}

impl Decision {
    pub fn id(&self) -> Uuid {
        match self {
            Decision::Send(n) => n.id,
            Decision::Skip { id, .. } => *id,
        }
    }
}

/// A record whose email cannot be rendered (an amount in a currency this
/// build does not know): a dead letter, never a guessed amount.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the email: {0}")]
pub struct RenderError(#[from] MoneyError);

/// The id of the confirmation of order `order_token`.
pub fn confirmation_id(order_token: &str) -> Uuid {
    ids::derived("notify-order-paid", order_token, 0)
}

/// The id of the failure email of `order_token`'s attempt `attempt`.
pub fn failure_id(order_token: &str, attempt: i32) -> Uuid {
    ids::derived("notify-payment-failed", order_token, i64::from(attempt))
}

/// The id of the email of enrollment `enrollment_id`.
pub fn enrollment_id(enrollment_id: &str) -> Uuid {
    ids::derived("notify-enrollment", enrollment_id, 0)
}

/// What an order snapshot asks for: nothing, a confirmation, or a
/// payment-failure email.
pub fn order(o: &OrderSnapshot) -> Result<Option<Decision>, RenderError> {
    match o.status {
        // A payment after expiry flagged for a refund confirms nothing: the
        // buyer is not enrolled, and a person handles the refund.
        OrderStatus::Paid if o.late_payment == Some(LatePayment::RefundDue) => Ok(None),
        OrderStatus::Paid => {
            let view = confirmation_view(o)?;
            Ok(Some(decide(
                confirmation_id(&o.order_token),
                Kind::OrderConfirmation,
                &o.order_token,
                o.buyer_email.as_deref(),
                || templates::order_confirmation(&view),
            )))
        }
        OrderStatus::Failed => {
            let Some(view) = failure_view(o)? else {
                return Ok(None);
            };
            Ok(Some(decide(
                failure_id(&o.order_token, view.attempt),
                Kind::PaymentFailed,
                &o.order_token,
                o.buyer_email.as_deref(),
                || templates::payment_failed(&view),
            )))
        }
        OrderStatus::Pending
        | OrderStatus::AwaitingPayment
        | OrderStatus::Expired
        | OrderStatus::Refunded => Ok(None),
    }
}

/// What a buyer's book asks for: one email per active enrollment.
pub fn enrollments(book: &EnrollmentBook) -> Vec<Decision> {
    book.enrollments
        .iter()
        .filter(|e| e.status == EnrollmentStatus::Active)
        .map(|e| {
            let view = EnrollmentView {
                title: e.title.clone(),
                internship_id: e.internship_id.clone(),
                order_token: e.order_token.clone(),
                seats: e.seats,
            };
            decide(
                enrollment_id(&e.enrollment_id),
                Kind::Enrollment,
                &e.enrollment_id,
                e.email.as_deref(),
                || templates::enrollment(&view),
            )
        })
        .collect()
}

fn decide(
    id: Uuid,
    kind: Kind,
    subject_key: &str,
    address: Option<&str>,
    render: impl FnOnce() -> Rendered,
) -> Decision {
    let skip = |reason| Decision::Skip {
        id,
        kind,
        subject_key: subject_key.to_owned(),
        reason,
    };
    let Some(address) = address else {
        return skip(SkipReason::NoAddress);
    };
    // Our own rule first (what the ingress accepted), then lettre's, which
    // is the one the transport will apply.
    let to = Email::parse(address)
        .ok()
        .and_then(|e| e.as_str().parse::<Mailbox>().ok());
    match to {
        Some(to) => Decision::Send(Notification {
            id,
            kind,
            subject_key: subject_key.to_owned(),
            to,
            rendered: render(),
        }),
        None => skip(SkipReason::InvalidAddress),
    }
}

fn money(m: &WireMoney) -> Result<Money, MoneyError> {
    m.to_money()
}

fn confirmation_view(o: &OrderSnapshot) -> Result<ConfirmationView, RenderError> {
    let placed = &o.placed;
    let lines = placed
        .lines
        .iter()
        .map(|l| {
            Ok(LineView {
                title: l.title.clone(),
                quantity: l.quantity,
                total: money(&l.line_total)?,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    // The attempt that paid; two paid attempts (a second payment refused
    // later) name the first.
    let paid_with = o
        .attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Paid)
        .min_by_key(|a| a.number)
        .and_then(|a| Some((a.gateway.clone()?, a.payment_ref.clone()?)));
    Ok(ConfirmationView {
        order_token: o.order_token.clone(),
        lines,
        subtotal: money(&placed.subtotal)?,
        discount: money(&placed.discount_total)?,
        tax: money(&placed.tax_total)?,
        total: money(&placed.total)?,
        paid_with,
    })
}

/// The failure view when the order's last applied transition is a payment
/// failure (FAILED out of AWAITING_PAYMENT); its attempt is the newest.
fn failure_view(o: &OrderSnapshot) -> Result<Option<FailureView>, RenderError> {
    let last = o
        .history
        .iter()
        .filter(|t| t.refused_code.is_none())
        .max_by_key(|t| t.seq);
    let Some(t) = last else {
        return Ok(None);
    };
    let by_payment =
        t.to_status == OrderStatus::Failed && t.from_status == Some(OrderStatus::AwaitingPayment);
    let attempt = o.attempts.iter().map(|a| a.number).max();
    match (by_payment, attempt) {
        (true, Some(attempt)) => Ok(Some(FailureView {
            order_token: o.order_token.clone(),
            attempt,
            total: money(&o.placed.total)?,
            reason: t.reason.clone(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::enrollment::Enrollment;
    use schemas::records::order::{PaymentAttempt, Transition};

    /// A paid-for-design order as the order processor writes one, in
    /// `status`, with the buyer's address.
    fn order_in(status: OrderStatus) -> OrderSnapshot {
        let mut o = fixture_order();
        o.status = status;
        o.buyer_email = Some("Buyer@Example.COM".into());
        o
    }

    /// Built from JSON, as the order's Avro record decodes: fields this
    /// test does not care about (and any added later with a default) keep
    /// their defaults.
    fn fixture_order() -> OrderSnapshot {
        use schemas::records::cart::*;
        let wm = |m: i64| WireMoney {
            amount_minor: m,
            currency: "INR".into(),
        };
        let placed = CartSnapshot {
            event_id: "ce".into(),
            cart_token: "c1".into(),
            version: 1,
            status: CartStatus::Converted,
            currency: "INR".into(),
            lines: vec![CartLine {
                internship_id: "design".into(),
                title: "Design".into(),
                quantity: 1,
                unit_price: wm(2_490_000),
                line_total: wm(2_490_000),
                base_unit_price: wm(2_490_000),
                line_subtotal: wm(2_490_000),
                line_discount: wm(0),
                tax_class: "standard".into(),
                available: true,
                plan: None,
                category: "design".into(),
            }],
            subtotal: wm(2_490_000),
            total: wm(2_938_200),
            created_at: 0,
            updated_at: 0,
            last_command_id: "x".into(),
            rejection: None,
            owner_user_id: Some("alice".into()),
            discount_total: wm(0),
            tax_total: wm(448_200),
            taxes: vec![],
            tax_inclusive: false,
            buyer: None,
            fx: None,
            share_token: None,
            device_id: None,
            analytics: Default::default(),
            merged_into: None,
            coupons: vec![],
            discounts: vec![],
            priced_with: None,
            order_token: Some("ord1".into()),
            placements: 0,
            refused_coupons: vec![],
        };
        serde_json::from_value(serde_json::json!({
            "event_id": "e1", "order_token": "ord1", "version": 3, "status": "PENDING",
            "cart_token": "c1", "buyer_user_id": "alice",
            "placed": serde_json::to_value(&placed).unwrap(),
            "attempts": [], "history": [], "coupons": [], "rejection": null,
            "success_url": null, "cancel_url": null, "buyer_email": null,
            "created_at": 0, "updated_at": 0, "last_command_id": "x"
        }))
        .unwrap()
    }

    fn attempt(number: i32, status: AttemptStatus) -> PaymentAttempt {
        serde_json::from_value(serde_json::json!({
            "number": number, "payment_token": format!("pt{number}"),
            "opened_at": 0, "expires_at": 0, "status": status,
            "gateway": "razorpay",
            "payment_ref": (status == AttemptStatus::Paid).then(|| format!("pay_{number}")),
        }))
        .unwrap()
    }

    fn transition(
        seq: i32,
        from: Option<OrderStatus>,
        to: OrderStatus,
        reason: &str,
    ) -> Transition {
        Transition {
            seq,
            from_status: from,
            to_status: to,
            reason: reason.into(),
            actor: "t".into(),
            correlation_id: "c".into(),
            at: 0,
            refused_code: None,
        }
    }

    fn sent(d: Option<Decision>) -> Notification {
        match d {
            Some(Decision::Send(n)) => n,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn a_paid_order_asks_for_one_confirmation_whatever_snapshot_says_so() {
        let mut o = order_in(OrderStatus::Paid);
        o.attempts = vec![attempt(1, AttemptStatus::Paid)];
        let n = sent(order(&o).unwrap());
        assert_eq!(n.kind, Kind::OrderConfirmation);
        assert_eq!(n.id, confirmation_id("ord1"));
        assert_eq!(
            n.to.email.to_string(),
            "Buyer@example.com",
            "our Email rule lowercases the domain"
        );
        assert_eq!(n.subject_key, "ord1");
        assert_eq!(
            n.rendered.subject,
            "Your InternHub order is confirmed: 29382.00 INR"
        );
        assert!(n
            .rendered
            .text
            .contains("through razorpay (reference pay_1)"));
        // A later snapshot of the same paid order (another event, a coupon
        // committed) asks for the same notification.
        o.event_id = "e2".into();
        o.version = 9;
        assert_eq!(sent(order(&o).unwrap()).id, n.id);
        // Paid after expiry and flagged for a refund: no confirmation.
        o.late_payment = Some(LatePayment::RefundDue);
        assert!(order(&o).unwrap().is_none());
    }

    #[test]
    fn a_payment_failure_asks_once_per_attempt_and_a_coupon_refusal_asks_nothing() {
        let mut o = order_in(OrderStatus::Failed);
        o.attempts = vec![attempt(1, AttemptStatus::Failed)];
        o.history = vec![
            transition(1, None, OrderStatus::Pending, "placed"),
            transition(
                2,
                Some(OrderStatus::Pending),
                OrderStatus::AwaitingPayment,
                "attempt 1 opened",
            ),
            transition(
                3,
                Some(OrderStatus::AwaitingPayment),
                OrderStatus::Failed,
                "payment failed at razorpay: declined",
            ),
        ];
        let n = sent(order(&o).unwrap());
        assert_eq!(n.kind, Kind::PaymentFailed);
        assert_eq!(n.id, failure_id("ord1", 1));
        assert!(n
            .rendered
            .text
            .contains("payment failed at razorpay: declined"));
        assert!(n.rendered.subject.contains("29382.00 INR"));

        // Paid again, failed again: attempt 2 asks for an email of its own.
        o.attempts.push(attempt(2, AttemptStatus::Failed));
        o.history.push(transition(
            4,
            Some(OrderStatus::Failed),
            OrderStatus::AwaitingPayment,
            "attempt 2 opened",
        ));
        o.history.push(transition(
            5,
            Some(OrderStatus::AwaitingPayment),
            OrderStatus::Failed,
            "declined again",
        ));
        assert_eq!(sent(order(&o).unwrap()).id, failure_id("ord1", 2));
        assert_ne!(failure_id("ord1", 1), failure_id("ord1", 2));

        // A refused command after the failure is recorded but changes
        // nothing: still attempt 2's failure.
        let mut refused = transition(
            6,
            Some(OrderStatus::Failed),
            OrderStatus::Failed,
            "late failure ignored",
        );
        refused.refused_code = Some(3002);
        o.history.push(refused);
        assert_eq!(sent(order(&o).unwrap()).id, failure_id("ord1", 2));

        // FAILED out of PENDING: a coupon refused, no payment failed.
        let mut c = order_in(OrderStatus::Failed);
        c.history = vec![
            transition(1, None, OrderStatus::Pending, "placed"),
            transition(
                2,
                Some(OrderStatus::Pending),
                OrderStatus::Failed,
                "coupon X refused",
            ),
        ];
        assert_eq!(order(&c).unwrap(), None);
    }

    #[test]
    fn open_expired_and_refunded_orders_ask_nothing() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::AwaitingPayment,
            OrderStatus::Expired,
            OrderStatus::Refunded,
        ] {
            assert_eq!(order(&order_in(status)).unwrap(), None, "{status:?}");
        }
    }

    #[test]
    fn an_order_without_a_usable_address_is_skipped_under_the_same_id() {
        let mut o = order_in(OrderStatus::Paid);
        o.buyer_email = None;
        assert_eq!(
            order(&o).unwrap(),
            Some(Decision::Skip {
                id: confirmation_id("ord1"),
                kind: Kind::OrderConfirmation,
                subject_key: "ord1".into(),
                reason: SkipReason::NoAddress
            })
        );
        o.buyer_email = Some("not an address".into());
        assert!(matches!(
            order(&o).unwrap(),
            Some(Decision::Skip {
                reason: SkipReason::InvalidAddress,
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_currency_is_an_error_not_a_guess() {
        let mut o = order_in(OrderStatus::Paid);
        o.placed.total.currency = "XXX".into();
        assert!(order(&o).is_err());
    }

    fn enrollment(id: &str, status: EnrollmentStatus, email: Option<&str>) -> Enrollment {
        Enrollment {
            enrollment_id: id.into(),
            order_token: "ord1".into(),
            internship_id: "design".into(),
            title: "Design".into(),
            seats: 1,
            status,
            access_granted: true,
            progress_percent: 0,
            certificate_eligible: false,
            enrolled_at: 0,
            email: email.map(Into::into),
            seats_assigned: 0,
            seat_of: None,
        }
    }

    #[test]
    fn a_book_asks_one_email_per_active_enrollment() {
        let book = EnrollmentBook {
            buyer_key: "alice".into(),
            version: 4,
            buyer_user_id: Some("alice".into()),
            orders: vec!["ord1".into()],
            enrollments: vec![
                enrollment("e-1", EnrollmentStatus::Active, Some("alice@example.com")),
                enrollment("e-2", EnrollmentStatus::Revoked, Some("alice@example.com")),
                enrollment("e-3", EnrollmentStatus::Active, None),
            ],
            skipped: vec![],
            failed: vec![],
        };
        let d = enrollments(&book);
        assert_eq!(d.len(), 2, "the revoked one asks nothing");
        let Decision::Send(n) = &d[0] else {
            panic!("{:?}", d[0])
        };
        assert_eq!(n.id, enrollment_id("e-1"));
        assert_eq!(n.kind, Kind::Enrollment);
        assert_eq!(n.to.email.to_string(), "alice@example.com");
        assert_eq!(n.rendered.subject, "You are enrolled: Design");
        assert_eq!(
            d[1],
            Decision::Skip {
                id: enrollment_id("e-3"),
                kind: Kind::Enrollment,
                subject_key: "e-3".into(),
                reason: SkipReason::NoAddress
            }
        );
        // The next book re-lists e-1: same id, so the sent-log answers.
        assert_eq!(enrollments(&book)[0].id(), d[0].id());
    }
}
