//! A compacted topic followed into memory.
//!
//! Every instance reads the whole topic from the beginning and keeps
//! following it; the latest record per key wins and a tombstone removes the
//! key. A service reports ready only once the table has caught up with the
//! end the topic had when the service started.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use platform::stage::{self, Stall, Taken};
use schemas::{Codec, Topic};

pub struct GlobalTable<V> {
    items: Arc<RwLock<HashMap<String, V>>>,
    loaded: watch::Receiver<bool>,
    /// The table's version: how many offsets of its topic it has read (the
    /// sum of the next offsets of its partitions). The same version is the
    /// same content, so a cart records the versions it was priced with.
    version: Arc<std::sync::atomic::AtomicI64>,
}

impl<V> Clone for GlobalTable<V> {
    fn clone(&self) -> Self {
        GlobalTable {
            items: self.items.clone(),
            loaded: self.loaded.clone(),
            version: self.version.clone(),
        }
    }
}

impl<V: DeserializeOwned + Clone + Send + Sync + 'static> GlobalTable<V> {
    /// Starts following `topic` in the background.
    pub async fn follow(
        brokers: &str,
        codec: Arc<Codec>,
        topic: &'static Topic<V>,
    ) -> anyhow::Result<GlobalTable<V>> {
        let name = codec.names().name(&topic.def);
        let consumer: StreamConsumer = platform::kafka::reader_config(brokers).create()?;
        let partitions = topic.def.partitions;
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let (_, high) = consumer.fetch_watermarks(&name, p, Duration::from_secs(10))?;
            ends.insert(p, high);
            tpl.add_partition_offset(&name, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let items = Arc::new(RwLock::new(HashMap::new()));
        let (tx, loaded) = watch::channel(false);
        let caught_up = move |next: &HashMap<i32, i64>| {
            (0..partitions)
                .all(|p| next.get(&p).copied().unwrap_or(0) >= ends.get(&p).copied().unwrap_or(0))
        };
        if caught_up(&HashMap::new()) {
            let _ = tx.send(true);
        }
        let table = items.clone();
        let version = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let version_of = version.clone();
        let stall = Stall::default();
        tokio::spawn(async move {
            let mut next: HashMap<i32, i64> = HashMap::new();
            loop {
                let m = match consumer.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(topic = topic.def.name, error = %e, "table read failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let m = m.detach();
                if m.payload().is_none() {
                    // A tombstone removes the key.
                    if let Ok(key) = Codec::decode_key(&topic.def, m.key()) {
                        if let Ok(mut t) = table.write() {
                            t.remove(&key);
                        }
                    }
                } else {
                    // Waits out a registry outage like every stage does;
                    // every instance reads the whole table, so a record
                    // that can never be decoded is logged and counted (by
                    // `take`) rather than dead-lettered once per instance.
                    let stage = "global-table";
                    match stage::take(stage, &codec, topic, &m, &stall).await {
                        Taken::Record(r) => {
                            if let Ok(mut t) = table.write() {
                                t.insert(r.key, r.value);
                            }
                        }
                        Taken::Dead(_) => {}
                    }
                }
                next.insert(m.partition(), m.offset() + 1);
                version_of.store(next.values().sum(), std::sync::atomic::Ordering::Release);
                if !*tx.borrow() && caught_up(&next) {
                    let _ = tx.send(true);
                    tracing::info!(topic = topic.def.name, "table loaded");
                }
            }
        });
        Ok(GlobalTable {
            items,
            loaded,
            version,
        })
    }
}

impl<V: Clone> GlobalTable<V> {
    pub fn get(&self, key: &str) -> Option<V> {
        self.items.read().ok().and_then(|m| m.get(key).cloned())
    }

    /// Waits until the table holds everything the topic had at start-up.
    pub async fn wait_loaded(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.loaded.clone();
        tokio::time::timeout(timeout, rx.wait_for(|loaded| *loaded))
            .await
            .map_err(|_| anyhow::anyhow!("table not loaded within {timeout:?}"))??;
        Ok(())
    }

    /// See the `version` field.
    pub fn version(&self) -> i64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    pub fn len(&self) -> usize {
        self.items.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
