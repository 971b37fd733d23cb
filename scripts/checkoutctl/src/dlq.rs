//! `checkoutctl dlq list | show KEY | replay KEY`: the dead-letter topic,
//! where stages put records they could not take (see `platform::stage`).
//!
//! A dead letter's key is `<topic>/<partition>/<offset>` of the record it
//! holds. Replaying writes the original key, value and headers back to the
//! source topic (with a `replayed-from` header): once the cause is fixed (a
//! schema registered, a row the constraint wanted), the stage takes it as
//! any other record.

use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use platform::config::PipelineConfig;
use schemas::records::dead_letter::DeadLetter;
use schemas::topics::DEAD_LETTERS;

pub async fn run(config: &PipelineConfig, args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: checkoutctl dlq list | show KEY | replay KEY";
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("list"), None) => {
            let letters = read_all(config).await?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for (key, d) in &letters {
                println!(
                    "{key}\t{}\t{}\t{}\t{}",
                    d.stage,
                    d.kind,
                    d.failed_at,
                    d.reason.chars().take(120).collect::<String>()
                );
            }
            Ok(())
        }
        (Some("show"), Some(key)) => {
            let d = find(config, key).await?;
            let json = serde_json::json!({
                "key": key,
                "stage": d.stage,
                "kind": d.kind,
                "reason": d.reason,
                "source": {"topic": d.source_topic, "partition": d.source_partition, "offset": d.source_offset},
                "correlation_id": d.correlation_id,
                "failed_at": d.failed_at,
                "headers": d.headers,
                "record_key": d.key.as_deref().map(String::from_utf8_lossy),
                "record_value_hex": d.value.as_deref().map(hex),
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        (Some("replay"), Some(key)) => {
            let d = find(config, key).await?;
            let producer = platform::kafka::producer(&config.kafka_brokers)?;
            let mut headers = OwnedHeaders::new();
            for (k, v) in &d.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            headers = headers.insert(Header {
                key: "replayed-from",
                value: Some(key),
            });
            let mut rec = FutureRecord::to(&d.source_topic)
                .partition(d.source_partition)
                .headers(headers);
            if let Some(k) = &d.key {
                rec = rec.key(k);
            }
            if let Some(v) = &d.value {
                rec = rec.payload(v);
            }
            let delivery = producer
                .send(rec, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("replay not produced: {e}"))?;
            println!(
                "replayed {key} to {} partition {} offset {}",
                d.source_topic, delivery.partition, delivery.offset
            );
            Ok(())
        }
        _ => anyhow::bail!(usage),
    }
}

async fn find(config: &PipelineConfig, key: &str) -> anyhow::Result<DeadLetter> {
    read_all(config)
        .await?
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, d)| d)
        .with_context(|| format!("no dead letter {key} (see checkoutctl dlq list)"))
}

/// Every dead letter, oldest first, with its key.
async fn read_all(config: &PipelineConfig) -> anyhow::Result<Vec<(String, DeadLetter)>> {
    crate::topic::read_all(config, &DEAD_LETTERS).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
