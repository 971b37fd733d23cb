//! The `idempotency_keys` table (`sinks/migrations/20261124000001_idempotency_keys.sql`):
//! claiming a key, settling it, and purging expired rows. Times are the
//! database's `now()`, so every ingress instance agrees on them.

use std::time::Duration;

use sqlx::types::Json;
use sqlx::PgPool;

use super::{Earlier, Keys, Stored, RETENTION};

/// Claims `(scope, key)` for a request with `fingerprint`: `None` when it
/// is ours to run (a new key, or a row that expired or was abandoned in
/// flight), else the earlier request holding it.
#[tracing::instrument(skip_all)]
pub async fn claim(
    keys: &Keys,
    scope: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Earlier>, sqlx::Error> {
    // Two attempts: the holder may release the row between our insert and
    // our read (its answer was not a success), and the key is then free.
    for _ in 0..2 {
        let claimed: Option<bool> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (caller, key, fingerprint, state, created_at)
             VALUES ($1, $2, $3, 'in_flight', now())
             ON CONFLICT (caller, key) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight',
                    status = NULL, headers = NULL, body = NULL, created_at = now()
              WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
                 OR (idempotency_keys.state = 'in_flight'
                     AND idempotency_keys.created_at < now() - make_interval(secs => $5))
             RETURNING true",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(RETENTION.as_secs_f64())
        .bind(keys.lease.as_secs_f64())
        .fetch_optional(&keys.pool)
        .await?;
        if claimed.is_some() {
            return Ok(None);
        }
        type Row = (
            String,
            Option<i16>,
            Option<Json<Vec<(String, String)>>>,
            Option<Vec<u8>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT fingerprint, status, headers, body FROM idempotency_keys
              WHERE caller = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&keys.pool)
        .await?;
        if let Some((fingerprint, status, headers, body)) = row {
            let answer = match (status, headers, body) {
                (Some(status), Some(headers), Some(body)) => Some(Stored {
                    status: u16::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?,
                    headers: headers.0,
                    body,
                }),
                // The table's check keeps a row either in flight or whole.
                _ => None,
            };
            return Ok(Some(Earlier {
                fingerprint,
                answer,
            }));
        }
    }
    // Released twice in a row under us: as good as in flight.
    Ok(Some(Earlier {
        fingerprint: fingerprint.to_owned(),
        answer: None,
    }))
}

/// Stores the answer of the request that claimed the row.
#[tracing::instrument(skip_all)]
pub async fn finish(
    pool: &PgPool,
    scope: &str,
    key: &str,
    fingerprint: &str,
    answer: &Stored,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status = $4, headers = $5, body = $6
          WHERE caller = $1 AND key = $2 AND fingerprint = $3 AND state = 'in_flight'",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(i16::try_from(answer.status).map_err(|e| sqlx::Error::Encode(e.into()))?)
    .bind(Json(&answer.headers))
    .bind(&answer.body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Frees the key of a request whose answer is not kept.
#[tracing::instrument(skip_all)]
pub async fn release(
    pool: &PgPool,
    scope: &str,
    key: &str,
    fingerprint: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys
          WHERE caller = $1 AND key = $2 AND fingerprint = $3 AND state = 'in_flight'",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes rows older than [`RETENTION`], at most `batch` at a time (a
/// short transaction each); returns how many went.
pub async fn purge_expired(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut purged = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE ctid IN (
                SELECT ctid FROM idempotency_keys
                 WHERE created_at < now() - make_interval(secs => $1)
                 LIMIT $2)",
        )
        .bind(RETENTION.as_secs_f64())
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected();
        purged += done;
        if done < batch.unsigned_abs() {
            return Ok(purged);
        }
    }
}

/// Purges expired rows every `every` until the returned task is aborted.
/// Every ingress instance runs it; the deletes are harmless repeats.
pub fn purge_expired_periodically(pool: PgPool, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match purge_expired(&pool, 10_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired idempotency keys purged"),
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        }
    })
}
