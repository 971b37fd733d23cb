//! The topic catalog as a document: `docs/topics.md` is this module's
//! output (`checkoutctl topics-doc > docs/topics.md`), and a test fails
//! when the checked-in copy differs, so the page analytics tools read never
//! drifts from [`crate::topics::ALL`] and the `.avsc` files.

use std::fmt::Write;

use serde_json::Value;

use crate::topics::{Cleanup, TopicDef, ALL, KEEP_FOREVER};

/// The whole page, in Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Topic catalog\n\n\
         <!-- Generated from schemas/src/topics.rs and schemas/avro/ by \
         `checkoutctl topics-doc > docs/topics.md`; a test fails when it is out of date. -->\n\n\
         Every topic of the pipeline, as `schemas/src/topics.rs` declares it. Names carry the \
         deployment's `TOPIC_PREFIX` (empty in production). Keys are UTF-8 strings (the entity \
         id); values are Avro in Confluent's wire format, registered under `<topic>-value` \
         with BACKWARD compatibility. A changed topic keeps BACKWARD compatibility or gets a \
         new name.\n\n\
         | topic | value | partitions | cleanup | retention | what it holds |\n\
         |---|---|---|---|---|---|\n",
    );
    for def in ALL {
        let _ = writeln!(
            out,
            "| `{}` | [`{}`](#{}) | {} | {} | {} | {} |",
            def.name,
            schema_name(def),
            anchor(&schema_name(def)),
            def.partitions,
            def.cleanup.as_config(),
            retention(def),
            def.doc.replace('|', "\\|"),
        );
    }
    out.push_str("\n## Value schemas\n");
    let mut seen = Vec::new();
    for def in ALL {
        let name = schema_name(def);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let schema: Value = serde_json::from_str(def.value_schema).unwrap_or(Value::Null);
        let topics: Vec<String> = ALL
            .iter()
            .filter(|d| schema_name(d) == name)
            .map(|d| format!("`{}`", d.name))
            .collect();
        let _ = write!(out, "\n### {name}\n\nOn {}.", topics.join(", "));
        if let Some(doc) = schema["doc"].as_str() {
            let _ = write!(out, " {doc}");
        }
        out.push_str("\n\n| field | type | meaning |\n|---|---|---|\n");
        for field in schema["fields"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                field["name"].as_str().unwrap_or("?"),
                type_name(&field["type"]).replace('|', "\\|"),
                field["doc"]
                    .as_str()
                    .unwrap_or("")
                    .replace('|', "\\|")
                    .replace('\n', " "),
            );
        }
    }
    out
}

/// The value schema's full name, `namespace.Name`.
fn schema_name(def: &TopicDef) -> String {
    let schema: Value = serde_json::from_str(def.value_schema).unwrap_or(Value::Null);
    match (schema["namespace"].as_str(), schema["name"].as_str()) {
        (Some(ns), Some(name)) => format!("{ns}.{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => "?".to_owned(),
    }
}

/// A heading's anchor as the forges make it: lower case, dots dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn retention(def: &TopicDef) -> String {
    match (def.cleanup, def.retention_ms) {
        (Cleanup::Compact, _) => "latest per key".to_owned(),
        (_, Some(KEEP_FOREVER)) => "forever".to_owned(),
        (_, Some(86_400_000)) => "1 day".to_owned(),
        (_, Some(ms)) if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        (_, Some(ms)) => format!("{} h", ms / 3_600_000),
        (_, None) => "broker default".to_owned(),
    }
}

/// An Avro type, short: `string`, `long (timestamp-millis)`, `null | string`,
/// `array<Line>`, `map<string>`, a record's or enum's name.
fn type_name(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Array(union) => union.iter().map(type_name).collect::<Vec<_>>().join(" | "),
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("?");
            match kind {
                "array" => format!("array<{}>", type_name(&o["items"])),
                "map" => format!("map<{}>", type_name(&o["values"])),
                "record" | "enum" | "fixed" => {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or("?");
                    match o.get("symbols").and_then(Value::as_array) {
                        Some(symbols) => format!(
                            "enum {name} ({})",
                            symbols
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None => name.to_owned(),
                    }
                }
                _ => match o.get("logicalType").and_then(Value::as_str) {
                    Some(logical) => format!("{kind} ({logical})"),
                    None => kind.to_owned(),
                },
            }
        }
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_and_schema_is_on_the_page() {
        let page = markdown();
        for def in ALL {
            assert!(
                page.contains(&format!("| `{}` |", def.name)),
                "{}",
                def.name
            );
            assert!(page.contains(&format!("\n### {}\n", schema_name(def))));
        }
        assert!(!page.contains("| ? |"), "a schema without a name");
    }

    #[test]
    fn the_checked_in_catalog_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/topics.md");
        let checked_in = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; generate it with `checkoutctl topics-doc > docs/topics.md`")
        });
        assert!(
            checked_in == markdown(),
            "docs/topics.md is out of date with schemas/src/topics.rs or schemas/avro/: \
             regenerate it with `cargo run -p checkoutctl -- topics-doc > docs/topics.md`"
        );
    }

    #[test]
    fn types_read_short() {
        let t: Value = serde_json::from_str(
            r#"["null", {"type": "array", "items": {"type": "record", "name": "Line", "fields": []}}]"#,
        )
        .unwrap();
        assert_eq!(type_name(&t), "null | array<Line>");
        let t: Value =
            serde_json::from_str(r#"{"type": "long", "logicalType": "timestamp-millis"}"#).unwrap();
        assert_eq!(type_name(&t), "long (timestamp-millis)");
        assert_eq!(anchor("internhub.fx.FxRate"), "internhubfxfxrate");
    }
}
