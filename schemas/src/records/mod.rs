//! Rust mirrors of the Avro records in `schemas/avro/`.
//!
//! These are wire types: plain fields, strings for ids, minor units for
//! money, so that they serialize exactly as the `.avsc` files say. The
//! tests at the bottom encode every record with its schema and decode it
//! back, so a field added on one side only fails the build's tests. Domain
//! code converts them to the validated types of [`crate::values`] and
//! [`crate::money`] at its edge.

pub mod audit;
pub mod cart;
pub mod catalog;
pub mod coupons;
pub mod dead_letter;
pub mod enrollment;
pub mod fx;
pub mod invoices;
pub mod order;
pub mod payments;
pub mod runtime;
pub mod support;
pub mod webhooks;

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError};

/// `internhub.money.Money`: an amount in minor units with its currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMoney {
    pub amount_minor: i64,
    pub currency: String,
}

impl WireMoney {
    pub fn to_money(&self) -> Result<Money, MoneyError> {
        Ok(Money::from_minor(
            self.amount_minor,
            Currency::parse(&self.currency)?,
        ))
    }
}

impl TryFrom<&Money> for WireMoney {
    type Error = MoneyError;
    fn try_from(m: &Money) -> Result<Self, Self::Error> {
        Ok(WireMoney {
            amount_minor: m.to_minor()?,
            currency: m.currency().code().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::cart::*;
    use super::catalog::*;
    use super::*;
    use crate::topics;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::writer::datum::GenericDatumWriter;
    use apache_avro::{from_value, Schema};
    use serde::de::DeserializeOwned;

    /// Writes `record` with the topic's schema, reads it back, and checks it
    /// is unchanged: the Rust record and the `.avsc` agree field for field.
    fn round_trip<T>(schema_json: &str, record: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let schema = Schema::parse_str(schema_json).expect("schema parses");
        let bytes = GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_ser_to_vec(record)
            .expect("record matches schema");
        let value = GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut &bytes[..])
            .unwrap();
        let values = [value];
        let back: T = from_value(&values[0]).expect("schema's value maps onto the record");
        assert_eq!(&back, record);
    }

    fn money(minor: i64) -> WireMoney {
        WireMoney {
            amount_minor: minor,
            currency: "INR".into(),
        }
    }

    #[test]
    fn every_topic_schema_parses() {
        for t in topics::ALL {
            Schema::parse_str(t.value_schema).unwrap_or_else(|e| panic!("{} value: {e}", t.name));
        }
    }

    #[test]
    fn internship_matches_its_schema() {
        round_trip(
            topics::CATALOG_INTERNSHIPS.def.value_schema,
            &Internship {
                internship_id: "rust-backend".into(),
                title: "Rust backend".into(),
                category: "engineering".into(),
                base_price: money(2_950_000),
                tax_class: "standard".into(),
                active: true,
                updated_at: 1_700_000_000_000,
                billing_periods: vec![catalog::BillingPeriod {
                    plan_id: "rust-6m".into(),
                    value: 6,
                    unit: catalog::PeriodUnit::Month,
                    price: money(1_000),
                }],
            },
        );
    }

    #[test]
    fn cart_commands_match_their_schema() {
        let create = CartCommand {
            command_id: "c1".into(),
            cart_token: "t".into(),
            issued_at: 5,
            command: Command::CreateCart(CreateCart {
                currency: "INR".into(),
                owner_user_id: Some("u1".into()),
                device_id: Some("device-1".into()),
                items: vec![ItemRequest {
                    internship_id: "a".into(),
                    quantity: 2,
                }],
            }),
            tables_at: None,
        };
        round_trip(topics::CART_COMMANDS.def.value_schema, &create);
        let add = CartCommand {
            command: Command::AddItem(AddItem {
                internship_id: "b".into(),
                quantity: 3,
                actor_user_id: None,
            }),
            tables_at: Some(cart::PricedWith {
                catalog: 4,
                fx_rates: 0,
                coupons: 2,
            }),
            ..create
        };
        round_trip(topics::CART_COMMANDS.def.value_schema, &add);
        for command in [
            Command::UpdateQuantity(UpdateQuantity {
                internship_id: "b".into(),
                new_quantity: 1,
                actor_user_id: Some("u".into()),
            }),
            Command::RemoveItem(RemoveItem {
                internship_id: "b".into(),
                actor_user_id: None,
            }),
            Command::SetBuyer(SetBuyer {
                country: "IN".into(),
                state: Some("KA".into()),
                gstin: Some("29ABCDE1234F1Z5".into()),
                display_currency: Some("USD".into()),
                actor_user_id: None,
            }),
            Command::ShareCart(ShareCart {
                share_token: "s".into(),
                actor_user_id: None,
            }),
            Command::ExpireCart(ExpireCart { ttl_ms: 86_400_000 }),
            Command::AttachAnalytics(AttachAnalytics {
                pairs: [("utm_source".to_owned(), "x".to_owned())].into(),
                actor_user_id: None,
            }),
            Command::AttachOwner(AttachOwner {
                user_id: "u".into(),
            }),
            Command::MergeInto(MergeInto {
                target_cart_token: "b".into(),
                user_id: "u".into(),
            }),
            Command::AbsorbItems(AbsorbItems {
                source_cart_token: "a".into(),
                items: vec![ItemRequest {
                    internship_id: "x".into(),
                    quantity: 1,
                }],
                user_id: "u".into(),
            }),
            Command::PlaceOrder(PlaceOrder {
                order_token: "o".into(),
                actor_user_id: Some("u".into()),
                success_url: Some("https://shop.example/ok".into()),
                cancel_url: None,
                buyer_email: Some("buyer@example.com".into()),
            }),
        ] {
            round_trip(
                topics::CART_COMMANDS.def.value_schema,
                &CartCommand {
                    command,
                    ..add.clone()
                },
            );
        }
    }

    /// apache-avro resolves a union branch by shape, so two record branches
    /// with the same fields would be confused when a reader resolves an
    /// older writer's command (see the codec).
    #[test]
    fn command_union_branches_differ_in_shape() {
        union_branches_differ_in_shape(topics::CART_COMMANDS.def.value_schema, "command");
        union_branches_differ_in_shape(topics::ENROLLMENT_COMMANDS.def.value_schema, "command");
        union_branches_differ_in_shape(topics::ENROLLMENT_EVENTS.def.value_schema, "event");
    }

    fn union_branches_differ_in_shape(schema: &str, field: &str) {
        let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
        let union = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field)
            .unwrap()["type"]
            .clone();
        let mut shapes: Vec<Vec<String>> = union
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let mut names: Vec<String> = b["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["name"].as_str().unwrap().to_owned())
                    .collect();
                names.sort();
                names
            })
            .collect();
        let n = shapes.len();
        shapes.sort();
        shapes.dedup();
        assert_eq!(shapes.len(), n, "two command kinds have the same fields");
    }

    #[test]
    fn coupon_matches_its_schema() {
        round_trip(
            topics::COUPONS.def.value_schema,
            &coupons::Coupon {
                code: "TEN".into(),
                name: "Ten percent".into(),
                kind: coupons::CouponKind::Percentage,
                percent: Some("0.10".into()),
                cap: Some(money(50_000)),
                amounts: vec![],
                tiers: vec![coupons::Tier {
                    min_seats: 3,
                    percent: "0.1".into(),
                }],
                referrer_user_id: None,
                scope_internships: vec![],
                scope_categories: vec!["eng".into()],
                valid_from: Some(1),
                valid_until: None,
                min_order: Some(money(100)),
                usage_limit: Some(100),
                per_user_limit: Some(1),
                combinable: true,
                active: true,
                updated_at: 5,
            },
        );
    }

    #[test]
    fn applied_input_matches_its_schema() {
        round_trip(
            topics::CART_APPLIED.def.value_schema,
            &runtime::AppliedInput {
                key: "cart".into(),
                input_id: "c1".into(),
                offset: 7,
                applied_at: 9,
            },
        );
    }

    #[test]
    fn dead_letter_matches_its_schema() {
        round_trip(
            topics::DEAD_LETTERS.def.value_schema,
            &dead_letter::DeadLetter {
                stage: "carts-sink".into(),
                reason: "cannot decode".into(),
                kind: "undecodable".into(),
                source_topic: "cart.snapshots".into(),
                source_partition: 2,
                source_offset: 41,
                key: Some(b"abc".to_vec()),
                value: Some(vec![0, 0, 0, 0, 7, 255]),
                headers: [("correlation-id".to_owned(), "c1".to_owned())].into(),
                correlation_id: Some("c1".into()),
                failed_at: 9,
            },
        );
    }

    #[test]
    fn fx_rate_matches_its_schema() {
        round_trip(
            topics::FX_RATES.def.value_schema,
            &fx::FxRate {
                base: "INR".into(),
                quote: "USD".into(),
                rate: "0.012".into(),
                as_of: 9,
            },
        );
    }

    /// Every order command and a full order snapshot, around `cart`.
    fn order_records_match_their_schemas(cart: &CartSnapshot) {
        use super::order::*;
        let schema = topics::ORDER_COMMANDS.def.value_schema;
        for command in [
            OrderCmd::OpenOrder(OpenOrder {
                cart: cart.clone(),
                success_url: Some("https://shop.example/ok".into()),
                cancel_url: None,
                buyer_email: Some("buyer@example.com".into()),
            }),
            OrderCmd::StartAttempt(StartAttempt {
                reason: "retry".into(),
            }),
            OrderCmd::ExpireAttempt(ExpireAttempt { attempt: 1 }),
            OrderCmd::PaymentSucceeded(PaymentSucceeded {
                method: None,
                attempt: 1,
                gateway: "razorpay".into(),
                payment_ref: "pay_1".into(),
                amount: money(100),
            }),
            OrderCmd::PaymentFailed(PaymentFailed {
                method: None,
                attempt: 2,
                gateway: "stripe".into(),
                failure: "card_declined".into(),
            }),
            OrderCmd::CouponAnswered(CouponAnswered {
                code: "TEN".into(),
                reserved: false,
                refusal_code: Some(2008),
                message: "used up".into(),
                round: 1,
            }),
            OrderCmd::SessionOpened(SessionOpened {
                attempt: 1,
                gateway: "stripe".into(),
                session_id: "cs_test_1".into(),
                checkout_url: Some("https://checkout.example/cs_test_1".into()),
                razorpay_key_id: None,
                expires_at: 99,
                calls: vec![GatewayCall {
                    gateway: "razorpay".into(),
                    outcome: "unavailable".into(),
                    latency_ms: 30,
                    error: Some("503".into()),
                }],
            }),
            OrderCmd::SessionFailed(SessionFailed {
                attempt: 1,
                failure: "every gateway failed".into(),
                timed_out: true,
                calls: vec![],
            }),
            OrderCmd::Reconcile(Reconcile { attempt: 1 }),
            OrderCmd::RequestRefund(RequestRefund {
                reason: "asked by the buyer".into(),
            }),
            OrderCmd::RefundStarted(RefundStarted {
                refund_id: "rfnd_1".into(),
                gateway: "razorpay".into(),
                calls: vec![],
            }),
            OrderCmd::RefundNotStarted(RefundNotStarted {
                failure: "400".into(),
                calls: vec![],
            }),
            OrderCmd::RefundSettled(RefundSettled {
                refund_id: "rfnd_1".into(),
                gateway: "razorpay".into(),
                amount: money(100),
                succeeded: true,
            }),
        ] {
            round_trip(
                schema,
                &OrderCommand {
                    command_id: "c".into(),
                    order_token: "o".into(),
                    issued_at: 5,
                    actor: Some("u".into()),
                    command,
                },
            );
        }
        let order = OrderSnapshot {
            event_id: "e".into(),
            order_token: "o".into(),
            version: 3,
            status: OrderStatus::AwaitingPayment,
            cart_token: cart.cart_token.clone(),
            buyer_user_id: Some("u".into()),
            placed: cart.clone(),
            attempts: vec![PaymentAttempt {
                method: None,
                number: 1,
                payment_token: "p".into(),
                opened_at: 5,
                expires_at: 1_800_005,
                status: AttemptStatus::Open,
                gateway: Some("razorpay".into()),
                payment_ref: None,
                session_id: Some("order_1".into()),
                checkout_url: None,
                razorpay_key_id: Some("rzp_test".into()),
                calls: vec![GatewayCall {
                    gateway: "razorpay".into(),
                    outcome: "ok".into(),
                    latency_ms: 12,
                    error: None,
                }],
                lookups: 1,
                looked_up_at: Some(7),
            }],
            history: vec![Transition {
                seq: 1,
                from_status: None,
                to_status: OrderStatus::Pending,
                reason: "placed".into(),
                actor: "u".into(),
                correlation_id: "corr".into(),
                at: 5,
                refused_code: None,
            }],
            coupons: vec![CouponHold {
                code: "TEN".into(),
                status: HoldStatus::Reserved,
            }],
            rejection: None,
            success_url: None,
            cancel_url: Some("https://shop.example/cancel".into()),
            buyer_email: None,
            late_payment: Some(LatePayment::RefundDue),
            refund: Some(OrderRefund {
                status: RefundState::Pending,
                reason: "late".into(),
                requested_by: "admin".into(),
                requested_at: 6,
                gateway: Some("razorpay".into()),
                refund_id: Some("rfnd_1".into()),
                failure: None,
                calls: vec![],
            }),
            created_at: 5,
            updated_at: 5,
            last_command_id: "c".into(),
        };
        round_trip(topics::ORDER_SNAPSHOTS.def.value_schema, &order);
        round_trip(
            topics::PAYMENT_REQUESTS.def.value_schema,
            &super::payments::PaymentRequest {
                request_id: "r".into(),
                order_token: "o".into(),
                attempt: 1,
                amount: money(59_000),
                description: "Rust backend × 1".into(),
                buyer_user_id: Some("u".into()),
                cart_token: "c".into(),
                success_url: None,
                cancel_url: None,
                expires_at: 1_800_005,
                refund: None,
                look_up: None,
            },
        );
        for (refund, look_up) in [
            (
                Some(super::payments::RefundJob {
                    gateway: "stripe".into(),
                    payment_ref: "pi_1".into(),
                    reason: "r".into(),
                }),
                None,
            ),
            (
                None,
                Some(super::payments::LookUpJob {
                    gateway: "stripe".into(),
                    session_id: "cs_1".into(),
                }),
            ),
        ] {
            round_trip(
                topics::PAYMENT_REQUESTS.def.value_schema,
                &super::payments::PaymentRequest {
                    request_id: "r".into(),
                    order_token: "o".into(),
                    attempt: 1,
                    amount: money(59_000),
                    description: "refund".into(),
                    buyer_user_id: None,
                    cart_token: "c".into(),
                    success_url: None,
                    cancel_url: None,
                    expires_at: 0,
                    refund,
                    look_up,
                },
            );
        }
        round_trip(topics::ORDER_CHANGELOG.def.value_schema, &order);
        round_trip(
            topics::ORDER_EVENTS.def.value_schema,
            &OrderEvent {
                event_id: "e".into(),
                order_token: "o".into(),
                kind: OrderEventKind::Refunded,
                at: 5,
                version: 9,
                buyer_user_id: None,
                total: money(100),
                attempt: 1,
                gateway: Some("stripe".into()),
                payment_ref: Some("pi_1".into()),
                reason: "refunded through stripe (re_1)".into(),
                late_payment: Some("enrolled".into()),
            },
        );
    }

    #[test]
    fn coupon_uses_match_their_schemas() {
        use super::coupons::*;
        for command in [
            CouponCmd::ReserveCoupon(ReserveCoupon {
                user_id: Some("u".into()),
                coupons_version: Some(3),
                round: 2,
            }),
            CouponCmd::CommitCoupon(CommitCoupon {
                payment_ref: "pay_1".into(),
                user_id: Some("u".into()),
            }),
            CouponCmd::ReleaseCoupon(ReleaseCoupon {
                reason: "expired".into(),
            }),
        ] {
            round_trip(
                topics::COUPON_COMMANDS.def.value_schema,
                &CouponCommand {
                    command_id: "c".into(),
                    code: "TEN".into(),
                    order_token: "o".into(),
                    issued_at: 5,
                    command,
                },
            );
        }
        for status in [
            RedemptionStatus::Reserved,
            RedemptionStatus::Committed,
            RedemptionStatus::Released,
        ] {
            let redemption = CouponRedemption {
                event_id: "e".into(),
                code: "TEN".into(),
                order_token: "o".into(),
                user_id: Some("u".into()),
                status,
                at: 5,
                version: 4,
                reserved: 0,
                committed: 1,
                updated_at: 6,
            };
            round_trip(topics::COUPON_REDEMPTIONS.def.value_schema, &redemption);
            round_trip(topics::COUPON_CHANGELOG.def.value_schema, &redemption);
        }
    }

    #[test]
    fn webhook_records_match_their_schemas() {
        use super::webhooks::*;
        round_trip(
            topics::WEBHOOKS_INBOUND.def.value_schema,
            &InboundWebhook {
                gateway: "razorpay".into(),
                event_id: "evt_1".into(),
                kind: "payment.captured".into(),
                received_at: 5,
                body: "{}".into(),
                signature: "abc".into(),
            },
        );
        round_trip(
            topics::WEBHOOK_CHANGELOG.def.value_schema,
            &WebhookLog {
                key: "order_1".into(),
                version: 3,
                event_ids: vec!["evt_1".into()],
            },
        );
        for action in [
            RetryAction::Park(Park {
                command: vec![0, 0, 0, 0, 1, 42],
                reason: "no such order yet".into(),
            }),
            RetryAction::Redeliver(Redeliver { retry: 2 }),
        ] {
            round_trip(
                topics::WEBHOOKS_RETRY.def.value_schema,
                &RetryCommand {
                    id: "r".into(),
                    order_token: "o".into(),
                    command_id: "c".into(),
                    at: 5,
                    action,
                },
            );
        }
        round_trip(
            topics::WEBHOOK_RETRY_CHANGELOG.def.value_schema,
            &RetryBook {
                key: "o".into(),
                version: 3,
                parked: vec![Parked {
                    command_id: "c".into(),
                    command: vec![0, 0, 0, 0, 1, 42],
                    reason: "no such order yet".into(),
                    retries: 1,
                    due_at: 9,
                }],
                tried: vec![Tried {
                    command_id: "c".into(),
                    retries: 1,
                    last_at: 7,
                }],
            },
        );
    }

    #[test]
    fn enrollment_records_match_their_schemas() {
        use super::enrollment::*;
        round_trip(
            topics::ENROLLMENT_COMMANDS.def.value_schema,
            &EnrollmentCommand {
                command_id: "c".into(),
                buyer_key: "u".into(),
                issued_at: 5,
                command: EnrollmentCmd::EnrollOrder(EnrollOrder {
                    order_token: "o".into(),
                    buyer_user_id: Some("u".into()),
                    buyer_email: Some("u@example.com".into()),
                    lines: vec![PaidLine {
                        internship_id: "i".into(),
                        title: "I".into(),
                        quantity: 2,
                    }],
                }),
            },
        );
        round_trip(
            topics::ENROLLMENT_COMMANDS.def.value_schema,
            &EnrollmentCommand {
                command_id: "c".into(),
                buyer_key: "u".into(),
                issued_at: 5,
                command: EnrollmentCmd::RevokeOrder(RevokeOrder {
                    order_token: "o".into(),
                    reason: "refunded".into(),
                }),
            },
        );
        round_trip(
            topics::ENROLLMENT_COMMANDS.def.value_schema,
            &EnrollmentCommand {
                command_id: "c".into(),
                buyer_key: "u".into(),
                issued_at: 5,
                command: EnrollmentCmd::AssignSeats(AssignSeats {
                    order_token: "o".into(),
                    internship_id: "i".into(),
                    emails: vec!["a@x.com".into(), "b@x.com".into()],
                    assigned_by: Some("u".into()),
                }),
            },
        );
        let book = EnrollmentBook {
            buyer_key: "u".into(),
            version: 3,
            buyer_user_id: Some("u".into()),
            orders: vec!["o".into()],
            enrollments: vec![Enrollment {
                enrollment_id: "e".into(),
                order_token: "o".into(),
                internship_id: "i".into(),
                title: "I".into(),
                seats: 1,
                status: EnrollmentStatus::Active,
                access_granted: true,
                progress_percent: 0,
                certificate_eligible: false,
                enrolled_at: 5,
                email: Some("u@example.com".into()),
                seats_assigned: 0,
                seat_of: Some("b".into()),
            }],
            skipped: vec!["j: already enrolled".into()],
            failed: vec![FailedLine {
                order_token: "o".into(),
                internship_id: "k".into(),
                title: "K".into(),
                quantity: 2,
                code: "internship_closed".into(),
                reason: "closed".into(),
                at: 5,
            }],
        };
        round_trip(topics::ENROLLMENT_SNAPSHOTS.def.value_schema, &book);
        round_trip(topics::ENROLLMENT_CHANGELOG.def.value_schema, &book);
        for event in [
            EnrollmentEventKind::EnrollmentCreated(EnrollmentCreated {
                enrollment_id: "e".into(),
                internship_id: "i".into(),
                title: "I".into(),
                seats: 1,
                access_granted: true,
                email: Some("a@x.com".into()),
                seat_of: Some("b".into()),
            }),
            EnrollmentEventKind::EnrollmentFailed(EnrollmentFailed {
                internship_id: "k".into(),
                title: "K".into(),
                quantity: 2,
                code: "internship_closed".into(),
                reason: "closed".into(),
                catalog_version: 7,
            }),
        ] {
            round_trip(
                topics::ENROLLMENT_EVENTS.def.value_schema,
                &EnrollmentEvent {
                    event_id: "ev".into(),
                    buyer_key: "u".into(),
                    buyer_user_id: Some("u".into()),
                    buyer_email: None,
                    order_token: "o".into(),
                    at: 5,
                    event,
                },
            );
        }
        round_trip(
            topics::SUPPORT_CASES.def.value_schema,
            &super::support::SupportCase {
                case_id: "s".into(),
                order_token: "o".into(),
                buyer_key: "u".into(),
                buyer_user_id: Some("u".into()),
                buyer_email: Some("u@example.com".into()),
                kind: "enrollment_failed".into(),
                code: "internship_closed".into(),
                reason: "closed".into(),
                internship_id: Some("k".into()),
                opened_at: 5,
                cause_event_id: "ev".into(),
            },
        );
        invoice_records_round_trip();
        for amount in [
            None,
            Some(WireMoney {
                amount_minor: 4990000,
                currency: "INR".into(),
            }),
        ] {
            round_trip(
                topics::AUDIT_EVENTS.def.value_schema,
                &super::audit::AuditEvent {
                    event_id: "a".into(),
                    at: 5,
                    action: "order.paid".into(),
                    subject_kind: "order".into(),
                    subject_id: "o".into(),
                    subject_version: 3,
                    person: Some("u".into()),
                    actor: "razorpay".into(),
                    reason: "payment captured".into(),
                    correlation_id: "c".into(),
                    amount,
                },
            );
        }
    }

    /// Seat assignment added a command branch, two enrollment fields and
    /// the book's `failed`: a reader with this build's schemas reads what
    /// the schemas before them wrote (BACKWARD), since the topics are a
    /// public contract.
    #[test]
    fn enrollment_schemas_read_what_was_written_before_seats() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let mut book: serde_json::Value =
            serde_json::from_str(topics::ENROLLMENT_SNAPSHOTS.def.value_schema).unwrap();
        let fields = book["fields"].as_array_mut().unwrap();
        fields.retain(|f| f["name"] != "failed");
        let enrollment = fields
            .iter_mut()
            .find(|f| f["name"] == "enrollments")
            .unwrap();
        enrollment["type"]["items"]["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "seats_assigned" && f["name"] != "seat_of");
        let mut command: serde_json::Value =
            serde_json::from_str(topics::ENROLLMENT_COMMANDS.def.value_schema).unwrap();
        let union = command["fields"][3]["type"].as_array_mut().unwrap();
        assert_eq!(union.pop().unwrap()["name"], "AssignSeats", "appended last");
        for (old, topic) in [
            (book, &topics::ENROLLMENT_SNAPSHOTS.def),
            (command, &topics::ENROLLMENT_COMMANDS.def),
        ] {
            let old = Schema::parse_str(&old.to_string()).unwrap();
            let new = Schema::parse_str(topic.value_schema).unwrap();
            SchemaCompatibility::can_read(&old, &new)
                .unwrap_or_else(|e| panic!("{}: {e}", topic.name));
        }
    }

    /// The order schemas embed the cart snapshot's: the same definition,
    /// so the frozen cart cannot drift from the cart topic's contract.
    #[test]
    fn order_schemas_embed_the_cart_snapshot_schema() {
        let cart: serde_json::Value =
            serde_json::from_str(topics::CART_SNAPSHOTS.def.value_schema).unwrap();
        let snap: serde_json::Value =
            serde_json::from_str(topics::ORDER_SNAPSHOTS.def.value_schema).unwrap();
        let placed = snap["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "placed")
            .unwrap();
        assert_eq!(placed["type"], cart);
        let cmd: serde_json::Value =
            serde_json::from_str(topics::ORDER_COMMANDS.def.value_schema).unwrap();
        let open = &cmd["fields"][4]["type"][0];
        assert_eq!(open["name"], "OpenOrder");
        assert_eq!(open["fields"][0]["type"], cart);
    }

    /// A record written before the breakdown fields existed is read with
    /// their defaults: the new schema is BACKWARD compatible.
    #[test]
    fn old_snapshots_are_read_with_defaults() {
        let old_schema = r#"{"type":"record","name":"CartSnapshot","namespace":"internhub.cart","fields":[
            {"name":"cart_token","type":"string"},{"name":"version","type":"long"}]}"#;
        let old = Schema::parse_str(old_schema).unwrap();
        let new = Schema::parse_str(topics::CART_SNAPSHOTS.def.value_schema).unwrap();
        assert!(
            apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, &new).is_err(),
            "sanity: required fields without defaults are not readable"
        );
        let previous = Schema::parse_str(PREVIOUS_SNAPSHOT).unwrap();
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&previous, &new).expect(
            "the snapshot schema stays BACKWARD compatible with the one before the breakdown",
        );
    }

    /// The snapshot schema as first published (before owner and breakdown).
    const PREVIOUS_SNAPSHOT: &str = r#"{"type":"record","name":"CartSnapshot","namespace":"internhub.cart","fields":[
        {"name":"event_id","type":"string"},{"name":"cart_token","type":"string"},{"name":"version","type":"long"},
        {"name":"status","type":{"type":"enum","name":"CartStatus","symbols":["ACTIVE","CONVERTED","EXPIRED","MERGED"],"default":"ACTIVE"}},
        {"name":"currency","type":"string"},
        {"name":"lines","type":{"type":"array","items":{"type":"record","name":"CartLine","fields":[
            {"name":"internship_id","type":"string"},{"name":"title","type":"string"},{"name":"quantity","type":"int"},
            {"name":"unit_price","type":{"type":"record","name":"Money","namespace":"internhub.money","fields":[
                {"name":"amount_minor","type":"long"},{"name":"currency","type":"string"}]}},
            {"name":"line_total","type":"internhub.money.Money"}]}}},
        {"name":"subtotal","type":"internhub.money.Money"},{"name":"total","type":"internhub.money.Money"},
        {"name":"created_at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"updated_at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"last_command_id","type":"string"},
        {"name":"rejection","type":["null",{"type":"record","name":"CommandRejection","fields":[
            {"name":"command_id","type":"string"},{"name":"code","type":"int"},{"name":"message","type":"string"}]}],"default":null}]}"#;

    #[test]
    fn cart_snapshot_matches_its_schema() {
        let line = CartLine {
            internship_id: "a".into(),
            title: "A".into(),
            quantity: 2,
            unit_price: money(100),
            line_total: money(200),
            base_unit_price: money(100),
            line_subtotal: money(200),
            line_discount: money(0),
            tax_class: "standard".into(),
            available: true,
            plan: Some(ChosenPlan {
                plan_id: "p".into(),
                value: 6,
                unit: "month".into(),
            }),
            category: "eng".into(),
        };
        let mut snap = CartSnapshot {
            event_id: "e".into(),
            cart_token: "t".into(),
            version: 42,
            status: CartStatus::Active,
            currency: "INR".into(),
            lines: vec![line],
            subtotal: money(200),
            total: money(200),
            created_at: 1,
            updated_at: 2,
            last_command_id: "c".into(),
            rejection: None,
            owner_user_id: None,
            discount_total: money(0),
            tax_total: money(36),
            taxes: vec![TaxLine {
                name: "IGST".into(),
                rate: "0.18".into(),
                amount: money(36),
            }],
            tax_inclusive: false,
            buyer: Some(BuyerDetails {
                country: "IN".into(),
                state: Some("MH".into()),
                gstin: None,
            }),
            fx: Some(FxQuote {
                base: "INR".into(),
                quote: "INR".into(),
                rate: "1".into(),
                as_of: 3,
            }),
            share_token: Some("s".into()),
            device_id: None,
            analytics: [("utm_source".to_owned(), "newsletter".to_owned())].into(),
            merged_into: None,
            coupons: vec!["TEN".into()],
            discounts: vec![AppliedDiscount {
                code: "TEN".into(),
                name: "ten".into(),
                amount: money(20),
            }],
            priced_with: Some(cart::PricedWith {
                catalog: 12,
                fx_rates: 3,
                coupons: 0,
            }),
            order_token: Some("o".into()),
            placements: 1,
            refused_coupons: vec![cart::RefusedCoupon {
                code: "LIMIT1".into(),
                reason: "has reached its usage limit".into(),
            }],
        };
        round_trip(topics::CART_SNAPSHOTS.def.value_schema, &snap);
        order_records_match_their_schemas(&snap);
        snap.rejection = Some(CommandRejection {
            command_id: "c".into(),
            code: 1003,
            message: "no".into(),
        });
        snap.status = CartStatus::Merged;
        round_trip(topics::CART_CHANGELOG.def.value_schema, &snap);
    }

    fn invoice_records_round_trip() {
        use super::invoices::*;
        let inr = |minor| WireMoney {
            amount_minor: minor,
            currency: "INR".into(),
        };
        let tax = TaxAmount {
            name: "IGST".into(),
            rate: "0.18".into(),
            amount: inr(900),
        };
        let fx = Some(FxNote {
            base: "INR".into(),
            quote: "USD".into(),
            rate: "0.012".into(),
            as_of: 3,
        });
        for kind in [DocumentKind::TaxInvoice, DocumentKind::CreditNote] {
            round_trip(
                topics::INVOICE_REQUESTS.def.value_schema,
                &InvoiceRequest {
                    request_id: "r".into(),
                    order_token: "o".into(),
                    kind,
                    at: 5,
                    buyer_user_id: Some("u_1".into()),
                    buyer_gstin: Some("pii1.k.n.c".into()),
                    buyer_country: "IN".into(),
                    buyer_state: Some("MH".into()),
                    currency: "INR".into(),
                    tax_inclusive: false,
                    lines: vec![RequestLine {
                        internship_id: "i".into(),
                        title: "I".into(),
                        quantity: 2,
                        unit_price: inr(2500),
                        discount: inr(0),
                        amount: inr(5000),
                        tax_class: "standard".into(),
                    }],
                    taxes: vec![tax.clone()],
                    subtotal: inr(5000),
                    discount_total: inr(0),
                    tax_total: inr(900),
                    total: inr(5900),
                    fx: fx.clone(),
                    gateway: Some("razorpay".into()),
                    payment_ref: Some("pay_1".into()),
                    refund_id: None,
                    reason: Some("asked".into()),
                },
            );
        }
        let document = InvoiceDocument {
            event_id: "e".into(),
            kind: DocumentKind::CreditNote,
            number: "CN/26-27/000001".into(),
            series: "CN/26-27".into(),
            sequence: 1,
            financial_year: "2026-27".into(),
            issued_at: 7,
            order_token: "o".into(),
            request_id: "r".into(),
            version: 4,
            against_number: Some("INV/26-27/000001".into()),
            against_issued_at: Some(6),
            supplier: Supplier {
                name: "S".into(),
                gstin: "29AAAAA0000A1Z5".into(),
                address: "A".into(),
                state: "Karnataka".into(),
                state_code: "29".into(),
            },
            buyer: DocumentBuyer {
                user_id: None,
                gstin: None,
                country: "IN".into(),
                state: Some("MH".into()),
            },
            place_of_supply: "Maharashtra (27)".into(),
            supply: Supply::InterState,
            currency: "INR".into(),
            tax_inclusive: false,
            lines: vec![DocumentLine {
                number: 1,
                internship_id: "i".into(),
                description: "I".into(),
                sac: "999293".into(),
                quantity: 2,
                unit_price: inr(2500),
                discount: inr(0),
                taxable_value: inr(5000),
                taxes: vec![tax.clone()],
                total: inr(5900),
            }],
            taxes: vec![tax],
            taxable_total: inr(5000),
            tax_total: inr(900),
            total: inr(5900),
            total_in_words: "Indian Rupees Fifty Nine Only".into(),
            fx,
            gateway: None,
            payment_ref: None,
            refund_id: Some("rfnd_1".into()),
            notes: vec!["n".into()],
        };
        round_trip(topics::INVOICE_DOCUMENTS.def.value_schema, &document);
        round_trip(topics::INVOICE_CHANGELOG.def.value_schema, &document);
    }
}
