//! Every limit in the core, in one place, with the relations between them
//! checked at compile time.
//!
//! Owns the bounds on queues, batches, frames and files. Nothing else in the
//! core may invent a bound of its own: a new queue or loop gets its `*_MAX`
//! here first.

pub use cairn_proto::frame::{FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX};

/// Most bytes of a configuration entry's data; every segment header
/// carries one, so it stays small.
pub const CONFIG_BYTES_MAX: u32 = 4 * 1024;

/// The largest client record (its data bytes) a log accepts.
pub const RECORD_BYTES_MAX: u32 = 1024 * 1024;
/// Bytes of entry metadata in front of a record's data, at the most
/// (postcard varints of index, term, offset, record count, time, and a
/// producer's id and sequence; a kind byte and an option tag).
pub const ENTRY_META_BYTES_MAX: u32 = 96;
/// The most client records one entry (a batch) may hold.
pub const ENTRY_RECORDS_MAX: u32 = 64 * 1024;
/// The largest payload of one entry: what fits one frame after its metadata.
pub const ENTRY_PAYLOAD_BYTES_MAX: u32 = FRAME_PAYLOAD_MAX - ENTRY_META_BYTES_MAX;
/// The most entries one append may carry.
pub const APPEND_ENTRIES_MAX: usize = 4096;
/// The most bytes one append may carry (sum of data bytes).
pub const APPEND_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The most entries one read may return.
pub const READ_ENTRIES_MAX: u32 = 16 * 1024;
/// The most bytes one read may return.
pub const READ_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// The largest segment store file. Positions inside a segment are `u32`.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;
/// The smallest segment size a configuration may ask for.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// The most entries in one segment; positions in the index are relative.
pub const SEGMENT_ENTRIES_MAX: u64 = 1 << 24;
/// Bytes of one index entry on disk.
pub const INDEX_ENTRY_BYTES: u64 = 40;
/// The largest index file (a full segment's worth of entries).
pub const INDEX_BYTES_MAX: u64 = SEGMENT_ENTRIES_MAX * INDEX_ENTRY_BYTES;
/// Index slots the log writes at a time: whole pages only (512 slots of 40
/// bytes are five 4 KiB pages), so that no index page is modified again
/// while the kernel may be writing it back (which would stall the append).
pub const INDEX_WRITE_SLOTS: u64 = 512;
/// The most store bytes of durable entries the active segment's index file
/// may leave uncovered before its slots are written and synced (fewer than
/// a whole run, then): what recovery scans after a crash is bounded by
/// this plus the entries not yet durable, not by the segment's size. Each
/// checkpoint costs a sync of its own: at 1 MiB, one every four batches of
/// 256 KiB, which cost appends a sixth of their rate; at 8 MiB, a scan of
/// at most a few milliseconds, for a sync every 32 such batches.
pub const INDEX_CHECKPOINT_BYTES: u64 = 8 << 20;
/// The page size large writes are aligned to.
pub const PAGE_BYTES: u64 = 4096;
/// Entries framing to at least this many bytes start on a page boundary (a
/// padding frame fills the gap), so that a large group commit never writes
/// a page the previous one already wrote; smaller ones are not padded,
/// which would waste more than it saves.
pub const ALIGN_FRAMES_ABOVE_BYTES: u64 = 64 * 1024;
/// The most segments a log may hold.
pub const SEGMENTS_MAX: usize = 1 << 16;
/// Indexes of sealed segments kept in memory at once (the active segment's
/// index is always resident).
pub const RESIDENT_INDEXES_MAX: usize = 8;
/// Reads waiting in the log at once; more are refused as busy.
pub const PENDING_READS_MAX: usize = 1024;
/// Disk operations the log may have in flight at once.
pub const INFLIGHT_IOS_MAX: usize = 4 * 1024;
/// The batches of one idempotent producer a node remembers (a producer
/// keeps at most this many unanswered).
pub const PRODUCER_BATCHES_MAX: usize = 5;
/// The idempotent producers a node remembers; the one idle longest goes.
pub const PRODUCERS_MAX: usize = 16 * 1024;
/// Bytes of one producer's batch in an encoded table, at the most
/// (postcard varints: sequence, index and offset of up to 10 bytes each,
/// the record count of up to 5).
pub const PRODUCER_BATCH_BYTES_MAX: usize = 35;
/// Bytes of an encoded producer table, at the most: a count, then each
/// producer's id, its count of batches, and its batches. Every segment
/// header carries one (about 3 MiB at the bound; a few bytes per producer
/// in practice).
pub const PRODUCER_TABLE_BYTES_MAX: usize =
    3 + PRODUCERS_MAX * (10 + 1 + PRODUCER_BATCHES_MAX * PRODUCER_BATCH_BYTES_MAX);
/// Client requests a node holds at once (produces waiting for commit,
/// reads in flight, long-polls parked); more are refused as busy.
pub const CLIENT_REQUESTS_MAX: usize = 16 * 1024;
/// The most append messages a leader keeps unacknowledged per follower.
pub const REPLICATION_INFLIGHT_MESSAGES_MAX: usize = 32;
/// The most entry bytes a leader keeps unacknowledged per follower.
pub const REPLICATION_INFLIGHT_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// The most entry bytes one append message carries (at least one entry).
pub const APPEND_MESSAGE_BYTES_MAX: u32 = 1024 * 1024;
/// The most entries one append message carries.
pub const APPEND_MESSAGE_ENTRIES_MAX: u32 = 1024;
/// The most entry bytes a leader keeps in memory to replicate from without
/// reading its disk.
pub const LEADER_CACHE_BYTES_MAX: u64 = 32 * 1024 * 1024;

// A frame must hold the largest entry: header, metadata and data.
const _: () = assert!(RECORD_BYTES_MAX + ENTRY_META_BYTES_MAX <= FRAME_PAYLOAD_MAX);
// A segment header holds the largest configuration and producer table
// (the rest of it is a few varints).
const _: () = assert!(
    PRODUCER_TABLE_BYTES_MAX + CONFIG_BYTES_MAX as usize + 64 <= FRAME_PAYLOAD_MAX as usize
);
// The counts in an encoded table take the bytes reckoned above.
const _: () = assert!(PRODUCERS_MAX < 1 << 21 && PRODUCER_BATCHES_MAX < 1 << 7);
// Positions inside a segment fit the index's u32.
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
// A segment must hold at least one largest record after its header.
const _: () = assert!(
    SEGMENT_BYTES_MIN < SEGMENT_BYTES_MAX
        && (RECORD_BYTES_MAX as u64
            + ENTRY_META_BYTES_MAX as u64
            + 2 * FRAME_HEADER_BYTES as u64
            + 64)
            <= SEGMENT_BYTES_MAX
);
// One read can always return at least one largest record.
const _: () =
    assert!(READ_BYTES_MAX >= RECORD_BYTES_MAX + ENTRY_META_BYTES_MAX + FRAME_HEADER_BYTES as u32);
// An append never outgrows what one read or one segment could hold.
const _: () = assert!(APPEND_BYTES_MAX < SEGMENT_BYTES_MAX);
const _: () = assert!((APPEND_ENTRIES_MAX as u64) < SEGMENT_ENTRIES_MAX);
// A slot counts an entry's records in 24 bits.
const _: () = assert!(ENTRY_RECORDS_MAX < 1 << 24);
// An entry holds at least one largest record.
const _: () = assert!(ENTRY_PAYLOAD_BYTES_MAX >= RECORD_BYTES_MAX + 5);
// Padding costs less than 7 % of a frame it aligns.
const _: () = assert!(ALIGN_FRAMES_ABOVE_BYTES >= 15 * (PAGE_BYTES + FRAME_HEADER_BYTES as u64));
// Index writes cover whole 4 KiB pages.
const _: () = assert!((INDEX_WRITE_SLOTS * INDEX_ENTRY_BYTES).is_multiple_of(4096));
// Relative entry numbers fit the index's u32.
const _: () = assert!(SEGMENT_ENTRIES_MAX <= u32::MAX as u64);
// A follower can store any append message in one append.
const _: () = assert!(
    (APPEND_MESSAGE_ENTRIES_MAX as usize) <= APPEND_ENTRIES_MAX
        && (APPEND_MESSAGE_BYTES_MAX as u64) < APPEND_BYTES_MAX
);
// One message never exceeds the window it travels in.
const _: () = assert!(APPEND_MESSAGE_BYTES_MAX as u64 <= REPLICATION_INFLIGHT_BYTES_MAX);

/// Most bytes one gossip datagram takes, frame included: what a QUIC
/// datagram carries on any path (news rides in what a probe leaves).
pub const GOSSIP_DATAGRAM_BYTES_MAX: usize = 1200;

/// Most bytes of a gossip user event's name and payload together: it rides
/// in a datagram beside a probe.
pub const USER_EVENT_BYTES_MAX: usize = 512;

/// Lamport times a node remembers user events for, to recognise them when
/// they come again; older ones are ignored.
pub const USER_EVENT_WINDOW: u64 = 512;

/// Most bytes a member's metadata takes, encoded: it rides in a datagram
/// beside a probe.
pub const GOSSIP_META_BYTES_MAX: usize = 256;

/// Most members one full-state exchange (push-pull) carries: it stays far
/// within a frame; a larger cluster's rest spreads by gossip.
pub const PUSH_PULL_MEMBERS_MAX: usize = 25_000;

/// Most indirect probes a member runs for others at once; a flood of
/// requests beyond it is dropped, not queued.
pub const GOSSIP_RELAYS_MAX: usize = 1_024;

// A full-state exchange fits one frame, every member with metadata of the
// largest size (and 40 bytes for its id, status and lengths).
const _: () = assert!(
    PUSH_PULL_MEMBERS_MAX * (GOSSIP_META_BYTES_MAX + 40)
        <= cairn_proto::frame::FRAME_PAYLOAD_MAX as usize
);

// Metadata rides in a gossip datagram with room to spare.
const _: () = assert!(GOSSIP_META_BYTES_MAX * 4 <= GOSSIP_DATAGRAM_BYTES_MAX);

// A user event rides in a gossip datagram with room to spare.
const _: () = assert!(USER_EVENT_BYTES_MAX * 2 <= GOSSIP_DATAGRAM_BYTES_MAX);

/// Most bytes one scrub read covers (every `SCRUB_INTERVAL`): about 2 MiB/s
/// of reading back what is at rest.
pub const SCRUB_READ_BYTES: u32 = 1024 * 1024;
