//! The checkout-session benchmark: `--sessions` concurrent shoppers, each
//! creating a cart, adding items and reading its cart back at the version
//! its write returned (`Prefer: wait`), for `--seconds`. It reports the
//! ingress latency of each call (p50/p95/p99/max) and the write-to-visible
//! latency (a command accepted → the priced cart readable from Postgres),
//! with a line of progress every five seconds. `--warmup-secs` drops what
//! happens first. Loopback only; bounded in time and count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(Default)]
struct Samples {
    create: Vec<f64>,
    add: Vec<f64>,
    read: Vec<f64>,
    visible: Vec<f64>,
    errors: u64,
    stale: u64,
}

/// The value after `name` in `args` (`--seconds 30`), for both benches.
pub(crate) fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "--journey") {
        return crate::journey::run(args).await;
    }
    let url = flag(args, "--url").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let sessions: usize = flag(args, "--sessions")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(100);
    let seconds: u64 = flag(args, "--seconds")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(20);
    let internship = flag(args, "--internship").unwrap_or_else(|| "rust-backend-2027".into());
    // Samples from the first seconds are dropped: consumer groups may still
    // be forming right after a stack starts.
    let warmup: u64 = flag(args, "--warmup-secs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(0);
    anyhow::ensure!(
        sessions <= 10_000 && seconds <= 600,
        "at most 10,000 sessions for 600 s"
    );
    anyhow::ensure!(
        url.contains("127.0.0.1") || url.contains("localhost") || url.contains("[::1]"),
        "benchmarks target loopback only"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(sessions)
        .timeout(Duration::from_secs(40))
        .build()?;
    let samples = Arc::new(Mutex::new(Samples::default()));
    let measure_from = Instant::now() + Duration::from_secs(warmup);
    let deadline = measure_from + Duration::from_secs(seconds);
    println!(
        "bench: {sessions} sessions for {seconds} s (after {warmup} s of warm-up) against {url}"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        let (http, url, samples, internship) = (
            http.clone(),
            url.clone(),
            samples.clone(),
            internship.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline {
                if session(&http, &url, &internship, &samples, measure_from, deadline)
                    .await
                    .is_err()
                {
                    samples.lock().await.errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    let started = Instant::now();
    let progress = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let s = samples.lock().await;
                println!(
                    "  {:>4.0} s: {} carts, {} items, {} reads, {} errors",
                    started.elapsed().as_secs_f64(),
                    s.create.len(),
                    s.add.len(),
                    s.read.len(),
                    s.errors
                );
            }
        })
    };
    while tasks.join_next().await.is_some() {}
    progress.abort();
    let s = samples.lock().await;
    // The rate is over the measured window only, not the warm-up.
    let elapsed = measure_from.elapsed().as_secs_f64();
    let calls = s.create.len() + s.add.len() + s.read.len();
    println!(
        "done: {calls} calls in {elapsed:.1} s ({:.0}/s), {} errors, {} stale reads",
        calls as f64 / elapsed,
        s.errors,
        s.stale
    );
    for (name, v) in [
        ("POST /cart", &s.create),
        ("POST /cart/{t}/items", &s.add),
        ("GET /cart/{t} (wait)", &s.read),
        ("write → visible", &s.visible),
    ] {
        println!("{}", summary(name, v));
    }
    Ok(())
}

async fn session(
    http: &reqwest::Client,
    url: &str,
    internship: &str,
    samples: &Mutex<Samples>,
    measure_from: Instant,
    deadline: Instant,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let created: Value = http
        .post(format!("{url}/api/v1/cart"))
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let create_ms = t.elapsed().as_secs_f64() * 1e3;
    let token = created["cart_token"]
        .as_str()
        .context("no cart token")?
        .to_owned();
    if t >= measure_from {
        samples.lock().await.create.push(create_ms);
    }
    for _ in 0..3 {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let added: Value = http
            .post(format!("{url}/api/v1/cart/{token}/items"))
            .json(&json!({"internship_id": internship, "quantity": 1}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let accepted = Instant::now();
        let add_ms = (accepted - t).as_secs_f64() * 1e3;
        let version = added["version"].as_i64().context("no version")?;
        let t = Instant::now();
        let cart: Value = http
            .get(format!("{url}/api/v1/cart/{token}?version={version}"))
            .header("prefer", "wait=10")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let read_ms = t.elapsed().as_secs_f64() * 1e3;
        let visible_ms = accepted.elapsed().as_secs_f64() * 1e3;
        if t < measure_from {
            continue;
        }
        let mut s = samples.lock().await;
        s.add.push(add_ms);
        s.read.push(read_ms);
        if cart["stale"] == true {
            s.stale += 1;
        } else {
            s.visible.push(visible_ms);
        }
    }
    Ok(())
}

pub(crate) fn summary(name: &str, v: &[f64]) -> String {
    if v.is_empty() {
        return format!("{name:<24} no samples");
    }
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{name:<24} n={:<7} p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        sorted.len(),
        q(0.50),
        q(0.95),
        q(0.99),
        sorted[sorted.len() - 1]
    )
}
