//! Enrollment, pure: what a paid order does to its buyer's enrollments.
//!
//! One enrollment per internship line of quantity 1, for the buyer, with
//! access granted, progress at 0 and no certificate yet; a line of
//! quantity > 1 gives the buyer that many seats to assign. Idempotent by
//! order (an order applied once) and by (order, internship) (the
//! enrollment id is derived from both), and never a second active
//! enrollment of one buyer in one internship: such a line is skipped and
//! the reason kept. A refunded order's enrollments are revoked: access
//! withdrawn, the record kept.

use schemas::ids;
use schemas::records::enrollment::{
    EnrollOrder, Enrollment, EnrollmentBook, EnrollmentStatus, RevokeOrder,
};

/// The key a buyer's enrollments live under: the user, or the order for
/// a guest.
pub fn buyer_key(buyer_user_id: Option<&str>, order_token: &str) -> String {
    match buyer_user_id {
        Some(user) => user.to_owned(),
        None => format!("guest:{order_token}"),
    }
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

/// The buyer's book after `order` (`None`: applied already, unchanged).
pub fn enroll(
    book: Option<&EnrollmentBook>,
    key: &str,
    order: &EnrollOrder,
    offset: i64,
    at_ms: i64,
) -> Option<EnrollmentBook> {
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
    });
    next.version = offset;
    next.orders.push(order.order_token.clone());
    for line in &order.lines {
        let personal = line.quantity == 1;
        let active = next.enrollments.iter().any(|e| {
            e.internship_id == line.internship_id
                && e.status == EnrollmentStatus::Active
                && e.seats == 1
        });
        if personal && active {
            next.skipped.push(format!(
                "{} (order {}): already enrolled",
                line.internship_id, order.order_token
            ));
            continue;
        }
        next.enrollments.push(Enrollment {
            enrollment_id: ids::derived(
                "enrollment",
                &format!("{}/{}", order.order_token, line.internship_id),
                0,
            )
            .to_string(),
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
        });
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::enrollment::PaidLine;

    fn order(token: &str, lines: &[(&str, i32)]) -> EnrollOrder {
        EnrollOrder {
            order_token: token.into(),
            buyer_user_id: Some("u".into()),
            buyer_email: None,
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

    #[test]
    fn a_paid_order_enrolls_once_per_line_and_never_twice_in_one_internship() {
        let first = enroll(None, "u", &order("o1", &[("rust", 1), ("go", 3)]), 1, 10).unwrap();
        let got: Vec<_> = first
            .enrollments
            .iter()
            .map(|e| (e.internship_id.as_str(), e.seats, e.access_granted))
            .collect();
        assert_eq!(
            got,
            [("rust", 1, true), ("go", 3, false)],
            "go: three seats to assign"
        );
        assert_eq!(
            enroll(Some(&first), "u", &order("o1", &[("rust", 1)]), 2, 11),
            None
        );
        let second = enroll(
            Some(&first),
            "u",
            &order("o2", &[("rust", 1), ("ml", 1)]),
            3,
            12,
        )
        .unwrap();
        let rust = second
            .enrollments
            .iter()
            .filter(|e| e.internship_id == "rust" && e.seats == 1)
            .count();
        assert_eq!(rust, 1, "never a second active enrollment");
        assert_eq!(second.enrollments.len(), 3);
        assert_eq!(second.skipped.len(), 1);
        assert_eq!(buyer_key(None, "o9"), "guest:o9");
        let again = enroll(None, "u", &order("o1", &[("rust", 1), ("go", 3)]), 1, 10).unwrap();
        assert_eq!(
            again.enrollments[0].enrollment_id,
            first.enrollments[0].enrollment_id
        );
    }

    #[test]
    fn a_refunded_order_revokes_its_enrollments_once_and_keeps_the_others() {
        let book = enroll(None, "u", &order("o1", &[("a", 1), ("b", 3)]), 1, 10).unwrap();
        let book = enroll(Some(&book), "u", &order("o2", &[("c", 1)]), 2, 11).unwrap();
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
