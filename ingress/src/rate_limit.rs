//! Rate limiting per caller: by user id when the request carries a valid
//! bearer token, by client IP otherwise. Each route group has its own
//! budget (the gateways' webhooks get a higher one than browsers). A caller
//! over budget gets 429 with `Retry-After` and the usual error body, and
//! the refusal goes to the audit log; nothing reaches Kafka.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Verifier;
use crate::error::ApiError;

/// A budget: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub per_second: u32,
    pub burst: u32,
}

impl Budget {
    /// `NAME=per_second/burst`, e.g. `RATE_LIMIT_API=20/40`.
    pub fn from_env(name: &str, default: Budget) -> anyhow::Result<Budget> {
        let Some(raw) = std::env::var(name).ok().filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        let (rate, burst) = raw.split_once('/').unwrap_or((&raw, &raw));
        let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|n| *n > 0);
        match (parse(rate), parse(burst)) {
            (Some(per_second), Some(burst)) => Ok(Budget { per_second, burst }),
            _ => anyhow::bail!("{name}={raw}: expected <per second>/<burst>, both above 0"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Ip(IpAddr),
}

/// One route group's limiter.
#[derive(Clone)]
pub struct Limiter {
    group: &'static str,
    limiter: Arc<DefaultKeyedRateLimiter<Key>>,
    verifier: Arc<Verifier>,
    trust_forwarded_for: bool,
}

impl Limiter {
    pub fn new(
        group: &'static str,
        budget: Budget,
        verifier: Arc<Verifier>,
        trust_forwarded_for: bool,
    ) -> Limiter {
        let per_second = NonZeroU32::new(budget.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(budget.burst).unwrap_or(per_second);
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ));
        // Forget idle callers now and then so the key map stays bounded.
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(l) => l.retain_recent(),
                    None => break,
                }
            }
        });
        Limiter {
            group,
            limiter,
            verifier,
            trust_forwarded_for,
        }
    }

    fn key(&self, request: &Request) -> Key {
        // Only a verified token counts: an unverified `sub` would let a
        // caller pick someone else's budget.
        let user = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.verifier.verify(t.trim()).ok());
        if let Some(user) = user {
            return Key::User(user.id);
        }
        let forwarded = self
            .trust_forwarded_for
            .then(|| request.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Key::Ip(forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }
}

/// The middleware; install with `from_fn_with_state(limiter, limit)`.
pub async fn limit(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    let key = limiter.key(&request);
    match limiter.limiter.check_key(&key) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after = wait.as_secs().max(1);
            let who = match &key {
                Key::User(id) => format!("user {id}"),
                Key::Ip(ip) => format!("ip {ip}"),
            };
            tracing::warn!(target: "audit", event = "rate_limited", group = limiter.group, caller = %who, path = %request.uri().path(), "rate limit exceeded");
            ApiError::RateLimited { retry_after }.into_response()
        }
    }
}
