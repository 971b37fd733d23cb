//! `/openapi.json` (the generated document) and `/docs` (Swagger UI).
//!
//! Swagger UI's files come from npm's `swagger-ui-dist`, which our scripts
//! install into `web/node_modules` (`DOCS_ASSETS_DIR` points elsewhere),
//! and are served from `/docs/assets/`: the page loads nothing from
//! another host, so it works with no network. Only the files the page
//! names are served, by name, so no path reaches the rest of the disk.
//! Without them the page says where the document is and how to get the
//! assets.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi;

/// Where `swagger-ui-dist` is unless `DOCS_ASSETS_DIR` says otherwise
/// (relative to the working directory, the repository's root in
/// development; the container image copies it to the same place).
pub const DEFAULT_ASSETS_DIR: &str = "web/node_modules/swagger-ui-dist";

/// The files the page uses, and their content types.
const ASSETS: &[(&str, &str)] = &[
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("favicon-32x32.png", "image/png"),
];

pub fn router(doc: OpenApi, assets: PathBuf) -> Router {
    let doc = Arc::new(doc);
    if !assets.join("swagger-ui-bundle.js").is_file() {
        tracing::warn!(
            dir = %assets.display(),
            "Swagger UI's assets are missing: /docs shows only a link to /openapi.json \
             (scripts/run.sh installs them; DOCS_ASSETS_DIR points elsewhere)"
        );
    }
    let assets = Arc::new(assets);
    let files = assets.clone();
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()).into_response() }),
        )
        .route("/docs", get(move || page(assets.clone())))
        .route("/docs/init.js", get(init))
        .route(
            "/docs/assets/{file}",
            get(move |Path(file): Path<String>| asset(files.clone(), file)),
        )
}

async fn page(assets: Arc<PathBuf>) -> Html<&'static str> {
    if assets.join("swagger-ui-bundle.js").is_file() {
        Html(PAGE)
    } else {
        Html(NO_ASSETS)
    }
}

async fn init() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        INIT,
    )
        .into_response()
}

async fn asset(dir: Arc<PathBuf>, file: String) -> Response {
    let Some((name, content_type)) = ASSETS.iter().find(|(name, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>InternHub checkout API</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"##;

const INIT: &str = r##"window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
"##;

const NO_ASSETS: &str = r##"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>InternHub checkout API</title></head>
<body>
  <h1>InternHub checkout API</h1>
  <p>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>
  <p>Swagger UI's files are not installed on this server (<code>scripts/run.sh</code>
  installs them into <code>web/node_modules</code>; <code>DOCS_ASSETS_DIR</code> points elsewhere).</p>
</body>
</html>
"##;
