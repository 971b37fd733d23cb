//! The API routes under `/api/v1`, one module per resource.

pub mod cart;

use axum::Router;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", cart::router())
        .with_state(state)
}
