//! Misbehaviour of the provider API, on purpose: the knobs (latency, a
//! share of 500s, a share of answers that never come in time) and faults a
//! test forces on the next calls (`POST /sim/faults`). Only `/v1/…` is
//! affected; the hosted pages, `/sim` and the ops endpoints never are.
//!
//! A forced or random error is answered *before* the call is applied; a
//! timeout is applied and then not answered in time, the case that makes
//! idempotency keys and look-ups by receipt necessary.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::App;
use gateways::Gateway;

/// A fault a test forces on one provider API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer this status in the provider's error shape, doing nothing.
    Status(u16),
    /// Do the call, then answer only after `hang` (the client times out).
    Hang,
}

pub(crate) async fn apply(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let provider = provider_of(req.uri().path());
    let knobs = &app.config.knobs;
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }
    let forced = {
        let mut store = app.store();
        let method = req.method().as_str();
        let hit = store
            .forced
            .iter()
            .position(|(_, only)| only.as_deref().is_none_or(|m| m == method));
        hit.and_then(|i| store.forced.remove(i))
            .map(|(fault, _)| fault)
    };
    if let Some(Fault::Status(status)) = forced {
        return error(provider, status);
    }
    if forced.is_none() && roll(knobs.error_rate) {
        return error(provider, 500);
    }
    let hang = forced == Some(Fault::Hang) || roll(knobs.timeout_rate);
    let response = next.run(req).await;
    if hang {
        tokio::select! {
            _ = tokio::time::sleep(knobs.hang) => {},
            _ = app.stopped() => {},
        }
    }
    response
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

/// Which provider a `/v1` path belongs to (their paths do not overlap).
fn provider_of(path: &str) -> Gateway {
    if path.starts_with("/v1/checkout/") || path.starts_with("/v1/refunds") {
        Gateway::Stripe
    } else {
        Gateway::Razorpay
    }
}

/// An error answer in the provider's own shape.
pub(crate) fn error(provider: Gateway, status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match provider {
        Gateway::Razorpay => {
            let (code, description) = match status {
                429 => ("BAD_REQUEST_ERROR", "Too many requests"),
                500..=599 => (
                    "SERVER_ERROR",
                    "The server encountered an error. The incident has been reported to admins.",
                ),
                _ => ("BAD_REQUEST_ERROR", "Simulated failure"),
            };
            serde_json::json!({"error": {"code": code, "description": description}})
        }
        Gateway::Stripe => {
            let (kind, message) = match status {
                429 => (
                    "invalid_request_error",
                    "Too many requests hit the API too quickly.",
                ),
                500..=599 => ("api_error", "An unknown error occurred (simulated)."),
                _ => ("invalid_request_error", "Simulated failure."),
            };
            serde_json::json!({"error": {"type": kind, "message": message}})
        }
    };
    let mut response = (code, Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
