//! What a cart costs: each line's unit price from the catalog times its
//! quantity, summed per currency. Prices are never taken from a client.
//!
//! Every amount here is already in minor units (catalog prices are), so no
//! rounding happens yet; discounts, tax and conversion add rounded parts in
//! the same place so the breakdown always adds up.

use schemas::{Currency, Money, MoneyError};

/// A priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub line_total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: Money,
    pub total: Money,
}

/// `unit_price × quantity` for one line.
pub fn price_line(
    internship_id: &str,
    title: &str,
    quantity: u32,
    unit_price: Money,
) -> Result<PricedLine, MoneyError> {
    Ok(PricedLine {
        internship_id: internship_id.to_owned(),
        title: title.to_owned(),
        quantity,
        unit_price,
        line_total: unit_price.times(quantity)?,
    })
}

/// The cart's totals: the sum of its line totals, all in `currency`.
pub fn totals(currency: Currency, lines: &[PricedLine]) -> Result<Totals, MoneyError> {
    let subtotal = Money::sum(currency, lines.iter().map(|l| &l.line_total))?;
    Ok(Totals {
        subtotal,
        total: subtotal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    #[test]
    fn a_line_costs_unit_price_times_quantity() {
        let l = price_line("a", "A", 3, inr(49_900)).unwrap();
        assert_eq!(l.line_total, inr(149_700));
    }

    #[test]
    fn lines_in_another_currency_are_refused() {
        let l = price_line("a", "A", 1, Money::from_minor(100, Currency::USD)).unwrap();
        assert!(matches!(
            totals(Currency::INR, &[l]),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    proptest! {
        #[test]
        fn totals_are_the_exact_sum_of_lines(lines in proptest::collection::vec((0i64..10_000_000, 1u32..1000), 0..20)) {
            let priced: Vec<_> = lines.iter().map(|(p, q)| price_line("x", "X", *q, inr(*p)).unwrap()).collect();
            let t = totals(Currency::INR, &priced).unwrap();
            let expected: i64 = lines.iter().map(|(p, q)| p * i64::from(*q)).sum();
            prop_assert_eq!(t.subtotal.to_minor().unwrap(), expected);
            prop_assert_eq!(t.total, t.subtotal);
            prop_assert!(!t.total.is_negative());
        }
    }
}
