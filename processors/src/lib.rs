//! The stateful stream processors.
//!
//! [`runner`] is the one Kafka loop every processor runs in: it consumes a
//! command topic, restores per-partition state from a changelog, calls the
//! processor's pure `apply`, and commits its outputs, the state change and
//! the input offsets in one Kafka transaction. The domain rules are the
//! `rules` crate's pure functions; each processor folder (`cart/`) holds a
//! thin adapter from them to the runner. [`tables`] follows the table
//! topics processors join against (catalog, FX rates, coupons). [`PROCESSORS`] lists what the
//! `processors <name>` binary runs: adding a processor is one entry there.

pub mod cart;
pub mod coupon;
pub mod enrollment;
pub mod invoice;
pub mod order;
pub mod payments;
pub mod runner;
pub mod tables;
pub mod webhook;

/// A processor service: runs until the shutdown future resolves.
pub type Service = fn(
    platform::config::PipelineConfig,
    std::net::SocketAddr,
    futures::future::BoxFuture<'static, ()>,
) -> futures::future::BoxFuture<'static, anyhow::Result<()>>;

/// Every processor, by the name `processors <name>` takes.
pub const PROCESSORS: &[(&str, Service)] = &[
    ("cart", |config, ops, stop| {
        Box::pin(cart::service::run(config, ops, stop))
    }),
    ("order", |config, ops, stop| {
        Box::pin(order::service::run(config, ops, stop))
    }),
    ("coupon", |config, ops, stop| {
        Box::pin(coupon::service::run(config, ops, stop))
    }),
    ("gateway", |config, ops, stop| {
        Box::pin(payments::service::run(config, ops, stop))
    }),
    ("webhook", |config, ops, stop| {
        Box::pin(webhook::service::run(config, ops, stop))
    }),
    ("webhook-retry", |config, ops, stop| {
        Box::pin(webhook::service::run_retry(config, ops, stop))
    }),
    ("enrollment", |config, ops, stop| {
        Box::pin(enrollment::service::run(config, ops, stop))
    }),
    ("invoice", |config, ops, stop| {
        Box::pin(invoice::service::run(config, ops, stop))
    }),
];
