//! The pipeline test harness: each test gets its own topic prefix (so its
//! own topics, consumer groups and schema subjects) and its own Postgres
//! schema, against the broker, registry and Postgres that `scripts/test.sh`
//! started and named in `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL` and
//! `DATABASE_URL`. Stages run in-process (`spawn_*`) or as real processes
//! (`Child`) when a test must kill one with SIGKILL.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::watch;

use platform::config::PipelineConfig;
use schemas::records::cart::{AddItem, CartCommand, Command as CartCmd, CreateCart};
use schemas::records::catalog::Internship;
use schemas::records::WireMoney;
use schemas::topics::{self, CART_COMMANDS, CATALOG_INTERNSHIPS};
use schemas::values::CartToken;
use schemas::{Codec, TopicNames};

/// The HS256 secret test ingresses accept.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// A token for `sub` with `role`, valid for `ttl_secs` (negative: expired).
pub fn token(sub: &str, role: &str, ttl_secs: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": sub, "role": role, "exp": now + ttl_secs});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub const CATALOG: &[(&str, i64)] = &[
    ("rust-backend", 4_990_000),
    ("data-science", 3_990_000),
    ("design", 2_490_000),
];

pub struct TestEnv {
    pub config: PipelineConfig,
    pub pool: PgPool,
    pub codec: Arc<Codec>,
    pub producer: FutureProducer,
    stop: watch::Sender<bool>,
}

impl TestEnv {
    /// Topics created and the catalog seeded under a fresh prefix; a fresh
    /// Postgres schema, migrated.
    pub async fn new() -> TestEnv {
        platform::telemetry::init("tests");
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let mut config = PipelineConfig::from_env().expect("pipeline config");
        config.topics = TopicNames::new(format!("t{id}."));
        config.database_schema = format!("test_{id}");
        eprintln!(
            "test env: topic prefix {}, postgres schema {}",
            config.topics.prefix(),
            config.database_schema
        );
        let pool = platform::db::connect(&config.database_url, &config.database_schema, 4)
            .await
            .expect("postgres (run through scripts/test.sh)");
        sinks::MIGRATOR.run(&pool).await.expect("migrations");
        platform::kafka::create_topics(&config.kafka_brokers, &config.topics, topics::ALL, 1)
            .await
            .expect("kafka (run through scripts/test.sh)");
        let codec = Arc::new(
            Codec::new(
                &config.schema_registry_url,
                config.topics.clone(),
                topics::ALL,
            )
            .unwrap(),
        );
        codec
            .register(topics::ALL)
            .await
            .expect("schema registry (run through scripts/test.sh)");
        let producer = platform::kafka::producer(&config.kafka_brokers).unwrap();
        platform::kafka::warm_up(&producer, Duration::from_secs(10))
            .await
            .unwrap();
        let env = TestEnv {
            config,
            pool,
            codec,
            producer,
            stop: watch::channel(false).0,
        };
        for (id, price) in CATALOG {
            env.publish_internship(id, *price).await;
        }
        env
    }

    pub async fn publish_internship(&self, id: &str, price_minor: i64) {
        let item = Internship {
            internship_id: id.into(),
            title: id.replace('-', " "),
            category: "engineering".into(),
            base_price: WireMoney {
                amount_minor: price_minor,
                currency: "INR".into(),
            },
            tax_class: "standard".into(),
            active: true,
            updated_at: 0,
            billing_periods: vec![schemas::records::catalog::BillingPeriod {
                plan_id: format!("{id}-6m"),
                value: 6,
                unit: schemas::records::catalog::PeriodUnit::Month,
                price: WireMoney {
                    amount_minor: price_minor / 2,
                    currency: "INR".into(),
                },
            }],
        };
        let key = Codec::encode_key(id);
        let value = self
            .codec
            .encode(&CATALOG_INTERNSHIPS, &item)
            .await
            .unwrap();
        let topic = self.config.topics.name(&CATALOG_INTERNSHIPS.def);
        self.producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    /// Produces a cart command directly (as the ingress would); returns its offset.
    pub async fn send(&self, token: &CartToken, command: CartCmd) -> i64 {
        let cmd = CartCommand {
            command_id: uuid::Uuid::new_v4().to_string(),
            cart_token: token.as_str().into(),
            // Real time: the processor's expiry timer compares it with its clock.
            issued_at: chrono::Utc::now().timestamp_millis(),
            command,
        };
        let key = Codec::encode_key(token.as_str());
        let value = self.codec.encode(&CART_COMMANDS, &cmd).await.unwrap();
        let topic = self.config.topics.name(&CART_COMMANDS.def);
        let headers = platform::kafka::trace_headers("test-correlation", &cmd.command_id);
        let (_, offset) = self
            .producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map(|d| (d.partition, d.offset))
            .unwrap();
        offset
    }

    pub async fn create_cart(&self) -> (CartToken, i64) {
        let token = CartToken::random();
        let offset = self
            .send(
                &token,
                CartCmd::CreateCart(CreateCart {
                    currency: "INR".into(),
                    owner_user_id: None,
                    device_id: None,
                    items: vec![],
                }),
            )
            .await;
        (token, offset)
    }

    pub async fn add_item(&self, token: &CartToken, id: &str, quantity: i32) -> i64 {
        self.send(
            token,
            CartCmd::AddItem(AddItem {
                internship_id: id.into(),
                quantity,
                actor_user_id: None,
            }),
        )
        .await
    }

    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    pub fn spawn_cart_processor(&self) {
        let settings = processors::cart::service::Settings {
            ttl_ms: 86_400_000,
            tick: Duration::from_secs(10),
        };
        self.spawn_cart_processor_with(settings);
    }

    pub fn spawn_cart_processor_with(&self, settings: processors::cart::service::Settings) {
        let (config, stop) = (self.config.clone(), self.stopped());
        tokio::spawn(async move {
            if let Err(e) = processors::cart::service::run_with(
                config,
                settings,
                "127.0.0.1:0".parse().unwrap(),
                stop,
            )
            .await
            {
                panic!("cart processor failed: {e:#}");
            }
        });
    }

    pub fn spawn_sinks(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        tokio::spawn(async move {
            if let Err(e) =
                sinks::service::run("all", config, "127.0.0.1:0".parse().unwrap(), stop).await
            {
                panic!("sinks failed: {e:#}");
            }
        });
    }

    pub async fn spawn_ingress(&self) -> SocketAddr {
        self.spawn_ingress_with(|_| {}).await
    }

    /// An ingress with its test configuration adjusted by `adjust`.
    pub async fn spawn_ingress_with(
        &self,
        adjust: impl FnOnce(&mut ingress::Config),
    ) -> SocketAddr {
        let mut config = ingress::Config::for_tests(self.config.clone(), JWT_SECRET);
        adjust(&mut config);
        let app = ingress::Application::build(config)
            .await
            .expect("ingress builds");
        let addr = app.addr();
        let stop = self.stopped();
        tokio::spawn(app.run_until_stopped(stop));
        addr
    }

    /// Starts `bin args` as a real process with this test's configuration.
    pub fn child(&self, bin: &str, args: &[&str]) -> ChildGuard {
        let path = bin_path(bin);
        let child = Command::new(&path)
            .args(args)
            .env("KAFKA_BROKERS", &self.config.kafka_brokers)
            .env("SCHEMA_REGISTRY_URL", &self.config.schema_registry_url)
            .env("DATABASE_URL", &self.config.database_url)
            .env("DATABASE_SCHEMA", &self.config.database_schema)
            .env("TOPIC_PREFIX", self.config.topics.prefix())
            .env("OPS_ADDR", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        ChildGuard(child)
    }

    /// Waits until every cart in `expected` shows at least its version in
    /// Postgres.
    pub async fn wait_for_versions(&self, expected: &[(CartToken, i64)], timeout: Duration) {
        let started = Instant::now();
        loop {
            let mut behind = 0;
            for (token, version) in expected {
                let v: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM carts WHERE cart_token = $1")
                        .bind(token.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .unwrap();
                if v.is_none_or(|v| v < *version) {
                    behind += 1;
                }
            }
            if behind == 0 {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{behind} carts still behind after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl TestEnv {
    /// Every command on this test's `cart.commands`, read to the end of
    /// each partition (committed records only, as the processors read).
    pub async fn cart_commands(&self) -> Vec<CartCommand> {
        let brokers = self.config.kafka_brokers.clone();
        let topic = self.config.topics.name(&CART_COMMANDS.def);
        let payloads = tokio::task::spawn_blocking(move || {
            let reader = platform::kafka::reader(&brokers).unwrap();
            let mut payloads = Vec::new();
            for partition in 0..CART_COMMANDS.def.partitions {
                platform::kafka::read_partition(
                    &reader,
                    &topic,
                    partition,
                    rdkafka::Offset::Beginning,
                    Duration::from_secs(30),
                    |m| payloads.push(rdkafka::Message::payload(m).map(<[u8]>::to_vec)),
                )
                .unwrap();
            }
            payloads
        })
        .await
        .unwrap();
        let mut commands = Vec::new();
        for payload in payloads {
            commands.push(
                self.codec
                    .decode(&CART_COMMANDS, payload.as_deref())
                    .await
                    .unwrap(),
            );
        }
        commands
    }
}

/// The API of a test ingress over HTTP, for any test file: requests under
/// `/api/v1`, answers with their status, headers and JSON body.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// An answer: status, headers, and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    pub fn at(addr: SocketAddr) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
        }
    }

    /// A request to `path` (under `/api/v1`), to complete and [`send`](Api::send).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn send(request: reqwest::RequestBuilder) -> Answer {
        let res = request.send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A child process killed when the guard is dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// SIGKILL: no shutdown code runs, nothing is flushed or committed.
    /// Returns whether the process was still running (a kill of a process
    /// that had already died proves nothing).
    pub fn kill9(&mut self) -> bool {
        let running = matches!(self.0.try_wait(), Ok(None));
        let _ = self.0.kill();
        let _ = self.0.wait();
        running
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// `target/<profile>/<bin>`, beside this test's own executable's folder.
pub fn bin_path(bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<bin>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(bin);
    assert!(
        path.exists(),
        "{} not built: run the tests through scripts/test.sh (cargo builds every binary)",
        path.display()
    );
    path
}
