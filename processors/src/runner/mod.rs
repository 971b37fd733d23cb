//! The processor runner: a processor's commit strategy, and the place its
//! exactly-once guarantee lives (Kafka Streams' `exactly_once_v2`). The
//! consume loop around it (the group consumer, batching, rebalances, timer
//! ticks, shutdown, the per-batch metrics) is the one every stage runs,
//! [`stage::consume`]; what is here is the [`BatchHandler`] it drives.
//!
//! Each session of an instance has one transactional producer beside the
//! loop's consumer in the processor's group. For each batch of input
//! records it:
//! 1. begins a transaction;
//! 2. decodes each record (waiting out a registry outage, never skipping;
//!    a record that can never be decoded goes to the dead letters);
//! 3. skips an input whose offset the key's state already includes, or
//!    whose command id the state lists as applied (the same command
//!    written twice: a client retry, a re-emitted follow-up);
//! 4. calls the processor's pure [`Processor::apply`] and produces its
//!    outputs and the key's new state (to the changelog, in the input's
//!    partition: the whole state, or only what the input changed, as the
//!    state's [`Durable`] impl says);
//! 5. adds the batch's input offsets to the transaction and commits it.
//!
//! Outputs, state and offsets become visible together or not at all: every
//! consumer reads `read_committed`. A batch whose transaction fails is
//! aborted, its staged state dropped, and its partitions rewound to the
//! committed offsets; it is then read and applied again. A producer that
//! is fenced (another instance took its transactional id, or the group
//! moved on while this one stalled) can commit nothing: its session ends
//! and a fresh one rejoins the group and restores its state.
//!
//! State is restored when a partition is assigned, from the changelog's
//! committed records ([`state`], folded in by [`Durable::restore`]).
//! Output ids are derived from the input (UUIDv5), so the retry of an
//! aborted batch produces the same ids, and
//! timers (run between batches, in a transaction of their own) only emit
//! commands (which come back as inputs), so replays stay deterministic.

mod durable;
mod start;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use platform::kafka::{self, GroupConsumer, Transactions, TxnError};
use platform::metrics;
use platform::stage::{self, BatchEnd, BatchHandler, StageDeps, Taken};
use schemas::records::runtime::AppliedInput;
use schemas::{Codec, CodecError, Topic, TopicDef};

pub(crate) use durable::whole_state;
pub use durable::Durable;
pub use platform::stage::Record as Input;
pub use start::Start;

/// `PROCESSOR_INSTANCE`: this instance's name, stable across its restarts
/// (`scripts/run.sh` names them 1 and 2), so a restarted instance fences
/// what its previous run left open. Unset, a random name: nothing is
/// fenced by id then, but the group generation still fences a zombie.
pub fn instance_from_env() -> String {
    std::env::var("PROCESSOR_INSTANCE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Boots a processor that needs nothing beyond the stage boot (no tables
/// of its own) and runs it until shutdown: the whole `service` of most
/// processors.
pub async fn serve<P: Processor>(
    processor: P,
    config: platform::config::PipelineConfig,
    ops_addr: std::net::SocketAddr,
    tick: Duration,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Start::boot(&config, shutdown)
        .await?
        .run(processor, ops_addr, tick, clock)
        .await
}

/// What every processor's loop runs with: batches of up to 500 records,
/// lingering `config.processor_linger` (2 ms by default) after the first
/// (a transaction per batch; small batches keep latency low).
pub fn stage_deps(
    config: &platform::config::PipelineConfig,
    booted: &platform::stage::Booted,
) -> StageDeps {
    StageDeps {
        brokers: config.kafka_brokers.clone(),
        codec: booted.codec.clone(),
        max_batch: 500,
        linger: platform::stage::Linger {
            min: config.processor_linger,
            max: config.processor_linger_max,
        },
        stall: booted.stall.clone(),
    }
}
pub use state::PartitionStates;

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
    type State: Durable;
    type Output: Emit;

    /// The stage name: metrics label and consumer group.
    const NAME: &'static str;

    fn input_topic(&self) -> &'static Topic<Self::Input>;
    fn changelog_topic(&self) -> &'static Topic<<Self::State as Durable>::Record>;
    /// Where the input ids it applied are recorded (co-partitioned with
    /// the input, retained as long as an Idempotency-Key is honoured).
    fn applied_topic(&self) -> &'static Topic<AppliedInput>;

    /// The input's own id (a command id): the same id arriving twice, at
    /// any offsets, is applied once.
    fn input_id(input: &Self::Input) -> &str;

    /// Resolves once everything `apply` reads for `input` is there (the
    /// table versions a command was stamped with); an error aborts the
    /// batch, which is read again. By default, at once.
    fn ready<'a>(&'a self, _input: &'a Input<Self::Input>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// The rule: given the key's state (if any) and one input, what changes.
    fn apply(
        &self,
        state: Option<&Self::State>,
        input: &Input<Self::Input>,
    ) -> Outcome<Self::State, Self::Output>;

    /// What an input whose id was already applied produces: by default
    /// nothing. A processor whose readers wait for "the version of this
    /// input" moves its state to the input's offset without changing it.
    fn duplicate(
        &self,
        _state: &Self::State,
        _input: &Input<Self::Input>,
    ) -> Outcome<Self::State, Self::Output> {
        Outcome::nothing()
    }

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
    /// What every stage is given: brokers, codec, batching, stall flag.
    pub stage: StageDeps,
    /// This instance's name, stable across its restarts: its producer's
    /// transactional id is `<group>.<instance>`, so a restarted instance
    /// fences the producer its previous run left behind.
    pub instance: String,
    /// How often [`Processor::timers`] runs.
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
}

/// Runs `processor` in its consumer group until `shutdown` resolves, one
/// session after another ([`stage::supervise`]).
pub async fn run<P: Processor>(
    processor: Arc<P>,
    deps: RunnerDeps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = platform::Shutdown::on(shutdown);
    stage::supervise(P::NAME, &deps.stage.stall, shutdown, |stop| {
        session(&*processor, &deps, stop)
    })
    .await
}

/// One membership of the group, with its own producer and state (and the
/// loop's consumer).
async fn session<P: Processor>(
    processor: &P,
    deps: &RunnerDeps,
    shutdown: BoxFuture<'static, ()>,
) -> anyhow::Result<()> {
    let names = deps.stage.codec.names().clone();
    let group = names.group(P::NAME);
    let input_name = names.name(&processor.input_topic().def);
    let changelog_name = names.name(&processor.changelog_topic().def);
    let txn =
        Transactions::init(&deps.stage.brokers, &format!("{group}.{}", deps.instance)).await?;
    let applied_name = names.name(&processor.applied_topic().def);
    let states: PartitionStates<P::State> = PartitionStates::new(
        deps.stage.brokers.clone(),
        deps.stage.codec.clone(),
        (changelog_name.clone(), processor.changelog_topic()),
        (applied_name, processor.applied_topic()),
    );
    tracing::info!(stage = P::NAME, topic = %input_name, instance = %deps.instance, "processor session started");
    let mut session = Session {
        processor,
        deps,
        changelog: changelog_name,
        txn,
        states,
    };
    stage::consume(&deps.stage, deps.tick, &mut session, shutdown).await
}

/// A session's producer and partition states: what the loop hands its
/// rebalances, batches and ticks to.
struct Session<'a, P: Processor> {
    processor: &'a P,
    deps: &'a RunnerDeps,
    /// The changelog topic's full name.
    changelog: String,
    txn: Transactions,
    states: PartitionStates<P::State>,
}

impl<P: Processor> BatchHandler for Session<'_, P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn input(&self) -> TopicDef {
        self.processor.input_topic().def
    }

    async fn assigned(
        &mut self,
        _consumer: &GroupConsumer,
        parts: &[(String, i32)],
    ) -> anyhow::Result<()> {
        for (_, p) in parts {
            let started = Instant::now();
            let keys = self.states.restore(*p).await?;
            metrics::pipeline()
                .restore_seconds
                .with_label_values(&[P::NAME])
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(
                stage = P::NAME,
                partition = p,
                keys,
                "partition state restored"
            );
        }
        Ok(())
    }

    fn revoked(&mut self, parts: &[(String, i32)]) {
        parts.iter().for_each(|(_, p)| self.states.forget(*p));
    }

    async fn tick(&mut self, _consumer: &GroupConsumer) -> anyhow::Result<()> {
        let retention = self
            .processor
            .applied_topic()
            .def
            .retention_ms
            .unwrap_or(i64::MAX);
        self.states
            .prune_applied(self.deps.clock.now_ms().saturating_sub(retention));
        run_timers(self.processor, self.deps, &self.txn, &self.states).await
    }

    /// The batch in one transaction with its input offsets; an abort
    /// drops its staged state and rewinds its partitions.
    async fn batch(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
    ) -> anyhow::Result<BatchEnd> {
        let done = kafka::last_offsets(msgs.iter().copied());
        let result = async {
            self.txn.begin()?;
            process_batch(
                self.processor,
                self.deps,
                &self.txn,
                &self.changelog,
                &mut self.states,
                msgs,
            )
            .await?;
            stage::fault_hold().await;
            let group_meta = consumer
                .group_metadata()
                // Only a consumer outside its group lacks it: abort, and the
                // batch is read again once the member has rejoined.
                .ok_or_else(|| TxnError::Step("the consumer has no group metadata".into()))?;
            let offsets = kafka::next_offsets(&done).map_err(TxnError::Fatal)?;
            self.txn.commit(Some((offsets, group_meta))).await
        }
        .await;
        match result {
            Ok(()) => {
                self.states.commit_staged();
                Ok(BatchEnd::Committed)
            }
            Err(e @ (TxnError::Abort(_) | TxnError::Step(_))) => {
                metrics::pipeline()
                    .aborts
                    .with_label_values(&[P::NAME])
                    .inc();
                tracing::warn!(stage = P::NAME, error = %e, records = msgs.len(), "batch aborted; rewinding to the committed offsets");
                self.states.discard_staged();
                self.txn.abort().await?;
                rewind(consumer, msgs)?;
                Ok(BatchEnd::Rewound)
            }
            Err(TxnError::Fatal(e)) => {
                self.states.discard_staged();
                anyhow::bail!("transaction failed for good: {e}");
            }
        }
    }
}

/// Seeks each partition of an aborted batch back to its first record, so
/// the batch is read again; librdkafka drops what it had fetched past it.
fn rewind(consumer: &GroupConsumer, batch: &[&OwnedMessage]) -> anyhow::Result<()> {
    let mut firsts: Vec<(&str, i32, i64)> = Vec::new();
    for m in batch {
        if !firsts
            .iter()
            .any(|(t, p, _)| *t == m.topic() && *p == m.partition())
        {
            firsts.push((m.topic(), m.partition(), m.offset()));
        }
    }
    for (topic, partition, offset) in firsts {
        consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        )?;
    }
    Ok(())
}

/// Produces what the processor's timers ask for, for every owned partition,
/// in a transaction of its own.
async fn run_timers<P: Processor>(
    processor: &P,
    deps: &RunnerDeps,
    txn: &Transactions,
    states: &PartitionStates<P::State>,
) -> anyhow::Result<()> {
    let now = deps.clock.now_ms();
    let outputs: Vec<P::Output> = states
        .partitions()
        .flat_map(|(_, partition)| processor.timers(now, partition))
        .collect();
    if outputs.is_empty() {
        return Ok(());
    }
    let result = async {
        txn.begin()?;
        for output in &outputs {
            produce(deps, txn, P::NAME, output, None).await?;
        }
        txn.commit(None).await
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(stage = P::NAME, records = outputs.len(), "timers fired");
            Ok(())
        }
        // Nothing was promised on them: the next tick asks again.
        Err(e @ (TxnError::Abort(_) | TxnError::Step(_))) => {
            tracing::warn!(stage = P::NAME, error = %e, "timer outputs aborted; the next tick retries");
            txn.abort().await?;
            Ok(())
        }
        Err(TxnError::Fatal(e)) => anyhow::bail!("timer transaction failed for good: {e}"),
    }
}

/// Applies a batch inside the open transaction.
async fn process_batch<P: Processor>(
    processor: &P,
    deps: &RunnerDeps,
    txn: &Transactions,
    changelog_name: &str,
    states: &mut PartitionStates<P::State>,
    batch: &[&OwnedMessage],
) -> Result<(), TxnError> {
    let m = metrics::pipeline();
    let codec = &deps.stage.codec;
    for record in batch {
        let partition = record.partition();
        if !states.is_caught_up(partition) {
            if !states.is_restored(partition) {
                // Assigned before this session saw the event: read it now.
                states.restore(partition).await.map_err(abort_on)?;
            }
            states.catch_up(partition).await.map_err(abort_on)?;
        }
        let taken = stage::take(
            P::NAME,
            codec,
            processor.input_topic(),
            record,
            &deps.stage.stall,
        )
        .await;
        let input = match taken {
            Taken::Record(input) => input,
            Taken::Dead(letter) => {
                let (key, value) = stage::encode_dead_letter(codec, &letter)
                    .await
                    .map_err(abort_on)?;
                let topic = codec.names().name(&schemas::topics::DEAD_LETTERS.def);
                send(txn, FutureRecord::to(&topic).key(&key).payload(&value))?;
                m.dead_letters
                    .with_label_values(&[P::NAME, &letter.kind])
                    .inc();
                continue;
            }
        };
        let span = tracing::info_span!("record", stage = P::NAME, correlation_id = %input.correlation_id, partition, offset = input.offset);
        let current = states.get(partition, &input.key);
        let id = P::input_id(&input.value).to_owned();
        let outcome = match current {
            Some(s) if s.applied_offset() >= input.offset => {
                m.duplicates.with_label_values(&[P::NAME]).inc();
                span.in_scope(|| tracing::debug!("input offset already applied; skipped"));
                continue;
            }
            Some(s) if states.was_applied(partition, &input.key, &id) => {
                m.duplicates.with_label_values(&[P::NAME]).inc();
                span.in_scope(|| tracing::info!(input_id = %id, "input id already applied; not applied again"));
                processor.duplicate(s, &input)
            }
            _ => {
                processor
                    .ready(&input)
                    .instrument(span.clone())
                    .await
                    .map_err(abort_on)?;
                let current = states.get(partition, &input.key);
                let outcome = span.in_scope(|| processor.apply(current, &input));
                span.in_scope(|| tracing::debug!(key = %platform::telemetry::token_ref(&input.key), outputs = outcome.outputs.len(), state_changed = outcome.state.is_some(), "input applied"));
                outcome
            }
        };
        let causation = format!("{}@{}", input.partition, input.offset);
        let headers = Some((input.correlation_id.as_str(), causation.as_str()));
        for output in &outcome.outputs {
            produce(deps, txn, P::NAME, output, headers)
                .instrument(span.clone())
                .await?;
        }
        if let Some(new_state) = outcome.state {
            if !states.was_applied(partition, &input.key, &id) {
                let applied = AppliedInput {
                    key: input.key.clone(),
                    input_id: id.clone(),
                    offset: input.offset,
                    applied_at: deps.clock.now_ms(),
                };
                let value = codec
                    .encode(processor.applied_topic(), &applied)
                    .await
                    .map_err(abort_on)?;
                let key = Codec::encode_key(&format!("{}/{}", input.key, id));
                let topic = codec.names().name(&processor.applied_topic().def);
                send(
                    txn,
                    FutureRecord::to(&topic)
                        .key(&key)
                        .payload(&value)
                        .partition(partition),
                )?;
                states.stage_applied(partition, input.key.clone(), id.clone(), applied.applied_at);
            }
            for (changelog_key, record) in new_state.records(&input.key) {
                let value = codec
                    .encode(processor.changelog_topic(), &*record)
                    .await
                    .map_err(abort_on)?;
                m.state_record_bytes
                    .with_label_values(&[P::NAME])
                    .observe(value.len() as f64);
                if value.len() > LARGE_STATE_RECORD {
                    span.in_scope(|| tracing::warn!(key = %platform::telemetry::token_ref(&changelog_key), bytes = value.len(), "a state record nears the broker's message limit (1 MiB by default); past it, this key's transactions fail"));
                }
                let key = Codec::encode_key(&changelog_key);
                // Same partition as the input: restore reads exactly the
                // partition it is assigned.
                send(
                    txn,
                    FutureRecord::to(changelog_name)
                        .key(&key)
                        .payload(&value)
                        .partition(partition)
                        .headers(kafka::trace_headers(&input.correlation_id, &causation)),
                )?;
            }
            states.stage(partition, input.key.clone(), new_state);
        }
    }
    Ok(())
}

/// Encodes and sends one output inside the open transaction.
async fn produce(
    deps: &RunnerDeps,
    txn: &Transactions,
    stage: &'static str,
    output: &impl Emit,
    trace: Option<(&str, &str)>,
) -> Result<(), TxnError> {
    let enc = output.encode(&deps.stage.codec).await.map_err(abort_on)?;
    let key = Codec::encode_key(&enc.key);
    let topic = deps.stage.codec.names().name(&enc.topic);
    let mut rec = FutureRecord::to(&topic).key(&key).payload(&enc.value);
    if let Some((correlation, causation)) = trace {
        rec = rec.headers(kafka::trace_headers(correlation, causation));
    }
    send(txn, rec)?;
    metrics::pipeline()
        .records_out
        .with_label_values(&[stage, enc.topic.name])
        .inc();
    Ok(())
}

/// A changelog record this large is logged: the broker refuses records over
/// its `max.message.bytes` (1 MiB by default), and a state that grows past
/// it stops its key.
const LARGE_STATE_RECORD: usize = 512 * 1024;

/// Hands a record to the transactional producer. Delivery is settled by
/// the commit, which flushes and fails if any record of the transaction
/// failed, so the delivery future is not awaited here.
fn send(txn: &Transactions, rec: FutureRecord<'_, Vec<u8>, Vec<u8>>) -> Result<(), TxnError> {
    txn.producer()
        .send_result(rec)
        .map(drop)
        .map_err(|(e, _)| TxnError::Abort(e))
}

/// An error inside a batch that is not the transaction's own (the registry
/// failed while encoding, a restore read failed): abort, rewind, retry.
fn abort_on(e: impl std::fmt::Display) -> TxnError {
    TxnError::Step(e.to_string())
}
