//! The audit trail of an order, pure: what changed in money or access
//! between two versions of an order, as `audit.events` records. The order
//! processor writes them in the transaction that applies the change, so
//! the trail holds each change once, with the actor, the reason and the
//! correlation id of the command that made it.
//!
//! What counts: every transition of the order (refusals included: an
//! attempt to move money that was turned down is part of the trail), a
//! payment attempt's outcome, each step of a refund, and a coupon's use
//! committed or released. Ids derive from the order, the action and the
//! version, so a replay of the same command writes the same events.

use schemas::ids;
use schemas::records::audit::AuditEvent;
use schemas::records::order::{
    AttemptStatus, HoldStatus, OrderSnapshot, PaymentAttempt, Transition,
};
use schemas::records::WireMoney;

use super::OrderStamp;

/// The audit events of the change from `before` to `after`, made by
/// `actor` under `stamp`.
pub fn audit_events(
    before: Option<&OrderSnapshot>,
    after: &OrderSnapshot,
    actor: &str,
    stamp: &OrderStamp,
) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    // `part` tells apart two events of one action in one version (two
    // coupons committed at once).
    let event = |action: String,
                 part: &str,
                 who: &str,
                 reason: String,
                 correlation: &str,
                 at: i64,
                 money: bool| {
        AuditEvent {
            event_id: ids::derived(
                "audit",
                &format!("{}/{action}/{part}", after.order_token),
                after.version,
            )
            .to_string(),
            at,
            action,
            subject_kind: "order".into(),
            subject_id: after.order_token.clone(),
            subject_version: after.version,
            person: after.buyer_user_id.clone(),
            actor: actor_of(who, after),
            reason,
            correlation_id: correlation.to_owned(),
            amount: money.then(|| total(after)),
        }
    };
    let seen = before
        .and_then(|b| b.history.last())
        .map_or(i32::MIN, |t| t.seq);
    for t in after.history.iter().filter(|t| t.seq > seen) {
        let (action, money) = transition_action(t);
        out.push(event(
            action,
            &t.seq.to_string(),
            &t.actor,
            t.reason.clone(),
            &t.correlation_id,
            t.at,
            money,
        ));
    }
    for a in settled_attempts(before, after) {
        let reason = format!(
            "attempt {} at {}{}",
            a.number,
            a.gateway.as_deref().unwrap_or("no gateway"),
            a.payment_ref
                .as_deref()
                .map_or(String::new(), |r| format!(", payment {r}"))
        );
        out.push(event(
            format!("payment.{}", a.status.as_str()),
            &a.number.to_string(),
            actor,
            reason,
            stamp.correlation_id,
            stamp.at_ms,
            true,
        ));
    }
    let refund_was = before.and_then(|b| b.refund.as_ref()).map(|r| r.status);
    if let Some(r) = &after.refund {
        if refund_was != Some(r.status) {
            let reason = match &r.failure {
                Some(f) => format!("{}: {f}", r.reason),
                None => r.reason.clone(),
            };
            out.push(event(
                format!("refund.{}", r.status.as_str()),
                "",
                actor,
                reason,
                stamp.correlation_id,
                stamp.at_ms,
                true,
            ));
        }
    }
    for hold in &after.coupons {
        if !matches!(hold.status, HoldStatus::Committed | HoldStatus::Released) {
            continue;
        }
        let was = before
            .and_then(|b| b.coupons.iter().find(|h| h.code == hold.code))
            .map(|h| h.status);
        if was == Some(hold.status) {
            continue;
        }
        out.push(event(
            format!("coupon.{}", hold.status.as_str()),
            &hold.code,
            actor,
            format!("coupon {}", hold.code),
            stamp.correlation_id,
            stamp.at_ms,
            false,
        ));
    }
    out
}

/// The payment attempts whose outcome the change from `before` to `after`
/// decided (paid, failed or expired): what the trail records once each,
/// and what the payment metrics count.
pub fn settled_attempts<'a>(
    before: Option<&'a OrderSnapshot>,
    after: &'a OrderSnapshot,
) -> impl Iterator<Item = &'a PaymentAttempt> + 'a {
    after.attempts.iter().filter(move |a| {
        let was = before
            .and_then(|b| b.attempts.iter().find(|x| x.number == a.number))
            .map(|x| x.status);
        was != Some(a.status) && a.status != AttemptStatus::Open
    })
}

/// The actor as the trail names it: the buyer's own commands carry their
/// bare id (their pseudonym), which the trail marks `user:<id>` so that a person can
/// never read as a gateway or `system`; the others (`admin:<id>`,
/// `razorpay`, `stripe`, `system`) are named by whoever sent the command.
fn actor_of(actor: &str, order: &OrderSnapshot) -> String {
    match &order.buyer_user_id {
        Some(buyer) if buyer == actor => format!("user:{actor}"),
        _ => actor.to_owned(),
    }
}

/// A transition's action, and whether it moves or prices money.
fn transition_action(t: &Transition) -> (String, bool) {
    if t.refused_code.is_some() {
        return ("order.refused".into(), false);
    }
    match t.from_status {
        None => ("order.placed".into(), true),
        Some(_) => {
            let to = t.to_status.as_str();
            (format!("order.{to}"), matches!(to, "paid" | "refunded"))
        }
    }
}

fn total(order: &OrderSnapshot) -> WireMoney {
    order.placed.total.clone()
}
