//! The pipeline test harness: each test gets its own topic prefix (so its
//! own topics, consumer groups and schema subjects) and its own Postgres
//! schema, against the broker, registry and Postgres that `scripts/test.sh`
//! started and named in `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL` and
//! `DATABASE_URL`. Stages run in-process (`spawn_*`) or as real processes
//! (`ChildGuard`) when a test must kill one with SIGKILL.
//!
//! An in-process stage that fails (an error or a panic) fails its test at
//! once: the process exits with status 101 (nextest runs each test in its
//! own process), after killing the children the test started. Without that
//! a stage dying in a background task went unnoticed, and the test only
//! timed out, or passed on what the other stages did.
//!
//! Children get a known ops port ([`ChildGuard::ops_port`]), so a test can
//! read their `/metrics` and kill them only while they hold work in flight
//! ([`ChildGuard::kill9_in_flight`]). [`servers`] runs a private broker or
//! Postgres for tests that kill one.

#![allow(dead_code)]

pub mod servers;
pub mod shop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
/// The issuer and audience every spawned ingress requires, as the run
/// command's development values do.
pub const JWT_ISSUER: &str = "internhub-test";
pub const JWT_AUDIENCE: &str = "internhub-checkout";

/// The gateway credentials of this test binary: random, made once, given
/// to the simulator, the gateway clients and the ingress alike, as
/// `scripts/run.sh` does with its generated ones. Nothing has a default.
pub fn sim_credentials() -> &'static gateway_simulator::Config {
    static CREDENTIALS: std::sync::OnceLock<gateway_simulator::Config> = std::sync::OnceLock::new();
    CREDENTIALS.get_or_init(|| gateway_simulator::Config::for_tests("127.0.0.1:0".parse().unwrap()))
}

/// The seller the tests' invoices name (in Karnataka, as pricing's
/// default). Its GSTIN is public (printed on every invoice), so it is none
/// of the buyers' GSTINs the personal-data tests look for in the clear.
pub fn test_supplier() -> rules::invoice::InvoicePolicy {
    rules::invoice::InvoicePolicy::from_settings(|name| match name {
        "INVOICE_SUPPLIER_NAME" => Some("InternHub Test Seller".into()),
        "INVOICE_SUPPLIER_GSTIN" => Some("29AAGCT5678K1Z2".into()),
        "INVOICE_SUPPLIER_ADDRESS" => Some("1 Test Road, Bengaluru 560001".into()),
        _ => None,
    })
    .expect("a valid supplier")
}

/// Runs `scripts/python/<script>` on `document` (written to a file of its
/// own) with the test venv's interpreter (`CHECKOUT_PYTHON`); the test
/// fails with the script's output, headed by `what`, unless it exits 0.
pub fn python_check(script: &str, document: &serde_json::Value, what: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = std::env::var("CHECKOUT_PYTHON")
        .unwrap_or_else(|_| format!("{root}/../.local/venv/bin/python"));
    let file = std::env::temp_dir().join(format!("{script}-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(document).unwrap()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/../scripts/python/{script}"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("{python}: {e} (run the tests through scripts/test.sh, which creates the venv)")
        });
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ingress' webhook secrets for [`sim_credentials`].
pub fn webhook_config() -> ingress::routes::webhooks::WebhookConfig {
    let c = sim_credentials();
    ingress::routes::webhooks::WebhookConfig {
        razorpay: gateways::WebhookSecrets::new(c.razorpay.webhook_secret.clone()),
        stripe: gateways::WebhookSecrets::new(c.stripe.webhook_secrets[0].clone()),
    }
}

/// The secrets every child process gets, as the run command hands them.
pub fn secret_envs() -> Vec<(&'static str, String)> {
    let c = sim_credentials();
    vec![
        ("AUTH_JWT_HS256_SECRET", JWT_SECRET.to_owned()),
        ("AUTH_JWT_ISSUER", JWT_ISSUER.to_owned()),
        ("AUTH_JWT_AUDIENCE", JWT_AUDIENCE.to_owned()),
        ("RAZORPAY_KEY_ID", c.razorpay.key_id.clone()),
        ("RAZORPAY_KEY_SECRET", c.razorpay.key_secret.clone()),
        ("RAZORPAY_WEBHOOK_SECRET", c.razorpay.webhook_secret.clone()),
        ("STRIPE_SECRET_KEY", c.stripe.secret_key.clone()),
        ("STRIPE_WEBHOOK_SECRET", c.stripe.webhook_secrets.join(",")),
        // The in-process ingress's key too: child services open what it sealed.
        ("PII_MASTER_KEYS", ingress::TEST_PII_MASTER_KEYS.to_owned()),
    ]
}

/// A stored personal field as its person reads it: a sealed value opened
/// with the tests' master key (`platform::pii`), a plain one as it is.
pub async fn opened(env: &TestEnv, stored: Option<String>) -> Option<String> {
    let keys = platform::pii::Keyring::parse(ingress::TEST_PII_MASTER_KEYS).unwrap();
    platform::pii::Vault::new(env.pool.clone(), keys)
        .open_opt(stored.as_deref())
        .await
        .unwrap()
}

/// Every topic's records (committed or not) and every table's rows that
/// hold `needle` in the clear, as `topic` / `table` names.
pub async fn where_in_clear(env: &TestEnv, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for def in schemas::topics::ALL {
        let hits = env
            .read_topic(def, false)
            .await
            .iter()
            .filter(|r| {
                [&r.key, &r.value].iter().any(|b| {
                    b.as_deref()
                        .is_some_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                })
            })
            .count();
        if hits > 0 {
            found.push(format!("topic {} ({hits})", def.name));
        }
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "orders"), "{tables:?}");
    for table in tables {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" t WHERE t::text ILIKE '%' || $1 || '%'"
        ))
        .bind(needle)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        if hits > 0 {
            found.push(format!("table {table} ({hits})"));
        }
    }
    found
}

/// The pseudonym every topic and table knows the user of token subject
/// `sub` by (`platform::pii::Pseudonyms::user`), under the key the stack
/// made in this environment's `pii_keys`.
pub async fn pseudonym(env: &TestEnv, sub: &str) -> String {
    let keys = platform::pii::Keyring::parse(ingress::TEST_PII_MASTER_KEYS).unwrap();
    platform::pii::Vault::new(env.pool.clone(), keys)
        .pseudonyms()
        .await
        .unwrap()
        .user(sub)
}

/// A token for `sub` with `role`, valid for `ttl_secs` (negative: expired).
pub fn token(sub: &str, role: &str, ttl_secs: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "sub": sub, "role": role, "exp": now + ttl_secs,
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE,
    });
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
        TestEnv::new_with(|_| {}).await
    }

    /// As [`TestEnv::new`], with the configuration adjusted first: a test
    /// that runs its own broker or Postgres points the environment at it.
    pub async fn new_with(adjust: impl FnOnce(&mut PipelineConfig)) -> TestEnv {
        platform::telemetry::init("tests");
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let mut config = PipelineConfig::from_env().expect("pipeline config");
        adjust(&mut config);
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
        platform::kafka::create_topics(&config.kafka_brokers, &config.topics, topics::ALL, None)
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
        self.send_to(token, command).await.1
    }

    /// As [`TestEnv::send`]; returns the command's partition and offset.
    pub async fn send_to(&self, token: &CartToken, command: CartCmd) -> (i32, i64) {
        let cmd = CartCommand {
            command_id: uuid::Uuid::new_v4().to_string(),
            cart_token: token.as_str().into(),
            // Real time: the processor's expiry timer compares it with its clock.
            issued_at: chrono::Utc::now().timestamp_millis(),
            command,
            // Unstamped, as an older ingress wrote them: priced from the
            // processor's tables as they are.
            tables_at: None,
        };
        let key = Codec::encode_key(token.as_str());
        let value = self.codec.encode(&CART_COMMANDS, &cmd).await.unwrap();
        let topic = self.config.topics.name(&CART_COMMANDS.def);
        let headers = platform::kafka::trace_headers("test-correlation", &cmd.command_id);
        self.producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map(|d| (d.partition, d.offset))
            .unwrap()
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
        spawn_stage(
            "cart processor",
            processors::cart::service::run_with(
                config,
                settings,
                "127.0.0.1:0".parse().unwrap(),
                stop,
            ),
        );
    }

    /// The order processor on the system clock, 30-minute payment tokens.
    pub fn spawn_order_processor(&self) {
        self.spawn_order_processor_with(processors::order::service::Settings {
            policy: rules::order::OrderPolicy::default(),
            tick: Duration::from_millis(200),
            clock: std::sync::Arc::new(processors::runner::SystemClock),
        });
    }

    pub fn spawn_order_processor_with(&self, settings: processors::order::service::Settings) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "order processor",
            processors::order::service::run_with(
                config,
                settings,
                "127.0.0.1:0".parse().unwrap(),
                stop,
            ),
        );
    }

    pub fn spawn_enrollment_processor(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "enrollment processor",
            processors::enrollment::service::run(config, "127.0.0.1:0".parse().unwrap(), stop),
        );
    }

    /// The invoice processor, issuing for [`test_supplier`].
    pub fn spawn_invoice_processor(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "invoice processor",
            processors::invoice::service::run_with(
                config,
                test_supplier(),
                "127.0.0.1:0".parse().unwrap(),
                stop,
            ),
        );
    }

    pub fn spawn_webhook_processor(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "webhook processor",
            processors::webhook::service::run(config, "127.0.0.1:0".parse().unwrap(), stop),
        );
    }

    /// The webhook retry stage, with `policy`, its timer looking every 50 ms.
    pub fn spawn_webhook_retry(&self, policy: processors::webhook::retry::RetryPolicy) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "webhook retry stage",
            processors::webhook::service::run_retry_with(
                config,
                policy,
                Duration::from_millis(50),
                Arc::new(processors::runner::SystemClock),
                "127.0.0.1:0".parse().unwrap(),
                stop,
            ),
        );
    }

    pub fn spawn_coupon_processor(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "coupon processor",
            processors::coupon::service::run(config, "127.0.0.1:0".parse().unwrap(), stop),
        );
    }

    /// The gateway simulator (Razorpay and Stripe, in memory) on a free
    /// port, sending its webhooks to the ingress at `ingress` if given;
    /// its base URL.
    pub async fn spawn_gateway_simulator(&self, ingress: Option<SocketAddr>) -> String {
        let mut config = sim_credentials().clone();
        if let Some(addr) = ingress {
            config.razorpay.webhook_url = Some(format!("http://{addr}/webhooks/razorpay"));
            config.stripe.webhook_url = Some(format!("http://{addr}/webhooks/stripe"));
        }
        let sim = gateway_simulator::Simulator::build(config)
            .await
            .expect("the simulator binds");
        let url = sim.url();
        let stop = self.stopped();
        spawn_stage("gateway simulator", async move {
            sim.run_until_stopped(stop)
                .await
                .map_err(anyhow::Error::from)
        });
        url
    }

    /// The gateway worker, its clients pointed at the simulator at `url`,
    /// with `retries` attempts per gateway.
    pub fn spawn_gateway_worker(&self, url: &str, retries: u32) {
        self.spawn_gateway_worker_with(test_gateways(url, retries, |_| {}));
    }

    pub fn spawn_gateway_worker_with(&self, gateways: processors::payments::worker::Gateways) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "gateway worker",
            processors::payments::service::run_with(
                config,
                std::sync::Arc::new(gateways),
                "127.0.0.1:0".parse().unwrap(),
                stop,
            ),
        );
    }

    pub fn spawn_sinks(&self) {
        let (config, stop) = (self.config.clone(), self.stopped());
        spawn_stage(
            "sinks",
            sinks::service::run("all", config, "127.0.0.1:0".parse().unwrap(), stop),
        );
    }

    pub async fn spawn_ingress(&self) -> SocketAddr {
        self.spawn_ingress_with(|_| {}).await
    }

    /// An ingress with its test configuration adjusted by `adjust`.
    pub async fn spawn_ingress_with(
        &self,
        adjust: impl FnOnce(&mut ingress::Config),
    ) -> SocketAddr {
        self.spawn_ingress_with_ops(adjust).await.0
    }

    /// As [`TestEnv::spawn_ingress_with`]: the API's address and the ops
    /// listener's.
    pub async fn spawn_ingress_with_ops(
        &self,
        adjust: impl FnOnce(&mut ingress::Config),
    ) -> (SocketAddr, SocketAddr) {
        let mut config =
            ingress::Config::for_tests(self.config.clone(), JWT_SECRET, webhook_config());
        adjust(&mut config);
        let app = ingress::Application::build(config)
            .await
            .expect("ingress builds");
        let (addr, ops) = (app.addr(), app.ops_addr());
        let stop = self.stopped();
        spawn_stage("ingress", app.run_until_stopped(stop));
        (addr, ops)
    }

    /// Starts `bin args` as a real process with this test's configuration.
    pub fn child(&self, bin: &str, args: &[&str]) -> ChildGuard {
        self.child_with(bin, args, &[])
    }

    /// As [`TestEnv::child`], with extra environment variables (fault
    /// knobs, timings). Its ops endpoints listen on a port of its own,
    /// [`ChildGuard::ops_port`].
    pub fn child_with(&self, bin: &str, args: &[&str], envs: &[(&str, &str)]) -> ChildGuard {
        let port = free_port();
        let mut all = vec![("OPS_ADDR", format!("127.0.0.1:{port}"))];
        all.extend(envs.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.spawn_child(bin, args, port, &all)
    }

    /// The `ingress` binary with its API on `port` (a free one if `None`),
    /// accepting [`JWT_SECRET`] tokens, with rate limits out of the way;
    /// `envs` come last and win. The guard's ops port is the ops
    /// listener's; the API's port comes with it.
    pub fn ingress_child(&self, port: Option<u16>, envs: &[(&str, &str)]) -> (ChildGuard, u16) {
        let port = port.unwrap_or_else(free_port);
        let ops = free_port();
        let mut all = vec![
            ("INGRESS_ADDR", format!("127.0.0.1:{port}")),
            ("OPS_ADDR", format!("127.0.0.1:{ops}")),
            ("RATE_LIMIT_API", "100000/100000".to_owned()),
            ("RATE_LIMIT_ADMIN", "100000/100000".to_owned()),
        ];
        all.extend(envs.iter().map(|(k, v)| (*k, (*v).to_owned())));
        (self.spawn_child("ingress", &[], ops, &all), port)
    }

    fn spawn_child(
        &self,
        bin: &str,
        args: &[&str],
        ops_port: u16,
        envs: &[(&str, String)],
    ) -> ChildGuard {
        let path = bin_path(bin);
        let mut command = Command::new(&path);
        command
            .args(args)
            .env("KAFKA_BROKERS", &self.config.kafka_brokers)
            .env("SCHEMA_REGISTRY_URL", &self.config.schema_registry_url)
            .env("DATABASE_URL", &self.config.database_url)
            .env("DATABASE_SCHEMA", &self.config.database_schema)
            .env("TOPIC_PREFIX", self.config.topics.prefix())
            .env(
                "RUST_LOG",
                std::env::var("CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (k, v) in secret_envs().iter().chain(envs) {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let label = format!("{bin} {}", args.join(" ")).trim().to_owned();
        eprintln!("started {label} (pid {}, ops port {ops_port})", child.id());
        ChildGuard::new(child, label, ops_port)
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

/// A child process killed when the guard is dropped (and by the panic hook
/// of [`fail_fast`] when the test process exits without unwinding).
pub struct ChildGuard(pub Child, ChildInfo);

struct ChildInfo {
    /// `bin args`, for messages.
    label: String,
    /// The port of its ops endpoints (`/metrics`, `/readyz`); the ingress
    /// serves them on its API port.
    ops_port: u16,
}

impl ChildGuard {
    fn new(child: Child, label: String, ops_port: u16) -> ChildGuard {
        register_pid(child.id());
        ChildGuard(child, ChildInfo { label, ops_port })
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The port of its ops endpoints (`/metrics`, `/readyz`); the ingress
    /// serves them on its API port.
    pub fn ops_port(&self) -> u16 {
        self.1.ops_port
    }

    /// `bin args`, for messages.
    pub fn label(&self) -> &str {
        &self.1.label
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed or committed.
    /// Returns whether the process was still running (a kill of a process
    /// that had already died proves nothing).
    pub fn kill9(&mut self) -> bool {
        let running = self.is_running();
        let _ = self.0.kill();
        let _ = self.0.wait();
        unregister_pid(self.0.id());
        running
    }

    /// SIGSTOP: the process keeps its sockets and its open transaction but
    /// runs no code (no heartbeats, no commits) until [`ChildGuard::sigcont`].
    pub fn sigstop(&mut self) {
        assert!(self.is_running(), "{} is not running", self.1.label);
        signal(self.pid(), "-STOP");
    }

    pub fn sigcont(&mut self) {
        signal(self.pid(), "-CONT");
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.1.ops_port)
    }

    /// One read of `/metrics`.
    pub async fn scrape(&self) -> Result<Scrape, String> {
        let res = http()
            .get(self.ops_url("/metrics"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("/metrics answered {}", res.status()));
        }
        res.text().await.map(Scrape).map_err(|e| e.to_string())
    }

    /// Waits until `/readyz` answers 200 (the process stays alive meanwhile).
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            assert!(
                self.is_running(),
                "{} exited before it was ready",
                self.1.label
            );
            let ready = http()
                .get(self.ops_url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{} not ready after {timeout:?}",
                self.1.label
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the stage's `metric` (a gauge labelled `stage`) reads
    /// `want`, e.g. `pipeline_assigned_partitions` = 4.
    pub async fn wait_gauge(&mut self, metric: &str, stage: &str, want: f64, timeout: Duration) {
        let started = Instant::now();
        let mut last = None;
        loop {
            assert!(self.is_running(), "{} exited", self.1.label);
            if let Ok(s) = self.scrape().await {
                last = s.get(metric, stage);
                if last == Some(want) {
                    return;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "{}: {metric}{{stage={stage:?}}} is {last:?}, not {want}, after {timeout:?}",
                self.1.label
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `stage` provably holds work in flight: it is assigned
    /// partitions and has records in an open batch (a transaction, or a
    /// sink's Postgres transaction) that began after an earlier read of
    /// `/metrics` sent at [`InFlight::began_after`]: that read saw no batch
    /// open, or fewer batches done. The child must run with
    /// `FAULT_HOLD_BATCH_MS` = `hold`: every batch then commits no sooner
    /// than `hold` after it began, so a kill sooner than `hold` after
    /// `began_after` lands before that batch's commit.
    pub async fn await_in_flight(
        &mut self,
        stage: &str,
        hold: Duration,
        timeout: Duration,
    ) -> InFlight {
        let started = Instant::now();
        // (when the read was sent, batches done, records open)
        let mut before: Option<(Instant, f64, f64)> = None;
        let mut last = String::from("no /metrics answer yet");
        loop {
            assert!(self.is_running(), "{} exited while waited on", self.1.label);
            assert!(
                started.elapsed() < timeout,
                "{}: no batch in flight within {timeout:?} ({last})",
                self.1.label
            );
            let sent = Instant::now();
            match self.scrape().await {
                Ok(s) => {
                    let assigned = s.get("pipeline_assigned_partitions", stage).unwrap_or(0.0);
                    let open = s.get("pipeline_uncommitted_records", stage).unwrap_or(0.0);
                    let batches = s.get("pipeline_batch_seconds_count", stage).unwrap_or(0.0);
                    last = format!("assigned {assigned}, uncommitted {open}, batches {batches}");
                    if let Some((at, batches_then, open_then)) = before {
                        let began_since = batches_then < batches || open_then == 0.0;
                        if assigned > 0.0 && open > 0.0 && began_since && at.elapsed() < hold / 2 {
                            return InFlight {
                                stage: stage.to_owned(),
                                assigned,
                                uncommitted: open,
                                began_after: at,
                                hold,
                            };
                        }
                    }
                    before = Some((sent, batches, open));
                }
                Err(e) => {
                    last = e;
                    before = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`ChildGuard::await_in_flight`], then SIGKILL a quarter of `hold`
    /// later (see [`settle`]); panics unless the kill provably landed
    /// inside the open batch (see [`InFlight`]).
    pub async fn kill9_in_flight(
        &mut self,
        stage: &str,
        hold: Duration,
        timeout: Duration,
    ) -> InFlight {
        let seen = self.await_in_flight(stage, hold, timeout).await;
        settle(&seen).await;
        assert!(self.kill9(), "{} was running when killed", self.1.label);
        seen.assert_landed(&self.1.label, "SIGKILL");
        seen
    }

    /// As [`ChildGuard::kill9_in_flight`], with SIGSTOP.
    pub async fn sigstop_in_flight(
        &mut self,
        stage: &str,
        hold: Duration,
        timeout: Duration,
    ) -> InFlight {
        let seen = self.await_in_flight(stage, hold, timeout).await;
        settle(&seen).await;
        self.sigstop();
        seen.assert_landed(&self.1.label, "SIGSTOP");
        seen
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too.
        let _ = self.kill9();
    }
}

/// Waits a quarter of the batch's hold after it was seen open: its work
/// (milliseconds) is done and its records sent, so the signal lands on a
/// transaction with records in the log, not on one still being filled. The
/// batch was seen less than half its hold after it began, so three
/// quarters leave a margin before its commit (which [`InFlight::assert_landed`]
/// checks).
pub async fn settle(seen: &InFlight) {
    tokio::time::sleep(seen.hold / 4).await;
}

/// What a test saw right before it killed (or stopped) a stage.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub stage: String,
    pub assigned: f64,
    pub uncommitted: f64,
    /// The open batch began after this instant.
    pub began_after: Instant,
    /// The batch's hold (`FAULT_HOLD_BATCH_MS`): it commits no sooner than
    /// this after it began.
    pub hold: Duration,
}

impl InFlight {
    /// Panics unless the signal (sent just now) came less than `hold` after
    /// `began_after`, so the batch seen open had not committed yet.
    pub fn assert_landed(&self, label: &str, what: &str) {
        let after = self.began_after.elapsed();
        assert!(
            after < self.hold,
            "{what} of {label} came {after:?} after the batch could have begun, not within its hold of {:?}: it may have committed",
            self.hold
        );
        eprintln!(
            "{what} {label}: {} partitions assigned, {} records uncommitted in a batch begun less than {after:?} earlier (hold {:?})",
            self.assigned, self.uncommitted, self.hold
        );
    }
}

/// The text of a `/metrics` answer.
#[derive(Debug, Clone)]
pub struct Scrape(pub String);

impl Scrape {
    /// The value of the series `name{..., stage="<stage>", ...}`.
    pub fn get(&self, name: &str, stage: &str) -> Option<f64> {
        let label = format!("stage=\"{stage}\"");
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, labels) = series.split_once('{')?;
                let labels = labels.strip_suffix('}')?;
                if metric == name && labels.split(',').any(|l| l == label) {
                    value.parse().ok()
                } else {
                    None
                }
            })
    }
}

/// A client for ops endpoints: short timeouts (a stopped or dying process
/// must not hang the test).
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client")
    })
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A port free on 127.0.0.1 right now: bound, read and released, and
/// never handed out twice by this process (the kernel readily gives a
/// just-released port again, before the child it was meant for bound it).
/// Another process could still take it; the child then fails to start and
/// the test says so.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding a free port")
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

// ---------------------------------------------------------------------------
// Failing at once
// ---------------------------------------------------------------------------

/// Processes this test started, killed by the panic hook before it exits.
fn pids() -> &'static Mutex<Vec<u32>> {
    static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    &PIDS
}

pub fn register_pid(pid: u32) {
    if let Ok(mut p) = pids().lock() {
        p.push(pid);
    }
}

pub fn unregister_pid(pid: u32) {
    if let Ok(mut p) = pids().lock() {
        p.retain(|q| *q != pid);
    }
}

/// From now on any panic in this process, on any thread or task, fails the
/// test at once: the default hook prints it, the children are killed, and
/// the process exits with 101. Tokio would otherwise keep a panic inside a
/// spawned task to its `JoinHandle`, which nobody awaits.
pub fn fail_fast() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            exit_failing("a panic");
        }));
    });
}

fn exit_failing(why: &str) -> ! {
    let children: Vec<u32> = pids().lock().map(|p| p.clone()).unwrap_or_default();
    for pid in &children {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    servers::cleanup_all();
    eprintln!(
        "test harness: {why}; failing the test now (killed {} child processes)",
        children.len()
    );
    std::process::exit(101);
}

/// Runs an in-process stage; if it fails or panics, the test fails at once.
/// The gateways as the worker calls them, at the simulator at `url`:
/// `retries` attempts per gateway with short waits, a 5 s client timeout,
/// the default routing and breaker; `adjust` changes what a test needs.
pub fn test_gateways(
    url: &str,
    retries: u32,
    adjust: impl FnOnce(&mut TestGateways),
) -> processors::payments::worker::Gateways {
    use gateways::{razorpay, stripe};
    let credentials = sim_credentials();
    let mut t = TestGateways {
        timeout: Duration::from_secs(5),
        routing: processors::payments::routing::Routing::default(),
        breaker: processors::payments::breaker::BreakerPolicy::default(),
    };
    adjust(&mut t);
    processors::payments::worker::Gateways::new(
        razorpay::Client::new(razorpay::Config {
            base_url: url.to_owned(),
            key_id: credentials.razorpay.key_id.clone(),
            key_secret: credentials.razorpay.key_secret.clone(),
            timeout: t.timeout,
        })
        .unwrap(),
        stripe::Client::new(stripe::Config {
            base_url: url.to_owned(),
            secret_key: credentials.stripe.secret_key.clone(),
            timeout: t.timeout,
        })
        .unwrap(),
        t.routing,
        gateways::retry::Policy {
            max_attempts: retries,
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        t.breaker,
        "https://shop.example/back".into(),
    )
}

/// What a test may change of [`test_gateways`].
pub struct TestGateways {
    pub timeout: Duration,
    pub routing: processors::payments::routing::Routing,
    pub breaker: processors::payments::breaker::BreakerPolicy,
}

pub fn spawn_stage<F>(name: &'static str, stage: F)
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fail_fast();
    tokio::spawn(async move {
        if let Err(e) = stage.await {
            eprintln!("in-process {name} failed: {e:#}");
            exit_failing(&format!("the in-process {name} failed"));
        }
    });
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

/// One record as the broker holds it, read back for inspection.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl TestEnv {
    /// Every committed record of this test's `topic`, decoded.
    pub async fn decoded<V: serde::de::DeserializeOwned>(
        &self,
        topic: &schemas::Topic<V>,
    ) -> Vec<V> {
        let mut out = Vec::new();
        for record in self.read_topic(&topic.def, true).await {
            out.push(
                self.codec
                    .decode(topic, record.value.as_deref())
                    .await
                    .expect("a record of ours decodes"),
            );
        }
        out
    }

    /// Every record of this test's `topic`, read to the end of each
    /// partition: with `committed`, as the stages read (`read_committed`);
    /// without, everything written, records of aborted and still open
    /// transactions included (`read_uncommitted`).
    pub async fn read_topic(&self, def: &schemas::TopicDef, committed: bool) -> Vec<RawRecord> {
        let brokers = self.config.kafka_brokers.clone();
        let topic = self.config.topics.name(def);
        let partitions = def.partitions;
        tokio::task::spawn_blocking(move || {
            let isolation = if committed {
                "read_committed"
            } else {
                "read_uncommitted"
            };
            let reader: rdkafka::consumer::BaseConsumer = platform::kafka::reader_config(&brokers)
                .set("isolation.level", isolation)
                .create()
                .unwrap();
            let mut out = Vec::new();
            for partition in 0..partitions {
                platform::kafka::read_partition(
                    &reader,
                    &topic,
                    partition,
                    rdkafka::Offset::Beginning,
                    Duration::from_secs(60),
                    |m| {
                        use rdkafka::Message;
                        out.push(RawRecord {
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key().map(<[u8]>::to_vec),
                            value: m.payload().map(<[u8]>::to_vec),
                        })
                    },
                )
                .unwrap();
            }
            out
        })
        .await
        .unwrap()
    }

    /// The cart commands on this test's `cart.commands` (see
    /// [`TestEnv::read_topic`] for `committed`), with their partition and
    /// offset.
    pub async fn commands_in_log(&self, committed: bool) -> Vec<(i32, i64, CartCommand)> {
        let mut out = Vec::new();
        for r in self.read_topic(&CART_COMMANDS.def, committed).await {
            let cmd = self
                .codec
                .decode(&CART_COMMANDS, r.value.as_deref())
                .await
                .unwrap();
            out.push((r.partition, r.offset, cmd));
        }
        out
    }
}

impl TestEnv {
    /// Waits until every transaction open on `topic` now has ended
    /// (committed or aborted): the last stable offset of each partition
    /// (what `read_committed` readers may read) reaches the high watermark
    /// it has at the call. A transaction left open by a stopped or killed
    /// producer ends only when its coordinator aborts it
    /// (`transaction.timeout.ms`) or the producer is fenced.
    pub async fn wait_transactions_settled(&self, def: &schemas::TopicDef, timeout: Duration) {
        let brokers = self.config.kafka_brokers.clone();
        let topic = self.config.topics.name(def);
        let partitions = def.partitions;
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::Consumer;
            let watermarks = |isolation: &str| {
                let c: rdkafka::consumer::BaseConsumer = platform::kafka::reader_config(&brokers)
                    .set("isolation.level", isolation)
                    .create()
                    .unwrap();
                let topic = topic.clone();
                move || -> Vec<i64> {
                    (0..partitions)
                        .map(|p| {
                            c.fetch_watermarks(&topic, p, Duration::from_secs(10))
                                .unwrap()
                                .1
                        })
                        .collect()
                }
            };
            let high = watermarks("read_uncommitted")();
            let stable = watermarks("read_committed");
            let started = Instant::now();
            loop {
                let now = stable();
                if now.iter().zip(&high).all(|(s, h)| s >= h) {
                    return;
                }
                assert!(
                    started.elapsed() < timeout,
                    "transactions still open after {timeout:?}: stable {now:?}, high {high:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .await
        .unwrap()
    }
}
