//! The one consume loop every stage runs (processors, sinks, and next the
//! gateway workers). It owns the stage's group consumer for a session:
//! subscribes it, collects batches ([`kafka::next_batch`]), hands
//! rebalances, batches and timer ticks to the stage's [`BatchHandler`],
//! stops at the shutdown, and keeps the metrics every stage shares
//! (`pipeline_assigned_partitions`, `pipeline_records_in_total`,
//! `pipeline_uncommitted_records`, `pipeline_batch_seconds`,
//! `pipeline_batch_size`).
//!
//! It never stores or commits an offset: making a batch durable together
//! with its offsets (a Kafka transaction, a Postgres commit) is the
//! handler's, so each stage's exactly-once guarantee lives in one place,
//! its handler. The loop only promises the handler an order: a partition's
//! assignment before any of its records, records of a revoked partition
//! dropped before they reach it, and timer ticks only between batches.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;

use schemas::{Codec, TopicDef};

use super::Stall;
use crate::kafka::{self, GroupConsumer, GroupEvent};
use crate::metrics;

/// What every stage's runner is given, whatever it does with its records.
#[derive(Clone)]
pub struct StageDeps {
    pub brokers: String,
    pub codec: Arc<Codec>,
    /// Largest batch taken at once.
    pub max_batch: usize,
    /// How long a batch waits to fill after its first record.
    pub linger: Linger,
    /// Set while a record waits for the registry (readiness).
    pub stall: Stall,
}

/// How long a batch waits to fill after its first record: `min` while the
/// stage keeps up, growing with the time the previous batch took (its
/// processing and commit) up to `max` once the stage is busy. A busy
/// stage's transactions then carry more records each, which is what the
/// broker's per-transaction bookkeeping wants, while a stage with little
/// to do adds only `min` to a record's way through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    pub min: Duration,
    pub max: Duration,
}

impl Linger {
    /// The same wait whatever the load.
    pub fn fixed(wait: Duration) -> Linger {
        Linger {
            min: wait,
            max: wait,
        }
    }

    /// The wait for the next batch, after one that took `last` (from its
    /// first record to its commit), or `None` after an idle wait.
    pub fn next(self, last: Option<Duration>) -> Duration {
        match last {
            Some(took) => took.clamp(self.min, self.max.max(self.min)),
            None => self.min,
        }
    }
}

/// How a batch ended, when it did not end the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// Its work and its offsets are durable, together.
    Committed,
    /// Nothing of it is durable, and the handler has sought its partitions
    /// back to their first record: the loop reads it again.
    Rewound,
}

/// What a stage does with the records its group consumer hands it. The
/// loop ([`consume`]) lends the consumer to every call (to seek, to read
/// the group metadata) and keeps it; an error from any call ends the
/// session, and [`super::supervise`] starts a fresh one.
///
/// The futures are `Send`: stages run on `tokio::spawn`. An implementation
/// may write them as `async fn`.
pub trait BatchHandler: Send {
    /// The stage name: its consumer group and metrics label.
    fn name(&self) -> &'static str;

    /// The topic the stage consumes.
    fn input(&self) -> TopicDef;

    /// Partitions just assigned: restore their state, or seek them to the
    /// offsets stored with the work. Runs before any of their records
    /// reaches [`BatchHandler::batch`] from this loop.
    fn assigned(
        &mut self,
        consumer: &GroupConsumer,
        parts: &[(String, i32)],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Partitions just revoked: drop what is kept for them. Records of
    /// theirs collected before the revocation never reach the handler.
    fn revoked(&mut self, parts: &[(String, i32)]);

    /// Timed work, once `tick` has passed since the last call. Runs between
    /// batches: every record delivered so far has been committed, rewound
    /// or found [`covered`](BatchHandler::covered).
    fn tick(
        &mut self,
        _consumer: &GroupConsumer,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Whether `msg`'s work is durable already (an offset stored with the
    /// work is past it): the loop leaves it out of the batch and its
    /// metrics. By default nothing is.
    fn covered(&self, _msg: &OwnedMessage) -> bool {
        false
    }

    /// Does a batch's work (its records in offset order per partition) and
    /// makes it durable together with the batch's offsets, or rewinds.
    fn batch(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
    ) -> impl Future<Output = anyhow::Result<BatchEnd>> + Send;
}

/// Runs one session of a stage: a fresh consumer in the stage's group,
/// subscribed to its input, feeding `handler` until `shutdown` resolves
/// (then `Ok`) or a handler call fails (then that error). `tick` is how
/// often [`BatchHandler::tick`] runs, and how long an idle wait for
/// records lasts.
pub async fn consume<H: BatchHandler>(
    deps: &StageDeps,
    tick: Duration,
    handler: &mut H,
    mut shutdown: BoxFuture<'static, ()>,
) -> anyhow::Result<()> {
    let stage = handler.name();
    let input = handler.input();
    let names = deps.codec.names();
    let consumer = kafka::group_consumer(&deps.brokers, &names.group(stage), stage)?;
    consumer.subscribe(&[&names.name(&input)])?;
    deps.stall.clear();

    let m = metrics::pipeline();
    let assigned = m.assigned_partitions.with_label_values(&[stage]);
    let uncommitted = m.uncommitted_records.with_label_values(&[stage]);
    assigned.set(0);
    // At 0 from the start (every stage can meet an undecodable record):
    // an alert's increase() over a first scrape is 0, not absent.
    m.dead_letters.with_label_values(&[stage, "undecodable"]);
    let mut last_tick = Instant::now();
    let mut linger = deps.linger.min;
    loop {
        let batch = tokio::select! {
            _ = shutdown.as_mut() => break,
            b = kafka::next_batch(&consumer, deps.max_batch, linger, tick) => b,
        };
        if batch.messages.is_empty() {
            linger = deps.linger.next(None);
        }
        for event in &batch.events {
            match event {
                GroupEvent::Revoked(parts) => {
                    handler.revoked(parts);
                    assigned.sub(parts.len() as i64);
                }
                GroupEvent::Assigned(parts) => {
                    assigned.add(parts.len() as i64);
                    handler.assigned(&consumer, parts).await?;
                }
            }
        }
        let msgs: Vec<&OwnedMessage> = batch
            .messages
            .iter()
            .filter(|msg| !handler.covered(msg))
            .collect();
        if !msgs.is_empty() {
            let started = Instant::now();
            m.records_in
                .with_label_values(&[stage, input.name])
                .inc_by(msgs.len() as u64);
            uncommitted.set(msgs.len() as i64);
            let end = handler.batch(&consumer, &msgs).await;
            uncommitted.set(0);
            if end? == BatchEnd::Committed {
                linger = deps.linger.next(Some(started.elapsed()));
                m.batch_seconds
                    .with_label_values(&[stage])
                    .observe(started.elapsed().as_secs_f64());
                m.batch_size
                    .with_label_values(&[stage])
                    .observe(msgs.len() as f64);
            }
        }
        if last_tick.elapsed() >= tick {
            last_tick = Instant::now();
            handler.tick(&consumer).await?;
        }
    }
    tracing::info!(stage, "stage stopped");
    Ok(())
}

#[cfg(test)]
mod linger_tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_busy_stage_waits_as_long_as_its_last_batch_took_within_the_bounds() {
        let linger = Linger {
            min: 2 * MS,
            max: 100 * MS,
        };
        assert_eq!(linger.next(Some(MS)), 2 * MS);
        assert_eq!(linger.next(Some(40 * MS)), 40 * MS);
        assert_eq!(linger.next(Some(900 * MS)), 100 * MS);
        // An idle wait brings it back to the minimum.
        assert_eq!(linger.next(None), 2 * MS);
    }

    #[test]
    fn a_fixed_linger_never_grows() {
        let linger = Linger::fixed(5 * MS);
        assert_eq!(linger.next(Some(900 * MS)), 5 * MS);
        // A maximum set below the minimum is the minimum.
        let odd = Linger {
            min: 10 * MS,
            max: MS,
        };
        assert_eq!(odd.next(Some(50 * MS)), 10 * MS);
    }
}
