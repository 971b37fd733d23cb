//! The adapter between the redemption rules and the runner: the coupon's
//! uses are the state ([`Ledger`]); what a command changed (one order's
//! redemption) goes to the changelog and `coupon.redemptions`; the answer
//! to a reservation goes back to its order on `order.commands`, with an id
//! derived from the reservation, so a replay answers the same way once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use rules::coupons::Coupon;
use rules::redemption::{self, Answer, Ledger, Stamp};
use rules::tables::Table;
use schemas::ids;
use schemas::records::coupons::{
    Coupon as CouponRecord, CouponCmd, CouponCommand, CouponRedemption,
};
use schemas::records::order::{CouponAnswered, OrderCmd, OrderCommand};
use schemas::records::runtime::AppliedInput;
use schemas::topics::{
    COUPON_APPLIED, COUPON_CHANGELOG, COUPON_COMMANDS, COUPON_REDEMPTIONS, ORDER_COMMANDS,
};
use schemas::{Codec, CodecError, Topic};

use crate::runner::{encode_for, Durable, Emit, Encoded, Input, Outcome, Processor};

/// How long a reservation waits for the coupon definitions it was priced
/// at before its batch is aborted and read again.
const TABLE_WAIT: Duration = Duration::from_secs(5);

pub struct CouponProcessor<K> {
    definitions: Arc<K>,
}

impl<K> CouponProcessor<K> {
    pub fn new(definitions: Arc<K>) -> CouponProcessor<K> {
        CouponProcessor { definitions }
    }
}

pub enum CouponOutput {
    Redemption(CouponRedemption),
    Answer(OrderCommand),
}

impl Emit for CouponOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            CouponOutput::Redemption(r) => {
                Box::pin(async move { encode_for(codec, &COUPON_REDEMPTIONS, &r.key(), r).await })
            }
            CouponOutput::Answer(a) => {
                Box::pin(encode_for(codec, &ORDER_COMMANDS, &a.order_token, a))
            }
        }
    }
}

/// A coupon's ledger writes only the order its last command changed
/// (keyed `code/order_token`), and is folded back from those records.
impl Durable for Ledger {
    type Record = CouponRedemption;

    fn applied_offset(&self) -> i64 {
        self.version()
    }

    fn records(&self, _key: &str) -> Vec<(String, Cow<'_, CouponRedemption>)> {
        self.last_change()
            .map(|r| (r.key(), Cow::Borrowed(r)))
            .into_iter()
            .collect()
    }

    fn restore(
        states: &mut HashMap<String, Ledger>,
        _key: String,
        record: Option<CouponRedemption>,
    ) {
        // Never written: a redemption is released with a record of its own.
        let Some(record) = record else { return };
        states
            .entry(record.code.clone())
            .or_insert_with(|| Ledger::new(&record.code))
            .restore(record);
    }
}

impl<K: Table<CouponRecord> + 'static> Processor for CouponProcessor<K> {
    type Input = CouponCommand;
    type State = Ledger;
    type Output = CouponOutput;

    const NAME: &'static str = "coupon-processor";

    fn input_topic(&self) -> &'static Topic<CouponCommand> {
        &COUPON_COMMANDS
    }

    fn changelog_topic(&self) -> &'static Topic<CouponRedemption> {
        &COUPON_CHANGELOG
    }

    fn applied_topic(&self) -> &'static Topic<AppliedInput> {
        &COUPON_APPLIED
    }

    fn input_id(input: &CouponCommand) -> &str {
        &input.command_id
    }

    /// A reservation reads the limits at the definitions' version its order
    /// was priced at: wait for this instance's table to have it.
    fn ready<'a>(&'a self, input: &'a Input<CouponCommand>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match &input.value.command {
                CouponCmd::ReserveCoupon(r) => match r.coupons_version {
                    Some(v) => self.definitions.reached(v, TABLE_WAIT).await,
                    None => Ok(()),
                },
                CouponCmd::CommitCoupon(_) | CouponCmd::ReleaseCoupon(_) => Ok(()),
            }
        })
    }

    fn apply(
        &self,
        state: Option<&Ledger>,
        input: &Input<CouponCommand>,
    ) -> Outcome<Ledger, CouponOutput> {
        let cmd = &input.value;
        let (version, round) = match &cmd.command {
            CouponCmd::ReserveCoupon(r) => (r.coupons_version, r.round),
            CouponCmd::CommitCoupon(_) | CouponCmd::ReleaseCoupon(_) => (None, 0),
        };
        let coupon = self
            .definitions
            .get_at(&cmd.code, version)
            .as_ref()
            .and_then(Coupon::from_record);
        let decision = redemption::decide(
            state,
            cmd,
            coupon.as_ref(),
            Stamp {
                offset: input.offset,
                at_ms: cmd.issued_at,
            },
        );
        let mut outputs = Vec::new();
        if let Some(change) = decision.ledger.as_ref().and_then(Ledger::last_change) {
            outputs.push(CouponOutput::Redemption(change.clone()));
        }
        if let Some(answer) = decision.answer {
            let (reserved, refusal_code, message) = match answer {
                Answer::Reserved => (true, None, format!("coupon {} reserved", cmd.code)),
                Answer::Refused(code, message) => (false, Some(code.code()), message),
            };
            outputs.push(CouponOutput::Answer(OrderCommand {
                command_id: ids::derived(
                    "coupon-answer",
                    &format!("{}/{}", cmd.code, cmd.order_token),
                    input.offset,
                )
                .to_string(),
                order_token: cmd.order_token.clone(),
                issued_at: cmd.issued_at,
                actor: Some("coupon-processor".into()),
                command: OrderCmd::CouponAnswered(CouponAnswered {
                    code: cmd.code.clone(),
                    reserved,
                    refusal_code,
                    message,
                    round,
                }),
            }));
        }
        Outcome {
            state: decision.ledger,
            outputs,
        }
    }
}
