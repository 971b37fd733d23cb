//! The providers' own SDKs accept the simulator's signatures: webhooks
//! delivered by the simulator (Razorpay payment.failed, payment.captured,
//! order.paid, refund.processed; Stripe checkout.session.completed,
//! refund.created, charge.refunded, each signed with two secrets) and the
//! Razorpay checkout signature go to scripts/python/gateway_webhooks_check.py,
//! which checks them with `razorpay.Utility.verify_webhook_signature`,
//! `verify_payment_signature` and `stripe.Webhook.construct_event`, and
//! signs a payload with the Stripe SDK for our verifier to check in turn.

mod common;

use std::path::PathBuf;

use common::{now, order, order_id, spawn_with};
use gateways::{stripe, Connector, Gateway, IdempotencyKey, OrderId, RefundRequest};
use serde_json::json;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_verify_the_simulators_signatures() {
    let root = workspace_root();
    let python = std::env::var_os("CHECKOUT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".local/venv/bin/python"));
    // Failing, not skipping: a missing interpreter must not pass silently.
    assert!(
        python.exists(),
        "no Python interpreter at {} (set CHECKOUT_PYTHON, or run scripts/test.sh, which creates \
         .local/venv with scripts/python/requirements.txt installed)",
        python.display()
    );
    let script = root.join("scripts/python/gateway_webhooks_check.py");

    let sim = spawn_with(|c| {
        c.razorpay.webhook_secret = "rzp_webhook_secret_for_sdk_check".into();
        c.stripe.webhook_secrets = vec!["whsec_current_sdk".into(), "whsec_previous_sdk".into()];
    })
    .await;

    // Razorpay: a failed attempt, a payment, a refund.
    let rzp = sim.razorpay();
    let id = order_id("sdk-rzp");
    let session = rzp.create_session(&order(&id)).await.unwrap();
    assert_eq!(sim.fail(&session.id).await.0, 200);
    let (status, paid) = sim.pay(&session.id, "upi").await;
    assert_eq!(status, 200, "{paid}");
    rzp.refund(&RefundRequest {
        order_id: OrderId::parse(&id).unwrap(),
        payment_id: paid["razorpay_payment_id"].as_str().unwrap().to_owned(),
        amount: None,
        idempotency_key: IdempotencyKey::parse(&format!("refund:{id}")).unwrap(),
    })
    .await
    .unwrap();

    // Stripe: a payment and a refund.
    let st = sim.stripe();
    let id = order_id("sdk-stripe");
    let session_st = st.create_session(&order(&id)).await.unwrap();
    let (status, paid_st) = sim.pay(&session_st.id, "card").await;
    assert_eq!(status, 200, "{paid_st}");
    st.refund(&RefundRequest {
        order_id: OrderId::parse(&id).unwrap(),
        payment_id: paid_st["payment_intent"].as_str().unwrap().to_owned(),
        amount: None,
        idempotency_key: IdempotencyKey::parse(&format!("refund:{id}")).unwrap(),
    })
    .await
    .unwrap();

    let rzp_seen = sim.receiver.wait_accepted(Gateway::Razorpay, 4).await;
    let st_seen = sim.receiver.wait_accepted(Gateway::Stripe, 3).await;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("a UTF-8 body");
    let input = json!({
        "razorpay": {
            "key_id": sim.config.razorpay.key_id,
            "key_secret": sim.config.razorpay.key_secret,
            "webhook_secret": sim.config.razorpay.webhook_secret,
            "deliveries": rzp_seen.iter().map(|d| json!({
                "body": text(&d.body),
                "signature": d.razorpay_signature,
                "event_id": d.razorpay_event_id,
            })).collect::<Vec<_>>(),
            "checkout": [{
                "razorpay_order_id": paid["razorpay_order_id"],
                "razorpay_payment_id": paid["razorpay_payment_id"],
                "razorpay_signature": paid["razorpay_signature"],
            }],
        },
        "stripe": {
            "webhook_secrets": sim.config.stripe.webhook_secrets,
            "deliveries": st_seen.iter().map(|d| json!({
                "body": text(&d.body),
                "signature": d.stripe_signature,
            })).collect::<Vec<_>>(),
        },
        "sign": {"payload": text(&st_seen[0].body), "secret": "whsec_signed_by_the_sdk"},
    });
    // Batches of different actions may arrive in any order.
    let mut kinds: Vec<String> = rzp_seen.iter().chain(&st_seen).map(|d| d.kind()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "charge.refunded",
            "checkout.session.completed",
            "order.paid",
            "payment.captured",
            "payment.failed",
            "refund.created",
            "refund.processed",
        ]
    );

    let dir = std::env::temp_dir().join(format!(
        "gateway-sdk-check-{}-{}",
        std::process::id(),
        now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (input_path, output_path) = (dir.join("input.json"), dir.join("output.json"));
    std::fs::write(&input_path, serde_json::to_vec_pretty(&input).unwrap()).unwrap();

    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&input_path)
        .arg(&output_path)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    assert!(stdout.contains("all gateway SDK checks passed"), "{stdout}");
    assert_eq!(
        stdout.matches("ok razorpay webhook").count() + stdout.matches("ok stripe webhook").count(),
        7,
        "{stdout}"
    );

    // The other way round: a header the Stripe SDK made passes our verifier.
    let signed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&output_path).unwrap()).unwrap();
    let header = signed["stripe_signature"].as_str().unwrap();
    let payload = input["sign"]["payload"].as_str().unwrap();
    assert_eq!(
        stripe::webhook::verify(
            payload.as_bytes(),
            Some(header),
            &["whsec_signed_by_the_sdk"],
            now(),
            stripe::webhook::DEFAULT_TOLERANCE_SECS
        ),
        Ok(())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
