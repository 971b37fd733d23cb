//! The runtime every service shares, and nothing domain-specific:
//! configuration from the environment ([`config`]), JSON logs with the
//! correlation id ([`telemetry`]), Kafka clients, headers and consumer
//! batching ([`kafka`]), Postgres connections ([`db`]), the pipeline's
//! metrics ([`metrics`]), start-up waits for those ([`startup`]), the ops HTTP server with `/healthz`, `/readyz`
//! and `/metrics` ([`ops`]), and what every stage runs: the one consume
//! loop each stage plugs its batch handler into, the session supervisor,
//! and what it does with a record before its own work: decode with retry,
//! dead letters ([`stage`]).
//!
//! It sits beside `ingress/`, `processors/` and `sinks/` rather than inside
//! one of them because all of them depend on it.

pub mod config;
pub mod db;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod pii;
pub mod stage;
pub mod startup;
pub mod telemetry;
pub mod wakeups;

/// A stop signal any number of tasks can wait on: the ops server, the
/// runner loops, the sinks of one process.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Fires when `signal` resolves.
    pub fn on(signal: impl std::future::Future<Output = ()> + Send + 'static) -> Shutdown {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once the signal fired (at once if it already has).
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// How a service's `main` ends: on an error, one line on stderr with the
/// error and its causes (`ingress: RAZORPAY_WEBHOOK_SECRET is not set: …`)
/// and a non-zero exit code, so a missing setting reads at a glance in any
/// supervisor's output.
pub fn exit_code(service: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{service} stopped");
            eprintln!("{service}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
