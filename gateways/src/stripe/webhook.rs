//! Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
//! each `v1` a hex HMAC-SHA256 of `"{t}.{raw body}"` with an endpoint
//! secret (`whsec_…`). Stripe sends one `v1` per active secret while a
//! secret is being rolled.
//!
//! A signature is accepted when any configured secret produces any `v1`
//! (constant-time comparison), and then only if `t` is within the
//! tolerance of `now` in either direction (docs/gateways.md: |now − t| ≤ 300 s;
//! Hyperswitch's check skipped this, so replays got through). `now` is
//! passed in: there is no clock here.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::WebhookError;

pub const SIGNATURE_HEADER: &str = "stripe-signature";
/// The official libraries' default.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `v1` value for `body` signed at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The header Stripe sends: one `v1` per secret.
pub fn header(timestamp: i64, body: &[u8], secrets: &[&str]) -> String {
    let mut out = format!("t={timestamp}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(secret, timestamp, body));
    }
    out
}

/// A parsed `Stripe-Signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// The decoded `v1` values; other schemes (`v0`) are ignored.
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    pub fn parse(raw: &str) -> Result<SignatureHeader, WebhookError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        let mut undecodable = false;
        for item in raw.split(',') {
            let (key, value) = item
                .trim()
                .split_once('=')
                .ok_or(WebhookError::MalformedSignature("an item without '='"))?;
            match key {
                "t" => {
                    if timestamp.is_some() {
                        return Err(WebhookError::MalformedSignature("more than one t="));
                    }
                    timestamp =
                        Some(value.parse::<i64>().map_err(|_| {
                            WebhookError::MalformedSignature("t= is not an integer")
                        })?);
                }
                "v1" => match hex::decode(value) {
                    Ok(bytes) if bytes.len() == 32 => v1.push(bytes),
                    // Cannot match any signature; others still may.
                    _ => undecodable = true,
                },
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(WebhookError::MalformedSignature("no t="))?;
        if v1.is_empty() {
            return Err(WebhookError::MalformedSignature(if undecodable {
                "no v1= is 32 bytes of hex"
            } else {
                "no v1="
            }));
        }
        Ok(SignatureHeader { timestamp, v1 })
    }
}

/// Accepts `raw_body` if `header` (the `Stripe-Signature` value) carries a
/// signature made with one of `secrets`, at most `tolerance_secs` from
/// `now` (unix seconds).
pub fn verify(
    raw_body: &[u8],
    header: Option<&str>,
    secrets: &[&str],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let header = SignatureHeader::parse(header.ok_or(WebhookError::MissingSignature)?)?;
    if secrets.is_empty() {
        return Err(WebhookError::NoSecrets);
    }
    let signed = secrets.iter().any(|secret| {
        header.v1.iter().any(|candidate| {
            mac(secret, header.timestamp, raw_body)
                .verify_slice(candidate)
                .is_ok()
        })
    });
    if !signed {
        return Err(WebhookError::Forged);
    }
    let age_secs = now.saturating_sub(header.timestamp);
    if age_secs.saturating_abs() > tolerance_secs {
        return Err(WebhookError::Stale { age_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebhookSecrets;

    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed"}"#;
    const NOW: i64 = 1_700_000_000;

    fn check(header: &str, secrets: &[&str]) -> Result<(), WebhookError> {
        verify(BODY, Some(header), secrets, NOW, DEFAULT_TOLERANCE_SECS)
    }

    #[test]
    fn the_signed_payload_is_timestamp_dot_body() {
        let mut payload = format!("{NOW}.").into_bytes();
        payload.extend_from_slice(BODY);
        assert_eq!(
            sign("whsec_x", NOW, BODY),
            crate::razorpay::webhook::sign("whsec_x", &payload)
        );
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        assert_eq!(
            check(&header(NOW, BODY, &["whsec_x"]), &["whsec_x"]),
            Ok(())
        );
        // Unknown schemes and spaces around items are tolerated.
        let h = format!("t={NOW}, v0=deadbeef, v1={}", sign("whsec_x", NOW, BODY));
        assert_eq!(check(&h, &["whsec_x"]), Ok(()));
    }

    #[test]
    fn a_forged_signature_or_tampered_body_is_rejected() {
        assert_eq!(
            check(&header(NOW, BODY, &["whsec_guess"]), &["whsec_x"]),
            Err(WebhookError::Forged)
        );
        let h = header(NOW, BODY, &["whsec_x"]);
        assert_eq!(
            verify(
                b"{\"id\":\"evt_2\"}",
                Some(&h),
                &["whsec_x"],
                NOW,
                DEFAULT_TOLERANCE_SECS
            ),
            Err(WebhookError::Forged)
        );
        // The signature binds the timestamp: moving t breaks it.
        let moved = h.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(check(&moved, &["whsec_x"]), Err(WebhookError::Forged));
    }

    #[test]
    fn a_stale_signature_is_rejected_beyond_300_seconds_either_way() {
        let at = |t: i64| header(t, BODY, &["whsec_x"]);
        assert_eq!(check(&at(NOW - 300), &["whsec_x"]), Ok(()));
        assert_eq!(
            check(&at(NOW - 301), &["whsec_x"]),
            Err(WebhookError::Stale { age_secs: 301 })
        );
        assert_eq!(check(&at(NOW + 300), &["whsec_x"]), Ok(()));
        assert_eq!(
            check(&at(NOW + 301), &["whsec_x"]),
            Err(WebhookError::Stale { age_secs: -301 })
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let v1 = sign("whsec_x", NOW, BODY);
        for (raw, why) in [
            (format!("v1={v1}"), "no t="),
            (format!("t={NOW}"), "no v1="),
            (format!("t=soon,v1={v1}"), "t= is not an integer"),
            (format!("t={NOW},t={NOW},v1={v1}"), "more than one t="),
            (format!("t={NOW},v1=zz"), "no v1= is 32 bytes of hex"),
            ("garbage".to_owned(), "an item without '='"),
        ] {
            assert_eq!(
                check(&raw, &["whsec_x"]),
                Err(WebhookError::MalformedSignature(why)),
                "{raw}"
            );
        }
        assert_eq!(
            verify(BODY, None, &["whsec_x"], NOW, 300),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            check(&header(NOW, BODY, &["whsec_x"]), &[]),
            Err(WebhookError::NoSecrets)
        );
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        // Stripe rolling its secret signs with both.
        let h = header(NOW, BODY, &["whsec_new", "whsec_old"]);
        assert_eq!(check(&h, &["whsec_old"]), Ok(()));
        assert_eq!(check(&h, &["whsec_new"]), Ok(()));
        // A bad v1 beside a good one does not spoil it.
        let h = format!("t={NOW},v1=00ff,v1={}", sign("whsec_x", NOW, BODY));
        assert_eq!(check(&h, &["whsec_x"]), Ok(()));
    }

    #[test]
    fn the_previous_secret_is_accepted_during_the_rotation_window_only() {
        let secrets = WebhookSecrets::new("whsec_old").rotate("whsec_new", NOW + 3600);
        let old = header(NOW, BODY, &["whsec_old"]);
        assert_eq!(check(&old, &secrets.accepted_at(NOW)), Ok(()));
        let later = NOW + 3601;
        let old_later = header(later, BODY, &["whsec_old"]);
        assert_eq!(
            verify(
                BODY,
                Some(&old_later),
                &secrets.accepted_at(later),
                later,
                300
            ),
            Err(WebhookError::Forged)
        );
    }
}
