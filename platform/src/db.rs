//! Postgres connections for the read model.
//!
//! The database named in `DATABASE_URL` is created when missing, and every
//! pooled connection uses the configured schema, so a test can own a schema
//! of its own while sharing the server.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// A pool on `database_url` using `schema`; a server that does not answer
/// yet (restarting, still starting up) is waited for (see
/// [`crate::startup`]), one that refuses (a bad password) is not.
pub async fn connect(
    database_url: &str,
    schema: &str,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    crate::startup::patiently(
        "Postgres",
        crate::startup::wait_limit()?,
        unreachable,
        || connect_once(database_url, schema, max_connections),
    )
    .await
}

/// Whether an error means the server is not there yet, rather than that
/// it refused us: no connection, or "the database system is starting up"
/// / "shutting down" (SQLSTATE 57P03, 57P01).
fn unreachable(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => true,
        Some(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("57P03" | "57P01"))
        }
        _ => false,
    }
}

async fn connect_once(
    database_url: &str,
    schema: &str,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "DATABASE_SCHEMA must be an identifier of [A-Za-z0-9_], got {schema:?}"
    );
    let options = PgConnectOptions::from_str(database_url)?;
    ensure_database(&options).await?;
    let search_path = format!("SET search_path TO \"{schema}\"");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let search_path = search_path.clone();
            Box::pin(async move {
                sqlx::query(&search_path).execute(&mut *conn).await?;
                // A process that stops inside a transaction (SIGSTOP, a
                // hung host) must not hold its row locks for ever: a sink
                // that took over its partitions writes the same rows and
                // would wait behind it. The server ends such a session; no
                // transaction of ours idles this long.
                sqlx::query("SET idle_in_transaction_session_timeout = '20s'")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&pool)
        .await?;
    Ok(pool)
}

/// Creates the URL's database when it does not exist yet.
async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if options.connect().await.is_ok() {
        return Ok(());
    }
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Two services starting together may race here; losing is fine.
        let created = sqlx::query(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))
            .execute(&mut admin)
            .await;
        if let Err(e) = created {
            tracing::debug!(error = %e, "create database raced");
        }
    }
    admin.close().await?;
    Ok(())
}

/// The pool gauges: `db_pool_connections{state="in_use"|"idle"}` and
/// `db_pool_max_connections`, what the `DatabasePoolExhausted` alert
/// divides.
struct PoolMetrics {
    connections: prometheus::IntGaugeVec,
    max: prometheus::IntGauge,
}

fn pool_metrics() -> &'static PoolMetrics {
    static M: std::sync::OnceLock<PoolMetrics> = std::sync::OnceLock::new();
    M.get_or_init(|| PoolMetrics {
        connections: prometheus::register_int_gauge_vec!(
            "db_pool_connections",
            "Postgres pool connections by state (in_use, idle)",
            &["state"]
        )
        .expect("metric registers once"),
        max: prometheus::register_int_gauge!(
            "db_pool_max_connections",
            "The Postgres pool's maximum number of connections"
        )
        .expect("metric registers once"),
    })
}

/// Reports `pool` in the pool gauges every second, from now (so a first
/// scrape already shows it) until the pool is closed. A service reports
/// its one pool.
pub fn report_pool(pool: &PgPool) {
    let m = pool_metrics();
    m.max.set(i64::from(pool.options().get_max_connections()));
    let sample = |pool: &PgPool| {
        let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
        m.connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        m.connections.with_label_values(&["idle"]).set(idle);
    };
    sample(pool);
    let pool = pool.clone();
    tokio::spawn(async move {
        while !pool.is_closed() {
            sample(&pool);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}
