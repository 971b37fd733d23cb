//! `X-Correlation-ID`: accepted from the caller when well-formed, generated
//! otherwise, echoed on the response, put on every log line of the request
//! (a span field) and carried into Kafka headers by [`crate::commands`].

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use schemas::headers::HTTP_CORRELATION_ID;

tokio::task_local! {
    static CURRENT: String;
}

/// The correlation id of the request being handled ("" outside one).
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn layer(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HTTP_CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", correlation_id = %id, method = %request.method(), path = %platform::telemetry::redact_path(request.uri().path()));
    let started = std::time::Instant::now();
    let mut response = CURRENT
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request handled"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HTTP_CORRELATION_ID, v);
    }
    response
}
