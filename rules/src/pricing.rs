//! What a cart costs, as a breakdown where every number in the total is
//! shown: each line (unit price, quantity, subtotal, discount, total), each
//! tax by name, rate and amount, and the totals.
//!
//! Rules, all in this one place:
//! - catalog prices are in INR; a display currency converts each *unit*
//!   price at the quoted rate and rounds it to the currency's minor unit, so
//!   a line is exactly unit × quantity in the currency the buyer sees;
//! - GST: a buyer in India in the seller's state (named by its code, `KA`,
//!   its name or its GST code: [`crate::places`]) pays CGST + SGST (half the
//!   rate each), in another state IGST; a buyer abroad pays the rate
//!   configured for the country (default 0: export of services); exempt
//!   internships are not taxed; a cart with no location yet is estimated as
//!   the seller's state;
//! - tax is computed on the discounted amount, once per tax over the cart
//!   (not per line), and rounded; tax-inclusive prices carve the tax out of
//!   the total instead of adding it;
//! - the total is the sum of the rounded parts, so the breakdown always
//!   adds up exactly.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use schemas::{Currency, Money, MoneyError, Rounding};

pub use crate::basket::{Fx, LineInput, TaxClass};
use crate::coupons::{self, AppliedDiscount, Coupon, DiscountLine};
use crate::InvalidSetting;

/// How this seller prices: configured once per deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingPolicy {
    /// The seller's Indian state (GST state code or name, compared
    /// case-insensitively), e.g. `KA`.
    pub seller_state: String,
    /// The GST rate on standard-class internships (0.18).
    pub gst_rate: Decimal,
    /// Tax rate for buyers abroad, by ISO 3166 alpha-2 country; absent = 0.
    pub export_rates: BTreeMap<String, Decimal>,
    /// Whether catalog prices already include tax.
    pub tax_inclusive: bool,
    pub rounding: Rounding,
}

impl PricingPolicy {
    /// The seller's policy from the deployment's settings (`var(name,
    /// default)`): `PRICING_SELLER_STATE` (KA), `PRICING_GST_RATE` (0.18),
    /// `PRICING_EXPORT_RATES` (`GB=0.20,AE=0.05`; countries not listed pay
    /// 0), `PRICING_TAX_INCLUSIVE` (false), `PRICING_ROUNDING` (`half_even`
    /// or `half_up`).
    pub fn from_settings(
        var: impl Fn(&str, &str) -> String,
    ) -> Result<PricingPolicy, InvalidSetting> {
        let bad = |what: String| InvalidSetting(what);
        let mut policy = PricingPolicy {
            seller_state: var("PRICING_SELLER_STATE", "KA"),
            ..PricingPolicy::default()
        };
        policy.gst_rate = var("PRICING_GST_RATE", "0.18")
            .parse()
            .map_err(|e| bad(format!("PRICING_GST_RATE: {e}")))?;
        for pair in var("PRICING_EXPORT_RATES", "")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (country, rate) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("PRICING_EXPORT_RATES: {pair} is not COUNTRY=RATE")))?;
            policy.export_rates.insert(
                country.trim().to_ascii_uppercase(),
                rate.trim()
                    .parse()
                    .map_err(|e| bad(format!("PRICING_EXPORT_RATES {pair}: {e}")))?,
            );
        }
        policy.tax_inclusive = var("PRICING_TAX_INCLUSIVE", "false") == "true";
        policy.rounding = match var("PRICING_ROUNDING", "half_even").as_str() {
            "half_even" => Rounding::HalfEven,
            "half_up" => Rounding::HalfUp,
            other => {
                return Err(bad(format!(
                    "PRICING_ROUNDING={other}: half_even or half_up"
                )))
            }
        };
        Ok(policy)
    }
}

impl Default for PricingPolicy {
    fn default() -> Self {
        PricingPolicy {
            seller_state: "KA".into(),
            gst_rate: Decimal::new(18, 2),
            export_rates: BTreeMap::new(),
            tax_inclusive: false,
            rounding: Rounding::HalfEven,
        }
    }
}

/// Where the buyer is, for tax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    /// ISO 3166 alpha-2, upper case.
    pub country: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub internship_id: String,
    pub title: String,
    pub quantity: u32,
    /// In the display currency, rounded.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_subtotal: Money,
    pub line_discount: Money,
    /// `line_subtotal − line_discount`.
    pub line_total: Money,
    pub tax_class: TaxClass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxLine {
    pub name: String,
    pub rate: Decimal,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    pub currency: Currency,
    pub lines: Vec<PricedLine>,
    pub taxes: Vec<TaxLine>,
    pub subtotal: Money,
    pub discount_total: Money,
    pub tax_total: Money,
    pub total: Money,
    pub tax_inclusive: bool,
    /// Each applied coupon and what it took off.
    pub discounts: Vec<AppliedDiscount>,
}

/// The GST names pricing charges under (an invoice reads its supply type
/// from them).
pub const CGST: &str = "CGST";
pub const SGST: &str = "SGST";
pub const IGST: &str = "IGST";

/// The taxes that apply to a buyer, by name and rate.
pub fn tax_regime(buyer: Option<&Buyer>, policy: &PricingPolicy) -> Vec<(String, Decimal)> {
    let country = buyer
        .map(|b| b.country.to_ascii_uppercase())
        .unwrap_or_else(|| "IN".into());
    if country == "IN" {
        let same_state = buyer
            .and_then(|b| b.state.as_deref())
            .is_none_or(|s| crate::places::same(s, &policy.seller_state));
        if same_state {
            let half = policy.gst_rate / Decimal::TWO;
            vec![(CGST.into(), half), (SGST.into(), half)]
        } else {
            vec![(IGST.into(), policy.gst_rate)]
        }
    } else {
        match policy.export_rates.get(&country) {
            Some(rate) if !rate.is_zero() => vec![(format!("Tax ({country})"), *rate)],
            _ => Vec::new(),
        }
    }
}

/// Prices `lines` for `buyer` in the display currency of `fx` (INR when
/// `None`).
pub fn price(
    lines: &[LineInput],
    buyer: Option<&Buyer>,
    fx: Option<&Fx>,
    policy: &PricingPolicy,
    coupons: &[Coupon],
) -> Result<Breakdown, MoneyError> {
    let currency = fx.map(|f| f.currency).unwrap_or(Currency::INR);
    let zero = Money::zero(currency);
    let mut priced = Vec::with_capacity(lines.len());
    for l in lines {
        let unit = convert(&l.unit_price, fx, policy.rounding)?;
        let line_subtotal = unit.times(l.quantity)?;
        let line_discount = zero;
        priced.push(PricedLine {
            internship_id: l.internship_id.clone(),
            title: l.title.clone(),
            quantity: l.quantity,
            unit_price: unit,
            line_subtotal,
            line_discount,
            line_total: line_subtotal.checked_sub(&line_discount)?,
            tax_class: l.tax_class,
        });
    }
    // Discounts come off each line before tax is computed on what is left.
    let discount_lines = DiscountLine::of(lines, priced.iter().map(|p| p.line_subtotal));
    let (line_discounts, discounts) =
        coupons::allocate(coupons, &discount_lines, currency, fx, policy.rounding)?;
    for (p, d) in priced.iter_mut().zip(line_discounts) {
        p.line_discount = d;
        p.line_total = p.line_subtotal.checked_sub(&d)?;
    }
    let subtotal = Money::sum(currency, priced.iter().map(|l| &l.line_subtotal))?;
    let discount_total = Money::sum(currency, priced.iter().map(|l| &l.line_discount))?;
    let taxable = Money::sum(
        currency,
        priced
            .iter()
            .filter(|l| l.tax_class == TaxClass::Standard)
            .map(|l| &l.line_total),
    )?;
    let regime = tax_regime(buyer, policy);
    let taxes = if policy.tax_inclusive {
        carve_out(&taxable, &regime, policy.rounding)?
    } else {
        regime
            .iter()
            .map(|(name, rate)| {
                Ok(TaxLine {
                    name: name.clone(),
                    rate: *rate,
                    amount: Money::new(taxable.amount() * rate, currency).round(policy.rounding),
                })
            })
            .collect::<Result<Vec<_>, MoneyError>>()?
    };
    let tax_total = Money::sum(currency, taxes.iter().map(|t| &t.amount))?;
    let after_discount = subtotal.checked_sub(&discount_total)?;
    let total = if policy.tax_inclusive {
        after_discount
    } else {
        after_discount.checked_add(&tax_total)?
    };
    Ok(Breakdown {
        currency,
        lines: priced,
        taxes,
        subtotal,
        discount_total,
        tax_total,
        total,
        tax_inclusive: policy.tax_inclusive,
        discounts,
    })
}

/// An INR amount in the display currency, rounded to its minor unit.
fn convert(inr: &Money, fx: Option<&Fx>, rounding: Rounding) -> Result<Money, MoneyError> {
    match fx {
        None => Ok(*inr),
        Some(fx) => {
            let amount = inr
                .amount()
                .checked_mul(fx.rate)
                .ok_or(MoneyError::Overflow)?;
            Ok(Money::new(amount, fx.currency).round(rounding))
        }
    }
}

/// The tax inside a tax-inclusive `gross`: the total tax is rounded once,
/// then split across the components, the last taking the remainder so the
/// parts add up to it.
fn carve_out(
    gross: &Money,
    regime: &[(String, Decimal)],
    rounding: Rounding,
) -> Result<Vec<TaxLine>, MoneyError> {
    let total_rate: Decimal = regime.iter().map(|(_, r)| *r).sum();
    if regime.is_empty() || total_rate.is_zero() {
        return Ok(Vec::new());
    }
    let currency = gross.currency();
    let tax_total = Money::new(
        gross.amount() * total_rate / (Decimal::ONE + total_rate),
        currency,
    )
    .round(rounding);
    let mut out = Vec::with_capacity(regime.len());
    let mut assigned = Money::zero(currency);
    for (i, (name, rate)) in regime.iter().enumerate() {
        let amount = if i + 1 == regime.len() {
            tax_total.checked_sub(&assigned)?
        } else {
            Money::new(tax_total.amount() * rate / total_rate, currency).round(rounding)
        };
        assigned = assigned.checked_add(&amount)?;
        out.push(TaxLine {
            name: name.clone(),
            rate: *rate,
            amount,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(minor: i64, qty: u32, class: TaxClass) -> LineInput {
        LineInput {
            internship_id: "x".into(),
            title: "X".into(),
            category: "eng".into(),
            quantity: qty,
            unit_price: inr(minor),
            tax_class: class,
        }
    }

    fn buyer(country: &str, state: Option<&str>) -> Buyer {
        Buyer {
            country: country.into(),
            state: state.map(Into::into),
        }
    }

    fn names(b: &Breakdown) -> Vec<(String, Decimal, i64)> {
        b.taxes
            .iter()
            .map(|t| (t.name.clone(), t.rate, t.amount.to_minor().unwrap()))
            .collect()
    }

    #[test]
    fn gst_follows_the_buyers_state() {
        let policy = PricingPolicy::default();
        let lines = [line(100_000, 1, TaxClass::Standard)]; // ₹1,000.00
        let cases: Vec<(Option<Buyer>, Vec<(&str, &str, i64)>)> = vec![
            (
                Some(buyer("IN", Some("KA"))),
                vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)],
            ),
            (
                Some(buyer("in", Some("ka"))),
                vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)],
            ),
            (
                Some(buyer("IN", Some("MH"))),
                vec![("IGST", "0.18", 18_000)],
            ),
            // The seller's state by its name or its GST code is the same state.
            (
                Some(buyer("IN", Some("Karnataka"))),
                vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)],
            ),
            (
                Some(buyer("IN", Some("29"))),
                vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)],
            ),
            (
                Some(buyer("IN", Some("Maharashtra"))),
                vec![("IGST", "0.18", 18_000)],
            ),
            (
                Some(buyer("IN", None)),
                vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)],
            ),
            (None, vec![("CGST", "0.09", 9_000), ("SGST", "0.09", 9_000)]),
            (Some(buyer("US", None)), vec![]),
        ];
        for (b, want) in cases {
            let got = price(&lines, b.as_ref(), None, &policy, &[]).unwrap();
            let want: Vec<_> = want
                .into_iter()
                .map(|(n, r, a)| (n.to_owned(), dec(r), a))
                .collect();
            assert_eq!(names(&got), want, "{b:?}");
            let tax: i64 = want.iter().map(|w| w.2).sum();
            assert_eq!(got.total, inr(100_000 + tax));
        }
    }

    #[test]
    fn export_rates_apply_per_country() {
        let mut policy = PricingPolicy::default();
        policy.export_rates.insert("GB".into(), dec("0.20"));
        let got = price(
            &[line(100_000, 1, TaxClass::Standard)],
            Some(&buyer("GB", None)),
            None,
            &policy,
            &[],
        )
        .unwrap();
        assert_eq!(
            names(&got),
            vec![("Tax (GB)".to_owned(), dec("0.20"), 20_000)]
        );
    }

    #[test]
    fn exempt_internships_are_not_taxed() {
        let got = price(
            &[
                line(100_000, 1, TaxClass::Exempt),
                line(50_000, 2, TaxClass::Standard),
            ],
            Some(&buyer("IN", Some("MH"))),
            None,
            &PricingPolicy::default(),
            &[],
        )
        .unwrap();
        assert_eq!(got.tax_total, inr(18_000));
        assert_eq!(got.total, inr(200_000 + 18_000));
    }

    #[test]
    fn tax_inclusive_prices_carve_tax_out() {
        let policy = PricingPolicy {
            tax_inclusive: true,
            ..PricingPolicy::default()
        };
        let got = price(
            &[line(118_000, 1, TaxClass::Standard)],
            Some(&buyer("IN", Some("KA"))),
            None,
            &policy,
            &[],
        )
        .unwrap();
        assert_eq!(got.total, inr(118_000));
        assert_eq!(got.tax_total, inr(18_000));
        assert_eq!(
            names(&got),
            vec![
                ("CGST".to_owned(), dec("0.09"), 9_000),
                ("SGST".to_owned(), dec("0.09"), 9_000)
            ]
        );
        // An odd paisa goes to the last component, so the parts add up.
        let odd = price(
            &[line(118_001, 1, TaxClass::Standard)],
            None,
            None,
            &policy,
            &[],
        )
        .unwrap();
        assert_eq!(
            odd.taxes
                .iter()
                .map(|t| t.amount.to_minor().unwrap())
                .sum::<i64>(),
            odd.tax_total.to_minor().unwrap()
        );
    }

    #[test]
    fn conversion_rounds_the_unit_price_to_the_minor_unit() {
        let usd = Fx {
            currency: Currency::USD,
            rate: dec("0.012"),
            as_of_ms: 1,
        };
        let got = price(
            &[line(49_999, 3, TaxClass::Standard)],
            Some(&buyer("US", None)),
            Some(&usd),
            &PricingPolicy::default(),
            &[],
        )
        .unwrap();
        // ₹499.99 × 0.012 = $5.99988 → $6.00; three seats $18.00.
        assert_eq!(
            got.lines[0].unit_price,
            Money::from_minor(600, Currency::USD)
        );
        assert_eq!(
            got.lines[0].line_subtotal,
            Money::from_minor(1_800, Currency::USD)
        );
        assert_eq!(got.total, Money::from_minor(1_800, Currency::USD));
        let jpy = Fx {
            currency: Currency::JPY,
            rate: dec("1.8"),
            as_of_ms: 1,
        };
        let got = price(
            &[line(49_999, 1, TaxClass::Standard)],
            Some(&buyer("JP", None)),
            Some(&jpy),
            &PricingPolicy::default(),
            &[],
        )
        .unwrap();
        assert_eq!(got.total, Money::from_minor(900, Currency::JPY)); // ¥899.982 → ¥900
        let kwd = Fx {
            currency: Currency::KWD,
            rate: dec("0.0037"),
            as_of_ms: 1,
        };
        let got = price(
            &[line(49_999, 1, TaxClass::Standard)],
            Some(&buyer("KW", None)),
            Some(&kwd),
            &PricingPolicy::default(),
            &[],
        )
        .unwrap();
        assert_eq!(got.total, Money::from_minor(1_850, Currency::KWD)); // 1.849963 → 1.850
    }

    #[test]
    fn rounding_mode_is_configurable() {
        // ₹0.50 × 18% = ₹0.09 exactly; ₹0.25 × 18% = ₹0.045 → 0.04 (even) / 0.05 (up).
        let even = price(
            &[line(25, 1, TaxClass::Standard)],
            Some(&buyer("IN", Some("MH"))),
            None,
            &PricingPolicy::default(),
            &[],
        )
        .unwrap();
        assert_eq!(even.tax_total, inr(4));
        let up_policy = PricingPolicy {
            rounding: Rounding::HalfUp,
            ..PricingPolicy::default()
        };
        let up = price(
            &[line(25, 1, TaxClass::Standard)],
            Some(&buyer("IN", Some("MH"))),
            None,
            &up_policy,
            &[],
        )
        .unwrap();
        assert_eq!(up.tax_total, inr(5));
    }

    fn any_buyer() -> impl Strategy<Value = Option<Buyer>> {
        prop_oneof![
            Just(None),
            Just(Some(Buyer {
                country: "IN".into(),
                state: Some("KA".into())
            })),
            Just(Some(Buyer {
                country: "IN".into(),
                state: Some("TN".into())
            })),
            Just(Some(Buyer {
                country: "GB".into(),
                state: None
            })),
            Just(Some(Buyer {
                country: "US".into(),
                state: None
            })),
        ]
    }

    fn any_fx() -> impl Strategy<Value = Option<Fx>> {
        prop_oneof![
            Just(None),
            (1u32..100_000).prop_map(|r| Some(Fx {
                currency: Currency::USD,
                rate: Decimal::new(i64::from(r), 6),
                as_of_ms: 0
            })),
            (1u32..100_000).prop_map(|r| Some(Fx {
                currency: Currency::JPY,
                rate: Decimal::new(i64::from(r), 4),
                as_of_ms: 0
            })),
            (1u32..100_000).prop_map(|r| Some(Fx {
                currency: Currency::KWD,
                rate: Decimal::new(i64::from(r), 7),
                as_of_ms: 0
            })),
        ]
    }

    proptest! {
        #[test]
        fn the_breakdown_always_adds_up(
            lines in proptest::collection::vec((0i64..100_000_000, 1u32..1000, any::<bool>()), 0..12),
            buyer in any_buyer(),
            fx in any_fx(),
            inclusive in any::<bool>(),
            half_up in any::<bool>(),
        ) {
            let mut policy = PricingPolicy { tax_inclusive: inclusive, ..PricingPolicy::default() };
            policy.export_rates.insert("GB".into(), Decimal::new(20, 2));
            if half_up { policy.rounding = Rounding::HalfUp; }
            let input: Vec<_> = lines.iter().map(|(p, q, exempt)| line(*p, *q, if *exempt { TaxClass::Exempt } else { TaxClass::Standard })).collect();
            let b = price(&input, buyer.as_ref(), fx.as_ref(), &policy, &[]).unwrap();
            let currency = b.currency;
            let minor = |m: &Money| { prop_assert_eq!(m.currency(), currency); m.to_minor().map_err(|e| TestCaseError::fail(e.to_string())) };
            // Every amount is in the display currency and whole minor units.
            let mut sum_lines = 0;
            for l in &b.lines {
                prop_assert_eq!(minor(&l.line_subtotal)?, minor(&l.unit_price)? * i64::from(l.quantity));
                prop_assert_eq!(minor(&l.line_total)?, minor(&l.line_subtotal)? - minor(&l.line_discount)?);
                sum_lines += minor(&l.line_subtotal)?;
            }
            prop_assert_eq!(minor(&b.subtotal)?, sum_lines);
            let sum_taxes: i64 = b.taxes.iter().map(|t| minor(&t.amount)).sum::<Result<i64, _>>()?;
            prop_assert_eq!(minor(&b.tax_total)?, sum_taxes);
            let expected_total = if inclusive { minor(&b.subtotal)? - minor(&b.discount_total)? } else { minor(&b.subtotal)? - minor(&b.discount_total)? + sum_taxes };
            prop_assert_eq!(minor(&b.total)?, expected_total);
            prop_assert!(!b.total.is_negative() && !b.tax_total.is_negative());
            if inclusive { prop_assert!(b.tax_total.amount() <= b.total.amount()); }
        }

        #[test]
        fn discounts_come_off_before_tax_and_never_below_zero(
            lines in proptest::collection::vec((0i64..10_000_000, 1u32..100, any::<bool>()), 1..8),
            percent in 0u32..=100,
            fixed in 0i64..100_000_000,
        ) {
            use crate::coupons::{Amount, Coupon, Scope};
            let mk = |code: &str, amount: Amount| Coupon {
                code: code.into(), name: code.into(), amount, scope: Scope::default(), valid_from_ms: None, valid_until_ms: None,
                min_order: None, usage_limit: None, per_user_limit: None, combinable: true, active: true, referrer_user_id: None,
            };
            let coupons = [mk("P", Amount::Percent { rate: Decimal::new(i64::from(percent), 2), cap: None }), mk("F", Amount::Fixed(vec![inr(fixed)]))];
            let input: Vec<_> = lines.iter().map(|(p, q, exempt)| line(*p, *q, if *exempt { TaxClass::Exempt } else { TaxClass::Standard })).collect();
            let b = price(&input, Some(&buyer("IN", Some("MH"))), None, &PricingPolicy::default(), &coupons).unwrap();
            let taxable: i64 = b.lines.iter().filter(|l| l.tax_class == TaxClass::Standard).map(|l| l.line_total.to_minor().unwrap()).sum();
            prop_assert_eq!(b.tax_total, Money::new(Decimal::new(taxable, 2) * Decimal::new(18, 2), Currency::INR).round(Rounding::HalfEven));
            let discount: i64 = b.discounts.iter().map(|d| d.amount.to_minor().unwrap()).sum();
            prop_assert_eq!(b.discount_total.to_minor().unwrap(), discount);
            prop_assert!(b.lines.iter().all(|l| !l.line_total.is_negative()));
            prop_assert_eq!(b.total.to_minor().unwrap(), b.subtotal.to_minor().unwrap() - discount + b.tax_total.to_minor().unwrap());
        }

        #[test]
        fn conversion_is_consistent_per_unit(p in 0i64..100_000_000, q in 1u32..1000, fx in any_fx()) {
            let b = price(&[line(p, q, TaxClass::Standard)], None, fx.as_ref(), &PricingPolicy::default(), &[]).unwrap();
            let unit = convert(&inr(p), fx.as_ref(), Rounding::HalfEven).unwrap();
            prop_assert_eq!(b.lines[0].unit_price, unit);
            prop_assert!((unit.amount() - inr(p).amount() * fx.as_ref().map(|f| f.rate).unwrap_or(Decimal::ONE)).abs()
                <= Decimal::new(5, unit.currency().exponent() + 1));
        }
    }
}
