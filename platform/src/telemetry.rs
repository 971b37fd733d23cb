//! Structured JSON logs for every binary.
//!
//! Each record a stage handles is processed inside a span carrying its
//! `correlation_id`; the JSON formatter writes the current span's fields on
//! every line, so one id follows a request from the HTTP header through
//! Kafka headers into every stage's logs.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber (once; later calls are no-ops, which
/// lets tests call it freely).
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let installed = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        // stdout stays free for what a command prints (`checkoutctl token`).
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(service, "logging started");
    }
}
