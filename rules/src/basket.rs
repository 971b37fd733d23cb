//! What pricing and coupons both read, so neither depends on the other for
//! it: a cart line as priced from the catalog, its tax class, and the FX
//! quote a display currency converts at.

use rust_decimal::Decimal;

use schemas::{Currency, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxClass {
    Standard,
    Exempt,
}

impl TaxClass {
    pub fn parse(s: &str) -> TaxClass {
        // Unknown classes are taxed: under-charging tax is the costly mistake.
        if s == "exempt" {
            TaxClass::Exempt
        } else {
            TaxClass::Standard
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaxClass::Standard => "standard",
            TaxClass::Exempt => "exempt",
        }
    }
}

/// A conversion from INR to the display currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fx {
    pub currency: Currency,
    /// Units of `currency` per 1 INR.
    pub rate: Decimal,
    pub as_of_ms: i64,
}

/// A line as the cart holds it, priced in the catalog's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInput {
    pub internship_id: String,
    pub title: String,
    /// The catalog category (coupon scopes name categories).
    pub category: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub tax_class: TaxClass,
}
