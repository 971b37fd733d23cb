//! A table topic followed into memory, with its history.
//!
//! Every instance reads the whole topic from the beginning and keeps
//! following it. Every version of every key is kept ([`History`]), so the
//! table answers as it was at any version it has read: a command priced at
//! the versions the ingress stamped on it prices the same on every replay.
//! A service reports ready only once the table has caught up with the end
//! the topic had when the service started.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use platform::stage::{self, Stall, Taken};
use schemas::{Codec, Topic};

use rules::tables::{History, Table};

pub struct GlobalTable<V> {
    history: Arc<RwLock<History<V>>>,
    loaded: watch::Receiver<bool>,
    /// The newest version read, for waiters.
    version: watch::Receiver<i64>,
    topic: &'static str,
}

impl<V> Clone for GlobalTable<V> {
    fn clone(&self) -> Self {
        GlobalTable {
            history: self.history.clone(),
            loaded: self.loaded.clone(),
            version: self.version.clone(),
            topic: self.topic,
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
        // A version counts offsets of one partition (see `History`).
        anyhow::ensure!(
            topic.def.partitions == 1,
            "table topic {} must have one partition",
            topic.def.name
        );
        let name = codec.names().name(&topic.def);
        let consumer: StreamConsumer = platform::kafka::reader_config(brokers).create()?;
        let (_, end) = platform::kafka::watermarks(&consumer, &name, 0, Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&name, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let history = Arc::new(RwLock::new(History::default()));
        let (loaded_tx, loaded) = watch::channel(end == 0);
        let (version_tx, version) = watch::channel(0i64);
        let table = history.clone();
        let stall = Stall::default();
        let reader = tokio::spawn(async move {
            loop {
                // Between records, the consumer's position may pass offsets
                // that hold no record (transaction markers): the version
                // follows it, so a waiter for the topic's end is not left
                // hanging.
                let received =
                    tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
                let next = match received {
                    Err(_) => position(&consumer, &name),
                    Ok(Err(e)) => {
                        tracing::warn!(topic = topic.def.name, error = %e, "table read failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    Ok(Ok(m)) => {
                        let m = m.detach();
                        let key = Codec::decode_key(&topic.def, m.key());
                        let value = if m.payload().is_none() {
                            // A tombstone removes the key.
                            Some(None)
                        } else {
                            // Waits out a registry outage like every stage
                            // does; every instance reads the whole table, so
                            // a record that can never be decoded is logged
                            // and counted (by `take`) rather than
                            // dead-lettered once per instance.
                            match stage::take("global-table", &codec, topic, &m, &stall).await {
                                Taken::Record(r) => Some(Some(r.value)),
                                Taken::Dead(_) => None,
                            }
                        };
                        if let Ok(mut t) = table.write() {
                            match (key, value) {
                                (Ok(key), Some(value)) => t.record(key, value, m.offset()),
                                _ => t.advance(m.offset() + 1),
                            }
                        }
                        Some(m.offset() + 1)
                    }
                };
                let Some(next) = next else { continue };
                let version = match table.write() {
                    Ok(mut t) => {
                        t.advance(next);
                        t.version()
                    }
                    Err(_) => continue,
                };
                version_tx.send_if_modified(|v| {
                    let newer = version > *v;
                    *v = version.max(*v);
                    newer
                });
                if !*loaded_tx.borrow() && version >= end {
                    let _ = loaded_tx.send(true);
                    tracing::info!(topic = topic.def.name, version, "table loaded");
                }
            }
        });
        // The reader never returns: if it ends, it panicked, and the table
        // stops following. Say why, where the operator looks.
        tokio::spawn(async move {
            if let Err(e) = reader.await {
                tracing::error!(topic = topic.def.name, error = %e, "table reader ended");
            }
        });
        Ok(GlobalTable {
            history,
            loaded,
            version,
            topic: topic.def.name,
        })
    }
}

/// The consumer's position in the table's one partition.
fn position(consumer: &StreamConsumer, topic: &str) -> Option<i64> {
    consumer
        .position()
        .ok()?
        .find_partition(topic, 0)?
        .offset()
        .to_raw()
}

impl<V: Clone + Send + Sync> Table<V> for GlobalTable<V> {
    fn get_at(&self, key: &str, version: Option<i64>) -> Option<V> {
        self.history
            .read()
            .ok()
            .and_then(|h| h.get_at(key, version).cloned())
    }

    fn version(&self) -> i64 {
        *self.version.borrow()
    }

    fn reached(&self, version: i64, timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        let mut rx = self.version.clone();
        Box::pin(async move {
            let reached = tokio::time::timeout(timeout, rx.wait_for(|v| *v >= version))
                .await
                .map(|r| r.is_ok());
            match reached {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("table {} stopped following", self.topic)),
                Err(_) => Err(format!(
                    "table {} at version {} after {timeout:?}; the command was stamped with {version}",
                    self.topic,
                    *rx.borrow()
                )),
            }
        })
    }
}

impl<V: Clone> GlobalTable<V> {
    /// The latest value of `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.history
            .read()
            .ok()
            .and_then(|h| h.get_at(key, None).cloned())
    }

    /// Waits until the table holds everything the topic had at start-up.
    pub async fn wait_loaded(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.loaded.clone();
        tokio::time::timeout(timeout, rx.wait_for(|loaded| *loaded))
            .await
            .map_err(|_| anyhow::anyhow!("table {} not loaded within {timeout:?}", self.topic))?
            .map_err(|_| {
                anyhow::anyhow!(
                    "table {}: its reader ended before the table loaded",
                    self.topic
                )
            })?;
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    pub fn len(&self) -> usize {
        self.history.read().map(|h| h.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
