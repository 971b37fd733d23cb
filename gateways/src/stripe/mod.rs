//! The Stripe connector: Checkout Sessions (`POST /v1/checkout/sessions`,
//! form-encoded, `Authorization: Bearer sk_…`, `Idempotency-Key`), their
//! look-up for reconciliation, refunds (`POST /v1/refunds`, also with an
//! `Idempotency-Key`).
//!
//! Stripe replays the first answer to a repeated key (and refuses the key
//! with other parameters), so a retried create returns the same session.

pub mod transformers;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url};

use crate::error::GatewayError;
use crate::http;
use crate::model::{IdempotencyKey, PaymentStatus, Refund, RefundRequest, Session, SessionRequest};
use crate::{Connector, Gateway};

use transformers::{CheckoutSession, Form, RefundObject};

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The API version our requests are read with (`Stripe-Version`), so an
/// account's default version cannot change the shapes we parse.
pub const API_VERSION: &str = "2024-06-20";

/// Stripe's API; development points `STRIPE_BASE_URL` at the gateway
/// simulator.
pub const BASE_URL: &str = "https://api.stripe.com";

/// Where and as whom to call Stripe. The key has no default: test mode is
/// an `sk_test_…` key against [`BASE_URL`].
#[derive(Clone)]
pub struct Config {
    pub base_url: String,
    pub secret_key: String,
    pub timeout: Duration,
}

impl Config {
    /// `STRIPE_BASE_URL` (default [`BASE_URL`]), `STRIPE_SECRET_KEY`
    /// (required), `GATEWAY_TIMEOUT_MS` (default 10000).
    pub fn from_env() -> anyhow::Result<Config> {
        use platform::config::{secret, var};
        Ok(Config {
            base_url: var("STRIPE_BASE_URL", BASE_URL),
            secret_key: secret("STRIPE_SECRET_KEY")?,
            timeout: Duration::from_millis(
                var("GATEWAY_TIMEOUT_MS", "10000")
                    .parse()
                    .map_err(|e| anyhow::anyhow!("GATEWAY_TIMEOUT_MS: {e}"))?,
            ),
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("stripe::Config")
            .field("base_url", &self.base_url)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    config: Config,
}

impl Client {
    pub fn new(config: Config) -> Result<Client, GatewayError> {
        let base = http::base_url("STRIPE_BASE_URL", &config.base_url)?;
        Ok(Client {
            http: http::client(config.timeout)?,
            base,
            config,
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http
            .request(method, http::endpoint(&self.base, segments))
            .bearer_auth(&self.config.secret_key)
            .header("Stripe-Version", API_VERSION)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let body = http::send(
            Gateway::Stripe,
            operation,
            request,
            transformers::read_error,
        )
        .await?;
        http::decode(&body)
    }

    /// `POST /v1/checkout/sessions`.
    pub async fn create_checkout_session(
        &self,
        form: &Form,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, GatewayError> {
        self.call(
            "create_session",
            self.request(Method::POST, &["v1", "checkout", "sessions"])
                .header(IDEMPOTENCY_HEADER, key.as_str())
                .form(form),
        )
        .await
    }

    /// `GET /v1/checkout/sessions/{id}`.
    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, GatewayError> {
        self.call(
            "get_session",
            self.request(Method::GET, &["v1", "checkout", "sessions", id]),
        )
        .await
    }

    /// `POST /v1/refunds`.
    pub async fn create_refund(
        &self,
        form: &Form,
        key: &IdempotencyKey,
    ) -> Result<RefundObject, GatewayError> {
        self.call(
            "refund",
            self.request(Method::POST, &["v1", "refunds"])
                .header(IDEMPOTENCY_HEADER, key.as_str())
                .form(form),
        )
        .await
    }
}

impl Connector for Client {
    fn gateway(&self) -> Gateway {
        Gateway::Stripe
    }

    async fn create_session(&self, request: &SessionRequest) -> Result<Session, GatewayError> {
        let form = transformers::create_session_form(request)?;
        let created = self
            .create_checkout_session(&form, &request.idempotency_key)
            .await?;
        transformers::session(&created)
    }

    async fn look_up(&self, session_id: &str) -> Result<PaymentStatus, GatewayError> {
        transformers::payment_status(&self.checkout_session(session_id).await?)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, GatewayError> {
        let form = transformers::create_refund_form(request)?;
        transformers::refund(&self.create_refund(&form, &request.idempotency_key).await?)
    }
}
