//! The shared vocabulary every connector speaks: what we ask a gateway for
//! (a payment session, a look-up, a refund) and what we get back, in our
//! types (`Money`, our order id), never in a gateway's.

use std::collections::BTreeMap;
use std::fmt;

use schemas::{Currency, Money};

use crate::error::TransformError;
use crate::Gateway;

/// Our order id as the gateways carry it: Razorpay's `receipt` (at most 40
/// characters), Stripe's `client_reference_id` and metadata.
///
/// It lives here until the orders issue gives the project its own order id
/// type in `schemas`; this one is only the gateways' view of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    pub const MAX_LEN: usize = 40;

    pub fn parse(raw: &str) -> Result<OrderId, TransformError> {
        let invalid = |reason| TransformError::InvalidValue {
            kind: "order id",
            value: raw.to_owned(),
            reason,
        };
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(invalid("1 to 40 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(invalid("letters, digits, '-', '_', '.', ':' only"));
        }
        Ok(OrderId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key that makes a retried call apply once: Stripe's `Idempotency-Key`
/// header (1-255 visible ASCII characters). The caller derives it from what
/// the call is for (the order and the attempt at paying it), never at
/// random, so a worker that restarts sends the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<IdempotencyKey, TransformError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TransformError::InvalidValue {
                kind: "idempotency key",
                value: raw.to_owned(),
                reason: "1 to 255 visible ASCII characters",
            });
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of the order as the buyer sees it on a hosted page.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub unit_amount: Money,
    pub quantity: u32,
}

/// What we know of the buyer, to prefill the gateway's form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buyer {
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// A payment session to open for one of our orders.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRequest {
    pub order_id: OrderId,
    /// Sent as Stripe's `Idempotency-Key`; Razorpay has none and is made
    /// safe by looking up `receipt` instead.
    pub idempotency_key: IdempotencyKey,
    /// What the buyer pays, equal to the sum of the lines.
    pub amount: Money,
    pub lines: Vec<Line>,
    pub buyer: Buyer,
    /// Where Stripe sends the buyer after paying (may contain
    /// `{CHECKOUT_SESSION_ID}`). Fulfilment never depends on it.
    pub success_url: String,
    pub cancel_url: String,
    /// Unix seconds: the expiry of our payment token. Stripe's
    /// `expires_at`, which must be 30 min to 24 h ahead.
    pub expires_at: i64,
    /// More of our ids to carry (cart token, user id), beside `order_id`.
    pub metadata: BTreeMap<String, String>,
}

impl SessionRequest {
    /// The checks every gateway needs: lines that exist, in the order's
    /// currency, adding up to its amount, which is positive.
    pub(crate) fn check(&self) -> Result<(), TransformError> {
        if !self.amount.amount().is_sign_positive() || self.amount.amount().is_zero() {
            return Err(TransformError::NotPositive(self.amount));
        }
        if self.lines.is_empty() {
            return Err(TransformError::NoLines);
        }
        let currency = self.amount.currency();
        let mut total = Money::zero(currency);
        for (index, line) in self.lines.iter().enumerate() {
            if line.quantity == 0 {
                return Err(TransformError::ZeroQuantity { index });
            }
            if line.name.trim().is_empty() {
                return Err(TransformError::EmptyName { index });
            }
            if line.unit_amount.currency() != currency {
                return Err(TransformError::CurrencyMismatch {
                    index,
                    line: line.unit_amount.currency(),
                    order: currency,
                });
            }
            total = total.checked_add(&line.unit_amount.times(line.quantity)?)?;
        }
        if total.to_minor()? != self.amount.to_minor()? {
            return Err(TransformError::LinesDoNotAddUp {
                lines: total,
                amount: self.amount,
            });
        }
        Ok(())
    }
}

/// An amount as Razorpay and Stripe take it: an integer count of the
/// currency's minor unit (paise for INR, yen for JPY, fils for KWD). Both
/// require a three-decimal currency's count to end in 0; we refuse rather
/// than round, because the buyer must pay what the order says.
pub(crate) fn minor_units(money: &Money) -> Result<i64, TransformError> {
    let minor = money.to_minor()?;
    if money.currency().exponent() == 3 && minor % 10 != 0 {
        return Err(TransformError::ThreeDecimalNotRoundedToTen(*money));
    }
    Ok(minor)
}

/// A payment session the gateway opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub gateway: Gateway,
    /// The gateway's id: Razorpay `order_…`, Stripe `cs_…`. What
    /// [`crate::Connector::look_up`] takes.
    pub id: String,
    /// Unix seconds. Razorpay orders do not expire: this is the request's.
    pub expires_at: i64,
    pub checkout: Checkout,
}

/// What the frontend needs to take the buyer to the payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkout {
    /// Stripe: send the buyer to the hosted page.
    Redirect { url: String },
    /// Razorpay: open Razorpay Checkout with these options.
    Razorpay {
        key_id: String,
        order_id: String,
        amount_minor: i64,
        currency: Currency,
        prefill: Buyer,
    },
}

/// Where the payment of a session stands, as a look-up tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentStatus {
    /// Nothing paid yet; the buyer can still pay.
    Open,
    /// The buyer finished, the money is on its way (Stripe's delayed
    /// methods: `complete` and `unpaid`).
    Processing,
    Paid {
        payment_id: String,
        amount: Money,
    },
    /// The last attempt failed. Razorpay orders and open Stripe sessions
    /// stay payable: this is not final until the session expires.
    Failed {
        payment_id: Option<String>,
        reason: Option<String>,
    },
    /// The session expired unpaid (Stripe).
    Expired,
}

/// A refund to make of a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRequest {
    pub order_id: OrderId,
    /// Razorpay `pay_…`, Stripe `pi_…`.
    pub payment_id: String,
    /// `None` refunds what remains of the payment.
    pub amount: Option<Money>,
    pub idempotency_key: IdempotencyKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub gateway: Gateway,
    /// Razorpay `rfnd_…`, Stripe `re_…`.
    pub id: String,
    pub payment_id: String,
    pub amount: Money,
    pub status: RefundStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Processed,
    Failed,
}

/// A verified webhook, read.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub gateway: Gateway,
    /// The dedupe key: Razorpay's `x-razorpay-event-id`, Stripe's `evt_…`.
    pub id: String,
    /// The gateway's event type, as sent (`payment.captured`).
    pub kind: String,
    pub event: PaymentEvent,
}

/// Which payment an event is about. Every field is optional because each
/// event carries a different subset; at least one is always there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaymentRef {
    /// Ours, from `notes`/`metadata`/`receipt`/`client_reference_id`.
    pub order_id: Option<OrderId>,
    /// The session's id: Razorpay `order_…`, Stripe `cs_…`.
    pub session_id: Option<String>,
    /// Razorpay `pay_…`, Stripe `pi_…`.
    pub payment_id: Option<String>,
    /// How the buyer paid (card, upi, netbanking, wallet, …), when the
    /// event says: Razorpay's payment entity does.
    pub method: Option<String>,
}

/// What a webhook tells us, in our terms.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    /// Razorpay `payment.captured`: money taken for one payment.
    PaymentCaptured { at: PaymentRef, amount: Money },
    /// Razorpay `order.paid`, Stripe `checkout.session.completed` with
    /// `payment_status` paid and `checkout.session.async_payment_succeeded`:
    /// the session is paid. The one event fulfilment acts on.
    OrderPaid { at: PaymentRef, amount: Money },
    /// Stripe `checkout.session.completed` with `payment_status` unpaid:
    /// a delayed method; wait for the async outcome.
    AwaitingPayment { at: PaymentRef },
    /// Razorpay `payment.failed`, Stripe `payment_intent.payment_failed` and
    /// `checkout.session.async_payment_failed`.
    PaymentFailed {
        at: PaymentRef,
        reason: Option<String>,
    },
    /// Stripe `checkout.session.expired`.
    SessionExpired { at: PaymentRef },
    /// Razorpay `refund.processed`, Stripe `refund.created`/`refund.updated`
    /// with status succeeded.
    RefundProcessed {
        /// Ours, from the refund's `notes`/`metadata` (set when we asked).
        order_id: Option<OrderId>,
        refund_id: String,
        payment_id: Option<String>,
        amount: Money,
    },
    /// Razorpay `refund.failed`, Stripe refunds with status failed.
    RefundFailed {
        order_id: Option<OrderId>,
        refund_id: String,
        payment_id: Option<String>,
        amount: Money,
    },
    /// An event we receive and acknowledge but do not act on.
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    fn request(amount: Money, lines: Vec<Line>) -> SessionRequest {
        SessionRequest {
            order_id: OrderId::parse("ord-1").unwrap(),
            idempotency_key: IdempotencyKey::parse("session:ord-1:1").unwrap(),
            amount,
            lines,
            buyer: Buyer::default(),
            success_url: "https://shop.test/ok".into(),
            cancel_url: "https://shop.test/cancel".into(),
            expires_at: 0,
            metadata: BTreeMap::new(),
        }
    }

    fn line(unit: Money, quantity: u32) -> Line {
        Line {
            name: "Rust backend internship".into(),
            unit_amount: unit,
            quantity,
        }
    }

    #[test]
    fn order_ids_fit_razorpay_receipts() {
        assert!(OrderId::parse("6f1c0a4e-2d7b-4c1e-9a55-0d3c1b2a9f10").is_ok());
        assert!(OrderId::parse(&"a".repeat(40)).is_ok());
        assert!(OrderId::parse(&"a".repeat(41)).is_err());
        assert!(OrderId::parse("").is_err());
        assert!(OrderId::parse("has space").is_err());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("").is_err());
    }

    #[test]
    fn lines_must_add_up_to_the_amount() {
        assert_eq!(
            request(inr(99800), vec![line(inr(49900), 2)]).check(),
            Ok(())
        );
        assert!(matches!(
            request(inr(99900), vec![line(inr(49900), 2)]).check(),
            Err(TransformError::LinesDoNotAddUp { .. })
        ));
        assert!(matches!(
            request(inr(0), vec![line(inr(0), 1)]).check(),
            Err(TransformError::NotPositive(_))
        ));
        assert_eq!(
            request(inr(100), vec![]).check(),
            Err(TransformError::NoLines)
        );
        assert_eq!(
            request(inr(100), vec![line(inr(100), 0)]).check(),
            Err(TransformError::ZeroQuantity { index: 0 })
        );
        assert!(matches!(
            request(
                inr(100),
                vec![line(Money::from_minor(100, Currency::USD), 1)]
            )
            .check(),
            Err(TransformError::CurrencyMismatch { index: 0, .. })
        ));
    }

    #[test]
    fn minor_units_follow_the_currency_and_the_gateways_three_decimal_rule() {
        assert_eq!(minor_units(&inr(29500)), Ok(29500));
        // Zero-decimal: yen are the unit itself.
        assert_eq!(minor_units(&Money::from_minor(500, Currency::JPY)), Ok(500));
        // Three-decimal: fils, ending in 0.
        assert_eq!(
            minor_units(&Money::from_minor(5120, Currency::KWD)),
            Ok(5120)
        );
        assert!(matches!(
            minor_units(&Money::from_minor(5124, Currency::KWD)),
            Err(TransformError::ThreeDecimalNotRoundedToTen(_))
        ));
    }
}
