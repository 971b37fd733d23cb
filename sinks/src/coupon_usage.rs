//! The coupon-usage sink: `coupon.usage` → `coupon_usage` (counts) and
//! `coupon_redemptions` (each order holding or having used a coupon).
//!
//! [`rows`] keeps the newest record of each coupon in a batch (pure);
//! `write` replaces a coupon's redemptions only when its usage row moved
//! forwards (its version), so a redelivered older record changes nothing.

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::coupons::{CouponUsage, RedemptionStatus};
use schemas::topics::COUPON_USAGE;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct CouponUsageSink;

impl Sink for CouponUsageSink {
    type Record = CouponUsage;
    const NAME: &'static str = "coupon-usage-sink";

    fn topic(&self) -> &'static Topic<CouponUsage> {
        &COUPON_USAGE
    }

    fn tables(&self) -> &'static [&'static str] {
        &["coupon_usage", "coupon_redemptions"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CouponUsage>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

type Ts = chrono::DateTime<chrono::Utc>;

fn ts(ms: i64) -> Ts {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A batch's rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub code: Vec<String>,
    pub version: Vec<i64>,
    pub reserved: Vec<i32>,
    pub committed: Vec<i32>,
    pub updated: Vec<Ts>,
    pub r_code: Vec<String>,
    pub r_order: Vec<String>,
    pub r_user: Vec<Option<String>>,
    pub r_status: Vec<&'static str>,
    pub r_at: Vec<Ts>,
}

/// The rows of the newest record of each coupon in `batch`.
pub fn rows(batch: &[Keyed<CouponUsage>]) -> Rows {
    let mut newest: HashMap<&str, &CouponUsage> = HashMap::new();
    for r in batch {
        match newest.get(r.value.code.as_str()) {
            Some(prev) if prev.version > r.value.version => {}
            _ => {
                newest.insert(&r.value.code, &r.value);
            }
        }
    }
    let mut usages: Vec<&CouponUsage> = newest.into_values().collect();
    usages.sort_by(|a, b| a.code.cmp(&b.code));
    let mut out = Rows::default();
    for u in usages {
        let count =
            |s: RedemptionStatus| u.redemptions.iter().filter(|r| r.status == s).count() as i32;
        out.code.push(u.code.clone());
        out.version.push(u.version);
        out.reserved.push(count(RedemptionStatus::Reserved));
        out.committed.push(count(RedemptionStatus::Committed));
        out.updated.push(ts(u.updated_at));
        for r in &u.redemptions {
            out.r_code.push(u.code.clone());
            out.r_order.push(r.order_token.clone());
            out.r_user.push(r.user_id.clone());
            out.r_status.push(r.status.as_str());
            out.r_at.push(ts(r.at));
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.code.is_empty() {
        return Ok(());
    }
    let changed: Vec<String> = sqlx::query_scalar(
        "INSERT INTO coupon_usage (code, version, reserved, committed, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int4[], $4::int4[], $5::timestamptz[])
         ON CONFLICT (code) DO UPDATE SET
             version = EXCLUDED.version, reserved = EXCLUDED.reserved,
             committed = EXCLUDED.committed, updated_at = EXCLUDED.updated_at
         WHERE coupon_usage.version <= EXCLUDED.version
         RETURNING code",
    )
    .bind(&r.code)
    .bind(&r.version)
    .bind(&r.reserved)
    .bind(&r.committed)
    .bind(&r.updated)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM coupon_redemptions WHERE code = ANY($1::text[])")
        .bind(&changed)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO coupon_redemptions (code, order_token, user_id, status, at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
             AS r(c, o, u, s, a)
         WHERE r.c = ANY($6::text[])",
    )
    .bind(&r.r_code)
    .bind(&r.r_order)
    .bind(&r.r_user)
    .bind(&r.r_status)
    .bind(&r.r_at)
    .bind(&changed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
