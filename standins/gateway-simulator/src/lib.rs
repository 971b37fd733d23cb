//! The gateway simulator: one service that speaks the Razorpay and Stripe
//! endpoints our clients use, with the providers' request validation,
//! error bodies and response shapes, all state in memory.
//!
//! - [`razorpay`]: `/v1/orders…`, `/v1/payments/{id}/refund(s)` (Basic auth);
//! - [`stripe`]: `/v1/checkout/sessions…`, `/v1/refunds` (Bearer key,
//!   form bodies, `Idempotency-Key` replayed or refused as Stripe does);
//! - [`checkout`]: the hosted page per session (`GET /checkout/{id}`: pay
//!   by card or UPI, fail, or leave pending) and the same actions as a
//!   JSON API for tests and benchmarks (`POST /sim/sessions/{id}/pay`);
//! - [`webhooks`]: signed deliveries (`X-Razorpay-Signature` and
//!   `x-razorpay-event-id`; `Stripe-Signature` with `t=` and `v1=`) from a
//!   bounded queue, retried on non-2xx, duplicated or reordered on request;
//! - [`faults`]: the knobs on the provider API (latency, errors, timeouts)
//!   and faults forced by tests (`POST /sim/faults`).
//!
//! `/healthz`, `/readyz` and `/metrics` come from `platform::ops`.
//! [`Simulator::build`] binds (port 0 in tests) so the address is known
//! before serving, as the other services' `Application::build` does.

pub mod checkout;
pub mod config;
pub mod faults;
pub mod razorpay;
pub mod stripe;
pub mod telemetry;
pub mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use rand::distr::{Alphanumeric, SampleString};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

use crate::telemetry::SimulatorRequest;
use gateways::razorpay::transformers as rz;
use gateways::stripe::transformers as st;

/// Shared by every handler.
pub(crate) struct App {
    pub config: Config,
    /// Where the hosted pages are reached, without a trailing slash.
    pub public_url: String,
    store: Mutex<Store>,
    pub outbox: webhooks::Outbox,
    /// Turns true at shutdown: hung requests and retry waits end.
    pub stop: watch::Receiver<bool>,
}

impl App {
    /// The state. A handler that panicked while holding it left it as it
    /// was at the panic; the simulator goes on with that rather than
    /// refusing every later request.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves at shutdown.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }
}

/// Everything the simulator knows, in memory.
#[derive(Default)]
pub(crate) struct Store {
    pub orders: HashMap<String, rz::Order>,
    /// Order ids, oldest first (lists answer newest first).
    pub order_ids: Vec<String>,
    /// Order ids by receipt, oldest first: the connector looks an order up
    /// by receipt before creating one, and a scan of every order made the
    /// simulator slower with every order it had seen.
    pub order_ids_by_receipt: HashMap<String, Vec<String>>,
    pub payments: HashMap<String, rz::Payment>,
    pub payment_ids: Vec<String>,
    /// Payment ids by order, oldest first.
    pub payment_ids_by_order: HashMap<String, Vec<String>>,
    pub rz_refunds: HashMap<String, rz::RefundEntity>,
    pub rz_refund_ids: Vec<String>,
    pub sessions: HashMap<String, stripe::StoredSession>,
    pub intents: HashMap<String, st::PaymentIntent>,
    pub charges: HashMap<String, st::Charge>,
    pub st_refunds: HashMap<String, st::RefundObject>,
    pub idempotency: HashMap<String, stripe::SavedAnswer>,
    /// Faults forced on the next provider API calls, in order, each for
    /// any method or only for one (`GET`, `POST`).
    pub forced: VecDeque<(faults::Fault, Option<String>)>,
}

impl Store {
    /// Keeps a Razorpay payment of order `order_id`, listed and indexed.
    pub(crate) fn add_payment(&mut self, order_id: &str, payment: rz::Payment) {
        self.payment_ids.push(payment.id.clone());
        self.payment_ids_by_order
            .entry(order_id.to_owned())
            .or_default()
            .push(payment.id.clone());
        self.payments.insert(payment.id.clone(), payment);
    }
}

/// A provider-style id: `prefix` and `len` random letters and digits.
pub(crate) fn new_id(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), len)
    )
}

/// Unix seconds: the providers' clock.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub struct Simulator {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
}

impl Simulator {
    /// Binds the listener and starts the webhook senders.
    pub async fn build(config: Config) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let (stop, stop_rx) = watch::channel(false);
        let outbox = webhooks::Outbox::start(&config, stop_rx.clone())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let app = Arc::new(App {
            config,
            public_url,
            store: Mutex::new(Store::default()),
            outbox,
            stop: stop_rx,
        });
        let provider_api = razorpay::routes(app.clone())
            .merge(stripe::routes(app.clone()))
            .layer(middleware::from_fn_with_state(app.clone(), faults::apply));
        let router = provider_api
            .merge(checkout::routes())
            .with_state(app.clone())
            .merge(platform::ops::router(platform::ops::Readiness::new()))
            .layer(middleware::from_fn(track));
        Ok(Simulator {
            listener,
            router,
            addr,
            app,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>`: the base URL both clients take.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `shutdown` completes; then hung requests end, webhook
    /// retries stop, and requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, public_url = %self.app.public_url, "gateway simulator listening");
        let expiry = tokio::spawn(expire_sessions(self.app.clone()));
        let stop = self.stop;
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await;
        expiry.abort();
        result
    }
}

/// Expires open Stripe sessions whose `expires_at` passed (each second),
/// sending `checkout.session.expired` as Stripe does.
async fn expire_sessions(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = app.stopped() => return,
        }
        let events = stripe::expire_due(&app, now());
        app.outbox.send(events).await;
    }
}

/// Logs and counts every request by route template.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    SimulatorRequest {
        method: &method,
        route: &route,
        path: &path,
        status: response.status().as_u16(),
        latency: start.elapsed(),
    }
    .emit();
    response
}
