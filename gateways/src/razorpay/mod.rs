//! The Razorpay connector: orders (`POST /v1/orders`, Basic auth), the
//! payments of an order for reconciliation, refunds.
//!
//! Razorpay has no idempotency header: a create that timed out may have
//! made an order. So `create_session` first looks the order up by our
//! `receipt` and reuses it, and `refund` first lists the payment's refunds
//! for our refund receipt. A crash between the look-up and the create can
//! still leave two orders for one receipt, which docs/gateways.md calls
//! harmless (nothing is charged until the buyer pays one); our state maps
//! either back to the order by `receipt`/`notes`.

pub mod transformers;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url};

use crate::error::GatewayError;
use crate::http;
use crate::model::{PaymentStatus, Refund, RefundRequest, Session, SessionRequest};
use crate::{Connector, Gateway};

use transformers::{Collection, CreateOrder, CreateRefund, Order, Payment, RefundEntity};

/// Razorpay's API; development points `RAZORPAY_BASE_URL` at the gateway
/// simulator.
pub const BASE_URL: &str = "https://api.razorpay.com";

/// Where and as whom to call Razorpay. The keys have no default: test mode
/// is `rzp_test_…` keys against [`BASE_URL`].
#[derive(Clone)]
pub struct Config {
    pub base_url: String,
    pub key_id: String,
    pub key_secret: String,
    pub timeout: Duration,
}

impl Config {
    /// `RAZORPAY_BASE_URL` (default [`BASE_URL`]), `RAZORPAY_KEY_ID` and
    /// `RAZORPAY_KEY_SECRET` (required), `GATEWAY_TIMEOUT_MS` (default
    /// 10000).
    pub fn from_env() -> anyhow::Result<Config> {
        use platform::config::{secret, var};
        Ok(Config {
            base_url: var("RAZORPAY_BASE_URL", BASE_URL),
            key_id: secret("RAZORPAY_KEY_ID")?,
            key_secret: secret("RAZORPAY_KEY_SECRET")?,
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
        f.debug_struct("razorpay::Config")
            .field("base_url", &self.base_url)
            .field("key_id", &self.key_id)
            .field("key_secret", &"<redacted>")
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
        let base = http::base_url("RAZORPAY_BASE_URL", &config.base_url)?;
        Ok(Client {
            http: http::client(config.timeout)?,
            base,
            config,
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http
            .request(method, http::endpoint(&self.base, segments))
            .basic_auth(&self.config.key_id, Some(&self.config.key_secret))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let body = http::send(
            Gateway::Razorpay,
            operation,
            request,
            transformers::read_error,
        )
        .await?;
        http::decode(&body)
    }

    /// `POST /v1/orders`.
    pub async fn create_order(&self, order: &CreateOrder) -> Result<Order, GatewayError> {
        self.call(
            "create_order",
            self.request(Method::POST, &["v1", "orders"]).json(order),
        )
        .await
    }

    /// The orders carrying `receipt`, newest first: `GET /v1/orders?receipt=…`.
    ///
    /// docs/gateways.md notes this call. Razorpay's "fetch all orders"
    /// documents `receipt` as a filter; should a server ignore it, the
    /// answer is filtered here as well, so a wrong order is never taken
    /// (at worst one beyond the first 100 is missed and a second order is
    /// created, which docs/gateways.md calls harmless).
    pub async fn orders_by_receipt(&self, receipt: &str) -> Result<Vec<Order>, GatewayError> {
        let list: Collection<Order> = self
            .call(
                "find_order",
                self.request(Method::GET, &["v1", "orders"])
                    .query(&[("receipt", receipt), ("count", "100")]),
            )
            .await?;
        let mut found: Vec<Order> = list
            .items
            .into_iter()
            .filter(|o| o.receipt.as_deref() == Some(receipt))
            .collect();
        found.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        Ok(found)
    }

    /// `GET /v1/orders/{id}`.
    pub async fn order(&self, order_id: &str) -> Result<Order, GatewayError> {
        self.call(
            "get_order",
            self.request(Method::GET, &["v1", "orders", order_id]),
        )
        .await
    }

    /// `GET /v1/orders/{id}/payments`: every payment attempt of an order.
    pub async fn order_payments(&self, order_id: &str) -> Result<Vec<Payment>, GatewayError> {
        let list: Collection<Payment> = self
            .call(
                "order_payments",
                self.request(Method::GET, &["v1", "orders", order_id, "payments"]),
            )
            .await?;
        Ok(list.items)
    }

    /// `POST /v1/payments/{id}/refund`.
    pub async fn refund_payment(
        &self,
        payment_id: &str,
        refund: &CreateRefund,
    ) -> Result<RefundEntity, GatewayError> {
        self.call(
            "refund",
            self.request(Method::POST, &["v1", "payments", payment_id, "refund"])
                .json(refund),
        )
        .await
    }

    /// `GET /v1/payments/{id}/refunds`.
    pub async fn payment_refunds(
        &self,
        payment_id: &str,
    ) -> Result<Vec<RefundEntity>, GatewayError> {
        let list: Collection<RefundEntity> = self
            .call(
                "payment_refunds",
                self.request(Method::GET, &["v1", "payments", payment_id, "refunds"])
                    .query(&[("count", "100")]),
            )
            .await?;
        Ok(list.items)
    }
}

impl Connector for Client {
    fn gateway(&self) -> Gateway {
        Gateway::Razorpay
    }

    /// Reuses the order our receipt already names, else creates it.
    async fn create_session(&self, request: &SessionRequest) -> Result<Session, GatewayError> {
        let wanted = transformers::create_order(request)?;
        let existing = self.orders_by_receipt(&wanted.receipt).await?;
        let order = match existing
            .iter()
            .find(|o| transformers::order_matches(o, &wanted))
        {
            Some(order) => {
                tracing::info!(order = %order.id, receipt = %platform::telemetry::token_ref(&wanted.receipt), "razorpay order found by receipt; not creating another");
                order.clone()
            }
            None if !existing.is_empty() => {
                return Err(GatewayError::Conflict(format!(
                    "order {} has receipt {} with {} {}, not {} {}",
                    existing[0].id,
                    wanted.receipt,
                    existing[0].amount,
                    existing[0].currency,
                    wanted.amount,
                    wanted.currency
                )))
            }
            None => self.create_order(&wanted).await?,
        };
        transformers::session(&order, request, &self.config.key_id)
    }

    async fn look_up(&self, order_id: &str) -> Result<PaymentStatus, GatewayError> {
        transformers::payment_status(&self.order_payments(order_id).await?)
    }

    /// Reuses the refund our receipt already names, else creates it.
    async fn refund(&self, request: &RefundRequest) -> Result<Refund, GatewayError> {
        let wanted = transformers::create_refund(request)?;
        let existing = self.payment_refunds(&request.payment_id).await?;
        if let Some(found) = existing
            .iter()
            .find(|r| r.receipt.as_deref() == Some(wanted.receipt.as_str()))
        {
            return transformers::refund(found);
        }
        transformers::refund(&self.refund_payment(&request.payment_id, &wanted).await?)
    }
}
