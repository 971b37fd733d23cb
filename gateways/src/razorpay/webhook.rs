//! Razorpay's signatures: webhooks (`X-Razorpay-Signature` = hex
//! HMAC-SHA256 of the raw body with the webhook secret) and the checkout
//! success callback (hex HMAC-SHA256 of `order_id|payment_id` with the key
//! secret).
//!
//! Verification runs over the raw bytes as received: a re-serialized body
//! differs (razorpay-node #434). Comparisons are constant-time
//! (`Mac::verify_slice`). During a secret rotation the caller passes both
//! secrets ([`crate::WebhookSecrets::accepted_at`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::WebhookError;

pub const SIGNATURE_HEADER: &str = "x-razorpay-signature";
/// The dedupe key of a delivery.
pub const EVENT_ID_HEADER: &str = "x-razorpay-event-id";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length")
}

/// The signature Razorpay sends for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Accepts `raw_body` if `signature` (the header's value) was made with
/// one of `secrets`.
pub fn verify(
    raw_body: &[u8],
    signature: Option<&str>,
    secrets: &[&str],
) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::MissingSignature)?.trim();
    check(&[raw_body], signature, secrets)
}

/// The `razorpay_signature` the checkout hands the browser on success.
pub fn sign_checkout(key_secret: &str, order_id: &str, payment_id: &str) -> String {
    let mut m = mac(key_secret);
    m.update(order_id.as_bytes());
    m.update(b"|");
    m.update(payment_id.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Checks the browser's success callback against the order id *we* stored
/// (never the one the browser sends alone).
pub fn verify_checkout(
    order_id: &str,
    payment_id: &str,
    signature: &str,
    key_secret: &str,
) -> Result<(), WebhookError> {
    check(
        &[order_id.as_bytes(), b"|", payment_id.as_bytes()],
        signature.trim(),
        &[key_secret],
    )
}

fn check(parts: &[&[u8]], signature: &str, secrets: &[&str]) -> Result<(), WebhookError> {
    if secrets.is_empty() {
        return Err(WebhookError::NoSecrets);
    }
    if signature.is_empty() {
        return Err(WebhookError::MalformedSignature("empty"));
    }
    let expected =
        hex::decode(signature).map_err(|_| WebhookError::MalformedSignature("not hex"))?;
    if expected.len() != 32 {
        return Err(WebhookError::MalformedSignature("not 32 bytes"));
    }
    for secret in secrets {
        let mut m = mac(secret);
        for part in parts {
            m.update(part);
        }
        if m.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(WebhookError::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebhookSecrets;

    const BODY: &[u8] = br#"{"entity":"event","event":"payment.captured"}"#;

    #[test]
    fn a_signature_matches_an_independent_computation() {
        // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let sig = sign("whsec", BODY);
        assert_eq!(verify(BODY, Some(&sig), &["whsec"]), Ok(()));
        // Razorpay writes lowercase hex; uppercase decodes the same.
        assert_eq!(verify(BODY, Some(&sig.to_uppercase()), &["whsec"]), Ok(()));
    }

    #[test]
    fn a_forged_or_tampered_body_is_rejected() {
        let sig = sign("whsec", BODY);
        assert_eq!(
            verify(BODY, Some(&sign("guess", BODY)), &["whsec"]),
            Err(WebhookError::Forged)
        );
        let tampered = br#"{"entity":"event","event":"payment.captured" }"#;
        assert_eq!(
            verify(tampered, Some(&sig), &["whsec"]),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn a_malformed_or_missing_header_is_rejected() {
        assert_eq!(
            verify(BODY, None, &["whsec"]),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify(BODY, Some(""), &["whsec"]),
            Err(WebhookError::MalformedSignature("empty"))
        );
        assert_eq!(
            verify(BODY, Some("zz"), &["whsec"]),
            Err(WebhookError::MalformedSignature("not hex"))
        );
        assert_eq!(
            verify(BODY, Some("abcd"), &["whsec"]),
            Err(WebhookError::MalformedSignature("not 32 bytes"))
        );
        assert_eq!(
            verify(BODY, Some(&sign("whsec", BODY)), &[]),
            Err(WebhookError::NoSecrets)
        );
    }

    #[test]
    fn the_previous_secret_is_accepted_during_the_rotation_window_only() {
        let secrets = WebhookSecrets::new("old").rotate("new", 1_000);
        let old_sig = sign("old", BODY);
        assert_eq!(
            verify(BODY, Some(&old_sig), &secrets.accepted_at(900)),
            Ok(())
        );
        assert_eq!(
            verify(BODY, Some(&sign("new", BODY)), &secrets.accepted_at(900)),
            Ok(())
        );
        assert_eq!(
            verify(BODY, Some(&old_sig), &secrets.accepted_at(1_001)),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn the_checkout_signature_covers_order_and_payment() {
        let sig = sign_checkout("key_secret", "order_A", "pay_B");
        assert_eq!(sig, sign("key_secret", b"order_A|pay_B"));
        assert_eq!(
            verify_checkout("order_A", "pay_B", &sig, "key_secret"),
            Ok(())
        );
        assert_eq!(
            verify_checkout("order_X", "pay_B", &sig, "key_secret"),
            Err(WebhookError::Forged)
        );
    }
}
