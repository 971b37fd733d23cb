//! Payments: the gateway worker, the stage that opens the payment sessions
//! the order processor asks for (`payment.requests`) at Razorpay or Stripe
//! and writes each result back to its order (`order.commands`).
//!
//! - [`routing`]: which gateway first, by currency (configuration);
//! - [`breaker`]: a circuit breaker per gateway (pure);
//! - [`worker`]: the calls (retries, fallback, breaker, metrics) and the
//!   stage on the shared runtime;
//! - [`service`]: wiring for the `processors gateway` binary.
//!
//! Gateway calls never happen in a processor's `apply`: a replay would call
//! again. Here each request carries an id derived from its order and
//! attempt, used as the gateway's idempotency key (Stripe's header; for
//! Razorpay the client finds the order by `receipt` before creating one),
//! and the result is written under an id derived from the request: a worker
//! killed between the call and its result calls again on restart, gets the
//! same session, and its order applies the result once.

pub mod breaker;
pub mod routing;
pub mod service;
pub mod worker;
