//! The sink loop: consume a batch, decode it, write it in one Postgres
//! transaction, commit the transaction, then store and commit the offsets.
//!
//! A crash before the offsets are committed makes the next owner write the
//! same batch again; every sink's `write` is idempotent, so that is safe.
//! A database error retries the whole batch (with backoff) and never
//! advances the offsets, so nothing consumed is lost.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use serde::de::DeserializeOwned;
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use platform::kafka;
use platform::metrics;
use schemas::{Codec, Topic};

/// A decoded record with the position it came from.
#[derive(Debug, Clone)]
pub struct Keyed<T> {
    pub key: String,
    pub value: T,
    pub partition: i32,
    pub offset: i64,
}

pub trait Sink: Send + Sync + 'static {
    type Record: DeserializeOwned + Send + Sync;
    /// The stage name: metrics label and consumer group.
    const NAME: &'static str;

    fn topic(&self) -> &'static Topic<Self::Record>;

    /// Writes a batch (in topic order) inside `tx`. Must be idempotent.
    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<Self::Record>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

#[derive(Clone)]
pub struct SinkDeps {
    pub brokers: String,
    pub codec: Arc<Codec>,
    pub pool: PgPool,
    pub max_batch: usize,
    pub linger: Duration,
}

pub async fn run<S: Sink>(
    sink: Arc<S>,
    deps: SinkDeps,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let names = deps.codec.names().clone();
    let topic = names.name(&sink.topic().def);
    let consumer = kafka::group_consumer(&deps.brokers, &names.group(S::NAME), S::NAME)?;
    consumer.subscribe(&[&topic])?;
    tracing::info!(stage = S::NAME, %topic, "sink started");
    let m = metrics::pipeline();
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => break,
            b = kafka::next_batch(&consumer, deps.max_batch, deps.linger, Duration::from_secs(1)) => b,
        };
        let batch = batch.messages;
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut records = Vec::with_capacity(batch.len());
        for msg in &batch {
            m.records_in
                .with_label_values(&[S::NAME, sink.topic().def.name])
                .inc();
            let correlation_id = kafka::correlation_id(msg).unwrap_or_default();
            let span = tracing::info_span!("record", stage = S::NAME, correlation_id = %correlation_id, partition = msg.partition(), offset = msg.offset());
            if let Some(r) = decode(&*sink, &deps.codec, msg)
                .instrument(span.clone())
                .await
            {
                span.in_scope(|| tracing::debug!(key = %r.key, "record taken into batch"));
                records.push(r);
            }
        }
        write_with_retry(&*sink, &deps.pool, &records).await;
        kafka::store_and_commit(&consumer, &kafka::last_offsets(&batch))?;
        m.batch_seconds
            .with_label_values(&[S::NAME])
            .observe(started.elapsed().as_secs_f64());
        m.batch_size
            .with_label_values(&[S::NAME])
            .observe(batch.len() as f64);
    }
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    tracing::info!(stage = S::NAME, "sink stopped");
    Ok(())
}

/// Decodes one record; a poison record is logged, counted and skipped, a
/// registry outage is waited out.
async fn decode<S: Sink>(
    sink: &S,
    codec: &Codec,
    msg: &rdkafka::message::OwnedMessage,
) -> Option<Keyed<S::Record>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let key = codec.decode_key(&sink.topic().def, msg.key()).await;
        let value = match &key {
            Ok(_) => codec.decode(sink.topic(), msg.payload()).await.map(Some),
            Err(_) => Ok(None),
        };
        match (key, value) {
            (Ok(key), Ok(Some(value))) => {
                return Some(Keyed {
                    key,
                    value,
                    partition: msg.partition(),
                    offset: msg.offset(),
                })
            }
            (Err(e), _) | (_, Err(e)) if e.is_retriable() => {
                tracing::warn!(error = %e, "schema registry unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            (Err(e), _) | (_, Err(e)) => {
                metrics::pipeline()
                    .poison
                    .with_label_values(&[S::NAME])
                    .inc();
                tracing::error!(error = %e, "undecodable record skipped");
                return None;
            }
            (Ok(_), Ok(None)) => return None,
        }
    }
}

/// Writes until it succeeds: the offsets must not move past a batch that
/// is not in Postgres.
async fn write_with_retry<S: Sink>(sink: &S, pool: &PgPool, records: &[Keyed<S::Record>]) {
    if records.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let result = async {
            let mut tx = pool.begin().await?;
            sink.write(&mut tx, records).await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                metrics::pipeline()
                    .commit_seconds
                    .with_label_values(&[S::NAME])
                    .observe(started.elapsed().as_secs_f64());
                return;
            }
            Err(e) => {
                tracing::error!(stage = S::NAME, error = %e, records = records.len(), "batch write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
