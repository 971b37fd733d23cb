//! The HTTP API: Confluent's REST paths and bodies, plus the ops endpoints
//! (`/healthz`, `/readyz`, `/metrics`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::avro::{self, CompatibilityLevel, ParsedSchema, Reference, AVRO};
use crate::error::ApiError;
use crate::store::{Store, StoredSchema, SubjectVersion, VersionSpec};
use crate::telemetry::{self, Metrics};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// A JSON body with Confluent's content type.
pub struct SrJson<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for SrJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.1) {
            Ok(body) => (
                self.0,
                [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
                body,
            )
                .into_response(),
            Err(e) => {
                ApiError::Internal(format!("cannot serialise a response: {e}")).into_response()
            }
        }
    }
}

fn ok<T: Serialize>(body: T) -> Result<SrJson<T>, ApiError> {
    Ok(SrJson(StatusCode::OK, body))
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/", get(|| async { SrJson(StatusCode::OK, json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { SrJson(StatusCode::OK, [AVRO]) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/guids/{guid}", get(schema_by_guid))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::map_response(confluent_errors));
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    api.merge(ops)
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            telemetry::track,
        ))
        .with_state(state)
}

/// Gives every error the API answers, including axum's own (unknown route,
/// wrong method, unreadable path), Confluent's JSON error shape.
async fn confluent_errors(response: Response) -> Response {
    let status = response.status();
    let already = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE.as_bytes());
    if already || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut fresh = SrJson(
        status,
        json!({ "error_code": status.as_u16(), "message": message }),
    )
    .into_response();
    // Keep headers such as `Allow` on a 405.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

type Params = Query<HashMap<String, String>>;

/// Confluent's clients send booleans as `true`, `True`, `false`...
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Bodies are read whatever their content type: Confluent's clients send
/// `application/vnd.schemaregistry.v1+json`, others plain JSON or even
/// `application/octet-stream`.
fn decode<T: DeserializeOwned>(
    body: &Bytes,
    data_error: impl FnOnce(String) -> ApiError,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            data_error(e.to_string())
        } else {
            ApiError::BadRequest(format!("Unrecognized JSON in the request body: {e}"))
        }
    })
}

#[derive(Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    references: Option<Vec<ReferenceRequest>>,
}

/// Extra fields (`properties`, `tags`, all null from some clients) are ignored.
#[derive(Deserialize)]
struct ReferenceRequest {
    name: String,
    subject: String,
    version: i64,
}

async fn parse_schema_request(store: &Store, body: &Bytes) -> Result<ParsedSchema, ApiError> {
    let request: SchemaRequest = decode(body, ApiError::InvalidSchema)?;
    let references = request
        .references
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let version = i32::try_from(r.version)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    ApiError::InvalidSchema(format!(
                        "reference '{}' has invalid version {}",
                        r.name, r.version
                    ))
                })?;
            Ok(Reference {
                name: r.name,
                subject: r.subject,
                version,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let referenced = if references.is_empty() {
        Vec::new()
    } else {
        store.referenced_texts(&references).await?
    };
    avro::parse(
        request.schema_type.as_deref(),
        request.schema.as_deref().unwrap_or_default(),
        references,
        &referenced,
    )
}

/// A schema as Confluent returns it: `schemaType` only when not AVRO,
/// `references` only when there are some.
#[derive(Serialize)]
struct SchemaBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i32>,
    guid: &'a str,
    #[serde(rename = "schemaType", skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    references: &'a [Reference],
    schema: &'a str,
}

impl<'a> SchemaBody<'a> {
    fn of_schema(s: &'a StoredSchema) -> SchemaBody<'a> {
        SchemaBody {
            subject: None,
            version: None,
            id: None,
            guid: &s.guid,
            schema_type: (s.schema_type != AVRO).then_some(s.schema_type.as_str()),
            references: &s.references,
            schema: &s.text,
        }
    }

    fn of_version(v: &'a SubjectVersion) -> SchemaBody<'a> {
        SchemaBody {
            subject: Some(&v.subject),
            version: Some(v.version),
            id: Some(v.schema.id),
            ..SchemaBody::of_schema(&v.schema)
        }
    }
}

fn parse_id(id: &str) -> Result<i32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::SchemaNotFound(id.to_owned()))
}

async fn find_schema(store: &Store, id: &str) -> Result<StoredSchema, ApiError> {
    store
        .schema_by_id(parse_id(id)?)
        .await?
        .ok_or_else(|| ApiError::SchemaNotFound(id.to_owned()))
}

// Soft-deleted schemas are served by id whatever `deleted` says: consumers
// must still decode records written before the delete.
async fn schema_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let schema = find_schema(&app.store, &id).await?;
    Ok(SrJson(StatusCode::OK, SchemaBody::of_schema(&schema)).into_response())
}

async fn raw_schema_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let schema = find_schema(&app.store, &id).await?;
    Ok(raw(schema.text))
}

async fn schema_by_guid(
    State(app): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Response, ApiError> {
    let schema = app
        .store
        .schema_by_guid(&guid)
        .await?
        .ok_or_else(|| ApiError::SchemaNotFound(guid.clone()))?;
    Ok(SrJson(StatusCode::OK, SchemaBody::of_schema(&schema)).into_response())
}

async fn subjects_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<SrJson<Vec<String>>, ApiError> {
    let schema = find_schema(&app.store, &id).await?;
    let mut subjects: Vec<String> = app
        .store
        .usages(schema.id, flag(&params, "deleted"))
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(subjects)
}

async fn versions_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let schema = find_schema(&app.store, &id).await?;
    let usages = app
        .store
        .usages(schema.id, flag(&params, "deleted"))
        .await?;
    ok(usages
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect())
}

async fn subjects(
    State(app): State<AppState>,
    Query(params): Params,
) -> Result<SrJson<Vec<String>>, ApiError> {
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .unwrap_or_default();
    let subjects = app
        .store
        .subjects(
            flag(&params, "deleted"),
            flag(&params, "deleted_only"),
            prefix,
        )
        .await?;
    ok(paginate(subjects, &params))
}

/// Confluent's `offset`/`limit` query parameters; a negative limit is none.
fn paginate<T>(items: Vec<T>, params: &HashMap<String, String>) -> Vec<T> {
    let offset = params
        .get("offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|l| *l >= 0)
        .map(|l| l as usize)
        .unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

async fn lookup(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let parsed = parse_schema_request(&app.store, &body).await?;
    let found = app
        .store
        .lookup(&subject, &parsed, flag(&params, "deleted"))
        .await?;
    Ok(SrJson(StatusCode::OK, SchemaBody::of_version(&found)).into_response())
}

async fn delete_subject(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<SrJson<Vec<i32>>, ApiError> {
    let versions = app
        .store
        .delete_subject(&subject, flag(&params, "permanent"))
        .await?;
    tracing::info!(subject = %subject, ?versions, permanent = flag(&params, "permanent"), "deleted subject");
    ok(versions)
}

async fn versions(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<SrJson<Vec<i32>>, ApiError> {
    let versions = app
        .store
        .versions(
            &subject,
            flag(&params, "deleted"),
            flag(&params, "deleted_only"),
        )
        .await?;
    ok(paginate(versions, &params))
}

async fn register(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let parsed = parse_schema_request(&app.store, &body).await?;
    let registered = app.store.register(&subject, &parsed).await?;
    if registered.created {
        app.metrics.schemas_registered.inc();
        tracing::info!(subject = %subject, id = registered.id, "registered schema");
    }
    ok(json!({ "id": registered.id, "guid": registered.guid }))
}

async fn version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    let found = app
        .store
        .version(&subject, spec, flag(&params, "deleted"))
        .await?;
    Ok(SrJson(StatusCode::OK, SchemaBody::of_version(&found)).into_response())
}

async fn raw_version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    let found = app
        .store
        .version(&subject, spec, flag(&params, "deleted"))
        .await?;
    Ok(raw(found.schema.text))
}

async fn delete_version(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Result<SrJson<i32>, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    let permanent = flag(&params, "permanent");
    let deleted = app.store.delete_version(&subject, spec, permanent).await?;
    tracing::info!(subject = %subject, version = deleted, permanent, "deleted version");
    ok(deleted)
}

async fn referenced_by(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<SrJson<Vec<i32>>, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    let found = app.store.version(&subject, spec, false).await?;
    ok(app
        .store
        .referenced_by(&found.subject, found.version)
        .await?)
}

async fn compatibility(
    State(app): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    check_compatibility(&app, &subject, Some(spec), &params, &body).await
}

async fn compatibility_all(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    check_compatibility(&app, &subject, None, &params, &body).await
}

async fn check_compatibility(
    app: &AppState,
    subject: &str,
    against: Option<VersionSpec>,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let parsed = parse_schema_request(&app.store, body).await?;
    let messages = app.store.compatibility(subject, against, &parsed).await?;
    let mut answer = json!({ "is_compatible": messages.is_empty() });
    if flag(params, "verbose") {
        answer["messages"] = json!(messages);
    }
    ok(answer)
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    /// Some clients send the name the GET answer uses.
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn requested_level(body: &Bytes) -> Result<CompatibilityLevel, ApiError> {
    let request: ConfigRequest = decode(body, |_| ApiError::InvalidCompatibilityLevel)?;
    request
        .compatibility
        .or(request.compatibility_level)
        .and_then(|l| CompatibilityLevel::parse(&l))
        .ok_or(ApiError::InvalidCompatibilityLevel)
}

fn level_body(level: CompatibilityLevel) -> serde_json::Value {
    json!({ "compatibilityLevel": level.as_str() })
}

async fn get_global_config(
    State(app): State<AppState>,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    ok(level_body(app.store.global_level().await?))
}

// PUT answers with the request (`{"compatibility": ...}`), as Confluent does.
async fn put_global_config(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let level = requested_level(&body)?;
    app.store.set_global_level(level).await?;
    ok(json!({ "compatibility": level.as_str() }))
}

async fn delete_global_config(
    State(app): State<AppState>,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let previous = app.store.global_level().await?;
    app.store
        .set_global_level(CompatibilityLevel::DEFAULT)
        .await?;
    ok(level_body(previous))
}

async fn get_subject_config(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let level = match app.store.subject_level(&subject).await? {
        Some(level) => level,
        None if flag(&params, "defaultToGlobal") => app.store.global_level().await?,
        None => return Err(ApiError::SubjectLevelNotConfigured(subject)),
    };
    ok(level_body(level))
}

async fn put_subject_config(
    State(app): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let level = requested_level(&body)?;
    app.store.set_subject_level(&subject, level).await?;
    ok(json!({ "compatibility": level.as_str() }))
}

// Confluent answers 40401 when the subject has no level of its own.
async fn delete_subject_config(
    State(app): State<AppState>,
    Path(subject): Path<String>,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    match app.store.delete_subject_level(&subject).await? {
        Some(previous) => ok(level_body(previous)),
        None => Err(ApiError::SubjectNotFound(subject)),
    }
}

/// A schema's own text as the body, as `.../schema` endpoints answer.
fn raw(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: Postgres does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
        Err(_) => {
            tracing::warn!("not ready: Postgres did not answer within 2 s");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus::TEXT_FORMAT),
        )],
        app.metrics.render(),
    )
        .into_response()
}
