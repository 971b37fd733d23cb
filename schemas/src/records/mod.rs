//! Rust mirrors of the Avro records in `schemas/avro/`.
//!
//! These are wire types: plain fields, strings for ids, minor units for
//! money, so that they serialize exactly as the `.avsc` files say. The
//! tests at the bottom encode every record with its schema and decode it
//! back, so a field added on one side only fails the build's tests. Domain
//! code converts them to the validated types of [`crate::values`] and
//! [`crate::money`] at its edge.

pub mod cart;
pub mod catalog;

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
            Schema::parse_str(t.key_schema).unwrap_or_else(|e| panic!("{} key: {e}", t.name));
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
                items: vec![ItemRequest {
                    internship_id: "a".into(),
                    quantity: 2,
                }],
            }),
        };
        round_trip(topics::CART_COMMANDS.def.value_schema, &create);
        let add = CartCommand {
            command: Command::AddItem(AddItem {
                internship_id: "b".into(),
                quantity: 3,
                actor_user_id: None,
            }),
            ..create
        };
        round_trip(topics::CART_COMMANDS.def.value_schema, &add);
    }

    #[test]
    fn cart_snapshot_matches_its_schema() {
        let line = CartLine {
            internship_id: "a".into(),
            title: "A".into(),
            quantity: 2,
            unit_price: money(100),
            line_total: money(200),
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
        };
        round_trip(topics::CART_SNAPSHOTS.def.value_schema, &snap);
        snap.rejection = Some(CommandRejection {
            command_id: "c".into(),
            code: 1003,
            message: "no".into(),
        });
        snap.status = CartStatus::Merged;
        round_trip(topics::CART_CHANGELOG.def.value_schema, &snap);
    }
}
