//! What a cart command does to a cart. Pure: no I/O, no clock (time comes
//! from the command), no randomness, so a replay decides the same way.
//!
//! Every command that reaches a cart moves the cart to a new version (the
//! command's offset), whether it is accepted or refused, so a client that
//! waits for "the version my write returned" always sees an answer: either
//! the change, or the refusal recorded on the cart.

use schemas::codes::ErrorCode;
use schemas::records::cart::{CartStatus, Command};
use schemas::values::{InternshipId, Quantity};
use schemas::{Currency, MoneyError};

use super::pricing::{self, PricedLine, Totals};
use crate::tables::catalog::CatalogLookup;

/// Most distinct internships in one cart.
pub const MAX_LINES: usize = 50;

/// A cart as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub token: String,
    pub version: i64,
    pub status: CartStatus,
    pub currency: Currency,
    pub lines: Vec<PricedLine>,
    pub totals: Totals,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_command_id: String,
    pub rejection: Option<Rejection>,
    /// The user the cart belongs to; `None` for a guest cart, which its
    /// token alone authorizes.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub command_id: String,
    pub code: ErrorCode,
    pub message: String,
}

/// Where a command stands: its id, its offset and the time it was issued.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    pub command_id: &'a str,
    pub offset: i64,
    pub at_ms: i64,
}

/// The decision about one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The cart after the command (accepted, or refused with the refusal
    /// recorded on it).
    Cart(Cart),
    /// No cart to record anything on (a command for an unknown cart).
    Dropped(Rejection),
}

pub fn decide(
    cart: Option<&Cart>,
    token: &str,
    command: &Command,
    stamp: &Stamp<'_>,
    catalog: &impl CatalogLookup,
) -> Decision {
    match (cart, command) {
        (None, Command::CreateCart(c)) => create(
            token,
            c.owner_user_id.as_deref(),
            &c.currency,
            c.items
                .iter()
                .map(|i| (i.internship_id.as_str(), i.quantity)),
            stamp,
            catalog,
        ),
        (Some(cart), Command::CreateCart(_)) if cart.last_command_id == stamp.command_id => {
            // The same create sent twice (a client retry): not an error.
            Decision::Cart(Cart {
                version: stamp.offset,
                ..cart.clone()
            })
        }
        (Some(cart), Command::CreateCart(_)) => refuse(
            cart,
            stamp,
            ErrorCode::CartAlreadyExists,
            "a cart with this token already exists".into(),
        ),
        (None, Command::AddItem(_)) => Decision::Dropped(rejection(
            stamp,
            ErrorCode::CartNotFound,
            "cart not found".into(),
        )),
        (Some(cart), Command::AddItem(a)) if !may_change(cart, a.actor_user_id.as_deref()) => {
            // Someone else's token: nothing about the cart changes, not even
            // its version, and the owner sees no trace of the attempt.
            Decision::Dropped(rejection(
                stamp,
                ErrorCode::CartNotFound,
                "cart not found".into(),
            ))
        }
        (Some(cart), Command::AddItem(a)) => {
            if cart.status != CartStatus::Active {
                let msg = format!("cart is {}", cart.status.as_str());
                return refuse(cart, stamp, ErrorCode::CartNotModifiable, msg);
            }
            match add_items(
                cart.currency,
                cart.lines.clone(),
                [(a.internship_id.as_str(), a.quantity)],
                catalog,
            ) {
                Ok(lines) => accept(cart, lines, stamp),
                Err((code, msg)) => refuse(cart, stamp, code, msg),
            }
        }
    }
}

/// A user's cart changes only by that user; a guest cart by whoever holds
/// its token.
pub fn may_change(cart: &Cart, actor: Option<&str>) -> bool {
    match &cart.owner {
        None => true,
        Some(owner) => actor == Some(owner.as_str()),
    }
}

fn create<'a>(
    token: &str,
    owner: Option<&str>,
    currency: &str,
    items: impl IntoIterator<Item = (&'a str, i32)>,
    stamp: &Stamp<'_>,
    catalog: &impl CatalogLookup,
) -> Decision {
    // Pricing is in the catalog's currency (INR) until display currencies
    // and FX rates arrive; anything else is refused rather than mispriced.
    let empty = |currency: Currency| Cart {
        token: token.to_owned(),
        version: stamp.offset,
        status: CartStatus::Active,
        currency,
        lines: Vec::new(),
        totals: Totals {
            subtotal: schemas::Money::zero(currency),
            total: schemas::Money::zero(currency),
        },
        created_at: stamp.at_ms,
        updated_at: stamp.at_ms,
        last_command_id: stamp.command_id.to_owned(),
        rejection: None,
        owner: owner.map(str::to_owned),
    };
    let cart = empty(Currency::INR);
    if Currency::parse(currency) != Ok(Currency::INR) {
        let msg = format!("currency {currency:?} is not supported yet; carts are priced in INR");
        return refuse(&cart, stamp, ErrorCode::CurrencyNotSupported, msg);
    }
    match add_items(cart.currency, Vec::new(), items, catalog) {
        Ok(lines) => accept(&cart, lines, stamp),
        // The cart exists either way; the items that could not be added are
        // refused together, and the refusal says why.
        Err((code, msg)) => refuse(&cart, stamp, code, msg),
    }
}

/// Adds each (internship, quantity) to `lines`, merging into an existing
/// line, re-checking limits and pricing from the catalog.
fn add_items<'a>(
    currency: Currency,
    mut lines: Vec<PricedLine>,
    items: impl IntoIterator<Item = (&'a str, i32)>,
    catalog: &impl CatalogLookup,
) -> Result<Vec<PricedLine>, (ErrorCode, String)> {
    for (id, quantity) in items {
        let id = InternshipId::parse(id)
            .map_err(|e| (ErrorCode::InternshipUnavailable, e.to_string()))?;
        let item = catalog
            .internship(id.as_str())
            .filter(|i| i.active)
            .ok_or_else(|| {
                (
                    ErrorCode::InternshipUnavailable,
                    format!("internship {id} is not available"),
                )
            })?;
        let unit = item.base_price.to_money().map_err(money_error)?;
        let existing = lines.iter().position(|l| l.internship_id == id.as_str());
        let before = existing.map(|i| lines[i].quantity).unwrap_or(0);
        let wanted = Quantity::new(i64::from(before) + i64::from(quantity))
            .map_err(|e| (ErrorCode::CartLimitExceeded, format!("{id}: {e}")))?;
        let line = pricing::price_line(id.as_str(), &item.title, wanted.get(), unit)
            .map_err(money_error)?;
        match existing {
            Some(i) => lines[i] = line,
            None if lines.len() >= MAX_LINES => {
                return Err((
                    ErrorCode::CartLimitExceeded,
                    format!("a cart holds at most {MAX_LINES} internships"),
                ))
            }
            None => lines.push(line),
        }
    }
    if lines.iter().any(|l| l.unit_price.currency() != currency) {
        return Err((
            ErrorCode::CurrencyNotSupported,
            "catalog price is not in the cart's currency".into(),
        ));
    }
    Ok(lines)
}

fn money_error(e: MoneyError) -> (ErrorCode, String) {
    (ErrorCode::CurrencyNotSupported, e.to_string())
}

fn accept(cart: &Cart, lines: Vec<PricedLine>, stamp: &Stamp<'_>) -> Decision {
    match pricing::totals(cart.currency, &lines) {
        Ok(totals) => Decision::Cart(Cart {
            version: stamp.offset,
            lines,
            totals,
            updated_at: stamp.at_ms,
            last_command_id: stamp.command_id.to_owned(),
            rejection: None,
            ..cart.clone()
        }),
        Err(e) => refuse(cart, stamp, ErrorCode::CartLimitExceeded, e.to_string()),
    }
}

fn refuse(cart: &Cart, stamp: &Stamp<'_>, code: ErrorCode, message: String) -> Decision {
    Decision::Cart(Cart {
        version: stamp.offset,
        last_command_id: stamp.command_id.to_owned(),
        rejection: Some(rejection(stamp, code, message)),
        ..cart.clone()
    })
}

fn rejection(stamp: &Stamp<'_>, code: ErrorCode, message: String) -> Rejection {
    Rejection {
        command_id: stamp.command_id.to_owned(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::cart::{AddItem, CreateCart, ItemRequest};
    use schemas::records::catalog::Internship;
    use schemas::records::WireMoney;
    use schemas::Money;
    use std::collections::HashMap;

    fn catalog() -> HashMap<String, Internship> {
        let mk = |id: &str, minor: i64, active: bool| Internship {
            internship_id: id.into(),
            title: id.to_uppercase(),
            category: "eng".into(),
            base_price: WireMoney {
                amount_minor: minor,
                currency: "INR".into(),
            },
            tax_class: "standard".into(),
            active,
            updated_at: 0,
        };
        [
            mk("rust", 49_900, true),
            mk("go", 29_900, true),
            mk("old", 100, false),
        ]
        .into_iter()
        .map(|i| (i.internship_id.clone(), i))
        .collect()
    }

    fn stamp(offset: i64) -> Stamp<'static> {
        Stamp {
            command_id: Box::leak(format!("cmd-{offset}").into_boxed_str()),
            offset,
            at_ms: 1000 + offset,
        }
    }

    fn create(items: &[(&str, i32)]) -> Command {
        Command::CreateCart(CreateCart {
            currency: "INR".into(),
            owner_user_id: None,
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

    fn cart(d: Decision) -> Cart {
        match d {
            Decision::Cart(c) => c,
            Decision::Dropped(r) => panic!("dropped: {r:?}"),
        }
    }

    fn inr(minor: i64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    #[test]
    fn create_prices_items_from_the_catalog() {
        let c = cart(decide(
            None,
            "t",
            &create(&[("rust", 2)]),
            &stamp(5),
            &catalog(),
        ));
        assert_eq!(c.version, 5);
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].unit_price, inr(49_900));
        assert_eq!(c.totals.total, inr(99_800));
        assert_eq!(c.rejection, None);
    }

    #[test]
    fn adding_the_same_internship_merges_lines() {
        let c = cart(decide(
            None,
            "t",
            &create(&[("rust", 1)]),
            &stamp(1),
            &catalog(),
        ));
        let c = cart(decide(
            Some(&c),
            "t",
            &add("rust", 2),
            &stamp(2),
            &catalog(),
        ));
        let c = cart(decide(Some(&c), "t", &add("go", 1), &stamp(3), &catalog()));
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0].quantity, 3);
        assert_eq!(c.totals.total, inr(3 * 49_900 + 29_900));
        assert_eq!(c.version, 3);
        assert_eq!(c.updated_at, 1003);
    }

    #[test]
    fn unknown_or_inactive_internships_are_refused_on_the_cart() {
        let c = cart(decide(None, "t", &create(&[]), &stamp(1), &catalog()));
        for id in ["nope", "old", "Bad Id"] {
            let after = cart(decide(Some(&c), "t", &add(id, 1), &stamp(2), &catalog()));
            assert_eq!(after.version, 2, "the refusal still moves the version");
            assert_eq!(after.lines, c.lines);
            assert_eq!(
                after.rejection.as_ref().map(|r| r.code),
                Some(ErrorCode::InternshipUnavailable)
            );
        }
    }

    #[test]
    fn quantity_limit_is_enforced_on_the_merged_line() {
        let c = cart(decide(
            None,
            "t",
            &create(&[("rust", 999)]),
            &stamp(1),
            &catalog(),
        ));
        let after = cart(decide(
            Some(&c),
            "t",
            &add("rust", 2),
            &stamp(2),
            &catalog(),
        ));
        assert_eq!(
            after.rejection.map(|r| r.code),
            Some(ErrorCode::CartLimitExceeded)
        );
        assert_eq!(after.lines[0].quantity, 999);
    }

    #[test]
    fn an_accepted_command_clears_the_previous_refusal() {
        let c = cart(decide(None, "t", &create(&[]), &stamp(1), &catalog()));
        let refused = cart(decide(
            Some(&c),
            "t",
            &add("nope", 1),
            &stamp(2),
            &catalog(),
        ));
        let ok = cart(decide(
            Some(&refused),
            "t",
            &add("go", 1),
            &stamp(3),
            &catalog(),
        ));
        assert_eq!(ok.rejection, None);
    }

    #[test]
    fn commands_for_a_missing_cart_are_dropped() {
        let d = decide(None, "t", &add("rust", 1), &stamp(1), &catalog());
        assert!(matches!(
            d,
            Decision::Dropped(Rejection {
                code: ErrorCode::CartNotFound,
                ..
            })
        ));
    }

    #[test]
    fn a_repeated_create_is_not_an_error_but_another_is() {
        let c = cart(decide(
            None,
            "t",
            &create(&[("go", 1)]),
            &stamp(1),
            &catalog(),
        ));
        let same = Stamp {
            command_id: c.last_command_id.clone().leak(),
            offset: 2,
            at_ms: 9,
        };
        let again = cart(decide(
            Some(&c),
            "t",
            &create(&[("go", 1)]),
            &same,
            &catalog(),
        ));
        assert_eq!(again.rejection, None);
        assert_eq!(again.lines, c.lines);
        let other = cart(decide(Some(&c), "t", &create(&[]), &stamp(3), &catalog()));
        assert_eq!(
            other.rejection.map(|r| r.code),
            Some(ErrorCode::CartAlreadyExists)
        );
    }

    #[test]
    fn other_currencies_are_refused_until_fx_exists() {
        let cmd = Command::CreateCart(CreateCart {
            currency: "USD".into(),
            owner_user_id: None,
            items: vec![],
        });
        let c = cart(decide(None, "t", &cmd, &stamp(1), &catalog()));
        assert_eq!(
            c.rejection.map(|r| r.code),
            Some(ErrorCode::CurrencyNotSupported)
        );
        assert_eq!(c.currency, Currency::INR);
    }

    #[test]
    fn too_many_lines_are_refused() {
        let mut cat = catalog();
        for i in 0..=MAX_LINES {
            let mut it = cat["go"].clone();
            it.internship_id = format!("i{i}");
            cat.insert(it.internship_id.clone(), it);
        }
        let mut c = cart(decide(None, "t", &create(&[]), &stamp(0), &cat));
        for i in 0..MAX_LINES {
            c = cart(decide(
                Some(&c),
                "t",
                &add(&format!("i{i}"), 1),
                &stamp(i as i64 + 1),
                &cat,
            ));
            assert_eq!(c.rejection, None);
        }
        let over = cart(decide(
            Some(&c),
            "t",
            &add(&format!("i{MAX_LINES}"), 1),
            &stamp(99),
            &cat,
        ));
        assert_eq!(
            over.rejection.map(|r| r.code),
            Some(ErrorCode::CartLimitExceeded)
        );
    }

    #[test]
    fn a_users_cart_changes_only_by_that_user() {
        let mine = Command::CreateCart(CreateCart {
            currency: "INR".into(),
            owner_user_id: Some("u1".into()),
            items: vec![],
        });
        let c = cart(decide(None, "t", &mine, &stamp(1), &catalog()));
        assert_eq!(c.owner.as_deref(), Some("u1"));
        let by = |actor: Option<&str>| {
            Command::AddItem(AddItem {
                internship_id: "go".into(),
                quantity: 1,
                actor_user_id: actor.map(Into::into),
            })
        };
        assert!(matches!(
            decide(Some(&c), "t", &by(None), &stamp(2), &catalog()),
            Decision::Dropped(_)
        ));
        assert!(matches!(
            decide(Some(&c), "t", &by(Some("u2")), &stamp(2), &catalog()),
            Decision::Dropped(_)
        ));
        let ok = cart(decide(
            Some(&c),
            "t",
            &by(Some("u1")),
            &stamp(2),
            &catalog(),
        ));
        assert_eq!(ok.lines.len(), 1);
        // A guest cart is open to whoever holds its token.
        let guest = cart(decide(None, "t", &create(&[]), &stamp(1), &catalog()));
        assert!(may_change(&guest, None) && may_change(&guest, Some("anyone")));
    }
}
