//! Orders end to end through HTTP: a cart is placed (cart processor),
//! the order opens (order processor), and the orders sink materializes it
//! with its frozen cart, payment attempts and history; on the real broker,
//! registry and Postgres. Payment outcomes, which the gateways' webhooks
//! will send, are written here straight onto `order.commands`.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};

use common::shop::Shop;
use common::{token, TestEnv, JWT_SECRET};
use processors::webhook::retry::RetryPolicy;
use schemas::records::order::{OrderCmd, OrderCommand, PaymentFailed, PaymentSucceeded};
use schemas::records::WireMoney;
use schemas::topics::{CART_COMMANDS, ORDER_COMMANDS};
use schemas::Codec;

/// The webhook retry stage's backoff in tests: 100 ms doubling to 400 ms,
/// thirty times (a few seconds in all).
const FAST_RETRIES: RetryPolicy = RetryPolicy {
    base_ms: 100,
    max_delay_ms: 400,
    limit: 30,
};

/// How a test runs the gateway worker.
enum Worker {
    /// In process, two attempts per gateway, the default routing and breaker.
    Default,
    /// In process, with these gateways.
    Custom(Box<dyn FnOnce(&str) -> processors::payments::worker::Gateways>),
    /// The test runs it (as a process).
    None,
}

impl Shop {
    async fn open(clock: Option<Arc<dyn processors::runner::Clock>>) -> Shop {
        let env = TestEnv::new().await;
        env.spawn_coupon_processor();
        Shop::around(env, clock, Worker::Default).await
    }

    /// As [`Shop::open`], with the gateway worker's gateways built by
    /// `gateways` (given the simulator's URL).
    async fn with_gateways(
        gateways: impl FnOnce(&str) -> processors::payments::worker::Gateways + 'static,
    ) -> Shop {
        let env = TestEnv::new().await;
        env.spawn_coupon_processor();
        Shop::around(env, None, Worker::Custom(Box::new(gateways))).await
    }

    /// Every stage in process but the coupon processor, which the test
    /// runs, and the gateway worker as `worker` says.
    async fn around(
        env: TestEnv,
        clock: Option<Arc<dyn processors::runner::Clock>>,
        worker: Worker,
    ) -> Shop {
        let settings = clock.map(|clock| processors::order::service::Settings {
            policy: rules::order::OrderPolicy::default(),
            tick: Duration::from_millis(100),
            clock,
        });
        Shop::around_with(env, settings, worker, true, FAST_RETRIES).await
    }

    /// As [`Shop::around`], with the order processor's settings, and the
    /// simulator's webhooks sent to the ingress only if `webhooks`.
    async fn around_with(
        env: TestEnv,
        orders: Option<processors::order::service::Settings>,
        worker: Worker,
        webhooks: bool,
        retries: RetryPolicy,
    ) -> Shop {
        // The ingress first: the simulator sends its webhooks there.
        let addr = env.spawn_ingress().await;
        let sim = env.spawn_gateway_simulator(webhooks.then_some(addr)).await;
        match worker {
            Worker::Default => env.spawn_gateway_worker(&sim, 2),
            Worker::Custom(gateways) => env.spawn_gateway_worker_with(gateways(&sim)),
            Worker::None => {}
        }
        env.spawn_cart_processor();
        match orders {
            Some(settings) => env.spawn_order_processor_with(settings),
            None => env.spawn_order_processor(),
        }
        env.spawn_sinks();
        env.spawn_webhook_processor();
        env.spawn_webhook_retry(retries);
        env.spawn_enrollment_processor();
        env.spawn_invoice_processor();
        Shop {
            env,
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
            sim,
        }
    }

    /// A cart of `user` with `items`, visible in the read model.
    async fn cart(&self, user: &str, items: Value) -> String {
        let created: Value = self
            .http
            .post(format!("{}/cart", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = created["cart_token"].as_str().unwrap().to_owned();
        let version = created["version"].as_i64().unwrap();
        let cart = self
            .get(user, &format!("cart/{token}?version={version}"))
            .await;
        assert_eq!(cart["stale"], false, "{cart}");
        token
    }

    async fn place(&self, user: &str, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/order", self.base))
            .header("authorization", Self::bearer(user))
            .header("x-correlation-id", "place-order-1")
            .json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.unwrap()
    }

    /// An admin publishes coupon `code` (10 % off) with these limits.
    async fn coupon(&self, code: &str, usage_limit: Option<i32>, per_user_limit: Option<i32>) {
        let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
        let res = self
            .http
            .put(format!("{}/admin/coupons/{code}", self.base))
            .header("authorization", admin)
            .json(
                &json!({"name": code, "kind": "percentage", "percent": "0.10",
                "usage_limit": usage_limit, "per_user_limit": per_user_limit}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }

    /// `user`'s cart `cart` gets coupon `code`, visible in the read model.
    async fn apply_coupon(&self, user: &str, cart: &str, code: &str) {
        let res = self
            .http
            .post(format!("{}/cart/{cart}/coupon", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let version = res.json::<Value>().await.unwrap()["version"]
            .as_i64()
            .unwrap();
        let c = self
            .get(user, &format!("cart/{cart}?version={version}"))
            .await;
        assert_eq!(c["coupons"], json!([code]), "{c}");
    }

    /// Places every (user, cart) at once; the order tokens.
    async fn place_all(&self, carts: &[(String, String)]) -> Vec<String> {
        let placed = futures::future::join_all(carts.iter().map(|(user, cart)| async move {
            let res = self.place(user, json!({ "cart_token": cart }), None).await;
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()["order_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }))
        .await;
        placed
    }

    /// Waits until every order in `orders` has left PENDING; how many are
    /// awaiting payment, and the refusal codes of the failed ones.
    async fn decided(&self, orders: &[String]) -> (usize, Vec<i32>) {
        let started = Instant::now();
        loop {
            let rows: Vec<(String, Option<i32>)> = sqlx::query_as(
                "SELECT status, rejection_code FROM orders WHERE order_token = ANY($1) AND status <> 'pending'",
            )
            .bind(orders)
            .fetch_all(&self.env.pool)
            .await
            .unwrap();
            if rows.len() == orders.len() {
                let open = rows.iter().filter(|(s, _)| s == "awaiting_payment").count();
                let mut codes: Vec<i32> = rows
                    .iter()
                    .filter(|(s, _)| s == "failed")
                    .map(|(_, c)| c.unwrap_or(0))
                    .collect();
                codes.sort();
                codes.dedup();
                return (open, codes);
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{} of {} orders decided",
                rows.len(),
                orders.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The coupon's reservations as the coupon-usage sink has them.
    async fn reserved(&self, code: &str) -> i64 {
        let started = Instant::now();
        loop {
            let n: Option<i32> =
                sqlx::query_scalar("SELECT reserved FROM coupon_usage WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&self.env.pool)
                    .await
                    .unwrap();
            if let Some(n) = n {
                return i64::from(n);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no usage of {code}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the coupon-usage sink shows `want` reservations of `code`.
    async fn reserved_until(&self, code: &str, want: i64) {
        let started = Instant::now();
        loop {
            let n = self.reserved(code).await;
            if n == want {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{code}: {n} reservations, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn count(&self, def: &schemas::TopicDef) -> usize {
        self.env.read_topic(def, true).await.len()
    }

    /// Writes what a gateway's webhook will write: a payment outcome.
    async fn payment(&self, order: &str, command: OrderCmd) {
        let cmd = OrderCommand {
            command_id: uuid::Uuid::new_v4().to_string(),
            order_token: order.to_owned(),
            issued_at: chrono::Utc::now().timestamp_millis(),
            actor: Some("razorpay".into()),
            command,
        };
        let value = self.env.codec.encode(&ORDER_COMMANDS, &cmd).await.unwrap();
        let topic = self.env.config.topics.name(&ORDER_COMMANDS.def);
        self.env
            .producer
            .send(
                FutureRecord::to(&topic)
                    .key(&Codec::encode_key(order))
                    .payload(&value)
                    .headers(platform::kafka::trace_headers("webhook-1", &cmd.command_id)),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

fn statuses(order: &Value) -> Vec<(Value, Value, Value)> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from_status"].clone(),
                t["to_status"].clone(),
                t["refused_code"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_placed_as_one_order_with_its_breakdown_frozen() {
    let shop = Shop::open(None).await;
    let cart = shop
        .cart(
            "alice",
            json!([{"internship_id": "rust-backend", "quantity": 2}]),
        )
        .await;
    let cart_view = shop.get("alice", &format!("cart/{cart}")).await;

    let placed = shop
        .place(
            "alice",
            json!({"cart_token": cart, "success_url": "https://shop.example/paid"}),
            None,
        )
        .await;
    assert_eq!(placed.status(), 202);
    let location = placed.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = placed.json().await.unwrap();
    let order = accepted["order_token"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/order/{order}"));

    let o = shop.get("alice", &format!("order/{order}")).await;
    assert_eq!(o["stale"], false, "{o}");
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert!(o.get("cart_token").is_none(), "a bearer secret: {o}");
    assert!(o["placed"].get("share_token").is_none(), "{o}");
    assert_eq!(
        o["buyer_user_id"],
        common::pseudonym(&shop.env, "alice").await.as_str(),
        "known by a pseudonym"
    );
    assert_eq!(o["total_minor"], cart_view["total_minor"], "{o}");
    assert_eq!(o["tax_total_minor"], cart_view["tax_total_minor"]);
    assert_eq!(o["placed"]["lines"][0]["internship_id"], "rust-backend");
    assert_eq!(o["placed"]["lines"][0]["quantity"], 2);
    assert_eq!(o["success_url"], "https://shop.example/paid");
    let attempt = &o["attempts"][0];
    assert_eq!(attempt["status"], "open");
    assert_eq!(attempt["payment_token"].as_str().unwrap().len(), 32);
    let opened =
        chrono::DateTime::parse_from_rfc3339(attempt["opened_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(attempt["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - opened).num_minutes(), 30);
    assert_eq!(
        statuses(&o),
        [
            (Value::Null, json!("pending"), Value::Null),
            (json!("pending"), json!("awaiting_payment"), Value::Null)
        ]
    );
    // The correlation id of the POST, through both processors; the actor
    // by her pseudonym.
    let alice = common::pseudonym(&shop.env, "alice").await;
    assert!(
        o["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["correlation_id"] == "place-order-1" && t["actor"] == alice.as_str()),
        "{o}"
    );

    // The cart is converted and names its order.
    let c = shop
        .get(
            "alice",
            &format!("cart/{cart}?version={}", accepted["cart_version"]),
        )
        .await;
    assert_eq!(c["status"], "converted");
    assert_eq!(c["order_token"], order.as_str());

    // Placing it again (no key) answers the same order and writes nothing.
    let commands = shop.count(&CART_COMMANDS.def).await;
    let again = shop.place("alice", json!({"cart_token": cart}), None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap()["order_token"],
        order.as_str()
    );
    assert_eq!(shop.count(&CART_COMMANDS.def).await, commands);

    // Listed for alice; unknown to bob; not payable again while open.
    let mine = shop.get("alice", "me/orders").await;
    assert_eq!(mine["orders"][0]["order_token"], order.as_str(), "{mine}");
    assert_eq!(shop.get("bob", "me/orders").await["orders"], json!([]));
    let theirs = shop
        .http
        .get(format!("{}/order/{order}", shop.base))
        .header("authorization", Shop::bearer("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);
    assert_eq!(theirs.json::<Value>().await.unwrap()["error"]["code"], 3003);
    let pay = shop
        .http
        .post(format!("{}/order/{order}/pay", shop.base))
        .header("authorization", Shop::bearer("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 409);
    assert_eq!(pay.json::<Value>().await.unwrap()["error"]["code"], 3002);
}

/// A checkout page asks once for what it needs: `?until=session` answers
/// when the order's payment session is open, however many versions the
/// order went through to get there (placed, coupons, attempt, session),
/// where `?version=` would have answered at the first of them. A value it
/// does not know is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_page_waits_for_the_payment_session_in_one_request() {
    let shop = Shop::open(None).await;
    let cart = shop
        .cart(
            "carol",
            json!([{"internship_id": "rust-backend", "quantity": 1}]),
        )
        .await;
    let placed = shop.place("carol", json!({"cart_token": cart}), None).await;
    assert_eq!(placed.status(), 202);
    let accepted: Value = placed.json().await.unwrap();
    let order = accepted["order_token"].as_str().unwrap().to_owned();
    let read = |query: &str| {
        shop.http
            .get(format!("{}/order/{order}?{query}", shop.base))
            .header("authorization", Shop::bearer("carol"))
            .header("prefer", "wait=20")
            .send()
    };
    let o: Value = read("until=session").await.unwrap().json().await.unwrap();
    assert_eq!(o["stale"], false, "{o}");
    assert!(o["attempts"][0]["session_id"].is_string(), "{o}");
    // The order went through several versions to get its session.
    assert!(o["history"].as_array().unwrap().len() >= 2, "{o}");
    let bad = read("until=payment").await.unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"]["code"].is_number(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_cart_or_a_foreign_return_url_is_refused_and_nothing_is_written() {
    let shop = Shop::open(None).await;
    let empty = shop.cart("carol", json!([])).await;
    let commands = shop.count(&CART_COMMANDS.def).await;
    let refused = shop
        .place("carol", json!({"cart_token": empty}), None)
        .await;
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 1008, "{body}");
    assert!(
        body["error"]["validation_messages"][0]
            .as_str()
            .unwrap()
            .starts_with("1008: "),
        "{body}"
    );

    let full = shop
        .cart("carol", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    for url in [
        "https://evil.example/paid",
        "http://shop.example/paid",
        "https://shop.example.evil.example/",
    ] {
        let res = shop
            .place(
                "carol",
                json!({"cart_token": full, "success_url": url}),
                None,
            )
            .await;
        assert_eq!(res.status(), 422, "{url}");
    }
    let res = shop
        .place(
            "carol",
            json!({"cart_token": full, "email": "carol at example.com"}),
            None,
        )
        .await;
    assert_eq!(res.status(), 422, "a malformed email");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["validation_messages"][0]
            .as_str()
            .unwrap()
            .starts_with("email: "),
        "{body}"
    );
    let other = shop.place("dave", json!({"cart_token": full}), None).await;
    assert_eq!(other.status(), 404, "someone else's cart");
    assert_eq!(
        shop.count(&CART_COMMANDS.def).await,
        commands + 1,
        "only the second cart's create was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_with_an_idempotency_key_replays_the_first_answer() {
    let shop = Shop::open(None).await;
    let cart = shop
        .cart("erin", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let body = json!({"cart_token": cart});
    let first = shop.place("erin", body.clone(), Some("order-key-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let replay = shop.place("erin", body.clone(), Some("order-key-1")).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    let other = shop
        .place(
            "erin",
            json!({"cart_token": cart, "success_url": "https://shop.example/x"}),
            Some("order-key-1"),
        )
        .await;
    assert_eq!(other.status(), 422, "same key, another body");
    let order = first["order_token"].as_str().unwrap();
    let o = shop
        .order_until("erin", order, |o| o["status"] == "awaiting_payment")
        .await;
    assert_eq!(o["attempts"].as_array().unwrap().len(), 1);
}

/// The clock the order processor's timer reads, moved by the test.
struct TestClock(AtomicI64);

impl processors::runner::Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_expires_with_its_token_and_a_new_attempt_reopens_it() {
    let clock = Arc::new(TestClock(AtomicI64::new(
        chrono::Utc::now().timestamp_millis(),
    )));
    let shop = Shop::open(Some(clock.clone())).await;
    shop.coupon("EXPIRY5", Some(5), None).await;
    let cart = shop
        .cart("frank", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    shop.apply_coupon("frank", &cart, "EXPIRY5").await;
    let placed: Value = shop
        .place("frank", json!({"cart_token": cart}), None)
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().unwrap().to_owned();
    let o = shop
        .order_until("frank", &order, |o| o["status"] == "awaiting_payment")
        .await;
    let first_token = o["attempts"][0]["payment_token"].clone();
    assert_eq!(
        o["coupons"],
        json!([{"code": "EXPIRY5", "status": "reserved"}])
    );
    shop.reserved_until("EXPIRY5", 1).await;

    // 29 minutes on: still open. 31: expired, by the timer alone.
    clock.0.fetch_add(29 * 60_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o = shop.get("frank", &format!("order/{order}")).await;
    assert_eq!(o["status"], "awaiting_payment", "not yet: {o}");
    clock.0.fetch_add(2 * 60_000, Ordering::SeqCst);
    let o = shop
        .order_until("frank", &order, |o| o["status"] == "expired")
        .await;
    assert_eq!(o["attempts"][0]["status"], "expired");
    assert_eq!(
        o["history"].as_array().unwrap().last().unwrap()["actor"],
        "system"
    );
    // The expiry gave the coupon back.
    assert_eq!(
        o["coupons"],
        json!([{"code": "EXPIRY5", "status": "released"}])
    );
    shop.reserved_until("EXPIRY5", 0).await;

    // Back to the present (the new attempt's token is issued from the
    // command's time), then pay again: a new attempt with a new token.
    clock
        .0
        .store(chrono::Utc::now().timestamp_millis(), Ordering::SeqCst);
    let pay = shop
        .http
        .post(format!("{}/order/{order}/pay", shop.base))
        .header("authorization", Shop::bearer("frank"))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 202);
    let version = pay.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    // Its coupon is reserved again first (PENDING), then the attempt opens.
    let o = shop
        .order_until("frank", &order, |o| {
            o["version"].as_i64() >= Some(version) && o["status"] == "awaiting_payment"
        })
        .await;
    let attempts = o["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_ne!(attempts[1]["payment_token"], first_token);
    // Paying again reserved the coupon again.
    shop.reserved_until("EXPIRY5", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_pays_the_order_once_and_nothing_moves_it_back() {
    let shop = Shop::open(None).await;
    let cart = shop
        .cart("gina", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let placed: Value = shop
        .place("gina", json!({"cart_token": cart}), None)
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().unwrap().to_owned();
    let o = shop
        .order_until("gina", &order, |o| o["status"] == "awaiting_payment")
        .await;
    let total = o["total_minor"].as_i64().unwrap();
    let paid = |minor: i64| {
        OrderCmd::PaymentSucceeded(PaymentSucceeded {
            method: None,
            attempt: 1,
            gateway: "razorpay".into(),
            payment_ref: "pay_test_1".into(),
            amount: WireMoney {
                amount_minor: minor,
                currency: "INR".into(),
            },
        })
    };
    // Another amount: refused and recorded, not paid.
    shop.payment(&order, paid(total - 1)).await;
    let o = shop
        .order_until("gina", &order, |o| !o["last_rejection"].is_null())
        .await;
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(o["last_rejection"]["error"]["code"], 3001, "{o}");
    // The right amount, twice, then a late failure.
    shop.payment(&order, paid(total)).await;
    shop.payment(&order, paid(total)).await;
    shop.payment(
        &order,
        OrderCmd::PaymentFailed(PaymentFailed {
            method: None,
            attempt: 1,
            gateway: "razorpay".into(),
            failure: "late".into(),
        }),
    )
    .await;
    let o = shop
        .order_until("gina", &order, |o| {
            o["history"].as_array().unwrap().len() >= 6
        })
        .await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["attempts"][0]["payment_ref"], "pay_test_1");
    let to_paid = statuses(&o)
        .iter()
        .filter(|(_, to, refused)| *to == json!("paid") && refused.is_null())
        .count();
    assert_eq!(to_paid, 1, "paid once: {o}");
    let refused: Vec<Value> = statuses(&o).into_iter().map(|(_, _, r)| r).collect();
    assert_eq!(
        refused,
        [
            Value::Null,
            Value::Null,
            json!(3001),
            Value::Null,
            json!(3002),
            json!(3002)
        ]
    );
    assert!(o["history"][3]["correlation_id"] == "webhook-1", "{o}");
}

/// `n` users, each with a cart of one internship and coupon `code`.
async fn shoppers(shop: &Shop, prefix: &str, n: usize, code: &str) -> Vec<(String, String)> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let user = format!("{prefix}-{i}");
            let cart = shop
                .cart(&user, json!([{"internship_id": "design", "quantity": 1}]))
                .await;
            shop.apply_coupon(&user, &cart, code).await;
            (user, cart)
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_racing_for_ten_coupon_uses_get_exactly_ten() {
    let shop = Shop::open(None).await;
    shop.coupon("TENONLY", Some(10), None).await;
    let carts = shoppers(&shop, "racer", 200, "TENONLY").await;
    let orders = shop.place_all(&carts).await;
    let (open, refusals) = shop.decided(&orders).await;
    assert_eq!(open, 10, "exactly the limit");
    assert_eq!(
        refusals,
        [2008],
        "every other order failed with the coupon's code"
    );
    shop.reserved_until("TENONLY", 10).await;
    // From then on a cart sees the real usage: a newcomer's cart refuses
    // the coupon when it is applied.
    let cart = shop
        .cart("late", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let res = shop
        .http
        .post(format!("{}/cart/{cart}/coupon", shop.base))
        .header("authorization", Shop::bearer("late"))
        .json(&json!({"code": "TENONLY"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let version = res.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    let c = shop
        .get("late", &format!("cart/{cart}?version={version}"))
        .await;
    assert_eq!(c["coupons"], json!([]), "{c}");
    assert_eq!(c["last_rejection"]["error"]["code"], 2008, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_buyer_placing_twenty_orders_at_once_gets_the_per_user_limit_once() {
    let shop = Shop::open(None).await;
    shop.coupon("ONCEEACH", None, Some(1)).await;
    // One user with twenty carts (written straight to the processor: the
    // ingress gives a user one active cart at a time).
    let mut carts = Vec::new();
    // Known to the pipeline by the pseudonym the ingress gives her token.
    let solo = common::pseudonym(&shop.env, "solo").await;
    for _ in 0..20 {
        let token = schemas::values::CartToken::random();
        let (_, version) = shop
            .env
            .send_to(
                &token,
                schemas::records::cart::Command::CreateCart(schemas::records::cart::CreateCart {
                    currency: "INR".into(),
                    owner_user_id: Some(solo.clone()),
                    items: vec![schemas::records::cart::ItemRequest {
                        internship_id: "design".into(),
                        quantity: 1,
                    }],
                    device_id: None,
                }),
            )
            .await;
        let c = shop
            .get(
                "solo",
                &format!("cart/{}?version={version}", token.as_str()),
            )
            .await;
        assert_eq!(c["stale"], false);
        shop.apply_coupon("solo", token.as_str(), "ONCEEACH").await;
        carts.push(("solo".to_owned(), token.as_str().to_owned()));
    }
    let orders = shop.place_all(&carts).await;
    let (open, refusals) = shop.decided(&orders).await;
    assert_eq!(open, 1, "once per user");
    assert_eq!(refusals, [2009]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_coupon_processor_mid_race_changes_no_count() {
    const HOLD: Duration = Duration::from_millis(400);
    let env = TestEnv::new().await;
    let mut victim = env.child_with(
        "processors",
        &["coupon"],
        &[("PROCESSOR_INSTANCE", "c1"), ("FAULT_HOLD_BATCH_MS", "400")],
    );
    let shop = Shop::around(env, None, Worker::Default).await;
    shop.coupon("RACEKILL", Some(10), None).await;
    let carts = shoppers(&shop, "killrace", 100, "RACEKILL").await;
    let race = shop.place_all(&carts);
    let kill = async {
        let seen = victim
            .kill9_in_flight("coupon-processor", HOLD, Duration::from_secs(60))
            .await;
        assert!(seen.uncommitted > 0.0);
        // The same instance comes back: its transactional id fences what
        // the killed run left open.
        shop.env
            .child_with("processors", &["coupon"], &[("PROCESSOR_INSTANCE", "c1")])
    };
    let (orders, _again) = tokio::join!(race, kill);
    let (open, refusals) = shop.decided(&orders).await;
    assert_eq!(open, 10, "exactly the limit across the kill");
    assert_eq!(refusals, [2008]);
    shop.reserved_until("RACEKILL", 10).await;
}

impl Shop {
    /// How many Razorpay orders the simulator holds for the first attempt
    /// of our order `order` (its `receipt`).
    async fn razorpay_orders(&self, order: &str) -> usize {
        let credentials = common::sim_credentials();
        let list: Value = self
            .http
            .get(format!(
                "{}/v1/orders?receipt={order}-1&count=100",
                self.sim
            ))
            .basic_auth(
                &credentials.razorpay.key_id,
                Some(&credentials.razorpay.key_secret),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["items"].as_array().map_or(0, Vec::len)
    }

    async fn placed_order(&self, user: &str) -> String {
        let cart = self
            .cart(user, json!([{"internship_id": "design", "quantity": 1}]))
            .await;
        let placed: Value = self
            .place(user, json!({ "cart_token": cart }), None)
            .await
            .json()
            .await
            .unwrap();
        placed["order_token"].as_str().unwrap().to_owned()
    }
}

fn has_session(o: &Value) -> bool {
    o["attempts"][0]["session_id"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rupee_order_gets_one_razorpay_session_with_its_calls_recorded() {
    let shop = Shop::open(None).await;
    let order = shop.placed_order("hana").await;
    let o = shop.order_until("hana", &order, has_session).await;
    let attempt = &o["attempts"][0];
    assert_eq!(attempt["gateway"], "razorpay", "{o}");
    assert!(attempt["session_id"]
        .as_str()
        .unwrap()
        .starts_with("order_"));
    assert_eq!(
        attempt["razorpay_key_id"],
        common::sim_credentials().razorpay.key_id
    );
    assert_eq!(attempt["checkout_url"], Value::Null);
    assert_eq!(attempt["calls"][0]["outcome"], "ok", "{o}");
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(shop.razorpay_orders(&order).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_gateway_falls_back_to_the_other() {
    let shop = Shop::open(None).await;
    // Razorpay's create answers 503 twice: both of its attempts.
    let forced = shop
        .http
        .post(format!("{}/sim/faults", shop.sim))
        .json(&json!({"status": 503, "count": 2, "method": "POST"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 204);
    let order = shop.placed_order("ivan").await;
    let o = shop.order_until("ivan", &order, has_session).await;
    let attempt = &o["attempts"][0];
    assert_eq!(attempt["gateway"], "stripe", "{o}");
    assert!(
        attempt["checkout_url"]
            .as_str()
            .unwrap()
            .contains("/checkout/cs_"),
        "{o}"
    );
    let calls: Vec<(Value, Value)> = attempt["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["gateway"].clone(), c["outcome"].clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (json!("razorpay"), json!("unavailable")),
            (json!("razorpay"), json!("unavailable")),
            (json!("stripe"), json!("ok")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_worker_between_call_and_result_opens_no_second_session() {
    const HOLD: Duration = Duration::from_millis(1500);
    let env = TestEnv::new().await;
    env.spawn_coupon_processor();
    let shop = Shop::around(env, None, Worker::None).await;
    let gateway_env = [
        ("RAZORPAY_BASE_URL", shop.sim.as_str()),
        ("STRIPE_BASE_URL", shop.sim.as_str()),
    ];
    let mut victim = shop.env.child_with(
        "processors",
        &["gateway"],
        &[
            gateway_env[0],
            gateway_env[1],
            ("FAULT_HOLD_BATCH_MS", "1500"),
        ],
    );
    let place = async {
        let mut orders = Vec::new();
        for i in 0..4 {
            orders.push(shop.placed_order(&format!("kai-{i}")).await);
        }
        orders
    };
    let kill = victim.kill9_in_flight("gateway-worker", HOLD, Duration::from_secs(60));
    let (orders, seen) = tokio::join!(place, kill);
    assert!(seen.uncommitted > 0.0);
    // The calls of the killed batch were made: their sessions exist, their
    // results were never written.
    let made = futures::future::join_all(orders.iter().map(|o| shop.razorpay_orders(o))).await;
    assert!(made.contains(&1), "no call was in flight: {made:?}");
    let _again = shop
        .env
        .child_with("processors", &["gateway"], &gateway_env);
    for (i, order) in orders.iter().enumerate() {
        let o = shop
            .order_until(&format!("kai-{i}"), order, has_session)
            .await;
        assert_eq!(o["attempts"][0]["gateway"], "razorpay");
        assert_eq!(
            shop.razorpay_orders(order).await,
            1,
            "one session for {order}"
        );
    }
}

impl Shop {
    /// The simulator holds (`hang`) or answers `status` for the next
    /// `count` provider calls.
    async fn force(&self, fault: Value) {
        let forced = self
            .http
            .post(format!("{}/sim/faults", self.sim))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(forced.status(), 204);
    }
}

fn calls(o: &Value) -> Vec<(Value, Value)> {
    o["attempts"][0]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["gateway"].clone(), c["outcome"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_gateway_that_times_out_falls_back_to_the_other() {
    let shop = Shop::with_gateways(|url| {
        common::test_gateways(url, 2, |g| g.timeout = Duration::from_millis(800))
    })
    .await;
    // Razorpay's first call of a create (the receipt look-up) hangs, twice.
    shop.force(json!({"hang": true, "count": 2})).await;
    let order = shop.placed_order("lena").await;
    let o = shop.order_until("lena", &order, has_session).await;
    assert_eq!(o["attempts"][0]["gateway"], "stripe", "{o}");
    assert_eq!(
        calls(&o),
        [
            (json!("razorpay"), json!("timeout")),
            (json!("razorpay"), json!("timeout")),
            (json!("stripe"), json!("ok")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_failures_skips_the_gateway_then_closes_after_a_probe() {
    use processors::payments::breaker::BreakerPolicy;
    use processors::payments::routing::Routing;
    let shop = Shop::with_gateways(|url| {
        common::test_gateways(url, 1, |g| {
            g.routing = Routing::parse("*=razorpay").unwrap();
            g.breaker = BreakerPolicy {
                failures: 2,
                window: Duration::from_secs(60),
                cooldown: Duration::from_secs(2),
            };
        })
    })
    .await;
    // Two creates answer 503: two orders fail, and the breaker opens.
    shop.force(json!({"status": 503, "count": 2, "method": "POST"}))
        .await;
    for user in ["max-1", "max-2"] {
        let order = shop.placed_order(user).await;
        let o = shop
            .order_until(user, &order, |o| o["status"] == "failed")
            .await;
        assert_eq!(calls(&o), [(json!("razorpay"), json!("unavailable"))]);
        assert_eq!(o["last_rejection"]["error"]["code"], 3001, "{o}");
    }
    // Open: the next order is not even tried at the gateway.
    let order = shop.placed_order("max-3").await;
    let o = shop
        .order_until("max-3", &order, |o| o["status"] == "failed")
        .await;
    assert_eq!(calls(&o), [(json!("razorpay"), json!("breaker_open"))]);
    assert_eq!(shop.razorpay_orders(&order).await, 0);
    // After the cooldown one probe goes through, succeeds, and closes it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for user in ["max-4", "max-5"] {
        let order = shop.placed_order(user).await;
        let o = shop.order_until(user, &order, has_session).await;
        assert_eq!(calls(&o), [(json!("razorpay"), json!("ok"))], "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_repeated_while_the_first_runs_gets_409_then_the_first_answer() {
    use sqlx::Connection;
    let shop = Shop::open(None).await;
    let cart = shop
        .cart("nora", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    // Hold the first placement inside its handler (it reads `carts` after
    // claiming its key) on a real table lock.
    let mut lock = sqlx::PgConnection::connect_with(&shop.env.pool.connect_options())
        .await
        .unwrap();
    sqlx::query(&format!(
        "SET search_path TO \"{}\"",
        shop.env.config.database_schema
    ))
    .execute(&mut lock)
    .await
    .unwrap();
    let mut held = lock.begin().await.unwrap();
    sqlx::query("LOCK TABLE carts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    let body = json!({"cart_token": cart});
    let first = {
        let (http, base, body) = (shop.http.clone(), shop.base.clone(), body.clone());
        tokio::spawn(async move {
            let res = http
                .post(format!("{base}/order"))
                .header("authorization", Shop::bearer("nora"))
                .header("idempotency-key", "place-held-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        })
    };
    let started = Instant::now();
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE key = $1")
                .bind("place-held-1")
                .fetch_optional(&shop.env.pool)
                .await
                .unwrap();
        if state.as_deref() == Some("in_flight") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!first.is_finished(), "the first placement is held");
    let repeat = shop.place("nora", body.clone(), Some("place-held-1")).await;
    assert_eq!(repeat.status(), 409);
    assert_eq!(repeat.headers()["retry-after"], "1");
    held.rollback().await.unwrap();
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let replay = shop.place("nora", body, Some("place-held-1")).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), answer);
}

impl Shop {}

fn paid_transitions(o: &Value) -> usize {
    statuses(o)
        .iter()
        .filter(|(_, to, refused)| *to == json!("paid") && refused.is_null())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_at_razorpay_pays_the_order_once_through_its_webhooks() {
    let shop = Shop::open(None).await;
    let order = shop.placed_order("omar").await;
    let o = shop.order_until("omar", &order, has_session).await;
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
    let inbound = shop.count(&schemas::topics::WEBHOOKS_INBOUND.def).await;
    shop.pay_at_gateway(&session).await;
    let o = shop
        .order_until("omar", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid_transitions(&o), 1, "{o}");
    // payment.captured and order.paid both arrived and carried one command:
    // nothing was refused.
    assert!(
        statuses(&o).iter().all(|(_, _, refused)| refused.is_null()),
        "{o}"
    );
    assert!(o["attempts"][0]["payment_ref"]
        .as_str()
        .unwrap()
        .starts_with("pay_"));
    assert_eq!(o["attempts"][0]["gateway"], "razorpay");
    let started = Instant::now();
    while shop.count(&schemas::topics::WEBHOOKS_INBOUND.def).await < inbound + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "two webhooks expected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Paid: the buyer is enrolled, once.
    let started = Instant::now();
    let enrolled = loop {
        let mine = shop.get("omar", "me/enrollments").await;
        if mine["enrollments"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            break mine;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never enrolled: {mine}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list = enrolled["enrollments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{enrolled}");
    assert_eq!(list[0]["internship_id"], "design");
    assert_eq!(list[0]["order_token"], order.as_str());
    assert_eq!(list[0]["access_granted"], true);
    assert_eq!(list[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_at_stripe_pays_the_order_and_a_forged_webhook_is_refused() {
    use processors::payments::routing::Routing;
    let shop = Shop::with_gateways(|url| {
        common::test_gateways(url, 2, |g| g.routing = Routing::parse("*=stripe").unwrap())
    })
    .await;
    let order = shop.placed_order("pia").await;
    let o = shop.order_until("pia", &order, has_session).await;
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
    assert!(session.starts_with("cs_"), "{o}");
    shop.pay_at_gateway(&session).await;
    let o = shop
        .order_until("pia", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid_transitions(&o), 1, "{o}");
    assert_eq!(o["attempts"][0]["gateway"], "stripe");

    // Forged (another secret) and stale (too old) copies: 400, nothing written.
    let before = shop.count(&schemas::topics::WEBHOOKS_INBOUND.def).await;
    let body = json!({"id": "evt_forged", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": session, "object": "checkout.session", "payment_status": "paid",
        "client_reference_id": format!("{order}-1"), "amount_total": 1, "currency": "inr"}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let ingress = shop.base.trim_end_matches("/api/v1").to_owned();
    for (case, header) in [
        (
            "forged",
            gateways::stripe::webhook::header(now, body.as_bytes(), &["whsec_not_ours"]),
        ),
        (
            "stale",
            gateways::stripe::webhook::header(
                now - 301,
                body.as_bytes(),
                &[common::sim_credentials().stripe.webhook_secrets[0].as_str()],
            ),
        ),
        ("malformed", "t=abc".to_owned()),
    ] {
        let res = shop
            .http
            .post(format!("{ingress}/webhooks/stripe"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{case}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], 400, "{case}: {err}");
    }
    assert_eq!(
        shop.count(&schemas::topics::WEBHOOKS_INBOUND.def).await,
        before,
        "a refused webhook writes nothing"
    );
    let o = shop.get("pia", &format!("order/{order}")).await;
    assert_eq!(paid_transitions(&o), 1);
    // What the alerts divide (this test's process runs the ingress and the
    // order processor): the three refusals, the webhooks taken, the one
    // payment settled.
    assert_eq!(
        counted(
            "webhooks_received_total",
            &[("gateway", "stripe"), ("outcome", "refused")]
        ),
        3.0
    );
    assert!(
        counted(
            "webhooks_received_total",
            &[("gateway", "stripe"), ("outcome", "accepted")]
        ) >= 1.0
    );
    assert_eq!(
        counted(
            "webhooks_received_total",
            &[("gateway", "razorpay"), ("outcome", "accepted")]
        ),
        0.0
    );
    assert_eq!(
        counted(
            "order_payments_total",
            &[("gateway", "stripe"), ("outcome", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        counted(
            "order_payments_total",
            &[("gateway", "stripe"), ("outcome", "failed")]
        ),
        0.0
    );
}

/// The sum of the process's counter `name` over the series with `labels`.
fn counted(name: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

// ---------------------------------------------------------------------------
// Refunds, reconciliation, late and mismatched payments
// ---------------------------------------------------------------------------

impl Shop {
    /// An admin asks to refund `order`.
    async fn refund(&self, order: &str) -> reqwest::Response {
        let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
        self.http
            .post(format!("{}/admin/orders/{order}/refund", self.base))
            .header("authorization", admin)
            .json(&json!({"reason": "the buyer asked within 14 days"}))
            .send()
            .await
            .unwrap()
    }

    /// The dead letters of kind `kind` so far.
    async fn dead_letters(&self, kind: &str) -> Vec<schemas::records::dead_letter::DeadLetter> {
        let mut letters = self.env.decoded(&schemas::topics::DEAD_LETTERS).await;
        letters.retain(|l| l.kind == kind);
        letters
    }
}

fn order_settings(
    clock: Arc<dyn processors::runner::Clock>,
    adjust: impl FnOnce(&mut rules::order::OrderPolicy),
) -> processors::order::service::Settings {
    let mut policy = rules::order::OrderPolicy::default();
    adjust(&mut policy);
    processors::order::service::Settings {
        policy,
        tick: Duration::from_millis(100),
        clock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_refund_goes_through_the_gateway_and_revokes_the_enrollment() {
    let shop = Shop::open(None).await;
    let order = shop.placed_order("rita").await;
    let o = shop.order_until("rita", &order, has_session).await;
    // Not paid yet: nothing to refund.
    let early = shop.refund(&order).await;
    assert_eq!(early.status(), 409);
    assert_eq!(early.json::<Value>().await.unwrap()["error"]["code"], 3002);

    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    shop.order_until("rita", &order, |o| o["status"] == "paid")
        .await;
    shop.enrollments_until("rita", |e| e.len() == 1 && e[0]["status"] == "active")
        .await;

    let asked = shop.refund(&order).await;
    assert_eq!(asked.status(), 202, "{}", asked.text().await.unwrap());
    let o = shop
        .order_until("rita", &order, |o| o["status"] == "refunded")
        .await;
    let refund = &o["refund"];
    assert_eq!(refund["status"], "processed", "{o}");
    assert_eq!(refund["gateway"], "razorpay");
    assert!(
        refund["refund_id"].as_str().unwrap().starts_with("rfnd_"),
        "{o}"
    );
    assert_eq!(refund["requested_by"], "admin:ops");
    let last = o["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to_status"], "refunded", "{o}");
    // On the gateway's word: the refund webhook moved it.
    assert_eq!(last["actor"], "razorpay", "{o}");

    let revoked = shop
        .enrollments_until("rita", |e| e.len() == 1 && e[0]["status"] == "revoked")
        .await;
    assert_eq!(revoked[0]["access_granted"], false);
    assert_eq!(revoked[0]["order_token"], order.as_str());

    // Refunded once: a second request is refused.
    let again = shop.refund(&order).await;
    assert_eq!(again.status(), 409);

    // Its outcomes, once each, on order.events.
    let kinds: Vec<_> = shop
        .env
        .decoded(&schemas::topics::ORDER_EVENTS)
        .await
        .into_iter()
        .filter(|e| e.order_token == order)
        .map(|e| e.kind)
        .collect();
    use schemas::records::order::OrderEventKind;
    assert_eq!(kinds, [OrderEventKind::Paid, OrderEventKind::Refunded]);
}

impl Shop {
    /// `GET /orders/{order}/invoices` as `user` once `done` holds.
    async fn invoices_until(
        &self,
        user: &str,
        order: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let list = self.get(user, &format!("orders/{order}/invoices")).await;
            let docs = list["documents"].as_array().cloned().unwrap_or_default();
            if done(&docs) {
                return docs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "invoices never got there: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A document's PDF as `user`: its status, type and bytes.
    async fn pdf(&self, user: &str, path: &str) -> (u16, String, Vec<u8>) {
        let answer = self
            .http
            .get(format!("{}{}", self.base.trim_end_matches("/api/v1"), path))
            .header("authorization", Self::bearer(user))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let kind = answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, answer.bytes().await.unwrap().to_vec())
    }
}

/// `pdf`, read by a PDF library of its own (pypdf), holds every string of
/// `expect` in its text.
fn pdf_says(pdf: &[u8], expect: &[&str]) {
    use base64::Engine;
    common::python_check(
        "pdf_text_check.py",
        &json!({
            "pdf_base64": base64::engine::general_purpose::STANDARD.encode(pdf),
            "expect": expect,
        }),
        "the PDF does not read as expected",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_gets_a_numbered_tax_invoice_and_its_refund_a_credit_note_as_pdf() {
    let shop = Shop::open(None).await;
    // A company in another state, with its GSTIN: IGST, its GSTIN on the invoice.
    let cart = shop
        .cart("hr", json!([{"internship_id": "design", "quantity": 3}]))
        .await;
    let set: Value = shop
        .http
        .put(format!("{}/cart/{cart}/buyer", shop.base))
        .header("authorization", Shop::bearer("hr"))
        .json(&json!({"country": "IN", "state": "MH", "gstin": "27AAACB1234C1Z9"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let priced = shop
        .get("hr", &format!("cart/{cart}?version={}", set["version"]))
        .await;
    assert_eq!(priced["taxes"][0]["name"], "IGST", "{priced}");
    let placed: Value = shop
        .place("hr", json!({ "cart_token": cart }), None)
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().unwrap().to_owned();
    let o = shop.order_until("hr", &order, has_session).await;
    // Nothing to download before it is paid.
    let (status, _, body) = shop
        .pdf(
            "hr",
            &format!("/api/v1/orders/{order}/invoices/tax-invoice"),
        )
        .await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], 3004, "{error}");

    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    let paid = shop
        .order_until("hr", &order, |o| o["status"] == "paid")
        .await;
    let docs = shop.invoices_until("hr", &order, |d| !d.is_empty()).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    let invoice = &docs[0];
    let number = invoice["number"].as_str().unwrap().to_owned();
    // This test's ledger is its own (its topics): the first of its series.
    assert!(
        number.starts_with("INV/") && number.ends_with("/000001"),
        "{number}"
    );
    assert!(number.len() <= 16);
    assert_eq!(invoice["kind"], "tax_invoice");
    let d = &invoice["document"];
    assert_eq!(d["supply"], "INTER_STATE");
    assert_eq!(d["place_of_supply"], "Maharashtra (27)");
    assert_eq!(
        d["buyer"]["gstin"], "27AAACB1234C1Z9",
        "opened for its buyer"
    );
    assert_eq!(d["supplier"]["gstin"], "29AAGCT5678K1Z2");
    assert_eq!(
        d["total"]["amount_minor"], paid["total_minor"],
        "{d}\n{paid}"
    );
    assert_eq!(d["taxes"][0]["name"], "IGST");
    assert_eq!(d["lines"][0]["quantity"], 3);
    assert_eq!(d["payment_ref"], paid["attempts"][0]["payment_ref"]);

    let (status, kind, pdf) = shop.pdf("hr", invoice["pdf"].as_str().unwrap()).await;
    assert_eq!((status, kind.as_str()), (200, "application/pdf"));
    let words = d["total_in_words"].as_str().unwrap();
    pdf_says(
        &pdf,
        &[
            "TAX INVOICE",
            &number,
            "27AAACB1234C1Z9",
            "29AAGCT5678K1Z2",
            "Maharashtra (27)",
            "IGST",
            &words[..20],
        ],
    );
    // Another customer's order is not theirs to read.
    let (status, _, _) = shop
        .pdf("someone-else", invoice["pdf"].as_str().unwrap())
        .await;
    assert_eq!(status, 404);

    // The refund: a credit note against the invoice, once.
    let asked = shop.refund(&order).await;
    assert_eq!(asked.status(), 202, "{}", asked.text().await.unwrap());
    shop.order_until("hr", &order, |o| o["status"] == "refunded")
        .await;
    let docs = shop.invoices_until("hr", &order, |d| d.len() == 2).await;
    let note = &docs[1];
    assert_eq!(note["kind"], "credit_note");
    let note_number = note["number"].as_str().unwrap().to_owned();
    assert!(
        note_number.starts_with("CN/") && note_number.ends_with("/000001"),
        "{note_number}"
    );
    assert_eq!(note["against_number"], number.as_str());
    assert_eq!(note["document"]["total"], d["total"], "in full");
    let (status, _, pdf) = shop.pdf("hr", note["pdf"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    pdf_says(&pdf, &["CREDIT NOTE", &note_number, &number]);

    // The accounting topic holds each document once, keyed by its number,
    // the buyer's GSTIN sealed.
    let on_topic: Vec<schemas::records::invoices::InvoiceDocument> =
        shop.env.decoded(&schemas::topics::INVOICE_DOCUMENTS).await;
    let numbers: Vec<&str> = on_topic.iter().map(|d| d.number.as_str()).collect();
    assert_eq!(numbers, [number.as_str(), note_number.as_str()]);
    assert!(on_topic.iter().all(|d| d
        .buyer
        .gstin
        .as_deref()
        .is_some_and(schemas::sealed::is_sealed)));
}

impl Shop {
    /// The audit trail of `order` as an admin reads it, oldest first, once
    /// it holds an event with `action`.
    async fn audit_until(&self, order: &str, action: &str) -> Vec<Value> {
        let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
        let started = Instant::now();
        loop {
            let trail: Value = self
                .http
                .get(format!("{}/admin/audit?order_token={order}", self.base))
                .header("authorization", &admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut events = trail["events"].as_array().cloned().unwrap_or_default();
            if events.iter().any(|e| e["action"] == action) {
                events.reverse();
                return events;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no {action} in the audit trail of {order}: {trail}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every change of money in a purchase with a refund is in the audit
/// trail once, with who made it, why and under which request; the table
/// takes no UPDATE, DELETE or TRUNCATE from the application's role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_with_a_refund_leaves_one_audit_event_per_money_change() {
    let shop = Shop::open(None).await;
    let order = shop.placed_order("vera").await;
    let o = shop.order_until("vera", &order, has_session).await;
    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    let paid = shop
        .order_until("vera", &order, |o| o["status"] == "paid")
        .await;
    let asked = shop.refund(&order).await;
    assert_eq!(asked.status(), 202, "{}", asked.text().await.unwrap());
    shop.order_until("vera", &order, |o| o["status"] == "refunded")
        .await;
    // The refund's last word on access comes from the enrollment
    // processor, after the order's.
    let trail = shop.audit_until(&order, "enrollment.revoked").await;
    let vera = common::pseudonym(&shop.env, "vera").await;

    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for money in [
        "order.placed",
        "payment.paid",
        "order.paid",
        "refund.requested",
        "order.refunded",
        "enrollment.granted",
        "enrollment.revoked",
    ] {
        let n = actions.iter().filter(|a| **a == money).count();
        assert_eq!(n, 1, "{money} {n} times in {actions:?}");
    }
    let mut ids: Vec<&str> = trail
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), trail.len(), "an event twice: {trail:#?}");
    let by = |action: &str| {
        trail
            .iter()
            .find(|e| e["action"] == action)
            .unwrap()
            .clone()
    };
    assert!(
        !by("enrollment.granted")["reason"]
            .as_str()
            .unwrap()
            .contains('@'),
        "no email in the trail"
    );
    for e in &trail {
        assert_eq!(e["subject_id"], order.as_str(), "{e}");
        assert_eq!(e["person"], vera.as_str(), "{e}");
        assert!(!e["correlation_id"].as_str().unwrap().is_empty(), "{e}");
    }
    assert_eq!(by("refund.requested")["actor"], "admin:ops");
    assert_eq!(
        by("refund.requested")["reason"],
        "the buyer asked within 14 days"
    );
    assert_eq!(by("order.paid")["actor"], "razorpay");
    assert_eq!(by("order.placed")["actor"], format!("user:{vera}"));
    for money in ["order.paid", "order.refunded", "refund.requested"] {
        assert_eq!(by(money)["amount_minor"], paid["total_minor"], "{money}");
        assert_eq!(by(money)["currency"], paid["currency"], "{money}");
    }
    // The admin's filters: by person, and by a window that ends before it.
    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let mine: Value = shop
        .http
        .get(format!("{}/admin/audit?person=vera", shop.base))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hers = trail
        .iter()
        .filter(|e| e["person"] == vera.as_str())
        .count();
    assert_eq!(mine["events"].as_array().unwrap().len(), hers);
    let before: Value = shop
        .http
        .get(format!(
            "{}/admin/audit?person=vera&until=2020-01-01T00:00:00Z",
            shop.base
        ))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["events"], json!([]));
    // Not for a buyer.
    let buyer = shop
        .http
        .get(format!("{}/admin/audit?person=vera", shop.base))
        .header("authorization", Shop::bearer("vera"))
        .send()
        .await
        .unwrap();
    assert_eq!(buyer.status(), 403);

    // Append-only, whatever the application tries.
    let pool = &shop.env.pool;
    for sql in [
        "UPDATE audit_log SET reason = 'nothing happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE subject_id = $1")
        .bind(&order)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows as usize, trail.len());

    // An admin's change to a table, sent twice with one Idempotency-Key
    // (a retry after a lost answer): one event, naming the admin.
    for _ in 0..2 {
        let put = shop
            .http
            .put(format!("{}/admin/fx-rates/EUR", shop.base))
            .header("authorization", &admin)
            .header("idempotency-key", "fx-eur-audit-1")
            .json(&json!({"rate": "0.0111"}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 202, "{}", put.text().await.unwrap());
    }
    let started = Instant::now();
    let fx = loop {
        let fx: Value = shop
            .http
            .get(format!(
                "{}/admin/audit?subject_kind=fx_rate&subject_id=EUR",
                shop.base
            ))
            .header("authorization", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = fx["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Each answer came once its events were acknowledged: whatever the
    // two requests wrote is on the topic now, under one id.
    let ids: std::collections::BTreeSet<String> = shop
        .env
        .decoded(&schemas::topics::AUDIT_EVENTS)
        .await
        .into_iter()
        .filter(|e| e.subject_kind == "fx_rate" && e.subject_id == "EUR")
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE subject_kind = 'fx_rate' AND subject_id = 'EUR'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(n, 1, "{fx:?}");
    assert_eq!(fx[0]["action"], "fx_rate.published");
    assert_eq!(fx[0]["actor"], "admin:ops");
    assert!(
        fx[0]["reason"].as_str().unwrap().contains("0.0111"),
        "{fx:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_webhook_is_found_by_reconciliation() {
    let env = TestEnv::new().await;
    env.spawn_coupon_processor();
    // The simulator sends no webhooks at all: only a look-up can tell.
    let settings = order_settings(Arc::new(processors::runner::SystemClock), |p| {
        p.reconcile_after_ms = 1_000;
    });
    let shop = Shop::around_with(env, Some(settings), Worker::Default, false, FAST_RETRIES).await;
    let order = shop.placed_order("remy").await;
    let o = shop.order_until("remy", &order, has_session).await;
    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    let o = shop
        .order_until("remy", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid_transitions(&o), 1, "{o}");
    let paid = statuses_with_actor(&o)
        .into_iter()
        .find(|(to, _)| to == "paid")
        .unwrap();
    assert_eq!(paid.1, "gateway-worker", "paid by the look-up: {o}");
    assert!(o["attempts"][0]["payment_ref"]
        .as_str()
        .unwrap()
        .starts_with("pay_"));
    assert_eq!(
        shop.count(&schemas::topics::WEBHOOKS_INBOUND.def).await,
        0,
        "no webhook came"
    );
    shop.enrollments_until("remy", |e| e.len() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_expiry_is_kept_and_flagged_for_refund_not_enrolled() {
    let clock = Arc::new(TestClock(AtomicI64::new(
        chrono::Utc::now().timestamp_millis(),
    )));
    let env = TestEnv::new().await;
    env.spawn_coupon_processor();
    let settings = order_settings(clock.clone(), |p| {
        p.late_payment = schemas::records::order::LatePayment::RefundDue;
    });
    let shop = Shop::around_with(env, Some(settings), Worker::Default, true, FAST_RETRIES).await;
    let order = shop.placed_order("lena").await;
    let o = shop.order_until("lena", &order, has_session).await;
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
    clock.0.fetch_add(31 * 60_000, Ordering::SeqCst);
    shop.order_until("lena", &order, |o| o["status"] == "expired")
        .await;

    // The buyer pays the gateway's page anyway: the money is recorded.
    shop.pay_at_gateway(&session).await;
    let o = shop
        .order_until("lena", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(o["late_payment"], "refund_due", "{o}");
    let history = o["history"].as_array().unwrap();
    assert!(
        history.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("while expired"),
        "{o}"
    );
    // Flagged for a refund, so not enrolled; and a refund can be asked.
    let asked = shop.refund(&order).await;
    assert_eq!(asked.status(), 202);
    shop.order_until("lena", &order, |o| o["status"] == "refunded")
        .await;
    let mine = shop.get("lena", "me/enrollments").await;
    assert_eq!(mine["enrollments"], json!([]), "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_does_not_match_goes_to_review_and_never_pays() {
    let shop = Shop::open(None).await;
    let order = shop.placed_order("marc").await;
    shop.order_until("marc", &order, |o| o["status"] == "awaiting_payment")
        .await;
    shop.payment(
        &order,
        OrderCmd::PaymentSucceeded(PaymentSucceeded {
            method: None,
            attempt: 1,
            gateway: "razorpay".into(),
            payment_ref: "pay_short".into(),
            amount: WireMoney {
                amount_minor: 1,
                currency: "INR".into(),
            },
        }),
    )
    .await;
    let o = shop
        .order_until("marc", &order, |o| {
            statuses(o)
                .iter()
                .any(|(_, _, refused)| *refused == json!(3001))
        })
        .await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    let started = Instant::now();
    let letters = loop {
        let letters = shop.dead_letters("review").await;
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no review letter"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("does not match"), "{letters:?}");
    assert!(letters[0].source_topic.ends_with("order.commands"));
    // The letter holds the command itself: a replay would send it back.
    let command: OrderCommand = shop
        .env
        .codec
        .decode(&ORDER_COMMANDS, letters[0].value.as_deref())
        .await
        .unwrap();
    assert_eq!(command.order_token, order);
}

fn statuses_with_actor(order: &Value) -> Vec<(String, String)> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to_status"].as_str().unwrap().to_owned(),
                t["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A gateway faster than our pipeline: parked, retried, applied or dead-lettered
// ---------------------------------------------------------------------------

impl Shop {
    /// The retry stage's records so far: (parks, redeliveries).
    async fn retry_records(&self) -> (usize, usize) {
        use schemas::records::webhooks::RetryAction;
        let records = self.env.decoded(&schemas::topics::WEBHOOKS_RETRY).await;
        let parks = records
            .iter()
            .filter(|r| matches!(r.action, RetryAction::Park(_)))
            .count();
        (parks, records.len() - parks)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_before_its_order_is_parked_retried_then_applied() {
    let shop = Shop::open(None).await;
    let cart = shop
        .cart("quin", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let total = shop.get("quin", &format!("cart/{cart}")).await["total_minor"]
        .as_i64()
        .unwrap();
    let order =
        schemas::values::OrderToken::of_cart(&schemas::values::CartToken::parse(&cart).unwrap());
    let order = order.as_str().to_owned();
    // Stripe says attempt 1 is paid before the order was even placed.
    let now = chrono::Utc::now().timestamp();
    let body = json!({"id": "evt_early_1", "object": "event", "type": "checkout.session.completed",
        "api_version": "2024-06-20", "created": now, "livemode": false, "pending_webhooks": 1,
        "data": {"object": {"id": "cs_early_1", "object": "checkout.session", "url": null,
        "status": "complete", "payment_status": "paid", "expires_at": now + 3600,
        "client_reference_id": format!("{order}-1"), "metadata": {}, "payment_intent": "pi_early_1",
        "amount_total": total, "currency": "inr", "mode": "payment", "success_url": null,
        "cancel_url": null, "customer_email": null, "created": now, "livemode": false}}})
    .to_string();
    let header = gateways::stripe::webhook::header(
        now,
        body.as_bytes(),
        &[common::sim_credentials().stripe.webhook_secrets[0].as_str()],
    );
    let ingress = shop.base.trim_end_matches("/api/v1").to_owned();
    let res = shop
        .http
        .post(format!("{ingress}/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Parked, and redelivered at least once while there was no order.
    let started = Instant::now();
    loop {
        let (parks, redeliveries) = shop.retry_records().await;
        if parks >= 2 && redeliveries >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not retried: {parks} parks, {redeliveries} redeliveries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let placed = shop.place("quin", json!({"cart_token": cart}), None).await;
    assert_eq!(placed.status(), 202);
    let o = shop
        .order_until("quin", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid_transitions(&o), 1, "{o}");
    assert_eq!(o["attempts"][0]["payment_ref"], "pi_early_1", "{o}");
    let paid = statuses_with_actor(&o)
        .into_iter()
        .find(|(to, _)| to == "paid")
        .unwrap();
    assert_eq!(paid.1, "stripe");
    assert!(
        shop.dead_letters("retries-exhausted").await.is_empty(),
        "nothing given up"
    );
    shop.enrollments_until("quin", |e| e.len() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_order_never_comes_is_dead_lettered_after_its_retries() {
    let env = TestEnv::new().await;
    env.spawn_coupon_processor();
    let few = RetryPolicy {
        base_ms: 50,
        max_delay_ms: 100,
        limit: 2,
    };
    let shop = Shop::around_with(env, None, Worker::Default, true, few).await;
    let ghost = "0123456789abcdef0123456789abcdef";
    shop.payment(
        ghost,
        OrderCmd::PaymentSucceeded(PaymentSucceeded {
            method: None,
            attempt: 1,
            gateway: "razorpay".into(),
            payment_ref: "pay_ghost".into(),
            amount: WireMoney {
                amount_minor: 100,
                currency: "INR".into(),
            },
        }),
    )
    .await;
    let started = Instant::now();
    let letters = loop {
        let letters = shop.dead_letters("retries-exhausted").await;
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never given up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("after 2 redeliveries"),
        "{letters:?}"
    );
    assert!(letters[0].source_topic.ends_with("order.commands"));
    let command: OrderCommand = shop
        .env
        .codec
        .decode(&ORDER_COMMANDS, letters[0].value.as_deref())
        .await
        .unwrap();
    assert_eq!(command.order_token, ghost);
    assert!(matches!(command.command, OrderCmd::PaymentSucceeded(_)));
    assert_eq!(
        shop.retry_records().await,
        (3, 2),
        "parked thrice, redelivered twice"
    );
}

/// "Buy now": a cart created with its items and placed at once, with no
/// read in between, is placed; and an item added just before placing
/// counts when the placement names the version its write answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_now_places_a_cart_right_after_its_last_write_with_no_read_in_between() {
    let shop = Shop::open(None).await;
    let create = |items: Value| {
        let shop = &shop;
        async move {
            let created: Value = shop
                .http
                .post(format!("{}/cart", shop.base))
                .header("authorization", Shop::bearer("ivy"))
                .json(&json!({ "items": items }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            created["cart_token"].as_str().unwrap().to_owned()
        }
    };
    let cart = create(json!([{"internship_id": "design", "quantity": 1}])).await;
    let placed = shop.place("ivy", json!({ "cart_token": cart }), None).await;
    assert_eq!(placed.status(), 202);
    let placed: Value = placed.json().await.unwrap();
    let order = placed["order_token"].as_str().unwrap();
    let o = shop.order_until("ivy", order, has_session).await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(
        o["placed"]["lines"].as_array().map(Vec::len),
        Some(1),
        "{o}"
    );

    // A line added, and the cart placed at once at the version it answered.
    let cart = create(json!([{"internship_id": "design", "quantity": 1}])).await;
    let added: Value = shop
        .http
        .post(format!("{}/cart/{cart}/items", shop.base))
        .header("authorization", Shop::bearer("ivy"))
        .json(&json!({"internship_id": "rust-backend", "quantity": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = added["version"]
        .as_i64()
        .expect("the add answers its version");
    let placed = shop
        .place(
            "ivy",
            json!({ "cart_token": cart, "cart_version": version }),
            None,
        )
        .await;
    assert_eq!(placed.status(), 202);
    let placed: Value = placed.json().await.unwrap();
    let o = shop
        .order_until("ivy", placed["order_token"].as_str().unwrap(), has_session)
        .await;
    let lines: Vec<&str> = o["placed"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["internship_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the line added just before placing is in the order: {o}"
    );
    assert!(lines.contains(&"rust-backend"), "{o}");

    // A token no write ever made is still unknown, after the short wait.
    let unknown = shop
        .place(
            "ivy",
            json!({ "cart_token": "0123456789abcdef0123456789abcdef" }),
            None,
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

/// A limited coupon runs out between "apply" and "place": the buyer who
/// lost the race is not stuck. Their order fails with the coupon's code and
/// says what to do; their cart is open again, the coupon a blocker on it;
/// two calls (remove the coupon, place again) and they pay the price
/// without it, the one the cart shows them. The coupon's uses stay exact,
/// and the failed order cannot be paid again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_that_runs_out_before_payment_reopens_the_cart_and_the_buyer_pays_without_it() {
    let shop = Shop::open(None).await;
    shop.coupon("ONLYONE", Some(1), None).await;
    let carts = shoppers(&shop, "lastseat", 2, "ONLYONE").await;
    let orders = shop.place_all(&carts).await;
    let (open, refusals) = shop.decided(&orders).await;
    assert_eq!((open, refusals), (1, vec![2008]), "one use, one refusal");
    let failed: String = sqlx::query_scalar(
        "SELECT order_token FROM orders WHERE order_token = ANY($1) AND status = 'failed'",
    )
    .bind(&orders)
    .fetch_one(&shop.env.pool)
    .await
    .unwrap();
    let (user, cart) = carts[orders.iter().position(|o| *o == failed).unwrap()].clone();

    // The order says which coupon ran out and what to do.
    let o = shop.get(&user, &format!("order/{failed}")).await;
    let error = &o["last_rejection"]["error"];
    assert_eq!(error["code"], 2008, "{o}");
    let action = error["suggested_action"].as_str().unwrap();
    assert!(
        action.contains(&format!("DELETE /api/v1/cart/{cart}/coupon/ONLYONE")),
        "{action}"
    );

    // The cart is open again, the refused coupon a blocker on it.
    let started = Instant::now();
    let reopened = loop {
        let c = shop.get(&user, &format!("cart/{cart}")).await;
        if c["status"] == "active" {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not reopened: {c}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reopened["placements"], 1, "{reopened}");
    assert_eq!(
        reopened["refused_coupons"][0]["code"], "ONLYONE",
        "{reopened}"
    );
    let blockers = reopened["checkout_blockers"].as_array().unwrap();
    assert!(
        blockers
            .iter()
            .any(|b| b["message"].as_str().unwrap().contains("ONLYONE")),
        "{reopened}"
    );

    // Call 1: the coupon goes; the cart shows the price without it.
    let removed = shop
        .http
        .delete(format!("{}/cart/{cart}/coupon/ONLYONE", shop.base))
        .header("authorization", Shop::bearer(&user))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 202);
    let version = removed.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    // Call 2: placed again, at the version the removal answered.
    let placed = shop
        .place(
            &user,
            json!({"cart_token": cart, "cart_version": version}),
            None,
        )
        .await;
    assert_eq!(placed.status(), 202, "{}", placed.text().await.unwrap());
    let placed: Value = placed.json().await.unwrap();
    let again = placed["order_token"].as_str().unwrap().to_owned();
    assert_ne!(again, failed, "a new order");

    // The price the buyer saw on the cart is the one charged.
    let seen = shop
        .get(&user, &format!("cart/{cart}?version={version}"))
        .await;
    assert!(seen["coupons"].as_array().unwrap().is_empty(), "{seen}");
    assert!(
        seen["checkout_blockers"].as_array().unwrap().is_empty(),
        "{seen}"
    );
    let o = shop.order_until(&user, &again, has_session).await;
    assert_eq!(o["total_minor"], seen["total_minor"], "{o}");
    assert_eq!(o["discount_total_minor"], 0, "{o}");
    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    shop.order_until(&user, &again, |o| o["status"] == "paid")
        .await;

    // The coupon's one use is the winner's; the failed order is not
    // paid again.
    shop.reserved_until("ONLYONE", 1).await;
    let pay_again = shop
        .http
        .post(format!("{}/order/{failed}/pay", shop.base))
        .header("authorization", Shop::bearer(&user))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = pay_again.status().as_u16();
    let body: Value = pay_again.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 202, "{body}");
    // Refused by the order processor, which says where to go on.
    let o = shop
        .order_until(&user, &failed, |o| {
            o["last_rejection"]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("the cart is open again"))
        })
        .await;
    assert_eq!(o["status"], "failed", "{o}");
    assert_eq!(
        o["attempts"].as_array().map(Vec::len),
        Some(0),
        "no attempt: {o}"
    );
}

// ---------------------------------------------------------------------------
// Personal data sealed at rest
// ---------------------------------------------------------------------------

/// What a guest typed before signing in is sealed under the guest cart's
/// key; signing in links that key to the person, so their own erasure
/// destroys it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_erasure_reaches_the_guest_cart_they_signed_in_with() {
    const GSTIN: &str = "27AAPFU0939F1ZV";
    let shop = Shop::open(None).await;
    let key = || uuid::Uuid::new_v4().to_string();
    let created: Value = shop
        .http
        .post(format!("{}/cart", shop.base))
        .header("idempotency-key", key())
        .json(&json!({"items": [{"internship_id": "design", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cart = created["cart_token"].as_str().unwrap().to_owned();
    let set: Value = shop
        .http
        .put(format!("{}/cart/{cart}/buyer", shop.base))
        .header("idempotency-key", key())
        .json(&json!({"country": "IN", "state": "MH", "gstin": GSTIN}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = set["version"].as_i64().unwrap();
    let seen: Value = shop
        .http
        .get(format!("{}/cart/{cart}?version={version}", shop.base))
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["buyer"]["gstin"], GSTIN, "the guest's, opened: {seen}");
    let login = shop
        .http
        .post(format!("{}/cart/{cart}/auth/login", shop.base))
        .header("authorization", Shop::bearer("hana"))
        .header("idempotency-key", key())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 202);
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["cart_token"], cart.as_str(), "attached: {login}");
    let attached = login["guest_cart_version"].as_i64().unwrap();
    assert!(attached > version);
    let seen = shop
        .get("hana", &format!("cart/{cart}?version={attached}"))
        .await;
    assert_eq!(seen["buyer"]["gstin"], GSTIN, "hers now, opened: {seen}");

    let erased = shop
        .http
        .delete(format!("{}/me/personal-data", shop.base))
        .header("authorization", Shop::bearer("hana"))
        .header("idempotency-key", key())
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    assert_eq!(erased.json::<Value>().await.unwrap()["erased"], true);
    let after = shop.get("hana", &format!("cart/{cart}")).await;
    assert_eq!(after["buyer"]["gstin"], Value::Null, "{after}");
    assert_eq!(after["buyer"]["state"], "MH", "the rest kept: {after}");
}

/// A buyer's GSTIN and email are sealed at the edge: after a whole
/// purchase they are in no topic's bytes and no table's rows, yet the
/// buyer reads them back. An erasure destroys the buyer's data key: they
/// read as absent from then on, the order keeps its money, and the erasure
/// is audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gstin_rests_sealed_everywhere_and_an_erasure_makes_it_unreadable() {
    const GSTIN: &str = "29ABCDE1234F1Z5";
    const EMAIL: &str = "gita.private@buyers.example";
    let shop = Shop::open(None).await;
    let cart = shop
        .cart("gita", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let set: Value = shop
        .http
        .put(format!("{}/cart/{cart}/buyer", shop.base))
        .header("authorization", Shop::bearer("gita"))
        .json(&json!({"country": "IN", "state": "KA", "gstin": GSTIN.to_lowercase()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = set["version"].as_i64().unwrap();
    let seen = shop
        .get("gita", &format!("cart/{cart}?version={version}"))
        .await;
    assert_eq!(seen["buyer"]["gstin"], GSTIN, "{seen}");
    let placed: Value = shop
        .place("gita", json!({ "cart_token": cart, "email": EMAIL }), None)
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().unwrap().to_owned();
    let o = shop.order_until("gita", &order, has_session).await;
    shop.pay_at_gateway(o["attempts"][0]["session_id"].as_str().unwrap())
        .await;
    let paid = shop
        .order_until("gita", &order, |o| o["status"] == "paid")
        .await;
    assert_eq!(paid["placed"]["buyer"]["gstin"], GSTIN, "{paid}");
    assert_eq!(paid["buyer_email"], EMAIL, "{paid}");
    // The enrollment it opened carries the address too, opened for her.
    let mine = shop
        .enrollments_until("gita", |e| e.len() == 1 && e[0]["email"].is_string())
        .await;
    assert_eq!(mine[0]["email"], EMAIL);

    for secret in [GSTIN, EMAIL] {
        let clear = common::where_in_clear(&shop.env, secret).await;
        assert!(clear.is_empty(), "{secret} in the clear: {clear:?}");
    }
    // The search finds what is there: the order token is in both, and
    // the GSTIN travels sealed.
    assert!(!common::where_in_clear(&shop.env, &order).await.is_empty());
    let sealed = common::where_in_clear(&shop.env, schemas::sealed::PREFIX).await;
    for place in [
        "topic cart.commands",
        "topic order.snapshots",
        "table carts",
        "table orders",
    ] {
        assert!(
            sealed.iter().any(|s| s.starts_with(place)),
            "no sealed value in {place}: {sealed:?}"
        );
    }

    // The export holds it, opened, with the rest of what we keep.
    let export = shop.get("gita", "me/personal-data").await;
    let gita = common::pseudonym(&shop.env, "gita").await;
    assert_eq!(export["user_id"], gita.as_str());
    assert!(
        export["carts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["buyer"]["gstin"] == GSTIN),
        "{export}"
    );
    assert!(
        export["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["order_token"] == order.as_str() && o["placed"]["buyer"]["gstin"] == GSTIN),
        "{export}"
    );
    assert_eq!(export["emails"], json!([EMAIL]), "{export}");

    // Erased, with one Idempotency-Key sent twice: one audited erasure.
    for _ in 0..2 {
        let erased = shop
            .http
            .delete(format!("{}/me/personal-data", shop.base))
            .header("authorization", Shop::bearer("gita"))
            .header("idempotency-key", "erase-gita-1")
            .send()
            .await
            .unwrap();
        assert_eq!(erased.status(), 200);
        assert_eq!(erased.json::<Value>().await.unwrap()["erased"], true);
    }
    let after = shop.get("gita", &format!("order/{order}")).await;
    assert_eq!(after["placed"]["buyer"]["gstin"], Value::Null, "{after}");
    assert_eq!(after["buyer_email"], Value::Null, "{after}");
    assert_eq!(after["placed"]["buyer"]["country"], "IN");
    assert_eq!(after["status"], "paid");
    assert_eq!(after["total_minor"], paid["total_minor"]);
    let cart_after = shop.get("gita", &format!("cart/{cart}")).await;
    assert_eq!(cart_after["buyer"]["gstin"], Value::Null, "{cart_after}");
    let export = shop.get("gita", "me/personal-data").await;
    assert!(
        !export.to_string().contains(GSTIN) && !export.to_string().contains(EMAIL),
        "the export still shows them: {export}"
    );
    assert_eq!(export["orders"][0]["total_minor"], paid["total_minor"]);
    assert!(common::where_in_clear(&shop.env, GSTIN).await.is_empty());
    assert!(common::where_in_clear(&shop.env, EMAIL).await.is_empty());

    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let started = Instant::now();
    loop {
        let trail: Value = shop
            .http
            .get(format!(
                "{}/admin/audit?subject_kind=person&subject_id={gita}",
                shop.base
            ))
            .header("authorization", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = trail["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() {
            // Both erasures were answered once their events were
            // acknowledged: the topic holds everything they wrote.
            let ids: std::collections::BTreeSet<String> = shop
                .env
                .decoded(&schemas::topics::AUDIT_EVENTS)
                .await
                .into_iter()
                .filter(|e| e.action == "person.erased" && e.subject_id == gita)
                .map(|e| e.event_id)
                .collect();
            assert_eq!(ids.len(), 1, "{ids:?}");
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM audit_log WHERE action = 'person.erased' AND subject_id = $1",
            )
            .bind(&gita)
            .fetch_one(&shop.env.pool)
            .await
            .unwrap();
            assert_eq!(n, 1, "{trail}");
            assert_eq!(events[0]["actor"], format!("user:{gita}"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no erasure audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A guest has no account to erase themselves: an admin erases them by
/// the email they gave at checkout. Their GSTIN and address (sealed under
/// their cart's key, linked to the address's one-way reference) read as
/// absent afterwards, the order keeps its money, and the audit trail holds
/// the erasure under the reference, never the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_erases_a_guest_by_the_email_they_gave() {
    const EMAIL: &str = "Guest.Person@Buyers.example";
    let shop = Shop::open(None).await;
    let created: Value = shop
        .http
        .post(format!("{}/cart", shop.base))
        .json(&json!({"items": [{"internship_id": "design", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cart = created["cart_token"].as_str().unwrap().to_owned();
    let set = shop
        .http
        .put(format!("{}/cart/{cart}/buyer", shop.base))
        .json(&json!({"country": "IN", "state": "KA", "gstin": "29ABCDE1234F1Z5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 202);
    let version = set.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    let seen: Value = shop
        .http
        .get(format!("{}/cart/{cart}?version={version}", shop.base))
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["buyer"]["gstin"], "29ABCDE1234F1Z5", "{seen}");
    let placed: Value = shop
        .http
        .post(format!("{}/order", shop.base))
        .json(&json!({"cart_token": cart, "email": EMAIL}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = placed["order_token"].as_str().unwrap().to_owned();
    let read = || async {
        shop.http
            .get(format!("{}/order/{order}", shop.base))
            .header("prefer", "wait=30")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = read().await;
    assert!(
        before["buyer_email"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case(EMAIL)),
        "{before}"
    );
    assert_eq!(before["placed"]["buyer"]["gstin"], "29ABCDE1234F1Z5");

    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let erase = |reason: &'static str| {
        shop.http
            .post(format!("{}/admin/erasures", shop.base))
            .header("authorization", admin.clone())
            .json(&json!({"email": "  guest.person@buyers.EXAMPLE ", "reason": reason}))
            .send()
    };
    let erased = erase("the guest asked, ticket 4711").await.unwrap();
    assert_eq!(erased.status(), 200);
    assert_eq!(erased.json::<Value>().await.unwrap()["erased_keys"], 1);
    let after = read().await;
    assert_eq!(after["buyer_email"], Value::Null, "{after}");
    assert_eq!(after["placed"]["buyer"]["gstin"], Value::Null, "{after}");
    assert_eq!(after["total_minor"], before["total_minor"]);
    // Nothing left to erase; a bad request is refused with our body.
    let again = erase("asked twice").await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["erased_keys"], 0);
    let bad = shop
        .http
        .post(format!("{}/admin/erasures", shop.base))
        .header("authorization", admin.clone())
        .json(&json!({"email": "not an address", "reason": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    // Audited under the address's reference, not the address.
    let started = Instant::now();
    loop {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT subject_id, actor, reason FROM audit_log
             WHERE action = 'person.erased' AND subject_kind = 'email' ORDER BY at",
        )
        .fetch_all(&shop.env.pool)
        .await
        .unwrap();
        if rows.len() == 2 {
            assert!(
                rows[0].0.starts_with("email:") && !rows[0].0.contains('@'),
                "{rows:?}"
            );
            assert_eq!(rows[0].1, "admin:ops");
            assert!(rows[0].2.contains("ticket 4711"), "{rows:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A master key is rotated by re-wrapping the data keys under the new
/// one: after `rotate`, the old master key can leave `PII_MASTER_KEYS` and
/// every sealed value still opens; an erased person's values do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_survives_a_master_key_rotation_and_not_an_erasure() {
    use platform::pii::{Keyring, Opened, Vault};
    let env = TestEnv::new().await;
    sinks::MIGRATOR.run(&env.pool).await.unwrap();
    let (k1, k2) = (Keyring::generate_key(), Keyring::generate_key());
    let old = Vault::new(
        env.pool.clone(),
        Keyring::parse(&format!("k1:{k1}")).unwrap(),
    );
    let kept = old.seal("user:ana", "29ABCDE1234F1Z5").await.unwrap();
    let gone = old.seal("user:bo", "27ABCDE1234F1Z5").await.unwrap();
    assert_ne!(
        kept,
        old.seal("user:ana", "29ABCDE1234F1Z5").await.unwrap(),
        "a fresh nonce each time"
    );

    let both = Vault::new(
        env.pool.clone(),
        Keyring::parse(&format!("k2:{k2},k1:{k1}")).unwrap(),
    );
    assert_eq!(both.rotate().await.unwrap(), 2);
    assert_eq!(both.rotate().await.unwrap(), 0, "nothing left under k1");
    let masters: Vec<String> = sqlx::query_scalar("SELECT DISTINCT master_id FROM pii_keys")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(masters, ["k2"]);

    let new = Vault::new(
        env.pool.clone(),
        Keyring::parse(&format!("k2:{k2}")).unwrap(),
    );
    assert_eq!(
        new.open(&kept).await.unwrap(),
        Opened::Plain("29ABCDE1234F1Z5".into())
    );
    assert!(new.erase("user:bo").await.unwrap());
    assert!(!new.erase("user:bo").await.unwrap());
    assert_eq!(new.open(&gone).await.unwrap(), Opened::Erased);
    // Another person's key opens nothing of ana's: the key id is bound in.
    let forged = kept.replacen(
        schemas::sealed::key_id(&kept).unwrap(),
        schemas::sealed::key_id(&new.seal("user:cy", "x").await.unwrap()).unwrap(),
        1,
    );
    assert!(new.open(&forged).await.is_err());
    // A plain value from before sealing reads as itself.
    assert_eq!(
        new.open("29ABCDE1234F1Z5").await.unwrap(),
        Opened::Plain("29ABCDE1234F1Z5".into())
    );
}
