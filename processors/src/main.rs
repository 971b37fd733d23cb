//! `processors <name>`: runs one processor (see `processors::PROCESSORS`)
//! until SIGTERM.

use futures::FutureExt;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::telemetry::init("processors");
    let name = std::env::args().nth(1).unwrap_or_default();
    platform::exit_code(&format!("processors {name}"), run(&name).await)
}

async fn run(name: &str) -> anyhow::Result<()> {
    let config = platform::config::PipelineConfig::from_env()?;
    let ops_addr = platform::config::addr("OPS_ADDR", "127.0.0.1:0")?;
    let Some((_, service)) = processors::PROCESSORS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = processors::PROCESSORS.iter().map(|(n, _)| *n).collect();
        anyhow::bail!("unknown processor {name:?}; known: {known:?}");
    };
    service(config, ops_addr, platform::shutdown_signal().boxed()).await
}
