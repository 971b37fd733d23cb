//! Per-partition state of a processor, restored from its changelog.
//!
//! State is kept only for partitions this instance owns. A partition's
//! state is read from the changelog's partition of the same number as soon
//! as the partition is assigned (so timers see every owned partition, busy
//! or quiet), and dropped when it is revoked, so a partition that comes
//! back is read afresh rather than trusted from memory.
//!
//! The changelog is read to its last stable offset: committed transactions
//! only. Just before the first record of a partition is applied, the
//! restore catches up once more: by then the group coordinator has settled
//! any transaction the previous owner still had open (the consumer's
//! committed-offset fetch waits for it), so nothing it committed is missed.
//!
//! Beside the states, each partition holds the input ids applied to its
//! keys in the last 24 h, read likewise from the processor's applied-ids
//! topic (same partition number), so a repeated command is recognised
//! whatever offset it arrives at.
//!
//! Changes made while a batch's transaction is open are staged beside the
//! restored state and become part of it only when the transaction commits;
//! an aborted batch leaves the state exactly as committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::{Message, Offset};

use platform::kafka;
use schemas::records::runtime::AppliedInput;
use schemas::{Codec, Topic};

use super::Durable;

struct Partition<S> {
    states: HashMap<String, S>,
    /// The changelog offset the next catch-up reads from.
    next: i64,
    /// (key, input id) → when it was applied.
    applied: HashMap<(String, String), i64>,
    /// The applied-ids topic's offset the next catch-up reads from.
    applied_next: i64,
    /// Whether the catch-up before the first record has happened.
    caught_up: bool,
}

pub struct PartitionStates<S: Durable> {
    brokers: String,
    codec: Arc<Codec>,
    topic: &'static Topic<S::Record>,
    changelog: String,
    applied_topic: String,
    applied_def: &'static Topic<AppliedInput>,
    partitions: HashMap<i32, Partition<S>>,
    /// Changes of the open transaction, by (partition, key).
    staged: HashMap<(i32, String), S>,
    /// Input ids applied in the open transaction: (partition, key, id, at).
    staged_applied: Vec<(i32, String, String, i64)>,
}

impl<S: Durable> PartitionStates<S> {
    pub fn new(
        brokers: String,
        codec: Arc<Codec>,
        (changelog, topic): (String, &'static Topic<S::Record>),
        (applied_topic, applied_def): (String, &'static Topic<AppliedInput>),
    ) -> PartitionStates<S> {
        PartitionStates {
            brokers,
            codec,
            topic,
            changelog,
            applied_topic,
            applied_def,
            partitions: HashMap::new(),
            staged: HashMap::new(),
            staged_applied: Vec::new(),
        }
    }

    /// Whether `input_id` was applied to `key` (committed, or earlier in
    /// the open transaction).
    pub fn was_applied(&self, partition: i32, key: &str, input_id: &str) -> bool {
        self.staged_applied
            .iter()
            .any(|(p, k, i, _)| *p == partition && k == key && i == input_id)
            || self.partitions.get(&partition).is_some_and(|p| {
                p.applied
                    .contains_key(&(key.to_owned(), input_id.to_owned()))
            })
    }

    /// Records inside the open transaction that `input_id` was applied.
    pub fn stage_applied(&mut self, partition: i32, key: String, input_id: String, at_ms: i64) {
        self.staged_applied.push((partition, key, input_id, at_ms));
    }

    /// Forgets applied ids older than `cutoff_ms` (the topic's retention
    /// drops them from Kafka likewise).
    pub fn prune_applied(&mut self, cutoff_ms: i64) {
        for p in self.partitions.values_mut() {
            p.applied.retain(|_, at| *at >= cutoff_ms);
        }
    }

    pub fn is_restored(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    pub fn is_caught_up(&self, partition: i32) -> bool {
        self.partitions.get(&partition).is_some_and(|p| p.caught_up)
    }

    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        self.staged.retain(|(p, _), _| *p != partition);
        self.staged_applied.retain(|(p, _, _, _)| *p != partition);
    }

    /// The key's state, including the open transaction's change.
    pub fn get(&self, partition: i32, key: &str) -> Option<&S> {
        self.staged
            .get(&(partition, key.to_owned()))
            .or_else(|| self.partitions.get(&partition)?.states.get(key))
    }

    /// The committed states of every partition held, by partition.
    pub fn partitions(&self) -> impl Iterator<Item = (&i32, &HashMap<String, S>)> {
        self.partitions.iter().map(|(p, part)| (p, &part.states))
    }

    /// Stages a change inside the open transaction.
    pub fn stage(&mut self, partition: i32, key: String, state: S) {
        self.staged.insert((partition, key), state);
    }

    /// The transaction committed: its changes are now the state.
    pub fn commit_staged(&mut self) {
        for ((partition, key), state) in self.staged.drain() {
            if let Some(p) = self.partitions.get_mut(&partition) {
                p.states.insert(key, state);
            }
        }
        for (partition, key, id, at) in self.staged_applied.drain(..) {
            if let Some(p) = self.partitions.get_mut(&partition) {
                p.applied.insert((key, id), at);
            }
        }
    }

    /// The transaction aborted: its changes never happened.
    pub fn discard_staged(&mut self) {
        self.staged.clear();
        self.staged_applied.clear();
    }

    /// Reads the changelog partition from the beginning to its last stable
    /// offset. Returns the key count.
    pub async fn restore(&mut self, partition: i32) -> anyhow::Result<usize> {
        self.forget(partition);
        let mut part = Partition {
            states: HashMap::new(),
            next: 0,
            applied: HashMap::new(),
            applied_next: 0,
            caught_up: false,
        };
        self.read_into(&mut part, partition).await?;
        let n = part.states.len();
        self.partitions.insert(partition, part);
        Ok(n)
    }

    /// Reads what the changelog partition gained since the restore.
    pub async fn catch_up(&mut self, partition: i32) -> anyhow::Result<()> {
        let Some(mut part) = self.partitions.remove(&partition) else {
            anyhow::bail!("partition {partition} is not restored");
        };
        let result = self.read_into(&mut part, partition).await;
        part.caught_up = result.is_ok();
        self.partitions.insert(partition, part);
        result
    }

    /// Applies the changelog from `part.next` to its end onto `part`,
    /// each record folded in by the state's [`Durable::restore`].
    async fn read_into(&self, part: &mut Partition<S>, partition: i32) -> anyhow::Result<()> {
        let (codec, topic) = (&self.codec, self.topic);
        let (raw, next) = self.read_raw(&self.changelog, partition, part.next).await?;
        let (applied_raw, applied_next) = self
            .read_raw(&self.applied_topic, partition, part.applied_next)
            .await?;
        for (_, value) in applied_raw {
            if let Some(bytes) = value {
                let a: AppliedInput = codec.decode(self.applied_def, Some(&bytes)).await?;
                part.applied.insert((a.key, a.input_id), a.applied_at);
            }
        }
        part.applied_next = applied_next;
        for (key, value) in raw {
            let key = Codec::decode_key(&topic.def, key.as_deref())?;
            let record = match value {
                None => None,
                Some(bytes) => Some(codec.decode(topic, Some(&bytes)).await?),
            };
            S::restore(&mut part.states, key, record);
        }
        part.next = next;
        Ok(())
    }

    /// The raw records of `topic`'s `partition` from `from` to its end, and
    /// the offset to go on from. The Kafka read blocks; decoding needs the
    /// (async) registry client, so raw records are collected first and
    /// decoded afterwards.
    #[allow(clippy::type_complexity)]
    async fn read_raw(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
    ) -> anyhow::Result<(Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>, i64)> {
        let (brokers, topic) = (self.brokers.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let reader = kafka::reader(&brokers)?;
            let mut out = Vec::new();
            let next = kafka::read_partition(
                &reader,
                &topic,
                partition,
                Offset::Offset(from),
                Duration::from_secs(120),
                |m| {
                    out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
                },
            )?;
            Ok((out, next))
        })
        .await?
    }
}
