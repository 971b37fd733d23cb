//! The cost of one purchase beyond its CPU: what the stack did per journey
//! of the measured window. Read before and after it:
//!
//! - records written to Kafka: the end offsets of every topic of the
//!   catalog (transaction markers included: a committed transaction writes
//!   one per partition it touched);
//! - stage batches: each stage's `pipeline_batch_seconds_count` on its ops
//!   endpoint (a processor commits a Kafka transaction per batch, a sink a
//!   Postgres transaction), so the count is transactions and fetches that
//!   brought work;
//! - Postgres: `pg_stat_database`'s transactions and rows written for the
//!   database, and the statements it ran from `pg_stat_statements` (which
//!   the scripts' Postgres loads; `BEGIN` and `COMMIT` count as statements,
//!   as the server runs them);
//! - HTTP calls the buyers made ([`CALLS`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use platform::config::PipelineConfig;

/// Every HTTP call a bench buyer made.
pub static CALLS: AtomicU64 = AtomicU64::new(0);

pub fn count_call() {
    CALLS.fetch_add(1, Ordering::Relaxed);
}

/// The ops endpoints `scripts/run.sh` gives the stages.
pub const RUN_OPS: &[&str] = &[
    "127.0.0.1:9101",
    "127.0.0.1:9102",
    "127.0.0.1:9103",
    "127.0.0.1:9104",
    "127.0.0.1:9105",
    "127.0.0.1:9106",
    "127.0.0.1:9107",
    "127.0.0.1:9108",
    "127.0.0.1:9109",
    "127.0.0.1:9110",
    "127.0.0.1:9111",
];

#[derive(Debug, Default, Clone)]
pub struct Counters {
    offsets: i64,
    batches: BTreeMap<String, f64>,
    pg_transactions: i64,
    pg_rows_written: i64,
    /// -1: unknown (`pg_stat_statements` not loaded).
    pg_statements: i64,
    /// When the Postgres server started: a restart in the window resets
    /// (or, killed, loses part of) its counters.
    pg_started: Option<String>,
    calls: u64,
}

/// The counters now; a source that does not answer counts as unknown
/// (reported, not guessed).
pub async fn read(config: &PipelineConfig, http: &reqwest::Client, ops: &[String]) -> Counters {
    let mut c = Counters {
        calls: CALLS.load(Ordering::Relaxed),
        ..Counters::default()
    };
    c.offsets = end_offsets(config).await.unwrap_or(-1);
    for addr in ops {
        let Ok(res) = http.get(format!("http://{addr}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = res.text().await else {
            continue;
        };
        for (stage, n) in batch_counts(&text) {
            *c.batches.entry(stage).or_default() += n;
        }
    }
    if let Ok((x, r)) = pg_counters(config).await {
        c.pg_transactions = x;
        c.pg_rows_written = r;
    } else {
        c.pg_transactions = -1;
    }
    c.pg_statements = pg_statements(config).await.unwrap_or(-1);
    c.pg_started = pg_started(config).await.ok();
    c
}

async fn pg_started(config: &PipelineConfig) -> anyhow::Result<String> {
    let pool = platform::db::connect(&config.database_url, &config.database_schema, 1).await?;
    let started = sqlx::query_scalar::<_, String>("SELECT pg_postmaster_start_time()::text")
        .fetch_one(&pool)
        .await;
    pool.close().await;
    Ok(started?)
}

/// `pipeline_batch_seconds_count{stage="…"} N` lines, by stage.
fn batch_counts(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("pipeline_batch_seconds_count{"))
        .filter_map(|l| {
            let stage = l.split("stage=\"").nth(1)?.split('"').next()?;
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((stage.to_owned(), n))
        })
        .collect()
}

async fn end_offsets(config: &PipelineConfig) -> anyhow::Result<i64> {
    let brokers = config.kafka_brokers.clone();
    let names: Vec<(String, i32)> = schemas::topics::ALL
        .iter()
        .map(|d| (config.topics.name(d), d.partitions))
        .collect();
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        use rdkafka::consumer::Consumer;
        let reader = platform::kafka::reader(&brokers)?;
        let mut total = 0;
        for (topic, partitions) in names {
            for p in 0..partitions {
                let (low, high) = reader.fetch_watermarks(&topic, p, Duration::from_secs(5))?;
                total += high - low.min(high);
            }
        }
        Ok(total)
    })
    .await?
}

async fn pg_counters(config: &PipelineConfig) -> anyhow::Result<(i64, i64)> {
    let pool = platform::db::connect(&config.database_url, &config.database_schema, 1).await?;
    let row: (i64, i64) = sqlx::query_as(
        "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(row)
}

/// Statements the database ran, from `pg_stat_statements` (the extension is
/// created in `public` when the server has the library loaded).
async fn pg_statements(config: &PipelineConfig) -> anyhow::Result<i64> {
    let pool = platform::db::connect(&config.database_url, &config.database_schema, 1).await?;
    let counted = async {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
            .execute(&pool)
            .await?;
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(calls), 0)::bigint FROM public.pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&pool)
        .await
    }
    .await;
    pool.close().await;
    Ok(counted?)
}

/// The table: per journey, each counter's growth from `before` to `after`.
pub fn print(before: &Counters, after: &Counters, journeys: usize, cpu_seconds: f64) {
    let j = journeys.max(1) as f64;
    let per = |d: f64| d / j;
    println!("cost per journey ({journeys} journeys):");
    println!(
        "  {:<36} {:>9.2}  (the bench client and the simulator included: see by process above)",
        "CPU ms, all processes",
        per(cpu_seconds * 1e3)
    );
    let offsets = if before.offsets < 0 || after.offsets < 0 {
        "unknown".to_owned()
    } else {
        format!("{:.2}", per((after.offsets - before.offsets) as f64))
    };
    println!(
        "  {:<36} {:>9}",
        "Kafka records (incl. txn markers)", offsets
    );
    let stages: f64 = after
        .batches
        .iter()
        .map(|(s, n)| n - before.batches.get(s).copied().unwrap_or(0.0))
        .sum();
    println!(
        "  {:<36} {:>9.2}",
        "stage batches (transactions)",
        per(stages)
    );
    for (stage, n) in &after.batches {
        let d = n - before.batches.get(stage).copied().unwrap_or(0.0);
        if d > 0.0 {
            println!("    {stage:<34} {:>9.2}", per(d));
        }
    }
    let restarted = before.pg_started != after.pg_started;
    if before.pg_transactions < 0 || after.pg_transactions < 0 {
        println!("  {:<36} {:>9}", "Postgres transactions", "unknown");
    } else if restarted || after.pg_transactions < before.pg_transactions {
        // A restart of Postgres (the fault suite's) resets its counters.
        println!(
            "  {:<36} {:>9}",
            "Postgres transactions", "unknown (counters reset by a restart)"
        );
    } else {
        println!(
            "  {:<36} {:>9.2}",
            "Postgres transactions",
            per((after.pg_transactions - before.pg_transactions) as f64)
        );
        println!(
            "  {:<36} {:>9.2}",
            "Postgres rows written",
            per((after.pg_rows_written - before.pg_rows_written) as f64)
        );
    }
    if restarted {
        println!(
            "  {:<36} {:>9}",
            "SQL statements", "unknown (counters reset by a restart)"
        );
    } else if before.pg_statements < 0 || after.pg_statements < before.pg_statements {
        println!(
            "  {:<36} {:>9}",
            "SQL statements", "unknown (pg_stat_statements not loaded, or reset)"
        );
    } else {
        println!(
            "  {:<36} {:>9.2}",
            "SQL statements",
            per((after.pg_statements - before.pg_statements) as f64)
        );
    }
    println!(
        "  {:<36} {:>9.2}",
        "HTTP calls by the buyer",
        per((after.calls - before.calls) as f64)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counts_are_read_per_stage_from_the_metrics_text() {
        let text = "# HELP pipeline_batch_seconds x\n\
                    pipeline_batch_seconds_bucket{stage=\"cart-processor\",le=\"0.1\"} 3\n\
                    pipeline_batch_seconds_count{stage=\"cart-processor\"} 42\n\
                    pipeline_batch_seconds_count{stage=\"orders-sink\"} 7.5\n\
                    pipeline_records_in_total{stage=\"cart-processor\"} 99\n";
        assert_eq!(
            batch_counts(text),
            vec![
                ("cart-processor".to_owned(), 42.0),
                ("orders-sink".to_owned(), 7.5)
            ]
        );
    }
}
