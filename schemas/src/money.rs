//! Money that knows its currency.
//!
//! An amount is a `rust_decimal::Decimal` paired with an ISO 4217 currency;
//! arithmetic across two currencies is an error, never a silent sum. On the
//! wire (and in Postgres) money travels as an integer count of the
//! currency's minor unit, as Stripe and Razorpay do, so a converted or
//! discounted amount must be rounded with [`Money::round`] before it leaves
//! the process: [`Money::to_minor`] refuses an amount with sub-minor digits.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency code {0:?}")]
    UnknownCurrency(String),
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
    #[error("{0} has digits below the minor unit of {1}")]
    NotInMinorUnits(Decimal, Currency),
}

/// An ISO 4217 currency this system can price in.
///
/// The table is closed on purpose: an unknown code is rejected at the edge
/// rather than priced with a guessed exponent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// (code, minor-unit exponent) from ISO 4217.
const CURRENCIES: &[(&str, u8)] = &[
    ("INR", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("AED", 2),
    ("SGD", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("BHD", 3),
    ("OMR", 3),
];

impl Currency {
    pub const INR: Currency = Currency {
        code: *b"INR",
        exponent: 2,
    };
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    pub const JPY: Currency = Currency {
        code: *b"JPY",
        exponent: 0,
    };
    pub const KWD: Currency = Currency {
        code: *b"KWD",
        exponent: 3,
    };

    /// Parses an alphabetic code, case-insensitively.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|(c, exponent)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *exponent,
                }
            })
            .ok_or(MoneyError::UnknownCurrency(code.to_owned()))
    }

    pub fn code(&self) -> &str {
        // The bytes come from the ASCII table above.
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    /// Digits after the decimal point of the minor unit (INR 2, JPY 0, KWD 3).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How an amount is brought to the minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Banker's rounding: ties go to the even digit.
    #[default]
    HalfEven,
    /// Ties go away from zero.
    HalfUp,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    pub fn zero(currency: Currency) -> Money {
        Money {
            amount: Decimal::ZERO,
            currency,
        }
    }

    /// An amount given as a count of minor units (29500 INR = ₹295.00).
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: Decimal::new(minor, currency.exponent()),
            currency,
        }
    }

    /// An exact decimal amount, possibly finer than the minor unit (an
    /// intermediate result of conversion or a percentage).
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// The count of minor units; an error if the amount is not a whole
    /// number of them (round first) or does not fit in an `i64`.
    pub fn to_minor(&self) -> Result<i64, MoneyError> {
        let scaled = self
            .amount
            .checked_mul(Decimal::from(10_i64.pow(self.currency.exponent())))
            .ok_or(MoneyError::Overflow)?;
        if !scaled.fract().is_zero() {
            return Err(MoneyError::NotInMinorUnits(self.amount, self.currency));
        }
        i64::try_from(scaled).map_err(|_| MoneyError::Overflow)
    }

    /// Rounds to the currency's minor unit.
    pub fn round(&self, rounding: Rounding) -> Money {
        let strategy = match rounding {
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
        };
        Money {
            amount: self
                .amount
                .round_dp_with_strategy(self.currency.exponent(), strategy),
            currency: self.currency,
        }
    }

    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    /// The amount times a count (a quantity of seats).
    pub fn times(&self, count: u32) -> Result<Money, MoneyError> {
        let amount = self
            .amount
            .checked_mul(Decimal::from(count))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    /// The amount times a fraction (a tax or discount rate), rounded to the
    /// minor unit.
    pub fn times_rate(&self, rate: Decimal, rounding: Rounding) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_mul(rate).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency).round(rounding))
    }

    /// Sums amounts that must all be in `currency`.
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    /// `295.00 INR`: the amount with exactly the currency's minor digits
    /// when it has no finer digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.amount;
        if shown.scale() < self.currency.exponent() {
            shown.rescale(self.currency.exponent());
        }
        write!(f, "{} {}", shown, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(
            Money::from_minor(29500, Currency::INR).amount(),
            dec("295.00")
        );
        assert_eq!(Money::from_minor(500, Currency::JPY).amount(), dec("500"));
        assert_eq!(
            Money::from_minor(1250, Currency::KWD).amount(),
            dec("1.250")
        );
        assert_eq!(
            Money::from_minor(29500, Currency::INR).to_string(),
            "295.00 INR"
        );
    }

    #[test]
    fn sub_minor_amounts_must_be_rounded_before_leaving() {
        let m = Money::new(dec("10.005"), Currency::INR);
        assert!(matches!(m.to_minor(), Err(MoneyError::NotInMinorUnits(..))));
        assert_eq!(m.round(Rounding::HalfEven).to_minor(), Ok(1000));
        assert_eq!(m.round(Rounding::HalfUp).to_minor(), Ok(1001));
        assert_eq!(
            Money::new(dec("0.5"), Currency::JPY)
                .round(Rounding::HalfEven)
                .to_minor(),
            Ok(0)
        );
        assert_eq!(
            Money::new(dec("0.5"), Currency::JPY)
                .round(Rounding::HalfUp)
                .to_minor(),
            Ok(1)
        );
    }

    #[test]
    fn currencies_do_not_mix() {
        let inr = Money::from_minor(100, Currency::INR);
        let usd = Money::from_minor(100, Currency::USD);
        assert_eq!(
            inr.checked_add(&usd),
            Err(MoneyError::CurrencyMismatch(Currency::INR, Currency::USD))
        );
    }

    #[test]
    fn unknown_currencies_are_rejected() {
        assert!(Currency::parse("XXX").is_err());
        assert_eq!(Currency::parse("inr"), Ok(Currency::INR));
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let big = Money::from_minor(i64::MAX, Currency::JPY);
        assert_eq!(
            big.checked_add(&big).and_then(|m| m.to_minor()),
            Err(MoneyError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn minor_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000, pick in 0usize..4) {
            let c = [Currency::INR, Currency::USD, Currency::JPY, Currency::KWD][pick];
            prop_assert_eq!(Money::from_minor(minor, c).to_minor(), Ok(minor));
        }

        #[test]
        fn times_is_repeated_addition(minor in 0i64..10_000_000, qty in 0u32..50) {
            let unit = Money::from_minor(minor, Currency::INR);
            let by_sum = Money::sum(Currency::INR, std::iter::repeat_n(&unit, qty as usize)).unwrap();
            prop_assert_eq!(unit.times(qty).unwrap().to_minor(), by_sum.to_minor());
        }

        #[test]
        fn rounding_lands_on_the_minor_unit(units in -10_000_000i64..10_000_000, scale in 0u32..8) {
            let m = Money::new(Decimal::new(units, scale), Currency::INR);
            for r in [Rounding::HalfEven, Rounding::HalfUp] {
                let rounded = m.round(r);
                prop_assert!(rounded.to_minor().is_ok());
                prop_assert!((rounded.amount() - m.amount()).abs() <= dec("0.005"));
            }
        }
    }
}
