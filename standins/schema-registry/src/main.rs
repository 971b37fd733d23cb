//! The `schema-registry` binary: configuration from the environment, JSON
//! logs, and a clean stop on Ctrl-C or SIGTERM.

use schema_registry::{telemetry, Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_subscriber();
    let config = Config::from_env()?;
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot start");
            return Err(e);
        }
    };
    app.run_until_stopped(platform::shutdown_signal()).await
}
