//! `checkoutctl`: the operator commands the scripts run.
//!
//! - `wait [--timeout-secs N] [--brokers N]`: until Kafka (with at least N
//!   brokers in the cluster), the registry and Postgres answer;
//! - `migrate`: creates the database if needed and runs the read-model migrations;
//! - `create-topics`: creates every topic of the catalog (idempotent);
//! - `seed-catalog FILE`: publishes internships from a JSON file;
//! - `token --sub ID [--role user|admin] [--ttl-secs N]`: prints an HS256
//!   bearer token signed with `AUTH_JWT_HS256_SECRET` (development only);
//! - `bench [--url U] [--sessions N] [--seconds S] [--internship ID]`: the
//!   checkout-session benchmark (see `bench.rs`); `bench --journey [--buyers
//!   N] [--seconds S] [--warmup-secs W] [--simulator U] [--svg FILE]`: the whole journey, cart
//!   to enrollment (see `journey.rs`);
//! - `rebuild SINK [--compare]`: empties a sink's tables and replays its topic into them,
//!   with progress (stop the `sinks` service first);
//! - `dlq list | show KEY | replay KEY`: the dead letters (see `dlq.rs`);
//! - `outcomes`: the order outcomes on `order.events` written more than
//!   once (a fault run requires none);
//! - `invoices`: the sales register on `invoice.documents` checked whole:
//!   each series 1..N, one invoice per order, credit notes against them;
//! - `keys new-master ID`: prints a new master key for `PII_MASTER_KEYS`;
//!   `keys rotate`: re-wraps every personal data key under the first key
//!   of `PII_MASTER_KEYS` (see docs/personal-data.md);
//! - `topics-doc`: prints the topic catalog page (`docs/topics.md`) from
//!   `schemas/src/topics.rs` and the `.avsc` files.
//!
//! Configuration is the services' own (`KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`,
//! `DATABASE_URL`, `DATABASE_SCHEMA`, `TOPIC_PREFIX`).

mod bench;
mod cost;
mod dlq;
mod journey;
mod topic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::producer::FutureRecord;
use serde::Deserialize;

use platform::config::PipelineConfig;
use platform::ops::Readiness;
use schemas::records::catalog::Internship;
use schemas::records::WireMoney;
use schemas::topics::{self, CATALOG_INTERNSHIPS};
use schemas::values::InternshipId;
use schemas::{Codec, Currency};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("topics-doc") {
        // Before the logs start: the page is the whole of standard output.
        print!("{}", schemas::catalog_doc::markdown());
        return Ok(());
    }
    platform::telemetry::init("checkoutctl");
    let config = PipelineConfig::from_env()?;
    match args.first().map(String::as_str) {
        Some("wait") => {
            let (mut secs, mut brokers) = (60, 1);
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let value = rest.next().with_context(|| format!("{flag} needs a value"));
                match flag.as_str() {
                    "--timeout-secs" => secs = value?.parse()?,
                    "--brokers" => brokers = value?.parse()?,
                    other => anyhow::bail!("wait: unknown option {other}"),
                }
            }
            wait(&config, Duration::from_secs(secs), brokers).await
        }
        Some("keys") => keys(&config, &args[1..]).await,
        Some("migrate") => {
            let pool =
                platform::db::connect(&config.database_url, &config.database_schema, 2).await?;
            sinks::MIGRATOR.run(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Some("create-topics") => {
            platform::kafka::create_topics(
                &config.kafka_brokers,
                &config.topics,
                topics::ALL,
                config.replication_factor,
            )
            .await?;
            println!(
                "topics ready: {}",
                topics::ALL
                    .iter()
                    .map(|t| config.topics.name(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Some("token") => token(&args[1..]),
        Some("dlq") => dlq::run(&config, &args[1..]).await,
        Some("rebuild") => {
            let which = args.get(1).context(
                "usage: checkoutctl rebuild SINK [--compare] (a sink of `sinks all`, e.g. carts, orders, enrollments)",
            )?;
            let compare = args.iter().any(|a| a == "--compare");
            let started = Instant::now();
            let rebuilt = sinks::service::rebuild(which, config.clone(), compare, |done, total| {
                eprintln!(
                    "rebuild {which}: {done}/{total} records ({:.0}%, {:.1}s)",
                    if total == 0 {
                        100.0
                    } else {
                        done as f64 * 100.0 / total as f64
                    },
                    started.elapsed().as_secs_f64()
                )
            })
            .await?;
            println!("rebuilt {which}: {} records replayed", rebuilt.records);
            match rebuilt.differing {
                Some(d) if !d.is_empty() => {
                    anyhow::bail!(
                        "rebuilt {which} differs from the live tables: {}",
                        d.join("; ")
                    )
                }
                Some(_) => {
                    println!("rebuilt {which}: every table equals the live one, row for row")
                }
                None => {}
            }
            Ok(())
        }
        Some("bench") => bench::run(&args[1..]).await,
        Some("outcomes") => topic::outcomes(&config).await,
        Some("invoices") => topic::invoices(&config).await,
        Some("seed-catalog") => {
            seed(
                &config,
                args.get(1)
                    .context("usage: checkoutctl seed-catalog FILE")?,
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: checkoutctl wait [--timeout-secs N] | migrate | create-topics | seed-catalog FILE \
                 | token --sub ID [--role user|admin] [--ttl-secs N] | bench [--url U] [--sessions N] [--seconds S] \
                 | rebuild SINK | dlq list|show KEY|replay KEY | outcomes | invoices | topics-doc"
            );
            std::process::exit(2);
        }
    }
}

async fn wait(config: &PipelineConfig, timeout: Duration, brokers: usize) -> anyhow::Result<()> {
    let producer = platform::kafka::producer(&config.kafka_brokers)?;
    let database_url = config.database_url.clone();
    let kafka_brokers = config.kafka_brokers.clone();
    let readiness = Readiness::new()
        .kafka(producer)
        // Every node of a cluster registered, so topics get all their
        // replicas (a broker that listens may not have joined yet).
        .check("kafka brokers", move || {
            let bootstrap = kafka_brokers.clone();
            async move {
                let ids = platform::kafka::broker_ids(&bootstrap)
                    .await
                    .map_err(|e| e.to_string())?;
                if ids.len() >= brokers {
                    Ok(())
                } else {
                    Err(format!(
                        "{} of {brokers} brokers in the cluster ({ids:?})",
                        ids.len()
                    ))
                }
            }
        })
        .registry(config.schema_registry_url.clone())
        .check("postgres", move || {
            let url = database_url.clone();
            async move {
                use sqlx::Connection;
                let opts: sqlx::postgres::PgConnectOptions =
                    url.parse().map_err(|e: sqlx::Error| e.to_string())?;
                // The server answering is enough: `migrate` creates the database.
                let opts = opts.database("postgres");
                let c = sqlx::PgConnection::connect_with(&opts)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = c.close().await;
                Ok(())
            }
        });
    let started = Instant::now();
    loop {
        let results = readiness.run().await;
        let waiting: Vec<String> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect();
        if waiting.is_empty() {
            println!("kafka, schema registry and postgres answer");
            return Ok(());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("still waiting after {timeout:?}: {}", waiting.join("; "));
        }
        eprintln!(
            "waiting ({}s): {}",
            started.elapsed().as_secs(),
            waiting.join("; ")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedItem {
    internship_id: String,
    title: String,
    category: String,
    price_minor: i64,
    currency: String,
    #[serde(default = "standard")]
    tax_class: String,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    billing_periods: Vec<SeedPeriod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedPeriod {
    plan_id: String,
    value: i32,
    unit: String,
    price_minor: i64,
}

fn standard() -> String {
    "standard".into()
}

fn yes() -> bool {
    true
}

async fn seed(config: &PipelineConfig, file: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let items: Vec<SeedItem> =
        serde_json::from_str(&text).with_context(|| format!("parsing {file}"))?;
    let codec = Arc::new(Codec::new(
        &config.schema_registry_url,
        config.topics.clone(),
        topics::ALL,
    )?);
    codec.register(&[CATALOG_INTERNSHIPS.def]).await?;
    let producer = platform::kafka::producer(&config.kafka_brokers)?;
    let topic = config.topics.name(&CATALOG_INTERNSHIPS.def);
    let now = chrono_now_ms();
    for item in &items {
        InternshipId::parse(&item.internship_id)
            .with_context(|| format!("internship id {:?}", item.internship_id))?;
        anyhow::ensure!(
            item.price_minor >= 0,
            "{}: negative price",
            item.internship_id
        );
        let currency = Currency::parse(&item.currency)?;
        let record = Internship {
            internship_id: item.internship_id.clone(),
            title: item.title.clone(),
            category: item.category.clone(),
            base_price: WireMoney {
                amount_minor: item.price_minor,
                currency: currency.code().to_owned(),
            },
            tax_class: item.tax_class.clone(),
            active: item.active,
            updated_at: now,
            billing_periods: item
                .billing_periods
                .iter()
                .map(|p| schemas::records::catalog::BillingPeriod {
                    plan_id: p.plan_id.clone(),
                    value: p.value,
                    unit: if p.unit == "year" {
                        schemas::records::catalog::PeriodUnit::Year
                    } else {
                        schemas::records::catalog::PeriodUnit::Month
                    },
                    price: WireMoney {
                        amount_minor: p.price_minor,
                        currency: currency.code().to_owned(),
                    },
                })
                .collect(),
        };
        let key = schemas::Codec::encode_key(&record.internship_id);
        let value = codec.encode(&CATALOG_INTERNSHIPS, &record).await?;
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing {}: {e}", record.internship_id))?;
    }
    println!("published {} internships to {topic}", items.len());
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Mints a development token; the ingress verifies it with the same secret.
/// The issuer and audience the ingress requires (`AUTH_JWT_ISSUER`,
/// `AUTH_JWT_AUDIENCE`, which the run command sets), as `iss` and `aud`.
pub(crate) fn issued_for(claims: &mut serde_json::Value) {
    for (claim, var) in [("iss", "AUTH_JWT_ISSUER"), ("aud", "AUTH_JWT_AUDIENCE")] {
        if let Ok(value) = std::env::var(var) {
            claims[claim] = serde_json::Value::String(value);
        }
    }
}

fn token(args: &[String]) -> anyhow::Result<()> {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sub = flag("--sub").context("token needs --sub ID")?;
    let role = flag("--role").unwrap_or_else(|| "user".into());
    anyhow::ensure!(role == "user" || role == "admin", "--role is user or admin");
    let ttl: u64 = flag("--ttl-secs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(3600);
    let secret =
        std::env::var("AUTH_JWT_HS256_SECRET").context("AUTH_JWT_HS256_SECRET is not set")?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + ttl;
    let mut claims = serde_json::json!({ "sub": sub, "role": role, "exp": exp });
    issued_for(&mut claims);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?;
    println!("{token}");
    Ok(())
}

/// `keys new-master ID` | `keys rotate`.
async fn keys(config: &PipelineConfig, args: &[String]) -> anyhow::Result<()> {
    use platform::pii::{Keyring, Vault};
    match args.first().map(String::as_str) {
        Some("new-master") => {
            let id = args.get(1).context("keys new-master ID")?;
            anyhow::ensure!(
                !id.is_empty() && !id.contains([',', ':', '.']),
                "a master key id has no ',', ':' or '.'"
            );
            println!("{id}:{}", Keyring::generate_key());
            Ok(())
        }
        Some("rotate") => {
            let keyring = Keyring::from_env()?;
            let current = keyring.current().to_owned();
            let pool =
                platform::db::connect(&config.database_url, &config.database_schema, 2).await?;
            let n = Vault::new(pool, keyring).rotate().await?;
            println!("{n} data key(s) re-wrapped under master key {current}");
            Ok(())
        }
        _ => anyhow::bail!("keys new-master ID | keys rotate"),
    }
}
