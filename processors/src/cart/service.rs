//! Wiring for `processors cart`: the codec, the producer, the catalog
//! table, the ops endpoints, then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use platform::ops::Readiness;
use schemas::{topics, Codec};

use super::processor::CartProcessor;
use crate::runner::{self, RunnerDeps};
use crate::tables::catalog::CatalogTable;

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = platform::Shutdown::on(shutdown);

    let codec = Arc::new(Codec::new(
        &config.schema_registry_url,
        config.topics.clone(),
        topics::ALL,
    )?);
    codec.register(topics::ALL).await?;
    let producer = platform::kafka::producer(&config.kafka_brokers)?;
    platform::kafka::warm_up(&producer, Duration::from_secs(10)).await?;
    let catalog = CatalogTable::follow(&config.kafka_brokers, codec.clone()).await?;

    let table = catalog.clone();
    let readiness = Readiness::new()
        .kafka(producer.clone())
        .registry(config.schema_registry_url.clone())
        .check("catalog", move || {
            let loaded = table.is_loaded();
            async move {
                if loaded {
                    Ok(())
                } else {
                    Err("catalog still loading".to_owned())
                }
            }
        });
    platform::ops::serve(ops_addr, readiness, shutdown.wait()).await?;

    catalog.wait_loaded(Duration::from_secs(120)).await?;
    tracing::info!(internships = catalog.len(), "catalog ready");
    let deps = RunnerDeps {
        brokers: config.kafka_brokers.clone(),
        codec,
        producer,
        max_batch: 500,
        linger: Duration::from_millis(2),
    };
    runner::run(
        Arc::new(CartProcessor::new(Arc::new(catalog))),
        deps,
        shutdown.wait(),
    )
    .await
}
