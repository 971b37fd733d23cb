//! The coupon-usage sink: `coupon.redemptions` → `coupon_redemptions`
//! (each order holding or having used a coupon) and `coupon_usage` (each
//! coupon's counts, as its newest record states them).
//!
//! [`rows`] keeps the newest record of each order's redemption and of each
//! coupon in a batch (pure); `write` upserts them only over older rows (by
//! version, the coupon command's offset), and deletes a released
//! redemption, so a redelivered older record changes nothing and a rebuild
//! from the compacted topic ends equal to the live tables.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::coupons::{CouponRedemption, RedemptionStatus};
use schemas::topics::COUPON_REDEMPTIONS;
use schemas::Topic;

use crate::analytics::newest;
use crate::runner::{Keyed, Sink};

pub struct CouponUsageSink;

impl Sink for CouponUsageSink {
    type Record = CouponRedemption;
    const NAME: &'static str = "coupon-usage-sink";

    fn topic(&self) -> &'static Topic<CouponRedemption> {
        &COUPON_REDEMPTIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["coupon_usage", "coupon_redemptions"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CouponRedemption>],
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
    /// Each coupon's counts, from its newest record.
    pub code: Vec<String>,
    pub version: Vec<i64>,
    pub reserved: Vec<i32>,
    pub committed: Vec<i32>,
    pub updated: Vec<Ts>,
    pub redemptions: Redemptions,
}

/// The rows of `batch`: the newest record of each coupon and of each
/// order's redemption.
pub fn rows(batch: &[Keyed<CouponRedemption>]) -> Rows {
    let mut out = Rows::default();
    for r in newest(batch, |r| &r.code, |r| r.version) {
        out.code.push(r.code.clone());
        out.version.push(r.version);
        out.reserved.push(r.reserved);
        out.committed.push(r.committed);
        out.updated.push(ts(r.updated_at));
    }
    out.redemptions = Redemptions::of(batch);
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.code.is_empty() {
        return Ok(());
    }
    // The coupon's row first: its redemptions reference it.
    sqlx::query(
        "INSERT INTO coupon_usage (code, version, reserved, committed, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int4[], $4::int4[], $5::timestamptz[])
         ON CONFLICT (code) DO UPDATE SET
             version = EXCLUDED.version, reserved = EXCLUDED.reserved,
             committed = EXCLUDED.committed, updated_at = EXCLUDED.updated_at
         WHERE coupon_usage.version <= EXCLUDED.version",
    )
    .bind(&r.code)
    .bind(&r.version)
    .bind(&r.reserved)
    .bind(&r.committed)
    .bind(&r.updated)
    .execute(&mut **tx)
    .await?;
    write_redemptions(tx, RedemptionTable::Live, &r.redemptions).await
}

/// Each order's redemption in a batch (its newest record; released ones
/// too, which [`write_redemptions`] deletes), column by column: what both
/// `coupon_redemptions` and `analytics_coupon_uses` hold.
#[derive(Debug, Default, PartialEq)]
pub struct Redemptions {
    pub code: Vec<String>,
    pub order: Vec<String>,
    pub user: Vec<Option<String>>,
    pub status: Vec<&'static str>,
    pub at: Vec<Ts>,
    pub version: Vec<i64>,
}

impl Redemptions {
    /// The newest record of each (coupon, order) in `batch`.
    pub fn of(batch: &[Keyed<CouponRedemption>]) -> Redemptions {
        let mut out = Redemptions::default();
        let by_order = newest(
            batch,
            |r| (r.code.as_str(), r.order_token.as_str()),
            |r| r.version,
        );
        for r in by_order {
            out.code.push(r.code.clone());
            out.order.push(r.order_token.clone());
            out.user.push(r.user_id.clone());
            out.status.push(r.status.as_str());
            out.at.push(ts(r.at));
            out.version.push(r.version);
        }
        out
    }
}

/// The two tables of redemptions, same columns: the read model's and the
/// analytics fact table.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RedemptionTable {
    Live,
    Analytics,
}

/// Deletes the released redemptions and upserts the others, each only over
/// an older row (by version), so a redelivered older record changes nothing.
pub(crate) async fn write_redemptions(
    tx: &mut Transaction<'static, Postgres>,
    table: RedemptionTable,
    r: &Redemptions,
) -> Result<(), sqlx::Error> {
    if r.code.is_empty() {
        return Ok(());
    }
    let table = match table {
        RedemptionTable::Live => "coupon_redemptions",
        RedemptionTable::Analytics => "analytics_coupon_uses",
    };
    let released = RedemptionStatus::Released.as_str();
    sqlx::query(&format!(
        "DELETE FROM {table} t
         USING UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS r(code, order_token, status, version)
         WHERE r.status = $5 AND t.code = r.code AND t.order_token = r.order_token
           AND t.version <= r.version"
    ))
    .bind(&r.code)
    .bind(&r.order)
    .bind(&r.status)
    .bind(&r.version)
    .bind(released)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {table} (code, order_token, user_id, status, at, version)
         SELECT c, o, u, s, a, v
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[])
             AS r(c, o, u, s, a, v)
         WHERE s <> $7
         ON CONFLICT (code, order_token) DO UPDATE SET
             user_id = EXCLUDED.user_id, status = EXCLUDED.status, at = EXCLUDED.at,
             version = EXCLUDED.version
         WHERE {table}.version <= EXCLUDED.version"
    ))
    .bind(&r.code)
    .bind(&r.order)
    .bind(&r.user)
    .bind(&r.status)
    .bind(&r.at)
    .bind(&r.version)
    .bind(released)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        order: &str,
        status: RedemptionStatus,
        version: i64,
        counts: (i32, i32),
    ) -> Keyed<CouponRedemption> {
        let value = CouponRedemption {
            event_id: format!("e{version}"),
            code: "TEN".into(),
            order_token: order.into(),
            user_id: Some("u".into()),
            status,
            at: 1,
            version,
            reserved: counts.0,
            committed: counts.1,
            updated_at: version,
        };
        Keyed {
            key: value.key(),
            value,
            partition: 0,
            offset: version,
            correlation_id: "c".into(),
        }
    }

    #[test]
    fn a_batch_keeps_the_newest_record_of_each_order_and_the_coupon_s_newest_counts() {
        let batch = [
            record("o1", RedemptionStatus::Reserved, 1, (1, 0)),
            record("o2", RedemptionStatus::Reserved, 2, (2, 0)),
            record("o1", RedemptionStatus::Committed, 3, (1, 1)),
            record("o2", RedemptionStatus::Released, 4, (0, 1)),
        ];
        let r = rows(&batch);
        assert_eq!(
            (r.code, r.version, r.reserved, r.committed),
            (vec!["TEN".to_owned()], vec![4], vec![0], vec![1])
        );
        assert_eq!(r.redemptions.order, ["o1", "o2"]);
        assert_eq!(r.redemptions.status, ["committed", "released"]);
        assert_eq!(r.redemptions.version, [3, 4]);
    }
}
