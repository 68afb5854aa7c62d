//! Entries and the segment header as they are framed in a store file.
//!
//! Owns the payload layout of the store's frames. It must never accept bytes
//! it cannot verify: every decode goes through the frame's CRC first, and a
//! decoded entry must be the one its position promises.
//!
//! An entry frame's payload is its metadata, postcard-encoded, followed by
//! the record's raw bytes, so that a record is stored once and read back as a
//! slice of the buffer it was read into.

use bytes::Bytes;
use cairn_proto::frame::{self, FrameKind};
use cairn_proto::FrameError;
use serde::{Deserialize, Serialize};

use crate::ids::{LogIndex, Offset, Term};
use crate::limits::ENTRY_META_BYTES_MAX;
use crate::time::Instant;

/// What an entry is for. Only client records take a client offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EntryKind {
    /// A record produced by a client.
    Record = 0,
    /// A leader's no-op at the start of its term (Raft §8).
    Noop = 1,
    /// A cluster configuration (Raft §6).
    Config = 2,
}

impl EntryKind {
    /// The kind stored in an index slot's byte, if valid.
    pub fn from_byte(byte: u8) -> Option<EntryKind> {
        match byte {
            0 => Some(EntryKind::Record),
            1 => Some(EntryKind::Noop),
            2 => Some(EntryKind::Config),
            _ => None,
        }
    }

    /// Whether entries of this kind take a client offset.
    pub fn takes_offset(self) -> bool {
        self == EntryKind::Record
    }
}

/// An entry to append: the log assigns its index, offset and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// The Raft term it was created in.
    pub term: Term,
    /// What it is.
    pub kind: EntryKind,
    /// Its bytes (a record's value, or a configuration).
    pub data: Bytes,
}

/// An entry as stored and read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its Raft index.
    pub index: LogIndex,
    /// The Raft term it was created in.
    pub term: Term,
    /// What it is.
    pub kind: EntryKind,
    /// For a record, its client offset; for Raft's own entries, the offset
    /// the next record will take.
    pub offset: Offset,
    /// When it was appended, by the log's `now`; judges retention by age.
    pub time: Instant,
    /// Its bytes.
    pub data: Bytes,
}

/// The metadata in front of an entry's data: everything but the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// Its Raft index.
    pub index: LogIndex,
    /// The Raft term it was created in.
    pub term: Term,
    /// What it is.
    pub kind: EntryKind,
    /// Its client offset, or for Raft's own entries the next record's.
    pub offset: Offset,
    /// When it was appended.
    pub time: Instant,
}

impl EntryMeta {
    /// Decodes and verifies the entry frame at the start of `buf`, keeping
    /// only its metadata. Returns the metadata and the frame's length.
    pub fn decode(buf: &[u8]) -> Result<(EntryMeta, usize), FrameError> {
        let frame = frame::decode(buf)?;
        if frame.header.kind != FrameKind::Entry {
            return Err(FrameError::UnexpectedKind {
                expected: FrameKind::Entry,
                found: frame.header.kind,
            });
        }
        let (meta, _data): (EntryMeta, &[u8]) =
            frame::decode_payload_prefix(FrameKind::Entry, frame.payload)?;
        Ok((meta, frame.header.frame_len()))
    }
}

/// The first frame of every store file: where its segment starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The index of the segment's first entry (also in the file's name).
    pub base: LogIndex,
    /// The client offset the segment's first record takes.
    pub base_offset: Offset,
    /// The term of the entry just before `base` (Raft's prev_log_term).
    pub prev_term: Term,
}

impl Entry {
    /// The entry's metadata.
    pub fn meta(&self) -> EntryMeta {
        EntryMeta {
            index: self.index,
            term: self.term,
            kind: self.kind,
            offset: self.offset,
            time: self.time,
        }
    }

    /// Appends this entry's frame to `out`.
    pub fn encode<B: frame::FrameBuffer>(&self, out: &mut B) {
        let mut meta = [0u8; ENTRY_META_BYTES_MAX as usize];
        // EntryMeta is five varints and a one-byte enum: it always fits.
        let meta = postcard::to_slice(&self.meta(), &mut meta).expect("EntryMeta fits its bound");
        let start = frame::begin(out, FrameKind::Entry);
        out.put(meta);
        out.put(&self.data);
        frame::finish(out, start);
    }

    /// Decodes the entry frame at the start of `buf`, which the entry's data
    /// will borrow (zero copy). Returns the entry and its frame's length.
    pub fn decode(buf: &Bytes) -> Result<(Entry, usize), FrameError> {
        let frame = frame::decode(buf)?;
        if frame.header.kind != FrameKind::Entry {
            return Err(FrameError::UnexpectedKind {
                expected: FrameKind::Entry,
                found: frame.header.kind,
            });
        }
        let (meta, data): (EntryMeta, &[u8]) =
            frame::decode_payload_prefix(FrameKind::Entry, frame.payload)?;
        let data_start = frame.header.frame_len() - data.len();
        let entry = Entry {
            index: meta.index,
            term: meta.term,
            kind: meta.kind,
            offset: meta.offset,
            time: meta.time,
            data: buf.slice(data_start..frame.header.frame_len()),
        };
        Ok((entry, frame.header.frame_len()))
    }

    /// Bytes this entry's frame takes on disk.
    pub fn frame_len(&self) -> usize {
        let meta_len =
            postcard::experimental::serialized_size(&self.meta()).expect("EntryMeta has a size");
        cairn_proto::FRAME_HEADER_BYTES + meta_len + self.data.len()
    }
}

impl SegmentHeader {
    /// The header's frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        frame::encode(&mut out, FrameKind::SegmentHeader, self);
        out
    }

    /// Decodes the header frame at the start of a store file, returning the
    /// header and its frame's length.
    pub fn decode(buf: &[u8]) -> Result<(SegmentHeader, usize), FrameError> {
        let frame = frame::decode(buf)?;
        if frame.header.kind != FrameKind::SegmentHeader {
            return Err(FrameError::UnexpectedKind {
                expected: FrameKind::SegmentHeader,
                found: frame.header.kind,
            });
        }
        let header = frame::decode_payload(FrameKind::SegmentHeader, frame.payload)?;
        Ok((header, frame.header.frame_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, data: &'static [u8]) -> Entry {
        Entry {
            index: LogIndex(300),
            term: Term(7),
            kind,
            offset: Offset(1 << 40),
            time: Instant::from_nanos(123_456_789),
            data: Bytes::from_static(data),
        }
    }

    // Goal: every kind of entry round-trips, and its frame length is exact.
    #[test]
    fn entries_round_trip() {
        for (kind, data) in [
            (EntryKind::Record, &b"hello"[..]),
            (EntryKind::Noop, &b""[..]),
            (EntryKind::Config, &[0u8; 300][..]),
        ] {
            let original = entry(kind, data);
            let mut out = Vec::new();
            original.encode(&mut out);
            assert_eq!(out.len(), original.frame_len());
            out.extend_from_slice(b"next frame");
            let (decoded, len) = Entry::decode(&Bytes::from(out)).unwrap();
            assert_eq!(decoded, original);
            assert_eq!(len, original.frame_len());
        }
    }

    // Goal: a header frame is not mistaken for an entry, nor the reverse.
    #[test]
    fn kinds_are_not_confused() {
        let header = SegmentHeader {
            base: LogIndex(5),
            base_offset: Offset(3),
            prev_term: Term(2),
        };
        let bytes = header.encode();
        assert_eq!(
            SegmentHeader::decode(&bytes).unwrap(),
            (header, bytes.len())
        );
        assert!(Entry::decode(&Bytes::from(bytes)).is_err());
        let mut out = Vec::new();
        entry(EntryKind::Record, b"x").encode(&mut out);
        assert!(SegmentHeader::decode(&out).is_err());
    }
}
