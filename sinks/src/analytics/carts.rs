//! `cart.snapshots` → `analytics_carts`: one row per cart, dated by the
//! cart's own `created_at`; every column is its newest snapshot's (by
//! version), the currency included (a buyer may change it), so the row is
//! the same whichever snapshots a batch or a replay of the compacted topic
//! saw first. A cart is never counted twice because its token is the
//! row's key.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::cart::CartSnapshot;
use schemas::topics::CART_SNAPSHOTS;
use schemas::Topic;

use super::{newest, ts, Ts};
use crate::runner::{Keyed, Sink};

pub struct AnalyticsCartsSink;

impl Sink for AnalyticsCartsSink {
    type Record = CartSnapshot;
    const NAME: &'static str = "analytics-carts-sink";

    fn topic(&self) -> &'static Topic<CartSnapshot> {
        &CART_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_carts"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CartSnapshot>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

/// A batch's cart rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub token: Vec<String>,
    pub created: Vec<Option<Ts>>,
    pub currency: Vec<String>,
    pub owner: Vec<Option<String>>,
    pub status: Vec<&'static str>,
    pub order: Vec<Option<String>>,
    pub version: Vec<i64>,
    pub updated: Vec<Option<Ts>>,
}

/// The row of the newest snapshot of each cart in `batch`.
pub fn rows(batch: &[Keyed<CartSnapshot>]) -> Rows {
    let mut out = Rows::default();
    for c in newest(batch, |c| &c.cart_token, |c| c.version) {
        out.token.push(c.cart_token.clone());
        out.created.push(ts(c.created_at));
        out.currency.push(c.currency.clone());
        out.owner.push(c.owner_user_id.clone());
        out.status.push(c.status.as_str());
        out.order.push(c.order_token.clone());
        out.version.push(c.version);
        out.updated.push(ts(c.updated_at));
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.token.is_empty() {
        return Ok(());
    }
    // created_at is never updated: the first snapshot written dates the cart.
    sqlx::query(
        "INSERT INTO analytics_carts (cart_token, created_at, currency, owner_user_id, status,
                                      order_token, version, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::int8[], $8::timestamptz[])
         ON CONFLICT (cart_token) DO UPDATE SET
             created_at = EXCLUDED.created_at, currency = EXCLUDED.currency,
             owner_user_id = EXCLUDED.owner_user_id, status = EXCLUDED.status,
             order_token = EXCLUDED.order_token, version = EXCLUDED.version,
             updated_at = EXCLUDED.updated_at
         WHERE analytics_carts.version <= EXCLUDED.version",
    )
    .bind(&r.token)
    .bind(&r.created)
    .bind(&r.currency)
    .bind(&r.owner)
    .bind(&r.status)
    .bind(&r.order)
    .bind(&r.version)
    .bind(&r.updated)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analytics::keyed;
    use schemas::records::cart::CartStatus;

    /// A cart snapshot as the cart processor writes one (no lines), from
    /// JSON: fields added to the record later (optional, defaulted) leave
    /// these fixtures as they are.
    pub(crate) fn cart(token: &str, version: i64, status: CartStatus) -> CartSnapshot {
        let money = serde_json::json!({"amount_minor": 0, "currency": "INR"});
        serde_json::from_value(serde_json::json!({
            "event_id": "00000000-0000-0000-0000-000000000001", "cart_token": token,
            "version": version, "status": status, "currency": "INR", "lines": [],
            "subtotal": money, "total": money, "discount_total": money, "tax_total": money,
            "created_at": 1_764_547_200_000_i64, "updated_at": 1_764_547_200_000_i64 + version,
            "last_command_id": "c", "owner_user_id": "u1", "taxes": [], "tax_inclusive": false,
            "analytics": {}, "coupons": [], "discounts": []
        }))
        .expect("a cart snapshot")
    }

    #[test]
    fn each_cart_is_one_row_from_its_newest_snapshot_dated_by_its_creation() {
        let mut converted = cart("c1", 9, CartStatus::Converted);
        converted.order_token = Some("o1".into());
        let batch = [
            keyed(&cart("c2", 1, CartStatus::Active), 0),
            keyed(&converted, 1),
            // Redelivered older snapshot of c1: does not win.
            keyed(&cart("c1", 4, CartStatus::Active), 2),
            keyed(&cart("c2", 1, CartStatus::Active), 3),
        ];
        let r = rows(&batch);
        assert_eq!(r.token, ["c1", "c2"]);
        assert_eq!(r.version, [9, 1]);
        assert_eq!(r.status, ["converted", "active"]);
        assert_eq!(r.order, [Some("o1".to_owned()), None]);
        let created = ts(1_764_547_200_000);
        assert_eq!(r.created, [created, created]);
    }

    #[test]
    fn an_unrepresentable_time_is_left_null_for_postgres_to_refuse() {
        let mut c = cart("c1", 1, CartStatus::Active);
        c.created_at = i64::MAX;
        assert_eq!(rows(&[keyed(&c, 0)]).created, [None]);
    }
}
