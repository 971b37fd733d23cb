//! Wiring for `processors cart`: the stage boot (codec, producer, ops
//! endpoints), the catalog tables, then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::CartProcessor;
use crate::runner::{Start, SystemClock};
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
    let policy = policy_from_env()?;
    let limits = limits_from_env()?;
    let mut start = Start::boot(&config, shutdown).await?;
    let catalog = start.join(&topics::CATALOG_INTERNSHIPS).await?;
    let rates = start.join(&topics::FX_RATES).await?;
    let coupons = start.join(&topics::COUPONS).await?;
    start
        .run(
            CartProcessor::new(catalog, rates, coupons, policy, settings.ttl_ms)
                .with_limits(limits),
            ops_addr,
            settings.tick,
            Arc::new(SystemClock),
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
