//! The core's one error type, sorted by who is at fault.
//!
//! Owns every way a request to the core can be refused. It must never stand
//! for a broken invariant of the core itself: those are assertions.

use core::fmt;

use crate::ids::{LogIndex, NodeId, Offset, Term};
use crate::log::disk::DiskError;

/// A configuration value that makes no sense, with the field's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Why it is rejected, as a sentence fragment after the field's name.
    pub reason: &'static str,
}

/// Why the core refused a request.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    // -- Configuration ----------------------------------------------------
    /// The configuration is nonsensical.
    Config(ConfigError),
    // -- Caller misuse: the request breaks the API's contract ---------------
    /// A gossip user event is larger than `USER_EVENT_BYTES_MAX`.
    UserEventTooLarge {
        /// Its name's and payload's bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A gossip member's metadata, encoded, is larger than
    /// `GOSSIP_META_BYTES_MAX`.
    MetaTooLarge {
        /// Its encoded bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A record is larger than `RECORD_BYTES_MAX`.
    RecordTooLarge {
        /// The record's size.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// An append has no entries, or more entries or bytes than allowed.
    AppendOutOfBounds {
        /// Entries in the append.
        entries: usize,
        /// Data bytes in the append.
        bytes: u64,
    },
    /// An entry is malformed (a batch without records, Raft's own entry
    /// with records) or holds more records or bytes than one frame can.
    EntryOutOfBounds {
        /// Records in the entry.
        records: usize,
        /// Payload bytes of the entry.
        bytes: usize,
    },
    /// An entry's term is lower than the term of the entry before it.
    TermRegressed {
        /// The term of the log's last entry.
        last: Term,
        /// The term offered.
        offered: Term,
    },
    /// A truncation names an index outside what can be truncated.
    TruncateOutOfRange {
        /// The index asked for.
        index: LogIndex,
        /// The first retained index.
        first: LogIndex,
        /// The index after the last entry.
        next: LogIndex,
    },
    /// A read starts outside the retained log.
    IndexOutOfRange {
        /// The index asked for.
        index: LogIndex,
        /// The first retained index.
        first: LogIndex,
        /// The index after the last entry.
        next: LogIndex,
    },
    /// A read starts at a client offset outside the retained log.
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The first retained offset.
        first: Offset,
        /// The offset after the last record.
        next: Offset,
    },
    /// Too many reads are waiting; retry later.
    Busy,
    /// The operation needs a sealed segment's index, which is now loading;
    /// retry once `Output::IndexLoaded` names this segment.
    IndexNotResident {
        /// The segment.
        base: LogIndex,
    },
    /// A repair was refused: the entry is not damaged, or the copy offered
    /// is not the entry the log's index holds, or does not fit its frame.
    RepairRefused {
        /// The entry.
        index: LogIndex,
    },
    /// The node named is not a voter.
    NotAVoter {
        /// The node.
        node: NodeId,
    },
    /// Only the leader takes proposals; `leader` is the one this node
    /// knows of, if any.
    NotLeader {
        /// The leader of the current term, if known.
        leader: Option<NodeId>,
    },
    // -- Bad bytes: from a disk or a peer, failing their checks ------------
    /// An idempotent producers' table (from a segment header or a
    /// snapshot) does not decode, or breaks a bound or an order.
    MalformedProducers {
        /// What is wrong.
        reason: &'static str,
    },
    // -- Disk contents: files no crash could have produced -----------------
    /// The log's files contradict each other in a way recovery cannot
    /// resolve without losing data; an operator must look.
    InconsistentFiles {
        /// The segment where the contradiction was found.
        base: LogIndex,
        /// What is wrong.
        reason: &'static str,
    },
    // -- I/O: the disk failed and the log has stopped -----------------------
    /// A disk operation the log depends on failed; the log accepts nothing
    /// more (a failed sync is never retried).
    Stopped(DiskError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {} {}", self.field, self.reason)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(error) => error.fmt(f),
            Error::UserEventTooLarge { len, max } => {
                write!(f, "user event of {len} bytes exceeds the limit of {max}")
            }
            Error::MetaTooLarge { len, max } => {
                write!(
                    f,
                    "member metadata of {len} bytes exceeds the limit of {max}"
                )
            }
            Error::RecordTooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds the limit of {max}")
            }
            Error::AppendOutOfBounds { entries, bytes } => write!(
                f,
                "append of {entries} entries and {bytes} bytes is empty or exceeds the limits"
            ),
            Error::EntryOutOfBounds { records, bytes } => write!(
                f,
                "entry of {records} records and {bytes} bytes is malformed or exceeds the limits"
            ),
            Error::TermRegressed { last, offered } => {
                write!(
                    f,
                    "entry term {offered} is below the log's last term {last}"
                )
            }
            Error::TruncateOutOfRange { index, first, next } => write!(
                f,
                "cannot truncate at {index}: the log holds [{first}, {next})"
            ),
            Error::IndexOutOfRange { index, first, next } => {
                write!(f, "index {index} is outside the log [{first}, {next})")
            }
            Error::OffsetOutOfRange {
                offset,
                first,
                next,
            } => {
                write!(f, "offset {offset} is outside the log [{first}, {next})")
            }
            Error::MalformedProducers { reason } => {
                write!(f, "malformed producer table: {reason}")
            }
            Error::InconsistentFiles { base, reason } => {
                write!(f, "log files are inconsistent at segment {base}: {reason}")
            }
            Error::Busy => f.write_str("too many reads in flight; retry later"),
            Error::IndexNotResident { base } => {
                write!(
                    f,
                    "the index of segment {base} is loading; retry when it is resident"
                )
            }
            Error::NotLeader {
                leader: Some(leader),
            } => {
                write!(f, "this node does not lead; {leader} does")
            }
            Error::NotAVoter { node } => write!(f, "{node} is not a voter"),
            Error::RepairRefused { index } => {
                write!(f, "entry {index} cannot be repaired with the copy offered")
            }
            Error::NotLeader { leader: None } => {
                f.write_str("this node does not lead, and knows no leader")
            }
            Error::Stopped(error) => write!(f, "the log has stopped after a disk failure: {error}"),
        }
    }
}

impl std::error::Error for Error {}
