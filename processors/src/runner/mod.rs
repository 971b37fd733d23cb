//! The processor runner: the only place a processor meets Kafka.
//!
//! For each batch of input records it:
//! 1. restores the state of any newly assigned partition from the
//!    processor's changelog (lazily, before the partition's first record);
//! 2. decodes each record and skips it when the stored state already
//!    includes its offset (a redelivery after a crash is a no-op);
//! 3. calls the processor's pure [`Processor::apply`];
//! 4. produces the outputs (keyed, with deterministic ids chosen by the
//!    processor) and the new state to the changelog, in the input's
//!    partition;
//! 5. waits until the broker acknowledged every record of the batch, and
//!    only then stores and commits the input offsets.
//!
//! A crash anywhere before step 5 leaves the offsets where they were: the
//! inputs are read again, the restored state tells which of them were
//! already applied, and the ones that were not produce the same outputs
//! with the same ids as before. A failed produce ends the run with an
//! error rather than continuing with in-memory state the changelog lacks.

mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use platform::kafka::{self, GroupEvent};
use platform::metrics;
use schemas::{Codec, CodecError, Topic, TopicDef};

pub use state::PartitionStates;

/// One input record as the processor sees it.
#[derive(Debug, Clone)]
pub struct Input<T> {
    pub key: String,
    pub value: T,
    pub partition: i32,
    /// The record's offset: the processor's notion of "position", used as
    /// the version of what it derives from this record.
    pub offset: i64,
    pub correlation_id: String,
}

/// What applying one input changes.
#[derive(Debug)]
pub struct Outcome<S, O> {
    /// The key's new state; `None` leaves it unchanged (and unrecorded, so
    /// a redelivery applies the input again, producing the same outputs).
    pub state: Option<S>,
    pub outputs: Vec<O>,
}

impl<S, O> Outcome<S, O> {
    pub fn nothing() -> Outcome<S, O> {
        Outcome {
            state: None,
            outputs: Vec::new(),
        }
    }
}

/// An encoded output record.
pub struct Encoded {
    pub topic: TopicDef,
    pub key: String,
    pub value: Vec<u8>,
}

/// An output a processor emits: it knows its topic, key and how to encode.
pub trait Emit: Send + Sync {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>>;
}

/// Encodes `value` for `topic` under `key`; the building block of [`Emit`].
pub async fn encode_for<V: Serialize>(
    codec: &Codec,
    topic: &'static Topic<V>,
    key: &str,
    value: &V,
) -> Result<Encoded, CodecError> {
    Ok(Encoded {
        topic: topic.def,
        key: key.to_owned(),
        value: codec.encode(topic, value).await?,
    })
}

/// A stateful processor: pure rules over one keyed input topic.
pub trait Processor: Send + Sync + 'static {
    type Input: DeserializeOwned + Send + Sync;
    type State: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    type Output: Emit;

    /// The stage name: metrics label and consumer group.
    const NAME: &'static str;

    fn input_topic(&self) -> &'static Topic<Self::Input>;
    fn changelog_topic(&self) -> &'static Topic<Self::State>;

    /// The offset of the last input this state includes.
    fn applied_offset(state: &Self::State) -> i64;

    /// The rule: given the key's state (if any) and one input, what changes.
    fn apply(
        &self,
        state: Option<&Self::State>,
        input: &Input<Self::Input>,
    ) -> Outcome<Self::State, Self::Output>;

    /// Timers: called every [`RunnerDeps::tick`] with the wall-clock time
    /// and the states of one owned partition. What it returns is produced
    /// as is; a timer changes state only through the commands it emits
    /// (which come back as inputs), so replays stay deterministic, and its
    /// outputs carry ids derived from the state, so a repeat is harmless.
    fn timers(
        &self,
        _now_ms: i64,
        _states: &std::collections::HashMap<String, Self::State>,
    ) -> Vec<Self::Output> {
        Vec::new()
    }
}

/// The clock timers read; tests substitute their own.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// What the runner needs from its surroundings.
#[derive(Clone)]
pub struct RunnerDeps {
    pub brokers: String,
    pub codec: Arc<Codec>,
    pub producer: FutureProducer,
    /// Largest batch taken at once.
    pub max_batch: usize,
    /// How long a batch waits to fill after its first record.
    pub linger: Duration,
    /// How often [`Processor::timers`] runs.
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
}

/// Runs `processor` in its consumer group until `shutdown` resolves.
pub async fn run<P: Processor>(
    processor: Arc<P>,
    deps: RunnerDeps,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let names = deps.codec.names().clone();
    let input_name = names.name(&processor.input_topic().def);
    let changelog_name = names.name(&processor.changelog_topic().def);
    let consumer = kafka::group_consumer(&deps.brokers, &names.group(P::NAME), P::NAME)?;
    consumer.subscribe(&[&input_name])?;
    let mut states: PartitionStates<P::State> =
        PartitionStates::new(deps.brokers.clone(), changelog_name.clone());
    tracing::info!(stage = P::NAME, topic = %input_name, "processor started");

    tokio::pin!(shutdown);
    let mut last_tick = Instant::now();
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => break,
            b = kafka::next_batch(&consumer, deps.max_batch, deps.linger, deps.tick) => b,
        };
        if last_tick.elapsed() >= deps.tick {
            last_tick = Instant::now();
            run_timers(&*processor, &deps, &states).await?;
        }
        for event in &batch.events {
            tracing::debug!(?event, "group event");
            match event {
                GroupEvent::Revoked(parts) => parts.iter().for_each(|(_, p)| states.forget(*p)),
                // Someone else may have owned it meanwhile: read it afresh.
                GroupEvent::Assigned(parts) => parts.iter().for_each(|(_, p)| states.forget(*p)),
            }
        }
        let batch = batch.messages;
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        process_batch(&*processor, &deps, &changelog_name, &mut states, &batch).await?;
        kafka::store_and_commit(&consumer, &kafka::last_offsets(&batch))?;
        let m = metrics::pipeline();
        m.batch_seconds
            .with_label_values(&[P::NAME])
            .observe(started.elapsed().as_secs_f64());
        m.batch_size
            .with_label_values(&[P::NAME])
            .observe(batch.len() as f64);
    }
    // Whatever was acknowledged is stored; commit it before leaving the group.
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    tracing::info!(stage = P::NAME, "processor stopped");
    Ok(())
}

/// Produces what the processor's timers ask for, for every owned partition.
async fn run_timers<P: Processor>(
    processor: &P,
    deps: &RunnerDeps,
    states: &PartitionStates<P::State>,
) -> anyhow::Result<()> {
    let now = deps.clock.now_ms();
    let mut deliveries = Vec::new();
    for (_, partition) in states.partitions() {
        for output in processor.timers(now, partition) {
            let enc = output.encode(&deps.codec).await?;
            let key = deps.codec.encode_key(&enc.topic, &enc.key).await?;
            let topic = deps.codec.names().name(&enc.topic);
            let rec = FutureRecord::to(&topic).key(&key).payload(&enc.value);
            deliveries.push(send(&deps.producer, rec)?);
            metrics::pipeline()
                .records_out
                .with_label_values(&[P::NAME, enc.topic.name])
                .inc();
        }
    }
    if !deliveries.is_empty() {
        tracing::info!(stage = P::NAME, records = deliveries.len(), "timers fired");
    }
    for d in deliveries {
        if let Ok(Err((e, _))) = d.await {
            // Nothing was promised on them: the next tick asks again.
            tracing::warn!(error = %e, "timer output not produced; the next tick retries");
        }
    }
    Ok(())
}

/// Applies a batch and waits until all it produced is acknowledged.
async fn process_batch<P: Processor>(
    processor: &P,
    deps: &RunnerDeps,
    changelog_name: &str,
    states: &mut PartitionStates<P::State>,
    batch: &[OwnedMessage],
) -> anyhow::Result<()> {
    let m = metrics::pipeline();
    let names = deps.codec.names();
    let mut deliveries = Vec::new();
    for record in batch {
        m.records_in
            .with_label_values(&[P::NAME, processor.input_topic().def.name])
            .inc();
        let partition = record.partition();
        if !states.is_restored(partition) {
            let started = Instant::now();
            let n = states
                .restore(
                    partition,
                    &deps.codec,
                    processor.changelog_topic(),
                    P::applied_offset,
                )
                .await?;
            m.restore_seconds
                .with_label_values(&[P::NAME])
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(
                stage = P::NAME,
                partition,
                keys = n,
                first_offset = record.offset(),
                "partition state restored"
            );
        }
        let correlation_id =
            kafka::correlation_id(record).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span = tracing::info_span!("record", stage = P::NAME, correlation_id = %correlation_id, partition, offset = record.offset());
        let Some(input) = decode_input(processor, &deps.codec, record, correlation_id.clone())
            .instrument(span.clone())
            .await?
        else {
            continue;
        };
        let _enter = span.enter();
        let current = states.get(partition, &input.key);
        if let Some(s) = current {
            if P::applied_offset(s) >= input.offset {
                m.duplicates.with_label_values(&[P::NAME]).inc();
                tracing::debug!("input already applied; skipped");
                continue;
            }
        }
        let outcome = processor.apply(current, &input);
        tracing::debug!(key = %input.key, outputs = outcome.outputs.len(), state_changed = outcome.state.is_some(), "input applied");
        drop(_enter);
        let causation = format!("{}@{}", input.partition, input.offset);
        let headers = kafka::trace_headers(&correlation_id, &causation);
        for output in &outcome.outputs {
            let enc = output.encode(&deps.codec).await?;
            let key = deps.codec.encode_key(&enc.topic, &enc.key).await?;
            let topic = names.name(&enc.topic);
            let rec = FutureRecord::to(&topic)
                .key(&key)
                .payload(&enc.value)
                .headers(headers.clone());
            deliveries.push(send(&deps.producer, rec)?);
            m.records_out
                .with_label_values(&[P::NAME, enc.topic.name])
                .inc();
        }
        if let Some(new_state) = outcome.state {
            let value = deps
                .codec
                .encode(processor.changelog_topic(), &new_state)
                .await?;
            let key = deps
                .codec
                .encode_key(&processor.changelog_topic().def, &input.key)
                .await?;
            // Same partition as the input: restore reads exactly the
            // partition it is assigned.
            let rec = FutureRecord::to(changelog_name)
                .key(&key)
                .payload(&value)
                .partition(partition)
                .headers(headers.clone());
            deliveries.push(send(&deps.producer, rec)?);
            states.put(partition, input.key.clone(), new_state);
        }
    }
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => {
                anyhow::bail!("produce failed, stopping before storing offsets: {e}")
            }
            Err(_) => anyhow::bail!("producer dropped a delivery, stopping before storing offsets"),
        }
    }
    Ok(())
}

fn send(
    producer: &FutureProducer,
    rec: FutureRecord<'_, Vec<u8>, Vec<u8>>,
) -> anyhow::Result<rdkafka::producer::DeliveryFuture> {
    producer
        .send_result(rec)
        .map_err(|(e, _)| anyhow::anyhow!("enqueue failed: {e}"))
}

/// Decodes a record; `None` for a poison record (logged, counted, skipped:
/// it can never be applied, and blocking the partition on it would stop
/// every cart behind it). A registry outage is retried, never skipped.
async fn decode_input<P: Processor>(
    processor: &P,
    codec: &Codec,
    record: &OwnedMessage,
    correlation_id: String,
) -> anyhow::Result<Option<Input<P::Input>>> {
    let topic = processor.input_topic();
    let mut backoff = Duration::from_millis(100);
    loop {
        let decoded = async {
            let key = codec.decode_key(&topic.def, record.key()).await?;
            let value = codec.decode(topic, record.payload()).await?;
            Ok::<_, CodecError>((key, value))
        }
        .await;
        match decoded {
            Ok((key, value)) => {
                return Ok(Some(Input {
                    key,
                    value,
                    partition: record.partition(),
                    offset: record.offset(),
                    correlation_id,
                }))
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(error = %e, "schema registry unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                metrics::pipeline()
                    .poison
                    .with_label_values(&[P::NAME])
                    .inc();
                tracing::error!(error = %e, "undecodable input skipped");
                return Ok(None);
            }
        }
    }
}
