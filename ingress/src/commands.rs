//! Producing commands: encode with the registry codec, attach the
//! correlation id, and answer only once the broker acknowledged the record.
//! The record's offset is returned: it is the version the cart will carry
//! once the command is applied (see `CartSnapshot.version`).
//!
//! A failed send is one of two things, and the client must know which:
//! nothing was written (the queue was full, the registry is down: 503,
//! retry freely), or the record may have been written (the broker did not
//! acknowledge within `message.timeout.ms`, or within our own
//! `ack_timeout`: 504 with the command id, retry with the same
//! `Idempotency-Key`, see [`crate::idempotency`]).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use platform::kafka;
use schemas::records::audit::AuditEvent;
use schemas::records::cart::CartCommand;
use schemas::records::WireMoney;
use schemas::topics::{AUDIT_EVENTS, CART_COMMANDS};
use schemas::{Codec, Topic};

use crate::error::ApiError;
use crate::table_versions::TableVersions;

/// A change the ingress itself makes (an admin's change of a table, a
/// person's erasure), for the audit trail.
pub struct AuditedChange<'a> {
    /// `admin:<id>`, `user:<id>`.
    pub actor: String,
    /// The person the change concerns, if any.
    pub person: Option<String>,
    /// The request's command id (from its `Idempotency-Key`).
    pub command_id: &'a str,
    /// `internship.published`, `fx_rate.published`, `coupon.published`,
    /// `person.erased`.
    pub action: &'a str,
    pub subject_kind: &'a str,
    pub subject_id: &'a str,
    /// The change's offset on its table topic (the table's version), 0
    /// for a change outside Kafka.
    pub offset: i64,
    pub reason: String,
    pub amount: Option<WireMoney>,
}

/// How long a send waits for room in the producer's queue; after that the
/// record was never enqueued (`QueueFull`), so nothing was written.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CommandWriter {
    producer: FutureProducer,
    codec: Arc<Codec>,
    /// How long a request waits for the broker's acknowledgement before
    /// answering that the outcome is unknown (`KAFKA_ACK_TIMEOUT_MS`).
    ack_timeout: Duration,
    /// Stamped on cart commands; moved by writes to table topics.
    tables: TableVersions,
}

impl CommandWriter {
    pub fn new(
        producer: FutureProducer,
        codec: Arc<Codec>,
        ack_timeout: Duration,
        tables: TableVersions,
    ) -> CommandWriter {
        CommandWriter {
            producer,
            codec,
            ack_timeout,
            tables,
        }
    }

    /// Writes a cart command, stamped with the table versions it is to be
    /// priced at (unless it carries them); returns its offset once
    /// acknowledged.
    pub async fn send_cart(&self, command: &CartCommand) -> Result<i64, ApiError> {
        let stamped;
        let command = match command.tables_at {
            Some(_) => command,
            None => {
                stamped = CartCommand {
                    tables_at: self.tables.current(),
                    ..command.clone()
                };
                &stamped
            }
        };
        self.send(
            &CART_COMMANDS,
            &command.cart_token,
            command,
            &command.command_id,
        )
        .await
    }

    /// Records a change the ingress made on `audit.events`, once the
    /// change itself was done (acknowledged by the broker, committed). Its id derives from the request's command id, so a
    /// retry with the same `Idempotency-Key` (the way to finish a request
    /// whose answer was lost) writes the same event, which the audit table
    /// keeps once.
    pub async fn audit(&self, change: AuditedChange<'_>) -> Result<(), ApiError> {
        let event = AuditEvent {
            event_id: schemas::ids::derived("audit-ingress", change.command_id, 0).to_string(),
            at: chrono::Utc::now().timestamp_millis(),
            action: change.action.to_owned(),
            subject_kind: change.subject_kind.to_owned(),
            subject_id: change.subject_id.to_owned(),
            subject_version: change.offset,
            person: change.person,
            actor: change.actor,
            reason: change.reason,
            correlation_id: crate::correlation::current(),
            amount: change.amount,
        };
        self.send(&AUDIT_EVENTS, &event.subject_id, &event, &event.event_id)
            .await
            .map(|_| ())
    }

    /// Writes `value` under `key` to `topic`; returns its offset once the
    /// broker acknowledged it. `causation_id` is the id of the command (or
    /// record) written: a 504 names it.
    pub async fn send<V: serde::Serialize>(
        &self,
        topic: &'static Topic<V>,
        key: &str,
        value: &V,
        causation_id: &str,
    ) -> Result<i64, ApiError> {
        let key = Codec::encode_key(key);
        let value = self.codec.encode(topic, value).await.map_err(codec_error)?;
        let name = self.codec.names().name(&topic.def);
        let correlation_id = crate::correlation::current();
        let record = FutureRecord::to(&name)
            .key(&key)
            .payload(&value)
            .headers(kafka::trace_headers(&correlation_id, causation_id));
        // Dropping the delivery future on our own timeout leaves the record
        // with librdkafka, which may still deliver it: an unknown outcome.
        let started = tokio::time::Instant::now();
        let sent =
            tokio::time::timeout(self.ack_timeout, self.producer.send(record, QUEUE_TIMEOUT));
        match sent.await {
            Ok(Ok(delivery)) => {
                self.tables.advance(&topic.def, delivery.offset + 1);
                // An acknowledgement that came after the budget counts as
                // none: `timeout` polls the send before its deadline, so a
                // late ack could otherwise win, and "unknown" is always a
                // safe answer (the retry with the key is applied once).
                if started.elapsed() >= self.ack_timeout {
                    return Err(ack_timed_out(&name, causation_id, self.ack_timeout));
                }
                Ok(delivery.offset)
            }
            Ok(Err((e, _))) if may_have_been_written(&e) => Err(ApiError::OutcomeUnknown {
                command_id: causation_id.to_owned(),
                cause: anyhow::anyhow!("producing {name}: {e}"),
            }),
            Ok(Err((e, _))) => Err(ApiError::Unavailable(anyhow::anyhow!(
                "producing {name}: {e}"
            ))),
            Err(_) => Err(ack_timed_out(&name, causation_id, self.ack_timeout)),
        }
    }
}

fn ack_timed_out(topic: &str, causation_id: &str, ack_timeout: Duration) -> ApiError {
    ApiError::OutcomeUnknown {
        command_id: causation_id.to_owned(),
        cause: anyhow::anyhow!("producing {topic}: no acknowledgement within {ack_timeout:?}"),
    }
}

/// Whether a failed delivery may still have written the record: the
/// request or the message timed out after it was sent, it was purged while
/// in flight, the broker appended it without enough replicas, or the
/// delivery report was lost (the producer went away). Any other failure
/// (queue full, purged from the queue, a record too large, an unknown
/// topic) happened before the broker took the record.
fn may_have_been_written(e: &KafkaError) -> bool {
    match e {
        KafkaError::MessageProduction(code) => matches!(
            code,
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::PurgeInflight
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
        ),
        KafkaError::Canceled => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_unknown_outcomes_and_a_full_queue_is_not() {
        let produce = KafkaError::MessageProduction;
        assert!(may_have_been_written(&produce(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(may_have_been_written(&produce(
            RDKafkaErrorCode::RequestTimedOut
        )));
        assert!(may_have_been_written(&produce(
            RDKafkaErrorCode::PurgeInflight
        )));
        assert!(may_have_been_written(&KafkaError::Canceled));
        assert!(!may_have_been_written(&produce(
            RDKafkaErrorCode::QueueFull
        )));
        assert!(!may_have_been_written(&produce(
            RDKafkaErrorCode::PurgeQueue
        )));
        assert!(!may_have_been_written(&produce(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!may_have_been_written(&produce(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
    }
}

fn codec_error(e: schemas::CodecError) -> ApiError {
    if e.is_retriable() {
        ApiError::Unavailable(e.into())
    } else {
        ApiError::Internal(e.into())
    }
}
