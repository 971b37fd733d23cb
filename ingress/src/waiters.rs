//! Read-your-writes without polling every waiter: readers waiting for a
//! cart or order version, or for an order's enrollments (the key
//! [`platform::wakeups::enrolled_key`], "version" 1), subscribe here. One `LISTEN cart_versions`
//! connection wakes them when the carts or orders sink commits a newer
//! version; in case a notification is lost (a reconnect), one small query
//! every 500 ms reads the versions of every token waited on, all at once.
//! A waiter reads its entity only when its version is there (or once more
//! at its deadline), so 10,000 waiters cost one version query per half
//! second, not 20,000 full reads. The answer itself is always read from
//! Postgres, never from a notification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

pub struct VersionWaiters {
    carts: Mutex<HashMap<String, watch::Sender<i64>>>,
}

impl VersionWaiters {
    /// Starts listening for cart versions on `pool`'s database.
    pub async fn listen(pool: &PgPool) -> anyhow::Result<Arc<VersionWaiters>> {
        let waiters = Arc::new(VersionWaiters {
            carts: Mutex::new(HashMap::new()),
        });
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen(platform::wakeups::CART_VERSIONS_CHANNEL)
            .await?;
        tokio::spawn(poll_versions(waiters.clone(), pool.clone()));
        let w = waiters.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => w.notify(n.payload()),
                    Err(e) => {
                        // PgListener reconnects on the next recv.
                        tracing::warn!(error = %e, "cart version listener interrupted");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(waiters)
    }

    fn notify(&self, payload: &str) {
        let Some((token, version)) = payload.rsplit_once(':') else {
            return;
        };
        let Ok(version) = version.parse::<i64>() else {
            return;
        };
        self.seen(token, version);
    }

    /// `token` is at `version` in Postgres: wakes its waiters if newer.
    fn seen(&self, token: &str, version: i64) {
        if let Ok(map) = self.carts.lock() {
            if let Some(tx) = map.get(token) {
                tx.send_if_modified(|v| {
                    let newer = version > *v;
                    if newer {
                        *v = version;
                    }
                    newer
                });
            }
        }
    }

    /// Subscribes to `token`'s versions; subscribe before reading, so a
    /// commit between the read and the wait is not missed.
    pub fn subscribe(&self, token: &str) -> watch::Receiver<i64> {
        let mut map = self
            .carts
            .lock()
            .expect("waiter map lock is never poisoned: no panics while held");
        map.entry(token.to_owned())
            .or_insert_with(|| watch::channel(-1).0)
            .subscribe()
    }

    /// Drops the entry of `token` when nobody waits on it any more.
    pub fn release(&self, token: &str) {
        if let Ok(mut map) = self.carts.lock() {
            if map.get(token).is_some_and(|tx| tx.receiver_count() == 0) {
                map.remove(token);
            }
        }
    }

    /// Reads `token`'s entity with `read` until its version (`version_of`)
    /// is `wanted` or later, or `wait` has passed. It reads first, then only
    /// when a notification (or the versions poll) says the version is
    /// there, and once more at the deadline. Returns the last read and
    /// whether the version was reached.
    pub async fn wait_until<T, E, F, Fut>(
        &self,
        token: &str,
        wait: Duration,
        wanted: i64,
        read: F,
        version_of: impl Fn(&T) -> Option<i64>,
    ) -> Result<(T, bool), E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.wait_for(token, wait, wanted, read, version_of, |_| true)
            .await
    }

    /// As [`VersionWaiters::wait_until`], until the entity is at `wanted`
    /// or later and `done` holds for it: the condition a client waits for
    /// (a payment session exists), however many versions it takes. Between
    /// reads it waits for a version newer than the last one read, so each
    /// change costs one read and the client one request.
    pub async fn wait_for<T, E, F, Fut>(
        &self,
        token: &str,
        wait: Duration,
        wanted: i64,
        mut read: F,
        version_of: impl Fn(&T) -> Option<i64>,
        done: impl Fn(&T) -> bool,
    ) -> Result<(T, bool), E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        // Subscribed before the first read: a commit between the two is
        // not missed.
        let mut rx = self.subscribe(token);
        let deadline = tokio::time::Instant::now() + wait;
        let result = loop {
            let value = match read().await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            let version = version_of(&value);
            if version.is_some_and(|v| v >= wanted) && done(&value) {
                break Ok((value, true));
            }
            if tokio::time::Instant::now() >= deadline {
                break Ok((value, false));
            }
            // The next version worth a read: the one asked for, and newer
            // than what was read; for an entity not visible yet, its first
            // (versions are offsets, from 0), so a missing one is not
            // read again and again until it appears.
            let next = match version {
                Some(v) => wanted.max(v.saturating_add(1)),
                None => wanted.max(0),
            };
            // Until that version is announced, or the deadline (then one
            // last read, in case both the notification and a poll missed).
            loop {
                if *rx.borrow_and_update() >= next {
                    break;
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => continue,
                    // The sender went away (released meanwhile) or the
                    // deadline passed: read again.
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        };
        drop(rx);
        self.release(token);
        result
    }

    /// The tokens waited on now (at most `limit`).
    fn tokens(&self, limit: usize) -> Vec<String> {
        self.carts
            .lock()
            .map(|m| m.keys().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    pub fn waiting(&self) -> usize {
        self.carts.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// How often the versions of the tokens waited on are read, in case a
/// notification was lost.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// One query for every waited-on token's version (carts and orders), every
/// [`POLL_EVERY`]; nothing when nobody waits.
async fn poll_versions(waiters: Arc<VersionWaiters>, pool: PgPool) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let tokens = waiters.tokens(50_000);
        if tokens.is_empty() {
            continue;
        }
        let enrolled: Vec<&str> = tokens
            .iter()
            .filter_map(|t| t.strip_prefix("enrolled:"))
            .collect();
        let rows: Result<Vec<(String, i64)>, sqlx::Error> = sqlx::query_as(
            "SELECT cart_token, version FROM carts WHERE cart_token = ANY($1)
             UNION ALL
             SELECT order_token, version FROM orders WHERE order_token = ANY($1)
             UNION ALL
             SELECT DISTINCT 'enrolled:' || order_token, 1::int8 FROM enrollments WHERE order_token = ANY($2)",
        )
        .bind(&tokens)
        .bind(&enrolled)
        .fetch_all(&pool)
        .await;
        match rows {
            Ok(rows) => {
                for (token, version) in rows {
                    waiters.seen(&token, version);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the waited-on versions failed; next tick retries")
            }
        }
    }
}
