//! The journey benchmark (`checkoutctl bench --journey`): `--buyers`
//! concurrent buyers, each in a loop for `--seconds`: create a cart → add
//! one to three internships → apply a coupon → set the buyer's location →
//! place the order → wait for its payment session → the gateway simulator
//! pays it (its signed webhooks go to the ingress, as a real gateway's
//! would) → wait until the enrollment is visible. The waits are long polls
//! (`Prefer: wait`: the order's next version, then the order's first
//! enrollment), so waiting buyers cost the stack a read per change, not a
//! read every few milliseconds.
//!
//! With `--refund-every N`, every Nth journey ends with an admin refunding
//! the order in full and waits until it is refunded and its enrollments
//! revoked (a fault run checks refunds under faults too).
//!
//! It prints progress every five seconds and at the end: journeys/s, p50,
//! p95 and p99 of every step, pay → enrollment visible (the simulator's
//! webhook is sent as the payment is answered), errors by kind, the CPU
//! seconds each process of the stack used meanwhile (from /proc, so the
//! table says where the cores went), and writes an SVG of journeys/s and
//! the journey p99 over time. Loopback only; bounded in buyers and time.
//!
//! `--pace MIN-MAX` (seconds) makes it a paced run: each buyer pauses a
//! random time in that range before each step a person takes (adding an
//! item, applying the coupon, entering the address, placing, paying), as
//! someone reading the page would, and starts at a random instant within
//! the first pause. Thousands of open sessions then cost the stack what
//! real shoppers would; the step and journey times exclude the pauses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::Mutex;

const STEPS: [&str; 11] = [
    "create cart",
    "add item",
    "apply coupon",
    "set buyer",
    "place order",
    "session ready",
    "failed → paying again",
    "pay (simulator)",
    "pay → enrolled",
    "refund → revoked",
    "journey",
];

#[derive(Default)]
struct Samples {
    steps: BTreeMap<&'static str, Vec<f64>>,
    errors: BTreeMap<String, u64>,
    /// (seconds since start, journey ms) of each finished journey.
    done: Vec<(f64, f64)>,
    /// Every placement sent, answered or not, and how far it got: the
    /// ledger a fault run checks (`--ledger FILE`).
    orders: BTreeMap<String, Fate>,
    /// The coupon each accepted order was placed with.
    coupons: BTreeMap<String, String>,
}

/// How far a placement got, as the buyer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Sent, with no answer (the ingress killed, a 5xx, a time-out): the
    /// broker may or may not have taken it. Its order token is known all
    /// the same (derived from the cart), so a fault run checks that, if the
    /// order exists, it ends in a final state.
    Unanswered,
    /// Accepted (202) and not paid.
    Placed,
    /// Paid at the gateway.
    Paid,
    /// Paid, and an admin's refund request sent with no answer: the order
    /// ends paid or refunded, never anything else.
    RefundUnanswered,
    /// Paid, and an admin's refund request accepted (202): it must end
    /// refunded, its enrollments revoked.
    Refunded,
}

impl Fate {
    fn as_str(self) -> &'static str {
        match self {
            Fate::Unanswered => "unanswered",
            Fate::Placed => "placed",
            Fate::Paid => "paid",
            Fate::RefundUnanswered => "refund-unanswered",
            Fate::Refunded => "refunded",
        }
    }
}

struct Ctx {
    http: reqwest::Client,
    url: String,
    sim: String,
    secret: String,
    internships: Vec<String>,
    /// This run's coupon (see [`coupon`]).
    coupon: String,
    /// With `--limited-coupon N`: this run's coupon of N uses in all, which
    /// every fourth journey applies instead (a fault run checks that the
    /// uses counted are exactly the paid orders that carry it, and at most
    /// N).
    limited: Option<(String, u32)>,
    samples: Mutex<Samples>,
    started: Instant,
    /// Journeys finished (and errors seen) before this instant are the
    /// warm-up (`--warmup-secs`): run, not counted.
    measured_from: Instant,
    /// `--pace MIN-MAX`: a person's pause before each step, in ms.
    pace: Option<(u64, u64)>,
    /// `--refund-every N`: every Nth journey's order is refunded (0: none).
    refund_every: u64,
    /// Journeys begun by all buyers: the number that picks a journey's mix
    /// (seat blocks, a failed first payment, the limited coupon), so the
    /// mix holds when each buyer makes one journey (a paced run).
    begun: std::sync::atomic::AtomicU64,
}

impl Ctx {
    /// Pauses as a person would before a step (nothing unless paced);
    /// what was paused, so the journey's time can leave it out.
    async fn think(&self) -> Duration {
        let Some((min, max)) = self.pace else {
            return Duration::ZERO;
        };
        let pause = Duration::from_millis(rand::random_range(min..=max));
        tokio::time::sleep(pause).await;
        pause
    }
}

/// `MIN-MAX` seconds, for `--pace`.
fn pace_of(raw: &str) -> anyhow::Result<(u64, u64)> {
    let (min, max) = raw
        .split_once('-')
        .context("--pace takes MIN-MAX seconds, e.g. 3-30")?;
    let (min, max): (f64, f64) = (min.trim().parse()?, max.trim().parse()?);
    anyhow::ensure!(
        0.0 <= min && min <= max && max <= 600.0,
        "--pace: 0 ≤ MIN ≤ MAX ≤ 600 seconds"
    );
    Ok(((min * 1e3) as u64, (max * 1e3) as u64))
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    use crate::bench::flag;
    let url = flag(args, "--url").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let sim = flag(args, "--simulator").unwrap_or_else(|| "http://127.0.0.1:8090".into());
    let buyers: usize = flag(args, "--buyers")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(50);
    let seconds: u64 = flag(args, "--seconds")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(30);
    let svg = flag(args, "--svg").unwrap_or_else(|| ".local/bench/journey.svg".into());
    let ledger = flag(args, "--ledger");
    // The stages' ops endpoints, for their batch counts (default: the
    // ports scripts/run.sh gives them).
    let ops: Vec<String> = match flag(args, "--ops") {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => crate::cost::RUN_OPS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    // Where the topics and the read model are: the services' own settings.
    let config = platform::config::PipelineConfig::from_env()?;
    let limited: u32 = flag(args, "--limited-coupon")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(0);
    let warmup: u64 = flag(args, "--warmup-secs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(0);
    let pace = flag(args, "--pace").as_deref().map(pace_of).transpose()?;
    let refund_every: u64 = flag(args, "--refund-every")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(0);
    anyhow::ensure!(
        buyers <= 10_000 && seconds <= 600 && warmup <= 600,
        "at most 10,000 buyers for 600 s"
    );
    for u in [&url, &sim] {
        anyhow::ensure!(
            u.contains("127.0.0.1") || u.contains("localhost"),
            "benchmarks target loopback only"
        );
    }
    let secret = std::env::var("AUTH_JWT_HS256_SECRET")
        .context("AUTH_JWT_HS256_SECRET is not set (scripts/bench.sh sets it)")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(buyers * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let internships = catalog(&http, &url).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let ctx = Arc::new(Ctx {
        coupon: format!("BENCH-{}", run_id[..8].to_ascii_uppercase()),
        limited: (limited > 0).then(|| {
            (
                format!("LIMIT-{}", run_id[..8].to_ascii_uppercase()),
                limited,
            )
        }),
        http,
        url,
        sim,
        secret,
        internships,
        samples: Mutex::new(Samples::default()),
        started: Instant::now(),
        measured_from: Instant::now() + Duration::from_secs(warmup),
        pace,
        refund_every,
        begun: Default::default(),
    });
    coupon(&ctx).await?;
    println!(
        "journey bench: {buyers} buyers for {seconds} s after {warmup} s of warm-up against {} (simulator {}){}",
        ctx.url,
        ctx.sim,
        match pace {
            Some((min, max)) => format!(", each pausing {}–{} s before a step", min / 1000, max / 1000),
            None => String::new(),
        }
    );
    let deadline = ctx.measured_from + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for b in 0..buyers {
        let ctx = ctx.clone();
        let user = format!("bench-{}-{b}", &run_id[..8]);
        tasks.spawn(async move {
            // Paced sessions arrive spread over the first pause, not at once.
            if let Some((_, max)) = ctx.pace {
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..=max))).await;
            }
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                // A new buyer per journey: a user enrolled in an internship
                // is not enrolled in it again (the rule), so a repeat
                // buyer would wait for an enrollment that never comes.
                let mix = ctx.begun.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if let Err(e) = journey(&ctx, &format!("{user}-{n}"), mix).await {
                    // "step: HTTP 409 1003": the step, the status, our code.
                    let kind: String = e.to_string().chars().take(60).collect();
                    if Instant::now() >= ctx.measured_from {
                        *ctx.samples.lock().await.errors.entry(kind).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    let progress = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let s = ctx.samples.lock().await;
                let errors: u64 = s.errors.values().sum();
                println!(
                    "  {:>4.0} s: {} journeys, {} errors",
                    ctx.started.elapsed().as_secs_f64(),
                    s.done.len(),
                    errors
                );
            }
        })
    };
    tokio::time::sleep_until(ctx.measured_from.into()).await;
    let cpu_before = cpu_seconds();
    let cost_before = crate::cost::read(&config, &ctx.http, &ops).await;
    if warmup > 0 {
        println!("warm-up over: measuring from now");
    }
    while tasks.join_next().await.is_some() {}
    progress.abort();
    let elapsed = ctx.measured_from.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds();
    // Postgres publishes its counters at most once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cost_after = crate::cost::read(&config, &ctx.http, &ops).await;
    let s = ctx.samples.lock().await;
    println!(
        "done: {} journeys in {elapsed:.1} s = {:.1} journeys/s",
        s.done.len(),
        s.done.len() as f64 / elapsed
    );
    for step in STEPS {
        println!(
            "{}",
            crate::bench::summary(step, s.steps.get(step).map_or(&[][..], |v| v))
        );
    }
    if s.errors.is_empty() {
        println!("errors: none");
    }
    for (kind, n) in &s.errors {
        println!("errors: {n} × {kind}");
    }
    let cpu_used = print_cpu(&cpu_before, &cpu_after, elapsed, s.done.len());
    crate::cost::print(&cost_before, &cost_after, s.done.len(), cpu_used);
    if let Some(dir) = std::path::Path::new(&svg).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&svg, chart(&s.done, elapsed))?;
    println!("picture: {svg}");
    if let Some(path) = ledger {
        let lines: String = s
            .orders
            .iter()
            .map(|(o, fate)| {
                let coupon = s.coupons.get(o).map_or("-", String::as_str);
                format!("{o} {} {coupon}\n", fate.as_str())
            })
            .collect();
        std::fs::write(&path, lines)?;
        println!(
            "ledger: {} placements sent, {} accepted ({} paid at the gateway) in {path}",
            s.orders.len(),
            s.orders
                .values()
                .filter(|f| **f != Fate::Unanswered)
                .count(),
            s.orders
                .values()
                .filter(|f| !matches!(f, Fate::Unanswered | Fate::Placed))
                .count()
        );
    }
    Ok(())
}

/// The active internships of the catalog, to pick one to three from.
async fn catalog(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<String>> {
    let list: Value = http
        .get(format!("{url}/api/v1/internships"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let items = list
        .get("internships")
        .or(list.get("items"))
        .and_then(Value::as_array)
        .or(list.as_array())
        .context("the catalog answered no list")?;
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| i["internship_id"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(!ids.is_empty(), "the catalog is empty: seed it first");
    Ok(ids)
}

fn bearer(ctx: &Ctx, user: &str, role: &str) -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let mut claims = json!({ "sub": user, "role": role, "exp": exp });
    crate::issued_for(&mut claims);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(ctx.secret.as_bytes()),
    )?;
    Ok(format!("Bearer {token}"))
}

/// The coupon every buyer of this run applies: 10 % off, no limit. One per
/// run, so each run's coupon starts with no uses (a coupon's ledger is
/// held in memory by the coupon processor and restored on every restart).
async fn coupon(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.http
        .put(format!("{}/api/v1/admin/coupons/{}", ctx.url, ctx.coupon))
        .header("authorization", bearer(ctx, "bench-admin", "admin")?)
        .json(&json!({"name": "Bench 10 %", "kind": "percentage", "percent": "0.10"}))
        .send()
        .await?
        .error_for_status()
        .context("publishing the bench coupon")?;
    if let Some((code, limit)) = &ctx.limited {
        ctx.http
            .put(format!("{}/api/v1/admin/coupons/{code}", ctx.url))
            .header("authorization", bearer(ctx, "bench-admin", "admin")?)
            .json(&json!({"name": "Bench, limited", "kind": "percentage", "percent": "0.10", "usage_limit": limit}))
            .send()
            .await?
            .error_for_status()
            .context("publishing the limited bench coupon")?;
    }
    // Carts price from the coupon table: let it reach the processors.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn call(step: &'static str, req: reqwest::RequestBuilder) -> anyhow::Result<(Value, f64)> {
    crate::cost::count_call();
    let t = Instant::now();
    let res = req
        .send()
        .await
        .with_context(|| format!("{step}: no answer"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "{step}: HTTP {} {}",
        status.as_u16(),
        body["error"]["code"]
    );
    Ok((body, t.elapsed().as_secs_f64() * 1e3))
}

async fn journey(ctx: &Ctx, user: &str, n: u64) -> anyhow::Result<()> {
    let auth = bearer(ctx, user, "user")?;
    let api = |m: reqwest::Method, path: &str| {
        ctx.http
            .request(m, format!("{}/api/v1/{path}", ctx.url))
            .header("authorization", &auth)
    };
    use reqwest::Method;
    let start = Instant::now();
    // Pauses taken as a person (paced runs): not the stack's time.
    let mut thought = Duration::ZERO;
    let mut times: Vec<(&'static str, f64)> = Vec::new();
    let (cart, ms) = call("create cart", api(Method::POST, "cart").json(&json!({}))).await?;
    times.push(("create cart", ms));
    let token = cart["cart_token"]
        .as_str()
        .context("create cart: no token")?
        .to_owned();
    let lines = 1 + (n as usize % 3).min(ctx.internships.len() - 1);
    let mut version = 0;
    for i in 0..lines {
        let id = &ctx.internships[(n as usize + i) % ctx.internships.len()];
        // Every fifth buyer is a company buying a block of three seats.
        let quantity = if i == 0 && n % 5 == 1 { 3 } else { 1 };
        thought += ctx.think().await;
        let (added, ms) = call(
            "add item",
            api(Method::POST, &format!("cart/{token}/items"))
                .json(&json!({"internship_id": id, "quantity": quantity})),
        )
        .await?;
        times.push(("add item", ms));
        version = added["version"].as_i64().unwrap_or(version);
    }
    let code = match &ctx.limited {
        Some((limited, _)) if n % 4 == 0 => limited.as_str(),
        _ => ctx.coupon.as_str(),
    };
    thought += ctx.think().await;
    let (c, ms) = call(
        "apply coupon",
        api(Method::POST, &format!("cart/{token}/coupon")).json(&json!({"code": code})),
    )
    .await?;
    times.push(("apply coupon", ms));
    version = c["version"].as_i64().unwrap_or(version);
    thought += ctx.think().await;
    let (b, ms) = call(
        "set buyer",
        api(Method::PUT, &format!("cart/{token}/buyer"))
            .json(&json!({"country": "IN", "state": "KA"})),
    )
    .await?;
    times.push(("set buyer", ms));
    version = b["version"].as_i64().unwrap_or(version);
    // Placing reads the cart from the read model: it must show the buyer.
    let (seen, _) = call(
        "read cart",
        api(Method::GET, &format!("cart/{token}?version={version}")).header("prefer", "wait=10"),
    )
    .await?;
    anyhow::ensure!(seen["stale"] != true, "read cart: stale after 10 s");
    // The order token is derived from the cart: known before the answer,
    // so a placement whose answer is lost is in the ledger all the same.
    let order = schemas::values::OrderToken::of_cart(
        &schemas::values::CartToken::parse(&token).context("create cart: a bad token")?,
    )
    .as_str()
    .to_owned();
    {
        let mut s = ctx.samples.lock().await;
        s.orders.insert(order.clone(), Fate::Unanswered);
        s.coupons.insert(order.clone(), code.to_owned());
    }
    thought += ctx.think().await;
    let (placed, ms) = call(
        "place order",
        // An address, so the order's emails go out (a fault run checks
        // each is sent once).
        api(Method::POST, "order")
            .json(&json!({"cart_token": token, "email": format!("{user}@buyers.example")})),
    )
    .await?;
    times.push(("place order", ms));
    anyhow::ensure!(
        placed["order_token"].as_str() == Some(order.as_str()),
        "place order: answered {}, not the order derived from the cart",
        placed["order_token"]
    );
    ctx.samples
        .lock()
        .await
        .orders
        .insert(order.clone(), Fate::Placed);
    let t = Instant::now();
    let mut session = session_ready(ctx, &auth, &order, 0, 0, t).await?;
    times.push(("session ready", t.elapsed().as_secs_f64() * 1e3));
    if n % 7 == 3 {
        // Every seventh buyer's first payment fails; they pay again, with
        // a new attempt and a new session.
        call(
            "fail (simulator)",
            ctx.http
                .post(format!("{}/sim/sessions/{session}/fail", ctx.sim))
                .json(&json!({"method": "card"})),
        )
        .await?;
        let failed = Instant::now();
        loop {
            let (o, _) = call(
                "payment failed",
                api(Method::GET, &format!("order/{order}")).header("prefer", "wait=5"),
            )
            .await?;
            if o["status"] == "failed" {
                break;
            }
            anyhow::ensure!(
                failed.elapsed() < Duration::from_secs(20),
                "payment failed: the order is still {}",
                o["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (again, _) = call(
            "pay again",
            api(Method::POST, &format!("order/{order}/pay")).json(&json!({})),
        )
        .await?;
        let from = again["version"].as_i64().unwrap_or(0);
        session = session_ready(ctx, &auth, &order, 1, from, Instant::now()).await?;
        times.push((
            "failed → paying again",
            failed.elapsed().as_secs_f64() * 1e3,
        ));
    }
    thought += ctx.think().await;
    let (_, ms) = call(
        "pay (simulator)",
        ctx.http
            .post(format!("{}/sim/sessions/{session}/pay", ctx.sim))
            .json(&json!({"method": "upi"})),
    )
    .await?;
    times.push(("pay (simulator)", ms));
    ctx.samples
        .lock()
        .await
        .orders
        .insert(order.clone(), Fate::Paid);
    let paid = Instant::now();
    loop {
        // Answers as soon as the order's first enrollment is visible.
        let (mine, _) = call(
            "pay → enrolled",
            api(Method::GET, &format!("me/enrollments?order={order}")).header("prefer", "wait=10"),
        )
        .await?;
        let enrolled = mine["enrollments"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["order_token"] == order.as_str()));
        if enrolled {
            break;
        }
        anyhow::ensure!(
            paid.elapsed() < Duration::from_secs(20),
            "pay → enrolled: timed out"
        );
    }
    times.push(("pay → enrolled", paid.elapsed().as_secs_f64() * 1e3));
    if ctx.refund_every > 0 && n % ctx.refund_every == 2 {
        let t = Instant::now();
        refund(ctx, user, &order).await?;
        times.push(("refund → revoked", t.elapsed().as_secs_f64() * 1e3));
    }
    let total = start.elapsed().saturating_sub(thought).as_secs_f64() * 1e3;
    times.push(("journey", total));
    if Instant::now() < ctx.measured_from {
        return Ok(());
    }
    let mut s = ctx.samples.lock().await;
    for (step, ms) in times {
        s.steps.entry(step).or_default().push(ms);
    }
    let at = ctx.measured_from.elapsed().as_secs_f64();
    s.done.push((at, total));
    Ok(())
}

/// An admin refunds `order` in full; waits until it is refunded and the
/// buyer's enrollments from it are revoked. The ledger says whether the
/// request was accepted or its answer lost.
async fn refund(ctx: &Ctx, user: &str, order: &str) -> anyhow::Result<()> {
    let auth = bearer(ctx, user, "user")?;
    let asked = Instant::now();
    // The admin's refund checks the order's read model, which may show
    // the payment a moment after the enrollment.
    loop {
        let (o, _) = call(
            "refund → revoked",
            ctx.http
                .get(format!("{}/api/v1/order/{order}", ctx.url))
                .header("authorization", &auth)
                .header("prefer", "wait=5"),
        )
        .await?;
        if o["status"] == "paid" {
            break;
        }
        anyhow::ensure!(
            asked.elapsed() < Duration::from_secs(20),
            "refund: the order is still {}",
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = bearer(ctx, "bench-ops", "admin")?;
    crate::cost::count_call();
    let sent = ctx
        .http
        .post(format!("{}/api/v1/admin/orders/{order}/refund", ctx.url))
        .header("authorization", &admin)
        .json(&json!({"reason": "the buyer changed their mind"}))
        .send()
        .await;
    let status = sent.as_ref().map(|r| r.status()).ok();
    // No answer, or a server error: the broker may have taken it or not.
    let fate = match status {
        Some(s) if s.is_success() => Fate::Refunded,
        Some(s) if s.is_client_error() => Fate::Paid,
        _ => Fate::RefundUnanswered,
    };
    ctx.samples
        .lock()
        .await
        .orders
        .insert(order.to_owned(), fate);
    anyhow::ensure!(
        fate == Fate::Refunded,
        "refund: {}",
        status.map_or("no answer".to_owned(), |s| format!("HTTP {}", s.as_u16()))
    );
    loop {
        let (o, _) = call(
            "refund → revoked",
            ctx.http
                .get(format!("{}/api/v1/order/{order}", ctx.url))
                .header("authorization", &auth)
                .header("prefer", "wait=5"),
        )
        .await?;
        if o["status"] == "refunded" {
            let (mine, _) = call(
                "refund → revoked",
                ctx.http
                    .get(format!("{}/api/v1/me/enrollments?order={order}", ctx.url))
                    .header("authorization", &auth),
            )
            .await?;
            let active = mine["enrollments"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["order_token"] == order && e["status"] == "active")
            });
            if !active {
                return Ok(());
            }
        }
        anyhow::ensure!(
            asked.elapsed() < Duration::from_secs(30),
            "refund → revoked: the order is still {}",
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Long-polls the order, as a checkout page would, until attempt number
/// `attempt` (0-based) has its payment session: one read that waits
/// (`Prefer: wait`, `?until=session`) from version `from` until the
/// newest attempt has its session, or the order will get none; read again
/// only if that was another attempt's.
async fn session_ready(
    ctx: &Ctx,
    auth: &str,
    order: &str,
    attempt: usize,
    from: i64,
    since: Instant,
) -> anyhow::Result<String> {
    let mut next_version = from;
    loop {
        crate::cost::count_call();
        let res = ctx
            .http
            .get(format!(
                "{}/api/v1/order/{order}?version={next_version}&until=session",
                ctx.url
            ))
            .header("authorization", auth)
            .header("prefer", "wait=10")
            .send()
            .await
            .context("session ready: no answer")?;
        let status = res.status();
        let o: Value = res.json().await.unwrap_or(Value::Null);
        // 404 when the order was not visible within the wait.
        anyhow::ensure!(
            status.is_success() || status.as_u16() == 404,
            "session ready: HTTP {} {}",
            status.as_u16(),
            o["error"]["code"]
        );
        if let Some(s) = o["attempts"][attempt]["session_id"].as_str() {
            return Ok(s.to_owned());
        }
        anyhow::ensure!(
            attempt > 0 || o["status"] != "failed",
            "session ready: order failed"
        );
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(20),
            "session ready: timed out"
        );
        if let Some(v) = o["version"].as_i64() {
            next_version = v + 1;
        }
    }
}

/// CPU seconds (user + system) of the stack's processes, by name.
fn cpu_seconds() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    // Clock ticks per second: 100 on every Linux we run on.
    let hz = 100.0;
    for entry in dir.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(name) = process_name(&args) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: utime is the
        // 14th field of the line, stime the 15th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_default() += ticks / hz;
    }
    out
}

/// What a process of the stack is, from its command line.
fn process_name(args: &[String]) -> Option<String> {
    let first = args.first()?;
    // Postgres renames its processes ("postgres: 15/main: checkpointer").
    if first.starts_with("postgres") || first.contains("/postgres") {
        return Some("postgres".into());
    }
    let bin = first.rsplit('/').next()?.to_owned();
    match bin.as_str() {
        "processors" | "sinks" => Some(format!(
            "{bin} {}",
            args.get(1).map(String::as_str).unwrap_or("")
        )),
        "ingress" | "schema-registry" | "gateway-simulator" | "checkoutctl" => Some(bin),
        "java" if args.iter().any(|a| a.contains("kafka")) => Some("kafka (java)".into()),
        b if b.starts_with("postgres") => Some("postgres".into()),
        _ => None,
    }
}

/// The CPU each process used, in seconds, per journey in ms and as a share
/// of the machine; the total in seconds.
fn print_cpu(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    elapsed: f64,
    journeys: usize,
) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut rows: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    println!(
        "cpu: {total:.1} s used of {:.1} s available ({cores} cores × {elapsed:.1} s)",
        cores * elapsed
    );
    let per_journey = |secs: f64| secs * 1e3 / journeys.max(1) as f64;
    for (name, secs) in rows {
        println!(
            "  {name:<28} {secs:>7.1} s  {:>5.1} % of the machine  {:>7.2} ms per journey",
            100.0 * secs / (cores * elapsed),
            per_journey(secs)
        );
    }
    total
}

/// An SVG of journeys finished per second (bars) and the p99 journey
/// latency of each second (line), over the run.
fn chart(done: &[(f64, f64)], elapsed: f64) -> String {
    let secs = elapsed.ceil().max(1.0) as usize;
    let mut per_sec: Vec<Vec<f64>> = vec![Vec::new(); secs];
    for (at, ms) in done {
        let i = (*at as usize).min(secs - 1);
        per_sec[i].push(*ms);
    }
    let rate: Vec<f64> = per_sec.iter().map(|v| v.len() as f64).collect();
    let p99: Vec<f64> = per_sec
        .iter()
        .map(|v| {
            if v.is_empty() {
                return 0.0;
            }
            let mut s = v.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            s[((s.len() as f64 - 1.0) * 0.99).round() as usize]
        })
        .collect();
    let (w, h, pad) = (800.0, 300.0, 40.0);
    let max_rate = rate.iter().cloned().fold(1.0, f64::max);
    let max_ms = p99.iter().cloned().fold(1.0, f64::max);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / secs as f64;
    let bar_w = ((w - 2.0 * pad) / secs as f64).max(1.0) - 1.0;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="16">journeys/s (bars, max {max_rate:.0}) and journey p99 per second (line, max {max_ms:.0} ms) over {elapsed:.0} s</text>
"##
    );
    for (i, r) in rate.iter().enumerate() {
        let bh = (h - 2.0 * pad) * r / max_rate;
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{bh:.1}\" fill=\"#9ecae1\"/>\n",
            x(i),
            h - pad - bh
        ));
    }
    let points: Vec<String> = p99
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            format!(
                "{:.1},{:.1}",
                x(i) + bar_w / 2.0,
                h - pad - (h - 2.0 * pad) * ms / max_ms
            )
        })
        .collect();
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"{}\"/>\n",
        points.join(" ")
    ));
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<text x=\"{pad}\" y=\"{2}\">0 s</text><text x=\"{3}\" y=\"{2}\">{elapsed:.0} s</text>\n</svg>\n",
        h - pad,
        w - pad,
        h - pad + 14.0,
        w - pad - 30.0
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_named_from_their_command_line() {
        let name =
            |args: &[&str]| process_name(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            name(&["/x/target/release/processors", "order"]).as_deref(),
            Some("processors order")
        );
        assert_eq!(name(&["/x/ingress"]).as_deref(), Some("ingress"));
        assert_eq!(
            name(&["java", "-cp", "/w/.local/kafka/4.1.1/*", "kafka.Kafka"]).as_deref(),
            Some("kafka (java)")
        );
        assert_eq!(
            name(&["postgres: 15/main: checkpointer "]).as_deref(),
            Some("postgres")
        );
        assert_eq!(name(&["bash"]), None);
    }

    #[test]
    fn the_chart_has_a_bar_per_second_and_the_p99_line() {
        let svg = chart(&[(0.2, 100.0), (0.5, 300.0), (1.5, 200.0)], 2.0);
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("<polyline"));
        assert!(
            svg.contains("bars, max 2)"),
            "two journeys in the first second"
        );
    }
}
