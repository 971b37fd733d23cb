//! Wiring for the `sinks` binary and `checkoutctl rebuild`: Postgres
//! (migrated), the codec, the ops endpoints, then every requested sink until
//! shutdown. [`sinks`] is the list of sinks: adding one is one entry there.
//! A process that runs any analytics sink also refreshes the analytics
//! gauges (`crate::analytics::metrics`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use platform::config::PipelineConfig;
use platform::stage::{Booted, StageDeps};
use schemas::TopicDef;

use crate::analytics;
use crate::carts::CartsSink;
use crate::catalog::{CouponsSink, FxRatesSink, InternshipsSink};
use crate::runner::{self, Sink, SinkDeps};

/// A sink of any record type, as the service and the rebuild use it.
pub trait AnySink: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn stage(&self) -> &'static str;
    fn topic(&self) -> TopicDef;
    fn tables(&self) -> &'static [&'static str];
    fn run(
        self: Arc<Self>,
        deps: SinkDeps,
        stop: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, anyhow::Result<()>>;
}

struct Named<S>(&'static str, S);

impl<S: Sink> AnySink for Named<S> {
    fn name(&self) -> &'static str {
        self.0
    }
    fn stage(&self) -> &'static str {
        S::NAME
    }
    fn topic(&self) -> TopicDef {
        self.1.topic().def
    }
    fn tables(&self) -> &'static [&'static str] {
        self.1.tables()
    }
    fn run(
        self: Arc<Self>,
        deps: SinkDeps,
        stop: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            // The runner wants the sink itself behind an Arc.
            let this = Arc::clone(&self);
            runner::run(Arc::new(SinkRef(this)), deps, stop).await
        }
        .boxed()
    }
}

/// Lets the runner hold a `Named<S>` through its `Arc`.
struct SinkRef<S: Sink>(Arc<Named<S>>);

impl<S: Sink> Sink for SinkRef<S> {
    type Record = S::Record;
    const NAME: &'static str = S::NAME;
    fn topic(&self) -> &'static schemas::Topic<S::Record> {
        self.0 .1.topic()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.0 .1.tables()
    }
    fn write<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Postgres>,
        batch: &'a [runner::Keyed<S::Record>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        self.0 .1.write(tx, batch)
    }
}

/// Every sink, by the name `sinks <name>` and `checkoutctl rebuild <name>`
/// take.
pub fn sinks() -> Vec<Arc<dyn AnySink>> {
    vec![
        Arc::new(Named("carts", CartsSink)),
        Arc::new(Named("internships", InternshipsSink)),
        Arc::new(Named("fx-rates", FxRatesSink)),
        Arc::new(Named("coupons", CouponsSink)),
        Arc::new(Named("orders", crate::orders::OrdersSink)),
        Arc::new(Named("coupon-usage", crate::coupon_usage::CouponUsageSink)),
        Arc::new(Named("enrollments", crate::enrollments::EnrollmentsSink)),
        Arc::new(Named(
            "support-cases",
            crate::support_cases::SupportCasesSink,
        )),
        Arc::new(Named("invoices", crate::invoices::InvoicesSink)),
        Arc::new(Named("analytics-carts", analytics::AnalyticsCartsSink)),
        Arc::new(Named("analytics-orders", analytics::AnalyticsOrdersSink)),
        Arc::new(Named(
            "analytics-enrollments",
            analytics::AnalyticsEnrollmentsSink,
        )),
        Arc::new(Named("analytics-coupons", analytics::AnalyticsCouponsSink)),
        Arc::new(Named("audit", crate::audit::AuditSink)),
    ]
}

fn pick(which: &str) -> anyhow::Result<Vec<Arc<dyn AnySink>>> {
    let all = sinks();
    if which == "all" {
        return Ok(all);
    }
    // The analytics stage: every analytics sink, and its gauges.
    if which == "analytics" {
        return Ok(all
            .into_iter()
            .filter(|s| s.name().starts_with(analytics::PREFIX))
            .collect());
    }
    let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
    match all.iter().find(|s| s.name() == which) {
        Some(s) => Ok(vec![s.clone()]),
        None => anyhow::bail!("unknown sink {which:?}; known: {names:?}, analytics or all"),
    }
}

/// What every Postgres stage of a process shares: the pool (`connections`
/// of them, migrated), the loop's settings with batches of up to
/// `max_batch` records, and the producer for dead letters. The sinks and
/// the notification worker start from it alike.
pub(crate) async fn deps(
    config: &PipelineConfig,
    booted: &Booted,
    max_batch: usize,
    connections: u32,
) -> anyhow::Result<SinkDeps> {
    let pool =
        platform::db::connect(&config.database_url, &config.database_schema, connections).await?;
    platform::db::report_pool(&pool);
    crate::MIGRATOR.run(&pool).await?;
    Ok(SinkDeps {
        stage: StageDeps {
            brokers: config.kafka_brokers.clone(),
            codec: booted.codec.clone(),
            max_batch,
            linger: platform::stage::Linger::fixed(Duration::from_millis(5)),
            stall: booted.stall.clone(),
        },
        pool,
        producer: booted.producer.clone(),
        positions: Default::default(),
    })
}

pub async fn run(
    which: &str,
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let wanted = pick(which)?;
    let analytics_settings = wanted
        .iter()
        .any(|s| s.name().starts_with(analytics::PREFIX))
        .then(analytics::metrics::Settings::from_env)
        .transpose()?;
    let mut booted = platform::stage::boot(&config, shutdown).await?;
    let deps = deps(&config, &booted, 1000, 8).await?;
    booted.readiness = booted.readiness.postgres(deps.pool.clone());
    booted.serve_ops(ops_addr).await?;

    let gauges = analytics_settings
        .map(|settings| analytics::metrics::refresh_periodically(deps.pool.clone(), settings));
    let mut tasks = tokio::task::JoinSet::new();
    for sink in wanted {
        let mut deps = deps.clone();
        deps.positions = Default::default();
        tasks.spawn(sink.run(deps, booted.shutdown.wait().boxed()));
    }
    let mut ended = Ok(());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            // Only the runtime shutting down cancels a sink's task: that
            // is the end of the process, not a sink's failure.
            Err(e) if e.is_cancelled() => break,
            Ok(Err(e)) => {
                ended = Err(e);
                break;
            }
            Err(e) => {
                ended = Err(e.into());
                break;
            }
        }
    }
    if let Some(g) = gauges {
        g.abort();
    }
    ended
}

/// What a rebuild did: the records it replayed and, when asked to compare,
/// the tables whose rows differ from what they were before it.
#[derive(Debug)]
pub struct Rebuilt {
    pub records: i64,
    /// `Some`: compared; the tables that differ (empty: all equal).
    pub differing: Option<Vec<String>>,
}

/// Rebuilds one sink's tables from its topic: refuses while the sink's
/// group has live members, empties the tables and the stored offsets in one
/// transaction, then runs the sink until it has read up to the end the
/// topic had when the rebuild began, calling `progress(done, total)` every
/// couple of seconds. With `compare`, each table's rows are fingerprinted
/// before and after ([`fingerprint`]): a live read model that was caught up
/// must come back row for row.
pub async fn rebuild(
    which: &str,
    config: PipelineConfig,
    compare: bool,
    mut progress: impl FnMut(i64, i64),
) -> anyhow::Result<Rebuilt> {
    // `all` and `analytics` name several sinks: rebuilding only the first
    // of them would look like success.
    let mut picked = pick(which)?;
    anyhow::ensure!(
        picked.len() == 1,
        "rebuild takes one sink, not {which} (rebuild each of them)"
    );
    let sink = picked.remove(0);
    let booted = platform::stage::boot(&config, std::future::pending()).await?;
    let deps = deps(&config, &booted, 1000, 8).await?;
    let names = deps.stage.codec.names().clone();
    let group = names.group(sink.stage());
    let topic = names.name(&sink.topic());
    let (members, ends) = {
        let (brokers, group, topic) = (deps.stage.brokers.clone(), group.clone(), topic.clone());
        let partitions = sink.topic().partitions;
        tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, HashMap<i32, i64>)> {
            use rdkafka::consumer::Consumer;
            let reader = platform::kafka::reader(&brokers)?;
            let groups = reader.fetch_group_list(Some(&group), Duration::from_secs(10))?;
            let members = groups.groups().iter().map(|g| g.members().len()).sum();
            let mut ends = HashMap::new();
            for p in 0..partitions {
                let (_, high) =
                    platform::kafka::watermarks(&reader, &topic, p, Duration::from_secs(10))?;
                ends.insert(p, high);
            }
            Ok((members, ends))
        })
        .await??
    };
    anyhow::ensure!(
        members == 0,
        "the {group} group has {members} live member(s): stop the sinks before rebuilding"
    );
    // Kafka's committed offsets of the group are informational; drop them
    // so nothing suggests the group is anywhere but at the start.
    let admin = platform::kafka::admin(&deps.stage.brokers)?;
    let _ = admin
        .delete_groups(&[&group], &rdkafka::admin::AdminOptions::new())
        .await;
    let before = if compare {
        Some(fingerprints(&deps.pool, sink.tables()).await?)
    } else {
        None
    };
    let mut tx = deps.pool.begin().await?;
    for table in sink.tables() {
        sqlx::query(&format!("TRUNCATE {table} CASCADE"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM sink_offsets WHERE consumer_group = $1 AND topic = $2")
        .bind(&group)
        .bind(&topic)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(sink = sink.name(), %topic, tables = ?sink.tables(), "tables emptied; replaying");

    let total: i64 = ends.values().sum();
    let positions = deps.positions.clone();
    let read = move || -> i64 {
        let p = positions.lock().map(|p| p.clone()).unwrap_or_default();
        ends.iter()
            .map(|(part, end)| p.get(part).copied().unwrap_or(0).min(*end))
            .sum()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        sink.clone().run(
            deps.clone(),
            async move {
                let _ = stop_rx.await;
            }
            .boxed(),
        ),
    );
    let started = Instant::now();
    let mut last_report = Instant::now();
    // Quiet partitions have no record to move their position: they count
    // as done once assigned at their end (0 records for an empty one).
    loop {
        let done = read();
        if last_report.elapsed() >= Duration::from_secs(2) {
            progress(done, total);
            last_report = Instant::now();
        }
        let assigned = deps.positions.lock().map(|p| p.len()).unwrap_or(0);
        if done >= total && assigned as i32 == sink.topic().partitions {
            break;
        }
        anyhow::ensure!(!task.is_finished(), "the sink stopped during the rebuild");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(total, total);
    let _ = stop_tx.send(());
    task.await??;
    tracing::info!(
        sink = sink.name(),
        records = total,
        secs = started.elapsed().as_secs_f64(),
        "rebuilt"
    );
    let differing = match before {
        Some(before) => {
            let after = fingerprints(&deps.pool, sink.tables()).await?;
            Some(
                sink.tables()
                    .iter()
                    .zip(before.iter().zip(&after))
                    .filter(|(_, (b, a))| b != a)
                    .map(|(t, (b, a))| format!("{t} (before {b}, after {a})"))
                    .collect(),
            )
        }
        None => None,
    };
    Ok(Rebuilt {
        records: total,
        differing,
    })
}

/// Each table's row count and a digest of its rows in a stable order.
async fn fingerprints(pool: &sqlx::PgPool, tables: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let (rows, digest): (i64, String) =
            sqlx::query_as(&fingerprint(table)).fetch_one(pool).await?;
        out.push(format!("{rows} rows, md5 {digest}"));
    }
    Ok(out)
}

/// The query fingerprinting `table`: its rows as JSON (keys sorted), in
/// order, digested. `materialized_at` (when the carts sink wrote a row,
/// not what the row says) is left out: a rebuild writes it anew.
fn fingerprint(table: &str) -> String {
    format!(
        "SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '') \
         FROM (SELECT (to_jsonb(t) - 'materialized_at')::text AS r FROM {table} t) rows"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytics_names_every_analytics_sink_and_all_includes_them() {
        let names = |which| -> Vec<&'static str> {
            pick(which).unwrap().iter().map(|s| s.name()).collect()
        };
        assert_eq!(
            names("analytics"),
            [
                "analytics-carts",
                "analytics-orders",
                "analytics-enrollments",
                "analytics-coupons"
            ]
        );
        assert!(names("all").contains(&"analytics-orders"));
        assert_eq!(names("analytics-coupons"), ["analytics-coupons"]);
        assert!(pick("analytics-nothing").is_err());
    }
}
