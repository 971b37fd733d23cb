//! The topic catalog: every topic the pipeline uses, with its key and value
//! schemas, partition count and cleanup policy. Nothing else in the code
//! base names a topic.
//!
//! Keys are plain UTF-8 strings: the entity id (the cart token, the
//! internship id, the coupon code), the way Confluent's own examples key
//! their orders. Values are Avro through the registry. A key's bytes then
//! depend on nothing but the id, so the partition a key lands in (murmur2
//! of those bytes, as every Kafka client computes it) is the same whatever
//! registry or schema id a deployment has. Topics joined by key (a command
//! topic and its processor's changelog) must keep the same partition count;
//! the runner writes a changelog record to the partition of the input it
//! came from.

use std::marker::PhantomData;

use crate::records::{
    audit::AuditEvent,
    cart::{CartCommand, CartSnapshot},
    catalog::Internship,
    coupons::{Coupon, CouponCommand, CouponRedemption},
    dead_letter::DeadLetter,
    enrollment::{EnrollmentBook, EnrollmentCommand, EnrollmentEvent},
    fx::FxRate,
    invoices::{InvoiceDocument, InvoiceRequest},
    order::{OrderCommand, OrderEvent, OrderSnapshot},
    payments::PaymentRequest,
    runtime::AppliedInput,
    support::SupportCase,
    webhooks::{InboundWebhook, RetryBook, RetryCommand, WebhookLog},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Keep by time (commands and events: the history is the point).
    Delete,
    /// Keep the latest record per key (snapshots, changelogs).
    Compact,
}

impl Cleanup {
    pub fn as_config(self) -> &'static str {
        match self {
            Cleanup::Delete => "delete",
            Cleanup::Compact => "compact",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDef {
    /// The name without the deployment's prefix.
    pub name: &'static str,
    pub partitions: i32,
    pub cleanup: Cleanup,
    /// `retention.ms` when the topic keeps records for a bounded time
    /// only; `None` leaves the broker's default.
    pub retention_ms: Option<i64>,
    pub value_schema: &'static str,
    pub doc: &'static str,
}

/// A topic whose values are `V`: the codec only encodes and decodes the
/// record type the catalog pairs with the topic.
#[derive(Debug)]
pub struct Topic<V> {
    pub def: TopicDef,
    _value: PhantomData<fn() -> V>,
}

impl<V> Topic<V> {
    const fn new(def: TopicDef) -> Topic<V> {
        Topic {
            def,
            _value: PhantomData,
        }
    }
}

/// `retention.ms` of the table topics: every version is kept, not only the
/// latest per key (compaction would drop them), because a command names
/// the table versions it is priced at and a replay must find them. Tables
/// change rarely (prices, rates, coupons), so their whole history is small.
/// Each has one partition, so a version (an offset) names one content.
pub const KEEP_FOREVER: i64 = -1;

/// Partitions of the cart command topic and everything co-partitioned with it.
const CART_PARTITIONS: i32 = 4;

pub const CATALOG_INTERNSHIPS: Topic<Internship> = Topic::new(TopicDef {
    name: "catalog.internships",
    partitions: 1,
    cleanup: Cleanup::Delete,
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.catalog.Internship.avsc"),
    doc: "The internship catalog, keyed by internship id; every cart processor reads all of it.",
});

pub const FX_RATES: Topic<FxRate> = Topic::new(TopicDef {
    name: "fx.rates",
    partitions: 1,
    cleanup: Cleanup::Delete,
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.fx.FxRate.avsc"),
    doc: "INR to display-currency rates, keyed by currency code; every cart processor reads all of it.",
});

pub const COUPONS: Topic<Coupon> = Topic::new(TopicDef {
    name: "coupons.definitions",
    partitions: 1,
    cleanup: Cleanup::Delete,
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.coupons.Coupon.avsc"),
    doc: "Coupon definitions, keyed by code; every cart processor reads all of it.",
});

pub const CART_COMMANDS: Topic<CartCommand> = Topic::new(TopicDef {
    name: "cart.commands",
    partitions: CART_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.cart.CartCommand.avsc"),
    doc:
        "Cart commands, keyed by cart token: those the ingress accepted, and the cart processor's \
          own follow-ups.",
});

pub const CART_SNAPSHOTS: Topic<CartSnapshot> = Topic::new(TopicDef {
    name: "cart.snapshots",
    partitions: CART_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.cart.CartSnapshot.avsc"),
    doc: "The priced cart after each command, keyed by cart token.",
});

pub const CART_CHANGELOG: Topic<CartSnapshot> = Topic::new(TopicDef {
    name: "cart.processor-changelog",
    partitions: CART_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.cart.CartSnapshot.avsc"),
    doc: "The cart processor's state, restored when it is assigned a partition of cart.commands.",
});

/// How long the gateways' raw webhooks are kept. Their bodies carry the
/// payer's email, phone and UPI handle, and nothing needs them once the
/// webhook processor has read them: duplicates are recognised by event id
/// (`webhook.processor-changelog`), a missed one is found by asking the
/// gateway (reconciliation), and a parked one waits on `webhooks.retry` as
/// the command it became. Three days leave room for an outage over a
/// weekend and for an operator to look at one.
pub const RAW_WEBHOOK_RETENTION_MS: i64 = 3 * 24 * 60 * 60 * 1000;

/// How long a processor remembers an applied input id: as long as the
/// ingress honours an Idempotency-Key.
pub const APPLIED_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

pub const CART_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "cart.processor-applied",
    partitions: CART_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The command ids the cart processor applied, per cart, for 24 h: a command repeated at \
          another offset (a retry with the same Idempotency-Key) is applied once. Written in the \
          input's partition, in the same transaction as the command's effects.",
});

/// Partitions of the order command topic and everything co-partitioned with it.
const ORDER_PARTITIONS: i32 = 4;

pub const ORDER_COMMANDS: Topic<OrderCommand> = Topic::new(TopicDef {
    name: "order.commands",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.order.OrderCommand.avsc"),
    doc: "Commands for one order, keyed by order token: its opening (from the cart processor), \
          the coupon processor's answers, a new payment attempt, a session opened or failed (from \
          the gateway worker), an attempt's expiry (the order processor's timer), payment outcomes \
          and reconciliation, refunds.",
});

pub const ORDER_SNAPSHOTS: Topic<OrderSnapshot> = Topic::new(TopicDef {
    name: "order.snapshots",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.order.OrderSnapshot.avsc"),
    doc: "The order after each command, with its frozen cart, payment attempts and audit trail, keyed by order token.",
});

pub const ORDER_CHANGELOG: Topic<OrderSnapshot> = Topic::new(TopicDef {
    name: "order.processor-changelog",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.order.OrderSnapshot.avsc"),
    doc: "The order processor's state, restored when it is assigned a partition of order.commands.",
});

pub const ORDER_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "order.processor-applied",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The command ids the order processor applied, per order, for 24 h (as cart.processor-applied).",
});

pub const ORDER_EVENTS: Topic<OrderEvent> = Topic::new(TopicDef {
    name: "order.events",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.order.OrderEvent.avsc"),
    doc: "Order outcomes (OrderPaid, OrderFailed, OrderExpired, OrderRefunded), once per transition, keyed by order token.",
});

pub const PAYMENT_REQUESTS: Topic<PaymentRequest> = Topic::new(TopicDef {
    name: "payment.requests",
    partitions: ORDER_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.payments.PaymentRequest.avsc"),
    doc: "Requests to the gateways, keyed by order token: a session to open per order attempt, a \
          payment to look up, a refund; the gateway worker makes each call (the request id is the \
          idempotency key) and answers on order.commands.",
});

/// Partitions of the coupon command topic and everything co-partitioned with it.
const COUPON_PARTITIONS: i32 = 4;

pub const COUPON_COMMANDS: Topic<CouponCommand> = Topic::new(TopicDef {
    name: "coupon.commands",
    partitions: COUPON_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.coupons.CouponCommand.avsc"),
    doc: "Reservations, commits and releases of a coupon for an order, keyed by coupon code: \
          every use of one coupon is counted by one processor partition, in order.",
});

pub const COUPON_REDEMPTIONS: Topic<CouponRedemption> = Topic::new(TopicDef {
    name: "coupon.redemptions",
    partitions: COUPON_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.coupons.CouponRedemption.avsc"),
    doc: "Each order's use of a coupon (reserved, committed, released) after every change, keyed by code/order_token, with the coupon's counts.",
});

/// One record per order holding a coupon (not the coupon's whole list): a
/// popular coupon's state costs a small record per change, however many
/// orders used it. Named apart from the other changelogs because its
/// records changed type (`CouponUsage` before).
pub const COUPON_CHANGELOG: Topic<CouponRedemption> = Topic::new(TopicDef {
    name: "coupon.processor-ledger",
    partitions: COUPON_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.coupons.CouponRedemption.avsc"),
    doc:
        "The coupon processor's state, one record per order holding or having used a coupon, restored when it is assigned a partition of coupon.commands.",
});

pub const COUPON_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "coupon.processor-applied",
    partitions: COUPON_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The command ids the coupon processor applied, per coupon, for 24 h.",
});

/// Partitions of the inbound webhook topic and its processor's topics.
const WEBHOOK_PARTITIONS: i32 = 4;

pub const WEBHOOKS_INBOUND: Topic<InboundWebhook> = Topic::new(TopicDef {
    name: "webhooks.inbound",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(RAW_WEBHOOK_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.webhooks.InboundWebhook.avsc"),
    doc: "Gateway webhooks whose signature the ingress verified, raw, keyed by the gateway's session \
          id (refund events by our order reference, else the event id).",
});

pub const WEBHOOK_CHANGELOG: Topic<WebhookLog> = Topic::new(TopicDef {
    name: "webhook.processor-changelog",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.webhooks.WebhookLog.avsc"),
    doc: "The webhook processor's state: the events applied per gateway session.",
});

pub const WEBHOOK_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "webhook.processor-applied",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The event ids the webhook processor applied, per gateway session, for 24 h.",
});

pub const WEBHOOKS_RETRY: Topic<RetryCommand> = Topic::new(TopicDef {
    name: "webhooks.retry",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.webhooks.RetryCommand.avsc"),
    doc: "Gateway order commands parked because their order is not known yet, and their redeliveries, keyed by order token.",
});

pub const WEBHOOK_RETRY_CHANGELOG: Topic<RetryBook> = Topic::new(TopicDef {
    name: "webhook-retry.processor-changelog",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.webhooks.RetryBook.avsc"),
    doc: "The webhook retry stage's state: parked commands and redelivery counts per order.",
});

pub const WEBHOOK_RETRY_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "webhook-retry.processor-applied",
    partitions: WEBHOOK_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The retry records the retry stage applied, per order, for 24 h.",
});

/// Partitions of the enrollment command topic and its processor's topics.
const ENROLLMENT_PARTITIONS: i32 = 4;

pub const ENROLLMENT_COMMANDS: Topic<EnrollmentCommand> = Topic::new(TopicDef {
    name: "enrollment.commands",
    partitions: ENROLLMENT_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.enrollment.EnrollmentCommand.avsc"),
    doc:
        "Enrollment commands keyed by the buyer (user id, or guest:<order token>): a paid order to \
          enroll, a refunded one to revoke, seats to assign.",
});

pub const ENROLLMENT_SNAPSHOTS: Topic<EnrollmentBook> = Topic::new(TopicDef {
    name: "enrollment.snapshots",
    partitions: ENROLLMENT_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.enrollment.EnrollmentBook.avsc"),
    doc: "A buyer's enrollments and seats after each command, keyed by the buyer.",
});

pub const ENROLLMENT_CHANGELOG: Topic<EnrollmentBook> = Topic::new(TopicDef {
    name: "enrollment.processor-changelog",
    partitions: ENROLLMENT_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.enrollment.EnrollmentBook.avsc"),
    doc: "The enrollment processor's state, restored when it is assigned a partition.",
});

pub const ENROLLMENT_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "enrollment.processor-applied",
    partitions: ENROLLMENT_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The command ids the enrollment processor applied, per buyer, for 24 h.",
});

pub const ENROLLMENT_EVENTS: Topic<EnrollmentEvent> = Topic::new(TopicDef {
    name: "enrollment.events",
    partitions: ENROLLMENT_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.enrollment.EnrollmentEvent.avsc"),
    doc:
        "EnrollmentCreated / EnrollmentFailed, keyed by the buyer, written in the transaction that \
          changes the buyer's book: the enrollment history, for tools outside the pipeline.",
});

/// Partitions of `support.cases` (keyed by order token, as orders are).
const SUPPORT_PARTITIONS: i32 = 4;

pub const SUPPORT_CASES: Topic<SupportCase> = Topic::new(TopicDef {
    name: "support.cases",
    partitions: SUPPORT_PARTITIONS,
    cleanup: Cleanup::Delete,
    // A case is rare and is the only record that a paid buyer was not
    // enrolled: it is kept until someone has dealt with it, not for the
    // broker's default week.
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.support.SupportCase.avsc"),
    doc:
        "Support cases keyed by order token: a paid line the enrollment processor could not enroll \
          (with the order, the reason and the buyer).",
});

/// The invoice ledger is one key (`records::invoices::LEDGER_KEY`): every
/// number of every series is decided in one place, in input order. One
/// partition for its topics, so the sales register on
/// `invoice.documents` reads in the order it was numbered.
const INVOICE_PARTITIONS: i32 = 1;

pub const INVOICE_REQUESTS: Topic<InvoiceRequest> = Topic::new(TopicDef {
    name: "invoice.requests",
    partitions: INVOICE_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.invoices.InvoiceRequest.avsc"),
    doc:
        "Requests for a GST tax invoice (an order paid) or a credit note (an order refunded), from \
          the order processor, all under the seller's ledger key.",
});

/// The invoice processor's state: the documents it issued, each under its
/// own number (never rewritten), folded back into the ledger on restore.
pub const INVOICE_CHANGELOG: Topic<InvoiceDocument> = Topic::new(TopicDef {
    name: "invoice.processor-ledger",
    partitions: INVOICE_PARTITIONS,
    cleanup: Cleanup::Compact,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.invoices.InvoiceDocument.avsc"),
    doc: "The invoice processor's state (every document it issued, by number), restored when it \
          is assigned the ledger.",
});

pub const INVOICE_APPLIED: Topic<AppliedInput> = Topic::new(TopicDef {
    name: "invoice.processor-applied",
    partitions: INVOICE_PARTITIONS,
    cleanup: Cleanup::Delete,
    retention_ms: Some(APPLIED_RETENTION_MS),
    value_schema: include_str!("../avro/internhub.runtime.AppliedInput.avsc"),
    doc: "The request ids the invoice processor applied, for 24 h.",
});

pub const INVOICE_DOCUMENTS: Topic<InvoiceDocument> = Topic::new(TopicDef {
    name: "invoice.documents",
    partitions: INVOICE_PARTITIONS,
    cleanup: Cleanup::Delete,
    // The sales register: kept as long as the law keeps books (and longer
    // than any broker default), read by accounting tools.
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.invoices.InvoiceDocument.avsc"),
    doc:
        "GST tax invoices and credit notes keyed by their number (INV/26-27/000001), in the order \
          they were numbered: supplier, buyer, place of supply, each line with its tax, totals in \
          figures and words; materialized into the `invoices` table.",
});

/// Partitions of `audit.events` (keyed by subject; an order's events in
/// order on one partition).
const AUDIT_PARTITIONS: i32 = 4;

pub const AUDIT_EVENTS: Topic<AuditEvent> = Topic::new(TopicDef {
    name: "audit.events",
    partitions: AUDIT_PARTITIONS,
    cleanup: Cleanup::Delete,
    // The trail outlives the broker's default week: it is what an
    // accountant or an investigator reads years later.
    retention_ms: Some(KEEP_FOREVER),
    value_schema: include_str!("../avro/internhub.audit.AuditEvent.avsc"),
    doc:
        "Every change of money or access (an order's transitions and refusals, payments, refunds, \
          coupon uses), keyed by its subject, written by the stage that made it in the same \
          transaction, with actor, reason and correlation id; appended to the `audit_log` table.",
});

pub const DEAD_LETTERS: Topic<DeadLetter> = Topic::new(TopicDef {
    name: "dead-letters",
    partitions: 1,
    cleanup: Cleanup::Delete,
    retention_ms: None,
    value_schema: include_str!("../avro/internhub.runtime.DeadLetter.avsc"),
    doc: "Records a stage could not take (undecodable, refused for good by Postgres, a webhook for no \
          known order, a payment for review, a parked command out of retries), with the reason, \
          where they came from and their original bytes; keyed by `<topic>/<partition>/<offset>`. \
          `checkoutctl dlq list | show | replay`.",
});

/// Every topic, for creation and schema registration.
pub const ALL: &[TopicDef] = &[
    CATALOG_INTERNSHIPS.def,
    FX_RATES.def,
    COUPONS.def,
    CART_COMMANDS.def,
    CART_SNAPSHOTS.def,
    CART_CHANGELOG.def,
    CART_APPLIED.def,
    ORDER_COMMANDS.def,
    ORDER_SNAPSHOTS.def,
    ORDER_CHANGELOG.def,
    ORDER_APPLIED.def,
    ORDER_EVENTS.def,
    PAYMENT_REQUESTS.def,
    COUPON_COMMANDS.def,
    COUPON_REDEMPTIONS.def,
    COUPON_CHANGELOG.def,
    COUPON_APPLIED.def,
    WEBHOOKS_INBOUND.def,
    WEBHOOK_CHANGELOG.def,
    WEBHOOK_APPLIED.def,
    WEBHOOKS_RETRY.def,
    WEBHOOK_RETRY_CHANGELOG.def,
    WEBHOOK_RETRY_APPLIED.def,
    ENROLLMENT_COMMANDS.def,
    ENROLLMENT_SNAPSHOTS.def,
    ENROLLMENT_CHANGELOG.def,
    ENROLLMENT_APPLIED.def,
    ENROLLMENT_EVENTS.def,
    SUPPORT_CASES.def,
    INVOICE_REQUESTS.def,
    INVOICE_CHANGELOG.def,
    INVOICE_APPLIED.def,
    INVOICE_DOCUMENTS.def,
    AUDIT_EVENTS.def,
    DEAD_LETTERS.def,
];

/// Applies a deployment's prefix (empty in production, unique per test).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl TopicNames {
    pub fn new(prefix: impl Into<String>) -> TopicNames {
        TopicNames {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn name(&self, def: &TopicDef) -> String {
        format!("{}{}", self.prefix, def.name)
    }

    /// A consumer group name in the same namespace as the topics.
    pub fn group(&self, group: &str) -> String {
        format!("{}{}", self.prefix, group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_co_partitioned_topics_agree() {
        let mut names: Vec<_> = ALL.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(CART_COMMANDS.def.partitions, CART_CHANGELOG.def.partitions);
        assert_eq!(CART_COMMANDS.def.partitions, CART_APPLIED.def.partitions);
        assert_eq!(
            ORDER_COMMANDS.def.partitions,
            ORDER_CHANGELOG.def.partitions
        );
        assert_eq!(ORDER_COMMANDS.def.partitions, ORDER_APPLIED.def.partitions);
        assert_eq!(
            COUPON_COMMANDS.def.partitions,
            COUPON_CHANGELOG.def.partitions
        );
        assert_eq!(
            COUPON_COMMANDS.def.partitions,
            COUPON_APPLIED.def.partitions
        );
    }

    #[test]
    fn table_topics_keep_every_version_in_one_partition() {
        for t in [CATALOG_INTERNSHIPS.def, FX_RATES.def, COUPONS.def] {
            assert_eq!(t.partitions, 1, "{}: a version is one offset", t.name);
            assert_eq!(t.cleanup, Cleanup::Delete, "{}: no compaction", t.name);
            assert_eq!(t.retention_ms, Some(KEEP_FOREVER), "{}", t.name);
        }
    }

    #[test]
    fn prefix_applies_to_topics_and_groups() {
        let n = TopicNames::new("t1.");
        assert_eq!(n.name(&CART_COMMANDS.def), "t1.cart.commands");
        assert_eq!(n.group("cart-processor"), "t1.cart-processor");
    }
}
