//! The joins the cart rules make, as traits the pure code depends on: the
//! catalog (prices always come from here, never from a client), the FX
//! rates and the coupon definitions. The processor answers them from a
//! [`Table`] as of one version ([`At`]): the versions a command was stamped
//! with, so a replay reads what the first run read. Rule tests back them
//! with plain maps.

mod history;

pub use history::History;

use std::collections::HashMap;
use std::time::Duration;

use rust_decimal::Decimal;

use schemas::records::catalog::Internship;
use schemas::records::fx::FxRate;
use schemas::Currency;

use futures::future::BoxFuture;

use crate::basket::Fx;
use crate::coupons::Coupon;
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

/// A table read by key, as of a version. The running processor's tables
/// are `processors::tables::GlobalTable`s (Kafka); tests use a plain map (one fixed version, 0) or a
/// [`History`].
pub trait Table<V>: Send + Sync {
    /// `key`'s value at `version` (the latest when `None`).
    fn get_at(&self, key: &str, version: Option<i64>) -> Option<V>;
    /// The newest version read.
    fn version(&self) -> i64;
    /// Resolves once the table has read `version`, or fails after `timeout`.
    /// A fixed table has every version.
    fn reached(&self, _version: i64, _timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

impl<V: Clone + Send + Sync> Table<V> for HashMap<String, V> {
    fn get_at(&self, key: &str, _version: Option<i64>) -> Option<V> {
        self.get(key).cloned()
    }
    fn version(&self) -> i64 {
        0
    }
}

impl<V: Clone + Send + Sync> Table<V> for History<V> {
    fn get_at(&self, key: &str, version: Option<i64>) -> Option<V> {
        History::get_at(self, key, version).cloned()
    }
    fn version(&self) -> i64 {
        History::version(self)
    }
    fn reached(&self, version: i64, _timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        let have = History::version(self);
        Box::pin(async move {
            if have >= version {
                Ok(())
            } else {
                Err(format!("table at version {have}, {version} wanted"))
            }
        })
    }
}

/// A table as it was at one version: what a command stamped with that
/// version is priced from. Every lookup of one decision goes through the
/// same version, so a table that moves on meanwhile changes nothing.
pub struct At<'a, T> {
    table: &'a T,
    version: i64,
}

impl<'a, T> At<'a, T> {
    pub fn new(table: &'a T, version: i64) -> At<'a, T> {
        At { table, version }
    }
}

impl<T: Table<Internship>> CatalogLookup for At<'_, T> {
    fn internship(&self, id: &str) -> Option<Internship> {
        self.table.get_at(id, Some(self.version))
    }
    fn catalog_version(&self) -> i64 {
        self.version
    }
}

impl<T: Table<FxRate>> RateLookup for At<'_, T> {
    fn rate(&self, currency: Currency) -> Option<Fx> {
        self.table
            .get_at(currency.code(), Some(self.version))
            .as_ref()
            .and_then(fx_of)
    }
    fn rates_version(&self) -> i64 {
        self.version
    }
}

impl<T: Table<CouponRecord>> CouponLookup for At<'_, T> {
    fn coupon(&self, code: &str) -> Option<Coupon> {
        self.table
            .get_at(code, Some(self.version))
            .as_ref()
            .and_then(Coupon::from_record)
    }
    fn coupons_version(&self) -> i64 {
        self.version
    }
}
