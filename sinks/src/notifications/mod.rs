//! Notifications: the worker that emails buyers what happened to their
//! orders and enrollments — an order confirmation when an order is paid, a
//! payment-failure email when a payment attempt fails, an enrollment email
//! per enrollment — rendered as text and HTML and sent over SMTP with
//! `lettre` (in development, written as `.eml` files into `.local/mail`).
//!
//! It is a sink-like stage (one per input topic, `order.snapshots` and
//! `enrollment.snapshots`) on the shared consume loop, with its offsets in
//! Postgres as every sink's, and a sent-log (`notifications_sent`) keyed by
//! an id derived from each email's cause. What it guarantees:
//!
//! - **Nothing sent twice for a redelivery**: a record read again (a
//!   restart, a rebalance, a later snapshot of the same order) finds its
//!   email in the sent-log and sends nothing. The one exception SMTP
//!   leaves is a crash between the server accepting a message and the
//!   sent-log row committing (milliseconds); the email then goes again
//!   with the same Message-ID (derived from the notification id), which
//!   marks it as the same message.
//! - **Nothing dropped for an outage**: a send that fails is tried again,
//!   with backoff, and the batch's offsets do not move meanwhile; `/readyz`
//!   reports the outage and `notifications_send_failures_total` counts it.
//!   Only a permanent refusal by the server (5xx) is recorded and passed.
//! - A wanted email with no (valid) address is recorded once in
//!   `notifications_skipped` and counted (`notifications_skipped_total`).
//!
//! - [`decide`]: which emails a record asks for, to whom, under which id
//!   (pure);
//! - [`templates`]: their subject, text and HTML (pure);
//! - [`mailer`]: settings, the MIME message and the transport;
//! - [`worker`]: the stage (sent-log, sends, retries, offsets, metrics);
//! - [`service`]: wiring for `sinks notifications`.

pub mod decide;
pub mod mailer;
pub mod service;
pub mod templates;
pub mod worker;
