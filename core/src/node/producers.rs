//! Idempotent producers: recognising a retried batch so it is stored once.
//!
//! A producer stamps each batch with its id and the next sequence number,
//! and retries a batch with the same stamp until it hears where it landed.
//! The stamp is stored in the batch's entry, so every node learns it as the
//! entry reaches its log, and a new leader knows every batch its log holds.
//! Owns the table of each producer's last batches and the decision on a
//! new stamp. It must never call a batch new when the log holds it, and
//! keeps only the last `PRODUCER_BATCHES_MAX` batches of each producer
//! (a producer has at most that many batches unanswered, as in Kafka).

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{LogIndex, Offset};
use crate::limits::{PRODUCERS_MAX, PRODUCER_BATCHES_MAX};
use crate::log::entry::Stamp;

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

    /// The table, encoded for a snapshot (a follower that starts its log
    /// after entries it never saw learns their producers from it).
    pub fn encode(&self) -> bytes::Bytes {
        let table: Vec<(u64, Vec<Landed>)> = self
            .batches
            .iter()
            .map(|(&producer, batches)| (producer, batches.iter().copied().collect()))
            .collect();
        bytes::Bytes::from(postcard::to_allocvec(&table).expect("a table encodes"))
    }

    /// Replaces the table with a snapshot's, as of its last index
    /// `last_index`. Bytes that do not decode change nothing: the table
    /// then knows less, and a retried batch below the snapshot is refused
    /// as out of order rather than stored twice.
    pub fn install(&mut self, state: &[u8], last_index: LogIndex) -> bool {
        let Ok(table) = postcard::from_bytes::<Vec<(u64, Vec<Landed>)>>(state) else {
            return false;
        };
        self.batches.clear();
        for (producer, batches) in table {
            let batches: VecDeque<Landed> = batches
                .into_iter()
                .filter(|b| b.index <= last_index)
                .collect();
            if !batches.is_empty() && batches.len() <= PRODUCER_BATCHES_MAX {
                self.batches.insert(producer, batches);
            }
        }
        true
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

    // A snapshot carries the table as of its end; what does not decode
    // changes nothing.
    #[test]
    fn snapshot_round_trip() {
        let mut leader = Producers::default();
        for (sequence, index) in [(0, 3), (1, 5), (2, 9)] {
            leader.landed(stamp(sequence), LogIndex(index), Offset(index * 10), 2);
        }
        let mut follower = Producers::default();
        follower.landed(stamp(0), LogIndex(3), Offset(30), 2);
        assert!(follower.install(&leader.encode(), LogIndex(6)));
        assert_eq!(follower.decide(stamp(1)), Decision::Duplicate(landed(1, 5)));
        assert_eq!(
            follower.decide(stamp(2)),
            Decision::Append,
            "9 is past the snapshot"
        );
        assert!(
            !follower.install(b"\xff\xff", LogIndex(6)),
            "garbage is refused"
        );
        assert_eq!(follower.decide(stamp(1)), Decision::Duplicate(landed(1, 5)));
        follower.check_invariants();
    }
}
