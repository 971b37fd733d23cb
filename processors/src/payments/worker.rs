//! The gateway worker: does what the order processor asks of a gateway
//! (open a payment session, look up where a session's payment stands,
//! refund a payment) and writes the result to the order.
//!
//! A look-up that finds the payment made answers with the very command a
//! webhook of that payment would (the same derived id), so a webhook and a
//! reconciliation pay the order once; anything else it finds changes
//! nothing (our own timer expires the attempt). A refund call answers
//! RefundStarted or RefundNotStarted; the refund's outcome comes by
//! webhook.
//!
//! [`Gateways::open`] tries the gateways the routing names for the order's
//! currency, first to last, skipping one whose breaker is open; each call
//! is retried (timeouts, 5xx and 429 only, with backoff and jitter) by
//! `gateways::retry`, every call is recorded, and the first session opened
//! is the answer. [`Worker`] is the stage on the shared runtime: per batch,
//! it opens every request's session, writes every result (acknowledged by
//! the broker), and only then commits its input offsets. A worker killed in
//! between reads the requests again and calls again with the same
//! idempotency keys: the gateway answers the session it already opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};

use gateways::{
    razorpay, retry, stripe, Buyer, Checkout, Connector, Gateway, GatewayError, IdempotencyKey,
    Line, OrderId, PaymentStatus, RefundRequest, Session, SessionRequest,
};
use platform::kafka::{self, GroupConsumer};
use platform::stage::{self, BatchEnd, BatchHandler, Record, Taken};
use schemas::ids;
use schemas::records::order::{
    GatewayCall, OrderCmd, OrderCommand, PaymentSucceeded, RefundNotStarted, RefundStarted,
    SessionFailed, SessionOpened,
};
use schemas::records::payments::{Job, LookUpJob, PaymentRequest, RefundJob};
use schemas::records::WireMoney;
use schemas::topics::{DEAD_LETTERS, ORDER_COMMANDS, PAYMENT_REQUESTS};
use schemas::{Codec, TopicDef};

use super::breaker::{Breaker, BreakerPolicy};
use super::routing::Routing;

const STAGE: &str = "gateway-worker";

/// Sessions opened at once, and requests taken per batch.
pub const SESSIONS_AT_ONCE: usize = 8;
pub const MAX_BATCH: usize = 16;

/// The longest one request may take, retries and fallback included.
const SESSION_DEADLINE: Duration = Duration::from_secs(20);

/// Stripe takes a session's `expires_at` 30 minutes to 24 hours ahead; a
/// token issued 30 minutes ahead is a little less by the time it is sent.
const STRIPE_MIN_AHEAD_SECS: i64 = 30 * 60 + 60;

/// The gateways, their breakers and the rules for calling them.
pub struct Gateways {
    pub razorpay: razorpay::Client,
    pub stripe: stripe::Client,
    pub routing: Routing,
    pub retry: retry::Policy,
    pub breaker: BreakerPolicy,
    /// Where a buyer goes back to when the order names no return URL.
    pub return_url: String,
    breakers: Mutex<HashMap<Gateway, Breaker>>,
}

impl Gateways {
    pub fn new(
        razorpay: razorpay::Client,
        stripe: stripe::Client,
        routing: Routing,
        retry: retry::Policy,
        breaker: BreakerPolicy,
        return_url: String,
    ) -> Gateways {
        Gateways {
            razorpay,
            stripe,
            routing,
            retry,
            breaker,
            return_url,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, gateway: Gateway) -> bool {
        let mut all = self
            .breakers
            .lock()
            .expect("breaker lock: no panics while held");
        let b = all
            .entry(gateway)
            .or_insert_with(|| Breaker::new(self.breaker));
        let allowed = b.allow(Instant::now());
        metrics()
            .breaker
            .with_label_values(&[gateway.as_str()])
            .set(b.state().gauge());
        allowed
    }

    fn record(&self, gateway: Gateway, ok: bool) {
        let mut all = self
            .breakers
            .lock()
            .expect("breaker lock: no panics while held");
        let b = all
            .entry(gateway)
            .or_insert_with(|| Breaker::new(self.breaker));
        if ok {
            b.success();
        } else {
            b.failure(Instant::now());
        }
        metrics()
            .breaker
            .with_label_values(&[gateway.as_str()])
            .set(b.state().gauge());
    }

    /// Does what `request` asks; what to tell its order, under which id
    /// (`None`: nothing to tell).
    pub async fn handle(&self, request: &PaymentRequest) -> Option<(String, OrderCmd)> {
        let result_id = |kind: &str| ids::derived(kind, &request.request_id, 0).to_string();
        match request.job() {
            Job::OpenSession => {
                let deadline = tokio::time::timeout(SESSION_DEADLINE, self.open(request)).await;
                let command = deadline.unwrap_or_else(|_| {
                    OrderCmd::SessionFailed(SessionFailed {
                        attempt: request.attempt,
                        failure: format!("no gateway answered within {SESSION_DEADLINE:?}"),
                        timed_out: true,
                        calls: Vec::new(),
                    })
                });
                Some((result_id("payment-session-result"), command))
            }
            Job::LookUp(job) => {
                let found = tokio::time::timeout(SESSION_DEADLINE, self.look_up(request, job))
                    .await
                    .ok()
                    .flatten()?;
                // The id a webhook of this payment carries
                // (`processors::webhook`): whichever comes first pays.
                let id = ids::derived(
                    "payment-succeeded",
                    &request.order_token,
                    i64::from(request.attempt),
                );
                Some((id.to_string(), found))
            }
            Job::Refund(job) => {
                let command = tokio::time::timeout(SESSION_DEADLINE, self.refund(request, job))
                    .await
                    .unwrap_or_else(|_| {
                        OrderCmd::RefundNotStarted(RefundNotStarted {
                            failure: format!("no answer within {SESSION_DEADLINE:?}"),
                            calls: Vec::new(),
                        })
                    });
                Some((result_id("payment-refund-result"), command))
            }
        }
    }

    /// Where `job`'s session's payment stands: a payment made is the
    /// order's PaymentSucceeded; anything else (open, processing, failed
    /// for now, expired, or the gateway not answering) tells nothing.
    async fn look_up(&self, request: &PaymentRequest, job: &LookUpJob) -> Option<OrderCmd> {
        let gateway = gateway_named(&job.gateway)?;
        let outcome = match gateway {
            Gateway::Razorpay => {
                retry::run(&self.retry, gateway, "look_up", || {
                    self.razorpay.look_up(&job.session_id)
                })
                .await
            }
            Gateway::Stripe => {
                retry::run(&self.retry, gateway, "look_up", || {
                    self.stripe.look_up(&job.session_id)
                })
                .await
            }
        };
        let label = match &outcome.result {
            Ok(PaymentStatus::Paid { .. }) => "paid",
            Ok(_) => "not_paid",
            Err(_) => "failed",
        };
        metrics()
            .lookups
            .with_label_values(&[gateway.as_str(), label])
            .inc();
        match outcome.result {
            Ok(PaymentStatus::Paid { payment_id, amount }) => {
                tracing::info!(%gateway, order = %platform::telemetry::token_ref(&request.order_token), attempt = request.attempt, payment = %payment_id, "reconciliation found a payment");
                Some(OrderCmd::PaymentSucceeded(PaymentSucceeded {
                    method: None,
                    attempt: request.attempt,
                    gateway: gateway.as_str().into(),
                    payment_ref: payment_id,
                    amount: WireMoney::try_from(&amount).ok()?,
                }))
            }
            Ok(other) => {
                tracing::info!(%gateway, order = %platform::telemetry::token_ref(&request.order_token), status = ?other, "reconciliation: not paid");
                None
            }
            Err(e) => {
                tracing::warn!(%gateway, order = %platform::telemetry::token_ref(&request.order_token), error = %e, "reconciliation look-up failed; the next round asks again");
                None
            }
        }
    }

    /// Refunds the attempt's payment in full, under the request id as the
    /// gateway's idempotency key.
    async fn refund(&self, request: &PaymentRequest, job: &RefundJob) -> OrderCmd {
        let not_started = |failure: String, calls| {
            OrderCmd::RefundNotStarted(RefundNotStarted { failure, calls })
        };
        let Some(gateway) = gateway_named(&job.gateway) else {
            return not_started(format!("unknown gateway {:?}", job.gateway), Vec::new());
        };
        let refund = (|| {
            Ok::<_, String>(RefundRequest {
                order_id: OrderId::parse(&gateway_reference(&request.order_token, request.attempt))
                    .map_err(|e| e.to_string())?,
                payment_id: job.payment_ref.clone(),
                amount: None,
                idempotency_key: IdempotencyKey::parse(&request.request_id)
                    .map_err(|e| e.to_string())?,
            })
        })();
        let refund = match refund {
            Ok(r) => r,
            Err(e) => return not_started(format!("the refund cannot be sent: {e}"), Vec::new()),
        };
        let outcome = match gateway {
            Gateway::Razorpay => {
                retry::run(&self.retry, gateway, "refund", || {
                    self.razorpay.refund(&refund)
                })
                .await
            }
            Gateway::Stripe => {
                retry::run(&self.retry, gateway, "refund", || {
                    self.stripe.refund(&refund)
                })
                .await
            }
        };
        let calls = outcome
            .attempts
            .iter()
            .map(|a| GatewayCall {
                gateway: gateway.as_str().into(),
                outcome: a.error.as_ref().map_or("ok", GatewayError::kind).into(),
                latency_ms: i64::try_from(a.latency.as_millis()).unwrap_or(i64::MAX),
                error: a.error.as_ref().map(ToString::to_string),
            })
            .collect();
        metrics()
            .refunds
            .with_label_values(&[
                gateway.as_str(),
                if outcome.result.is_ok() {
                    "started"
                } else {
                    "failed"
                },
            ])
            .inc();
        match outcome.result {
            Ok(r) => OrderCmd::RefundStarted(RefundStarted {
                refund_id: r.id,
                gateway: gateway.as_str().into(),
                calls,
            }),
            Err(e) => {
                tracing::warn!(%gateway, order = %platform::telemetry::token_ref(&request.order_token), error = %e, "refund not started");
                not_started(format!("{gateway}: {e}"), calls)
            }
        }
    }

    /// Opens `request`'s session; what to tell its order.
    pub async fn open(&self, request: &PaymentRequest) -> OrderCmd {
        let session_request = match session_request(request, &self.return_url, now_secs()) {
            Ok(r) => r,
            Err(e) => {
                metrics()
                    .sessions
                    .with_label_values(&["none", "invalid"])
                    .inc();
                return OrderCmd::SessionFailed(SessionFailed {
                    attempt: request.attempt,
                    failure: format!("the request cannot be sent to a gateway: {e}"),
                    timed_out: false,
                    calls: Vec::new(),
                });
            }
        };
        let mut calls = Vec::new();
        let mut failures = Vec::new();
        let mut timed_out = false;
        for &gateway in self.routing.gateways(&request.amount.currency) {
            if !self.allow(gateway) {
                calls.push(GatewayCall {
                    gateway: gateway.as_str().into(),
                    outcome: "breaker_open".into(),
                    latency_ms: 0,
                    error: None,
                });
                failures.push(format!("{gateway}: circuit open"));
                continue;
            }
            let outcome = match gateway {
                Gateway::Razorpay => {
                    retry::run(&self.retry, gateway, "create_session", || {
                        self.razorpay.create_session(&session_request)
                    })
                    .await
                }
                Gateway::Stripe => {
                    retry::run(&self.retry, gateway, "create_session", || {
                        self.stripe.create_session(&session_request)
                    })
                    .await
                }
            };
            calls.extend(outcome.attempts.iter().map(|a| GatewayCall {
                gateway: gateway.as_str().into(),
                outcome: a.error.as_ref().map_or("ok", GatewayError::kind).into(),
                latency_ms: i64::try_from(a.latency.as_millis()).unwrap_or(i64::MAX),
                error: a.error.as_ref().map(ToString::to_string),
            }));
            match outcome.result {
                Ok(session) => {
                    self.record(gateway, true);
                    metrics()
                        .sessions
                        .with_label_values(&[gateway.as_str(), "opened"])
                        .inc();
                    return opened(request.attempt, &session, calls);
                }
                Err(e) => {
                    // Only a gateway in trouble trips its breaker; a refusal
                    // of this request (4xx) says nothing of its health.
                    self.record(gateway, !e.retryable());
                    metrics()
                        .sessions
                        .with_label_values(&[gateway.as_str(), "failed"])
                        .inc();
                    timed_out |= matches!(e, GatewayError::Timeout);
                    tracing::warn!(%gateway, error = %e, order = %platform::telemetry::token_ref(&request.order_token), "payment session not opened; trying the next gateway");
                    failures.push(format!("{gateway}: {e}"));
                }
            }
        }
        OrderCmd::SessionFailed(SessionFailed {
            attempt: request.attempt,
            failure: if failures.is_empty() {
                "no gateway is configured for this currency".into()
            } else {
                failures.join("; ")
            },
            timed_out,
            calls,
        })
    }
}

fn gateway_named(name: &str) -> Option<Gateway> {
    match name {
        "razorpay" => Some(Gateway::Razorpay),
        "stripe" => Some(Gateway::Stripe),
        _ => None,
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Our request in the gateways' terms: the order as one line of its total,
/// the request id as the idempotency key.
fn session_request(
    r: &PaymentRequest,
    return_url: &str,
    now_secs: i64,
) -> Result<SessionRequest, String> {
    let amount = r.amount.to_money().map_err(|e| e.to_string())?;
    // No cart token: a guest's cart token is a bearer secret.
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("order_token".to_owned(), r.order_token.clone());
    metadata.insert("attempt".to_owned(), r.attempt.to_string());
    if let Some(user) = &r.buyer_user_id {
        metadata.insert("user_id".to_owned(), user.clone());
    }
    Ok(SessionRequest {
        // One gateway order per attempt (Razorpay's `receipt`): a new
        // attempt must not find and reuse the last one's.
        order_id: OrderId::parse(&gateway_reference(&r.order_token, r.attempt))
            .map_err(|e| e.to_string())?,
        idempotency_key: IdempotencyKey::parse(&r.request_id).map_err(|e| e.to_string())?,
        amount,
        lines: vec![Line {
            name: r.description.clone(),
            unit_amount: amount,
            quantity: 1,
        }],
        buyer: Buyer {
            email: None,
            name: None,
            phone: None,
        },
        success_url: r
            .success_url
            .clone()
            .unwrap_or_else(|| return_url.to_owned()),
        cancel_url: r
            .cancel_url
            .clone()
            .unwrap_or_else(|| return_url.to_owned()),
        expires_at: (r.expires_at / 1000).max(now_secs + STRIPE_MIN_AHEAD_SECS),
        metadata,
    })
}

/// Our reference for an attempt at the gateways (Razorpay's `receipt`,
/// Stripe's `client_reference_id`): the order token and the attempt.
pub fn gateway_reference(order_token: &str, attempt: i32) -> String {
    format!("{order_token}-{attempt}")
}

fn opened(attempt: i32, session: &Session, calls: Vec<GatewayCall>) -> OrderCmd {
    let (checkout_url, razorpay_key_id) = match &session.checkout {
        Checkout::Redirect { url } => (Some(url.clone()), None),
        Checkout::Razorpay { key_id, .. } => (None, Some(key_id.clone())),
    };
    OrderCmd::SessionOpened(SessionOpened {
        attempt,
        gateway: session.gateway.as_str().into(),
        session_id: session.id.clone(),
        checkout_url,
        razorpay_key_id,
        expires_at: session.expires_at.saturating_mul(1000),
        calls,
    })
}

/// The stage: `payment.requests` in, results onto `order.commands`.
pub struct Worker {
    pub gateways: Arc<Gateways>,
    pub codec: Arc<Codec>,
    pub producer: FutureProducer,
    pub stall: stage::Stall,
}

impl BatchHandler for Worker {
    fn name(&self) -> &'static str {
        STAGE
    }

    fn input(&self) -> TopicDef {
        PAYMENT_REQUESTS.def
    }

    async fn assigned(
        &mut self,
        _consumer: &GroupConsumer,
        _parts: &[(String, i32)],
    ) -> anyhow::Result<()> {
        // Kafka's committed offsets say where to start: a request whose
        // result was written but not committed is opened again, harmlessly.
        Ok(())
    }

    fn revoked(&mut self, _parts: &[(String, i32)]) {}

    async fn batch(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
    ) -> anyhow::Result<BatchEnd> {
        let mut requests: Vec<Record<PaymentRequest>> = Vec::new();
        for msg in msgs {
            match stage::take(STAGE, &self.codec, &PAYMENT_REQUESTS, msg, &self.stall).await {
                Taken::Record(r) => requests.push(r),
                Taken::Dead(letter) => {
                    let (key, value) = stage::encode_dead_letter(&self.codec, &letter).await?;
                    let topic = self.codec.names().name(&DEAD_LETTERS.def);
                    self.producer
                        .send(
                            FutureRecord::to(&topic).key(&key).payload(&value),
                            Duration::from_secs(30),
                        )
                        .await
                        .map_err(|(e, _)| anyhow::anyhow!("dead letter not produced: {e}"))?;
                }
            }
        }
        // Independent orders: their sessions open side by side, a few at a
        // time, each within a deadline, so a slow gateway cannot keep the
        // batch past the consumer's poll interval (30 s).
        use futures::StreamExt;
        let calls: Vec<_> = requests
            .iter()
            .map(|r| {
                let (gateways, request) = (self.gateways.clone(), r.value.clone());
                async move { gateways.handle(&request).await }
            })
            .collect();
        let results: Vec<Option<(String, OrderCmd)>> = futures::stream::iter(calls)
            .buffered(SESSIONS_AT_ONCE)
            .collect()
            .await;
        // The calls are made; a kill from here until the commit below
        // leaves them made and unanswered (the crash test's window).
        stage::fault_hold().await;
        let topic = self.codec.names().name(&ORDER_COMMANDS.def);
        let mut sends = Vec::with_capacity(results.len());
        for (request, result) in requests.iter().zip(results) {
            let Some((command_id, command)) = result else {
                continue;
            };
            let answer = OrderCommand {
                command_id,
                order_token: request.value.order_token.clone(),
                issued_at: chrono::Utc::now().timestamp_millis(),
                actor: Some(STAGE.into()),
                command,
            };
            let value = self.codec.encode(&ORDER_COMMANDS, &answer).await?;
            let key = Codec::encode_key(&answer.order_token);
            let headers = kafka::trace_headers(&request.correlation_id, &request.value.request_id);
            let producer = self.producer.clone();
            let topic = topic.clone();
            sends.push(async move {
                producer
                    .send(
                        FutureRecord::to(&topic)
                            .key(&key)
                            .payload(&value)
                            .headers(headers),
                        Duration::from_secs(30),
                    )
                    .await
                    .map(drop)
                    .map_err(|(e, _)| anyhow::anyhow!("session result not produced: {e}"))
            });
        }
        for sent in futures::future::join_all(sends).await {
            sent?;
        }
        // Every result is acknowledged: the requests are done.
        let done = kafka::last_offsets(msgs.iter().copied());
        consumer.commit(&kafka::next_offsets(&done)?, CommitMode::Async)?;
        Ok(BatchEnd::Committed)
    }
}

struct Metrics {
    sessions: IntCounterVec,
    lookups: IntCounterVec,
    refunds: IntCounterVec,
    breaker: IntGaugeVec,
}

/// Registers the worker's metrics, so a first scrape has them.
pub fn register_metrics() {
    metrics();
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Fixed names and labels: building them cannot fail.
        let m = Metrics {
            sessions: IntCounterVec::new(
                Opts::new(
                    "payment_sessions_total",
                    "Payment sessions asked of a gateway, by gateway and outcome (opened, failed, invalid)",
                ),
                &["gateway", "outcome"],
            )
            .expect("valid metric"),
            lookups: IntCounterVec::new(
                Opts::new(
                    "payment_lookups_total",
                    "Reconciliation look-ups of a payment session, by gateway and outcome (paid, not_paid, failed)",
                ),
                &["gateway", "outcome"],
            )
            .expect("valid metric"),
            refunds: IntCounterVec::new(
                Opts::new(
                    "payment_refund_calls_total",
                    "Refunds asked of a gateway, by gateway and outcome (started, failed)",
                ),
                &["gateway", "outcome"],
            )
            .expect("valid metric"),
            breaker: IntGaugeVec::new(
                Opts::new(
                    "gateway_breaker_state",
                    "Circuit breaker per gateway: 0 closed, 1 open, 2 half-open",
                ),
                &["gateway"],
            )
            .expect("valid metric"),
        };
        // Closed until told otherwise: the breaker alert sees each gateway
        // from the first scrape.
        for gateway in ["razorpay", "stripe"] {
            m.breaker.with_label_values(&[gateway]).set(0);
        }
        let registry = prometheus::default_registry();
        for c in [
            Box::new(m.sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.lookups.clone()),
            Box::new(m.refunds.clone()),
            Box::new(m.breaker.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "payment metric not registered");
            }
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PaymentRequest {
        PaymentRequest {
            request_id: "5f0c6f0e-3b7e-5d2a-9c1e-0a1b2c3d4e5f".into(),
            order_token: "0123456789abcdef0123456789abcdef".into(),
            attempt: 2,
            amount: WireMoney {
                amount_minor: 58_882,
                currency: "INR".into(),
            },
            description: "Rust backend × 1".into(),
            buyer_user_id: Some("alice".into()),
            cart_token: "c".into(),
            success_url: None,
            cancel_url: Some("https://shop.example/cancel".into()),
            // 10 000 s after the epoch.
            expires_at: 10_000_000,
            refund: None,
            look_up: None,
        }
    }

    #[test]
    fn a_request_is_one_line_of_the_total_keyed_by_its_id() {
        // Sent at 9 000 s: the token's 10 000 is too near for Stripe.
        let r = session_request(&request(), "https://shop.example/back", 9_000).unwrap();
        assert_eq!(r.idempotency_key.as_str(), request().request_id);
        assert_eq!(
            r.order_id.as_str(),
            format!("{}-2", request().order_token),
            "one gateway order per attempt"
        );
        assert!(!r.metadata.contains_key("cart_token"));
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.lines[0].unit_amount, r.amount);
        assert_eq!(r.amount.to_minor().unwrap(), 58_882);
        assert_eq!(r.success_url, "https://shop.example/back", "the default");
        assert_eq!(r.cancel_url, "https://shop.example/cancel");
        assert_eq!(
            r.expires_at,
            9_000 + STRIPE_MIN_AHEAD_SECS,
            "Stripe's minimum"
        );
        let early = session_request(&request(), "x", 0).unwrap();
        assert_eq!(
            early.expires_at, 10_000,
            "the token's expiry when far enough"
        );
        assert_eq!(r.metadata["attempt"], "2");
    }
}
