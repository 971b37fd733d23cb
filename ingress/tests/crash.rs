//! Crash tests: add-item commands stream in while a process is killed with
//! SIGKILL and restarted; Postgres must then hold exactly the expected
//! carts, items and quantities. Adding items is not idempotent by itself
//! (quantities add up), so any command applied twice or lost shows up as a
//! wrong quantity. The invoice processor is killed the same way while
//! invoice requests stream in: its numbers must be those of a run without
//! the kill.
//!
//! A kill proves something only if it lands on work in flight, so a stage
//! is killed only once its `/metrics` show it assigned partitions with an
//! open batch that cannot have committed yet (`FAULT_HOLD_BATCH_MS` holds
//! every batch before its commit; see `ChildGuard::kill9_in_flight`), and
//! the ingress only while HTTP requests are open on it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestEnv, CATALOG};
use schemas::values::CartToken;

const CARTS: usize = 10;
const COMMANDS: usize = 1_000;
/// How long a victim holds each batch open before committing it.
const HOLD: Duration = Duration::from_millis(1_500);
const HOLD_MS: &str = "1500";

struct Expected {
    /// (cart, the version it must reach)
    versions: Vec<(CartToken, i64)>,
    /// (cart, internship) → quantity
    quantities: BTreeMap<(String, String), i64>,
}

/// Creates the carts, then streams the add-item commands at a steady pace
/// (about `seconds` in all) so a kill lands in the middle of the stream;
/// `sent` counts the commands the broker acknowledged so far.
async fn stream_commands(env: &TestEnv, seconds: f64, sent: &AtomicUsize) -> Expected {
    let mut carts = Vec::new();
    for _ in 0..CARTS {
        carts.push(env.create_cart().await);
    }
    let mut quantities = BTreeMap::new();
    let mut last: Vec<i64> = carts.iter().map(|(_, o)| *o).collect();
    let pause = Duration::from_secs_f64(seconds / COMMANDS as f64);
    for i in 0..COMMANDS {
        let c = i % CARTS;
        let (id, _) = CATALOG[(i / CARTS) % CATALOG.len()];
        let qty = (i % 3 + 1) as i32;
        last[c] = env.add_item(&carts[c].0, id, qty).await;
        sent.fetch_add(1, Ordering::SeqCst);
        *quantities
            .entry((carts[c].0.as_str().to_owned(), id.to_owned()))
            .or_insert(0) += i64::from(qty);
        if i % 10 == 0 {
            tokio::time::sleep(pause * 10).await;
        }
    }
    Expected {
        versions: carts.into_iter().map(|(t, _)| t).zip(last).collect(),
        quantities,
    }
}

/// Postgres holds exactly `expected`: every line's quantity, line totals
/// that match, `carts` carts none of which refused a command, and cart
/// subtotals that add up to the lines.
async fn assert_exact(env: &TestEnv, expected: &Expected, carts: usize) {
    env.wait_for_versions(&expected.versions, Duration::from_secs(120))
        .await;
    let rows: Vec<(String, String, i32, i64, i64)> = sqlx::query_as(
        "SELECT cart_token, internship_id, quantity, unit_price_minor, line_total_minor FROM cart_items ORDER BY 1, 2",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let actual: BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|(t, i, q, _, _)| ((t.clone(), i.clone()), i64::from(*q)))
        .collect();
    assert_eq!(
        actual, expected.quantities,
        "every command applied exactly once"
    );
    for (_, _, q, unit, total) in &rows {
        assert_eq!(*total, unit * i64::from(*q));
    }
    let found: Vec<(i64, i64, Option<i32>)> =
        sqlx::query_as("SELECT version, subtotal_minor, rejection_code FROM carts")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(found.len(), carts);
    assert!(
        found.iter().all(|(_, _, r)| r.is_none()),
        "no command was refused: {found:?}"
    );
    let sum_lines: i64 = rows.iter().map(|r| r.4).sum();
    let sum_carts: i64 = found.iter().map(|c| c.1).sum();
    assert_eq!(sum_lines, sum_carts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_cart_processor_inside_its_transaction_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    // Two instances share the partitions. `a` holds every batch open for
    // HOLD before committing it and is killed inside one; `b` takes its
    // partitions over, then `a` comes back under the same instance name
    // (its transactional id fences what the killed run left open).
    let mut a = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "a"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let mut b = env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "b")]);
    let sent = AtomicUsize::new(0);
    let stream = stream_commands(&env, 8.0, &sent);
    let kill = async {
        a.kill9_in_flight("cart-processor", HOLD, Duration::from_secs(60))
            .await;
        let at = sent.load(Ordering::SeqCst);
        assert!(at < COMMANDS, "the kill came after the stream ended");
        eprintln!("killed after {at} of {COMMANDS} commands");
        // The survivor owns every partition before the victim returns.
        b.wait_gauge(
            "pipeline_assigned_partitions",
            "cart-processor",
            4.0,
            Duration::from_secs(45),
        )
        .await;
        env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "a")])
    };
    let (expected, _a_again) = tokio::join!(stream, kill);
    assert_exact(&env, &expected, CARTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_carts_sink_inside_its_postgres_transaction_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    let mut sink = env.child_with("sinks", &["all"], &[("FAULT_HOLD_BATCH_MS", HOLD_MS)]);
    let sent = AtomicUsize::new(0);
    let stream = stream_commands(&env, 8.0, &sent);
    let kill = async {
        sink.kill9_in_flight("carts-sink", HOLD, Duration::from_secs(60))
            .await;
        let at = sent.load(Ordering::SeqCst);
        assert!(at < COMMANDS, "the kill came after the stream ended");
        eprintln!("killed after {at} of {COMMANDS} commands");
        env.child("sinks", &["all"])
    };
    let (expected, _sink_again) = tokio::join!(stream, kill);
    assert_exact(&env, &expected, CARTS).await;
}

// ---------------------------------------------------------------------------
// The ingress
// ---------------------------------------------------------------------------

const HTTP_CARTS: usize = 4;
/// Two clients per cart: while one waits out a request cut by the kill,
/// the other keeps writing to the same cart.
const CLIENTS: usize = 8;
const PER_CLIENT: usize = 100;
/// The ingress's request timeout; an `Idempotency-Key` claimed by a killed
/// ingress is taken over 10 s after it (the claim's lease).
const REQUEST_TIMEOUT_SECS: &str = "2";

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// (cart index, internship, quantity, version) of every 2xx answer.
    acked: Vec<(usize, String, i32, i64)>,
    /// Requests that failed at the connection level (reset, refused,
    /// incomplete answer), each retried with its key.
    connection_failures: usize,
    /// 409: the key still claimed by the request the kill cut.
    in_flight_conflicts: usize,
    /// 5xx answers (retried with the key).
    server_errors: usize,
    /// Answers replayed from the idempotency store.
    replays: usize,
}

struct Clients {
    http: reqwest::Client,
    base: String,
    carts: Vec<CartToken>,
    seen: Mutex<Seen>,
    /// Requests sent and not answered yet.
    open: AtomicUsize,
    acked: AtomicUsize,
}

impl Clients {
    /// One attempt; `Ok(true)` on a 2xx answer, `Ok(false)` on one to
    /// retry, `Err` on an answer that must not happen.
    async fn attempt(&self, cart: usize, key: &str, item: &str, qty: i32) -> Result<bool, String> {
        let url = format!("{}/cart/{}/items", self.base, self.carts[cart].as_str());
        let body = serde_json::json!({"internship_id": item, "quantity": qty});
        self.open.fetch_add(1, Ordering::SeqCst);
        let answer = async {
            let res = self
                .http
                .post(&url)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await?;
            let status = res.status();
            let replayed = res.headers().contains_key("idempotent-replayed");
            let body: serde_json::Value = res.json().await?;
            Ok::<_, reqwest::Error>((status, replayed, body))
        }
        .await;
        self.open.fetch_sub(1, Ordering::SeqCst);
        let mut seen = self.seen.lock().unwrap();
        match answer {
            Err(_) => {
                seen.connection_failures += 1;
                Ok(false)
            }
            Ok((status, replayed, body)) if status.is_success() => {
                let version = body["version"]
                    .as_i64()
                    .ok_or_else(|| format!("no version in {body}"))?;
                seen.acked.push((cart, item.to_owned(), qty, version));
                seen.replays += usize::from(replayed);
                self.acked.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }
            Ok((status, _, _)) if status.as_u16() == 409 => {
                seen.in_flight_conflicts += 1;
                Ok(false)
            }
            Ok((status, _, _)) if status.is_server_error() => {
                seen.server_errors += 1;
                Ok(false)
            }
            Ok((status, _, body)) => Err(format!("{status}: {body}")),
        }
    }

    /// Retries a request with its key until it is answered 2xx.
    async fn until_acked(self: Arc<Self>, cart: usize, key: String, item: String, qty: i32) {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.attempt(cart, &key, &item, qty).await {
                Ok(true) => return,
                Ok(false) => assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "request {key} not acknowledged within 60 s of retries"
                ),
                Err(e) => panic!("request {key}: {e}"),
            }
        }
    }

    /// One client: `PER_CLIENT` add-items to its cart, each with a key of
    /// its own; a request that fails is retried in the background (with
    /// its key) while the client goes on, as a browser would.
    async fn client(self: Arc<Self>, n: usize) {
        let cart = n % HTTP_CARTS;
        let mut retries = Vec::new();
        for i in 0..PER_CLIENT {
            let (item, _) = CATALOG[(i + n) % CATALOG.len()];
            let qty = (i % 3 + 1) as i32;
            let key = uuid::Uuid::new_v4().to_string();
            match self.attempt(cart, &key, item, qty).await {
                Ok(true) => {}
                Ok(false) => retries.push(tokio::spawn(self.clone().until_acked(
                    cart,
                    key,
                    item.to_owned(),
                    qty,
                ))),
                Err(e) => panic!("request {key}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for r in retries {
            r.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ingress_mid_request_applies_every_acknowledged_write_exactly_once() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let envs = [
        ("REQUEST_TIMEOUT_SECS", REQUEST_TIMEOUT_SECS),
        ("KAFKA_ACK_TIMEOUT_MS", "1500"),
    ];
    let (mut ingress, port) = env.ingress_child(None, &envs);
    ingress.wait_ready(Duration::from_secs(60)).await;

    let mut carts = Vec::new();
    for _ in 0..HTTP_CARTS {
        carts.push(env.create_cart().await);
    }
    env.wait_for_versions(&carts, Duration::from_secs(60)).await;
    let clients = Arc::new(Clients {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}/api/v1"),
        carts: carts.iter().map(|(t, _)| t.clone()).collect(),
        seen: Mutex::new(Seen::default()),
        open: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(clients.clone().client(n)))
        .collect();

    // Kill once a fifth of the writes are acknowledged, at an instant when
    // requests are open on the ingress.
    let started = Instant::now();
    let open_at_kill = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the clients never got going"
        );
        let open = clients.open.load(Ordering::SeqCst);
        if clients.acked.load(Ordering::SeqCst) >= CLIENTS * PER_CLIENT / 5 && open > 0 {
            assert!(ingress.kill9(), "the ingress was running when killed");
            break open;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let acked_at_kill = clients.acked.load(Ordering::SeqCst);
    eprintln!("killed the ingress with {open_at_kill} requests open, {acked_at_kill} acknowledged");
    let (mut ingress, _) = env.ingress_child(Some(port), &envs);
    ingress.wait_ready(Duration::from_secs(60)).await;
    for t in tasks {
        t.await.unwrap();
    }

    let seen = clients.seen.lock().unwrap();
    eprintln!(
        "{} acknowledged; {} connection failures, {} in-flight conflicts (409), {} server errors, {} replays",
        seen.acked.len(),
        seen.connection_failures,
        seen.in_flight_conflicts,
        seen.server_errors,
        seen.replays
    );
    assert!(
        seen.connection_failures > 0,
        "the kill cut no request: it proved nothing"
    );
    // Idempotency-Key: every request is acknowledged in the end.
    assert_eq!(seen.acked.len(), CLIENTS * PER_CLIENT);
    let mut quantities = BTreeMap::new();
    let mut versions: HashMap<usize, i64> =
        carts.iter().enumerate().map(|(i, c)| (i, c.1)).collect();
    for (cart, item, qty, version) in &seen.acked {
        *quantities
            .entry((carts[*cart].0.as_str().to_owned(), item.clone()))
            .or_insert(0) += i64::from(*qty);
        let v = versions.get_mut(cart).unwrap();
        *v = (*v).max(*version);
    }
    let expected = Expected {
        versions: versions
            .into_iter()
            .map(|(i, v)| (carts[i].0.clone(), v))
            .collect(),
        quantities,
    };
    drop(seen);

    // How many commands a retry wrote a second time (the cut request had
    // reached the broker): those are what the processor's command-id
    // check had to absorb.
    let log = env.commands_in_log(true).await;
    let mut at: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (partition, offset, cmd) in &log {
        at.entry(cmd.command_id.as_str())
            .or_default()
            .push((*partition, *offset));
    }
    let rewritten: Vec<_> = at.iter().filter(|(_, w)| w.len() > 1).collect();
    eprintln!(
        "{} commands written twice (a retry after the kill)",
        rewritten.len()
    );
    for (id, writes) in &rewritten {
        let (p, first) = writes[0];
        let last = writes[writes.len() - 1].1;
        let cart = &log
            .iter()
            .find(|c| c.2.command_id == **id)
            .unwrap()
            .2
            .cart_token;
        let between = log
            .iter()
            .filter(|(q, o, c)| *q == p && *o > first && *o < last && c.cart_token == *cart)
            .count();
        eprintln!(
            "  command {id}: written at {p}@{first} and {p}@{last}, {between} other commands to its cart in between"
        );
    }
    assert_exact(&env, &expected, HTTP_CARTS).await;
}

/// An order's request for a document, as the order processor writes it.
fn invoice_request(
    order: usize,
    kind: schemas::records::invoices::DocumentKind,
    at: i64,
) -> schemas::records::invoices::InvoiceRequest {
    use schemas::records::invoices::{DocumentKind, InvoiceRequest, RequestLine, TaxAmount};
    use schemas::records::WireMoney;
    let inr = |minor| WireMoney {
        amount_minor: minor,
        currency: "INR".into(),
    };
    let token = format!("order-{order:04}");
    let position = i64::from(kind == DocumentKind::CreditNote);
    InvoiceRequest {
        request_id: schemas::ids::derived("invoice-request", &token, position).to_string(),
        order_token: token,
        kind,
        at,
        buyer_user_id: None,
        buyer_gstin: None,
        buyer_country: "IN".into(),
        buyer_state: Some("MH".into()),
        currency: "INR".into(),
        tax_inclusive: false,
        lines: vec![RequestLine {
            internship_id: "design".into(),
            title: "Design".into(),
            quantity: 1,
            unit_price: inr(100_000),
            discount: inr(0),
            amount: inr(100_000),
            tax_class: "standard".into(),
        }],
        taxes: vec![TaxAmount {
            name: "IGST".into(),
            rate: "0.18".into(),
            amount: inr(18_000),
        }],
        subtotal: inr(100_000),
        discount_total: inr(0),
        tax_total: inr(18_000),
        total: inr(118_000),
        fx: None,
        gateway: Some("razorpay".into()),
        payment_ref: Some(format!("pay_{order}")),
        refund_id: None,
        reason: None,
    }
}

/// The invoice processor is killed inside a transaction while requests
/// stream in (every third order refunded, every fifth request sent twice,
/// as a replayed order processor would): the sales register must hold
/// every document once, each series 1..N, and the very numbers a run
/// without the kill gives (the pure ledger over the same requests, in
/// their order on the one partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_invoice_processor_inside_its_transaction_numbers_every_document_once() {
    use rdkafka::producer::FutureRecord;
    use schemas::records::invoices::{DocumentKind, InvoiceDocument, LEDGER_KEY};
    use schemas::topics::{INVOICE_DOCUMENTS, INVOICE_REQUESTS};
    const ORDERS: usize = 240;
    let env = TestEnv::new().await;
    let supplier = [
        ("INVOICE_SUPPLIER_NAME", "InternHub Test Seller"),
        ("INVOICE_SUPPLIER_GSTIN", "29AAGCT5678K1Z2"),
        ("INVOICE_SUPPLIER_ADDRESS", "1 Test Road, Bengaluru 560001"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut envs = supplier.to_vec();
        envs.extend_from_slice(extra);
        envs
    };
    let mut victim = env.child_with(
        "processors",
        &["invoice"],
        &with(&[
            ("PROCESSOR_INSTANCE", "a"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ]),
    );
    // The requests in the order they are written: invoices, a refunded
    // order's credit note a few orders later, every fifth one twice.
    let start = chrono::Utc::now().timestamp_millis();
    let mut requests = Vec::new();
    for i in 0..ORDERS {
        requests.push(invoice_request(
            i,
            DocumentKind::TaxInvoice,
            start + i as i64,
        ));
        if i % 3 == 2 {
            requests.push(invoice_request(
                i - 2,
                DocumentKind::CreditNote,
                start + i as i64,
            ));
        }
        if i % 5 == 4 {
            requests.push(requests[requests.len() - 2].clone());
        }
    }
    let topic = env.config.topics.name(&INVOICE_REQUESTS.def);
    let sent = AtomicUsize::new(0);
    let stream = async {
        for r in &requests {
            let value = env.codec.encode(&INVOICE_REQUESTS, r).await.unwrap();
            env.producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&schemas::Codec::encode_key(LEDGER_KEY))
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            sent.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let kill = async {
        victim
            .kill9_in_flight("invoice-processor", HOLD, Duration::from_secs(60))
            .await;
        let at = sent.load(Ordering::SeqCst);
        assert!(at < requests.len(), "the kill came after the stream ended");
        eprintln!("killed after {at} of {} requests", requests.len());
        env.child_with(
            "processors",
            &["invoice"],
            &with(&[("PROCESSOR_INSTANCE", "a")]),
        )
    };
    let ((), _again) = tokio::join!(stream, kill);

    // What a run without the kill issues: the pure ledger, request by request.
    let policy = common::test_supplier();
    let mut ledger = None;
    let mut want = Vec::new();
    for (offset, r) in requests.iter().enumerate() {
        if let Some(next) = rules::invoice::issue(ledger.as_ref(), r, offset as i64, &policy) {
            want.extend(
                next.changed()
                    .iter()
                    .map(|d| (d.number.clone(), d.order_token.clone(), d.kind)),
            );
            ledger = Some(next);
        }
    }
    let credit_notes = ORDERS / 3;
    assert_eq!(want.len(), ORDERS + credit_notes);

    let started = Instant::now();
    let documents: Vec<InvoiceDocument> = loop {
        let docs: Vec<InvoiceDocument> = env.decoded(&INVOICE_DOCUMENTS).await;
        if docs.len() >= want.len() || started.elapsed() > Duration::from_secs(90) {
            break docs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        rules::invoice::register_problems(&documents),
        Vec::<String>::new()
    );
    let got: Vec<(String, String, DocumentKind)> = documents
        .iter()
        .map(|d| (d.number.clone(), d.order_token.clone(), d.kind))
        .collect();
    assert_eq!(got, want, "the numbers of a run without the kill");
}
