//! Kafka clients configured the one way every stage needs them.
//!
//! Producers are idempotent with `acks=all`; consumers never commit on their
//! own (`enable.auto.commit=false`, `enable.auto.offset.store=false`): a
//! stage stores an offset only after the work it stands for is durable, then
//! commits. Keys are partitioned with murmur2, the Java client's
//! partitioner, so any Kafka client writing our topics agrees with us on
//! which partition a cart lives in.
//!
//! Nothing here relies on a particular broker: it is plain Kafka protocol.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use schemas::headers;
use schemas::{TopicDef, TopicNames};

use crate::metrics;

fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "internhub-checkout")
        .set("socket.keepalive.enable", "true");
    c
}

/// The producer every stage uses: idempotent, `acks=all`, murmur2 keys.
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    base_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        // A short linger batches a burst of checkouts without adding
        // noticeable latency to a single one.
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
}

/// Waits until the producer has talked to the cluster once. An idempotent
/// producer's first sends wait for its producer id, so services report
/// ready only after this.
pub async fn warm_up(producer: &FutureProducer, timeout: Duration) -> Result<(), KafkaError> {
    let p = producer.clone();
    tokio::task::spawn_blocking(move || p.client().fetch_metadata(None, timeout).map(|_| ()))
        .await
        .map_err(|_| KafkaError::Canceled)?
}

/// Rebalance notifications, queued for the stage's loop to act on outside
/// the callback (callbacks must stay short, see rust-rdkafka #738).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// The consumer context: records rebalances, commits stored offsets before
/// partitions are taken away, and exports consumer lag from librdkafka's
/// statistics.
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Offsets stored for finished work are committed now, so the next
            // owner does not redo it (it would be a no-op, but a slow one).
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
                    tracing::warn!(stage = self.stage, error = %e, "commit before revoke failed");
                }
            }
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

/// A consumer in `group` that stores and commits offsets only when told.
pub fn group_consumer(
    brokers: &str,
    group: &str,
    stage: &'static str,
) -> Result<GroupConsumer, KafkaError> {
    base_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        // Bounded prefetch: a slow stage must not buffer without limit
        // (rust-rdkafka #650).
        .set("queued.max.messages.kbytes", "16384")
        // A fetch returns within 25 ms even when the broker holds it for
        // more data (nisshi, and Kafka with fetch.min.bytes > 1): the
        // write-to-visible path crosses three consumers.
        .set("fetch.wait.max.ms", "25")
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
        .set("enable.partition.eof", "false");
    c
}

/// Reads `topic`'s `partition` from the beginning to its end, calling
/// `each` with every record. Blocking: run it in `spawn_blocking`.
///
/// "The end" is the high watermark at the start, and then whatever else
/// arrives until the partition has been quiet for `settle`: a broker may
/// report a high watermark short of records it has already acknowledged
/// (nisshi 0.6 reports the base offset of the last batch + 1), and missing
/// the last acknowledged state record would make a restore stale.
pub fn read_partition_to_end(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<u64, KafkaError> {
    let settle = Duration::from_millis(250);
    let (low, high) = reader.fetch_watermarks(topic, partition, timeout)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    reader.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut count = 0;
    let mut next = low;
    let mut quiet_since = Instant::now();
    loop {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                count += 1;
                next = m.offset() + 1;
                quiet_since = Instant::now();
                each(&m);
            }
            Some(Err(e)) => return Err(e),
            None if next >= high && quiet_since.elapsed() >= settle => break,
            None => {}
        }
    }
    reader.unassign()?;
    tracing::debug!(
        topic,
        partition,
        low,
        high,
        next,
        count,
        "partition read to end"
    );
    Ok(count)
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

/// Stores `offset` (the last record done) of each partition and commits
/// asynchronously. Only call after the work for these records is durable.
pub fn store_and_commit(
    consumer: &GroupConsumer,
    done: &[(String, i32, i64)],
) -> Result<(), KafkaError> {
    for (topic, partition, offset) in done {
        // rd_kafka_offset_store stores offset + 1, the next record to read.
        match consumer.store_offset(topic, *partition, *offset) {
            Ok(()) => {}
            // The partition was revoked meanwhile: its next owner redoes the
            // work, which is idempotent.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::UnknownPartition)) => {}
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {}
            Err(e) => return Err(e),
        }
    }
    match consumer.commit_consumer_state(CommitMode::Async) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The last offset of each (topic, partition) in `batch`.
pub fn last_offsets(batch: &[OwnedMessage]) -> Vec<(String, i32, i64)> {
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

/// Creates the catalog's topics; topics that exist are left as they are.
pub async fn create_topics(
    brokers: &str,
    names: &TopicNames,
    defs: &[TopicDef],
    replication: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(brokers).create()?;
    let full: Vec<String> = defs.iter().map(|d| names.name(d)).collect();
    let topics: Vec<NewTopic<'_>> = defs
        .iter()
        .zip(&full)
        .map(|(d, name)| {
            NewTopic::new(name, d.partitions, TopicReplication::Fixed(replication))
                .set("cleanup.policy", d.cleanup.as_config())
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(topics.iter(), &opts).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists")
            }
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}
