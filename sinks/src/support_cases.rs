//! The support-cases sink: `support.cases` → `support_cases`, one row per
//! case, inserted once (a case is never changed by the pipeline), so a
//! redelivery or a rebuild writes the same rows. What people read through
//! `GET /api/v1/admin/support-cases`.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::support::SupportCase;
use schemas::topics::SUPPORT_CASES;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct SupportCasesSink;

impl Sink for SupportCasesSink {
    type Record = SupportCase;
    const NAME: &'static str = "support-cases-sink";

    fn topic(&self) -> &'static Topic<SupportCase> {
        &SUPPORT_CASES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["support_cases"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<SupportCase>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

type Ts = chrono::DateTime<chrono::Utc>;

/// A batch's rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub id: Vec<uuid::Uuid>,
    pub order: Vec<String>,
    pub buyer_key: Vec<String>,
    pub user: Vec<Option<String>>,
    pub email: Vec<Option<String>>,
    pub kind: Vec<String>,
    pub code: Vec<String>,
    pub reason: Vec<String>,
    pub internship: Vec<Option<String>>,
    pub at: Vec<Ts>,
    pub cause: Vec<String>,
}

/// The rows of `batch`. The case id is a UUID the processor derived;
/// should one not be (a bug upstream), a UUID derived from its text keeps
/// the case writable and distinct rather than dropping it.
pub fn rows(batch: &[Keyed<SupportCase>]) -> Rows {
    let mut out = Rows::default();
    for r in batch {
        let c = &r.value;
        out.id.push(
            c.case_id
                .parse()
                .unwrap_or_else(|_| schemas::ids::derived("support-case-id", &c.case_id, 0)),
        );
        out.order.push(c.order_token.clone());
        out.buyer_key.push(c.buyer_key.clone());
        out.user.push(c.buyer_user_id.clone());
        out.email.push(c.buyer_email.clone());
        out.kind.push(c.kind.clone());
        out.code.push(c.code.clone());
        out.reason.push(c.reason.clone());
        out.internship.push(c.internship_id.clone());
        out.at
            .push(chrono::DateTime::from_timestamp_millis(c.opened_at).unwrap_or_default());
        out.cause.push(c.cause_event_id.clone());
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO support_cases (case_id, order_token, buyer_key, buyer_user_id, buyer_email, kind,
                                    code, reason, internship_id, opened_at, cause_event_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[])
         ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.order)
    .bind(&r.buyer_key)
    .bind(&r.user)
    .bind(&r.email)
    .bind(&r.kind)
    .bind(&r.code)
    .bind(&r.reason)
    .bind(&r.internship)
    .bind(&r.at)
    .bind(&r.cause)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_one_row_with_its_derived_id() {
        let id = schemas::ids::derived("support-case", "e", 0);
        let case = SupportCase {
            case_id: id.to_string(),
            order_token: "o".into(),
            buyer_key: "u".into(),
            buyer_user_id: Some("u".into()),
            buyer_email: None,
            kind: "enrollment_failed".into(),
            code: "internship_closed".into(),
            reason: "closed".into(),
            internship_id: Some("i".into()),
            opened_at: 2_000,
            cause_event_id: "e".into(),
        };
        let keyed = Keyed {
            key: "o".into(),
            value: case,
            partition: 0,
            offset: 3,
            correlation_id: "test".into(),
        };
        let r = rows(&[keyed]);
        assert_eq!(r.id, [id]);
        assert_eq!(r.order, ["o"]);
        assert_eq!(r.code, ["internship_closed"]);
        assert_eq!(r.at[0].timestamp_millis(), 2_000);
    }
}
