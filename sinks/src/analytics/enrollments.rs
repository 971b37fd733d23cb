//! `enrollment.snapshots` → `analytics_enrollments`: one row per
//! enrollment (or block of seats), keyed by its id (derived by the
//! enrollment processor from the order and internship, so the same
//! enrollment always has the same id), from the newest book of each buyer,
//! moving only forwards (by the book's version). An order counts as
//! enrolled once it has any.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::enrollment::EnrollmentBook;
use schemas::topics::ENROLLMENT_SNAPSHOTS;
use schemas::Topic;

use super::{newest, ts, Ts};
use crate::runner::{Keyed, Sink};

pub struct AnalyticsEnrollmentsSink;

impl Sink for AnalyticsEnrollmentsSink {
    type Record = EnrollmentBook;
    const NAME: &'static str = "analytics-enrollments-sink";

    fn topic(&self) -> &'static Topic<EnrollmentBook> {
        &ENROLLMENT_SNAPSHOTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_enrollments"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<EnrollmentBook>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

/// A batch's enrollment rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub id: Vec<String>,
    pub order: Vec<String>,
    pub buyer: Vec<String>,
    pub internship: Vec<String>,
    pub seats: Vec<i32>,
    pub status: Vec<&'static str>,
    pub at: Vec<Option<Ts>>,
    pub version: Vec<i64>,
}

/// The rows of every enrollment in the newest book of each buyer in `batch`.
pub fn rows(batch: &[Keyed<EnrollmentBook>]) -> Rows {
    let mut out = Rows::default();
    for b in newest(batch, |b| &b.buyer_key, |b| b.version) {
        for e in &b.enrollments {
            out.id.push(e.enrollment_id.clone());
            out.order.push(e.order_token.clone());
            out.buyer.push(b.buyer_key.clone());
            out.internship.push(e.internship_id.clone());
            out.seats.push(e.seats);
            out.status.push(e.status.as_str());
            out.at.push(ts(e.enrolled_at));
            out.version.push(b.version);
        }
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO analytics_enrollments (enrollment_id, order_token, buyer_key, internship_id, seats,
                                            status, enrolled_at, version)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],
                              $6::text[], $7::timestamptz[], $8::int8[])
         ON CONFLICT (enrollment_id) DO UPDATE SET
             seats = EXCLUDED.seats, status = EXCLUDED.status, version = EXCLUDED.version
         WHERE analytics_enrollments.version <= EXCLUDED.version",
    )
    .bind(&r.id)
    .bind(&r.order)
    .bind(&r.buyer)
    .bind(&r.internship)
    .bind(&r.seats)
    .bind(&r.status)
    .bind(&r.at)
    .bind(&r.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::keyed;
    use schemas::records::enrollment::{Enrollment, EnrollmentStatus};

    // Fixtures from JSON: fields added to the records later (optional,
    // defaulted) leave them as they are.

    fn enrollment(id: &str, order: &str, status: EnrollmentStatus) -> Enrollment {
        serde_json::from_value(serde_json::json!({
            "enrollment_id": id, "order_token": order, "internship_id": "design",
            "title": "design", "seats": 1, "status": status, "access_granted": true,
            "progress_percent": 0, "certificate_eligible": false, "enrolled_at": 2_000
        }))
        .expect("an enrollment")
    }

    fn book(version: i64, enrollments: Vec<Enrollment>) -> EnrollmentBook {
        serde_json::from_value(serde_json::json!({
            "buyer_key": "u1", "version": version, "buyer_user_id": "u1", "orders": [],
            "enrollments": enrollments
        }))
        .expect("an enrollment book")
    }

    #[test]
    fn the_newest_book_of_a_buyer_gives_one_row_per_enrollment() {
        let older = book(2, vec![enrollment("e1", "o1", EnrollmentStatus::Active)]);
        let newer = book(
            4,
            vec![
                enrollment("e1", "o1", EnrollmentStatus::Revoked),
                enrollment("e2", "o2", EnrollmentStatus::Active),
            ],
        );
        let r = rows(&[keyed(&newer, 0), keyed(&older, 1)]);
        assert_eq!(r.id, ["e1", "e2"]);
        assert_eq!(r.order, ["o1", "o2"]);
        assert_eq!(r.status, ["revoked", "active"]);
        assert_eq!(r.version, [4, 4]);
        assert_eq!(r.at, [ts(2_000), ts(2_000)]);
    }
}
