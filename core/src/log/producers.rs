//! Idempotent producers: recognising a retried batch so it is stored once.
//!
//! A producer stamps each batch with its id and the next sequence number,
//! and retries a batch with the same stamp until it hears where it landed.
//! The stamp is stored in the batch's entry, so every node learns it as the
//! entry reaches its log, and a new leader knows every batch its log holds.
//!
//! Owns the table of each producer's last batches, the decision on a new
//! stamp, and how the log keeps the table across restarts. It must never
//! call a batch new when the log holds it, never forget a batch because
//! retention removed its segment, and never trust table bytes from disk
//! or from a peer before they are checked (they come back as an
//! [`Error::MalformedProducers`], never a panic). It keeps only the last
//! `PRODUCER_BATCHES_MAX` batches of each producer (a producer has at most
//! that many batches unanswered, as in Kafka).
//!
//! # Why the log owns the table
//! The table is a function of the log, but not of the entries the log
//! still holds: retention removes old segments, and a snapshot starts a log
//! after entries it never saw. So the table is kept with the log, the way
//! the configuration is (see [`crate::log::entry::ConfigAt`]): every
//! segment's header carries the table as of its base. Retention then never
//! changes what the table knows.
//!
//! The log learns every entry it appends, in order, as it frames it, so
//! the table is always exact as of the log's next index: when a segment
//! rolls over, as of the new base. A restart rebuilds it at once, with no
//! read: recovery takes the last segment's header's table and learns the
//! stamps of that segment's entries from their index slots and from the
//! tail it scans (see [`crate::log::recovery`] and [`crate::log::index`]).

use std::collections::{BTreeMap, VecDeque};

use crate::error::Error;
use crate::ids::{LogIndex, Offset};
use crate::limits::{PRODUCERS_MAX, PRODUCER_BATCHES_MAX, PRODUCER_TABLE_BYTES_MAX};
use crate::log::entry::{EntryMeta, Stamp};
use crate::log::machine::Log;

/// Where one batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Landed {
    /// Its sequence number.
    pub sequence: u64,
    /// Its entry.
    pub index: LogIndex,
    /// Its first record's offset.
    pub offset: Offset,
    /// Its records.
    pub records: u32,
}

/// What to do with a stamped batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append it: the log holds no batch with this stamp.
    Append,
    /// The log holds it already, here.
    Duplicate(Landed),
    /// The log holds a later batch of this producer and no longer knows
    /// where this one is: the producer has moved on, so this is stale.
    Stale {
        /// The producer's last sequence number.
        last: u64,
    },
    /// A batch before this one is missing: accepting it would reorder.
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
    },
}

/// Every known producer's last batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Producers {
    batches: BTreeMap<u64, VecDeque<Landed>>,
}

impl Producers {
    /// What to do with a batch stamped `stamp`.
    pub fn decide(&self, stamp: Stamp) -> Decision {
        let Some(batches) = self.batches.get(&stamp.producer) else {
            return Decision::Append;
        };
        let last = batches
            .back()
            .expect("kept producers have batches")
            .sequence;
        if stamp.sequence == last + 1 {
            return Decision::Append;
        }
        if stamp.sequence > last + 1 {
            return Decision::OutOfOrder { expected: last + 1 };
        }
        match batches.iter().find(|b| b.sequence == stamp.sequence) {
            Some(landed) => Decision::Duplicate(*landed),
            None => Decision::Stale { last },
        }
    }

    /// A batch stamped `stamp` was appended at `index`.
    pub fn landed(&mut self, stamp: Stamp, index: LogIndex, offset: Offset, records: u32) {
        let batches = self.batches.entry(stamp.producer).or_default();
        // The log's order is the truth: a batch appended after a later one
        // (a stale retry a follower took from an old leader) replaces what
        // follows it.
        while batches.back().is_some_and(|b| b.index >= index) {
            batches.pop_back();
        }
        batches.push_back(Landed {
            sequence: stamp.sequence,
            index,
            offset,
            records,
        });
        while batches.len() > PRODUCER_BATCHES_MAX {
            batches.pop_front();
        }
        // Forget the producer with the oldest last batch beyond the bound.
        if self.batches.len() > PRODUCERS_MAX {
            let oldest = self
                .batches
                .iter()
                .min_by_key(|(_, b)| b.back().map(|l| l.index))
                .map(|(&id, _)| id)
                .expect("more than the bound");
            self.batches.remove(&oldest);
        }
    }

    /// The table, encoded for a segment header or a snapshot. It takes at
    /// most `PRODUCER_TABLE_BYTES_MAX` bytes.
    pub fn encode(&self) -> bytes::Bytes {
        let table: Vec<(u64, Vec<Landed>)> = self
            .batches
            .iter()
            .map(|(&producer, batches)| (producer, batches.iter().copied().collect()))
            .collect();
        let bytes = postcard::to_allocvec(&table).expect("a table encodes");
        assert!(
            bytes.len() <= PRODUCER_TABLE_BYTES_MAX,
            "the table is bounded"
        );
        bytes::Bytes::from(bytes)
    }

    /// Decodes a table from bytes read from disk or sent by a peer,
    /// checking every bound and order `check_invariants` asserts: bytes
    /// that break one are refused, never trusted.
    pub fn decode(bytes: &[u8]) -> Result<Producers, Error> {
        let malformed = |reason| Err(Error::MalformedProducers { reason });
        if bytes.len() > PRODUCER_TABLE_BYTES_MAX {
            return malformed("longer than any table");
        }
        let Ok((table, rest)) = postcard::take_from_bytes::<Vec<(u64, Vec<Landed>)>>(bytes) else {
            return malformed("not a table");
        };
        if !rest.is_empty() {
            return malformed("bytes after the table");
        }
        if table.len() > PRODUCERS_MAX {
            return malformed("more producers than the bound");
        }
        let mut producers = Producers::default();
        for (producer, batches) in table {
            if batches.is_empty() || batches.len() > PRODUCER_BATCHES_MAX {
                return malformed("a producer's batches are outside the bound");
            }
            if batches
                .windows(2)
                .any(|pair| pair[0].index >= pair[1].index)
            {
                return malformed("a producer's batches are out of log order");
            }
            if producers
                .batches
                .last_key_value()
                .is_some_and(|(&last, _)| last >= producer)
            {
                return malformed("producers are out of order");
            }
            producers.batches.insert(producer, batches.into());
        }
        producers.check_invariants();
        Ok(producers)
    }

    /// The last entry holding a batch the table knows of, if any.
    pub fn last_index(&self) -> Option<LogIndex> {
        self.batches
            .values()
            .filter_map(|batches| batches.back().map(|b| b.index))
            .max()
    }

    /// Every entry after `after` left the log.
    pub fn truncated(&mut self, after: LogIndex) {
        self.batches.retain(|_, batches| {
            while batches.back().is_some_and(|b| b.index > after) {
                batches.pop_back();
            }
            !batches.is_empty()
        });
    }

    /// Checks the table's invariants.
    pub fn check_invariants(&self) {
        assert!(self.batches.len() <= PRODUCERS_MAX, "producers are bounded");
        for batches in self.batches.values() {
            assert!(!batches.is_empty() && batches.len() <= PRODUCER_BATCHES_MAX);
            for (a, b) in batches.iter().zip(batches.iter().skip(1)) {
                assert!(a.index < b.index, "a producer's batches are in log order");
            }
        }
    }
}

impl Log {
    /// What to do with a batch stamped `stamp`.
    pub fn decide(&self, stamp: Stamp) -> Decision {
        self.producers.decide(stamp)
    }

    /// The table, exact as of the log's next index.
    pub fn producers(&self) -> &Producers {
        &self.producers
    }

    /// The entry `meta` was appended: the table takes its batch in.
    pub(super) fn producers_appended(&mut self, meta: &EntryMeta) {
        if let Some(stamp) = meta.producer {
            self.producers
                .landed(stamp, meta.index, meta.offset, meta.records);
        }
    }

    /// Every entry after `after` left the log.
    pub(super) fn producers_truncated(&mut self, after: LogIndex) {
        self.producers.truncated(after);
    }

    /// The log starts over at `base` with `table` (a snapshot's, as of the
    /// entry before `base`).
    pub(super) fn producers_reset(&mut self, base: LogIndex, table: Producers) {
        assert!(
            table.last_index().is_none_or(|last| last < base),
            "a snapshot's table knows nothing after it"
        );
        self.producers = table;
    }

    /// Checks the table's invariants against the log.
    pub(super) fn check_producers(&self) {
        self.producers.check_invariants();
        assert!(
            self.producers
                .last_index()
                .is_none_or(|last| last < self.next_index()),
            "the table knows no entry after the log's last"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sequence: u64) -> Stamp {
        Stamp {
            producer: 7,
            sequence,
        }
    }

    fn landed(sequence: u64, index: u64) -> Landed {
        Landed {
            sequence,
            index: LogIndex(index),
            offset: Offset(index * 10),
            records: 2,
        }
    }

    // Which batch is new, which is a retry, which would reorder.
    #[test]
    fn decision_table() {
        let mut producers = Producers::default();
        assert_eq!(
            producers.decide(stamp(0)),
            Decision::Append,
            "unknown producer"
        );
        for (sequence, index) in [(0, 3), (1, 5), (2, 9)] {
            producers.landed(stamp(sequence), LogIndex(index), Offset(index * 10), 2);
        }
        let cases = [
            ("the next batch", 3, Decision::Append),
            ("a retry of the last", 2, Decision::Duplicate(landed(2, 9))),
            (
                "a retry of an earlier one",
                0,
                Decision::Duplicate(landed(0, 3)),
            ),
            ("a gap", 5, Decision::OutOfOrder { expected: 3 }),
        ];
        for (label, sequence, expected) in cases {
            assert_eq!(producers.decide(stamp(sequence)), expected, "{label}");
        }
        producers.check_invariants();
    }

    // Only the last batches are kept; truncation forgets what left the log.
    #[test]
    fn window_and_truncation() {
        let mut producers = Producers::default();
        for sequence in 0..(PRODUCER_BATCHES_MAX as u64 + 2) {
            producers.landed(
                stamp(sequence),
                LogIndex(10 + sequence),
                Offset(sequence),
                1,
            );
        }
        assert_eq!(producers.decide(stamp(0)), Decision::Stale { last: 6 });
        producers.truncated(LogIndex(14));
        assert_eq!(
            producers.decide(stamp(5)),
            Decision::Append,
            "5 left the log"
        );
        assert_eq!(
            producers.decide(stamp(4)),
            Decision::Duplicate(Landed {
                sequence: 4,
                index: LogIndex(14),
                offset: Offset(4),
                records: 1,
            })
        );
        producers.truncated(LogIndex(1));
        assert_eq!(
            producers.decide(stamp(9)),
            Decision::Append,
            "forgotten entirely"
        );
        // A batch appended where a later one stood replaces it.
        producers.landed(stamp(3), LogIndex(20), Offset(0), 1);
        producers.landed(stamp(4), LogIndex(21), Offset(1), 1);
        producers.landed(stamp(4), LogIndex(21), Offset(1), 1);
        producers.check_invariants();
    }

    // A table round-trips through its bytes; a snapshot's receiver keeps
    // what it says of entries through the snapshot's end.
    #[test]
    fn encode_round_trip() {
        let mut leader = Producers::default();
        for (sequence, index) in [(0, 3), (1, 5), (2, 9)] {
            leader.landed(stamp(sequence), LogIndex(index), Offset(index * 10), 2);
        }
        leader.landed(
            Stamp {
                producer: 3,
                sequence: 8,
            },
            LogIndex(4),
            Offset(35),
            1,
        );
        let decoded = Producers::decode(&leader.encode()).unwrap();
        assert_eq!(decoded, leader);
        assert_eq!(decoded.last_index(), Some(LogIndex(9)));
        let mut follower = decoded;
        follower.truncated(LogIndex(6));
        assert_eq!(follower.decide(stamp(1)), Decision::Duplicate(landed(1, 5)));
        assert_eq!(
            follower.decide(stamp(2)),
            Decision::Append,
            "9 is past the snapshot"
        );
        assert_eq!(
            Producers::decode(&Producers::default().encode()),
            Ok(Producers::default())
        );
    }

    // Bytes from a disk or a peer that are not a table, or break one of its
    // bounds or orders, are refused with a reason, never trusted.
    #[test]
    fn malformed_tables_are_refused() {
        let encode = |table: &[(u64, Vec<Landed>)]| postcard::to_allocvec(table).unwrap();
        let good = encode(&[(7, vec![landed(0, 3)])]);
        let mut trailing = good.clone();
        trailing.push(0);
        let too_many: Vec<(u64, Vec<Landed>)> = (0..PRODUCERS_MAX as u64 + 1)
            .map(|p| (p, vec![landed(0, 3)]))
            .collect();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("garbage", vec![0xff, 0xff], "not a table"),
            ("empty bytes", Vec::new(), "not a table"),
            ("cut short", good[..good.len() - 1].to_vec(), "not a table"),
            ("trailing bytes", trailing, "bytes after the table"),
            (
                "too long",
                vec![0; PRODUCER_TABLE_BYTES_MAX + 1],
                "longer than any table",
            ),
            (
                "too many producers",
                encode(&too_many),
                "more producers than the bound",
            ),
            (
                "a producer without batches",
                encode(&[(7, vec![])]),
                "a producer's batches are outside the bound",
            ),
            (
                "too many batches",
                encode(&[(7, (0..6).map(|n| landed(n, n + 1)).collect())]),
                "a producer's batches are outside the bound",
            ),
            (
                "batches out of log order",
                encode(&[(7, vec![landed(1, 5), landed(0, 5)])]),
                "a producer's batches are out of log order",
            ),
            (
                "producers out of order",
                encode(&[(7, vec![landed(0, 3)]), (7, vec![landed(1, 4)])]),
                "producers are out of order",
            ),
        ];
        for (label, bytes, reason) in cases {
            assert_eq!(
                Producers::decode(&bytes),
                Err(Error::MalformedProducers { reason }),
                "{label}"
            );
        }
        assert!(Producers::decode(&good).is_ok());
    }
}
