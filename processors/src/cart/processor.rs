//! The adapter between the cart rules and the runner: decodes the wire
//! records into the rules' types, and turns decisions into the snapshot
//! output and the changelog state.

use std::sync::Arc;

use futures::future::BoxFuture;

use schemas::records::cart::{CartCommand, CartLine, CartSnapshot, CommandRejection};
use schemas::records::WireMoney;
use schemas::topics::{CART_CHANGELOG, CART_COMMANDS, CART_SNAPSHOTS};
use schemas::{ids, Codec, CodecError, Currency, MoneyError, Topic};

use super::pricing::{PricedLine, Totals};
use super::rules::{self, Cart, Decision, Rejection, Stamp};
use crate::runner::{encode_for, Emit, Encoded, Input, Outcome, Processor};
use crate::tables::catalog::CatalogLookup;

pub struct CartProcessor<C> {
    catalog: Arc<C>,
}

impl<C> CartProcessor<C> {
    pub fn new(catalog: Arc<C>) -> CartProcessor<C> {
        CartProcessor { catalog }
    }
}

pub enum CartOutput {
    Snapshot(CartSnapshot),
}

impl Emit for CartOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            CartOutput::Snapshot(s) => {
                Box::pin(encode_for(codec, &CART_SNAPSHOTS, &s.cart_token, s))
            }
        }
    }
}

impl<C: CatalogLookup + Send + Sync + 'static> Processor for CartProcessor<C> {
    type Input = CartCommand;
    type State = CartSnapshot;
    type Output = CartOutput;

    const NAME: &'static str = "cart-processor";

    fn input_topic(&self) -> &'static Topic<CartCommand> {
        &CART_COMMANDS
    }

    fn changelog_topic(&self) -> &'static Topic<CartSnapshot> {
        &CART_CHANGELOG
    }

    fn applied_offset(state: &CartSnapshot) -> i64 {
        state.version
    }

    fn apply(
        &self,
        state: Option<&CartSnapshot>,
        input: &Input<CartCommand>,
    ) -> Outcome<CartSnapshot, CartOutput> {
        let cart = match state.map(from_record).transpose() {
            Ok(c) => c,
            Err(e) => {
                // Only a bug writes an unreadable state; leave it untouched
                // and say so loudly rather than guess.
                tracing::error!(error = %e, "cart state unreadable; command not applied");
                return Outcome::nothing();
            }
        };
        let cmd = &input.value;
        let stamp = Stamp {
            command_id: &cmd.command_id,
            offset: input.offset,
            at_ms: cmd.issued_at,
        };
        match rules::decide(
            cart.as_ref(),
            &input.key,
            &cmd.command,
            &stamp,
            &*self.catalog,
        ) {
            Decision::Cart(next) => match to_record(&next) {
                Ok(snapshot) => Outcome {
                    state: Some(snapshot.clone()),
                    outputs: vec![CartOutput::Snapshot(snapshot)],
                },
                Err(e) => {
                    tracing::error!(error = %e, "cart not representable on the wire; command not applied");
                    Outcome::nothing()
                }
            },
            Decision::Dropped(r) => {
                tracing::warn!(code = r.code.code(), message = %r.message, "command dropped");
                Outcome::nothing()
            }
        }
    }
}

fn wire(m: &schemas::Money) -> Result<WireMoney, MoneyError> {
    WireMoney::try_from(m)
}

pub fn to_record(cart: &Cart) -> Result<CartSnapshot, MoneyError> {
    let lines = cart
        .lines
        .iter()
        .map(|l| {
            Ok(CartLine {
                internship_id: l.internship_id.clone(),
                title: l.title.clone(),
                quantity: l.quantity as i32,
                unit_price: wire(&l.unit_price)?,
                line_total: wire(&l.line_total)?,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    Ok(CartSnapshot {
        event_id: ids::derived("cart-snapshot", &cart.token, cart.version).to_string(),
        cart_token: cart.token.clone(),
        version: cart.version,
        status: cart.status,
        currency: cart.currency.code().to_owned(),
        lines,
        subtotal: wire(&cart.totals.subtotal)?,
        total: wire(&cart.totals.total)?,
        created_at: cart.created_at,
        updated_at: cart.updated_at,
        last_command_id: cart.last_command_id.clone(),
        rejection: cart.rejection.as_ref().map(|r| CommandRejection {
            command_id: r.command_id.clone(),
            code: r.code.code(),
            message: r.message.clone(),
        }),
        owner_user_id: cart.owner.clone(),
    })
}

pub fn from_record(s: &CartSnapshot) -> Result<Cart, MoneyError> {
    let lines = s
        .lines
        .iter()
        .map(|l| {
            Ok(PricedLine {
                internship_id: l.internship_id.clone(),
                title: l.title.clone(),
                quantity: u32::try_from(l.quantity).map_err(|_| MoneyError::Overflow)?,
                unit_price: l.unit_price.to_money()?,
                line_total: l.line_total.to_money()?,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    Ok(Cart {
        token: s.cart_token.clone(),
        version: s.version,
        status: s.status,
        currency: Currency::parse(&s.currency)?,
        lines,
        totals: Totals {
            subtotal: s.subtotal.to_money()?,
            total: s.total.to_money()?,
        },
        created_at: s.created_at,
        updated_at: s.updated_at,
        last_command_id: s.last_command_id.clone(),
        // The rejection is about the command at this version only; it is
        // kept so a replayed snapshot is identical.
        rejection: s.rejection.as_ref().and_then(|r| {
            schemas::codes::ErrorCode::from_code(r.code).map(|code| Rejection {
                command_id: r.command_id.clone(),
                code,
                message: r.message.clone(),
            })
        }),
        owner: s.owner_user_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::cart::{AddItem, Command, CreateCart, ItemRequest};
    use schemas::records::catalog::Internship;
    use std::collections::HashMap;

    fn processor() -> CartProcessor<HashMap<String, Internship>> {
        let item = Internship {
            internship_id: "rust".into(),
            title: "Rust".into(),
            category: "eng".into(),
            base_price: WireMoney {
                amount_minor: 49_900,
                currency: "INR".into(),
            },
            tax_class: "standard".into(),
            active: true,
            updated_at: 0,
        };
        CartProcessor::new(Arc::new(HashMap::from([("rust".to_owned(), item)])))
    }

    fn input(offset: i64, command: Command) -> Input<CartCommand> {
        Input {
            key: "t".into(),
            value: CartCommand {
                command_id: format!("c{offset}"),
                cart_token: "t".into(),
                issued_at: 7,
                command,
            },
            partition: 0,
            offset,
            correlation_id: "corr".into(),
        }
    }

    #[test]
    fn replaying_an_input_gives_identical_outputs_and_ids() {
        let p = processor();
        let create = input(
            3,
            Command::CreateCart(CreateCart {
                currency: "INR".into(),
                owner_user_id: None,
                items: vec![ItemRequest {
                    internship_id: "rust".into(),
                    quantity: 1,
                }],
            }),
        );
        let a = p.apply(None, &create);
        let b = p.apply(None, &create);
        assert_eq!(a.state, b.state);
        let (CartOutput::Snapshot(sa), CartOutput::Snapshot(sb)) = (&a.outputs[0], &b.outputs[0]);
        assert_eq!(sa.event_id, sb.event_id);
        assert_eq!(sa.version, 3);
        assert_eq!(
            CartProcessor::<HashMap<String, Internship>>::applied_offset(sa),
            3
        );
    }

    #[test]
    fn state_round_trips_through_the_wire_record() {
        let p = processor();
        let s = p
            .apply(
                None,
                &input(
                    1,
                    Command::CreateCart(CreateCart {
                        currency: "INR".into(),
                        owner_user_id: None,
                        items: vec![],
                    }),
                ),
            )
            .state
            .unwrap();
        let s = p
            .apply(
                Some(&s),
                &input(
                    2,
                    Command::AddItem(AddItem {
                        internship_id: "nope".into(),
                        quantity: 1,
                        actor_user_id: None,
                    }),
                ),
            )
            .state
            .unwrap();
        let back = to_record(&from_record(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.rejection.as_ref().map(|r| r.code), Some(1003));
    }

    #[test]
    fn a_command_for_a_missing_cart_changes_nothing() {
        let o = processor().apply(
            None,
            &input(
                1,
                Command::AddItem(AddItem {
                    internship_id: "rust".into(),
                    quantity: 1,
                    actor_user_id: None,
                }),
            ),
        );
        assert!(o.state.is_none() && o.outputs.is_empty());
    }
}
