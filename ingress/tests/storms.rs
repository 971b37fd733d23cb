//! Webhook storms, through the real stack (ingress, Kafka, processors,
//! sinks, Postgres, the gateway simulator's own signed webhooks): the
//! webhooks of a set of orders (paid, failed, failed then paid) are
//! captured, then every one is delivered five times, shuffled, with forged
//! and stale (or tampered) copies mixed in. Every forged copy is refused,
//! every order ends in its one right state, and each paid order is enrolled
//! once. Once with every stage in process, once killing (SIGKILL, inside an
//! open batch) the webhook, order and enrollment processors mid-storm.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use common::{token, ChildGuard, TestEnv, JWT_SECRET};
use processors::payments::routing::Routing;

/// How long a faulted processor holds each batch open (the kill lands in it).
const HOLD: Duration = Duration::from_millis(1_500);
const HOLD_MS: &str = "1500";

/// A webhook as the simulator sent it.
#[derive(Clone)]
struct Delivery {
    path: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Captured = Arc<Mutex<Vec<Delivery>>>;

/// A stand-in for the ingress's webhook routes that keeps what the
/// simulator sends (and says 200), so the test can deliver it as it likes.
async fn capture() -> (SocketAddr, Captured) {
    use axum::routing::post;
    let captured: Captured = Arc::default();
    let keep = |path: &'static str, captured: Captured| {
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let captured = captured.clone();
            async move {
                let headers = headers
                    .iter()
                    .filter(|(k, _)| {
                        let k = k.as_str();
                        k.starts_with("x-razorpay")
                            || k.starts_with("stripe-")
                            || k == "content-type"
                    })
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                captured.lock().unwrap().push(Delivery {
                    path,
                    headers,
                    body: body.to_vec(),
                });
                "ok"
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/webhooks/razorpay",
            post(keep("/webhooks/razorpay", captured.clone())),
        )
        .route(
            "/webhooks/stripe",
            post(keep("/webhooks/stripe", captured.clone())),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, captured)
}

/// A copy no gateway sent: signed with a secret not ours, stale (Stripe,
/// 301 s old), or with its body changed after signing (Razorpay).
fn forgeries(d: &Delivery) -> Vec<Delivery> {
    let now = chrono::Utc::now().timestamp();
    let with = |name: &str, value: String, body: Vec<u8>| {
        let mut copy = d.clone();
        copy.headers.retain(|(k, _)| k != name);
        copy.headers.push((name.to_owned(), value));
        copy.body = body;
        copy
    };
    if d.path.ends_with("stripe") {
        vec![
            with(
                "stripe-signature",
                gateways::stripe::webhook::header(now, &d.body, &["whsec_not_ours"]),
                d.body.clone(),
            ),
            with(
                "stripe-signature",
                gateways::stripe::webhook::header(
                    now - 301,
                    &d.body,
                    &[common::sim_credentials().stripe.webhook_secrets[0].as_str()],
                ),
                d.body.clone(),
            ),
        ]
    } else {
        let signature = d
            .headers
            .iter()
            .find(|(k, _)| k == "x-razorpay-signature")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut tampered = d.body.clone();
        tampered.extend_from_slice(b" ");
        vec![
            with(
                "x-razorpay-signature",
                gateways::razorpay::webhook::sign("not_our_secret", &d.body),
                d.body.clone(),
            ),
            with("x-razorpay-signature", signature, tampered),
        ]
    }
}

/// Fisher–Yates with a small xorshift: the order is random but printed, so
/// a failing storm can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// How an order's buyer deals with the gateway's page.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Pays,
    Fails,
    FailsThenPays,
}

struct Storm {
    env: TestEnv,
    http: reqwest::Client,
    ingress: String,
    sim: String,
    captured: Captured,
    children: Vec<ChildGuard>,
}

impl Storm {
    /// The stack, the simulator's webhooks going to the capture, sessions
    /// opened through `gateway`; the webhook, order and enrollment
    /// processors in process, or as child processes holding each batch
    /// open for [`HOLD`] when `faulted`.
    async fn start(gateway: &str, faulted: bool) -> Storm {
        let env = TestEnv::new().await;
        let ingress = env.spawn_ingress().await;
        let (capture, captured) = capture().await;
        let sim = env.spawn_gateway_simulator(Some(capture)).await;
        let routing = Routing::parse(&format!("*={gateway}")).unwrap();
        env.spawn_gateway_worker_with(common::test_gateways(&sim, 2, |g| g.routing = routing));
        env.spawn_cart_processor();
        env.spawn_coupon_processor();
        env.spawn_sinks();
        env.spawn_webhook_retry(processors::webhook::retry::RetryPolicy {
            base_ms: 100,
            max_delay_ms: 400,
            limit: 30,
        });
        let mut children = Vec::new();
        if faulted {
            for name in ["webhook", "order", "enrollment"] {
                children.push(Storm::child(&env, name, true));
            }
        } else {
            env.spawn_webhook_processor();
            env.spawn_order_processor();
            env.spawn_enrollment_processor();
        }
        Storm {
            env,
            http: reqwest::Client::new(),
            ingress: format!("http://{ingress}"),
            sim,
            captured,
            children,
        }
    }

    fn child(env: &TestEnv, name: &str, hold: bool) -> ChildGuard {
        let mut envs = vec![("PROCESSOR_INSTANCE", "storm")];
        if hold {
            envs.push(("FAULT_HOLD_BATCH_MS", HOLD_MS));
        }
        env.child_with("processors", &[name], &envs)
    }

    fn bearer(user: &str) -> String {
        format!("Bearer {}", token(user, "user", 600, JWT_SECRET))
    }

    async fn api(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1/{path}", self.ingress))
            .header("authorization", Storm::bearer(user))
            .header("prefer", "wait=30");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A placed order of `user` with its payment session open; (order, session).
    async fn order_with_session(&self, user: &str) -> (String, String) {
        use reqwest::Method;
        let cart = self
            .api(
                user,
                Method::POST,
                "cart",
                Some(json!({"items": [{"internship_id": "design", "quantity": 1}]})),
            )
            .await;
        let token = cart["cart_token"].as_str().unwrap().to_owned();
        let version = cart["version"].as_i64().unwrap();
        self.api(
            user,
            Method::GET,
            &format!("cart/{token}?version={version}"),
            None,
        )
        .await;
        let placed = self
            .api(
                user,
                Method::POST,
                "order",
                Some(json!({"cart_token": token})),
            )
            .await;
        let order = placed["order_token"].as_str().unwrap().to_owned();
        let started = Instant::now();
        loop {
            let o = self
                .api(user, Method::GET, &format!("order/{order}"), None)
                .await;
            if let Some(s) = o["attempts"][0]["session_id"].as_str() {
                return (order, s.to_owned());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no session: {o}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sim(&self, session: &str, what: &str) {
        let res = self
            .http
            .post(format!("{}/sim/sessions/{session}/{what}", self.sim))
            .json(&json!({"method": "card"}))
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "{what}: {}",
            res.text().await.unwrap()
        );
    }

    /// Waits until the capture has at least `min` webhooks and no new one
    /// came for a second; all of them.
    async fn captured_all(&self, min: usize) -> Vec<Delivery> {
        let started = Instant::now();
        let mut last = (0, Instant::now());
        loop {
            let n = self.captured.lock().unwrap().len();
            if n != last.0 {
                last = (n, Instant::now());
            }
            if n >= min && last.1.elapsed() > Duration::from_secs(1) {
                return self.captured.lock().unwrap().clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{n} of at least {min} webhooks"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Delivers `d` to the ingress; its status.
    async fn deliver(&self, d: &Delivery) -> u16 {
        let mut req = self
            .http
            .post(format!("{}{}", self.ingress, d.path))
            .body(d.body.clone());
        for (k, v) in &d.headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Places `fates.len()` orders, settles each at the gateway as its fate
    /// says, and returns (orders with their fate, the storm: every real
    /// webhook five times and its forgeries, shuffled, each marked genuine
    /// or not).
    async fn prepare(
        &self,
        fates: &[Fate],
        seed: u64,
    ) -> (Vec<(String, Fate)>, Vec<(Delivery, bool)>) {
        let mut orders = Vec::new();
        for (i, fate) in fates.iter().enumerate() {
            let (order, session) = self.order_with_session(&format!("storm-{i}")).await;
            match fate {
                Fate::Pays => self.sim(&session, "pay").await,
                Fate::Fails => self.sim(&session, "fail").await,
                Fate::FailsThenPays => {
                    self.sim(&session, "fail").await;
                    self.sim(&session, "pay").await;
                }
            }
            orders.push((order, *fate));
        }
        // At least one webhook per thing the buyer did at the gateway.
        let settled = fates.len() + fates.iter().filter(|f| **f == Fate::FailsThenPays).count();
        let real = self.captured_all(settled).await;
        let mut storm: Vec<(Delivery, bool)> = Vec::new();
        for d in &real {
            storm.extend(std::iter::repeat_n((d.clone(), true), 5));
            storm.extend(forgeries(d).into_iter().map(|f| (f, false)));
        }
        eprintln!(
            "storm: {} real webhooks, {} deliveries, seed {seed}",
            real.len(),
            storm.len()
        );
        shuffle(&mut storm, seed);
        (orders, storm)
    }

    /// Sends the storm, 16 at a time; every genuine copy is taken (200),
    /// every forged one refused (400).
    async fn blow(&self, storm: &[(Delivery, bool)]) {
        let answers: Vec<(u16, bool)> = futures::stream::iter(storm.iter())
            .map(|(d, genuine)| async move { (self.deliver(d).await, *genuine) })
            .buffer_unordered(16)
            .collect()
            .await;
        for (status, genuine) in &answers {
            assert_eq!(
                *status,
                if *genuine { 200 } else { 400 },
                "genuine: {genuine}"
            );
        }
    }

    /// Waits until every order is in its right state in Postgres, then
    /// checks each was paid (or failed) once and each paid order enrolled once.
    async fn assert_settled(&self, orders: &[(String, Fate)]) {
        let started = Instant::now();
        let tokens: Vec<String> = orders.iter().map(|(o, _)| o.clone()).collect();
        let want = |fate: Fate| {
            if fate == Fate::Fails {
                "failed"
            } else {
                "paid"
            }
        };
        loop {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT o.order_token, o.status,
                        (SELECT count(*) FROM enrollments e WHERE e.order_token = o.order_token)
                 FROM orders o WHERE o.order_token = ANY($1)",
            )
            .bind(&tokens)
            .fetch_all(&self.env.pool)
            .await
            .unwrap();
            let done = rows.len() == orders.len()
                && orders.iter().all(|(o, fate)| {
                    rows.iter().any(|(t, s, n)| {
                        t == o && s == want(*fate) && *n == i64::from(*fate != Fate::Fails)
                    })
                });
            if done {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "orders not settled: {rows:?} (want {:?})",
                orders
                    .iter()
                    .map(|(o, f)| (o, want(*f)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (order, fate) in orders {
            let paid: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM order_status_history
                 WHERE order_token = $1 AND to_status = 'paid' AND refused_code IS NULL",
            )
            .bind(order)
            .fetch_one(&self.env.pool)
            .await
            .unwrap();
            assert_eq!(
                paid,
                i64::from(*fate != Fate::Fails),
                "{order} ({fate:?}) paid {paid} times"
            );
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM enrollments WHERE order_token = ANY($1) AND status = 'active'",
        )
        .bind(&tokens)
        .fetch_one(&self.env.pool)
        .await
        .unwrap();
        let paid = orders.iter().filter(|(_, f)| *f != Fate::Fails).count();
        assert_eq!(
            active as usize, paid,
            "one active enrollment per paid order"
        );
    }

    /// Every accepted delivery is on `webhooks.inbound`, and none forged.
    async fn assert_inbound(&self, genuine: usize) {
        let n = self
            .env
            .read_topic(&schemas::topics::WEBHOOKS_INBOUND.def, true)
            .await
            .len();
        assert_eq!(
            n, genuine,
            "each genuine delivery written once, no forged one"
        );
    }
}

const FATES: [Fate; 6] = [
    Fate::Pays,
    Fate::Pays,
    Fate::Fails,
    Fate::FailsThenPays,
    Fate::Pays,
    Fate::FailsThenPays,
];

fn seed() -> u64 {
    std::env::var("STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_razorpay_webhook_storm_settles_every_order_once() {
    let storm = Storm::start("razorpay", false).await;
    let (orders, deliveries) = storm.prepare(&FATES, seed()).await;
    storm.blow(&deliveries).await;
    storm.assert_settled(&orders).await;
    storm
        .assert_inbound(deliveries.iter().filter(|(_, g)| *g).count())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_webhook_storm_survives_killing_the_webhook_order_and_enrollment_processors() {
    let mut storm = Storm::start("stripe", true).await;
    let (orders, deliveries) = storm.prepare(&FATES, seed()).await;
    let env = &storm.env;
    let mut children = std::mem::take(&mut storm.children);
    let kills = async {
        // Each in turn, SIGKILLed inside an open batch, then restarted
        // under its instance name (fencing what it left open).
        for (child, (stage, name)) in children.iter_mut().zip([
            ("webhook-processor", "webhook"),
            ("order-processor", "order"),
            ("enrollment-processor", "enrollment"),
        ]) {
            let seen = child
                .kill9_in_flight(stage, HOLD, Duration::from_secs(90))
                .await;
            assert!(
                seen.uncommitted > 0.0,
                "{stage}: the kill hit work in flight"
            );
            *child = Storm::child(env, name, false);
        }
    };
    tokio::join!(storm.blow(&deliveries), kills);
    storm.assert_settled(&orders).await;
    storm
        .assert_inbound(deliveries.iter().filter(|(_, g)| *g).count())
        .await;
    drop(children);
}
