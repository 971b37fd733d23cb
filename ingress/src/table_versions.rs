//! The table versions the ingress stamps on every cart command it accepts
//! (`CartCommand.tables_at`): for each table topic (catalog, FX rates,
//! coupons), how many offsets the broker holds, as last seen. The cart
//! processor prices the command at exactly those versions, waiting for its
//! tables to reach them if it must, so a replay of the command prices it
//! the same however the tables have changed since.
//!
//! The versions are refreshed from the broker's watermarks (read_committed:
//! the last stable offset) every [`REFRESH`], and moved forward at once by
//! the ingress's own writes to a table topic, so an admin's price change is
//! in the next command this ingress accepts. Until the first refresh
//! succeeds nothing is stamped: such a command is priced from the
//! processor's tables as they are.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use schemas::records::cart::PricedWith;
use schemas::topics::{CATALOG_INTERNSHIPS, COUPONS, FX_RATES};
use schemas::{TopicDef, TopicNames};

/// How often the watermarks are read again.
pub const REFRESH: Duration = Duration::from_millis(100);

/// The stamped tables, in `PricedWith` order.
const TABLES: [&TopicDef; 3] = [&CATALOG_INTERNSHIPS.def, &FX_RATES.def, &COUPONS.def];

/// Not read yet.
const UNKNOWN: i64 = -1;

#[derive(Clone)]
pub struct TableVersions(Arc<[AtomicI64; 3]>);

impl TableVersions {
    /// Versions known from nowhere yet (nothing is stamped until set).
    pub fn unknown() -> TableVersions {
        TableVersions(Arc::new([
            AtomicI64::new(UNKNOWN),
            AtomicI64::new(UNKNOWN),
            AtomicI64::new(UNKNOWN),
        ]))
    }

    /// Reads the watermarks once, then keeps them fresh in the background
    /// for as long as the returned value (or a clone) lives.
    pub async fn follow(brokers: &str, names: &TopicNames) -> anyhow::Result<TableVersions> {
        let versions = TableVersions::unknown();
        let reader = Arc::new(platform::kafka::reader(brokers)?);
        let topics: Arc<Vec<String>> = Arc::new(TABLES.iter().map(|d| names.name(d)).collect());
        if let Err(e) = versions.refresh(&reader, &topics).await {
            tracing::warn!(error = %e, "table versions not read yet; commands go unstamped until they are");
        }
        let weak = Arc::downgrade(&versions.0);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(inner) = weak.upgrade() else { return };
                match TableVersions(inner).refresh(&reader, &topics).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "table versions not refreshed; stamping the last ones read");
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(versions)
    }

    async fn refresh(
        &self,
        reader: &Arc<BaseConsumer>,
        topics: &Arc<Vec<String>>,
    ) -> anyhow::Result<()> {
        let (reader, topics) = (reader.clone(), topics.clone());
        let ends = tokio::task::spawn_blocking(move || {
            topics
                .iter()
                .map(|t| {
                    reader
                        .fetch_watermarks(t, 0, Duration::from_secs(2))
                        .map(|(_, high)| high)
                })
                .collect::<Result<Vec<i64>, _>>()
        })
        .await??;
        for (i, end) in ends.into_iter().enumerate() {
            self.0[i].fetch_max(end, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Moves `table`'s version to `next` (an offset just written + 1).
    pub fn advance(&self, table: &TopicDef, next: i64) {
        if let Some(i) = TABLES.iter().position(|d| d.name == table.name) {
            self.0[i].fetch_max(next, Ordering::AcqRel);
        }
    }

    /// What to stamp on a command now; `None` until every table was read.
    pub fn current(&self) -> Option<PricedWith> {
        let [catalog, fx_rates, coupons] = [0, 1, 2].map(|i| self.0[i].load(Ordering::Acquire));
        (catalog.min(fx_rates).min(coupons) > UNKNOWN).then_some(PricedWith {
            catalog,
            fx_rates,
            coupons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_stamped_until_every_table_is_known_and_versions_only_grow() {
        let v = TableVersions::unknown();
        assert_eq!(v.current(), None);
        v.advance(&CATALOG_INTERNSHIPS.def, 7);
        v.advance(&FX_RATES.def, 2);
        assert_eq!(v.current(), None, "coupons not known yet");
        v.advance(&COUPONS.def, 0);
        v.advance(&CATALOG_INTERNSHIPS.def, 5);
        assert_eq!(
            v.current(),
            Some(PricedWith {
                catalog: 7,
                fx_rates: 2,
                coupons: 0
            })
        );
        v.advance(&schemas::topics::CART_COMMANDS.def, 99);
        assert_eq!(v.current().map(|p| p.catalog), Some(7), "not a table");
    }
}
