//! What a cart command does to a cart. Pure: no I/O, no clock (time comes
//! from the command), no randomness, so a replay decides the same way.
//!
//! Every command that reaches a cart moves the cart to a new version (the
//! command's offset), whether it is accepted or refused, so a client that
//! waits for "the version my write returned" always sees an answer: either
//! the change, or the refusal recorded on the cart. After every command the
//! cart is re-priced from the current catalog and rates ([`settle`]).

use schemas::codes::ErrorCode;
use std::collections::BTreeMap;

use schemas::records::cart::{CartStatus, Command, CreateCart, RefusedCoupon, ReopenCart};
use schemas::values::{CartToken, InternshipId, OrderToken, Quantity};
use schemas::{Currency, Money, MoneyError};

use crate::coupons::{self, CheckContext, Coupon, DiscountLine};
use crate::pricing::{self, Breakdown, Buyer, Fx, LineInput, PricingPolicy, TaxClass};
use crate::tables::{CatalogLookup, CouponLookup, RateLookup};
use crate::InvalidSetting;

/// Most distinct internships in one cart, by default.
pub const MAX_LINES: usize = 50;

/// The cart's limits, set per deployment (`CART_MAX_QUANTITY`,
/// `CART_MAX_LINES`); the quantity limit is at most [`Quantity::MAX`], the
/// bound of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLimits {
    pub max_quantity: u32,
    pub max_lines: usize,
}

impl Default for CartLimits {
    fn default() -> Self {
        CartLimits {
            max_quantity: Quantity::MAX,
            max_lines: MAX_LINES,
        }
    }
}

impl CartLimits {
    /// The deployment's limits from its settings (`var(name, default)`):
    /// `CART_MAX_QUANTITY` (1000, the most the contract allows) seats per
    /// line and `CART_MAX_LINES` (50) lines per cart.
    pub fn from_settings(var: impl Fn(&str, &str) -> String) -> Result<CartLimits, InvalidSetting> {
        let max_quantity: u32 = var("CART_MAX_QUANTITY", "1000")
            .parse()
            .ok()
            .filter(|q| (1..=Quantity::MAX).contains(q))
            .ok_or_else(|| {
                InvalidSetting(format!("CART_MAX_QUANTITY must be 1 to {}", Quantity::MAX))
            })?;
        let max_lines: usize = var("CART_MAX_LINES", "50")
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| InvalidSetting("CART_MAX_LINES must be at least 1".into()))?;
        Ok(CartLimits {
            max_quantity,
            max_lines,
        })
    }

    /// A line's quantity within the limit, or the refusal saying so.
    fn quantity(&self, id: &str, n: i64) -> Result<u32, Refusal> {
        match Quantity::new(n) {
            Ok(q) if q.get() <= self.max_quantity => Ok(q.get()),
            _ => Err((
                ErrorCode::CartLimitExceeded,
                format!("{id}: quantity must be between 1 and {}", self.max_quantity),
            )),
        }
    }
}

/// An internship in a cart, with the catalog facts it was last priced from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub internship_id: String,
    pub title: String,
    pub category: String,
    pub quantity: u32,
    /// The catalog price (INR).
    pub base_unit_price: Money,
    pub tax_class: TaxClass,
    /// False once the internship left the catalog or was deactivated (or
    /// the chosen plan was withdrawn): the line stays visible (never
    /// silently dropped) and blocks checkout.
    pub available: bool,
    /// The billing period chosen for the line; its price is then
    /// `base_unit_price`.
    pub plan: Option<Plan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub plan_id: String,
    pub value: i32,
    /// `month` or `year`.
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerInfo {
    pub country: String,
    pub state: Option<String>,
    pub gstin: Option<String>,
}

/// A cart as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub token: String,
    pub version: i64,
    pub status: CartStatus,
    /// The user the cart belongs to; `None` for a guest cart, which its
    /// token alone authorizes.
    pub owner: Option<String>,
    pub items: Vec<Item>,
    pub buyer: Option<BuyerInfo>,
    /// The currency the buyer sees; `fx` converts INR into it.
    pub display_currency: Currency,
    pub fx: Option<Fx>,
    pub breakdown: Breakdown,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_command_id: String,
    pub rejection: Option<Rejection>,
    /// Set once shared: the token of the read-only view.
    pub share_token: Option<String>,
    pub device_id: Option<String>,
    /// Attribution pairs (utm_source, …), at most [`MAX_ANALYTICS`].
    pub analytics: BTreeMap<String, String>,
    /// For a merged cart, the cart that took its items.
    pub merged_into: Option<String>,
    /// Coupon codes applied, in order (only those still valid at the last
    /// re-pricing stay).
    pub coupons: Vec<String>,
    /// Set once converted: the order the cart was placed as.
    pub order_token: Option<String>,
    /// How many times the cart was reopened after an order placed from it
    /// failed before payment; the next order's token derives from it.
    pub placements: i32,
    /// Coupons refused at the last placement (they ran out before payment);
    /// each blocks checkout while it stays on the cart.
    pub refused_coupons: Vec<RefusedCoupon>,
}

/// Why a cart cannot be checked out as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub code: ErrorCode,
    pub message: String,
}

/// Everything that stops a cart from being checked out (none: it can be):
/// a cart that is not active, an empty cart, and each line whose
/// internship or plan is no longer available. The cart view shows them and
/// order placement refuses a cart that has any.
pub fn checkout_blockers<'a>(
    status: CartStatus,
    lines: impl IntoIterator<Item = (&'a str, bool)>,
    refused_coupons: impl IntoIterator<Item = &'a RefusedCoupon>,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    match status {
        CartStatus::Active => {}
        CartStatus::Expired => out.push(Blocker {
            code: ErrorCode::CartExpired,
            message: "the cart expired".into(),
        }),
        other => out.push(Blocker {
            code: ErrorCode::CartNotModifiable,
            message: format!("the cart is {}", other.as_str()),
        }),
    }
    let mut empty = true;
    for (internship_id, available) in lines {
        empty = false;
        if !available {
            out.push(Blocker {
                code: ErrorCode::InternshipUnavailable,
                message: format!("{internship_id} is no longer available: remove it to check out"),
            });
        }
    }
    if empty {
        out.push(Blocker {
            code: ErrorCode::ItemNotInCart,
            message: "the cart is empty".into(),
        });
    }
    for refused in refused_coupons {
        out.push(Blocker {
            code: ErrorCode::CouponNotApplicable,
            message: format!(
                "coupon {} can no longer be used ({}): remove it to check out at the price without it",
                refused.code, refused.reason
            ),
        });
    }
    out
}

impl Cart {
    /// See [`checkout_blockers`].
    pub fn checkout_blockers(&self) -> Vec<Blocker> {
        checkout_blockers(
            self.status,
            self.items
                .iter()
                .map(|i| (i.internship_id.as_str(), i.available)),
            &self.refused_coupons,
        )
    }
}

/// Most attribution pairs on a cart.
pub const MAX_ANALYTICS: usize = 20;

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

/// What the rules read besides the cart.
pub struct Context<'a, C, R, K = NoCoupons> {
    pub catalog: &'a C,
    pub limits: CartLimits,
    pub rates: &'a R,
    pub coupons: &'a K,
    pub max_coupons: usize,
    pub policy: &'a PricingPolicy,
    /// A cart idle this long expires.
    pub ttl_ms: i64,
}

/// A coupon lookup that knows no coupon.
pub struct NoCoupons;

impl CouponLookup for NoCoupons {
    fn coupon(&self, _code: &str) -> Option<Coupon> {
        None
    }
}

/// The decision about one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The cart after the command (accepted, or refused with the refusal
    /// recorded on it).
    Cart(Cart),
    /// The cart after a merge into another cart, with the items to send on
    /// to that cart (as an `AbsorbItems` command).
    Merged {
        cart: Cart,
        target: String,
        items: Vec<(String, i32)>,
        user_id: String,
    },
    /// The cart checked out: converted (priced now, its breakdown to be
    /// frozen in the order), and the order to open under `order_token`.
    Ordered {
        cart: Cart,
        order_token: String,
        success_url: Option<String>,
        cancel_url: Option<String>,
        buyer_email: Option<String>,
    },
    /// No cart to record anything on (an unknown cart, or another user's).
    Dropped(Rejection),
    /// Nothing to do (a timer's command that is no longer needed).
    Unchanged,
}

type Refusal = (ErrorCode, String);

pub fn decide<C: CatalogLookup, R: RateLookup, K: CouponLookup>(
    cart: Option<&Cart>,
    token: &str,
    command: &Command,
    stamp: &Stamp<'_>,
    ctx: &Context<'_, C, R, K>,
) -> Decision {
    let cart = match (cart, command) {
        (None, Command::CreateCart(c)) => {
            let items = c
                .items
                .iter()
                .map(|i| (i.internship_id.as_str(), i.quantity));
            return create(token, c, items, stamp, ctx);
        }
        (None, Command::ExpireCart(_) | Command::ReopenCart(_)) => return Decision::Unchanged,
        (None, _) => {
            return Decision::Dropped(rejection(
                stamp,
                ErrorCode::CartNotFound,
                "cart not found".into(),
            ))
        }
        (Some(cart), Command::ExpireCart(e)) => return expire(cart, e.ttl_ms, stamp),
        (Some(cart), Command::ReopenCart(r)) => return reopen(cart, r, stamp),
        (Some(cart), _) if !may_change(cart, command.actor()) => {
            // Someone else's token: nothing about the cart changes, not even
            // its version, and the owner sees no trace of the attempt.
            return Decision::Dropped(rejection(
                stamp,
                ErrorCode::CartNotFound,
                "cart not found".into(),
            ));
        }
        (Some(cart), _) => cart,
    };
    if let Command::PlaceOrder(p) = command {
        if cart.status == CartStatus::Converted
            && cart.order_token.as_deref() == Some(p.order_token.as_str())
        {
            // Placed already (two placements racing, or a retry): the order
            // stands, nothing to refuse.
            return Decision::Cart(Cart {
                version: stamp.offset,
                last_command_id: stamp.command_id.to_owned(),
                ..cart.clone()
            });
        }
    }
    if let Command::CreateCart(_) = command {
        return if cart.last_command_id == stamp.command_id {
            // The same create sent twice (a client retry): not an error.
            Decision::Cart(Cart {
                version: stamp.offset,
                ..cart.clone()
            })
        } else {
            refuse(
                cart,
                stamp,
                ErrorCode::CartAlreadyExists,
                "a cart with this token already exists".into(),
            )
        };
    }
    // Idle past its time: the cart expires now, whether or not the timer
    // got to it first.
    if cart.status == CartStatus::Active && is_idle(cart, ctx.ttl_ms, stamp.at_ms) {
        let expired = Cart {
            status: CartStatus::Expired,
            ..cart.clone()
        };
        return refuse(
            &expired,
            stamp,
            ErrorCode::CartExpired,
            "the cart expired after a day without activity".into(),
        );
    }
    match cart.status {
        CartStatus::Active => {}
        CartStatus::Expired => {
            return refuse(
                cart,
                stamp,
                ErrorCode::CartExpired,
                "the cart expired after a day without activity".into(),
            )
        }
        other => {
            return refuse(
                cart,
                stamp,
                ErrorCode::CartNotModifiable,
                format!("cart is {}", other.as_str()),
            )
        }
    }
    let mut next = cart.clone();
    let changed = match command {
        Command::CreateCart(_) | Command::ExpireCart(_) | Command::ReopenCart(_) => {
            unreachable!("handled above")
        }
        Command::AddItem(a) => add_items(
            &ctx.limits,
            &mut next.items,
            [(a.internship_id.as_str(), a.quantity)],
            ctx.catalog,
        ),
        Command::UpdateQuantity(u) => set_quantity(
            &ctx.limits,
            &mut next.items,
            &u.internship_id,
            u.new_quantity,
        ),
        Command::RemoveItem(r) => set_quantity(&ctx.limits, &mut next.items, &r.internship_id, 0),
        Command::SetBuyer(b) => set_buyer(
            &mut next,
            &b.country,
            b.state.as_deref(),
            b.gstin.as_deref(),
            b.display_currency.as_deref(),
            ctx.rates,
        ),
        Command::ShareCart(s) => {
            // The first share token stays: a link once given keeps working.
            next.share_token
                .get_or_insert_with(|| s.share_token.clone());
            Ok(())
        }
        Command::AttachAnalytics(a) => attach_analytics(&mut next.analytics, &a.pairs),
        Command::AttachOwner(o) => {
            next.owner = Some(o.user_id.clone());
            Ok(())
        }
        Command::ChoosePlan(p) => choose_plan(&mut next.items, &p.plan_id, ctx.catalog),
        Command::ApplyCoupon(a) => {
            let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
            let usage = Usage {
                used: count(a.used),
                used_by_user: count(a.used_by_user),
            };
            // Applied again: the buyer tries it once more (the coupon
            // processor decides at the next placement).
            let code = a.code.trim().to_ascii_uppercase();
            next.refused_coupons.retain(|r| r.code != code);
            apply_coupon(&mut next, &a.code, usage, ctx, stamp.at_ms)
        }
        Command::RemoveCoupon(r) => {
            let code = r.coupon_code.trim().to_ascii_uppercase();
            next.coupons.retain(|c| *c != code);
            next.refused_coupons.retain(|r| r.code != code);
            Ok(())
        }
        Command::AbsorbItems(a) => add_items(
            &ctx.limits,
            &mut next.items,
            a.items
                .iter()
                .map(|i| (i.internship_id.as_str(), i.quantity)),
            ctx.catalog,
        ),
        Command::PlaceOrder(p) => return place_order(next, p, stamp, ctx),
        Command::MergeInto(m) => {
            let items = next
                .items
                .iter()
                .map(|i| (i.internship_id.clone(), i.quantity as i32))
                .collect();
            let merged = Cart {
                status: CartStatus::Merged,
                merged_into: Some(m.target_cart_token.clone()),
                version: stamp.offset,
                updated_at: stamp.at_ms,
                last_command_id: stamp.command_id.to_owned(),
                rejection: None,
                ..next
            };
            return Decision::Merged {
                cart: merged,
                target: m.target_cart_token.clone(),
                items,
                user_id: m.user_id.clone(),
            };
        }
    };
    match changed.and_then(|()| settle(&mut next, ctx, stamp.at_ms).map_err(money_refusal)) {
        Ok(()) => Decision::Cart(Cart {
            version: stamp.offset,
            updated_at: stamp.at_ms,
            last_command_id: stamp.command_id.to_owned(),
            rejection: None,
            ..next
        }),
        Err((code, msg)) => refuse(cart, stamp, code, msg),
    }
}

/// An order placed from the cart failed before payment because a coupon
/// could not be honoured: the cart is open again, for its buyer to change
/// and place as a new order (the next placement's token), the refused
/// coupon a blocker until it is removed. Only the cart converted as that
/// order reopens, once: a replay, or a reopen for an older order, changes
/// nothing.
fn reopen(cart: &Cart, r: &ReopenCart, stamp: &Stamp<'_>) -> Decision {
    if cart.status != CartStatus::Converted
        || cart.order_token.as_deref() != Some(r.reopened_order_token.as_str())
    {
        return Decision::Unchanged;
    }
    let mut refused_coupons = cart.refused_coupons.clone();
    refused_coupons.retain(|c| c.code != r.refused_coupon);
    refused_coupons.push(RefusedCoupon {
        code: r.refused_coupon.clone(),
        reason: r.reason.clone(),
    });
    Decision::Cart(Cart {
        status: CartStatus::Active,
        order_token: None,
        placements: cart.placements.saturating_add(1),
        refused_coupons,
        version: stamp.offset,
        updated_at: stamp.at_ms,
        last_command_id: stamp.command_id.to_owned(),
        rejection: None,
        ..cart.clone()
    })
}

/// The order token the cart's next placement must carry: derived from the
/// cart and how many times it was reopened, so a placement prepared
/// against an older state of the cart is refused, not taken as another.
pub fn next_order_token(cart: &Cart) -> Option<String> {
    let token = CartToken::parse(&cart.token).ok()?;
    Some(
        OrderToken::of_placement(&token, cart.placements)
            .as_str()
            .to_owned(),
    )
}

/// Whether a cart has been idle for `ttl_ms` at `now_ms`.
pub fn is_idle(cart: &Cart, ttl_ms: i64, now_ms: i64) -> bool {
    cart.updated_at.saturating_add(ttl_ms) <= now_ms
}

/// The timer's command: expires an active cart that is still idle.
fn expire(cart: &Cart, ttl_ms: i64, stamp: &Stamp<'_>) -> Decision {
    if cart.status != CartStatus::Active || !is_idle(cart, ttl_ms, stamp.at_ms) {
        return Decision::Unchanged;
    }
    Decision::Cart(Cart {
        status: CartStatus::Expired,
        version: stamp.offset,
        last_command_id: stamp.command_id.to_owned(),
        rejection: None,
        ..cart.clone()
    })
}

fn attach_analytics(
    analytics: &mut BTreeMap<String, String>,
    pairs: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let mut merged = analytics.clone();
    for (k, v) in pairs {
        if k.is_empty() || k.len() > 64 || v.len() > 256 {
            return Err((
                ErrorCode::CartLimitExceeded,
                "analytics keys are 1-64 characters, values at most 256".into(),
            ));
        }
        merged.insert(k.clone(), v.clone());
    }
    if merged.len() > MAX_ANALYTICS {
        return Err((
            ErrorCode::CartLimitExceeded,
            format!("a cart holds at most {MAX_ANALYTICS} analytics pairs"),
        ));
    }
    *analytics = merged;
    Ok(())
}

/// A user's cart changes only by that user; a guest cart by whoever holds
/// its token.
pub fn may_change(cart: &Cart, actor: Option<&str>) -> bool {
    match &cart.owner {
        None => true,
        Some(owner) => actor == Some(owner.as_str()),
    }
}

fn create<'a, C: CatalogLookup, R: RateLookup, K: CouponLookup>(
    token: &str,
    command: &CreateCart,
    items: impl IntoIterator<Item = (&'a str, i32)>,
    stamp: &Stamp<'_>,
    ctx: &Context<'_, C, R, K>,
) -> Decision {
    let mut cart = Cart {
        token: token.to_owned(),
        version: stamp.offset,
        status: CartStatus::Active,
        owner: command.owner_user_id.clone(),
        items: Vec::new(),
        buyer: None,
        display_currency: Currency::INR,
        fx: None,
        breakdown: empty_breakdown(Currency::INR, ctx.policy),
        created_at: stamp.at_ms,
        updated_at: stamp.at_ms,
        last_command_id: stamp.command_id.to_owned(),
        rejection: None,
        share_token: None,
        device_id: command.device_id.clone(),
        analytics: BTreeMap::new(),
        merged_into: None,
        coupons: Vec::new(),
        order_token: None,
        placements: 0,
        refused_coupons: Vec::new(),
    };
    let mut next = cart.clone();
    // The cart exists whatever happens next; what could not be applied is
    // refused as a whole, and the refusal says why.
    let applied = choose_currency(&mut next, Some(&command.currency), ctx.rates)
        .and_then(|()| add_items(&ctx.limits, &mut next.items, items, ctx.catalog))
        .and_then(|()| settle(&mut next, ctx, stamp.at_ms).map_err(money_refusal));
    match applied {
        Ok(()) => Decision::Cart(next),
        Err((code, msg)) => {
            // Best effort: the empty cart is still priced (in INR).
            let _ = settle(&mut cart, ctx, stamp.at_ms);
            refuse(&cart, stamp, code, msg)
        }
    }
}

/// Adds each (internship, quantity), merging into an existing line.
fn add_items<'a>(
    limits: &CartLimits,
    items: &mut Vec<Item>,
    adds: impl IntoIterator<Item = (&'a str, i32)>,
    catalog: &impl CatalogLookup,
) -> Result<(), Refusal> {
    for (id, quantity) in adds {
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
        let price = item.base_price.to_money().map_err(money_refusal)?;
        let count = items.len();
        match items.iter_mut().find(|l| l.internship_id == id.as_str()) {
            Some(line) => {
                line.quantity =
                    limits.quantity(id.as_str(), i64::from(line.quantity) + i64::from(quantity))?;
            }
            None if count >= limits.max_lines => {
                return Err((
                    ErrorCode::CartLimitExceeded,
                    format!("a cart holds at most {} internships", limits.max_lines),
                ))
            }
            None => items.push(Item {
                internship_id: id.as_str().to_owned(),
                title: item.title.clone(),
                quantity: limits.quantity(id.as_str(), i64::from(quantity))?,
                base_unit_price: price,
                tax_class: TaxClass::parse(&item.tax_class),
                available: true,
                plan: None,
                category: item.category.clone(),
            }),
        }
    }
    Ok(())
}

/// Prices the line whose internship offers `plan_id` at that plan.
fn choose_plan(
    items: &mut [Item],
    plan_id: &str,
    catalog: &impl CatalogLookup,
) -> Result<(), Refusal> {
    for item in items.iter_mut() {
        let offered = catalog
            .internship(&item.internship_id)
            .filter(|i| i.active)
            .and_then(|i| i.billing_periods.into_iter().find(|p| p.plan_id == plan_id));
        if let Some(period) = offered {
            item.base_unit_price = period.price.to_money().map_err(money_refusal)?;
            item.plan = Some(Plan {
                plan_id: period.plan_id,
                value: period.value,
                unit: period.unit.as_str().to_owned(),
            });
            return Ok(());
        }
    }
    Err((
        ErrorCode::PlanNotAvailable,
        format!("no internship in the cart offers plan {plan_id}"),
    ))
}

/// Sets a line's quantity; 0 removes the line.
fn set_quantity(
    limits: &CartLimits,
    items: &mut Vec<Item>,
    id: &str,
    quantity: i32,
) -> Result<(), Refusal> {
    let index = items
        .iter()
        .position(|l| l.internship_id == id)
        .ok_or_else(|| {
            (
                ErrorCode::ItemNotInCart,
                format!("internship {id} is not in the cart"),
            )
        })?;
    if quantity == 0 {
        items.remove(index);
    } else {
        items[index].quantity = limits.quantity(id, i64::from(quantity))?;
    }
    Ok(())
}

fn set_buyer(
    cart: &mut Cart,
    country: &str,
    state: Option<&str>,
    gstin: Option<&str>,
    currency: Option<&str>,
    rates: &impl RateLookup,
) -> Result<(), Refusal> {
    let invalid = |m: &str| (ErrorCode::InvalidBuyerDetails, m.to_owned());
    let country = schemas::values::country_code(country).map_err(|e| invalid(&e.to_string()))?;
    let state = state
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty());
    if state.as_ref().is_some_and(|s| s.len() > 64) {
        return Err(invalid("state is at most 64 characters"));
    }
    // A GSTIN arrives sealed (the ingress checked its form before
    // encrypting it, `schemas::sealed`); only a buyer in India has one. A
    // plain one (a command written before sealing) is checked here.
    let gstin = gstin.map(str::trim).filter(|g| !g.is_empty()).map(|g| {
        if schemas::sealed::is_sealed(g) {
            g.to_owned()
        } else {
            g.to_ascii_uppercase()
        }
    });
    if let Some(g) = &gstin {
        let plain_ok = g.len() == 15 && g.bytes().all(|b| b.is_ascii_alphanumeric());
        if country != "IN" || !(schemas::sealed::is_sealed(g) || plain_ok) {
            return Err(invalid(
                "a GSTIN is 15 letters and digits, for a buyer in India",
            ));
        }
    }
    cart.buyer = Some(BuyerInfo {
        country,
        state,
        gstin,
    });
    choose_currency(cart, currency, rates)
}

/// Switches the display currency when a rate for it is published.
fn choose_currency(
    cart: &mut Cart,
    currency: Option<&str>,
    rates: &impl RateLookup,
) -> Result<(), Refusal> {
    let Some(code) = currency else { return Ok(()) };
    let currency =
        Currency::parse(code).map_err(|e| (ErrorCode::CurrencyNotSupported, e.to_string()))?;
    if currency == Currency::INR {
        cart.display_currency = currency;
        cart.fx = None;
        return Ok(());
    }
    match rates.rate(currency) {
        Some(fx) => {
            cart.display_currency = currency;
            cart.fx = Some(fx);
            Ok(())
        }
        None => Err((
            ErrorCode::CurrencyNotSupported,
            format!("no exchange rate is published for {currency}"),
        )),
    }
}

/// Re-prices the cart: catalog facts for every line (flagging lines whose
/// internship is gone or inactive), the newest rate for the display
/// currency (the last one is kept if it was withdrawn), then the breakdown.
pub fn settle<C: CatalogLookup, R: RateLookup, K: CouponLookup>(
    cart: &mut Cart,
    ctx: &Context<'_, C, R, K>,
    now_ms: i64,
) -> Result<(), MoneyError> {
    for item in &mut cart.items {
        match ctx
            .catalog
            .internship(&item.internship_id)
            .filter(|i| i.active)
        {
            Some(current) => {
                item.title = current.title.clone();
                item.category = current.category.clone();
                item.tax_class = TaxClass::parse(&current.tax_class);
                match &item.plan {
                    None => {
                        item.base_unit_price = current.base_price.to_money()?;
                        item.available = true;
                    }
                    Some(plan) => match current
                        .billing_periods
                        .iter()
                        .find(|p| p.plan_id == plan.plan_id)
                    {
                        Some(period) => {
                            item.base_unit_price = period.price.to_money()?;
                            item.available = true;
                        }
                        // A withdrawn plan: the line keeps its last price, flagged.
                        None => item.available = false,
                    },
                }
            }
            None => item.available = false,
        }
    }
    if cart.display_currency != Currency::INR {
        if let Some(fx) = ctx.rates.rate(cart.display_currency) {
            cart.fx = Some(fx);
        }
    }
    let lines = line_inputs(&cart.items);
    let buyer = cart.buyer.as_ref().map(|b| Buyer {
        country: b.country.clone(),
        state: b.state.clone(),
    });
    // Coupons are checked again on every re-pricing, in the order they were
    // applied; one that no longer holds (expired, minimum no longer met)
    // stops applying and leaves the list.
    let before = pricing::price(&lines, buyer.as_ref(), cart.fx.as_ref(), ctx.policy, &[])?;
    let valid = valid_coupons(cart, &before, ctx, now_ms);
    cart.coupons = valid.iter().map(|c| c.code.clone()).collect();
    cart.breakdown = pricing::price(&lines, buyer.as_ref(), cart.fx.as_ref(), ctx.policy, &valid)?;
    Ok(())
}

/// The cart's coupons that pass their checks, in order.
fn valid_coupons<C, R, K: CouponLookup>(
    cart: &Cart,
    priced: &Breakdown,
    ctx: &Context<'_, C, R, K>,
    now_ms: i64,
) -> Vec<Coupon> {
    check_coupons(cart, priced, ctx, now_ms, None).0
}

/// How many orders hold or used a coupon, in all and by the cart's user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub used: u32,
    pub used_by_user: u32,
}

fn check_coupons<C, R, K: CouponLookup>(
    cart: &Cart,
    priced: &Breakdown,
    ctx: &Context<'_, C, R, K>,
    now_ms: i64,
    candidate: Option<(&str, Usage)>,
) -> (Vec<Coupon>, Option<coupons::Refusal>) {
    let lines = DiscountLine::of(
        &line_inputs(&cart.items),
        priced.lines.iter().map(|p| p.line_subtotal),
    );
    let mut valid: Vec<Coupon> = Vec::new();
    let mut refusal = None;
    let applied = cart.coupons.iter().map(|c| (c.as_str(), Usage::default()));
    for (code, usage) in applied.chain(candidate) {
        let coupon = ctx.coupons.coupon(code);
        let check = coupons::check(
            coupon.as_ref(),
            &CheckContext {
                now_ms,
                user_id: cart.owner.as_deref(),
                lines: &lines,
                subtotal: priced.subtotal,
                fx: cart.fx.as_ref(),
                applied: &valid,
                max_per_cart: ctx.max_coupons,
                // The candidate's uses as stamped on the command (the coupon
                // processor's count when it was accepted); a coupon applied
                // earlier keeps its place, and the order reserves it exactly.
                used: usage.used,
                used_by_user: usage.used_by_user,
                rounding: ctx.policy.rounding,
            },
        );
        match (check, coupon) {
            (Ok(()), Some(c)) => valid.push(c),
            (Err(r), _) if Some(code) == candidate.map(|c| c.0) => refusal = Some(r),
            _ => {}
        }
    }
    (valid, refusal)
}

/// Adds a coupon after the ones on the cart, if it passes its checks.
fn apply_coupon<C: CatalogLookup, R: RateLookup, K: CouponLookup>(
    cart: &mut Cart,
    code: &str,
    usage: Usage,
    ctx: &Context<'_, C, R, K>,
    now_ms: i64,
) -> Result<(), Refusal> {
    let code = code.trim().to_ascii_uppercase();
    settle(cart, ctx, now_ms).map_err(money_refusal)?;
    if cart.coupons.contains(&code) {
        let r = coupons::Refusal::AlreadyApplied;
        return Err((r.error_code(), r.message()));
    }
    let without = Breakdown {
        discounts: Vec::new(),
        ..cart.breakdown.clone()
    };
    match check_coupons(cart, &without, ctx, now_ms, Some((&code, usage))).1 {
        Some(r) => Err((r.error_code(), r.message())),
        None => {
            // A referral is recorded for analytics: who brought this buyer.
            if let Some(referrer) = ctx.coupons.coupon(&code).and_then(|c| c.referrer_user_id) {
                cart.analytics.insert("referrer_user_id".into(), referrer);
            }
            cart.coupons.push(code);
            Ok(())
        }
    }
}

/// The cart's items as the pricing rules take them.
fn line_inputs(items: &[Item]) -> Vec<LineInput> {
    items
        .iter()
        .map(|i| LineInput {
            internship_id: i.internship_id.clone(),
            title: i.title.clone(),
            category: i.category.clone(),
            quantity: i.quantity,
            unit_price: i.base_unit_price,
            tax_class: i.tax_class,
        })
        .collect()
}

fn empty_breakdown(currency: Currency, policy: &PricingPolicy) -> Breakdown {
    let zero = Money::zero(currency);
    Breakdown {
        currency,
        lines: Vec::new(),
        taxes: Vec::new(),
        subtotal: zero,
        discount_total: zero,
        tax_total: zero,
        total: zero,
        tax_inclusive: policy.tax_inclusive,
        discounts: Vec::new(),
    }
}

fn money_refusal(e: MoneyError) -> Refusal {
    match e {
        MoneyError::Overflow => (
            ErrorCode::CartLimitExceeded,
            "the cart's total is out of range".into(),
        ),
        other => (ErrorCode::CurrencyNotSupported, other.to_string()),
    }
}

/// Checks the cart out: priced once more at the command's table versions
/// (the prices the order freezes), refused with every blocker when anything
/// blocks it, else converted.
fn place_order<C: CatalogLookup, R: RateLookup, K: CouponLookup>(
    mut next: Cart,
    p: &schemas::records::cart::PlaceOrder,
    stamp: &Stamp<'_>,
    ctx: &Context<'_, C, R, K>,
) -> Decision {
    if let Err((code, message)) = settle(&mut next, ctx, stamp.at_ms).map_err(money_refusal) {
        return refuse(&next, stamp, code, message);
    }
    if let Some(expected) = next_order_token(&next) {
        if p.order_token != expected {
            return refuse(
                &next,
                stamp,
                ErrorCode::CartNotModifiable,
                "the cart was reopened after an order placed from it failed: read it and place it again"
                    .into(),
            );
        }
    }
    let blockers = next.checkout_blockers();
    if let Some(first) = blockers.first() {
        let message = blockers
            .iter()
            .map(|b| format!("{} ({})", b.message, b.code.code()))
            .collect::<Vec<_>>()
            .join("; ");
        return refuse(&next, stamp, first.code, message);
    }
    Decision::Ordered {
        cart: Cart {
            // A guest cart checked out by a signed-in user becomes theirs:
            // the order's buyer, counted by per-user coupon limits.
            owner: next.owner.clone().or_else(|| p.actor_user_id.clone()),
            status: CartStatus::Converted,
            order_token: Some(p.order_token.clone()),
            version: stamp.offset,
            updated_at: stamp.at_ms,
            last_command_id: stamp.command_id.to_owned(),
            rejection: None,
            ..next
        },
        order_token: p.order_token.clone(),
        success_url: p.success_url.clone(),
        cancel_url: p.cancel_url.clone(),
        buyer_email: p.buyer_email.clone(),
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
mod tests;
