//! Analytics tools read our topics directly: Confluent's own Python consumer
//! (read_committed) and AvroDeserializer, with the keys as plain strings,
//! must read every record of every topic the pipeline wrote, and the broker
//! must hold the transaction state topic the processors' transactions use.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestEnv, CATALOG};
use schemas::topics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_consumer_reads_every_topic_committed() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let mut expected = Vec::new();
    for _ in 0..3 {
        let (token, _) = env.create_cart().await;
        let last = env.add_item(&token, CATALOG[0].0, 2).await;
        expected.push((token, last));
    }
    env.wait_for_versions(&expected, Duration::from_secs(60))
        .await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("CHECKOUT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".local/venv/bin/python"));
    assert!(
        python.exists(),
        "no Python at {} (run scripts/test.sh)",
        python.display()
    );
    let names: Vec<String> = topics::ALL
        .iter()
        .map(|t| env.config.topics.name(t))
        .collect();
    let output = tokio::process::Command::new(&python)
        .arg(root.join("scripts/python/topics_confluent_read.py"))
        .arg(&env.config.kafka_brokers)
        .arg(&env.config.schema_registry_url)
        .args(&names)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok: __transaction_state exists"));
    let count = |topic: &str| -> usize {
        let name = env.config.topics.name(topic_def(topic));
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count for {name} in:\n{stdout}"))
    };
    assert_eq!(count("cart.commands"), 6, "3 creates and 3 add-items");
    assert_eq!(
        count("cart.snapshots"),
        6,
        "one snapshot per command, none from an aborted try"
    );
    assert_eq!(count("cart.processor-changelog"), 6);
    assert_eq!(count("catalog.internships"), CATALOG.len());
    // The first key printed is a cart token, as plain text.
    assert!(stdout.contains("all topics read with Confluent's deserializer"));
}

fn topic_def(name: &str) -> &'static schemas::TopicDef {
    topics::ALL
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the catalog"))
}
