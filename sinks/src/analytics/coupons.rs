//! `coupon.redemptions` → `analytics_coupon_uses`: one row per use of a
//! coupon by an order (its identity: code and order token), as the coupon
//! processor, the one place uses are counted, has them: reserved or
//! committed. From the newest record of each order's redemption: upserted
//! over an older row (by version), deleted when released, so a redelivered
//! older record changes nothing and a rebuild from the compacted topic
//! ends equal to the live table.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::coupons::{CouponRedemption, RedemptionStatus};
use schemas::topics::COUPON_REDEMPTIONS;
use schemas::Topic;

use super::{ts, Ts};
use crate::coupon_usage::newest_by_order;
use crate::runner::{Keyed, Sink};

pub struct AnalyticsCouponsSink;

impl Sink for AnalyticsCouponsSink {
    type Record = CouponRedemption;
    const NAME: &'static str = "analytics-coupons-sink";

    fn topic(&self) -> &'static Topic<CouponRedemption> {
        &COUPON_REDEMPTIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_coupon_uses"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CouponRedemption>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

/// A batch's uses, column by column (for `UNNEST`): the newest record of
/// each order's redemption (released ones too: `write` deletes those).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub u_code: Vec<String>,
    pub u_order: Vec<String>,
    pub u_user: Vec<Option<String>>,
    pub u_status: Vec<&'static str>,
    pub u_at: Vec<Option<Ts>>,
    pub u_version: Vec<i64>,
}

pub fn rows(batch: &[Keyed<CouponRedemption>]) -> Rows {
    let mut out = Rows::default();
    for r in newest_by_order(batch) {
        out.u_code.push(r.code.clone());
        out.u_order.push(r.order_token.clone());
        out.u_user.push(r.user_id.clone());
        out.u_status.push(r.status.as_str());
        out.u_at.push(ts(r.at));
        out.u_version.push(r.version);
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.u_code.is_empty() {
        return Ok(());
    }
    let released = RedemptionStatus::Released.as_str();
    sqlx::query(
        "DELETE FROM analytics_coupon_uses a
         USING UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS r(code, order_token, status, version)
         WHERE r.status = $5 AND a.code = r.code AND a.order_token = r.order_token
           AND a.version <= r.version",
    )
    .bind(&r.u_code)
    .bind(&r.u_order)
    .bind(&r.u_status)
    .bind(&r.u_version)
    .bind(released)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO analytics_coupon_uses (code, order_token, user_id, status, at, version)
         SELECT c, o, u, s, a, v
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[])
             AS r(c, o, u, s, a, v)
         WHERE s <> $7
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
    .bind(released)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::keyed;
    use RedemptionStatus::{Committed, Released, Reserved};

    fn redemption(order: &str, status: RedemptionStatus, version: i64) -> CouponRedemption {
        CouponRedemption {
            event_id: format!("e{version}"),
            code: "SAVE10".into(),
            order_token: order.into(),
            user_id: Some(format!("buyer-of-{order}")),
            status,
            at: 3_000,
            version,
            reserved: 0,
            committed: 0,
            updated_at: 3_000,
        }
    }

    #[test]
    fn the_newest_record_of_each_order_s_use_is_written() {
        let r = rows(&[
            keyed(&redemption("o1", Reserved, 2), 0),
            keyed(&redemption("o2", Reserved, 3), 1),
            keyed(&redemption("o1", Committed, 5), 2),
            keyed(&redemption("o2", Released, 6), 3),
            // Redelivered older: changes nothing.
            keyed(&redemption("o1", Reserved, 2), 4),
        ]);
        assert_eq!(r.u_order, ["o1", "o2"]);
        assert_eq!(r.u_status, ["committed", "released"]);
        assert_eq!(
            r.u_user,
            [
                Some("buyer-of-o1".to_owned()),
                Some("buyer-of-o2".to_owned())
            ]
        );
        assert_eq!(r.u_version, [5, 6]);
    }
}
