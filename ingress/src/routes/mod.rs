//! The API routes, one module per resource, each documented for OpenAPI
//! next to its handler (`utoipa`). [`api`] assembles them into route groups,
//! each with its own rate-limit budget, and returns the router together
//! with the OpenAPI document generated from the very same routes, so a
//! route cannot exist without its documentation.

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod cart;
pub mod catalog;
pub mod coupons;
pub mod docs;
pub mod enrollments;
pub mod invoices;
pub mod login;
pub mod orders;
pub mod privacy;
pub mod seat_report;
pub mod shared_responses;
pub mod sharing;
pub mod storefront;
pub mod webhooks;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;

use crate::idempotency;
use crate::rate_limit::{self, Limiter};
use crate::AppState;

/// The limiters of the route groups.
pub struct Groups {
    /// Browsers and API clients: `/api/v1/...`.
    pub api: Limiter,
    /// Operators: `/api/v1/admin/...`.
    pub admin: Limiter,
    /// The gateways: `/webhooks/...`, per source address.
    pub webhooks: Limiter,
}

/// The API routes and their document. Inside each group's rate limit (a
/// refused request touches nothing), every write passes the
/// `Idempotency-Key` layer.
pub fn api(state: AppState, groups: Groups, keys: idempotency::Keys) -> (Router, OpenApi) {
    let api = cart::router()
        .merge(catalog::router())
        .merge(sharing::router())
        .merge(login::router())
        .merge(coupons::router())
        .merge(orders::router())
        .merge(enrollments::router())
        .merge(seat_report::router())
        .merge(invoices::router())
        .merge(privacy::router())
        .route_layer(axum::middleware::from_fn_with_state(
            keys.clone(),
            idempotency::layer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            groups.api,
            rate_limit::limit,
        ));
    let admin = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(admin::put_internship))
        .routes(utoipa_axum::routes!(admin::put_fx_rate))
        .routes(utoipa_axum::routes!(admin::put_coupon))
        .routes(utoipa_axum::routes!(admin::refund_order))
        .routes(utoipa_axum::routes!(enrollments::support_cases))
        .routes(utoipa_axum::routes!(audit::audit_trail))
        .routes(utoipa_axum::routes!(analytics::analytics))
        .routes(utoipa_axum::routes!(privacy::erase_by_email))
        .route_layer(axum::middleware::from_fn_with_state(
            keys,
            idempotency::layer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            groups.admin,
            rate_limit::limit,
        ));
    let (router, mut doc) = OpenApiRouter::with_openapi(base_document())
        .merge(api)
        .merge(admin)
        // Outside the groups' rate limits: a bad token is refused (401) before
        // any handler, on every route, including routes added later.
        .route_layer(axum::middleware::from_fn(crate::auth::authenticate))
        // The gateways' webhooks carry no bearer token: their signature is
        // their authentication, checked by the handlers over the raw body.
        .merge(
            webhooks::router().route_layer(axum::middleware::from_fn_with_state(
                groups.webhooks,
                rate_limit::limit,
            )),
        )
        .split_for_parts();
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
    idempotency::document(&mut doc);
    // Last: what every layer in front of the handlers answers, on every
    // operation, including those added above.
    shared_responses::SharedResponses.modify(&mut doc);
    (router.with_state(state), doc)
}

fn base_document() -> OpenApi {
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("InternHub checkout API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Carts, pricing and checkout. Every non-2xx answer has the body \
                     {status, success: false, error: {code, message, validation_messages, correlation_id, retryable, suggested_action}}. \
                     Send X-Correlation-ID to follow a request through the pipeline. \
                     Send Idempotency-Key on a POST, PUT or DELETE to make retrying it safe: \
                     the first successful answer is kept for 24 h and replayed.",
                ))
                .build(),
        )
        .components(Some(ComponentsBuilder::new().build()))
        .build()
}
