//! The webhook retry stage (`processors webhook-retry`): a gateway's word
//! about a payment that reached the order processor before its order did
//! (the webhook was faster than our own pipeline) is parked on
//! `webhooks.retry` by the order processor, and redelivered here to
//! `order.commands` with exponential backoff until its order knows it.
//! When the retries run out the command goes to the dead letters (kind
//! `retries-exhausted`, the command's bytes kept, so `dlq replay` sends it
//! back to `order.commands`). Nothing is dropped on the way.
//!
//! State per order token ([`RetryBook`]): what is parked and when each is
//! due, and how often each command was redelivered (kept a day after its
//! last redelivery). A park is applied once by its id (derived from the
//! parked command's offset); the timer redelivers through this stage's own
//! input, under ids derived from the command and the retry number, so a
//! repeated tick asks the same, and replays stay deterministic.

use std::collections::HashMap;

use futures::future::BoxFuture;

use schemas::ids;
use schemas::records::dead_letter::DeadLetter;
use schemas::records::runtime::AppliedInput;
use schemas::records::webhooks::{
    Park, Parked, Redeliver, RetryAction, RetryBook, RetryCommand, Tried,
};
use schemas::topics::{
    DEAD_LETTERS, ORDER_COMMANDS, WEBHOOKS_RETRY, WEBHOOK_RETRY_APPLIED, WEBHOOK_RETRY_CHANGELOG,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, whole_state, Emit, Encoded, Input, Outcome, Processor};

/// How long a redelivery count is remembered after its last redelivery.
const TRIED_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// Backoff: the n-th redelivery (0-based) waits `base_ms × 2ⁿ`, at most
/// `max_delay_ms`; after `limit` redeliveries the command is dead-lettered.
/// `WEBHOOK_RETRY_BASE_MS` (1000), `WEBHOOK_RETRY_MAX_DELAY_MS` (300000),
/// `WEBHOOK_RETRY_LIMIT` (10): about 25 minutes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_ms: i64,
    pub max_delay_ms: i64,
    pub limit: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 1_000,
            max_delay_ms: 300_000,
            limit: 10,
        }
    }
}

impl RetryPolicy {
    pub fn from_env() -> anyhow::Result<RetryPolicy> {
        let var = |k: &str, d: &str| platform::config::var(k, d);
        let p = RetryPolicy {
            base_ms: var("WEBHOOK_RETRY_BASE_MS", "1000").parse()?,
            max_delay_ms: var("WEBHOOK_RETRY_MAX_DELAY_MS", "300000").parse()?,
            limit: var("WEBHOOK_RETRY_LIMIT", "10").parse()?,
        };
        anyhow::ensure!(
            p.base_ms > 0 && p.max_delay_ms >= p.base_ms && p.limit >= 0,
            "WEBHOOK_RETRY_*: base > 0, max delay >= base, limit >= 0"
        );
        Ok(p)
    }

    /// The wait before redelivery number `retries + 1`.
    pub fn delay_ms(&self, retries: i32) -> i64 {
        let factor = 1i64
            .checked_shl(retries.clamp(0, 62) as u32)
            .unwrap_or(i64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_delay_ms)
    }
}

/// What a retry record asks beyond the book's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send the command back to `order.commands`.
    Redeliver { command: Vec<u8> },
    /// Give up: the command goes to the dead letters.
    Exhausted {
        command: Vec<u8>,
        reason: String,
        retries: i32,
    },
}

/// The rule: `book` after `input` (`None`: unchanged), and its effect.
pub fn step(
    book: Option<&RetryBook>,
    key: &str,
    input: &RetryCommand,
    offset: i64,
    policy: &RetryPolicy,
) -> (Option<RetryBook>, Option<Effect>) {
    let mut next = book.cloned().unwrap_or_else(|| RetryBook {
        key: key.to_owned(),
        version: offset,
        parked: Vec::new(),
        tried: Vec::new(),
    });
    next.version = offset;
    next.tried
        .retain(|t| t.last_at.saturating_add(TRIED_KEPT_MS) >= input.at);
    let id = &input.command_id;
    match &input.action {
        RetryAction::Park(Park { command, reason }) => {
            if next.parked.iter().any(|p| &p.command_id == id) {
                // Parked already: one wait at a time per command.
                return (None, None);
            }
            let tried = next.tried.iter().find(|t| &t.command_id == id).cloned();
            let retries = tried.as_ref().map_or(0, |t| t.retries);
            if retries >= policy.limit {
                next.tried.retain(|t| &t.command_id != id);
                let effect = Effect::Exhausted {
                    command: command.clone(),
                    reason: format!("{reason}, after {retries} redeliveries"),
                    retries,
                };
                return (Some(next), Some(effect));
            }
            // The first wait counts from the command's time, later ones
            // from the last redelivery.
            let since = tried.map_or(input.at, |t| t.last_at);
            next.parked.push(Parked {
                command_id: id.clone(),
                command: command.clone(),
                reason: reason.clone(),
                retries,
                due_at: since.saturating_add(policy.delay_ms(retries)),
            });
            (Some(next), None)
        }
        RetryAction::Redeliver(Redeliver { retry }) => {
            let Some(at) = next
                .parked
                .iter()
                .position(|p| &p.command_id == id && p.retries + 1 == *retry)
            else {
                return (None, None);
            };
            let parked = next.parked.remove(at);
            next.tried.retain(|t| &t.command_id != id);
            next.tried.push(Tried {
                command_id: id.clone(),
                retries: *retry,
                last_at: input.at,
            });
            (
                Some(next),
                Some(Effect::Redeliver {
                    command: parked.command,
                }),
            )
        }
    }
}

/// The redeliveries due at `now_ms` in `book`.
pub fn due(book: &RetryBook, now_ms: i64) -> Vec<RetryCommand> {
    book.parked
        .iter()
        .filter(|p| p.due_at <= now_ms)
        .map(|p| RetryCommand {
            id: ids::derived("retry-redeliver", &p.command_id, i64::from(p.retries + 1))
                .to_string(),
            order_token: book.key.clone(),
            command_id: p.command_id.clone(),
            at: now_ms,
            action: RetryAction::Redeliver(Redeliver {
                retry: p.retries + 1,
            }),
        })
        .collect()
}

pub struct RetryProcessor {
    pub policy: RetryPolicy,
}

pub enum RetryOutput {
    /// A parked command back to `order.commands`, as it was written.
    Order {
        order_token: String,
        command: Vec<u8>,
    },
    /// The timer's redelivery, onto this stage's own input.
    Own(RetryCommand),
    Dead(DeadLetter),
}

impl Emit for RetryOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            RetryOutput::Order {
                order_token,
                command,
            } => Box::pin(async move {
                Ok(Encoded {
                    topic: ORDER_COMMANDS.def,
                    key: order_token.clone(),
                    value: command.clone(),
                })
            }),
            RetryOutput::Own(r) => Box::pin(encode_for(codec, &WEBHOOKS_RETRY, &r.order_token, r)),
            RetryOutput::Dead(d) => Box::pin(async move {
                let key = platform::stage::dead_letter_key(d);
                encode_for(codec, &DEAD_LETTERS, &key, d).await
            }),
        }
    }
}

whole_state!(RetryBook);

impl Processor for RetryProcessor {
    type Input = RetryCommand;
    type State = RetryBook;
    type Output = RetryOutput;

    const NAME: &'static str = "webhook-retry";

    fn input_topic(&self) -> &'static Topic<RetryCommand> {
        &WEBHOOKS_RETRY
    }

    fn changelog_topic(&self) -> &'static Topic<RetryBook> {
        &WEBHOOK_RETRY_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &WEBHOOK_RETRY_APPLIED
    }

    fn input_id(input: &RetryCommand) -> &str {
        &input.id
    }

    fn apply(
        &self,
        state: Option<&RetryBook>,
        input: &Input<RetryCommand>,
    ) -> Outcome<RetryBook, RetryOutput> {
        let r = &input.value;
        let (book, effect) = step(state, &input.key, r, input.offset, &self.policy);
        let output = effect.map(|e| match e {
            Effect::Redeliver { command } => {
                tracing::info!(order = %platform::telemetry::token_ref(&r.order_token), command = %r.command_id, "parked command redelivered");
                RetryOutput::Order {
                    order_token: r.order_token.clone(),
                    command,
                }
            }
            Effect::Exhausted {
                command,
                reason,
                retries,
            } => {
                tracing::error!(order = %platform::telemetry::token_ref(&r.order_token), command = %r.command_id, retries, %reason, "parked command dead-lettered");
                RetryOutput::Dead(DeadLetter {
                    stage: Self::NAME.into(),
                    reason,
                    kind: "retries-exhausted".into(),
                    // Replaying it sends the command back to its topic.
                    source_topic: ORDER_COMMANDS.def.name.into(),
                    source_partition: input.partition,
                    source_offset: input.offset,
                    key: Some(Codec::encode_key(&r.order_token)),
                    value: Some(command),
                    headers: Default::default(),
                    correlation_id: Some(input.correlation_id.clone()),
                    failed_at: r.at,
                })
            }
        });
        Outcome {
            state: book,
            outputs: output.into_iter().collect(),
        }
    }

    fn timers(&self, now_ms: i64, states: &HashMap<String, RetryBook>) -> Vec<RetryOutput> {
        states
            .values()
            .flat_map(|b| due(b, now_ms))
            .map(RetryOutput::Own)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base_ms: 100,
        max_delay_ms: 1_000,
        limit: 3,
    };

    fn park(offset: i64, at: i64) -> RetryCommand {
        RetryCommand {
            id: format!("park-{offset}"),
            order_token: "o1".into(),
            command_id: "c1".into(),
            at,
            action: RetryAction::Park(Park {
                command: vec![0, 0, 0, 0, 7, 1],
                reason: "no order o1 yet".into(),
            }),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let delays: Vec<i64> = (0..6).map(|n| POLICY.delay_ms(n)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(RetryPolicy::default().delay_ms(100), 300_000, "no overflow");
    }

    #[test]
    fn a_parked_command_is_redelivered_with_backoff_then_dead_lettered() {
        let mut book: Option<RetryBook> = None;
        let mut at = 10_000;
        let mut redelivered = 0;
        for offset in 0.. {
            // The order processor parks the command (again).
            let (next, effect) = step(book.as_ref(), "o1", &park(offset, at), offset, &POLICY);
            let next = next.expect("a park changes the book");
            if let Some(Effect::Exhausted {
                retries, command, ..
            }) = effect
            {
                assert_eq!(retries, 3);
                assert_eq!(command, vec![0, 0, 0, 0, 7, 1], "the command kept");
                assert!(next.parked.is_empty() && next.tried.is_empty());
                break;
            }
            assert_eq!(effect, None);
            let due_at = next.parked[0].due_at;
            assert_eq!(
                due_at - at,
                POLICY.delay_ms(redelivered),
                "waits its backoff"
            );
            assert!(due(&next, due_at - 1).is_empty(), "not before it is due");
            let asked = due(&next, due_at);
            assert_eq!(asked.len(), 1);
            assert_eq!(asked, due(&next, due_at), "a repeated tick asks the same");
            // The same park again changes nothing.
            assert_eq!(
                step(Some(&next), "o1", &park(offset, at), offset, &POLICY),
                (None, None)
            );
            let (after, effect) = step(Some(&next), "o1", &asked[0], offset + 100, &POLICY);
            assert!(matches!(effect, Some(Effect::Redeliver { .. })));
            let after = after.unwrap();
            assert!(after.parked.is_empty());
            // A second delivery of the timer's redelivery: nothing.
            assert_eq!(
                step(Some(&after), "o1", &asked[0], offset + 101, &POLICY),
                (None, None)
            );
            redelivered += 1;
            at = due_at;
            book = Some(after);
        }
        assert_eq!(redelivered, 3);
    }

    #[test]
    fn redelivery_counts_are_forgotten_after_a_day() {
        let (book, _) = step(None, "o1", &park(1, 0), 1, &POLICY);
        let asked = due(book.as_ref().unwrap(), 100);
        let (book, _) = step(book.as_ref(), "o1", &asked[0], 2, &POLICY);
        assert_eq!(book.as_ref().unwrap().tried.len(), 1);
        let (later, _) = step(
            book.as_ref(),
            "o1",
            &park(3, TRIED_KEPT_MS + 1_000),
            3,
            &POLICY,
        );
        let later = later.unwrap();
        assert_eq!(later.parked[0].retries, 0, "counted afresh");
    }
}
