//! Reading: from an index or offset to verified entries.
//!
//! Owns the read path: resolving where a read starts, making a sealed
//! segment's index resident when needed, reading a range of the store, and
//! verifying every frame against what the index promised. It must never
//! serve an entry whose frame fails its checksum or is not the entry
//! expected at its place: such an entry is reported damaged and the read
//! stops before it.

use bytes::Bytes;

use crate::error::Error;
use crate::ids::{LogIndex, Offset, ReadId, Term};
use crate::limits::{PENDING_READS_MAX, READ_BYTES_MAX, READ_ENTRIES_MAX};
use crate::log::disk::{DiskError, DiskOp, DiskOutcome, FileId};
use crate::log::entry::{Entry, EntryKind};
use crate::log::index::{self, SLOT_BYTES};
use crate::log::machine::{Log, Output, Pending};
use crate::log::scan::{self, Cursor, Damage};
use crate::log::segment::Resident;
use crate::time::Instant;

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// At a Raft index.
    Index(LogIndex),
    /// At a client record's offset.
    Offset(Offset),
}

/// Entries read, in index order, from where the read started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBatch {
    /// The entries; possibly none if the first one is damaged.
    pub entries: Vec<Entry>,
    /// The damaged run that stopped the read right after `entries`, if any.
    pub damaged: Option<Damage>,
}

/// Why a read returned no batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The disk failed the read (a latent sector error, say).
    Disk(DiskError),
    /// The entries were truncated or retained away while the read waited.
    Gone,
}

/// A read as its owner asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReadRequest {
    id: ReadId,
    from: ReadFrom,
    max_entries: u32,
    max_bytes: u32,
}

/// What one entry of a store read must turn out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    index: LogIndex,
    term: Term,
    kind: EntryKind,
    records: u32,
    offset: Offset,
    next_offset: Offset,
    start: u32,
    end: u32,
}

/// A store read in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StoreRead {
    request: ReadRequest,
    generation: u64,
    expected: Vec<Expected>,
    stopped_by: Option<Damage>,
}

impl Log {
    /// Reads up to `max_entries` entries and about `max_bytes` bytes (at
    /// least one entry) from `from`, within one segment. Completes with an
    /// [`Output::Read`] carrying `id`.
    pub fn read(
        &mut self,
        id: ReadId,
        from: ReadFrom,
        max_entries: u32,
        max_bytes: u32,
    ) -> Result<(), Error> {
        if self.reads_pending >= PENDING_READS_MAX {
            return Err(Error::Busy);
        }
        self.check_read_range(from)?;
        self.reads_pending += 1;
        let request = ReadRequest {
            id,
            from,
            max_entries: max_entries.clamp(1, READ_ENTRIES_MAX),
            max_bytes: max_bytes.min(READ_BYTES_MAX),
        };
        self.plan(request);
        Ok(())
    }

    fn check_read_range(&self, from: ReadFrom) -> Result<(), Error> {
        match from {
            ReadFrom::Index(index) if index < self.first_index() || index >= self.next_index() => {
                Err(Error::IndexOutOfRange {
                    index,
                    first: self.first_index(),
                    next: self.next_index(),
                })
            }
            ReadFrom::Offset(offset)
                if offset < self.first_offset() || offset >= self.next_offset() =>
            {
                Err(Error::OffsetOutOfRange {
                    offset,
                    first: self.first_offset(),
                    next: self.next_offset(),
                })
            }
            _ => Ok(()),
        }
    }

    fn complete(&mut self, id: ReadId, result: Result<ReadBatch, crate::log::read::ReadError>) {
        self.reads_pending -= 1;
        self.outputs.push_back(Output::Read { id, result });
    }

    /// Resolves where `request` starts and reads it, or waits for an index.
    fn plan(&mut self, request: ReadRequest) {
        if self.check_read_range(request.from).is_err() {
            return self.complete(request.id, Err(ReadError::Gone));
        }
        let position = match request.from {
            ReadFrom::Index(index) => self.segment_of(index),
            ReadFrom::Offset(offset) => {
                let position = self.segments.partition_point(|s| s.next_offset <= offset);
                self.segments
                    .get(position)
                    .filter(|s| s.contains_offset(offset))
                    .map(|_| position)
            }
        };
        let Some(position) = position else {
            let damage = self.damage_of(request.from);
            let result = damage.map(|d| ReadBatch {
                entries: Vec::new(),
                damaged: Some(d),
            });
            return self.complete(request.id, result.ok_or(ReadError::Gone));
        };
        let segment = &self.segments[position];
        if segment.retiring {
            return self.complete(request.id, Err(ReadError::Gone));
        }
        if segment.resident.is_none() {
            return self.wait_for_index(segment.base, request);
        }
        let index = match request.from {
            ReadFrom::Index(index) => index,
            ReadFrom::Offset(offset) => segment.index_of_offset(offset).expect("resident"),
        };
        if let Some(damage) = self.damage_at(index) {
            let batch = ReadBatch {
                entries: Vec::new(),
                damaged: Some(damage),
            };
            return self.complete(request.id, Ok(batch));
        }
        self.read_store(position, index, request);
    }

    /// The damaged run holding where `from` points, for a read that falls
    /// in a hole between segments.
    fn damage_of(&self, from: ReadFrom) -> Option<Damage> {
        match from {
            ReadFrom::Index(index) => self.damage_at(index),
            ReadFrom::Offset(offset) => self
                .damaged
                .values()
                .find(|d| d.first_offset <= offset && offset < d.end_offset)
                .copied(),
        }
    }

    fn read_store(&mut self, position: usize, first: LogIndex, request: ReadRequest) {
        let next_damage = self.damaged.range(first..).next().map(|(_, d)| *d);
        let segment = &self.segments[position];
        let mut expected: Vec<Expected> = Vec::new();
        let mut bytes = 0u64;
        let mut index = first;
        while segment.contains(index) && expected.len() < request.max_entries as usize {
            if next_damage.is_some_and(|d| d.first == index) {
                break;
            }
            let (start, end) = segment.frame_range(index).expect("resident");
            if !expected.is_empty() && bytes + (end - start) > u64::from(request.max_bytes) {
                break;
            }
            bytes += end - start;
            let slot = segment.slot(index).expect("resident");
            let offset = segment.offset(index).expect("resident");
            let next_offset = offset.plus(u64::from(slot.records));
            let (start, end) = (start as u32, end as u32);
            expected.push(Expected {
                index,
                term: slot.term,
                kind: slot.kind,
                records: slot.records,
                offset,
                next_offset,
                start,
                end,
            });
            index = index.next();
        }
        let stopped_by = next_damage.filter(|d| d.first == index);
        let base = segment.base;
        let start = u64::from(expected[0].start);
        let len = u64::from(expected[expected.len() - 1].end) - start;
        if position + 1 < self.segments.len() {
            self.touch(base);
        }
        let read = StoreRead {
            request,
            generation: self.generation,
            expected,
            stopped_by,
        };
        let op = DiskOp::Read {
            file: FileId::store(base),
            position: start,
            len,
        };
        self.submit(op, Pending::ReadStore(read));
    }

    fn wait_for_index(&mut self, base: LogIndex, request: ReadRequest) {
        self.start_loading(base);
        self.waiting.entry(base).or_default().push(request);
    }

    /// Starts making `base`'s index resident unless it is loading already
    /// (a segment is loading exactly when `waiting` holds it).
    pub(super) fn start_loading(&mut self, base: LogIndex) {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.waiting.entry(base) {
            slot.insert(Vec::new());
            self.load_index(base);
        }
    }

    /// Starts making `base`'s index resident.
    fn load_index(&mut self, base: LogIndex) {
        let segment = self
            .segments
            .iter()
            .find(|s| s.base == base)
            .expect("a held segment");
        let len = segment.entries * SLOT_BYTES as u64;
        let op = DiskOp::Read {
            file: FileId::index(base),
            position: 0,
            len,
        };
        self.submit(op, Pending::LoadIndex { base });
    }

    /// Re-plans the reads that waited for `base`, or fails them.
    fn release_waiting(&mut self, base: LogIndex, error: Option<DiskError>) {
        for request in self.waiting.remove(&base).unwrap_or_default() {
            match error {
                Some(error) => self.complete(request.id, Err(ReadError::Disk(error))),
                None => self.plan(request),
            }
        }
    }

    pub(super) fn on_index_loaded(
        &mut self,
        base: LogIndex,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let Some((bytes, position)) = self.loaded(base, result) else {
            return;
        };
        let segment = &mut self.segments[position];
        if segment.resident.is_none() {
            let slots = index::valid_prefix(&bytes, segment.header_len, segment.store_len);
            if slots.len() as u64 != segment.entries {
                let op = DiskOp::Read {
                    file: FileId::store(base),
                    position: 0,
                    len: segment.store_len,
                };
                self.submit(op, Pending::RebuildIndex { base });
                return;
            }
            segment.resident = Some(Resident::from_slots(slots));
        }
        self.index_ready(base);
    }

    /// The bytes a load for segment `base` read, and where that segment is;
    /// `None` (after answering the waiting reads) if the read failed or the
    /// segment is gone.
    fn loaded(
        &mut self,
        base: LogIndex,
        result: Result<DiskOutcome, DiskError>,
    ) -> Option<(Bytes, usize)> {
        let bytes = match read_bytes(result) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.release_waiting(base, Some(error));
                return None;
            }
        };
        match self.segments.iter().position(|s| s.base == base) {
            Some(position) => Some((bytes, position)),
            None => {
                self.release_waiting(base, None);
                None
            }
        }
    }

    fn index_ready(&mut self, base: LogIndex) {
        if self.active().base != base {
            self.touch(base);
        }
        self.outputs.push_back(Output::IndexLoaded { base });
        self.release_waiting(base, None);
    }

    /// A sealed index failed its checks: rebuilt from the store's bytes, and
    /// rewritten. Entries the store no longer holds are damage.
    pub(super) fn on_index_rebuilt(
        &mut self,
        base: LogIndex,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let Some((bytes, position)) = self.loaded(base, result) else {
            return;
        };
        let segment = &self.segments[position];
        let start = Cursor {
            position: u64::from(segment.header_len),
            next_index: segment.base,
            next_offset: segment.base_offset,
            last_term: segment.prev_term,
            last_time: Instant::ZERO,
        };
        let last_term = segment.last_term;
        let (entries, next_index, next_offset) =
            (segment.entries, segment.next_index(), segment.next_offset);
        let mut found = scan::scan(&bytes, start);
        found.slots.truncate(entries as usize);
        let mut damaged = found.damaged.clone();
        if (found.slots.len() as u64) < entries {
            damaged.push(scan::pad(&mut found, next_index, next_offset, last_term));
        }
        self.rewrite_sealed_index(base, &found.slots);
        for damage in damaged {
            self.record_damage(damage);
        }
        let segment = self
            .segments
            .iter_mut()
            .find(|s| s.base == base)
            .expect("found above");
        segment.resident = Some(Resident::from_slots(found.slots));
        self.index_ready(base);
    }

    fn rewrite_sealed_index(&mut self, base: LogIndex, slots: &[index::Slot]) {
        let file = FileId::index(base);
        let bytes: Vec<u8> = slots
            .iter()
            .enumerate()
            .flat_map(|(n, s)| index::encode(n as u32, *s))
            .collect();
        self.submit(
            DiskOp::Write {
                file,
                position: 0,
                bytes: Bytes::from(bytes),
            },
            Pending::Change,
        );
        self.submit(
            DiskOp::Truncate {
                file,
                len: (slots.len() * SLOT_BYTES) as u64,
            },
            Pending::Change,
        );
        self.submit(DiskOp::Sync { file }, Pending::Change);
    }

    pub(super) fn record_damage(&mut self, damage: Damage) {
        if self.damage_at(damage.first).is_none() {
            self.damaged.insert(damage.first, damage);
            self.outputs.push_back(Output::Damaged(damage));
        }
    }

    pub(super) fn on_store_read(
        &mut self,
        read: StoreRead,
        result: Result<DiskOutcome, DiskError>,
    ) {
        if read.generation != self.generation {
            return self.plan(read.request);
        }
        let bytes = match read_bytes(result) {
            Ok(bytes) => bytes,
            Err(error) => return self.complete(read.request.id, Err(ReadError::Disk(error))),
        };
        let origin = read.expected[0].start;
        let mut entries = Vec::with_capacity(read.expected.len());
        let mut damaged = read.stopped_by;
        for expected in &read.expected {
            match verify(&bytes, origin, expected) {
                Some(entry) => entries.push(entry),
                None => {
                    let damage = Damage {
                        first: expected.index,
                        end: expected.index.next(),
                        first_offset: expected.offset,
                        end_offset: expected.next_offset,
                    };
                    self.record_damage(damage);
                    damaged = Some(damage);
                    break;
                }
            }
        }
        self.complete(read.request.id, Ok(ReadBatch { entries, damaged }));
    }
}

/// The bytes a completed read returned.
fn read_bytes(result: Result<DiskOutcome, DiskError>) -> Result<Bytes, DiskError> {
    match result? {
        DiskOutcome::Read(bytes) => Ok(bytes),
        DiskOutcome::Done => panic!("a read completed without bytes"),
    }
}

/// The entry at `expected`'s place in `bytes`, if its frame verifies and it
/// is the entry the index promised.
fn verify(bytes: &Bytes, origin: u32, expected: &Expected) -> Option<Entry> {
    let start = (expected.start - origin) as usize;
    let end = (expected.end - origin) as usize;
    if end > bytes.len() {
        return None;
    }
    let (entry, frame_len) = Entry::decode(&bytes.slice(start..end)).ok()?;
    let matches = entry.index == expected.index
        && entry.term == expected.term
        && entry.kind == expected.kind
        && entry.offset == expected.offset
        && entry.records == expected.records
        && frame_len <= end - start;
    matches.then_some(entry)
}
