//! Scanning a store's bytes frame by frame: the truth the index is built from.
//!
//! Owns the rule that tells a torn tail from corruption. Frames are read in
//! order; each must verify and be the entry that comes next. At the first
//! frame that does not, the scan looks further on for a valid frame that
//! continues the log:
//! - if one exists, the bytes between are **corruption** of entries that were
//!   written before others that survived: they are reported as damaged, kept
//!   in place (never truncated, never served), and the scan resumes there;
//! - if none exists, the bad bytes are a **torn tail**: the scan ends at them
//!   and the caller truncates the store there.
//!
//! It must never accept a frame that goes backwards (a lower index, term or
//! offset than what precedes it), so stale bytes cannot rejoin the log.

use crate::ids::{LogIndex, Offset, Term};
use crate::log::entry::{EntryKind, EntryMeta};
use crate::log::index::Slot;
use crate::time::Instant;
use cairn_proto::frame::FRAME_MAGIC;

/// A run of entries whose bytes are damaged: never served, to be repaired
/// from a peer. Ranges are half open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Damage {
    /// The first damaged entry.
    pub first: LogIndex,
    /// The entry after the last damaged one.
    pub end: LogIndex,
    /// The first client offset the damaged entries may hold.
    pub first_offset: Offset,
    /// The client offset after them.
    pub end_offset: Offset,
}

/// Where a scan stands: the next frame's position and what it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Byte position of the next frame.
    pub position: u64,
    /// The index the next entry must have.
    pub next_index: LogIndex,
    /// The offset the next record must have.
    pub next_offset: Offset,
    /// The term of the entry before; the next may not be lower.
    pub last_term: Term,
    /// The time of the newest entry seen.
    pub last_time: Instant,
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// One slot per entry scanned, damaged ones included.
    pub slots: Vec<Slot>,
    /// Damaged runs, in order.
    pub damaged: Vec<Damage>,
    /// Where the scan ended: after the last valid frame.
    pub end: Cursor,
    /// Bytes after `end` that hold no valid frame (a torn tail), if any.
    pub torn_bytes: u64,
}

/// Scans `store` from `start` to its end.
pub fn scan(store: &[u8], start: Cursor) -> Scan {
    let mut scan = Scan {
        slots: Vec::new(),
        damaged: Vec::new(),
        end: start,
        torn_bytes: 0,
    };
    let len = store.len() as u64;
    while scan.end.position < len {
        let at = scan.end.position;
        // Padding ends a large write on a page boundary. It is whole only
        // if the file ends with it or an entry follows it; anything else
        // after it is a torn tail, which it goes with.
        if let Some(padding) = padding_at(store, at) {
            if at + padding == len || next_frame(store, at + padding, &scan.end).is_some() {
                scan.end.position += padding;
                continue;
            }
        }
        if let Some((meta, frame_len)) = next_frame(store, at, &scan.end) {
            scan.accept(meta, at, frame_len as u64);
            continue;
        }
        match resync(store, at, &scan.end) {
            Some((position, meta)) => scan.mark_damaged(position, &meta),
            None => {
                scan.torn_bytes = len - at;
                break;
            }
        }
    }
    scan
}

/// The length of the padding frame at `at`, if one is there and verifies.
pub(crate) fn padding_at(store: &[u8], at: u64) -> Option<u64> {
    let frame = cairn_proto::frame::decode(store.get(at as usize..)?).ok()?;
    (frame.header.kind == cairn_proto::FrameKind::Padding)
        .then_some(frame.header.frame_len() as u64)
}

/// The frame at `at`, if it verifies and continues the log exactly.
fn next_frame(store: &[u8], at: u64, cursor: &Cursor) -> Option<(EntryMeta, usize)> {
    let (meta, frame_len) = EntryMeta::decode(store.get(at as usize..)?).ok()?;
    let continues = meta.index == cursor.next_index
        && meta.term >= cursor.last_term
        && meta.offset == cursor.next_offset;
    continues.then_some((meta, frame_len))
}

/// The next valid frame after `at` that can follow what precedes it, with
/// room before it for the entries it skips.
fn resync(store: &[u8], at: u64, cursor: &Cursor) -> Option<(u64, EntryMeta)> {
    let from = at as usize + 1;
    let tail = store.get(from..)?;
    let candidates = tail
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| *pair == FRAME_MAGIC);
    for (skip, _) in candidates {
        let position = (from + skip) as u64;
        let Ok((meta, _)) = EntryMeta::decode(&store[from + skip..]) else {
            continue;
        };
        let skipped = meta.index.0.saturating_sub(cursor.next_index.0);
        let plausible = meta.index >= cursor.next_index
            && meta.term >= cursor.last_term
            && meta.offset >= cursor.next_offset
            && (skipped > 0 || meta.offset == cursor.next_offset)
            && position - at >= skipped;
        if plausible {
            return Some((position, meta));
        }
    }
    None
}

/// Extends `scan` to `end` with placeholder slots for entries its store no
/// longer holds (a sealed store cut short or damaged at its end), so that
/// slots stay one per entry; returns the damage, which reads stop at, so a
/// placeholder is never read. `end_offset` is where the next segment's
/// offsets start, `end_term` the term of the entry before `end`.
pub fn pad(scan: &mut Scan, end: LogIndex, end_offset: Offset, end_term: Term) -> Damage {
    let skipped = end.0 - scan.end.next_index.0;
    assert!(skipped > 0, "padding adds entries");
    // The placeholders take the term of the entry before `end`, known from
    // the segment (or the next one's header): terms never fall.
    scan.end.last_term = scan.end.last_term.max(end_term);
    let after = EntryMeta {
        index: end,
        term: scan.end.last_term,
        kind: EntryKind::Record,
        offset: end_offset.max(scan.end.next_offset),
        records: 0,
        time: scan.end.last_time,
        producer: None,
    };
    scan.mark_damaged(scan.end.position + skipped, &after);
    *scan.damaged.last().expect("a damage was recorded")
}

impl Scan {
    fn accept(&mut self, meta: EntryMeta, position: u64, frame_len: u64) {
        self.slots.push(Slot {
            position: position as u32,
            term: meta.term,
            kind: meta.kind,
            records: meta.records,
            stamp: meta.producer,
        });
        let end = &mut self.end;
        end.position = position + frame_len;
        end.next_index = meta.index.next();
        end.next_offset = meta.end_offset();
        end.last_term = meta.term;
        end.last_time = end.last_time.max(meta.time);
    }

    /// Records the entries between the cursor and the valid frame found at
    /// `position` (holding `meta`) as damaged. Their slots get placeholder
    /// positions inside the damaged bytes, so positions keep growing; the
    /// first holds every record they skip, so offsets stay exact after them.
    fn mark_damaged(&mut self, position: u64, meta: &EntryMeta) {
        let cursor = self.end;
        let skipped = meta.index.0 - cursor.next_index.0;
        let records = u32::try_from(meta.offset.0 - cursor.next_offset.0).unwrap_or(u32::MAX);
        for n in 0..skipped {
            let (kind, records) = match (n, records) {
                (0, 1..) => (EntryKind::Record, records),
                _ => (EntryKind::Noop, 0),
            };
            self.slots.push(Slot {
                position: (cursor.position + n) as u32,
                term: cursor.last_term,
                kind,
                records,
                // Bytes that told nothing tell no stamp either.
                stamp: None,
            });
        }
        if skipped > 0 {
            self.damaged.push(Damage {
                first: cursor.next_index,
                end: meta.index,
                first_offset: cursor.next_offset,
                end_offset: meta.offset,
            });
        }
        self.end.position = position;
        self.end.next_index = meta.index;
        self.end.next_offset = meta.offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{encode_frame, Payload};
    use bytes::Bytes;

    fn store(count: u64) -> (Vec<u8>, Vec<u64>) {
        let mut out = vec![0xEE; 10];
        let mut positions = Vec::new();
        for i in 0..count {
            positions.push(out.len() as u64);
            let meta = EntryMeta {
                index: LogIndex(1 + i),
                term: Term(1),
                kind: EntryKind::Record,
                offset: Offset(i),
                records: 1,
                time: Instant::from_nanos(i),
                producer: None,
            };
            let record = [Bytes::from(vec![i as u8; 40])];
            encode_frame(&meta, Payload::Records(&record), &mut out);
        }
        (out, positions)
    }

    fn start() -> Cursor {
        Cursor {
            position: 10,
            next_index: LogIndex(1),
            next_offset: Offset(0),
            last_term: Term(0),
            last_time: Instant::ZERO,
        }
    }

    // Goal: a clean store scans whole; a torn last frame is a torn tail.
    #[test]
    fn clean_and_torn() {
        let (bytes, positions) = store(5);
        let clean = scan(&bytes, start());
        assert_eq!((clean.slots.len(), clean.torn_bytes), (5, 0));
        assert_eq!(clean.end.next_offset, Offset(5));
        let torn = &bytes[..bytes.len() - 7];
        let scanned = scan(torn, start());
        assert_eq!(scanned.slots.len(), 4);
        assert_eq!(scanned.end.position, positions[4]);
        assert_eq!(scanned.torn_bytes, torn.len() as u64 - positions[4]);
        assert!(scanned.damaged.is_empty());
    }

    // Goal: a flip before the tail is damage with its range, not a tail.
    #[test]
    fn flip_before_the_tail_is_damage() {
        let (mut bytes, positions) = store(5);
        bytes[positions[1] as usize + 20] ^= 0x10;
        let scanned = scan(&bytes, start());
        assert_eq!(scanned.torn_bytes, 0);
        assert_eq!(scanned.slots.len(), 5);
        let expected = Damage {
            first: LogIndex(2),
            end: LogIndex(3),
            first_offset: Offset(1),
            end_offset: Offset(2),
        };
        assert_eq!(scanned.damaged, [expected]);
        assert_eq!(scanned.end.next_index, LogIndex(6));
    }

    // Goal: a lost write in the middle (zeros) followed by a surviving one is
    // damage too; zeros at the end are a torn tail.
    #[test]
    fn zeroed_regions() {
        let (mut bytes, positions) = store(5);
        let hole = positions[1] as usize..positions[3] as usize;
        bytes[hole].fill(0);
        let scanned = scan(&bytes, start());
        assert_eq!(scanned.damaged.len(), 1);
        assert_eq!(
            (scanned.damaged[0].first, scanned.damaged[0].end),
            (LogIndex(2), LogIndex(4))
        );
        let (mut bytes, positions) = store(5);
        bytes[positions[3] as usize..].fill(0);
        let scanned = scan(&bytes, start());
        assert!(scanned.damaged.is_empty());
        assert_eq!(scanned.slots.len(), 3);
        assert!(scanned.torn_bytes > 0);
    }
}
