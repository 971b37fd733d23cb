//! Reading a whole topic, for the operator commands that inspect one (the
//! dead letters, the order outcomes a fault run counts).

use std::time::Duration;

use rdkafka::{Message, Offset};
use serde::de::DeserializeOwned;

use platform::config::PipelineConfig;
use schemas::Topic;

/// Every record of `topic` (committed ones: the reader is
/// `read_committed`), decoded, with its key, partition by partition.
pub async fn read_all<V: DeserializeOwned>(
    config: &PipelineConfig,
    topic: &'static Topic<V>,
) -> anyhow::Result<Vec<(String, V)>> {
    let codec = schemas::Codec::new(
        &config.schema_registry_url,
        config.topics.clone(),
        schemas::topics::ALL,
    )?;
    let name = config.topics.name(&topic.def);
    let brokers = config.kafka_brokers.clone();
    let partitions = topic.def.partitions;
    let raw = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let reader = platform::kafka::reader(&brokers)?;
        let mut out = Vec::new();
        for p in 0..partitions {
            platform::kafka::read_partition(
                &reader,
                &name,
                p,
                Offset::Beginning,
                Duration::from_secs(60),
                |m| {
                    if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                        out.push((k.to_vec(), v.to_vec()));
                    }
                },
            )?;
        }
        Ok(out)
    })
    .await??;
    let mut records = Vec::with_capacity(raw.len());
    for (k, v) in raw {
        let key = schemas::Codec::decode_key(&topic.def, Some(&k))?;
        records.push((key, codec.decode(topic, Some(&v)).await?));
    }
    Ok(records)
}

/// `checkoutctl outcomes`: every order's outcomes on `order.events`, and
/// those written more than once (an order paid twice, failed twice): a
/// fault run requires none. Prints `outcomes: N events, R repeated` last.
pub async fn outcomes(config: &PipelineConfig) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let events = read_all(config, &schemas::topics::ORDER_EVENTS).await?;
    let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (_, e) in &events {
        *seen
            .entry((e.order_token.clone(), format!("{:?}", e.kind)))
            .or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    for ((order, kind), n) in &repeated {
        println!("repeated: order {order} {kind} × {n}");
    }
    println!(
        "outcomes: {} events, {} repeated",
        events.len(),
        repeated.len()
    );
    Ok(())
}

/// `checkoutctl invoices`: the sales register on `invoice.documents`
/// checked whole (`rules::invoice::register_problems`: every series 1..N
/// without gap or repeat, one invoice and at most one credit note per
/// order, each credit note against its order's invoice). Prints each
/// problem, then `invoices: I tax invoices, C credit notes, P problems`.
pub async fn invoices(config: &PipelineConfig) -> anyhow::Result<()> {
    use schemas::records::invoices::DocumentKind;
    let documents: Vec<_> = read_all(config, &schemas::topics::INVOICE_DOCUMENTS)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let problems = rules::invoice::register_problems(&documents);
    for p in &problems {
        println!("problem: {p}");
    }
    let count = |k| documents.iter().filter(|d| d.kind == k).count();
    println!(
        "invoices: {} tax invoices, {} credit notes, {} problems",
        count(DocumentKind::TaxInvoice),
        count(DocumentKind::CreditNote),
        problems.len()
    );
    Ok(())
}
