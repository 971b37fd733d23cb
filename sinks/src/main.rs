//! `sinks <name>|all`: runs sinks until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("sinks");
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".to_owned());
    let config = platform::config::PipelineConfig::from_env()?;
    let ops_addr = platform::config::addr("OPS_ADDR", "127.0.0.1:0")?;
    sinks::service::run(&which, config, ops_addr, platform::shutdown_signal()).await
}
