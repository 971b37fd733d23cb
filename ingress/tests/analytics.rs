//! Analytics end to end: real journeys through the ingress, the processors,
//! the gateway simulator's payments and webhooks, and a `sinks all`
//! process (whose `/metrics` the test reads); then the analytics views and
//! gauges must show exactly those journeys, and still the same after every
//! analytics record is delivered a second time and after a rebuild of each
//! analytics sink from its topic.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{json, Value};

use common::shop::Shop;
use common::{bin_path, token, ChildGuard, TestEnv, JWT_SECRET};

impl Shop {
    /// Every stage in process but the sinks, which run as `sinks all`
    /// (returned) with the analytics gauges refreshed every 200 ms.
    async fn open() -> (Shop, ChildGuard) {
        let env = TestEnv::new().await;
        let addr = env.spawn_ingress().await;
        let sim = env.spawn_gateway_simulator(Some(addr)).await;
        env.spawn_gateway_worker(&sim, 2);
        env.spawn_cart_processor();
        env.spawn_order_processor();
        env.spawn_coupon_processor();
        env.spawn_webhook_processor();
        env.spawn_enrollment_processor();
        let sinks = start_sinks(&env).await;
        let shop = Shop {
            env,
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
            sim,
        };
        (shop, sinks)
    }

    /// A cart of `user` with one seat of `design`, visible in the read model.
    async fn cart(&self, user: &str) -> String {
        let created: Value = self
            .http
            .post(format!("{}/cart", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({"items": [{"internship_id": "design", "quantity": 1}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = created["cart_token"].as_str().unwrap().to_owned();
        let version = created["version"].as_i64().unwrap();
        let cart = self
            .get(user, &format!("cart/{token}?version={version}"))
            .await;
        assert_eq!(cart["stale"], false, "{cart}");
        token
    }

    /// An admin publishes coupon `code`, 10 % off.
    async fn coupon(&self, code: &str) {
        let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
        let res = self
            .http
            .put(format!("{}/admin/coupons/{code}", self.base))
            .header("authorization", admin)
            .json(&json!({"name": code, "kind": "percentage", "percent": "0.10"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }

    async fn apply_coupon(&self, user: &str, cart: &str, code: &str) {
        let res = self
            .http
            .post(format!("{}/cart/{cart}/coupon", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let version = res.json::<Value>().await.unwrap()["version"]
            .as_i64()
            .unwrap();
        let c = self
            .get(user, &format!("cart/{cart}?version={version}"))
            .await;
        assert_eq!(c["coupons"], json!([code]), "{c}");
    }

    /// Places `cart`; the order once its payment session is open.
    async fn place(&self, user: &str, cart: &str) -> Value {
        let res = self
            .http
            .post(format!("{}/order", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({ "cart_token": cart }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let order = res.json::<Value>().await.unwrap()["order_token"]
            .as_str()
            .unwrap()
            .to_owned();
        self.order_until(user, &order, |o| o["attempts"][0]["session_id"].is_string())
            .await
    }

    /// The buyer pays (`pay`) or fails (`fail`) the order's session on the
    /// simulator; its webhooks reach the ingress. The order once decided.
    async fn settle(&self, user: &str, order: &Value, action: &str, want: &str) -> Value {
        let session = order["attempts"][0]["session_id"].as_str().unwrap();
        let res = self
            .http
            .post(format!("{}/sim/sessions/{session}/{action}", self.sim))
            .json(&json!({"method": "card"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        let token = order["order_token"].as_str().unwrap();
        self.order_until(user, token, |o| o["status"] == want).await
    }
}

/// `sinks all` as a process, ready, refreshing the gauges every 200 ms.
async fn start_sinks(env: &TestEnv) -> ChildGuard {
    let mut sinks = env.child_with("sinks", &["all"], &[("ANALYTICS_REFRESH_MS", "200")]);
    sinks.wait_ready(Duration::from_secs(60)).await;
    sinks
}

/// SIGTERM and wait: a graceful stop leaves the consumer groups at once
/// (a rebuild refuses while a group has members).
fn stop(mut sinks: ChildGuard) {
    let pid = sinks.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = sinks.0.wait();
}

/// gateway, method, attempts, paid, failed, expired, open, success rate.
type PaymentRow = (String, String, i64, i64, i64, i64, i64, Option<Decimal>);

/// The funnel's four counts and four rates.
type FunnelRow = (
    i64,
    i64,
    i64,
    i64,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
);

/// A gauge a scrape must show: name, labels, value.
type Want<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// Everything the analytics views say, as one comparable value.
#[derive(Debug, Clone, PartialEq)]
struct Views {
    /// carts created, orders placed, paid, enrolled.
    funnel: (i64, i64, i64, i64),
    /// cart→order, order→paid, paid→enrolled, cart→paid.
    rates: [Option<Decimal>; 4],
    /// (currency, day, paid orders, gross minor, gross major).
    revenue: Vec<(String, chrono::NaiveDate, i64, Decimal, Decimal)>,
    /// (gateway, method, attempts, paid, failed, expired, open, success rate).
    payments: Vec<PaymentRow>,
    /// (code, uses, held, buyers).
    coupons: Vec<(String, i64, i64, i64)>,
}

async fn views(env: &TestEnv) -> Views {
    let pool = &env.pool;
    let f: FunnelRow = sqlx::query_as(
        "SELECT carts_created, orders_placed, orders_paid, orders_enrolled,
                    cart_to_order, order_to_paid, paid_to_enrolled, cart_to_paid
             FROM analytics_funnel",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    Views {
        funnel: (f.0, f.1, f.2, f.3),
        rates: [f.4, f.5, f.6, f.7],
        revenue: sqlx::query_as(
            "SELECT currency::text, day, paid_orders, gross_minor, gross
             FROM analytics_revenue_daily ORDER BY currency, day",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        payments: sqlx::query_as(
            "SELECT gateway, method, attempts, paid, failed, expired, open, success_rate
             FROM analytics_payment_success ORDER BY gateway, method",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        coupons: sqlx::query_as(
            "SELECT code, uses, held, buyers FROM analytics_coupon_usage ORDER BY code",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

/// Waits until the views show `want` (every analytics sink caught up).
async fn views_until(env: &TestEnv, want: &Views) {
    let started = Instant::now();
    loop {
        let now = views(env).await;
        if now == *want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "analytics views never got there:\n  now  {now:?}\n  want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the series `name{labels}` (exactly those labels) in a
/// `/metrics` text.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (s, value) = line.rsplit_once(' ')?;
            let (metric, rest) = s.split_once('{').unwrap_or((s, "}"));
            let mut got: Vec<String> = rest
                .strip_suffix('}')?
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            got.sort();
            (metric == name && got == want).then(|| value.parse().ok())?
        })
}

/// Waits until a scrape of `sinks` holds every `(name, labels, value)` of
/// `want` (the gauges are refreshed every 200 ms); returns that scrape.
async fn gauges_until(sinks: &ChildGuard, want: &[Want<'_>]) -> String {
    let started = Instant::now();
    loop {
        let text = sinks.scrape().await.map(|s| s.0).unwrap_or_default();
        let missing: Vec<String> = want
            .iter()
            .filter(|(name, labels, value)| {
                series(&text, name, labels).is_none_or(|v| (v - value).abs() > 1e-9)
            })
            .map(|(name, labels, value)| {
                format!(
                    "{name}{labels:?} = {:?}, want {value}",
                    series(&text, name, labels)
                )
            })
            .collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gauges never got there: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The analytics sinks' stored offsets equal those of the read-model sinks
/// reading the same topics, which are done with them: the analytics sinks
/// have read every record again.
async fn analytics_caught_up(env: &TestEnv) {
    let prefix = env.config.topics.prefix().to_owned();
    let started = Instant::now();
    loop {
        let mut behind = Vec::new();
        for (analytics, model) in [
            ("analytics-carts-sink", "carts-sink"),
            ("analytics-orders-sink", "orders-sink"),
            ("analytics-enrollments-sink", "enrollments-sink"),
            ("analytics-coupons-sink", "coupon-usage-sink"),
        ] {
            let offsets = |group: String| {
                sqlx::query_as::<_, (String, i32, i64)>(
                    "SELECT topic, partition, next_offset FROM sink_offsets
                     WHERE consumer_group = $1 ORDER BY topic, partition",
                )
                .bind(group)
                .fetch_all(&env.pool)
            };
            let a = offsets(format!("{prefix}{analytics}")).await.unwrap();
            let m = offsets(format!("{prefix}{model}")).await.unwrap();
            assert!(!m.is_empty(), "{model} has read nothing");
            if a != m {
                behind.push(format!("{analytics}: {a:?} vs {model}: {m:?}"));
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "analytics sinks behind: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn checkoutctl(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("checkoutctl"))
        .args(args)
        .env("KAFKA_BROKERS", &env.config.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", &env.config.schema_registry_url)
        .env("DATABASE_URL", &env.config.database_url)
        .env("DATABASE_SCHEMA", &env.config.database_schema)
        .env("TOPIC_PREFIX", env.config.topics.prefix())
        .env("RUST_LOG", "warn")
        .output()
        .expect("checkoutctl runs")
}

/// The UTC day of the order's accepted transition to paid.
fn paid_day(o: &Value) -> chrono::NaiveDate {
    let paid = o["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to_status"] == "paid" && t["refused_code"].is_null())
        .unwrap_or_else(|| panic!("not paid: {o}"));
    chrono::DateTime::parse_from_rfc3339(paid["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .date_naive()
}

fn dec(s: &str) -> Option<Decimal> {
    Some(s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_revenue_payments_and_coupons_count_each_journey_once_through_replays() {
    let (shop, sinks) = Shop::open().await;
    let today = chrono::Utc::now().date_naive();
    shop.coupon("SAVE10").await;

    // ana pays; ben pays with a coupon; cy's payment fails; dee places and
    // has not paid yet; eve only has a cart.
    let ana = shop.cart("ana").await;
    let ben = shop.cart("ben").await;
    shop.apply_coupon("ben", &ben, "SAVE10").await;
    let cy = shop.cart("cy").await;
    let dee = shop.cart("dee").await;
    shop.cart("eve").await;

    let ana = shop.place("ana", &ana).await;
    let ben = shop.place("ben", &ben).await;
    let cy = shop.place("cy", &cy).await;
    let dee = shop.place("dee", &dee).await;
    let ana = shop.settle("ana", &ana, "pay", "paid").await;
    let ben = shop.settle("ben", &ben, "pay", "paid").await;
    let cy = shop.settle("cy", &cy, "fail", "failed").await;
    for o in [&ana, &ben, &cy, &dee] {
        assert_eq!(o["attempts"][0]["gateway"], "razorpay", "{o}");
    }
    let (a, b) = (
        ana["total_minor"].as_i64().unwrap(),
        ben["total_minor"].as_i64().unwrap(),
    );
    assert!(b < a, "the coupon took something off: {b} < {a}");
    // Revenue by the UTC day each order was paid (both days are today
    // unless the test ran across midnight).
    let mut by_day = std::collections::BTreeMap::<chrono::NaiveDate, (i64, i64)>::new();
    for (o, total) in [(&ana, a), (&ben, b)] {
        let e = by_day.entry(paid_day(o)).or_default();
        e.0 += 1;
        e.1 += total;
    }
    let revenue_rows = by_day
        .into_iter()
        .map(|(day, (n, minor))| {
            let major = Decimal::new(minor, 2);
            ("INR".to_owned(), day, n, Decimal::from(minor), major)
        })
        .collect();
    let expected = Views {
        funnel: (5, 4, 2, 2),
        rates: [dec("0.8"), dec("0.5"), dec("1"), dec("0.4")],
        revenue: revenue_rows,
        // The simulator's Razorpay payments say how the buyer paid (card
        // here); the attempt never paid has no method yet.
        payments: vec![
            (
                "razorpay".into(),
                "card".into(),
                3,
                2,
                1,
                0,
                0,
                dec("0.6667"),
            ),
            ("razorpay".into(), "unknown".into(), 1, 0, 0, 0, 1, None),
        ],
        coupons: vec![("SAVE10".into(), 1, 0, 1)],
    };
    views_until(&shop.env, &expected).await;

    let revenue = (a + b) as f64 / 100.0;
    let mut gauges = vec![
        ("analytics_funnel", vec![("step", "carts_created")], 5.0),
        ("analytics_funnel", vec![("step", "orders_placed")], 4.0),
        ("analytics_funnel", vec![("step", "orders_paid")], 2.0),
        ("analytics_funnel", vec![("step", "orders_enrolled")], 2.0),
        (
            "analytics_conversion_ratio",
            vec![("step", "cart_to_order")],
            0.8,
        ),
        (
            "analytics_conversion_ratio",
            vec![("step", "order_to_paid")],
            0.5,
        ),
        (
            "analytics_conversion_ratio",
            vec![("step", "paid_to_enrolled")],
            1.0,
        ),
        (
            "analytics_conversion_ratio",
            vec![("step", "cart_to_paid")],
            0.4,
        ),
        (
            "analytics_revenue",
            vec![("currency", "INR"), ("period", "total")],
            revenue,
        ),
        (
            "analytics_payment_success_ratio",
            vec![("gateway", "razorpay"), ("method", "card")],
            0.6667,
        ),
        (
            "analytics_payment_attempts",
            vec![
                ("gateway", "razorpay"),
                ("method", "card"),
                ("outcome", "failed"),
            ],
            1.0,
        ),
        (
            "analytics_payment_attempts",
            vec![
                ("gateway", "razorpay"),
                ("method", "unknown"),
                ("outcome", "open"),
            ],
            1.0,
        ),
        ("analytics_coupon_uses", vec![("code", "SAVE10")], 1.0),
    ];
    if paid_day(&ana) == today && paid_day(&ben) == today {
        gauges.push((
            "analytics_revenue",
            vec![("currency", "INR"), ("period", "today")],
            revenue,
        ));
    }
    gauges_until(&sinks, &gauges).await;

    // Every analytics record delivered again: the stored offsets of the
    // analytics groups are dropped (their facts kept) and the sinks start
    // over from offset 0.
    stop(sinks);
    let dropped = sqlx::query("DELETE FROM sink_offsets WHERE consumer_group LIKE $1")
        .bind(format!("{}analytics-%", shop.env.config.topics.prefix()))
        .execute(&shop.env.pool)
        .await
        .unwrap()
        .rows_affected();
    assert!(dropped >= 4, "{dropped} analytics offsets dropped");
    let sinks = start_sinks(&shop.env).await;
    analytics_caught_up(&shop.env).await;
    assert_eq!(
        views(&shop.env).await,
        expected,
        "redelivered: not one more"
    );
    gauges_until(&sinks, &gauges).await;

    // Each analytics sink rebuilt from its topic (tables emptied, topic
    // replayed): the same numbers.
    stop(sinks);
    for sink in [
        "analytics-carts",
        "analytics-orders",
        "analytics-enrollments",
        "analytics-coupons",
    ] {
        let out = checkoutctl(&shop.env, &["rebuild", sink]);
        assert!(
            out.status.success(),
            "rebuild {sink}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(views(&shop.env).await, expected, "rebuilt == live");
    let sinks = start_sinks(&shop.env).await;
    gauges_until(&sinks, &gauges).await;
}
