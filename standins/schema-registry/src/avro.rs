//! Avro specifics: parsing submitted schemas (with references), deciding when
//! two submissions are the same schema, and the compatibility levels.

use std::fmt;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const AVRO: &str = "AVRO";

/// A reference to a schema registered under another subject, as in Confluent's
/// API: `name` is the Avro full name the referring schema uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A submitted schema after validation.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema_type: String,
    /// The text as submitted; stored and served back unchanged.
    pub text: String,
    pub references: Vec<Reference>,
    /// Equal for submissions that are the same schema. Built from the parsed
    /// schema serialised back to JSON, which drops formatting and key order but
    /// keeps defaults, docs, aliases and custom properties. Parsing Canonical
    /// Form alone would not do: it strips defaults, so a schema that only adds
    /// a default (a real evolution step) would be taken for the old one.
    pub identity: String,
    /// The schema with every reference inlined, for compatibility checks.
    pub resolved: Schema,
}

/// Parses `text` as Avro. `referenced` holds the texts of every schema it
/// references, directly or not (dependencies first).
pub fn parse(
    schema_type: Option<&str>,
    text: &str,
    references: Vec<Reference>,
    referenced: &[String],
) -> Result<ParsedSchema, ApiError> {
    let schema_type = schema_type.unwrap_or(AVRO).to_ascii_uppercase();
    if schema_type != AVRO {
        return Err(ApiError::InvalidSchema(format!(
            "schema type {schema_type} is not supported; this registry only serves AVRO"
        )));
    }
    if text.trim().is_empty() {
        return Err(ApiError::InvalidSchema("Empty schema".into()));
    }
    let invalid = |e: apache_avro::Error| ApiError::InvalidSchema(error_chain(&e));
    let (schema, schemata) = if referenced.is_empty() {
        (Schema::parse_str(text).map_err(invalid)?, Vec::new())
    } else {
        Schema::parse_str_with_list(text, referenced).map_err(invalid)?
    };
    let normalised = serde_json::to_string(&schema)
        .map_err(|e| ApiError::InvalidSchema(format!("cannot serialise the schema: {e}")))?;
    let refs_json = serde_json::to_string(&references).unwrap_or_default();
    let identity = format!("{schema_type}\n{refs_json}\n{normalised}");
    let mut resolved = schema;
    if !schemata.is_empty() {
        resolved.denormalize(&schemata).map_err(invalid)?;
    }
    Ok(ParsedSchema {
        schema_type,
        text: text.to_owned(),
        references,
        identity,
        resolved,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatibilityLevel {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const DEFAULT: CompatibilityLevel = CompatibilityLevel::Backward;

    /// Case-insensitive, as Confluent's `CompatibilityLevel.forName`.
    pub fn parse(s: &str) -> Option<CompatibilityLevel> {
        use CompatibilityLevel::*;
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "NONE" => None,
            "BACKWARD" => Backward,
            "BACKWARD_TRANSITIVE" => BackwardTransitive,
            "FORWARD" => Forward,
            "FORWARD_TRANSITIVE" => ForwardTransitive,
            "FULL" => Full,
            "FULL_TRANSITIVE" => FullTransitive,
            _ => return Option::None,
        })
    }

    pub fn as_str(self) -> &'static str {
        use CompatibilityLevel::*;
        match self {
            None => "NONE",
            Backward => "BACKWARD",
            BackwardTransitive => "BACKWARD_TRANSITIVE",
            Forward => "FORWARD",
            ForwardTransitive => "FORWARD_TRANSITIVE",
            Full => "FULL",
            FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether a new schema is checked against every live version, not only
    /// the latest.
    pub fn is_transitive(self) -> bool {
        use CompatibilityLevel::*;
        matches!(
            self,
            BackwardTransitive | ForwardTransitive | FullTransitive
        )
    }

    fn backward(self) -> bool {
        use CompatibilityLevel::*;
        matches!(self, Backward | BackwardTransitive | Full | FullTransitive)
    }

    fn forward(self) -> bool {
        use CompatibilityLevel::*;
        matches!(self, Forward | ForwardTransitive | Full | FullTransitive)
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks `new` against each of `olds` (version number, schema) in the
/// directions `level` asks for. Returns one message per failed check: empty
/// means compatible.
pub fn check(level: CompatibilityLevel, new: &Schema, olds: &[(i32, Schema)]) -> Vec<String> {
    let mut messages = Vec::new();
    for (version, old) in olds {
        if level.backward() {
            if let Some(why) = can_read(old, new) {
                messages.push(format!(
                    "{level}: the new schema cannot read data written with version {version}: {why}"
                ));
            }
        }
        if level.forward() {
            if let Some(why) = can_read(new, old) {
                messages.push(format!(
                    "{level}: version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
    }
    messages
}

/// `None` when a reader with `reader` can read everything written with
/// `writer`. A partial match (say, an enum symbol or union branch the reader
/// lacks) counts as incompatible, as in Confluent: some records would fail.
fn can_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "only some data could be read: the reader lacks an enum symbol or union branch the writer has"
                .into(),
        ),
        Err(e) => Some(error_chain(&e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"}]}"#;

    fn parsed(text: &str) -> ParsedSchema {
        parse(None, text, vec![], &[]).unwrap()
    }

    #[test]
    fn formatting_does_not_change_identity() {
        let spaced = r#"{ "namespace": "shop", "type": "record", "name": "Order",
            "fields": [ { "type": "string", "name": "id" } ] }"#;
        assert_eq!(parsed(V1).identity, parsed(spaced).identity);
    }

    #[test]
    fn a_default_changes_identity() {
        let with_default = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string","default":""}]}"#;
        assert_ne!(parsed(V1).identity, parsed(with_default).identity);
    }

    #[test]
    fn backward_accepts_a_field_with_default_and_rejects_one_without() {
        let old = parsed(V1).resolved;
        let ok = parsed(
            r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"n","type":"int","default":0}]}"#,
        );
        let bad = parsed(
            r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"}]}"#,
        );
        let olds = [(1, old)];
        assert!(check(CompatibilityLevel::Backward, &ok.resolved, &olds).is_empty());
        assert_eq!(
            check(CompatibilityLevel::Backward, &bad.resolved, &olds).len(),
            1
        );
        assert!(check(CompatibilityLevel::Forward, &bad.resolved, &olds).is_empty());
        assert!(check(CompatibilityLevel::None, &bad.resolved, &olds).is_empty());
    }

    #[test]
    fn rejects_non_avro_and_garbage() {
        assert!(matches!(
            parse(Some("PROTOBUF"), "syntax = \"proto3\";", vec![], &[]),
            Err(ApiError::InvalidSchema(_))
        ));
        assert!(matches!(
            parse(None, "{not json", vec![], &[]),
            Err(ApiError::InvalidSchema(_))
        ));
        assert!(matches!(
            parse(None, r#"{"type":"record","name":"X"}"#, vec![], &[]),
            Err(ApiError::InvalidSchema(_))
        ));
    }

    #[test]
    fn references_are_inlined_for_checks() {
        let money = r#"{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}"#;
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"shop.Money"}]}"#;
        let refs = vec![Reference {
            name: "shop.Money".into(),
            subject: "money".into(),
            version: 1,
        }];
        let p = parse(None, order, refs, &[money.to_owned()]).unwrap();
        assert!(serde_json::to_string(&p.resolved)
            .unwrap()
            .contains("cents"));
    }
}
