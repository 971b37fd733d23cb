//! A three-broker cluster loses nothing when a broker dies: buyers keep
//! adding items through the ingress while one broker after another (never
//! two at once) is killed with SIGKILL, left down for a while, and started
//! again on its data. Every write the ingress accepted must then be in
//! Postgres exactly once (add-item is not idempotent: a lost or doubled
//! command shows as a wrong quantity), and writes must have been accepted
//! and applied while a broker was down.
//!
//! It needs the cluster `KAFKA_NODES=3 scripts/test.sh` starts (topics with
//! three replicas and `min.insync.replicas=2`, producers with `acks=all`);
//! with one broker it is skipped, saying so:
//!
//!   KAFKA_NODES=3 scripts/test.sh -E 'binary(cluster)'
//!
//! The nodes come from `KAFKA_NODE_DIRS` and `KAFKA_NODE_PORTS`: a node is
//! found by its data directory's `server.pid` and started again with
//! `scripts/kafka server DIR PORT CONTROLLER_PORT` (the directory keeps its
//! node id and cluster). A node this test restarts outlives the test, in a
//! process group of its own, for the tests after it; `scripts/test.sh`
//! stops it by its directory.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use common::servers::repo_root;
use common::{Api, TestEnv, CATALOG};
use schemas::topics::CART_COMMANDS;
use schemas::values::CartToken;

/// Buyers writing at once, carts each.
const WRITERS: usize = 8;
const CARTS_PER_WRITER: usize = 3;
/// Brokers killed, one after the other.
const KILLS: usize = 2;
/// How long a killed broker stays down: well past the controller's
/// `broker.session.timeout.ms` (9 s), so its partitions move to new leaders
/// while it is gone, as when a machine dies, and the pipeline must go on
/// without it. (Writes to partitions it led wait out those 9 s; a
/// processor's transaction holding records for them times out after its
/// `message.timeout.ms`, 10 s, is aborted and done again.)
const DOWN: Duration = Duration::from_secs(30);

/// One node of the cluster `scripts/test.sh` started.
struct Node {
    id: usize,
    dir: PathBuf,
    port: u16,
    controller_port: u16,
}

impl Node {
    /// The pid of the node running on this directory, if one runs.
    fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let config = self.dir.join("server.properties");
        String::from_utf8_lossy(&cmdline)
            .contains(config.to_str()?)
            .then_some(pid)
    }

    /// SIGKILL: nothing flushed, no controlled shutdown.
    fn kill9(&self) {
        let pid = self.pid().expect("the node runs before it is killed");
        let ok = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -KILL {pid}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pid().is_some() {
            assert!(
                Instant::now() < deadline,
                "node {} survived SIGKILL",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("cluster: killed node {} (pid {pid})", self.id);
    }

    /// Starts the node again on its data, in a process group of its own
    /// (it serves the tests after this one).
    fn restart(&self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("restart.log"))
            .expect("the node's restart log");
        let child = Command::new("bash")
            .arg(repo_root().join("scripts/kafka"))
            .args(["server", self.dir.to_str().expect("a UTF-8 path")])
            .arg(self.port.to_string())
            .arg(self.controller_port.to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, again"))
            .stderr(log)
            .spawn()
            .expect("starting scripts/kafka server");
        eprintln!(
            "cluster: restarting node {} (pid {}, log {})",
            self.id,
            child.id(),
            self.dir.join("restart.log").display()
        );
    }
}

/// The cluster's nodes, or `None` when the tests run against one broker.
fn cluster() -> Option<Vec<Node>> {
    if std::env::var("KAFKA_NODES").as_deref() != Ok("3") {
        return None;
    }
    let dirs = std::env::var("KAFKA_NODE_DIRS").expect("KAFKA_NODE_DIRS (set by scripts/test.sh)");
    let ports =
        std::env::var("KAFKA_NODE_PORTS").expect("KAFKA_NODE_PORTS (set by scripts/test.sh)");
    let nodes: Vec<Node> = dirs
        .split(',')
        .zip(ports.split(','))
        .enumerate()
        .map(|(i, (dir, ports))| {
            let (port, cport) = ports.split_once(':').expect("port:controller_port");
            Node {
                id: i + 1,
                dir: PathBuf::from(dir),
                port: port.parse().unwrap(),
                controller_port: cport.parse().unwrap(),
            }
        })
        .collect();
    assert_eq!(
        nodes.len(),
        3,
        "three nodes in KAFKA_NODE_DIRS/KAFKA_NODE_PORTS"
    );
    Some(nodes)
}

fn metadata_client(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "0")
        .create()
        .expect("a metadata client")
}

/// (partition, leader, replicas, in-sync replicas) of each of `topic`'s
/// partitions.
async fn partitions(brokers: &str, topic: &str) -> Vec<(i32, i32, usize, usize)> {
    let (client, topic) = (metadata_client(brokers), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let md = client
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader(), p.replicas().len(), p.isr().len()))
            .collect()
    })
    .await
    .unwrap()
}

/// Waits until every partition of every topic of this test has all its
/// replicas in sync again (the restarted node caught up), so the next kill
/// never leaves a partition with one copy.
async fn wait_in_sync(env: &TestEnv, timeout: Duration) {
    let started = Instant::now();
    let (client, prefix) = (
        Arc::new(metadata_client(&env.config.kafka_brokers)),
        env.config.topics.prefix().to_owned(),
    );
    loop {
        let (c, p) = (client.clone(), prefix.clone());
        let behind: Vec<String> = tokio::task::spawn_blocking(move || {
            let Ok(md) = c.fetch_metadata(None, Duration::from_secs(5)) else {
                return vec!["(no metadata)".to_owned()];
            };
            md.topics()
                .iter()
                .filter(|t| t.name().starts_with(&p) || t.name().starts_with("__"))
                .flat_map(|t| {
                    t.partitions()
                        .iter()
                        .filter(|x| x.isr().len() < x.replicas().len())
                        .map(|x| format!("{}-{}", t.name(), x.id()))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .await
        .unwrap();
        if behind.is_empty() {
            eprintln!(
                "cluster: every replica in sync after {:?}",
                started.elapsed()
            );
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "replicas still out of sync after {timeout:?}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the buyers were told: every accepted add-item and each cart's
/// last accepted version.
#[derive(Default)]
struct Ledger {
    /// (cart, internship) → quantity
    lines: BTreeMap<(String, String), i64>,
    versions: BTreeMap<String, i64>,
    /// Answers other than 202 that were retried with the same key.
    retried: usize,
}

/// Sum of every quantity in Postgres (the applied side of the ledger).
async fn applied(env: &TestEnv) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT SUM(quantity)::bigint FROM cart_items")
        .fetch_one(&env.pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// One buyer: adds items to its carts until `stop`, each write retried
/// with its Idempotency-Key until the ingress accepts it (202), as a
/// client that got a 503/504 must; counts accepted writes in `accepted`.
async fn buyer(
    api: Arc<Api>,
    carts: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let cart = &carts[i % carts.len()];
        let (item, _) = CATALOG[(i / carts.len()) % CATALOG.len()];
        let qty = (i % 3 + 1) as i64;
        let key = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({"internship_id": item, "quantity": qty});
        let started = Instant::now();
        let version = loop {
            let answer = Api::send(
                api.request(reqwest::Method::POST, &format!("/cart/{cart}/items"))
                    .header("idempotency-key", &key)
                    .json(&body),
            )
            .await;
            match answer.status {
                202 => break answer.body["version"].as_i64().expect("a version"),
                429 | 500..=599 => {
                    ledger.lock().unwrap().retried += 1;
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "a write not accepted within 2 minutes: {answer:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => panic!("add-item refused: {answer:?}"),
            }
        };
        {
            let mut l = ledger.lock().unwrap();
            *l.lines.entry((cart.clone(), item.to_owned())).or_insert(0) += qty;
            let v = l.versions.entry(cart.clone()).or_insert(version);
            *v = (*v).max(version);
        }
        accepted.fetch_add(1, Ordering::SeqCst);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_killed_one_at_a_time_under_load_lose_and_duplicate_nothing() {
    let Some(nodes) = cluster() else {
        eprintln!(
            "SKIPPED: needs the three-broker cluster (KAFKA_NODES=3); \
             run: KAFKA_NODES=3 scripts/test.sh -E 'binary(cluster)'"
        );
        return;
    };
    let env = TestEnv::new().await;
    let brokers = env.config.kafka_brokers.clone();
    let commands = env.config.topics.name(&CART_COMMANDS.def);

    // The topics as create-topics made them: three replicas, two in sync
    // needed for a write.
    for (p, _, replicas, isr) in partitions(&brokers, &commands).await {
        assert_eq!(
            (replicas, isr),
            (3, 3),
            "{commands}-{p}: 3 replicas in sync"
        );
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&commands)], &AdminOptions::new())
        .await
        .unwrap();
    let config = described[0].as_ref().expect("the topic's config");
    let min_isr = config
        .get("min.insync.replicas")
        .and_then(|e| e.value.clone());
    assert_eq!(
        min_isr.as_deref(),
        Some("2"),
        "min.insync.replicas of {commands}"
    );

    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Arc::new(Api::at(env.spawn_ingress().await));

    // Carts, created through the ingress.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut carts = Vec::new();
    for _ in 0..WRITERS * CARTS_PER_WRITER {
        let created = Api::send(
            api.request(reqwest::Method::POST, "/cart")
                .json(&serde_json::json!({})),
        )
        .await;
        assert_eq!(created.status, 201, "{created:?}");
        let token = created.body["cart_token"].as_str().unwrap().to_owned();
        let version = created.body["version"].as_i64().unwrap();
        ledger
            .lock()
            .unwrap()
            .versions
            .insert(token.clone(), version);
        carts.push(token);
    }

    let (accepted, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let buyers: Vec<_> = carts
        .chunks(CARTS_PER_WRITER)
        .map(|c| {
            tokio::spawn(buyer(
                api.clone(),
                c.to_vec(),
                ledger.clone(),
                accepted.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut killed = Vec::new();
    let mut outages = Vec::new();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for round in 0..KILLS {
        // The leader of one of cart.commands' partitions, not killed yet:
        // the ingress is writing to it when it dies.
        let parts = partitions(&brokers, &commands).await;
        let victim = parts
            .iter()
            .map(|(_, leader, _, _)| *leader as usize)
            .find(|l| !killed.contains(l))
            .expect("a leader not killed yet");
        let node = &nodes[victim - 1];
        assert_eq!(node.id, victim);
        let (accepted_before, applied_before) =
            (accepted.load(Ordering::SeqCst), applied(&env).await);
        node.kill9();
        let down_at = Instant::now();
        killed.push(victim);
        // Once a second: writes accepted and units applied since the kill.
        let mut timeline = Vec::new();
        let (mut last_applied, mut stalled_since, mut longest_stall) =
            (applied_before, Instant::now(), Duration::ZERO);
        while down_at.elapsed() < DOWN {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now_applied = applied(&env).await;
            if now_applied > last_applied {
                last_applied = now_applied;
                stalled_since = Instant::now();
            }
            longest_stall = longest_stall.max(stalled_since.elapsed());
            timeline.push(format!(
                "{}s:+{}/+{}",
                down_at.elapsed().as_secs(),
                accepted.load(Ordering::SeqCst) - accepted_before,
                now_applied - applied_before
            ));
        }
        let (accepted_down, applied_down) = (
            accepted.load(Ordering::SeqCst) - accepted_before,
            applied(&env).await - applied_before,
        );
        eprintln!(
            "cluster: round {round}: node {victim} down {:?}: {accepted_down} writes accepted, \
             {applied_down} units applied in Postgres meanwhile; longest stretch with nothing \
             applied {longest_stall:?}; (time: +accepted/+applied) {}",
            down_at.elapsed(),
            timeline.join(" ")
        );
        outages.push((victim, accepted_down, applied_down));
        node.restart();
        wait_in_sync(&env, Duration::from_secs(120)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for b in buyers {
        b.await.expect("a buyer");
    }

    let (expected_lines, versions, retried) = {
        let l = ledger.lock().unwrap();
        (l.lines.clone(), l.versions.clone(), l.retried)
    };
    let versions: Vec<(CartToken, i64)> = versions
        .into_iter()
        .map(|(t, v)| (CartToken::parse(&t).unwrap(), v))
        .collect();
    eprintln!(
        "cluster: {} writes accepted ({retried} answers retried with their key); outages \
         (node, accepted, applied): {outages:?}",
        accepted.load(Ordering::SeqCst)
    );
    env.wait_for_versions(&versions, Duration::from_secs(120))
        .await;
    let rows: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT cart_token, internship_id, quantity FROM cart_items")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let lines: BTreeMap<(String, String), i64> = rows
        .into_iter()
        .map(|(t, i, q)| ((t, i), i64::from(q)))
        .collect();
    assert_eq!(
        lines, expected_lines,
        "every accepted write applied exactly once"
    );
    let refused: Vec<(String, i32)> = sqlx::query_as(
        "SELECT cart_token, rejection_code FROM carts WHERE rejection_code IS NOT NULL",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(refused.is_empty(), "commands refused: {refused:?}");
    for (node, accepted_down, applied_down) in outages {
        assert!(
            accepted_down > 0,
            "no write accepted while node {node} was down"
        );
        assert!(
            applied_down > 0,
            "nothing applied while node {node} was down"
        );
    }
}
