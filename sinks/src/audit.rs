//! The audit sink: `audit.events` → `audit_log`, one row per event,
//! appended once (ON CONFLICT on the event's derived id), never updated:
//! the table refuses UPDATE, DELETE and TRUNCATE (its migration), so it is
//! not rebuilt from its topic like a read model. What admins read through
//! `GET /api/v1/admin/audit`.

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::audit::AuditEvent;
use schemas::topics::AUDIT_EVENTS;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct AuditSink;

impl Sink for AuditSink {
    type Record = AuditEvent;
    const NAME: &'static str = "audit-sink";

    fn topic(&self) -> &'static Topic<AuditEvent> {
        &AUDIT_EVENTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_log"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<AuditEvent>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

type Ts = chrono::DateTime<chrono::Utc>;

/// A batch's rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub id: Vec<String>,
    pub at: Vec<Ts>,
    pub action: Vec<String>,
    pub kind: Vec<String>,
    pub subject: Vec<String>,
    pub version: Vec<i64>,
    pub person: Vec<Option<String>>,
    pub actor: Vec<String>,
    pub reason: Vec<String>,
    pub correlation: Vec<String>,
    pub amount: Vec<Option<i64>>,
    pub currency: Vec<Option<String>>,
}

pub fn rows(batch: &[Keyed<AuditEvent>]) -> Rows {
    let mut out = Rows::default();
    for r in batch {
        let e = &r.value;
        out.id.push(e.event_id.clone());
        out.at
            .push(chrono::DateTime::from_timestamp_millis(e.at).unwrap_or_default());
        out.action.push(e.action.clone());
        out.kind.push(e.subject_kind.clone());
        out.subject.push(e.subject_id.clone());
        out.version.push(e.subject_version);
        out.person.push(e.person.clone());
        out.actor.push(e.actor.clone());
        out.reason.push(e.reason.clone());
        out.correlation.push(e.correlation_id.clone());
        out.amount.push(e.amount.as_ref().map(|m| m.amount_minor));
        out.currency
            .push(e.amount.as_ref().map(|m| m.currency.clone()));
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (event_id, at, action, subject_kind, subject_id, subject_version,
                                person, actor, reason, correlation_id, amount_minor, currency)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
                              $11::bigint[], $12::text[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.at)
    .bind(&r.action)
    .bind(&r.kind)
    .bind(&r.subject)
    .bind(&r.version)
    .bind(&r.person)
    .bind(&r.actor)
    .bind(&r.reason)
    .bind(&r.correlation)
    .bind(&r.amount)
    .bind(&r.currency)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
