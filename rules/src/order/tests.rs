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
    }
}

const TTL: i64 = 1_800_000;

const POLICY: OrderPolicy = OrderPolicy {
    attempt_ttl_ms: TTL,
};

fn run(order: Option<&OrderSnapshot>, offset: i64, at_ms: i64, cmd: OrderCmd) -> Decision {
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
        &OrderPolicy {
            attempt_ttl_ms: TTL,
        },
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
        attempt,
        gateway: "razorpay".into(),
        payment_ref: "pay_1".into(),
        amount: money(minor),
    })
}

fn failed(attempt: i32) -> OrderCmd {
    OrderCmd::PaymentFailed(PaymentFailed {
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
fn commands_for_an_unknown_order_are_dropped() {
    assert!(matches!(
        run(None, 1, 1, failed(1)),
        Decision::Dropped(r) if r.code == 3002
    ));
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
