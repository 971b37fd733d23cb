//! `sinks <name>|all`: runs sinks until SIGTERM. `sinks notifications`
//! runs the notification worker, a process of its own (not in `all`): it
//! has its own readiness (the mail transport) and its own settings.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("sinks");
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".to_owned());
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
    sinks::service::run(&which, config, ops_addr, platform::shutdown_signal()).await
}
