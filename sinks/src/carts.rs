//! The carts sink: `cart.snapshots` → `carts` and `cart_items`.
//!
//! A snapshot replaces its cart's row and items only when its version is at
//! least the stored one, so redelivered or reordered snapshots never move a
//! cart backwards. Each batch is written with a handful of set-based
//! statements, and readers waiting for a version are woken through
//! `NOTIFY cart_versions` when the transaction commits.

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::cart::CartSnapshot;
use schemas::topics::CART_SNAPSHOTS;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct CartsSink;

impl Sink for CartsSink {
    type Record = CartSnapshot;
    const NAME: &'static str = "carts-sink";

    fn topic(&self) -> &'static Topic<CartSnapshot> {
        &CART_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["carts", "cart_items", "cart_tax_lines", "cart_discounts"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<CartSnapshot>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, batch))
    }
}

/// Keeps only the newest snapshot of each cart in the batch.
fn newest(batch: &[Keyed<CartSnapshot>]) -> Vec<&CartSnapshot> {
    let mut by_cart: HashMap<&str, &CartSnapshot> = HashMap::new();
    for r in batch {
        let s = &r.value;
        match by_cart.get(s.cart_token.as_str()) {
            Some(prev) if prev.version > s.version => {}
            _ => {
                by_cart.insert(&s.cart_token, s);
            }
        }
    }
    by_cart.into_values().collect()
}

fn ts(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

async fn write(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[Keyed<CartSnapshot>],
) -> Result<(), sqlx::Error> {
    let snaps = newest(batch);
    let col = |f: fn(&CartSnapshot) -> String| snaps.iter().map(|s| f(s)).collect::<Vec<_>>();
    let tokens = col(|s| s.cart_token.clone());
    let versions: Vec<i64> = snaps.iter().map(|s| s.version).collect();
    let event_ids: Vec<uuid::Uuid> = snaps
        .iter()
        .map(|s| s.event_id.parse().unwrap_or_default())
        .collect();
    let statuses: Vec<&str> = snaps.iter().map(|s| s.status.as_str()).collect();
    let currencies = col(|s| s.currency.clone());
    let subtotals: Vec<i64> = snaps.iter().map(|s| s.subtotal.amount_minor).collect();
    let totals: Vec<i64> = snaps.iter().map(|s| s.total.amount_minor).collect();
    let created: Vec<_> = snaps.iter().map(|s| ts(s.created_at)).collect();
    let updated: Vec<_> = snaps.iter().map(|s| ts(s.updated_at)).collect();
    let last_cmd = col(|s| s.last_command_id.clone());
    let rej_cmd: Vec<Option<String>> = snaps
        .iter()
        .map(|s| s.rejection.as_ref().map(|r| r.command_id.clone()))
        .collect();
    let rej_code: Vec<Option<i32>> = snaps
        .iter()
        .map(|s| s.rejection.as_ref().map(|r| r.code))
        .collect();
    let owners: Vec<Option<String>> = snaps.iter().map(|s| s.owner_user_id.clone()).collect();
    let discounts: Vec<i64> = snaps
        .iter()
        .map(|s| s.discount_total.amount_minor)
        .collect();
    let taxes: Vec<i64> = snaps.iter().map(|s| s.tax_total.amount_minor).collect();
    let inclusive: Vec<bool> = snaps.iter().map(|s| s.tax_inclusive).collect();
    let buyer =
        |f: fn(&schemas::records::cart::BuyerDetails) -> Option<String>| -> Vec<Option<String>> {
            snaps.iter().map(|s| s.buyer.as_ref().and_then(f)).collect()
        };
    let (b_country, b_state, b_gstin) = (
        buyer(|b| Some(b.country.clone())),
        buyer(|b| b.state.clone()),
        buyer(|b| b.gstin.clone()),
    );
    let fx_base: Vec<Option<String>> = snaps
        .iter()
        .map(|s| s.fx.as_ref().map(|f| f.base.clone()))
        .collect();
    let fx_rate: Vec<Option<rust_decimal::Decimal>> = snaps
        .iter()
        .map(|s| s.fx.as_ref().and_then(|f| f.rate.parse().ok()))
        .collect();
    let share: Vec<Option<String>> = snaps.iter().map(|s| s.share_token.clone()).collect();
    let device: Vec<Option<String>> = snaps.iter().map(|s| s.device_id.clone()).collect();
    let analytics: Vec<serde_json::Value> = snaps
        .iter()
        .map(|s| serde_json::json!(s.analytics))
        .collect();
    let merged: Vec<Option<String>> = snaps.iter().map(|s| s.merged_into.clone()).collect();
    let orders: Vec<Option<String>> = snaps.iter().map(|s| s.order_token.clone()).collect();
    let coupon_codes: Vec<serde_json::Value> =
        snaps.iter().map(|s| serde_json::json!(s.coupons)).collect();
    let placements: Vec<i32> = snaps.iter().map(|s| s.placements).collect();
    let refused: Vec<serde_json::Value> = snaps
        .iter()
        .map(|s| {
            serde_json::Value::Array(
                s.refused_coupons
                    .iter()
                    .map(|r| serde_json::json!({"code": r.code, "reason": r.reason}))
                    .collect(),
            )
        })
        .collect();
    let fx_as_of: Vec<Option<chrono::DateTime<chrono::Utc>>> = snaps
        .iter()
        .map(|s| s.fx.as_ref().map(|f| ts(f.as_of)))
        .collect();
    let rej_msg: Vec<Option<String>> = snaps
        .iter()
        .map(|s| s.rejection.as_ref().map(|r| r.message.clone()))
        .collect();

    let changed: Vec<(String, i64)> = sqlx::query_as(
        r#"
        INSERT INTO carts (cart_token, version, event_id, status, currency, subtotal_minor, total_minor,
                           created_at, updated_at, last_command_id,
                           rejection_command_id, rejection_code, rejection_message, owner_user_id,
                           discount_total_minor, tax_total_minor, tax_inclusive, buyer_country, buyer_state, buyer_gstin,
                           fx_base, fx_rate, fx_as_of, share_token, device_id, analytics, merged_into, coupons, order_token,
                           placements, refused_coupons)
        SELECT * FROM UNNEST($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                             $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::int4[], $13::text[], $14::text[],
                             $15::int8[], $16::int8[], $17::bool[], $18::text[], $19::text[], $20::text[],
                             $21::text[], $22::numeric[], $23::timestamptz[], $24::text[], $25::text[], $26::jsonb[], $27::text[], $28::jsonb[], $29::text[],
                             $30::int4[], $31::jsonb[])
        ON CONFLICT (cart_token) DO UPDATE SET
            version = EXCLUDED.version,
            event_id = EXCLUDED.event_id,
            status = EXCLUDED.status,
            currency = EXCLUDED.currency,
            subtotal_minor = EXCLUDED.subtotal_minor,
            total_minor = EXCLUDED.total_minor,
            updated_at = EXCLUDED.updated_at,
            last_command_id = EXCLUDED.last_command_id,
            rejection_command_id = EXCLUDED.rejection_command_id,
            rejection_code = EXCLUDED.rejection_code,
            rejection_message = EXCLUDED.rejection_message,
            owner_user_id = EXCLUDED.owner_user_id,
            discount_total_minor = EXCLUDED.discount_total_minor,
            tax_total_minor = EXCLUDED.tax_total_minor,
            tax_inclusive = EXCLUDED.tax_inclusive,
            buyer_country = EXCLUDED.buyer_country,
            buyer_state = EXCLUDED.buyer_state,
            buyer_gstin = EXCLUDED.buyer_gstin,
            fx_base = EXCLUDED.fx_base,
            fx_rate = EXCLUDED.fx_rate,
            fx_as_of = EXCLUDED.fx_as_of,
            share_token = EXCLUDED.share_token,
            device_id = EXCLUDED.device_id,
            analytics = EXCLUDED.analytics,
            merged_into = EXCLUDED.merged_into,
            coupons = EXCLUDED.coupons,
            order_token = EXCLUDED.order_token,
            placements = EXCLUDED.placements,
            refused_coupons = EXCLUDED.refused_coupons,
            materialized_at = now()
        -- A snapshot of the same version is rewritten (a replay carries the
        -- same content); an older one is ignored.
        WHERE carts.version <= EXCLUDED.version
        RETURNING cart_token, version
        "#,
    )
    .bind(&tokens)
    .bind(&versions)
    .bind(&event_ids)
    .bind(&statuses)
    .bind(&currencies)
    .bind(&subtotals)
    .bind(&totals)
    .bind(&created)
    .bind(&updated)
    .bind(&last_cmd)
    .bind(&rej_cmd)
    .bind(&rej_code)
    .bind(&rej_msg)
    .bind(&owners)
    .bind(&discounts)
    .bind(&taxes)
    .bind(&inclusive)
    .bind(&b_country)
    .bind(&b_state)
    .bind(&b_gstin)
    .bind(&fx_base)
    .bind(&fx_rate)
    .bind(&fx_as_of)
    .bind(&share)
    .bind(&device)
    .bind(&analytics)
    .bind(&merged)
    .bind(&coupon_codes)
    .bind(&orders)
    .bind(&placements)
    .bind(&refused)
    .fetch_all(&mut **tx)
    .await?;
    if changed.is_empty() {
        return Ok(());
    }

    let changed_tokens: Vec<String> = changed.iter().map(|(t, _)| t.clone()).collect();
    sqlx::query("DELETE FROM cart_items WHERE cart_token = ANY($1)")
        .bind(&changed_tokens)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM cart_discounts WHERE cart_token = ANY($1)")
        .bind(&changed_tokens)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM cart_tax_lines WHERE cart_token = ANY($1)")
        .bind(&changed_tokens)
        .execute(&mut **tx)
        .await?;

    let written: Vec<&CartSnapshot> = snaps
        .iter()
        .copied()
        .filter(|s| {
            changed
                .iter()
                .any(|(t, v)| *t == s.cart_token && *v == s.version)
        })
        .collect();
    let items = Items::of(&written);
    if !items.token.is_empty() {
        sqlx::query(
            r#"
            INSERT INTO cart_items (cart_token, position, internship_id, title, quantity, currency, unit_price_minor,
                                    line_total_minor, base_unit_price_minor, line_subtotal_minor, line_discount_minor,
                                    tax_class, available, plan_id, plan_value, plan_unit, category)
            SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::int8[],
                                 $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::bool[], $14::text[], $15::int4[], $16::text[], $17::text[])
            "#,
        )
        .bind(&items.token)
        .bind(&items.position)
        .bind(&items.internship_id)
        .bind(&items.title)
        .bind(&items.quantity)
        .bind(&items.currency)
        .bind(&items.unit_price)
        .bind(&items.line_total)
        .bind(&items.base_unit_price)
        .bind(&items.line_subtotal)
        .bind(&items.line_discount)
        .bind(&items.tax_class)
        .bind(&items.available)
        .bind(&items.plan_id)
        .bind(&items.plan_value)
        .bind(&items.plan_unit)
        .bind(&items.category)
        .execute(&mut **tx)
        .await?;
    }
    let (mut d_token, mut d_pos, mut d_code, mut d_name, mut d_cur, mut d_amount) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in &written {
        for (i, d) in s.discounts.iter().enumerate() {
            d_token.push(s.cart_token.clone());
            d_pos.push(i as i32);
            d_code.push(d.code.clone());
            d_name.push(d.name.clone());
            d_cur.push(d.amount.currency.clone());
            d_amount.push(d.amount.amount_minor);
        }
    }
    if !d_token.is_empty() {
        sqlx::query(
            "INSERT INTO cart_discounts (cart_token, position, code, name, currency, amount_minor)
             SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::int8[])",
        )
        .bind(&d_token)
        .bind(&d_pos)
        .bind(&d_code)
        .bind(&d_name)
        .bind(&d_cur)
        .bind(&d_amount)
        .execute(&mut **tx)
        .await?;
    }
    let (mut t_token, mut t_pos, mut t_name, mut t_rate, mut t_cur, mut t_amount) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in &written {
        for (i, t) in s.taxes.iter().enumerate() {
            t_token.push(s.cart_token.clone());
            t_pos.push(i as i32);
            t_name.push(t.name.clone());
            t_rate.push(t.rate.parse::<rust_decimal::Decimal>().unwrap_or_default());
            t_cur.push(t.amount.currency.clone());
            t_amount.push(t.amount.amount_minor);
        }
    }
    if !t_token.is_empty() {
        sqlx::query(
            "INSERT INTO cart_tax_lines (cart_token, position, name, rate, currency, amount_minor)
             SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::numeric[], $5::text[], $6::int8[])",
        )
        .bind(&t_token)
        .bind(&t_pos)
        .bind(&t_name)
        .bind(&t_rate)
        .bind(&t_cur)
        .bind(&t_amount)
        .execute(&mut **tx)
        .await?;
    }

    crate::notify_versions(tx, &changed).await
}

/// The `cart_items` rows of a batch, column by column (for `UNNEST`).
#[derive(Default)]
struct Items {
    token: Vec<String>,
    position: Vec<i32>,
    internship_id: Vec<String>,
    title: Vec<String>,
    quantity: Vec<i32>,
    currency: Vec<String>,
    unit_price: Vec<i64>,
    line_total: Vec<i64>,
    base_unit_price: Vec<i64>,
    line_subtotal: Vec<i64>,
    line_discount: Vec<i64>,
    tax_class: Vec<String>,
    available: Vec<bool>,
    plan_id: Vec<Option<String>>,
    plan_value: Vec<Option<i32>>,
    plan_unit: Vec<Option<String>>,
    category: Vec<String>,
}

impl Items {
    fn of(snaps: &[&CartSnapshot]) -> Items {
        let mut c = Items::default();
        for s in snaps {
            for (i, l) in s.lines.iter().enumerate() {
                c.token.push(s.cart_token.clone());
                c.position.push(i as i32);
                c.internship_id.push(l.internship_id.clone());
                c.title.push(l.title.clone());
                c.quantity.push(l.quantity);
                c.currency.push(l.unit_price.currency.clone());
                c.unit_price.push(l.unit_price.amount_minor);
                c.line_total.push(l.line_total.amount_minor);
                c.base_unit_price.push(l.base_unit_price.amount_minor);
                c.line_subtotal.push(l.line_subtotal.amount_minor);
                c.line_discount.push(l.line_discount.amount_minor);
                c.tax_class.push(l.tax_class.clone());
                c.available.push(l.available);
                c.plan_id.push(l.plan.as_ref().map(|p| p.plan_id.clone()));
                c.plan_value.push(l.plan.as_ref().map(|p| p.value));
                c.plan_unit.push(l.plan.as_ref().map(|p| p.unit.clone()));
                c.category.push(l.category.clone());
            }
        }
        c
    }
}
