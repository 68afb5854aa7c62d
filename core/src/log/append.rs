//! Appending: framing entries, rolling segments over, and group commit.
//!
//! Owns the write path. It must never report an entry durable before the
//! sync that covers it has completed, and never let a segment's store grow
//! past the configured size while it holds an entry (one oversized entry may
//! have a segment of its own).

use bytes::{Bytes, BytesMut};

use crate::error::Error;
use crate::ids::{LogIndex, Offset, Term};
use cairn_proto::frame::{self, FrameKind};
use cairn_proto::FRAME_HEADER_BYTES;

use crate::limits::{
    ALIGN_FRAMES_ABOVE_BYTES, APPEND_BYTES_MAX, APPEND_ENTRIES_MAX, CONFIG_BYTES_MAX,
    ENTRY_META_BYTES_MAX, ENTRY_PAYLOAD_BYTES_MAX, ENTRY_RECORDS_MAX, INDEX_CHECKPOINT_BYTES,
    INDEX_WRITE_SLOTS, PAGE_BYTES, RECORD_BYTES_MAX,
};
use crate::log::disk::{DiskOp, FileId};
use crate::log::entry::{
    encode_frame, ConfigAt, EntryKind, EntryMeta, NewEntry, Payload, SegmentHeader,
};
use crate::log::index::{self, Slot, SLOT_BYTES};
use crate::log::machine::{Appended, Log, Output, Pending};
use crate::log::segment::Segment;
use crate::time::Instant;

/// Frames waiting to be written to the active segment, and which entry
/// of the append each one holds.
struct Batch {
    frames: BytesMut,
    position: u64,
    spans: Vec<(usize, std::ops::Range<usize>)>,
    /// Bytes to reserve before the first frame is framed here.
    needed: usize,
}

impl Log {
    /// Appends entries, stamped with `now`, and returns where they landed.
    /// They become durable with a later [`Output::Durable`].
    pub fn append(&mut self, now: Instant, entries: Vec<NewEntry>) -> Result<Appended, Error> {
        self.append_framed(now, entries)
            .map(|(appended, _)| appended)
    }

    /// Appends like [`Log::append`], and hands the entries back, each with
    /// the frame it was stored as (see [`NewEntry::frame`]): a leader sends
    /// those, and its followers store the same bytes.
    ///
    /// An entry that comes with a frame is stored as that frame, with the
    /// time in it, when the frame is the entry at this position (its
    /// index, offset, term, kind, records and stamp): it was framed by the
    /// leader's log for the same place in the same history. Otherwise it is
    /// framed afresh.
    pub fn append_framed(
        &mut self,
        now: Instant,
        mut entries: Vec<NewEntry>,
    ) -> Result<(Appended, Vec<NewEntry>), Error> {
        self.check_append(&entries)?;
        let first = self.next_index();
        let first_offset = self.next_offset();
        // At most what the frames take, padding included.
        let needed: usize = entries
            .iter()
            .map(|e| {
                FRAME_HEADER_BYTES
                    + ENTRY_META_BYTES_MAX as usize
                    + e.payload_len()
                    + (PAGE_BYTES as usize + FRAME_HEADER_BYTES)
            })
            .sum();
        let mut frames: Vec<Option<Bytes>> = vec![None; entries.len()];
        let mut batch = self.start_batch(needed);
        for (n, new) in entries.iter().enumerate() {
            let fresh = EntryMeta {
                index: self.next_index(),
                term: new.term,
                kind: new.kind,
                offset: self.next_offset(),
                records: new.records.len() as u32,
                time: now,
                producer: new.producer,
            };
            // The leader's frame, if it is this very entry here.
            let verbatim = new
                .frame
                .as_ref()
                .and_then(|frame| Some((stored_as(&fresh, frame)?, frame)));
            let meta = verbatim.map_or(fresh, |(meta, _)| meta);
            let frame_len = verbatim.map_or_else(|| frame_len(&meta, new), |(_, f)| f.len()) as u64;
            let padding_max = if frame_len >= ALIGN_FRAMES_ABOVE_BYTES {
                PAGE_BYTES + FRAME_HEADER_BYTES as u64
            } else {
                0
            };
            let active = self.active();
            if active.entries > 0
                && active.store_len + padding_max + frame_len > self.config.segment_bytes
            {
                self.flush(batch, &mut frames);
                let config = self.active().config.clone();
                self.roll(config);
                batch = self.start_batch(needed);
            }
            match verbatim {
                Some((_, frame)) => {
                    // Written as it is, between the frames framed here.
                    self.flush(batch, &mut frames);
                    let position = self.active().store_len;
                    let write = DiskOp::Write {
                        file: FileId::store(self.active().base),
                        position,
                        bytes: frame.clone(),
                    };
                    self.submit(write, Pending::Change);
                    self.landed(&meta, frame_len);
                    batch = self.start_batch(needed);
                    self.pad_if_large(&mut batch, frame_len);
                    frames[n] = Some(frame.clone());
                }
                None => self.push(&mut batch, &meta, new, n),
            }
            if new.kind == EntryKind::Config {
                // A configuration entry ends its segment: the next one's
                // header carries it (see `ConfigAt`).
                self.flush(batch, &mut frames);
                let config = ConfigAt {
                    index: meta.index,
                    data: new.data.clone(),
                };
                self.roll(config);
                batch = self.start_batch(needed);
            }
        }
        self.flush(batch, &mut frames);
        self.request_sync();
        self.apply_retention(now);
        for (entry, frame) in entries.iter_mut().zip(frames) {
            entry.frame = frame;
        }
        let appended = Appended {
            first,
            last: self.next_index().prev(),
            first_offset,
            end_offset: self.next_offset(),
        };
        Ok((appended, entries))
    }

    fn check_append(&self, entries: &[NewEntry]) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        let bytes: u64 = entries.iter().map(|e| e.payload_len() as u64).sum();
        if entries.is_empty() || entries.len() > APPEND_ENTRIES_MAX || bytes > APPEND_BYTES_MAX {
            return Err(Error::AppendOutOfBounds {
                entries: entries.len(),
                bytes,
            });
        }
        let mut last = self.last_term();
        for entry in entries {
            check_entry(entry)?;
            if entry.term < last {
                return Err(Error::TermRegressed {
                    last,
                    offered: entry.term,
                });
            }
            last = entry.term;
        }
        Ok(())
    }

    fn start_batch(&mut self, needed: usize) -> Batch {
        // The buffer is reused: once the driver drops the bytes of the
        // previous write, `reserve` (at the batch's first frame) takes the
        // same memory back, so a large append costs no fresh allocation
        // and no page faults. While the driver still holds them (a disk
        // model keeping unsynced writes), only what this append needs is
        // allocated; a batch that frames nothing (a follower storing its
        // leader's frames) allocates nothing.
        let mut frames = std::mem::take(&mut self.frame_buffer);
        frames.clear();
        Batch {
            frames,
            position: self.active().store_len,
            spans: Vec::new(),
            needed,
        }
    }

    /// Frames the `n`th entry of an append, `meta`, into the batch and adds
    /// it to the active segment.
    fn push(&mut self, batch: &mut Batch, meta: &EntryMeta, new: &NewEntry, n: usize) {
        if batch.spans.is_empty() {
            batch.frames.reserve(batch.needed);
        }
        let before = batch.frames.len();
        let payload = match meta.kind {
            EntryKind::Record => Payload::Records(&new.records),
            EntryKind::Noop | EntryKind::Config => Payload::Bytes(&new.data),
        };
        encode_frame(meta, payload, &mut batch.frames);
        let frame_len = (batch.frames.len() - before) as u64;
        batch.spans.push((n, before..batch.frames.len()));
        self.landed(meta, frame_len);
        self.pad_if_large(batch, frame_len);
    }

    /// Adds the entry `meta`, framed in `frame_len` bytes at the end of the
    /// active store, to the active segment.
    fn landed(&mut self, meta: &EntryMeta, frame_len: u64) {
        let active = self.active_mut();
        assert_eq!(
            meta.index,
            active.next_index(),
            "entries are appended densely"
        );
        assert_eq!(meta.offset, active.next_offset, "offsets are dense");
        let slot = Slot {
            position: active.store_len as u32,
            term: meta.term,
            kind: meta.kind,
            records: meta.records,
            stamp: meta.producer,
        };
        active
            .resident
            .as_mut()
            .expect("the active segment is resident")
            .push(slot);
        active.entries += 1;
        active.store_len += frame_len;
        active.last_term = meta.term;
        active.last_time = active.last_time.max(meta.time);
        active.next_offset = meta.end_offset();
        // Before any roll that may follow: the next header carries it.
        self.producers_appended(meta);
    }

    /// After a large frame, pads the store to the next page boundary.
    fn pad_if_large(&mut self, batch: &mut Batch, frame_len: u64) {
        if frame_len >= ALIGN_FRAMES_ABOVE_BYTES {
            let active = self.active_mut();
            active.store_len += pad_to_page(&mut batch.frames, active.store_len);
        }
    }

    /// Writes the batch's frames to the active segment, and gives each
    /// entry framed in it its frame. Its index slots
    /// follow once the entries are durable (`checkpoint_index`); the active
    /// segment's slots are resident, the file is only a hint, and recovery
    /// scans whatever tail it does not cover.
    fn flush(&mut self, batch: Batch, framed: &mut [Option<Bytes>]) {
        if batch.frames.is_empty() {
            return;
        }
        let base = self.active().base;
        let mut frames = batch.frames;
        let bytes = frames.split().freeze();
        self.frame_buffer = frames;
        for (n, span) in batch.spans {
            framed[n] = Some(bytes.slice(span));
        }
        let store = DiskOp::Write {
            file: FileId::store(base),
            position: batch.position,
            bytes,
        };
        self.submit(store, Pending::Change);
    }

    /// Once the active segment's durable entries hold a whole run of
    /// `INDEX_WRITE_SLOTS` slots not yet written, or span
    /// `INDEX_CHECKPOINT_BYTES` of store past what the index file covers,
    /// writes their slots and syncs the index. Recovery trusts a durable
    /// index and scans only the store past it, so a crash costs a restart
    /// at most that much reading, not the whole active segment. Only
    /// durable entries' slots are written: a synced index never points at
    /// store bytes a crash could take away.
    fn checkpoint_index(&mut self) {
        let active = self.active();
        if self.durable < active.base {
            return;
        }
        let durable = (self.durable.0 - active.base.0 + 1).min(active.entries);
        if durable <= self.index_written {
            return;
        }
        let slots = &active
            .resident
            .as_ref()
            .expect("the active segment is resident")
            .slots;
        let position = |n: u64| {
            slots
                .get(n as usize)
                .map_or(active.store_len, |slot| u64::from(slot.position))
        };
        let whole_runs = durable / INDEX_WRITE_SLOTS * INDEX_WRITE_SLOTS;
        let end = if whole_runs > self.index_written {
            whole_runs
        } else if position(durable) - position(self.index_written) >= INDEX_CHECKPOINT_BYTES {
            durable
        } else {
            return;
        };
        let index = FileId::index(active.base);
        self.write_index_through(end);
        self.submit(DiskOp::Sync { file: index }, Pending::Change);
    }

    /// Writes the active segment's slots from `index_written` up to `end`.
    pub(super) fn write_index_through(&mut self, end: u64) {
        if end <= self.index_written {
            return;
        }
        let active = self.active();
        let slots = &active
            .resident
            .as_ref()
            .expect("the active segment is resident")
            .slots;
        let bytes: Vec<u8> = (self.index_written..end)
            .flat_map(|relative| index::encode(relative as u32, slots[relative as usize]))
            .collect();
        let write = DiskOp::Write {
            file: FileId::index(active.base),
            position: self.index_written * SLOT_BYTES as u64,
            bytes: Bytes::from(bytes),
        };
        self.submit(write, Pending::Change);
        self.index_written = end;
    }

    /// Writes the active segment's index slots not yet written (before a
    /// clean shutdown, so that the next start reads no store tail).
    pub fn flush_index(&mut self) {
        if self.stopped.is_none() {
            self.write_index_through(self.active().entries);
        }
    }

    /// Seals the active segment and starts the next. The sealed index is cut
    /// to its exact length and synced, and the sealed store synced, before
    /// the new segment's files exist; the new store's header is durable
    /// before its name is. So a crash leaves the new segment absent or
    /// whole, and every sealed segment self-consistent. The new segment's
    /// header carries `config`, the configuration in effect after the
    /// sealed segment's last entry, and the producer table as it stands.
    pub(super) fn roll(&mut self, config: ConfigAt) {
        let sealed = self.active();
        let (base, entries, last) = (sealed.base, sealed.entries, sealed.next_index().prev());
        let (next, next_offset, last_term) =
            (sealed.next_index(), sealed.next_offset, sealed.last_term);
        self.write_index_through(entries);
        let index = FileId::index(base);
        self.submit(
            DiskOp::Truncate {
                file: index,
                len: entries * SLOT_BYTES as u64,
            },
            Pending::Change,
        );
        self.submit(DiskOp::Sync { file: index }, Pending::Change);
        self.submit(
            DiskOp::Sync {
                file: FileId::store(base),
            },
            Pending::SyncStore {
                through: last,
                group: false,
                generation: self.generation,
            },
        );
        self.create_segment(next, next_offset, last_term, config, false);
        self.touch(base);
    }

    /// Creates a new, empty active segment. Its header carries `config`,
    /// the producer table, which is as of the new base, and whether the
    /// log starts over at it (`starts_log`: a reset). Its files are
    /// durable, names included, once the directory sync it ends with is.
    pub(super) fn create_segment(
        &mut self,
        base: LogIndex,
        base_offset: Offset,
        prev_term: Term,
        config: ConfigAt,
        starts_log: bool,
    ) {
        assert!(
            self.producers.last_index().is_none_or(|last| last < base),
            "a header's table knows nothing from its base on"
        );
        let header = SegmentHeader {
            base,
            base_offset,
            prev_term,
            config_index: config.index,
            config: config.data.to_vec(),
            producers: self.producers.encode().into(),
            starts_log,
        }
        .encode();
        let store = FileId::store(base);
        let header_len = header.len() as u32;
        self.submit(DiskOp::Create { file: store }, Pending::Change);
        self.submit(
            DiskOp::Write {
                file: store,
                position: 0,
                bytes: Bytes::from(header),
            },
            Pending::Change,
        );
        self.submit(DiskOp::Sync { file: store }, Pending::Change);
        self.submit(
            DiskOp::Create {
                file: FileId::index(base),
            },
            Pending::Change,
        );
        self.submit(DiskOp::SyncDir, Pending::Change);
        let mut segment = Segment::empty(base, base_offset, prev_term, header_len);
        segment.config = config;
        self.segments.push_back(segment);
        self.index_written = 0;
    }

    /// Group commit: one sync in flight at a time; appends made meanwhile
    /// wait for the next, which covers them all.
    pub(super) fn request_sync(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        if self.group_sync_inflight {
            self.group_sync_wanted = true;
            return;
        }
        let active = self.active();
        let (file, through) = (FileId::store(active.base), active.next_index().prev());
        self.group_sync_inflight = true;
        let generation = self.generation;
        self.submit(
            DiskOp::Sync { file },
            Pending::SyncStore {
                through,
                group: true,
                generation,
            },
        );
    }

    pub(super) fn on_synced(&mut self, through: LogIndex, group: bool, generation: u64) {
        // A truncation since the sync was issued may have replaced entries
        // it covered: never call durable what it did not cover.
        let stale = generation != self.generation;
        if self.stopped.is_none() && !stale && through > self.durable {
            self.durable = through;
            self.outputs.push_back(Output::Durable { through });
            self.checkpoint_index();
        }
        if group {
            self.group_sync_inflight = false;
            // A sync overtaken by a truncation or a retirement proves
            // nothing: sync again, or its entries would wait for the next
            // append to become durable.
            if stale && self.durable < self.next_index().prev() {
                self.group_sync_wanted = true;
            }
            if std::mem::take(&mut self.group_sync_wanted) {
                self.request_sync();
            }
        }
    }
}

/// Checks one entry's shape and bounds: a batch holds at least one record
/// and no other bytes; Raft's own entries hold no records; everything fits.
fn check_entry(entry: &NewEntry) -> Result<(), Error> {
    let shape_ok = match entry.kind {
        EntryKind::Record => !entry.records.is_empty() && entry.data.is_empty(),
        EntryKind::Noop => entry.records.is_empty() && entry.producer.is_none(),
        EntryKind::Config => {
            entry.records.is_empty()
                && entry.producer.is_none()
                && entry.data.len() <= CONFIG_BYTES_MAX as usize
        }
    };
    let payload = entry.payload_len();
    if !shape_ok
        || entry.records.len() > ENTRY_RECORDS_MAX as usize
        || payload > ENTRY_PAYLOAD_BYTES_MAX as usize
    {
        return Err(Error::EntryOutOfBounds {
            records: entry.records.len(),
            bytes: payload,
        });
    }
    if let Some(record) = entry
        .records
        .iter()
        .find(|r| r.len() > RECORD_BYTES_MAX as usize)
    {
        return Err(Error::RecordTooLarge {
            len: record.len(),
            max: RECORD_BYTES_MAX,
        });
    }
    Ok(())
}

/// Appends a padding frame that carries `position` to the next page
/// boundary (or the one after, if the gap is smaller than a frame header);
/// returns its length, 0 if `position` is aligned already. A large write
/// ends on a page boundary, so the next one never writes a page again.
fn pad_to_page(frames: &mut BytesMut, position: u64) -> u64 {
    let gap = (PAGE_BYTES - position % PAGE_BYTES) % PAGE_BYTES;
    if gap == 0 {
        return 0;
    }
    let gap = if gap < FRAME_HEADER_BYTES as u64 {
        gap + PAGE_BYTES
    } else {
        gap
    };
    let start = frame::begin(frames, FrameKind::Padding);
    frames.resize(frames.len() + gap as usize - FRAME_HEADER_BYTES, 0);
    frame::finish(frames, start);
    debug_assert_eq!((position + gap) % PAGE_BYTES, 0);
    gap
}

/// The metadata of `frame` if it is the entry `fresh` describes, framed
/// by another log (the same place in the same history, any time);
/// `None` if it is not, or not a whole entry frame.
fn stored_as(fresh: &EntryMeta, frame: &Bytes) -> Option<EntryMeta> {
    let (meta, len) = EntryMeta::peek(frame).ok()?;
    let same = EntryMeta {
        time: fresh.time,
        ..meta
    };
    (same == *fresh && len == frame.len()).then_some(meta)
}

/// Bytes the frame of the entry `meta` holding `new` will take.
fn frame_len(meta: &EntryMeta, new: &NewEntry) -> usize {
    let meta_len = postcard::experimental::serialized_size(meta).expect("EntryMeta has a size");
    cairn_proto::FRAME_HEADER_BYTES + meta_len + new.payload_len()
}
