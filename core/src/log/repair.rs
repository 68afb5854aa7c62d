//! Repairing a damaged entry in place, from an intact copy of it.
//!
//! Owns the rewrite of one entry's frame where it stands. A committed entry
//! whose bytes rotted must come back without the log ever being shorter
//! than it was: a node that cut its log at the damage and appended again
//! would, until refilled, look less up to date than it is, and could vote
//! for a candidate lacking committed entries (Alagappan et al., "Protocol-
//! Aware Recovery for Consensus-Based Storage", FAST 2018). So the intact
//! copy is written over the damaged frame, in exactly its bytes: same
//! index, term, kind, offset, records and producer; its time, which only
//! retention by age reads, is chosen so that the frame fills the space
//! exactly, or else a padding frame fills what is left.
//!
//! It must never change what the log says about any entry other than the
//! one repaired, and never move another frame.

use bytes::BytesMut;
use cairn_proto::frame::{self, FrameKind};
use cairn_proto::FRAME_HEADER_BYTES;

use crate::error::Error;
use crate::ids::LogIndex;
use crate::log::disk::{DiskOp, FileId};
use crate::log::entry::{encode_frame, EntryKind, EntryMeta, NewEntry, Payload};
use crate::log::index::{self, Slot, SLOT_BYTES};
use crate::log::machine::{Log, Output, Pending};
use crate::log::segment::Resident;
use crate::time::Instant;

impl Log {
    /// Rewrites the damaged run of entries starting at `first` with
    /// `copies`, intact copies of all of them from another node. They are
    /// served again at once, and durable (with the entries after them)
    /// once the rewrite's sync completes; a crash before then finds them
    /// damaged again.
    ///
    /// The index knows a run found at runtime (a read that failed its
    /// checksum) entry by entry, and each copy must be the entry it holds
    /// (same term, kind and records). A run found by recovery holds only
    /// placeholders — its bytes told nothing — so its copies are taken on
    /// `trusted`: the caller knows them committed, hence the very entries
    /// this log held (Raft's state machine safety).
    ///
    /// Fails with [`Error::IndexNotResident`] while its segment's index
    /// loads (retry once it has), and with [`Error::RepairRefused`] if no
    /// damaged run starts at `first`, or the copies do not cover it, or
    /// are not its entries, or do not fit its bytes.
    pub fn repair(
        &mut self,
        first: LogIndex,
        copies: &[NewEntry],
        trusted: bool,
    ) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        let refused = Err(Error::RepairRefused { index: first });
        let Some(run) = self.damage_at(first).filter(|run| run.first == first) else {
            return refused;
        };
        let last = run.end.prev();
        if copies.len() as u64 != run.end.0 - run.first.0 {
            return refused;
        }
        let Some(position) = self.segment_of(first) else {
            return refused;
        };
        let segment = &self.segments[position];
        if !segment.contains(last) {
            return refused; // Runs do not cross segments.
        }
        if segment.resident.is_none() {
            let base = segment.base;
            self.start_loading(base);
            return Err(Error::IndexNotResident { base });
        }
        let records: u64 = copies.iter().map(|c| c.records.len() as u64).sum();
        let matches = (0..copies.len()).all(|k| {
            let slot = segment.slot(first.plus(k as u64)).expect("resident");
            slot.term == copies[k].term
                && slot.kind == copies[k].kind
                && slot.records as usize == copies[k].records.len()
        });
        let (start, _) = segment.frame_range(first).expect("resident");
        let (_, end) = segment.frame_range(last).expect("resident");
        let fits_offsets = run.first_offset.plus(records) == run.end_offset;
        if !(matches || trusted) || !fits_offsets || end <= start || end > segment.store_len {
            return refused;
        }
        // Each frame as short as it can be (time 0), then the spare bytes
        // filled: by a padding frame if there is room for one, else by
        // longer times (a varint of 128^k takes k more bytes than 0's).
        let mut metas = Vec::with_capacity(copies.len());
        let mut offset = run.first_offset;
        for (k, copy) in copies.iter().enumerate() {
            metas.push(EntryMeta {
                index: first.plus(k as u64),
                term: copy.term,
                kind: copy.kind,
                offset,
                records: copy.records.len() as u32,
                time: Instant::ZERO,
                producer: copy.producer,
            });
            offset = offset.plus(copy.records.len() as u64);
        }
        let space = (end - start) as usize;
        let shortest: usize = metas.iter().zip(copies).map(|(m, c)| frame_len(m, c)).sum();
        let Some(mut spare) = space.checked_sub(shortest) else {
            return refused;
        };
        let padding = if spare >= FRAME_HEADER_BYTES {
            std::mem::take(&mut spare)
        } else {
            0
        };
        for meta in &mut metas {
            let extra = spare.min(9);
            if extra > 0 {
                meta.time = Instant::from_nanos(1 << (7 * extra));
                spare -= extra;
            }
        }
        if spare > 0 {
            return refused;
        }
        let mut bytes = BytesMut::with_capacity(space);
        let mut slots = Vec::with_capacity(copies.len());
        for (meta, copy) in metas.iter().zip(copies) {
            slots.push(Slot {
                position: (start as usize + bytes.len()) as u32,
                term: meta.term,
                kind: meta.kind,
                records: meta.records,
                stamp: meta.producer,
            });
            let payload = match copy.kind {
                EntryKind::Record => Payload::Records(&copy.records),
                EntryKind::Noop | EntryKind::Config => Payload::Bytes(&copy.data),
            };
            encode_frame(meta, payload, &mut bytes);
        }
        if padding > 0 {
            let begun = frame::begin(&mut bytes, FrameKind::Padding);
            bytes.resize(bytes.len() + padding - FRAME_HEADER_BYTES, 0);
            frame::finish(&mut bytes, begun);
        }
        assert_eq!(bytes.len(), space, "a repaired run fills its bytes exactly");
        // The index now tells the frames where they are, in memory and (if
        // the slots reached it) in the index file.
        let (base, relative) = (segment.base, (first.0 - segment.base.0) as usize);
        let sealed = position + 1 < self.segments.len();
        let segment = &mut self.segments[position];
        let resident = segment.resident.as_mut().expect("resident");
        let mut all = std::mem::take(&mut resident.slots);
        all[relative..relative + slots.len()].copy_from_slice(&slots);
        *resident = Resident::from_slots(all);
        if last.next() == segment.next_index() {
            segment.last_term = metas.last().expect("a run").term;
        }
        let file = FileId::store(base);
        let write = DiskOp::Write {
            file,
            position: start,
            bytes: bytes.freeze(),
        };
        self.submit(write, Pending::Change);
        if sealed || (relative as u64) < self.index_written {
            let index_bytes: Vec<u8> = slots
                .iter()
                .enumerate()
                .flat_map(|(k, slot)| index::encode((relative + k) as u32, *slot))
                .collect();
            let write = DiskOp::Write {
                file: FileId::index(base),
                position: (relative * SLOT_BYTES) as u64,
                bytes: index_bytes.into(),
            };
            self.submit(write, Pending::Change);
            self.submit(
                DiskOp::Sync {
                    file: FileId::index(base),
                },
                Pending::Change,
            );
        }
        // Until the rewrite is synced, the entries are not durable (nor, as
        // the log counts, any after them): see `Log::durable_index`.
        self.submit(DiskOp::Sync { file }, Pending::Repaired { index: first });
        *self.repairing.entry(first).or_default() += 1;
        self.damaged.remove(&first);
        Ok(())
    }

    /// A repair's sync completed.
    pub(super) fn on_repaired(&mut self, index: LogIndex) {
        let before = self.durable_index();
        if let Some(count) = self.repairing.get_mut(&index) {
            *count -= 1;
            if *count == 0 {
                self.repairing.remove(&index);
            }
        }
        let after = self.durable_index();
        if self.stopped.is_none() && after > before {
            self.outputs.push_back(Output::Durable { through: after });
        }
    }
}

/// Bytes the frame of `meta` holding `entry` takes.
fn frame_len(meta: &EntryMeta, entry: &NewEntry) -> usize {
    let meta_len = postcard::experimental::serialized_size(meta).expect("EntryMeta has a size");
    FRAME_HEADER_BYTES + meta_len + entry.payload_len()
}
