//! The internship catalog as a global table.
//!
//! Every cart processor instance reads all of `catalog.internships` and
//! follows it; prices always come from here, never from a client. A
//! service reports ready only once the table has caught up with the end
//! the topic had when the service started.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use schemas::records::catalog::Internship;
use schemas::topics::CATALOG_INTERNSHIPS;
use schemas::Codec;

/// Read access to the catalog, as the pure rules see it.
pub trait CatalogLookup {
    fn internship(&self, id: &str) -> Option<Internship>;
}

impl CatalogLookup for HashMap<String, Internship> {
    fn internship(&self, id: &str) -> Option<Internship> {
        self.get(id).cloned()
    }
}

#[derive(Clone)]
pub struct CatalogTable {
    items: Arc<RwLock<HashMap<String, Internship>>>,
    loaded: watch::Receiver<bool>,
}

impl CatalogLookup for CatalogTable {
    fn internship(&self, id: &str) -> Option<Internship> {
        self.items.read().ok().and_then(|m| m.get(id).cloned())
    }
}

impl CatalogTable {
    /// Starts following the catalog topic in the background.
    pub async fn follow(brokers: &str, codec: Arc<Codec>) -> anyhow::Result<CatalogTable> {
        let topic = codec.names().name(&CATALOG_INTERNSHIPS.def);
        let consumer: StreamConsumer = platform::kafka::reader_config(brokers).create()?;
        let partitions = CATALOG_INTERNSHIPS.def.partitions;
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let (_, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            ends.insert(p, high);
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let items = Arc::new(RwLock::new(HashMap::new()));
        let (tx, loaded) = watch::channel(false);
        let pending = |ends: &HashMap<i32, i64>, p: i32, next: i64| {
            ends.get(&p).is_some_and(|end| next < *end)
        };
        if (0..partitions).all(|p| !pending(&ends, p, 0)) {
            let _ = tx.send(true);
        }
        let table = items.clone();
        tokio::spawn(async move {
            let mut next: HashMap<i32, i64> = HashMap::new();
            loop {
                let m = match consumer.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog read failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let key = codec.decode_key(&CATALOG_INTERNSHIPS.def, m.key()).await;
                match (key, m.payload()) {
                    (Ok(id), None) => {
                        if let Ok(mut t) = table.write() {
                            t.remove(&id);
                        }
                    }
                    (Ok(id), Some(bytes)) => match codec
                        .decode(&CATALOG_INTERNSHIPS, Some(bytes))
                        .await
                    {
                        Ok(item) => {
                            if let Ok(mut t) = table.write() {
                                t.insert(id, item);
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "undecodable catalog record skipped"),
                    },
                    (Err(e), _) => tracing::error!(error = %e, "undecodable catalog key skipped"),
                }
                next.insert(m.partition(), m.offset() + 1);
                if !*tx.borrow()
                    && (0..partitions)
                        .all(|p| !pending(&ends, p, next.get(&p).copied().unwrap_or(0)))
                {
                    let _ = tx.send(true);
                    tracing::info!("catalog loaded");
                }
            }
        });
        Ok(CatalogTable { items, loaded })
    }

    /// Waits until the table holds everything the topic had at start-up.
    pub async fn wait_loaded(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.loaded.clone();
        tokio::time::timeout(timeout, rx.wait_for(|loaded| *loaded))
            .await
            .map_err(|_| anyhow::anyhow!("catalog not loaded within {timeout:?}"))??;
        Ok(())
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
