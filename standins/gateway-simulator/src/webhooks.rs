//! Webhook delivery, signed as the providers sign: Razorpay
//! `X-Razorpay-Signature` (hex HMAC-SHA256 of the body with the webhook
//! secret) and `x-razorpay-event-id`; Stripe `Stripe-Signature: t=…,v1=…`
//! (one `v1` per configured secret, re-signed at each attempt, as Stripe
//! does).
//!
//! The events of one action (paying: `payment.captured` and `order.paid`)
//! are one batch, delivered in order by one sender; batches wait in a
//! bounded queue for a pool of senders. A full queue holds the action that
//! queues (its API call answers later) rather than dropping the batch: a
//! real gateway never loses an event silently. A delivery answered with a
//! non-2xx (or not at all) is retried with doubling waits, a bounded number
//! of times. The knobs duplicate deliveries (same event id) and reverse a
//! batch.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::{mpsc, watch, Mutex};

use super::config::{Config, Delivery, Knobs};
use super::now;
use crate::telemetry::WebhookDelivery;
use gateways::Gateway;

/// Batches waiting for a sender; beyond this the queuing action waits.
const QUEUE: usize = 1024;
/// Concurrent deliveries. A gateway delivers many events at once; four
/// sequential senders made the simulator the bound of a load test, and a
/// batch being retried (doubling waits) holds only its own sender.
const SENDERS: usize = 64;

/// One event, its body serialized once: what is signed is what is sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    pub provider: Gateway,
    pub kind: String,
    pub event_id: String,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Vec<Outgoing>>,
    knobs: Knobs,
}

impl Outbox {
    /// Starts the senders; they stop at shutdown or when the last
    /// `Outbox` is dropped.
    pub fn start(config: &Config, stop: watch::Receiver<bool>) -> Result<Outbox, reqwest::Error> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let sender = Arc::new(Sender {
            http: reqwest::Client::builder()
                .timeout(config.delivery.timeout)
                .build()?,
            razorpay_url: config.razorpay.webhook_url.clone(),
            razorpay_secret: config.razorpay.webhook_secret.clone(),
            stripe_url: config.stripe.webhook_url.clone(),
            stripe_secrets: config.stripe.webhook_secrets.clone(),
            delivery: config.delivery.clone(),
            stop,
        });
        for _ in 0..SENDERS {
            tokio::spawn(run_sender(rx.clone(), sender.clone()));
        }
        Ok(Outbox {
            queue,
            knobs: config.knobs.clone(),
        })
    }

    /// Queues the events of one action, with the knobs applied; waits for
    /// room when the queue is full.
    pub async fn send(&self, events: Vec<Outgoing>) {
        if events.is_empty() {
            return;
        }
        let rate = self.knobs.duplicate_rate;
        let batch = plan(events, self.knobs.reorder, || {
            rate > 0.0 && rand::random::<f64>() < rate
        });
        if self.queue.capacity() == 0 {
            tracing::warn!(
                queued = QUEUE,
                "webhook queue full; the action waits for a sender"
            );
        }
        if self.queue.send(batch).await.is_err() {
            // Only after shutdown: the senders are gone with the process.
            tracing::error!("webhook senders stopped; batch not delivered");
        }
    }
}

/// The delivery order of a batch: reversed when `reorder`, each event
/// followed by its duplicate when `duplicate()` says so.
pub(crate) fn plan(
    mut events: Vec<Outgoing>,
    reorder: bool,
    mut duplicate: impl FnMut() -> bool,
) -> Vec<Outgoing> {
    if reorder {
        events.reverse();
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if duplicate() {
            out.push(e.clone());
        }
        out.push(e);
    }
    out
}

struct Sender {
    http: reqwest::Client,
    razorpay_url: Option<String>,
    razorpay_secret: String,
    stripe_url: Option<String>,
    stripe_secrets: Vec<String>,
    delivery: Delivery,
    stop: watch::Receiver<bool>,
}

async fn run_sender(rx: Arc<Mutex<mpsc::Receiver<Vec<Outgoing>>>>, sender: Arc<Sender>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            tokio::select! {
                batch = rx.recv() => batch,
                _ = sender.stopped() => None,
            }
        };
        let Some(batch) = batch else { return };
        for event in &batch {
            sender.deliver(event).await;
        }
    }
}

impl Sender {
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    async fn deliver(&self, event: &Outgoing) {
        let url = match event.provider {
            Gateway::Razorpay => self.razorpay_url.as_deref(),
            Gateway::Stripe => self.stripe_url.as_deref(),
        };
        let Some(url) = url else {
            tracing::info!(provider = %event.provider, event_id = %event.event_id, kind = %event.kind,
                "no webhook URL configured; event not sent");
            return;
        };
        let attempts = self.delivery.max_attempts.max(1);
        let mut wait = self.delivery.first_retry;
        for attempt in 1..=attempts {
            let request = self
                .http
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(event.body.clone());
            let request = match event.provider {
                Gateway::Razorpay => request
                    .header(USER_AGENT, "Razorpay-Webhook/v1")
                    .header(
                        gateways::razorpay::webhook::SIGNATURE_HEADER,
                        gateways::razorpay::webhook::sign(&self.razorpay_secret, &event.body),
                    )
                    .header(
                        gateways::razorpay::webhook::EVENT_ID_HEADER,
                        &event.event_id,
                    ),
                Gateway::Stripe => {
                    let secrets: Vec<&str> =
                        self.stripe_secrets.iter().map(String::as_str).collect();
                    request
                        .header(USER_AGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                        .header(
                            gateways::stripe::webhook::SIGNATURE_HEADER,
                            gateways::stripe::webhook::header(now(), &event.body, &secrets),
                        )
                }
            };
            let (status, error) = match request.send().await {
                Ok(r) => (Some(r.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            WebhookDelivery {
                provider: event.provider,
                event_id: &event.event_id,
                kind: &event.kind,
                attempt,
                status,
                error: error.as_deref(),
            }
            .emit();
            if matches!(status, Some(s) if (200..300).contains(&s)) {
                return;
            }
            if attempt == attempts {
                tracing::warn!(provider = %event.provider, event_id = %event.event_id, attempts,
                    "webhook not accepted; giving up");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = self.stopped() => return,
            }
            wait = wait.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Outgoing {
        Outgoing {
            provider: Gateway::Razorpay,
            kind: "payment.captured".into(),
            event_id: id.into(),
            body: vec![],
        }
    }

    fn ids(batch: &[Outgoing]) -> Vec<&str> {
        batch.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn knobs_reverse_and_duplicate_a_batch() {
        let batch = || vec![event("a"), event("b")];
        assert_eq!(ids(&plan(batch(), false, || false)), vec!["a", "b"]);
        assert_eq!(ids(&plan(batch(), true, || false)), vec!["b", "a"]);
        assert_eq!(
            ids(&plan(batch(), false, || true)),
            vec!["a", "a", "b", "b"]
        );
    }
}
