//! End to end through HTTP: ingress → Kafka → cart processor → Kafka →
//! carts sink → Postgres → ingress, on the real broker, registry and
//! Postgres.

mod common;

use std::time::Duration;

use rdkafka::consumer::Consumer;
use serde_json::{json, Value};

use common::TestEnv;
use schemas::topics::CART_COMMANDS;

async fn command_count(env: &TestEnv) -> i64 {
    let reader = platform::kafka::reader(&env.config.kafka_brokers).unwrap();
    let topic = env.config.topics.name(&CART_COMMANDS.def);
    (0..CART_COMMANDS.def.partitions)
        .map(|p| {
            reader
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .map(|(_, h)| h)
                .unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_created_filled_priced_and_read_back_at_the_written_version() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");

    let created = http
        .post(format!("{base}/cart"))
        .header("x-correlation-id", "e2e-create-1")
        .json(&json!({"items": [{"internship_id": "rust-backend", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["x-correlation-id"], "e2e-create-1");
    let body: Value = created.json().await.unwrap();
    let token = body["cart_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);

    let added = http
        .post(format!("{base}/cart/{token}/items"))
        .json(&json!({"internship_id": "design", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 202);
    let version = added.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();

    let read = http
        .get(format!("{base}/cart/{token}?version={version}"))
        .header("prefer", "wait=60")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.headers()["preference-applied"],
        "wait=30",
        "waits are capped at 30 s"
    );
    let cart: Value = read.json().await.unwrap();
    assert_eq!(cart["stale"], false, "{cart}");
    assert_eq!(cart["version"], version);
    assert_eq!(cart["currency"], "INR");
    let items = cart["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["internship_id"], "rust-backend");
    assert_eq!(items[0]["quantity"], 2);
    assert_eq!(items[0]["unit_price_minor"], 4_990_000);
    assert_eq!(items[0]["line_total_minor"], 9_980_000);
    assert_eq!(items[1]["internship_id"], "design");
    assert_eq!(cart["subtotal_minor"], 9_980_000 + 2_490_000);
    // No buyer location yet: estimated in the seller's state (CGST + SGST 18 %).
    assert_eq!(cart["tax_total_minor"], (9_980_000 + 2_490_000) * 18 / 100);
    assert_eq!(
        cart["total_minor"],
        9_980_000 + 2_490_000 + (9_980_000 + 2_490_000) * 18 / 100
    );

    // A command the processor refuses is still answered at its version,
    // with the refusal on the cart.
    let refused = http
        .post(format!("{base}/cart/{token}/items"))
        .json(&json!({"internship_id": "no-such-internship", "quantity": 1}))
        .send()
        .await
        .unwrap();
    let version = refused.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    let cart: Value = http
        .get(format!("{base}/cart/{token}?version={version}"))
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cart["last_rejection"]["error"]["code"], 1003, "{cart}");
    assert_eq!(cart["last_rejection"]["status"], 422, "{cart}");
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_ends_first_answers_with_what_is_there_flagged_stale() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("http://{addr}/api/v1/cart"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["cart_token"].as_str().unwrap();
    let version = created["version"].as_i64().unwrap();
    let url = format!("http://{addr}/api/v1/cart/{token}");
    let cart: Value = http
        .get(format!("{url}?version={version}"))
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cart["stale"], false);
    // A version no write has produced yet: the wait runs out.
    let future = version + 1_000_000;
    let cart: Value = http
        .get(format!("{url}?version={future}"))
        .header("prefer", "wait=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cart["stale"], true, "{cart}");
    assert_eq!(cart["version"], version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_error_body_and_write_nothing() {
    let env = TestEnv::new().await;
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let token = "0123456789abcdef0123456789abcdef";
    let before = command_count(&env).await;

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, i64)> = vec![
        (
            "malformed json",
            http.post(format!("{base}/cart"))
                .header("content-type", "application/json")
                .body("{"),
            400,
            400,
        ),
        (
            "unknown field",
            http.post(format!("{base}/cart"))
                .json(&json!({"items": [], "price": 1})),
            422,
            422,
        ),
        (
            "client price",
            http.post(format!("{base}/cart/{token}/items"))
                .json(&json!({"internship_id": "design", "unit_price": 1})),
            422,
            422,
        ),
        (
            "zero quantity",
            http.post(format!("{base}/cart/{token}/items"))
                .json(&json!({"internship_id": "design", "quantity": 0})),
            422,
            422,
        ),
        (
            "huge quantity",
            http.post(format!("{base}/cart/{token}/items"))
                .json(&json!({"internship_id": "design", "quantity": 1_000_000})),
            422,
            422,
        ),
        (
            "bad internship id",
            http.post(format!("{base}/cart"))
                .json(&json!({"items": [{"internship_id": "DROP TABLE"}]})),
            422,
            422,
        ),
        (
            "unknown currency",
            http.post(format!("{base}/cart"))
                .json(&json!({"currency": "XXX"})),
            422,
            422,
        ),
        (
            "not json",
            http.post(format!("{base}/cart"))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            415,
        ),
        (
            "too large",
            http.post(format!("{base}/cart"))
                .header("content-type", "application/json")
                .body(vec![b' '; 100 * 1024]),
            413,
            413,
        ),
        (
            "bad token",
            http.post(format!("{base}/cart/not-a-token/items"))
                .json(&json!({"internship_id": "design"})),
            404,
            1001,
        ),
        (
            "unknown cart",
            http.get(format!("{base}/cart/{token}")),
            404,
            1001,
        ),
        (
            "unknown route",
            http.get(format!("{base}/nowhere")),
            404,
            404,
        ),
        (
            "wrong method",
            http.delete(format!("{base}/cart")),
            405,
            405,
        ),
    ];
    for (name, request, status, code) in cases {
        let response = request
            .header(
                "x-correlation-id",
                format!("case-{}", name.replace(' ', "-")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: body is not JSON: {e}"));
        assert_eq!(body["status"], status, "{name}: {body}");
        assert_eq!(body["success"], false, "{name}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{name}"
        );
        assert!(body["error"]["validation_messages"].is_array(), "{name}");
        assert_eq!(
            body["error"]["correlation_id"],
            format!("case-{}", name.replace(' ', "-")),
            "{name}"
        );
        assert_eq!(body["error"]["retryable"], false, "{name}");
        assert!(
            !body["error"]["suggested_action"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{name}"
        );
    }
    assert_eq!(
        command_count(&env).await,
        before,
        "a refused request must write nothing to Kafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exposes_health_readiness_and_metrics() {
    let env = TestEnv::new().await;
    let (addr, ops) = env.spawn_ingress_with_ops(|_| {}).await;
    let http = reqwest::Client::new();
    for at in [addr, ops] {
        assert_eq!(
            http.get(format!("http://{at}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // The public port serves neither readiness (which tells what fails
    // inside) nor metrics: they are on the ops listener only.
    for path in ["/readyz", "/metrics"] {
        let res = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path} on the API port");
    }
    let ready = http
        .get(format!("http://{ops}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["kafka"], "ok");
    assert_eq!(ready["checks"]["postgres"], "ok");
    assert_eq!(ready["checks"]["schema_registry"], "ok");
    http.post(format!("http://{addr}/api/v1/cart"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let metrics = http
        .get(format!("http://{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

/// Sends `req`, expects 202/201, and reads the cart back at the version the
/// write returned.
async fn write_then_read(
    http: &reqwest::Client,
    req: reqwest::RequestBuilder,
    read_url: &str,
    bearer: &str,
) -> Value {
    let res = req.header("authorization", bearer).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let version = res.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    http.get(format!("{read_url}?version={version}"))
        .header("authorization", bearer)
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_priced_with_gst_for_its_buyer_and_converted_to_their_currency() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let user = format!(
        "Bearer {}",
        common::token("buyer-1", "user", 600, common::JWT_SECRET)
    );
    let admin = format!(
        "Bearer {}",
        common::token("ops", "admin", 600, common::JWT_SECRET)
    );

    // A rate for USD, published before the cart needs it.
    let fx = http
        .put(format!("{base}/admin/fx-rates/USD"))
        .header("authorization", &admin)
        .json(&json!({"rate": "0.012"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fx.status(), 202);

    let created: Value = http
        .post(format!("{base}/cart"))
        .header("authorization", &user)
        .json(&json!({"items": [{"internship_id": "rust-backend", "quantity": 1}, {"internship_id": "design", "quantity": 2}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["cart_token"].as_str().unwrap();
    let url = format!("{base}/cart/{token}");

    // Another Indian state: IGST 18 % on 49,900.00 + 2 × 24,900.00.
    let cart = write_then_read(
        &http,
        http.put(format!("{url}/buyer"))
            .json(&json!({"country": "IN", "state": "MH"})),
        &url,
        &user,
    )
    .await;
    assert_eq!(cart["stale"], false, "{cart}");
    assert_eq!(cart["subtotal_minor"], 9_970_000);
    assert_eq!(cart["taxes"][0]["name"], "IGST", "{cart}");
    assert_eq!(cart["taxes"][0]["rate"], "0.18");
    assert_eq!(cart["taxes"][0]["amount_minor"], 1_794_600);
    assert_eq!(cart["tax_total_minor"], 1_794_600);
    assert_eq!(cart["total_minor"], 9_970_000 + 1_794_600);
    assert_eq!(cart["buyer"]["state"], "MH");

    // The seller's state: CGST + SGST.
    let cart = write_then_read(
        &http,
        http.put(format!("{url}/buyer"))
            .json(&json!({"country": "IN", "state": "KA"})),
        &url,
        &user,
    )
    .await;
    let names: Vec<&str> = cart["taxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CGST", "SGST"]);

    // Abroad, in dollars: no GST (export of services), unit prices converted and rounded.
    let cart = write_then_read(
        &http,
        http.put(format!("{url}/buyer"))
            .json(&json!({"country": "US", "currency": "USD"})),
        &url,
        &user,
    )
    .await;
    assert_eq!(cart["currency"], "USD", "{cart}");
    assert_eq!(cart["fx"]["rate"], "0.012");
    assert!(cart["fx"]["as_of"].is_string());
    assert_eq!(cart["items"][0]["unit_price_minor"], 59_880); // ₹49,900.00 × 0.012 = $598.80
    assert_eq!(cart["items"][1]["unit_price_minor"], 29_880);
    assert_eq!(cart["items"][1]["line_subtotal_minor"], 59_760);
    assert_eq!(cart["taxes"].as_array().unwrap().len(), 0);
    assert_eq!(cart["total_minor"], 59_880 + 59_760);

    // Quantities change and lines go.
    let cart = write_then_read(
        &http,
        http.put(format!("{url}/items/design"))
            .json(&json!({"quantity": 5})),
        &url,
        &user,
    )
    .await;
    assert_eq!(cart["items"][1]["quantity"], 5);
    let cart = write_then_read(
        &http,
        http.delete(format!("{url}/items/rust-backend")),
        &url,
        &user,
    )
    .await;
    let ids: Vec<&str> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["internship_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["design"]);
    assert_eq!(cart["total_minor"], 5 * 29_880);

    // A currency without a published rate is refused on the cart.
    let cart = write_then_read(
        &http,
        http.put(format!("{url}/buyer"))
            .json(&json!({"country": "JP", "currency": "JPY"})),
        &url,
        &user,
    )
    .await;
    assert_eq!(cart["last_rejection"]["error"]["code"], 1006, "{cart}");
    assert_eq!(cart["currency"], "USD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_estimate_prices_items_without_a_cart_and_the_catalog_is_listed() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    // The catalog reaches Postgres through its sink.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed: Value = http
            .get(format!("{base}/internships"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed
            .as_array()
            .is_some_and(|a| a.len() == common::CATALOG.len())
            || std::time::Instant::now() > deadline
        {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        listed.as_array().unwrap().len(),
        common::CATALOG.len(),
        "{listed}"
    );

    let before = command_count(&env).await;
    let estimate: Value = http
        .post(format!("{base}/cart/estimate"))
        .json(&json!({"items": [{"internship_id": "rust-backend", "quantity": 3}], "country": "IN", "state": "MH"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(estimate["subtotal_minor"], 3 * 4_990_000, "{estimate}");
    assert_eq!(estimate["taxes"][0]["name"], "IGST");
    assert_eq!(estimate["tax_total_minor"], 3 * 4_990_000 * 18 / 100);
    assert_eq!(estimate["total_minor"], 3 * 4_990_000 * 118 / 100);
    assert_eq!(
        command_count(&env).await,
        before,
        "an estimate writes nothing"
    );

    let unknown = http
        .post(format!("{base}/cart/estimate"))
        .json(&json!({"items": [{"internship_id": "nope", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        1003
    );
    let no_rate = http
        .post(format!("{base}/cart/estimate"))
        .json(&json!({"items": [{"internship_id": "design"}], "currency": "JPY"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_rate.json::<Value>().await.unwrap()["error"]["code"],
        1006
    );
}

/// Finding 8 of the exactly-once review: commands carry the table versions
/// they are priced at. An admin's price change is in the very next command
/// the same ingress accepts (no race with the processor's table), and every
/// snapshot names exactly the versions its command was stamped with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_change_prices_the_next_command_at_the_versions_it_was_stamped_with() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let user = format!(
        "Bearer {}",
        common::token("buyer-stamp", "user", 600, common::JWT_SECRET)
    );
    let admin = format!(
        "Bearer {}",
        common::token("ops", "admin", 600, common::JWT_SECRET)
    );
    let created: Value = http
        .post(format!("{base}/cart"))
        .header("authorization", &user)
        .json(&json!({"items": [{"internship_id": "rust-backend", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["cart_token"].as_str().unwrap();
    let url = format!("{base}/cart/{token}");
    let before = write_then_read(
        &http,
        http.post(format!("{url}/items"))
            .json(&json!({"internship_id": "design", "quantity": 1})),
        &url,
        &user,
    )
    .await;
    assert_eq!(
        before["items"][0]["unit_price_minor"], 4_990_000,
        "{before}"
    );

    let changed = http
        .put(format!("{base}/admin/internships/rust-backend"))
        .header("authorization", &admin)
        .json(&json!({"title": "Rust backend", "category": "engineering", "price_minor": 5_500_000, "currency": "INR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 202, "{}", changed.text().await.unwrap());
    // The very next command: no retry loop, the stamp carries the change.
    let after = write_then_read(
        &http,
        http.put(format!("{url}/items/design"))
            .json(&json!({"quantity": 2})),
        &url,
        &user,
    )
    .await;
    assert_eq!(after["items"][0]["unit_price_minor"], 5_500_000, "{after}");

    let commands = env.commands_in_log(true).await;
    let mine: Vec<_> = commands
        .iter()
        .filter(|(_, _, c)| c.cart_token == token)
        .collect();
    assert_eq!(mine.len(), 3, "create, add, set quantity");
    let catalog_size = common::CATALOG.len() as i64;
    let stamps: Vec<i64> = mine
        .iter()
        .map(|(_, _, c)| {
            c.tables_at
                .as_ref()
                .expect("stamped by the ingress")
                .catalog
        })
        .collect();
    assert_eq!(
        stamps[..2],
        [catalog_size, catalog_size],
        "before the change"
    );
    assert_eq!(stamps[2], catalog_size + 1, "the change's version");
    let snapshots = env
        .read_topic(&schemas::topics::CART_SNAPSHOTS.def, true)
        .await;
    let mut named = 0;
    for r in snapshots {
        let snap = env
            .codec
            .decode(&schemas::topics::CART_SNAPSHOTS, r.value.as_deref())
            .await
            .unwrap();
        if snap.cart_token != token {
            continue;
        }
        let (_, _, cmd) = mine
            .iter()
            .find(|(_, offset, _)| *offset == snap.version)
            .expect("a snapshot per command");
        assert_eq!(snap.priced_with, cmd.tables_at, "priced at its stamp");
        named += 1;
    }
    assert_eq!(named, 3);
}

/// The cart view carries the rules' checkout blockers (it showed `[]`
/// whatever the cart): an empty cart, then a line whose internship was
/// deactivated, each with its code; a cart that can be checked out has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_view_lists_what_blocks_checkout() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let user = format!(
        "Bearer {}",
        common::token("buyer-blocked", "user", 600, common::JWT_SECRET)
    );
    let admin = format!(
        "Bearer {}",
        common::token("ops", "admin", 600, common::JWT_SECRET)
    );
    let codes = |cart: &Value| -> Vec<i64> {
        cart["checkout_blockers"]
            .as_array()
            .unwrap_or_else(|| panic!("no blockers list: {cart}"))
            .iter()
            .map(|b| b["code"].as_i64().unwrap())
            .collect()
    };
    let created: Value = http
        .post(format!("{base}/cart"))
        .header("authorization", &user)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["cart_token"].as_str().unwrap();
    let version = created["version"].as_i64().unwrap();
    let url = format!("{base}/cart/{token}");
    let cart: Value = http
        .get(format!("{url}?version={version}"))
        .header("authorization", &user)
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes(&cart), [1008], "empty: {cart}");

    let cart = write_then_read(
        &http,
        http.post(format!("{url}/items"))
            .json(&json!({"internship_id": "design", "quantity": 1})),
        &url,
        &user,
    )
    .await;
    assert_eq!(codes(&cart), Vec::<i64>::new(), "ready: {cart}");

    let withdrawn = http
        .put(format!("{base}/admin/internships/design"))
        .header("authorization", &admin)
        .json(&json!({"title": "Design", "category": "design", "price_minor": 2_490_000, "currency": "INR", "active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 202);
    let cart = write_then_read(
        &http,
        http.post(format!("{url}/items"))
            .json(&json!({"internship_id": "rust-backend", "quantity": 1})),
        &url,
        &user,
    )
    .await;
    assert_eq!(codes(&cart), [1003], "the withdrawn line: {cart}");
    assert!(
        cart["checkout_blockers"][0]["message"]
            .as_str()
            .unwrap()
            .contains("design"),
        "{cart}"
    );
}
