//! One test per coupon kind, rule and refusal.

use std::str::FromStr;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

fn inr(minor: i64) -> Money {
    Money::from_minor(minor, Currency::INR)
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn coupon(code: &str, amount: Amount) -> Coupon {
    Coupon {
        code: code.into(),
        name: code.to_lowercase(),
        amount,
        scope: Scope::default(),
        valid_from_ms: None,
        valid_until_ms: None,
        min_order: None,
        usage_limit: None,
        per_user_limit: None,
        combinable: true,
        active: true,
        referrer_user_id: None,
    }
}

fn line(id: &str, category: &str, qty: u32, minor: i64) -> DiscountLine {
    DiscountLine {
        internship_id: id.into(),
        category: category.into(),
        quantity: qty,
        line_subtotal: inr(minor),
    }
}

fn lines() -> Vec<DiscountLine> {
    vec![
        line("rust", "eng", 1, 100_000),
        line("design", "art", 2, 50_000),
    ]
}

fn ctx<'a>(lines: &'a [DiscountLine], applied: &'a [Coupon]) -> CheckContext<'a> {
    CheckContext {
        now_ms: 1_000,
        user_id: Some("u1"),
        lines,
        subtotal: inr(lines
            .iter()
            .map(|l| l.line_subtotal.to_minor().unwrap())
            .sum()),
        fx: None,
        applied,
        max_per_cart: 2,
        used: 0,
        used_by_user: 0,
        rounding: Rounding::HalfEven,
    }
}

fn minor(ms: &[Money]) -> Vec<i64> {
    ms.iter().map(|m| m.to_minor().unwrap()).collect()
}

#[test]
fn a_percentage_spreads_over_the_lines_and_respects_its_cap() {
    let ten = coupon(
        "TEN",
        Amount::Percent {
            rate: dec("0.10"),
            cap: None,
        },
    );
    let (per_line, applied) =
        allocate(&[ten], &lines(), Currency::INR, None, Rounding::HalfEven).unwrap();
    assert_eq!(minor(&per_line), [10_000, 5_000]);
    assert_eq!(applied[0].amount, inr(15_000));
    let capped = coupon(
        "CAP",
        Amount::Percent {
            rate: dec("0.50"),
            cap: Some(inr(30_000)),
        },
    );
    let (per_line, applied) =
        allocate(&[capped], &lines(), Currency::INR, None, Rounding::HalfEven).unwrap();
    assert_eq!(applied[0].amount, inr(30_000));
    assert_eq!(minor(&per_line), [20_000, 10_000]);
}

#[test]
fn a_fixed_amount_is_taken_in_the_carts_currency_or_converted() {
    let fixed = coupon(
        "FLAT",
        Amount::Fixed(vec![inr(12_000), Money::from_minor(150, Currency::USD)]),
    );
    let (_, applied) = allocate(
        &[fixed.clone()],
        &lines(),
        Currency::INR,
        None,
        Rounding::HalfEven,
    )
    .unwrap();
    assert_eq!(applied[0].amount, inr(12_000));
    let usd_lines = vec![DiscountLine {
        line_subtotal: Money::from_minor(1_200, Currency::USD),
        ..line("rust", "eng", 1, 0)
    }];
    let (_, applied) = allocate(
        &[fixed],
        &usd_lines,
        Currency::USD,
        None,
        Rounding::HalfEven,
    )
    .unwrap();
    assert_eq!(applied[0].amount, Money::from_minor(150, Currency::USD));
    let inr_only = coupon("FLAT2", Amount::Fixed(vec![inr(10_000)]));
    let fx = Fx {
        currency: Currency::USD,
        rate: dec("0.012"),
        as_of_ms: 0,
    };
    let (_, applied) = allocate(
        &[inr_only],
        &usd_lines,
        Currency::USD,
        Some(&fx),
        Rounding::HalfEven,
    )
    .unwrap();
    assert_eq!(applied[0].amount, Money::from_minor(120, Currency::USD)); // ₹100 → $1.20
}

#[test]
fn a_discount_never_exceeds_what_the_lines_cost() {
    let huge = coupon("HUGE", Amount::Fixed(vec![inr(10_000_000)]));
    let (per_line, applied) =
        allocate(&[huge], &lines(), Currency::INR, None, Rounding::HalfEven).unwrap();
    assert_eq!(minor(&per_line), [100_000, 50_000]);
    assert_eq!(applied[0].amount, inr(150_000));
}

#[test]
fn free_enrollment_takes_the_named_internships_only() {
    let mut free = coupon("FREE", Amount::Free);
    free.scope.internships = vec!["design".into()];
    let (per_line, _) =
        allocate(&[free], &lines(), Currency::INR, None, Rounding::HalfEven).unwrap();
    assert_eq!(minor(&per_line), [0, 50_000]);
}

#[test]
fn bulk_tiers_follow_the_number_of_seats() {
    let tiers = coupon(
        "BULK",
        Amount::Tiers(vec![(3, dec("0.10")), (10, dec("0.20"))]),
    );
    let few = vec![line("rust", "eng", 2, 200_000)];
    assert_eq!(
        allocate(
            &[tiers.clone()],
            &few,
            Currency::INR,
            None,
            Rounding::HalfEven
        )
        .unwrap()
        .1[0]
            .amount,
        inr(0)
    );
    let three = vec![line("rust", "eng", 3, 300_000)];
    assert_eq!(
        allocate(
            &[tiers.clone()],
            &three,
            Currency::INR,
            None,
            Rounding::HalfEven
        )
        .unwrap()
        .1[0]
            .amount,
        inr(30_000)
    );
    let ten = vec![
        line("rust", "eng", 4, 400_000),
        line("design", "art", 6, 300_000),
    ];
    assert_eq!(
        allocate(&[tiers], &ten, Currency::INR, None, Rounding::HalfEven)
            .unwrap()
            .1[0]
            .amount,
        inr(140_000)
    );
}

#[test]
fn scope_limits_a_coupon_to_internships_or_categories() {
    let mut art = coupon(
        "ART",
        Amount::Percent {
            rate: dec("0.50"),
            cap: None,
        },
    );
    art.scope.categories = vec!["art".into()];
    let (per_line, _) = allocate(
        &[art.clone()],
        &lines(),
        Currency::INR,
        None,
        Rounding::HalfEven,
    )
    .unwrap();
    assert_eq!(minor(&per_line), [0, 25_000]);
    let only_eng = vec![line("rust", "eng", 1, 100_000)];
    assert_eq!(
        check(Some(&art), &ctx(&only_eng, &[])),
        Err(Refusal::NotApplicable)
    );
}

#[test]
fn coupons_combine_on_what_the_previous_ones_left() {
    let ten = coupon(
        "TEN",
        Amount::Percent {
            rate: dec("0.10"),
            cap: None,
        },
    );
    let flat = coupon("FLAT", Amount::Fixed(vec![inr(15_000)]));
    let (per_line, applied) = allocate(
        &[ten, flat],
        &lines(),
        Currency::INR,
        None,
        Rounding::HalfEven,
    )
    .unwrap();
    assert_eq!(applied[1].amount, inr(15_000));
    assert_eq!(minor(&per_line).iter().sum::<i64>(), 30_000);
}

#[test]
fn every_rule_has_its_own_refusal() {
    let ls = lines();
    let ok = coupon(
        "OK",
        Amount::Percent {
            rate: dec("0.10"),
            cap: None,
        },
    );
    assert_eq!(check(Some(&ok), &ctx(&ls, &[])), Ok(()));
    assert_eq!(check(None, &ctx(&ls, &[])), Err(Refusal::Unknown));
    assert_eq!(
        check(
            Some(&Coupon {
                active: false,
                ..ok.clone()
            }),
            &ctx(&ls, &[])
        ),
        Err(Refusal::Unknown)
    );
    assert_eq!(
        check(
            Some(&Coupon {
                valid_until_ms: Some(1_000),
                ..ok.clone()
            }),
            &ctx(&ls, &[])
        ),
        Err(Refusal::Expired)
    );
    assert_eq!(
        check(
            Some(&Coupon {
                valid_from_ms: Some(2_000),
                ..ok.clone()
            }),
            &ctx(&ls, &[])
        ),
        Err(Refusal::NotYetValid)
    );
    assert_eq!(
        check(
            Some(&Coupon {
                min_order: Some(inr(500_000)),
                ..ok.clone()
            }),
            &ctx(&ls, &[])
        ),
        Err(Refusal::MinimumNotReached {
            minimum: inr(500_000)
        })
    );
    assert_eq!(
        check(
            Some(&Coupon {
                min_order: Some(inr(150_000)),
                ..ok.clone()
            }),
            &ctx(&ls, &[])
        ),
        Ok(())
    );
    let mut used = ctx(&ls, &[]);
    used.used = 5;
    assert_eq!(
        check(
            Some(&Coupon {
                usage_limit: Some(5),
                ..ok.clone()
            }),
            &used
        ),
        Err(Refusal::UsageLimitReached)
    );
    used.used_by_user = 1;
    assert_eq!(
        check(
            Some(&Coupon {
                per_user_limit: Some(1),
                ..ok.clone()
            }),
            &used
        ),
        Err(Refusal::PerUserLimitReached)
    );
    let mine = Coupon {
        referrer_user_id: Some("u1".into()),
        ..ok.clone()
    };
    assert_eq!(
        check(Some(&mine), &ctx(&ls, &[])),
        Err(Refusal::OwnReferralCode)
    );
    let theirs = Coupon {
        referrer_user_id: Some("u2".into()),
        ..ok.clone()
    };
    assert_eq!(check(Some(&theirs), &ctx(&ls, &[])), Ok(()));
    let exclusive = Coupon {
        code: "EXCL".into(),
        combinable: false,
        ..ok.clone()
    };
    assert_eq!(
        check(Some(&ok), &ctx(&ls, std::slice::from_ref(&exclusive))),
        Err(Refusal::NotCombinable)
    );
    assert_eq!(
        check(Some(&exclusive), &ctx(&ls, std::slice::from_ref(&ok))),
        Err(Refusal::NotCombinable)
    );
    assert_eq!(
        check(Some(&ok), &ctx(&ls, std::slice::from_ref(&ok))),
        Err(Refusal::AlreadyApplied)
    );
    let two = [
        Coupon {
            code: "A".into(),
            ..ok.clone()
        },
        Coupon {
            code: "B".into(),
            ..ok.clone()
        },
    ];
    assert_eq!(
        check(Some(&ok), &ctx(&ls, &two)),
        Err(Refusal::TooManyCoupons { max: 2 })
    );
    let codes: std::collections::BTreeSet<i32> = [
        Refusal::Unknown,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::MinimumNotReached { minimum: inr(1) },
        Refusal::NotApplicable,
        Refusal::NotCombinable,
        Refusal::UsageLimitReached,
        Refusal::PerUserLimitReached,
        Refusal::OwnReferralCode,
        Refusal::TooManyCoupons { max: 1 },
        Refusal::AlreadyApplied,
    ]
    .iter()
    .map(Refusal::code)
    .collect();
    assert_eq!(codes.len(), 11, "every refusal has its own code");
    assert!(codes.iter().all(|c| (2001..2100).contains(c)));
}

#[test]
fn the_minimum_order_is_compared_in_the_carts_currency() {
    let usd_lines = vec![DiscountLine {
        line_subtotal: Money::from_minor(1_000, Currency::USD),
        ..line("rust", "eng", 1, 0)
    }];
    let fx = Fx {
        currency: Currency::USD,
        rate: dec("0.012"),
        as_of_ms: 0,
    };
    let mut c = ctx(&usd_lines, &[]);
    c.subtotal = Money::from_minor(1_000, Currency::USD);
    c.fx = Some(&fx);
    let min = coupon(
        "MIN",
        Amount::Percent {
            rate: dec("0.1"),
            cap: None,
        },
    );
    // ₹1,000 = $12.00 > $10.00.
    assert!(matches!(
        check(
            Some(&Coupon {
                min_order: Some(inr(100_000)),
                ..min.clone()
            }),
            &c
        ),
        Err(Refusal::MinimumNotReached { .. })
    ));
    // ₹500 = $6.00 ≤ $10.00.
    assert_eq!(
        check(
            Some(&Coupon {
                min_order: Some(inr(50_000)),
                ..min
            }),
            &c
        ),
        Ok(())
    );
}

proptest! {
    #[test]
    fn discounts_add_up_and_never_exceed_the_lines(
        amounts in proptest::collection::vec((1i64..10_000_000, 1u32..50), 1..8),
        rates in proptest::collection::vec(0u32..100, 1..4),
        fixed in 0i64..20_000_000,
    ) {
        let ls: Vec<DiscountLine> = amounts.iter().enumerate().map(|(i, (m, q))| line(&format!("i{i}"), if i % 2 == 0 { "eng" } else { "art" }, *q, *m)).collect();
        let mut coupons: Vec<Coupon> = rates.iter().enumerate().map(|(i, r)| coupon(&format!("P{i}"), Amount::Percent { rate: Decimal::new(i64::from(*r), 2), cap: None })).collect();
        coupons.push(coupon("F", Amount::Fixed(vec![inr(fixed)])));
        let (per_line, applied) = allocate(&coupons, &ls, Currency::INR, None, Rounding::HalfEven).unwrap();
        let per_line = minor(&per_line);
        for (d, l) in per_line.iter().zip(&ls) {
            prop_assert!(*d >= 0 && *d <= l.line_subtotal.to_minor().unwrap());
        }
        let total: i64 = applied.iter().map(|a| a.amount.to_minor().unwrap()).sum();
        prop_assert_eq!(per_line.iter().sum::<i64>(), total);
    }
}
