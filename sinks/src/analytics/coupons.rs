//! `coupon.usage` → `analytics_coupon_uses`: one row per use of a coupon
//! by an order (its identity: code and order token), as the coupon
//! processor, the one place uses are counted, has them: reserved or
//! committed. From the newest record of each coupon (by version): its uses
//! are upserted, and the uses it no longer lists (reservations released)
//! are deleted, both only when the record is newer than what was written
//! from, so a redelivered older record changes nothing and a rebuild from
//! the compacted topic ends equal to the live table.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::coupons::CouponUsage;
use schemas::topics::COUPON_USAGE;
use schemas::Topic;

use super::{newest, ts, Ts};
use crate::runner::{Keyed, Sink};

pub struct AnalyticsCouponsSink;

impl Sink for AnalyticsCouponsSink {
    type Record = CouponUsage;
    const NAME: &'static str = "analytics-coupons-sink";

    fn topic(&self) -> &'static Topic<CouponUsage> {
        &COUPON_USAGE
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_coupon_uses"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CouponUsage>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

/// A batch's coupon rows, column by column (for `UNNEST`): each coupon's
/// version, and its uses.
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub code: Vec<String>,
    pub version: Vec<i64>,
    pub u_code: Vec<String>,
    pub u_order: Vec<String>,
    pub u_user: Vec<Option<String>>,
    pub u_status: Vec<&'static str>,
    pub u_at: Vec<Option<Ts>>,
    pub u_version: Vec<i64>,
}

/// The uses listed by the newest record of each coupon in `batch`.
pub fn rows(batch: &[Keyed<CouponUsage>]) -> Rows {
    let mut out = Rows::default();
    for u in newest(batch, |u| &u.code, |u| u.version) {
        out.code.push(u.code.clone());
        out.version.push(u.version);
        for r in &u.redemptions {
            out.u_code.push(u.code.clone());
            out.u_order.push(r.order_token.clone());
            out.u_user.push(r.user_id.clone());
            out.u_status.push(r.status.as_str());
            out.u_at.push(ts(r.at));
            out.u_version.push(u.version);
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.code.is_empty() {
        return Ok(());
    }
    // Uses an older record listed and this one does not: released.
    sqlx::query(
        "DELETE FROM analytics_coupon_uses a
         USING UNNEST($1::text[], $2::int8[]) AS c(code, version)
         WHERE a.code = c.code AND a.version < c.version
           AND NOT EXISTS (SELECT 1 FROM UNNEST($3::text[], $4::text[]) AS u(code, order_token)
                           WHERE u.code = a.code AND u.order_token = a.order_token)",
    )
    .bind(&r.code)
    .bind(&r.version)
    .bind(&r.u_code)
    .bind(&r.u_order)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO analytics_coupon_uses (code, order_token, user_id, status, at, version)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[])
         ON CONFLICT (code, order_token) DO UPDATE SET
             user_id = EXCLUDED.user_id, status = EXCLUDED.status, at = EXCLUDED.at,
             version = EXCLUDED.version
         WHERE analytics_coupon_uses.version <= EXCLUDED.version",
    )
    .bind(&r.u_code)
    .bind(&r.u_order)
    .bind(&r.u_user)
    .bind(&r.u_status)
    .bind(&r.u_at)
    .bind(&r.u_version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::keyed;
    use schemas::records::coupons::RedemptionStatus;

    /// From JSON: fields added to the record later (optional, defaulted)
    /// leave the fixture as it is.
    fn usage(version: i64, uses: &[(&str, RedemptionStatus)]) -> CouponUsage {
        let redemptions: Vec<serde_json::Value> = uses
            .iter()
            .map(|(order, status)| {
                serde_json::json!({"order_token": order, "user_id": format!("buyer-of-{order}"),
                    "status": status, "at": 3_000})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "event_id": "e", "code": "SAVE10", "version": version,
            "redemptions": redemptions, "updated_at": 3_000
        }))
        .expect("a coupon usage")
    }

    #[test]
    fn the_newest_record_of_a_coupon_lists_its_uses() {
        use RedemptionStatus::{Committed, Reserved};
        let older = usage(2, &[("o1", Reserved), ("o2", Reserved)]);
        let newer = usage(5, &[("o1", Committed)]);
        let r = rows(&[keyed(&older, 0), keyed(&newer, 1), keyed(&older, 2)]);
        assert_eq!(
            (r.code.as_slice(), r.version.as_slice()),
            (&["SAVE10".to_owned()][..], &[5][..])
        );
        assert_eq!(r.u_order, ["o1"]);
        assert_eq!(r.u_status, ["committed"]);
        assert_eq!(r.u_user, [Some("buyer-of-o1".to_owned())]);
        assert_eq!(r.u_version, [5]);
    }

    #[test]
    fn a_coupon_with_no_uses_left_still_names_its_version() {
        // So its released uses are deleted.
        let r = rows(&[keyed(&usage(7, &[]), 0)]);
        assert_eq!(r.code, ["SAVE10"]);
        assert_eq!(r.version, [7]);
        assert!(r.u_order.is_empty());
    }
}
