//! The simulator's configuration: where it listens, the credentials it
//! expects (the same variables the clients read, so one setting configures
//! both sides), where it sends webhooks and how it misbehaves on purpose.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// The development defaults: the simulator's address and its credentials.
/// They are not secrets; real keys come from the environment.
pub mod dev {
    pub const ADDR: &str = "127.0.0.1:8090";
    pub const BASE_URL: &str = "http://127.0.0.1:8090";
    pub const RAZORPAY_KEY_ID: &str = "rzp_test_simulator";
    pub const RAZORPAY_KEY_SECRET: &str = "simulator_razorpay_key_secret";
    pub const RAZORPAY_WEBHOOK_SECRET: &str = "simulator_razorpay_webhook_secret";
    pub const STRIPE_SECRET_KEY: &str = "sk_test_simulator";
    pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_simulator";
}

#[derive(Clone)]
pub struct Config {
    /// Port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// The base of the hosted pages' URLs; `None` is `http://<bound address>`.
    pub public_url: Option<String>,
    pub razorpay: RazorpayConfig,
    pub stripe: StripeConfig,
    pub knobs: Knobs,
    pub delivery: Delivery,
}

#[derive(Clone)]
pub struct RazorpayConfig {
    pub key_id: String,
    pub key_secret: String,
    pub webhook_secret: String,
    /// Where webhooks go; none: events are logged, not sent.
    pub webhook_url: Option<String>,
    pub account_id: String,
}

#[derive(Clone)]
pub struct StripeConfig {
    pub secret_key: String,
    /// Each signs one `v1` of `Stripe-Signature` (several while rolling).
    pub webhook_secrets: Vec<String>,
    pub webhook_url: Option<String>,
}

/// Misbehaviour on purpose, applied to the provider API (`/v1/…`) and to
/// webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// Added before every API answer.
    pub latency: Duration,
    /// Share of API calls answered 500 without doing anything.
    pub error_rate: f64,
    /// Share of API calls that are done, but answered only after `hang`
    /// (or at shutdown): the client times out not knowing the outcome.
    pub timeout_rate: f64,
    pub hang: Duration,
    /// Share of webhooks delivered twice (same event id).
    pub duplicate_rate: f64,
    /// Deliver the webhooks of one action in reverse order (Razorpay's
    /// `order.paid` before `payment.captured`).
    pub reorder: bool,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            latency: Duration::ZERO,
            error_rate: 0.0,
            timeout_rate: 0.0,
            hang: Duration::from_secs(120),
            duplicate_rate: 0.0,
            reorder: false,
        }
    }
}

/// How webhooks are retried: after a non-2xx answer or no answer, wait
/// `first_retry`, then twice that, …, `max_attempts` in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub max_attempts: u32,
    pub first_retry: Duration,
    /// Razorpay expects an answer within 5 s.
    pub timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            max_attempts: 5,
            first_retry: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// The development defaults on `addr`, sending no webhooks.
    pub fn development(addr: SocketAddr) -> Config {
        Config {
            addr,
            public_url: None,
            razorpay: RazorpayConfig {
                key_id: dev::RAZORPAY_KEY_ID.into(),
                key_secret: dev::RAZORPAY_KEY_SECRET.into(),
                webhook_secret: dev::RAZORPAY_WEBHOOK_SECRET.into(),
                webhook_url: None,
                account_id: "acc_simulator0001".into(),
            },
            stripe: StripeConfig {
                secret_key: dev::STRIPE_SECRET_KEY.into(),
                webhook_secrets: vec![dev::STRIPE_WEBHOOK_SECRET.into()],
                webhook_url: None,
            },
            knobs: Knobs::default(),
            delivery: Delivery::default(),
        }
    }

    /// `SIMULATOR_ADDR` (default 127.0.0.1:8090), `SIMULATOR_PUBLIC_URL`,
    /// `SIMULATOR_WEBHOOK_URL_RAZORPAY`, `SIMULATOR_WEBHOOK_URL_STRIPE`,
    /// `RAZORPAY_KEY_ID`, `RAZORPAY_KEY_SECRET`, `RAZORPAY_WEBHOOK_SECRET`,
    /// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` (comma-separated: one
    /// `v1` each), and the knobs `SIMULATOR_LATENCY_MS`,
    /// `SIMULATOR_ERROR_RATE`, `SIMULATOR_TIMEOUT_RATE`,
    /// `SIMULATOR_DUPLICATE_RATE` (0 to 1), `SIMULATOR_REORDER` (true/false),
    /// `SIMULATOR_WEBHOOK_MAX_ATTEMPTS`, `SIMULATOR_WEBHOOK_RETRY_MS`.
    pub fn from_env() -> anyhow::Result<Config> {
        use platform::config::var;
        let mut config = Config::development(platform::config::addr("SIMULATOR_ADDR", dev::ADDR)?);
        config.public_url = optional("SIMULATOR_PUBLIC_URL");
        config.razorpay.webhook_url = optional("SIMULATOR_WEBHOOK_URL_RAZORPAY");
        config.stripe.webhook_url = optional("SIMULATOR_WEBHOOK_URL_STRIPE");
        config.razorpay.key_id = var("RAZORPAY_KEY_ID", dev::RAZORPAY_KEY_ID);
        config.razorpay.key_secret = var("RAZORPAY_KEY_SECRET", dev::RAZORPAY_KEY_SECRET);
        config.razorpay.webhook_secret =
            var("RAZORPAY_WEBHOOK_SECRET", dev::RAZORPAY_WEBHOOK_SECRET);
        config.stripe.secret_key = var("STRIPE_SECRET_KEY", dev::STRIPE_SECRET_KEY);
        config.stripe.webhook_secrets = var("STRIPE_WEBHOOK_SECRET", dev::STRIPE_WEBHOOK_SECRET)
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        config.knobs.latency = Duration::from_millis(number("SIMULATOR_LATENCY_MS", 0)?);
        config.knobs.error_rate = rate("SIMULATOR_ERROR_RATE")?;
        config.knobs.timeout_rate = rate("SIMULATOR_TIMEOUT_RATE")?;
        config.knobs.duplicate_rate = rate("SIMULATOR_DUPLICATE_RATE")?;
        config.knobs.reorder = match var("SIMULATOR_REORDER", "false").as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => anyhow::bail!("SIMULATOR_REORDER={other:?}: true or false"),
        };
        config.delivery.max_attempts = number("SIMULATOR_WEBHOOK_MAX_ATTEMPTS", 5)? as u32;
        config.delivery.first_retry =
            Duration::from_millis(number("SIMULATOR_WEBHOOK_RETRY_MS", 1000)?);
        Ok(config)
    }
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    match optional(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
    }
}

fn rate(name: &str) -> anyhow::Result<f64> {
    let Some(v) = optional(name) else {
        return Ok(0.0);
    };
    let r: f64 = v
        .parse()
        .with_context(|| format!("{name}={v:?} is not a number"))?;
    anyhow::ensure!((0.0..=1.0).contains(&r), "{name}={v:?}: between 0 and 1");
    Ok(r)
}

impl fmt::Debug for Config {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("simulator::Config")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url)
            .field("razorpay_key_id", &self.razorpay.key_id)
            .field("razorpay_webhook_url", &self.razorpay.webhook_url)
            .field("stripe_webhook_url", &self.stripe.webhook_url)
            .field("stripe_webhook_secrets", &self.stripe.webhook_secrets.len())
            .field("knobs", &self.knobs)
            .field("delivery", &self.delivery)
            .finish()
    }
}
