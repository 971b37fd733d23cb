//! The buyer's side: a hosted page per session (`GET /checkout/{id}`, for
//! a Razorpay order or a Stripe session) with buttons to pay by card or
//! UPI, fail, or leave it pending, posting to `/checkout/{id}/pay|fail`;
//! and the same actions as a JSON API for tests and benchmarks
//! (`POST /sim/sessions/{id}/pay {"method":"card"}`, `…/fail`,
//! `…/expire`), plus `POST /sim/faults {"status":503,"count":2}` (or
//! `{"hang":true,"method":"POST"}`), which makes the next provider API
//! calls fail so.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use schemas::{Currency, Money};

use super::faults::Fault;
use super::{razorpay, stripe, App};
use gateways::razorpay::transformers::OrderStatus;
use gateways::stripe::transformers::SessionStatus;
use gateways::Gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayMethod {
    Card,
    Upi,
}

impl PayMethod {
    fn parse(raw: Option<&str>) -> Result<PayMethod, SimError> {
        match raw {
            None | Some("card") => Ok(PayMethod::Card),
            Some("upi") => Ok(PayMethod::Upi),
            Some(other) => Err(SimError::Invalid(format!("method {other:?}: card or upi"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::Card => "card",
            PayMethod::Upi => "upi",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SimError {
    NotFound(String),
    Conflict(String),
    Invalid(String),
}

impl SimError {
    fn status(&self) -> StatusCode {
        match self {
            SimError::NotFound(_) => StatusCode::NOT_FOUND,
            SimError::Conflict(_) => StatusCode::CONFLICT,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> &str {
        match self {
            SimError::NotFound(m) | SimError::Conflict(m) | SimError::Invalid(m) => m,
        }
    }
}

/// What an action did, for the page and the JSON API alike.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Done {
    pub provider: Gateway,
    pub status: &'static str,
    /// The fields the provider's checkout hands the browser.
    pub fields: Vec<(&'static str, String)>,
    /// Where the buyer goes next (Stripe's `success_url`).
    pub redirect: Option<String>,
}

impl Done {
    fn json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("provider".into(), self.provider.as_str().into());
        out.insert("status".into(), self.status.into());
        for (k, v) in &self.fields {
            out.insert((*k).into(), v.clone().into());
        }
        if let Some(r) = &self.redirect {
            out.insert("redirect_url".into(), r.clone().into());
        }
        out.into()
    }
}

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/checkout/{id}", get(page))
        .route("/checkout/{id}/pay", post(page_pay))
        .route("/checkout/{id}/fail", post(page_fail))
        .route("/sim/sessions/{id}/pay", post(api_pay))
        .route("/sim/sessions/{id}/fail", post(api_fail))
        .route("/sim/sessions/{id}/expire", post(api_expire))
        .route("/sim/faults", post(force_faults))
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Pay,
    Fail,
}

/// Ids say whose they are: `order_…` is Razorpay's, `cs_…` Stripe's.
fn provider_of(id: &str) -> Result<Gateway, SimError> {
    if id.starts_with("order_") {
        Ok(Gateway::Razorpay)
    } else if id.starts_with("cs_") {
        Ok(Gateway::Stripe)
    } else {
        Err(SimError::NotFound(format!("no session {id}")))
    }
}

async fn act(
    app: &App,
    id: &str,
    action: Action,
    method: Result<PayMethod, SimError>,
) -> Result<Done, SimError> {
    let method = method?;
    match (provider_of(id)?, action) {
        (Gateway::Razorpay, Action::Pay) => razorpay::pay(app, id, method).await,
        (Gateway::Razorpay, Action::Fail) => razorpay::fail(app, id, method).await,
        (Gateway::Stripe, Action::Pay) => stripe::pay(app, id, method).await,
        (Gateway::Stripe, Action::Fail) => stripe::fail(app, id, method).await,
    }
}

// ---------------------------------------------------------------------------
// JSON API
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PayBody {
    method: Option<String>,
}

fn api_answer(result: Result<Done, SimError>) -> Response {
    match result {
        Ok(done) => Json(done.json()).into_response(),
        Err(e) => (e.status(), Json(serde_json::json!({"error": e.message()}))).into_response(),
    }
}

/// The method of an optional JSON body.
fn method_of_json(body: &[u8]) -> Result<PayMethod, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PayMethod::Card);
    }
    let parsed: PayBody =
        serde_json::from_slice(body).map_err(|e| SimError::Invalid(format!("body: {e}")))?;
    PayMethod::parse(parsed.method.as_deref())
}

async fn api_pay(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    api_answer(act(&app, &id, Action::Pay, method_of_json(&body)).await)
}

async fn api_fail(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    api_answer(act(&app, &id, Action::Fail, method_of_json(&body)).await)
}

async fn api_expire(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    api_answer(match provider_of(&id) {
        Ok(Gateway::Stripe) => stripe::expire(&app, &id).await,
        Ok(Gateway::Razorpay) => Err(SimError::Invalid("Razorpay orders do not expire".into())),
        Err(e) => Err(e),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    status: Option<u16>,
    #[serde(default)]
    hang: bool,
    #[serde(default = "one")]
    count: usize,
    /// Only calls with this method (`GET`, `POST`); any by default.
    method: Option<String>,
}

fn one() -> usize {
    1
}

/// `POST /sim/faults`: the next `count` provider API calls (with `method`,
/// if given) answer `status` (`{"status":503}`), or are done and then hang
/// (`{"hang":true,"method":"POST"}`).
async fn force_faults(State(app): State<Arc<App>>, Json(faults): Json<Faults>) -> Response {
    let fault = match (faults.status, faults.hang) {
        (Some(status), false) if (400..=599).contains(&status) => Fault::Status(status),
        (None, true) => Fault::Hang,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": "either status (400-599) or hang: true"})),
            )
                .into_response()
        }
    };
    if faults.count > 1000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "count at most 1000"})),
        )
            .into_response();
    }
    app.store()
        .forced
        .extend(std::iter::repeat_n((fault, faults.method), faults.count));
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------
// Hosted page
// ---------------------------------------------------------------------------

/// What the page shows of a session.
struct View {
    provider: Gateway,
    amount: String,
    status: String,
    payable: bool,
    lines: Vec<String>,
    cancel_url: Option<String>,
}

fn view(app: &App, id: &str) -> Result<View, SimError> {
    let store = app.store();
    let shown = |minor: i64, code: &str| match Currency::parse(code) {
        Ok(c) => Money::from_minor(minor, c).to_string(),
        Err(_) => format!("{minor} {code} (minor units)"),
    };
    match provider_of(id)? {
        Gateway::Razorpay => {
            let o = store
                .orders
                .get(id)
                .ok_or_else(|| SimError::NotFound(format!("no order {id}")))?;
            Ok(View {
                provider: Gateway::Razorpay,
                amount: shown(o.amount, &o.currency),
                status: format!("{:?}", o.status).to_lowercase(),
                payable: match o.status {
                    OrderStatus::Created | OrderStatus::Attempted => true,
                    OrderStatus::Paid => false,
                },
                lines: o.receipt.iter().map(|r| format!("receipt {r}")).collect(),
                cancel_url: None,
            })
        }
        Gateway::Stripe => {
            let s = store
                .sessions
                .get(id)
                .ok_or_else(|| SimError::NotFound(format!("no session {id}")))?;
            let currency = s
                .session
                .currency
                .clone()
                .unwrap_or_default()
                .to_uppercase();
            Ok(View {
                provider: Gateway::Stripe,
                amount: shown(s.session.amount_total.unwrap_or_default(), &currency),
                status: format!(
                    "{} / {}",
                    s.session
                        .status
                        .map_or("unknown".to_owned(), |st| format!("{st:?}").to_lowercase()),
                    format!("{:?}", s.session.payment_status).to_lowercase()
                ),
                payable: s.session.status == Some(SessionStatus::Open),
                lines: s
                    .lines
                    .iter()
                    .map(|l| {
                        format!(
                            "{} × {} at {}",
                            l.quantity,
                            l.name,
                            shown(l.unit_amount, &currency)
                        )
                    })
                    .collect(),
                cancel_url: s.session.cancel_url.clone(),
            })
        }
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         form{{display:inline-block;margin:0 .5em .5em 0}}button{{font-size:1.1em}}</style>\
         </head><body>\n<h1>{}</h1>\n{body}\n</body></html>\n",
        escape(title),
        escape(title)
    );
    (status, Html(page)).into_response()
}

fn page_error(e: SimError) -> Response {
    html(
        e.status(),
        "Gateway simulator",
        &format!("<p>{}</p>", escape(e.message())),
    )
}

async fn page(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let v = match view(&app, &id) {
        Ok(v) => v,
        Err(e) => return page_error(e),
    };
    let base = format!("{}/checkout/{}", app.public_url, escape(&id));
    let mut body = format!(
        "<p>Simulated {} checkout for <code>{}</code></p>\n<p><strong>{}</strong> — {}</p>\n",
        v.provider,
        escape(&id),
        escape(&v.amount),
        escape(&v.status)
    );
    if !v.lines.is_empty() {
        body.push_str("<ul>");
        for l in &v.lines {
            body.push_str(&format!("<li>{}</li>", escape(l)));
        }
        body.push_str("</ul>\n");
    }
    if v.payable {
        let methods: &[PayMethod] = match v.provider {
            Gateway::Razorpay => &[PayMethod::Card, PayMethod::Upi],
            Gateway::Stripe => &[PayMethod::Card],
        };
        for m in methods {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{base}/pay\"><input type=\"hidden\" name=\"method\" value=\"{0}\"><button type=\"submit\">Pay ({0})</button></form>\n",
                m.as_str()
            ));
        }
        body.push_str(&format!(
            "<form method=\"post\" action=\"{base}/fail\"><button type=\"submit\">Fail the payment</button></form>\n"
        ));
        let leave = v
            .cancel_url
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| base.clone());
        body.push_str(&format!(
            "<p><a href=\"{leave}\">Leave it pending</a> (nothing is sent)</p>\n"
        ));
    }
    html(StatusCode::OK, "Gateway simulator", &body)
}

fn page_result(result: Result<Done, SimError>) -> Response {
    let done = match result {
        Ok(d) => d,
        Err(e) => return page_error(e),
    };
    let mut body = format!("<p>Payment {}.</p>\n<dl>", escape(done.status));
    for (k, v) in &done.fields {
        body.push_str(&format!(
            "<dt>{}</dt><dd><code>{}</code></dd>",
            escape(k),
            escape(v)
        ));
    }
    body.push_str("</dl>\n");
    if let Some(url) = &done.redirect {
        body.push_str(&format!(
            "<p><a href=\"{}\">Return to the shop</a></p>\n",
            escape(url)
        ));
    }
    html(StatusCode::OK, "Gateway simulator", &body)
}

/// The method of the page's form body (`method=card`).
fn method_of_form(body: &[u8]) -> Result<PayMethod, SimError> {
    let method = form_urlencoded::parse(body)
        .find(|(k, _)| k == "method")
        .map(|(_, v)| v.into_owned());
    PayMethod::parse(method.as_deref())
}

async fn page_pay(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    page_result(act(&app, &id, Action::Pay, method_of_form(&body)).await)
}

async fn page_fail(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    page_result(act(&app, &id, Action::Fail, method_of_form(&body)).await)
}
