//! Wiring for `processors invoice`: the seller from the environment
//! (`rules::invoice::InvoicePolicy::from_settings`: a missing one stops
//! the service, naming it), the stage boot, then the runner until
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use rules::invoice::InvoicePolicy;

use super::processor::InvoiceProcessor;
use crate::runner::{Start, SystemClock};

/// The seller as the environment describes it.
pub fn policy_from_env() -> anyhow::Result<InvoicePolicy> {
    Ok(InvoicePolicy::from_settings(|name| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })?)
}

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, policy_from_env()?, ops_addr, shutdown).await
}

pub async fn run_with(
    config: PipelineConfig,
    policy: InvoicePolicy,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Start::boot(&config, shutdown)
        .await?
        .run(
            InvoiceProcessor::new(policy),
            ops_addr,
            // No timers: a document is issued when its request arrives.
            Duration::from_secs(60),
            Arc::new(SystemClock),
        )
        .await
}
