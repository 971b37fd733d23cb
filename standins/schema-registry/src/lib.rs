//! A small Confluent-Schema-Registry-compatible service backed by Postgres.
//!
//! It serves the subset of the Confluent REST API that Avro serializers and
//! deserializers (Confluent's own clients, `schema_registry_converter`) use, so
//! the pipeline can run and be tested without a JVM.

pub mod avro;
pub mod config;
pub mod error;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use error::ApiError;
pub use startup::Application;
