//! The `gateway-simulator` binary: configuration from the environment
//! (`gateway_simulator::Config::from_env`), JSON logs, a clean stop on
//! Ctrl-C or SIGTERM.

use gateway_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("gateway-simulator");
    let config = Config::from_env()?;
    tracing::info!(?config, "configuration");
    let simulator = match Simulator::build(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return Err(e.into());
        }
    };
    simulator
        .run_until_stopped(platform::shutdown_signal())
        .await?;
    Ok(())
}
