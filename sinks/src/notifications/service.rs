//! Wiring for `sinks notifications`: the master keys that open sealed
//! addresses (`PII_MASTER_KEYS`), the stage boot, Postgres (migrated),
//! the mail transport, the ops endpoints (`/readyz` adds `postgres` and
//! `smtp`, the latter failing while sends fail), then both notification
//! stages until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use platform::config::PipelineConfig;
use platform::stage::{self, Stall};

use super::mailer::{MailConfig, Sender};
use super::worker::{Enrollments, Orders, Source, Worker};
use crate::runner::SinkDeps;

/// Records taken per batch: few, since each is an email sent one after
/// another, and a batch must end well within the poll interval.
const MAX_BATCH: usize = 32;

pub async fn run(
    config: PipelineConfig,
    mail: MailConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before connecting anywhere: a missing master key stops the worker
    // at once, naming it.
    let keyring = platform::pii::Keyring::from_env()?;
    let mut booted = stage::boot(&config, shutdown).await?;
    let deps = crate::service::deps(&config, &booted, MAX_BATCH, 4).await?;
    let vault = Arc::new(platform::pii::Vault::new(deps.pool.clone(), keyring));
    let sender = Arc::new(Sender::new(&mail).await?);
    tracing::info!(transport = %sender.describe, from = %mail.from, "notifications: sending through");
    let outage = Stall::default();
    let watched = outage.clone();
    booted.readiness = booted
        .readiness
        .postgres(deps.pool.clone())
        .check("smtp", move || {
            let state = watched.check();
            async move { state }
        });
    booted.serve_ops(ops_addr).await?;
    let orders = supervised(Orders, &deps, &sender, &vault, &outage, &booted.shutdown);
    let enrollments = supervised(
        Enrollments,
        &deps,
        &sender,
        &vault,
        &outage,
        &booted.shutdown,
    );
    let (a, b) = tokio::join!(orders, enrollments);
    a.and(b)
}

/// One stage, session after session, with positions of its own.
async fn supervised<S: Source + Clone>(
    source: S,
    deps: &SinkDeps,
    sender: &Arc<Sender>,
    vault: &Arc<platform::pii::Vault>,
    outage: &Stall,
    shutdown: &platform::Shutdown,
) -> anyhow::Result<()> {
    let deps = SinkDeps {
        positions: Default::default(),
        ..deps.clone()
    };
    stage::supervise(S::NAME, &deps.stage.stall, shutdown.clone(), |stop| {
        if let Ok(mut p) = deps.positions.lock() {
            p.clear();
        }
        let mut worker = Worker::new(
            source.clone(),
            deps.clone(),
            sender.clone(),
            vault.clone(),
            outage.clone(),
        );
        let stage_deps = deps.stage.clone();
        async move {
            stage::consume(
                &stage_deps,
                Duration::from_secs(1),
                &mut worker,
                stop.boxed(),
            )
            .await
        }
    })
    .await
}
