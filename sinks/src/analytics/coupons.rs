//! `coupon.redemptions` → `analytics_coupon_uses`: one row per use of a
//! coupon by an order (its identity: code and order token), as the coupon
//! processor, the one place uses are counted, has them: reserved or
//! committed. From the newest record of each order's redemption: upserted
//! over an older row (by version), deleted when released, so a redelivered
//! older record changes nothing and a rebuild from the compacted topic
//! ends equal to the live table.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::coupons::CouponRedemption;
use schemas::topics::COUPON_REDEMPTIONS;
use schemas::Topic;

use crate::coupon_usage::{write_redemptions, RedemptionTable, Redemptions};
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

/// A batch's uses: the newest record of each order's redemption.
pub fn rows(batch: &[Keyed<CouponRedemption>]) -> Redemptions {
    Redemptions::of(batch)
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Redemptions) -> Result<(), sqlx::Error> {
    write_redemptions(tx, RedemptionTable::Analytics, &r).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::keyed;
    use schemas::records::coupons::RedemptionStatus::{self, Committed, Released, Reserved};

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
        assert_eq!(r.order, ["o1", "o2"]);
        assert_eq!(r.status, ["committed", "released"]);
        assert_eq!(
            r.user,
            [
                Some("buyer-of-o1".to_owned()),
                Some("buyer-of-o2".to_owned())
            ]
        );
        assert_eq!(r.version, [5, 6]);
    }
}
