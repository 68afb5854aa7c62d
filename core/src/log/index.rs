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
//!     16    1 the entry's kind
//!     17    3 client records in the entry, u24 LE
//!     20    4 CRC32C of bytes 0..20, u32 LE
//! ```
//!
//! Carrying term, kind and record count lets the active segment's terms and
//! client offsets be rebuilt from its index alone at startup, without
//! reading its store.

use crate::ids::Term;
use crate::limits::INDEX_ENTRY_BYTES;
use crate::log::entry::EntryKind;

/// Bytes of one slot.
pub const SLOT_BYTES: usize = INDEX_ENTRY_BYTES as usize;
const _: () = assert!(SLOT_BYTES == 24);

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
}

/// The most records a slot can count (a u24).
pub const SLOT_RECORDS_MAX: u32 = (1 << 24) - 1;

/// The bytes of slot number `relative`.
pub fn encode(relative: u32, slot: Slot) -> [u8; SLOT_BYTES] {
    let mut out = [0u8; SLOT_BYTES];
    out[0..4].copy_from_slice(&relative.to_le_bytes());
    out[4..8].copy_from_slice(&slot.position.to_le_bytes());
    out[8..16].copy_from_slice(&slot.term.0.to_le_bytes());
    out[16] = slot.kind as u8;
    assert!(
        slot.records <= SLOT_RECORDS_MAX,
        "records per entry are bounded"
    );
    out[17..20].copy_from_slice(&slot.records.to_le_bytes()[..3]);
    let crc = crc32c::crc32c(&out[..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes slot number `relative` from exactly one slot's bytes; `None` if
/// the bytes are not that slot (zeros, torn, stale or damaged).
pub fn decode(relative: u32, bytes: &[u8]) -> Option<Slot> {
    let bytes: &[u8; SLOT_BYTES] = bytes.try_into().ok()?;
    let crc = u32::from_le_bytes(bytes[20..24].try_into().ok()?);
    if crc != crc32c::crc32c(&bytes[..20]) {
        return None;
    }
    if u32::from_le_bytes(bytes[0..4].try_into().ok()?) != relative {
        return None;
    }
    Some(Slot {
        position: u32::from_le_bytes(bytes[4..8].try_into().ok()?),
        term: Term(u64::from_le_bytes(bytes[8..16].try_into().ok()?)),
        kind: EntryKind::from_byte(bytes[16])?,
        records: u32::from_le_bytes([bytes[17], bytes[18], bytes[19], 0]),
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
        }
    }

    fn file(slots: &[Slot]) -> Vec<u8> {
        slots
            .iter()
            .enumerate()
            .flat_map(|(i, s)| encode(i as u32, *s))
            .collect()
    }

    // Goal: a slot round-trips only at its own relative number.
    #[test]
    fn slot_round_trip() {
        let bytes = encode(9, slot(100, 3));
        assert_eq!(decode(9, &bytes), Some(slot(100, 3)));
        assert_eq!(decode(8, &bytes), None);
        assert_eq!(decode(0, &[0u8; SLOT_BYTES]), None, "zeros are not a slot");
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
