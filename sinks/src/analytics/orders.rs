//! `order.snapshots` → `analytics_orders` and `analytics_payment_attempts`:
//! one row per order and one per payment attempt, from the newest snapshot
//! of each order, moving only forwards (by version).
//!
//! An order is placed when first seen (its `created_at`) and paid at its
//! first accepted transition to PAID in its history (a refused one, 3002,
//! is not a payment); `paid_at` once set is kept, so a later REFUNDED
//! still counts in gross revenue. Its total is kept in minor units and,
//! exactly, in major units (rust_decimal from the currency's ISO 4217
//! exponent, NUMERIC in Postgres). An attempt's payment method is what the
//! gateway's event said (Razorpay's do; Stripe's checkout events do not:
//! NULL, 'unknown' in the views).

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sqlx::{Postgres, Transaction};

use schemas::records::order::{OrderSnapshot, OrderStatus};
use schemas::topics::ORDER_SNAPSHOTS;
use schemas::{Currency, Money, Topic};

use super::{newest, ts, Ts};
use crate::runner::{Keyed, Sink};

pub struct AnalyticsOrdersSink;

impl Sink for AnalyticsOrdersSink {
    type Record = OrderSnapshot;
    const NAME: &'static str = "analytics-orders-sink";

    fn topic(&self) -> &'static Topic<OrderSnapshot> {
        &ORDER_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_orders", "analytics_payment_attempts"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<OrderSnapshot>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

/// A batch's order rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub token: Vec<String>,
    pub cart: Vec<String>,
    pub buyer: Vec<Option<String>>,
    pub status: Vec<&'static str>,
    pub currency: Vec<String>,
    /// `None` for a currency this system cannot price: the NOT NULL column
    /// refuses the row (the record goes to the dead letters).
    pub exponent: Vec<Option<i16>>,
    pub subtotal_minor: Vec<i64>,
    pub discount_minor: Vec<i64>,
    pub tax_minor: Vec<i64>,
    pub total_minor: Vec<i64>,
    pub total: Vec<Option<Decimal>>,
    pub placed: Vec<Option<Ts>>,
    pub paid: Vec<Option<Ts>>,
    pub version: Vec<i64>,
    pub updated: Vec<Option<Ts>>,
    pub attempts: Attempts,
}

#[derive(Debug, Default, PartialEq)]
pub struct Attempts {
    pub token: Vec<String>,
    pub number: Vec<i32>,
    pub gateway: Vec<Option<String>>,
    pub method: Vec<Option<String>>,
    pub outcome: Vec<&'static str>,
    pub opened: Vec<Option<Ts>>,
    pub version: Vec<i64>,
}

/// When the order was paid: its first accepted transition to PAID. A
/// snapshot PAID (or REFUNDED) without one in its history is a bug
/// upstream; its last update stands in so the payment is not lost.
pub fn paid_at(o: &OrderSnapshot) -> Option<i64> {
    let from_history = o
        .history
        .iter()
        .filter(|t| t.to_status == OrderStatus::Paid && t.refused_code.is_none())
        .map(|t| t.at)
        .min();
    match o.status {
        OrderStatus::Paid | OrderStatus::Refunded => from_history.or(Some(o.updated_at)),
        OrderStatus::Pending
        | OrderStatus::AwaitingPayment
        | OrderStatus::Failed
        | OrderStatus::Expired => from_history,
    }
}

/// The order's total in major units, exactly, and the exponent used;
/// `None` for a currency outside the ISO 4217 table.
pub fn major_units(minor: i64, currency: &str) -> Option<(Decimal, i16)> {
    let c = Currency::parse(currency).ok()?;
    let exponent = i16::try_from(c.exponent()).ok()?;
    Some((Money::from_minor(minor, c).amount(), exponent))
}

/// The rows of the newest snapshot of each order in `batch`.
pub fn rows(batch: &[Keyed<OrderSnapshot>]) -> Rows {
    let mut out = Rows::default();
    for o in newest(batch, |o| &o.order_token, |o| o.version) {
        let p = &o.placed;
        let money = major_units(p.total.amount_minor, &p.total.currency);
        out.token.push(o.order_token.clone());
        out.cart.push(o.cart_token.clone());
        out.buyer.push(o.buyer_user_id.clone());
        out.status.push(o.status.as_str());
        out.currency.push(p.total.currency.clone());
        out.exponent.push(money.map(|(_, e)| e));
        out.subtotal_minor.push(p.subtotal.amount_minor);
        out.discount_minor.push(p.discount_total.amount_minor);
        out.tax_minor.push(p.tax_total.amount_minor);
        out.total_minor.push(p.total.amount_minor);
        out.total.push(money.map(|(d, _)| d));
        out.placed.push(ts(o.created_at));
        out.paid.push(paid_at(o).and_then(ts));
        out.version.push(o.version);
        out.updated.push(ts(o.updated_at));
        for a in &o.attempts {
            let t = &mut out.attempts;
            t.token.push(o.order_token.clone());
            t.number.push(a.number);
            t.gateway.push(a.gateway.clone());
            t.method.push(a.method.clone());
            t.outcome.push(a.status.as_str());
            t.opened.push(ts(a.opened_at));
            t.version.push(o.version);
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.token.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO analytics_orders (order_token, cart_token, buyer_user_id, status, currency, minor_exponent,
                                       subtotal_minor, discount_minor, tax_minor, total_minor, total,
                                       placed_at, paid_at, version, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[],
                              $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::numeric[],
                              $12::timestamptz[], $13::timestamptz[], $14::int8[], $15::timestamptz[])
         ON CONFLICT (order_token) DO UPDATE SET
             buyer_user_id = EXCLUDED.buyer_user_id, status = EXCLUDED.status,
             paid_at = coalesce(analytics_orders.paid_at, EXCLUDED.paid_at),
             version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
         WHERE analytics_orders.version <= EXCLUDED.version",
    )
    .bind(&r.token)
    .bind(&r.cart)
    .bind(&r.buyer)
    .bind(&r.status)
    .bind(&r.currency)
    .bind(&r.exponent)
    .bind(&r.subtotal_minor)
    .bind(&r.discount_minor)
    .bind(&r.tax_minor)
    .bind(&r.total_minor)
    .bind(&r.total)
    .bind(&r.placed)
    .bind(&r.paid)
    .bind(&r.version)
    .bind(&r.updated)
    .execute(&mut **tx)
    .await?;
    let a = &r.attempts;
    sqlx::query(
        "INSERT INTO analytics_payment_attempts (order_token, attempt, gateway, method, outcome, opened_at, version)
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::int8[])
         ON CONFLICT (order_token, attempt) DO UPDATE SET
             gateway = EXCLUDED.gateway, method = EXCLUDED.method, outcome = EXCLUDED.outcome,
             version = EXCLUDED.version
         WHERE analytics_payment_attempts.version <= EXCLUDED.version",
    )
    .bind(&a.token)
    .bind(&a.number)
    .bind(&a.gateway)
    .bind(&a.method)
    .bind(&a.outcome)
    .bind(&a.opened)
    .bind(&a.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::carts::tests::cart;
    use crate::analytics::keyed;
    use schemas::records::cart::CartStatus;
    use schemas::records::order::{AttemptStatus, PaymentAttempt, Transition};
    use schemas::records::WireMoney;

    // Fixtures from JSON: fields added to the records later (optional,
    // defaulted) leave them as they are.

    fn transition(seq: i32, to: OrderStatus, at: i64, refused: Option<i32>) -> Transition {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "to_status": to, "reason": "r", "actor": "a", "correlation_id": "c",
            "at": at, "refused_code": refused
        }))
        .expect("a transition")
    }

    fn attempt(number: i32, status: AttemptStatus, gateway: Option<&str>) -> PaymentAttempt {
        serde_json::from_value(serde_json::json!({
            "number": number, "payment_token": format!("p{number}"), "opened_at": 1_000,
            "expires_at": 2_000, "status": status, "gateway": gateway
        }))
        .expect("an attempt")
    }

    fn order(
        token: &str,
        version: i64,
        status: OrderStatus,
        total: i64,
        currency: &str,
    ) -> OrderSnapshot {
        let mut placed = cart("c-of-", 3, CartStatus::Converted);
        placed.cart_token = format!("cart-{token}");
        placed.currency = currency.into();
        placed.total = WireMoney {
            amount_minor: total,
            currency: currency.into(),
        };
        serde_json::from_value(serde_json::json!({
            "event_id": "00000000-0000-0000-0000-000000000002", "order_token": token,
            "version": version, "status": status, "cart_token": format!("cart-{token}"),
            "buyer_user_id": "u1", "placed": placed, "attempts": [],
            "history": [transition(1, OrderStatus::Pending, 500, None)],
            "created_at": 500, "updated_at": 500 + version, "last_command_id": "x"
        }))
        .expect("an order snapshot")
    }

    #[test]
    fn a_paid_order_is_paid_at_its_first_accepted_transition_to_paid() {
        let mut o = order("o1", 7, OrderStatus::Paid, 589_882, "INR");
        o.history
            .push(transition(2, OrderStatus::Paid, 9_000, Some(3001)));
        o.history
            .push(transition(3, OrderStatus::Paid, 10_000, None));
        // A second payment, refused (3002): not a second payment time.
        o.history
            .push(transition(4, OrderStatus::Paid, 11_000, Some(3002)));
        o.attempts = vec![
            attempt(1, AttemptStatus::Expired, Some("razorpay")),
            attempt(2, AttemptStatus::Paid, Some("stripe")),
        ];
        let r = rows(&[keyed(&o, 0)]);
        assert_eq!(r.paid, [ts(10_000)]);
        assert_eq!(r.placed, [ts(500)]);
        assert_eq!(r.status, ["paid"]);
        assert_eq!(r.total_minor, [589_882]);
        assert_eq!(r.total, [Some(Decimal::new(589_882, 2))]);
        assert_eq!(r.exponent, [Some(2)]);
        assert_eq!(r.attempts.number, [1, 2]);
        assert_eq!(r.attempts.outcome, ["expired", "paid"]);
        assert_eq!(
            r.attempts.gateway,
            [Some("razorpay".to_owned()), Some("stripe".to_owned())]
        );
        assert_eq!(r.attempts.method, [None, None]);
        assert_eq!(r.attempts.version, [7, 7]);
    }

    #[test]
    fn an_unpaid_order_has_no_payment_time_and_the_newest_snapshot_wins() {
        let awaiting = order("o1", 3, OrderStatus::AwaitingPayment, 100, "INR");
        let expired = order("o1", 5, OrderStatus::Expired, 100, "INR");
        let r = rows(&[keyed(&expired, 0), keyed(&awaiting, 1)]);
        assert_eq!(r.version, [5]);
        assert_eq!(r.status, ["expired"]);
        assert_eq!(r.paid, [None]);
    }

    #[test]
    fn money_is_exact_in_each_currencys_minor_unit() {
        assert_eq!(major_units(1_999, "USD"), Some((Decimal::new(1_999, 2), 2)));
        assert_eq!(major_units(1_999, "JPY"), Some((Decimal::from(1_999), 0)));
        assert_eq!(
            major_units(12_340, "KWD"),
            Some((Decimal::new(12_340, 3), 3))
        );
        assert_eq!(
            major_units(1_999, "USD").unwrap().0.to_string(),
            "19.99",
            "no floating point on the way"
        );
        // Unknown: left NULL for Postgres to refuse, never a guessed exponent.
        assert_eq!(major_units(100, "XXX"), None);
        let r = rows(&[keyed(&order("o9", 1, OrderStatus::Pending, 100, "XXX"), 0)]);
        assert_eq!((r.exponent[0], r.total[0]), (None, None));
    }

    #[test]
    fn a_paid_snapshot_without_its_transition_keeps_the_payment() {
        let o = order("o1", 4, OrderStatus::Paid, 100, "INR");
        assert_eq!(paid_at(&o), Some(504));
    }
}
