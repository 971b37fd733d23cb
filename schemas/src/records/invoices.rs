//! `internhub.invoices.*`: the GST paperwork of paid orders. The order
//! processor asks for a tax invoice when an order is paid and for a credit
//! note when it is refunded ([`InvoiceRequest`] on `invoice.requests`, all
//! under one key: the seller's ledger); the invoice processor numbers each
//! from its consecutive series and writes the document
//! ([`InvoiceDocument`]) on `invoice.documents`, for accounting tools and
//! the read model.

use serde::{Deserialize, Serialize};

use super::WireMoney;

/// The key of every record on `invoice.requests`: one ledger per seller,
/// so one place decides every number.
pub const LEDGER_KEY: &str = "gst-ledger";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DocumentKind {
    TaxInvoice,
    CreditNote,
}

impl DocumentKind {
    /// The lowercase name used in the API and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::TaxInvoice => "tax_invoice",
            DocumentKind::CreditNote => "credit_note",
        }
    }
}

/// What an order asks the invoice processor for: the priced order as it
/// was charged, frozen, so the document says what the buyer paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRequest {
    /// Derived from the order and the kind: an order asks once per kind.
    pub request_id: String,
    pub order_token: String,
    pub kind: DocumentKind,
    /// When the order was paid (or refunded), ms since the epoch.
    pub at: i64,
    pub buyer_user_id: Option<String>,
    /// Sealed (`schemas::sealed`).
    pub buyer_gstin: Option<String>,
    /// ISO 3166 alpha-2; `IN` when the buyer gave no location.
    pub buyer_country: String,
    pub buyer_state: Option<String>,
    pub currency: String,
    pub tax_inclusive: bool,
    pub lines: Vec<RequestLine>,
    pub taxes: Vec<TaxAmount>,
    pub subtotal: WireMoney,
    pub discount_total: WireMoney,
    pub tax_total: WireMoney,
    pub total: WireMoney,
    pub fx: Option<FxNote>,
    pub gateway: Option<String>,
    pub payment_ref: Option<String>,
    /// A credit note's refund at the gateway, and why.
    pub refund_id: Option<String>,
    pub reason: Option<String>,
}

/// A line of the order as charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price: WireMoney,
    pub discount: WireMoney,
    /// `unit_price × quantity − discount` (tax included when prices are).
    pub amount: WireMoney,
    /// `standard` or `exempt`.
    pub tax_class: String,
}

/// A tax by name (`CGST`, `SGST`, `IGST`, `Tax (GB)`), its rate as a
/// decimal fraction in text (`0.09`), and the amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxAmount {
    pub name: String,
    pub rate: String,
    pub amount: WireMoney,
}

/// The exchange rate the order was priced at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxNote {
    pub base: String,
    pub quote: String,
    pub rate: String,
    pub as_of: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Supply {
    /// Buyer in the seller's state: CGST + SGST.
    IntraState,
    /// Buyer in another Indian state: IGST.
    InterState,
    /// Buyer abroad: export of services (zero-rated unless a rate is set
    /// for the country).
    Export,
}

impl Supply {
    pub fn as_str(self) -> &'static str {
        match self {
            Supply::IntraState => "intra_state",
            Supply::InterState => "inter_state",
            Supply::Export => "export",
        }
    }
}

/// The seller, as configured for the invoice processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplier {
    pub name: String,
    pub gstin: String,
    pub address: String,
    /// The state's name and GST code, e.g. `Karnataka`, `29`.
    pub state: String,
    pub state_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentBuyer {
    pub user_id: Option<String>,
    /// Sealed (`schemas::sealed`); a business buyer's GSTIN.
    pub gstin: Option<String>,
    pub country: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    /// 1, 2, … in the document.
    pub number: i32,
    pub internship_id: String,
    pub description: String,
    /// The service's accounting code (SAC).
    pub sac: String,
    pub quantity: i32,
    pub unit_price: WireMoney,
    pub discount: WireMoney,
    pub taxable_value: WireMoney,
    /// This line's share of each tax (none for an exempt line).
    pub taxes: Vec<TaxAmount>,
    /// `taxable_value` plus its taxes.
    pub total: WireMoney,
}

/// A tax invoice or a credit note, numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDocument {
    pub event_id: String,
    pub kind: DocumentKind,
    /// `INV/26-27/000001`: the series and the sequence (at most 16
    /// characters, as GST rule 46 asks).
    pub number: String,
    /// `INV/26-27` or `CN/26-27`: one per kind and financial year.
    pub series: String,
    /// 1, 2, … within the series, without gaps.
    pub sequence: i64,
    /// `2026-27` (April to March, India time).
    pub financial_year: String,
    pub issued_at: i64,
    pub order_token: String,
    pub request_id: String,
    /// The invoice processor's input offset that issued it.
    pub version: i64,
    /// A credit note's invoice: its number and date.
    pub against_number: Option<String>,
    pub against_issued_at: Option<i64>,
    pub supplier: Supplier,
    pub buyer: DocumentBuyer,
    /// `Karnataka (29)`, or `Outside India (96)` for an export.
    pub place_of_supply: String,
    pub supply: Supply,
    pub currency: String,
    pub tax_inclusive: bool,
    pub lines: Vec<DocumentLine>,
    pub taxes: Vec<TaxAmount>,
    pub taxable_total: WireMoney,
    pub tax_total: WireMoney,
    pub total: WireMoney,
    /// The total in words, e.g. `Indian Rupees One Thousand One Hundred
    /// Eighty Only`.
    pub total_in_words: String,
    pub fx: Option<FxNote>,
    pub gateway: Option<String>,
    pub payment_ref: Option<String>,
    pub refund_id: Option<String>,
    /// What the document notes: an export's zero rating, a refund's reason.
    pub notes: Vec<String>,
}
