//! The invoices sink: `invoice.documents` → `invoices`, one row per tax
//! invoice or credit note, inserted once (a document is never changed),
//! so a redelivery or a rebuild writes the same rows. The buyer reads
//! them, and downloads each as PDF, from their order
//! (`GET /api/v1/orders/{token}/invoices`).

use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};

use schemas::records::invoices::InvoiceDocument;
use schemas::topics::INVOICE_DOCUMENTS;
use schemas::Topic;

use crate::runner::{Keyed, Sink};

pub struct InvoicesSink;

impl Sink for InvoicesSink {
    type Record = InvoiceDocument;
    const NAME: &'static str = "invoices-sink";

    fn topic(&self) -> &'static Topic<InvoiceDocument> {
        &INVOICE_DOCUMENTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["invoices"]
    }

    fn write<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        batch: &'a [Keyed<InvoiceDocument>],
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(write(tx, rows(batch)))
    }
}

type Ts = chrono::DateTime<chrono::Utc>;

/// A batch's rows, column by column (for `UNNEST`).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    pub number: Vec<String>,
    pub kind: Vec<String>,
    pub series: Vec<String>,
    pub sequence: Vec<i64>,
    pub year: Vec<String>,
    pub order: Vec<String>,
    pub issued_at: Vec<Ts>,
    pub against: Vec<Option<String>>,
    pub currency: Vec<String>,
    pub total: Vec<i64>,
    pub tax: Vec<i64>,
    pub document: Vec<serde_json::Value>,
}

pub fn rows(batch: &[Keyed<InvoiceDocument>]) -> Rows {
    let mut out = Rows::default();
    for r in batch {
        let d = &r.value;
        out.number.push(d.number.clone());
        out.kind.push(d.kind.as_str().to_owned());
        out.series.push(d.series.clone());
        out.sequence.push(d.sequence);
        out.year.push(d.financial_year.clone());
        out.order.push(d.order_token.clone());
        out.issued_at
            .push(chrono::DateTime::from_timestamp_millis(d.issued_at).unwrap_or_default());
        out.against.push(d.against_number.clone());
        out.currency.push(d.currency.clone());
        out.total.push(d.total.amount_minor);
        out.tax.push(d.tax_total.amount_minor);
        out.document
            .push(serde_json::to_value(d).unwrap_or(serde_json::Value::Null));
    }
    out
}

async fn write(tx: &mut Transaction<'static, Postgres>, r: Rows) -> Result<(), sqlx::Error> {
    if r.number.is_empty() {
        return Ok(());
    }
    // Only the number's own conflict is a redelivery; any other conflict
    // (a second invoice for an order) is an error, not a row to skip.
    sqlx::query(
        "INSERT INTO invoices (number, kind, series, sequence, financial_year, order_token, issued_at,
                               against_number, currency, total_minor, tax_minor, document)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::text[], $9::text[], $10::int8[], $11::int8[],
                              $12::jsonb[])
         ON CONFLICT (number) DO NOTHING",
    )
    .bind(&r.number)
    .bind(&r.kind)
    .bind(&r.series)
    .bind(&r.sequence)
    .bind(&r.year)
    .bind(&r.order)
    .bind(&r.issued_at)
    .bind(&r.against)
    .bind(&r.currency)
    .bind(&r.total)
    .bind(&r.tax)
    .bind(&r.document)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
