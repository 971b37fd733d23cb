//! The answers of the shared layers, in the OpenAPI document. A handler's
//! annotation documents what the handler decides (404 cart not found, 409
//! not modifiable, ...); what the layers in front of it decide (a bad
//! token, the rate limit, a body that is not JSON, the timeout, a
//! dependency down) can be answered by every operation behind them, so it
//! is documented here, once, by walking the generated document: a route
//! added later gets these answers without anyone remembering them.
//! `ingress/tests/fuzz.rs` fuzzes the served document and fails on any
//! status an operation answers without documenting it.
//!
//! The scope of each answer follows the layers of [`super::api`] and
//! [`crate::Application::build`]: everything under `/api/v1/` is behind
//! authentication and a rate limit, and reads its JSON body with
//! [`crate::extract::ApiJson`]; the webhooks are behind neither and read
//! their body raw. The `Idempotency-Key` answers (409, 422 and 504 on
//! writes) are [`crate::idempotency`]'s.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::Modify;

/// Adds the shared layers' answers, each with the `ErrorBody` schema, to
/// every operation of the document they apply to.
pub struct SharedResponses;

/// Who can answer what, by where an operation sits and what it takes.
struct Scope {
    /// Under `/api/v1/`: authentication, rate limit, `ApiJson` bodies.
    api: bool,
    /// Under `/api/v1/admin/`: the admin role.
    admin: bool,
}

impl Modify for SharedResponses {
    fn modify(&self, doc: &mut OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let scope = Scope {
                api: path.starts_with("/api/v1/"),
                admin: path.starts_with("/api/v1/admin/"),
            };
            // Parameters declared once for every method of the path count
            // for each operation.
            let path_has_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.options,
                &mut item.head,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                add_to(operation, &scope, path_has_params);
            }
        }
    }
}

fn add_to(operation: &mut Operation, scope: &Scope, path_has_params: bool) {
    let has_body = operation.request_body.is_some();
    // Axum refuses a path or query parameter that does not parse (a number
    // out of range, bytes that are not UTF-8) with 400 before the handler.
    // Header parameters (`Idempotency-Key`) are checked by their own layer.
    let has_params = path_has_params
        || operation
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query));
    let responses = &mut operation.responses.responses;

    // The timeout, the error body's own 5xx, and a dependency (Kafka,
    // Postgres) that is down: any operation, whoever calls it.
    add_answer(
        responses,
        "408",
        "the request took longer than REQUEST_TIMEOUT_SECS",
    );
    add_answer(
        responses,
        "500",
        "internal error (logged; its details are not answered)",
    );
    add_answer(
        responses,
        "503",
        "a dependency (Kafka, Postgres) is unavailable: nothing was accepted; retry later",
    );
    if has_body {
        add_answer(responses, "413", "the body is larger than 64 KiB");
    }
    if !scope.api {
        return;
    }
    add_answer(
        responses,
        "401",
        "the bearer token is malformed, expired or badly signed (or missing where one is required)",
    );
    add_answer(
        responses,
        "429",
        "rate limited: retry after the seconds in Retry-After",
    );
    if scope.admin {
        add_answer(responses, "403", "the admin role is required");
    }
    if has_body {
        add_answer(responses, "400", "the body is not well-formed JSON");
        add_answer(
            responses,
            "415",
            "the body is not sent as Content-Type: application/json",
        );
        add_answer(
            responses,
            "422",
            "the body is invalid (an unknown field, a value out of range): see validation_messages",
        );
    }
    if has_params {
        add_answer(
            responses,
            "400",
            "a path or query parameter does not parse (a number out of range, bytes that are not UTF-8)",
        );
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", error_body())
            .build(),
    )
}

fn error_body() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
}

/// Documents `meaning` under `status` with the error body: beside what the
/// operation already says that status means (unless it says the same), and
/// with the `ErrorBody` schema if its own annotation gave none.
fn add_answer(
    responses: &mut std::collections::BTreeMap<String, RefOr<Response>>,
    status: &str,
    meaning: &str,
) {
    match responses.get_mut(status) {
        Some(RefOr::T(existing)) => {
            if !existing
                .description
                .to_lowercase()
                .contains(&meaning.to_lowercase())
            {
                existing.description.push_str("; or ");
                existing.description.push_str(meaning);
            }
            if existing.content.is_empty() {
                existing
                    .content
                    .insert("application/json".to_owned(), error_body());
            }
        }
        // A reference to a shared response: that one says what it means.
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(status.to_owned(), error_response(meaning));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::OpenApiBuilder;

    fn document() -> OpenApi {
        let op = |body: bool| {
            let mut b = OperationBuilder::new().response(
                "404",
                ResponseBuilder::new().description("cart not found").build(),
            );
            if body {
                b = b.request_body(Some(RequestBodyBuilder::new().build()));
            }
            b.build()
        };
        OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path("/api/v1/cart", PathItem::new(HttpMethod::Post, op(true)))
                    .path(
                        "/api/v1/new-route",
                        PathItem::new(HttpMethod::Get, op(false)),
                    )
                    .path("/api/v1/admin/x", PathItem::new(HttpMethod::Put, op(true)))
                    .path(
                        "/webhooks/stripe",
                        PathItem::new(HttpMethod::Post, op(true)),
                    ),
            )
            .build()
    }

    fn statuses(doc: &OpenApi, path: &str) -> Vec<String> {
        let item = &doc.paths.paths[path];
        let op = [&item.get, &item.post, &item.put]
            .into_iter()
            .flatten()
            .next()
            .unwrap();
        op.responses.responses.keys().cloned().collect()
    }

    #[test]
    fn every_operation_gets_the_answers_of_the_layers_in_front_of_it() {
        let mut doc = document();
        SharedResponses.modify(&mut doc);
        assert_eq!(
            statuses(&doc, "/api/v1/cart"),
            ["400", "401", "404", "408", "413", "415", "422", "429", "500", "503"]
        );
        assert_eq!(
            statuses(&doc, "/api/v1/new-route"),
            ["401", "404", "408", "429", "500", "503"]
        );
        assert!(statuses(&doc, "/api/v1/admin/x").contains(&"403".to_owned()));
        // No bearer token, no rate limit, no JSON parsing: only what the
        // outer layers answer (the handler documents its own 400).
        assert_eq!(
            statuses(&doc, "/webhooks/stripe"),
            ["404", "408", "413", "500", "503"]
        );
    }

    #[test]
    fn a_route_keeps_its_own_meaning_and_gets_the_error_body() {
        let mut doc = document();
        SharedResponses.modify(&mut doc);
        let RefOr::T(not_found) = &doc.paths.paths["/api/v1/cart"]
            .post
            .as_ref()
            .unwrap()
            .responses
            .responses["404"]
        else {
            panic!("an inline response");
        };
        assert_eq!(not_found.description, "cart not found");
        let RefOr::T(limited) = &doc.paths.paths["/api/v1/cart"]
            .post
            .as_ref()
            .unwrap()
            .responses
            .responses["429"]
        else {
            panic!("an inline response");
        };
        assert!(limited.content["application/json"].schema.is_some());
        // Applied twice, the descriptions do not grow.
        let once = serde_json::to_string(&doc).unwrap();
        SharedResponses.modify(&mut doc);
        assert_eq!(once, serde_json::to_string(&doc).unwrap());
    }
}
