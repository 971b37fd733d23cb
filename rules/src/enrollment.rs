//! Enrollment, pure: what a paid order, a refund and a seat assignment do
//! to a buyer's enrollments, and the events and support cases that say so.
//!
//! One enrollment per internship line of quantity 1, for the buyer, with
//! access granted, progress at 0 and no certificate yet; a line of
//! quantity > 1 gives the buyer a block of that many seats to assign.
//! Idempotent by order (an order applied once) and by (order, internship)
//! (the enrollment id is derived from both), and never a second active
//! personal enrollment of one buyer in one internship: such a line is
//! skipped and the reason kept (no event: the buyer keeps the access they
//! have, nothing changed for them). A paid line whose internship is
//! closed (inactive in the catalog the processor follows) or gone is not
//! enrolled: it is kept in `failed`, and an `EnrollmentFailed` event and a
//! support case go out with it, so a paid buyer is never silently left
//! unenrolled. A refunded order's enrollments are revoked: access
//! withdrawn, the record kept.
//!
//! Seats ([`plan_seats`], [`assign`]): one seat per email (compared by
//! blind index: addresses arrive sealed), each an
//! enrollment of its own (access granted, `seat_of` naming the block) whose
//! id is derived from (order, internship, email), so a repeat assigns
//! once; an email that already holds an active enrollment of that
//! internship in the book is not assigned again; fewer seats left than new
//! emails refuses the whole assignment. The ingress answers early with the
//! same [`plan_seats`] over its read model; the processor decides.
//!
//! Every new enrollment (personal, block, assigned seat) is an
//! `EnrollmentCreated`. Event and case ids are derived from their cause,
//! so a replay writes the same ids.

use std::collections::BTreeSet;

use schemas::records::enrollment::{
    AssignSeats, EnrollOrder, Enrollment, EnrollmentBook, EnrollmentCmd, EnrollmentCommand,
    EnrollmentCreated, EnrollmentEvent, EnrollmentEventKind, EnrollmentFailed, EnrollmentStatus,
    FailedLine, RevokeOrder,
};
use schemas::records::support::SupportCase;
use schemas::{ids, sealed};

use crate::tables::CatalogLookup;

/// The key a buyer's enrollments live under: the user, or the order for
/// a guest.
pub fn buyer_key(buyer_user_id: Option<&str>, order_token: &str) -> String {
    match buyer_user_id {
        Some(user) => user.to_owned(),
        None => format!("guest:{order_token}"),
    }
}

/// What one command changed: the book, and what goes out with it (in the
/// same transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub book: EnrollmentBook,
    pub events: Vec<EnrollmentEvent>,
    pub cases: Vec<SupportCase>,
}

/// Why a paid line could not be enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// The internship is in the catalog but inactive (closed after payment).
    InternshipClosed,
    /// The internship is not in the catalog at all (removed).
    InternshipUnknown,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::InternshipClosed => "internship_closed",
            FailureCode::InternshipUnknown => "internship_unknown",
        }
    }
}

/// A buyer's own enrollment (not a block of seats, not an assigned seat):
/// the one the "never twice in one internship" rule is about.
pub fn is_personal(e: &Enrollment) -> bool {
    e.seats == 1 && e.seat_of.is_none()
}

/// The buyer's book after `revoke` (`None`: nothing of that order is
/// active: revoked already, or never enrolled).
pub fn revoke(
    book: Option<&EnrollmentBook>,
    revoke: &RevokeOrder,
    offset: i64,
) -> Option<EnrollmentBook> {
    let book = book?;
    let active = |e: &Enrollment| {
        e.order_token == revoke.order_token && e.status == EnrollmentStatus::Active
    };
    if !book.enrollments.iter().any(active) {
        return None;
    }
    let mut next = book.clone();
    next.version = offset;
    for e in next.enrollments.iter_mut().filter(|e| active(e)) {
        e.status = EnrollmentStatus::Revoked;
        e.access_granted = false;
    }
    Some(next)
}

/// The buyer's book after `order`, with its events and cases (`None`:
/// applied already, unchanged). `catalog` is the catalog as the processor
/// has read it: a line whose internship is inactive or missing there fails.
pub fn enroll(
    book: Option<&EnrollmentBook>,
    key: &str,
    order: &EnrollOrder,
    offset: i64,
    at_ms: i64,
    catalog: &impl CatalogLookup,
) -> Option<Change> {
    if book.is_some_and(|b| b.orders.contains(&order.order_token)) {
        return None;
    }
    let mut next = book.cloned().unwrap_or_else(|| EnrollmentBook {
        buyer_key: key.to_owned(),
        version: offset,
        buyer_user_id: order.buyer_user_id.clone(),
        orders: Vec::new(),
        enrollments: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
    });
    next.version = offset;
    next.orders.push(order.order_token.clone());
    let mut events = Vec::new();
    let mut cases = Vec::new();
    let event = |kind: EnrollmentEventKind, id: String| EnrollmentEvent {
        event_id: id,
        buyer_key: key.to_owned(),
        buyer_user_id: order.buyer_user_id.clone(),
        buyer_email: order.buyer_email.clone(),
        order_token: order.order_token.clone(),
        at: at_ms,
        event: kind,
    };
    for line in &order.lines {
        let personal = line.quantity == 1;
        let active = next.enrollments.iter().any(|e| {
            e.internship_id == line.internship_id
                && e.status == EnrollmentStatus::Active
                && is_personal(e)
        });
        // Already enrolled comes first: such a buyer has access whatever
        // the catalog says now, so nothing failed for them.
        if personal && active {
            next.skipped.push(format!(
                "{} (order {}): already enrolled",
                line.internship_id, order.order_token
            ));
            continue;
        }
        let line_key = format!("{}/{}", order.order_token, line.internship_id);
        let failure = match catalog.internship(&line.internship_id) {
            None => Some((
                FailureCode::InternshipUnknown,
                format!("{} is no longer in the catalog", line.internship_id),
            )),
            Some(i) if !i.active => Some((
                FailureCode::InternshipClosed,
                format!("{} was closed after the order was paid", line.internship_id),
            )),
            Some(_) => None,
        };
        if let Some((code, reason)) = failure {
            next.failed.push(FailedLine {
                order_token: order.order_token.clone(),
                internship_id: line.internship_id.clone(),
                title: line.title.clone(),
                quantity: line.quantity,
                code: code.as_str().to_owned(),
                reason: reason.clone(),
                at: at_ms,
            });
            let failed = event(
                EnrollmentEventKind::EnrollmentFailed(EnrollmentFailed {
                    internship_id: line.internship_id.clone(),
                    title: line.title.clone(),
                    quantity: line.quantity,
                    code: code.as_str().to_owned(),
                    reason: reason.clone(),
                    catalog_version: catalog.catalog_version(),
                }),
                ids::derived("enrollment-failed", &line_key, 0).to_string(),
            );
            cases.push(SupportCase {
                case_id: ids::derived("support-case", &failed.event_id, 0).to_string(),
                order_token: order.order_token.clone(),
                buyer_key: key.to_owned(),
                buyer_user_id: order.buyer_user_id.clone(),
                buyer_email: order.buyer_email.clone(),
                kind: "enrollment_failed".into(),
                code: code.as_str().to_owned(),
                reason,
                internship_id: Some(line.internship_id.clone()),
                opened_at: at_ms,
                cause_event_id: failed.event_id.clone(),
            });
            events.push(failed);
            continue;
        }
        let enrollment = Enrollment {
            enrollment_id: ids::derived("enrollment", &line_key, 0).to_string(),
            order_token: order.order_token.clone(),
            internship_id: line.internship_id.clone(),
            title: line.title.clone(),
            seats: line.quantity.max(1),
            status: EnrollmentStatus::Active,
            access_granted: personal,
            progress_percent: 0,
            certificate_eligible: false,
            enrolled_at: at_ms,
            // Seats are the buyer's to assign; a personal enrollment is
            // the buyer's own.
            email: personal.then(|| order.buyer_email.clone()).flatten(),
            seats_assigned: 0,
            seat_of: None,
        };
        events.push(event(
            created(&enrollment),
            ids::derived("enrollment-created", &enrollment.enrollment_id, 0).to_string(),
        ));
        next.enrollments.push(enrollment);
    }
    Some(Change {
        book: next,
        events,
        cases,
    })
}

fn created(e: &Enrollment) -> EnrollmentEventKind {
    EnrollmentEventKind::EnrollmentCreated(EnrollmentCreated {
        enrollment_id: e.enrollment_id.clone(),
        internship_id: e.internship_id.clone(),
        title: e.title.clone(),
        seats: e.seats,
        access_granted: e.access_granted,
        email: e.email.clone(),
        seat_of: e.seat_of.clone(),
    })
}

/// The id of the seat of `(order, internship)` assigned to `email`: the
/// same person asked for twice gets one seat. Emails compare by
/// [`sealed::identity`]: a sealed address by its blind index, a plain one
/// without case (`A@x.com` and `a@x.com` are one inbox in practice).
pub fn seat_id(order_token: &str, internship_id: &str, email: &str) -> String {
    ids::derived(
        "enrollment-seat",
        &format!("{order_token}/{internship_id}/{}", sealed::identity(email)),
        0,
    )
    .to_string()
}

/// What assigning `emails` to the seats of `(order, internship)` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatPlan {
    /// The block the seats come from.
    pub block_id: String,
    /// The emails to assign (first spelling of each, in request order).
    pub assign: Vec<String>,
    /// Emails that already hold an active enrollment of the internship.
    pub already: Vec<String>,
    /// Seats left once `assign` is done.
    pub left_after: i32,
}

/// Why seats cannot be assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatRefusal {
    /// The order holds no active block of seats of that internship.
    NoSeats,
    /// Fewer seats left than new emails.
    NotEnough { left: i32, asked: usize },
}

impl std::fmt::Display for SeatRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeatRefusal::NoSeats => {
                write!(f, "the order holds no seats of this internship to assign")
            }
            SeatRefusal::NotEnough { left, asked } => {
                write!(f, "{asked} new email(s) to assign, {left} seat(s) left")
            }
        }
    }
}

/// The plan for assigning `emails` (validated addresses) to the seats of
/// `(order, internship)` among a buyer's `enrollments`: all or nothing.
pub fn plan_seats(
    enrollments: &[Enrollment],
    order_token: &str,
    internship_id: &str,
    emails: &[String],
) -> Result<SeatPlan, SeatRefusal> {
    let block = enrollments
        .iter()
        .find(|e| {
            e.order_token == order_token
                && e.internship_id == internship_id
                && e.seats > 1
                && e.seat_of.is_none()
                && e.status == EnrollmentStatus::Active
        })
        .ok_or(SeatRefusal::NoSeats)?;
    let holding: BTreeSet<String> = enrollments
        .iter()
        .filter(|e| e.internship_id == internship_id && e.status == EnrollmentStatus::Active)
        .filter_map(|e| e.email.as_deref().map(sealed::identity))
        .collect();
    let mut seen = BTreeSet::new();
    let (mut assign, mut already) = (Vec::new(), Vec::new());
    for email in emails {
        let folded = sealed::identity(email);
        if !seen.insert(folded.clone()) {
            continue;
        }
        if holding.contains(&folded) {
            already.push(email.clone());
        } else {
            assign.push(email.clone());
        }
    }
    let left = block.seats - block.seats_assigned;
    let wanted = i32::try_from(assign.len()).unwrap_or(i32::MAX);
    if wanted > left {
        return Err(SeatRefusal::NotEnough {
            left,
            asked: assign.len(),
        });
    }
    Ok(SeatPlan {
        block_id: block.enrollment_id.clone(),
        assign,
        already,
        left_after: left - wanted,
    })
}

/// The buyer's book after `cmd`, with an `EnrollmentCreated` per seat
/// assigned (`None`: nothing to record: no book yet, or every email holds
/// its seat already). A refusal is recorded in `skipped` (the command's
/// id and why) and assigns nothing.
pub fn assign(
    book: Option<&EnrollmentBook>,
    command_id: &str,
    cmd: &AssignSeats,
    offset: i64,
    at_ms: i64,
) -> Option<Change> {
    let book = book?;
    let mut next = book.clone();
    next.version = offset;
    let plan = match plan_seats(
        &book.enrollments,
        &cmd.order_token,
        &cmd.internship_id,
        &cmd.emails,
    ) {
        Ok(plan) if plan.assign.is_empty() => return None,
        Ok(plan) => plan,
        Err(refusal) => {
            next.skipped.push(format!(
                "{} (order {}): seat assignment {command_id} refused: {refusal}",
                cmd.internship_id, cmd.order_token
            ));
            return Some(Change {
                book: next,
                events: Vec::new(),
                cases: Vec::new(),
            });
        }
    };
    let Some(block) = next
        .enrollments
        .iter_mut()
        .find(|e| e.enrollment_id == plan.block_id)
    else {
        // plan_seats found the block in this very book.
        return None;
    };
    // left_after = seats - assigned before - assigned now.
    block.seats_assigned = block.seats - plan.left_after;
    let title = block.title.clone();
    let mut events = Vec::new();
    for email in &plan.assign {
        let seat = Enrollment {
            enrollment_id: seat_id(&cmd.order_token, &cmd.internship_id, email),
            order_token: cmd.order_token.clone(),
            internship_id: cmd.internship_id.clone(),
            title: title.clone(),
            seats: 1,
            status: EnrollmentStatus::Active,
            access_granted: true,
            progress_percent: 0,
            certificate_eligible: false,
            enrolled_at: at_ms,
            email: Some(email.clone()),
            seats_assigned: 0,
            seat_of: Some(plan.block_id.clone()),
        };
        events.push(EnrollmentEvent {
            event_id: ids::derived("enrollment-created", &seat.enrollment_id, 0).to_string(),
            buyer_key: book.buyer_key.clone(),
            buyer_user_id: book.buyer_user_id.clone(),
            buyer_email: None,
            order_token: cmd.order_token.clone(),
            at: at_ms,
            event: created(&seat),
        });
        next.enrollments.push(seat);
    }
    Some(Change {
        book: next,
        events,
        cases: Vec::new(),
    })
}

/// The audit trail of an applied enrollment command (see
/// `crate::order::audit` for orders): access granted, by enrollment or by
/// an assigned seat; a paid line that could not be enrolled; access
/// revoked by a refund. Seat holders are named by the enrollment's id,
/// never by their email: the trail holds no contact data. Ids derive from
/// the command, so a replay writes the same events.
pub fn audit_events(
    cmd: &EnrollmentCommand,
    change: &Change,
    correlation_id: &str,
) -> Vec<schemas::records::audit::AuditEvent> {
    use schemas::records::audit::AuditEvent;
    let event = |n: usize,
                 action: &str,
                 order: &str,
                 person: Option<String>,
                 actor: &str,
                 reason: String| {
        AuditEvent {
            event_id: ids::derived(
                "audit-enrollment",
                &format!("{}/{action}", cmd.command_id),
                n as i64,
            )
            .to_string(),
            at: cmd.issued_at,
            action: action.to_owned(),
            subject_kind: "order".into(),
            subject_id: order.to_owned(),
            subject_version: change.book.version,
            person,
            actor: actor.to_owned(),
            reason,
            correlation_id: correlation_id.to_owned(),
            amount: None,
        }
    };
    let actor = match &cmd.command {
        EnrollmentCmd::AssignSeats(a) => a
            .assigned_by
            .as_deref()
            .map_or_else(|| "system".to_owned(), |u| format!("user:{u}")),
        _ => "system".to_owned(),
    };
    if let EnrollmentCmd::RevokeOrder(r) = &cmd.command {
        return vec![event(
            0,
            "enrollment.revoked",
            &r.order_token,
            change.book.buyer_user_id.clone(),
            &actor,
            r.reason.clone(),
        )];
    }
    change
        .events
        .iter()
        .enumerate()
        .map(|(n, e)| match &e.event {
            EnrollmentEventKind::EnrollmentCreated(c) => {
                let (action, reason) = match &c.seat_of {
                    Some(block) => (
                        "seat.assigned",
                        format!(
                            "{} ({}): enrollment {} of block {block}",
                            c.title, c.internship_id, c.enrollment_id
                        ),
                    ),
                    None => (
                        "enrollment.granted",
                        format!(
                            "{} ({}): enrollment {}, {} seat(s)",
                            c.title, c.internship_id, c.enrollment_id, c.seats
                        ),
                    ),
                };
                event(
                    n,
                    action,
                    &e.order_token,
                    e.buyer_user_id.clone(),
                    &actor,
                    reason,
                )
            }
            EnrollmentEventKind::EnrollmentFailed(f) => event(
                n,
                "enrollment.failed",
                &e.order_token,
                e.buyer_user_id.clone(),
                &actor,
                format!("{} ({}): {}", f.title, f.internship_id, f.reason),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::catalog::Internship;
    use schemas::records::enrollment::PaidLine;
    use schemas::records::WireMoney;
    use std::collections::HashMap;

    fn order(token: &str, lines: &[(&str, i32)]) -> EnrollOrder {
        EnrollOrder {
            order_token: token.into(),
            buyer_user_id: Some("u".into()),
            buyer_email: Some("buyer@x.com".into()),
            lines: lines
                .iter()
                .map(|(id, q)| PaidLine {
                    internship_id: (*id).into(),
                    title: id.to_uppercase(),
                    quantity: *q,
                })
                .collect(),
        }
    }

    /// A catalog holding `open` (active) and `closed` (inactive) ids.
    fn catalog(open: &[&str], closed: &[&str]) -> HashMap<String, Internship> {
        let item = |id: &str, active: bool| Internship {
            internship_id: id.into(),
            title: id.to_uppercase(),
            category: "c".into(),
            base_price: WireMoney {
                amount_minor: 100,
                currency: "INR".into(),
            },
            tax_class: "standard".into(),
            active,
            updated_at: 0,
            billing_periods: vec![],
        };
        open.iter()
            .map(|id| ((*id).to_owned(), item(id, true)))
            .chain(closed.iter().map(|id| ((*id).to_owned(), item(id, false))))
            .collect()
    }

    fn all_open() -> HashMap<String, Internship> {
        catalog(&["rust", "go", "ml", "a", "b", "c"], &[])
    }

    fn created_ids(change: &Change) -> Vec<(String, i32, bool, Option<String>)> {
        change
            .events
            .iter()
            .filter_map(|e| match &e.event {
                EnrollmentEventKind::EnrollmentCreated(c) => Some((
                    c.internship_id.clone(),
                    c.seats,
                    c.access_granted,
                    c.email.clone(),
                )),
                EnrollmentEventKind::EnrollmentFailed(_) => None,
            })
            .collect()
    }

    fn emails(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| (*e).to_owned()).collect()
    }

    fn assign_cmd(order: &str, internship: &str, list: &[&str]) -> AssignSeats {
        AssignSeats {
            order_token: order.into(),
            internship_id: internship.into(),
            emails: emails(list),
            assigned_by: Some("u".into()),
        }
    }

    #[test]
    fn a_paid_order_enrolls_once_per_line_and_never_twice_in_one_internship() {
        let cat = all_open();
        let first = enroll(
            None,
            "u",
            &order("o1", &[("rust", 1), ("go", 3)]),
            1,
            10,
            &cat,
        )
        .unwrap();
        let got: Vec<_> = first
            .book
            .enrollments
            .iter()
            .map(|e| (e.internship_id.as_str(), e.seats, e.access_granted))
            .collect();
        assert_eq!(
            got,
            [("rust", 1, true), ("go", 3, false)],
            "go: three seats to assign"
        );
        let first = first.book;
        assert_eq!(
            enroll(Some(&first), "u", &order("o1", &[("rust", 1)]), 2, 11, &cat),
            None
        );
        let second = enroll(
            Some(&first),
            "u",
            &order("o2", &[("rust", 1), ("ml", 1)]),
            3,
            12,
            &cat,
        )
        .unwrap();
        assert_eq!(
            created_ids(&second),
            [("ml".to_owned(), 1, true, Some("buyer@x.com".to_owned()))],
            "a skipped duplicate is no event"
        );
        let second = second.book;
        let rust = second
            .enrollments
            .iter()
            .filter(|e| e.internship_id == "rust" && e.seats == 1)
            .count();
        assert_eq!(rust, 1, "never a second active enrollment");
        assert_eq!(second.enrollments.len(), 3);
        assert_eq!(second.skipped, ["rust (order o2): already enrolled"]);
        assert!(second.failed.is_empty());
        assert_eq!(buyer_key(None, "o9"), "guest:o9");
        let again = enroll(
            None,
            "u",
            &order("o1", &[("rust", 1), ("go", 3)]),
            1,
            10,
            &cat,
        )
        .unwrap();
        assert_eq!(
            again.book.enrollments[0].enrollment_id,
            first.enrollments[0].enrollment_id
        );
    }

    #[test]
    fn every_new_enrollment_is_an_event_with_an_id_derived_from_it() {
        let cat = all_open();
        let change = enroll(
            None,
            "u",
            &order("o1", &[("rust", 1), ("go", 3)]),
            1,
            10,
            &cat,
        )
        .unwrap();
        assert_eq!(
            created_ids(&change),
            [
                ("rust".to_owned(), 1, true, Some("buyer@x.com".to_owned())),
                ("go".to_owned(), 3, false, None),
            ]
        );
        assert!(change.cases.is_empty());
        for (event, e) in change.events.iter().zip(&change.book.enrollments) {
            assert_eq!(
                event.event_id,
                ids::derived("enrollment-created", &e.enrollment_id, 0).to_string()
            );
            assert_eq!(event.buyer_key, "u");
            assert_eq!(event.order_token, "o1");
            assert_eq!(event.buyer_email.as_deref(), Some("buyer@x.com"));
            assert_eq!(event.at, 10);
        }
        let replay = enroll(
            None,
            "u",
            &order("o1", &[("rust", 1), ("go", 3)]),
            1,
            10,
            &cat,
        )
        .unwrap();
        assert_eq!(replay, change, "a replay writes the same ids");
    }

    #[test]
    fn a_closed_or_removed_internship_fails_its_line_with_an_event_and_a_case() {
        let cat = catalog(&["rust"], &["go"]);
        let change = enroll(
            None,
            "u",
            &order("o1", &[("rust", 1), ("go", 3), ("gone", 1)]),
            4,
            10,
            &cat,
        )
        .unwrap();
        let book = &change.book;
        assert_eq!(
            book.orders,
            ["o1"],
            "the order is applied: it is not retried"
        );
        assert_eq!(book.enrollments.len(), 1);
        assert_eq!(book.enrollments[0].internship_id, "rust");
        let failed: Vec<_> = book
            .failed
            .iter()
            .map(|f| (f.internship_id.as_str(), f.quantity, f.code.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("go", 3, "internship_closed"),
                ("gone", 1, "internship_unknown")
            ]
        );
        let failures: Vec<_> = change
            .events
            .iter()
            .filter_map(|e| match &e.event {
                EnrollmentEventKind::EnrollmentFailed(f) => Some((e.event_id.clone(), f.clone())),
                EnrollmentEventKind::EnrollmentCreated(_) => None,
            })
            .collect();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].1.code, "internship_closed");
        assert_eq!(
            failures[0].1.reason,
            "go was closed after the order was paid"
        );
        assert_eq!(failures[0].1.quantity, 3);
        assert_eq!(
            failures[0].0,
            ids::derived("enrollment-failed", "o1/go", 0).to_string()
        );
        assert_eq!(created_ids(&change).len(), 1, "rust is still enrolled");
        // A case per failure, naming the order, the reason and the buyer.
        assert_eq!(change.cases.len(), 2);
        for (case, (event_id, failure)) in change.cases.iter().zip(&failures) {
            assert_eq!(case.order_token, "o1");
            assert_eq!(case.buyer_key, "u");
            assert_eq!(case.buyer_user_id.as_deref(), Some("u"));
            assert_eq!(case.buyer_email.as_deref(), Some("buyer@x.com"));
            assert_eq!(case.kind, "enrollment_failed");
            assert_eq!(case.code, failure.code);
            assert_eq!(case.reason, failure.reason);
            assert_eq!(
                case.internship_id.as_deref(),
                Some(failure.internship_id.as_str())
            );
            assert_eq!(&case.cause_event_id, event_id);
        }
        // Already enrolled wins over closed: nothing failed for that buyer.
        let again = enroll(
            Some(book),
            "u",
            &order("o2", &[("rust", 1)]),
            5,
            11,
            &catalog(&[], &["rust"]),
        )
        .unwrap();
        assert!(again.events.is_empty() && again.cases.is_empty());
        assert_eq!(again.book.skipped, ["rust (order o2): already enrolled"]);
    }

    #[test]
    fn seats_are_assigned_once_per_email_and_never_beyond_the_block() {
        let cat = all_open();
        let book = enroll(
            None,
            "u",
            &order("o1", &[("go", 3), ("rust", 1)]),
            1,
            10,
            &cat,
        )
        .unwrap()
        .book;
        let two = assign(
            Some(&book),
            "c1",
            &assign_cmd("o1", "go", &["a@x.com", "B@x.com"]),
            2,
            20,
        )
        .unwrap();
        assert_eq!(
            created_ids(&two),
            [
                ("go".to_owned(), 1, true, Some("a@x.com".to_owned())),
                ("go".to_owned(), 1, true, Some("B@x.com".to_owned())),
            ]
        );
        let block = &two.book.enrollments[0];
        assert_eq!((block.seats, block.seats_assigned), (3, 2));
        assert_eq!(two.book.version, 2);
        let seats: Vec<_> = two
            .book
            .enrollments
            .iter()
            .filter(|e| e.seat_of.as_deref() == Some(block.enrollment_id.as_str()))
            .collect();
        assert_eq!(seats.len(), 2);
        assert_eq!(seats[0].enrollment_id, seat_id("o1", "go", "a@x.com"));
        assert_eq!(
            seats[1].enrollment_id,
            seat_id("o1", "go", "b@x.com"),
            "case-folded"
        );
        assert!(seats
            .iter()
            .all(|s| s.access_granted && s.enrolled_at == 20));

        // A repeat (another command, same people in another case) assigns nothing.
        assert_eq!(
            assign(
                Some(&two.book),
                "c2",
                &assign_cmd("o1", "go", &["b@X.com", "a@x.com"]),
                3,
                21
            ),
            None
        );
        // Two new emails for one seat left: refused whole, the reason kept.
        let over = assign(
            Some(&two.book),
            "c3",
            &assign_cmd("o1", "go", &["c@x.com", "d@x.com"]),
            4,
            22,
        )
        .unwrap();
        assert!(over.events.is_empty());
        assert_eq!(over.book.enrollments, two.book.enrollments);
        assert_eq!(
            over.book.skipped.last().map(String::as_str),
            Some("go (order o1): seat assignment c3 refused: 2 new email(s) to assign, 1 seat(s) left")
        );
        // A known email beside a new one: only the new one takes the last seat.
        let last = assign(
            Some(&two.book),
            "c4",
            &assign_cmd("o1", "go", &["a@x.com", "c@x.com"]),
            5,
            23,
        )
        .unwrap();
        assert_eq!(created_ids(&last).len(), 1);
        assert_eq!(last.book.enrollments[0].seats_assigned, 3);
        // Seats assigned by the buyer are not the buyer's own enrollment:
        // the buyer can still enroll in that internship personally.
        let mine = enroll(
            Some(&last.book),
            "u",
            &order("o2", &[("go", 1)]),
            6,
            24,
            &cat,
        )
        .unwrap();
        assert_eq!(
            created_ids(&mine),
            [("go".to_owned(), 1, true, Some("buyer@x.com".to_owned()))]
        );
        // A refund revokes the block and its seats.
        let revoked = revoke(
            Some(&mine.book),
            &RevokeOrder {
                order_token: "o1".into(),
                reason: "refunded".into(),
            },
            7,
        )
        .unwrap();
        let still: Vec<_> = revoked
            .enrollments
            .iter()
            .filter(|e| e.status == EnrollmentStatus::Active)
            .map(|e| e.order_token.as_str())
            .collect();
        assert_eq!(still, ["o2"]);
    }

    #[test]
    fn only_a_block_of_seats_can_be_assigned_and_an_enrolled_email_is_not_assigned_twice() {
        let cat = all_open();
        let book = enroll(
            None,
            "u",
            &order("o1", &[("go", 2), ("rust", 1)]),
            1,
            10,
            &cat,
        )
        .unwrap()
        .book;
        let plan = |order: &str, internship: &str, list: &[&str]| {
            plan_seats(&book.enrollments, order, internship, &emails(list))
        };
        assert_eq!(
            plan("o1", "rust", &["a@x.com"]),
            Err(SeatRefusal::NoSeats),
            "a personal line"
        );
        assert_eq!(
            plan("o1", "ml", &["a@x.com"]),
            Err(SeatRefusal::NoSeats),
            "not in the order"
        );
        assert_eq!(
            plan("o2", "go", &["a@x.com"]),
            Err(SeatRefusal::NoSeats),
            "another order"
        );
        assert_eq!(
            plan("o1", "go", &["a@x.com", "b@x.com", "c@x.com"]),
            Err(SeatRefusal::NotEnough { left: 2, asked: 3 })
        );
        // The buyer's email holds rust, not go: it can take a go seat.
        let ok = plan("o1", "go", &["buyer@x.com", "a@x.com", "A@x.com"]).unwrap();
        assert_eq!(
            ok.assign,
            ["buyer@x.com", "a@x.com"],
            "repeats in one request count once"
        );
        assert_eq!(ok.left_after, 0);
        // No book yet: nothing to assign (nor to record a refusal in).
        assert_eq!(
            assign(None, "c", &assign_cmd("o1", "go", &["a@x.com"]), 2, 3),
            None
        );
        let no_block = assign(
            Some(&book),
            "c9",
            &assign_cmd("o1", "rust", &["a@x.com"]),
            2,
            3,
        )
        .unwrap();
        assert_eq!(
            no_block.book.skipped,
            ["rust (order o1): seat assignment c9 refused: the order holds no seats of this internship to assign"]
        );
    }

    #[test]
    fn an_email_holding_the_internship_already_is_not_assigned_a_seat() {
        let cat = all_open();
        let book = enroll(None, "u", &order("o1", &[("go", 1)]), 1, 10, &cat)
            .unwrap()
            .book;
        let book = enroll(Some(&book), "u", &order("o2", &[("go", 3)]), 2, 11, &cat)
            .unwrap()
            .book;
        let plan = plan_seats(
            &book.enrollments,
            "o2",
            "go",
            &emails(&["Buyer@x.com", "z@x.com"]),
        )
        .unwrap();
        assert_eq!(plan.already, ["Buyer@x.com"]);
        assert_eq!(plan.assign, ["z@x.com"]);
        assert_eq!(plan.left_after, 2);
    }

    #[test]
    fn sealed_addresses_compare_by_their_blind_index_never_their_ciphertext() {
        let cat = all_open();
        // The buyer's own address, sealed at placement with its index.
        let mut paid = order("o1", &[("go", 1)]);
        paid.buyer_email = Some("pii1.kb.n0.c0.e_buyer".into());
        let book = enroll(None, "u", &paid, 1, 10, &cat).unwrap().book;
        let book = enroll(Some(&book), "u", &order("o2", &[("go", 3)]), 2, 11, &cat)
            .unwrap()
            .book;
        // The buyer sealed again (another key, another nonce), a holder
        // twice in one request: compared by index.
        let cmd = assign_cmd(
            "o2",
            "go",
            &[
                "pii1.kh.n1.c1.e_buyer",
                "pii1.kz.n2.c2.e_z",
                "pii1.kz.n3.c3.e_z",
            ],
        );
        let change = assign(Some(&book), "c1", &cmd, 3, 12).unwrap();
        assert_eq!(change.events.len(), 1, "{:?}", change.events);
        let seat = change.book.enrollments.last().unwrap();
        assert_eq!(seat.email.as_deref(), Some("pii1.kz.n2.c2.e_z"));
        // A repeat sealed anew: same seat id, nothing new.
        let again = assign_cmd("o2", "go", &["pii1.kz.n9.c9.e_z"]);
        assert_eq!(assign(Some(&change.book), "c2", &again, 4, 13), None);
        assert_eq!(
            seat.enrollment_id,
            seat_id("o2", "go", "pii1.other.n.c.e_z")
        );
    }

    #[test]
    fn a_refunded_order_revokes_its_enrollments_once_and_keeps_the_others() {
        let cat = all_open();
        let book = enroll(None, "u", &order("o1", &[("a", 1), ("b", 3)]), 1, 10, &cat)
            .unwrap()
            .book;
        let book = enroll(Some(&book), "u", &order("o2", &[("c", 1)]), 2, 11, &cat)
            .unwrap()
            .book;
        let r = RevokeOrder {
            order_token: "o1".into(),
            reason: "refunded".into(),
        };
        let after = revoke(Some(&book), &r, 3).unwrap();
        assert_eq!(after.version, 3);
        for e in &after.enrollments {
            let revoked = e.order_token == "o1";
            assert_eq!(e.status == EnrollmentStatus::Revoked, revoked, "{e:?}");
            if revoked {
                assert!(!e.access_granted);
            }
        }
        assert_eq!(revoke(Some(&after), &r, 4), None, "applied once");
        assert_eq!(revoke(None, &r, 4), None, "nothing to revoke");
    }
}
