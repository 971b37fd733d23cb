//! `/openapi.json` (the generated document) and `/docs` (Swagger UI).
//!
//! The Swagger UI page loads its script and styles from a CDN in the
//! reader's browser: the service ships no copy of Swagger UI, and nothing
//! is downloaded at build time.

use std::sync::Arc;

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi;

pub fn router(doc: OpenApi) -> Router {
    let doc = Arc::new(doc);
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()).into_response() }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>InternHub checkout API</title>
  <link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js" crossorigin></script>
  <script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });</script>
</body>
</html>
"##;
