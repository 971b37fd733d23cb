//! An order's GST paperwork, for its buyer (a guest by the order's token)
//! and admins, as the invoices sink wrote it:
//!
//! - `GET /api/v1/orders/{order_token}/invoices`: the order's documents
//!   (its tax invoice once paid, its credit note once refunded), each in
//!   full, with the link to its PDF;
//! - `GET /api/v1/orders/{order_token}/invoices/{kind}`: one of them as
//!   PDF (`tax-invoice` or `credit-note`), drawn by [`crate::invoice_pdf`].
//!
//! The buyer's GSTIN is stored sealed and opened here for its owner.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use schemas::codes::ErrorCode;
use schemas::records::invoices::{DocumentKind, InvoiceDocument};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list_invoices))
        .routes(routes!(invoice_pdf))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderDocuments {
    pub order_token: String,
    /// Oldest first: the tax invoice, then its credit note if any.
    pub documents: Vec<DocumentView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    /// `INV/26-27/000001`.
    pub number: String,
    /// `tax_invoice` or `credit_note`.
    pub kind: String,
    pub issued_at: chrono::DateTime<chrono::Utc>,
    /// A credit note's invoice.
    pub against_number: Option<String>,
    /// Where its PDF is.
    pub pdf: String,
    /// The document as on `invoice.documents` (see docs/topics.md), the
    /// buyer's GSTIN opened.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

fn kind_path(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::TaxInvoice => "tax-invoice",
        DocumentKind::CreditNote => "credit-note",
    }
}

/// The order's documents as stored (the GSTIN still sealed).
async fn documents(state: &AppState, token: &str) -> Result<Vec<InvoiceDocument>, ApiError> {
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT document FROM invoices WHERE order_token = $1 ORDER BY issued_at, kind DESC",
    )
    .bind(token)
    .fetch_all(&state.pool)
    .await?;
    rows.into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("a stored invoice does not read: {e}"))
            })
        })
        .collect()
}

/// The buyer's GSTIN in clear, for the buyer (none once erased).
async fn opened_gstin(state: &AppState, doc: &InvoiceDocument) -> Result<Option<String>, ApiError> {
    let mut gstin = doc.buyer.gstin.clone();
    crate::personal::open_field(&state.vault, &mut gstin).await?;
    Ok(gstin)
}

/// The order's tax invoice and credit note, for its buyer and admins.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{order_token}/invoices",
    tag = "orders",
    params(("order_token" = String, Path, description = "the order token")),
    responses(
        (status = 200, description = "the order's documents (none before it is paid)", body = OrderDocuments),
        (status = 404, description = "no such order (or not the caller's) (3003)", body = ErrorBody),
        (status = 422, description = "a malformed order token", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn list_invoices(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token = super::orders::readable(&state, &caller, &token).await?;
    let mut out = Vec::new();
    for mut doc in documents(&state, token.as_str()).await? {
        doc.buyer.gstin = opened_gstin(&state, &doc).await?;
        out.push(DocumentView {
            number: doc.number.clone(),
            kind: doc.kind.as_str().to_owned(),
            issued_at: chrono::DateTime::from_timestamp_millis(doc.issued_at).unwrap_or_default(),
            against_number: doc.against_number.clone(),
            pdf: format!(
                "/api/v1/orders/{}/invoices/{}",
                token.as_str(),
                kind_path(doc.kind)
            ),
            document: serde_json::to_value(&doc).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("an invoice does not write: {e}"))
            })?,
        });
    }
    // The buyer's GSTIN is in it, opened: no shared cache keeps it.
    Ok((
        [(header::CACHE_CONTROL, "private, no-store")],
        Json(OrderDocuments {
            order_token: token.as_str().to_owned(),
            documents: out,
        }),
    )
        .into_response())
}

/// One of the order's documents as PDF: `tax-invoice` or `credit-note`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{order_token}/invoices/{kind}",
    tag = "orders",
    params(
        ("order_token" = String, Path, description = "the order token"),
        ("kind" = String, Path, description = "`tax-invoice` or `credit-note`"),
    ),
    responses(
        (status = 200, description = "the document as PDF (application/pdf)", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "no such order (3003), or no such document yet (3004)", body = ErrorBody),
        (status = 422, description = "a malformed order token or kind", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    )
)]
pub async fn invoice_pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path((token, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = match kind.as_str() {
        "tax-invoice" => DocumentKind::TaxInvoice,
        "credit-note" => DocumentKind::CreditNote,
        other => {
            return Err(ApiError::Validation(vec![format!(
                "kind: tax-invoice or credit-note, not {other:?}"
            )]))
        }
    };
    let token = super::orders::readable(&state, &caller, &token).await?;
    let doc = documents(&state, token.as_str())
        .await?
        .into_iter()
        .find(|d| d.kind == kind)
        .ok_or_else(|| {
            ApiError::Domain(
                ErrorCode::DocumentNotIssued,
                format!("the order has no {} yet", kind_path(kind).replace('-', " ")),
            )
        })?;
    let gstin = opened_gstin(&state, &doc).await?;
    let pdf = crate::invoice_pdf::render(&doc, gstin.as_deref());
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}.pdf\"",
                    doc.number.replace('/', "-")
                ),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        pdf,
    )
        .into_response())
}
