//! The joins the cart rules make, as traits the pure code depends on: the
//! catalog (prices always come from here, never from a client), the FX
//! rates and the coupon definitions. The running processor backs them with [`GlobalTable`]s; tests
//! back them with plain maps.

use std::collections::HashMap;

use rust_decimal::Decimal;

use schemas::records::catalog::Internship;
use schemas::records::fx::FxRate;
use schemas::Currency;

use super::GlobalTable;
use crate::cart::coupons::Coupon;
use crate::cart::pricing::Fx;
use schemas::records::coupons::Coupon as CouponRecord;

pub trait CatalogLookup {
    fn internship(&self, id: &str) -> Option<Internship>;
    /// The version of the catalog answered from (0 for a fixed one).
    fn catalog_version(&self) -> i64 {
        0
    }
}

impl CatalogLookup for HashMap<String, Internship> {
    fn internship(&self, id: &str) -> Option<Internship> {
        self.get(id).cloned()
    }
}

impl CatalogLookup for GlobalTable<Internship> {
    fn internship(&self, id: &str) -> Option<Internship> {
        self.get(id)
    }
    fn catalog_version(&self) -> i64 {
        self.version()
    }
}

/// Coupon definitions by code.
pub trait CouponLookup {
    fn coupon(&self, code: &str) -> Option<Coupon>;
    /// The version of the definitions answered from (0 for fixed ones).
    fn coupons_version(&self) -> i64 {
        0
    }
}

impl CouponLookup for HashMap<String, CouponRecord> {
    fn coupon(&self, code: &str) -> Option<Coupon> {
        self.get(code).and_then(Coupon::from_record)
    }
}

impl CouponLookup for GlobalTable<CouponRecord> {
    fn coupon(&self, code: &str) -> Option<Coupon> {
        self.get(code).as_ref().and_then(Coupon::from_record)
    }
    fn coupons_version(&self) -> i64 {
        self.version()
    }
}

/// The current INR → `currency` rate.
pub trait RateLookup {
    fn rate(&self, currency: Currency) -> Option<Fx>;
    /// The version of the rates answered from (0 for fixed ones).
    fn rates_version(&self) -> i64 {
        0
    }
}

/// Reads a published rate; a malformed one counts as absent.
pub fn fx_of(record: &FxRate) -> Option<Fx> {
    let currency = Currency::parse(&record.quote).ok()?;
    let rate: Decimal = record.rate.parse().ok()?;
    (rate > Decimal::ZERO && record.base == "INR").then_some(Fx {
        currency,
        rate,
        as_of_ms: record.as_of,
    })
}

impl RateLookup for HashMap<String, FxRate> {
    fn rate(&self, currency: Currency) -> Option<Fx> {
        self.get(currency.code()).and_then(fx_of)
    }
}

impl RateLookup for GlobalTable<FxRate> {
    fn rate(&self, currency: Currency) -> Option<Fx> {
        self.get(currency.code()).as_ref().and_then(fx_of)
    }
    fn rates_version(&self) -> i64 {
        self.version()
    }
}
