//! `sinks <name>|all`: runs sinks until SIGTERM. `sinks notifications`
//! runs the notification worker, a process of its own (not in `all`): it
//! has its own readiness (the mail transport) and its own settings.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::telemetry::init("sinks");
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".to_owned());
    platform::exit_code(&format!("sinks {which}"), run(&which).await)
}

async fn run(which: &str) -> anyhow::Result<()> {
    let config = platform::config::PipelineConfig::from_env()?;
    let ops_addr = platform::config::addr("OPS_ADDR", "127.0.0.1:0")?;
    if which == "notifications" {
        let mail = sinks::notifications::mailer::MailConfig::from_env()?;
        return sinks::notifications::service::run(
            config,
            mail,
            ops_addr,
            platform::shutdown_signal(),
        )
        .await;
    }
    sinks::service::run(which, config, ops_addr, platform::shutdown_signal()).await
}
