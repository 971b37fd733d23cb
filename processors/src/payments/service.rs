//! Wiring for `processors gateway`: the stage boot, the gateway clients
//! (the simulator by default; real keys and base URLs point them at
//! Razorpay's and Stripe's test modes), then the worker until shutdown.
//!
//! Settings: `RAZORPAY_*`, `STRIPE_*`, `GATEWAY_TIMEOUT_MS` (the clients'),
//! `PAYMENT_ROUTES`, `GATEWAY_RETRY_ATTEMPTS` (4), `GATEWAY_BREAKER_FAILURES`
//! (5 within 30 s), `GATEWAY_BREAKER_COOLDOWN_MS` (15000),
//! `PAYMENT_RETURN_URL` (where a buyer goes back when the order names no
//! URL; default `http://localhost:3000/checkout/return`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateways::{razorpay, retry, stripe};
use platform::config::{var, PipelineConfig};

use super::breaker::BreakerPolicy;
use super::routing::Routing;
use super::worker::{Gateways, Worker};
use crate::runner;

pub fn gateways_from_env() -> anyhow::Result<Gateways> {
    let attempts: u32 = var("GATEWAY_RETRY_ATTEMPTS", "4").parse()?;
    anyhow::ensure!(attempts >= 1, "GATEWAY_RETRY_ATTEMPTS must be at least 1");
    Ok(Gateways::new(
        razorpay::Client::new(razorpay::Config::from_env()?)?,
        stripe::Client::new(stripe::Config::from_env()?)?,
        Routing::from_env()?,
        retry::Policy {
            max_attempts: attempts,
            ..retry::Policy::default()
        },
        BreakerPolicy {
            failures: var("GATEWAY_BREAKER_FAILURES", "5").parse()?,
            window: Duration::from_secs(30),
            cooldown: Duration::from_millis(var("GATEWAY_BREAKER_COOLDOWN_MS", "15000").parse()?),
        },
        var(
            "PAYMENT_RETURN_URL",
            "http://localhost:3000/checkout/return",
        ),
    ))
}

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, Arc::new(gateways_from_env()?), ops_addr, shutdown).await
}

pub async fn run_with(
    config: PipelineConfig,
    gateways: Arc<Gateways>,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    super::worker::register_metrics();
    let booted = platform::stage::boot(&config, shutdown).await?;
    booted.serve_ops(ops_addr).await?;
    let deps = platform::stage::StageDeps {
        max_batch: super::worker::MAX_BATCH,
        ..runner::stage_deps(&config, &booted)
    };
    let stop = booted.shutdown.clone();
    platform::stage::supervise("gateway-worker", &booted.stall, stop, |stop| {
        let deps = deps.clone();
        let mut worker = Worker {
            gateways: gateways.clone(),
            codec: booted.codec.clone(),
            producer: booted.producer.clone(),
            stall: booted.stall.clone(),
        };
        async move {
            platform::stage::consume(&deps, Duration::from_secs(1), &mut worker, stop).await
        }
    })
    .await
}
