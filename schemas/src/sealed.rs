//! The shape of a sealed personal field: what every stage may know about
//! it without the key. A personal field (a GSTIN, an email) travels and
//! rests as `pii1.<key id>.<nonce>.<ciphertext>` (base64url), encrypted
//! at the edge under its person's data key (`platform::pii`); stages pass
//! it along untouched, and only a service holding the master key can open
//! it. An Avro field that may hold one says so in its `doc` ("sealed").
//!
//! A sealed email carries a fifth part, its blind index
//! (`pii1.<key id>.<nonce>.<ciphertext>.<index>`): a keyed one-way
//! reference to the address (`platform::pii::Pseudonyms::email`), equal
//! for equal addresses whoever sealed them. Rules that compare addresses
//! (one seat per person) compare [`identity`], never the address.

/// The prefix of every sealed value (its format's version).
pub const PREFIX: &str = "pii1.";

/// Whether `value` is a sealed value (not whether it can be opened).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX) && matches!(value.split('.').count(), 4 | 5)
}

/// The data key a sealed value names, if it is one.
pub fn key_id(value: &str) -> Option<&str> {
    is_sealed(value).then(|| value.split('.').nth(1)).flatten()
}

/// The blind index a sealed email carries, if it carries one.
pub fn blind_index(value: &str) -> Option<&str> {
    is_sealed(value).then(|| value.split('.').nth(4)).flatten()
}

/// What two emails are compared by: the blind index of a sealed one, the
/// trimmed, lowercased address of a plain one (`A@x.com` and `a@x.com`
/// are one inbox in practice).
pub fn identity(value: &str) -> String {
    match blind_index(value) {
        Some(index) => index.to_owned(),
        None => value.trim().to_lowercase(),
    }
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

    #[test]
    fn emails_compare_by_their_blind_index_or_folded() {
        assert!(is_sealed("pii1.k.n.c.e_ab"));
        assert_eq!(key_id("pii1.k.n.c.e_ab"), Some("k"));
        assert_eq!(blind_index("pii1.k.n.c.e_ab"), Some("e_ab"));
        assert_eq!(blind_index("pii1.k.n.c"), None);
        // Two sealings of one address differ but for the index.
        assert_eq!(
            identity("pii1.k1.n1.c1.e_ab"),
            identity("pii1.k2.n2.c2.e_ab")
        );
        assert_eq!(identity(" Asha@X.com"), "asha@x.com");
        assert_eq!(blind_index("a.b@x.com"), None);
    }
}
