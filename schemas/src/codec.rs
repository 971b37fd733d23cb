//! The Confluent wire format for values: magic byte 0, the 4-byte
//! big-endian schema id, then the Avro binary body. Keys are plain UTF-8
//! (see [`crate::topics`]).
//!
//! Encoding and decoding go through `schema_registry_converter`, which
//! caches schemas by subject and id, so after start-up a record costs no
//! registry round trip. Subjects follow TopicNameStrategy
//! (`<topic>-value`) and are registered from the `.avsc` files at start-up
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

    /// Registers the value subjects of `topics` (idempotent: an identical
    /// schema keeps its id and version).
    pub async fn register(&self, topics: &[TopicDef]) -> Result<(), CodecError> {
        for def in topics {
            let strategy = self.strategy(def);
            let subject = strategy.get_subject().map_err(CodecError::from_registry)?;
            self.encoder
                .get_schema_and_id(&subject, strategy)
                .await
                .map_err(CodecError::from_registry)?;
        }
        Ok(())
    }

    /// A key's bytes: the entity id as UTF-8, nothing else.
    pub fn encode_key(key: &str) -> Vec<u8> {
        key.as_bytes().to_vec()
    }

    /// The entity id a key's bytes hold.
    pub fn decode_key(def: &TopicDef, bytes: Option<&[u8]>) -> Result<String, CodecError> {
        let bytes = bytes.ok_or_else(|| CodecError::Malformed {
            what: format!("{} key", def.name),
            reason: "no key".into(),
        })?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::Malformed {
            what: format!("{} key", def.name),
            reason: format!("not UTF-8: {e}"),
        })
    }

    pub async fn encode<V: Serialize>(
        &self,
        topic: &Topic<V>,
        value: &V,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_with(&topic.def, value).await
    }

    pub async fn decode<V: DeserializeOwned>(
        &self,
        topic: &Topic<V>,
        bytes: Option<&[u8]>,
    ) -> Result<V, CodecError> {
        let def = &topic.def;
        let what = || format!("{} value", def.name);
        check_framing(bytes).map_err(|reason| CodecError::Malformed {
            what: what(),
            reason,
        })?;
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
        item: impl Serialize,
    ) -> Result<Vec<u8>, CodecError> {
        let strategy = self.strategy(def);
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

    /// The framing was checked before, so what fails here is either the
    /// registry (unreachable, a server error, an answer it could not parse:
    /// all transient, never a reason to drop a record) or the body itself.
    /// Only a registry that positively says the schema id does not exist
    /// (404) makes the record undecodable.
    fn decode_error(&self, e: SRCError, what: String) -> CodecError {
        let text = e.to_string();
        // Non-retriable registry errors are cached by the decoder; clear
        // them so a registry that comes back is asked again.
        self.decoder.remove_errors_from_cache();
        if registry_failure(&text) && !text.contains("status 404") {
            CodecError::Unavailable(text)
        } else {
            CodecError::Malformed { what, reason: text }
        }
    }

    fn strategy(&self, def: &TopicDef) -> SubjectNameStrategy {
        SubjectNameStrategy::TopicNameStrategyWithSchema(
            self.names.name(def),
            false,
            SuppliedSchema::new(None, SchemaType::Avro, def.value_schema.to_owned()),
        )
    }
}

/// Whether `schema_registry_converter`'s error text is about talking to
/// the registry rather than about the record's bytes. The crate marks
/// only connection failures and 502/503 as retriable; a 500, a 429 or an
/// unparsable answer arrive as "non-retriable" although the record is fine.
fn registry_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "schema registry",
        "http call",
        "http request",
        "response",
        "parse to",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}

/// A value in the Confluent wire format has the magic byte 0 and a schema
/// id before its body; anything else is not ours, whatever the registry.
fn check_framing(bytes: Option<&[u8]>) -> Result<(), String> {
    match bytes {
        None => Err("no payload (a tombstone)".into()),
        Some(b) if b.len() < 5 => Err(format!("{} bytes, shorter than the wire header", b.len())),
        Some(b) if b[0] != 0 => Err(format!("magic byte {} instead of 0", b[0])),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_trouble_is_transient_and_bad_bytes_are_not() {
        // The texts schema_registry_converter 6 produces.
        for transient in [
            "Error: HTTP request to schema registry failed with status 500 Internal Server Error, was cause by ...",
            "Error: http call to schema registry failed, was cause by error sending request",
            "Error: could not parse to RawRegisteredSchema, was cause by EOF",
        ] {
            assert!(registry_failure(transient), "{transient}");
        }
        assert!(!registry_failure(
            "Error: Could not transform bytes using schema"
        ));
        assert!(check_framing(Some(&[1, 0, 0, 0, 1, 2])).is_err());
        assert!(check_framing(Some(&[0, 0, 0])).is_err());
        assert!(check_framing(None).is_err());
        assert!(check_framing(Some(&[0, 0, 0, 0, 1, 2])).is_ok());
    }

    #[test]
    fn keys_are_the_ids_utf8() {
        let def = crate::topics::CART_COMMANDS.def;
        assert_eq!(Codec::encode_key("abc"), b"abc");
        assert_eq!(Codec::decode_key(&def, Some(b"abc")).unwrap(), "abc");
        assert!(Codec::decode_key(&def, Some(&[0xff, 0xfe])).is_err());
        assert!(Codec::decode_key(&def, None).is_err());
    }
}
