//! The API document describes what the API takes, so a client generated
//! from it works: every request example validates against the schema it
//! documents (`scripts/python/openapi_examples.py`, with the OpenAPI 3.1
//! validator), and every example, sent as documented to a running
//! pipeline, is taken (2xx). Only what the example cannot know is put in:
//! the ids of a cart, an order or a coupon this test made, and the
//! webhooks' signatures.

mod common;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use common::shop::Shop;
use common::{sim_credentials, token, TestEnv, JWT_SECRET};

/// The catalog the examples name.
const EXAMPLE_INTERNSHIPS: &[&str] = &["rust-backend-2027", "data-science-2027"];

/// The order the operations run in: what later examples refer to first
/// (the coupon `WELCOME10` before a cart applies it; a paid order before
/// its seats and its refund).
const ORDER: &[&str] = &[
    "/api/v1/admin/coupons/{code}",
    "/api/v1/admin/fx-rates/{currency}",
    "/api/v1/admin/internships/{internship_id}",
    "/api/v1/cart",
    "/api/v1/cart/{token}/items",
    "/api/v1/cart/{token}/items/{internship_id}",
    "/api/v1/cart/{token}/buyer",
    "/api/v1/cart/{token}/analytics",
    "/api/v1/cart/{token}/coupon",
    "/api/v1/cart/discount/validate",
    "/api/v1/cart/estimate",
    "/api/v1/order",
    "/api/v1/orders/{order_token}/seats/assign",
    "/api/v1/admin/orders/{order_token}/refund",
    "/api/v1/admin/erasures",
    "/webhooks/razorpay",
    "/webhooks/stripe",
];

struct Call {
    method: Method,
    path: String,
    example: Value,
}

/// Every operation with a JSON request body, with its example, in [`ORDER`].
fn documented_calls(doc: &Value) -> Vec<Call> {
    let mut calls = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().unwrap() {
            let body = &operation["requestBody"]["content"]["application/json"];
            if body.is_null() {
                continue;
            }
            calls.push(Call {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                example: body["example"].clone(),
            });
        }
    }
    for call in &calls {
        assert!(
            ORDER.contains(&call.path.as_str()),
            "{} {} has a body this test does not send yet: add it to ORDER",
            call.method,
            call.path
        );
    }
    calls.sort_by_key(|c| ORDER.iter().position(|p| *p == c.path));
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_request_example_validates_and_is_taken_by_the_api() {
    let env = TestEnv::new().await;
    for id in EXAMPLE_INTERNSHIPS {
        env.publish_internship(id, 4_990_000).await;
    }
    env.spawn_coupon_processor();
    let addr = env.spawn_ingress().await;
    let sim = env.spawn_gateway_simulator(Some(addr)).await;
    env.spawn_gateway_worker(&sim, 2);
    env.spawn_cart_processor();
    env.spawn_order_processor();
    env.spawn_sinks();
    env.spawn_webhook_processor();
    env.spawn_enrollment_processor();
    let shop = Shop {
        env,
        http: reqwest::Client::new(),
        base: format!("http://{addr}/api/v1"),
        sim,
    };
    let doc: Value = shop
        .http
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // 1. Each example validates against its own schema.
    common::python_check(
        "openapi_examples.py",
        &doc,
        "request examples that do not match their schema",
    );

    // 2. Each example, sent as documented, is taken.
    let calls = documented_calls(&doc);
    assert!(
        calls.len() >= ORDER.len(),
        "{} bodies documented",
        calls.len()
    );
    let user = "openapi-user";
    let mut cart: Option<String> = None;
    let mut paid: Option<String> = None;
    for call in calls {
        let mut body = call.example.clone();
        let mut path = call
            .path
            .replace("{code}", "WELCOME10")
            .replace("{currency}", "USD")
            .replace("{internship_id}", "rust-backend-2027");
        if call.path == "/api/v1/admin/internships/{internship_id}" {
            path = path.replace("rust-backend-2027", "ml-research-2027");
        }
        if path.contains("{token}") || body.get("cart_token").is_some() {
            // A cart made from the create example; placing converts it, so
            // the placement gets a fresh one.
            if cart.is_none() || call.path == "/api/v1/order" {
                cart = Some(create_cart(&shop, user, &doc).await);
            }
            let token = cart.clone().unwrap();
            path = path.replace("{token}", &token);
            if body.get("cart_token").is_some() {
                body["cart_token"] = json!(token);
            }
        }
        if path.contains("{order_token}") {
            if paid.is_none() {
                paid = Some(paid_bulk_order(&shop, user).await);
            }
            path = path.replace("{order_token}", paid.as_deref().unwrap());
        }
        let url = format!("http://{addr}{path}");
        let mut request = shop.http.request(call.method.clone(), &url);
        let raw = serde_json::to_vec(&body).unwrap();
        request = match path.as_str() {
            "/webhooks/razorpay" => request
                .header(
                    "x-razorpay-signature",
                    hmac_hex(&sim_credentials().razorpay.webhook_secret, &raw),
                )
                .header("x-razorpay-event-id", "evt_openapi_example"),
            "/webhooks/stripe" => {
                let t = chrono::Utc::now().timestamp();
                let signed = [t.to_string().as_bytes(), b".", &raw].concat();
                let v1 = hmac_hex(&sim_credentials().stripe.webhook_secrets[0], &signed);
                request.header("stripe-signature", format!("t={t},v1={v1}"))
            }
            p if p.starts_with("/api/v1/admin") => request.header(
                "authorization",
                format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET)),
            ),
            _ => request.header("authorization", Shop::bearer(user)),
        };
        let answer = request
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert!(
            status.is_success(),
            "{} {} with its documented example {}: {status} {text}",
            call.method,
            call.path,
            call.example
        );
    }
}

/// A cart of `user` made from the create example, visible.
async fn create_cart(shop: &Shop, user: &str, doc: &Value) -> String {
    let example = &doc["paths"]["/api/v1/cart"]["post"]["requestBody"]["content"]
        ["application/json"]["example"];
    let created: Value = shop
        .http
        .post(format!("{}/cart", shop.base))
        .header("authorization", Shop::bearer(user))
        .json(example)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["cart_token"]
        .as_str()
        .expect("a cart token")
        .to_owned();
    let version = created["version"].as_i64().unwrap();
    let seen = shop
        .get(user, &format!("cart/{token}?version={version}"))
        .await;
    assert_eq!(seen["stale"], false, "{seen}");
    token
}

/// A paid order of `user` for three seats of the internship the seats
/// example assigns.
async fn paid_bulk_order(shop: &Shop, user: &str) -> String {
    let created: Value = shop
        .http
        .post(format!("{}/cart", shop.base))
        .header("authorization", Shop::bearer(user))
        .json(&json!({"items": [{"internship_id": "data-science-2027", "quantity": 3}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let placed: Value = shop
        .http
        .post(format!("{}/order", shop.base))
        .header("authorization", Shop::bearer(user))
        .json(&json!({"cart_token": created["cart_token"], "cart_version": created["version"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().expect("an order").to_owned();
    let o = shop
        .order_until(user, &order, |o| o["attempts"][0]["session_id"].is_string())
        .await;
    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    shop.order_until(user, &order, |o| o["status"] == "paid")
        .await;
    // The enrollment exists before seats are assigned from it.
    shop.enrollments_until(user, |e| {
        e.iter().any(|e| e["order_token"] == order.as_str())
    })
    .await;
    order
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
