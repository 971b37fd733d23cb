//! Personal fields at the edge (a buyer's GSTIN and email, a seat
//! holder's email): sealed before
//! a command leaves for Kafka, opened when the read model answers the
//! person (see `platform::pii`).
//! Nothing behind the ingress sees them in the clear, so neither a topic
//! nor a table holds them so; an erased person's fields read as absent.

use platform::pii::{PiiError, Pseudonyms, Vault};
use schemas::values::CartToken;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::read_model::orders::OrderView;
use crate::read_model::CartView;
use crate::AppState;

/// Whose data key seals what `caller` writes to `cart`: a signed-in
/// person's own, or, for a guest, one of the cart's.
pub fn person(caller: &Caller, cart: &CartToken) -> String {
    match caller.user_id() {
        Some(user) => user_person(user),
        None => cart_person(cart),
    }
}

/// The data key of a signed-in person.
pub fn user_person(user: &str) -> String {
    format!("user:{user}")
}

/// The data key of a guest cart.
fn cart_person(cart: &CartToken) -> String {
    format!("cart:{}", cart.as_str())
}

/// The one-way reference an email address is found by
/// (`email:<its blind index>`), never the address itself.
pub fn email_alias(pseudonyms: &Pseudonyms, email: &str) -> String {
    format!("email:{}", pseudonyms.email(email))
}

/// The one-way reference a user's erasure finds the keys of their guest
/// carts by.
pub fn user_alias(user: &str) -> String {
    format!("user:{user}")
}

/// Links `email` to `person`'s key, so an admin's erasure by email finds
/// a guest's data.
pub async fn link_email(state: &AppState, email: &str, person: &str) -> Result<(), ApiError> {
    state
        .vault
        .link(&email_alias(&state.pseudonyms, email), person)
        .await
        .map_err(pii_error)
}

/// Links a guest cart's key to the user who signs in with it: their own
/// erasure destroys it too.
pub async fn link_guest_cart(vault: &Vault, user: &str, cart: &CartToken) -> Result<(), ApiError> {
    vault
        .link(&user_alias(user), &cart_person(cart))
        .await
        .map_err(pii_error)
}

/// `email` sealed under `person`'s key, with its blind index (so seats
/// compare addresses unopened).
pub async fn seal_email(state: &AppState, person: &str, email: &str) -> Result<String, ApiError> {
    state
        .vault
        .seal_email(person, email, &state.pseudonyms)
        .await
        .map_err(pii_error)
}

/// Whose data key seals a seat holder's address: their own, named by the
/// address's blind index, and found by an erasure by that address.
pub async fn seat_holder(state: &AppState, email: &str) -> Result<String, ApiError> {
    let person = format!("holder:{}", state.pseudonyms.email(email));
    link_email(state, email, &person).await?;
    Ok(person)
}

/// `value` sealed under `person`'s key.
pub async fn seal(vault: &Vault, person: &str, value: &str) -> Result<String, ApiError> {
    vault.seal(person, value).await.map_err(pii_error)
}

/// The cart's personal fields (the buyer's GSTIN), opened.
pub async fn open_cart(vault: &Vault, cart: &mut CartView) -> Result<(), ApiError> {
    if let Some(buyer) = cart.buyer.as_mut() {
        buyer.gstin = vault
            .open_opt(buyer.gstin.as_deref())
            .await
            .map_err(pii_error)?;
    }
    Ok(())
}

/// The order's personal fields (its buyer's email, the GSTIN of its
/// frozen cart), opened.
pub async fn open_order(vault: &Vault, order: &mut OrderView) -> Result<(), ApiError> {
    order.buyer_email = vault
        .open_opt(order.buyer_email.as_deref())
        .await
        .map_err(pii_error)?;
    let Some(gstin) = order.placed.pointer_mut("/buyer/gstin") else {
        return Ok(());
    };
    if let Some(stored) = gstin.as_str().map(str::to_owned) {
        *gstin = match vault.open(&stored).await.map_err(pii_error)?.into_option() {
            Some(v) => serde_json::Value::String(v),
            None => serde_json::Value::Null,
        };
    }
    Ok(())
}

pub(crate) fn pii_error(e: PiiError) -> ApiError {
    match e {
        PiiError::Db(e) => ApiError::from(e),
        // The value is not in the message: only what went wrong.
        other => ApiError::Internal(anyhow::anyhow!("personal data: {other}")),
    }
}

/// An optional stored field (an enrollment's or a case's email), opened.
pub async fn open_field(vault: &Vault, field: &mut Option<String>) -> Result<(), ApiError> {
    *field = vault.open_opt(field.as_deref()).await.map_err(pii_error)?;
    Ok(())
}
