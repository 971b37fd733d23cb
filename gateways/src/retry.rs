//! Retrying a gateway operation: exponential backoff with full jitter, for
//! what [`GatewayError::retryable`] allows (timeouts, 5xx, 429) and nothing
//! else, never past `max_attempts`, and never sooner than a 429's
//! `Retry-After`. Every attempt is returned to the caller (to store beside
//! the order) and logged.
//!
//! An operation is only retried safely if repeating it applies once: the
//! connectors make `create_session` and `refund` so (Stripe's
//! `Idempotency-Key`, Razorpay's look-up by receipt).
//!
//! The wait is a function passed in, so tests run without the clock.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::GatewayError;
use crate::telemetry::RetryScheduled;
use crate::Gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The cap of the first wait; each later cap doubles.
    pub base: Duration,
    /// No cap grows beyond this.
    pub max_delay: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_attempts: 5,
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// The longest `Retry-After` honoured; a longer one is the caller's to
/// schedule, not a task's to sleep through.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Policy {
    /// The wait after failed attempt `attempt` (1-based): uniformly in
    /// `[0, min(max_delay, base·2^(attempt-1))]` ("full jitter", so clients
    /// that failed together do not retry together), and at least what a
    /// 429 asked for. `unit` is a random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, error: &GatewayError, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let cap = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jittered = cap.mul_f64(unit.clamp(0.0, 1.0));
        match error {
            GatewayError::RateLimited {
                retry_after: Some(wait),
            } => jittered.max((*wait).min(MAX_RETRY_AFTER)),
            _ => jittered,
        }
    }
}

/// One try of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    pub latency: Duration,
    /// `None` when it succeeded.
    pub error: Option<GatewayError>,
}

/// The result of the last attempt, and every attempt made.
#[derive(Debug)]
pub struct Outcome<T> {
    pub result: Result<T, GatewayError>,
    pub attempts: Vec<Attempt>,
}

/// Runs `operation` until it succeeds, fails for good, or the attempts run
/// out, sleeping on the tokio clock between attempts.
pub async fn run<T, F, Fut>(
    policy: &Policy,
    gateway: Gateway,
    name: &'static str,
    operation: F,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GatewayError>>,
{
    run_with(policy, gateway, name, tokio::time::sleep, operation).await
}

/// [`run`] with the wait supplied by the caller.
pub async fn run_with<T, F, Fut, S, SFut>(
    policy: &Policy,
    gateway: Gateway,
    name: &'static str,
    mut sleep: S,
    mut operation: F,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GatewayError>>,
    S: FnMut(Duration) -> SFut,
    SFut: Future<Output = ()>,
{
    let mut attempts = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        let start = Instant::now();
        let result = operation().await;
        let latency = start.elapsed();
        match result {
            Ok(value) => {
                attempts.push(Attempt {
                    number,
                    latency,
                    error: None,
                });
                return Outcome {
                    result: Ok(value),
                    attempts,
                };
            }
            Err(error) => {
                attempts.push(Attempt {
                    number,
                    latency,
                    error: Some(error.clone()),
                });
                if !error.retryable() || number >= policy.max_attempts.max(1) {
                    return Outcome {
                        result: Err(error),
                        attempts,
                    };
                }
                let delay = policy.delay(number, &error, rand::random::<f64>());
                RetryScheduled {
                    gateway,
                    operation: name,
                    attempt: number,
                    delay,
                    error: &error,
                }
                .emit();
                sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    fn policy() -> Policy {
        Policy {
            max_attempts: 4,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
        }
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let p = policy();
        let e = GatewayError::Timeout;
        assert_eq!(p.delay(1, &e, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, &e, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, &e, 1.0), Duration::from_millis(250));
        assert_eq!(p.delay(40, &e, 1.0), Duration::from_millis(250));
        assert_eq!(p.delay(2, &e, 0.5), Duration::from_millis(100));
        assert_eq!(p.delay(2, &e, 0.0), Duration::ZERO);
    }

    #[test]
    fn a_429_waits_at_least_its_retry_after() {
        let e = GatewayError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(policy().delay(1, &e, 0.1), Duration::from_secs(3));
        let e = GatewayError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(policy().delay(1, &e, 0.1), MAX_RETRY_AFTER);
    }

    /// Runs `run_with` over scripted results, recording the waits.
    fn script(results: Vec<Result<u32, GatewayError>>) -> (Outcome<u32>, Vec<Duration>, usize) {
        let results = RefCell::new(VecDeque::from(results));
        let calls = RefCell::new(0usize);
        let waits = RefCell::new(Vec::new());
        let outcome = block_on(run_with(
            &policy(),
            Gateway::Stripe,
            "test",
            |d| {
                waits.borrow_mut().push(d);
                std::future::ready(())
            },
            || {
                *calls.borrow_mut() += 1;
                std::future::ready(results.borrow_mut().pop_front().expect("a scripted result"))
            },
        ));
        (outcome, waits.into_inner(), calls.into_inner())
    }

    /// The futures above are all ready at once; a current-thread runtime
    /// drives them without timers.
    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn retryable_failures_are_retried_until_success() {
        let (outcome, waits, calls) = script(vec![
            Err(GatewayError::Unavailable { status: 503 }),
            Err(GatewayError::Timeout),
            Ok(7),
        ]);
        assert_eq!(outcome.result, Ok(7));
        assert_eq!(calls, 3);
        assert_eq!(waits.len(), 2);
        assert!(waits[0] <= Duration::from_millis(100));
        assert!(waits[1] <= Duration::from_millis(200));
        let errors: Vec<_> = outcome.attempts.iter().map(|a| a.error.clone()).collect();
        assert_eq!(
            errors,
            vec![
                Some(GatewayError::Unavailable { status: 503 }),
                Some(GatewayError::Timeout),
                None
            ]
        );
        assert_eq!(
            outcome
                .attempts
                .iter()
                .map(|a| a.number)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn a_4xx_is_never_retried() {
        let rejected = GatewayError::Rejected {
            status: 400,
            code: "BAD_REQUEST_ERROR".into(),
            message: "no".into(),
        };
        let (outcome, waits, calls) = script(vec![Err(rejected.clone()), Ok(1)]);
        assert_eq!(outcome.result, Err(rejected));
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[test]
    fn attempts_stop_at_the_maximum() {
        let (outcome, waits, calls) = script(vec![
            Err(GatewayError::Unavailable { status: 500 }),
            Err(GatewayError::Unavailable { status: 502 }),
            Err(GatewayError::RateLimited { retry_after: None }),
            Err(GatewayError::Unavailable { status: 504 }),
            Ok(1),
        ]);
        assert_eq!(
            outcome.result,
            Err(GatewayError::Unavailable { status: 504 })
        );
        assert_eq!(calls, 4);
        assert_eq!(waits.len(), 3);
        assert_eq!(outcome.attempts.len(), 4);
    }
}
