//! The simulator's configuration: where it listens, the credentials it
//! expects (the same variables the clients read, so one setting configures
//! both sides), where it sends webhooks and how it misbehaves on purpose.
//!
//! The credentials have no defaults: `scripts/run.sh` generates them once
//! and hands the same values to the simulator and to our services, and
//! each test generates its own ([`Config::for_tests`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

/// Where the simulator listens unless `SIMULATOR_ADDR` says otherwise.
pub const ADDR: &str = "127.0.0.1:8090";

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
    /// Fresh random credentials on `addr`, sending no webhooks: what a test
    /// starts, reading the credentials back from the fields.
    pub fn for_tests(addr: SocketAddr) -> Config {
        let random = |prefix: &str| {
            format!(
                "{prefix}{}",
                Alphanumeric.sample_string(&mut rand::rng(), 24)
            )
        };
        Config::with(
            addr,
            RazorpayConfig {
                key_id: random("rzp_test_"),
                key_secret: random(""),
                webhook_secret: random(""),
                webhook_url: None,
                account_id: "acc_simulator0001".into(),
            },
            StripeConfig {
                secret_key: random("sk_test_"),
                webhook_secrets: vec![random("whsec_")],
                webhook_url: None,
            },
        )
    }

    fn with(addr: SocketAddr, razorpay: RazorpayConfig, stripe: StripeConfig) -> Config {
        Config {
            addr,
            public_url: None,
            razorpay,
            stripe,
            knobs: Knobs::default(),
            delivery: Delivery::default(),
        }
    }

    /// `SIMULATOR_ADDR` (default [`ADDR`]), `SIMULATOR_PUBLIC_URL`,
    /// `SIMULATOR_WEBHOOK_URL_RAZORPAY`, `SIMULATOR_WEBHOOK_URL_STRIPE`,
    /// `RAZORPAY_KEY_ID`, `RAZORPAY_KEY_SECRET`, `RAZORPAY_WEBHOOK_SECRET`,
    /// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` (comma-separated: one
    /// `v1` each), and the knobs `SIMULATOR_LATENCY_MS`,
    /// `SIMULATOR_ERROR_RATE`, `SIMULATOR_TIMEOUT_RATE`,
    /// `SIMULATOR_DUPLICATE_RATE` (0 to 1), `SIMULATOR_REORDER` (true/false),
    /// `SIMULATOR_WEBHOOK_MAX_ATTEMPTS`, `SIMULATOR_WEBHOOK_RETRY_MS`.
    pub fn from_env() -> anyhow::Result<Config> {
        use platform::config::{secret, var};
        let mut config = Config::with(
            platform::config::addr("SIMULATOR_ADDR", ADDR)?,
            RazorpayConfig {
                key_id: secret("RAZORPAY_KEY_ID")?,
                key_secret: secret("RAZORPAY_KEY_SECRET")?,
                webhook_secret: secret("RAZORPAY_WEBHOOK_SECRET")?,
                webhook_url: optional("SIMULATOR_WEBHOOK_URL_RAZORPAY"),
                account_id: "acc_simulator0001".into(),
            },
            StripeConfig {
                secret_key: secret("STRIPE_SECRET_KEY")?,
                webhook_secrets: secret("STRIPE_WEBHOOK_SECRET")?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                webhook_url: optional("SIMULATOR_WEBHOOK_URL_STRIPE"),
            },
        );
        config.public_url = optional("SIMULATOR_PUBLIC_URL");
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
