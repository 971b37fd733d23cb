//! Every version of a table, so it can answer as it was at any version
//! (pure: no Kafka). This is what makes a replay deterministic: a command
//! carries the table versions it is priced at, and the processor reads the
//! tables as they were then, however far they have moved since.
//!
//! A table's version is how many offsets of its topic have been read (its
//! next offset; table topics have one partition, so a version names one
//! content). A record read at offset `o` holds from version `o + 1` on.

use std::collections::HashMap;

/// The values each key has had, with the version each took effect at.
#[derive(Debug, Clone)]
pub struct History<V> {
    /// Per key, in increasing version: (version it holds from, value or
    /// `None` for a tombstone).
    keys: HashMap<String, Vec<(i64, Option<V>)>>,
    version: i64,
}

impl<V> Default for History<V> {
    fn default() -> Self {
        History {
            keys: HashMap::new(),
            version: 0,
        }
    }
}

impl<V> History<V> {
    /// Records `value` (`None`: removed) for `key` as read at `offset`.
    pub fn record(&mut self, key: String, value: Option<V>, offset: i64) {
        let from = offset + 1;
        self.keys.entry(key).or_default().push((from, value));
        self.advance(from);
    }

    /// Moves the version past offsets that hold no record (transaction
    /// markers): the content is unchanged.
    pub fn advance(&mut self, version: i64) {
        self.version = self.version.max(version);
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// The value of `key` at `version` (the latest when `None`).
    pub fn get_at(&self, key: &str, version: Option<i64>) -> Option<&V> {
        let entries = self.keys.get(key)?;
        let held = match version {
            None => entries.len(),
            Some(v) => entries.partition_point(|(from, _)| *from <= v),
        };
        entries.get(held.checked_sub(1)?)?.1.as_ref()
    }

    /// How many keys have a value now.
    pub fn len(&self) -> usize {
        self.keys
            .values()
            .filter(|e| e.last().is_some_and(|(_, v)| v.is_some()))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_of_any_version() {
        let mut h = History::default();
        h.record("a".into(), Some(10), 0);
        h.record("b".into(), Some(20), 1);
        h.record("a".into(), Some(11), 2);
        h.record("b".into(), None, 3);
        assert_eq!(h.version(), 4);
        assert_eq!(h.get_at("a", Some(0)), None, "before its first record");
        assert_eq!(h.get_at("a", Some(1)), Some(&10));
        assert_eq!(h.get_at("a", Some(2)), Some(&10));
        assert_eq!(h.get_at("a", Some(3)), Some(&11));
        assert_eq!(h.get_at("a", None), Some(&11));
        assert_eq!(h.get_at("b", Some(3)), Some(&20));
        assert_eq!(h.get_at("b", Some(4)), None, "removed by the tombstone");
        assert_eq!(h.get_at("b", None), None);
        assert_eq!(h.len(), 1);
        h.advance(9);
        assert_eq!(h.version(), 9);
        assert_eq!(h.get_at("a", Some(9)), Some(&11));
    }
}
