//! How every processor service starts, in one place: the stage boots
//! (codec, producer, ops endpoints), the tables the processor joins
//! against are followed, `/readyz` holds until each has loaded, and only
//! then does the runner take partitions: a processor never decides on a
//! partial catalog (a line of an internship not read yet would fail as
//! unknown).
//!
//! ```ignore
//! let mut start = Start::boot(&config, shutdown).await?;
//! let catalog = start.join(&topics::CATALOG_INTERNSHIPS).await?;
//! start.run(EnrollmentProcessor::new(catalog), ops_addr, tick, clock).await
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use platform::config::PipelineConfig;
use platform::stage::Booted;
use schemas::Topic;

use super::{instance_from_env, run, stage_deps, Clock, Processor, RunnerDeps};
use crate::tables::GlobalTable;

/// How long a table may take to load before the service gives up.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A table being followed, as the start sees it: loaded yet, or not.
trait Loading: Send + Sync {
    fn is_loaded(&self) -> bool;
    fn wait_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>>;
}

impl<V: Clone + Send + Sync + 'static> Loading for GlobalTable<V> {
    fn is_loaded(&self) -> bool {
        GlobalTable::is_loaded(self)
    }

    fn wait_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(GlobalTable::wait_loaded(self, LOAD_TIMEOUT))
    }
}

/// A processor service between its boot and its run.
pub struct Start {
    config: PipelineConfig,
    booted: Booted,
    tables: Vec<(&'static str, Arc<dyn Loading>)>,
}

impl Start {
    pub async fn boot(
        config: &PipelineConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Start> {
        Ok(Start {
            config: config.clone(),
            booted: platform::stage::boot(config, shutdown).await?,
            tables: Vec::new(),
        })
    }

    /// Starts following the table `topic`; the service is ready, and the
    /// processor runs, only once it has loaded.
    pub async fn join<V>(&mut self, topic: &'static Topic<V>) -> anyhow::Result<Arc<GlobalTable<V>>>
    where
        V: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let table = Arc::new(
            GlobalTable::follow(&self.config.kafka_brokers, self.booted.codec.clone(), topic)
                .await?,
        );
        self.tables.push((topic.def.name, table.clone()));
        Ok(table)
    }

    /// Serves the ops endpoints, waits for every joined table, then runs
    /// `processor` until shutdown.
    pub async fn run<P: Processor>(
        self,
        processor: P,
        ops_addr: SocketAddr,
        tick: Duration,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<()> {
        let Start {
            config,
            mut booted,
            tables,
        } = self;
        for (name, table) in &tables {
            let (name, table) = (*name, table.clone());
            booted.readiness = booted.readiness.check(name, move || {
                let loaded = table.is_loaded();
                async move {
                    if loaded {
                        Ok(())
                    } else {
                        Err(format!("{name} still loading"))
                    }
                }
            });
        }
        booted.serve_ops(ops_addr).await?;
        for (_, table) in &tables {
            table.wait_loaded().await?;
        }
        let deps = RunnerDeps {
            stage: stage_deps(&config, &booted),
            instance: instance_from_env(),
            tick,
            clock,
        };
        run(Arc::new(processor), deps, booted.shutdown.wait()).await
    }
}
