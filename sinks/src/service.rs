//! Wiring for the `sinks` binary: Postgres (migrated), the codec, the ops
//! endpoints, then every requested sink until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use platform::ops::Readiness;

use crate::carts::CartsSink;
use crate::catalog::{CouponsSink, FxRatesSink, InternshipsSink};
use crate::runner::{self, SinkDeps};

pub const SINKS: &[&str] = &["carts", "internships", "fx-rates", "coupons"];

pub async fn run(
    which: &str,
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let wanted: Vec<&str> = if which == "all" {
        SINKS.to_vec()
    } else {
        vec![which]
    };
    if let Some(bad) = wanted.iter().find(|w| !SINKS.contains(w)) {
        anyhow::bail!("unknown sink {bad:?}; known: {SINKS:?} or all");
    }
    let shutdown = platform::Shutdown::on(shutdown);

    let pool = platform::db::connect(&config.database_url, &config.database_schema, 8).await?;
    crate::MIGRATOR.run(&pool).await?;
    let codec = config.codec().await?;
    let producer = platform::kafka::producer(&config.kafka_brokers)?;
    let stall = platform::stage::Stall::default();
    let stalled = stall.clone();
    let readiness = Readiness::new()
        .kafka(producer.clone())
        .registry(config.schema_registry_url.clone())
        .postgres(pool.clone())
        .check("pipeline", move || {
            let state = stalled.check();
            async move { state }
        });
    platform::ops::serve(ops_addr, readiness, shutdown.wait()).await?;

    let deps = SinkDeps {
        brokers: config.kafka_brokers.clone(),
        codec,
        pool,
        producer,
        max_batch: 1000,
        linger: Duration::from_millis(5),
        stall,
        positions: Default::default(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for name in wanted {
        let (mut deps, stop) = (deps.clone(), shutdown.wait());
        deps.positions = Default::default();
        match name {
            "carts" => tasks.spawn(runner::run(Arc::new(CartsSink), deps, stop)),
            "internships" => tasks.spawn(runner::run(Arc::new(InternshipsSink), deps, stop)),
            "fx-rates" => tasks.spawn(runner::run(Arc::new(FxRatesSink), deps, stop)),
            "coupons" => tasks.spawn(runner::run(Arc::new(CouponsSink), deps, stop)),
            _ => unreachable!("checked against SINKS above"),
        };
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}
