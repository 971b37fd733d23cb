//! Configuration every service reads from its environment. Addresses and
//! tuning have the defaults of a local run; secrets ([`secret`]) have none,
//! in any mode: development gets them from `scripts/run.sh`, which
//! generates them, and tests generate their own.

use std::net::SocketAddr;

use schemas::TopicNames;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// `KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub kafka_brokers: String,
    /// `SCHEMA_REGISTRY_URL`: a Confluent-compatible registry.
    pub schema_registry_url: String,
    /// `DATABASE_URL`: the read model's Postgres database.
    pub database_url: String,
    /// `DATABASE_SCHEMA`: the Postgres schema holding the tables (tests use
    /// one per test; production leaves it `public`).
    pub database_schema: String,
    /// `TOPIC_PREFIX`: prepended to every topic and consumer group.
    pub topics: TopicNames,
    /// `KAFKA_REPLICATION_FACTOR`: copies of each topic this deployment
    /// creates; unset, min(3, the brokers the cluster reports).
    pub replication_factor: Option<i32>,
    /// `PROCESSOR_LINGER_MS` (default 2): how long a processor's batch
    /// waits for more records after its first, i.e. how many inputs share
    /// a transaction under light load (under load a batch fills while the
    /// previous commit is in flight anyway).
    pub processor_linger: std::time::Duration,
    /// `PROCESSOR_LINGER_MAX_MS` (default 100): how far that wait grows
    /// while a processor is busy: up to the time its previous batch took
    /// (see `platform::stage::Linger`). Equal to `PROCESSOR_LINGER_MS`, it
    /// never grows.
    pub processor_linger_max: std::time::Duration,
}

impl PipelineConfig {
    pub fn from_env() -> anyhow::Result<PipelineConfig> {
        Ok(PipelineConfig {
            kafka_brokers: var("KAFKA_BROKERS", "127.0.0.1:9092"),
            schema_registry_url: var("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            database_url: var(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/checkout",
            ),
            database_schema: var("DATABASE_SCHEMA", "public"),
            topics: TopicNames::new(var("TOPIC_PREFIX", "")),
            replication_factor: match var("KAFKA_REPLICATION_FACTOR", "").as_str() {
                "" => None,
                n => Some(
                    n.parse()
                        .map_err(|e| anyhow::anyhow!("KAFKA_REPLICATION_FACTOR={n}: {e}"))?,
                ),
            },
            processor_linger: millis("PROCESSOR_LINGER_MS", "2")?,
            processor_linger_max: millis("PROCESSOR_LINGER_MAX_MS", "100")?,
        })
    }
}

impl PipelineConfig {
    /// The codec for every topic of the catalog, with their subjects
    /// registered (a registry refusing a schema stops the service here; one
    /// that does not answer yet is waited for, see [`crate::startup`]).
    pub async fn codec(&self) -> anyhow::Result<std::sync::Arc<schemas::Codec>> {
        let codec = schemas::Codec::new(
            &self.schema_registry_url,
            self.topics.clone(),
            schemas::topics::ALL,
        )?;
        crate::startup::patiently(
            "the schema registry",
            crate::startup::wait_limit()?,
            schemas::CodecError::is_retriable,
            || codec.register(schemas::topics::ALL),
        )
        .await?;
        Ok(std::sync::Arc::new(codec))
    }
}

/// A duration in milliseconds, with a default.
fn millis(name: &str, default: &str) -> anyhow::Result<std::time::Duration> {
    let raw = var(name, default);
    Ok(std::time::Duration::from_millis(
        raw.parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw}: {e}"))?,
    ))
}

/// A variable with a default.
pub fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Where the secrets are explained; every "missing secret" message names it.
pub const SECRETS_DOC: &str = "docs/operations/configuration.md#secrets";

/// A secret (a key, a password, a signing secret): it has no default in
/// any mode, so a deployment that forgot one stops at start-up, naming
/// it, instead of running with a value anyone can read in our source.
pub fn secret(name: &str) -> anyhow::Result<String> {
    optional_secret(name)
        .ok_or_else(|| anyhow::anyhow!("{name} is not set: it has no default (see {SECRETS_DOC})"))
}

/// A secret that may be absent because another one can stand for it
/// (an HS256 secret or a JWKS file); the caller says which is required.
pub fn optional_secret(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A socket address variable with a default.
pub fn addr(name: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let raw = var(name, default);
    raw.parse()
        .map_err(|e| anyhow::anyhow!("{name}={raw}: {e}"))
}
