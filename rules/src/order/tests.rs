//! One test per transition of [`super::decide`], and the refusals.

use schemas::records::cart::{CartSnapshot, CartStatus};
use schemas::records::order::*;
use schemas::records::WireMoney;

use super::*;

fn money(minor: i64) -> WireMoney {
    WireMoney {
        amount_minor: minor,
        currency: "INR".into(),
    }
}

fn cart() -> CartSnapshot {
    CartSnapshot {
        event_id: "e".into(),
        cart_token: "cart-1".into(),
        version: 4,
        status: CartStatus::Converted,
        currency: "INR".into(),
        lines: vec![],
        subtotal: money(50_000),
        total: money(59_000),
        created_at: 1,
        updated_at: 2,
        last_command_id: "c".into(),
        rejection: None,
        owner_user_id: Some("alice".into()),
        discount_total: money(0),
        tax_total: money(9_000),
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
        order_token: Some("o1".into()),
        placements: 0,
        refused_coupons: vec![],
    }
}

const TTL: i64 = 1_800_000;

const RECONCILE: i64 = 600_000;

const POLICY: OrderPolicy = OrderPolicy {
    attempt_ttl_ms: TTL,
    late_payment: LatePayment::Enrolled,
    reconcile_after_ms: RECONCILE,
};

fn run(order: Option<&OrderSnapshot>, offset: i64, at_ms: i64, cmd: OrderCmd) -> Decision {
    run_with(&POLICY, order, offset, at_ms, cmd)
}

fn run_with(
    policy: &OrderPolicy,
    order: Option<&OrderSnapshot>,
    offset: i64,
    at_ms: i64,
    cmd: OrderCmd,
) -> Decision {
    let id = format!("cmd-{offset}");
    let command = OrderCommand {
        command_id: id.clone(),
        order_token: "o1".into(),
        issued_at: at_ms,
        actor: Some("alice".into()),
        command: cmd,
    };
    decide(
        order,
        &command,
        &OrderStamp {
            command_id: &id,
            offset,
            at_ms,
            correlation_id: "corr-1",
        },
        policy,
    )
}

fn order(d: Decision) -> OrderSnapshot {
    match d {
        Decision::Order(o, _) => o,
        other => panic!("no order: {other:?}"),
    }
}

fn opened() -> OrderSnapshot {
    order(run(
        None,
        1,
        1_000,
        OrderCmd::OpenOrder(OpenOrder {
            cart: cart(),
            success_url: None,
            cancel_url: None,
            buyer_email: None,
        }),
    ))
}

fn paid(attempt: i32, minor: i64) -> OrderCmd {
    OrderCmd::PaymentSucceeded(PaymentSucceeded {
        method: None,
        attempt,
        gateway: "razorpay".into(),
        payment_ref: "pay_1".into(),
        amount: money(minor),
    })
}

fn failed(attempt: i32) -> OrderCmd {
    OrderCmd::PaymentFailed(PaymentFailed {
        method: None,
        attempt,
        gateway: "razorpay".into(),
        failure: "card declined".into(),
    })
}

fn statuses(o: &OrderSnapshot) -> Vec<(Option<OrderStatus>, OrderStatus, Option<i32>)> {
    o.history
        .iter()
        .map(|t| (t.from_status, t.to_status, t.refused_code))
        .collect()
}

#[test]
fn an_order_opens_awaiting_payment_with_a_frozen_cart_and_an_expiring_token() {
    let o = opened();
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!(o.placed, cart(), "the cart as priced");
    assert_eq!(o.buyer_user_id.as_deref(), Some("alice"));
    assert_eq!(o.attempts.len(), 1);
    let a = &o.attempts[0];
    assert_eq!(
        (a.number, a.status, a.expires_at),
        (1, AttemptStatus::Open, 1_000 + TTL)
    );
    assert_eq!(a.payment_token, payment_token("o1", 1));
    assert_ne!(payment_token("o1", 1), payment_token("o1", 2));
    assert_eq!(
        statuses(&o),
        [
            (None, OrderStatus::Pending, None),
            (
                Some(OrderStatus::Pending),
                OrderStatus::AwaitingPayment,
                None
            )
        ]
    );
    assert!(o
        .history
        .iter()
        .all(|t| t.correlation_id == "corr-1" && t.actor == "alice"));
    // Opened again (the cart processor's retry): nothing changes.
    let again = run(
        Some(&o),
        2,
        2_000,
        OrderCmd::OpenOrder(OpenOrder {
            cart: cart(),
            success_url: None,
            cancel_url: None,
            buyer_email: None,
        }),
    );
    assert_eq!(again, Decision::Unchanged);
}

#[test]
fn a_matching_payment_pays_and_paid_never_moves_back() {
    let o = order(run(Some(&opened()), 2, 2_000, paid(1, 59_000)));
    assert_eq!(o.status, OrderStatus::Paid);
    assert_eq!(o.attempts[0].status, AttemptStatus::Paid);
    assert_eq!(o.attempts[0].payment_ref.as_deref(), Some("pay_1"));

    // A late failure, a second success, an expiry, a new attempt: refused
    // and recorded, or ignored; the order stays paid.
    let late = order(run(Some(&o), 3, 3_000, failed(1)));
    assert_eq!(late.status, OrderStatus::Paid);
    assert_eq!(
        statuses(&late).last(),
        Some(&(Some(OrderStatus::Paid), OrderStatus::Paid, Some(3002)))
    );
    assert_eq!(late.rejection.as_ref().map(|r| r.code), Some(3002));
    let twice = order(run(Some(&late), 4, 4_000, paid(1, 59_000)));
    assert_eq!(twice.status, OrderStatus::Paid);
    assert_eq!(twice.rejection.as_ref().map(|r| r.code), Some(3002));
    assert_eq!(
        run(
            Some(&twice),
            5,
            9_999_999,
            OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 })
        ),
        Decision::Unchanged
    );
    let retry = order(run(
        Some(&twice),
        6,
        6_000,
        OrderCmd::StartAttempt(StartAttempt {
            reason: "again".into(),
        }),
    ));
    assert_eq!(retry.status, OrderStatus::Paid);
    assert_eq!(retry.attempts.len(), 1);
}

#[test]
fn a_payment_of_another_amount_is_refused_not_paid() {
    let o = order(run(Some(&opened()), 2, 2_000, paid(1, 58_999)));
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!(o.rejection.as_ref().map(|r| r.code), Some(3001));
    assert_eq!(o.attempts[0].status, AttemptStatus::Open);
}

#[test]
fn an_expired_token_expires_the_order_and_a_new_attempt_reopens_it() {
    let o = opened();
    assert_eq!(due_expiry(&o, 1_000 + TTL - 1, &POLICY), None);
    assert_eq!(due_expiry(&o, 1_000 + TTL, &POLICY), Some(1));
    let expired = order(run(
        Some(&o),
        2,
        1_000 + TTL,
        OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
    ));
    assert_eq!(expired.status, OrderStatus::Expired);
    assert_eq!(expired.attempts[0].status, AttemptStatus::Expired);
    assert_eq!(due_expiry(&expired, i64::MAX, &POLICY), None);

    let again = order(run(
        Some(&expired),
        3,
        5_000_000,
        OrderCmd::StartAttempt(StartAttempt {
            reason: "buyer retried".into(),
        }),
    ));
    assert_eq!(again.status, OrderStatus::AwaitingPayment);
    assert_eq!(again.attempts.len(), 2);
    assert_eq!(again.attempts[1].payment_token, payment_token("o1", 2));
    assert_eq!(again.attempts[1].expires_at, 5_000_000 + TTL);
    // The old attempt's expiry, delivered late, changes nothing.
    assert_eq!(
        run(
            Some(&again),
            4,
            9_000_000,
            OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 })
        ),
        Decision::Unchanged
    );
    // A payment that arrives for the expired attempt still pays: money
    // received is never dropped.
    let late_pay = order(run(Some(&expired), 5, 6_000_000, paid(1, 59_000)));
    assert_eq!(late_pay.status, OrderStatus::Paid);
    assert!(late_pay.history.last().unwrap().reason.contains("expired"));
}

#[test]
fn a_failed_payment_fails_the_attempt_and_a_new_attempt_is_allowed() {
    let f = order(run(Some(&opened()), 2, 2_000, failed(1)));
    assert_eq!(f.status, OrderStatus::Failed);
    assert_eq!(f.attempts[0].status, AttemptStatus::Failed);
    // A new attempt while awaiting payment is refused.
    let again = order(run(
        Some(&f),
        3,
        3_000,
        OrderCmd::StartAttempt(StartAttempt { reason: "r".into() }),
    ));
    let refused = order(run(
        Some(&again),
        4,
        4_000,
        OrderCmd::StartAttempt(StartAttempt { reason: "r".into() }),
    ));
    assert_eq!(refused.status, OrderStatus::AwaitingPayment);
    assert_eq!(refused.attempts.len(), 2);
    assert_eq!(refused.rejection.as_ref().map(|r| r.code), Some(3002));
    // A failure for the superseded attempt is refused and recorded.
    let stale = order(run(Some(&again), 5, 5_000, failed(1)));
    assert_eq!(stale.status, OrderStatus::AwaitingPayment);
    assert_eq!(stale.rejection.as_ref().map(|r| r.code), Some(3002));
}

#[test]
fn commands_for_an_unknown_order_are_dropped_but_a_gateways_are_parked() {
    assert!(matches!(
        run(None, 1, 1, OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 })),
        Decision::Dropped(r) if r.code == 3002
    ));
    for cmd in [failed(1), paid(1, 59_000)] {
        assert!(matches!(run(None, 1, 1, cmd), Decision::Park(r) if r.contains("no order o1")));
    }
}

fn with_coupons(codes: &[&str]) -> (OrderSnapshot, Vec<CouponRequest>) {
    let mut c = cart();
    c.coupons = codes.iter().map(|c| c.to_string()).collect();
    c.priced_with = Some(schemas::records::cart::PricedWith {
        catalog: 3,
        fx_rates: 1,
        coupons: 7,
    });
    match run(
        None,
        1,
        1_000,
        OrderCmd::OpenOrder(OpenOrder {
            cart: c,
            success_url: None,
            cancel_url: None,
            buyer_email: None,
        }),
    ) {
        Decision::Order(o, r) => (o, r),
        other => panic!("{other:?}"),
    }
}

fn answer(code: &str, reserved: bool) -> OrderCmd {
    answer_round(code, reserved, 1)
}

fn answer_round(code: &str, reserved: bool, round: i32) -> OrderCmd {
    OrderCmd::CouponAnswered(CouponAnswered {
        code: code.into(),
        reserved,
        refusal_code: (!reserved).then_some(2008),
        message: if reserved {
            "ok".into()
        } else {
            "used up".into()
        },
        round,
    })
}

fn requests(d: &Decision) -> Vec<(String, &'static str)> {
    let Decision::Order(_, r) = d else {
        return vec![];
    };
    r.iter()
        .map(|r| {
            let kind = match r.command {
                CouponCmd::ReserveCoupon(_) => "reserve",
                CouponCmd::CommitCoupon(_) => "commit",
                CouponCmd::ReleaseCoupon(_) => "release",
            };
            (r.code.clone(), kind)
        })
        .collect()
}

#[test]
fn an_order_with_coupons_waits_for_their_reservations_then_opens_its_attempt() {
    let (o, reqs) = with_coupons(&["TEN", "WELCOME"]);
    assert_eq!(o.status, OrderStatus::Pending);
    assert!(o.attempts.is_empty());
    assert_eq!(reqs.len(), 2);
    let CouponCmd::ReserveCoupon(r) = &reqs[0].command else {
        panic!("a reservation")
    };
    assert_eq!(r.user_id.as_deref(), Some("alice"));
    assert_eq!(r.coupons_version, Some(7), "the limits as priced");
    let d = run(Some(&o), 2, 2_000, answer("TEN", true));
    let o = order(d);
    assert_eq!(o.status, OrderStatus::Pending, "one answer of two");
    let o = order(run(Some(&o), 3, 3_000, answer("WELCOME", true)));
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!(o.attempts.len(), 1);
    assert_eq!(o.attempts[0].expires_at, 3_000 + TTL, "from when it opened");

    // Paid: both coupons are used.
    let d = run(Some(&o), 4, 4_000, paid(1, 59_000));
    assert_eq!(
        requests(&d),
        [
            ("TEN".to_owned(), "commit"),
            ("WELCOME".to_owned(), "commit")
        ]
    );
    let o = order(d);
    assert!(o.coupons.iter().all(|h| h.status == HoldStatus::Committed));
}

#[test]
fn a_refused_coupon_fails_the_order_with_its_code_and_gives_the_others_back() {
    let (o, _) = with_coupons(&["TEN", "WELCOME"]);
    let o = order(run(Some(&o), 2, 2_000, answer("TEN", true)));
    let d = run(Some(&o), 3, 3_000, answer("WELCOME", false));
    assert_eq!(requests(&d), [("TEN".to_owned(), "release")]);
    let failed = order(d);
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.rejection.as_ref().map(|r| r.code), Some(2008));
    assert!(failed.attempts.is_empty(), "never payable");

    // A reservation answered after the order failed is given back.
    let (o, _) = with_coupons(&["TEN", "WELCOME"]);
    let failed = order(run(Some(&o), 2, 2_000, answer("WELCOME", false)));
    let d = run(Some(&failed), 3, 3_000, answer("TEN", true));
    assert_eq!(requests(&d), [("TEN".to_owned(), "release")]);
}

#[test]
fn an_expired_order_releases_its_coupons_and_reserves_them_again_to_pay() {
    let (o, _) = with_coupons(&["TEN"]);
    let o = order(run(Some(&o), 2, 2_000, answer("TEN", true)));
    let d = run(
        Some(&o),
        3,
        2_000 + TTL,
        OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
    );
    assert_eq!(requests(&d), [("TEN".to_owned(), "release")]);
    let expired = order(d);
    assert_eq!(expired.status, OrderStatus::Expired);
    let d = run(
        Some(&expired),
        4,
        9_000_000,
        OrderCmd::StartAttempt(StartAttempt {
            reason: "again".into(),
        }),
    );
    assert_eq!(requests(&d), [("TEN".to_owned(), "reserve")]);
    let again = order(d);
    assert_eq!(again.status, OrderStatus::Pending);
    // A late answer of round 1 is not taken for round 2's.
    assert_eq!(
        run(Some(&again), 5, 9_000_001, answer("TEN", true)),
        Decision::Unchanged
    );
    let again = order(run(
        Some(&again),
        6,
        9_000_002,
        answer_round("TEN", true, 2),
    ));
    assert_eq!(again.status, OrderStatus::AwaitingPayment);
    assert_eq!(again.attempts.len(), 2);
}

#[test]
fn an_opened_attempt_asks_for_one_payment_session_and_records_the_one_opened() {
    let o = opened();
    let req = session_request(None, &o).expect("attempt 1 opened");
    assert_eq!(req.attempt, 1);
    assert_eq!(req.amount, money(59_000), "the order's total");
    assert_eq!(req.expires_at, o.attempts[0].expires_at);
    assert_eq!(session_request(Some(&o), &o), None, "asked once");
    let again = session_request(None, &o).unwrap();
    assert_eq!(
        again.request_id, req.request_id,
        "derived: a replay asks the same"
    );

    let session = |attempt, id: &str| {
        OrderCmd::SessionOpened(SessionOpened {
            attempt,
            gateway: "razorpay".into(),
            session_id: id.into(),
            checkout_url: None,
            razorpay_key_id: Some("rzp_test_1".into()),
            expires_at: 1,
            calls: vec![],
        })
    };
    let with = order(run(Some(&o), 2, 2_000, session(1, "order_A")));
    assert_eq!(with.attempts[0].session_id.as_deref(), Some("order_A"));
    assert_eq!(with.status, OrderStatus::AwaitingPayment);
    assert_eq!(
        run(Some(&with), 3, 3_000, session(1, "order_B")),
        Decision::Unchanged,
        "the first session stands"
    );
}

#[test]
fn no_session_fails_the_attempt_with_the_gateway_code() {
    let o = opened();
    let failed = order(run(
        Some(&o),
        2,
        2_000,
        OrderCmd::SessionFailed(SessionFailed {
            attempt: 1,
            failure: "every gateway timed out".into(),
            timed_out: true,
            calls: vec![],
        }),
    ));
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.rejection.as_ref().map(|r| r.code), Some(4001));
    let retry = order(run(
        Some(&failed),
        3,
        3_000,
        OrderCmd::StartAttempt(StartAttempt {
            reason: "again".into(),
        }),
    ));
    let req = session_request(Some(&failed), &retry).expect("a session for attempt 2");
    assert_eq!(req.attempt, 2);
}

#[test]
fn an_order_whose_coupons_are_never_answered_expires_and_gives_them_back() {
    let (o, reqs) = with_coupons(&["TEN"]);
    let CouponCmd::ReserveCoupon(r) = &reqs[0].command else {
        panic!("a reservation")
    };
    assert_eq!(r.round, 1);
    assert_eq!(due_expiry(&o, 1_000 + TTL - 1, &POLICY), None);
    assert_eq!(due_expiry(&o, 1_000 + TTL, &POLICY), Some(1));
    let d = run(
        Some(&o),
        2,
        1_000 + TTL,
        OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
    );
    assert_eq!(requests(&d), [("TEN".to_owned(), "release")]);
    assert_eq!(order(d).status, OrderStatus::Expired);
}

#[test]
fn a_paid_order_commits_its_coupons_for_its_buyer() {
    let (o, _) = with_coupons(&["TEN"]);
    let o = order(run(Some(&o), 2, 2_000, answer("TEN", true)));
    let Decision::Order(_, reqs) = run(Some(&o), 3, 3_000, paid(1, 59_000)) else {
        panic!("paid")
    };
    let CouponCmd::CommitCoupon(c) = &reqs[0].command else {
        panic!("a commit")
    };
    assert_eq!(c.user_id.as_deref(), Some("alice"));
}

fn command(cmd: OrderCmd) -> OrderCommand {
    OrderCommand {
        command_id: "c".into(),
        order_token: "o1".into(),
        issued_at: 1,
        actor: Some("razorpay".into()),
        command: cmd,
    }
}

fn with_session(o: &OrderSnapshot, at_ms: i64) -> OrderSnapshot {
    order(run(
        Some(o),
        2,
        at_ms,
        OrderCmd::SessionOpened(SessionOpened {
            attempt: 1,
            gateway: "razorpay".into(),
            session_id: "order_A".into(),
            checkout_url: None,
            razorpay_key_id: Some("rzp_test_1".into()),
            expires_at: 1,
            calls: vec![],
        }),
    ))
}

#[test]
fn a_payment_after_expiry_enrolls_or_is_flagged_for_refund_by_policy() {
    let expired = order(run(
        Some(&opened()),
        2,
        1_000 + TTL,
        OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
    ));
    let enrolled = order(run(Some(&expired), 3, 2_000_000, paid(1, 59_000)));
    assert_eq!(enrolled.status, OrderStatus::Paid);
    assert_eq!(enrolled.late_payment, Some(LatePayment::Enrolled));
    assert_eq!(enrollment_requests(Some(&expired), &enrolled, 1).len(), 1);

    let refund_policy = OrderPolicy {
        late_payment: LatePayment::RefundDue,
        ..POLICY
    };
    let flagged = order(run_with(
        &refund_policy,
        Some(&expired),
        3,
        2_000_000,
        paid(1, 59_000),
    ));
    assert_eq!(flagged.status, OrderStatus::Paid, "the money is recorded");
    assert_eq!(flagged.late_payment, Some(LatePayment::RefundDue));
    assert!(
        enrollment_requests(Some(&expired), &flagged, 1).is_empty(),
        "not enrolled"
    );
    // An on-time payment is not late.
    let on_time = order(run(Some(&opened()), 2, 2_000, paid(1, 59_000)));
    assert_eq!(on_time.late_payment, None);
}

#[test]
fn a_mismatched_or_second_payment_goes_to_review_and_a_repeat_does_not() {
    let o = opened();
    let wrong = command(paid(1, 58_999));
    assert!(review_reason(Some(&o), &wrong)
        .unwrap()
        .contains("does not match"));
    assert_eq!(
        review_reason(None, &wrong),
        None,
        "no order to compare with"
    );
    assert_eq!(review_reason(Some(&o), &command(paid(1, 59_000))), None);

    let paid_once = order(run(Some(&o), 2, 2_000, paid(1, 59_000)));
    assert_eq!(
        review_reason(Some(&paid_once), &command(paid(1, 59_000))),
        None,
        "the same payment again"
    );
    let other = command(OrderCmd::PaymentSucceeded(PaymentSucceeded {
        method: None,
        attempt: 2,
        gateway: "stripe".into(),
        payment_ref: "pi_2".into(),
        amount: money(59_000),
    }));
    assert!(review_reason(Some(&paid_once), &other)
        .unwrap()
        .contains("second payment pi_2"));
    let after = order(run(Some(&paid_once), 3, 3_000, other.command.clone()));
    assert_eq!(after.status, OrderStatus::Paid);
    assert_eq!(after.rejection.as_ref().map(|r| r.code), Some(3002));
}

#[test]
fn an_attempt_without_news_is_looked_up_at_its_gateway_then_once_after_expiry() {
    let o = opened();
    assert_eq!(
        due_reconcile(&o, i64::MAX / 2, &POLICY),
        None,
        "no session: nothing to ask"
    );
    let s = with_session(&o, 2_000);
    assert_eq!(due_reconcile(&s, 1_000 + RECONCILE - 1, &POLICY), None);
    assert_eq!(due_reconcile(&s, 1_000 + RECONCILE, &POLICY), Some(1));
    let reconcile = OrderCmd::Reconcile(Reconcile { attempt: 1 });
    let asked = order(run(Some(&s), 3, 1_000 + RECONCILE, reconcile.clone()));
    assert_eq!(asked.attempts[0].lookups, 1);
    let requests = gateway_requests(Some(&s), &asked);
    assert_eq!(requests.len(), 1);
    let look_up = requests[0].look_up.as_ref().expect("a look-up");
    assert_eq!(
        (look_up.gateway.as_str(), look_up.session_id.as_str()),
        ("razorpay", "order_A")
    );
    assert_eq!(gateway_requests(Some(&asked), &asked), vec![], "asked once");
    assert_eq!(
        run(Some(&asked), 4, 1_000 + RECONCILE + 1, reconcile.clone()),
        Decision::Unchanged,
        "a second tick's repeat"
    );
    assert_eq!(
        due_reconcile(&asked, 1_000 + 2 * RECONCILE, &POLICY),
        Some(1),
        "and again after as long"
    );

    // Expired: one more look, that long after the expiry.
    let expired = order(run(
        Some(&asked),
        5,
        1_000 + TTL,
        OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
    ));
    assert_eq!(
        due_reconcile(&expired, 1_000 + TTL + RECONCILE - 1, &POLICY),
        None
    );
    assert_eq!(
        due_reconcile(&expired, 1_000 + TTL + RECONCILE, &POLICY),
        Some(1)
    );
    let last = order(run(Some(&expired), 6, 1_000 + TTL + RECONCILE, reconcile));
    assert_eq!(due_reconcile(&last, i64::MAX / 2, &POLICY), None, "once");
    // A paid order is never looked up.
    let paid_order = order(run(Some(&s), 3, 3_000, paid(1, 59_000)));
    assert_eq!(due_reconcile(&paid_order, i64::MAX / 2, &POLICY), None);
}

#[test]
fn a_refund_is_asked_of_the_gateway_and_the_order_is_refunded_on_its_webhook() {
    let o = order(run(Some(&opened()), 2, 2_000, paid(1, 59_000)));
    let ask = || {
        OrderCmd::RequestRefund(RequestRefund {
            reason: "changed my mind".into(),
        })
    };
    // Only a paid order is refunded.
    let unpaid = order(run(Some(&opened()), 2, 2_000, ask()));
    assert_eq!(unpaid.refund, None);
    assert_eq!(unpaid.rejection.as_ref().map(|r| r.code), Some(3002));

    let asked = order(run(Some(&o), 3, 3_000, ask()));
    assert_eq!(
        asked.refund.as_ref().unwrap().status,
        RefundState::Requested
    );
    let jobs = gateway_requests(Some(&o), &asked);
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].refund.as_ref().expect("a refund");
    assert_eq!(
        (job.gateway.as_str(), job.payment_ref.as_str()),
        ("razorpay", "pay_1")
    );
    assert_eq!(gateway_requests(Some(&asked), &asked), vec![], "asked once");
    let twice = order(run(Some(&asked), 4, 4_000, ask()));
    assert_eq!(
        twice.rejection.as_ref().map(|r| r.code),
        Some(3002),
        "one at a time"
    );

    let started = order(run(
        Some(&asked),
        4,
        4_000,
        OrderCmd::RefundStarted(RefundStarted {
            refund_id: "rfnd_1".into(),
            gateway: "razorpay".into(),
            calls: vec![],
        }),
    ));
    assert_eq!(
        started.refund.as_ref().unwrap().status,
        RefundState::Pending
    );
    assert_eq!(
        started.status,
        OrderStatus::Paid,
        "not before the gateway says so"
    );
    let settled = |succeeded| {
        OrderCmd::RefundSettled(RefundSettled {
            refund_id: "rfnd_1".into(),
            gateway: "razorpay".into(),
            amount: money(59_000),
            succeeded,
        })
    };
    let refunded = order(run(Some(&started), 5, 5_000, settled(true)));
    assert_eq!(refunded.status, OrderStatus::Refunded);
    assert_eq!(
        refunded.refund.as_ref().unwrap().status,
        RefundState::Processed
    );
    let revocations = enrollment_requests(Some(&started), &refunded, 5_000);
    assert_eq!(revocations.len(), 1);
    assert!(matches!(
        revocations[0].command,
        schemas::records::enrollment::EnrollmentCmd::RevokeOrder(_)
    ));
    assert_eq!(
        run(Some(&refunded), 6, 6_000, settled(true)),
        Decision::Unchanged
    );
    assert!(enrollment_requests(Some(&refunded), &refunded, 6_000).is_empty());

    // The paperwork: an invoice when paid, a credit note when refunded,
    // each asked once, with the refund's id and reason.
    use crate::invoice::requests as invoice_requests;
    use schemas::records::invoices::DocumentKind;
    let invoice = invoice_requests(Some(&opened()), &o);
    assert_eq!(invoice.len(), 1);
    assert_eq!(invoice[0].kind, DocumentKind::TaxInvoice);
    assert_eq!(invoice[0].at, 2_000, "dated when paid");
    assert_eq!(invoice[0].payment_ref.as_deref(), Some("pay_1"));
    assert_eq!(invoice[0].total, money(59_000));
    assert!(invoice_requests(Some(&o), &asked).is_empty(), "asked once");
    assert!(invoice_requests(Some(&asked), &started).is_empty());
    let credit = invoice_requests(Some(&started), &refunded);
    assert_eq!(credit.len(), 1);
    assert_eq!(credit[0].kind, DocumentKind::CreditNote);
    assert_eq!(credit[0].refund_id.as_deref(), Some("rfnd_1"));
    assert_eq!(credit[0].reason.as_deref(), Some("changed my mind"));
    assert_eq!(credit[0].at, 5_000);
    assert_ne!(credit[0].request_id, invoice[0].request_id);
    assert!(invoice_requests(Some(&refunded), &refunded).is_empty());

    // A failed refund can be asked again, under a new idempotency key.
    let failed = order(run(Some(&started), 5, 5_000, settled(false)));
    assert_eq!(failed.status, OrderStatus::Paid);
    assert_eq!(failed.refund.as_ref().unwrap().status, RefundState::Failed);
    let again = order(run(Some(&failed), 6, 6_000, ask()));
    let retry = gateway_requests(Some(&failed), &again);
    assert_eq!(retry.len(), 1);
    assert_ne!(retry[0].request_id, jobs[0].request_id);
}

#[test]
fn each_outcome_is_one_event_and_other_changes_none() {
    use schemas::records::order::OrderEventKind;
    let o = opened();
    assert_eq!(order_event(None, &o), None, "placed: no outcome yet");
    let paid_order = order(run(Some(&o), 2, 2_000, paid(1, 59_000)));
    let e = order_event(Some(&o), &paid_order).expect("OrderPaid");
    assert_eq!(e.kind, OrderEventKind::Paid);
    assert_eq!(
        (e.attempt, e.gateway.as_deref(), e.payment_ref.as_deref()),
        (1, Some("razorpay"), Some("pay_1"))
    );
    assert_eq!(e.total, money(59_000));
    assert_eq!(
        order_event(Some(&o), &paid_order),
        Some(e),
        "derived: a replay emits the same"
    );
    assert_eq!(order_event(Some(&paid_order), &paid_order), None);
    let failed_order = order(run(Some(&o), 2, 2_000, failed(1)));
    assert_eq!(
        order_event(Some(&o), &failed_order).map(|e| e.kind),
        Some(OrderEventKind::Failed)
    );
}

#[test]
fn a_session_may_come_only_while_coupons_are_reserved_or_an_attempt_is_open() {
    use schemas::records::order::OrderStatus::*;
    for (status, may) in [
        (Pending, true),
        (AwaitingPayment, true),
        (Paid, false),
        (Failed, false),
        (Expired, false),
        (Refunded, false),
    ] {
        assert_eq!(session_may_come(status), may, "{status:?}");
        assert_eq!(
            schemas::records::order::OrderStatus::parse(status.as_str()),
            Some(status)
        );
    }
}

// The audit trail (`super::audit`)

fn audited(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
) -> Vec<schemas::records::audit::AuditEvent> {
    let stamp = OrderStamp {
        command_id: "c",
        offset: 9,
        at_ms: 9_000,
        correlation_id: "corr-9",
    };
    audit_events(
        before,
        after,
        after.history.last().map_or("system", |t| t.actor.as_str()),
        &stamp,
    )
}

#[test]
fn a_purchase_is_audited_once_per_change_with_its_money_and_actor() {
    let mut opened = opened();
    opened.buyer_user_id = Some("alice".into());
    let first = audited(None, &opened);
    let actions: Vec<&str> = first.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[0], "order.placed", "{actions:?}");
    // The buyer's own command: a person, never confusable with a gateway.
    assert_eq!(first[0].actor, "user:alice");
    assert_eq!(first[0].correlation_id, "corr-1");
    assert_eq!(first[0].amount, Some(opened.placed.total.clone()));

    let paid = order(run(Some(&opened), 2, 2_000, paid(1, 59_000)));
    let events = audited(Some(&opened), &paid);
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["order.paid", "payment.paid"]);
    assert!(events
        .iter()
        .all(|e| e.amount.is_some() && e.subject_version == paid.version));
    assert!(events[1].reason.contains("pay_1"), "{:?}", events[1]);
    // A replay derives the same ids; an unchanged order has nothing new.
    let again = audited(Some(&opened), &paid);
    assert_eq!(
        again.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
        events.iter().map(|e| &e.event_id).collect::<Vec<_>>()
    );
    assert!(audited(Some(&paid), &paid).is_empty());

    // A refused command is audited as a refusal, without money.
    let late = order(run(Some(&paid), 3, 3_000, failed(1)));
    let refused = audited(Some(&paid), &late);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].action, "order.refused");
    assert_eq!(refused[0].amount, None);
}

#[test]
fn each_step_of_a_refund_is_audited_with_who_asked() {
    let paid = order(run(Some(&opened()), 2, 2_000, paid(1, 59_000)));
    let mut asked = paid.clone();
    asked.version += 1;
    asked.refund = Some(OrderRefund {
        status: RefundState::Requested,
        reason: "asked within 14 days".into(),
        requested_by: "admin:ops".into(),
        requested_at: 9_000,
        gateway: None,
        refund_id: None,
        failure: None,
        calls: Vec::new(),
    });
    let stamp = OrderStamp {
        command_id: "c",
        offset: 9,
        at_ms: 9_000,
        correlation_id: "corr-9",
    };
    let events = audit_events(Some(&paid), &asked, "admin:ops", &stamp);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "refund.requested");
    assert_eq!(events[0].actor, "admin:ops");
    assert_eq!(events[0].reason, "asked within 14 days");
    assert_eq!(events[0].correlation_id, "corr-9");
    assert_eq!(events[0].amount, Some(paid.placed.total.clone()));
}
