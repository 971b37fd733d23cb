//! Test harness: a gateway simulator on port 0, a webhook receiver on port
//! 0 that records every delivery (and refuses the next ones on request),
//! our two clients pointed at the simulator, and typed helpers for the
//! simulator's JSON API. Each test gets its own of everything.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use gateway_simulator::{Config, Simulator};
use gateways::{razorpay, stripe};
use gateways::{Buyer, Gateway, IdempotencyKey, Line, OrderId, SessionRequest};
use schemas::{Currency, Money};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One webhook delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub provider: Gateway,
    /// What the receiver answered (500 when told to refuse).
    pub status: u16,
    pub body: Vec<u8>,
    pub razorpay_signature: Option<String>,
    pub razorpay_event_id: Option<String>,
    pub stripe_signature: Option<String>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }

    /// Razorpay's `event`, Stripe's `type`.
    pub fn kind(&self) -> String {
        let j = self.json();
        j.get("event")
            .or_else(|| j.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    }

    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

#[derive(Default)]
struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
    notify: Notify,
    refuse: AtomicUsize,
}

/// A webhook endpoint: `POST /razorpay` and `POST /stripe`.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let app = Router::new()
            .route("/{provider}", post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            url,
            inbox,
            _stop: stop,
        }
    }

    /// The next `n` deliveries are answered 500.
    pub fn refuse_next(&self, n: usize) {
        self.inbox.refuse.store(n, Ordering::SeqCst);
    }

    /// Every delivery of `provider` so far (refused ones too), once at
    /// least `n` were accepted; fails after 15 s.
    pub async fn wait_accepted(&self, provider: Gateway, n: usize) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let notified = self.inbox.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so no delivery slips between.
            notified.as_mut().enable();
            let seen = self.of(provider);
            if seen.iter().filter(|d| d.accepted()).count() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let kinds: Vec<_> = seen.iter().map(|d| (d.kind(), d.status)).collect();
                panic!("waited 15 s for {n} accepted {provider} webhooks; saw {kinds:?}");
            }
        }
    }

    pub fn of(&self, provider: Gateway) -> Vec<Delivery> {
        self.inbox
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.provider == provider)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let provider = match provider.as_str() {
        "razorpay" => Gateway::Razorpay,
        "stripe" => Gateway::Stripe,
        _ => return StatusCode::NOT_FOUND,
    };
    let refuse = inbox
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
    };
    inbox.deliveries.lock().unwrap().push(Delivery {
        provider,
        status: status.as_u16(),
        body: body.to_vec(),
        razorpay_signature: header("x-razorpay-signature"),
        razorpay_event_id: header("x-razorpay-event-id"),
        stripe_signature: header("stripe-signature"),
    });
    inbox.notify.notify_waiters();
    status
}

/// A simulator sending its webhooks to its own receiver.
pub struct Sim {
    pub url: String,
    pub config: Config,
    pub receiver: Receiver,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub async fn spawn() -> Sim {
    spawn_with(|_| {}).await
}

/// A simulator with `tweak` applied to its development configuration
/// (webhooks retried after 10 ms).
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Sim {
    platform::telemetry::init("gateways-tests");
    let receiver = Receiver::start().await;
    let mut config = Config::for_tests("127.0.0.1:0".parse().unwrap());
    config.razorpay.webhook_url = Some(format!("{}/razorpay", receiver.url));
    config.stripe.webhook_url = Some(format!("{}/stripe", receiver.url));
    config.delivery.first_retry = Duration::from_millis(10);
    tweak(&mut config);
    let simulator = Simulator::build(config.clone())
        .await
        .expect("the simulator binds a free port");
    let url = simulator.url();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(simulator.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Sim {
        url,
        config,
        receiver,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Sim {
    pub fn razorpay_config(&self) -> razorpay::Config {
        razorpay::Config {
            base_url: self.url.clone(),
            key_id: self.config.razorpay.key_id.clone(),
            key_secret: self.config.razorpay.key_secret.clone(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn razorpay(&self) -> razorpay::Client {
        razorpay::Client::new(self.razorpay_config()).unwrap()
    }

    pub fn stripe_config(&self) -> stripe::Config {
        stripe::Config {
            base_url: self.url.clone(),
            secret_key: self.config.stripe.secret_key.clone(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn stripe(&self) -> stripe::Client {
        stripe::Client::new(self.stripe_config()).unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("the simulator answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
        };
        (status, json)
    }

    /// `POST /sim/sessions/{id}/pay`.
    pub async fn pay(&self, id: &str, method: &str) -> (u16, Value) {
        self.post(
            &format!("/sim/sessions/{id}/pay"),
            serde_json::json!({ "method": method }),
        )
        .await
    }

    pub async fn fail(&self, id: &str) -> (u16, Value) {
        self.post(&format!("/sim/sessions/{id}/fail"), serde_json::json!({}))
            .await
    }

    pub async fn expire(&self, id: &str) -> (u16, Value) {
        self.post(&format!("/sim/sessions/{id}/expire"), Value::Null)
            .await
    }

    /// `POST /sim/faults`.
    pub async fn force(&self, faults: Value) {
        let (status, body) = self.post("/sim/faults", faults).await;
        assert_eq!(status, 204, "{body}");
    }

    pub async fn get_json(&self, path: &str, auth: Gateway) -> (u16, Value) {
        let request = self.http.get(format!("{}{path}", self.url));
        let request = match auth {
            Gateway::Razorpay => request.basic_auth(
                &self.config.razorpay.key_id,
                Some(&self.config.razorpay.key_secret),
            ),
            Gateway::Stripe => request.bearer_auth(&self.config.stripe.secret_key),
        };
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

pub fn inr(minor: i64) -> Money {
    Money::from_minor(minor, Currency::INR)
}

/// An order of two lines (₹499 + 2 × ₹299 = ₹1097), payable for an hour.
pub fn order(id: &str) -> SessionRequest {
    SessionRequest {
        order_id: OrderId::parse(id).unwrap(),
        idempotency_key: IdempotencyKey::parse(&format!("session:{id}:1")).unwrap(),
        amount: inr(109_700),
        lines: vec![
            Line {
                name: "Rust backend internship".into(),
                unit_amount: inr(49_900),
                quantity: 1,
            },
            Line {
                name: "Data science internship".into(),
                unit_amount: inr(29_900),
                quantity: 2,
            },
        ],
        buyer: Buyer {
            email: Some("asha@example.com".into()),
            name: Some("Asha Rao".into()),
            phone: Some("+919900000000".into()),
        },
        success_url: "https://shop.test/paid?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://shop.test/cart".into(),
        expires_at: now() + 3600,
        metadata: BTreeMap::from([("cart_token".to_owned(), "c0ffee".to_owned())]),
    }
}

/// A fresh order id per call, so tests never share one.
pub fn order_id(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
