//! The checkout's rules, pure: no Kafka, no HTTP, no SQL, no clock (time
//! comes in as a value) and no randomness, so the processors and the
//! ingress decide the same way and a replay decides as the first run did.
//!
//! - [`cart`]: what a cart command does to a cart;
//! - [`pricing`]: what a cart costs, as a breakdown that always adds up;
//! - [`coupons`]: whether a coupon applies, and what it takes off each line;
//! - [`order`]: an order's life, from placement to paid, failed or expired;
//! - [`redemption`]: a coupon's uses, reserved, committed and released;
//! - [`enrollment`]: what a paid order does to its buyer's enrollments;
//! - [`invoice`]: the GST invoice and credit note of a paid (refunded) order, numbered;
//! - [`places`]: India's states and their GST codes (pricing, invoices);
//! - [`basket`]: the lines and FX quote pricing and coupons both read;
//! - [`tables`]: the joins the rules make (catalog, FX rates, coupons), as
//!   traits, and a table's history so a decision reads one version.
//!
//! The processors (`processors/`) run these rules on Kafka; the ingress
//! (`ingress/`) calls the same functions for estimates and validation.

pub mod basket;
pub mod cart;
pub mod coupons;
pub mod enrollment;
pub mod invoice;
pub mod order;
pub mod places;
pub mod pricing;
pub mod redemption;
pub mod tables;

/// A deployment setting that does not parse, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting: {0}")]
pub struct InvalidSetting(pub String);
