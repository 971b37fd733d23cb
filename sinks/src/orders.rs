//! The orders sink: `order.snapshots` → `orders`, `order_attempts` and
//! `order_status_history`.
//!
//! Two parts: [`rows`] turns a batch into the rows to write (pure: the
//! newest snapshot per order, column by column), and `write` runs the
//! statements. An order row moves only forwards (its version); attempts and
//! history of an order are replaced with the snapshot's (both only grow, so
//! an older snapshot never shrinks them: its order row was not updated).
//! Readers waiting for a version are woken through `NOTIFY cart_versions`
//! (`<order token>:<version>`) when the transaction commits.

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::order::OrderSnapshot;
use schemas::topics::ORDER_SNAPSHOTS;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct OrdersSink;

impl Sink for OrdersSink {
    type Record = OrderSnapshot;
    const NAME: &'static str = "orders-sink";

    fn topic(&self) -> &'static Topic<OrderSnapshot> {
        &ORDER_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orders", "order_attempts", "order_status_history"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<OrderSnapshot>],
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
    pub token: Vec<String>,
    pub version: Vec<i64>,
    pub event_id: Vec<uuid::Uuid>,
    pub status: Vec<&'static str>,
    pub cart_token: Vec<String>,
    pub buyer: Vec<Option<String>>,
    pub currency: Vec<String>,
    pub subtotal: Vec<i64>,
    pub discount: Vec<i64>,
    pub tax: Vec<i64>,
    pub total: Vec<i64>,
    pub placed: Vec<serde_json::Value>,
    pub coupons: Vec<serde_json::Value>,
    pub success_url: Vec<Option<String>>,
    pub cancel_url: Vec<Option<String>>,
    pub buyer_email: Vec<Option<String>>,
    pub late_payment: Vec<Option<&'static str>>,
    pub refund: Vec<Option<serde_json::Value>>,
    pub rejection_command: Vec<Option<String>>,
    pub rejection_code: Vec<Option<i32>>,
    pub rejection_message: Vec<Option<String>>,
    pub created: Vec<Ts>,
    pub updated: Vec<Ts>,
    pub attempts: Attempts,
    pub history: History,
}

#[derive(Debug, Default, PartialEq)]
pub struct Attempts {
    pub token: Vec<String>,
    pub number: Vec<i32>,
    pub payment_token: Vec<String>,
    pub status: Vec<&'static str>,
    pub opened: Vec<Ts>,
    pub expires: Vec<Ts>,
    pub gateway: Vec<Option<String>>,
    pub payment_ref: Vec<Option<String>>,
    pub session_id: Vec<Option<String>>,
    pub checkout_url: Vec<Option<String>>,
    pub razorpay_key_id: Vec<Option<String>>,
    pub calls: Vec<serde_json::Value>,
}

#[derive(Debug, Default, PartialEq)]
pub struct History {
    pub token: Vec<String>,
    pub seq: Vec<i32>,
    pub from: Vec<Option<&'static str>>,
    pub to: Vec<&'static str>,
    pub reason: Vec<String>,
    pub actor: Vec<String>,
    pub correlation: Vec<String>,
    pub at: Vec<Ts>,
    pub refused: Vec<Option<i32>>,
}

/// The rows of the newest snapshot of each order in `batch`.
pub fn rows(batch: &[Keyed<OrderSnapshot>]) -> Rows {
    let mut newest: HashMap<&str, &OrderSnapshot> = HashMap::new();
    for r in batch {
        let s = &r.value;
        match newest.get(s.order_token.as_str()) {
            Some(prev) if prev.version > s.version => {}
            _ => {
                newest.insert(&s.order_token, s);
            }
        }
    }
    let mut out = Rows::default();
    let mut orders: Vec<&OrderSnapshot> = newest.into_values().collect();
    orders.sort_by(|a, b| a.order_token.cmp(&b.order_token));
    for o in orders {
        let p = &o.placed;
        out.token.push(o.order_token.clone());
        out.version.push(o.version);
        // The id is a UUID the processor derived; a malformed one is a bug
        // upstream, and the nil id keeps the row writable meanwhile.
        out.event_id.push(o.event_id.parse().unwrap_or_default());
        out.status.push(o.status.as_str());
        out.cart_token.push(o.cart_token.clone());
        out.buyer.push(o.buyer_user_id.clone());
        out.currency.push(p.currency.clone());
        out.subtotal.push(p.subtotal.amount_minor);
        out.discount.push(p.discount_total.amount_minor);
        out.tax.push(p.tax_total.amount_minor);
        out.total.push(p.total.amount_minor);
        out.placed
            .push(serde_json::to_value(p).unwrap_or(serde_json::Value::Null));
        out.coupons.push(serde_json::Value::Array(
            o.coupons
                .iter()
                .map(|h| serde_json::json!({"code": h.code, "status": h.status.as_str()}))
                .collect(),
        ));
        out.success_url.push(o.success_url.clone());
        out.cancel_url.push(o.cancel_url.clone());
        out.buyer_email.push(o.buyer_email.clone());
        out.late_payment.push(o.late_payment.map(|l| l.as_str()));
        out.refund.push(o.refund.as_ref().map(|f| {
            serde_json::json!({
                "status": f.status.as_str(),
                "reason": f.reason,
                "requested_by": f.requested_by,
                "requested_at": ts(f.requested_at),
                "gateway": f.gateway,
                "refund_id": f.refund_id,
                "failure": f.failure,
            })
        }));
        out.rejection_command
            .push(o.rejection.as_ref().map(|r| r.command_id.clone()));
        out.rejection_code
            .push(o.rejection.as_ref().map(|r| r.code));
        out.rejection_message
            .push(o.rejection.as_ref().map(|r| r.message.clone()));
        out.created.push(ts(o.created_at));
        out.updated.push(ts(o.updated_at));
        for a in &o.attempts {
            let t = &mut out.attempts;
            t.token.push(o.order_token.clone());
            t.number.push(a.number);
            t.payment_token.push(a.payment_token.clone());
            t.status.push(a.status.as_str());
            t.opened.push(ts(a.opened_at));
            t.expires.push(ts(a.expires_at));
            t.gateway.push(a.gateway.clone());
            t.payment_ref.push(a.payment_ref.clone());
            t.session_id.push(a.session_id.clone());
            t.checkout_url.push(a.checkout_url.clone());
            t.razorpay_key_id.push(a.razorpay_key_id.clone());
            t.calls
                .push(serde_json::to_value(&a.calls).unwrap_or(serde_json::Value::Null));
        }
        for h in &o.history {
            let t = &mut out.history;
            t.token.push(o.order_token.clone());
            t.seq.push(h.seq);
            t.from.push(h.from_status.map(|s| s.as_str()));
            t.to.push(h.to_status.as_str());
            t.reason.push(h.reason.clone());
            t.actor.push(h.actor.clone());
            t.correlation.push(h.correlation_id.clone());
            t.at.push(ts(h.at));
            t.refused.push(h.refused_code);
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.token.is_empty() {
        return Ok(());
    }
    // Only orders whose row moved forwards get their attempts and history
    // replaced and their waiters woken.
    let changed: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO orders (order_token, version, event_id, status, cart_token, buyer_user_id, currency,
                             subtotal_minor, discount_total_minor, tax_total_minor, total_minor, placed,
                             success_url, cancel_url, rejection_command_id, rejection_code, rejection_message,
                             created_at, updated_at, coupons, buyer_email, late_payment, refund)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::jsonb[],
                              $13::text[], $14::text[], $15::text[], $16::int4[], $17::text[],
                              $18::timestamptz[], $19::timestamptz[], $20::jsonb[],
                              $21::text[], $22::text[], $23::jsonb[])
         ON CONFLICT (order_token) DO UPDATE SET
             version = EXCLUDED.version, event_id = EXCLUDED.event_id, status = EXCLUDED.status,
             buyer_user_id = EXCLUDED.buyer_user_id, success_url = EXCLUDED.success_url,
             cancel_url = EXCLUDED.cancel_url, rejection_command_id = EXCLUDED.rejection_command_id,
             rejection_code = EXCLUDED.rejection_code, rejection_message = EXCLUDED.rejection_message,
             updated_at = EXCLUDED.updated_at, coupons = EXCLUDED.coupons,
             buyer_email = EXCLUDED.buyer_email, late_payment = EXCLUDED.late_payment,
             refund = EXCLUDED.refund
         WHERE orders.version <= EXCLUDED.version
         RETURNING order_token, version",
    )
    .bind(&r.token)
    .bind(&r.version)
    .bind(&r.event_id)
    .bind(&r.status)
    .bind(&r.cart_token)
    .bind(&r.buyer)
    .bind(&r.currency)
    .bind(&r.subtotal)
    .bind(&r.discount)
    .bind(&r.tax)
    .bind(&r.total)
    .bind(&r.placed)
    .bind(&r.success_url)
    .bind(&r.cancel_url)
    .bind(&r.rejection_command)
    .bind(&r.rejection_code)
    .bind(&r.rejection_message)
    .bind(&r.created)
    .bind(&r.updated)
    .bind(&r.coupons)
    .bind(&r.buyer_email)
    .bind(&r.late_payment)
    .bind(&r.refund)
    .fetch_all(&mut **tx)
    .await?;
    let tokens: Vec<&str> = changed.iter().map(|(t, _)| t.as_str()).collect();
    let a = &r.attempts;
    sqlx::query(
        "INSERT INTO order_attempts (order_token, number, payment_token, status, opened_at, expires_at, gateway, payment_ref,
                                     session_id, checkout_url, razorpay_key_id, calls)
         SELECT t, n, p, s, o, e, g, r, si, cu, rk, ca
         FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::text[], $8::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[])
             AS a(t, n, p, s, o, e, g, r, si, cu, rk, ca)
         WHERE a.t = ANY($9::text[])
         ON CONFLICT (order_token, number) DO UPDATE SET
             status = EXCLUDED.status, gateway = EXCLUDED.gateway, payment_ref = EXCLUDED.payment_ref,
             session_id = EXCLUDED.session_id, checkout_url = EXCLUDED.checkout_url,
             razorpay_key_id = EXCLUDED.razorpay_key_id, calls = EXCLUDED.calls",
    )
    .bind(&a.token)
    .bind(&a.number)
    .bind(&a.payment_token)
    .bind(&a.status)
    .bind(&a.opened)
    .bind(&a.expires)
    .bind(&a.gateway)
    .bind(&a.payment_ref)
    .bind(&tokens)
    .bind(&a.session_id)
    .bind(&a.checkout_url)
    .bind(&a.razorpay_key_id)
    .bind(&a.calls)
    .execute(&mut **tx)
    .await?;
    let h = &r.history;
    sqlx::query(
        "INSERT INTO order_status_history (order_token, seq, from_status, to_status, reason, actor, correlation_id, at, refused_code)
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::timestamptz[], $9::int4[]) AS h(t, s, f, o, r, a, c, at, x)
         WHERE h.t = ANY($10::text[])
         ON CONFLICT (order_token, seq) DO NOTHING",
    )
    .bind(&h.token)
    .bind(&h.seq)
    .bind(&h.from)
    .bind(&h.to)
    .bind(&h.reason)
    .bind(&h.actor)
    .bind(&h.correlation)
    .bind(&h.at)
    .bind(&h.refused)
    .bind(&tokens)
    .execute(&mut **tx)
    .await?;
    crate::notify_versions(tx, &changed).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::order::OrderStatus;

    #[test]
    fn only_the_newest_snapshot_of_each_order_becomes_rows() {
        let snap: OrderSnapshot = serde_json::from_value(serde_json::json!({
            "event_id": "00000000-0000-0000-0000-000000000001", "order_token": "o1", "version": 3,
            "status": "AWAITING_PAYMENT", "cart_token": "c1", "buyer_user_id": "u",
            "placed": {"event_id": "e", "cart_token": "c1", "version": 2, "status": "CONVERTED", "currency": "INR",
                "lines": [], "subtotal": {"amount_minor": 100, "currency": "INR"}, "total": {"amount_minor": 118, "currency": "INR"},
                "created_at": 1, "updated_at": 1, "last_command_id": "x", "rejection": null, "owner_user_id": "u",
                "discount_total": {"amount_minor": 0, "currency": "INR"}, "tax_total": {"amount_minor": 18, "currency": "INR"},
                "taxes": [], "tax_inclusive": false, "buyer": null, "fx": null, "share_token": null, "device_id": null,
                "analytics": {}, "merged_into": null, "coupons": [], "discounts": []},
            "attempts": [{"number": 1, "payment_token": "p1", "opened_at": 5, "expires_at": 10, "status": "OPEN",
                "gateway": null, "payment_ref": null}],
            "history": [{"seq": 1, "from_status": null, "to_status": "PENDING", "reason": "placed", "actor": "u",
                "correlation_id": "c", "at": 5, "refused_code": null}],
            "rejection": null, "success_url": null, "cancel_url": null, "created_at": 5, "updated_at": 5,
            "last_command_id": "x"
        }))
        .unwrap();
        let older = OrderSnapshot {
            version: 1,
            status: OrderStatus::Pending,
            ..snap.clone()
        };
        let keyed = |s: &OrderSnapshot, offset| Keyed {
            key: s.order_token.clone(),
            value: s.clone(),
            partition: 0,
            offset,
            correlation_id: "c".into(),
        };
        let r = rows(&[keyed(&snap, 3), keyed(&older, 4)]);
        assert_eq!(r.token, ["o1"]);
        assert_eq!(r.version, [3]);
        assert_eq!(r.status, ["awaiting_payment"]);
        assert_eq!((r.subtotal[0], r.tax[0], r.total[0]), (100, 18, 118));
        assert_eq!(r.placed[0]["cart_token"], "c1");
        assert_eq!(r.attempts.payment_token, ["p1"]);
        assert_eq!(r.history.to, ["pending"]);
        assert_eq!(r.history.from, [None]);
    }
}
