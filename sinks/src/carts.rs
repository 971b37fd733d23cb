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
use crate::CART_VERSIONS_CHANNEL;

pub struct CartsSink;

impl Sink for CartsSink {
    type Record = CartSnapshot;
    const NAME: &'static str = "carts-sink";

    fn topic(&self) -> &'static Topic<CartSnapshot> {
        &CART_SNAPSHOTS
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
    let rej_msg: Vec<Option<String>> = snaps
        .iter()
        .map(|s| s.rejection.as_ref().map(|r| r.message.clone()))
        .collect();

    let changed: Vec<(String, i64)> = sqlx::query_as(
        r#"
        INSERT INTO carts (cart_token, version, event_id, status, currency, subtotal_minor, total_minor,
                           created_at, updated_at, last_command_id,
                           rejection_command_id, rejection_code, rejection_message, owner_user_id)
        SELECT * FROM UNNEST($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                             $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::int4[], $13::text[], $14::text[])
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

    let (
        mut it_token,
        mut it_pos,
        mut it_id,
        mut it_title,
        mut it_qty,
        mut it_cur,
        mut it_unit,
        mut it_total,
    ) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for s in snaps.iter().filter(|s| {
        changed
            .iter()
            .any(|(t, v)| *t == s.cart_token && *v == s.version)
    }) {
        for (i, l) in s.lines.iter().enumerate() {
            it_token.push(s.cart_token.clone());
            it_pos.push(i as i32);
            it_id.push(l.internship_id.clone());
            it_title.push(l.title.clone());
            it_qty.push(l.quantity);
            it_cur.push(l.unit_price.currency.clone());
            it_unit.push(l.unit_price.amount_minor);
            it_total.push(l.line_total.amount_minor);
        }
    }
    if !it_token.is_empty() {
        sqlx::query(
            r#"
            INSERT INTO cart_items (cart_token, position, internship_id, title, quantity, currency, unit_price_minor, line_total_minor)
            SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::int8[], $8::int8[])
            "#,
        )
        .bind(&it_token)
        .bind(&it_pos)
        .bind(&it_id)
        .bind(&it_title)
        .bind(&it_qty)
        .bind(&it_cur)
        .bind(&it_unit)
        .bind(&it_total)
        .execute(&mut **tx)
        .await?;
    }

    let payloads: Vec<String> = changed.iter().map(|(t, v)| format!("{t}:{v}")).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(CART_VERSIONS_CHANNEL)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
