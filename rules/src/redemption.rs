//! A coupon's uses, counted in one place: the coupon processor applies
//! every reservation, commit and release of one coupon in order (its
//! commands are keyed by the code), so a usage limit holds under any
//! concurrency. Pure: the definition's limits come in as a value.
//!
//! - Reserve: an order that holds or used the coupon already is answered
//!   "reserved" again without counting twice (a repeated request); else the
//!   total and per-user limits are checked against every order holding or
//!   having used it, and the order is added or refused (2008, 2009).
//! - Commit (the order is paid): the reservation becomes a use. A paid
//!   order whose reservation was released meanwhile (it expired, then its
//!   payment arrived) is counted all the same: money received is not
//!   refused over a coupon.
//! - Release (the order failed or expired): the reservation is dropped; a
//!   use is never released.
//!
//! A [`Ledger`] holds every order holding or having used one coupon, and
//! says what its last command changed: that one order's
//! [`CouponRedemption`], which is all that is written (to the changelog and
//! `coupon.redemptions`). Writing the whole list after every command cost
//! a popular coupon time and bytes growing with its uses, and would have
//! stopped it at Kafka's message size (about 15,000 uses).

use std::collections::HashMap;
use std::sync::Arc;

use schemas::codes::ErrorCode;
use schemas::ids;
use schemas::records::coupons::{CouponCmd, CouponCommand, CouponRedemption, RedemptionStatus};

use crate::coupons::Coupon;

/// One coupon's uses: every order holding (reserved) or having used
/// (committed) it, and the change the last command made. Entries are
/// shared (`Arc`), so the copy a command starts from costs a pointer per
/// order, not its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    code: String,
    /// The offset of the last command that changed the coupon's uses.
    version: i64,
    held: HashMap<Arc<str>, Arc<CouponRedemption>>,
    /// What the last command changed (a released order is in here only).
    last: Option<Arc<CouponRedemption>>,
}

impl Ledger {
    pub fn new(code: &str) -> Ledger {
        Ledger {
            code: code.to_owned(),
            version: -1,
            held: HashMap::new(),
            last: None,
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// The offset of the last command that changed the coupon's uses.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The order's redemption, if it holds or used the coupon.
    pub fn get(&self, order_token: &str) -> Option<&CouponRedemption> {
        self.held.get(order_token).map(|r| &**r)
    }

    /// Every order holding or having used the coupon (in no order).
    pub fn redemptions(&self) -> impl Iterator<Item = &CouponRedemption> {
        self.held.values().map(|r| &**r)
    }

    /// What the last command changed: the record to write.
    pub fn last_change(&self) -> Option<&CouponRedemption> {
        self.last.as_deref()
    }

    fn count(&self, status: RedemptionStatus) -> i32 {
        self.held.values().filter(|r| r.status == status).count() as i32
    }

    /// Reads one changelog record back: the newest record of each order
    /// wins (a record is a deterministic function of the commands up to
    /// its version), a released order leaves.
    pub fn restore(&mut self, record: CouponRedemption) {
        self.version = self.version.max(record.version);
        if self
            .held
            .get(record.order_token.as_str())
            .is_some_and(|kept| kept.version > record.version)
        {
            return;
        }
        if record.status == RedemptionStatus::Released {
            self.held.remove(record.order_token.as_str());
        } else {
            self.held
                .insert(Arc::from(record.order_token.as_str()), Arc::new(record));
        }
    }

    /// The ledger after `order`'s redemption becomes `status`.
    fn with(
        &self,
        command: &CouponCommand,
        user_id: Option<String>,
        status: RedemptionStatus,
        stamp: Stamp,
    ) -> Ledger {
        let at = self
            .get(&command.order_token)
            .map_or(stamp.at_ms, |held| held.at);
        let mut next = self.clone();
        next.held.remove(command.order_token.as_str());
        // The counts after the change: the others', plus this order's.
        let (mut reserved, mut committed) = (
            next.count(RedemptionStatus::Reserved),
            next.count(RedemptionStatus::Committed),
        );
        match status {
            RedemptionStatus::Reserved => reserved += 1,
            RedemptionStatus::Committed => committed += 1,
            RedemptionStatus::Released => {}
        }
        let record = Arc::new(CouponRedemption {
            event_id: ids::derived(
                "coupon-redemption",
                &format!("{}/{}", command.code, command.order_token),
                stamp.offset,
            )
            .to_string(),
            code: self.code.clone(),
            order_token: command.order_token.clone(),
            user_id,
            status,
            at,
            version: stamp.offset,
            reserved,
            committed,
            updated_at: stamp.at_ms,
        });
        if status != RedemptionStatus::Released {
            next.held
                .insert(Arc::from(command.order_token.as_str()), record.clone());
        }
        next.version = stamp.offset;
        next.last = Some(record);
        next
    }
}

/// The answer to a reservation, for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reserved,
    Refused(ErrorCode, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The coupon's uses after the command; `None`: unchanged.
    pub ledger: Option<Ledger>,
    /// For a reservation: the answer to send to the order.
    pub answer: Option<Answer>,
}

/// Where a command stands: its offset and time.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub offset: i64,
    pub at_ms: i64,
}

pub fn decide(
    ledger: Option<&Ledger>,
    command: &CouponCommand,
    coupon: Option<&Coupon>,
    stamp: Stamp,
) -> Decision {
    let empty;
    let ledger = match ledger {
        Some(l) => l,
        None => {
            empty = Ledger::new(&command.code);
            &empty
        }
    };
    let held = ledger.get(&command.order_token);
    let unchanged = |answer| Decision {
        ledger: None,
        answer,
    };
    match &command.command {
        CouponCmd::ReserveCoupon(r) => {
            if held.is_some() {
                return unchanged(Some(Answer::Reserved));
            }
            let refusal = match coupon {
                None => Some((
                    ErrorCode::CouponUnknown,
                    format!("coupon {} is unknown", command.code),
                )),
                Some(c) => limit_refusal(c, ledger, r.user_id.as_deref()),
            };
            if let Some((code, message)) = refusal {
                return unchanged(Some(Answer::Refused(code, message)));
            }
            Decision {
                ledger: Some(ledger.with(
                    command,
                    r.user_id.clone(),
                    RedemptionStatus::Reserved,
                    stamp,
                )),
                answer: Some(Answer::Reserved),
            }
        }
        CouponCmd::CommitCoupon(commit) => match held {
            Some(h) if h.status == RedemptionStatus::Committed => unchanged(None),
            _ => {
                let user = held
                    .and_then(|h| h.user_id.clone())
                    .or_else(|| commit.user_id.clone());
                Decision {
                    ledger: Some(ledger.with(command, user, RedemptionStatus::Committed, stamp)),
                    answer: None,
                }
            }
        },
        CouponCmd::ReleaseCoupon(_) => match held {
            Some(h) if h.status == RedemptionStatus::Reserved => Decision {
                ledger: Some(ledger.with(
                    command,
                    h.user_id.clone(),
                    RedemptionStatus::Released,
                    stamp,
                )),
                answer: None,
            },
            _ => unchanged(None),
        },
    }
}

fn limit_refusal(
    coupon: &Coupon,
    ledger: &Ledger,
    user: Option<&str>,
) -> Option<(ErrorCode, String)> {
    let used = ledger.held.len();
    if coupon
        .usage_limit
        .is_some_and(|limit| used >= limit as usize)
    {
        return Some((
            ErrorCode::CouponUsedUp,
            format!("coupon {} has reached its usage limit", coupon.code),
        ));
    }
    if let (Some(limit), Some(user)) = (coupon.per_user_limit, user) {
        let by_user = ledger
            .redemptions()
            .filter(|r| r.user_id.as_deref() == Some(user))
            .count();
        if by_user >= limit as usize {
            return Some((
                ErrorCode::CouponPerUserLimit,
                format!("coupon {} has reached its limit for this user", coupon.code),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::coupons::{CommitCoupon, ReleaseCoupon, ReserveCoupon};

    fn coupon(total: Option<u32>, per_user: Option<u32>) -> Coupon {
        let record: schemas::records::coupons::Coupon = serde_json::from_value(serde_json::json!({
            "code": "TEN", "name": "Ten", "kind": "PERCENTAGE", "percent": "0.10", "cap": null,
            "amounts": [], "tiers": [], "referrer_user_id": null, "scope_internships": [],
            "scope_categories": [], "valid_from": null, "valid_until": null, "min_order": null,
            "usage_limit": total, "per_user_limit": per_user, "combinable": true, "active": true,
            "updated_at": 0
        }))
        .unwrap();
        Coupon::from_record(&record).unwrap()
    }

    fn cmd(order: &str, command: CouponCmd) -> CouponCommand {
        CouponCommand {
            command_id: format!("{order}-c"),
            code: "TEN".into(),
            order_token: order.into(),
            issued_at: 1,
            command,
        }
    }

    fn reserve(order: &str, user: &str) -> CouponCommand {
        cmd(
            order,
            CouponCmd::ReserveCoupon(ReserveCoupon {
                user_id: Some(user.into()),
                coupons_version: None,
                round: 1,
            }),
        )
    }

    /// Applies `commands` in order; the answers, the final uses and the
    /// records written (each command's change).
    fn run_logged(
        c: &Coupon,
        commands: &[CouponCommand],
    ) -> (Vec<Option<Answer>>, Option<Ledger>, Vec<CouponRedemption>) {
        let mut ledger: Option<Ledger> = None;
        let mut answers = Vec::new();
        let mut written = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            let d = decide(
                ledger.as_ref(),
                command,
                Some(c),
                Stamp {
                    offset: i as i64,
                    at_ms: 1 + i as i64,
                },
            );
            if let Some(l) = d.ledger {
                written.push(l.last_change().expect("a change says what changed").clone());
                ledger = Some(l);
            }
            answers.push(d.answer);
        }
        (answers, ledger, written)
    }

    fn run(c: &Coupon, commands: &[CouponCommand]) -> (Vec<Option<Answer>>, Option<Ledger>) {
        let (answers, ledger, _) = run_logged(c, commands);
        (answers, ledger)
    }

    fn sorted(ledger: &Ledger) -> Vec<(String, RedemptionStatus)> {
        let mut out: Vec<_> = ledger
            .redemptions()
            .map(|r| (r.order_token.clone(), r.status))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn a_total_limit_holds_and_a_repeated_request_counts_once() {
        let c = coupon(Some(2), None);
        let (answers, usage) = run(
            &c,
            &[
                reserve("o1", "a"),
                reserve("o1", "a"),
                reserve("o2", "b"),
                reserve("o3", "c"),
            ],
        );
        assert_eq!(answers[0], Some(Answer::Reserved));
        assert_eq!(answers[1], Some(Answer::Reserved), "the same order again");
        assert_eq!(answers[2], Some(Answer::Reserved));
        assert!(matches!(
            answers[3],
            Some(Answer::Refused(ErrorCode::CouponUsedUp, _))
        ));
        assert_eq!(usage.unwrap().redemptions().count(), 2);
    }

    #[test]
    fn a_per_user_limit_holds_across_orders() {
        let c = coupon(None, Some(1));
        let (answers, _) = run(
            &c,
            &[reserve("o1", "a"), reserve("o2", "a"), reserve("o3", "b")],
        );
        assert_eq!(answers[0], Some(Answer::Reserved));
        assert!(matches!(
            answers[1],
            Some(Answer::Refused(ErrorCode::CouponPerUserLimit, _))
        ));
        assert_eq!(answers[2], Some(Answer::Reserved));
    }

    #[test]
    fn a_release_frees_a_reservation_but_never_a_use() {
        let c = coupon(Some(1), None);
        let release = |o: &str| {
            cmd(
                o,
                CouponCmd::ReleaseCoupon(ReleaseCoupon {
                    reason: "expired".into(),
                }),
            )
        };
        let commit = |o: &str| {
            cmd(
                o,
                CouponCmd::CommitCoupon(CommitCoupon {
                    payment_ref: "p".into(),
                    user_id: None,
                }),
            )
        };
        let (answers, usage) = run(
            &c,
            &[
                reserve("o1", "a"),
                release("o1"),
                reserve("o2", "b"),
                commit("o2"),
                release("o2"),
                reserve("o3", "c"),
                // Paid after its reservation was released: counted anyway.
                commit("o1"),
            ],
        );
        assert_eq!(answers[2], Some(Answer::Reserved), "freed by the release");
        assert!(matches!(
            answers[5],
            Some(Answer::Refused(ErrorCode::CouponUsedUp, _))
        ));
        assert_eq!(
            sorted(&usage.unwrap()),
            [
                ("o1".to_owned(), RedemptionStatus::Committed),
                ("o2".to_owned(), RedemptionStatus::Committed)
            ]
        );
    }

    #[test]
    fn an_unknown_coupon_is_refused() {
        let d = decide(
            None,
            &reserve("o1", "a"),
            None,
            Stamp {
                offset: 0,
                at_ms: 0,
            },
        );
        assert!(matches!(
            d.answer,
            Some(Answer::Refused(ErrorCode::CouponUnknown, _))
        ));
        assert_eq!(d.ledger, None);
    }

    #[test]
    fn each_change_is_one_order_s_record_and_the_records_restore_the_ledger() {
        let c = coupon(Some(3), None);
        let release = cmd(
            "o1",
            CouponCmd::ReleaseCoupon(ReleaseCoupon {
                reason: "failed".into(),
            }),
        );
        let commit = cmd(
            "o2",
            CouponCmd::CommitCoupon(CommitCoupon {
                payment_ref: "p".into(),
                user_id: None,
            }),
        );
        let (_, ledger, written) = run_logged(
            &c,
            &[reserve("o1", "a"), reserve("o2", "b"), release, commit],
        );
        let ledger = ledger.unwrap();
        let seen: Vec<_> = written
            .iter()
            .map(|r| {
                (
                    r.order_token.as_str(),
                    r.status,
                    r.version,
                    r.reserved,
                    r.committed,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("o1", RedemptionStatus::Reserved, 0, 1, 0),
                ("o2", RedemptionStatus::Reserved, 1, 2, 0),
                ("o1", RedemptionStatus::Released, 2, 1, 0),
                ("o2", RedemptionStatus::Committed, 3, 0, 1),
            ]
        );
        // The commit keeps when the order first held the coupon and who.
        assert_eq!(written[3].at, 2);
        assert_eq!(written[3].user_id.as_deref(), Some("b"));
        // A restore reads the changelog in order, whole or compacted (the
        // newest record of each order left): both give the ledger back.
        let compacted: Vec<_> = written
            .iter()
            .enumerate()
            .filter(|(i, r)| !written[i + 1..].iter().any(|n| n.key() == r.key()))
            .map(|(_, r)| r.clone())
            .collect();
        assert_eq!(compacted.len(), 2);
        for log in [written.clone(), compacted] {
            let mut restored = Ledger::new("TEN");
            for r in log {
                restored.restore(r);
            }
            assert_eq!(restored.version(), ledger.version());
            assert_eq!(sorted(&restored), sorted(&ledger));
        }
        assert_eq!(
            sorted(&ledger),
            [("o2".to_owned(), RedemptionStatus::Committed)]
        );
    }
}
