//! Structured JSON logs for every binary.
//!
//! Each record a stage handles is processed inside a span carrying its
//! `correlation_id`; the JSON formatter writes the current span's fields on
//! every line, so one id follows a request from the HTTP header through
//! Kafka headers into every stage's logs.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber (once; later calls are no-ops, which
/// lets tests call it freely).
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let installed = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        // stdout stays free for what a command prints (`checkoutctl token`).
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(service, "logging started");
    }
}

/// A token as logs may show it: `#` and the first 8 hex digits of its
/// SHA-256. Cart, share and order tokens are credentials (a guest's order
/// token is all it takes to read and pay the order), so no log line holds
/// one; the same token always shows the same reference, so lines about one
/// cart or order can still be told apart and joined.
pub fn token_ref(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    format!("#{}", hex::encode(&digest[..4]))
}

/// A request path as logs may show it: each segment that looks like a
/// token (16 or more hex digits, `-` and `_` allowed) replaced by its
/// [`token_ref`]; the route stays readable (`/api/v1/cart/#1a2b3c4d/items`).
pub fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let hexish = segment.len() >= 16
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
            if hexish {
                token_ref(segment)
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_paths_are_logged_as_short_references() {
        let token = "6f1c0e5b9a2d4c7e8f1a3b5c7d9e0f12";
        let path = format!("/api/v1/cart/{token}/items/rust-backend-2027");
        let logged = redact_path(&path);
        assert!(!logged.contains(token), "{logged}");
        assert_eq!(
            logged,
            format!("/api/v1/cart/{}/items/rust-backend-2027", token_ref(token))
        );
        assert_eq!(token_ref(token), token_ref(token));
        assert_ne!(token_ref(token), token_ref("another"));
        assert_eq!(token_ref(token).len(), 9);
        assert_eq!(redact_path("/api/v1/me/orders"), "/api/v1/me/orders");
    }
}
