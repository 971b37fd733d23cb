//! The adapter between the cart rules and the runner: decodes the wire
//! records into the rules' types, and turns decisions into the snapshot
//! output and the changelog state.

use std::sync::Arc;

use futures::future::BoxFuture;
use rust_decimal::Decimal;

use schemas::codes::ErrorCode;
use schemas::records::cart::{
    AbsorbItems, BuyerDetails, CartCommand, CartLine, CartSnapshot, CartStatus, ChosenPlan,
    Command, CommandRejection, ExpireCart, FxQuote, ItemRequest, PricedWith, TaxLine,
};
use schemas::records::order::{OpenOrder, OrderCmd, OrderCommand};
use schemas::records::WireMoney;
use schemas::topics::{CART_CHANGELOG, CART_COMMANDS, CART_SNAPSHOTS, ORDER_COMMANDS};
use schemas::{ids, Codec, CodecError, Currency, Money, MoneyError, Topic};

use crate::runner::{encode_for, whole_state, Emit, Encoded, Input, Outcome, Processor};
use rules::cart::{BuyerInfo, Cart, Context, Decision, Item, Plan, Rejection, Stamp};
use rules::coupons;
use rules::pricing::{self, Breakdown, Fx, PricedLine, PricingPolicy, TaxClass};
use rules::tables::{At, Table};
use schemas::records::catalog::Internship;
use schemas::records::coupons::Coupon as CouponRecord;
use schemas::records::fx::FxRate;

/// A day: carts idle this long expire.
pub const DEFAULT_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// How long a command waits for each table version it was stamped with
/// before its batch is aborted and read again: three tables, well inside
/// the transaction's timeout (15 s), which is open meanwhile.
const TABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

pub struct CartProcessor<C, R, K> {
    /// Set after construction with [`CartProcessor::with_limits`].
    limits: rules::cart::CartLimits,
    catalog: Arc<C>,
    rates: Arc<R>,
    coupons: Arc<K>,
    policy: PricingPolicy,
    ttl_ms: i64,
}

impl<C, R, K> CartProcessor<C, R, K> {
    pub fn new(
        catalog: Arc<C>,
        rates: Arc<R>,
        coupons: Arc<K>,
        policy: PricingPolicy,
        ttl_ms: i64,
    ) -> CartProcessor<C, R, K> {
        CartProcessor {
            limits: rules::cart::CartLimits::default(),
            catalog,
            rates,
            coupons,
            policy,
            ttl_ms,
        }
    }

    pub fn with_limits(self, limits: rules::cart::CartLimits) -> Self {
        CartProcessor { limits, ..self }
    }
}

pub enum CartOutput {
    Snapshot(CartSnapshot),
    /// A command for a cart, back onto `cart.commands`: the items of a
    /// merged cart for the cart that takes them, or the expiry timer's.
    Command(CartCommand),
    /// The order a checked-out cart opens, onto `order.commands`.
    Order(OrderCommand),
}

impl Emit for CartOutput {
    fn encode<'a>(&'a self, codec: &'a Codec) -> BoxFuture<'a, Result<Encoded, CodecError>> {
        match self {
            CartOutput::Snapshot(s) => {
                Box::pin(encode_for(codec, &CART_SNAPSHOTS, &s.cart_token, s))
            }
            CartOutput::Command(c) => Box::pin(encode_for(codec, &CART_COMMANDS, &c.cart_token, c)),
            CartOutput::Order(o) => Box::pin(encode_for(codec, &ORDER_COMMANDS, &o.order_token, o)),
        }
    }
}

whole_state!(CartSnapshot);

impl<C, R, K> Processor for CartProcessor<C, R, K>
where
    C: Table<Internship> + 'static,
    R: Table<FxRate> + 'static,
    K: Table<CouponRecord> + 'static,
{
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

    fn applied_topic(&self) -> &'static Topic<schemas::records::runtime::AppliedInput> {
        &schemas::topics::CART_APPLIED
    }

    fn input_id(input: &CartCommand) -> &str {
        &input.command_id
    }

    /// A command stamped with table versions waits until this instance's
    /// tables have read them (normally at once: the ingress stamps what the
    /// broker already holds). Never priced from an older table.
    fn ready<'a>(&'a self, input: &'a Input<CartCommand>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(at) = &input.value.tables_at else {
                return Ok(());
            };
            self.catalog.reached(at.catalog, TABLE_WAIT).await?;
            self.rates.reached(at.fx_rates, TABLE_WAIT).await?;
            self.coupons.reached(at.coupons, TABLE_WAIT).await
        })
    }

    /// The cart as it is, at the duplicate's version: a client that wrote
    /// the same command twice (a retry with the same Idempotency-Key) and
    /// waits for the second write's version sees the cart the first one
    /// made, without the command applied twice.
    fn duplicate(
        &self,
        state: &CartSnapshot,
        input: &Input<CartCommand>,
    ) -> Outcome<CartSnapshot, CartOutput> {
        let mut next = state.clone();
        next.version = input.offset;
        next.event_id = ids::derived("cart-snapshot", &input.key, input.offset).to_string();
        Outcome {
            state: Some(next.clone()),
            outputs: vec![CartOutput::Snapshot(next)],
        }
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
        // One version per table for the whole decision: the one stamped on
        // the command (so a replay reads what the first run read), else the
        // newest read, resolved once before deciding.
        let at = cmd.tables_at.clone().unwrap_or_else(|| PricedWith {
            catalog: self.catalog.version(),
            fx_rates: self.rates.version(),
            coupons: self.coupons.version(),
        });
        let (catalog, rates, coupons) = (
            At::new(&*self.catalog, at.catalog),
            At::new(&*self.rates, at.fx_rates),
            At::new(&*self.coupons, at.coupons),
        );
        let ctx = Context {
            limits: self.limits,
            coupons: &coupons,
            max_coupons: rules::coupons::MAX_PER_CART,
            ttl_ms: self.ttl_ms,
            catalog: &catalog,
            rates: &rates,
            policy: &self.policy,
        };
        let priced_with = at;
        let to_record = |cart: &Cart| {
            to_record(cart).map(|mut s| {
                s.priced_with = Some(priced_with.clone());
                s
            })
        };
        match rules::cart::decide(cart.as_ref(), &input.key, &cmd.command, &stamp, &ctx) {
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
            Decision::Merged {
                cart,
                target,
                items,
                user_id,
            } => match to_record(&cart) {
                Ok(snapshot) => {
                    // The id is derived from the merge, so a replay sends
                    // the same command and the target applies it once.
                    let absorb = CartCommand {
                        command_id: ids::derived("cart-absorb", &input.key, input.offset)
                            .to_string(),
                        cart_token: target,
                        issued_at: cmd.issued_at,
                        // Priced where the merge was: a replay of either
                        // command prices the same.
                        tables_at: Some(priced_with.clone()),
                        command: Command::AbsorbItems(AbsorbItems {
                            source_cart_token: input.key.clone(),
                            items: items
                                .into_iter()
                                .map(|(internship_id, quantity)| ItemRequest {
                                    internship_id,
                                    quantity,
                                })
                                .collect(),
                            user_id,
                        }),
                    };
                    Outcome {
                        state: Some(snapshot.clone()),
                        outputs: vec![CartOutput::Snapshot(snapshot), CartOutput::Command(absorb)],
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cart not representable on the wire; command not applied");
                    Outcome::nothing()
                }
            },
            Decision::Ordered {
                cart,
                order_token,
                success_url,
                cancel_url,
                buyer_email,
            } => match to_record(&cart) {
                Ok(snapshot) => {
                    // The id is derived from the placement, so a replay
                    // sends the same command and the order opens once.
                    let open = OrderCommand {
                        command_id: ids::derived("order-open", &input.key, input.offset)
                            .to_string(),
                        order_token,
                        issued_at: cmd.issued_at,
                        actor: cmd.command.actor().map(str::to_owned),
                        command: OrderCmd::OpenOrder(OpenOrder {
                            cart: snapshot.clone(),
                            success_url,
                            cancel_url,
                            buyer_email,
                        }),
                    };
                    Outcome {
                        state: Some(snapshot.clone()),
                        outputs: vec![CartOutput::Snapshot(snapshot), CartOutput::Order(open)],
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cart not representable on the wire; command not applied");
                    Outcome::nothing()
                }
            },
            Decision::Dropped(r) => {
                tracing::warn!(code = r.code.code(), message = %r.message, "command dropped");
                Outcome::nothing()
            }
            Decision::Unchanged => Outcome::nothing(),
        }
    }

    fn timers(
        &self,
        now_ms: i64,
        states: &std::collections::HashMap<String, CartSnapshot>,
    ) -> Vec<CartOutput> {
        states
            .values()
            .filter(|s| {
                s.status == CartStatus::Active && s.updated_at.saturating_add(self.ttl_ms) <= now_ms
            })
            .map(|s| {
                CartOutput::Command(CartCommand {
                    // One id per cart version: every tick until the cart
                    // moves asks for the same expiry.
                    command_id: ids::derived("cart-expire", &s.cart_token, s.version).to_string(),
                    cart_token: s.cart_token.clone(),
                    issued_at: now_ms,
                    command: Command::ExpireCart(ExpireCart {
                        ttl_ms: self.ttl_ms,
                    }),
                    // Derived from the state, like the id: every tick asks
                    // for the same expiry, priced where the cart last was.
                    tables_at: s.priced_with.clone(),
                })
            })
            .collect()
    }
}

fn wire(m: &Money) -> Result<WireMoney, MoneyError> {
    WireMoney::try_from(m)
}

pub fn to_record(cart: &Cart) -> Result<CartSnapshot, MoneyError> {
    let b = &cart.breakdown;
    let lines = cart
        .items
        .iter()
        .zip(&b.lines)
        .map(|(item, l)| {
            Ok(CartLine {
                internship_id: l.internship_id.clone(),
                title: l.title.clone(),
                quantity: l.quantity as i32,
                unit_price: wire(&l.unit_price)?,
                line_total: wire(&l.line_total)?,
                base_unit_price: wire(&item.base_unit_price)?,
                line_subtotal: wire(&l.line_subtotal)?,
                line_discount: wire(&l.line_discount)?,
                tax_class: l.tax_class.as_str().to_owned(),
                available: item.available,
                plan: item.plan.as_ref().map(|p| ChosenPlan {
                    plan_id: p.plan_id.clone(),
                    value: p.value,
                    unit: p.unit.clone(),
                }),
                category: item.category.clone(),
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    let taxes = b
        .taxes
        .iter()
        .map(|t| {
            Ok(TaxLine {
                name: t.name.clone(),
                rate: t.rate.normalize().to_string(),
                amount: wire(&t.amount)?,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    Ok(CartSnapshot {
        event_id: ids::derived("cart-snapshot", &cart.token, cart.version).to_string(),
        cart_token: cart.token.clone(),
        version: cart.version,
        status: cart.status,
        currency: b.currency.code().to_owned(),
        lines,
        subtotal: wire(&b.subtotal)?,
        total: wire(&b.total)?,
        created_at: cart.created_at,
        updated_at: cart.updated_at,
        last_command_id: cart.last_command_id.clone(),
        rejection: cart.rejection.as_ref().map(|r| CommandRejection {
            command_id: r.command_id.clone(),
            code: r.code.code(),
            message: r.message.clone(),
        }),
        owner_user_id: cart.owner.clone(),
        discount_total: wire(&b.discount_total)?,
        tax_total: wire(&b.tax_total)?,
        taxes,
        tax_inclusive: b.tax_inclusive,
        buyer: cart.buyer.as_ref().map(|b| BuyerDetails {
            country: b.country.clone(),
            state: b.state.clone(),
            gstin: b.gstin.clone(),
        }),
        fx: cart.fx.as_ref().map(|f| FxQuote {
            base: "INR".into(),
            quote: f.currency.code().to_owned(),
            rate: f.rate.normalize().to_string(),
            as_of: f.as_of_ms,
        }),
        share_token: cart.share_token.clone(),
        device_id: cart.device_id.clone(),
        analytics: cart.analytics.clone(),
        merged_into: cart.merged_into.clone(),
        coupons: cart.coupons.clone(),
        discounts: b
            .discounts
            .iter()
            .map(|d| {
                Ok(schemas::records::cart::AppliedDiscount {
                    code: d.code.clone(),
                    name: d.name.clone(),
                    amount: wire(&d.amount)?,
                })
            })
            .collect::<Result<_, MoneyError>>()?,
        // Set by the processor, which knows its tables' versions.
        priced_with: None,
        order_token: cart.order_token.clone(),
        placements: cart.placements,
        refused_coupons: cart.refused_coupons.clone(),
    })
}

pub fn from_record(s: &CartSnapshot) -> Result<Cart, MoneyError> {
    let mut items = Vec::with_capacity(s.lines.len());
    let mut lines = Vec::with_capacity(s.lines.len());
    for l in &s.lines {
        let quantity = u32::try_from(l.quantity).map_err(|_| MoneyError::Overflow)?;
        let tax_class = TaxClass::parse(&l.tax_class);
        items.push(Item {
            internship_id: l.internship_id.clone(),
            title: l.title.clone(),
            category: l.category.clone(),
            quantity,
            base_unit_price: l.base_unit_price.to_money()?,
            tax_class,
            available: l.available,
            plan: l.plan.as_ref().map(|p| Plan {
                plan_id: p.plan_id.clone(),
                value: p.value,
                unit: p.unit.clone(),
            }),
        });
        lines.push(PricedLine {
            internship_id: l.internship_id.clone(),
            title: l.title.clone(),
            quantity,
            unit_price: l.unit_price.to_money()?,
            line_subtotal: l.line_subtotal.to_money()?,
            line_discount: l.line_discount.to_money()?,
            line_total: l.line_total.to_money()?,
            tax_class,
        });
    }
    let currency = Currency::parse(&s.currency)?;
    let taxes = s
        .taxes
        .iter()
        .map(|t| {
            Ok(pricing::TaxLine {
                name: t.name.clone(),
                rate: t
                    .rate
                    .parse::<Decimal>()
                    .map_err(|_| MoneyError::Overflow)?,
                amount: t.amount.to_money()?,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()?;
    let fx = match &s.fx {
        None => None,
        Some(q) => Some(Fx {
            currency: Currency::parse(&q.quote)?,
            rate: q
                .rate
                .parse::<Decimal>()
                .map_err(|_| MoneyError::Overflow)?,
            as_of_ms: q.as_of,
        }),
    };
    Ok(Cart {
        token: s.cart_token.clone(),
        version: s.version,
        status: s.status,
        owner: s.owner_user_id.clone(),
        items,
        buyer: s.buyer.as_ref().map(|b| BuyerInfo {
            country: b.country.clone(),
            state: b.state.clone(),
            gstin: b.gstin.clone(),
        }),
        display_currency: currency,
        fx,
        breakdown: Breakdown {
            currency,
            lines,
            taxes,
            subtotal: s.subtotal.to_money()?,
            discount_total: s.discount_total.to_money()?,
            tax_total: s.tax_total.to_money()?,
            total: s.total.to_money()?,
            tax_inclusive: s.tax_inclusive,
            discounts: s
                .discounts
                .iter()
                .map(|d| {
                    Ok(coupons::AppliedDiscount {
                        code: d.code.clone(),
                        name: d.name.clone(),
                        amount: d.amount.to_money()?,
                    })
                })
                .collect::<Result<_, MoneyError>>()?,
        },
        created_at: s.created_at,
        updated_at: s.updated_at,
        last_command_id: s.last_command_id.clone(),
        share_token: s.share_token.clone(),
        device_id: s.device_id.clone(),
        analytics: s.analytics.clone(),
        merged_into: s.merged_into.clone(),
        coupons: s.coupons.clone(),
        order_token: s.order_token.clone(),
        placements: s.placements,
        refused_coupons: s.refused_coupons.clone(),
        // The rejection is about the command at this version only; it is
        // kept so a replayed snapshot is identical.
        rejection: s.rejection.as_ref().and_then(|r| {
            ErrorCode::from_code(r.code).map(|code| Rejection {
                command_id: r.command_id.clone(),
                code,
                message: r.message.clone(),
            })
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::records::cart::{AddItem, CreateCart, SetBuyer};
    use schemas::records::catalog::Internship;
    use schemas::records::fx::FxRate;
    use std::collections::HashMap;

    type Proc = CartProcessor<
        HashMap<String, Internship>,
        HashMap<String, FxRate>,
        HashMap<String, schemas::records::coupons::Coupon>,
    >;

    fn rust_at(amount_minor: i64) -> Internship {
        Internship {
            internship_id: "rust".into(),
            title: "Rust".into(),
            category: "eng".into(),
            base_price: WireMoney {
                amount_minor,
                currency: "INR".into(),
            },
            tax_class: "standard".into(),
            active: true,
            updated_at: 0,
            billing_periods: vec![],
        }
    }

    fn processor() -> Proc {
        let item = rust_at(49_900);
        let usd = FxRate {
            base: "INR".into(),
            quote: "USD".into(),
            rate: "0.012".into(),
            as_of: 5,
        };
        CartProcessor::new(
            Arc::new(HashMap::from([("rust".to_owned(), item)])),
            Arc::new(HashMap::from([("USD".to_owned(), usd)])),
            Arc::new(HashMap::new()),
            PricingPolicy::default(),
            DEFAULT_TTL_MS,
        )
    }

    fn input(offset: i64, command: Command) -> Input<CartCommand> {
        Input {
            key: "t".into(),
            value: CartCommand {
                command_id: format!("c{offset}"),
                cart_token: "t".into(),
                issued_at: 7,
                command,
                tables_at: None,
            },
            partition: 0,
            offset,
            correlation_id: "corr".into(),
        }
    }

    fn create() -> Command {
        Command::CreateCart(CreateCart {
            currency: "INR".into(),
            owner_user_id: None,
            items: vec![ItemRequest {
                internship_id: "rust".into(),
                quantity: 1,
            }],
            device_id: None,
        })
    }

    #[test]
    fn replaying_an_input_gives_identical_outputs_and_ids() {
        let p = processor();
        let a = p.apply(None, &input(3, create()));
        let b = p.apply(None, &input(3, create()));
        assert_eq!(a.state, b.state);
        let (CartOutput::Snapshot(sa), CartOutput::Snapshot(sb)) = (&a.outputs[0], &b.outputs[0])
        else {
            panic!("snapshots expected")
        };
        assert_eq!(sa.event_id, sb.event_id);
        assert_eq!(sa.version, 3);
        assert_eq!(crate::runner::Durable::applied_offset(sa), 3);
    }

    /// Finding 8 of the exactly-once review: `apply` read the live tables,
    /// so a replay of the same input priced from whatever they held then.
    #[test]
    fn a_stamped_command_prices_the_same_after_the_tables_moved_on() {
        use rules::tables::History;
        let with = |catalog: &History<Internship>| {
            CartProcessor::new(
                Arc::new(catalog.clone()),
                Arc::new(HashMap::<String, FxRate>::new()),
                Arc::new(HashMap::<String, schemas::records::coupons::Coupon>::new()),
                PricingPolicy::default(),
                DEFAULT_TTL_MS,
            )
        };
        let price = |o: &Outcome<CartSnapshot, CartOutput>| {
            let s = o.state.as_ref().expect("a cart");
            (
                s.lines[0].unit_price.amount_minor,
                s.priced_with.as_ref().map(|p| p.catalog),
            )
        };
        let mut catalog = History::default();
        catalog.record("rust".into(), Some(rust_at(49_900)), 0);
        let mut stamped = input(3, create());
        stamped.value.tables_at = Some(PricedWith {
            catalog: 1,
            fx_rates: 0,
            coupons: 0,
        });
        let first = with(&catalog).apply(None, &stamped);
        assert_eq!(price(&first), (49_900, Some(1)));

        // The price changes; the same input replayed (a new processor
        // version re-reading the commands) prices as the first run did.
        catalog.record("rust".into(), Some(rust_at(59_900)), 1);
        let replay = with(&catalog).apply(None, &stamped);
        assert_eq!(replay.state, first.state);

        // An unstamped command (from before the stamp) is priced at the
        // newest version read, and names it.
        let live = with(&catalog).apply(None, &input(4, create()));
        assert_eq!(price(&live), (59_900, Some(2)));
    }

    #[tokio::test]
    async fn a_command_waits_for_the_table_versions_it_was_stamped_with() {
        use rules::tables::History;
        let mut catalog = History::default();
        catalog.record("rust".into(), Some(rust_at(49_900)), 0);
        let p: CartProcessor<
            History<Internship>,
            HashMap<String, FxRate>,
            HashMap<String, schemas::records::coupons::Coupon>,
        > = CartProcessor::new(
            Arc::new(catalog),
            Arc::new(HashMap::new()),
            Arc::new(HashMap::new()),
            PricingPolicy::default(),
            DEFAULT_TTL_MS,
        );
        let mut cmd = input(3, create());
        assert_eq!(p.ready(&cmd).await, Ok(()), "unstamped: at once");
        cmd.value.tables_at = Some(PricedWith {
            catalog: 1,
            fx_rates: 0,
            coupons: 0,
        });
        assert_eq!(p.ready(&cmd).await, Ok(()), "the table has read version 1");
        cmd.value.tables_at = Some(PricedWith {
            catalog: 2,
            fx_rates: 0,
            coupons: 0,
        });
        assert!(
            p.ready(&cmd).await.is_err(),
            "version 2 not read: not priced from an older table"
        );
    }

    #[test]
    fn state_round_trips_through_the_wire_record() {
        let p = processor();
        let s = p.apply(None, &input(1, create())).state.unwrap();
        let set = Command::SetBuyer(SetBuyer {
            country: "US".into(),
            state: None,
            gstin: None,
            display_currency: Some("USD".into()),
            actor_user_id: None,
        });
        let s = p.apply(Some(&s), &input(2, set)).state.unwrap();
        assert_eq!(s.currency, "USD");
        assert_eq!(s.fx.as_ref().map(|f| f.rate.as_str()), Some("0.012"));
        let s = p
            .apply(
                Some(&s),
                &input(
                    3,
                    Command::AddItem(AddItem {
                        internship_id: "nope".into(),
                        quantity: 1,
                        actor_user_id: None,
                    }),
                ),
            )
            .state
            .unwrap();
        assert_eq!(
            s.priced_with,
            Some(PricedWith {
                catalog: 0,
                fx_rates: 0,
                coupons: 0
            }),
            "fixed tables are version 0"
        );
        let mut back = to_record(&from_record(&s).unwrap()).unwrap();
        back.priced_with = s.priced_with.clone();
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
