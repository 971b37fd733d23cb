//! The catalog and rates sinks: `catalog.internships` → `internships`,
//! `fx.rates` → `fx_rates`. Each row keeps the offset of the record it
//! came from and is only replaced by a record from a later offset, so a
//! redelivered batch changes nothing.

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::catalog::Internship;
use schemas::records::coupons::Coupon as CouponRecord;
use schemas::records::fx::FxRate;
use schemas::topics::{CATALOG_INTERNSHIPS, COUPONS, FX_RATES};
use schemas::Topic;

use crate::runner::{Keyed, Sink};

/// The newest record per key in a batch.
fn newest<T>(batch: &[Keyed<T>]) -> Vec<&Keyed<T>> {
    let mut by_key: HashMap<&str, &Keyed<T>> = HashMap::new();
    for r in batch {
        match by_key.get(r.key.as_str()) {
            Some(prev) if prev.offset > r.offset => {}
            _ => {
                by_key.insert(&r.key, r);
            }
        }
    }
    by_key.into_values().collect()
}

fn ts(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub struct InternshipsSink;

impl Sink for InternshipsSink {
    type Record = Internship;
    const NAME: &'static str = "internships-sink";

    fn topic(&self) -> &'static Topic<Internship> {
        &CATALOG_INTERNSHIPS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["internships"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<Internship>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for r in newest(batch) {
                let i = &r.value;
                sqlx::query(
                    "INSERT INTO internships (internship_id, title, category, currency, price_minor, tax_class, active, updated_at, source_offset, billing_periods)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (internship_id) DO UPDATE SET
                        title = EXCLUDED.title, category = EXCLUDED.category, currency = EXCLUDED.currency,
                        price_minor = EXCLUDED.price_minor, tax_class = EXCLUDED.tax_class, active = EXCLUDED.active,
                        updated_at = EXCLUDED.updated_at, source_offset = EXCLUDED.source_offset,
                        billing_periods = EXCLUDED.billing_periods
                     WHERE internships.source_offset <= EXCLUDED.source_offset",
                )
                .bind(&r.key)
                .bind(&i.title)
                .bind(&i.category)
                .bind(&i.base_price.currency)
                .bind(i.base_price.amount_minor)
                .bind(&i.tax_class)
                .bind(i.active)
                .bind(ts(i.updated_at))
                .bind(r.offset)
                .bind(serde_json::json!(i
                    .billing_periods
                    .iter()
                    .map(|p| serde_json::json!({"plan_id": p.plan_id, "value": p.value, "unit": p.unit.as_str(),
                        "price_minor": p.price.amount_minor, "currency": p.price.currency}))
                    .collect::<Vec<_>>()))
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        })
    }
}

pub struct FxRatesSink;

impl Sink for FxRatesSink {
    type Record = FxRate;
    const NAME: &'static str = "fx-rates-sink";

    fn topic(&self) -> &'static Topic<FxRate> {
        &FX_RATES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["fx_rates"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<FxRate>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for r in newest(batch) {
                let Ok(rate) = r.value.rate.parse::<rust_decimal::Decimal>() else {
                    tracing::error!(quote = %r.key, rate = %r.value.rate, "unreadable rate skipped");
                    continue;
                };
                sqlx::query(
                    "INSERT INTO fx_rates (quote, base, rate, as_of, source_offset) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (quote) DO UPDATE SET base = EXCLUDED.base, rate = EXCLUDED.rate, as_of = EXCLUDED.as_of,
                        source_offset = EXCLUDED.source_offset
                     WHERE fx_rates.source_offset <= EXCLUDED.source_offset",
                )
                .bind(&r.key)
                .bind(&r.value.base)
                .bind(rate)
                .bind(ts(r.value.as_of))
                .bind(r.offset)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        })
    }
}

pub struct CouponsSink;

impl Sink for CouponsSink {
    type Record = CouponRecord;
    const NAME: &'static str = "coupons-sink";

    fn topic(&self) -> &'static Topic<CouponRecord> {
        &COUPONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["coupons"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CouponRecord>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for r in newest(batch) {
                let c = &r.value;
                let kind = serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_lowercase))
                    .unwrap_or_default();
                // The whole definition, as the record: readers rebuild the rules from it.
                let definition = serde_json::to_value(c).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO coupons (code, name, kind, definition, active, valid_from, valid_until, updated_at, source_offset)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, definition = EXCLUDED.definition,
                        active = EXCLUDED.active, valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
                        updated_at = EXCLUDED.updated_at, source_offset = EXCLUDED.source_offset
                     WHERE coupons.source_offset <= EXCLUDED.source_offset",
                )
                .bind(&r.key)
                .bind(&c.name)
                .bind(kind)
                .bind(definition)
                .bind(c.active)
                .bind(c.valid_from.map(ts))
                .bind(c.valid_until.map(ts))
                .bind(ts(c.updated_at))
                .bind(r.offset)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        })
    }
}
