//! Sinks: workers that materialize topics into the Postgres read model.
//!
//! [`runner`] is the loop every sink shares: a batch of records is written
//! in one Postgres transaction, and the batch's offsets are committed only
//! after that transaction commits. Each sink's writes are idempotent (rows
//! carry the version they stand for and never move backwards), so a batch
//! written twice after a crash changes nothing the second time.
//!
//! The tables are defined by the migrations in `sinks/migrations`
//! ([`MIGRATOR`]); the ingress only reads them.

pub mod analytics;
pub mod carts;
pub mod catalog;
pub mod coupon_usage;
pub mod enrollments;
pub mod notifications;
pub mod orders;
pub mod runner;
pub mod service;
pub mod support_cases;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The Postgres channel the carts and orders sinks notify with
/// `<token>:<version>` (a cart or an order token) after each commit, and
/// the enrollments sink with `enrolled:<order token>:1`, so readers waiting
/// for a version wake at once.
pub const CART_VERSIONS_CHANNEL: &str = "cart_versions";

/// Wakes the readers waiting for these `(token, version)`s: the
/// notifications go out when the transaction `tx` commits, never before.
pub async fn notify_versions(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    changed: &[(String, i64)],
) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = changed.iter().map(|(t, v)| format!("{t}:{v}")).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(CART_VERSIONS_CHANNEL)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
