//! The enrollments sink: `enrollment.snapshots` → `enrollment_books` and
//! `enrollments` (with each enrollment's email, a block's seats assigned
//! and an assigned seat's block).
//!
//! [`rows`] keeps the newest book of each buyer in a batch (pure); `write`
//! moves a book's version forwards and replaces its enrollments only then,
//! so a redelivered older book changes nothing. On commit it wakes the
//! readers waiting for an order's enrollments ([`platform::wakeups::enrolled_key`]).

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::enrollment::EnrollmentBook;
use schemas::topics::ENROLLMENT_SNAPSHOTS;
use schemas::Topic;

use crate::runner::{Keyed, Sink};
use platform::wakeups::enrolled_key;

pub struct EnrollmentsSink;

impl Sink for EnrollmentsSink {
    type Record = EnrollmentBook;
    const NAME: &'static str = "enrollments-sink";

    fn topic(&self) -> &'static Topic<EnrollmentBook> {
        &ENROLLMENT_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["enrollment_books", "enrollments"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<EnrollmentBook>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

type Ts = chrono::DateTime<chrono::Utc>;

/// A batch's rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub key: Vec<String>,
    pub user: Vec<Option<String>>,
    pub version: Vec<i64>,
    pub e_id: Vec<uuid::Uuid>,
    pub e_key: Vec<String>,
    pub e_user: Vec<Option<String>>,
    pub e_order: Vec<String>,
    pub e_internship: Vec<String>,
    pub e_title: Vec<String>,
    pub e_seats: Vec<i32>,
    pub e_status: Vec<&'static str>,
    pub e_access: Vec<bool>,
    pub e_progress: Vec<i32>,
    pub e_certificate: Vec<bool>,
    pub e_at: Vec<Ts>,
    pub e_email: Vec<Option<String>>,
    pub e_seats_assigned: Vec<i32>,
    pub e_seat_of: Vec<Option<uuid::Uuid>>,
}

/// The rows of the newest book of each buyer in `batch`.
pub fn rows(batch: &[Keyed<EnrollmentBook>]) -> Rows {
    let mut newest: HashMap<&str, &EnrollmentBook> = HashMap::new();
    for r in batch {
        match newest.get(r.value.buyer_key.as_str()) {
            Some(prev) if prev.version > r.value.version => {}
            _ => {
                newest.insert(&r.value.buyer_key, &r.value);
            }
        }
    }
    let mut books: Vec<&EnrollmentBook> = newest.into_values().collect();
    books.sort_by(|a, b| a.buyer_key.cmp(&b.buyer_key));
    let mut out = Rows::default();
    for b in books {
        out.key.push(b.buyer_key.clone());
        out.user.push(b.buyer_user_id.clone());
        out.version.push(b.version);
        for e in &b.enrollments {
            // The id is a UUID the processor derived; the nil id keeps a
            // malformed one (a bug upstream) writable meanwhile.
            out.e_id.push(e.enrollment_id.parse().unwrap_or_default());
            out.e_key.push(b.buyer_key.clone());
            out.e_user.push(b.buyer_user_id.clone());
            out.e_order.push(e.order_token.clone());
            out.e_internship.push(e.internship_id.clone());
            out.e_title.push(e.title.clone());
            out.e_seats.push(e.seats);
            out.e_status.push(e.status.as_str());
            out.e_access.push(e.access_granted);
            out.e_progress.push(e.progress_percent);
            out.e_certificate.push(e.certificate_eligible);
            out.e_at
                .push(chrono::DateTime::from_timestamp_millis(e.enrolled_at).unwrap_or_default());
            out.e_email.push(e.email.clone());
            out.e_seats_assigned.push(e.seats_assigned);
            // A block's id the processor derived (a UUID, as above).
            out.e_seat_of
                .push(e.seat_of.as_deref().and_then(|s| s.parse().ok()));
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.key.is_empty() {
        return Ok(());
    }
    let changed: Vec<String> = sqlx::query_scalar(
        "INSERT INTO enrollment_books (buyer_key, buyer_user_id, version)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
         ON CONFLICT (buyer_key) DO UPDATE SET version = EXCLUDED.version
         WHERE enrollment_books.version <= EXCLUDED.version
         RETURNING buyer_key",
    )
    .bind(&r.key)
    .bind(&r.user)
    .bind(&r.version)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM enrollments WHERE buyer_key = ANY($1::text[])")
        .bind(&changed)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO enrollments (enrollment_id, buyer_key, buyer_user_id, order_token, internship_id, title,
                                  seats, status, access_granted, progress_percent, certificate_eligible, enrolled_at,
                                  email, seats_assigned, seat_of)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::int4[], $8::text[], $9::bool[], $10::int4[], $11::bool[], $12::timestamptz[],
                              $14::text[], $15::int4[], $16::uuid[])
             AS e(i, k, u, o, n, t, s, st, a, p, c, at, em, sa, so)
         WHERE e.k = ANY($13::text[])",
    )
    .bind(&r.e_id)
    .bind(&r.e_key)
    .bind(&r.e_user)
    .bind(&r.e_order)
    .bind(&r.e_internship)
    .bind(&r.e_title)
    .bind(&r.e_seats)
    .bind(&r.e_status)
    .bind(&r.e_access)
    .bind(&r.e_progress)
    .bind(&r.e_certificate)
    .bind(&r.e_at)
    .bind(&changed)
    .bind(&r.e_email)
    .bind(&r.e_seats_assigned)
    .bind(&r.e_seat_of)
    .execute(&mut **tx)
    .await?;
    crate::notify_versions(tx, &enrolled_orders(&r, &changed)).await?;
    Ok(())
}

/// One wake-up per order with enrollments in the books that changed.
fn enrolled_orders(r: &Rows, changed: &[String]) -> Vec<(String, i64)> {
    let mut orders: Vec<(String, i64)> = r
        .e_order
        .iter()
        .zip(&r.e_key)
        .filter(|(_, key)| changed.contains(key))
        .map(|(order, _)| (enrolled_key(order), 1))
        .collect();
    orders.sort();
    orders.dedup();
    orders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_changed_books_orders_wake_their_readers_once_each() {
        let rows = Rows {
            e_order: ["o1", "o1", "o2", "o3"].map(String::from).to_vec(),
            e_key: ["b1", "b1", "b1", "b2"].map(String::from).to_vec(),
            ..Rows::default()
        };
        assert_eq!(
            enrolled_orders(&rows, &["b1".to_owned()]),
            vec![(enrolled_key("o1"), 1), (enrolled_key("o2"), 1)],
            "b2's book did not move (an older redelivery): its order is not announced"
        );
        assert!(enrolled_orders(&rows, &[]).is_empty());
        assert_eq!(enrolled_key("o1"), "enrolled:o1");
    }
}
