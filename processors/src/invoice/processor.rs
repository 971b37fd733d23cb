//! The adapter between the invoice rules and the runner: the ledger is the
//! state; each document a request issues goes to the changelog (under its
//! number: the ledger grows by one small record per document, however
//! many it holds) and to `invoice.documents`, in the transaction that
//! consumes the request. A number is therefore issued exactly once: a
//! batch that fails is aborted with its documents and numbered again from
//! the same ledger, and a request seen twice (same id, or an order that
//! has its document) issues nothing.

use std::borrow::Cow;
use std::collections::HashMap;

use futures::future::BoxFuture;

use rules::invoice::{self, InvoicePolicy, Ledger};
use schemas::records::invoices::{InvoiceDocument, InvoiceRequest, LEDGER_KEY};
use schemas::records::runtime::AppliedInput;
use schemas::topics::{INVOICE_APPLIED, INVOICE_CHANGELOG, INVOICE_DOCUMENTS, INVOICE_REQUESTS};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, Durable, Emit, Encoded, Input, Outcome, Processor};

pub struct InvoiceProcessor {
    policy: InvoicePolicy,
}

impl InvoiceProcessor {
    pub fn new(policy: InvoicePolicy) -> InvoiceProcessor {
        InvoiceProcessor { policy }
    }
}

pub struct InvoiceOutput(pub InvoiceDocument);

impl Emit for InvoiceOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        Box::pin(encode_for(
            codec,
            &INVOICE_DOCUMENTS,
            &self.0.number,
            &self.0,
        ))
    }
}

/// The ledger writes only the documents its last request issued, each
/// under its number, and is folded back from all of them.
impl Durable for Ledger {
    type Record = InvoiceDocument;

    fn applied_offset(&self) -> i64 {
        self.version()
    }

    fn records(&self, _key: &str) -> Vec<(String, Cow<'_, InvoiceDocument>)> {
        self.changed()
            .iter()
            .map(|d| (d.number.clone(), Cow::Borrowed(d)))
            .collect()
    }

    fn restore(
        states: &mut HashMap<String, Ledger>,
        _key: String,
        record: Option<InvoiceDocument>,
    ) {
        // Never written: a document is never withdrawn.
        let Some(document) = record else { return };
        states
            .entry(LEDGER_KEY.to_owned())
            .or_default()
            .restore(&document);
    }
}

impl Processor for InvoiceProcessor {
    type Input = InvoiceRequest;
    type State = Ledger;
    type Output = InvoiceOutput;

    const NAME: &'static str = "invoice-processor";

    fn input_topic(&self) -> &'static Topic<InvoiceRequest> {
        &INVOICE_REQUESTS
    }

    fn changelog_topic(&self) -> &'static Topic<InvoiceDocument> {
        &INVOICE_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &INVOICE_APPLIED
    }

    fn input_id(input: &InvoiceRequest) -> &str {
        &input.request_id
    }

    fn apply(
        &self,
        state: Option<&Ledger>,
        input: &Input<InvoiceRequest>,
    ) -> Outcome<Ledger, InvoiceOutput> {
        // One ledger numbers everything: a request under another key would
        // start a second series at 1 (the order processor never writes one).
        if input.key != LEDGER_KEY {
            tracing::error!(key = %input.key, request = %input.value.request_id, "invoice request not under the ledger key: not numbered");
            return Outcome::nothing();
        }
        match invoice::issue(state, &input.value, input.offset, &self.policy) {
            Some(next) => {
                for d in next.changed() {
                    tracing::info!(number = %d.number, kind = d.kind.as_str(), order = %platform::telemetry::token_ref(&d.order_token), "document issued");
                }
                let outputs = next.changed().iter().cloned().map(InvoiceOutput).collect();
                Outcome {
                    state: Some(next),
                    outputs,
                }
            }
            None => Outcome::nothing(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::invoices::DocumentKind;
    use schemas::records::WireMoney;

    fn policy() -> InvoicePolicy {
        InvoicePolicy::from_settings(|name| match name {
            "INVOICE_SUPPLIER_NAME" => Some("S".into()),
            "INVOICE_SUPPLIER_GSTIN" => Some("29ABCDE1234F1Z5".into()),
            "INVOICE_SUPPLIER_ADDRESS" => Some("A".into()),
            _ => None,
        })
        .expect("a policy")
    }

    fn request(i: i64, key: &str) -> Input<InvoiceRequest> {
        let inr = |minor| WireMoney {
            amount_minor: minor,
            currency: "INR".into(),
        };
        Input {
            key: key.into(),
            value: InvoiceRequest {
                request_id: format!("r-{i}"),
                order_token: format!("order-{i:06}"),
                kind: DocumentKind::TaxInvoice,
                at: 1_796_637_600_000 + i,
                buyer_user_id: None,
                buyer_gstin: None,
                buyer_country: "IN".into(),
                buyer_state: None,
                currency: "INR".into(),
                tax_inclusive: false,
                lines: vec![],
                taxes: vec![],
                subtotal: inr(100),
                discount_total: inr(0),
                tax_total: inr(0),
                total: inr(100),
                fx: None,
                gateway: None,
                payment_ref: None,
                refund_id: None,
                reason: None,
            },
            partition: 0,
            offset: i,
            correlation_id: "corr".into(),
        }
    }

    /// The ledger's cost per document stays one small record, and its
    /// state is restored from those records to number on from the same.
    #[test]
    fn each_document_is_one_changelog_record_and_a_restore_numbers_on() {
        let p = InvoiceProcessor::new(policy());
        let mut state: Option<Ledger> = None;
        let mut changelog = Vec::new();
        for i in 0..2_000 {
            let outcome = p.apply(state.as_ref(), &request(i, LEDGER_KEY));
            let next = outcome.state.expect("a new order is invoiced");
            let records = next.records(LEDGER_KEY);
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].0, format!("INV/26-27/{:06}", i + 1));
            assert!(matches!(&outcome.outputs[..], [InvoiceOutput(d)] if d == &*records[0].1));
            changelog.push(records[0].1.clone().into_owned());
            state = Some(next);
        }
        let mut restored = HashMap::new();
        for d in changelog {
            <Ledger as Durable>::restore(&mut restored, d.number.clone(), Some(d));
        }
        let restored = restored.remove(LEDGER_KEY).expect("the ledger");
        let next = p.apply(Some(&restored), &request(5_000, LEDGER_KEY));
        assert!(matches!(&next.outputs[..], [InvoiceOutput(d)] if d.number == "INV/26-27/002001"));
        // A request under another key would start a second series.
        let stray = p.apply(None, &request(5_001, "elsewhere"));
        assert!(stray.state.is_none() && stray.outputs.is_empty());
    }
}
