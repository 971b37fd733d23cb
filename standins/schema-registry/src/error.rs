//! The one error type of the HTTP API and its mapping to Confluent's error
//! bodies: `{"error_code": 40401, "message": "..."}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::routes::SrJson;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Schema not found")]
    SchemaNotInSubject,
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotConfigured(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("{0}")]
    BadRequest(String),
    /// The detail is logged, never sent: it may hold SQL and connection facts.
    #[error("Error in the backend data store")]
    Store(#[source] sqlx::Error),
    /// A fault of ours that is not the database's; logged like `Store`.
    #[error("Error in the backend data store")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Store(e)
    }
}

impl ApiError {
    /// Confluent's error code; its first three digits are the HTTP status,
    /// except 409 and 400, which Confluent sends as they are.
    pub fn error_code(&self) -> u32 {
        match self {
            ApiError::SubjectNotFound(_) => 40401,
            ApiError::VersionNotFound(_) => 40402,
            ApiError::SchemaNotFound(_) | ApiError::SchemaNotInSubject => 40403,
            ApiError::SubjectSoftDeleted(_) => 40404,
            ApiError::SubjectNotSoftDeleted(_) => 40405,
            ApiError::VersionSoftDeleted(..) => 40406,
            ApiError::VersionNotSoftDeleted(..) => 40407,
            ApiError::SubjectLevelNotConfigured(_) => 40408,
            ApiError::Incompatible { .. } => 409,
            ApiError::InvalidSchema(_) => 42201,
            ApiError::InvalidVersion(_) => 42202,
            ApiError::InvalidCompatibilityLevel => 42203,
            ApiError::BadRequest(_) => 400,
            ApiError::Store(_) | ApiError::Internal(_) => 50001,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.error_code() {
            409 => StatusCode::CONFLICT,
            400 => StatusCode::BAD_REQUEST,
            code => StatusCode::from_u16((code / 100) as u16)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Store(e) => tracing::error!(error = %e, "store error"),
            ApiError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            _ => {}
        }
        SrJson(
            self.status(),
            json!({ "error_code": self.error_code(), "message": self.to_string() }),
        )
        .into_response()
    }
}
