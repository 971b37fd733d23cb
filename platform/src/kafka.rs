//! Kafka clients configured the one way every stage needs them.
//!
//! Producers are idempotent with `acks=all`; a processor's producer is also
//! transactional ([`Transactions`]). Consumers never commit on their own:
//! a processor commits its input offsets inside its output transaction, a
//! sink stores them in Postgres with its rows. Every consumer reads with
//! `isolation.level=read_committed`, so records of an aborted transaction
//! (a batch that failed, a zombie's writes) are never seen. Keys are
//! partitioned with murmur2, the Java client's partitioner, so any Kafka
//! client writing our topics agrees with us on which partition a cart lives
//! in.
//!
//! Nothing here relies on a particular broker: it is plain Kafka protocol.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use schemas::headers;
use schemas::{TopicDef, TopicNames};

use crate::metrics;

fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "internhub-checkout")
        .set("socket.keepalive.enable", "true")
        // Requests are small and latency-bound (a transaction is several
        // sequential round trips): Nagle's algorithm would hold each one
        // back until the previous is acknowledged.
        .set("socket.nagle.disable", "true");
    // librdkafka's own debug contexts (e.g. `eos,msg,protocol`), logged at
    // debug level under the target `librdkafka` (RUST_LOG=librdkafka=debug).
    if let Ok(contexts) = std::env::var("KAFKA_CLIENT_DEBUG") {
        c.set("debug", contexts);
    }
    c
}

fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = base_config(brokers);
    // acks=all: a write is acknowledged once every in-sync replica has it
    // (on a three-node cluster with min.insync.replicas=2, at least two
    // disks), so a broker lost after the ack loses nothing acknowledged.
    // Idempotence requires acks=all (librdkafka refuses anything else);
    // it is set explicitly so no later edit can weaken it unnoticed. Every
    // producer of the project is built here: the ingress's and the tools'
    // (`producer`) and the processors' transactional ones (`Transactions`).
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        // A short linger batches a burst of checkouts without adding
        // noticeable latency to a single one.
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000");
    c
}

/// The producer of the ingress and the tools: idempotent, `acks=all`,
/// murmur2 keys, not transactional (each request is one record).
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    producer_config(brokers).create()
}

/// Waits until the producer has talked to the cluster once (each attempt
/// up to `timeout`, retried while the brokers restart, see
/// [`crate::startup`]). An idempotent producer's first sends wait for its
/// producer id, so services report ready only after this.
pub async fn warm_up(producer: &FutureProducer, timeout: Duration) -> anyhow::Result<()> {
    crate::startup::patiently(
        "the Kafka brokers",
        crate::startup::wait_limit()?.max(timeout),
        |_: &KafkaError| true,
        || {
            let p = producer.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    p.client().fetch_metadata(None, timeout).map(|_| ())
                })
                .await
                .map_err(|_| KafkaError::Canceled)?
            }
        },
    )
    .await
}

/// Rebalance notifications, queued for the stage's loop to act on outside
/// the callback (callbacks must stay short, see rust-rdkafka #738).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// The consumer context: records rebalances for the stage's loop and
/// exports consumer lag from librdkafka's statistics. It commits nothing:
/// offsets travel with the work they stand for (a transaction, a Postgres
/// commit).
pub struct GroupContext {
    stage: &'static str,
    events: Mutex<VecDeque<GroupEvent>>,
}

impl GroupContext {
    pub fn new(stage: &'static str) -> GroupContext {
        GroupContext {
            stage,
            events: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes the rebalances seen since the last call, oldest first.
    pub fn drain_events(&self) -> Vec<GroupEvent> {
        self.events
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    fn push(&self, event: GroupEvent) {
        if let Ok(mut q) = self.events.lock() {
            q.push_back(event);
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 for partitions this member does not consume.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::pipeline()
                        .consumer_lag
                        .with_label_values(&[self.stage, topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.push(GroupEvent::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(stage = self.stage, partitions = ?partitions(tpl), "partitions assigned");
                self.push(GroupEvent::Assigned(partitions(tpl)));
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(stage = self.stage, partitions = ?partitions(tpl), "partitions revoked");
            }
            Rebalance::Error(e) => {
                tracing::warn!(stage = self.stage, error = %e, "rebalance error")
            }
        }
    }
}

pub type GroupConsumer = StreamConsumer<GroupContext>;

/// How long the broker may hold a fetch that found nothing new
/// (`KAFKA_FETCH_WAIT_MS`, default 500, librdkafka's default). A held fetch
/// is answered as soon as records become readable, so this bounds only
/// the idle polling: with 25 ms (the earlier setting) the broker answered
/// about forty empty fetches a second per consumer, and an idle stack cost
/// it a quarter of a core (7.1 CPU s in 30 s, against 4.6 with 500, most
/// of that the JIT still warming up); the journey's latency did not change
/// (session ready p50 1.08 s with 500, 1.11 s with 25, same bench).
fn fetch_wait_ms() -> String {
    std::env::var("KAFKA_FETCH_WAIT_MS")
        .ok()
        .filter(|v| v.parse::<u32>().is_ok())
        .unwrap_or_else(|| "500".into())
}

/// A consumer in `group` that never commits by itself (see the module doc).
pub fn group_consumer(
    brokers: &str,
    group: &str,
    stage: &'static str,
) -> Result<GroupConsumer, KafkaError> {
    base_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // A member that stops polling this long (a stuck or SIGSTOPped
        // process) leaves the group, so its partitions move on; its
        // transactions then fail with a stale generation.
        .set("max.poll.interval.ms", "30000")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        // Bounded prefetch: a slow stage must not buffer without limit
        // (rust-rdkafka #650).
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.wait.max.ms", &fetch_wait_ms())
        .set("statistics.interval.ms", "5000")
        .create_with_context(GroupContext::new(stage))
}

/// A consumer outside any group, for reading a whole partition or topic
/// (state restore, global tables). It never commits.
pub fn reader(brokers: &str) -> Result<BaseConsumer, KafkaError> {
    reader_config(brokers).create()
}

/// The configuration of [`reader`], for a reader of another kind (a
/// `StreamConsumer` following a global table).
pub fn reader_config(brokers: &str) -> ClientConfig {
    let mut c = base_config(brokers);
    // librdkafka wants a group id even for assign(); nothing is committed.
    c.set("group.id", "internhub-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", &fetch_wait_ms())
        .set("enable.partition.eof", "false");
    c
}

/// Reads `topic`'s `partition` from `from` to its end, calling `each` with
/// every record, and returns the next offset to read (where a later catch-up
/// starts). Blocking: run it in `spawn_blocking`.
///
/// "The end" is the last stable offset at the time of the call: under
/// `read_committed` the watermark query answers it, records of open
/// transactions lie beyond it, and transaction markers occupy offsets
/// without being delivered, so the loop ends on the consumer's position,
/// never on "last record + 1" (librdkafka #3918).
/// A partition's (low, high) watermarks. A topic created a moment ago may
/// have no leader yet (NotLeaderForPartition, LeaderNotAvailable,
/// UnknownTopicOrPartition): that is waited out within `timeout`, not
/// reported as a failure.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match consumer.fetch_watermarks(topic, partition, left) {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition,
            )) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => return other,
        }
    }
}

pub fn read_partition(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: Offset,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<i64, KafkaError> {
    let (low, end) = watermarks(reader, topic, partition, timeout)?;
    let start = match from {
        Offset::Offset(o) => o.max(low),
        _ => low,
    };
    if start >= end {
        return Ok(start.max(end));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    reader.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut count = 0u64;
    let next = loop {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                count += 1;
                each(&m);
            }
            // A connection to one broker dropped (a broker of a cluster
            // died or restarts): librdkafka reports it and reconnects, or
            // fetches from the partition's new leader, by itself. Ending
            // the read here made every restore fail while a broker was
            // down, and the stage rejoin and restore again, over and over.
            Some(Err(e)) if transient(&e) => {
                tracing::debug!(topic, partition, error = %e, "transient error while reading; going on");
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let position = reader
            .position()?
            .find_partition(topic, partition)
            .and_then(|e| e.offset().to_raw())
            .unwrap_or(start);
        if position >= end {
            break position;
        }
    };
    reader.unassign()?;
    tracing::debug!(
        topic,
        partition,
        start,
        end,
        next,
        count,
        "partition read to its end"
    );
    Ok(next)
}

/// A consumer error librdkafka recovers from by itself: a connection to a
/// broker lost or all of them briefly unreachable.
pub fn transient(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

/// A batch of records and the rebalances seen while collecting it.
pub struct Batch {
    pub messages: Vec<OwnedMessage>,
    pub events: Vec<GroupEvent>,
}

/// Collects up to `max` records: waits for the first, then takes what
/// arrives within `linger`. Batches amortize the wait for broker acks and
/// Postgres commits over many records.
///
/// A rebalance inside the collection splits time in two: records of a
/// revoked partition taken before the revocation are dropped from the
/// batch. They were not done, so their offsets were not stored, and the
/// partition's next owner (this instance again, perhaps) reads them again
/// from the committed offset; processing them here as well would apply
/// that partition's records out of order.
///
/// With nothing to read it returns an empty batch after `idle`, so a stage
/// can do timed work; dropping a pending `recv` takes no record.
pub async fn next_batch(
    consumer: &GroupConsumer,
    max: usize,
    linger: Duration,
    idle: Duration,
) -> Batch {
    let mut batch = Batch {
        messages: Vec::new(),
        events: Vec::new(),
    };
    let first = match tokio::time::timeout(idle, consumer.recv()).await {
        Ok(first) => first,
        Err(_) => {
            absorb_events(consumer, &mut batch);
            return batch;
        }
    };
    absorb_events(consumer, &mut batch);
    match first {
        Ok(m) => batch.messages.push(m.detach()),
        Err(e) => {
            // The events still reach the caller; the error is transient
            // (librdkafka retries by itself), so pause instead of spinning.
            tracing::warn!(error = %e, "consume failed");
            tokio::time::sleep(Duration::from_millis(200)).await;
            return batch;
        }
    }
    let deadline = tokio::time::Instant::now() + linger;
    while batch.messages.len() < max {
        let next = tokio::time::timeout_at(deadline, consumer.recv()).await;
        // Callbacks run inside recv: anything they reported happened before
        // the record this recv returned.
        absorb_events(consumer, &mut batch);
        match next {
            Ok(Ok(m)) => batch.messages.push(m.detach()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "consumer error inside a batch");
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

fn absorb_events(consumer: &GroupConsumer, batch: &mut Batch) {
    for event in consumer.context().drain_events() {
        if let GroupEvent::Revoked(parts) = &event {
            batch.messages.retain(|m| {
                !parts
                    .iter()
                    .any(|(t, p)| t == m.topic() && *p == m.partition())
            });
        }
        batch.events.push(event);
    }
}

/// The last offset of each (topic, partition) in `batch`.
pub fn last_offsets<'a>(
    batch: impl IntoIterator<Item = &'a OwnedMessage>,
) -> Vec<(String, i32, i64)> {
    let mut out: Vec<(String, i32, i64)> = Vec::new();
    for m in batch {
        match out
            .iter_mut()
            .find(|(t, p, _)| t == m.topic() && *p == m.partition())
        {
            Some(entry) => entry.2 = entry.2.max(m.offset()),
            None => out.push((m.topic().to_owned(), m.partition(), m.offset())),
        }
    }
    out
}

/// Headers for a record caused by `causation_id` within `correlation_id`.
pub fn trace_headers(correlation_id: &str, causation_id: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: headers::CORRELATION_ID,
            value: Some(correlation_id),
        })
        .insert(Header {
            key: headers::CAUSATION_ID,
            value: Some(causation_id),
        })
}

/// The correlation id a record carries, if any.
pub fn correlation_id<M: Message>(m: &M) -> Option<String> {
    let hs = m.headers()?;
    hs.iter()
        .find(|h| h.key == headers::CORRELATION_ID)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// An admin client (topics, groups).
pub fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    base_config(brokers).create()
}

/// How many copies a topic gets on a cluster of `brokers`: three where
/// there are three (or more), every broker otherwise.
pub fn replication_for(brokers: usize) -> i32 {
    brokers.clamp(1, 3) as i32
}

/// `min.insync.replicas` for a topic with `replication` copies: with three,
/// a write needs two (one broker may be down and writes go on, and nothing
/// acknowledged to an `acks=all` producer lives on one disk only); with
/// fewer, one (two would stop every write while either broker is down).
pub fn min_insync_replicas(replication: i32) -> i32 {
    if replication >= 3 {
        2
    } else {
        1
    }
}

/// The brokers the cluster at `brokers` reports (their ids), and each
/// topic's replica count.
async fn cluster_brokers(
    brokers: &str,
) -> Result<(Vec<i32>, std::collections::HashMap<String, usize>), KafkaError> {
    let client: BaseConsumer = base_config(brokers).create()?;
    tokio::task::spawn_blocking(move || {
        let md = client.fetch_metadata(None, Duration::from_secs(10))?;
        let ids = md.brokers().iter().map(|b| b.id()).collect();
        // A topic's replica count, from its first partition's.
        let replicas = md
            .topics()
            .iter()
            .filter_map(|t| {
                let p = t.partitions().first()?;
                Some((t.name().to_owned(), p.replicas().len()))
            })
            .collect();
        Ok((ids, replicas))
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// The ids of the brokers the cluster at `brokers` reports (the controller
/// registers a broker once it has caught up with the metadata log).
pub async fn broker_ids(brokers: &str) -> Result<Vec<i32>, KafkaError> {
    Ok(cluster_brokers(brokers).await?.0)
}

/// Creates the catalog's topics with `replication` copies each (`None`:
/// [`replication_for`] the brokers the cluster reports) and
/// [`min_insync_replicas`] for it. A topic that exists keeps its partitions
/// (changing them would move keys) and its replicas (moving them is a
/// reassignment, an operator's decision: a warning says so) but gets the
/// catalog's cleanup policy and retention, and the `min.insync.replicas`
/// of the copies it really has, so a deployment follows the catalog when
/// it changes (the table topics went from compacted to kept whole).
pub async fn create_topics(
    brokers: &str,
    names: &TopicNames,
    defs: &[TopicDef],
    replication: Option<i32>,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(brokers).create()?;
    let (ids, replicas_of) = cluster_brokers(brokers).await?;
    let replication = replication.unwrap_or_else(|| replication_for(ids.len()));
    if replication as usize > ids.len() {
        anyhow::bail!(
            "{replication} replicas asked for, but the cluster at {brokers} reports {} broker(s) ({ids:?})",
            ids.len()
        );
    }
    let min_isr = min_insync_replicas(replication).to_string();
    tracing::info!(replication, min_isr = %min_isr, brokers = ids.len(), "creating topics");
    let full: Vec<String> = defs.iter().map(|d| names.name(d)).collect();
    let retention: Vec<Option<String>> = defs
        .iter()
        .map(|d| d.retention_ms.map(|ms| ms.to_string()))
        .collect();
    let topics: Vec<NewTopic<'_>> = defs
        .iter()
        .zip(&full)
        .zip(&retention)
        .map(|((d, name), retention)| {
            let t = NewTopic::new(name, d.partitions, TopicReplication::Fixed(replication))
                .set("cleanup.policy", d.cleanup.as_config())
                .set("min.insync.replicas", &min_isr);
            match retention {
                Some(ms) => t.set("retention.ms", ms),
                None => t,
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut existing = Vec::new();
    for result in admin.create_topics(topics.iter(), &opts).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(name),
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    // The min.insync.replicas of an existing topic follows the copies it
    // has, not those asked for: 2 on a topic with one copy would refuse
    // every write.
    let existing_isr: Vec<String> = full
        .iter()
        .map(|name| {
            let has = replicas_of.get(name).map_or(replication, |n| *n as i32);
            if existing.contains(name) && has < replication {
                tracing::warn!(
                    topic = %name,
                    has,
                    wanted = replication,
                    "topic has fewer replicas than asked for; add them with kafka-reassign-partitions"
                );
            }
            min_insync_replicas(has).to_string()
        })
        .collect();
    // AlterConfigs (rdkafka 0.39 has no incremental variant) replaces a
    // topic's dynamic settings as a whole: these three are all the catalog
    // sets; a setting added to creation must be added here too, or the
    // next create-topics drops it (min.insync.replicas would fall back to
    // the broker's default).
    let alters: Vec<AlterConfig<'_>> = defs
        .iter()
        .zip(&full)
        .zip(&retention)
        .zip(&existing_isr)
        .filter(|(((_, name), _), _)| existing.contains(name))
        .map(|(((d, name), retention), isr)| {
            let a = AlterConfig::new(ResourceSpecifier::Topic(name))
                .set("cleanup.policy", d.cleanup.as_config())
                .set("min.insync.replicas", isr);
            match retention {
                Some(ms) => a.set("retention.ms", ms),
                None => a,
            }
        })
        .collect();
    if !alters.is_empty() {
        for result in admin.alter_configs(alters.iter(), &opts).await? {
            match result {
                Ok(resource) => tracing::debug!(?resource, "topic settings follow the catalog"),
                Err((resource, code)) => anyhow::bail!("altering {resource:?}: {code}"),
            }
        }
    }
    Ok(())
}

/// How a transactional call failed, which decides what the stage does next.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The transaction must be aborted; the producer stays usable. The
    /// stage rewinds the batch's partitions and tries again.
    #[error("transaction must be aborted: {0}")]
    Abort(KafkaError),
    /// A step of the batch other than a Kafka call failed (encoding with
    /// an unreachable registry, a restore read): abort and retry likewise.
    #[error("batch step failed: {0}")]
    Step(String),
    /// The producer is unusable: fenced by a newer instance with the same
    /// transactional id, or a member the group has moved on from. The
    /// stage drops its producer, consumer and state, and rejoins.
    #[error("producer fenced or failed for good: {0}")]
    Fatal(KafkaError),
}

impl TxnError {
    fn classify(e: KafkaError) -> TxnError {
        match &e {
            KafkaError::Transaction(r) if r.is_fatal() => TxnError::Fatal(e),
            KafkaError::Transaction(r) if r.txn_requires_abort() || r.is_retriable() => {
                TxnError::Abort(e)
            }
            // commit_transaction flushes first; a flush that timed out
            // leaves the transaction open, to be aborted.
            KafkaError::Flush(_) => TxnError::Abort(e),
            _ => TxnError::Fatal(e),
        }
    }
}

/// Blocks until every record handed to `producer` has its delivery report
/// (or 30 s pass; the commit then flushes and fails for what is left).
///
/// Why not leave it to `commit_transaction`: rust-rdkafka's commit first
/// flushes by polling the producer's queue up to 100 ms at a time, racing
/// the `FutureProducer`'s own polling thread for the delivery reports, so
/// a commit with records in flight waited ~100 ms for nothing (measured:
/// 100 ms between the last delivery and the EndTxn request of most
/// batches). The polling thread serves the reports; this only watches the
/// count, and the commit's own flush then finds nothing in flight.
fn wait_for_deliveries(producer: &FutureProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(250));
    }
}

/// A transactional producer (Kafka Streams' `exactly_once_v2`, KIP-447):
/// one per stage instance, with a transactional id stable for that
/// instance, serving every partition it is assigned. A batch's outputs,
/// its changelog records and its input offsets commit together or not at
/// all. The blocking librdkafka calls run on the blocking pool
/// (rust-rdkafka #293).
#[derive(Clone)]
pub struct Transactions {
    producer: FutureProducer,
}

impl Transactions {
    /// Creates the producer and registers its transactional id, fencing
    /// any older producer with the same id (a previous run of this
    /// instance) and aborting what it left open.
    pub async fn init(brokers: &str, transactional_id: &str) -> Result<Transactions, KafkaError> {
        let producer: FutureProducer = producer_config(brokers)
            .set("transactional.id", transactional_id)
            // Short transactions: a zombie's open transaction holds back
            // every read_committed reader of its partitions until the
            // coordinator aborts it at this timeout. Batches take
            // milliseconds. message.timeout.ms must stay below it.
            .set("transaction.timeout.ms", "15000")
            .set("message.timeout.ms", "10000")
            // The coordinator answers CONCURRENT_TRANSACTIONS while the
            // previous transaction's markers are still being written (a few
            // ms after each commit), and the next batch's AddOffsetsToTxn
            // is retried after this backoff: librdkafka's 100 ms default
            // put most of a commit's time there (send_offsets p50 70 ms ->
            // 25 ms with 5).
            .set("retry.backoff.ms", "5")
            .set("retry.backoff.max.ms", "50")
            .create()?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(30)))
            .await
            .map_err(|_| KafkaError::Canceled)??;
        Ok(Transactions { producer })
    }

    /// The producer, for sending records inside an open transaction.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    pub fn begin(&self) -> Result<(), TxnError> {
        self.producer
            .begin_transaction()
            .map_err(TxnError::classify)
    }

    /// Adds the consumed `offsets` (the next offset to read, per partition)
    /// to the open transaction, then commits it. The group metadata carries
    /// the member's generation: a member the group has moved on from is
    /// refused here, and its outputs are aborted with the transaction.
    pub async fn commit(
        &self,
        offsets: Option<(TopicPartitionList, ConsumerGroupMetadata)>,
    ) -> Result<(), TxnError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            if let Some((tpl, group)) = offsets {
                p.send_offsets_to_transaction(&tpl, &group, Duration::from_secs(30))
                    .map_err(TxnError::classify)?;
            }
            let offsets_sent = started.elapsed();
            wait_for_deliveries(&p);
            let mut tries = 0;
            loop {
                match p.commit_transaction(Timeout::Never) {
                    Ok(()) => {
                        tracing::debug!(?offsets_sent, total = ?started.elapsed(), "transaction committed");
                        return Ok(());
                    }
                    Err(KafkaError::Transaction(r)) if r.is_retriable() && tries < 3 => {
                        tries += 1;
                        tracing::warn!(error = %r, "commit retried");
                    }
                    Err(e) => return Err(TxnError::classify(e)),
                }
            }
        })
        .await
        .map_err(|_| TxnError::Fatal(KafkaError::Canceled))?
    }

    pub async fn abort(&self) -> Result<(), TxnError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.abort_transaction(Timeout::Never))
            .await
            .map_err(|_| TxnError::Fatal(KafkaError::Canceled))?
            .map_err(TxnError::classify)
    }
}

/// The offsets to commit for a batch: for each (topic, partition) of
/// `done` (its last record), the next offset to read.
pub fn next_offsets(done: &[(String, i32, i64)]) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, last) in done {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(last + 1))?;
    }
    Ok(tpl)
}
