//! The ledger's numbering, the documents' figures, and the settings.

use proptest::prelude::*;

use schemas::records::invoices::*;
use schemas::records::WireMoney;

use super::*;

fn inr(minor: i64) -> WireMoney {
    WireMoney {
        amount_minor: minor,
        currency: "INR".into(),
    }
}

fn policy() -> InvoicePolicy {
    InvoicePolicy::from_settings(|name| match name {
        "INVOICE_SUPPLIER_NAME" => Some("InternHub Learning Pvt Ltd".into()),
        "INVOICE_SUPPLIER_GSTIN" => Some("29ABCDE1234F1Z5".into()),
        "INVOICE_SUPPLIER_ADDRESS" => Some("1 MG Road, Bengaluru 560001".into()),
        _ => None,
    })
    .expect("a valid policy")
}

/// 2026-12-07 10:00 UTC.
const DEC_2026: i64 = 1_796_637_600_000;

fn line(id: &str, amount: i64, class: &str) -> RequestLine {
    RequestLine {
        internship_id: id.into(),
        title: format!("Internship {id}"),
        quantity: 1,
        unit_price: inr(amount),
        discount: inr(0),
        amount: inr(amount),
        tax_class: class.into(),
    }
}

fn tax(name: &str, rate: &str, minor: i64) -> TaxAmount {
    TaxAmount {
        name: name.into(),
        rate: rate.into(),
        amount: inr(minor),
    }
}

/// An order in Karnataka (the seller's state) of 500.00 + 18 % GST.
fn request(order: &str, kind: DocumentKind, at: i64) -> InvoiceRequest {
    InvoiceRequest {
        request_id: format!("{order}/{kind:?}"),
        order_token: order.into(),
        kind,
        at,
        buyer_user_id: Some("u_1".into()),
        buyer_gstin: None,
        buyer_country: "IN".into(),
        buyer_state: Some("KA".into()),
        currency: "INR".into(),
        tax_inclusive: false,
        lines: vec![line("a", 50_000, "standard")],
        taxes: vec![tax("CGST", "0.09", 4_500), tax("SGST", "0.09", 4_500)],
        subtotal: inr(50_000),
        discount_total: inr(0),
        tax_total: inr(9_000),
        total: inr(59_000),
        fx: None,
        gateway: Some("razorpay".into()),
        payment_ref: Some("pay_1".into()),
        refund_id: None,
        reason: None,
    }
}

/// Runs `requests` through the ledger from `ledger`, one offset each.
fn run(
    mut ledger: Option<Ledger>,
    requests: &[InvoiceRequest],
) -> (Option<Ledger>, Vec<InvoiceDocument>) {
    let mut issued = Vec::new();
    for (offset, r) in requests.iter().enumerate() {
        if let Some(next) = issue(ledger.as_ref(), r, offset as i64, &policy()) {
            issued.extend(next.changed().iter().cloned());
            ledger = Some(next);
        }
    }
    (ledger, issued)
}

fn numbers(docs: &[InvoiceDocument]) -> Vec<&str> {
    docs.iter().map(|d| d.number.as_str()).collect()
}

#[test]
fn invoices_are_numbered_one_by_one_and_an_order_gets_one() {
    let paid = |o: &str, at| request(o, DocumentKind::TaxInvoice, at);
    let (ledger, docs) = run(
        None,
        &[
            paid("o1", DEC_2026),
            paid("o2", DEC_2026 + 1),
            paid("o1", DEC_2026 + 2),
            paid("o3", DEC_2026 + 3),
        ],
    );
    assert_eq!(
        numbers(&docs),
        ["INV/26-27/000001", "INV/26-27/000002", "INV/26-27/000003"]
    );
    assert!(docs.iter().all(|d| d.number.len() <= 16), "GST rule 46");
    assert_eq!(docs[2].order_token, "o3", "o1 asked twice, invoiced once");
    let ledger = ledger.unwrap();
    assert_eq!(ledger.last_sequence("INV/26-27"), 3);
    assert_eq!(ledger.version(), 3);
    assert_eq!(docs[0].financial_year, "2026-27");
    assert_eq!(
        ledger.invoice_of("o2").map(|i| i.number.as_str()),
        Some("INV/26-27/000002")
    );
}

#[test]
fn a_new_financial_year_starts_a_new_series_at_one_and_dates_never_go_back() {
    // 31 March 2027 23:59 India time, then 1 April 2027 00:01.
    let march_31 = 1_806_517_740_000;
    let april_1 = march_31 + 2 * 60_000;
    assert_eq!(financial_year(march_31), 2026);
    assert_eq!(financial_year(april_1), 2027);
    let (_, docs) = run(
        None,
        &[
            request("o1", DocumentKind::TaxInvoice, march_31),
            request("o2", DocumentKind::TaxInvoice, april_1),
            // Paid a moment earlier on another partition: dated with the
            // one before it, in that one's year.
            request("o3", DocumentKind::TaxInvoice, march_31 - 1),
        ],
    );
    assert_eq!(
        numbers(&docs),
        ["INV/26-27/000001", "INV/27-28/000001", "INV/27-28/000002"]
    );
    assert_eq!(docs[2].issued_at, april_1);
    assert_eq!(docs[1].financial_year, "2027-28");
}

#[test]
fn a_refund_gets_one_credit_note_naming_its_invoice() {
    let mut refund = request("o1", DocumentKind::CreditNote, DEC_2026 + 10);
    refund.refund_id = Some("rfnd_1".into());
    refund.reason = Some("changed my mind".into());
    let (ledger, docs) = run(
        None,
        &[
            request("o1", DocumentKind::TaxInvoice, DEC_2026),
            request("o2", DocumentKind::TaxInvoice, DEC_2026 + 1),
            refund.clone(),
            refund,
        ],
    );
    assert_eq!(
        numbers(&docs),
        ["INV/26-27/000001", "INV/26-27/000002", "CN/26-27/000001"]
    );
    let note = &docs[2];
    assert_eq!(note.kind, DocumentKind::CreditNote);
    assert_eq!(note.against_number.as_deref(), Some("INV/26-27/000001"));
    assert_eq!(note.against_issued_at, Some(DEC_2026));
    assert_eq!(note.total, inr(59_000), "in full");
    assert_eq!(note.refund_id.as_deref(), Some("rfnd_1"));
    assert!(
        note.notes.iter().any(|n| n.contains("changed my mind")),
        "{:?}",
        note.notes
    );
    assert!(ledger.unwrap().credited("o1"));
}

#[test]
fn a_credit_note_for_an_order_never_invoiced_issues_the_invoice_first() {
    let (_, docs) = run(None, &[request("old", DocumentKind::CreditNote, DEC_2026)]);
    assert_eq!(numbers(&docs), ["INV/26-27/000001", "CN/26-27/000001"]);
    assert_eq!(docs[1].against_number.as_deref(), Some("INV/26-27/000001"));
}

#[test]
fn a_ledger_restored_from_its_documents_in_any_order_numbers_on_the_same() {
    let requests: Vec<_> = (0..6)
        .map(|i| request(&format!("o{i}"), DocumentKind::TaxInvoice, DEC_2026 + i))
        .chain([request("o2", DocumentKind::CreditNote, DEC_2026 + 9)])
        .collect();
    let (ledger, mut docs) = run(None, &requests);
    let ledger = ledger.unwrap();
    docs.reverse();
    let mut restored = Ledger::new();
    for d in &docs {
        restored.restore(d);
    }
    assert_eq!(restored.version(), ledger.version());
    let next = [
        request("o9", DocumentKind::TaxInvoice, DEC_2026 + 20),
        request("o3", DocumentKind::CreditNote, DEC_2026 + 21),
        request("o2", DocumentKind::CreditNote, DEC_2026 + 22),
    ];
    let (_, a) = run(Some(ledger), &next);
    let (_, b) = run(Some(restored), &next);
    assert_eq!(a, b);
    assert_eq!(numbers(&a), ["INV/26-27/000007", "CN/26-27/000002"]);
}

#[test]
fn intra_state_lines_carry_cgst_and_sgst_that_add_up_to_the_order() {
    let mut r = request("o1", DocumentKind::TaxInvoice, DEC_2026);
    // 333.33 + 166.67 + an exempt 100.00, 18 % on 500.00.
    r.lines = vec![
        line("a", 33_333, "standard"),
        line("b", 16_667, "standard"),
        line("c", 10_000, "exempt"),
    ];
    r.subtotal = inr(60_000);
    r.total = inr(69_000);
    let (_, docs) = run(None, &[r]);
    let d = &docs[0];
    assert_eq!(d.supply, Supply::IntraState);
    assert_eq!(d.place_of_supply, "Karnataka (29)");
    assert_eq!(d.supplier.state_code, "29");
    let cgst: Vec<i64> = d
        .lines
        .iter()
        .map(|l| l.taxes.first().map_or(0, |t| t.amount.amount_minor))
        .collect();
    assert_eq!(cgst, [3_000, 1_500, 0]);
    assert!(d.lines[2].taxes.is_empty(), "exempt: no tax");
    let lines_total: i64 = d.lines.iter().map(|l| l.total.amount_minor).sum();
    assert_eq!(lines_total, d.total.amount_minor);
    assert_eq!(d.taxable_total, inr(60_000));
    assert_eq!(d.total_in_words, "Indian Rupees Six Hundred Ninety Only");
    assert!(d.notes.iter().any(|n| n.contains("exempt")));
}

#[test]
fn another_state_is_igst_and_a_buyer_abroad_an_export() {
    let mut r = request("o1", DocumentKind::TaxInvoice, DEC_2026);
    r.buyer_state = Some("MH".into());
    r.taxes = vec![tax("IGST", "0.18", 9_000)];
    r.buyer_gstin = Some("pii1.k.n.c".into());
    let (_, docs) = run(None, &[r]);
    assert_eq!(docs[0].supply, Supply::InterState);
    assert_eq!(docs[0].place_of_supply, "Maharashtra (27)");
    assert_eq!(
        docs[0].buyer.gstin.as_deref(),
        Some("pii1.k.n.c"),
        "still sealed"
    );
    assert_eq!(docs[0].lines[0].taxes[0].amount, inr(9_000));

    let mut abroad = request("o2", DocumentKind::TaxInvoice, DEC_2026);
    abroad.buyer_country = "US".into();
    abroad.buyer_state = None;
    abroad.taxes = vec![];
    abroad.tax_total = inr(0);
    abroad.total = inr(50_000);
    let (_, docs) = run(None, &[abroad]);
    assert_eq!(docs[0].supply, Supply::Export);
    assert_eq!(docs[0].place_of_supply, "Outside India (96)");
    assert!(
        docs[0].notes.iter().any(|n| n.contains("zero-rated")),
        "{:?}",
        docs[0].notes
    );
    assert!(docs[0].lines[0]
        .taxes
        .iter()
        .all(|t| t.amount.amount_minor == 0));
}

#[test]
fn an_all_exempt_order_is_intra_state_in_the_sellers_state_however_it_is_named() {
    for (state, want) in [
        ("Karnataka", Supply::IntraState),
        ("29", Supply::IntraState),
        ("MH", Supply::InterState),
    ] {
        let mut r = request("o1", DocumentKind::TaxInvoice, DEC_2026);
        r.buyer_state = Some(state.into());
        r.lines = vec![line("a", 50_000, "exempt")];
        r.taxes = vec![];
        r.tax_total = inr(0);
        r.total = inr(50_000);
        let (_, docs) = run(None, &[r]);
        assert_eq!(docs[0].supply, want, "{state}");
    }
}

#[test]
fn tax_on_an_order_without_a_taxed_line_still_lands_on_a_line() {
    // Not something pricing does; the document adds up all the same.
    let mut r = request("o1", DocumentKind::TaxInvoice, DEC_2026);
    r.lines = vec![line("a", 50_000, "exempt")];
    let (_, docs) = run(None, &[r]);
    let lines_total: i64 = docs[0].lines.iter().map(|l| l.total.amount_minor).sum();
    assert_eq!(lines_total, docs[0].total.amount_minor);
}

#[test]
fn tax_inclusive_lines_show_the_tax_inside_their_amount() {
    let mut r = request("o1", DocumentKind::TaxInvoice, DEC_2026);
    r.tax_inclusive = true;
    r.lines = vec![line("a", 59_000, "standard")];
    r.taxes = vec![tax("CGST", "0.09", 4_500), tax("SGST", "0.09", 4_500)];
    r.total = inr(59_000);
    let (_, docs) = run(None, &[r]);
    assert_eq!(docs[0].lines[0].taxable_value, inr(50_000));
    assert_eq!(docs[0].lines[0].total, inr(59_000));
    assert_eq!(docs[0].taxable_total, inr(50_000));
}

#[test]
fn the_supplier_is_required_and_checked() {
    let missing = InvoicePolicy::from_settings(|name| match name {
        "INVOICE_SUPPLIER_NAME" => Some("X".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(missing.0.contains("INVOICE_SUPPLIER_GSTIN"), "{missing}");
    let elsewhere = InvoicePolicy::from_settings(|name| match name {
        "INVOICE_SUPPLIER_NAME" => Some("X".into()),
        "INVOICE_SUPPLIER_GSTIN" => Some("27ABCDE1234F1Z5".into()),
        "INVOICE_SUPPLIER_ADDRESS" => Some("Pune".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(elsewhere.0.contains("Karnataka"), "{elsewhere}");
    assert!(check_gstin("29ABCDE1234F1Z5").is_ok());
    assert!(check_gstin("29ABCDE1234F1X5").is_err());
    assert!(check_gstin("29abcde1234f1z5").is_err());
}

#[test]
fn a_whole_register_has_no_problem_and_a_gap_a_repeat_or_a_stray_credit_note_each_one() {
    let (_, docs) = run(
        None,
        &[
            request("o1", DocumentKind::TaxInvoice, DEC_2026),
            request("o2", DocumentKind::TaxInvoice, DEC_2026 + 1),
            request("o3", DocumentKind::TaxInvoice, DEC_2026 + 2),
            request("o2", DocumentKind::CreditNote, DEC_2026 + 3),
        ],
    );
    assert_eq!(register_problems(&docs), Vec::<String>::new());
    let mut gap = docs.clone();
    gap.remove(1);
    let problems = register_problems(&gap);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("missing [2]"), "{problems:?}");
    assert!(
        problems[1].contains("its invoice is None"),
        "the credit note lost its invoice: {problems:?}"
    );
    let mut repeat = docs.clone();
    let mut again = docs[0].clone();
    again.order_token = "o9".into();
    repeat.push(again);
    assert!(register_problems(&repeat)[0].contains("repeated [1]"));
    let mut twice = docs;
    let mut second = twice[2].clone();
    second.sequence = 4;
    second.number = "INV/26-27/000004".into();
    twice.push(second);
    assert!(register_problems(&twice)[0].contains("order o3: tax_invoice"));
}

proptest! {
    #[test]
    fn a_spread_adds_up_and_follows_the_weights(
        amount in 0i64..10_000_000,
        weights in proptest::collection::vec(0i64..5_000_000, 1..8),
    ) {
        let shares = spread(amount, &weights);
        prop_assert_eq!(shares.iter().sum::<i64>(), amount);
        let total: i64 = weights.iter().sum();
        if total > 0 {
            for (s, w) in shares.iter().zip(&weights) {
                let exact = amount as f64 * *w as f64 / total as f64;
                prop_assert!((*s as f64 - exact).abs() < 1.0 + 1e-6, "{} vs {}", s, exact);
            }
        }
    }
}
