//! The analytics stage: the funnel (carts created → orders placed → paid →
//! enrolled), revenue by currency and day, payment success by gateway and
//! method, and coupon usage, as Postgres views and Prometheus gauges.
//!
//! It owns the `analytics_*` tables and views
//! (`sinks/migrations/*_analytics.sql`) and the `analytics_*` gauges. One
//! sink per input topic ([`carts`], [`orders`], [`enrollments`],
//! [`coupons`]), each in its own consumer group, so each can be rebuilt on
//! its own (`checkoutctl rebuild analytics-orders`); [`metrics`] reads the
//! views into gauges.
//!
//! Guarantee: every number is exact however often a record is delivered.
//! The sinks write facts, not counts: each record becomes an upsert of the
//! row of the entity it describes (a cart, an order, an attempt, an
//! enrollment, a coupon use), guarded by the record's version, in the
//! runner's Postgres transaction together with the offsets it consumed.
//! A redelivery, a replay from the start or a rebuild rewrites the same
//! rows; the aggregates are views over them, so nothing is ever added
//! twice. Each file splits a pure `rows` (records → columns, unit-tested)
//! from its `write` (the SQL).

pub mod carts;
pub mod coupons;
pub mod enrollments;
pub mod metrics;
pub mod orders;

use std::collections::HashMap;

use crate::runner::Keyed;

pub use carts::AnalyticsCartsSink;
pub use coupons::AnalyticsCouponsSink;
pub use enrollments::AnalyticsEnrollmentsSink;
pub use orders::AnalyticsOrdersSink;

/// The prefix of every analytics sink's name (`sinks analytics` starts
/// them all).
pub const PREFIX: &str = "analytics-";

pub(crate) type Ts = chrono::DateTime<chrono::Utc>;

/// Milliseconds since the epoch as a timestamp; `None` (out of range) makes
/// the row's NOT NULL column refuse it, so the record goes to the dead
/// letters instead of being dated 1970.
pub(crate) fn ts(ms: i64) -> Option<Ts> {
    chrono::DateTime::from_timestamp_millis(ms)
}

/// The newest record of each key in `batch` (by `version`), in key order:
/// a batch may hold several snapshots of one entity, and only the last
/// says where it stands.
pub(crate) fn newest<'a, T, K: Eq + std::hash::Hash + Ord>(
    batch: &'a [Keyed<T>],
    key: impl Fn(&'a T) -> K,
    version: impl Fn(&T) -> i64,
) -> Vec<&'a T> {
    let mut by_key: HashMap<K, &'a T> = HashMap::new();
    for r in batch {
        let v = &r.value;
        match by_key.get(&key(v)) {
            Some(prev) if version(prev) > version(v) => {}
            _ => {
                by_key.insert(key(v), v);
            }
        }
    }
    let mut out: Vec<&'a T> = by_key.into_values().collect();
    out.sort_by_key(|a| key(a));
    out
}

#[cfg(test)]
pub(crate) fn keyed<T: Clone>(value: &T, offset: i64) -> Keyed<T> {
    Keyed {
        key: String::new(),
        value: value.clone(),
        partition: 0,
        offset,
        correlation_id: "test".into(),
    }
}
