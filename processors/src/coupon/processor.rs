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

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::coupons::{RedemptionStatus, ReserveCoupon};

    fn unlimited() -> CouponRecord {
        serde_json::from_value(serde_json::json!({
            "code": "TEN", "name": "Ten", "kind": "PERCENTAGE", "percent": "0.10", "cap": null,
            "amounts": [], "tiers": [], "referrer_user_id": null, "scope_internships": [],
            "scope_categories": [], "valid_from": null, "valid_until": null, "min_order": null,
            "usage_limit": null, "per_user_limit": null, "combinable": true, "active": true,
            "updated_at": 0
        }))
        .expect("a coupon")
    }

    fn reserve(i: i64) -> Input<CouponCommand> {
        Input {
            key: "TEN".into(),
            value: CouponCommand {
                command_id: format!("reserve-{i}"),
                code: "TEN".into(),
                order_token: format!("order-{i:06}"),
                issued_at: 1_000 + i,
                command: CouponCmd::ReserveCoupon(ReserveCoupon {
                    user_id: Some(format!("user-{i:06}")),
                    coupons_version: None,
                    round: 1,
                }),
            },
            partition: 0,
            offset: i,
            correlation_id: "corr".into(),
        }
    }

    /// The bound a profile found: every reservation wrote the
    /// coupon's whole list of uses, so a popular coupon's records grew
    /// with its uses (and would have passed Kafka's 1 MB limit).
    #[test]
    fn a_coupon_with_thousands_of_uses_writes_one_small_record_per_change() {
        let p = CouponProcessor::new(Arc::new(HashMap::from([("TEN".to_owned(), unlimited())])));
        let mut state: Option<Ledger> = None;
        let mut sizes = Vec::new();
        for i in 0..3_000 {
            let outcome = p.apply(state.as_ref(), &reserve(i));
            let next = outcome.state.expect("a reservation changes the ledger");
            let records = next.records("TEN");
            assert_eq!(records.len(), 1, "one changelog record per change");
            let (key, record) = &records[0];
            assert_eq!(key, &format!("TEN/order-{i:06}"));
            assert_eq!(record.status, RedemptionStatus::Reserved);
            assert_eq!(record.reserved, i as i32 + 1, "the coupon's count after it");
            // The public record is the changelog's.
            assert!(matches!(
                &outcome.outputs[..],
                [CouponOutput::Redemption(r), CouponOutput::Answer(_)] if r == &**record
            ));
            sizes.push(serde_json::to_vec(&**record).expect("json").len());
            state = Some(next);
        }
        assert_eq!(state.expect("a ledger").redemptions().count(), 3_000);
        // Only the count's digits grow.
        assert!(
            sizes[2_999] <= sizes[0] + 8,
            "the 3,000th use wrote {} bytes, the first {}",
            sizes[2_999],
            sizes[0]
        );
    }
}
