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

use schemas::codes::ErrorCode;
use schemas::ids;
use schemas::records::coupons::{
    CouponCmd, CouponCommand, CouponUsage, Redemption, RedemptionStatus,
};

use crate::coupons::Coupon;

/// The answer to a reservation, for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reserved,
    Refused(ErrorCode, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The coupon's uses after the command; `None`: unchanged.
    pub usage: Option<CouponUsage>,
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
    usage: Option<&CouponUsage>,
    command: &CouponCommand,
    coupon: Option<&Coupon>,
    stamp: Stamp,
) -> Decision {
    let held = usage.and_then(|u| {
        u.redemptions
            .iter()
            .position(|r| r.order_token == command.order_token)
    });
    let mut next = usage.cloned().unwrap_or_else(|| CouponUsage {
        event_id: String::new(),
        code: command.code.clone(),
        version: stamp.offset,
        redemptions: Vec::new(),
        updated_at: stamp.at_ms,
    });
    next.version = stamp.offset;
    next.updated_at = stamp.at_ms;
    next.event_id = ids::derived("coupon-usage", &command.code, stamp.offset).to_string();
    match &command.command {
        CouponCmd::ReserveCoupon(r) => {
            if held.is_some() {
                return Decision {
                    usage: None,
                    answer: Some(Answer::Reserved),
                };
            }
            let refusal = match coupon {
                None => Some((
                    ErrorCode::CouponUnknown,
                    format!("coupon {} is unknown", command.code),
                )),
                Some(c) => limit_refusal(c, &next, r.user_id.as_deref()),
            };
            if let Some((code, message)) = refusal {
                return Decision {
                    usage: None,
                    answer: Some(Answer::Refused(code, message)),
                };
            }
            next.redemptions.push(Redemption {
                order_token: command.order_token.clone(),
                user_id: r.user_id.clone(),
                status: RedemptionStatus::Reserved,
                at: stamp.at_ms,
            });
            Decision {
                usage: Some(next),
                answer: Some(Answer::Reserved),
            }
        }
        CouponCmd::CommitCoupon(commit) => {
            match held {
                Some(i) if next.redemptions[i].status == RedemptionStatus::Committed => {
                    return Decision {
                        usage: None,
                        answer: None,
                    }
                }
                Some(i) => next.redemptions[i].status = RedemptionStatus::Committed,
                None => next.redemptions.push(Redemption {
                    order_token: command.order_token.clone(),
                    user_id: commit.user_id.clone(),
                    status: RedemptionStatus::Committed,
                    at: stamp.at_ms,
                }),
            }
            Decision {
                usage: Some(next),
                answer: None,
            }
        }
        CouponCmd::ReleaseCoupon(_) => match held {
            Some(i) if next.redemptions[i].status == RedemptionStatus::Reserved => {
                next.redemptions.remove(i);
                Decision {
                    usage: Some(next),
                    answer: None,
                }
            }
            _ => Decision {
                usage: None,
                answer: None,
            },
        },
    }
}

fn limit_refusal(
    coupon: &Coupon,
    usage: &CouponUsage,
    user: Option<&str>,
) -> Option<(ErrorCode, String)> {
    let used = usage.redemptions.len();
    if coupon
        .usage_limit
        .is_some_and(|limit| used >= limit as usize)
    {
        return Some((
            ErrorCode::CouponUsedUp,
            format!("coupon {} has reached its usage limit", coupon.code),
        ));
    }
    let by_user = usage
        .redemptions
        .iter()
        .filter(|r| user.is_some() && r.user_id.as_deref() == user)
        .count();
    if coupon
        .per_user_limit
        .is_some_and(|limit| user.is_some() && by_user >= limit as usize)
    {
        return Some((
            ErrorCode::CouponPerUserLimit,
            format!("coupon {} has reached its limit for this user", coupon.code),
        ));
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

    /// Applies `commands` in order; the answers and the final uses.
    fn run(c: &Coupon, commands: &[CouponCommand]) -> (Vec<Option<Answer>>, Option<CouponUsage>) {
        let mut usage: Option<CouponUsage> = None;
        let mut answers = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            let d = decide(
                usage.as_ref(),
                command,
                Some(c),
                Stamp {
                    offset: i as i64,
                    at_ms: 1,
                },
            );
            if let Some(u) = d.usage {
                usage = Some(u);
            }
            answers.push(d.answer);
        }
        (answers, usage)
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
        assert_eq!(usage.unwrap().redemptions.len(), 2);
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
        let usage = usage.unwrap();
        let statuses: Vec<_> = usage
            .redemptions
            .iter()
            .map(|r| (r.order_token.as_str(), r.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("o2", RedemptionStatus::Committed),
                ("o1", RedemptionStatus::Committed)
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
        assert_eq!(d.usage, None);
    }
}
