//! Stripe's API as the simulator answers it: `Authorization: Bearer` with
//! the configured secret key, form-encoded bodies with nested keys (an
//! unknown parameter is refused, as Stripe refuses it), Checkout Sessions
//! (create, fetch, expire) and refunds, Stripe's error body
//! (`{"error":{"type":"invalid_request_error","message",…}}`), and
//! `Idempotency-Key`: the same key with the same parameters replays the
//! first answer (`Idempotent-Replayed: true`), with other parameters it is
//! a 400 `idempotency_error`; failed validations are not saved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::Value;

use schemas::Currency;

use super::checkout::{Done, PayMethod, SimError};
use super::webhooks::Outgoing;
use super::{new_id, now, App, Store};
use gateways::stripe::transformers::{
    Charge, CheckoutSession, ErrorBody, ErrorDetail, Event, EventData, EventKind, EventRequest,
    PaymentError, PaymentIntent, PaymentIntentStatus, RefundObject, RefundState,
    SessionPaymentStatus, SessionStatus, MAX_METADATA_KEY, MAX_METADATA_KEYS, MAX_METADATA_VALUE,
};
use gateways::Gateway;

/// A session and what Stripe keeps beside it.
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub session: CheckoutSession,
    pub lines: Vec<SessionLine>,
    /// `payment_intent_data[metadata]`: given to the payment intent.
    pub intent_metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionLine {
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i64,
}

/// The first answer to an idempotency key, and what it was for.
#[derive(Debug, Clone)]
pub(crate) struct SavedAnswer {
    route: &'static str,
    params: Vec<(String, String)>,
    body: Vec<u8>,
}

pub(crate) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/v1/checkout/sessions", post(create_session))
        .route("/v1/checkout/sessions/{id}", get(get_session))
        .route("/v1/checkout/sessions/{id}/expire", post(expire_session))
        .route("/v1/refunds", post(create_refund))
        .route_layer(middleware::from_fn_with_state(app, auth))
}

/// An answer in Stripe's error shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub code: Option<&'static str>,
    pub param: Option<String>,
}

impl StError {
    fn invalid(message: impl Into<String>, param: Option<&str>) -> StError {
        StError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            code: None,
            param: param.map(str::to_owned),
        }
    }

    fn missing(param: &str) -> StError {
        StError {
            code: Some("parameter_missing"),
            ..StError::invalid(format!("Missing required param: {param}."), Some(param))
        }
    }

    fn unknown(param: &str) -> StError {
        StError {
            code: Some("parameter_unknown"),
            ..StError::invalid(format!("Received unknown parameter: {param}"), Some(param))
        }
    }

    fn integer(value: &str, param: &str) -> StError {
        StError::invalid(format!("Invalid integer: {value}"), Some(param))
    }

    fn not_found(object: &str, id: &str) -> StError {
        StError {
            status: StatusCode::NOT_FOUND,
            code: Some("resource_missing"),
            ..StError::invalid(format!("No such {object}: '{id}'"), Some("id"))
        }
    }
}

impl IntoResponse for StError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.into(),
                message: self.message,
                code: self.code.map(str::to_owned),
                param: self.param,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// `Authorization: Bearer <secret key>`, or Basic with the key as the user
/// name (`curl -u sk_test_…:`), as Stripe takes either.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let given = if let Some(key) = header.strip_prefix("Bearer ") {
        Some(key.trim().to_owned())
    } else if let Some(basic) = header.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .map(|user_pass| user_pass.split(':').next().unwrap_or_default().to_owned())
    } else {
        None
    };
    let refusal = match given.as_deref() {
        None => "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY')."
            .to_owned(),
        Some(key) if key == app.config.stripe.secret_key => return next.run(req).await,
        Some(key) => format!("Invalid API Key provided: {}", mask(key)),
    };
    StError {
        status: StatusCode::UNAUTHORIZED,
        ..StError::invalid(refusal, None)
    }
    .into_response()
}

/// `sk_test_****1234`, as Stripe echoes a wrong key.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "****".into();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A form body as pairs, in order.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `a[b][c]` → `["a", "b", "c"]`; `None` when the brackets do not close.
fn segments(key: &str) -> Option<Vec<&str>> {
    let Some(open) = key.find('[') else {
        return Some(vec![key]);
    };
    let mut out = vec![&key[..open]];
    let mut rest = &key[open..];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        out.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    Some(out)
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The parameters of `POST /v1/checkout/sessions` the simulator knows.
fn known_session_param(segs: &[&str]) -> bool {
    match segs {
        ["mode"
        | "success_url"
        | "cancel_url"
        | "client_reference_id"
        | "customer_email"
        | "expires_at"
        | "locale"
        | "submit_type"] => true,
        ["metadata", key] | ["payment_intent_data", "metadata", key] => !key.is_empty(),
        ["payment_intent_data", "description"] => true,
        ["payment_method_types", i] => is_index(i),
        ["line_items", i, "quantity"] => is_index(i),
        ["line_items", i, "price_data", "currency" | "unit_amount"] => is_index(i),
        ["line_items", i, "price_data", "product_data", "name" | "description"] => is_index(i),
        _ => false,
    }
}

fn known_refund_param(segs: &[&str]) -> bool {
    match segs {
        ["payment_intent" | "charge" | "amount" | "reason"] => true,
        ["metadata", key] => !key.is_empty(),
        _ => false,
    }
}

/// The pairs as a map, refusing a parameter `known` does not accept.
fn params(
    pairs: &[(String, String)],
    known: fn(&[&str]) -> bool,
) -> Result<BTreeMap<&str, &str>, StError> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !segments(k).is_some_and(|s| known(&s)) {
            return Err(StError::unknown(k));
        }
        out.insert(k.as_str(), v.as_str());
    }
    Ok(out)
}

/// The entries of `prefix[…]` (one level), checked against Stripe's limits.
fn metadata(
    params: &BTreeMap<&str, &str>,
    prefix: &str,
) -> Result<BTreeMap<String, String>, StError> {
    let mut out = BTreeMap::new();
    for (k, v) in params {
        let Some(key) = k
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'))
        else {
            continue;
        };
        if key.chars().count() > MAX_METADATA_KEY {
            return Err(StError::invalid(
                format!("Metadata keys can have up to {MAX_METADATA_KEY} characters, but you passed in a key that is {} characters.", key.chars().count()),
                Some(k),
            ));
        }
        if v.chars().count() > MAX_METADATA_VALUE {
            return Err(StError::invalid(
                format!("Metadata values can have up to {MAX_METADATA_VALUE} characters, but you passed in a value that is {} characters.", v.chars().count()),
                Some(k),
            ));
        }
        out.insert(key.to_owned(), (*v).to_owned());
    }
    if out.len() > MAX_METADATA_KEYS {
        return Err(StError::invalid(
            format!("You can specify up to {MAX_METADATA_KEYS} keys in metadata."),
            Some(prefix),
        ));
    }
    Ok(out)
}

fn integer(params: &BTreeMap<&str, &str>, param: &str) -> Result<Option<i64>, StError> {
    params
        .get(param)
        .map(|v| v.parse::<i64>().map_err(|_| StError::integer(v, param)))
        .transpose()
}

/// A session to create, once its parameters held.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewSession {
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub expires_at: i64,
    pub metadata: BTreeMap<String, String>,
    pub intent_metadata: BTreeMap<String, String>,
    pub currency: Currency,
    pub amount_total: i64,
    pub lines: Vec<SessionLine>,
}

/// `POST /v1/checkout/sessions`, validated as Stripe validates it, at
/// `now` (unix seconds).
pub(crate) fn validate_session(
    pairs: &[(String, String)],
    now: i64,
) -> Result<NewSession, StError> {
    let params = params(pairs, known_session_param)?;
    match params.get("mode") {
        None => return Err(StError::missing("mode")),
        Some(&"payment") => {}
        Some(other) => {
            return Err(StError::invalid(
                format!("The simulator supports mode=payment only, not {other}."),
                Some("mode"),
            ))
        }
    }
    let indices: BTreeSet<usize> = params
        .keys()
        .filter_map(|k| segments(k))
        .filter_map(|s| match s.as_slice() {
            ["line_items", i, ..] => i.parse().ok(),
            _ => None,
        })
        .collect();
    if indices.is_empty() {
        return Err(StError::missing("line_items"));
    }
    if indices.iter().copied().ne(0..indices.len()) {
        return Err(StError::invalid(
            "Invalid array: line_items must be indexed from 0 without gaps.",
            Some("line_items"),
        ));
    }
    let mut currency: Option<Currency> = None;
    let mut lines = Vec::new();
    let mut amount_total: i64 = 0;
    for i in 0..indices.len() {
        let name = |suffix: &str| format!("line_items[{i}]{suffix}");
        let required = |suffix: &str| {
            let n = name(suffix);
            params
                .get(n.as_str())
                .copied()
                .ok_or_else(|| StError::missing(&n))
        };
        let quantity_param = name("[quantity]");
        let quantity: i64 = required("[quantity]")?
            .parse()
            .map_err(|_| StError::integer(params[quantity_param.as_str()], &quantity_param))?;
        if quantity < 1 {
            return Err(StError::invalid(
                "This value must be greater than or equal to 1.",
                Some(&quantity_param),
            ));
        }
        let code = required("[price_data][currency]")?;
        let line_currency = Currency::parse(code).map_err(|_| {
            StError::invalid(
                format!("Invalid currency: {code}."),
                Some(&name("[price_data][currency]")),
            )
        })?;
        match currency {
            None => currency = Some(line_currency),
            Some(c) if c == line_currency => {}
            Some(_) => {
                return Err(StError::invalid(
                    "Line items must all be in the same currency.",
                    Some("line_items"),
                ))
            }
        }
        let amount_param = name("[price_data][unit_amount]");
        let raw_amount = required("[price_data][unit_amount]")?;
        let unit_amount: i64 = raw_amount
            .parse()
            .map_err(|_| StError::integer(raw_amount, &amount_param))?;
        if unit_amount < 0 {
            return Err(StError::invalid(
                "This value must be greater than or equal to 0.",
                Some(&amount_param),
            ));
        }
        if line_currency.exponent() == 3 && unit_amount % 10 != 0 {
            return Err(StError::invalid(
                format!(
                    "Amounts in {} must be a multiple of 10 (three-decimal currency).",
                    line_currency.code().to_ascii_lowercase()
                ),
                Some(&amount_param),
            ));
        }
        let product_name = required("[price_data][product_data][name]")?;
        if product_name.trim().is_empty() {
            return Err(StError::invalid(
                "You passed an empty string for 'name'. We assume empty values are an \
                 attempt to unset a parameter; however 'name' cannot be unset.",
                Some(&name("[price_data][product_data][name]")),
            ));
        }
        amount_total = unit_amount
            .checked_mul(quantity)
            .and_then(|line| amount_total.checked_add(line))
            .ok_or_else(|| {
                StError::invalid("The total amount is too large.", Some("line_items"))
            })?;
        lines.push(SessionLine {
            name: product_name.to_owned(),
            unit_amount,
            quantity,
        });
    }
    if amount_total <= 0 {
        return Err(StError::invalid(
            "The Checkout Session's total amount due must be greater than 0.",
            Some("line_items"),
        ));
    }
    let expires_at = match integer(&params, "expires_at")? {
        None => now + 24 * 3600,
        Some(t) if t < now + 30 * 60 => {
            return Err(StError::invalid(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                Some("expires_at"),
            ))
        }
        Some(t) if t > now + 24 * 3600 => {
            return Err(StError::invalid(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                Some("expires_at"),
            ))
        }
        Some(t) => t,
    };
    for param in ["success_url", "cancel_url"] {
        if let Some(url) = params.get(param) {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(StError::invalid("Not a valid URL", Some(param)));
            }
        }
    }
    if let Some(email) = params.get("customer_email") {
        if !email.contains('@') {
            return Err(StError::invalid(
                format!("Invalid email address: {email}"),
                Some("customer_email"),
            ));
        }
    }
    if let Some(reference) = params.get("client_reference_id") {
        if reference.chars().count() > 200 {
            return Err(StError::invalid(
                "client_reference_id can be at most 200 characters.",
                Some("client_reference_id"),
            ));
        }
    }
    let text = |p: &str| params.get(p).map(|v| (*v).to_owned());
    Ok(NewSession {
        success_url: text("success_url"),
        cancel_url: text("cancel_url"),
        client_reference_id: text("client_reference_id"),
        customer_email: text("customer_email"),
        expires_at,
        metadata: metadata(&params, "metadata")?,
        intent_metadata: metadata(&params, "payment_intent_data[metadata]")?,
        // At least one line exists, so a currency was read.
        currency: currency.expect("a line sets the currency"),
        amount_total,
        lines,
    })
}

/// Runs `apply` once per idempotency key; replays or refuses repeats.
async fn idempotent(
    app: &App,
    headers: &HeaderMap,
    route: &'static str,
    mut params: Vec<(String, String)>,
    apply: impl FnOnce(&App, &mut Store) -> Result<(Value, Vec<Outgoing>), StError>,
) -> Response {
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
        Some(_) => {
            return StError::invalid("Idempotency-Key must be 1 to 255 visible characters.", None)
                .into_response()
        }
    };
    params.sort();
    let (body, events) = {
        let mut store = app.store();
        if let Some(key) = &key {
            if let Some(saved) = store.idempotency.get(key) {
                if saved.route == route && saved.params == params {
                    return json(saved.body.clone(), true);
                }
                return StError {
                    kind: "idempotency_error",
                    ..StError::invalid(
                        format!(
                            "Keys for idempotent requests can only be used with the same \
                             parameters they were first used with. Try using a key other \
                             than '{key}' if you meant to execute a different request."
                        ),
                        None,
                    )
                }
                .into_response();
            }
        }
        let (value, events) = match apply(app, &mut store) {
            Ok(done) => done,
            Err(e) => return e.into_response(),
        };
        // A JSON value always serializes.
        let body = serde_json::to_vec(&value).expect("a JSON value serializes");
        if let Some(key) = key {
            store.idempotency.insert(
                key,
                SavedAnswer {
                    route,
                    params,
                    body: body.clone(),
                },
            );
        }
        (body, events)
    };
    app.outbox.send(events).await;
    json(body, false)
}

fn json(body: Vec<u8>, replayed: bool) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Plain structs with string keys always serialize.
    serde_json::to_value(v).expect("an object serializes")
}

async fn create_session(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    idempotent(
        &app,
        &headers,
        "POST /v1/checkout/sessions",
        pairs.clone(),
        |app, store| {
            let new = validate_session(&pairs, now())?;
            let id = new_id("cs_test_", 24);
            let session = CheckoutSession {
                id: id.clone(),
                object: "checkout.session".into(),
                url: Some(format!("{}/checkout/{id}", app.public_url)),
                status: Some(SessionStatus::Open),
                payment_status: SessionPaymentStatus::Unpaid,
                expires_at: new.expires_at,
                client_reference_id: new.client_reference_id,
                metadata: new.metadata,
                payment_intent: None,
                amount_total: Some(new.amount_total),
                currency: Some(new.currency.code().to_ascii_lowercase()),
                mode: "payment".into(),
                success_url: new.success_url,
                cancel_url: new.cancel_url,
                customer_email: new.customer_email,
                created: now(),
                livemode: false,
            };
            store.sessions.insert(
                id,
                StoredSession {
                    session: session.clone(),
                    lines: new.lines,
                    intent_metadata: new.intent_metadata,
                },
            );
            Ok((to_value(&session), vec![]))
        },
    )
    .await
}

async fn get_session(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<CheckoutSession>, StError> {
    app.store()
        .sessions
        .get(&id)
        .map(|s| Json(s.session.clone()))
        .ok_or_else(|| StError::not_found("checkout.session", &id))
}

/// `POST /v1/checkout/sessions/{id}/expire`.
async fn expire_session(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<CheckoutSession>, StError> {
    let (session, events) = {
        let mut store = app.store();
        let stored = store
            .sessions
            .get_mut(&id)
            .ok_or_else(|| StError::not_found("checkout.session", &id))?;
        if stored.session.status != Some(SessionStatus::Open) {
            return Err(StError::invalid(
                "Only Checkout Sessions with a status in [\"open\"] can be expired.",
                None,
            ));
        }
        let event = expire_one(stored);
        (stored.session.clone(), vec![event])
    };
    app.outbox.send(events).await;
    Ok(Json(session))
}

fn expire_one(stored: &mut StoredSession) -> Outgoing {
    stored.session.status = Some(SessionStatus::Expired);
    event(EventKind::CheckoutSessionExpired, to_value(&stored.session))
}

/// Expires the open sessions whose time passed; their events.
pub(crate) fn expire_due(app: &App, now: i64) -> Vec<Outgoing> {
    let mut store = app.store();
    store
        .sessions
        .values_mut()
        .filter(|s| s.session.status == Some(SessionStatus::Open) && s.session.expires_at <= now)
        .map(expire_one)
        .collect()
}

/// Expires an open session now (`POST /sim/sessions/{id}/expire`).
pub(crate) async fn expire(app: &App, id: &str) -> Result<Done, SimError> {
    let event = {
        let mut store = app.store();
        let stored = store
            .sessions
            .get_mut(id)
            .ok_or_else(|| SimError::NotFound(format!("no session {id}")))?;
        open(stored)?;
        expire_one(stored)
    };
    app.outbox.send(vec![event]).await;
    Ok(Done {
        provider: Gateway::Stripe,
        status: "expired",
        fields: vec![("session_id", id.to_owned())],
        redirect: None,
    })
}

fn open(stored: &StoredSession) -> Result<(), SimError> {
    match stored.session.status {
        Some(SessionStatus::Open) => Ok(()),
        Some(SessionStatus::Complete) => Err(SimError::Conflict(format!(
            "session {} is already complete",
            stored.session.id
        ))),
        Some(SessionStatus::Expired) | None => Err(SimError::Conflict(format!(
            "session {} has expired",
            stored.session.id
        ))),
    }
}

/// The buyer pays by card: a succeeded payment intent and charge, the
/// session complete and paid, `checkout.session.completed` sent.
pub(crate) async fn pay(app: &App, id: &str, method: PayMethod) -> Result<Done, SimError> {
    match method {
        PayMethod::Card => {}
        PayMethod::Upi => {
            return Err(SimError::Invalid(
                "Stripe sessions take card payments in the simulator".into(),
            ))
        }
    }
    let (session, event) = {
        let mut store = app.store();
        let stored = store
            .sessions
            .get_mut(id)
            .ok_or_else(|| SimError::NotFound(format!("no session {id}")))?;
        open(stored)?;
        let intent_id = stored
            .session
            .payment_intent
            .clone()
            .unwrap_or_else(|| new_id("pi_", 24));
        let charge_id = new_id("ch_", 24);
        stored.session.status = Some(SessionStatus::Complete);
        stored.session.payment_status = SessionPaymentStatus::Paid;
        stored.session.payment_intent = Some(intent_id.clone());
        let session = stored.session.clone();
        let metadata = stored.intent_metadata.clone();
        let amount = session.amount_total.unwrap_or_default();
        let currency = session.currency.clone().unwrap_or_default();
        store.intents.insert(
            intent_id.clone(),
            PaymentIntent {
                id: intent_id.clone(),
                object: "payment_intent".into(),
                amount,
                currency: currency.clone(),
                status: PaymentIntentStatus::Succeeded,
                metadata: metadata.clone(),
                last_payment_error: None,
                latest_charge: Some(charge_id.clone()),
                created: now(),
                livemode: false,
            },
        );
        store.charges.insert(
            charge_id.clone(),
            Charge {
                id: charge_id,
                object: "charge".into(),
                amount,
                amount_refunded: 0,
                currency,
                payment_intent: Some(intent_id),
                refunded: false,
                status: "succeeded".into(),
                metadata,
                created: now(),
                livemode: false,
            },
        );
        let event = event(EventKind::CheckoutSessionCompleted, to_value(&session));
        (session, event)
    };
    app.outbox.send(vec![event]).await;
    Ok(Done {
        provider: Gateway::Stripe,
        status: "complete",
        fields: vec![
            ("session_id", session.id.clone()),
            (
                "payment_intent",
                session.payment_intent.clone().unwrap_or_default(),
            ),
        ],
        redirect: session
            .success_url
            .map(|u| u.replace("{CHECKOUT_SESSION_ID}", &session.id)),
    })
}

/// A declined card: the payment intent needs another method, the session
/// stays open, `payment_intent.payment_failed` sent.
pub(crate) async fn fail(app: &App, id: &str, _method: PayMethod) -> Result<Done, SimError> {
    let (intent_id, event) = {
        let mut store = app.store();
        let stored = store
            .sessions
            .get_mut(id)
            .ok_or_else(|| SimError::NotFound(format!("no session {id}")))?;
        open(stored)?;
        let intent_id = stored
            .session
            .payment_intent
            .clone()
            .unwrap_or_else(|| new_id("pi_", 24));
        stored.session.payment_intent = Some(intent_id.clone());
        let intent = PaymentIntent {
            id: intent_id.clone(),
            object: "payment_intent".into(),
            amount: stored.session.amount_total.unwrap_or_default(),
            currency: stored.session.currency.clone().unwrap_or_default(),
            status: PaymentIntentStatus::RequiresPaymentMethod,
            metadata: stored.intent_metadata.clone(),
            last_payment_error: Some(PaymentError {
                kind: "card_error".into(),
                code: Some("card_declined".into()),
                decline_code: Some("generic_decline".into()),
                message: Some("Your card was declined.".into()),
            }),
            latest_charge: None,
            created: now(),
            livemode: false,
        };
        store.intents.insert(intent_id.clone(), intent.clone());
        (
            intent_id,
            event(EventKind::PaymentIntentPaymentFailed, to_value(&intent)),
        )
    };
    app.outbox.send(vec![event]).await;
    Ok(Done {
        provider: Gateway::Stripe,
        status: "failed",
        fields: vec![("session_id", id.to_owned()), ("payment_intent", intent_id)],
        redirect: None,
    })
}

/// `POST /v1/refunds`: succeeded at once; `refund.created` and
/// `charge.refunded` sent.
async fn create_refund(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    idempotent(
        &app,
        &headers,
        "POST /v1/refunds",
        pairs.clone(),
        |_, store| {
            let params = params(&pairs, known_refund_param)?;
            let charge_id = match (params.get("payment_intent"), params.get("charge")) {
            (Some(pi), _) => {
                let intent = store
                    .intents
                    .get(*pi)
                    .ok_or_else(|| StError::not_found("payment_intent", pi))?;
                match (intent.status, &intent.latest_charge) {
                    (PaymentIntentStatus::Succeeded, Some(charge)) => charge.clone(),
                    _ => {
                        return Err(StError {
                            code: Some("charge_not_refundable"),
                            ..StError::invalid(
                                format!("This PaymentIntent ({pi}) does not have a successful charge to refund."),
                                Some("payment_intent"),
                            )
                        })
                    }
                }
            }
            (None, Some(charge)) => (*charge).to_owned(),
            (None, None) => {
                return Err(StError::invalid(
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    None,
                ))
            }
        };
            let amount = integer(&params, "amount")?;
            let metadata = metadata(&params, "metadata")?;
            let charge = store
                .charges
                .get_mut(&charge_id)
                .ok_or_else(|| StError::not_found("charge", &charge_id))?;
            let remaining = charge.amount - charge.amount_refunded;
            if remaining == 0 {
                return Err(StError {
                    code: Some("charge_already_refunded"),
                    ..StError::invalid(
                        format!("Charge {} has already been refunded.", charge.id),
                        None,
                    )
                });
            }
            let amount = amount.unwrap_or(remaining);
            if amount <= 0 || amount > remaining {
                return Err(StError {
                code: Some("amount_too_large"),
                ..StError::invalid(
                    format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
                    Some("amount"),
                )
            });
            }
            charge.amount_refunded += amount;
            charge.refunded = charge.amount_refunded == charge.amount;
            let charge = charge.clone();
            let refund = RefundObject {
                id: new_id("re_", 24),
                object: "refund".into(),
                amount,
                currency: charge.currency.clone(),
                payment_intent: charge.payment_intent.clone(),
                charge: Some(charge.id.clone()),
                status: RefundState::Succeeded,
                metadata,
                created: now(),
            };
            store.st_refunds.insert(refund.id.clone(), refund.clone());
            let events = vec![
                event(EventKind::RefundCreated, to_value(&refund)),
                event(EventKind::ChargeRefunded, to_value(&charge)),
            ];
            Ok((to_value(&refund), events))
        },
    ).await
}

/// An Event object around `object`.
fn event(kind: EventKind, object: Value) -> Outgoing {
    let body = Event {
        id: new_id("evt_", 24),
        object: "event".into(),
        api_version: Some(gateways::stripe::API_VERSION.into()),
        created: now(),
        data: EventData { object },
        livemode: false,
        pending_webhooks: 1,
        request: Some(EventRequest {
            id: None,
            idempotency_key: None,
        }),
        kind: kind.as_str().to_owned(),
    };
    Outgoing {
        provider: Gateway::Stripe,
        kind: kind.as_str().to_owned(),
        event_id: body.id.clone(),
        body: serde_json::to_vec(&body).expect("an event serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateways::model::{Buyer, IdempotencyKey, Line, OrderId, SessionRequest};
    use schemas::Money;

    const NOW: i64 = 1_700_000_000;

    fn our_form(expires_at: i64) -> Vec<(String, String)> {
        let unit = Money::from_minor(49900, Currency::INR);
        gateways::stripe::transformers::create_session_form(&SessionRequest {
            order_id: OrderId::parse("ord_1").unwrap(),
            idempotency_key: IdempotencyKey::parse("k").unwrap(),
            amount: unit.times(2).unwrap(),
            lines: vec![Line {
                name: "Rust backend internship".into(),
                unit_amount: unit,
                quantity: 2,
            }],
            buyer: Buyer {
                email: Some("asha@example.com".into()),
                ..Buyer::default()
            },
            success_url: "https://shop.test/ok?s={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://shop.test/cancel".into(),
            expires_at,
            metadata: BTreeMap::new(),
        })
        .unwrap()
    }

    #[test]
    fn what_our_client_sends_is_accepted() {
        let new = validate_session(&our_form(NOW + 3600), NOW).unwrap();
        assert_eq!(new.amount_total, 99800);
        assert_eq!(new.currency, Currency::INR);
        assert_eq!(new.client_reference_id.as_deref(), Some("ord_1"));
        assert_eq!(
            new.metadata.get("order_id").map(String::as_str),
            Some("ord_1")
        );
        assert_eq!(
            new.intent_metadata.get("order_id").map(String::as_str),
            Some("ord_1")
        );
        assert_eq!(new.expires_at, NOW + 3600);
    }

    #[test]
    fn expires_at_must_be_30_minutes_to_24_hours_ahead() {
        assert!(validate_session(&our_form(NOW + 30 * 60), NOW).is_ok());
        assert!(validate_session(&our_form(NOW + 24 * 3600), NOW).is_ok());
        let early = validate_session(&our_form(NOW + 30 * 60 - 1), NOW).unwrap_err();
        assert_eq!(early.param.as_deref(), Some("expires_at"));
        assert!(validate_session(&our_form(NOW + 24 * 3600 + 1), NOW).is_err());
    }

    #[test]
    fn unknown_or_missing_parameters_are_refused_as_stripe_does() {
        let mut form = our_form(NOW + 3600);
        form.push(("line_items[0][price]".into(), "price_123".into()));
        assert_eq!(
            validate_session(&form, NOW).unwrap_err().message,
            "Received unknown parameter: line_items[0][price]"
        );
        let no_mode: Vec<_> = our_form(NOW + 3600)
            .into_iter()
            .filter(|(k, _)| k != "mode")
            .collect();
        assert_eq!(
            validate_session(&no_mode, NOW).unwrap_err().message,
            "Missing required param: mode."
        );
        let no_name: Vec<_> = our_form(NOW + 3600)
            .into_iter()
            .filter(|(k, _)| !k.ends_with("[name]"))
            .collect();
        assert_eq!(
            validate_session(&no_name, NOW).unwrap_err().message,
            "Missing required param: line_items[0][price_data][product_data][name]."
        );
        let no_lines: Vec<_> = our_form(NOW + 3600)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("line_items"))
            .collect();
        assert_eq!(
            validate_session(&no_lines, NOW).unwrap_err().message,
            "Missing required param: line_items."
        );
    }

    #[test]
    fn nested_keys_split_into_segments() {
        assert_eq!(
            segments("line_items[0][price_data][unit_amount]"),
            Some(vec!["line_items", "0", "price_data", "unit_amount"])
        );
        assert_eq!(segments("mode"), Some(vec!["mode"]));
        assert_eq!(segments("metadata[a"), None);
        assert_eq!(mask("sk_test_abcdefgh1234"), "sk_test_****1234");
    }
}
