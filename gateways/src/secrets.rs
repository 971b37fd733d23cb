//! Webhook secrets across a rotation.
//!
//! After a secret is rotated, the gateway still retries older deliveries
//! signed with the old one (Razorpay retries for 24 h). So the previous
//! secret stays accepted until a deadline chosen at rotation time, then
//! stops; the deadline is a value, so the check has no clock inside.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    current: String,
    previous: Option<(String, i64)>,
}

impl WebhookSecrets {
    pub fn new(current: impl Into<String>) -> WebhookSecrets {
        WebhookSecrets {
            current: current.into(),
            previous: None,
        }
    }

    /// The secrets after rotating to `new_current`: the one in use until
    /// now stays accepted until `previous_until` (unix seconds).
    pub fn rotate(self, new_current: impl Into<String>, previous_until: i64) -> WebhookSecrets {
        WebhookSecrets {
            current: new_current.into(),
            previous: Some((self.current, previous_until)),
        }
    }

    /// The secrets a signature may be made with at `now` (unix seconds),
    /// the current one first.
    pub fn accepted_at(&self, now: i64) -> Vec<&str> {
        let mut out = vec![self.current.as_str()];
        if let Some((previous, until)) = &self.previous {
            if now <= *until {
                out.push(previous.as_str());
            }
        }
        out
    }

    pub fn current(&self) -> &str {
        &self.current
    }
}

impl fmt::Debug for WebhookSecrets {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("current", &"<redacted>")
            .field(
                "previous_until",
                &self.previous.as_ref().map(|(_, until)| until),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_is_accepted_until_its_deadline() {
        let secrets = WebhookSecrets::new("old").rotate("new", 1_000);
        assert_eq!(secrets.accepted_at(999), vec!["new", "old"]);
        assert_eq!(secrets.accepted_at(1_000), vec!["new", "old"]);
        assert_eq!(secrets.accepted_at(1_001), vec!["new"]);
        assert_eq!(secrets.current(), "new");
        assert!(!format!("{secrets:?}").contains("old"));
    }
}
