//! Fault tests beyond a plain kill (`crash.rs`), each ending with every
//! quantity in Postgres checked exactly: add-item is not idempotent, so a
//! command lost or applied twice shows as a wrong quantity.
//!
//! - follow-up commands: carts merged (AbsorbItems) while the processor
//!   holding the merges in its open transaction is killed;
//! - timers after a restart: carts expire on partitions that received no
//!   record after the processor restarted (a review's finding);
//! - a zombie: a processor stopped (SIGSTOP) with a transaction open, its
//!   partitions moved on, then continued (before or after its coordinator
//!   timed the transaction out): it is fenced, and nothing it wrote is
//!   ever read;
//! - a sink zombie: stopped with its Postgres transaction open, it must
//!   not hold back the sink that took its partitions (its row locks did,
//!   until sessions idle in a transaction were ended after 20 s), nor roll
//!   anything back when it runs again;
//! - the broker killed (SIGKILL) mid-stream and restarted on its data, and
//!   Postgres likewise, each a private server of the test's own;
//! - a retry with the same Idempotency-Key after many other commands to
//!   the same cart, and across a processor restart (the processor
//!   remembered only the last 64 command ids per cart: applied twice);
//! - the harness itself: an in-process stage that fails fails its test.
//!
//! Every kill or stop lands on work in flight, asserted from the victim's
//! `/metrics` (see `common::ChildGuard::await_in_flight`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::servers::{PrivateKafka, PrivatePostgres};
use common::{Api, TestEnv, CATALOG};
use schemas::records::cart::{AddItem, CartSnapshot, Command as CartCmd, CreateCart, MergeInto};
use schemas::topics::CART_SNAPSHOTS;
use schemas::values::CartToken;

/// How long a victim holds each batch open before committing it.
const HOLD: Duration = Duration::from_millis(1_500);
const HOLD_MS: &str = "1500";
const PROCESSOR: &str = "cart-processor";

/// (cart, internship) → quantity
type Lines = BTreeMap<(String, String), i64>;

/// What the test wrote, to check Postgres against.
#[derive(Default)]
struct Ledger {
    lines: Lines,
    /// cart → (token, the offset of its last command)
    last: HashMap<String, (CartToken, i64)>,
}

impl Ledger {
    fn wrote(&mut self, token: &CartToken, offset: i64) {
        let e = self
            .last
            .entry(token.as_str().to_owned())
            .or_insert((token.clone(), offset));
        e.1 = e.1.max(offset);
    }

    fn added(&mut self, token: &CartToken, item: &str, qty: i32, offset: i64) {
        *self
            .lines
            .entry((token.as_str().to_owned(), item.to_owned()))
            .or_insert(0) += i64::from(qty);
        self.wrote(token, offset);
    }

    fn versions(&self) -> Vec<(CartToken, i64)> {
        self.last.values().cloned().collect()
    }
}

async fn create(env: &TestEnv, owner: Option<&str>) -> (CartToken, i32, i64) {
    let token = CartToken::random();
    let (partition, offset) = env
        .send_to(
            &token,
            CartCmd::CreateCart(CreateCart {
                currency: "INR".into(),
                owner_user_id: owner.map(str::to_owned),
                device_id: None,
                items: vec![],
            }),
        )
        .await;
    (token, partition, offset)
}

async fn add(env: &TestEnv, token: &CartToken, item: &str, qty: i32, actor: Option<&str>) -> i64 {
    env.send(
        token,
        CartCmd::AddItem(AddItem {
            internship_id: item.into(),
            quantity: qty,
            actor_user_id: actor.map(str::to_owned),
        }),
    )
    .await
}

/// Every line in Postgres.
async fn lines(env: &TestEnv) -> Lines {
    let rows: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT cart_token, internship_id, quantity FROM cart_items")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(t, i, q)| ((t, i), i64::from(q)))
        .collect()
}

/// Waits until every cart of `ledger` reached its last command, then
/// checks every line in Postgres against it, and that no cart refused a
/// command.
async fn assert_exact(env: &TestEnv, ledger: &Ledger) {
    env.wait_for_versions(&ledger.versions(), Duration::from_secs(120))
        .await;
    assert_eq!(
        lines(env).await,
        ledger.lines,
        "every command applied exactly once"
    );
    let refused: Vec<(String, i32)> = sqlx::query_as(
        "SELECT cart_token, rejection_code FROM carts WHERE rejection_code IS NOT NULL",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(refused.is_empty(), "commands refused: {refused:?}");
}

/// Polls `check` every 200 ms until it holds; panics after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Streams `commands` add-items over `carts` at a steady pace (about
/// `seconds` in all); `sent` counts those acknowledged so far. Stops early
/// once `stop` is set.
async fn stream(
    env: &TestEnv,
    carts: &[CartToken],
    commands: usize,
    seconds: f64,
    sent: &AtomicUsize,
    stop: &AtomicBool,
) -> Ledger {
    let mut ledger = Ledger::default();
    let pause = Duration::from_secs_f64(seconds / commands as f64);
    for i in 0..commands {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let cart = &carts[i % carts.len()];
        let (item, _) = CATALOG[(i / carts.len()) % CATALOG.len()];
        let qty = (i % 3 + 1) as i32;
        let offset = add(env, cart, item, qty, None).await;
        ledger.added(cart, item, qty, offset);
        sent.fetch_add(1, Ordering::SeqCst);
        if i % 10 == 0 {
            tokio::time::sleep(pause * 10).await;
        }
    }
    ledger
}

/// `n` guest carts, created and recorded in `ledger`.
async fn guest_carts(env: &TestEnv, n: usize, ledger: &mut Ledger) -> Vec<CartToken> {
    let mut carts = Vec::new();
    for _ in 0..n {
        let (token, _, offset) = create(env, None).await;
        ledger.wrote(&token, offset);
        carts.push(token);
    }
    carts
}

/// A counter of the stage's, e.g. `pipeline_transaction_aborts_total`.
async fn counter(child: &common::ChildGuard, metric: &str, stage: &str) -> f64 {
    child
        .scrape()
        .await
        .ok()
        .and_then(|s| s.get(metric, stage))
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Follow-up commands: merges
// ---------------------------------------------------------------------------

const PAIRS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_merged_while_the_processor_holding_the_merges_is_killed_end_exact() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    let mut a = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "a"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let mut b = env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "b")]);

    // Each pair: a user's cart, and a guest cart the user will log in with.
    let mut ledger = Ledger::default();
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let user = format!("user-{i}");
        let (mine, _, o1) = create(&env, Some(&user)).await;
        let (guest, _, o2) = create(&env, None).await;
        ledger.wrote(&mine, o1);
        ledger.wrote(&guest, o2);
        pairs.push((user, mine, guest));
    }
    // Both carts fill up; the guest cart's lines will move to the user's.
    let mut guest_lines: Vec<Vec<(String, i32)>> = vec![Vec::new(); PAIRS];
    for round in 0..16 {
        for (i, (user, mine, guest)) in pairs.iter().enumerate() {
            let (item, _) = CATALOG[(round + i) % CATALOG.len()];
            let qty = (round % 3 + 1) as i32;
            let o = add(&env, guest, item, qty, None).await;
            ledger.added(guest, item, qty, o);
            guest_lines[i].push((item.to_owned(), qty));
            let (item, _) = CATALOG[(round + i + 1) % CATALOG.len()];
            let o = add(&env, mine, item, qty, Some(user)).await;
            ledger.added(mine, item, qty, o);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `a` has just begun a batch (held HOLD): the merges sent now are taken
    // by its next one, which is killed before it commits.
    a.await_in_flight(PROCESSOR, HOLD, Duration::from_secs(60))
        .await;
    for (user, mine, guest) in &pairs {
        let o = env
            .send(
                guest,
                CartCmd::MergeInto(MergeInto {
                    target_cart_token: mine.as_str().to_owned(),
                    user_id: user.clone(),
                }),
            )
            .await;
        ledger.wrote(guest, o);
    }
    let seen = a
        .kill9_in_flight(PROCESSOR, HOLD, Duration::from_secs(60))
        .await;
    eprintln!("killed with {} records open", seen.uncommitted);

    // The user's carts go on receiving items while `b` takes over; then
    // `a` comes back under its instance name.
    let more = async {
        let mut extra = Vec::new();
        for round in 0..8 {
            for (user, mine, _) in &pairs {
                let (item, _) = CATALOG[round % CATALOG.len()];
                let o = add(&env, mine, item, 1, Some(user)).await;
                extra.push((mine.clone(), item, o));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        extra
    };
    let restart = async {
        b.wait_gauge(
            "pipeline_assigned_partitions",
            PROCESSOR,
            4.0,
            Duration::from_secs(45),
        )
        .await;
        env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "a")])
    };
    let (extra, _a_again) = tokio::join!(more, restart);
    for (mine, item, o) in extra {
        ledger.added(&mine, item, 1, o);
    }

    // Every merge's AbsorbItems reached the log once (read_committed),
    // and the killed transaction had written some of them too (seen only
    // read_uncommitted): the kill hit the follow-ups.
    wait_until(
        "every AbsorbItems committed",
        Duration::from_secs(90),
        || async {
            env.commands_in_log(true)
                .await
                .iter()
                .filter(|(_, _, c)| matches!(c.command, CartCmd::AbsorbItems(_)))
                .count()
                >= PAIRS
        },
    )
    .await;
    let committed = env.commands_in_log(true).await;
    let absorbs = |log: &[(i32, i64, schemas::records::cart::CartCommand)]| {
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (_, _, c) in log {
            if matches!(c.command, CartCmd::AbsorbItems(_)) {
                *ids.entry(c.command_id.clone()).or_insert(0) += 1;
            }
        }
        ids
    };
    let once = absorbs(&committed);
    assert_eq!(once.len(), PAIRS, "one AbsorbItems per merge");
    assert!(
        once.values().all(|n| *n == 1),
        "an AbsorbItems committed twice: {once:?}"
    );
    let all = absorbs(&env.commands_in_log(false).await);
    let aborted = all.values().filter(|n| **n > 1).count();
    eprintln!("{aborted} AbsorbItems written by the killed transaction (aborted)");
    assert!(
        aborted > 0,
        "the killed transaction held no AbsorbItems: the kill missed the merges"
    );

    // The user's carts hold their own items plus the guest carts'.
    for (i, (_, mine, _)) in pairs.iter().enumerate() {
        for (item, qty) in &guest_lines[i] {
            *ledger
                .lines
                .entry((mine.as_str().to_owned(), item.clone()))
                .or_insert(0) += i64::from(*qty);
        }
        let absorb = committed
            .iter()
            .filter(|(_, _, c)| c.cart_token == mine.as_str())
            .map(|(_, o, _)| *o)
            .max()
            .unwrap();
        ledger.wrote(mine, absorb);
    }
    assert_exact(&env, &ledger).await;
    for (_, mine, guest) in &pairs {
        let (status, into): (String, Option<String>) =
            sqlx::query_as("SELECT status, merged_into FROM carts WHERE cart_token = $1")
                .bind(guest.as_str())
                .fetch_one(&env.pool)
                .await
                .unwrap();
        assert_eq!(status, "merged");
        assert_eq!(into.as_deref(), Some(mine.as_str()));
    }
}

// ---------------------------------------------------------------------------
// Timers after a restart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_carts_expire_on_partitions_that_received_no_record() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    // The first run never expires anything (a day's TTL); it is killed
    // inside a transaction on one partition.
    let mut first = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "e"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let mut ledger = Ledger::default();
    // Carts on every partition, each with a few items.
    let mut by_partition: BTreeMap<i32, Vec<CartToken>> = BTreeMap::new();
    while by_partition.len() < 4 || by_partition.values().any(|c| c.len() < 2) {
        let (token, partition, offset) = create(&env, None).await;
        ledger.wrote(&token, offset);
        by_partition.entry(partition).or_default().push(token);
    }
    for carts in by_partition.values() {
        for (i, cart) in carts.iter().enumerate() {
            for (item, _) in CATALOG.iter().take(i % 3 + 1) {
                let o = add(&env, cart, item, 2, None).await;
                ledger.added(cart, item, 2, o);
            }
        }
    }
    env.wait_for_versions(&ledger.versions(), Duration::from_secs(60))
        .await;

    // One busy partition: fresh carts there get a stream of items (created
    // now, so their commands follow each other closely), until the kill.
    let busy = *by_partition.keys().next().unwrap();
    let mut busy_carts = Vec::new();
    while busy_carts.len() < 3 {
        let (token, partition, offset) = create(&env, None).await;
        ledger.wrote(&token, offset);
        by_partition
            .entry(partition)
            .or_default()
            .push(token.clone());
        if partition == busy {
            busy_carts.push(token);
        }
    }
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let busy_stream = stream(&env, &busy_carts, 600, 8.0, &sent, &stop);
    let kill = async {
        first
            .kill9_in_flight(PROCESSOR, HOLD, Duration::from_secs(60))
            .await;
        stop.store(true, Ordering::SeqCst);
    };
    let (streamed, ()) = tokio::join!(busy_stream, kill);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }
    // Where each partition ends before the restart: nothing but the
    // restarted processor's own timer commands may come after.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, o, _) in env.commands_in_log(true).await {
        let e = ends.entry(p).or_insert(o);
        *e = (*e).max(o);
    }

    // The restart expires carts idle for 3 s, looking every 250 ms.
    let _second = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "e"),
            ("CART_TTL_SECS", "3"),
            ("CART_EXPIRY_TICK_MS", "250"),
        ],
    );
    let carts = ledger.last.len() as i64;
    wait_until("every cart expired", Duration::from_secs(90), || async {
        let expired: i64 =
            sqlx::query_scalar("SELECT count(*) FROM carts WHERE status = 'expired'")
                .fetch_one(&env.pool)
                .await
                .unwrap();
        expired == carts
    })
    .await;

    // Nothing but ExpireCart reached any partition after the restart, and
    // every cart still holds exactly its items (the busy partition's open
    // transaction was replayed once).
    let after: Vec<_> = env
        .commands_in_log(true)
        .await
        .into_iter()
        .filter(|(p, o, _)| ends.get(p).is_none_or(|end| o > end))
        .collect();
    assert!(
        after
            .iter()
            .all(|(_, _, c)| matches!(c.command, CartCmd::ExpireCart(_))),
        "only timer commands after the restart"
    );
    for p in by_partition.keys().filter(|p| **p != busy) {
        assert!(
            after.iter().any(|(q, _, _)| q == p),
            "partition {p}: no expiry commands"
        );
    }
    // A cart shows `expired` only once its ExpireCart is applied, which
    // follows every command written to it before the restart (the busy
    // partition's replayed ones included): its lines are final.
    assert_eq!(lines(&env).await, ledger.lines, "items intact");
}

// ---------------------------------------------------------------------------
// A zombie
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_processor_that_comes_back_is_fenced_and_nothing_it_wrote_is_read() {
    zombie(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_processor_that_comes_back_after_its_transaction_timed_out_is_fenced() {
    zombie(true).await;
}

/// Two processors; `z` is stopped (SIGSTOP) inside a transaction, `s`
/// takes all its partitions, commands keep coming, then `z` runs again:
/// at once (`late` false: the group has moved on, its offsets commit is
/// refused), or once the coordinator aborted its transaction on
/// `transaction.timeout.ms` (`late`: its producer epoch is stale).
async fn zombie(late: bool) {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    let mut zombie = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "z"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let mut survivor = env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "s")]);
    let mut ledger = Ledger::default();
    let carts = guest_carts(&env, 10, &mut ledger).await;
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let commands = 1_000;
    let streaming = stream(&env, &carts, commands, 28.0, &sent, &stop);
    let faults = async {
        zombie
            .sigstop_in_flight(PROCESSOR, HOLD, Duration::from_secs(60))
            .await;
        survivor
            .wait_gauge(
                "pipeline_assigned_partitions",
                PROCESSOR,
                4.0,
                Duration::from_secs(45),
            )
            .await;
        // Commands keep coming to the survivor for a while, then the
        // zombie runs again, its batch still open.
        let at_takeover = sent.load(Ordering::SeqCst);
        assert!(
            at_takeover < commands,
            "the stream ended before the takeover"
        );
        wait_until(
            "more commands after the takeover",
            Duration::from_secs(30),
            || async { sent.load(Ordering::SeqCst) >= at_takeover + 100 },
        )
        .await;
        if late {
            // The stopped transaction blocks every read_committed reader of
            // its partitions until its coordinator aborts it.
            env.wait_transactions_settled(&CART_SNAPSHOTS.def, Duration::from_secs(60))
                .await;
        }
        let at = sent.load(Ordering::SeqCst);
        assert!(
            at < commands,
            "the stream ended before the zombie came back"
        );
        zombie.sigcont();
        eprintln!("continued the zombie after {at} of {commands} commands");
        // Its commit cannot succeed: it aborts, or its session ends.
        wait_until("the zombie fenced", Duration::from_secs(60), || async {
            counter(&zombie, "pipeline_transaction_aborts_total", PROCESSOR).await
                + counter(&zombie, "pipeline_stage_restarts_total", PROCESSOR).await
                > 0.0
        })
        .await;
        eprintln!(
            "the zombie: {} aborted transactions, {} restarted sessions",
            counter(&zombie, "pipeline_transaction_aborts_total", PROCESSOR).await,
            counter(&zombie, "pipeline_stage_restarts_total", PROCESSOR).await
        );
    };
    let (streamed, ()) = tokio::join!(streaming, faults);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }
    assert_exact(&env, &ledger).await;

    // The zombie's open transaction did write snapshots (they are in the
    // log, read_uncommitted), but no reader ever saw them: read_committed,
    // each snapshot (cart, version) is there once.
    let snapshot_ids = |records: Vec<common::RawRecord>| {
        let codec = env.codec.clone();
        async move {
            let mut ids: HashMap<String, usize> = HashMap::new();
            for r in records {
                let s: CartSnapshot = codec
                    .decode(&CART_SNAPSHOTS, r.value.as_deref())
                    .await
                    .unwrap();
                *ids.entry(s.event_id).or_insert(0) += 1;
            }
            ids
        }
    };
    let committed = snapshot_ids(env.read_topic(&CART_SNAPSHOTS.def, true).await).await;
    assert!(
        committed.values().all(|n| *n == 1),
        "a snapshot committed twice"
    );
    let written = snapshot_ids(env.read_topic(&CART_SNAPSHOTS.def, false).await).await;
    let aborted = written.values().filter(|n| **n > 1).count();
    eprintln!("{aborted} snapshots written twice, once in an aborted transaction");
    assert!(aborted > 0, "the zombie's transaction wrote nothing");
}

/// Two sink processes; `z` is stopped (SIGSTOP) with its Postgres
/// transaction open (rows written, offsets not committed), `s` takes its
/// partitions: the read model must keep up without `z`, and once `z` runs
/// again and commits its stale batch, nothing moves backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sink_neither_holds_back_nor_rolls_back_the_sink_that_took_its_partitions() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    let mut zombie = env.child_with("sinks", &["all"], &[("FAULT_HOLD_BATCH_MS", HOLD_MS)]);
    let mut survivor = env.child("sinks", &["all"]);
    let mut ledger = Ledger::default();
    let carts = guest_carts(&env, 10, &mut ledger).await;
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let streaming = stream(&env, &carts, 600, 8.0, &sent, &stop);
    let faults = async {
        zombie
            .sigstop_in_flight("carts-sink", HOLD, Duration::from_secs(60))
            .await;
        survivor
            .wait_gauge(
                "pipeline_assigned_partitions",
                "carts-sink",
                4.0,
                Duration::from_secs(45),
            )
            .await;
    };
    let (streamed, ()) = tokio::join!(streaming, faults);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }

    // With `z` still stopped, every cart reaches its last version.
    let started = Instant::now();
    let stalled = loop {
        let mut behind = 0;
        for (token, version) in ledger.versions() {
            let v: Option<i64> =
                sqlx::query_scalar("SELECT version FROM carts WHERE cart_token = $1")
                    .bind(token.as_str())
                    .fetch_optional(&env.pool)
                    .await
                    .unwrap();
            behind += usize::from(v.is_none_or(|v| v < version));
        }
        if behind == 0 {
            break None;
        }
        if started.elapsed() > Duration::from_secs(45) {
            // Who waits for whom: the stopped sink's open transaction holds
            // row locks the survivor's writes queue behind.
            let waits: Vec<(i32, Vec<i32>, String, Option<String>, String)> = sqlx::query_as(
                "SELECT pid, pg_blocking_pids(pid), state, wait_event_type, left(query, 60) \
                 FROM pg_stat_activity \
                 WHERE cardinality(pg_blocking_pids(pid)) > 0 OR state = 'idle in transaction'",
            )
            .fetch_all(&env.pool)
            .await
            .unwrap();
            let stalled = format!(
                "{behind} carts still behind 45 s after the survivor took every partition, \
                 while the stopped sink holds its transaction; sessions waiting or idle in a \
                 transaction (pid, blocked by, state, wait, statement): {waits:?}"
            );
            eprintln!("{stalled}");
            break Some(stalled);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // `z` runs again: its held batch commits (or fails), older than what
    // the survivor wrote; nothing may move backwards.
    zombie.sigcont();
    wait_until(
        "the stopped sink's batch settled",
        Duration::from_secs(30),
        || async {
            let open = zombie
                .scrape()
                .await
                .ok()
                .and_then(|s| s.get("pipeline_uncommitted_records", "carts-sink"));
            open == Some(0.0)
                || counter(&zombie, "pipeline_stage_restarts_total", "carts-sink").await > 0.0
        },
    )
    .await;
    assert_exact(&env, &ledger).await;
    assert!(stalled.is_none(), "{}", stalled.unwrap_or_default());
}

// ---------------------------------------------------------------------------
// The broker and Postgres killed
// ---------------------------------------------------------------------------

/// A producer that waits out a broker restart (two minutes per record).
fn patient_producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_mid_transaction_and_restarted_on_its_data_loses_and_duplicates_nothing()
{
    let mut kafka = PrivateKafka::start().await;
    let brokers = kafka.brokers();
    let mut env = TestEnv::new_with(|c| c.kafka_brokers = brokers.clone()).await;
    env.producer = patient_producer(&brokers);
    env.spawn_sinks();
    let mut processor = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "k"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let mut ledger = Ledger::default();
    let carts = guest_carts(&env, 10, &mut ledger).await;
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let commands = 1_000;
    let streaming = stream(&env, &carts, commands, 10.0, &sent, &stop);
    let faults = async {
        // The broker dies while the processor's transaction is open.
        let seen = processor
            .await_in_flight(PROCESSOR, HOLD, Duration::from_secs(90))
            .await;
        common::settle(&seen).await;
        assert!(kafka.kill9(), "the broker was running when killed");
        seen.assert_landed("the processor", "broker SIGKILL during the transaction of");
        let at = sent.load(Ordering::SeqCst);
        assert!(at < commands, "the kill came after the stream ended");
        eprintln!("killed the broker after {at} of {commands} commands");
        kafka.restart().await;
    };
    let (streamed, ()) = tokio::join!(streaming, faults);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }
    assert_exact(&env, &ledger).await;
    assert!(processor.is_running(), "the processor survived the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_inside_a_sink_transaction_and_restarted_loses_and_duplicates_nothing() {
    let mut pg = PrivatePostgres::start().await;
    let url = pg.url();
    let env = TestEnv::new_with(|c| c.database_url = url.clone()).await;
    env.spawn_cart_processor();
    let mut sinks = env.child_with("sinks", &["all"], &[("FAULT_HOLD_BATCH_MS", HOLD_MS)]);
    let mut ledger = Ledger::default();
    let carts = guest_carts(&env, 10, &mut ledger).await;
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let commands = 1_000;
    let streaming = stream(&env, &carts, commands, 8.0, &sent, &stop);
    let faults = async {
        let seen = sinks
            .await_in_flight("carts-sink", HOLD, Duration::from_secs(60))
            .await;
        common::settle(&seen).await;
        assert!(pg.kill9(), "postgres was running when killed");
        seen.assert_landed(
            "the carts sink",
            "postgres SIGKILL during the transaction of",
        );
        let at = sent.load(Ordering::SeqCst);
        assert!(at < commands, "the kill came after the stream ended");
        eprintln!("killed postgres after {at} of {commands} commands");
        pg.restart().await;
    };
    let (streamed, ()) = tokio::join!(streaming, faults);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }
    assert_exact(&env, &ledger).await;
    assert!(sinks.is_running(), "the sinks survived the outage");
}

// ---------------------------------------------------------------------------
// Idempotency-Key against the processor's memory of command ids
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_its_idempotency_key_after_many_other_commands_to_the_cart_is_applied_once() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    // Writes are delivered but answered 504 (outcome unknown): what a
    // client sees when the broker is slow, or the ingress dies.
    let impatient = Api::at(
        env.spawn_ingress_with(|c| c.ack_timeout = Duration::ZERO)
            .await,
    );
    let mut ledger = Ledger::default();
    let cart = guest_carts(&env, 1, &mut ledger).await.remove(0);
    let key = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"internship_id": "rust-backend", "quantity": 4});
    let post = |api: &Api| {
        api.request(
            reqwest::Method::POST,
            &format!("/cart/{}/items", cart.as_str()),
        )
        .header("idempotency-key", &key)
        .json(&body)
    };
    let unknown = Api::send(post(&impatient)).await;
    assert_eq!(unknown.status, 504, "{unknown:?}");
    let id = unknown.body["error"]["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        "the 504'd command in the log",
        Duration::from_secs(30),
        || async {
            env.commands_in_log(true)
                .await
                .iter()
                .any(|(_, _, c)| c.command_id == id)
        },
    )
    .await;
    ledger
        .lines
        .insert((cart.as_str().to_owned(), "rust-backend".to_owned()), 4);
    // Other commands to the same cart (another tab, another client) while
    // this client waits to retry: more than the processor remembers.
    // (The processor once remembered 64 ids per cart; 100 is past that.)
    let others = 100;
    for _ in 0..others {
        let o = add(&env, &cart, "design", 1, None).await;
        ledger.added(&cart, "design", 1, o);
    }
    let retry = Api::send(post(&api)).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["command_id"], id.as_str(), "the same command");
    ledger.wrote(&cart, retry.body["version"].as_i64().unwrap());
    assert_exact(&env, &ledger).await;
}

/// As above, with the processor killed (inside a transaction) and
/// restarted between the first write and the retry: what it remembers of
/// applied ids must survive the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_its_idempotency_key_is_applied_once_across_a_processor_restart() {
    let env = TestEnv::new().await;
    env.spawn_sinks();
    let mut first = env.child_with(
        "processors",
        &["cart"],
        &[
            ("PROCESSOR_INSTANCE", "r"),
            ("FAULT_HOLD_BATCH_MS", HOLD_MS),
        ],
    );
    let api = Api::at(env.spawn_ingress().await);
    let impatient = Api::at(
        env.spawn_ingress_with(|c| c.ack_timeout = Duration::ZERO)
            .await,
    );
    let mut ledger = Ledger::default();
    let cart = guest_carts(&env, 1, &mut ledger).await.remove(0);
    env.wait_for_versions(&ledger.versions(), Duration::from_secs(60))
        .await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"internship_id": "rust-backend", "quantity": 4});
    let post = |api: &Api| {
        api.request(
            reqwest::Method::POST,
            &format!("/cart/{}/items", cart.as_str()),
        )
        .header("idempotency-key", &key)
        .json(&body)
    };
    let unknown = Api::send(post(&impatient)).await;
    assert_eq!(unknown.status, 504, "{unknown:?}");
    let id = unknown.body["error"]["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first write is applied (and committed) before the restart.
    let started = Instant::now();
    let offset = loop {
        let found = env
            .commands_in_log(true)
            .await
            .iter()
            .find(|(_, _, c)| c.command_id == id)
            .map(|(_, o, _)| *o);
        if let Some(o) = found {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the 504'd write never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    env.wait_for_versions(&[(cart.clone(), offset)], Duration::from_secs(60))
        .await;
    ledger
        .lines
        .insert((cart.as_str().to_owned(), "rust-backend".to_owned()), 4);

    // Other commands to the cart; the processor is killed inside a batch of
    // them and comes back under its instance name.
    let (sent, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let others = stream(&env, std::slice::from_ref(&cart), 150, 5.0, &sent, &stop);
    let kill = async {
        first
            .kill9_in_flight(PROCESSOR, HOLD, Duration::from_secs(60))
            .await;
        env.child_with("processors", &["cart"], &[("PROCESSOR_INSTANCE", "r")])
    };
    let (streamed, _second) = tokio::join!(others, kill);
    for (k, v) in streamed.lines {
        *ledger.lines.entry(k).or_insert(0) += v;
    }
    for (t, o) in streamed.last.into_values() {
        ledger.wrote(&t, o);
    }
    env.wait_for_versions(&ledger.versions(), Duration::from_secs(90))
        .await;

    let retry = Api::send(post(&api)).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["command_id"], id.as_str(), "the same command");
    ledger.wrote(&cart, retry.body["version"].as_i64().unwrap());
    assert_exact(&env, &ledger).await;
}

// ---------------------------------------------------------------------------
// The harness: a failing in-process stage fails its test
// ---------------------------------------------------------------------------

/// Not a test on its own: run by the test below, in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by in_process_stage_failures_fail_the_test_at_once"]
async fn a_test_whose_stage_fails() {
    match std::env::var("DOOMED_STAGE").as_deref() {
        Ok("error") => common::spawn_stage("doomed stage", async {
            anyhow::bail!("deliberate failure")
        }),
        _ => common::spawn_stage("doomed stage", async {
            // A panic deep in a task the stage spawned.
            tokio::spawn(async { panic!("deliberate panic") });
            std::future::pending::<()>().await;
            Ok(())
        }),
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[test]
fn in_process_stage_failures_fail_the_test_at_once() {
    for how in ["error", "panic"] {
        let started = Instant::now();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_test_whose_stage_fails",
                "--ignored",
                "--nocapture",
            ])
            .env("DOOMED_STAGE", how)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(101), "{how}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{how}: the test ran on instead of failing at once"
        );
        assert!(stderr.contains("failing the test now"), "{how}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// A dependency absent at start-up
// ---------------------------------------------------------------------------

/// Forwards every connection to `127.0.0.1:port` to `target` (host:port),
/// from the moment it is called: the registry "coming back" on the address
/// a stage was started with.
async fn forward(port: u16, target: String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the forwarder's port is free");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// A stage (re)started while the schema registry is down waits for it,
/// as it would for the broker or Postgres, instead of exiting for good
/// (the fault run once saw the gateway worker, restarted three seconds
/// before the registry was killed, never come back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_started_while_the_registry_is_down_waits_for_it() {
    let env = TestEnv::new().await;
    let port = common::free_port();
    let absent = format!("http://127.0.0.1:{port}");
    let mut stage = env.child_with("processors", &["cart"], &[("SCHEMA_REGISTRY_URL", &absent)]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stage.is_running(),
        "the cart processor exited while the registry was down"
    );
    let ready = reqwest::get(stage.ops_url("/readyz")).await;
    assert!(
        ready.is_err(),
        "the ops endpoints are served before the registry answered"
    );
    let registry = env
        .config
        .schema_registry_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    forward(port, registry).await;
    stage.wait_ready(Duration::from_secs(60)).await;
}

/// A registry that never comes ends the wait (`STARTUP_WAIT_SECS`) with
/// a non-zero exit and a line naming what was awaited.
#[test]
fn a_stage_whose_registry_never_comes_stops_naming_it() {
    let port = common::free_port();
    let mut command = std::process::Command::new(common::bin_path("processors"));
    command
        .arg("cart")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCHEMA_REGISTRY_URL", format!("http://127.0.0.1:{port}"))
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("OPS_ADDR", "127.0.0.1:0")
        .env("STARTUP_WAIT_SECS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in common::secret_envs() {
        command.env(name, value);
    }
    let started = Instant::now();
    let out = command.output().expect("the binary runs");
    assert!(!out.status.success(), "exited {:?}", out.status);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "it did not wait: {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("the schema registry") && last.contains("STARTUP_WAIT_SECS"),
        "{stderr}"
    );
}
