//! The notification stage on the shared consume loop: one per input topic
//! ([`Orders`], [`Enrollments`]), each a sink-like [`BatchHandler`] whose
//! offsets live in Postgres (`sink_offsets`, as every sink's; see
//! `crate::runner`).
//!
//! Per batch: decode (a registry outage is waited out, an undecodable or
//! unrenderable record becomes a dead letter), decide what each record asks
//! for ([`super::decide`]), then deliver each notification in its own short
//! Postgres transaction:
//!
//! 1. Claim it: `INSERT` its sent-log row (`notifications_sent`, keyed by
//!    the notification id, `delivered = false`) `ON CONFLICT DO NOTHING`,
//!    committed at once.
//! 2. Lock the row (`FOR UPDATE`): a second sender of the same
//!    notification (a zombie worker, another partition's owner) waits
//!    here, then finds it delivered. Delivered already: skip.
//! 3. A claim this sender did not make was left by one that stopped
//!    between its claim and its mark: the development file transport
//!    looks for the message on disk and, finding it, only marks it.
//! 4. Send it (SMTP, or the file transport), mark it delivered, commit; a
//!    failed send rolls back and leaves the claim for the next try.
//!
//! Then one transaction records the batch's skips (no address, refused)
//! and stores its offsets. A crash after a send's mark sends nothing twice
//! (the re-read batch finds every row delivered). A crash between a send
//! and its mark (milliseconds) leaves an undelivered claim: the file
//! transport then finds the file and sends nothing; an SMTP server cannot
//! be asked, so the email goes again with the same Message-ID, and a
//! recipient's mail system (or a person) can tell it is the same message.
//! SMTP offers nothing stronger.
//!
//! A send that fails transiently (the server unreachable, a 4xx, a
//! timeout) ends the batch uncommitted: the stage reports not ready
//! (`/readyz` check `smtp`), counts the failure, waits (backoff, 200 ms
//! doubling to 5 s, short of the consumer's poll interval), and seeks back
//! to the batch's first records, which come again; what was sent before
//! the failure is in the sent-log and is not sent twice. Nothing is
//! dropped. A permanent refusal (a 5xx: the server will never take that
//! message) is recorded as refused in `notifications_skipped` and counted,
//! and the stage moves on.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use platform::kafka::{self, GroupConsumer};
use platform::pii::{PiiError, Vault};
use platform::stage::{self, BatchEnd, BatchHandler, Stall, Taken};
use schemas::records::dead_letter::DeadLetter;
use schemas::records::enrollment::EnrollmentBook;
use schemas::records::order::OrderSnapshot;
use schemas::topics::{ENROLLMENT_SNAPSHOTS, ORDER_SNAPSHOTS};
use schemas::{Topic, TopicDef};

use super::decide::{self, Decision, Kind, Notification, RenderError};
use super::mailer::{SendError, Sender};
use crate::runner::{self, SinkDeps};

/// An input of the notification worker: a topic and what its records ask
/// for.
pub trait Source: Send + Sync + 'static {
    type Record: DeserializeOwned + Send + Sync;
    /// The stage name: consumer group, metrics label.
    const NAME: &'static str;
    fn topic(&self) -> &'static Topic<Self::Record>;
    /// The record's email addresses, which may arrive sealed
    /// (`platform::pii`): the worker opens them before deciding.
    fn addresses(record: &mut Self::Record) -> Vec<&mut Option<String>>;
    fn decide(&self, record: &Self::Record) -> Result<Vec<Decision>, RenderError>;
}

/// `order.snapshots`: confirmations and payment failures.
#[derive(Clone, Copy)]
pub struct Orders;

impl Source for Orders {
    type Record = OrderSnapshot;
    const NAME: &'static str = "notifications-orders";
    fn topic(&self) -> &'static Topic<OrderSnapshot> {
        &ORDER_SNAPSHOTS
    }
    fn addresses(record: &mut OrderSnapshot) -> Vec<&mut Option<String>> {
        vec![&mut record.buyer_email]
    }
    fn decide(&self, record: &OrderSnapshot) -> Result<Vec<Decision>, RenderError> {
        Ok(decide::order(record)?.into_iter().collect())
    }
}

/// `enrollment.snapshots`: an email per enrollment.
#[derive(Clone, Copy)]
pub struct Enrollments;

impl Source for Enrollments {
    type Record = EnrollmentBook;
    const NAME: &'static str = "notifications-enrollments";
    fn topic(&self) -> &'static Topic<EnrollmentBook> {
        &ENROLLMENT_SNAPSHOTS
    }
    fn addresses(record: &mut EnrollmentBook) -> Vec<&mut Option<String>> {
        record
            .enrollments
            .iter_mut()
            .map(|e| &mut e.email)
            .collect()
    }
    fn decide(&self, record: &EnrollmentBook) -> Result<Vec<Decision>, RenderError> {
        Ok(decide::enrollments(record))
    }
}

/// The longest wait between two tries of a batch whose send failed: well
/// within the consumer's poll interval (30 s).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// One membership of a notification stage's group.
pub struct Worker<S: Source> {
    pub source: S,
    pub deps: SinkDeps,
    pub sender: Arc<Sender>,
    /// Opens sealed addresses (an erased person's read as none: not sent).
    pub vault: Arc<Vault>,
    /// Set while the transport fails: the process's `smtp` readiness.
    pub outage: Stall,
    group: String,
    topic: String,
    backoff: Duration,
}

impl<S: Source> Worker<S> {
    pub fn new(
        source: S,
        deps: SinkDeps,
        sender: Arc<Sender>,
        vault: Arc<Vault>,
        outage: Stall,
    ) -> Worker<S> {
        let names = deps.stage.codec.names();
        let group = names.group(S::NAME);
        let topic = names.name(&source.topic().def);
        Worker {
            source,
            deps,
            sender,
            vault,
            outage,
            group,
            topic,
            backoff: FIRST_BACKOFF,
        }
    }
}

/// A decision with the record it came from (for the sent-log).
struct Wanted {
    decision: Decision,
    partition: i32,
    offset: i64,
}

enum Delivered {
    Sent,
    AlreadySent,
}

#[derive(Debug, thiserror::Error)]
enum DeliverError {
    #[error("the sent-log: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl<S: Source> BatchHandler for Worker<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn input(&self) -> TopicDef {
        self.source.topic().def
    }

    async fn assigned(
        &mut self,
        consumer: &GroupConsumer,
        parts: &[(String, i32)],
    ) -> anyhow::Result<()> {
        runner::assign(
            consumer,
            &self.deps.pool,
            &self.group,
            &self.topic,
            parts,
            &self.deps.positions,
        )
        .await
    }

    fn revoked(&mut self, parts: &[(String, i32)]) {
        if let Ok(mut p) = self.deps.positions.lock() {
            parts.iter().for_each(|(_, part)| {
                p.remove(part);
            });
        }
    }

    async fn tick(&mut self, consumer: &GroupConsumer) -> anyhow::Result<()> {
        runner::advance_past_markers(consumer, &self.topic, &self.deps.positions);
        Ok(())
    }

    /// As a sink's: records below the offset stored in Postgres are done.
    fn covered(&self, msg: &OwnedMessage) -> bool {
        self.deps.positions.lock().map_or(true, |p| {
            p.get(&msg.partition())
                .is_none_or(|next| msg.offset() < *next)
        })
    }

    async fn batch(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
    ) -> anyhow::Result<BatchEnd> {
        let (wanted, mut dead) = self.decide(msgs).await?;
        let m = metrics();
        let mut refused: Vec<(Uuid, Kind, String, String)> = Vec::new();
        for w in &wanted {
            let Decision::Send(n) = &w.decision else {
                continue;
            };
            match self.deliver(n, w.partition, w.offset).await {
                Ok(Delivered::Sent) => {
                    m.sent.with_label_values(&[n.kind.as_str()]).inc();
                    tracing::info!(stage = S::NAME, kind = n.kind.as_str(), id = %n.id, key = %platform::telemetry::token_ref(&n.subject_key), "email sent");
                }
                Ok(Delivered::AlreadySent) => {
                    m.already_sent.with_label_values(&[n.kind.as_str()]).inc();
                }
                Err(DeliverError::Send(e)) if e.permanent() => {
                    m.failures
                        .with_label_values(&[n.kind.as_str(), "refused"])
                        .inc();
                    tracing::error!(stage = S::NAME, kind = n.kind.as_str(), id = %n.id, error = %e, "email refused for good; recorded, not retried");
                    refused.push((n.id, n.kind, n.subject_key.clone(), format!("refused: {e}")));
                }
                Err(e) => {
                    let label = match e {
                        DeliverError::Db(_) => "database",
                        DeliverError::Send(_) => "retried",
                    };
                    m.failures
                        .with_label_values(&[n.kind.as_str(), label])
                        .inc();
                    return self.retry_later(consumer, msgs, &e).await;
                }
            }
        }
        self.outage.clear();
        self.backoff = FIRST_BACKOFF;

        // Every email is out: dead letters, skips and offsets.
        runner::send_dead_letters(S::NAME, &self.deps, &dead).await?;
        dead.clear();
        let done = kafka::last_offsets(msgs.iter().copied());
        let mut skips: Vec<(Uuid, Kind, String, String)> = wanted
            .iter()
            .filter_map(|w| match &w.decision {
                Decision::Skip {
                    id,
                    kind,
                    subject_key,
                    reason,
                } => Some((*id, *kind, subject_key.clone(), reason.as_str().to_owned())),
                Decision::Send(_) => None,
            })
            .collect();
        skips.extend(refused);
        let mut tx = self.deps.pool.begin().await?;
        let recorded = record_skips(&mut tx, &skips).await?;
        runner::store_offsets(&mut tx, &self.group, &self.topic, &done).await?;
        stage::fault_hold().await;
        tx.commit().await?;
        for (kind, reason) in recorded {
            m.skipped.with_label_values(&[&kind, &reason]).inc();
        }
        if let Ok(mut p) = self.deps.positions.lock() {
            for (_, partition, last) in &done {
                p.insert(*partition, last + 1);
            }
        }
        runner::advance_past_markers(consumer, &self.topic, &self.deps.positions);
        // For people and tools only: Postgres holds the offsets that count.
        if let Ok(tpl) = kafka::next_offsets(&done) {
            let _ = consumer.commit(&tpl, CommitMode::Async);
        }
        Ok(BatchEnd::Committed)
    }
}

impl<S: Source> Worker<S> {
    /// Decodes and decides the batch: the notifications it asks for (each
    /// id once: a batch may hold several snapshots of one paid order), and
    /// the dead letters of records that cannot be decoded or rendered.
    async fn decide(
        &self,
        msgs: &[&OwnedMessage],
    ) -> Result<(Vec<Wanted>, Vec<DeadLetter>), sqlx::Error> {
        let mut wanted = Vec::new();
        let mut dead = Vec::new();
        let mut seen = HashSet::new();
        for msg in msgs {
            let mut record = match stage::take(
                S::NAME,
                &self.deps.stage.codec,
                self.source.topic(),
                msg,
                &self.deps.stage.stall,
            )
            .await
            {
                Taken::Record(r) => r,
                Taken::Dead(letter) => {
                    dead.push(letter);
                    continue;
                }
            };
            match self.open(&mut record.value).await {
                Ok(()) => {}
                Err(PiiError::Db(e)) => return Err(e),
                Err(e) => {
                    tracing::error!(stage = S::NAME, error = %e, partition = record.partition, offset = record.offset, "an address does not open; sent to the dead letters");
                    dead.push(stage::dead_letter(S::NAME, msg, &e, "unopenable"));
                    continue;
                }
            }
            match self.source.decide(&record.value) {
                Ok(decisions) => {
                    for decision in decisions {
                        if seen.insert(decision.id()) {
                            wanted.push(Wanted {
                                decision,
                                partition: record.partition,
                                offset: record.offset,
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(stage = S::NAME, error = %e, partition = record.partition, offset = record.offset, "record cannot be rendered; sent to the dead letters");
                    dead.push(stage::dead_letter(S::NAME, msg, &e, "unrenderable"));
                }
            }
        }
        Ok((wanted, dead))
    }

    /// Opens the record's sealed addresses; an erased one becomes none.
    async fn open(&self, record: &mut S::Record) -> Result<(), PiiError> {
        for address in S::addresses(record) {
            *address = self.vault.open_opt(address.as_deref()).await?;
        }
        Ok(())
    }

    /// One notification: claim its sent-log row, send, commit (see the
    /// module doc).
    async fn deliver(
        &self,
        n: &Notification,
        partition: i32,
        offset: i64,
    ) -> Result<Delivered, DeliverError> {
        // 1. The claim, committed on its own: whoever comes after a crash
        //    finds it. The recipient is kept as a one-way reference only.
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO notifications_sent (notification_id, kind, subject_key, recipient, subject,
                                             message_id, source_topic, source_partition, source_offset,
                                             delivered)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false)
             ON CONFLICT (notification_id) DO NOTHING
             RETURNING notification_id",
        )
        .bind(n.id)
        .bind(n.kind.as_str())
        .bind(&n.subject_key)
        .bind(platform::telemetry::token_ref(&n.to.email.to_string()))
        .bind(&n.rendered.subject)
        .bind(self.sender.message_id(n))
        .bind(&self.topic)
        .bind(partition)
        .bind(offset)
        .fetch_optional(&self.deps.pool)
        .await?;
        // 2. The claim locked for the send: a second sender of the same
        //    notification (a zombie, another owner) waits here.
        let mut tx = self.deps.pool.begin().await?;
        let delivered: bool = sqlx::query_scalar(
            "SELECT delivered FROM notifications_sent WHERE notification_id = $1 FOR UPDATE",
        )
        .bind(n.id)
        .fetch_one(&mut *tx)
        .await?;
        if delivered {
            tx.rollback().await?;
            return Ok(Delivered::AlreadySent);
        }
        // A claim this sender did not just make was left by one that
        // stopped after claiming: sent or not? The file transport can
        // tell; an SMTP server cannot, and the email goes again (the same
        // Message-ID), the one case a crash repeats an email.
        if claimed.is_none() && self.sender.delivered(n).await == Some(true) {
            Self::mark_delivered(&mut tx, n.id).await?;
            tx.commit().await?;
            return Ok(Delivered::AlreadySent);
        }
        if let Err(e) = self.sender.send(n).await {
            tx.rollback().await?;
            return Err(e.into());
        }
        stage::fault_hold_sent().await;
        Self::mark_delivered(&mut tx, n.id).await?;
        if let Err(e) = tx.commit().await {
            tracing::error!(stage = S::NAME, id = %n.id, error = %e, "email sent but not marked delivered; the next sender checks before sending it again");
            return Err(e.into());
        }
        Ok(Delivered::Sent)
    }

    /// Marks a claimed notification delivered.
    async fn mark_delivered(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        id: Uuid,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE notifications_sent SET delivered = true WHERE notification_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A transient failure: report not ready, wait, and hand the batch
    /// back to the loop to read again.
    async fn retry_later(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[&OwnedMessage],
        e: &DeliverError,
    ) -> anyhow::Result<BatchEnd> {
        tracing::warn!(stage = S::NAME, transport = %self.sender.describe, error = %e, backoff = ?self.backoff, "email not sent; the batch will be tried again");
        self.outage
            .set(format!("{} failing: {e}", self.sender.describe));
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        rewind(consumer, msgs)?;
        Ok(BatchEnd::Rewound)
    }
}

/// Seeks each partition of the batch back to its first record.
fn rewind(consumer: &GroupConsumer, batch: &[&OwnedMessage]) -> anyhow::Result<()> {
    let mut firsts: Vec<(&str, i32, i64)> = Vec::new();
    for m in batch {
        match firsts
            .iter_mut()
            .find(|(t, p, _)| *t == m.topic() && *p == m.partition())
        {
            Some(first) => first.2 = first.2.min(m.offset()),
            None => firsts.push((m.topic(), m.partition(), m.offset())),
        }
    }
    for (topic, partition, offset) in firsts {
        consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        )?;
    }
    Ok(())
}

/// Records skipped notifications once each; returns (kind, reason) of
/// those recorded now (the metric counts each once).
async fn record_skips(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    skips: &[(Uuid, Kind, String, String)],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    if skips.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = skips.iter().map(|s| s.0).collect();
    let kinds: Vec<&str> = skips.iter().map(|s| s.1.as_str()).collect();
    let keys: Vec<&str> = skips.iter().map(|s| s.2.as_str()).collect();
    let reasons: Vec<&str> = skips.iter().map(|s| s.3.as_str()).collect();
    let recorded: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO notifications_skipped (notification_id, kind, subject_key, reason)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (notification_id) DO NOTHING
         RETURNING kind, reason",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&keys)
    .bind(&reasons)
    .fetch_all(&mut **tx)
    .await?;
    // The metric's label is bounded: "refused: <server text>" counts as
    // "refused".
    Ok(recorded
        .into_iter()
        .map(|(k, r)| {
            let r = if r.starts_with("refused") {
                "refused".to_owned()
            } else {
                r
            };
            (k, r)
        })
        .collect())
}

struct Metrics {
    sent: IntCounterVec,
    already_sent: IntCounterVec,
    skipped: IntCounterVec,
    failures: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Fixed names and labels: building them cannot fail.
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let m = Metrics {
            sent: counter(
                "notifications_sent_total",
                "Emails the transport accepted, by kind",
                &["kind"],
            ),
            already_sent: counter(
                "notifications_already_sent_total",
                "Notifications asked for again (a redelivery, a later snapshot) and found in the sent-log, by kind",
                &["kind"],
            ),
            skipped: counter(
                "notifications_skipped_total",
                "Notifications with nobody to send to, once each, by kind and reason (no_address, invalid_address, refused)",
                &["kind", "reason"],
            ),
            failures: counter(
                "notifications_send_failures_total",
                "Failed sends, by kind and outcome (retried: the batch is read again; refused: for good; database: the sent-log failed)",
                &["kind", "outcome"],
            ),
        };
        let registry = prometheus::default_registry();
        for c in [&m.sent, &m.already_sent, &m.skipped, &m.failures] {
            if let Err(e) = registry.register(Box::new(c.clone())) {
                tracing::warn!(error = %e, "notification metric not registered");
            }
        }
        m
    })
}
