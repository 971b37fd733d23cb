//! A tax invoice or credit note as an A4 PDF, drawn from the document the
//! invoice processor issued (`schemas::records::invoices::InvoiceDocument`)
//! and nothing else, so the PDF says exactly what the accounting topic
//! says. Text is set in the standard PDF fonts (Helvetica for words,
//! Courier for figures, whose fixed width right-aligns them), so nothing
//! is embedded; characters outside Windows-1252 print as `?`.

use chrono::{FixedOffset, TimeZone};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use schemas::records::invoices::{DocumentKind, InvoiceDocument};
use schemas::records::WireMoney;

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const LEFT: f32 = 40.0;
const RIGHT: f32 = WIDTH - 40.0;
/// Below this a table row goes to the next page.
const BOTTOM: f32 = 70.0;

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
            Font::Mono => Name(b"F3"),
        }
    }
}

/// The pages being drawn, top to bottom.
struct Pages {
    done: Vec<Content>,
    page: Content,
    y: f32,
}

impl Pages {
    fn new() -> Pages {
        Pages {
            done: Vec::new(),
            page: Content::new(),
            y: HEIGHT - 50.0,
        }
    }

    fn text(&mut self, x: f32, y: f32, font: Font, size: f32, text: &str) {
        let bytes = win_ansi(text);
        self.page
            .begin_text()
            .set_font(font.name(), size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    /// Figures, right-aligned at `right` (Courier: every glyph 0.6 em).
    fn figure(&mut self, right: f32, y: f32, size: f32, text: &str) {
        let width = 0.6 * size * text.chars().count() as f32;
        self.text(right - width, y, Font::Mono, size, text);
    }

    fn rule(&mut self, y: f32) {
        self.page
            .set_line_width(0.5)
            .move_to(LEFT, y)
            .line_to(RIGHT, y)
            .stroke();
    }

    /// Moves down `by`, starting a new page when the row would not fit.
    fn down(&mut self, by: f32) {
        self.y -= by;
        if self.y < BOTTOM {
            let full = std::mem::replace(&mut self.page, Content::new());
            self.done.push(full);
            self.y = HEIGHT - 50.0;
        }
    }

    fn finish(mut self, title: &str) -> Vec<u8> {
        self.done.push(self.page);
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let info = Ref::new(3);
        let fonts = [Ref::new(4), Ref::new(5), Ref::new(6)];
        let first_page = 10;
        let count = self.done.len() as i32;
        let page_ids: Vec<Ref> = (0..count).map(|i| Ref::new(first_page + 2 * i)).collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree).kids(page_ids.iter().copied()).count(count);
        pdf.document_info(info)
            .title(TextStr(title))
            .creator(TextStr("InternHub checkout"));
        for (font, base) in fonts
            .iter()
            .zip([&b"Helvetica"[..], b"Helvetica-Bold", b"Courier"])
        {
            pdf.type1_font(*font)
                .base_font(Name(base))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        for (i, content) in self.done.into_iter().enumerate() {
            let id = page_ids[i];
            let content_id = Ref::new(id.get() + 1);
            let mut page = pdf.page(id);
            page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT))
                .parent(tree)
                .contents(content_id);
            let mut resources = page.resources();
            let mut names = resources.fonts();
            for (f, r) in [Font::Regular, Font::Bold, Font::Mono].iter().zip(fonts) {
                names.pair(f.name(), r);
            }
            names.finish();
            resources.finish();
            page.finish();
            pdf.stream(content_id, &content.finish());
        }
        pdf.finish()
    }
}

/// `text` in Windows-1252 as the standard fonts read it: Latin-1 as is,
/// the rest (₹, emoji, scripts) as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match u32::from(c) {
            0x20..=0x7e | 0xa0..=0xff => u32::from(c) as u8,
            0x2013 => 0x96,
            0x2014 => 0x97,
            0x2019 => 0x92,
            0x20ac => 0x80,
            _ => b'?',
        })
        .collect()
}

/// An amount in figures, digits grouped as its currency's country does
/// (`1,18,050.00` for rupees, `118,050.00` otherwise).
pub fn figures(money: &WireMoney) -> String {
    let exponent = schemas::Currency::parse(&money.currency).map_or(2, |c| c.exponent());
    let scale = 10i64.pow(exponent);
    let minor = money.amount_minor.unsigned_abs();
    let (whole, fraction) = (minor / scale.unsigned_abs(), minor % scale.unsigned_abs());
    let digits = whole.to_string();
    let grouped = if money.currency == "INR" && digits.len() > 3 {
        let (head, tail) = digits.split_at(digits.len() - 3);
        let mut parts: Vec<String> = Vec::new();
        let mut rest = head;
        while rest.len() > 2 {
            let (h, t) = rest.split_at(rest.len() - 2);
            parts.push(t.to_owned());
            rest = h;
        }
        parts.push(rest.to_owned());
        parts.reverse();
        format!("{},{tail}", parts.join(","))
    } else {
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    if exponent == 0 {
        format!("{sign}{grouped}")
    } else {
        format!(
            "{sign}{grouped}.{fraction:0width$}",
            width = exponent as usize
        )
    }
}

/// A date as the document states it, India time: `07 Dec 2026`.
pub fn date(at_ms: i64) -> String {
    let india = FixedOffset::east_opt(19_800).expect("a valid offset");
    india
        .timestamp_millis_opt(at_ms)
        .single()
        .map_or_else(|| at_ms.to_string(), |d| d.format("%d %b %Y").to_string())
}

/// A rate as a percentage: `0.09` → `9%`.
fn percent(rate: &str) -> String {
    match rate.parse::<rust_decimal::Decimal>() {
        Ok(r) => format!("{}%", (r * rust_decimal::Decimal::ONE_HUNDRED).normalize()),
        Err(_) => rate.to_owned(),
    }
}

/// Splits `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// The document as PDF. `buyer_gstin` is the buyer's GSTIN opened (the
/// document carries it sealed); `None` prints none.
pub fn render(doc: &InvoiceDocument, buyer_gstin: Option<&str>) -> Vec<u8> {
    let mut p = Pages::new();
    let title = match doc.kind {
        DocumentKind::TaxInvoice => "TAX INVOICE",
        DocumentKind::CreditNote => "CREDIT NOTE",
    };
    let y = p.y;
    p.text(LEFT, y, Font::Bold, 18.0, title);
    p.text(
        RIGHT - 200.0,
        y,
        Font::Bold,
        10.0,
        &format!("No. {}", doc.number),
    );
    p.text(
        RIGHT - 200.0,
        y - 13.0,
        Font::Regular,
        9.0,
        &format!("Date: {}", date(doc.issued_at)),
    );
    p.text(
        RIGHT - 200.0,
        y - 25.0,
        Font::Regular,
        9.0,
        &format!("Order: {}", doc.order_token),
    );
    if let Some(against) = &doc.against_number {
        let when = doc.against_issued_at.map(date).unwrap_or_default();
        p.text(
            RIGHT - 200.0,
            y - 37.0,
            Font::Regular,
            9.0,
            &format!("Against invoice {against} of {when}"),
        );
    }
    p.down(50.0);

    // Supplier and buyer, side by side.
    let top = p.y;
    let s = &doc.supplier;
    p.text(LEFT, top, Font::Bold, 9.0, "Supplier");
    p.text(LEFT, top - 13.0, Font::Bold, 10.0, &s.name);
    let mut y = top - 25.0;
    for line in wrap(&s.address, 48) {
        p.text(LEFT, y, Font::Regular, 9.0, &line);
        y -= 11.0;
    }
    p.text(LEFT, y, Font::Regular, 9.0, &format!("GSTIN: {}", s.gstin));
    p.text(
        LEFT,
        y - 11.0,
        Font::Regular,
        9.0,
        &format!("State: {} ({})", s.state, s.state_code),
    );
    let b = &doc.buyer;
    let x = LEFT + 280.0;
    p.text(x, top, Font::Bold, 9.0, "Buyer");
    let mut by = top - 13.0;
    let mut buyer_line = |p: &mut Pages, text: String| {
        p.text(x, by, Font::Regular, 9.0, &text);
        by -= 11.0;
    };
    if let Some(gstin) = buyer_gstin {
        buyer_line(&mut p, format!("GSTIN: {gstin}"));
    }
    if let Some(state) = &b.state {
        buyer_line(&mut p, format!("State: {state}"));
    }
    buyer_line(&mut p, format!("Country: {}", b.country));
    if let Some(user) = &b.user_id {
        buyer_line(&mut p, format!("Customer: {user}"));
    }
    buyer_line(&mut p, format!("Place of supply: {}", doc.place_of_supply));
    p.down(top - y.min(by) + 20.0);

    // The lines.
    let taxes: Vec<&str> = doc.taxes.iter().map(|t| t.name.as_str()).collect();

    let total_right = RIGHT;
    let taxable_right = 420.0 - if taxes.len() > 1 { 60.0 } else { 0.0 };
    let tax_right = |i: usize| taxable_right + 65.0 * (i as f32 + 1.0);

    let header = |p: &mut Pages| {
        let y = p.y;
        p.text(LEFT, y, Font::Bold, 8.0, "#");
        p.text(LEFT + 14.0, y, Font::Bold, 8.0, "Description");
        p.text(LEFT + 170.0, y, Font::Bold, 8.0, "SAC");
        p.text(LEFT + 205.0, y, Font::Bold, 8.0, "Qty");
        p.text(taxable_right - 50.0, y, Font::Bold, 8.0, "Taxable value");
        for (i, (name, t)) in taxes.iter().zip(&doc.taxes).enumerate() {
            p.text(
                tax_right(i) - 50.0,
                y,
                Font::Bold,
                8.0,
                &format!("{name} {}", percent(&t.rate)),
            );
        }
        p.text(total_right - 30.0, y, Font::Bold, 8.0, "Total");
        p.rule(y - 4.0);
        p.down(16.0);
    };
    p.text(
        LEFT,
        p.y,
        Font::Regular,
        8.0,
        &format!("Amounts in {}", doc.currency),
    );
    p.down(14.0);
    header(&mut p);
    for l in &doc.lines {
        let description = wrap(&l.description, 34);
        let y = p.y;
        p.text(LEFT, y, Font::Regular, 8.0, &l.number.to_string());
        p.text(LEFT + 170.0, y, Font::Regular, 8.0, &l.sac);
        p.figure(LEFT + 220.0, y, 8.0, &l.quantity.to_string());
        p.figure(taxable_right, y, 8.0, &figures(&l.taxable_value));
        for (i, t) in doc.taxes.iter().enumerate() {
            let amount = l
                .taxes
                .iter()
                .find(|lt| lt.name == t.name)
                .map_or_else(|| "-".to_owned(), |lt| figures(&lt.amount));
            p.figure(tax_right(i), y, 8.0, &amount);
        }
        p.figure(total_right, y, 8.0, &figures(&l.total));
        let mut dy = 0.0;
        for part in &description {
            p.text(LEFT + 14.0, y - dy, Font::Regular, 8.0, part);
            dy += 10.0;
        }
        let mut detail = format!("{} x {}", l.quantity, figures(&l.unit_price));
        if l.discount.amount_minor != 0 {
            detail.push_str(&format!(", discount {}", figures(&l.discount)));
        }
        p.text(LEFT + 14.0, y - dy, Font::Regular, 7.0, &detail);
        p.down(dy + 14.0);
    }
    let y = p.y + 6.0;
    p.rule(y);
    p.down(8.0);

    // Totals.
    let label_x = RIGHT - 230.0;
    let total_row = |p: &mut Pages, label: &str, amount: &WireMoney, bold: bool| {
        let y = p.y;
        let font = if bold { Font::Bold } else { Font::Regular };
        p.text(label_x, y, font, 9.0, label);
        p.figure(RIGHT, y, 9.0, &figures(amount));
        p.down(13.0);
    };
    total_row(&mut p, "Taxable value", &doc.taxable_total, false);
    for t in &doc.taxes {
        total_row(
            &mut p,
            &format!("{} @ {}", t.name, percent(&t.rate)),
            &t.amount,
            false,
        );
    }
    total_row(&mut p, "Total tax", &doc.tax_total, false);
    let label = match doc.kind {
        DocumentKind::TaxInvoice => format!("Total ({})", doc.currency),
        DocumentKind::CreditNote => format!("Total credited ({})", doc.currency),
    };
    total_row(&mut p, &label, &doc.total, true);
    p.down(4.0);
    for line in wrap(&format!("In words: {}", doc.total_in_words), 100) {
        let y = p.y;
        p.text(LEFT, y, Font::Regular, 9.0, &line);
        p.down(12.0);
    }
    p.down(6.0);
    let mut notes: Vec<String> = doc.notes.clone();
    if let (Some(gateway), Some(reference)) = (&doc.gateway, &doc.payment_ref) {
        notes.push(format!("Paid through {gateway}, payment {reference}."));
    }
    if let Some(refund) = &doc.refund_id {
        notes.push(format!("Refund {refund}."));
    }
    notes.push(format!(
        "Financial year {}. Tax payable on reverse charge: No. A computer-generated document.",
        doc.financial_year
    ));
    for note in notes {
        for line in wrap(&note, 110) {
            let y = p.y;
            p.text(LEFT, y, Font::Regular, 8.0, &line);
            p.down(11.0);
        }
    }
    p.finish(&format!("{title} {}", doc.number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inr(minor: i64) -> WireMoney {
        WireMoney {
            amount_minor: minor,
            currency: "INR".into(),
        }
    }

    fn inr_json(minor: i64) -> serde_json::Value {
        serde_json::json!({"amount_minor": minor, "currency": "INR"})
    }

    #[test]
    fn figures_group_rupees_in_lakhs_and_others_in_thousands() {
        assert_eq!(figures(&inr(118_050)), "1,180.50");
        assert_eq!(figures(&inr(11_805_000)), "1,18,050.00");
        assert_eq!(figures(&inr(1_234_567_890)), "1,23,45,678.90");
        assert_eq!(figures(&inr(5)), "0.05");
        let usd = WireMoney {
            amount_minor: 123_456_789,
            currency: "USD".into(),
        };
        assert_eq!(figures(&usd), "1,234,567.89");
        let jpy = WireMoney {
            amount_minor: 1500,
            currency: "JPY".into(),
        };
        assert_eq!(figures(&jpy), "1,500");
        assert_eq!(percent("0.09"), "9%");
        assert_eq!(percent("0.025"), "2.5%");
        assert_eq!(date(1_796_637_600_000), "07 Dec 2026");
        assert_eq!(win_ansi("Café ₹"), b"Caf\xe9 ?");
    }

    /// A two-line intra-state invoice, drawn: the text a reader extracts
    /// is checked by the orders test with a PDF library (pypdf); here, that
    /// the content streams say what the document says.
    #[test]
    fn an_invoice_draws_its_number_parties_lines_and_totals() {
        let doc: InvoiceDocument = serde_json::from_value(serde_json::json!({
            "event_id": "e", "kind": "TAX_INVOICE", "number": "INV/26-27/000001",
            "series": "INV/26-27", "sequence": 1, "financial_year": "2026-27",
            "issued_at": 1_796_637_600_000i64, "order_token": "ord_1", "request_id": "r",
            "version": 0, "against_number": null, "against_issued_at": null,
            "supplier": {"name": "InternHub Learning Pvt Ltd", "gstin": "29ABCDE1234F1Z5",
                         "address": "1 MG Road, Bengaluru 560001", "state": "Karnataka",
                         "state_code": "29"},
            "buyer": {"user_id": "u_1", "gstin": "pii1.k.n.c", "country": "IN", "state": "KA"},
            "place_of_supply": "Karnataka (29)", "supply": "INTRA_STATE", "currency": "INR",
            "tax_inclusive": false,
            "lines": [{"number": 1, "internship_id": "i", "description": "Backend Engineering Internship (Rust, Kafka) with a long title",
                       "sac": "999293", "quantity": 2, "unit_price": inr_json(25_000),
                       "discount": inr_json(0), "taxable_value": inr_json(50_000),
                       "taxes": [{"name": "CGST", "rate": "0.09", "amount": inr_json(4_500)},
                                 {"name": "SGST", "rate": "0.09", "amount": inr_json(4_500)}],
                       "total": inr_json(59_000)}],
            "taxes": [{"name": "CGST", "rate": "0.09", "amount": inr_json(4_500)},
                      {"name": "SGST", "rate": "0.09", "amount": inr_json(4_500)}],
            "taxable_total": inr_json(50_000), "tax_total": inr_json(9_000), "total": inr_json(59_000),
            "total_in_words": "Indian Rupees Five Hundred Ninety Only", "fx": null,
            "gateway": "razorpay", "payment_ref": "pay_1", "refund_id": null, "notes": []
        }))
        .expect("a document");
        let pdf = render(&doc, Some("27AAACB1234C1Z9"));
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        for want in [
            "(TAX INVOICE)",
            "(No. INV/26-27/000001)",
            "(GSTIN: 29ABCDE1234F1Z5)",
            "(GSTIN: 27AAACB1234C1Z9)",
            "(Place of supply: Karnataka (29))",
            "(CGST 9%)",
            "(590.00)",
            "(In words: Indian Rupees Five Hundred Ninety Only)",
        ] {
            assert!(text.contains(want), "{want} not drawn");
        }
        assert!(!text.contains("pii1."), "the sealed value is never drawn");
    }
}
