//! The adapter between the enrollment rules and the runner: the buyer's
//! book is the state and goes to `enrollment.snapshots`.

use futures::future::BoxFuture;

use rules::enrollment;
use schemas::records::enrollment::{EnrollmentBook, EnrollmentCmd, EnrollmentCommand};
use schemas::records::runtime::AppliedInput;
use schemas::topics::{
    ENROLLMENT_APPLIED, ENROLLMENT_CHANGELOG, ENROLLMENT_COMMANDS, ENROLLMENT_SNAPSHOTS,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, Emit, Encoded, Input, Outcome, Processor};

pub struct EnrollmentProcessor;

pub struct BookOutput(EnrollmentBook);

impl Emit for BookOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        Box::pin(encode_for(
            codec,
            &ENROLLMENT_SNAPSHOTS,
            &self.0.buyer_key,
            &self.0,
        ))
    }
}

impl Processor for EnrollmentProcessor {
    type Input = EnrollmentCommand;
    type State = EnrollmentBook;
    type Output = BookOutput;

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

    fn applied_offset(state: &EnrollmentBook) -> i64 {
        state.version
    }

    fn input_id(input: &EnrollmentCommand) -> &str {
        &input.command_id
    }

    fn apply(
        &self,
        state: Option<&EnrollmentBook>,
        input: &Input<EnrollmentCommand>,
    ) -> Outcome<EnrollmentBook, BookOutput> {
        let cmd = &input.value;
        let next = match &cmd.command {
            EnrollmentCmd::EnrollOrder(order) => {
                enrollment::enroll(state, &input.key, order, input.offset, cmd.issued_at)
            }
            EnrollmentCmd::RevokeOrder(r) => enrollment::revoke(state, r, input.offset),
        };
        match next {
            Some(book) => Outcome {
                state: Some(book.clone()),
                outputs: vec![BookOutput(book)],
            },
            None => Outcome::nothing(),
        }
    }
}
