//! Per-partition state of a processor, restored from its changelog.
//!
//! State is kept only for partitions this instance owns. A partition's
//! state is rebuilt from the changelog's partition of the same number the
//! first time a record of it arrives after assignment, and dropped when the
//! partition is revoked, so a partition that comes back is read afresh
//! rather than trusted from memory.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use serde::de::DeserializeOwned;

use platform::kafka;
use schemas::{Codec, Topic};

pub struct PartitionStates<S> {
    brokers: String,
    changelog: String,
    partitions: HashMap<i32, HashMap<String, S>>,
}

impl<S: DeserializeOwned + Send + 'static> PartitionStates<S> {
    pub fn new(brokers: String, changelog: String) -> PartitionStates<S> {
        PartitionStates {
            brokers,
            changelog,
            partitions: HashMap::new(),
        }
    }

    pub fn is_restored(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    pub fn get(&self, partition: i32, key: &str) -> Option<&S> {
        self.partitions.get(&partition).and_then(|p| p.get(key))
    }

    /// The states of every partition held, by partition.
    pub fn partitions(&self) -> impl Iterator<Item = (&i32, &HashMap<String, S>)> {
        self.partitions.iter()
    }

    pub fn put(&mut self, partition: i32, key: String, state: S) {
        self.partitions
            .entry(partition)
            .or_default()
            .insert(key, state);
    }

    /// Reads the changelog partition to its current end and keeps, per key,
    /// the state that includes the most input (the highest `applied`
    /// offset), not merely the last record: after a rebalance the previous
    /// owner may still be finishing a batch and append older states behind
    /// the new owner's newer ones. Every state is a deterministic function
    /// of the inputs up to its offset, so the most advanced one is right.
    /// A tombstone removes the key. Returns the key count.
    pub async fn restore(
        &mut self,
        partition: i32,
        codec: &Codec,
        topic: &'static Topic<S>,
        applied: fn(&S) -> i64,
    ) -> anyhow::Result<usize> {
        let (brokers, changelog) = (self.brokers.clone(), self.changelog.clone());
        // The Kafka read blocks; decoding needs the (async) registry client,
        // so raw records are collected first and decoded afterwards.
        let raw = tokio::task::spawn_blocking(
            move || -> anyhow::Result<Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>> {
                let reader = kafka::reader(&brokers)?;
                let mut out = Vec::new();
                kafka::read_partition_to_end(
                    &reader,
                    &changelog,
                    partition,
                    Duration::from_secs(120),
                    |m| {
                        out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
                    },
                )?;
                Ok(out)
            },
        )
        .await??;
        let mut states = HashMap::new();
        for (key, value) in raw {
            let key = codec.decode_key(&topic.def, key.as_deref()).await?;
            match value {
                None => {
                    states.remove(&key);
                }
                Some(bytes) => {
                    let state: S = codec.decode(topic, Some(&bytes)).await?;
                    match states.get(&key) {
                        Some(kept) if applied(kept) > applied(&state) => {}
                        _ => {
                            states.insert(key, state);
                        }
                    }
                }
            }
        }
        let n = states.len();
        self.partitions.insert(partition, states);
        Ok(n)
    }
}
