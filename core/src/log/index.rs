//! The index file: one fixed-width slot per entry of a segment.
//!
//! Owns the slot layout and its validation. The index is a hint derived from
//! the store, never the truth: it must never be trusted past the first slot
//! that fails its checks, so an index pre-grown with zeros, or cut short by a
//! crash, can never yield a wrong position or a wrong next offset.
//!
//! ```text
//! offset size field
//!      0    4 entry number relative to the segment's base, u32 LE
//!      4    4 position of the entry's frame in the store, u32 LE
//!      8    8 the entry's term, u64 LE
//!     16    1 the entry's kind in bits 0..=6; bit 7 set if stamped
//!     17    3 client records in the entry, u24 LE
//!     20    8 the stamp's producer id, u64 LE (zero if unstamped)
//!     28    8 the stamp's sequence number, u64 LE (zero if unstamped)
//!     36    4 CRC32C of bytes 0..36, u32 LE
//! ```
//!
//! Carrying term, kind and record count lets the active segment's terms and
//! client offsets be rebuilt from its index alone at startup, without
//! reading its store; carrying the producer stamp lets recovery rebuild the
//! producer table the same way (`log::producers`). Producer id 0 is a valid
//! id, so whether there is a stamp is a flag of its own, and an unstamped
//! slot must hold zeros where a stamp would be. Forty bytes keep a run of
//! `INDEX_WRITE_SLOTS` slots a whole number of pages. An index in an older
//! layout fails its slots' checks and is rebuilt from the store.

use crate::ids::Term;
use crate::limits::INDEX_ENTRY_BYTES;
use crate::log::entry::{EntryKind, Stamp};

/// Bytes of one slot.
pub const SLOT_BYTES: usize = INDEX_ENTRY_BYTES as usize;
const _: () = assert!(SLOT_BYTES == 40);

/// The kind byte's bit saying the slot carries a stamp.
const STAMPED: u8 = 0x80;
/// Bytes the CRC covers: everything before it.
const CRC_AT: usize = SLOT_BYTES - 4;

/// What the index knows of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Where the entry's frame starts in the store.
    pub position: u32,
    /// The entry's term.
    pub term: Term,
    /// The entry's kind.
    pub kind: EntryKind,
    /// Client records in the entry.
    pub records: u32,
    /// The entry's producer stamp, if it is a stamped batch. `None` also
    /// for a placeholder of a damaged entry whose bytes told nothing.
    pub stamp: Option<Stamp>,
}

/// The most records a slot can count (a u24).
pub const SLOT_RECORDS_MAX: u32 = (1 << 24) - 1;

/// The bytes of slot number `relative`.
pub fn encode(relative: u32, slot: Slot) -> [u8; SLOT_BYTES] {
    let mut out = [0u8; SLOT_BYTES];
    out[0..4].copy_from_slice(&relative.to_le_bytes());
    out[4..8].copy_from_slice(&slot.position.to_le_bytes());
    out[8..16].copy_from_slice(&slot.term.0.to_le_bytes());
    let kind = slot.kind as u8;
    assert!(kind & STAMPED == 0, "a kind leaves the stamp bit free");
    out[16] = kind;
    assert!(
        slot.records <= SLOT_RECORDS_MAX,
        "records per entry are bounded"
    );
    out[17..20].copy_from_slice(&slot.records.to_le_bytes()[..3]);
    if let Some(stamp) = slot.stamp {
        out[16] |= STAMPED;
        out[20..28].copy_from_slice(&stamp.producer.to_le_bytes());
        out[28..36].copy_from_slice(&stamp.sequence.to_le_bytes());
    }
    let crc = cairn_proto::frame::crc32c(&[&out[..CRC_AT]]);
    out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes slot number `relative` from exactly one slot's bytes; `None` if
/// the bytes are not that slot (zeros, torn, stale, damaged, or an unstamped
/// slot with a stamp's bytes set).
pub fn decode(relative: u32, bytes: &[u8]) -> Option<Slot> {
    let bytes: &[u8; SLOT_BYTES] = bytes.try_into().ok()?;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[CRC_AT..].try_into().ok()?);
    if crc != cairn_proto::frame::crc32c(&[&bytes[..CRC_AT]]) {
        return None;
    }
    if u32::from_le_bytes(bytes[0..4].try_into().ok()?) != relative {
        return None;
    }
    let stamped = bytes[16] & STAMPED != 0;
    let stamp = Stamp {
        producer: u64_at(20),
        sequence: u64_at(28),
    };
    if !stamped && (stamp.producer != 0 || stamp.sequence != 0) {
        return None;
    }
    Some(Slot {
        position: u32::from_le_bytes(bytes[4..8].try_into().ok()?),
        term: Term(u64_at(8)),
        kind: EntryKind::from_byte(bytes[16] & !STAMPED)?,
        records: u32::from_le_bytes([bytes[17], bytes[18], bytes[19], 0]),
        stamp: stamped.then_some(stamp),
    })
}

/// The longest prefix of valid slots in an index file's bytes.
///
/// Positions must start at or after `first_position` (the end of the store's
/// header), grow strictly, and stay below `store_len`; terms must not fall.
/// The first slot that breaks a rule ends the prefix.
pub fn valid_prefix(bytes: &[u8], first_position: u32, store_len: u64) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::with_capacity(bytes.len() / SLOT_BYTES);
    for (relative, chunk) in bytes.chunks_exact(SLOT_BYTES).enumerate() {
        let Ok(relative) = u32::try_from(relative) else {
            break;
        };
        let Some(slot) = decode(relative, chunk) else {
            break;
        };
        let after_previous = match slots.last() {
            Some(previous) => slot.position > previous.position && slot.term >= previous.term,
            None => slot.position >= first_position,
        };
        if !after_previous || u64::from(slot.position) >= store_len {
            break;
        }
        slots.push(slot);
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(position: u32, term: u64) -> Slot {
        Slot {
            position,
            term: Term(term),
            kind: EntryKind::Record,
            records: 3,
            stamp: None,
        }
    }

    fn file(slots: &[Slot]) -> Vec<u8> {
        slots
            .iter()
            .enumerate()
            .flat_map(|(i, s)| encode(i as u32, *s))
            .collect()
    }

    // Goal: a slot round-trips only at its own relative number, with or
    // without a stamp (producer id 0 included), and bytes that are not a
    // slot are refused.
    #[test]
    fn slot_round_trip() {
        let stamped = |producer, sequence| Slot {
            stamp: Some(Stamp { producer, sequence }),
            ..slot(100, 3)
        };
        let cases = [
            ("unstamped", slot(100, 3)),
            ("stamped", stamped(7, 12)),
            ("producer id 0, sequence 0", stamped(0, 0)),
            ("largest stamp", stamped(u64::MAX, u64::MAX)),
            (
                "a configuration entry",
                Slot {
                    kind: EntryKind::Config,
                    records: 0,
                    ..slot(8, 1)
                },
            ),
        ];
        for (label, slot) in cases {
            let bytes = encode(9, slot);
            assert_eq!(decode(9, &bytes), Some(slot), "{label}");
            assert_eq!(decode(8, &bytes), None, "{label}: another number");
        }
        assert_eq!(decode(0, &[0u8; SLOT_BYTES]), None, "zeros are not a slot");
    }

    // Goal: a slot whose bytes changed, or that is not a whole slot, or
    // that claims no stamp yet holds one, is refused (never a panic).
    #[test]
    fn corrupt_slots_are_refused() {
        let good = encode(
            4,
            Slot {
                stamp: Some(Stamp {
                    producer: 3,
                    sequence: 5,
                }),
                ..slot(100, 3)
            },
        );
        for at in [0, 5, 16, 17, 21, 30, 37] {
            let mut flipped = good;
            flipped[at] ^= 0x04;
            assert_eq!(decode(4, &flipped), None, "byte {at} flipped");
        }
        // The stamp flag cleared and the CRC made to match: an unstamped
        // slot with a stamp's bytes set is not a slot.
        let mut unflagged = good;
        unflagged[16] &= !STAMPED;
        let crc = cairn_proto::frame::crc32c(&[&unflagged[..CRC_AT]]);
        unflagged[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(4, &unflagged), None, "a stamp without its flag");
        // An unknown kind under a valid CRC.
        let mut unknown = encode(4, slot(100, 3));
        unknown[16] = 0x7f;
        let crc = cairn_proto::frame::crc32c(&[&unknown[..CRC_AT]]);
        unknown[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(4, &unknown), None, "an unknown kind");
        assert_eq!(decode(4, &good[..SLOT_BYTES - 1]), None, "short");
        // A slot of the older 24-byte layout, read as this one.
        let mut old = [0u8; SLOT_BYTES];
        old[..20].copy_from_slice(&good[..20]);
        let crc = cairn_proto::frame::crc32c(&[&old[..20]]);
        old[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(4, &old), None, "the older layout");
    }

    // Goal: the valid prefix stops at the first slot that breaks a rule.
    #[test]
    fn valid_prefix_table() {
        let good = [slot(20, 1), slot(40, 1), slot(60, 2)];
        let mut pregrown = file(&good);
        pregrown.extend_from_slice(&[0u8; 4 * SLOT_BYTES]);
        let mut flipped = file(&good);
        flipped[SLOT_BYTES + 5] ^= 1;
        let backwards = file(&[slot(20, 1), slot(10, 1)]);
        let term_falls = file(&[slot(20, 2), slot(40, 1)]);
        let cases: Vec<(&str, Vec<u8>, u64, usize)> = vec![
            ("whole", file(&good), 1000, 3),
            ("pre-grown with zeros", pregrown, 1000, 3),
            (
                "torn last slot",
                file(&good)[..3 * SLOT_BYTES - 1].to_vec(),
                1000,
                2,
            ),
            ("flipped second slot", flipped, 1000, 1),
            ("position past the store", file(&good), 60, 2),
            ("position goes backwards", backwards, 1000, 1),
            ("term falls", term_falls, 1000, 1),
            ("before the header", file(&[slot(5, 1)]), 1000, 0),
        ];
        for (name, bytes, store_len, expected) in cases {
            assert_eq!(
                valid_prefix(&bytes, 20, store_len).len(),
                expected,
                "{name}"
            );
        }
    }
}
