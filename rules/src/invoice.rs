//! GST paperwork: a tax invoice for every paid order, a credit note for
//! every refunded one, numbered from consecutive series.
//!
//! Rules, all in this one place:
//! - an order asks for its invoice when it becomes PAID and for its credit
//!   note when it becomes REFUNDED ([`requests`]), with the order as it was
//!   charged, under ids derived from the order (it asks once per kind);
//! - one [`Ledger`] numbers everything: a series per kind and financial
//!   year (`INV/26-27`, `CN/26-27`; April to March, India time), each
//!   1, 2, 3… with no gap and no repeat; an order gets one invoice and at
//!   most one credit note, whatever arrives twice;
//! - a document is dated when it is issued: the order's paid (refunded)
//!   time, never earlier than the document before it, so numbers and dates
//!   rise together;
//! - a credit note reverses its invoice in full and names it; one for an
//!   order that has no invoice (paid before invoicing began) issues the
//!   invoice first;
//! - the taxes are those the order was charged, each spread over the taxed
//!   lines in proportion to their amounts, rounded so the lines add up to
//!   the order's tax exactly (exempt lines carry none);
//! - the place of supply is the buyer's state (the seller's when none was
//!   given, as pricing estimates it), or outside India for an export.

pub mod words;

use schemas::ids;
use schemas::records::invoices::{
    DocumentBuyer, DocumentKind, DocumentLine, FxNote, InvoiceDocument, InvoiceRequest,
    RequestLine, Supplier, Supply, TaxAmount,
};
use schemas::records::order::{OrderSnapshot, OrderStatus};
use schemas::records::WireMoney;

use crate::basket::TaxClass;
use crate::places;
use crate::pricing;
use crate::InvalidSetting;

/// The accounting code (SAC) of the service, when not configured:
/// commercial training and coaching services.
pub const DEFAULT_SAC: &str = "999293";

/// Who issues the documents: configured once per deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePolicy {
    pub supplier: Supplier,
    pub sac: String,
}

impl InvoicePolicy {
    /// The seller from the deployment's settings: `INVOICE_SUPPLIER_NAME`,
    /// `INVOICE_SUPPLIER_GSTIN` and `INVOICE_SUPPLIER_ADDRESS` (required:
    /// an invoice without its issuer's GSTIN is not one), `INVOICE_SAC`
    /// ([`DEFAULT_SAC`]) and the seller's state, `PRICING_SELLER_STATE`
    /// (`KA`, as pricing reads it), whose GST code must open the GSTIN.
    pub fn from_settings(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<InvoicePolicy, InvalidSetting> {
        let required = |name: &str| {
            var(name).ok_or_else(|| {
                InvalidSetting(format!(
                    "{name} is not set: invoices name their supplier (see docs/invoices.md)"
                ))
            })
        };
        let name = required("INVOICE_SUPPLIER_NAME")?;
        let gstin = required("INVOICE_SUPPLIER_GSTIN")?.to_ascii_uppercase();
        let address = required("INVOICE_SUPPLIER_ADDRESS")?;
        let state = var("PRICING_SELLER_STATE").unwrap_or_else(|| "KA".into());
        let place = places::find(&state).ok_or_else(|| {
            InvalidSetting(format!("PRICING_SELLER_STATE={state}: not an Indian state"))
        })?;
        check_gstin(&gstin).map_err(|e| InvalidSetting(format!("INVOICE_SUPPLIER_GSTIN: {e}")))?;
        if !gstin.starts_with(place.code) {
            return Err(InvalidSetting(format!(
                "INVOICE_SUPPLIER_GSTIN starts with {}, but the seller is in {} (state code {})",
                &gstin[..2],
                place.name,
                place.code
            )));
        }
        Ok(InvoicePolicy {
            supplier: Supplier {
                name,
                gstin,
                address,
                state: place.name.to_owned(),
                state_code: place.code.to_owned(),
            },
            sac: var("INVOICE_SAC").unwrap_or_else(|| DEFAULT_SAC.into()),
        })
    }
}

/// Whether `gstin` has a GSTIN's shape: state code, PAN (five letters,
/// four digits, a letter), entity number, `Z`, check character.
pub fn check_gstin(gstin: &str) -> Result<(), String> {
    let b = gstin.as_bytes();
    let ok = b.len() == 15
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..7].iter().all(u8::is_ascii_uppercase)
        && b[7..11].iter().all(u8::is_ascii_digit)
        && b[11].is_ascii_uppercase()
        && (b[12].is_ascii_uppercase() || (b'1'..=b'9').contains(&b[12]))
        && b[13] == b'Z'
        && b[14].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{gstin:?} is not a GSTIN (15 characters: 29ABCDE1234F1Z5)"
        ))
    }
}

/// India's offset from UTC: a financial year turns at midnight there.
const IST_OFFSET_MS: i64 = (5 * 60 + 30) * 60 * 1000;

/// The financial year `at_ms` falls in, by the year it starts: April to
/// March, India time.
pub fn financial_year(at_ms: i64) -> i32 {
    use chrono::Datelike;
    let date = chrono::DateTime::from_timestamp_millis(at_ms.saturating_add(IST_OFFSET_MS))
        .unwrap_or_default()
        .date_naive();
    if date.month() >= 4 {
        date.year()
    } else {
        date.year() - 1
    }
}

/// `2026-27`.
pub fn year_label(start: i32) -> String {
    format!("{start}-{:02}", (start + 1).rem_euclid(100))
}

/// `INV/26-27` or `CN/26-27`.
pub fn series(kind: DocumentKind, start: i32) -> String {
    let prefix = match kind {
        DocumentKind::TaxInvoice => "INV",
        DocumentKind::CreditNote => "CN",
    };
    format!(
        "{prefix}/{:02}-{:02}",
        start.rem_euclid(100),
        (start + 1).rem_euclid(100)
    )
}

/// An issued invoice, as a credit note names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub number: String,
    pub issued_at: i64,
}

/// Every number issued: the last of each series, each order's invoice and
/// which orders have their credit note. The maps are persistent (`imbl`):
/// the next version of the ledger shares the previous one's entries.
#[derive(Debug, Clone)]
pub struct Ledger {
    version: i64,
    last_issued_at: i64,
    sequences: imbl::HashMap<String, i64>,
    invoices: imbl::HashMap<String, Issued>,
    credited: imbl::HashSet<String>,
    /// What the last request issued: the changelog's records.
    changed: Vec<InvoiceDocument>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            version: -1,
            last_issued_at: 0,
            sequences: imbl::HashMap::new(),
            invoices: imbl::HashMap::new(),
            credited: imbl::HashSet::new(),
            changed: Vec::new(),
        }
    }

    /// The offset of the last request the ledger includes.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The documents the last request issued.
    pub fn changed(&self) -> &[InvoiceDocument] {
        &self.changed
    }

    /// The last sequence of `series` (0 before its first).
    pub fn last_sequence(&self, series: &str) -> i64 {
        self.sequences.get(series).copied().unwrap_or(0)
    }

    pub fn invoice_of(&self, order_token: &str) -> Option<&Issued> {
        self.invoices.get(order_token)
    }

    pub fn credited(&self, order_token: &str) -> bool {
        self.credited.contains(order_token)
    }

    /// Folds an issued document back in (a restore reads them in any
    /// order: every field kept is a maximum or a set).
    pub fn restore(&mut self, document: &InvoiceDocument) {
        self.version = self.version.max(document.version);
        self.last_issued_at = self.last_issued_at.max(document.issued_at);
        let last = self.sequences.entry(document.series.clone()).or_insert(0);
        *last = (*last).max(document.sequence);
        match document.kind {
            DocumentKind::TaxInvoice => {
                self.invoices.insert(
                    document.order_token.clone(),
                    Issued {
                        number: document.number.clone(),
                        issued_at: document.issued_at,
                    },
                );
            }
            DocumentKind::CreditNote => {
                self.credited.insert(document.order_token.clone());
            }
        }
    }
}

/// What `request` (read at `offset`) issues: the next ledger, whose
/// [`Ledger::changed`] holds the new documents, or `None` when the order
/// has that document already (nothing changes).
pub fn issue(
    ledger: Option<&Ledger>,
    request: &InvoiceRequest,
    offset: i64,
    policy: &InvoicePolicy,
) -> Option<Ledger> {
    let mut next = ledger.cloned().unwrap_or_default();
    next.changed.clear();
    let order = &request.order_token;
    let has_invoice = next.invoices.contains_key(order);
    let wanted: &[DocumentKind] = match request.kind {
        DocumentKind::TaxInvoice if has_invoice => &[],
        DocumentKind::TaxInvoice => &[DocumentKind::TaxInvoice],
        DocumentKind::CreditNote if next.credited.contains(order) => &[],
        DocumentKind::CreditNote if has_invoice => &[DocumentKind::CreditNote],
        DocumentKind::CreditNote => &[DocumentKind::TaxInvoice, DocumentKind::CreditNote],
    };
    if wanted.is_empty() {
        return None;
    }
    for &kind in wanted {
        let issued_at = request.at.max(next.last_issued_at);
        let year = financial_year(issued_at);
        let series = series(kind, year);
        let sequence = next.last_sequence(&series) + 1;
        let against = match kind {
            DocumentKind::CreditNote => next.invoices.get(order).cloned(),
            DocumentKind::TaxInvoice => None,
        };
        let document = draft(request, policy, kind, against.as_ref())
            .numbered(&series, sequence, year, issued_at, offset);
        next.restore(&document);
        next.changed.push(document);
    }
    next.version = offset;
    Some(next)
}

/// A document before its number: everything [`issue`] does not decide.
struct Draft(InvoiceDocument);

impl Draft {
    fn numbered(
        self,
        series: &str,
        sequence: i64,
        year: i32,
        issued_at: i64,
        offset: i64,
    ) -> InvoiceDocument {
        let number = format!("{series}/{sequence:06}");
        InvoiceDocument {
            event_id: ids::derived("invoice-document", &number, 0).to_string(),
            number,
            series: series.to_owned(),
            sequence,
            financial_year: year_label(year),
            issued_at,
            version: offset,
            ..self.0
        }
    }
}

/// The document `request` asks for, of `kind`, against its invoice when
/// it is a credit note.
fn draft(
    request: &InvoiceRequest,
    policy: &InvoicePolicy,
    kind: DocumentKind,
    against: Option<&Issued>,
) -> Draft {
    let currency = &request.currency;
    let lines = document_lines(request, &policy.sac);
    let taxable_total = lines.iter().map(|l| l.taxable_value.amount_minor).sum();
    let supply = supply(request, policy);
    let place = match supply {
        Supply::Export => places::ABROAD.label(),
        Supply::IntraState | Supply::InterState => {
            let state = request
                .buyer_state
                .as_deref()
                .unwrap_or(&policy.supplier.state);
            places::find(state).map_or_else(|| state.to_owned(), |p| p.label())
        }
    };
    let mut notes = Vec::new();
    if supply == Supply::Export && request.taxes.is_empty() {
        notes.push(
            "Supply meant for export of services under a letter of undertaking without payment \
             of IGST (zero-rated)."
                .to_owned(),
        );
    }
    if request.lines.iter().any(|l| exempt(l)) {
        notes.push("Lines without tax are exempt supplies.".to_owned());
    }
    if request.tax_inclusive {
        notes.push("Prices include GST.".to_owned());
    }
    if let Some(fx) = &request.fx {
        notes.push(format!(
            "Amounts in {} at {} {} per {} 1.",
            fx.quote, fx.rate, fx.quote, fx.base
        ));
    }
    if kind == DocumentKind::CreditNote {
        if let Some(invoice) = against {
            notes.push(format!("Reverses tax invoice {} in full.", invoice.number));
        }
        if let Some(reason) = &request.reason {
            notes.push(format!("Reason: {reason}."));
        }
    }
    Draft(InvoiceDocument {
        event_id: String::new(),
        kind,
        number: String::new(),
        series: String::new(),
        sequence: 0,
        financial_year: String::new(),
        issued_at: 0,
        order_token: request.order_token.clone(),
        request_id: request.request_id.clone(),
        version: 0,
        against_number: against.map(|i| i.number.clone()),
        against_issued_at: against.map(|i| i.issued_at),
        supplier: policy.supplier.clone(),
        buyer: DocumentBuyer {
            user_id: request.buyer_user_id.clone(),
            gstin: request.buyer_gstin.clone(),
            country: request.buyer_country.clone(),
            state: request.buyer_state.clone(),
        },
        place_of_supply: place,
        supply,
        currency: currency.clone(),
        tax_inclusive: request.tax_inclusive,
        lines,
        taxes: request.taxes.clone(),
        taxable_total: money(taxable_total, currency),
        tax_total: request.tax_total.clone(),
        total: request.total.clone(),
        total_in_words: words::amount_in_words(request.total.amount_minor, currency),
        fx: request.fx.clone(),
        gateway: request.gateway.clone(),
        payment_ref: request.payment_ref.clone(),
        refund_id: match kind {
            DocumentKind::CreditNote => request.refund_id.clone(),
            DocumentKind::TaxInvoice => None,
        },
        notes,
    })
}

/// Intra-state, inter-state or export, as the order was taxed: by the tax
/// names it was charged (pricing chose them), by location when it was
/// charged none (every line exempt), as pricing compares states.
fn supply(request: &InvoiceRequest, policy: &InvoicePolicy) -> Supply {
    if !request.buyer_country.eq_ignore_ascii_case("IN") {
        return Supply::Export;
    }
    if request.taxes.iter().any(|t| t.name == pricing::IGST) {
        return Supply::InterState;
    }
    if request.taxes.iter().any(|t| t.name == pricing::CGST) {
        return Supply::IntraState;
    }
    match &request.buyer_state {
        Some(state) if !places::same(state, &policy.supplier.state) => Supply::InterState,
        _ => Supply::IntraState,
    }
}

/// Whether a line is exempt, as pricing reads its class.
fn exempt(line: &RequestLine) -> bool {
    TaxClass::parse(&line.tax_class) == TaxClass::Exempt
}

fn money(minor: i64, currency: &str) -> WireMoney {
    WireMoney {
        amount_minor: minor,
        currency: currency.to_owned(),
    }
}

/// Each line with its share of every tax.
fn document_lines(request: &InvoiceRequest, sac: &str) -> Vec<DocumentLine> {
    let taxed: Vec<i64> = request
        .lines
        .iter()
        .map(|l| if exempt(l) { 0 } else { l.amount.amount_minor })
        .collect();
    let shares: Vec<Vec<i64>> = request
        .taxes
        .iter()
        .map(|t| spread(t.amount.amount_minor, &taxed))
        .collect();
    request
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let currency = &l.amount.currency;
            // An exempt line carries no tax; only an order taxed with no
            // taxed line at all (a pricing bug) puts its tax on line 1,
            // so the lines still add up to the order.
            let taxes: Vec<TaxAmount> = if taxed[i] == 0 && shares.iter().all(|s| s[i] == 0) {
                Vec::new()
            } else {
                request
                    .taxes
                    .iter()
                    .zip(&shares)
                    .map(|(t, share)| TaxAmount {
                        name: t.name.clone(),
                        rate: t.rate.clone(),
                        amount: money(share[i], currency),
                    })
                    .collect()
            };
            let tax: i64 = taxes.iter().map(|t| t.amount.amount_minor).sum();
            let (taxable, total) = if request.tax_inclusive {
                (l.amount.amount_minor - tax, l.amount.amount_minor)
            } else {
                (l.amount.amount_minor, l.amount.amount_minor + tax)
            };
            line(
                i,
                l,
                sac,
                taxes,
                money(taxable, currency),
                money(total, currency),
            )
        })
        .collect()
}

fn line(
    i: usize,
    l: &RequestLine,
    sac: &str,
    taxes: Vec<TaxAmount>,
    taxable_value: WireMoney,
    total: WireMoney,
) -> DocumentLine {
    DocumentLine {
        number: i32::try_from(i + 1).unwrap_or(i32::MAX),
        internship_id: l.internship_id.clone(),
        description: l.title.clone(),
        sac: sac.to_owned(),
        quantity: l.quantity,
        unit_price: l.unit_price.clone(),
        discount: l.discount.clone(),
        taxable_value,
        taxes,
        total,
    }
}

/// `amount` spread over `weights` in proportion, in whole minor units
/// that add up to it exactly: each gets the floor of its share, then the
/// units left go one each to the largest remainders (the first on a tie).
/// With no weight at all, the first line takes it (an order taxed with no
/// taxed line would be a pricing bug; the total still adds up).
pub fn spread(amount: i64, weights: &[i64]) -> Vec<i64> {
    let total: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    let mut out = vec![0i64; weights.len()];
    if weights.is_empty() {
        return out;
    }
    if total == 0 {
        out[0] = amount;
        return out;
    }
    let amount128 = i128::from(amount);
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (i, &w) in weights.iter().enumerate() {
        let product = amount128 * i128::from(w.max(0));
        let share = product.div_euclid(total);
        out[i] = i64::try_from(share).unwrap_or(0);
        given += share;
        remainders.push((product.rem_euclid(total), i));
    }
    // Largest remainder first; the earlier line on a tie.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = usize::try_from(amount128 - given).unwrap_or(0);
    for &(_, i) in remainders.iter().cycle().take(left) {
        out[i] += 1;
    }
    out
}

/// What `after` asks of the invoice processor that `before` did not: the
/// invoice of an order that became PAID, the credit note of one that
/// became REFUNDED.
pub fn requests(before: Option<&OrderSnapshot>, after: &OrderSnapshot) -> Vec<InvoiceRequest> {
    let was = before.map(|b| b.status);
    let kind = match after.status {
        OrderStatus::Paid if was != Some(OrderStatus::Paid) => DocumentKind::TaxInvoice,
        OrderStatus::Refunded if was != Some(OrderStatus::Refunded) => DocumentKind::CreditNote,
        _ => return Vec::new(),
    };
    vec![request(after, kind)]
}

/// `order`'s request for a document of `kind`, dated by its last
/// transition (the one that paid or refunded it).
pub fn request(order: &OrderSnapshot, kind: DocumentKind) -> InvoiceRequest {
    let placed = &order.placed;
    let position = match kind {
        DocumentKind::TaxInvoice => 0,
        DocumentKind::CreditNote => 1,
    };
    let paid = crate::order::paid_attempt(order);
    let buyer = placed.buyer.as_ref();
    InvoiceRequest {
        request_id: ids::derived("invoice-request", &order.order_token, position).to_string(),
        order_token: order.order_token.clone(),
        kind,
        at: order.history.last().map_or(order.updated_at, |t| t.at),
        buyer_user_id: order.buyer_user_id.clone(),
        buyer_gstin: buyer.and_then(|b| b.gstin.clone()),
        buyer_country: buyer.map_or_else(|| "IN".to_owned(), |b| b.country.to_ascii_uppercase()),
        buyer_state: buyer.and_then(|b| b.state.clone()),
        currency: placed.currency.clone(),
        tax_inclusive: placed.tax_inclusive,
        lines: placed
            .lines
            .iter()
            .map(|l| RequestLine {
                internship_id: l.internship_id.clone(),
                title: l.title.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price.clone(),
                discount: l.line_discount.clone(),
                amount: l.line_total.clone(),
                tax_class: l.tax_class.clone(),
            })
            .collect(),
        taxes: placed
            .taxes
            .iter()
            .map(|t| TaxAmount {
                name: t.name.clone(),
                rate: t.rate.clone(),
                amount: t.amount.clone(),
            })
            .collect(),
        subtotal: placed.subtotal.clone(),
        discount_total: placed.discount_total.clone(),
        tax_total: placed.tax_total.clone(),
        total: placed.total.clone(),
        fx: placed.fx.as_ref().map(|f| FxNote {
            base: f.base.clone(),
            quote: f.quote.clone(),
            rate: f.rate.clone(),
            as_of: f.as_of,
        }),
        gateway: paid.and_then(|a| a.gateway.clone()),
        payment_ref: paid.and_then(|a| a.payment_ref.clone()),
        refund_id: order.refund.as_ref().and_then(|r| r.refund_id.clone()),
        reason: order.refund.as_ref().map(|r| r.reason.clone()),
    }
}

/// What is wrong with a sales register (the documents of
/// `invoice.documents`, in any order): a series whose sequences are not
/// exactly 1..N (a gap or a repeat), an order with two invoices or two
/// credit notes, a credit note that does not name its order's invoice.
/// Empty when the register is whole. `checkoutctl invoices` prints it
/// after a fault run.
pub fn register_problems(documents: &[InvoiceDocument]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut problems = Vec::new();
    let mut series: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut by_order: BTreeMap<(&str, DocumentKind), Vec<&InvoiceDocument>> = BTreeMap::new();
    for d in documents {
        series.entry(&d.series).or_default().push(d.sequence);
        by_order
            .entry((&d.order_token, d.kind))
            .or_default()
            .push(d);
    }
    for (name, mut sequences) in series {
        sequences.sort_unstable();
        let n = sequences.len() as i64;
        if sequences.iter().copied().ne(1..=n) {
            let mut repeated: Vec<i64> = sequences
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| w[0])
                .collect();
            repeated.dedup();
            let last = sequences.last().copied().unwrap_or(0);
            let missing: Vec<i64> = (1..=last)
                .filter(|s| sequences.binary_search(s).is_err())
                .collect();
            problems.push(format!(
                "series {name}: {n} documents, not 1..{n}: missing {missing:?}, repeated {repeated:?}"
            ));
        }
    }
    for ((order, kind), docs) in &by_order {
        if docs.len() > 1 {
            let numbers: Vec<&str> = docs.iter().map(|d| d.number.as_str()).collect();
            problems.push(format!("order {order}: {} {numbers:?}", kind.as_str()));
        }
        if *kind == DocumentKind::CreditNote {
            let invoice = by_order
                .get(&(*order, DocumentKind::TaxInvoice))
                .and_then(|i| i.first())
                .map(|i| i.number.as_str());
            for note in docs {
                if invoice.is_none() || note.against_number.as_deref() != invoice {
                    problems.push(format!(
                        "order {order}: credit note {} against {:?}, its invoice is {invoice:?}",
                        note.number, note.against_number
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
