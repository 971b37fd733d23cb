//! One test per rule of [`super::decide`].

use std::collections::HashMap;

use schemas::records::cart::{
    AddItem, CartStatus, Command, CreateCart, ItemRequest, RemoveItem, ReopenCart, SetBuyer,
    UpdateQuantity,
};
use schemas::records::catalog::Internship;
use schemas::records::fx::FxRate;
use schemas::records::WireMoney;

use super::*;

fn catalog() -> HashMap<String, Internship> {
    let mk = |id: &str, minor: i64, active: bool, tax: &str| Internship {
        internship_id: id.into(),
        title: id.to_uppercase(),
        category: "eng".into(),
        base_price: WireMoney {
            amount_minor: minor,
            currency: "INR".into(),
        },
        tax_class: tax.into(),
        active,
        updated_at: 0,
        billing_periods: vec![],
    };
    [
        mk("rust", 49_900, true, "standard"),
        mk("go", 29_900, true, "standard"),
        mk("old", 100, false, "standard"),
        mk("free", 10_000, true, "exempt"),
    ]
    .into_iter()
    .map(|i| (i.internship_id.clone(), i))
    .collect()
}

fn rates() -> HashMap<String, FxRate> {
    HashMap::from([(
        "USD".to_owned(),
        FxRate {
            base: "INR".into(),
            quote: "USD".into(),
            rate: "0.012".into(),
            as_of: 77,
        },
    )])
}

struct World {
    catalog: HashMap<String, Internship>,
    rates: HashMap<String, FxRate>,
    coupons: HashMap<String, schemas::records::coupons::Coupon>,
    policy: PricingPolicy,
}

impl World {
    fn new() -> World {
        World {
            catalog: catalog(),
            rates: rates(),
            coupons: HashMap::new(),
            policy: PricingPolicy::default(),
        }
    }

    fn decide(&self, cart: Option<&Cart>, command: Command, offset: i64) -> Decision {
        let id = format!("cmd-{offset}");
        let stamp = Stamp {
            command_id: &id,
            offset,
            at_ms: 1000 + offset,
        };
        decide(
            cart,
            "t",
            &command,
            &stamp,
            &Context {
                limits: CartLimits::default(),
                coupons: &self.coupons,
                max_coupons: 3,
                ttl_ms: 86_400_000,
                catalog: &self.catalog,
                rates: &self.rates,
                policy: &self.policy,
            },
        )
    }

    fn cart(&self, cart: Option<&Cart>, command: Command, offset: i64) -> Cart {
        match self.decide(cart, command, offset) {
            Decision::Cart(c) => c,
            Decision::Dropped(r) => panic!("dropped: {r:?}"),
            other => panic!("not a plain cart: {other:?}"),
        }
    }
}

fn create(items: &[(&str, i32)]) -> Command {
    create_as(None, items)
}

fn create_as(owner: Option<&str>, items: &[(&str, i32)]) -> Command {
    Command::CreateCart(CreateCart {
        currency: "INR".into(),
        owner_user_id: owner.map(Into::into),
        device_id: None,
        items: items
            .iter()
            .map(|(i, q)| ItemRequest {
                internship_id: (*i).into(),
                quantity: *q,
            })
            .collect(),
    })
}

fn add(id: &str, q: i32) -> Command {
    Command::AddItem(AddItem {
        internship_id: id.into(),
        quantity: q,
        actor_user_id: None,
    })
}

fn set_qty(id: &str, q: i32) -> Command {
    Command::UpdateQuantity(UpdateQuantity {
        internship_id: id.into(),
        new_quantity: q,
        actor_user_id: None,
    })
}

fn remove(id: &str) -> Command {
    Command::RemoveItem(RemoveItem {
        internship_id: id.into(),
        actor_user_id: None,
    })
}

fn buyer(country: &str, state: Option<&str>, currency: Option<&str>) -> Command {
    Command::SetBuyer(SetBuyer {
        country: country.into(),
        state: state.map(Into::into),
        gstin: None,
        display_currency: currency.map(Into::into),
        actor_user_id: None,
    })
}

fn inr(minor: i64) -> Money {
    Money::from_minor(minor, Currency::INR)
}

fn code(c: &Cart) -> Option<ErrorCode> {
    c.rejection.as_ref().map(|r| r.code)
}

#[test]
fn create_prices_items_from_the_catalog_with_tax() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 2)]), 5);
    assert_eq!(c.version, 5);
    assert_eq!(c.breakdown.lines[0].unit_price, inr(49_900));
    assert_eq!(c.breakdown.subtotal, inr(99_800));
    // No location yet: estimated in the seller's state, CGST + SGST 9 % each.
    assert_eq!(c.breakdown.tax_total, inr(17_964));
    assert_eq!(c.breakdown.total, inr(99_800 + 17_964));
    assert_eq!(c.rejection, None);
}

#[test]
fn adding_the_same_internship_merges_lines() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 1)]), 1);
    let c = w.cart(Some(&c), add("rust", 2), 2);
    let c = w.cart(Some(&c), add("go", 1), 3);
    assert_eq!(c.items.len(), 2);
    assert_eq!(c.items[0].quantity, 3);
    assert_eq!(c.breakdown.subtotal, inr(3 * 49_900 + 29_900));
    assert_eq!((c.version, c.updated_at), (3, 1003));
}

#[test]
fn quantities_can_be_set_and_lines_removed() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 1), ("go", 1)]), 1);
    let c = w.cart(Some(&c), set_qty("rust", 10), 2);
    assert_eq!(c.items[0].quantity, 10);
    let c = w.cart(Some(&c), set_qty("go", 0), 3);
    assert_eq!(c.items.len(), 1);
    let c = w.cart(Some(&c), remove("rust"), 4);
    assert!(c.items.is_empty());
    assert_eq!(c.breakdown.total, inr(0));
    let missing = w.cart(Some(&c), remove("rust"), 5);
    assert_eq!(code(&missing), Some(ErrorCode::ItemNotInCart));
    let too_many = w.cart(
        Some(&w.cart(None, create(&[("go", 1)]), 6)),
        set_qty("go", 1_001),
        7,
    );
    assert_eq!(code(&too_many), Some(ErrorCode::CartLimitExceeded));
}

#[test]
fn unknown_or_inactive_internships_are_refused_on_the_cart() {
    let w = World::new();
    let c = w.cart(None, create(&[]), 1);
    for id in ["nope", "old", "Bad Id"] {
        let after = w.cart(Some(&c), add(id, 1), 2);
        assert_eq!(after.version, 2, "the refusal still moves the version");
        assert_eq!(after.items, c.items);
        assert_eq!(code(&after), Some(ErrorCode::InternshipUnavailable));
    }
}

#[test]
fn a_deactivated_internship_is_flagged_not_dropped() {
    let mut w = World::new();
    let c = w.cart(None, create(&[("rust", 1), ("go", 1)]), 1);
    w.catalog.get_mut("rust").unwrap().active = false;
    let c = w.cart(Some(&c), add("go", 1), 2);
    assert_eq!(c.items.len(), 2);
    assert!(!c.items[0].available);
    assert!(c.items[1].available);
}

#[test]
fn catalog_price_changes_reach_the_cart_on_its_next_command() {
    let mut w = World::new();
    let c = w.cart(None, create(&[("rust", 1)]), 1);
    w.catalog.get_mut("rust").unwrap().base_price.amount_minor = 39_900;
    let c = w.cart(Some(&c), add("go", 1), 2);
    assert_eq!(c.breakdown.lines[0].unit_price, inr(39_900));
}

#[test]
fn quantity_limit_is_enforced_on_the_merged_line() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 999)]), 1);
    let after = w.cart(Some(&c), add("rust", 2), 2);
    assert_eq!(code(&after), Some(ErrorCode::CartLimitExceeded));
    assert_eq!(after.items[0].quantity, 999);
}

#[test]
fn an_accepted_command_clears_the_previous_refusal() {
    let w = World::new();
    let c = w.cart(None, create(&[]), 1);
    let refused = w.cart(Some(&c), add("nope", 1), 2);
    let ok = w.cart(Some(&refused), add("go", 1), 3);
    assert_eq!(ok.rejection, None);
}

#[test]
fn commands_for_a_missing_cart_are_dropped() {
    let w = World::new();
    for command in [
        add("rust", 1),
        set_qty("rust", 1),
        remove("rust"),
        buyer("IN", None, None),
    ] {
        assert!(matches!(
            w.decide(None, command, 1),
            Decision::Dropped(Rejection {
                code: ErrorCode::CartNotFound,
                ..
            })
        ));
    }
}

#[test]
fn a_repeated_create_is_not_an_error_but_another_is() {
    let w = World::new();
    let c = w.cart(None, create(&[("go", 1)]), 1);
    let same = Stamp {
        command_id: "cmd-1",
        offset: 2,
        at_ms: 9,
    };
    let ctx = Context {
        limits: CartLimits::default(),
        coupons: &w.coupons,
        max_coupons: 3,
        ttl_ms: 86_400_000,
        catalog: &w.catalog,
        rates: &w.rates,
        policy: &w.policy,
    };
    let Decision::Cart(again) = decide(Some(&c), "t", &create(&[("go", 1)]), &same, &ctx) else {
        panic!()
    };
    assert_eq!(again.rejection, None);
    assert_eq!(again.items, c.items);
    let other = w.cart(Some(&c), create(&[]), 3);
    assert_eq!(code(&other), Some(ErrorCode::CartAlreadyExists));
}

#[test]
fn the_buyers_location_sets_the_taxes() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 1), ("free", 1)]), 1);
    let other_state = w.cart(Some(&c), buyer("IN", Some("MH"), None), 2);
    let names: Vec<_> = other_state
        .breakdown
        .taxes
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["IGST"]);
    // 18 % of the standard line only (the other is exempt).
    assert_eq!(other_state.breakdown.tax_total, inr(8_982));
    let abroad = w.cart(Some(&c), buyer("US", None, None), 3);
    assert!(abroad.breakdown.taxes.is_empty());
    let bad = w.cart(Some(&c), buyer("India", None, None), 4);
    assert_eq!(code(&bad), Some(ErrorCode::InvalidBuyerDetails));
}

#[test]
fn a_display_currency_needs_a_published_rate() {
    let w = World::new();
    let c = w.cart(None, create(&[("rust", 1)]), 1);
    let usd = w.cart(Some(&c), buyer("US", None, Some("USD")), 2);
    assert_eq!(usd.display_currency, Currency::USD);
    assert_eq!(usd.fx.as_ref().map(|f| f.as_of_ms), Some(77));
    assert_eq!(usd.breakdown.total, Money::from_minor(599, Currency::USD)); // ₹499 × 0.012
    let jpy = w.cart(Some(&c), buyer("JP", None, Some("JPY")), 3);
    assert_eq!(code(&jpy), Some(ErrorCode::CurrencyNotSupported));
    assert_eq!(jpy.display_currency, Currency::INR);
    let unknown = Command::CreateCart(CreateCart {
        currency: "XXX".into(),
        owner_user_id: None,
        device_id: None,
        items: vec![],
    });
    assert_eq!(
        code(&w.cart(None, unknown, 5)),
        Some(ErrorCode::CurrencyNotSupported)
    );
}

#[test]
fn a_users_cart_changes_only_by_that_user() {
    let w = World::new();
    let c = w.cart(None, create_as(Some("u1"), &[]), 1);
    assert_eq!(c.owner.as_deref(), Some("u1"));
    let by = |actor: Option<&str>| {
        Command::AddItem(AddItem {
            internship_id: "go".into(),
            quantity: 1,
            actor_user_id: actor.map(Into::into),
        })
    };
    assert!(matches!(
        w.decide(Some(&c), by(None), 2),
        Decision::Dropped(_)
    ));
    assert!(matches!(
        w.decide(Some(&c), by(Some("u2")), 2),
        Decision::Dropped(_)
    ));
    assert_eq!(w.cart(Some(&c), by(Some("u1")), 2).items.len(), 1);
    // A guest cart is open to whoever holds its token.
    let guest = w.cart(None, create(&[]), 1);
    assert!(may_change(&guest, None) && may_change(&guest, Some("anyone")));
}

#[test]
fn only_active_carts_change() {
    let w = World::new();
    let mut c = w.cart(None, create(&[("go", 1)]), 1);
    c.status = CartStatus::Converted;
    assert_eq!(
        code(&w.cart(Some(&c), add("go", 1), 2)),
        Some(ErrorCode::CartNotModifiable)
    );
}

#[test]
fn too_many_lines_are_refused() {
    let mut w = World::new();
    for i in 0..=MAX_LINES {
        let mut it = w.catalog["go"].clone();
        it.internship_id = format!("i{i}");
        w.catalog.insert(it.internship_id.clone(), it);
    }
    let mut c = w.cart(None, create(&[]), 0);
    for i in 0..MAX_LINES {
        c = w.cart(Some(&c), add(&format!("i{i}"), 1), i as i64 + 1);
        assert_eq!(c.rejection, None);
    }
    let over = w.cart(Some(&c), add(&format!("i{MAX_LINES}"), 1), 99);
    assert_eq!(code(&over), Some(ErrorCode::CartLimitExceeded));
}

fn at(w: &World, cart: Option<&Cart>, command: Command, offset: i64, at_ms: i64) -> Decision {
    let id = format!("cmd-{offset}");
    let stamp = Stamp {
        command_id: &id,
        offset,
        at_ms,
    };
    decide(
        cart,
        "t",
        &command,
        &stamp,
        &Context {
            limits: CartLimits::default(),
            coupons: &w.coupons,
            max_coupons: 3,
            catalog: &w.catalog,
            rates: &w.rates,
            policy: &w.policy,
            ttl_ms: 1_000,
        },
    )
}

fn expire() -> Command {
    Command::ExpireCart(schemas::records::cart::ExpireCart { ttl_ms: 1_000 })
}

#[test]
fn an_idle_cart_expires_by_timer_and_then_refuses_commands_with_1002() {
    let w = World::new();
    let Decision::Cart(c) = at(&w, None, create(&[("go", 1)]), 1, 10_000) else {
        panic!()
    };
    // Not idle long enough yet: the timer's command changes nothing.
    assert_eq!(at(&w, Some(&c), expire(), 2, 10_500), Decision::Unchanged);
    let Decision::Cart(expired) = at(&w, Some(&c), expire(), 3, 11_000) else {
        panic!()
    };
    assert_eq!(expired.status, CartStatus::Expired);
    assert_eq!(expired.version, 3);
    let Decision::Cart(after) = at(&w, Some(&expired), add("go", 1), 4, 11_100) else {
        panic!()
    };
    assert_eq!(code(&after), Some(ErrorCode::CartExpired));
    assert_eq!(after.items, expired.items);
    // A second timer command for an expired cart is a no-op.
    assert_eq!(
        at(&w, Some(&expired), expire(), 5, 99_000),
        Decision::Unchanged
    );
}

#[test]
fn a_command_after_the_ttl_expires_the_cart_even_before_the_timer() {
    let w = World::new();
    let Decision::Cart(c) = at(&w, None, create(&[("go", 1)]), 1, 10_000) else {
        panic!()
    };
    let Decision::Cart(late) = at(&w, Some(&c), add("go", 1), 2, 20_000) else {
        panic!()
    };
    assert_eq!(late.status, CartStatus::Expired);
    assert_eq!(code(&late), Some(ErrorCode::CartExpired));
    // Activity keeps a cart alive.
    let Decision::Cart(busy) = at(&w, Some(&c), add("go", 1), 2, 10_900) else {
        panic!()
    };
    assert_eq!(
        at(&w, Some(&busy), expire(), 3, 11_500),
        Decision::Unchanged
    );
}

#[test]
fn sharing_keeps_the_first_share_token() {
    let w = World::new();
    let c = w.cart(None, create(&[("go", 1)]), 1);
    let share = |t: &str| {
        Command::ShareCart(schemas::records::cart::ShareCart {
            share_token: t.into(),
            actor_user_id: None,
        })
    };
    let shared = w.cart(Some(&c), share("s1"), 2);
    assert_eq!(shared.share_token.as_deref(), Some("s1"));
    let again = w.cart(Some(&shared), share("s2"), 3);
    assert_eq!(again.share_token.as_deref(), Some("s1"));
}

#[test]
fn analytics_pairs_merge_and_are_bounded() {
    let w = World::new();
    let c = w.cart(None, create(&[]), 1);
    let attach = |pairs: Vec<(String, String)>| {
        Command::AttachAnalytics(schemas::records::cart::AttachAnalytics {
            pairs: pairs.into_iter().collect(),
            actor_user_id: None,
        })
    };
    let c = w.cart(
        Some(&c),
        attach(vec![("utm_source".into(), "mail".into())]),
        2,
    );
    let c = w.cart(
        Some(&c),
        attach(vec![("utm_campaign".into(), "spring".into())]),
        3,
    );
    assert_eq!(c.analytics.len(), 2);
    let many = (0..MAX_ANALYTICS)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    assert_eq!(
        code(&w.cart(Some(&c), attach(many), 4)),
        Some(ErrorCode::CartLimitExceeded)
    );
}

#[test]
fn a_guest_cart_merges_into_the_users_cart() {
    let w = World::new();
    let guest = w.cart(None, create(&[("go", 2)]), 1);
    let merge = Command::MergeInto(schemas::records::cart::MergeInto {
        target_cart_token: "b".into(),
        user_id: "u1".into(),
    });
    let Decision::Merged {
        cart,
        target,
        items,
        user_id,
    } = w.decide(Some(&guest), merge, 2)
    else {
        panic!("merge expected")
    };
    assert_eq!(cart.status, CartStatus::Merged);
    assert_eq!(cart.merged_into.as_deref(), Some("b"));
    assert_eq!((target.as_str(), user_id.as_str()), ("b", "u1"));
    assert_eq!(items, vec![("go".to_owned(), 2)]);
    // The user's cart takes the items, merged into its lines.
    let users = w.cart(None, create_as(Some("u1"), &[("go", 1)]), 3);
    let absorb = Command::AbsorbItems(schemas::records::cart::AbsorbItems {
        source_cart_token: "a".into(),
        items: vec![ItemRequest {
            internship_id: "go".into(),
            quantity: 2,
        }],
        user_id: "u1".into(),
    });
    assert_eq!(w.cart(Some(&users), absorb.clone(), 4).items[0].quantity, 3);
    // Another user's cart does not.
    let other = w.cart(None, create_as(Some("u2"), &[]), 5);
    assert!(matches!(
        w.decide(Some(&other), absorb, 6),
        Decision::Dropped(_)
    ));
    // A merged cart takes no more commands.
    assert_eq!(
        code(&w.cart(Some(&cart), add("go", 1), 7)),
        Some(ErrorCode::CartNotModifiable)
    );
}

#[test]
fn attaching_an_owner_claims_a_guest_cart_only() {
    let w = World::new();
    let guest = w.cart(None, create(&[]), 1);
    let claim =
        |u: &str| Command::AttachOwner(schemas::records::cart::AttachOwner { user_id: u.into() });
    let mine = w.cart(Some(&guest), claim("u1"), 2);
    assert_eq!(mine.owner.as_deref(), Some("u1"));
    assert!(matches!(
        w.decide(Some(&mine), claim("u2"), 3),
        Decision::Dropped(_)
    ));
}

#[test]
fn a_plan_prices_its_line_and_a_withdrawn_plan_flags_it() {
    let mut w = World::new();
    w.catalog.get_mut("rust").unwrap().billing_periods =
        vec![schemas::records::catalog::BillingPeriod {
            plan_id: "rust-6m".into(),
            value: 6,
            unit: schemas::records::catalog::PeriodUnit::Month,
            price: WireMoney {
                amount_minor: 29_900,
                currency: "INR".into(),
            },
        }];
    let c = w.cart(None, create(&[("rust", 2), ("go", 1)]), 1);
    let choose = |p: &str| {
        Command::ChoosePlan(schemas::records::cart::ChoosePlan {
            plan_id: p.into(),
            actor_user_id: None,
        })
    };
    let c = w.cart(Some(&c), choose("rust-6m"), 2);
    assert_eq!(
        c.items[0].plan.as_ref().map(|p| (p.value, p.unit.as_str())),
        Some((6, "month"))
    );
    assert_eq!(c.breakdown.lines[0].line_subtotal, inr(2 * 29_900));
    assert_eq!(
        code(&w.cart(Some(&c), choose("go-1y"), 3)),
        Some(ErrorCode::PlanNotAvailable)
    );
    w.catalog.get_mut("rust").unwrap().billing_periods.clear();
    let c = w.cart(Some(&c), add("go", 1), 4);
    assert!(!c.items[0].available, "the plan was withdrawn");
}

fn coupon_record(code: &str, percent: &str) -> schemas::records::coupons::Coupon {
    use schemas::records::coupons::{Coupon, CouponKind};
    Coupon {
        code: code.into(),
        name: format!("{code} off"),
        kind: CouponKind::Percentage,
        percent: Some(percent.into()),
        cap: None,
        amounts: vec![],
        tiers: vec![],
        referrer_user_id: None,
        scope_internships: vec![],
        scope_categories: vec![],
        valid_from: None,
        valid_until: None,
        min_order: None,
        usage_limit: None,
        per_user_limit: None,
        combinable: false,
        active: true,
        updated_at: 0,
    }
}

fn apply(code: &str) -> Command {
    Command::ApplyCoupon(schemas::records::cart::ApplyCoupon {
        code: code.into(),
        actor_user_id: None,
        used: None,
        used_by_user: None,
    })
}

#[test]
fn a_coupon_discounts_the_lines_and_tax_is_on_the_discounted_amount() {
    let mut w = World::new();
    w.coupons.insert("TEN".into(), coupon_record("TEN", "0.10"));
    let c = w.cart(None, create(&[("rust", 2)]), 1);
    let c = w.cart(Some(&c), apply("ten"), 2);
    assert_eq!(c.rejection, None);
    assert_eq!(c.coupons, vec!["TEN".to_owned()]);
    let b = &c.breakdown;
    assert_eq!(b.subtotal, inr(99_800));
    assert_eq!(b.discount_total, inr(9_980));
    assert_eq!(b.discounts[0].amount, inr(9_980));
    assert_eq!(b.lines[0].line_total, inr(89_820));
    // 18 % (CGST + SGST) of ₹898.20, each half rounded: ₹80.84 + ₹80.84.
    assert_eq!(b.tax_total, inr(16_168));
    assert_eq!(b.total, inr(89_820 + 16_168));
    // Removing it restores the price.
    let removed = w.cart(
        Some(&c),
        Command::RemoveCoupon(schemas::records::cart::RemoveCoupon {
            coupon_code: "TEN".into(),
            actor_user_id: None,
        }),
        3,
    );
    assert!(removed.coupons.is_empty());
    assert_eq!(removed.breakdown.discount_total, inr(0));
}

#[test]
fn a_refused_coupon_is_recorded_with_its_own_code_and_changes_nothing() {
    let mut w = World::new();
    w.coupons.insert("TEN".into(), coupon_record("TEN", "0.10"));
    w.coupons
        .insert("FIVE".into(), coupon_record("FIVE", "0.05"));
    let c = w.cart(None, create(&[("rust", 1)]), 1);
    let unknown = w.cart(Some(&c), apply("NOPE"), 2);
    assert_eq!(code(&unknown), Some(ErrorCode::CouponUnknown));
    let c = w.cart(Some(&c), apply("TEN"), 3);
    // TEN is exclusive: FIVE cannot join it.
    let both = w.cart(Some(&c), apply("FIVE"), 4);
    assert_eq!(code(&both), Some(ErrorCode::CouponNotCombinable));
    assert_eq!(both.coupons, vec!["TEN".to_owned()]);
    assert_eq!(
        code(&w.cart(Some(&c), apply("TEN"), 5)),
        Some(ErrorCode::CouponAlreadyApplied)
    );
}

#[test]
fn a_coupon_that_stops_holding_leaves_the_cart_on_the_next_pricing() {
    let mut w = World::new();
    let mut min = coupon_record("BIG", "0.10");
    min.min_order = Some(WireMoney {
        amount_minor: 90_000,
        currency: "INR".into(),
    });
    w.coupons.insert("BIG".into(), min);
    let c = w.cart(None, create(&[("rust", 2)]), 1);
    let c = w.cart(Some(&c), apply("BIG"), 2);
    assert_eq!(c.coupons.len(), 1);
    // Down to one seat (₹499): below the minimum, the coupon no longer applies.
    let c = w.cart(Some(&c), set_qty("rust", 1), 3);
    assert!(c.coupons.is_empty());
    assert_eq!(c.breakdown.discount_total, inr(0));
}

#[test]
fn a_referral_code_records_the_referrer_and_refuses_its_owner() {
    use schemas::records::coupons::CouponKind;
    let mut w = World::new();
    let mut referral = coupon_record("FRIEND-ANNA", "0.05");
    referral.kind = CouponKind::Referral;
    referral.referrer_user_id = Some("anna".into());
    w.coupons.insert("FRIEND-ANNA".into(), referral);
    let bob = w.cart(None, create_as(Some("bob"), &[("go", 1)]), 1);
    let by_bob = Command::ApplyCoupon(schemas::records::cart::ApplyCoupon {
        code: "FRIEND-ANNA".into(),
        actor_user_id: Some("bob".into()),
        used: None,
        used_by_user: None,
    });
    let bob = w.cart(Some(&bob), by_bob, 2);
    assert_eq!(bob.rejection, None);
    assert_eq!(
        bob.analytics.get("referrer_user_id").map(String::as_str),
        Some("anna")
    );
    let anna = w.cart(None, create_as(Some("anna"), &[("go", 1)]), 3);
    let by_anna = Command::ApplyCoupon(schemas::records::cart::ApplyCoupon {
        code: "FRIEND-ANNA".into(),
        actor_user_id: Some("anna".into()),
        used: None,
        used_by_user: None,
    });
    assert_eq!(
        code(&w.cart(Some(&anna), by_anna, 4)),
        Some(ErrorCode::CouponOwnReferral)
    );
}

#[test]
fn limits_are_the_deployments() {
    let w = World::new();
    let tight = CartLimits {
        max_quantity: 5,
        max_lines: 1,
    };
    let decide_with = |cart: Option<&Cart>, command: Command, offset: i64| {
        let id = format!("cmd-{offset}");
        let stamp = Stamp {
            command_id: &id,
            offset,
            at_ms: 1,
        };
        let ctx = Context {
            limits: tight,
            catalog: &w.catalog,
            rates: &w.rates,
            coupons: &w.coupons,
            max_coupons: 3,
            policy: &w.policy,
            ttl_ms: 86_400_000,
        };
        match decide(cart, "t", &command, &stamp, &ctx) {
            Decision::Cart(c) => c,
            other => panic!("{other:?}"),
        }
    };
    let c = decide_with(None, create(&[("go", 5)]), 1);
    assert_eq!(c.rejection, None);
    assert_eq!(
        code(&decide_with(Some(&c), add("go", 1), 2)),
        Some(ErrorCode::CartLimitExceeded)
    );
    assert_eq!(
        code(&decide_with(Some(&c), add("rust", 1), 3)),
        Some(ErrorCode::CartLimitExceeded)
    );
}

fn place(order_token: &str) -> Command {
    Command::PlaceOrder(schemas::records::cart::PlaceOrder {
        order_token: order_token.into(),
        actor_user_id: None,
        success_url: None,
        cancel_url: None,
        buyer_email: None,
    })
}

#[test]
fn a_cart_with_nothing_blocking_it_is_converted_into_one_order() {
    let w = World::new();
    let cart = w.cart(None, create(&[("rust", 1)]), 1);
    let Decision::Ordered {
        cart: converted,
        order_token,
        ..
    } = w.decide(Some(&cart), place("o1"), 2)
    else {
        panic!("not ordered")
    };
    assert_eq!(order_token, "o1");
    assert_eq!(converted.status, CartStatus::Converted);
    assert_eq!(converted.order_token.as_deref(), Some("o1"));
    assert_eq!(converted.version, 2);
    assert_eq!(converted.breakdown, cart.breakdown, "priced as shown");

    // Placed again (a race or a retry): the order stands, no refusal.
    let again = w.cart(Some(&converted), place("o1"), 3);
    assert_eq!(again.rejection, None);
    assert_eq!(again.order_token.as_deref(), Some("o1"));
    assert_eq!(again.version, 3);
    // A converted cart changes no more.
    let add = Command::AddItem(AddItem {
        internship_id: "go".into(),
        quantity: 1,
        actor_user_id: None,
    });
    let refused = w.cart(Some(&converted), add, 4);
    assert_eq!(
        refused.rejection.map(|r| r.code),
        Some(ErrorCode::CartNotModifiable)
    );
}

#[test]
fn a_blocked_cart_is_not_converted_and_says_why() {
    let mut w = World::new();
    let empty = w.cart(None, create(&[]), 1);
    let refused = w.cart(Some(&empty), place("o1"), 2);
    assert_eq!(refused.status, CartStatus::Active);
    assert_eq!(
        refused.rejection.as_ref().map(|r| r.code),
        Some(ErrorCode::ItemNotInCart)
    );

    let cart = w.cart(None, create(&[("rust", 1), ("go", 1)]), 3);
    w.catalog.get_mut("go").unwrap().active = false;
    let refused = w.cart(Some(&cart), place("o1"), 4);
    assert_eq!(refused.status, CartStatus::Active);
    assert_eq!(refused.order_token, None);
    let rejection = refused.rejection.unwrap();
    assert_eq!(rejection.code, ErrorCode::InternshipUnavailable);
    assert!(rejection.message.contains("go"), "{}", rejection.message);
}

#[test]
fn a_coupon_used_up_when_applied_is_refused_with_its_code() {
    let mut w = World::new();
    let mut limited = coupon_record("FEW", "0.10");
    limited.usage_limit = Some(3);
    limited.per_user_limit = Some(1);
    w.coupons.insert("FEW".into(), limited);
    let c = w.cart(None, create(&[("rust", 1)]), 1);
    let with = |used: i32, used_by_user: i32| {
        Command::ApplyCoupon(schemas::records::cart::ApplyCoupon {
            code: "FEW".into(),
            actor_user_id: None,
            used: Some(used),
            used_by_user: Some(used_by_user),
        })
    };
    // The uses the ingress read when it accepted the command count.
    let refused = w.cart(Some(&c), with(3, 0), 2);
    assert_eq!(code(&refused), Some(ErrorCode::CouponUsedUp));
    assert!(refused.coupons.is_empty());
    let mine = w.cart(Some(&c), with(1, 1), 3);
    assert_eq!(code(&mine), Some(ErrorCode::CouponPerUserLimit));
    let ok = w.cart(Some(&c), with(2, 0), 4);
    assert_eq!(ok.coupons, vec!["FEW".to_owned()]);
    // Once applied it stays through later commands: the order reserves it
    // exactly (and refuses it then if it is used up).
    let later = w.cart(Some(&ok), add("go", 1), 5);
    assert_eq!(later.coupons, vec!["FEW".to_owned()]);
}

fn reopen(order_token: &str) -> Command {
    Command::ReopenCart(ReopenCart {
        reopened_order_token: order_token.into(),
        refused_coupon: "LIMIT1".into(),
        refusal_code: ErrorCode::CouponUsedUp.code(),
        reason: "coupon LIMIT1 has reached its usage limit".into(),
    })
}

#[test]
fn a_cart_whose_order_failed_for_a_coupon_reopens_and_is_placed_again_without_it() {
    let mut w = World::new();
    w.coupons
        .insert("LIMIT1".into(), coupon_record("LIMIT1", "0.10"));
    let token = CartToken::parse("0123456789abcdef0123456789abcdef").unwrap();
    let mut cart = w.cart(None, create(&[("rust", 1)]), 1);
    cart.token = token.as_str().into();
    let cart = w.cart(Some(&cart), apply("LIMIT1"), 2);
    let with_coupon = cart.breakdown.total;
    let first = OrderToken::of_cart(&token);
    let Decision::Ordered {
        cart: converted, ..
    } = w.decide(Some(&cart), place(first.as_str()), 3)
    else {
        panic!("placed");
    };

    // Only the cart converted as that order reopens, once.
    assert_eq!(
        w.decide(Some(&converted), reopen("another-order"), 4),
        Decision::Unchanged
    );
    let reopened = w.cart(Some(&converted), reopen(first.as_str()), 4);
    assert_eq!(reopened.status, CartStatus::Active);
    assert_eq!(reopened.order_token, None);
    assert_eq!(reopened.placements, 1);
    assert_eq!(
        w.decide(Some(&reopened), reopen(first.as_str()), 5),
        Decision::Unchanged,
        "a replayed reopen changes nothing"
    );

    // The refused coupon blocks checkout while it stays, and says so.
    let blockers = reopened.checkout_blockers();
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(blockers[0].message.contains("LIMIT1 can no longer be used"));
    let second = OrderToken::of_placement(&token, 1);
    assert_ne!(second, first);
    let blocked = w.cart(Some(&reopened), place(second.as_str()), 5);
    assert_eq!(blocked.status, CartStatus::Active);
    assert_eq!(code(&blocked), Some(ErrorCode::CouponNotApplicable));

    // Removed: nothing blocks, the price is the one without it.
    let without = w.cart(
        Some(&reopened),
        Command::RemoveCoupon(schemas::records::cart::RemoveCoupon {
            coupon_code: "limit1".into(),
            actor_user_id: None,
        }),
        6,
    );
    assert!(without.checkout_blockers().is_empty());
    assert!(without.refused_coupons.is_empty());
    assert!(without.breakdown.total.to_minor().unwrap() > with_coupon.to_minor().unwrap());
    // A placement prepared against the cart as it was is refused, not
    // taken as another order under the old token.
    let stale = w.cart(Some(&without), place(first.as_str()), 7);
    assert_eq!(code(&stale), Some(ErrorCode::CartNotModifiable));
    let Decision::Ordered { order_token, .. } = w.decide(Some(&without), place(second.as_str()), 8)
    else {
        panic!("placed again");
    };
    assert_eq!(order_token, second.as_str());
}
