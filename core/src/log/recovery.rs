//! Recovery: from the files found on disk to the log's valid state.
//!
//! Owns the decision of what survived a crash. It is a pure function: given
//! file names and bytes, it returns the segments, the damaged runs and the
//! repairs to perform (truncate a torn tail, rebuild an index, remove the
//! debris of an interrupted roll-over or deletion). It must never truncate
//! anything but a torn tail of the last segment, and never trust an index
//! past the first slot that fails its checks.
//!
//! It reads only what it needs, so a driver may pass memory maps: a sealed
//! segment costs its header frame, its last index slot and its last frame;
//! the active segment costs its index and whatever tail the index does not
//! cover. A clean restart therefore never reads the whole log.
//!
//! It also rebuilds the idempotent producers' table (`log::producers`),
//! exact as of the log's next index: the active segment's header carries
//! the table as of its base, and the stamps of the segment's entries come
//! from the slots recovery holds anyway (its index and its scanned tail).

use std::collections::BTreeMap;

use crate::error::Error;
use crate::ids::{LogIndex, Offset, Term};
use crate::log::disk::{DiskOp, FileId, FileKind, FoundFile};
use crate::log::entry::{ConfigAt, Entry, EntryKind, EntryMeta, SegmentHeader};
use crate::log::index::{self, Slot, SLOT_BYTES};
use crate::log::producers::Producers;
use crate::log::scan::{self, Cursor, Damage};
use crate::log::segment::{Resident, Segment};
use crate::time::Instant;

/// What recovery found and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The segments, oldest first. The last one's index is resident.
    pub segments: Vec<Segment>,
    /// Runs of entries whose bytes are damaged or missing.
    pub damaged: Vec<Damage>,
    /// Operations to perform, in order, before anything else.
    pub repairs: Vec<DiskOp>,
    /// What was found, for logs and tests.
    pub notes: Vec<Note>,
    /// A configuration entry ending the last segment, whose successor a
    /// crash kept from being created: the log creates it at start.
    pub tail_config: Option<ConfigAt>,
    /// The producer table the log starts from, exact as of its next index
    /// (see `producers_of`).
    pub producers: Producers,
    /// The configuration after the segment recovered last (for a next one
    /// whose header is damaged).
    config_after_previous: ConfigAt,
}

/// One observation made during recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A file whose name the log does not own; left alone.
    ForeignFile(String),
    /// An index without its store; removed.
    DanglingIndex(LogIndex),
    /// A last segment with no valid header or entry (a roll-over cut short
    /// before its files were durable); removed.
    IncompleteSegment(LogIndex),
    /// A segment whose header frame is damaged; its entries were scanned.
    DamagedHeader(LogIndex),
    /// Bytes at the end of the last segment holding no valid frame; cut.
    TornTail {
        /// The segment.
        base: LogIndex,
        /// Bytes cut.
        bytes: u64,
    },
    /// An index rebuilt from its store.
    IndexRebuilt(LogIndex),
    /// Bytes at the end of a sealed segment holding no valid frame; kept,
    /// and the entries they held reported damaged.
    SealedTailDamaged(LogIndex),
    /// A segment before one where the log starts over (a snapshot
    /// installed; a crash came before the old segments' deletion was
    /// durable); removed.
    Superseded(LogIndex),
    /// A segment whose header decodes but whose producer table does not,
    /// or names entries from the segment's base on; an earlier header's is
    /// used, and the entries since learned from their slots.
    UnreadableProducers(LogIndex),
}

/// A store found on disk: its base, its bytes, and its index's bytes.
type FoundStore<'a> = (LogIndex, &'a [u8], Option<&'a [u8]>);

struct Files<'a> {
    store: Option<&'a [u8]>,
    index: Option<&'a [u8]>,
}

/// Recovers the log from the files found in its directory.
pub fn recover(files: &[FoundFile<'_>]) -> Result<Recovered, Error> {
    let mut recovered = Recovered::default();
    let mut segments: BTreeMap<LogIndex, Files<'_>> = BTreeMap::new();
    for file in files {
        let Some(id) = FileId::parse(file.name) else {
            recovered
                .notes
                .push(Note::ForeignFile(file.name.to_owned()));
            continue;
        };
        if id.kind == FileKind::State {
            continue; // Raft's, recovered by `raft::state`.
        }
        let entry = segments.entry(id.base).or_insert(Files {
            store: None,
            index: None,
        });
        match id.kind {
            FileKind::Store => entry.store = Some(file.bytes),
            FileKind::Index => entry.index = Some(file.bytes),
            FileKind::State => unreachable!("skipped above"),
        }
    }
    let mut stores: Vec<FoundStore<'_>> = Vec::new();
    for (base, files) in &segments {
        match files.store {
            Some(store) => stores.push((*base, store, files.index)),
            None => recovered.remove_dangling_index(*base),
        }
    }
    recovered.drop_incomplete_tail(&mut stores);
    recovered.drop_superseded(&mut stores);
    for (position, &(base, store, index)) in stores.iter().enumerate() {
        let previous = recovered.segments.last().cloned();
        let last = position + 1 == stores.len();
        let segment = match stores.get(position + 1) {
            None => recovered.recover_active(base, store, index, previous.as_ref()),
            Some(&(next, next_store, _)) => {
                let next_header =
                    header_of(next, next_store).map(|(h, _)| (h.base_offset, h.prev_term));
                let next = (next, next_header);
                recovered.recover_sealed(base, store, index, previous.as_ref(), next)
            }
        };
        let ending = last_entry_config(&segment, store, index);
        recovered.config_after_previous = ending.clone().unwrap_or(segment.config.clone());
        if last {
            recovered.tail_config = ending;
        }
        recovered.join(segment)?;
    }
    recovered.producers = recovered.producers_of(&stores);
    if recovered
        .repairs
        .iter()
        .any(|op| matches!(op, DiskOp::Delete { .. } | DiskOp::Create { .. }))
    {
        recovered.repairs.push(DiskOp::SyncDir);
    }
    Ok(recovered)
}

impl Recovered {
    /// The producer table as of the log's next index: the table of the
    /// last segment whose header carries a readable one (normally the
    /// active segment's), then the stamps of every entry from that
    /// segment's base on, in order, from their slots, with the index,
    /// offset and record count an append would have learned them with.
    ///
    /// A slot's stamp is as good as the slot, whatever became of the
    /// entry's frame: a slot is CRC-checked on its own, so an index slot
    /// whose frame rotted still tells the stamp it was written with (the
    /// frame is found damaged when read, and repaired to the same bytes).
    /// Where the index is not trusted (past its valid prefix, or all of it
    /// if its last slot disagrees with the store), the slots come from the
    /// scan of the store, and an entry in a damaged run the scan steps over
    /// has a placeholder slot with no stamp: its batch stays unknown until
    /// a restart after its repair, as it would be to any reader of the
    /// damaged bytes (waiting for the repair could keep a leader from
    /// taking produces for good). If no header carries a readable table,
    /// the table is learned from nothing at the first segment's base.
    /// Only the active segment's slots are resident; reaching back past it
    /// (its header damaged) reads the earlier segments' indexes.
    fn producers_of(&mut self, stores: &[FoundStore<'_>]) -> Producers {
        debug_assert_eq!(stores.len(), self.segments.len(), "one segment per store");
        let mut from = (0, Producers::default());
        for (position, &(base, store, _)) in stores.iter().enumerate().rev() {
            let Some((header, _)) = header_of(base, store) else {
                continue; // Noted as a damaged header already.
            };
            let table = Producers::decode(&header.producers)
                .ok()
                .filter(|table| table.last_index().is_none_or(|last| last < base));
            match table {
                Some(table) => {
                    from = (position, table);
                    break;
                }
                None => self.notes.push(Note::UnreadableProducers(base)),
            }
        }
        let (first, mut table) = from;
        for (segment, &(_, store, index)) in self.segments[first..].iter().zip(&stores[first..]) {
            let loaded;
            let slots = match &segment.resident {
                Some(resident) => &resident.slots,
                None => {
                    loaded = sealed_slots(segment, store, index);
                    &loaded
                }
            };
            let mut offset = segment.base_offset;
            for (relative, slot) in slots.iter().enumerate() {
                if let Some(stamp) = slot.stamp {
                    let at = segment.base.plus(relative as u64);
                    table.landed(stamp, at, offset, slot.records);
                }
                offset = offset.plus(u64::from(slot.records));
            }
        }
        table
    }

    fn remove_dangling_index(&mut self, base: LogIndex) {
        self.notes.push(Note::DanglingIndex(base));
        self.repairs.push(DiskOp::Delete {
            file: FileId::index(base),
        });
    }

    /// Removes trailing segments that hold no valid header and no entry: a
    /// roll-over whose new files were cut short by a crash. Nothing in them
    /// was ever acknowledged, since appends to a new segment are made
    /// durable only after its header and directory entry are.
    fn drop_incomplete_tail(&mut self, stores: &mut Vec<FoundStore<'_>>) {
        while let Some(&(base, store, index)) = stores.last() {
            let header_ok = matches!(SegmentHeader::decode(store), Ok((h, _)) if h.base == base);
            if header_ok || first_entry(store, base).is_some() {
                return;
            }
            stores.pop();
            self.remove_segment(Note::IncompleteSegment(base), base, index.is_some());
        }
    }

    /// Removes a segment's files, saying why.
    fn remove_segment(&mut self, why: Note, base: LogIndex, has_index: bool) {
        self.notes.push(why);
        self.repairs.push(DiskOp::Delete {
            file: FileId::store(base),
        });
        if has_index {
            self.repairs.push(DiskOp::Delete {
                file: FileId::index(base),
            });
        }
    }

    /// Removes every segment before the last one whose header says the log
    /// starts over there (`SegmentHeader::starts_log`): a snapshot was
    /// installed, its segment made durable, and a crash came before the
    /// old segments' deletion was.
    fn drop_superseded(&mut self, stores: &mut Vec<FoundStore<'_>>) {
        let start = stores.iter().rposition(|&(base, store, _)| {
            header_of(base, store).is_some_and(|(header, _)| header.starts_log)
        });
        let Some(start) = start.filter(|&start| start > 0) else {
            return;
        };
        for (base, _, index) in stores.drain(..start) {
            self.remove_segment(Note::Superseded(base), base, index.is_some());
        }
    }

    /// A sealed segment: trusted in O(1) when its header, last index slot
    /// and last frame agree with its length; otherwise scanned whole, and
    /// whatever it no longer holds before `next` (the next segment's base
    /// and base offset) is damage, kept for repair from peers, never cut.
    fn recover_sealed(
        &mut self,
        base: LogIndex,
        store: &[u8],
        index: Option<&[u8]>,
        previous: Option<&Segment>,
        next: (LogIndex, Option<(Offset, Term)>),
    ) -> Segment {
        let (next_base, next_header) = next;
        let fast = index.and_then(|index| sealed_fast_path(base, store, index));
        // The fast path reads the last frame's metadata unverified: the next
        // segment's header must agree with where it says this one ends.
        let agrees = |s: &Segment| {
            next_header.is_none_or(|(offset, term)| s.next_offset == offset && s.last_term == term)
        };
        if let Some(segment) = fast.filter(|s| agrees(s) && s.next_index() == next_base) {
            return segment;
        }
        let (mut segment, mut scan) = self.scan_segment(base, store, previous);
        let (next_offset, next_term) = (next_header.map(|h| h.0), next_header.map(|h| h.1));
        if scan.end.next_index < next_base {
            self.notes.push(Note::SealedTailDamaged(base));
            let missing = next_base.0 - scan.end.next_index.0;
            let end_offset = next_offset.unwrap_or(scan.end.next_offset.plus(missing));
            let end_term = next_term.unwrap_or(scan.end.last_term);
            let damage = scan::pad(&mut scan, next_base, end_offset, end_term);
            fill(&mut segment, scan.slots.clone(), &scan);
            self.damaged.push(damage);
        }
        self.rewrite_index(base, 0, &scan.slots);
        segment.resident = None;
        segment
    }

    /// The last segment: its index loaded and kept resident, the tail the
    /// index does not cover scanned, and a torn tail cut.
    fn recover_active(
        &mut self,
        base: LogIndex,
        store: &[u8],
        index: Option<&[u8]>,
        previous: Option<&Segment>,
    ) -> Segment {
        let Some((header, header_len)) = header_of(base, store) else {
            let (segment, scan) = self.scan_segment(base, store, previous);
            self.rewrite_index(base, 0, &scan.slots);
            self.cut_torn_tail(base, &scan);
            return segment;
        };
        let mut segment = Segment::empty(base, header.base_offset, header.prev_term, header_len);
        segment.config = ConfigAt::of_header(&header);
        let missing = index.is_none();
        let index = index.unwrap_or(&[]);
        let mut slots = index::valid_prefix(index, header_len, store.len() as u64);
        let cursor = match trusted_end(&segment, store, &slots) {
            Some(cursor) => cursor,
            None => {
                slots.clear();
                start_cursor(&segment)
            }
        };
        let scanned = scan::scan(store, cursor);
        let past_slots = index.get(slots.len() * SLOT_BYTES..).unwrap_or(&[]);
        let clean = !missing && scanned.slots.is_empty() && past_slots.iter().all(|&b| b == 0);
        if !clean {
            self.rewrite_index(base, slots.len(), &scanned.slots);
        }
        slots.extend_from_slice(&scanned.slots);
        self.cut_torn_tail(base, &scanned);
        fill(&mut segment, slots, &scanned);
        self.damaged.extend_from_slice(&scanned.damaged);
        segment
    }

    /// Scans a whole segment from its header (or, if the header is damaged,
    /// from where the previous segment leaves off).
    fn scan_segment(
        &mut self,
        base: LogIndex,
        store: &[u8],
        previous: Option<&Segment>,
    ) -> (Segment, scan::Scan) {
        let mut segment = match header_of(base, store) {
            Some((header, len)) => {
                let mut segment = Segment::empty(base, header.base_offset, header.prev_term, len);
                segment.config = ConfigAt::of_header(&header);
                segment
            }
            None => {
                self.notes.push(Note::DamagedHeader(base));
                let mut segment = headerless(base, store, previous);
                segment.config = self.config_after_previous.clone();
                segment
            }
        };
        let scan = scan::scan(store, start_cursor(&segment));
        fill(&mut segment, scan.slots.clone(), &scan);
        self.damaged.extend_from_slice(&scan.damaged);
        (segment, scan)
    }

    /// Rewrites `base`'s index: keeps its first `keep` slots and writes
    /// `slots` after them, durably.
    fn rewrite_index(&mut self, base: LogIndex, keep: usize, slots: &[Slot]) {
        let file = FileId::index(base);
        if keep == 0 {
            // Create empties the index, or makes it if it went missing.
            self.notes.push(Note::IndexRebuilt(base));
            self.repairs.push(DiskOp::Create { file });
        } else {
            let len = (keep * SLOT_BYTES) as u64;
            self.repairs.push(DiskOp::Truncate { file, len });
        }
        if !slots.is_empty() {
            let bytes: Vec<u8> = slots
                .iter()
                .enumerate()
                .flat_map(|(n, slot)| index::encode((keep + n) as u32, *slot))
                .collect();
            let position = (keep * SLOT_BYTES) as u64;
            self.repairs.push(DiskOp::Write {
                file,
                position,
                bytes: bytes.into(),
            });
        }
        self.repairs.push(DiskOp::Sync { file });
    }

    fn cut_torn_tail(&mut self, base: LogIndex, scan: &scan::Scan) {
        if scan.torn_bytes == 0 {
            return;
        }
        self.notes.push(Note::TornTail {
            base,
            bytes: scan.torn_bytes,
        });
        let file = FileId::store(base);
        self.repairs.push(DiskOp::Truncate {
            file,
            len: scan.end.position,
        });
        self.repairs.push(DiskOp::Sync { file });
    }

    /// Appends `segment` after the previous one; a hole between them is
    /// damage, an overlap is a directory no crash could have produced.
    fn join(&mut self, segment: Segment) -> Result<(), Error> {
        if let Some(previous) = self.segments.last() {
            let overlap = segment.base < previous.next_index();
            let offsets_fall = segment.base_offset < previous.next_offset;
            if overlap || offsets_fall {
                return Err(Error::InconsistentFiles {
                    base: segment.base,
                    reason: "segment overlaps the one before it",
                });
            }
            if segment.base > previous.next_index() {
                self.damaged.push(Damage {
                    first: previous.next_index(),
                    end: segment.base,
                    first_offset: previous.next_offset,
                    end_offset: segment.base_offset,
                });
            }
        }
        self.segments.push(segment);
        Ok(())
    }
}

fn header_of(base: LogIndex, store: &[u8]) -> Option<(SegmentHeader, u32)> {
    match SegmentHeader::decode(store) {
        Ok((header, len)) if header.base == base => Some((header, len as u32)),
        _ => None,
    }
}

/// The first valid entry frame with an index at or after `base`, anywhere
/// in `store`.
fn first_entry(store: &[u8], base: LogIndex) -> Option<EntryMeta> {
    let magic = cairn_proto::frame::FRAME_MAGIC;
    store
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| *pair == magic)
        .filter_map(|(position, _)| EntryMeta::decode(&store[position..]).ok())
        .find(|(meta, _)| meta.index >= base)
        .map(|(meta, _)| meta)
}

/// A segment whose header is damaged: its bounds come from the segment
/// before it, or else from its first valid entry.
fn headerless(base: LogIndex, store: &[u8], previous: Option<&Segment>) -> Segment {
    let (base_offset, prev_term) = match (previous, first_entry(store, base)) {
        (Some(previous), _) => (previous.next_offset, previous.last_term),
        (None, Some(meta)) => (
            // Unknown records may precede it: offsets resume at its own.
            meta.offset,
            meta.term,
        ),
        (None, None) => (Offset(0), Term(0)),
    };
    Segment::empty(base, base_offset, prev_term, 0)
}

fn start_cursor(segment: &Segment) -> Cursor {
    Cursor {
        position: segment.store_len,
        next_index: segment.base,
        next_offset: segment.base_offset,
        last_term: segment.prev_term,
        last_time: Instant::ZERO,
    }
}

/// Where the entries covered by `slots` end, if the last slot's frame is the
/// entry it claims to be.
fn trusted_end(segment: &Segment, store: &[u8], slots: &[Slot]) -> Option<Cursor> {
    let Some(last) = slots.last() else {
        return Some(start_cursor(segment));
    };
    let index = segment.base.plus(slots.len() as u64 - 1);
    let (meta, frame_len) = EntryMeta::decode(&store[last.position as usize..]).ok()?;
    if meta.index != index
        || meta.term != last.term
        || meta.kind != last.kind
        || meta.records != last.records
    {
        return None;
    }
    Some(Cursor {
        position: u64::from(last.position) + frame_len as u64,
        next_index: index.next(),
        next_offset: meta.end_offset(),
        last_term: meta.term,
        last_time: meta.time,
    })
}

/// The slots of a sealed segment recovered without them: its index's valid
/// prefix, then the scan of its store past the last slot whose frame agrees;
/// at most one per entry (a run the store no longer holds has none).
fn sealed_slots(segment: &Segment, store: &[u8], index: Option<&[u8]>) -> Vec<Slot> {
    let at_header = Cursor {
        position: u64::from(segment.header_len),
        next_index: segment.base,
        next_offset: segment.base_offset,
        last_term: segment.prev_term,
        last_time: Instant::ZERO,
    };
    let mut slots =
        index::valid_prefix(index.unwrap_or(&[]), segment.header_len, segment.store_len);
    slots.truncate(segment.entries as usize);
    if slots.len() as u64 == segment.entries {
        return slots;
    }
    let cursor = match slots.is_empty() {
        true => Some(at_header),
        false => trusted_end(segment, store, &slots),
    };
    let cursor = cursor.unwrap_or_else(|| {
        slots.clear();
        at_header
    });
    slots.extend(scan::scan(store, cursor).slots);
    slots.truncate(segment.entries as usize);
    slots
}

fn fill(segment: &mut Segment, slots: Vec<Slot>, scan: &scan::Scan) {
    segment.entries = slots.len() as u64;
    segment.store_len = scan.end.position;
    segment.last_term = scan.end.last_term;
    segment.next_offset = scan.end.next_offset;
    segment.last_time = scan.end.last_time;
    segment.resident = Some(Resident::from_slots(slots));
}

/// Whether a frame ending at `end` is the store's last: the file ends there,
/// or with the padding frame that starts there.
fn ends_store(store: &[u8], end: usize) -> bool {
    end == store.len()
        || scan::padding_at(store, end as u64).is_some_and(|len| end + len as usize == store.len())
}

/// A sealed segment whose files agree with each other, read in O(1).
fn sealed_fast_path(base: LogIndex, store: &[u8], index: &[u8]) -> Option<Segment> {
    let (header, header_len) = header_of(base, store)?;
    if !index.len().is_multiple_of(SLOT_BYTES) || index.is_empty() {
        return None;
    }
    let count = index.len() / SLOT_BYTES;
    let last = index::decode((count - 1) as u32, &index[index.len() - SLOT_BYTES..])?;
    let (meta, frame_len) = EntryMeta::peek(store.get(last.position as usize..)?).ok()?;
    let last_index = base.plus(count as u64 - 1);
    let consistent = meta.index == last_index
        && meta.term == last.term
        && meta.kind == last.kind
        && meta.records == last.records
        && ends_store(store, last.position as usize + frame_len)
        && last.position >= header_len;
    if !consistent {
        return None;
    }
    let mut segment = Segment::empty(base, header.base_offset, header.prev_term, header_len);
    segment.config = ConfigAt::of_header(&header);
    segment.entries = count as u64;
    segment.store_len = store.len() as u64;
    segment.last_term = meta.term;
    segment.next_offset = meta.end_offset();
    segment.last_time = meta.time;
    segment.resident = None;
    Some(segment)
}

/// The configuration entry ending `segment`, if its last entry is one
/// (found through its resident slots, or else its index's last slot).
fn last_entry_config(segment: &Segment, store: &[u8], index: Option<&[u8]>) -> Option<ConfigAt> {
    if segment.entries == 0 {
        return None;
    }
    let position = match &segment.resident {
        Some(resident) => resident.slots.last()?.position,
        None => {
            let index = index?;
            let count = index.len() / SLOT_BYTES;
            let start = index.len().checked_sub(SLOT_BYTES)?;
            index::decode(count as u32 - 1, &index[start..])?.position
        }
    };
    let frame = store.get(position as usize..)?;
    let (meta, frame_len) = EntryMeta::peek(frame).ok()?;
    if meta.kind != EntryKind::Config || meta.index != segment.next_index().prev() {
        return None;
    }
    let bytes = bytes::Bytes::copy_from_slice(frame.get(..frame_len)?);
    let (entry, _) = Entry::decode(&bytes).ok()?;
    Some(ConfigAt {
        index: entry.meta.index,
        data: entry.data,
    })
}
