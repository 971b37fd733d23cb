//! What every stage (processor, sink, and next the gateway workers) shares,
//! in one place: the consume loop a stage plugs its [`BatchHandler`] into
//! ([`consume()`]), the supervisor that runs one session of it after another
//! ([`supervise`]), the process boot ([`boot`]), and what a stage does with
//! a record before its own work: decode it, retrying for as long as the
//! registry is unreachable (never skipping a record for that), and turn a
//! record that can never be decoded into a dead letter carrying the reason,
//! where it came from and its original bytes.
//!
//! A stage's handler decides where the dead letter goes: a processor
//! writes it inside its transaction, a sink before it commits the batch's
//! offsets to Postgres. Either way the record's offset moves on only once
//! its dead letter is durable.

mod consume;

pub use consume::{consume, BatchEnd, BatchHandler, Linger, StageDeps};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;
use serde::de::DeserializeOwned;

use schemas::records::dead_letter::DeadLetter;
use schemas::{Codec, CodecError, Topic};

use crate::kafka;
use crate::metrics;

/// Runs a stage's sessions until `shutdown` fires. A session is one
/// membership of the stage's consumer group with its own clients and
/// state, and gets its own wait for the shutdown; one that ends in error
/// (fenced, the broker or Postgres gone while assigning, a restore that
/// failed) is followed by a fresh one after a pause that doubles up to
/// 10 s, and the stage reports not ready meanwhile.
pub async fn supervise<F, Fut>(
    stage: &'static str,
    stall: &Stall,
    shutdown: crate::Shutdown,
    mut session: F,
) -> anyhow::Result<()>
where
    F: FnMut(BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match session(Box::pin(shutdown.wait())).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                metrics::pipeline()
                    .restarts
                    .with_label_values(&[stage])
                    .inc();
                tracing::warn!(
                    stage,
                    error = format!("{e:#}"),
                    ?pause,
                    "session ended; rejoining"
                );
                stall.set(format!("rejoining after: {e}"));
                tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// What every stage process starts with, wired once by [`boot`]: the codec
/// (subjects registered), a warmed-up producer, the stall flag its runner
/// raises while a record waits for the registry, the stop signal, and the
/// readiness checks every stage has (Kafka, the registry, the stall). A
/// stage adds its own checks and then serves the ops endpoints.
pub struct Booted {
    pub codec: Arc<Codec>,
    pub producer: rdkafka::producer::FutureProducer,
    pub stall: Stall,
    pub shutdown: crate::Shutdown,
    pub readiness: crate::ops::Readiness,
}

/// Boots a stage process from its pipeline configuration (see [`Booted`]).
pub async fn boot(
    config: &crate::config::PipelineConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Booted> {
    let shutdown = crate::Shutdown::on(shutdown);
    let codec = config.codec().await?;
    let producer = kafka::producer(&config.kafka_brokers)?;
    kafka::warm_up(&producer, Duration::from_secs(10)).await?;
    let stall = Stall::default();
    let stalled = stall.clone();
    let readiness = crate::ops::Readiness::new()
        .kafka(producer.clone())
        .registry(config.schema_registry_url.clone())
        .check("pipeline", move || {
            let state = stalled.check();
            async move { state }
        });
    Ok(Booted {
        codec,
        producer,
        stall,
        shutdown,
        readiness,
    })
}

impl Booted {
    /// Serves `/healthz`, `/readyz` (with `readiness`) and `/metrics` until
    /// the stop signal.
    pub async fn serve_ops(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        crate::ops::serve(addr, self.readiness.clone(), self.shutdown.wait()).await?;
        Ok(())
    }
}

/// One decoded input record with the position it came from.
#[derive(Debug, Clone)]
pub struct Record<T> {
    pub key: String,
    pub value: T,
    pub partition: i32,
    /// The record's offset: a processor's notion of "position", used as
    /// the version of what it derives from this record.
    pub offset: i64,
    pub correlation_id: String,
}

/// What became of a consumed record.
pub enum Taken<T> {
    Record(Record<T>),
    /// It can never be decoded: hand it to the dead-letter topic.
    Dead(DeadLetter),
}

/// Why a stage is not making progress, for `/readyz`: set while the
/// registry (or another dependency) keeps a record from being taken.
#[derive(Clone, Default)]
pub struct Stall(Arc<Mutex<Option<String>>>);

impl Stall {
    pub fn set(&self, reason: String) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(reason);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut s) = self.0.lock() {
            *s = None;
        }
    }

    /// `Err(reason)` while stalled: a readiness check.
    pub fn check(&self) -> Result<(), String> {
        match self.0.lock().ok().and_then(|s| s.clone()) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// Decodes `msg` as a record of `topic`. A registry that cannot be reached
/// (or answers an error) is waited out with backoff, the stage reported
/// not ready meanwhile; only bytes that are not a record of this topic
/// become a dead letter.
pub async fn take<T: DeserializeOwned>(
    stage: &'static str,
    codec: &Codec,
    topic: &'static Topic<T>,
    msg: &OwnedMessage,
    stall: &Stall,
) -> Taken<T> {
    let correlation_id =
        kafka::correlation_id(msg).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut backoff = Duration::from_millis(100);
    loop {
        let decoded = match Codec::decode_key(&topic.def, msg.key()) {
            Ok(key) => codec.decode(topic, msg.payload()).await.map(|v| (key, v)),
            Err(e) => Err(e),
        };
        match decoded {
            Ok((key, value)) => {
                stall.clear();
                return Taken::Record(Record {
                    key,
                    value,
                    partition: msg.partition(),
                    offset: msg.offset(),
                    correlation_id,
                });
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(stage, error = %e, ?backoff, "schema registry unavailable; retrying the record");
                stall.set(format!("waiting for the schema registry: {e}"));
                metrics::pipeline()
                    .decode_retries
                    .with_label_values(&[stage])
                    .inc();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                stall.clear();
                metrics::pipeline().poison.with_label_values(&[stage]).inc();
                tracing::error!(stage, error = %e, partition = msg.partition(), offset = msg.offset(), "undecodable record sent to the dead letters");
                return Taken::Dead(dead_letter(stage, msg, &e, "undecodable"));
            }
        }
    }
}

/// A dead letter for `msg`: the reason, where it came from, its bytes.
pub fn dead_letter(
    stage: &str,
    msg: &OwnedMessage,
    reason: &dyn std::fmt::Display,
    kind: &str,
) -> DeadLetter {
    let mut headers = BTreeMap::new();
    if let Some(hs) = msg.headers() {
        for h in hs.iter() {
            if let Some(v) = h.value.and_then(|v| std::str::from_utf8(v).ok()) {
                headers.insert(h.key.to_owned(), v.to_owned());
            }
        }
    }
    DeadLetter {
        stage: stage.to_owned(),
        reason: reason.to_string(),
        kind: kind.to_owned(),
        source_topic: msg.topic().to_owned(),
        source_partition: msg.partition(),
        source_offset: msg.offset(),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        correlation_id: kafka::correlation_id(msg),
        headers,
        failed_at: now_ms(),
    }
}

/// The key a dead letter is written under: where its record came from.
pub fn dead_letter_key(d: &DeadLetter) -> String {
    format!(
        "{}/{}/{}",
        d.source_topic, d.source_partition, d.source_offset
    )
}

/// Encodes a dead letter for [`schemas::topics::DEAD_LETTERS`].
pub async fn encode_dead_letter(
    codec: &Codec,
    d: &DeadLetter,
) -> Result<(Vec<u8>, Vec<u8>), CodecError> {
    let value = codec.encode(&schemas::topics::DEAD_LETTERS, d).await?;
    Ok((Codec::encode_key(&dead_letter_key(d)), value))
}

/// Fault injection for the crash tests, off unless `FAULT_HOLD_BATCH_MS`
/// is set: every batch is held that long after its work is done and
/// before its offsets commit, so a kill lands with work in flight (the
/// tests assert `pipeline_uncommitted_records` > 0 before they kill).
pub async fn fault_hold() {
    static HOLD: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let hold = HOLD.get_or_init(|| {
        std::env::var("FAULT_HOLD_BATCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = hold {
        tokio::time::sleep(*d).await;
    }
}

/// Fault injection for the notification crash test, off unless
/// `FAULT_HOLD_SENT_MS` is set: each email is held that long after the
/// transport took it and before it is marked delivered, the window in
/// which a kill leaves a sent email with an unmarked claim.
pub async fn fault_hold_sent() {
    static HOLD: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let hold = HOLD.get_or_init(|| {
        std::env::var("FAULT_HOLD_SENT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = hold {
        tokio::time::sleep(*d).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
