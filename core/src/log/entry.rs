//! Entries and the segment header as they are framed in a store file.
//!
//! Owns the payload layout of the store's frames. It must never accept bytes
//! it cannot verify: every decode goes through the frame's CRC first, and a
//! decoded entry must be the one its position promises.
//!
//! An entry frame's payload is its metadata, postcard-encoded, followed by
//! its bytes: for a batch of client records, each record as a postcard
//! varint length and its raw bytes. A record is stored once and read back as
//! a slice of the buffer it was read into; a batch costs one frame and one
//! checksum however many records it holds.

use std::sync::Arc;

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

    /// Whether entries of this kind take client offsets (one per record).
    pub fn takes_offset(self) -> bool {
        self == EntryKind::Record
    }
}

/// An entry to append: the log assigns its index, offsets and time.
///
/// A client entry is a batch of records, framed and checksummed once: the
/// per-record cost of a frame (a CRC32C pass and a header) would otherwise
/// dominate small records. Each record still takes its own offset.
///
/// Once a log has appended an entry, it may hand it back with `frame`: the
/// bytes it stored. A follower's log stores such a frame as it is, with the
/// leader's time, rather than framing the entry again: every replica then
/// holds the same bytes, and the record bytes are copied and checksummed
/// once in the cluster, not once per replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewEntry {
    /// The Raft term it was created in.
    pub term: Term,
    /// What it is.
    pub kind: EntryKind,
    /// For Raft's own entries, their bytes; empty for a batch of records.
    pub data: Bytes,
    /// For a batch, its records (at least one); none for Raft's own entries.
    /// Shared: a leader sends the same entry to every follower, and a copy
    /// costs one reference count, not one per record.
    pub records: Arc<[Bytes]>,
    /// For a batch from an idempotent producer, its stamp.
    pub producer: Option<Stamp>,
    /// The frame a log stored this entry as (metadata, payload and CRC),
    /// set only by [`crate::log::Log`] itself. It never travels on a wire
    /// (it is not serialized): it is trusted as the log's own encoding,
    /// and it is the entry wherever it is set.
    #[serde(skip)]
    pub(crate) frame: Option<Bytes>,
}

/// Equal entries hold the same things; whether one carries its frame is
/// not part of what it is.
impl PartialEq for NewEntry {
    fn eq(&self, other: &NewEntry) -> bool {
        self.term == other.term
            && self.kind == other.kind
            && self.data == other.data
            && self.records == other.records
            && self.producer == other.producer
    }
}

impl Eq for NewEntry {}

impl NewEntry {
    /// A batch of client records.
    pub fn records(term: Term, records: Vec<Bytes>) -> NewEntry {
        NewEntry {
            term,
            kind: EntryKind::Record,
            data: Bytes::new(),
            records: records.into(),
            producer: None,
            frame: None,
        }
    }

    /// A leader's no-op.
    pub fn noop(term: Term) -> NewEntry {
        NewEntry {
            term,
            kind: EntryKind::Noop,
            data: Bytes::new(),
            records: Arc::new([]),
            producer: None,
            frame: None,
        }
    }

    /// A cluster configuration.
    pub fn config(term: Term, data: Bytes) -> NewEntry {
        NewEntry {
            term,
            kind: EntryKind::Config,
            data,
            records: Arc::new([]),
            producer: None,
            frame: None,
        }
    }

    /// The same batch, stamped by an idempotent producer.
    pub fn stamped(self, stamp: Stamp) -> NewEntry {
        assert_eq!(self.kind, EntryKind::Record, "only batches are stamped");
        NewEntry {
            producer: Some(stamp),
            frame: None,
            ..self
        }
    }

    /// The entry `entry` to append again elsewhere (a leader sending what
    /// it read from its disk): its records are slices of `entry`'s buffer.
    pub fn from_stored(entry: &Entry) -> NewEntry {
        match entry.kind {
            EntryKind::Record => {
                let records: Vec<Bytes> = entry.records().map(|(_, r)| r).collect();
                // A verified frame holds what its metadata counts: we wrote it.
                assert_eq!(
                    records.len() as u64,
                    u64::from(entry.records),
                    "a batch holds its count"
                );
                NewEntry {
                    producer: entry.producer,
                    ..NewEntry::records(entry.term, records)
                }
            }
            EntryKind::Noop => NewEntry::noop(entry.term),
            EntryKind::Config => NewEntry::config(entry.term, entry.data.clone()),
        }
    }

    /// Bytes of the entry's payload once framed.
    pub fn payload_len(&self) -> usize {
        self.data.len()
            + self
                .records
                .iter()
                .map(|r| varint_len(r.len()) + r.len())
                .sum::<usize>()
    }
}

/// Bytes of a postcard varint holding `value`.
fn varint_len(value: usize) -> usize {
    let bits = usize::BITS - value.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// An entry as stored and read back: its metadata (readable through the
/// entry itself, as `entry.index`, `entry.offset`, ...) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index, term, kind, first offset, record count and time.
    pub meta: EntryMeta,
    /// Its payload: Raft's own bytes, or the batch's records, each a
    /// postcard varint length and the record's bytes (see [`Entry::records`]).
    pub data: Bytes,
}

impl core::ops::Deref for Entry {
    type Target = EntryMeta;

    fn deref(&self) -> &EntryMeta {
        &self.meta
    }
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
    /// Its first record's offset, or for Raft's own entries the next one's.
    pub offset: Offset,
    /// Client records it holds.
    pub records: u32,
    /// When it was appended.
    pub time: Instant,
    /// For a batch from an idempotent producer, who produced it and its
    /// sequence number (a retried batch is recognised by these).
    pub producer: Option<Stamp>,
}

/// An idempotent producer's id and the sequence number of one of its
/// batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The producer.
    pub producer: u64,
    /// The batch's sequence number: each next batch takes the next one.
    pub sequence: u64,
}

impl EntryMeta {
    /// The offset after this entry's records.
    pub fn end_offset(&self) -> Offset {
        self.offset.plus(u64::from(self.records))
    }

    /// Decodes and verifies the entry frame at the start of `buf`, keeping
    /// only its metadata. Returns the metadata and the frame's length.
    pub fn decode(buf: &[u8]) -> Result<(EntryMeta, usize), FrameError> {
        let (meta, _, frame_len) = decode_verified(buf)?;
        Ok((meta, frame_len))
    }
}

impl EntryMeta {
    /// Reads the metadata of the entry frame at the start of `buf` without
    /// verifying its checksum: the frame may be large, and this is for the
    /// O(1) start-up check of a sealed segment, whose caller cross-checks
    /// the result against the index slot, the file's length and the next
    /// segment's header. Reads verify every frame in full.
    pub fn peek(buf: &[u8]) -> Result<(EntryMeta, usize), FrameError> {
        let header = frame::decode_header(buf)?;
        if header.kind != FrameKind::Entry {
            return Err(FrameError::UnexpectedKind {
                expected: FrameKind::Entry,
                found: header.kind,
            });
        }
        let meta_end = header
            .frame_len()
            .min(cairn_proto::FRAME_HEADER_BYTES + ENTRY_META_BYTES_MAX as usize);
        let Some(prefix) = buf.get(cairn_proto::FRAME_HEADER_BYTES..meta_end) else {
            return Err(FrameError::Truncated {
                needed: meta_end,
                available: buf.len(),
            });
        };
        let (meta, _): (EntryMeta, &[u8]) = frame::decode_payload_prefix(FrameKind::Entry, prefix)?;
        Ok((meta, header.frame_len()))
    }
}

/// Decodes and verifies the entry frame at the start of `buf`: its
/// checksum, its kind and its batch. Returns the metadata, where the data
/// starts and the frame's length.
fn decode_verified(buf: &[u8]) -> Result<(EntryMeta, usize, usize), FrameError> {
    let frame = frame::decode(buf)?;
    if frame.header.kind != FrameKind::Entry {
        return Err(FrameError::UnexpectedKind {
            expected: FrameKind::Entry,
            found: frame.header.kind,
        });
    }
    let (meta, data): (EntryMeta, &[u8]) =
        frame::decode_payload_prefix(FrameKind::Entry, frame.payload)?;
    check_batch(&meta, data)?;
    let frame_len = frame.header.frame_len();
    Ok((meta, frame_len - data.len(), frame_len))
}

/// Checks that an entry's payload holds exactly the records its metadata
/// counts: a checksum can pass over bytes that were framed wrongly.
fn check_batch(meta: &EntryMeta, mut data: &[u8]) -> Result<(), FrameError> {
    let malformed = |error| FrameError::MalformedPayload {
        kind: FrameKind::Entry,
        error,
    };
    if (meta.records > 0) != meta.kind.takes_offset() {
        return Err(malformed(postcard::Error::DeserializeBadEnum));
    }
    if meta.records == 0 {
        return Ok(());
    }
    for _ in 0..meta.records {
        let (len, rest): (u32, &[u8]) = postcard::take_from_bytes(data).map_err(malformed)?;
        data = rest
            .get(len as usize..)
            .ok_or(malformed(postcard::Error::DeserializeUnexpectedEnd))?;
    }
    if data.is_empty() {
        Ok(())
    } else {
        Err(FrameError::TrailingBytes {
            kind: FrameKind::Entry,
            len: data.len(),
        })
    }
}

/// What an entry's payload is made of, for framing.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// Raw bytes (Raft's own entries, or an already encoded batch).
    Bytes(&'a [u8]),
    /// Records to encode as a batch.
    Records(&'a [Bytes]),
}

/// Appends the frame of the entry `meta` with `payload` to `out`.
pub fn encode_frame<B: frame::FrameBuffer>(meta: &EntryMeta, payload: Payload<'_>, out: &mut B) {
    let mut head = [0u8; ENTRY_META_BYTES_MAX as usize];
    // EntryMeta is six varints and a one-byte enum: it always fits.
    let head = postcard::to_slice(meta, &mut head).expect("EntryMeta fits its bound");
    let start = frame::begin(out, FrameKind::Entry);
    out.put(head);
    match payload {
        Payload::Bytes(bytes) => out.put(bytes),
        Payload::Records(records) => {
            for record in records {
                let mut len = [0u8; 5];
                let len = postcard::to_slice(&(record.len() as u32), &mut len)
                    .expect("a u32 fits 5 bytes");
                out.put(len);
                out.put(record);
            }
        }
    }
    frame::finish(out, start);
}

/// The first frame of every store file: where its segment starts, the
/// configuration in effect before its first entry, the idempotent
/// producers' table (see [`crate::log::producers`]), and whether the log
/// starts over at it.
///
/// Its layout is the frame's version 1 (the frame's version byte and CRC32C
/// cover it, as every frame). A header written before it carried the table
/// does not decode; recovery treats it as a damaged header, scans the
/// segment's entries, and learns the table from an earlier header and the
/// entries' slots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The index of the segment's first entry (also in the file's name).
    pub base: LogIndex,
    /// The client offset the segment's first record takes.
    pub base_offset: Offset,
    /// The term of the entry just before `base` (Raft's prev_log_term).
    pub prev_term: Term,
    /// The index of the last configuration entry before `base`
    /// (`LogIndex(0)` if none).
    pub config_index: LogIndex,
    /// That entry's data (empty if none).
    pub config: Vec<u8>,
    /// The producer table as of `base` (it knows no entry from `base` on),
    /// encoded (`Producers::encode`); decoded and checked by its owner,
    /// like `config`.
    pub producers: Vec<u8>,
    /// Whether the log starts over here (a snapshot installed over a log
    /// that lacked its end or conflicted with it): recovery drops every
    /// segment before it. The log deletes them only once this one is
    /// durable, so a crash between leaves the old log or the new one,
    /// never neither.
    pub starts_log: bool,
}

/// The configuration in effect at a point of the log: the data of the last
/// configuration entry at or before it, and that entry's index (`LogIndex(0)`
/// and no data before any). The log keeps it opaque; its owner decodes it.
///
/// A configuration entry always ends its segment, and the next segment's
/// header carries it: so every segment knows, from its header alone, the
/// configuration in effect throughout it, and recovery, retention and
/// snapshots never need to read old entries to find one.
#[derive(Clone, Debug, Default, Eq)]
pub struct ConfigAt {
    /// The configuration entry's index (`LogIndex(0)` if none).
    pub index: LogIndex,
    /// Its data.
    pub data: Bytes,
}

impl PartialEq for ConfigAt {
    /// Equal indexes and bytes. Copies of one configuration share their
    /// bytes, so comparing them (as Raft's invariants do after every step)
    /// need not read them.
    fn eq(&self, other: &ConfigAt) -> bool {
        let shared =
            self.data.as_ptr() == other.data.as_ptr() && self.data.len() == other.data.len();
        self.index == other.index && (shared || self.data == other.data)
    }
}

impl ConfigAt {
    /// The configuration a segment's header carries.
    pub fn of_header(header: &SegmentHeader) -> ConfigAt {
        ConfigAt {
            index: header.config_index,
            data: Bytes::copy_from_slice(&header.config),
        }
    }
}

impl Entry {
    /// Appends this entry's frame to `out`.
    pub fn encode<B: frame::FrameBuffer>(&self, out: &mut B) {
        encode_frame(&self.meta, Payload::Bytes(&self.data), out);
    }

    /// The batch's records with their offsets (none for Raft's own
    /// entries), as slices of the entry's bytes.
    ///
    /// An entry the log decoded always yields `records` records; one built
    /// by hand with bytes that are not a batch yields what parses, then
    /// stops.
    pub fn records(&self) -> impl Iterator<Item = (Offset, Bytes)> + '_ {
        // A position in the data, not a shrinking slice of it: each record
        // costs one reference to the buffer.
        let mut at = 0;
        (0..u64::from(self.records)).map_while(move |n| {
            let rest = self.data.get(at..)?;
            let (len, tail): (u32, &[u8]) = postcard::take_from_bytes(rest).ok()?;
            let start = at + (rest.len() - tail.len());
            let end = start
                .checked_add(len as usize)
                .filter(|&end| end <= self.data.len())?;
            at = end;
            Some((self.offset.plus(n), self.data.slice(start..end)))
        })
    }

    /// The offset after this entry's records.
    pub fn end_offset(&self) -> Offset {
        self.offset.plus(u64::from(self.records))
    }

    /// Decodes the entry frame at the start of `buf`, which the entry's data
    /// will borrow (zero copy). Returns the entry and its frame's length.
    pub fn decode(buf: &Bytes) -> Result<(Entry, usize), FrameError> {
        let (meta, data_start, frame_len) = decode_verified(buf)?;
        let entry = Entry {
            meta,
            data: buf.slice(data_start..frame_len),
        };
        Ok((entry, frame_len))
    }

    /// Bytes this entry's frame takes on disk.
    pub fn frame_len(&self) -> usize {
        let meta_len =
            postcard::experimental::serialized_size(&self.meta).expect("EntryMeta has a size");
        cairn_proto::FRAME_HEADER_BYTES + meta_len + self.data.len()
    }
}

impl SegmentHeader {
    /// The header's frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.config.len() + self.producers.len());
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

    fn meta(kind: EntryKind, records: u32) -> EntryMeta {
        EntryMeta {
            index: LogIndex(300),
            term: Term(7),
            kind,
            offset: Offset(1 << 40),
            records,
            time: Instant::from_nanos(123_456_789),
            producer: None,
        }
    }

    // Goal: a batch of records and Raft's own entries round-trip; records
    // come back with their offsets, and the frame length is exact.
    #[test]
    fn entries_round_trip() {
        let records = vec![
            Bytes::from_static(b"hello"),
            Bytes::new(),
            Bytes::from(vec![9u8; 300]),
        ];
        let cases: Vec<(EntryMeta, Payload<'_>)> = vec![
            (meta(EntryKind::Record, 3), Payload::Records(&records)),
            (meta(EntryKind::Noop, 0), Payload::Bytes(b"")),
            (meta(EntryKind::Config, 0), Payload::Bytes(&[0u8; 300])),
        ];
        for (meta, payload) in cases {
            let mut out = Vec::new();
            encode_frame(&meta, payload, &mut out);
            let framed = out.len();
            out.extend_from_slice(b"next frame");
            let (decoded, len) = Entry::decode(&Bytes::from(out)).unwrap();
            assert_eq!(
                (decoded.meta, len, decoded.frame_len()),
                (meta, framed, framed)
            );
            let mut again = Vec::new();
            decoded.encode(&mut again);
            assert_eq!(
                again.len(),
                framed,
                "an entry read back frames to the same bytes"
            );
            let got: Vec<(Offset, Bytes)> = decoded.records().collect();
            let expected: Vec<(Offset, Bytes)> = match payload {
                Payload::Records(records) => (0..)
                    .map(|n| meta.offset.plus(n))
                    .zip(records.iter().cloned())
                    .collect(),
                Payload::Bytes(_) => Vec::new(),
            };
            assert_eq!(got, expected);
        }
    }

    // Goal: a batch whose count disagrees with its bytes is malformed even
    // when its checksum holds.
    #[test]
    fn miscounted_batches_are_malformed() {
        let records = vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        for (count, kind) in [
            (1, EntryKind::Record),
            (3, EntryKind::Record),
            (2, EntryKind::Noop),
        ] {
            let mut out = Vec::new();
            encode_frame(&meta(kind, count), Payload::Records(&records), &mut out);
            assert!(
                Entry::decode(&Bytes::from(out.clone())).is_err(),
                "{count} {kind:?}"
            );
            assert!(EntryMeta::decode(&out).is_err());
        }
    }

    fn entry(kind: EntryKind, data: &'static [u8]) -> Entry {
        Entry {
            meta: meta(kind, 0),
            data: Bytes::from_static(data),
        }
    }

    // Goal: a header frame is not mistaken for an entry, nor the reverse.
    #[test]
    fn kinds_are_not_confused() {
        let header = SegmentHeader {
            base: LogIndex(5),
            base_offset: Offset(3),
            prev_term: Term(2),
            config_index: LogIndex(4),
            config: vec![1, 2, 3],
            producers: vec![4, 5],
            starts_log: true,
        };
        let bytes = header.encode();
        assert_eq!(
            SegmentHeader::decode(&bytes).unwrap(),
            (header, bytes.len())
        );
        assert!(Entry::decode(&Bytes::from(bytes)).is_err());
        let mut out = Vec::new();
        entry(EntryKind::Noop, b"").encode(&mut out);
        assert!(SegmentHeader::decode(&out).is_err());
    }
}
