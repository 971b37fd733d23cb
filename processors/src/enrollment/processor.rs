//! The adapter between the enrollment rules and the runner: the buyer's
//! book is the state and goes to `enrollment.snapshots`; the events of a
//! command go to `enrollment.events` and its support cases to
//! `support.cases`, in the same transaction as the book, so a failure is
//! never recorded without its case (nor a case without its failure).
//!
//! Whether a paid line can be enrolled is read from the catalog this
//! processor follows (`catalog.internships`, a [`GlobalTable`]) as it has
//! read it when the order's `EnrollOrder` is applied. The decision (and
//! the catalog version it was made at) is kept in the book, so a restore
//! never decides again; only the retry of an aborted batch does, whose
//! first try nobody saw.

use std::sync::Arc;

use futures::future::BoxFuture;

use rules::enrollment::{self, Change};
use rules::tables::{At, Table};
use schemas::records::audit::AuditEvent;
use schemas::records::catalog::Internship;
use schemas::records::enrollment::{
    EnrollmentBook, EnrollmentCmd, EnrollmentCommand, EnrollmentEvent,
};
use schemas::records::runtime::AppliedInput;
use schemas::records::support::SupportCase;
use schemas::topics::{
    AUDIT_EVENTS, ENROLLMENT_APPLIED, ENROLLMENT_CHANGELOG, ENROLLMENT_COMMANDS, ENROLLMENT_EVENTS,
    ENROLLMENT_SNAPSHOTS, SUPPORT_CASES,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, whole_state, Emit, Encoded, Input, Outcome, Processor};

/// Generic over the catalog so a test can hand it a plain map.
pub struct EnrollmentProcessor<C> {
    catalog: Arc<C>,
}

impl<C: Table<Internship>> EnrollmentProcessor<C> {
    pub fn new(catalog: Arc<C>) -> EnrollmentProcessor<C> {
        EnrollmentProcessor { catalog }
    }
}

pub enum EnrollmentOutput {
    Book(EnrollmentBook),
    Event(EnrollmentEvent),
    Case(SupportCase),
    Audit(AuditEvent),
}

impl Emit for EnrollmentOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            EnrollmentOutput::Book(b) => {
                Box::pin(encode_for(codec, &ENROLLMENT_SNAPSHOTS, &b.buyer_key, b))
            }
            EnrollmentOutput::Event(e) => {
                Box::pin(encode_for(codec, &ENROLLMENT_EVENTS, &e.buyer_key, e))
            }
            EnrollmentOutput::Case(c) => {
                Box::pin(encode_for(codec, &SUPPORT_CASES, &c.order_token, c))
            }
            EnrollmentOutput::Audit(e) => {
                Box::pin(encode_for(codec, &AUDIT_EVENTS, &e.subject_id, e))
            }
        }
    }
}

whole_state!(EnrollmentBook);

impl<C: Table<Internship> + 'static> Processor for EnrollmentProcessor<C> {
    type Input = EnrollmentCommand;
    type State = EnrollmentBook;
    type Output = EnrollmentOutput;

    const NAME: &'static str = "enrollment-processor";

    fn input_topic(&self) -> &'static Topic<EnrollmentCommand> {
        &ENROLLMENT_COMMANDS
    }

    fn changelog_topic(&self) -> &'static Topic<EnrollmentBook> {
        &ENROLLMENT_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &ENROLLMENT_APPLIED
    }

    fn input_id(input: &EnrollmentCommand) -> &str {
        &input.command_id
    }

    fn apply(
        &self,
        state: Option<&EnrollmentBook>,
        input: &Input<EnrollmentCommand>,
    ) -> Outcome<EnrollmentBook, EnrollmentOutput> {
        let cmd = &input.value;
        let change = match &cmd.command {
            EnrollmentCmd::EnrollOrder(order) => {
                // The newest catalog read; its version goes into any failure.
                let catalog = At::new(&*self.catalog, self.catalog.version());
                enrollment::enroll(
                    state,
                    &input.key,
                    order,
                    input.offset,
                    cmd.issued_at,
                    &catalog,
                )
            }
            EnrollmentCmd::RevokeOrder(r) => {
                enrollment::revoke(state, r, input.offset).map(|book| Change {
                    book,
                    events: Vec::new(),
                    cases: Vec::new(),
                })
            }
            EnrollmentCmd::AssignSeats(a) => {
                enrollment::assign(state, &cmd.command_id, a, input.offset, cmd.issued_at)
            }
        };
        match change {
            Some(change) => {
                let audit = enrollment::audit_events(cmd, &change, &input.correlation_id);
                let Change {
                    book,
                    events,
                    cases,
                } = change;
                let mut outputs = vec![EnrollmentOutput::Book(book.clone())];
                outputs.extend(audit.into_iter().map(EnrollmentOutput::Audit));
                outputs.extend(events.into_iter().map(EnrollmentOutput::Event));
                outputs.extend(cases.into_iter().map(EnrollmentOutput::Case));
                Outcome {
                    state: Some(book),
                    outputs,
                }
            }
            None => Outcome::nothing(),
        }
    }
}
