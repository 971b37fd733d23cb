//! What every gateway client does with an HTTP exchange: send it, time it,
//! record it, and sort the answer into a body or a [`GatewayError`]. Each
//! gateway supplies only how to read its error body.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;
use crate::telemetry::GatewayCall;
use crate::Gateway;

/// `(code, message)` out of a gateway's error body, if it has that shape.
pub(crate) type ErrorReader = fn(&[u8]) -> Option<(String, String)>;

/// A client with the timeouts every gateway call gets.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, GatewayError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| GatewayError::Transport(format!("cannot build the HTTP client: {e}")))
}

/// A gateway's base URL: http or https, able to take a path.
pub(crate) fn base_url(name: &str, raw: &str) -> Result<Url, GatewayError> {
    let url =
        Url::parse(raw).map_err(|e| GatewayError::Transport(format!("{name}={raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(GatewayError::Transport(format!(
            "{name}={raw:?} is not an http(s) base URL"
        )));
    }
    Ok(url)
}

/// `base` with `segments` appended, each escaped as one path segment (a
/// gateway's id can never reach another path).
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // `base_url` admitted only URLs that can take a path.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Sends `request` and returns the body of a 2xx answer.
pub(crate) async fn send(
    gateway: Gateway,
    operation: &'static str,
    request: reqwest::RequestBuilder,
    read_error: ErrorReader,
) -> Result<Vec<u8>, GatewayError> {
    let start = Instant::now();
    let (status, result) = exchange(request, read_error).await;
    GatewayCall {
        gateway,
        operation,
        status,
        latency: start.elapsed(),
        error: result.as_ref().err(),
    }
    .emit();
    result
}

async fn exchange(
    request: reqwest::RequestBuilder,
    read_error: ErrorReader,
) -> (Option<u16>, Result<Vec<u8>, GatewayError>) {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return (None, Err(from_reqwest(e))),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = match response.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return (Some(status), Err(from_reqwest(e))),
    };
    (
        Some(status),
        classify(status, retry_after, body, read_error),
    )
}

/// The answer's status decides: 2xx is the body; 429, 5xx and other
/// statuses are errors of their own kind.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    read_error: ErrorReader,
) -> Result<Vec<u8>, GatewayError> {
    match status {
        200..=299 => Ok(body),
        429 => Err(GatewayError::RateLimited { retry_after }),
        500..=599 => Err(GatewayError::Unavailable { status }),
        _ => {
            let (code, message) = read_error(&body).unwrap_or_else(|| {
                (
                    format!("http_{status}"),
                    String::from_utf8_lossy(&body).chars().take(500).collect(),
                )
            });
            Err(GatewayError::Rejected {
                status,
                code,
                message,
            })
        }
    }
}

fn from_reqwest(e: reqwest::Error) -> GatewayError {
    if e.is_timeout() {
        return GatewayError::Timeout;
    }
    // The source chain says why (connection refused, TLS, reset).
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_decode() {
        GatewayError::Decode(text)
    } else {
        GatewayError::Transport(text)
    }
}

/// A 2xx body as `T`.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::Decode(format!(
            "{e} in {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(300)
                .collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_reader(_: &[u8]) -> Option<(String, String)> {
        None
    }

    #[test]
    fn statuses_sort_into_error_kinds() {
        assert_eq!(
            classify(200, None, b"{}".to_vec(), no_reader),
            Ok(b"{}".to_vec())
        );
        assert_eq!(
            classify(503, None, vec![], no_reader),
            Err(GatewayError::Unavailable { status: 503 })
        );
        assert_eq!(
            classify(429, Some(Duration::from_secs(2)), vec![], no_reader),
            Err(GatewayError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            })
        );
        let rejected = classify(400, None, b"plain".to_vec(), no_reader).unwrap_err();
        assert_eq!(
            rejected,
            GatewayError::Rejected {
                status: 400,
                code: "http_400".into(),
                message: "plain".into()
            }
        );
        assert!(!rejected.retryable());
        assert!(classify(500, None, vec![], no_reader)
            .unwrap_err()
            .retryable());
    }
}
