//! Validated identifiers and counts shared by every stage.
//!
//! Each type can only be built through its `parse`, so code holding one never
//! re-checks it; the ingress turns bad input into a typed error at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("cart token must be 32 lowercase hexadecimal characters")]
    CartToken,
    #[error("internship id must be 1-64 characters of a-z, 0-9 and '-'")]
    InternshipId,
    #[error("quantity must be between 1 and {max}")]
    Quantity { max: u32 },
    #[error("coupon codes are 3-32 of A-Z, 0-9 and '-'")]
    CouponCode,
    #[error("country must be an ISO 3166-1 alpha-2 code")]
    Country,
    #[error("order token must be 32 lowercase hexadecimal characters")]
    OrderToken,
    #[error("email must be an address such as name@example.com (at most 254 characters)")]
    Email,
}

/// An order's token: derived from the token of the cart it was placed
/// from, so a cart yields one order (a placement repeated finds the same
/// order) and the order token is as hard to guess as the cart token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderToken(String);

impl OrderToken {
    /// The order a cart is first placed as.
    pub fn of_cart(cart: &CartToken) -> OrderToken {
        OrderToken::of_placement(cart, 0)
    }

    /// The order a cart is placed as after it was reopened `placements`
    /// times (an order placed from it failed before payment): one order
    /// per placement, each derived from the cart, so a retried placement
    /// is the same order.
    pub fn of_placement(cart: &CartToken, placements: i32) -> OrderToken {
        OrderToken(
            crate::ids::derived("order-token", cart.as_str(), i64::from(placements))
                .simple()
                .to_string(),
        )
    }

    pub fn parse(s: &str) -> Result<OrderToken, ValueError> {
        CartToken::parse(s)
            .map(|t| OrderToken(t.0))
            .map_err(|_| ValueError::OrderToken)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A coupon code, upper-cased: 3-32 of A-Z, 0-9 and '-'.
pub fn coupon_code(raw: &str) -> Result<String, ValueError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (3..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(code)
    } else {
        Err(ValueError::CouponCode)
    }
}

/// An ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country_code(raw: &str) -> Result<String, ValueError> {
    let country = raw.trim().to_ascii_uppercase();
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(country)
    } else {
        Err(ValueError::Country)
    }
}

/// The unguessable token that names (and, for a guest, authorizes) a cart:
/// 128 random bits as 32 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CartToken(String);

impl CartToken {
    pub fn random() -> CartToken {
        CartToken(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn parse(s: &str) -> Result<CartToken, ValueError> {
        let ok = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(CartToken(s.to_owned()))
        } else {
            Err(ValueError::CartToken)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CartToken {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CartToken::parse(&value)
    }
}

impl From<CartToken> for String {
    fn from(value: CartToken) -> Self {
        value.0
    }
}

impl fmt::Display for CartToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CartToken {
    /// Tokens are credentials for guest carts: logs show only a prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CartToken({}…)", &self.0[..8])
    }
}

/// The token of a cart's read-only shared view: derived from the cart token
/// (so sharing twice gives the same link) by a one-way hash (so the link
/// does not reveal the cart token, which can change the cart).
pub fn share_token_for(cart: &CartToken) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("internhub-share:{}", cart.as_str()).as_bytes());
    hex::encode(&digest[..16])
}

/// A catalog slug such as `rust-backend-2027`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InternshipId(String);

impl InternshipId {
    pub fn parse(s: &str) -> Result<InternshipId, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(InternshipId(s.to_owned()))
        } else {
            Err(ValueError::InternshipId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InternshipId {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        InternshipId::parse(&value)
    }
}

impl From<InternshipId> for String {
    fn from(value: InternshipId) -> Self {
        value.0
    }
}

impl fmt::Display for InternshipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address as far as we check one: `local@domain.tld`, no
/// spaces or control characters, at most 254 characters (RFC 5321's path
/// limit), the domain lowercased. Deliverability is the mail server's
/// business; this only keeps garbage out of the records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, ValueError> {
        let s = s.trim();
        let (local, domain) = s.rsplit_once('@').ok_or(ValueError::Email)?;
        let clean =
            |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c.is_control());
        let ok = s.len() <= 254
            && local.len() <= 64
            && clean(local)
            && clean(domain)
            && !local.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.');
        if ok {
            Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
        } else {
            Err(ValueError::Email)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

/// Seats of one internship in a cart: at least one, at most [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

impl Quantity {
    /// A company buys seats in bulk, but not unboundedly: a line above this
    /// is a typo or an attack, and it keeps every total far from overflow.
    pub const MAX: u32 = 1_000;

    pub fn new(n: i64) -> Result<Quantity, ValueError> {
        if (1..=i64::from(Self::MAX)).contains(&n) {
            Ok(Quantity(n as u32))
        } else {
            Err(ValueError::Quantity { max: Self::MAX })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails_are_checked_and_their_domain_lowercased() {
        use super::Email;
        assert_eq!(
            Email::parse(" Ana.P+x@Example.COM ").unwrap().as_str(),
            "Ana.P+x@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@exa mple.com",
            "ana@@example.com",
            "ana@.com",
            "ana@example.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    use super::*;

    #[test]
    fn cart_tokens_are_128_bit_hex() {
        let t = CartToken::random();
        assert_eq!(t.as_str().len(), 32);
        assert_eq!(CartToken::parse(t.as_str()), Ok(t.clone()));
        assert!(CartToken::parse("ABCDEF0123456789abcdef0123456789").is_err());
        assert!(CartToken::parse("abc").is_err());
        assert!(
            !format!("{t:?}").contains(t.as_str()),
            "Debug must not print the whole token"
        );
    }

    #[test]
    fn share_tokens_are_stable_and_differ_from_the_cart_token() {
        let t = CartToken::random();
        assert_eq!(share_token_for(&t), share_token_for(&t));
        assert_ne!(share_token_for(&t), t.as_str());
        assert_eq!(share_token_for(&t).len(), 32);
        assert!(
            CartToken::parse(&share_token_for(&t)).is_ok(),
            "same shape as a cart token"
        );
    }

    #[test]
    fn internship_ids_are_slugs() {
        assert!(InternshipId::parse("rust-backend-2027").is_ok());
        assert!(InternshipId::parse("").is_err());
        assert!(InternshipId::parse("Rust").is_err());
        assert!(InternshipId::parse(&"a".repeat(65)).is_err());
        assert!(InternshipId::parse("a b").is_err());
    }

    #[test]
    fn coupon_and_country_codes_are_normalized_and_bounded() {
        assert_eq!(coupon_code(" welcome-10 "), Ok("WELCOME-10".into()));
        assert!(
            coupon_code("ab").is_err()
                && coupon_code("NO SPACE").is_err()
                && coupon_code(&"A".repeat(33)).is_err()
        );
        assert_eq!(country_code("in"), Ok("IN".into()));
        assert!(country_code("IND").is_err() && country_code("I1").is_err());
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert!(Quantity::new(i64::from(Quantity::MAX) + 1).is_err());
    }
}
