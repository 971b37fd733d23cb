//! Read-your-writes without polling: readers waiting for a cart or order
//! version subscribe here; one `LISTEN cart_versions` connection wakes them
//! when the carts or orders sink commits a newer version. A missed notification (a reconnect)
//! costs at most one re-check interval, never a wrong answer, because the
//! answer itself is always read from Postgres.

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
        listener.listen(sinks::CART_VERSIONS_CHANNEL).await?;
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

    /// Reads `token`'s entity with `read` until `done` holds or `wait`
    /// has passed, waking on the sinks' notifications (and re-reading at
    /// least every 500 ms in case one was lost). Returns the last read and
    /// whether `done` held.
    pub async fn wait_until<T, E, F, Fut>(
        &self,
        token: &str,
        wait: Duration,
        mut read: F,
        done: impl Fn(&T) -> bool,
    ) -> Result<(T, bool), E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut rx = self.subscribe(token);
        let deadline = tokio::time::Instant::now() + wait;
        let result = loop {
            let value = match read().await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            if done(&value) {
                break Ok((value, true));
            }
            if tokio::time::Instant::now() >= deadline {
                break Ok((value, false));
            }
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_millis(500));
            let _ = tokio::time::timeout_at(until, rx.changed()).await;
        };
        drop(rx);
        self.release(token);
        result
    }

    pub fn waiting(&self) -> usize {
        self.carts.lock().map(|m| m.len()).unwrap_or(0)
    }
}
