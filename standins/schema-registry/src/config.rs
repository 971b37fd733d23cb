//! Runtime configuration, read from the environment.

use std::net::SocketAddr;

use anyhow::Context;

const DEFAULT_ADDR: &str = "127.0.0.1:8081";
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/checkout";
const DEFAULT_DB_SCHEMA: &str = "schema_registry";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    pub database_url: String,
    /// The Postgres schema holding the registry's tables. Tests use a fresh one
    /// each so they can run in parallel against one database.
    pub db_schema: String,
}

impl Config {
    /// `REGISTRY_ADDR`, `DATABASE_URL`, `REGISTRY_DB_SCHEMA`, each with a
    /// default that works against the local development stack.
    pub fn from_env() -> anyhow::Result<Config> {
        let addr = env_or("REGISTRY_ADDR", DEFAULT_ADDR);
        let addr = addr
            .parse()
            .with_context(|| format!("REGISTRY_ADDR={addr:?} is not a socket address"))?;
        Ok(Config {
            addr,
            database_url: env_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            db_schema: env_or("REGISTRY_DB_SCHEMA", DEFAULT_DB_SCHEMA),
        })
    }
}

fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}
