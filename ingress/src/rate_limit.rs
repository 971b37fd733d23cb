//! Rate limiting per caller: by user id when the request carries a valid
//! bearer token, by client IP otherwise. Each route group has its own
//! budget: the API, the admin routes, and the gateways' webhooks (per
//! source address, at a rate no gateway reaches, so a flood of forged
//! deliveries is refused before its signatures cost a thing). A caller
//! over budget gets 429 with `Retry-After` and the usual error body, and
//! the refusal goes to the audit log; nothing reaches Kafka.
//!
//! Budgets are per replica's share: with `INGRESS_REPLICAS=N` behind a
//! balancer that spreads callers evenly, each replica allows `1/N` of the
//! configured rate and burst, so together they hold the budget without a
//! shared store on the request path.

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

impl Budget {
    /// One replica's share of the budget among `replicas` (each at least
    /// 1/s and a burst of 1, so a small budget does not become none).
    pub fn share(self, replicas: u32) -> Budget {
        let n = replicas.max(1);
        Budget {
            per_second: (self.per_second / n).max(1),
            burst: (self.burst / n).max(1),
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
    trusted_proxies: u32,
}

impl Limiter {
    pub fn new(
        group: &'static str,
        budget: Budget,
        verifier: Arc<Verifier>,
        trusted_proxies: u32,
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
            trusted_proxies,
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
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Key::Ip(
            client_ip(forwarded, peer, self.trusted_proxies).unwrap_or(IpAddr::from([0, 0, 0, 0])),
        )
    }
}

/// The caller's address behind `trusted` proxies of ours: each appends the
/// address it received the request from to `X-Forwarded-For`, so the
/// client is the `trusted`-th entry from the right. Entries to the left of
/// it are whatever the client sent, and never trusted (the leftmost entry
/// is the client's to choose). With no trusted proxy, the peer address.
pub fn client_ip(forwarded: Option<&str>, peer: Option<IpAddr>, trusted: u32) -> Option<IpAddr> {
    if trusted == 0 {
        return peer;
    }
    let entries: Vec<&str> = forwarded
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let at = entries.len().checked_sub(trusted as usize).unwrap_or(0);
    entries
        .get(at)
        .and_then(|e| e.parse::<IpAddr>().ok())
        .or(peer)
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
            tracing::warn!(target: "audit", event = "rate_limited", group = limiter.group, caller = %who, path = %platform::telemetry::redact_path(request.uri().path()), "rate limit exceeded");
            ApiError::RateLimited { retry_after }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_replica_takes_its_share_of_the_budget() {
        let b = Budget {
            per_second: 20,
            burst: 40,
        };
        let share = b.share(2);
        assert_eq!((share.per_second, share.burst), (10, 20));
        let one = b.share(1);
        assert_eq!((one.per_second, one.burst), (20, 40));
        let tiny = Budget {
            per_second: 1,
            burst: 1,
        }
        .share(3);
        assert_eq!((tiny.per_second, tiny.burst), (1, 1));
    }

    #[test]
    fn the_client_is_taken_from_the_right_after_the_trusted_proxies() {
        let peer = Some(ip("10.0.0.9"));
        // No trusted proxy: the header is the client's own words.
        assert_eq!(client_ip(Some("1.2.3.4"), peer, 0), peer);
        // One proxy of ours, which appended what it saw: a forged entry on
        // the left is not the caller.
        assert_eq!(
            client_ip(Some("6.6.6.6, 203.0.113.7"), peer, 1),
            Some(ip("203.0.113.7"))
        );
        // Two: the client is second from the right.
        assert_eq!(
            client_ip(Some("6.6.6.6, 203.0.113.7, 10.0.0.2"), peer, 2),
            Some(ip("203.0.113.7"))
        );
        // Fewer entries than proxies, or none, or garbage: the leftmost
        // entry the proxies wrote, else the peer.
        assert_eq!(
            client_ip(Some("203.0.113.7"), peer, 2),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(client_ip(None, peer, 1), peer);
        assert_eq!(client_ip(Some("not-an-ip"), peer, 1), peer);
    }
}
