//! Start-up waits for what a process depends on. A service started while
//! the broker, the registry or Postgres restarts (a deploy, a crash, a
//! chaos run) waits for it with a warning a second, instead of exiting and
//! leaving its work to whoever notices; what is refused rather than
//! unreachable (an incompatible schema, a bad password) still stops it at
//! once. `STARTUP_WAIT_SECS` (default 120) bounds the wait, so a
//! dependency that never comes still ends in a clear error.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long start-up waits for a dependency (`STARTUP_WAIT_SECS`).
pub fn wait_limit() -> anyhow::Result<Duration> {
    let raw = crate::config::var("STARTUP_WAIT_SECS", "120");
    let secs: u64 = raw
        .parse()
        .map_err(|e| anyhow::anyhow!("STARTUP_WAIT_SECS={raw}: {e}"))?;
    Ok(Duration::from_secs(secs))
}

/// Runs `attempt` until it succeeds, fails with an error `retriable` says
/// is final, or `limit` passed; the last error is returned with `what`.
pub async fn patiently<T, E, F, Fut>(
    what: &str,
    limit: Duration,
    retriable: impl Fn(&E) -> bool,
    mut attempt: F,
) -> anyhow::Result<T>
where
    E: std::fmt::Display + Into<anyhow::Error>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if retriable(&e) && started.elapsed() + pause < limit => {
                tracing::warn!(
                    error = %e,
                    waited_secs = started.elapsed().as_secs(),
                    "waiting for {what}"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(e.into().context(format!(
                    "{what} (after {} s; STARTUP_WAIT_SECS bounds the wait)",
                    started.elapsed().as_secs()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_retriable_error_is_retried_until_the_attempt_succeeds() {
        let mut calls = 0;
        let got = patiently(
            "the thing",
            Duration::from_secs(5),
            |_: &anyhow::Error| true,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(anyhow::anyhow!("down"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn a_final_error_stops_at_once_and_names_what_was_awaited() {
        let mut calls = 0;
        let err = patiently(
            "the schema registry",
            Duration::from_secs(5),
            |_: &anyhow::Error| false,
            || {
                calls += 1;
                async { Err::<(), _>(anyhow::anyhow!("refused")) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        let text = format!("{err:#}");
        assert!(
            text.contains("the schema registry") && text.contains("refused"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_wait_ends_at_its_limit_with_the_last_error() {
        let started = Instant::now();
        let err = patiently(
            "the broker",
            Duration::from_millis(400),
            |_: &anyhow::Error| true,
            || async { Err::<(), _>(anyhow::anyhow!("connection refused")) },
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(format!("{err:#}").contains("connection refused"));
    }
}
