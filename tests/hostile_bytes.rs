//! Every decoder fed random and mutated bytes.
//!
//! Decoding hostile bytes must never panic, never accept a frame whose bytes
//! changed, and never let a claimed length drive an allocation: a frame
//! claiming more than `FRAME_PAYLOAD_MAX` is refused from its header alone.

use bytes::Bytes;
use cairn::core::ids::{LogIndex, Offset, Term};
use cairn::core::log::disk::FoundFile;
use cairn::core::log::entry::{encode_frame, Entry, EntryKind, EntryMeta, Payload, SegmentHeader};
use cairn::core::log::index;
use cairn::core::log::recovery;
use cairn::core::log::scan::{self, Cursor};
use cairn::core::time::Instant;
use cairn::proto::frame::{self, FrameKind, FRAME_PAYLOAD_MAX};
use cairn::proto::FrameError;
use proptest::prelude::*;

/// The frame of entry `index`: a batch holding one record, `data`.
fn entry_frame(data: &[u8], index: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let meta = EntryMeta {
        index: LogIndex(index),
        term: Term(3),
        kind: EntryKind::Record,
        offset: Offset(index - 1),
        records: 1,
        time: Instant::from_nanos(index),
        producer: None,
    };
    encode_frame(
        &meta,
        Payload::Records(&[Bytes::copy_from_slice(data)]),
        &mut out,
    );
    out
}

/// A small but valid store: header frame then entries 1..=count.
fn store(count: u64) -> Vec<u8> {
    let mut out = SegmentHeader {
        base: LogIndex(1),
        base_offset: Offset(0),
        prev_term: Term(0),
        ..SegmentHeader::default()
    }
    .encode();
    for index in 1..=count {
        out.extend_from_slice(&entry_frame(&vec![index as u8; 30 + index as usize], index));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    // Goal: random bytes never panic any decoder.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame::decode(&bytes);
        let _ = frame::decode_header(&bytes);
        let _ = SegmentHeader::decode(&bytes);
        let _ = EntryMeta::decode(&bytes);
        let _ = Entry::decode(&Bytes::from(bytes.clone()));
        let _ = index::decode(0, &bytes[..bytes.len().min(index::SLOT_BYTES)]);
        let _ = index::valid_prefix(&bytes, 0, u64::MAX);
        let start = Cursor {
            position: 0,
            next_index: LogIndex(1),
            next_offset: Offset(0),
            last_term: Term(0),
            last_time: Instant::ZERO,
        };
        let _ = scan::scan(&bytes, start);
        let meta = EntryMeta {
            index: LogIndex(1),
            term: Term(1),
            kind: EntryKind::Record,
            offset: Offset(0),
            records: 7,
            time: Instant::ZERO,
            producer: None,
        };
        let hand_made = Entry { meta, data: Bytes::from(bytes.clone()) };
        prop_assert!(hand_made.records().count() <= 7);
    }

    // Goal: any single changed byte in a frame is caught (CRC32C detects
    // every burst shorter than 32 bits), so a mutated frame is never
    // accepted as a different value.
    #[test]
    fn mutated_frames_are_refused(
        data in prop::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = entry_frame(&data, 7);
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        match Entry::decode(&Bytes::from(bytes)) {
            Err(_) => {}
            Ok((entry, _)) => prop_assert!(false, "mutated frame accepted: {entry:?}"),
        }
    }

    // Goal: a header claiming a huge payload is refused before any read of
    // the payload, whatever the rest of the bytes.
    #[test]
    fn huge_claims_are_refused_from_the_header(len in (FRAME_PAYLOAD_MAX + 1)..=u32::MAX, tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![0xCA, 0x1E, 1, FrameKind::Entry as u8];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(frame::decode_header(&bytes), Err(FrameError::TooLong { len, max: FRAME_PAYLOAD_MAX }));
    }

    // Goal: recovery over a valid store with random damage (mutations,
    // truncation, garbage appended, random index bytes) never panics, never
    // serves an entry that is not the one written, and keeps offsets dense.
    #[test]
    fn recovery_of_damaged_files(
        count in 1u64..20,
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 0..40),
        index_bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let original = store(count);
        let mut bytes = original.clone();
        for (at, xor) in &mutations {
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
        }
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        bytes.extend_from_slice(&garbage);
        let files = [
            FoundFile { name: "00000000000000000001.store", bytes: &bytes },
            FoundFile { name: "00000000000000000001.index", bytes: &index_bytes },
            FoundFile { name: "notes.txt", bytes: b"not the log's" },
        ];
        let Ok(recovered) = recovery::recover(&files) else { return Ok(()) };
        for segment in &recovered.segments {
            segment.check_invariants();
            let Some(resident) = &segment.resident else { continue };
            for (relative, slot) in resident.slots.iter().enumerate() {
                let index = segment.base.plus(relative as u64);
                let damaged = recovered.damaged.iter().any(|d| d.first <= index && index < d.end);
                if damaged {
                    continue;
                }
                // An entry recovery vouches for decodes to what was written.
                let (entry, _) = Entry::decode(&Bytes::copy_from_slice(&bytes[slot.position as usize..])).unwrap();
                prop_assert_eq!(entry.index, index);
                let expected = entry_frame(&vec![index.0 as u8; 30 + index.0 as usize], index.0);
                prop_assert_eq!(&bytes[slot.position as usize..slot.position as usize + expected.len()], &expected[..]);
            }
        }
    }
}
