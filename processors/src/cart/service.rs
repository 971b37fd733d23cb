//! Wiring for `processors cart`: the stage boot (codec, producer, ops
//! endpoints), the catalog tables, then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::CartProcessor;
use crate::runner::{self, RunnerDeps};
use crate::tables::GlobalTable;
use rules::pricing::PricingPolicy;

/// Cart timing: `CART_TTL_SECS` (86400: a day idle expires a cart) and
/// `CART_EXPIRY_TICK_MS` (10000: how often the expiry timer looks).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub ttl_ms: i64,
    pub tick: Duration,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        Ok(Settings {
            ttl_ms: platform::config::var("CART_TTL_SECS", "86400").parse::<i64>()? * 1000,
            tick: Duration::from_millis(
                platform::config::var("CART_EXPIRY_TICK_MS", "10000").parse()?,
            ),
        })
    }
}

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, Settings::from_env()?, ops_addr, shutdown).await
}

pub async fn run_with(
    config: PipelineConfig,
    settings: Settings,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut booted = platform::stage::boot(&config, shutdown).await?;
    let codec = booted.codec.clone();
    let policy = policy_from_env()?;
    let catalog = GlobalTable::follow(
        &config.kafka_brokers,
        codec.clone(),
        &topics::CATALOG_INTERNSHIPS,
    )
    .await?;
    let rates =
        GlobalTable::follow(&config.kafka_brokers, codec.clone(), &topics::FX_RATES).await?;
    let coupons =
        GlobalTable::follow(&config.kafka_brokers, codec.clone(), &topics::COUPONS).await?;

    let (table, fx) = (catalog.clone(), rates.clone());
    booted.readiness = booted.readiness.check("catalog", move || {
        let loaded = table.is_loaded() && fx.is_loaded();
        async move {
            if loaded {
                Ok(())
            } else {
                Err("catalog still loading".to_owned())
            }
        }
    });
    booted.serve_ops(ops_addr).await?;

    catalog.wait_loaded(Duration::from_secs(120)).await?;
    rates.wait_loaded(Duration::from_secs(120)).await?;
    coupons.wait_loaded(Duration::from_secs(120)).await?;
    tracing::info!(internships = catalog.len(), "catalog ready");
    let deps = RunnerDeps {
        stage: runner::stage_deps(&config, &booted),
        instance: runner::instance_from_env(),
        tick: settings.tick,
        clock: Arc::new(crate::runner::SystemClock),
    };
    let ttl_ms = settings.ttl_ms;
    runner::run(
        Arc::new(
            CartProcessor::new(
                Arc::new(catalog),
                Arc::new(rates),
                Arc::new(coupons),
                policy,
                ttl_ms,
            )
            .with_limits(limits_from_env()?),
        ),
        deps,
        booted.shutdown.wait(),
    )
    .await
}

/// The cart limits from the environment (see `CartLimits::from_settings`).
pub fn limits_from_env() -> anyhow::Result<rules::cart::CartLimits> {
    Ok(rules::cart::CartLimits::from_settings(
        platform::config::var,
    )?)
}

/// The seller's pricing policy from the environment (see
/// `PricingPolicy::from_settings`).
pub fn policy_from_env() -> anyhow::Result<PricingPolicy> {
    Ok(PricingPolicy::from_settings(platform::config::var)?)
}
