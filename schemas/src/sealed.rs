//! The shape of a sealed personal field: what every stage may know about
//! it without the key. A personal field (a GSTIN, an email) travels and
//! rests as `pii1.<key id>.<nonce>.<ciphertext>` (base64url), encrypted
//! at the edge under its person's data key (`platform::pii`); stages pass
//! it along untouched, and only a service holding the master key can open
//! it. An Avro field that may hold one says so in its `doc` ("sealed").

/// The prefix of every sealed value (its format's version).
pub const PREFIX: &str = "pii1.";

/// Whether `value` is a sealed value (not whether it can be opened).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX) && value.split('.').count() == 4
}

/// The data key a sealed value names, if it is one.
pub fn key_id(value: &str) -> Option<&str> {
    is_sealed(value).then(|| value.split('.').nth(1)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_is_recognised_by_its_shape_only() {
        assert!(is_sealed("pii1.k.n.c"));
        assert_eq!(key_id("pii1.k.n.c"), Some("k"));
        assert!(!is_sealed("29ABCDE1234F1Z5"));
        assert!(!is_sealed("pii1.only-two"));
        assert_eq!(key_id("someone@example.com"), None);
    }
}
