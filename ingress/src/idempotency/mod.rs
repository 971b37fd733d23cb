//! `Idempotency-Key` on our own API, with Stripe's semantics and the IETF
//! draft's header (`draft-ietf-httpapi-idempotency-key-header`). It owns
//! the ids every write mints ([`CommandIds`]) and the one middleware
//! ([`layer`]) in front of every `POST`, `PUT` and `DELETE` under
//! `/api/v1`, admin routes included.
//!
//! - **The key**: 1-255 visible ASCII characters (`!` to `~`); anything
//!   else is refused with 422. Without the header nothing changes: ids are
//!   random (UUIDv4) and nothing is stored.
//! - **Whose key**: a key belongs to its caller: `user:<sub>` with a valid
//!   bearer token, `guest` without one. All guests share one key space: a
//!   guest has no identity that survives a retry (the client IP changes
//!   between networks, a new cart has no token yet), so a guest's key must
//!   be unguessable ([`unguessable`]: a UUIDv4, or 32 or more random
//!   letters and digits; a guessable one is refused with 422): it is as
//!   good as a secret for the answer it replays, which for `POST
//!   /api/v1/cart` holds a cart token.
//! - **Stable ids**: with a key, every id a request mints — its commands'
//!   ids, numbered 0, 1, ... in the order it writes them, and the token of a
//!   cart it creates — is a UUIDv5 of (caller, key, request fingerprint).
//!   A retry of the same request therefore writes the very same command to
//!   the very same cart, and the cart processor applies a command id at
//!   most once per cart. The fingerprint is part of the name so a key
//!   reused for another request after it expired mints new ids.
//! - **Stored answers**: the first request claims `(caller, key)` in
//!   Postgres (`idempotency_keys`, state `in_flight`) before its handler
//!   runs. A 2xx answer (a command was accepted) is stored with its status,
//!   `Content-Type`, `Location` and body, and every repeat within 24 h gets
//!   it back with `Idempotent-Replayed: true`. Any other answer is not
//!   stored: a 4xx wrote nothing (the client may fix the request and retry
//!   with the same key), a 5xx may have written a command whose retry must
//!   run again (and re-derives the same ids, so nothing applies twice).
//! - **Conflicts**: the same key with another method, path or body → 422;
//!   a repeat while the first is still running → 409 (retryable, with
//!   `Retry-After`).
//! - **Retention**: [`RETENTION`] (24 h) from the first request. Older rows
//!   are ignored (the next request with that key takes the row over) and
//!   purged by [`purge_expired_periodically`]. An `in_flight` row whose
//!   request cannot be running any more (older than the request timeout
//!   plus a margin: its process died) is taken over the same way.

mod openapi;
mod store;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use schemas::values::CartToken;

use crate::auth::Caller;
use crate::error::ApiError;

pub use openapi::document;
pub use store::purge_expired_periodically;

/// The request header (lower case, as `http` names headers).
pub const KEY_HEADER: &str = "idempotency-key";
/// The header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long an answer is replayed; published in the API documentation.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The answer headers worth replaying (the rest is added by the layers
/// outside, anew for every request).
const REPLAYED_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

/// The role names of derived ids (`schemas::ids::derived`).
const COMMAND_ROLE: &str = "api-command";
const CART_TOKEN_ROLE: &str = "api-cart-token";

/// A client's `Idempotency-Key`: 1-255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, ApiError> {
        let visible =
            (1..=255).contains(&raw.len()) && raw.iter().all(|b| (0x21..=0x7e).contains(b));
        match std::str::from_utf8(raw) {
            Ok(key) if visible => Ok(IdempotencyKey(key.to_owned())),
            _ => Err(ApiError::Validation(vec![
                "Idempotency-Key: 1 to 255 visible ASCII characters".to_owned(),
            ])),
        }
    }

    /// The request's key, if it has one; two `Idempotency-Key` headers are
    /// refused like a malformed one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
        let mut values = headers.get_all(KEY_HEADER).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => IdempotencyKey::parse(v.as_bytes()).map(Some),
            (Some(_), Some(_)) => Err(ApiError::Validation(vec![
                "Idempotency-Key: one header, not several".to_owned(),
            ])),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a guest's key was refused.
const GUEST_KEY_RULE: &str =
    "Idempotency-Key: a guest's key must be unguessable (a UUID, or 32 or \
     more random letters and digits): guests share one key space, and another guest who sent the \
     same key and body would be answered as you";

/// Whether a key is too random to guess: a random UUID (version 4), or
/// at least 32 letters and digits, at least 10 of them different
/// ("order-1" or 32 × "a" are not). A UUIDv4 is taken by its form, not by
/// counting: about one in ten thousand uses fewer than ten hex digits.
/// Guests share one key space and a new cart's token is derived from the
/// key, so for a guest the key is as good as a secret.
pub fn unguessable(key: &str) -> bool {
    if uuid::Uuid::parse_str(key).is_ok_and(|u| u.get_version_num() == 4) {
        return true;
    }
    let alnum: Vec<u8> = key.bytes().filter(u8::is_ascii_alphanumeric).collect();
    let mut distinct = alnum.clone();
    distinct.sort_unstable();
    distinct.dedup();
    alnum.len() >= 32 && distinct.len() >= 10
}

/// Whose key space a request's key lives in: `user:<sub>` or `guest`.
pub fn scope_of(caller: &Caller) -> String {
    match caller.user_id() {
        Some(user) => format!("user:{user}"),
        None => "guest".to_owned(),
    }
}

/// sha256 of the method, the path and the body, in hex: what makes two
/// requests "the same request".
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    // Neither a method nor a path holds a space or a newline.
    hash.update(method.as_str());
    hash.update(b" ");
    hash.update(path);
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The ids a request mints: derived from (caller, key, fingerprint) when
/// the request has an `Idempotency-Key`, random otherwise. Handlers take it
/// as an extractor; every id a write needs comes from here.
#[derive(Debug, Clone)]
pub struct CommandIds {
    /// The name ids are derived from; `None` without a key.
    seed: Option<String>,
}

impl CommandIds {
    /// Random ids: a request without a key.
    pub fn random() -> CommandIds {
        CommandIds { seed: None }
    }

    /// The ids of the request `fingerprint` under `key` in `scope`.
    pub fn derived(scope: &str, key: &IdempotencyKey, fingerprint: &str) -> CommandIds {
        // The scope is length-prefixed and the fingerprint has a fixed
        // length, so no two (scope, fingerprint, key) give the same name,
        // whatever ':' they contain.
        CommandIds {
            seed: Some(format!(
                "{}:{scope}:{fingerprint}:{}",
                scope.len(),
                key.as_str()
            )),
        }
    }

    /// The id of the `position`-th command the request writes (0, 1, ...
    /// in the order it writes them).
    pub fn command(&self, position: i64) -> Uuid {
        match &self.seed {
            Some(seed) => schemas::ids::derived(COMMAND_ROLE, seed, position),
            None => Uuid::new_v4(),
        }
    }

    /// The token of a cart the request creates.
    pub fn new_cart(&self) -> CartToken {
        match &self.seed {
            Some(seed) => {
                let id = schemas::ids::derived(CART_TOKEN_ROLE, seed, 0);
                CartToken::parse(&id.simple().to_string())
                    .expect("a UUID in simple form is 32 lower-case hex digits, a cart token")
            }
            None => CartToken::random(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CommandIds {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CommandIds>()
            .cloned()
            .unwrap_or_else(CommandIds::random))
    }
}

/// The middleware's state: where answers are kept.
#[derive(Clone)]
pub struct Keys {
    pool: PgPool,
    /// After how long an `in_flight` row is abandoned: longer than any
    /// request may run (`REQUEST_TIMEOUT_SECS`).
    lease: Duration,
}

impl Keys {
    pub fn new(pool: PgPool, request_timeout: Duration) -> Keys {
        Keys {
            pool,
            lease: request_timeout + Duration::from_secs(10),
        }
    }
}

/// An earlier request under the same (caller, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub fingerprint: String,
    /// `None` while it is in flight.
    pub answer: Option<Stored>,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a repeat gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Repeat {
    Replay(Stored),
    InFlight,
    Mismatch,
}

/// The answer to a request whose key an earlier request holds.
pub fn repeat(earlier: Earlier, fingerprint: &str) -> Repeat {
    if earlier.fingerprint != fingerprint {
        return Repeat::Mismatch;
    }
    match earlier.answer {
        Some(answer) => Repeat::Replay(answer),
        None => Repeat::InFlight,
    }
}

/// The middleware: see the module documentation.
pub async fn layer(State(keys): State<Keys>, request: Request, next: Next) -> Response {
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let key = match IdempotencyKey::from_headers(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(refusal) => return refusal.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    // `authenticate` has run: this reads the caller it found.
    let caller = match Caller::from_request_parts(&mut parts, &()).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    // Read with the route's body limit (the `DefaultBodyLimit` in the
    // extensions), as the handler's own extractor would.
    let body = match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(bytes) => bytes,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::PayloadTooLarge.into_response()
        }
        Err(e) => return ApiError::MalformedJson(e.body_text()).into_response(),
    };
    if caller.user_id().is_none() && !unguessable(key.as_str()) {
        return ApiError::Validation(vec![GUEST_KEY_RULE.to_owned()]).into_response();
    }
    let scope = scope_of(&caller);
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), &body);
    match store::claim(&keys, &scope, key.as_str(), &fingerprint).await {
        Ok(None) => {}
        Ok(Some(earlier)) => return answer_repeat(repeat(earlier, &fingerprint)),
        // Nothing was run: the client may retry.
        Err(e) => return ApiError::from(e).into_response(),
    }
    let claim = Claim {
        keys: keys.clone(),
        scope,
        key,
        fingerprint,
        settled: false,
    };
    parts.extensions.insert(CommandIds::derived(
        &claim.scope,
        &claim.key,
        &claim.fingerprint,
    ));
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    claim.settle(response).await
}

/// Turns a repeat into its answer.
fn answer_repeat(repeat: Repeat) -> Response {
    match repeat {
        Repeat::Mismatch => ApiError::IdempotencyKeyReused.into_response(),
        Repeat::InFlight => ApiError::IdempotencyKeyInFlight.into_response(),
        Repeat::Replay(stored) => {
            tracing::info!(status = stored.status, "idempotent replay");
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut response = (status, stored.body).into_response();
            let headers = response.headers_mut();
            for (name, value) in stored.headers {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    headers.insert(name, value);
                }
            }
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            response
        }
    }
}

/// A claimed `(caller, key)` until its answer is settled. Dropped unsettled
/// (the client went away, the request timed out, the handler panicked),
/// it releases the row, so the key does not stay "in flight".
struct Claim {
    keys: Keys,
    scope: String,
    key: IdempotencyKey,
    fingerprint: String,
    settled: bool,
}

impl Claim {
    /// Stores a 2xx answer; releases the key for any other.
    async fn settle(mut self, response: Response) -> Response {
        if !response.status().is_success() {
            if let Err(e) = store::release(
                &self.keys.pool,
                &self.scope,
                self.key.as_str(),
                &self.fingerprint,
            )
            .await
            {
                // The row stays in flight until its lease ends; the
                // client's retry gets 409 until then.
                tracing::warn!(error = %e, "releasing an idempotency key failed");
            }
            self.settled = true;
            return response;
        }
        let (parts, body) = response.into_parts();
        // Our answers are small JSON bodies, produced in memory.
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => {
                return ApiError::Internal(anyhow::anyhow!("reading an answer: {e}"))
                    .into_response()
            }
        };
        let stored = Stored {
            status: parts.status.as_u16(),
            headers: REPLAYED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = parts.headers.get(name)?.to_str().ok()?;
                    Some((name.as_str().to_owned(), value.to_owned()))
                })
                .collect(),
            body: body.to_vec(),
        };
        if let Err(e) = store::finish(
            &self.keys.pool,
            &self.scope,
            self.key.as_str(),
            &self.fingerprint,
            &stored,
        )
        .await
        {
            // The command was accepted, so the answer stands. Without it
            // stored, a repeat runs again and writes the same ids (applied
            // once); left in flight, it would get 409 until the lease ends.
            tracing::warn!(error = %e, "storing an idempotent answer failed");
            let released = store::release(
                &self.keys.pool,
                &self.scope,
                self.key.as_str(),
                &self.fingerprint,
            );
            if let Err(e) = released.await {
                tracing::warn!(error = %e, "releasing an idempotency key failed");
            }
        }
        self.settled = true;
        Response::from_parts(parts, Body::from(body))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (pool, scope, key, fingerprint) = (
            self.keys.pool.clone(),
            std::mem::take(&mut self.scope),
            self.key.as_str().to_owned(),
            std::mem::take(&mut self.fingerprint),
        );
        // Outside a runtime (it is shutting down) the lease frees the key.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store::release(&pool, &scope, &key, &fingerprint).await {
                    tracing::warn!(error = %e, "releasing an abandoned idempotency key failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert!(IdempotencyKey::parse(b"!~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"a b").is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
    }

    #[test]
    fn a_guests_key_must_be_unguessable() {
        assert!(unguessable(&uuid::Uuid::new_v4().to_string()));
        // A random UUID whose hex uses only nine digits: still random.
        assert!(unguessable("242ab6ba-5666-4315-ab71-31a11763665b"));
        // A UUID of another version is counted like any other key.
        assert!(!unguessable("00000000-0000-1000-8000-000000000000"));
        assert!(unguessable("Zx81q0MvP3a7Lk2W9bNc4Rt6Ys5Hd1Jf"));
        assert!(!unguessable("order-1"));
        assert!(!unguessable(&"a".repeat(40)));
        assert!(!unguessable("0101010101010101010101010101010101"));
    }

    #[test]
    fn two_key_headers_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(IdempotencyKey::from_headers(&headers).ok(), Some(None));
        headers.append(KEY_HEADER, HeaderValue::from_static("a"));
        assert!(IdempotencyKey::from_headers(&headers).is_ok_and(|k| k.is_some()));
        headers.append(KEY_HEADER, HeaderValue::from_static("b"));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k.as_bytes()).unwrap()
    }

    #[test]
    fn derived_ids_repeat_for_the_same_request_only() {
        let fp = fingerprint(&Method::POST, "/api/v1/cart", b"{}");
        let ids = CommandIds::derived("user:alice", &key("k1"), &fp);
        let again = CommandIds::derived("user:alice", &key("k1"), &fp);
        assert_eq!(ids.command(0), again.command(0));
        assert_eq!(ids.new_cart().as_str(), again.new_cart().as_str());
        assert_ne!(ids.command(0), ids.command(1));
        assert_ne!(
            ids.command(0),
            CommandIds::derived("user:bob", &key("k1"), &fp).command(0)
        );
        assert_ne!(
            ids.command(0),
            CommandIds::derived("guest", &key("k1"), &fp).command(0)
        );
        assert_ne!(
            ids.command(0),
            CommandIds::derived("user:alice", &key("k2"), &fp).command(0)
        );
        let other = fingerprint(&Method::POST, "/api/v1/cart", b"{\"items\":[]}");
        assert_ne!(
            ids.command(0),
            CommandIds::derived("user:alice", &key("k1"), &other).command(0)
        );
        // ':' in a user id or a key cannot make two callers' names meet.
        assert_ne!(
            CommandIds::derived("user:a", &key("b:c"), &fp).command(0),
            CommandIds::derived("user:a:b", &key("c"), &fp).command(0)
        );
    }

    #[test]
    fn without_a_key_ids_are_random() {
        let ids = CommandIds::random();
        assert_ne!(ids.command(0), ids.command(0));
        assert_eq!(ids.command(0).get_version_num(), 4);
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let base = fingerprint(&Method::POST, "/api/v1/cart", b"{}");
        assert_eq!(base.len(), 64);
        assert_ne!(base, fingerprint(&Method::PUT, "/api/v1/cart", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/api/v1/cart/x", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/api/v1/cart", b"{ }"));
    }

    #[test]
    fn a_repeat_replays_conflicts_or_mismatches() {
        let stored = Stored {
            status: 202,
            headers: vec![],
            body: b"{}".to_vec(),
        };
        let done = Earlier {
            fingerprint: "a".into(),
            answer: Some(stored.clone()),
        };
        assert_eq!(repeat(done.clone(), "a"), Repeat::Replay(stored));
        assert_eq!(repeat(done, "b"), Repeat::Mismatch);
        let running = Earlier {
            fingerprint: "a".into(),
            answer: None,
        };
        assert_eq!(repeat(running.clone(), "a"), Repeat::InFlight);
        // A different request is refused as such even while the first runs.
        assert_eq!(repeat(running, "b"), Repeat::Mismatch);
    }
}
