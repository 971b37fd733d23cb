//! Coupons: whether one may be applied to a cart ([`check`]), and how much
//! each applied coupon takes off each line ([`allocate`]). Pure: the cart
//! processor and the ingress's validation call the same functions.
//!
//! Kinds: a percentage (optionally capped), a fixed amount (per currency),
//! free enrollment (100 % on named internships), bulk tiers (a percentage
//! by the number of seats), and referral codes (a referee's percentage, on
//! a code owned by the referring user, who cannot use it). Rules: validity
//! window, minimum order value (converted to the cart's currency), total
//! and per-user usage limits, scope (internships, categories), combinable
//! or exclusive, and a maximum number of coupons per cart.
//!
//! Discounts are computed in integer minor units of the cart's currency,
//! coupon after coupon on what the previous ones left, and spread across
//! the eligible lines in proportion to their amounts; the parts of every
//! coupon add up exactly to its total, and no line goes below zero.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use schemas::codes::ErrorCode;
use schemas::records::coupons::{Coupon as CouponRecord, CouponKind};
use schemas::{Currency, Money, MoneyError, Rounding};

use crate::basket::{Fx, LineInput};

/// Most coupons on one cart.
pub const MAX_PER_CART: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// A fraction of the eligible amount (0.10 = 10 %), capped by an INR
    /// amount when set.
    Percent { rate: Decimal, cap: Option<Money> },
    /// A fixed amount, given per currency; INR is converted when the cart's
    /// currency has no amount of its own.
    Fixed(Vec<Money>),
    /// 100 % of the eligible lines (the scope names the internships).
    Free,
    /// A fraction by the number of eligible seats: the tier with the
    /// highest minimum the cart reaches.
    Tiers(Vec<(u32, Decimal)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub internships: Vec<String>,
    pub categories: Vec<String>,
}

impl Scope {
    fn covers(&self, line: &DiscountLine) -> bool {
        (self.internships.is_empty() && self.categories.is_empty())
            || self.internships.iter().any(|i| *i == line.internship_id)
            || self.categories.iter().any(|c| *c == line.category)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// Upper case, the key of the coupon.
    pub code: String,
    pub name: String,
    pub amount: Amount,
    pub scope: Scope,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    /// In INR; compared with the cart's subtotal after conversion.
    pub min_order: Option<Money>,
    pub usage_limit: Option<u32>,
    pub per_user_limit: Option<u32>,
    pub combinable: bool,
    pub active: bool,
    /// For a referral code: the referring user (who cannot use it).
    pub referrer_user_id: Option<String>,
}

impl Coupon {
    /// The rules of a published definition; `None` when it does not make
    /// sense (a kind without its amount), which then counts as unknown.
    pub fn from_record(r: &CouponRecord) -> Option<Coupon> {
        let rate = r
            .percent
            .as_deref()
            .and_then(|p| p.parse::<Decimal>().ok())
            .filter(|p| *p > Decimal::ZERO && *p <= Decimal::ONE);
        let amount = match r.kind {
            CouponKind::Percentage | CouponKind::Referral => Amount::Percent {
                rate: rate?,
                cap: r.cap.as_ref().map(|c| c.to_money()).transpose().ok()?,
            },
            CouponKind::Fixed => Amount::Fixed(
                r.amounts
                    .iter()
                    .map(|a| a.to_money())
                    .collect::<Result<_, _>>()
                    .ok()?,
            ),
            CouponKind::FreeEnrollment => Amount::Free,
            CouponKind::BulkTiers => Amount::Tiers(
                r.tiers
                    .iter()
                    .map(|t| {
                        Some((
                            u32::try_from(t.min_seats).ok()?,
                            t.percent.parse::<Decimal>().ok()?,
                        ))
                    })
                    .collect::<Option<_>>()?,
            ),
        };
        Some(Coupon {
            code: r.code.clone(),
            name: r.name.clone(),
            amount,
            scope: Scope {
                internships: r.scope_internships.clone(),
                categories: r.scope_categories.clone(),
            },
            valid_from_ms: r.valid_from,
            valid_until_ms: r.valid_until,
            min_order: r
                .min_order
                .as_ref()
                .map(|m| m.to_money())
                .transpose()
                .ok()?,
            usage_limit: r.usage_limit.and_then(|n| u32::try_from(n).ok()),
            per_user_limit: r.per_user_limit.and_then(|n| u32::try_from(n).ok()),
            combinable: r.combinable,
            active: r.active,
            referrer_user_id: r.referrer_user_id.clone(),
        })
    }
}

/// A line as discounts see it, in the cart's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountLine {
    pub internship_id: String,
    pub category: String,
    pub quantity: u32,
    pub line_subtotal: Money,
}

impl DiscountLine {
    /// The lines as discounts see them: what each is and what it costs
    /// before any discount (`subtotals`, in the lines' order).
    pub fn of(
        lines: &[LineInput],
        subtotals: impl IntoIterator<Item = Money>,
    ) -> Vec<DiscountLine> {
        lines
            .iter()
            .zip(subtotals)
            .map(|(l, line_subtotal)| DiscountLine {
                internship_id: l.internship_id.clone(),
                category: l.category.clone(),
                quantity: l.quantity,
                line_subtotal,
            })
            .collect()
    }
}

/// Why a coupon cannot be applied; each has its own code (20xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    NotYetValid,
    MinimumNotReached { minimum: Money },
    NotApplicable,
    NotCombinable,
    UsageLimitReached,
    PerUserLimitReached,
    OwnReferralCode,
    TooManyCoupons { max: usize },
    AlreadyApplied,
}

impl Refusal {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Refusal::Unknown => ErrorCode::CouponUnknown,
            Refusal::Expired => ErrorCode::CouponExpired,
            Refusal::NotYetValid => ErrorCode::CouponNotYetValid,
            Refusal::MinimumNotReached { .. } => ErrorCode::CouponMinimumNotReached,
            Refusal::NotApplicable => ErrorCode::CouponNotApplicable,
            Refusal::NotCombinable => ErrorCode::CouponNotCombinable,
            Refusal::UsageLimitReached => ErrorCode::CouponUsedUp,
            Refusal::PerUserLimitReached => ErrorCode::CouponPerUserLimit,
            Refusal::OwnReferralCode => ErrorCode::CouponOwnReferral,
            Refusal::TooManyCoupons { .. } => ErrorCode::CouponTooMany,
            Refusal::AlreadyApplied => ErrorCode::CouponAlreadyApplied,
        }
    }

    pub fn code(&self) -> i32 {
        self.error_code().code()
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Unknown => "no such coupon".into(),
            Refusal::Expired => "the coupon has expired".into(),
            Refusal::NotYetValid => "the coupon is not valid yet".into(),
            Refusal::MinimumNotReached { minimum } => {
                format!("the order must be at least {minimum}")
            }
            Refusal::NotApplicable => "the coupon does not apply to these items".into(),
            Refusal::NotCombinable => {
                "the coupon cannot be combined with the coupons already applied".into()
            }
            Refusal::UsageLimitReached => "the coupon has been used up".into(),
            Refusal::PerUserLimitReached => "you have used this coupon as often as allowed".into(),
            Refusal::OwnReferralCode => "you cannot use your own referral code".into(),
            Refusal::TooManyCoupons { max } => format!("a cart takes at most {max} coupons"),
            Refusal::AlreadyApplied => "the coupon is already applied".into(),
        }
    }
}

/// What a check needs besides the coupon.
pub struct CheckContext<'a> {
    pub now_ms: i64,
    pub user_id: Option<&'a str>,
    pub lines: &'a [DiscountLine],
    /// The cart's subtotal in its currency.
    pub subtotal: Money,
    pub fx: Option<&'a Fx>,
    /// The coupons already on the cart.
    pub applied: &'a [Coupon],
    pub max_per_cart: usize,
    /// Times used in all, and by this user (exact only at order placement).
    pub used: u32,
    pub used_by_user: u32,
    pub rounding: Rounding,
}

/// Whether `coupon` may be added to a cart.
pub fn check(coupon: Option<&Coupon>, ctx: &CheckContext<'_>) -> Result<(), Refusal> {
    let coupon = coupon.filter(|c| c.active).ok_or(Refusal::Unknown)?;
    if ctx.applied.iter().any(|a| a.code == coupon.code) {
        return Err(Refusal::AlreadyApplied);
    }
    if coupon.valid_from_ms.is_some_and(|from| ctx.now_ms < from) {
        return Err(Refusal::NotYetValid);
    }
    if coupon
        .valid_until_ms
        .is_some_and(|until| ctx.now_ms >= until)
    {
        return Err(Refusal::Expired);
    }
    if coupon.referrer_user_id.is_some() && coupon.referrer_user_id.as_deref() == ctx.user_id {
        return Err(Refusal::OwnReferralCode);
    }
    if ctx.applied.len() >= ctx.max_per_cart {
        return Err(Refusal::TooManyCoupons {
            max: ctx.max_per_cart,
        });
    }
    if !ctx.applied.is_empty() && (!coupon.combinable || ctx.applied.iter().any(|a| !a.combinable))
    {
        return Err(Refusal::NotCombinable);
    }
    if !ctx.lines.iter().any(|l| coupon.scope.covers(l)) {
        return Err(Refusal::NotApplicable);
    }
    if let Some(min) = &coupon.min_order {
        let minimum = convert(min, ctx.subtotal.currency(), ctx.fx, ctx.rounding)
            .map_err(|_| Refusal::NotApplicable)?;
        if ctx.subtotal.amount() < minimum.amount() {
            return Err(Refusal::MinimumNotReached { minimum });
        }
    }
    if coupon.usage_limit.is_some_and(|limit| ctx.used >= limit) {
        return Err(Refusal::UsageLimitReached);
    }
    if coupon
        .per_user_limit
        .is_some_and(|limit| ctx.used_by_user >= limit)
    {
        return Err(Refusal::PerUserLimitReached);
    }
    Ok(())
}

/// An amount in INR (or already in `currency`) in `currency`.
fn convert(
    m: &Money,
    currency: Currency,
    fx: Option<&Fx>,
    rounding: Rounding,
) -> Result<Money, MoneyError> {
    if m.currency() == currency {
        return Ok(*m);
    }
    match fx {
        Some(fx) if fx.currency == currency && m.currency() == Currency::INR => Ok(Money::new(
            m.amount()
                .checked_mul(fx.rate)
                .ok_or(MoneyError::Overflow)?,
            currency,
        )
        .round(rounding)),
        _ => Err(MoneyError::CurrencyMismatch(m.currency(), currency)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDiscount {
    pub code: String,
    pub name: String,
    pub amount: Money,
}

/// The discount of every line (in line order) and of every coupon (in
/// coupon order), in the lines' currency.
pub fn allocate(
    coupons: &[Coupon],
    lines: &[DiscountLine],
    currency: Currency,
    fx: Option<&Fx>,
    rounding: Rounding,
) -> Result<(Vec<Money>, Vec<AppliedDiscount>), MoneyError> {
    let mut taken: Vec<i64> = vec![0; lines.len()];
    let subtotals: Vec<i64> = lines
        .iter()
        .map(|l| l.line_subtotal.to_minor())
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::with_capacity(coupons.len());
    for coupon in coupons {
        let eligible: Vec<usize> = (0..lines.len())
            .filter(|&i| match &coupon.amount {
                Amount::Free => coupon
                    .scope
                    .internships
                    .iter()
                    .any(|id| *id == lines[i].internship_id),
                _ => coupon.scope.covers(&lines[i]),
            })
            .collect();
        let room: Vec<i64> = eligible.iter().map(|&i| subtotals[i] - taken[i]).collect();
        let base: i64 = room.iter().sum();
        let total = match &coupon.amount {
            Amount::Percent { rate, cap } => {
                let mut t = fraction(base, *rate, currency, rounding)?;
                if let Some(cap) = cap {
                    t = t.min(convert(cap, currency, fx, rounding)?.to_minor()?);
                }
                t
            }
            Amount::Fixed(amounts) => {
                let own = amounts.iter().find(|a| a.currency() == currency);
                let inr = amounts.iter().find(|a| a.currency() == Currency::INR);
                match (own, inr) {
                    (Some(a), _) => a.to_minor()?,
                    (None, Some(a)) => convert(a, currency, fx, rounding)?.to_minor()?,
                    (None, None) => 0,
                }
            }
            Amount::Free => base,
            Amount::Tiers(tiers) => {
                let seats: u32 = eligible.iter().map(|&i| lines[i].quantity).sum();
                let rate = tiers
                    .iter()
                    .filter(|(min, _)| seats >= *min)
                    .max_by_key(|(min, _)| *min)
                    .map(|(_, r)| *r);
                rate.map(|r| fraction(base, r, currency, rounding))
                    .transpose()?
                    .unwrap_or(0)
            }
        }
        .clamp(0, base);
        for (k, share) in spread(total, &room).into_iter().enumerate() {
            taken[eligible[k]] += share;
        }
        applied.push(AppliedDiscount {
            code: coupon.code.clone(),
            name: coupon.name.clone(),
            amount: Money::from_minor(total, currency),
        });
    }
    Ok((
        taken
            .into_iter()
            .map(|m| Money::from_minor(m, currency))
            .collect(),
        applied,
    ))
}

/// `base × rate`, rounded to whole minor units.
fn fraction(
    base: i64,
    rate: Decimal,
    currency: Currency,
    rounding: Rounding,
) -> Result<i64, MoneyError> {
    Money::from_minor(base, currency)
        .times_rate(rate, rounding)?
        .to_minor()
}

/// Splits `total` minor units across lines in proportion to their `room`,
/// never more than a line's room: proportional floors first, then the
/// leftover unit by unit to the lines with room, in order.
fn spread(total: i64, room: &[i64]) -> Vec<i64> {
    let base: i64 = room.iter().sum();
    if base == 0 || total == 0 {
        return vec![0; room.len()];
    }
    let mut shares: Vec<i64> = room
        .iter()
        .map(|r| {
            (i128::from(total) * i128::from(*r) / i128::from(base))
                .to_i64()
                .unwrap_or(0)
        })
        .collect();
    let mut left = total - shares.iter().sum::<i64>();
    while left > 0 {
        let before = left;
        for (s, r) in shares.iter_mut().zip(room) {
            if left > 0 && *s < *r {
                *s += 1;
                left -= 1;
            }
        }
        if left == before {
            break;
        }
    }
    shares
}

#[cfg(test)]
mod tests;
