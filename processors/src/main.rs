//! `processors <name>`: runs one processor until SIGTERM.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("processors");
    let name = std::env::args().nth(1).unwrap_or_default();
    let config = platform::config::PipelineConfig::from_env()?;
    let ops_addr = platform::config::addr("OPS_ADDR", "127.0.0.1:0")?;
    match name.as_str() {
        "cart" => processors::cart::service::run(config, ops_addr, platform::shutdown_signal())
            .await
            .context("cart processor"),
        other => anyhow::bail!("unknown processor {other:?}; known: cart"),
    }
}
