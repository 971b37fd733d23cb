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
pub mod audit;
pub mod carts;
pub mod catalog;
pub mod coupon_usage;
pub mod enrollments;
pub mod invoices;
pub mod notifications;
pub mod orders;
pub mod runner;
pub mod service;
pub mod support_cases;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub use platform::wakeups::notify_versions;
