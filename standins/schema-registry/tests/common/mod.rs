//! Test harness: a registry per test, on port 0, in its own fresh Postgres
//! schema of the database at `DATABASE_URL`, so tests run in parallel.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use schema_registry::{Application, Config};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct TestApp {
    pub url: String,
    pub db_schema: String,
    pub http: reqwest::Client,
    database_url: String,
    stop: Option<oneshot::Sender<()>>,
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/checkout".to_owned())
}

fn unique_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "sr_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn spawn() -> TestApp {
    spawn_in(&unique_schema()).await
}

/// A registry on an existing test schema: several instances sharing one
/// store, as in production.
pub async fn spawn_in(db_schema: &str) -> TestApp {
    let database_url = database_url();
    let db_schema = db_schema.to_owned();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        db_schema: db_schema.clone(),
    };
    let app = Application::build(config)
        .await
        .expect("the registry starts (is Postgres up at DATABASE_URL?)");
    let url = format!("http://{}", app.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        url,
        db_schema,
        http: reqwest::Client::new(),
        database_url,
        stop: Some(stop),
    }
}

impl TestApp {
    /// Stops the server and drops the test's Postgres schema. A failing test
    /// panics before this and leaves its schema (named `sr_test_*`) behind
    /// for inspection.
    pub async fn teardown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut conn = PgConnection::connect(&self.database_url).await.unwrap();
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.db_schema).as_str())
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Sends `body` (if any) as Confluent's clients do and returns the status
    /// and JSON answer, checking the content type on the way.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_eq!(content_type, CONTENT_TYPE, "content type of {path}");
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON {text:?}: {e}"));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Registers `schema` under `subject`; returns status and answer.
    pub async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{}/versions", encode(subject)),
            serde_json::json!({ "schema": schema, "schemaType": "AVRO" }),
        )
        .await
    }

    /// Registers and returns the id, failing the test on any error.
    pub async fn register_ok(&self, subject: &str, schema: &str) -> i64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, 200, "registering under {subject}: {body}");
        body["id"].as_i64().expect("an id")
    }
}

/// Escapes a subject for a path the way Confluent's clients do.
pub fn encode(subject: &str) -> String {
    subject.replace('%', "%25").replace('/', "%2F")
}

/// A record schema `shop.Order` with the given fields (JSON array text).
pub fn order_schema(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Order","namespace":"shop","fields":{fields}}}"#)
}
