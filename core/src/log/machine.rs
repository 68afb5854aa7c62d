//! The log as a state machine: its state, its verbs and its invariants.
//!
//! Owns the in-memory state of the log and the queue of its effects. It must
//! never perform I/O: every change to disk leaves as an [`Output::Disk`], and
//! the log learns of completion through [`Input::Disk`].
//!
//! # Contract
//! - Method kinds: getters take `&self`; `handle*` and the mutating verbs
//!   (`append`, `read`, `truncate_*`, `reset`) queue outputs; `poll_*` drain.
//! - After every mutation, drain [`Log::poll_output`] until `None`, perform
//!   disk requests in order (see [`crate::log::disk`]), and report each
//!   completion with [`Log::handle`]. Then read [`Log::poll_timeout`].
//! - `now` never goes backwards. A spurious timeout is a no-op.
//! - An append is durable only when an [`Output::Durable`] covering its last
//!   index has been polled: that happens after the sync covering it has
//!   completed, and one sync covers every append written before it (group
//!   commit).
//! - The producer table ([`Log::decide`]) is exact as of the log's next
//!   index from the start: recovery rebuilds it without reading entries.
//! - A failed write, sync, truncation, creation or deletion stops the log
//!   (a failed sync is never retried: the data's state is unknown). A failed
//!   read fails only that read.
//!
//! # Example
//! The drive loop, over a disk kept in a map (the simulator's disk and the
//! runtime's file driver do the same with crashes and with files).
//! ```
//! use std::collections::BTreeMap;
//! use bytes::Bytes;
//! use cairn_core::config::LogConfig;
//! use cairn_core::ids::{ReadId, Term};
//! use cairn_core::log::disk::{DiskOp, DiskOutcome, FileId};
//! use cairn_core::log::entry::NewEntry;
//! use cairn_core::log::machine::{Input, Log, Output, ReadFrom};
//! use cairn_core::log::recovery::Recovered;
//! use cairn_core::time::Instant;
//!
//! fn perform(disk: &mut BTreeMap<FileId, Vec<u8>>, op: DiskOp) -> DiskOutcome {
//!     match op {
//!         DiskOp::Create { file } => { disk.insert(file, Vec::new()); }
//!         DiskOp::Write { file, position, bytes } => {
//!             let data = disk.get_mut(&file).unwrap();
//!             let end = position as usize + bytes.len();
//!             if data.len() < end { data.resize(end, 0); }
//!             data[position as usize..end].copy_from_slice(&bytes);
//!         }
//!         DiskOp::Truncate { file, len } => disk.get_mut(&file).unwrap().resize(len as usize, 0),
//!         DiskOp::Delete { file } => { disk.remove(&file); }
//!         DiskOp::Read { file, position, len } => {
//!             let data = &disk[&file];
//!             let end = data.len().min((position + len) as usize);
//!             return DiskOutcome::Read(Bytes::copy_from_slice(&data[position as usize..end]));
//!         }
//!         DiskOp::Sync { .. } | DiskOp::SyncDir => {}
//!     }
//!     DiskOutcome::Done
//! }
//!
//! let now = Instant::ZERO;
//! let mut disk = BTreeMap::new();
//! let mut log = Log::new(LogConfig::default(), Recovered::default(), now).unwrap();
//! let batch = NewEntry::records(Term(1), vec![Bytes::from_static(b"hi"), Bytes::from_static(b"there")]);
//! let appended = log.append(now, vec![batch]).unwrap();
//! assert_eq!((appended.first_offset.get(), appended.end_offset.get()), (0, 2));
//! log.read(ReadId(1), ReadFrom::Offset(appended.first_offset), 10, 1 << 20).unwrap();
//! let (mut durable, mut read) = (false, None);
//! while let Some(output) = log.poll_output() {
//!     match output {
//!         Output::Disk(request) => {
//!             let outcome = perform(&mut disk, request.op);
//!             log.handle(now, Input::Disk { io: request.io, result: Ok(outcome) });
//!         }
//!         Output::Durable { through } => durable = through >= appended.last,
//!         Output::Read { result, .. } => read = Some(result.unwrap()),
//!         _ => {}
//!     }
//! }
//! assert!(durable);
//! let records: Vec<_> = read.unwrap().entries[0].records().map(|(_, record)| record).collect();
//! assert_eq!(records, [&b"hi"[..], &b"there"[..]]);
//! ```

use std::collections::{BTreeMap, VecDeque};

use crate::config::LogConfig;
use crate::error::Error;
use crate::ids::{IoId, LogIndex, Offset, ReadId, Term};
use crate::limits::{INFLIGHT_IOS_MAX, PENDING_READS_MAX, RESIDENT_INDEXES_MAX};
use crate::log::disk::{DiskError, DiskOp, DiskOutcome, DiskRequest, FileId};
use crate::log::entry::{ConfigAt, EntryKind};
use crate::log::producers::Producers;
use crate::log::recovery::Recovered;
use crate::log::scan::Damage;
use crate::log::segment::Segment;
use crate::time::Instant;

pub use crate::log::read::{ReadBatch, ReadError, ReadFrom};

/// What the driver tells the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A disk operation completed.
    Disk {
        /// The id of its request.
        io: IoId,
        /// What it returned.
        result: Result<DiskOutcome, DiskError>,
    },
}

/// What the log asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Perform this disk operation, then report its completion.
    Disk(DiskRequest),
    /// Every entry up to and including `through` is durable.
    Durable {
        /// The last durable entry.
        through: LogIndex,
    },
    /// A read completed.
    Read {
        /// The read's id.
        id: ReadId,
        /// Its entries, or why there are none.
        result: Result<ReadBatch, ReadError>,
    },
    /// Entries were found damaged; they are never served until repaired.
    Damaged(Damage),
    /// An index the owner asked for is now resident (see `truncate_suffix`).
    IndexLoaded {
        /// The segment.
        base: LogIndex,
    },
    /// A disk operation the log depends on failed; the log has stopped.
    Stopped(DiskError),
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The index of the first entry appended.
    pub first: LogIndex,
    /// The index of the last entry appended.
    pub last: LogIndex,
    /// The offset of the first record appended (if any record was).
    pub first_offset: Offset,
    /// The offset after the last record appended.
    pub end_offset: Offset,
}

/// Why an operation is in flight, and what its completion means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    /// A change to disk: its failure stops the log.
    Change,
    /// A sync of a store: on completion, entries through `through` are
    /// durable, unless a truncation (a new `generation`) came in between.
    /// `group` marks the group-commit sync (one at a time).
    SyncStore {
        through: LogIndex,
        group: bool,
        generation: u64,
    },
    /// A read of a segment's index file, to make it resident.
    LoadIndex { base: LogIndex },
    /// A read of a whole store, to rebuild an index that failed its checks.
    RebuildIndex { base: LogIndex },
    /// A read of entries for a read request.
    ReadStore(crate::log::read::StoreRead),
    /// The directory sync after deleting the files of the retiring segment
    /// `base`: on completion the segment leaves the log.
    Retired { base: LogIndex },
    /// The sync of an entry's repair (`repair.rs`): on completion it is
    /// durable again.
    Repaired { index: LogIndex },
}

/// The log.
#[derive(Debug)]
pub struct Log {
    pub(super) config: LogConfig,
    /// Oldest first; the last is the active segment, always resident.
    pub(super) segments: VecDeque<Segment>,
    /// Damaged runs by first index; never served.
    pub(super) damaged: BTreeMap<LogIndex, Damage>,
    pub(super) outputs: VecDeque<Output>,
    pub(super) inflight: BTreeMap<IoId, Pending>,
    pub(super) next_io: IoId,
    /// The last durable entry.
    pub(super) durable: LogIndex,
    pub(super) group_sync_inflight: bool,
    pub(super) group_sync_wanted: bool,
    /// Reads waiting for an index to become resident, by segment.
    pub(super) waiting: BTreeMap<LogIndex, Vec<crate::log::read::ReadRequest>>,
    /// Bumped by every truncation, so reads planned before it start over.
    pub(super) generation: u64,
    /// Segment bases in order of last use, oldest first (resident, sealed).
    pub(super) recently_used: VecDeque<LogIndex>,
    pub(super) stopped: Option<DiskError>,
    pub(super) reads_pending: usize,
    /// How many segments at the front are retiring.
    pub(super) retiring: usize,
    /// Retention never removes an entry after this one (Raft sets it to
    /// its commit index: only committed entries may be retained away).
    pub(super) retention_floor: Option<LogIndex>,
    /// Slots of the active segment written to its index file.
    pub(super) index_written: u64,
    /// Where appends frame their entries; reused across appends.
    pub(super) frame_buffer: bytes::BytesMut,
    /// Entries rewritten in place whose syncs are in flight, with how many:
    /// nothing from the first of them on is durable until they complete.
    pub(super) repairing: BTreeMap<LogIndex, u32>,
    /// Each idempotent producer's last batches (`producers.rs`), as of the
    /// log's next index.
    pub(super) producers: Producers,
}

impl Log {
    /// A log over the state recovery found. Queues the recovery's repairs
    /// first, then a sync of the active segment (what was found on disk may
    /// not be durable yet), or the creation of a first segment.
    pub fn new(config: LogConfig, recovered: Recovered, now: Instant) -> Result<Log, Error> {
        config.validate()?;
        // `now` is part of every machine's constructor (the node's timers
        // start from it); the log has no timer to arm at start.
        let _ = now;
        let mut log = Log {
            config,
            segments: recovered.segments.into_iter().collect(),
            damaged: BTreeMap::new(),
            outputs: VecDeque::new(),
            inflight: BTreeMap::new(),
            next_io: IoId(1),
            durable: LogIndex(0),
            group_sync_inflight: false,
            group_sync_wanted: false,
            waiting: BTreeMap::new(),
            generation: 0,
            recently_used: VecDeque::new(),
            stopped: None,
            reads_pending: 0,
            retiring: 0,
            retention_floor: None,
            index_written: 0,
            frame_buffer: bytes::BytesMut::new(),
            repairing: BTreeMap::new(),
            producers: recovered.producers,
        };
        for op in recovered.repairs {
            log.submit(op, Pending::Change);
        }
        for damage in recovered.damaged {
            log.damaged.insert(damage.first, damage);
            log.outputs.push_back(Output::Damaged(damage));
        }
        match log.segments.back() {
            None => log.create_segment(LogIndex(1), Offset(0), Term(0), ConfigAt::default(), false),
            Some(active) => {
                // Recovery's repairs leave every slot of the active segment
                // in its index file.
                log.index_written = active.entries;
                log.durable = active.base.prev();
                if active.entries > 0 {
                    log.request_sync();
                }
                if let Some(config) = recovered.tail_config {
                    log.roll(config);
                }
            }
        }
        log.check_invariants();
        Ok(log)
    }

    /// The configuration in effect after entry `index` (see [`ConfigAt`]),
    /// for `index` from the entry before the first served to the last.
    pub fn config_at(&self, index: LogIndex) -> Option<&ConfigAt> {
        if index.next() < self.first_index() || index >= self.next_index() {
            return None;
        }
        let after = self.segments.partition_point(|s| s.base <= index.next());
        Some(&self.segments[after.checked_sub(1)?].config)
    }

    /// The configuration in effect after the last entry.
    pub fn latest_config(&self) -> &ConfigAt {
        &self.active().config
    }

    /// The index of the first entry served. Segments being deleted are no
    /// longer served, so this moves forward as soon as retention decides.
    pub fn first_index(&self) -> LogIndex {
        self.live_front().base
    }

    /// The index of the first entry whose files may still be on disk. It
    /// moves forward only once a deletion is durable, so it never goes
    /// backwards across a crash (and a restarted log never starts before it).
    pub fn first_index_on_disk(&self) -> LogIndex {
        self.front().base
    }

    /// The index the next appended entry will take.
    pub fn next_index(&self) -> LogIndex {
        self.active().next_index()
    }

    /// The offset of the first record served.
    pub fn first_offset(&self) -> Offset {
        self.live_front().base_offset
    }

    /// The offset of the first record whose files may still be on disk; see
    /// [`Log::first_index_on_disk`].
    pub fn first_offset_on_disk(&self) -> Offset {
        self.front().base_offset
    }

    /// The offset the next appended record will take.
    pub fn next_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// The term of the last entry (or, if the log is empty, of the entry
    /// before its first).
    pub fn last_term(&self) -> Term {
        self.active().last_term
    }

    /// The last durable entry (`first_index - 1` if none is).
    pub fn durable_index(&self) -> LogIndex {
        match self.repairing.keys().next() {
            Some(first) => self.durable.min(first.prev()),
            None => self.durable,
        }
    }

    /// The term of `index`, if it is known without reading (the entry before
    /// the first, the last of each segment, or any entry of a resident
    /// segment), and the entry is not damaged.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if self.damage_at(index).is_some() {
            return None;
        }
        let position = self.segments.partition_point(|s| s.next_index() <= index);
        let segment = self.segments.get(position)?;
        if index < segment.base.prev() {
            return None;
        }
        segment.term(index)
    }

    /// The term of `index` like [`Log::term`], but for an entry of a sealed
    /// segment whose index is not resident, starts loading that index and
    /// returns [`Error::IndexNotResident`]: retry on `Output::IndexLoaded`.
    /// `Ok(None)` means the log holds no readable entry there (outside
    /// the log, or damaged).
    pub fn term_or_load(&mut self, index: LogIndex) -> Result<Option<Term>, Error> {
        if let Some(term) = self.term(index) {
            return Ok(Some(term));
        }
        match self.segment_of(index) {
            Some(position) if self.damage_at(index).is_none() => {
                let base = self.segments[position].base;
                self.start_loading(base);
                Err(Error::IndexNotResident { base })
            }
            _ => Ok(None),
        }
    }

    /// The last index holding an entry of `term`, if the log holds one and
    /// it is known without reading. Terms never fall along the log, so this
    /// is a binary search over the one resident segment where `term` ends.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let segments: Vec<&Segment> = self.live().collect();
        // The first segment ending in a later term: `term` ends in it or
        // in the one before.
        let position = segments.partition_point(|s| s.last_term <= term);
        for segment in segments[position.saturating_sub(1)..].iter().take(2).rev() {
            if segment.entries == 0 || segment.prev_term > term {
                continue;
            }
            let (first, next) = (segment.base.0, segment.next_index().0);
            // The first index in the segment whose term exceeds `term`.
            let (mut low, mut high) = (first, next);
            while low < high {
                let middle = low + (high - low) / 2;
                match segment.term(LogIndex(middle)) {
                    Some(t) if t <= term => low = middle + 1,
                    Some(_) => high = middle,
                    None => return None,
                }
            }
            if low > first && segment.term(LogIndex(low - 1)) == Some(term) {
                let last = LogIndex(low - 1);
                return self.damage_at(last).is_none().then_some(last);
            }
        }
        None
    }

    /// Where entry `index` ends in its store file, if known without reading
    /// (its segment's index is resident): the file, and the byte after its
    /// frame (and any padding after it).
    pub fn frame_end(&self, index: LogIndex) -> Option<(FileId, u64)> {
        let (file, _, end) = self.frame_range(index)?;
        Some((file, end))
    }

    /// Where entry `index` lies in its store file, if known without reading:
    /// the file, its frame's first byte, and the byte after it (and after
    /// any padding).
    pub fn frame_range(&self, index: LogIndex) -> Option<(FileId, u64, u64)> {
        let segment = &self.segments[self.segment_of(index)?];
        let (start, end) = segment.frame_range(index)?;
        Some((FileId::store(segment.base), start, end))
    }

    /// The active segment's store file and the bytes the log holds in it.
    pub fn active_store(&self) -> (FileId, u64) {
        let active = self.active();
        (FileId::store(active.base), active.store_len)
    }

    /// The index of the entry holding the record at `offset`, if the log
    /// holds it and knows without reading.
    pub fn index_of_offset(&self, offset: Offset) -> Option<LogIndex> {
        let segment = self.live().find(|s| s.contains_offset(offset))?;
        segment.index_of_offset(offset)
    }

    /// The offset the first record after entry `index` takes, if known
    /// without reading (`index` may be the entry before the first).
    pub fn offset_after(&self, index: LogIndex) -> Option<Offset> {
        let next = index.next();
        if next == self.next_index() {
            return Some(self.next_offset());
        }
        let position = self.segment_of(next)?;
        self.segments[position].offset(next)
    }

    /// Damaged runs not yet repaired, in order.
    pub fn damaged(&self) -> impl Iterator<Item = &Damage> {
        self.damaged.values()
    }

    /// Bytes held in the store files of segments not being deleted.
    pub fn store_bytes(&self) -> u64 {
        self.live().map(|s| s.store_len).sum()
    }

    /// Segments held and not being deleted.
    pub fn segment_count(&self) -> usize {
        self.segments.len() - self.retiring
    }

    /// The segments not being deleted, oldest first.
    pub(super) fn live(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().skip(self.retiring)
    }

    /// The oldest segment not being deleted.
    pub(super) fn live_front(&self) -> &Segment {
        self.segments
            .get(self.retiring)
            .expect("the active segment is never retired")
    }

    /// Whether a disk failure has stopped the log.
    pub fn stopped(&self) -> Option<DiskError> {
        self.stopped
    }

    /// Takes in one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        // Taking in a completion needs no clock; `now` is part of the verb
        // that every machine shares.
        let _ = now;
        match input {
            Input::Disk { io, result } => self.on_disk(io, result),
        }
    }

    /// Applies retention by age, if a segment has expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.apply_retention(now);
    }

    /// The next effect, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the log next wants `handle_timeout`: the oldest sealed
    /// segment's expiry, if retention by age is on and may remove it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let age = self.config.retention_age?;
        if !self.may_retire_front() {
            return None;
        }
        Some(self.live_front().last_time + age)
    }

    fn on_disk(&mut self, io: IoId, result: Result<DiskOutcome, DiskError>) {
        let Some(pending) = self.inflight.remove(&io) else {
            panic!("completion of {io}, which is not in flight");
        };
        match (pending, result) {
            (Pending::ReadStore(read), result) => self.on_store_read(read, result),
            (Pending::LoadIndex { base }, result) => self.on_index_loaded(base, result),
            (Pending::RebuildIndex { base }, result) => self.on_index_rebuilt(base, result),
            (_, Err(error)) => self.stop(error),
            (
                Pending::SyncStore {
                    through,
                    group,
                    generation,
                },
                Ok(_),
            ) => self.on_synced(through, group, generation),
            (Pending::Change, Ok(_)) => {}
            (Pending::Retired { base }, Ok(_)) => self.on_retired(base),
            (Pending::Repaired { index }, Ok(_)) => self.on_repaired(index),
        }
    }

    pub(super) fn stop(&mut self, error: DiskError) {
        if self.stopped.is_none() {
            self.stopped = Some(error);
            self.outputs.push_back(Output::Stopped(error));
        }
    }

    /// Queues a disk operation.
    pub(super) fn submit(&mut self, op: DiskOp, pending: Pending) -> IoId {
        let io = self.next_io;
        self.next_io = io.next();
        assert!(
            self.inflight.len() < INFLIGHT_IOS_MAX,
            "disk operations in flight exceed INFLIGHT_IOS_MAX"
        );
        self.inflight.insert(io, pending);
        self.outputs.push_back(Output::Disk(DiskRequest { io, op }));
        io
    }

    pub(super) fn front(&self) -> &Segment {
        self.segments
            .front()
            .expect("the log always holds a segment")
    }

    pub(super) fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("the log always holds a segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("the log always holds a segment")
    }

    /// The position in `segments` of the segment holding `index`.
    pub(super) fn segment_of(&self, index: LogIndex) -> Option<usize> {
        let position = self.segments.partition_point(|s| s.next_index() <= index);
        let segment = self.segments.get(position)?;
        segment.contains(index).then_some(position)
    }

    /// The damaged run holding `index`, if any.
    pub(super) fn damage_at(&self, index: LogIndex) -> Option<Damage> {
        let (_, damage) = self.damaged.range(..=index).next_back()?;
        (index < damage.end).then_some(*damage)
    }

    /// Marks `base` as just used, evicting the least recently used sealed
    /// index beyond `RESIDENT_INDEXES_MAX`.
    pub(super) fn touch(&mut self, base: LogIndex) {
        self.recently_used.retain(|&b| b != base);
        self.recently_used.push_back(base);
        while self.recently_used.len() > RESIDENT_INDEXES_MAX {
            let evicted = self.recently_used.pop_front().expect("non-empty");
            let active = self.active().base;
            if let Some(position) = self
                .segments
                .iter()
                .position(|s| s.base == evicted && s.base != active)
            {
                self.segments[position].resident = None;
            }
        }
    }

    /// Checks every invariant of the log. Run by the simulator after every
    /// step; cheap enough for tests, too slow for a hot path.
    pub fn check_invariants(&self) {
        assert!(
            self.segments.len() > self.retiring,
            "the log always holds a live segment"
        );
        assert!(
            self.active().resident.is_some(),
            "the active segment is resident"
        );
        // One pass over the segments: this runs after every step.
        let mut resident_sealed = 0;
        let mut previous: Option<&Segment> = None;
        for (position, segment) in self.segments.iter().enumerate() {
            assert_eq!(
                segment.retiring,
                position < self.retiring,
                "retiring segments are a prefix"
            );
            segment.check_invariants();
            if let Some(a) = previous {
                resident_sealed += usize::from(a.resident.is_some());
                assert!(a.entries > 0, "only the active segment may be empty");
                assert!(a.next_index() <= segment.base, "segments do not overlap");
                assert!(
                    a.next_offset <= segment.base_offset,
                    "offsets do not fall between segments"
                );
                if a.next_index() < segment.base {
                    let hole = self
                        .damage_at(a.next_index())
                        .expect("a hole between segments is damage");
                    assert!(hole.end >= segment.base, "the damage covers the whole hole");
                }
            }
            previous = Some(segment);
        }
        assert!(
            resident_sealed <= RESIDENT_INDEXES_MAX,
            "resident sealed indexes are bounded"
        );
        self.check_producers();
        let active = self.active().resident.as_ref().expect("resident");
        assert!(
            active
                .slots
                .last()
                .is_none_or(|s| s.kind != EntryKind::Config),
            "a configuration entry is followed by a segment that carries it"
        );
        assert!(
            self.durable < self.next_index(),
            "nothing past the end is durable"
        );
        assert!(self.reads_pending <= PENDING_READS_MAX);
        if self.stopped.is_none() {
            assert!(
                !self.group_sync_wanted || self.group_sync_inflight,
                "a wanted sync waits only on one in flight"
            );
        }
    }
}
