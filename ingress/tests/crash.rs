//! Crash tests: 1,000 add-item commands stream in while a stage is killed
//! with SIGKILL part-way and restarted; Postgres must then hold exactly the
//! expected carts, items and quantities. Adding items is not idempotent by
//! itself (quantities add up), so any command applied twice or lost shows
//! up as a wrong quantity.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestEnv, CATALOG};
use schemas::values::CartToken;

const CARTS: usize = 10;
const COMMANDS: usize = 1_000;

struct Expected {
    /// (cart, its last command's offset)
    versions: Vec<(CartToken, i64)>,
    /// (cart, internship) → quantity
    quantities: BTreeMap<(String, String), i64>,
}

/// Creates the carts, then streams the add-item commands at a steady pace
/// (about `seconds` in all) so a kill lands in the middle of the stream.
async fn stream_commands(env: &TestEnv, seconds: f64) -> Expected {
    let mut carts = Vec::new();
    for _ in 0..CARTS {
        carts.push(env.create_cart().await);
    }
    let mut quantities = BTreeMap::new();
    let mut last: Vec<i64> = carts.iter().map(|(_, o)| *o).collect();
    let pause = Duration::from_secs_f64(seconds / COMMANDS as f64);
    for i in 0..COMMANDS {
        let c = i % CARTS;
        let (id, _) = CATALOG[(i / CARTS) % CATALOG.len()];
        let qty = (i % 3 + 1) as i32;
        last[c] = env.add_item(&carts[c].0, id, qty).await;
        *quantities
            .entry((carts[c].0.as_str().to_owned(), id.to_owned()))
            .or_insert(0) += i64::from(qty);
        if i % 10 == 0 {
            tokio::time::sleep(pause * 10).await;
        }
    }
    Expected {
        versions: carts.into_iter().map(|(t, _)| t).zip(last).collect(),
        quantities,
    }
}

async fn assert_exact(env: &TestEnv, expected: &Expected) {
    env.wait_for_versions(&expected.versions, Duration::from_secs(120))
        .await;
    let rows: Vec<(String, String, i32, i64, i64)> = sqlx::query_as(
        "SELECT cart_token, internship_id, quantity, unit_price_minor, line_total_minor FROM cart_items ORDER BY 1, 2",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let actual: BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|(t, i, q, _, _)| ((t.clone(), i.clone()), i64::from(*q)))
        .collect();
    assert_eq!(
        actual, expected.quantities,
        "every command applied exactly once"
    );
    for (_, _, q, unit, total) in &rows {
        assert_eq!(*total, unit * i64::from(*q));
    }
    let carts: Vec<(i64, i64, Option<i32>)> =
        sqlx::query_as("SELECT version, subtotal_minor, rejection_code FROM carts")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(carts.len(), CARTS);
    assert!(
        carts.iter().all(|(_, _, r)| r.is_none()),
        "no command was refused: {carts:?}"
    );
    let sum_lines: i64 = rows.iter().map(|r| r.4).sum();
    let sum_carts: i64 = carts.iter().map(|c| c.1).sum();
    assert_eq!(sum_lines, sum_carts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_cart_processor_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    // Two instances share the partitions; one is killed and the other takes
    // its partitions over, then the killed one comes back.
    let mut a = env.child("processors", &["cart"]);
    let _b = env.child("processors", &["cart"]);
    let stream = stream_commands(&env, 6.0);
    let kill = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(a.kill9(), "the processor was running when killed");
        tokio::time::sleep(Duration::from_secs(2)).await;
        env.child("processors", &["cart"])
    };
    let (expected, _a_again) = tokio::join!(stream, kill);
    assert_exact(&env, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_carts_sink_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    let mut sink = env.child("sinks", &["all"]);
    let stream = stream_commands(&env, 6.0);
    let kill = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(sink.kill9(), "the sink was running when killed");
        tokio::time::sleep(Duration::from_secs(1)).await;
        env.child("sinks", &["all"])
    };
    let (expected, _sink_again) = tokio::join!(stream, kill);
    assert_exact(&env, &expected).await;
}
