//! How a processor's per-key state is written to its changelog and read
//! back. Most states are one record per key, rewritten whole after each
//! input ([`whole_state!`]). A state that grows with its inputs (a coupon's
//! redemptions) writes only what an input changed, under keys of its own,
//! and folds those records back on restore: its cost per input stays the
//! same however large it grows.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub trait Durable: Clone + Send + Sync + 'static {
    /// A changelog record.
    type Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The offset of the last input this state includes: an input at or
    /// below it is not applied again.
    fn applied_offset(&self) -> i64;

    /// What the state of `key`, just changed by an input, writes to the
    /// changelog: (changelog key, record) pairs.
    fn records(&self, key: &str) -> Vec<(String, Cow<'_, Self::Record>)>;

    /// Folds one committed changelog record (read in offset order; `None`
    /// a tombstone) into a partition's states.
    fn restore(states: &mut HashMap<String, Self>, key: String, record: Option<Self::Record>);
}

/// A state written whole under its key after every input. On restore the
/// state that includes the most input wins rather than merely the last
/// record: every state is a deterministic function of the inputs up to
/// its offset, so the most advanced one is right. A tombstone removes it.
macro_rules! whole_state {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::runner::Durable for $t {
            type Record = $t;

            fn applied_offset(&self) -> i64 {
                self.version
            }

            fn records(&self, key: &str) -> Vec<(String, std::borrow::Cow<'_, $t>)> {
                vec![(key.to_owned(), std::borrow::Cow::Borrowed(self))]
            }

            fn restore(
                states: &mut std::collections::HashMap<String, $t>,
                key: String,
                record: Option<$t>,
            ) {
                match record {
                    None => {
                        states.remove(&key);
                    }
                    Some(state) => match states.get(&key) {
                        Some(kept) if kept.version > state.version => {}
                        _ => {
                            states.insert(key, state);
                        }
                    },
                }
            }
        }
    )+};
}
pub(crate) use whole_state;
