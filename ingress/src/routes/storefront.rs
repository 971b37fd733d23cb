//! The storefront at `/`: a page, a script and a style sheet (plain ES
//! modules, no build step), compiled into the ingress so it serves them
//! with no files beside it and nothing fetched from another host. The page
//! is a client of the public API only: everything it shows, it read from
//! `/api/v1`, as any other frontend would.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("../../storefront/index.html");
const SCRIPT: &str = include_str!("../../storefront/app.js");
const STYLE: &str = include_str!("../../storefront/app.css");

/// The page's own policy: its script, style and API calls come from this
/// origin only; the gateway's hosted page opens in a window of its own.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// The page's settings, `/storefront.json`: where a Razorpay order is paid
/// (Razorpay's own Checkout in production; the simulator's page in
/// development, `STOREFRONT_RAZORPAY_CHECKOUT_URL`). A Stripe session
/// names its page itself.
pub fn router(razorpay_checkout_url: Option<String>) -> Router {
    let settings = serde_json::json!({ "razorpay_checkout_url": razorpay_checkout_url });
    Router::new()
        .route(
            "/storefront.json",
            get(move || async move { axum::Json(settings.clone()) }),
        )
        .route("/", get(|| file("text/html; charset=utf-8", PAGE)))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/app.css", get(|| file("text/css; charset=utf-8", STYLE)))
}

async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
}
