//! The sink runner: a sink's commit strategy, exactly once into Postgres.
//! The consume loop around it (the group consumer, batching, rebalances,
//! shutdown, the per-batch metrics) is the one every stage runs,
//! `platform::stage::consume`; what is here is the `BatchHandler` it
//! drives.
//!
//! The offsets a batch consumed are stored in the same Postgres transaction
//! as the rows it wrote (table `sink_offsets`: group, topic, partition →
//! next offset), and a partition that is assigned starts from the offset
//! stored there. A crash anywhere leaves rows and offsets agreeing; Kafka's
//! own committed offsets are written afterwards for tools
//! (`scripts/kafka consumer-groups`), never read.
//!
//! Each batch is decoded (a registry outage is waited out; a record that can
//! never be decoded goes to the dead letters), written with the sink's
//! idempotent `write`, and committed. A transient database error retries
//! the batch with backoff. A batch that Postgres refuses for good (a
//! constraint, a value out of range) is written again one record at a time
//! under savepoints: the refused records go to the dead letters, the rest
//! are kept, and the offsets move past both. The positions committed to
//! Postgres are shared with whoever watches the sink's progress (a
//! rebuild).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset};
use serde::de::DeserializeOwned;
use sqlx::{PgPool, Postgres, Transaction};

use platform::kafka::{self, GroupConsumer};
use platform::metrics;
use platform::stage::{self, BatchEnd, BatchHandler, StageDeps, Taken};
use schemas::records::dead_letter::DeadLetter;
use schemas::{Topic, TopicDef};

/// A decoded record with the position it came from.
pub use platform::stage::Record as Keyed;

pub trait Sink: Send + Sync + 'static {
    type Record: DeserializeOwned + Send + Sync;
    /// The stage name: metrics label and consumer group.
    const NAME: &'static str;

    fn topic(&self) -> &'static Topic<Self::Record>;

    /// The tables this sink alone writes: what a rebuild empties.
    fn tables(&self) -> &'static [&'static str];

    /// Writes a batch (in topic order) inside `tx`. Must be idempotent.
    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<Self::Record>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

/// The next offset to read per partition, as committed to Postgres; shared
/// with whoever watches a sink's progress (a rebuild).
pub type Positions = Arc<Mutex<HashMap<i32, i64>>>;

#[derive(Clone)]
pub struct SinkDeps {
    /// What every stage is given: brokers, codec, batching, stall flag.
    pub stage: StageDeps,
    pub pool: PgPool,
    /// For dead letters (acknowledged before the offsets move past them).
    pub producer: FutureProducer,
    pub positions: Positions,
}

/// How long the loop waits for records before it lets the sink move its
/// positions past transaction markers ([`BatchHandler::tick`]).
const IDLE: Duration = Duration::from_secs(1);

/// Runs `sink` in its consumer group until `shutdown` resolves, one
/// session after another (`platform::stage::supervise`).
pub async fn run<S: Sink>(
    sink: Arc<S>,
    deps: SinkDeps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = platform::Shutdown::on(shutdown);
    stage::supervise(S::NAME, &deps.stage.stall, shutdown, |stop| {
        session(&*sink, &deps, stop)
    })
    .await
}

async fn session<S: Sink>(
    sink: &S,
    deps: &SinkDeps,
    shutdown: BoxFuture<'static, ()>,
) -> anyhow::Result<()> {
    let names = deps.stage.codec.names();
    let mut session = Session {
        sink,
        deps,
        group: names.group(S::NAME),
        topic: names.name(&sink.topic().def),
    };
    if let Ok(mut p) = deps.positions.lock() {
        p.clear();
    }
    tracing::info!(stage = S::NAME, topic = %session.topic, "sink started");
    stage::consume(&deps.stage, IDLE, &mut session, shutdown).await
}

/// One membership of the sink's group: what the loop hands its rebalances
/// and batches to.
struct Session<'a, S: Sink> {
    sink: &'a S,
    deps: &'a SinkDeps,
    group: String,
    /// The input topic's full name.
    topic: String,
}

impl<S: Sink> BatchHandler for Session<'_, S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn input(&self) -> TopicDef {
        self.sink.topic().def
    }

    async fn assigned(
        &mut self,
        consumer: &GroupConsumer,
        parts: &[(String, i32)],
    ) -> anyhow::Result<()> {
        assign(
            consumer,
            &self.deps.pool,
            &self.group,
            &self.topic,
            parts,
            &self.deps.positions,
        )
        .await
    }

    fn revoked(&mut self, parts: &[(String, i32)]) {
        if let Ok(mut p) = self.deps.positions.lock() {
            parts.iter().for_each(|(_, part)| {
                p.remove(part);
            });
        }
    }

    /// Quiet partitions' positions move past markers too (a rebuild waits
    /// for them).
    async fn tick(&mut self, consumer: &GroupConsumer) -> anyhow::Result<()> {
        advance_past_markers(consumer, &self.topic, &self.deps.positions);
        Ok(())
    }

    /// Records a stored offset already covers were written before; a
    /// partition without a position is not (or no longer) this session's.
    fn covered(&self, msg: &OwnedMessage) -> bool {
        self.deps.positions.lock().map_or(true, |p| {
            p.get(&msg.partition())
                .is_none_or(|next| msg.offset() < *next)
        })
    }

    async fn batch(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
    ) -> anyhow::Result<BatchEnd> {
        let (sink, deps) = (self.sink, self.deps);
        let mut records = Vec::with_capacity(msgs.len());
        let mut dead = Vec::new();
        for msg in msgs {
            match stage::take(
                S::NAME,
                &deps.stage.codec,
                sink.topic(),
                msg,
                &deps.stage.stall,
            )
            .await
            {
                Taken::Record(r) => records.push((*msg, r)),
                Taken::Dead(letter) => dead.push(letter),
            }
        }
        let done = kafka::last_offsets(msgs.iter().copied());
        write_batch(sink, deps, &self.group, &self.topic, records, dead, &done).await?;
        if let Ok(mut p) = deps.positions.lock() {
            for (_, partition, last) in &done {
                p.insert(*partition, last + 1);
            }
        }
        advance_past_markers(consumer, &self.topic, &deps.positions);
        // For people and tools only: Postgres holds the offsets that count.
        if let Ok(tpl) = kafka::next_offsets(&done) {
            let _ = consumer.commit(&tpl, CommitMode::Async);
        }
        Ok(BatchEnd::Committed)
    }
}

/// Moves the shared positions up to the consumer's own position where that
/// is further: what lies between is transaction markers (and records of
/// aborted transactions), which occupy offsets but are never delivered, so
/// a watcher waiting for "the end of the topic" (a rebuild) sees it reached.
/// Everything below the consumer's position was delivered and written, or
/// never will be.
pub(crate) fn advance_past_markers(consumer: &GroupConsumer, topic: &str, positions: &Positions) {
    let Ok(tpl) = consumer.position() else {
        return;
    };
    if let Ok(mut p) = positions.lock() {
        for e in tpl.elements_for_topic(topic) {
            if let (Some(pos), Some(next)) = (e.offset().to_raw(), p.get_mut(&e.partition())) {
                if pos > *next {
                    *next = pos;
                }
            }
        }
    }
}

/// Starts assigned partitions where Postgres says this sink is.
pub(crate) async fn assign(
    consumer: &GroupConsumer,
    pool: &PgPool,
    group: &str,
    topic: &str,
    parts: &[(String, i32)],
    positions: &Positions,
) -> anyhow::Result<()> {
    let stored: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<i32, i64> = stored.into_iter().collect();
    for (_, partition) in parts {
        let next = stored.get(partition).copied().unwrap_or(0);
        // Postgres decides where to start, not Kafka's committed offset
        // (informational, and ahead of Postgres after a rebuild): seek
        // even to 0. The offset filter is the second line.
        consumer.seek(
            topic,
            *partition,
            Offset::Offset(next),
            Duration::from_secs(10),
        )?;
        tracing::info!(%topic, partition, next, "partition assigned; starting at the offset stored in Postgres");
        if let Ok(mut p) = positions.lock() {
            p.insert(*partition, next);
        }
    }
    Ok(())
}

/// Writes `records` and the offsets `done` in one Postgres transaction,
/// after the dead letters are acknowledged. Retries transient failures
/// until they pass: the offsets never move past a record that is neither
/// in Postgres nor in the dead letters.
async fn write_batch<S: Sink>(
    sink: &S,
    deps: &SinkDeps,
    group: &str,
    topic: &str,
    records: Vec<(&OwnedMessage, Keyed<S::Record>)>,
    mut dead: Vec<DeadLetter>,
    done: &[(String, i32, i64)],
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let (msgs, records): (Vec<&OwnedMessage>, Vec<Keyed<S::Record>>) = records.into_iter().unzip();
    let mut one_by_one = false;
    loop {
        let started = Instant::now();
        let attempt = async {
            let mut tx = deps.pool.begin().await?;
            let mut refused = Vec::new();
            if one_by_one {
                for (msg, record) in msgs.iter().zip(&records) {
                    sqlx::query("SAVEPOINT record").execute(&mut *tx).await?;
                    match sink.write(&mut tx, std::slice::from_ref(record)).await {
                        Ok(()) => {
                            sqlx::query("RELEASE SAVEPOINT record")
                                .execute(&mut *tx)
                                .await?;
                        }
                        Err(e) if refused_for_good(&e) => {
                            sqlx::query("ROLLBACK TO SAVEPOINT record")
                                .execute(&mut *tx)
                                .await?;
                            refused.push(stage::dead_letter(S::NAME, msg, &e, "refused"));
                        }
                        Err(e) => return Err(e),
                    }
                }
            } else if !records.is_empty() {
                sink.write(&mut tx, &records).await?;
            }
            store_offsets(&mut tx, group, topic, done).await?;
            Ok::<_, sqlx::Error>((tx, refused))
        }
        .await;
        match attempt {
            Ok((tx, refused)) => {
                dead.extend(refused);
                // Durable before the offsets that pass them are.
                send_dead_letters(S::NAME, deps, &dead).await?;
                stage::fault_hold().await;
                match tx.commit().await {
                    Ok(()) => {
                        metrics::pipeline()
                            .commit_seconds
                            .with_label_values(&[S::NAME])
                            .observe(started.elapsed().as_secs_f64());
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::error!(stage = S::NAME, error = %e, "batch commit failed; retrying");
                    }
                }
            }
            Err(e) if refused_for_good(&e) && !one_by_one => {
                tracing::warn!(stage = S::NAME, error = %e, records = records.len(), "Postgres refused the batch; writing it record by record");
                one_by_one = true;
                continue;
            }
            Err(e) => {
                tracing::error!(stage = S::NAME, error = %e, records = records.len(), "batch write failed; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// A refusal that no retry changes: integrity constraints (SQLSTATE class
/// 23) and data exceptions (class 22, a value out of range).
fn refused_for_good(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("23") || c.starts_with("22")),
        _ => false,
    }
}

pub(crate) async fn store_offsets(
    tx: &mut Transaction<'static, Postgres>,
    group: &str,
    topic: &str,
    done: &[(String, i32, i64)],
) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = done.iter().map(|(_, p, _)| *p).collect();
    let next: Vec<i64> = done.iter().map(|(_, _, o)| o + 1).collect();
    sqlx::query(
        "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
         SELECT $1, $2, p, n FROM UNNEST($3::int[], $4::bigint[]) AS t(p, n)
         ON CONFLICT (consumer_group, topic, partition)
         DO UPDATE SET next_offset = GREATEST(sink_offsets.next_offset, EXCLUDED.next_offset),
                       updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(&partitions)
    .bind(&next)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Produces dead letters and waits for the broker's acknowledgement.
pub async fn send_dead_letters(
    stage_name: &'static str,
    deps: &SinkDeps,
    dead: &[DeadLetter],
) -> anyhow::Result<()> {
    let codec = &deps.stage.codec;
    let topic = codec.names().name(&schemas::topics::DEAD_LETTERS.def);
    for letter in dead {
        let (key, value) = stage::encode_dead_letter(codec, letter).await?;
        deps.producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("dead letter not produced: {e}"))?;
        metrics::pipeline()
            .dead_letters
            .with_label_values(&[stage_name, &letter.kind])
            .inc();
        tracing::error!(stage = stage_name, reason = %letter.reason, source = %stage::dead_letter_key(letter), "record sent to the dead letters");
    }
    Ok(())
}
