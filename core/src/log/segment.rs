//! One segment as the log holds it in memory.
//!
//! Owns what the log knows of a segment without reading it: where it starts,
//! how long it is, its last term, offset and time, and — when resident — its
//! index. It must never guess: a question about an entry whose index is not
//! resident is answered `None`, and the log loads the index first.

use crate::ids::{LogIndex, Offset, Term};
use crate::log::entry::{ConfigAt, EntryKind};
use crate::log::index::Slot;
use crate::time::Instant;

/// A segment's index, held in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    /// One slot per entry, by relative number.
    pub slots: Vec<Slot>,
    /// Each entry's first offset, relative to the segment's base offset.
    pub starts: Vec<u32>,
}

impl Resident {
    /// Builds the offsets from the slots.
    pub fn from_slots(slots: Vec<Slot>) -> Resident {
        let mut resident = Resident {
            slots: Vec::with_capacity(slots.len()),
            starts: Vec::with_capacity(slots.len()),
        };
        for slot in slots {
            resident.push(slot);
        }
        resident
    }

    /// Client records in all the slots.
    pub fn records(&self) -> u64 {
        match (self.starts.last(), self.slots.last()) {
            (Some(&start), Some(slot)) => u64::from(start) + u64::from(slot.records),
            _ => 0,
        }
    }

    /// Adds the slot of the next entry.
    pub fn push(&mut self, slot: Slot) {
        if let Some(last) = self.slots.last() {
            assert!(last.position < slot.position, "positions grow");
            assert!(last.term <= slot.term, "terms never fall");
        }
        let start = u32::try_from(self.records()).expect("a segment holds fewer than 2^32 records");
        self.starts.push(start);
        self.slots.push(slot);
    }

    /// Keeps the first `len` slots.
    pub fn truncate(&mut self, len: usize) {
        self.slots.truncate(len);
        self.starts.truncate(len);
    }
}

/// A segment: its bounds always, its index when resident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The index of its first entry; its files are named by it.
    pub base: LogIndex,
    /// The client offset its first record takes.
    pub base_offset: Offset,
    /// The term of the entry before `base`.
    pub prev_term: Term,
    /// Bytes of the store's header frame; entries start there.
    pub header_len: u32,
    /// Entries it holds.
    pub entries: u64,
    /// Bytes of the store in use: the end of its last entry's frame.
    pub store_len: u64,
    /// The term of its last entry (`prev_term` if it holds none).
    pub last_term: Term,
    /// The offset the record after its last entry takes.
    pub next_offset: Offset,
    /// When its newest entry was appended (`Instant::ZERO` if none).
    pub last_time: Instant,
    /// Its index, when held in memory.
    pub resident: Option<Resident>,
    /// Its files are being deleted (retention or prefix truncation); it is
    /// no longer served, and leaves the log when the deletion is durable.
    pub retiring: bool,
    /// The configuration in effect before its first entry (its header's).
    /// A configuration entry only ever ends a segment, so this holds
    /// throughout it, up to a configuration entry at its end.
    pub config: ConfigAt,
}

impl Segment {
    /// An empty segment whose header frame takes `header_len` bytes.
    pub fn empty(base: LogIndex, base_offset: Offset, prev_term: Term, header_len: u32) -> Segment {
        Segment {
            base,
            base_offset,
            prev_term,
            header_len,
            entries: 0,
            store_len: u64::from(header_len),
            last_term: prev_term,
            next_offset: base_offset,
            last_time: Instant::ZERO,
            resident: Some(Resident::default()),
            retiring: false,
            config: ConfigAt::default(),
        }
    }

    /// The index after its last entry.
    pub fn next_index(&self) -> LogIndex {
        self.base.plus(self.entries)
    }

    /// Whether `index` is one of its entries.
    pub fn contains(&self, index: LogIndex) -> bool {
        self.base <= index && index < self.next_index()
    }

    /// Whether a record at `offset` would be one of its entries.
    pub fn contains_offset(&self, offset: Offset) -> bool {
        self.base_offset <= offset && offset < self.next_offset
    }

    /// The relative number of `index`, which must be one of its entries.
    pub fn relative(&self, index: LogIndex) -> u64 {
        assert!(
            self.contains(index),
            "{index} is not in segment {}",
            self.base
        );
        index.0 - self.base.0
    }

    /// The slot of `index`, if resident.
    pub fn slot(&self, index: LogIndex) -> Option<Slot> {
        let relative = self.relative(index) as usize;
        self.resident
            .as_ref()
            .map(|resident| resident.slots[relative])
    }

    /// Byte range of `index`'s frame in the store, if resident.
    pub fn frame_range(&self, index: LogIndex) -> Option<(u64, u64)> {
        let resident = self.resident.as_ref()?;
        let relative = self.relative(index) as usize;
        let start = u64::from(resident.slots[relative].position);
        let end = match resident.slots.get(relative + 1) {
            Some(next) => u64::from(next.position),
            None => self.store_len,
        };
        Some((start, end))
    }

    /// The term of `index`, if known without reading the store.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index.next() == self.base {
            return Some(self.prev_term);
        }
        if index.next() == self.next_index() {
            return Some(self.last_term);
        }
        self.slot(index).map(|slot| slot.term)
    }

    /// The first client offset of `index` (for Raft's own entries, the
    /// next record's), if resident.
    pub fn offset(&self, index: LogIndex) -> Option<Offset> {
        let resident = self.resident.as_ref()?;
        let relative = self.relative(index) as usize;
        Some(self.base_offset.plus(u64::from(resident.starts[relative])))
    }

    /// The index of the entry holding the record at `offset`, if resident.
    /// The offset must be one of the segment's records.
    pub fn index_of_offset(&self, offset: Offset) -> Option<LogIndex> {
        assert!(
            self.contains_offset(offset),
            "{offset} is not in segment {}",
            self.base
        );
        let resident = self.resident.as_ref()?;
        let target = offset.0 - self.base_offset.0;
        // The last entry starting at or before the offset holds it: an entry
        // of Raft's own starting there too would come before the batch.
        let relative = resident
            .starts
            .partition_point(|&start| u64::from(start) <= target)
            - 1;
        let slot = resident.slots[relative];
        debug_assert!(slot.kind == EntryKind::Record);
        debug_assert!(target < u64::from(resident.starts[relative]) + u64::from(slot.records));
        Some(self.base.plus(relative as u64))
    }

    /// Checks the segment's own invariants.
    pub fn check_invariants(&self) {
        assert!(self.store_len >= u64::from(self.header_len));
        assert!(self.last_term >= self.prev_term);
        assert!(self.next_offset >= self.base_offset);
        if self.entries == 0 {
            assert_eq!(self.store_len, u64::from(self.header_len));
            assert_eq!(self.next_offset, self.base_offset);
        }
        let Some(resident) = &self.resident else {
            return;
        };
        assert_eq!(resident.slots.len() as u64, self.entries);
        assert_eq!(resident.starts.len(), resident.slots.len());
        assert_eq!(self.base_offset.plus(resident.records()), self.next_offset);
        if let Some(last) = resident.slots.last() {
            assert_eq!(last.term, self.last_term);
            assert!(u64::from(last.position) < self.store_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(position: u32, kind: EntryKind, records: u32) -> Slot {
        Slot {
            position,
            term: Term(1),
            kind,
            records,
            stamp: None,
        }
    }

    // Goal: offsets count every record of a batch and skip Raft's own
    // entries, in both directions.
    #[test]
    fn offsets_count_records() {
        let mut segment = Segment::empty(LogIndex(10), Offset(100), Term(1), 20);
        let entries = [
            (EntryKind::Record, 3),
            (EntryKind::Noop, 0),
            (EntryKind::Record, 1),
            (EntryKind::Config, 0),
            (EntryKind::Record, 2),
        ];
        for (i, (kind, records)) in entries.into_iter().enumerate() {
            segment
                .resident
                .as_mut()
                .unwrap()
                .push(slot(20 + 10 * i as u32, kind, records));
            segment.entries += 1;
            segment.store_len += 10;
            segment.next_offset = segment.next_offset.plus(u64::from(records));
        }
        segment.check_invariants();
        let offsets: Vec<u64> = (10..15)
            .map(|i| segment.offset(LogIndex(i)).unwrap().0)
            .collect();
        assert_eq!(offsets, [100, 103, 103, 104, 104]);
        let indexes: Vec<u64> = (100..106)
            .map(|o| segment.index_of_offset(Offset(o)).unwrap().0)
            .collect();
        assert_eq!(indexes, [10, 10, 10, 12, 14, 14]);
        assert_eq!(segment.frame_range(LogIndex(14)), Some((60, 70)));
        segment.resident.as_mut().unwrap().truncate(2);
        assert_eq!(segment.resident.as_ref().unwrap().records(), 3);
    }
}
