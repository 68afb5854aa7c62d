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
use crate::log::machine::{Log, Output, Pending};
use crate::log::scan::Damage;
use crate::time::Instant;

impl Log {
    /// Rewrites the damaged entry `index` with `entry`, an intact copy of
    /// it from another node. It is served again at once; its bytes are
    /// durable after a later sync (a crash before then finds it damaged
    /// again, as before).
    ///
    /// Fails with [`Error::IndexNotResident`] while its segment's index
    /// loads (retry once it has), and with [`Error::RepairRefused`] if the
    /// entry is not damaged, or `entry` is not the entry the index holds,
    /// or the frame's space cannot hold it.
    pub fn repair(&mut self, index: LogIndex, entry: &NewEntry) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        let refused = Err(Error::RepairRefused { index });
        if self.damage_at(index).is_none() {
            return refused;
        }
        let Some(position) = self.segment_of(index) else {
            return refused;
        };
        let segment = &self.segments[position];
        if segment.resident.is_none() {
            let base = segment.base;
            self.start_loading(base);
            return Err(Error::IndexNotResident { base });
        }
        let slot = segment.slot(index).expect("resident");
        let (start, end) = segment.frame_range(index).expect("resident");
        let offset = segment.offset(index).expect("resident");
        let same = slot.term == entry.term
            && slot.kind == entry.kind
            && slot.records as usize == entry.records.len();
        if !same || end <= start || end > segment.store_len {
            return refused;
        }
        let mut meta = EntryMeta {
            index,
            term: entry.term,
            kind: entry.kind,
            offset,
            records: slot.records,
            time: Instant::ZERO,
            producer: entry.producer,
        };
        let payload = match entry.kind {
            EntryKind::Record => Payload::Records(&entry.records),
            EntryKind::Noop | EntryKind::Config => Payload::Bytes(&entry.data),
        };
        let space = (end - start) as usize;
        let shortest = frame_len(&meta, entry);
        let spare = space
            .checked_sub(shortest)
            .ok_or(Error::RepairRefused { index })?;
        let padding = if spare < FRAME_HEADER_BYTES {
            // Fill the space exactly with a longer time: a varint of
            // 128^spare takes `spare` more bytes than one of 0.
            if spare >= 10 {
                return refused;
            }
            meta.time = Instant::from_nanos(if spare == 0 { 0 } else { 1 << (7 * spare) });
            0
        } else {
            spare
        };
        let mut bytes = BytesMut::with_capacity(space);
        encode_frame(&meta, payload, &mut bytes);
        if padding > 0 {
            let begun = frame::begin(&mut bytes, FrameKind::Padding);
            bytes.resize(bytes.len() + padding - FRAME_HEADER_BYTES, 0);
            frame::finish(&mut bytes, begun);
        }
        assert_eq!(
            bytes.len(),
            space,
            "a repaired frame fills its space exactly"
        );
        let file = FileId::store(segment.base);
        let write = DiskOp::Write {
            file,
            position: start,
            bytes: bytes.freeze(),
        };
        // Until the rewrite is synced, the entry is not durable (nor, as the
        // log counts, any after it): see `Log::durable_index`.
        self.submit(write, Pending::Change);
        self.submit(DiskOp::Sync { file }, Pending::Repaired { index });
        *self.repairing.entry(index).or_default() += 1;
        self.forget_damage(index);
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

    /// Takes `index` out of its damaged run, splitting the run around it.
    fn forget_damage(&mut self, index: LogIndex) {
        let run = self.damage_at(index).expect("damaged");
        self.damaged.remove(&run.first);
        let segment = &self.segments[self.segment_of(index).expect("held")];
        let offset = segment.offset(index).expect("resident");
        let after = if index.next() < segment.next_index() {
            segment.offset(index.next()).expect("resident")
        } else {
            segment.next_offset
        }
        .min(run.end_offset);
        if run.first < index {
            let before = Damage {
                end: index,
                end_offset: offset,
                ..run
            };
            self.damaged.insert(before.first, before);
        }
        if index.next() < run.end {
            let rest = Damage {
                first: index.next(),
                first_offset: after,
                ..run
            };
            self.damaged.insert(rest.first, rest);
        }
    }
}

/// Bytes the frame of `meta` holding `entry` takes.
fn frame_len(meta: &EntryMeta, entry: &NewEntry) -> usize {
    let meta_len = postcard::experimental::serialized_size(meta).expect("EntryMeta has a size");
    FRAME_HEADER_BYTES + meta_len + entry.payload_len()
}
