//! The runtime's guarantees, one test per way they were found broken
//! (from a review of the pipeline), plus the rebuild and dead-letter tools. Each test
//! fails on the code as it was before the exactly-once runtime:
//!
//! - a command written twice (same id, two offsets) applies once (finding 2;
//!   before, only CreateCart checked its id);
//! - a registry that answers 500 for a while delays records, never drops
//!   them (finding 4; before, the converter's "non-retriable" 500 made the
//!   record poison and it was skipped);
//! - keys are the entity id's UTF-8 bytes, so a cart's partition is
//!   murmur2(token) whatever the registry (finding 7; before, the key was
//!   Avro in the wire format, schema id included);
//! - a read model rebuilt from the topics equals the live one;
//! - undecodable records go to the dead letters, processing goes on, and
//!   `checkoutctl dlq` lists, shows and replays them.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;

use common::{bin_path, TestEnv, CATALOG};
use schemas::records::cart::{AddItem, CartCommand, Command as CartCmd};
use schemas::topics::{CART_COMMANDS, CART_SNAPSHOTS};
use schemas::values::CartToken;
use schemas::Codec;

/// Produces `cmd` as is (its id included); returns (partition, offset).
async fn produce(env: &TestEnv, cmd: &CartCommand) -> (i32, i64) {
    let value = env.codec.encode(&CART_COMMANDS, cmd).await.unwrap();
    let topic = env.config.topics.name(&CART_COMMANDS.def);
    env.producer
        .send(
            FutureRecord::to(&topic)
                .key(&Codec::encode_key(&cmd.cart_token))
                .payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map(|d| (d.partition, d.offset))
        .unwrap()
}

fn add(token: &CartToken, id: &str, quantity: i32, command_id: &str) -> CartCommand {
    CartCommand {
        command_id: command_id.into(),
        cart_token: token.as_str().into(),
        issued_at: chrono::Utc::now().timestamp_millis(),
        command: CartCmd::AddItem(AddItem {
            internship_id: id.into(),
            quantity,
            actor_user_id: None,
        }),
        tables_at: None,
    }
}

async fn quantity(env: &TestEnv, token: &CartToken, id: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT quantity FROM cart_items WHERE cart_token = $1 AND internship_id = $2",
    )
    .bind(token.as_str())
    .bind(id)
    .fetch_optional(&env.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_written_twice_is_applied_once() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let (token, _) = env.create_cart().await;
    let (id, _) = CATALOG[0];
    let once = add(&token, id, 2, "client-retry-1");
    let (_, first) = produce(&env, &once).await;
    let (_, second) = produce(&env, &once).await;
    assert!(second > first, "two records at two offsets");
    // A different command after them still applies.
    let (_, third) = produce(&env, &add(&token, id, 5, "another")).await;
    env.wait_for_versions(&[(token.clone(), third)], Duration::from_secs(60))
        .await;
    assert_eq!(quantity(&env, &token, id).await, Some(7), "2 once, then 5");
    // The duplicate moved the cart to its own version without changing it,
    // so a client waiting for the second write's version is answered.
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM carts WHERE cart_token = $1")
        .bind(token.as_str())
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(versions, vec![third]);
}

/// Kafka's default partitioner: murmur2 of the key bytes, positive, modulo
/// the partition count (the Java client's `Utils.murmur2`).
fn murmur2(data: &[u8]) -> i32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let len = data.len();
    let mut h: u32 = seed ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_lives_in_the_partition_of_its_token_whatever_the_registry() {
    let env = TestEnv::new().await;
    let partitions = CART_COMMANDS.def.partitions;
    // Known vector of the Java client (Utils.murmur2("21") = -973932308).
    assert_eq!(murmur2(b"21"), -973_932_308);
    for _ in 0..20 {
        let token = CartToken::random();
        let (partition, _) = produce(&env, &add(&token, CATALOG[0].0, 1, "x")).await;
        let expected = (murmur2(token.as_str().as_bytes()) & 0x7fff_ffff) % partitions;
        assert_eq!(partition, expected, "cart {token:?}");
    }
}

/// A named test double: a proxy in front of the real schema registry that
/// answers 500 to schema look-ups by id while `failing` is set, the fault a
/// registry blip produces (its database restarting, a bad deploy), which
/// cannot otherwise be made on demand without breaking every other test.
async fn failing_registry_proxy(
    upstream: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
) -> String {
    use axum::body::Bytes;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    #[derive(Clone)]
    struct Proxy {
        upstream: String,
        client: reqwest::Client,
        failing: Arc<AtomicBool>,
        refused: Arc<AtomicUsize>,
    }
    async fn forward(State(p): State<Proxy>, req: Request) -> Response {
        let path = req
            .uri()
            .path_and_query()
            .map(|x| x.to_string())
            .unwrap_or_default();
        if p.failing.load(Ordering::SeqCst) && path.starts_with("/schemas/ids/") {
            p.refused.fetch_add(1, Ordering::SeqCst);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/vnd.schemaregistry.v1+json")],
                r#"{"error_code":50001,"message":"store unavailable"}"#,
            )
                .into_response();
        }
        let method = req.method().clone();
        let headers = req.headers().clone();
        let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let mut out = p
            .client
            .request(method, format!("{}{}", p.upstream, path))
            .body(body);
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                out = out.header(k, v);
            }
        }
        match out.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_owned();
                let bytes = r.bytes().await.unwrap_or_default();
                (status, [("content-type", ct)], bytes).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(forward).with_state(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
        failing,
        refused,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_answering_500_delays_records_and_drops_none() {
    let mut env = TestEnv::new().await;
    let failing = Arc::new(AtomicBool::new(true));
    let refused = Arc::new(AtomicUsize::new(0));
    let proxy = failing_registry_proxy(
        env.config.schema_registry_url.clone(),
        failing.clone(),
        refused.clone(),
    )
    .await;
    // The commands exist before any stage has looked their schema up.
    let (token, _) = env.create_cart().await;
    let mut last = 0;
    for (id, _) in CATALOG {
        last = env.add_item(&token, id, 1).await;
    }
    // The processor and the sinks decode through the failing registry.
    env.config.schema_registry_url = proxy;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let started = Instant::now();
    while refused.load(Ordering::SeqCst) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stages never asked the registry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    failing.store(false, Ordering::SeqCst);
    env.wait_for_versions(&[(token.clone(), last)], Duration::from_secs(60))
        .await;
    for (id, _) in CATALOG {
        assert_eq!(
            quantity(&env, &token, id).await,
            Some(1),
            "{id} applied once, not skipped"
        );
    }
}

fn checkoutctl(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("checkoutctl"))
        .args(args)
        .env("KAFKA_BROKERS", &env.config.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", &env.config.schema_registry_url)
        .env("DATABASE_URL", &env.config.database_url)
        .env("DATABASE_SCHEMA", &env.config.database_schema)
        .env("TOPIC_PREFIX", env.config.topics.prefix())
        .env("RUST_LOG", "warn")
        .output()
        .expect("checkoutctl runs")
}

/// The carts read model as sorted text rows, for comparing two of them;
/// `materialized_at` (when the sink wrote the row) is the one column that
/// is not data.
async fn carts_model(env: &TestEnv) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, order) in [
        ("carts", "cart_token"),
        ("cart_items", "cart_token, position"),
        ("cart_tax_lines", "cart_token, position"),
        ("cart_discounts", "cart_token, position"),
    ] {
        let sql = format!(
            "SELECT (to_jsonb(t) - 'materialized_at')::text FROM {table} t ORDER BY {order}"
        );
        let table_rows: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&env.pool).await.unwrap();
        rows.extend(table_rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_read_model_equals_the_live_one() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    let mut sinks = env.child("sinks", &["all"]);
    let mut expected = Vec::new();
    for i in 0..8 {
        let (token, _) = env.create_cart().await;
        let mut last = 0;
        for (j, (id, _)) in CATALOG.iter().enumerate() {
            last = env.add_item(&token, id, (i + j) as i32 % 3 + 1).await;
        }
        expected.push((token, last));
    }
    env.wait_for_versions(&expected, Duration::from_secs(60))
        .await;
    let live = carts_model(&env).await;
    assert!(
        live.len() >= 8 * 4,
        "the live model has the carts: {}",
        live.len()
    );

    let refused = checkoutctl(&env, &["rebuild", "carts"]);
    assert!(
        !refused.status.success(),
        "a rebuild while the sinks run is refused"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop the sinks"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Stopped gracefully: it leaves the group at once.
    let pid = sinks.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = sinks.0.wait();
    let rebuilt = checkoutctl(&env, &["rebuild", "carts"]);
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(rebuilt.status.success(), "rebuild failed: {stderr}");
    assert!(
        String::from_utf8_lossy(&rebuilt.stdout).contains("rebuilt carts"),
        "{}",
        String::from_utf8_lossy(&rebuilt.stdout)
    );
    assert_eq!(
        carts_model(&env).await,
        live,
        "rebuilt == live, row for row"
    );

    // `--compare` fingerprints the tables before and after (the fault
    // suite's check): equal here, and it fails on a read model that does
    // not match its topic (a row changed behind the sink's back).
    let compared = checkoutctl(&env, &["rebuild", "carts", "--compare"]);
    let stdout = String::from_utf8_lossy(&compared.stdout);
    assert!(
        compared.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    assert!(
        stdout.contains("every table equals the live one"),
        "{stdout}"
    );
    let tampered =
        sqlx::query("UPDATE carts SET total_minor = total_minor + 1 WHERE cart_token = $1")
            .bind(expected[0].0.as_str())
            .execute(&env.pool)
            .await
            .unwrap();
    assert_eq!(tampered.rows_affected(), 1);
    let differs = checkoutctl(&env, &["rebuild", "carts", "--compare"]);
    let stderr = String::from_utf8_lossy(&differs.stderr);
    assert!(!differs.status.success(), "a tampered model is caught");
    assert!(
        stderr.contains("differs from the live tables: carts "),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_go_to_the_dead_letters_and_can_be_replayed() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let (token, _) = env.create_cart().await;
    // Garbage on the command topic (the processor) and on the snapshot
    // topic (the carts sink and the analytics carts sink), under the
    // cart's key.
    for topic in [&CART_COMMANDS.def, &CART_SNAPSHOTS.def] {
        env.producer
            .send(
                FutureRecord::to(&env.config.topics.name(topic))
                    .key(token.as_str().as_bytes())
                    .payload(&b"not avro at all"[..]),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    // Processing goes on behind them.
    let last = env.add_item(&token, CATALOG[1].0, 3).await;
    env.wait_for_versions(&[(token.clone(), last)], Duration::from_secs(60))
        .await;
    assert_eq!(quantity(&env, &token, CATALOG[1].0).await, Some(3));

    let letters = |env: &TestEnv| {
        let out = checkoutctl(env, &["dlq", "list"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('\t'))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let started = Instant::now();
    let mut list = letters(&env);
    while list.len() < 3 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        list = letters(&env);
    }
    assert_eq!(list.len(), 3, "one dead letter per stage: {list:?}");
    for stage in ["cart-processor", "carts-sink", "analytics-carts-sink"] {
        assert!(
            list.iter()
                .any(|l| l.split('\t').nth(1) == Some(stage) && l.contains("undecodable")),
            "{stage}: {list:?}"
        );
    }

    let key = list
        .iter()
        .find(|l| l.contains("cart-processor"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    assert!(key.starts_with(&env.config.topics.name(&CART_COMMANDS.def)));
    let shown = checkoutctl(&env, &["dlq", "show", &key]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("show prints JSON");
    assert_eq!(shown["record_key"], token.as_str());
    assert_eq!(shown["record_value_hex"], hex::encode(b"not avro at all"));
    assert!(
        shown["reason"].as_str().unwrap().contains("magic byte"),
        "{shown}"
    );

    // Replayed, it is read again (and, still garbage, dead-lettered again).
    let replayed = checkoutctl(&env, &["dlq", "replay", &key]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let started = Instant::now();
    while letters(&env).len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replayed record came back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every snapshot of `token` on `cart.snapshots`, oldest first.
async fn snapshots_of(
    env: &TestEnv,
    token: &CartToken,
) -> Vec<schemas::records::cart::CartSnapshot> {
    let topic = env.config.topics.name(&CART_SNAPSHOTS.def);
    let brokers = env.config.kafka_brokers.clone();
    let raw = tokio::task::spawn_blocking(move || {
        let reader = platform::kafka::reader(&brokers).unwrap();
        let mut out = Vec::new();
        for p in 0..CART_SNAPSHOTS.def.partitions {
            platform::kafka::read_partition(
                &reader,
                &topic,
                p,
                rdkafka::Offset::Beginning,
                Duration::from_secs(30),
                |m| {
                    use rdkafka::Message;
                    out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
                },
            )
            .unwrap();
        }
        out
    })
    .await
    .unwrap();
    let mut found = Vec::new();
    for (key, value) in raw {
        if key.as_deref() == Some(token.as_str().as_bytes()) {
            found.push(
                env.codec
                    .decode(&CART_SNAPSHOTS, value.as_deref())
                    .await
                    .unwrap(),
            );
        }
    }
    found
}

/// A pipeline with one cart holding one seat of the first internship,
/// visible in Postgres; returns the cart and that command's version.
async fn running_cart_with_one_item() -> (TestEnv, CartToken, i64) {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let (token, _) = env.create_cart().await;
    let first = env.add_item(&token, CATALOG[0].0, 1).await;
    env.wait_for_versions(&[(token.clone(), first)], Duration::from_secs(60))
        .await;
    (env, token, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_postgres_refuses_for_good_is_dead_lettered_and_the_rest_is_kept() {
    let (env, token, first) = running_cart_with_one_item().await;
    // A snapshot no column can hold (currency is char(3)): Postgres refuses
    // it with a data exception, whatever the retry.
    let mut bad = snapshots_of(&env, &token).await.pop().expect("a snapshot");
    bad.version += 1_000_000;
    bad.currency = "NOT-A-CURRENCY".into();
    let value = env.codec.encode(&CART_SNAPSHOTS, &bad).await.unwrap();
    env.producer
        .send(
            FutureRecord::to(&env.config.topics.name(&CART_SNAPSHOTS.def))
                .key(token.as_str().as_bytes())
                .payload(&value),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    // Another cart's snapshot, written behind it, still lands.
    let (other, _) = env.create_cart().await;
    let last = env.add_item(&other, CATALOG[1].0, 2).await;
    env.wait_for_versions(&[(other.clone(), last)], Duration::from_secs(60))
        .await;
    assert_eq!(quantity(&env, &other, CATALOG[1].0).await, Some(2));
    // The refused one is a dead letter of the carts sink, and the cart kept
    // its last good state.
    let started = Instant::now();
    loop {
        let out = checkoutctl(&env, &["dlq", "list"]);
        let list = String::from_utf8_lossy(&out.stdout).to_string();
        if list
            .lines()
            .any(|l| l.contains("carts-sink") && l.contains("refused"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no refused dead letter: {list}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let version: i64 = sqlx::query_scalar("SELECT version FROM carts WHERE cart_token = $1")
        .bind(token.as_str())
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(version, first, "the refused snapshot changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_names_the_table_versions_it_was_priced_from() {
    let (env, token, first) = running_cart_with_one_item().await;
    // A new price: the catalog's next version prices the next command.
    env.publish_internship(CATALOG[0].0, 5_000_000).await;
    let catalog_records = CATALOG.len() as i64 + 1;
    let started = Instant::now();
    let mut last;
    loop {
        last = env.add_item(&token, CATALOG[1].0, 1).await;
        env.wait_for_versions(&[(token.clone(), last)], Duration::from_secs(60))
            .await;
        let newest = snapshots_of(&env, &token).await.pop().unwrap();
        if newest.priced_with.as_ref().map(|p| p.catalog) == Some(catalog_records) {
            assert_eq!(
                newest.lines[0].unit_price.amount_minor, 5_000_000,
                "priced from that version"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never priced from the new catalog"
        );
    }
    let snaps = snapshots_of(&env, &token).await;
    let first_snap = snaps.iter().find(|s| s.version == first).unwrap();
    let priced = first_snap.priced_with.as_ref().expect("versions recorded");
    assert_eq!(
        (priced.catalog, priced.fx_rates, priced.coupons),
        (CATALOG.len() as i64, 0, 0)
    );
    assert_eq!(first_snap.lines[0].unit_price.amount_minor, CATALOG[0].1);
}
