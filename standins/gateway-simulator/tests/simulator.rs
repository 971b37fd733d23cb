//! Our clients against the gateway simulator, end to end over HTTP: a
//! session created through `razorpay::Client` / `stripe::Client`, paid on
//! the simulator, and the webhooks it sends checked with our verifiers and
//! read by our transformers; idempotency (Stripe's key, Razorpay's receipt
//! look-up, also after a call that timed out having been applied); what is
//! retried and what is not; webhook retries, duplicates and reordering.

mod common;

use std::time::Duration;

use common::{inr, now, order, order_id, spawn, spawn_with, Delivery};
use gateways::retry::{self, Policy};
use gateways::{razorpay, stripe};
use gateways::{
    Checkout, Connector, Gateway, GatewayError, IdempotencyKey, OrderId, PaymentEvent,
    PaymentStatus, RefundRequest, RefundStatus, WebhookError,
};

/// Retries without waiting long: the test is about which errors retry.
fn quick() -> Policy {
    Policy {
        max_attempts: 4,
        base: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn razorpay_event(sim_secret: &str, d: &Delivery) -> gateways::WebhookEvent {
    razorpay::webhook::verify(&d.body, d.razorpay_signature.as_deref(), &[sim_secret])
        .unwrap_or_else(|e| panic!("{} not verified: {e}", d.kind()));
    razorpay::transformers::event(
        d.razorpay_event_id.as_deref().expect("an event id"),
        &d.body,
    )
    .unwrap()
}

fn stripe_event(secrets: &[&str], d: &Delivery) -> gateways::WebhookEvent {
    stripe::webhook::verify(
        &d.body,
        d.stripe_signature.as_deref(),
        secrets,
        now(),
        stripe::webhook::DEFAULT_TOLERANCE_SECS,
    )
    .unwrap_or_else(|e| panic!("{} not verified: {e}", d.kind()));
    stripe::transformers::event(&d.body).unwrap()
}

#[tokio::test]
async fn a_razorpay_order_paid_on_the_simulator_sends_webhooks_our_verifier_accepts() {
    let sim = spawn().await;
    let client = sim.razorpay();
    let id = order_id("rzp-pay");
    let session = client.create_session(&order(&id)).await.unwrap();
    assert_eq!(session.gateway, Gateway::Razorpay);
    assert!(session.id.starts_with("order_"), "{}", session.id);
    match &session.checkout {
        Checkout::Razorpay {
            key_id,
            order_id,
            amount_minor,
            currency,
            prefill,
        } => {
            assert_eq!(key_id, &sim.config.razorpay.key_id);
            assert_eq!(order_id, &session.id);
            assert_eq!(*amount_minor, 109_700);
            assert_eq!(currency.code(), "INR");
            assert_eq!(prefill.email.as_deref(), Some("asha@example.com"));
        }
        other => panic!("not Razorpay's checkout: {other:?}"),
    }
    assert_eq!(client.look_up(&session.id).await, Ok(PaymentStatus::Open));

    let (status, paid) = sim.pay(&session.id, "upi").await;
    assert_eq!(status, 200, "{paid}");
    // The browser's success fields carry a signature of order|payment.
    let payment_id = paid["razorpay_payment_id"].as_str().unwrap();
    assert_eq!(
        razorpay::webhook::verify_checkout(
            &session.id,
            payment_id,
            paid["razorpay_signature"].as_str().unwrap(),
            &sim.config.razorpay.key_secret,
        ),
        Ok(())
    );

    let secret = sim.config.razorpay.webhook_secret.clone();
    let deliveries = sim.receiver.wait_accepted(Gateway::Razorpay, 2).await;
    let events: Vec<_> = deliveries
        .iter()
        .map(|d| razorpay_event(&secret, d))
        .collect();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["payment.captured", "order.paid"]
    );
    assert_ne!(events[0].id, events[1].id, "each event has its own id");
    let ours = OrderId::parse(&id).unwrap();
    match &events[0].event {
        PaymentEvent::PaymentCaptured { at, amount } => {
            assert_eq!(at.order_id.as_ref(), Some(&ours));
            assert_eq!(at.session_id.as_deref(), Some(session.id.as_str()));
            assert_eq!(at.payment_id.as_deref(), Some(payment_id));
            assert_eq!(*amount, inr(109_700));
        }
        other => panic!("{other:?}"),
    }
    match &events[1].event {
        PaymentEvent::OrderPaid { at, amount } => {
            assert_eq!(at.order_id.as_ref(), Some(&ours));
            assert_eq!(*amount, inr(109_700));
        }
        other => panic!("{other:?}"),
    }
    // The same deliveries with another secret, or a changed body, are not.
    let d = &deliveries[0];
    assert_eq!(
        razorpay::webhook::verify(
            &d.body,
            d.razorpay_signature.as_deref(),
            &["not_the_secret"]
        ),
        Err(WebhookError::Forged)
    );
    let mut tampered = d.body.clone();
    tampered.push(b' ');
    assert_eq!(
        razorpay::webhook::verify(&tampered, d.razorpay_signature.as_deref(), &[&secret]),
        Err(WebhookError::Forged)
    );

    match client.look_up(&session.id).await.unwrap() {
        PaymentStatus::Paid {
            payment_id: p,
            amount,
        } => {
            assert_eq!(p, payment_id);
            assert_eq!(amount, inr(109_700));
        }
        other => panic!("{other:?}"),
    }
    let (status, again) = sim.pay(&session.id, "card").await;
    assert_eq!(status, 409, "a paid order cannot be paid again: {again}");
}

#[tokio::test]
async fn a_stripe_session_paid_on_the_simulator_sends_a_webhook_our_verifier_accepts() {
    let sim = spawn().await;
    let client = sim.stripe();
    let id = order_id("stripe-pay");
    let request = order(&id);
    let session = client.create_session(&request).await.unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.expires_at, request.expires_at);
    let Checkout::Redirect { url } = &session.checkout else {
        panic!("not a redirect: {:?}", session.checkout)
    };
    assert_eq!(url, &format!("{}/checkout/{}", sim.url, session.id));

    // The hosted page offers the buttons.
    let page = sim.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("₹1,097.00") || html.contains("1097.00 INR"),
        "{html}"
    );
    assert!(
        html.contains("/pay\"") && html.contains("/fail\""),
        "{html}"
    );

    let (status, paid) = sim.pay(&session.id, "card").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        paid["redirect_url"],
        format!("https://shop.test/paid?session={}", session.id)
    );

    let secrets: Vec<&str> = sim
        .config
        .stripe
        .webhook_secrets
        .iter()
        .map(String::as_str)
        .collect();
    let deliveries = sim.receiver.wait_accepted(Gateway::Stripe, 1).await;
    let event = stripe_event(&secrets, &deliveries[0]);
    assert_eq!(event.kind, "checkout.session.completed");
    assert!(event.id.starts_with("evt_"));
    match &event.event {
        PaymentEvent::OrderPaid { at, amount } => {
            assert_eq!(at.order_id, Some(OrderId::parse(&id).unwrap()));
            assert_eq!(at.session_id.as_deref(), Some(session.id.as_str()));
            assert!(at.payment_id.as_deref().unwrap().starts_with("pi_"));
            assert_eq!(*amount, inr(109_700));
        }
        other => panic!("{other:?}"),
    }
    // Stale: the same signature checked 301 s later is refused.
    let d = &deliveries[0];
    assert!(matches!(
        stripe::webhook::verify(
            &d.body,
            d.stripe_signature.as_deref(),
            &secrets,
            now() + 301,
            300
        ),
        Err(WebhookError::Stale { .. })
    ));
    assert!(matches!(
        client.look_up(&session.id).await,
        Ok(PaymentStatus::Paid { .. })
    ));
}

#[tokio::test]
async fn a_stripe_idempotency_key_replays_the_same_session_and_refuses_other_parameters() {
    let sim = spawn().await;
    let client = sim.stripe();
    let request = order(&order_id("stripe-idem"));
    let first = client.create_session(&request).await.unwrap();
    let again = client.create_session(&request).await.unwrap();
    assert_eq!(first.id, again.id);

    // The replay is marked as one.
    let form = stripe::transformers::create_session_form(&request).unwrap();
    let raw = sim
        .http
        .post(format!("{}/v1/checkout/sessions", sim.url))
        .bearer_auth(&sim.config.stripe.secret_key)
        .header("Idempotency-Key", request.idempotency_key.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["idempotent-replayed"], "true");

    let mut changed = request.clone();
    changed.cancel_url = "https://shop.test/elsewhere".into();
    match client.create_session(&changed).await {
        Err(e @ GatewayError::Rejected { status: 400, .. }) => {
            assert!(!e.retryable());
            let GatewayError::Rejected { code, .. } = &e else {
                unreachable!()
            };
            assert_eq!(code, "idempotency_error");
        }
        other => panic!("expected an idempotency error, got {other:?}"),
    }

    let mut other_key = request.clone();
    other_key.idempotency_key = IdempotencyKey::parse("session:other:1").unwrap();
    assert_ne!(
        client.create_session(&other_key).await.unwrap().id,
        first.id
    );
}

#[tokio::test]
async fn the_razorpay_receipt_look_up_finds_the_existing_order_instead_of_creating_another() {
    let sim = spawn().await;
    let client = sim.razorpay();
    let id = order_id("rzp-receipt");
    let first = client.create_session(&order(&id)).await.unwrap();
    let again = client.create_session(&order(&id)).await.unwrap();
    assert_eq!(first.id, again.id);
    let (status, list) = sim
        .get_json(&format!("/v1/orders?receipt={id}"), Gateway::Razorpay)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], 1, "{list}");

    // The same receipt with other terms is a conflict, not a second order.
    let mut changed = order(&id);
    changed.amount = inr(49_900);
    changed.lines.truncate(1);
    assert!(matches!(
        client.create_session(&changed).await,
        Err(GatewayError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_create_that_timed_out_after_being_applied_is_not_applied_twice() {
    let sim = spawn_with(|c| c.knobs.hang = Duration::from_secs(30)).await;
    let client = razorpay::Client::new(razorpay::Config {
        timeout: Duration::from_millis(1500),
        ..sim.razorpay_config()
    })
    .unwrap();
    let id = order_id("rzp-timeout");
    // The first look-up fails; the first create is applied and then hangs.
    sim.force(serde_json::json!({"status": 503, "method": "GET"}))
        .await;
    sim.force(serde_json::json!({"hang": true, "method": "POST"}))
        .await;
    let request = order(&id);
    let outcome = retry::run(&quick(), Gateway::Razorpay, "create_session", || {
        client.create_session(&request)
    })
    .await;
    let session = outcome.result.expect("the retry finds the order");
    let errors: Vec<_> = outcome.attempts.iter().map(|a| a.error.clone()).collect();
    assert_eq!(
        errors,
        vec![
            Some(GatewayError::Unavailable { status: 503 }),
            Some(GatewayError::Timeout),
            None
        ]
    );
    let (_, list) = sim
        .get_json(&format!("/v1/orders?receipt={id}"), Gateway::Razorpay)
        .await;
    assert_eq!(list["count"], 1, "one order for one receipt: {list}");
    assert_eq!(list["items"][0]["id"], session.id);
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_a_forced_503_is() {
    let sim = spawn().await;

    // Razorpay with the wrong secret: 401 in Razorpay's shape, one attempt.
    let wrong = razorpay::Client::new(razorpay::Config {
        key_secret: "wrong".into(),
        ..sim.razorpay_config()
    })
    .unwrap();
    let id = order_id("rzp-401");
    let request = order(&id);
    let outcome = retry::run(&quick(), Gateway::Razorpay, "create_session", || {
        wrong.create_session(&request)
    })
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        GatewayError::Rejected {
            status: 401,
            code: "BAD_REQUEST_ERROR".into(),
            message: "Authentication failed".into()
        }
    );
    assert_eq!(outcome.attempts.len(), 1);

    // Stripe with expires_at too soon: 400, one attempt.
    let stripe = sim.stripe();
    let mut soon = order(&order_id("stripe-400"));
    soon.expires_at = now() + 60;
    let outcome = retry::run(&quick(), Gateway::Stripe, "create_session", || {
        stripe.create_session(&soon)
    })
    .await;
    match outcome.result {
        Err(e @ GatewayError::Rejected { status: 400, .. }) => assert!(!e.retryable()),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.attempts.len(), 1);

    // Two forced 503s, then the same create succeeds on the third attempt.
    sim.force(serde_json::json!({"status": 503, "count": 2}))
        .await;
    let request = order(&order_id("stripe-503"));
    let outcome = retry::run(&quick(), Gateway::Stripe, "create_session", || {
        stripe.create_session(&request)
    })
    .await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(
        outcome
            .attempts
            .iter()
            .map(|a| a.error.clone())
            .collect::<Vec<_>>(),
        vec![
            Some(GatewayError::Unavailable { status: 503 }),
            Some(GatewayError::Unavailable { status: 503 }),
            None
        ]
    );

    // A 429 is retryable and carries its Retry-After.
    sim.force(serde_json::json!({"status": 429})).await;
    let limited = stripe.look_up("cs_test_whatever").await.unwrap_err();
    assert_eq!(
        limited,
        GatewayError::RateLimited {
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert!(limited.retryable());

    // An unknown session is Stripe's 404.
    match stripe.look_up("cs_test_missing").await {
        Err(GatewayError::Rejected {
            status: 404, code, ..
        }) => assert_eq!(code, "resource_missing"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn webhooks_are_retried_until_accepted_and_the_knobs_duplicate_and_reorder_them() {
    let sim = spawn_with(|c| {
        c.knobs.duplicate_rate = 1.0;
        c.knobs.reorder = true;
    })
    .await;
    sim.receiver.refuse_next(1);
    let session = sim
        .razorpay()
        .create_session(&order(&order_id("rzp-knobs")))
        .await
        .unwrap();
    let (status, _) = sim.pay(&session.id, "card").await;
    assert_eq!(status, 200);
    let seen = sim.receiver.wait_accepted(Gateway::Razorpay, 4).await;
    let summary: Vec<(String, u16, String)> = seen
        .iter()
        .map(|d| (d.kind(), d.status, d.razorpay_event_id.clone().unwrap()))
        .collect();
    let kinds: Vec<(&str, u16)> = summary.iter().map(|(k, s, _)| (k.as_str(), *s)).collect();
    assert_eq!(
        kinds,
        vec![
            ("order.paid", 500),
            ("order.paid", 200),
            ("order.paid", 200),
            ("payment.captured", 200),
            ("payment.captured", 200),
        ],
        "reversed, each twice, the refused one retried"
    );
    // A retry and a duplicate carry the same event id: the dedupe key.
    assert_eq!(summary[0].2, summary[1].2);
    assert_eq!(summary[1].2, summary[2].2);
    assert_eq!(summary[3].2, summary[4].2);
    assert_ne!(summary[0].2, summary[3].2);
}

#[tokio::test]
async fn razorpay_failures_and_refunds_send_their_events_and_refunds_apply_once() {
    let sim = spawn().await;
    let client = sim.razorpay();
    let secret = sim.config.razorpay.webhook_secret.clone();
    let id = order_id("rzp-refund");
    let session = client.create_session(&order(&id)).await.unwrap();

    let (status, failed) = sim.fail(&session.id).await;
    assert_eq!(status, 200, "{failed}");
    let d = sim.receiver.wait_accepted(Gateway::Razorpay, 1).await;
    let e = razorpay_event(&secret, &d[0]);
    assert!(
        matches!(
            &e.event,
            PaymentEvent::PaymentFailed {
                reason: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        client.look_up(&session.id).await,
        Ok(PaymentStatus::Failed { .. })
    ));

    // A failed attempt leaves the order payable.
    let (status, paid) = sim.pay(&session.id, "card").await;
    assert_eq!(status, 200, "{paid}");
    let payment_id = paid["razorpay_payment_id"].as_str().unwrap().to_owned();
    sim.receiver.wait_accepted(Gateway::Razorpay, 3).await;

    let refund = RefundRequest {
        order_id: OrderId::parse(&id).unwrap(),
        payment_id: payment_id.clone(),
        amount: Some(inr(29_900)),
        idempotency_key: IdempotencyKey::parse(&format!("refund:{id}:1")).unwrap(),
    };
    let done = client.refund(&refund).await.unwrap();
    assert!(done.id.starts_with("rfnd_"));
    assert_eq!(
        (done.amount, done.status, done.payment_id.as_str()),
        (inr(29_900), RefundStatus::Processed, payment_id.as_str())
    );
    // Asking again with the same key finds the refund by its receipt.
    assert_eq!(client.refund(&refund).await.unwrap().id, done.id);
    let (_, refunds) = sim
        .get_json(
            &format!("/v1/payments/{payment_id}/refunds"),
            Gateway::Razorpay,
        )
        .await;
    assert_eq!(refunds["count"], 1, "{refunds}");

    let d = sim.receiver.wait_accepted(Gateway::Razorpay, 4).await;
    let e = razorpay_event(&secret, &d[3]);
    assert_eq!(e.kind, "refund.processed");
    assert_eq!(
        e.event,
        PaymentEvent::RefundProcessed {
            order_id: Some(OrderId::parse(&id).unwrap()),
            refund_id: done.id.clone(),
            payment_id: Some(payment_id),
            amount: inr(29_900)
        }
    );
}

#[tokio::test]
async fn stripe_failures_expiry_and_refunds_send_their_events() {
    let sim = spawn().await;
    let client = sim.stripe();
    let secrets: Vec<&str> = sim
        .config
        .stripe
        .webhook_secrets
        .iter()
        .map(String::as_str)
        .collect();

    // A declined card: payment_intent.payment_failed, carrying our order id
    // from the payment intent's metadata.
    let id = order_id("stripe-fail");
    let session = client.create_session(&order(&id)).await.unwrap();
    let (status, failed) = sim.fail(&session.id).await;
    assert_eq!(status, 200, "{failed}");
    let d = sim.receiver.wait_accepted(Gateway::Stripe, 1).await;
    match stripe_event(&secrets, &d[0]).event {
        PaymentEvent::PaymentFailed { at, reason } => {
            assert_eq!(at.order_id, Some(OrderId::parse(&id).unwrap()));
            assert_eq!(at.payment_id.as_deref(), failed["payment_intent"].as_str());
            assert_eq!(reason.as_deref(), Some("Your card was declined."));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.look_up(&session.id).await, Ok(PaymentStatus::Open));

    // Expired: checkout.session.expired; no paying afterwards.
    let (status, _) = sim.expire(&session.id).await;
    assert_eq!(status, 200);
    let d = sim.receiver.wait_accepted(Gateway::Stripe, 2).await;
    assert!(matches!(
        stripe_event(&secrets, &d[1]).event,
        PaymentEvent::SessionExpired { .. }
    ));
    assert_eq!(
        client.look_up(&session.id).await,
        Ok(PaymentStatus::Expired)
    );
    assert_eq!(sim.pay(&session.id, "card").await.0, 409);

    // Paid, then refunded in part, once per idempotency key.
    let id = order_id("stripe-refund");
    let session = client.create_session(&order(&id)).await.unwrap();
    let (_, paid) = sim.pay(&session.id, "card").await;
    let intent = paid["payment_intent"].as_str().unwrap().to_owned();
    sim.receiver.wait_accepted(Gateway::Stripe, 3).await;
    let refund = RefundRequest {
        order_id: OrderId::parse(&id).unwrap(),
        payment_id: intent.clone(),
        amount: Some(inr(49_900)),
        idempotency_key: IdempotencyKey::parse(&format!("refund:{id}:1")).unwrap(),
    };
    let done = client.refund(&refund).await.unwrap();
    assert!(done.id.starts_with("re_"));
    assert_eq!(
        (done.amount, done.status),
        (inr(49_900), RefundStatus::Processed)
    );
    assert_eq!(client.refund(&refund).await.unwrap().id, done.id);

    let d = sim.receiver.wait_accepted(Gateway::Stripe, 5).await;
    let events: Vec<_> = d[3..].iter().map(|d| stripe_event(&secrets, d)).collect();
    assert_eq!(events[0].kind, "refund.created");
    assert_eq!(
        events[0].event,
        PaymentEvent::RefundProcessed {
            order_id: Some(OrderId::parse(&id).unwrap()),
            refund_id: done.id,
            payment_id: Some(intent),
            amount: inr(49_900)
        }
    );
    assert_eq!(events[1].kind, "charge.refunded");
    assert_eq!(events[1].event, PaymentEvent::Ignored);

    // More than what remains is Stripe's 400.
    let too_much = RefundRequest {
        amount: Some(inr(100_000)),
        idempotency_key: IdempotencyKey::parse(&format!("refund:{id}:2")).unwrap(),
        ..refund
    };
    assert!(matches!(
        client.refund(&too_much).await,
        Err(GatewayError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn the_simulator_answers_in_the_providers_error_shapes_and_serves_ops() {
    let sim = spawn().await;
    let r = sim
        .http
        .get(format!("{}/v1/orders", sim.url))
        .basic_auth("rzp_test_nobody", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BAD_REQUEST_ERROR");
    assert_eq!(body["error"]["description"], "Authentication failed");

    let r = sim
        .http
        .get(format!("{}/v1/checkout/sessions/cs_test_x", sim.url))
        .bearer_auth("sk_test_wrongwrongwrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "Invalid API Key provided: sk_test_****rong"
    );

    // An unknown Razorpay id is a 400, as Razorpay answers it.
    let (status, body) = sim
        .get_json("/v1/orders/order_missing", Gateway::Razorpay)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["description"],
        "The id provided does not exist"
    );

    for path in ["/healthz", "/readyz"] {
        let r = sim
            .http
            .get(format!("{}{path}", sim.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let metrics = sim
        .http
        .get(format!("{}/metrics", sim.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_simulator_requests_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_hosted_page_pays_through_its_form() {
    let sim = spawn().await;
    let session = sim
        .razorpay()
        .create_session(&order(&order_id("rzp-page")))
        .await
        .unwrap();
    let page = sim
        .http
        .get(format!("{}/checkout/{}", sim.url, session.id))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Pay (upi)") && page.contains("Pay (card)"),
        "{page}"
    );
    assert!(page.contains("Leave it pending"), "{page}");
    let done = sim
        .http
        .post(format!("{}/checkout/{}/pay", sim.url, session.id))
        .form(&[("method", "upi")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("razorpay_signature"), "{html}");
    let deliveries = sim.receiver.wait_accepted(Gateway::Razorpay, 2).await;
    let body = deliveries[0].json();
    assert_eq!(body["payload"]["payment"]["entity"]["method"], "upi");
    let page = sim
        .http
        .get(format!("{}/checkout/{}", sim.url, session.id))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Pay (card)"),
        "a paid order offers no payment: {page}"
    );
}
