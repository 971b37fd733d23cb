//! The emails' words: a subject, a plain-text part and an HTML part for
//! each kind, rendered from a view that holds only what the email shows.
//! Pure functions, no I/O: what [`super::decide`] turns a snapshot into.
//!
//! Plain Rust formatting rather than a template engine: three short
//! emails do not pay for another dependency's compile time, and the one
//! thing an engine would add — escaping — is [`escape`], applied to every
//! value that reaches the HTML part (titles and reasons come from the
//! catalog and the gateways, not from us).

use std::fmt::Write;

use schemas::money::Money;

/// A rendered email, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One line of an order, as the confirmation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineView {
    pub title: String,
    pub quantity: i32,
    pub total: Money,
}

/// An order that was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationView {
    pub order_token: String,
    pub lines: Vec<LineView>,
    pub subtotal: Money,
    pub discount: Money,
    pub tax: Money,
    pub total: Money,
    /// The gateway and its payment reference, when the order names them.
    pub paid_with: Option<(String, String)>,
}

/// An order whose payment attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureView {
    pub order_token: String,
    pub attempt: i32,
    pub total: Money,
    /// Why, as the order's history says it.
    pub reason: String,
}

/// An enrollment (one person in one internship, or a block of seats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentView {
    pub title: String,
    pub internship_id: String,
    pub order_token: String,
    pub seats: i32,
}

const SIGNATURE: &str = "The InternHub team";

pub fn order_confirmation(v: &ConfirmationView) -> Rendered {
    let subject = format!("Your InternHub order is confirmed: {}", v.total);
    let mut text = String::new();
    let mut rows = String::new();
    // Writing to a String cannot fail: the `let _`s below drop an Ok.
    let _ = writeln!(text, "Hello,\n");
    let _ = writeln!(
        text,
        "thank you for your order. We received your payment of {}{}.\n",
        v.total,
        paid_with_text(&v.paid_with)
    );
    let _ = writeln!(text, "Order {}", v.order_token);
    for l in &v.lines {
        let _ = writeln!(text, "  {} x {}  {}", l.title, l.quantity, l.total);
        let _ = write!(
            rows,
            "<tr><td>{}</td><td style=\"text-align:right\">{}</td><td style=\"text-align:right\">{}</td></tr>",
            escape(&l.title),
            l.quantity,
            escape(&l.total.to_string())
        );
    }
    let mut sums = vec![("Subtotal", v.subtotal.to_string())];
    if !v.discount.amount().is_zero() {
        sums.push(("Discount", format!("-{}", v.discount)));
    }
    sums.push(("Tax", v.tax.to_string()));
    sums.push(("Total", v.total.to_string()));
    for (name, amount) in &sums {
        let _ = writeln!(text, "{name}: {amount}");
        let _ = write!(
            rows,
            "<tr><th colspan=\"2\" style=\"text-align:left\">{name}</th><td style=\"text-align:right\">{}</td></tr>",
            escape(amount)
        );
    }
    let _ = writeln!(
        text,
        "\nEach enrollment comes in an email of its own.\n\n{SIGNATURE}"
    );
    let html = page(
        &subject,
        &format!(
            "<p>Hello,</p>\
             <p>thank you for your order. We received your payment of <strong>{}</strong>{}.</p>\
             <p>Order <code>{}</code></p>\
             <table>{rows}</table>\
             <p>Each enrollment comes in an email of its own.</p>",
            escape(&v.total.to_string()),
            escape(&paid_with_text(&v.paid_with)),
            escape(&v.order_token),
        ),
    );
    Rendered {
        subject,
        text,
        html,
    }
}

fn paid_with_text(paid_with: &Option<(String, String)>) -> String {
    match paid_with {
        Some((gateway, reference)) => format!(" through {gateway} (reference {reference})"),
        None => String::new(),
    }
}

pub fn payment_failed(v: &FailureView) -> Rendered {
    let subject = format!("Your InternHub payment of {} did not go through", v.total);
    let text = format!(
        "Hello,\n\n\
         your payment of {total} for order {order} (attempt {attempt}) did not go through:\n\
         {reason}\n\n\
         Nothing was charged for this attempt. You can pay the order again from your orders page;\n\
         your cart's prices and coupons are kept with the order.\n\n\
         {SIGNATURE}\n",
        total = v.total,
        order = v.order_token,
        attempt = v.attempt,
        reason = v.reason,
    );
    let html = page(
        &subject,
        &format!(
            "<p>Hello,</p>\
             <p>your payment of <strong>{total}</strong> for order <code>{order}</code> \
             (attempt {attempt}) did not go through:</p>\
             <blockquote>{reason}</blockquote>\
             <p>Nothing was charged for this attempt. You can pay the order again from your \
             orders page; your cart's prices and coupons are kept with the order.</p>",
            total = escape(&v.total.to_string()),
            order = escape(&v.order_token),
            attempt = v.attempt,
            reason = escape(&v.reason),
        ),
    );
    Rendered {
        subject,
        text,
        html,
    }
}

pub fn enrollment(v: &EnrollmentView) -> Rendered {
    let subject = format!("You are enrolled: {}", v.title);
    let what = if v.seats > 1 {
        format!(
            "You hold {} seats in {}: assign each to a person from your orders page, and each gets an email of their own.",
            v.seats, v.title
        )
    } else {
        format!(
            "You are enrolled in {}. Your access is open now; your progress starts at 0 %.",
            v.title
        )
    };
    let text = format!(
        "Hello,\n\n{what}\n\nInternship: {id}\nOrder: {order}\n\n{SIGNATURE}\n",
        id = v.internship_id,
        order = v.order_token,
    );
    let html = page(
        &subject,
        &format!(
            "<p>Hello,</p><p>{}</p><p>Internship: <code>{}</code><br>Order: <code>{}</code></p>",
            escape(&what),
            escape(&v.internship_id),
            escape(&v.order_token),
        ),
    );
    Rendered {
        subject,
        text,
        html,
    }
}

/// The HTML document around a body; `title` is escaped here.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif\">{body}<p>{SIGNATURE}</p></body></html>\n",
        escape(title)
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::money::Currency;

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    fn confirmation() -> ConfirmationView {
        ConfirmationView {
            order_token: "0123456789abcdef0123456789abcdef".into(),
            lines: vec![
                LineView {
                    title: "Rust <backend> & APIs".into(),
                    quantity: 1,
                    total: inr(4_990_000),
                },
                LineView {
                    title: "Design".into(),
                    quantity: 2,
                    total: inr(4_980_000),
                },
            ],
            subtotal: inr(9_970_000),
            discount: inr(0),
            tax: inr(1_794_600),
            total: inr(11_764_600),
            paid_with: Some(("razorpay".into(), "pay_X1".into())),
        }
    }

    #[test]
    fn a_confirmation_shows_every_line_and_the_total_in_major_units() {
        let r = order_confirmation(&confirmation());
        assert_eq!(
            r.subject,
            "Your InternHub order is confirmed: 117646.00 INR"
        );
        assert!(r
            .text
            .contains("payment of 117646.00 INR through razorpay (reference pay_X1)"));
        assert!(r
            .text
            .contains("  Rust <backend> & APIs x 1  49900.00 INR\n"));
        assert!(r.text.contains("  Design x 2  49800.00 INR\n"));
        assert!(r
            .text
            .contains("Subtotal: 99700.00 INR\nTax: 17946.00 INR\nTotal: 117646.00 INR\n"));
        assert!(!r.text.contains("Discount"), "no discount line for zero");
        // The HTML part escapes the catalog's title and shows the same sums.
        assert!(r.html.contains("<td>Rust &lt;backend&gt; &amp; APIs</td>"));
        assert!(!r.html.contains("<backend>"));
        assert!(r.html.contains("<strong>117646.00 INR</strong>"));
        assert!(r.html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn a_discount_is_shown_as_taken_off() {
        let mut v = confirmation();
        v.discount = inr(99_700);
        v.paid_with = None;
        let r = order_confirmation(&v);
        assert!(r.text.contains("Discount: -997.00 INR\n"));
        assert!(r.text.contains("payment of 117646.00 INR.\n"), "{}", r.text);
    }

    #[test]
    fn amounts_follow_the_currency_exponent() {
        let mut v = confirmation();
        v.total = Money::from_minor(1_250, Currency::KWD);
        assert!(order_confirmation(&v).subject.ends_with("1.250 KWD"));
        v.total = Money::from_minor(500, Currency::JPY);
        assert!(order_confirmation(&v).subject.ends_with(": 500 JPY"));
    }

    #[test]
    fn a_failure_says_why_and_what_to_do() {
        let r = payment_failed(&FailureView {
            order_token: "abc".into(),
            attempt: 2,
            total: inr(58_882),
            reason: "payment failed at razorpay: the bank declined <it>".into(),
        });
        assert_eq!(
            r.subject,
            "Your InternHub payment of 588.82 INR did not go through"
        );
        assert!(r.text.contains("order abc (attempt 2)"));
        assert!(r.text.contains("the bank declined <it>"));
        assert!(r.html.contains("the bank declined &lt;it&gt;"));
        assert!(r.text.contains("pay the order again"));
    }

    #[test]
    fn an_enrollment_names_the_internship_and_seats_are_counted() {
        let one = enrollment(&EnrollmentView {
            title: "Design".into(),
            internship_id: "design".into(),
            order_token: "abc".into(),
            seats: 1,
        });
        assert_eq!(one.subject, "You are enrolled: Design");
        assert!(one.text.contains("You are enrolled in Design."));
        assert!(one.html.contains("Internship: <code>design</code>"));
        let seats = enrollment(&EnrollmentView {
            title: "Design".into(),
            internship_id: "design".into(),
            order_token: "abc".into(),
            seats: 3,
        });
        assert!(seats.text.contains("You hold 3 seats in Design"));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
