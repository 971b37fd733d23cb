//! The `Idempotency-Key` in the OpenAPI document. The middleware stands in
//! front of every `POST`, `PUT` and `DELETE`, so the document gets the
//! header, the replay marker and the 409/422 answers on every such
//! operation here, in one place, rather than in each handler's annotation
//! (where a new route could forget them).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};

/// Adds the header and its answers to every write under `/api/v1`.
pub fn document(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for operation in [&mut item.post, &mut item.put, &mut item.delete]
            .into_iter()
            .flatten()
        {
            add_to(operation);
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Documents `meaning` under `status`, beside what the operation already
/// says that status means.
fn add_answer(
    responses: &mut std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>>,
    status: &str,
    meaning: &str,
) {
    match responses.get_mut(status) {
        Some(RefOr::T(existing)) => {
            existing.description.push_str("; or ");
            existing.description.push_str(meaning);
        }
        _ => {
            responses.insert(status.to_owned(), error_response(meaning));
        }
    }
}

fn add_to(operation: &mut Operation) {
    let key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1-255 visible ASCII characters, e.g. a UUIDv4. A repeat of the same request \
             (method, path, body) with the same key within 24 h gets the first successful \
             answer again, with `Idempotent-Replayed: true`, and writes nothing; a retry after \
             a 5xx writes the very same command ids, applied at most once. Keys are per caller \
             (a user; all guests share one key space, so a guest's key must be unguessable).",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(key);

    let replayed = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        ))
        .build();
    let responses = &mut operation.responses.responses;
    let mut writes = false;
    for (status, response) in responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
            response
                .headers
                .insert("Idempotent-Replayed".to_owned(), replayed.clone());
        }
        // 201 and 202 answer that the broker accepted a record.
        writes |= status == "201" || status == "202";
    }
    add_answer(
        responses,
        "409",
        "a request with the same Idempotency-Key is still running (retryable, see Retry-After)",
    );
    add_answer(
        responses,
        "422",
        "the Idempotency-Key is malformed or was used for a different request",
    );
    if writes {
        responses.insert(
            "504".to_owned(),
            error_response(
                "the broker did not confirm the command in time: it may or may not have been \
                 accepted (`command_id` names it); retry with the same Idempotency-Key",
            ),
        );
    }
}
