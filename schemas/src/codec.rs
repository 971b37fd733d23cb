//! The Confluent wire format: magic byte 0, the 4-byte big-endian schema id,
//! then the Avro binary body.
//!
//! Encoding and decoding go through `schema_registry_converter`, which
//! caches schemas by subject and id, so after start-up a record costs no
//! registry round trip. Subjects follow TopicNameStrategy (`<topic>-key`,
//! `<topic>-value`) and are registered from the `.avsc` files at start-up
//! ([`Codec::register`]), so a schema the registry refuses as incompatible
//! stops a service before it writes anything.
//!
//! Decoding reads with the writer's schema (fetched by id). When the writer
//! used this build's schema (the usual case) the value maps straight onto
//! the Rust record. Otherwise it is first resolved to this build's schema,
//! so an older or newer compatible writer is read correctly — with one
//! caveat of apache-avro 0.22: union branches are resolved by shape, not by
//! name, so two record branches of one union must never have the same
//! fields (a test on the command union guards this).

use std::collections::HashMap;
use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::topics::{Topic, TopicDef, TopicNames};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The registry could not be reached or answered with a server error:
    /// worth retrying, never a reason to drop a record.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refused (incompatible or invalid schema, unknown id).
    #[error("schema registry refused: {0}")]
    Refused(String),
    /// The bytes are not a record of the expected type (a poison record).
    #[error("cannot decode {what}: {reason}")]
    Malformed { what: String, reason: String },
    /// A record that does not fit its own schema: a bug in this build.
    #[error("cannot encode for {topic}: {reason}")]
    Encode { topic: String, reason: String },
    #[error("schema of {0} does not parse: {1}")]
    BadSchema(&'static str, String),
}

impl CodecError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, CodecError::Unavailable(_))
    }

    fn from_registry(e: SRCError) -> CodecError {
        let text = match &e.cause {
            Some(cause) => format!("{}: {}", e.error, cause),
            None => e.error.clone(),
        };
        if e.retriable {
            CodecError::Unavailable(text)
        } else {
            CodecError::Refused(text)
        }
    }
}

pub struct Codec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    names: TopicNames,
    /// This build's value schema per topic, the reader side of resolution.
    readers: HashMap<&'static str, (Schema, String)>,
    /// (writer schema id, topic) → whether the writer used this build's schema.
    same_as_reader: std::sync::Mutex<HashMap<(u32, &'static str), bool>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec for the given topics' prefix. Nothing is fetched until the
    /// first [`Codec::register`], encode or decode.
    pub fn new(
        registry_url: &str,
        names: TopicNames,
        topics: &[TopicDef],
    ) -> Result<Codec, CodecError> {
        let settings = SrSettings::new_builder(registry_url.trim_end_matches('/').to_owned())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(CodecError::from_registry)?;
        let mut readers = HashMap::new();
        for def in topics {
            let schema = Schema::parse_str(def.value_schema)
                .map_err(|e| CodecError::BadSchema(def.name, e.to_string()))?;
            let canonical = schema.canonical_form();
            readers.insert(def.name, (schema, canonical));
        }
        Ok(Codec {
            encoder: AvroEncoder::new(settings.clone()),
            decoder: AvroDecoder::new(settings),
            names,
            readers,
            same_as_reader: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn names(&self) -> &TopicNames {
        &self.names
    }

    /// Registers the key and value subjects of `topics` (idempotent: an
    /// identical schema keeps its id and version).
    pub async fn register(&self, topics: &[TopicDef]) -> Result<(), CodecError> {
        for def in topics {
            for is_key in [true, false] {
                let strategy = self.strategy(def, is_key);
                let subject = strategy.get_subject().map_err(CodecError::from_registry)?;
                self.encoder
                    .get_schema_and_id(&subject, strategy)
                    .await
                    .map_err(CodecError::from_registry)?;
            }
        }
        Ok(())
    }

    pub async fn encode_key(&self, def: &TopicDef, key: &str) -> Result<Vec<u8>, CodecError> {
        self.encode_with(def, true, key).await
    }

    pub async fn encode<V: Serialize>(
        &self,
        topic: &Topic<V>,
        value: &V,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_with(&topic.def, false, value).await
    }

    pub async fn decode_key(
        &self,
        def: &TopicDef,
        bytes: Option<&[u8]>,
    ) -> Result<String, CodecError> {
        let what = || format!("{} key", def.name);
        let decoded = self
            .decoder
            .decode(bytes)
            .await
            .map_err(|e| self.decode_error(e, what()))?;
        match decoded.value {
            apache_avro::types::Value::String(s) => Ok(s),
            other => Err(CodecError::Malformed {
                what: what(),
                reason: format!("expected a string, got {other:?}"),
            }),
        }
    }

    pub async fn decode<V: DeserializeOwned>(
        &self,
        topic: &Topic<V>,
        bytes: Option<&[u8]>,
    ) -> Result<V, CodecError> {
        let def = &topic.def;
        let what = || format!("{} value", def.name);
        let decoded = self
            .decoder
            .decode_with_schema(bytes)
            .await
            .map_err(|e| self.decode_error(e, what()))?
            .ok_or_else(|| CodecError::Malformed {
                what: what(),
                reason: "no payload (a tombstone)".into(),
            })?;
        let (reader, canonical) =
            self.readers
                .get(def.name)
                .ok_or_else(|| CodecError::Malformed {
                    what: what(),
                    reason: "topic not in this codec's catalog".into(),
                })?;
        let key = (decoded.schema.id, def.name);
        let cached = self
            .same_as_reader
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied());
        let same = match cached {
            Some(same) => same,
            None => {
                let same = decoded.schema.parsed.canonical_form() == *canonical;
                if let Ok(mut m) = self.same_as_reader.lock() {
                    m.insert(key, same);
                }
                same
            }
        };
        let value = if same {
            decoded.value
        } else {
            decoded
                .value
                .resolve(reader)
                .map_err(|e| CodecError::Malformed {
                    what: what(),
                    reason: e.to_string(),
                })?
        };
        apache_avro::from_value(&value).map_err(|e| CodecError::Malformed {
            what: what(),
            reason: e.to_string(),
        })
    }

    async fn encode_with(
        &self,
        def: &TopicDef,
        is_key: bool,
        item: impl Serialize,
    ) -> Result<Vec<u8>, CodecError> {
        let strategy = self.strategy(def, is_key);
        self.encoder
            .encode_struct(item, &strategy)
            .await
            .map_err(|e| {
                if e.retriable
                    || e.error.contains("registry")
                    || e.error.contains("id from response")
                {
                    CodecError::from_registry(e)
                } else {
                    CodecError::Encode {
                        topic: def.name.to_owned(),
                        reason: e.to_string(),
                    }
                }
            })
    }

    /// A missing or unreachable registry is transient; anything else about
    /// the bytes means the record itself is bad.
    fn decode_error(&self, e: SRCError, what: String) -> CodecError {
        if e.retriable {
            CodecError::Unavailable(e.to_string())
        } else {
            // Non-retriable registry errors are cached by the decoder; clear
            // them so a registry that comes back is used again.
            self.decoder.remove_errors_from_cache();
            CodecError::Malformed {
                what,
                reason: e.to_string(),
            }
        }
    }

    fn strategy(&self, def: &TopicDef, is_key: bool) -> SubjectNameStrategy {
        let schema = if is_key {
            def.key_schema
        } else {
            def.value_schema
        };
        SubjectNameStrategy::TopicNameStrategyWithSchema(
            self.names.name(def),
            is_key,
            SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned()),
        )
    }
}
