//! `ingress`: the HTTP API until SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::telemetry::init("ingress");
    platform::exit_code("ingress", run().await)
}

async fn run() -> anyhow::Result<()> {
    let config = ingress::Config::from_env()?;
    let app = ingress::Application::build(config).await?;
    tracing::info!(addr = %app.addr(), ops = %app.ops_addr(), "ingress listening");
    app.run_until_stopped(platform::shutdown_signal()).await
}
