//! Disk effects: the operations the log asks a driver to perform.
//!
//! Owns the vocabulary shared by the log, the simulated disk and the real
//! driver: file names, operations, outcomes and failures. It must never
//! perform an operation itself.
//!
//! The contract with a driver:
//! - Perform operations **in the order they were polled**, one after another
//!   (a driver may overlap them only where no later operation could observe
//!   the difference). Completion of an operation implies every earlier one
//!   has completed.
//! - Report each completion exactly once, as `Input::Disk { io, result }`.
//! - `Write` may extend a file (a gap reads as zeros). `Sync` makes a file's
//!   completed writes and truncations durable (`sync_data`; for a mapped
//!   index, a flush of the map). `SyncDir` makes completed creations and
//!   deletions of files durable (an fsync of the directory).
//! - `Read` returns fewer bytes than asked only at the end of the file.

use core::fmt;

use bytes::Bytes;

use crate::ids::{IoId, LogIndex};

/// The two files of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// Framed entries, preceded by a segment header frame.
    Store,
    /// Fixed-width entries: relative index -> position and offset.
    Index,
    /// Raft's durable state (term and vote), one file for the whole log.
    State,
}

/// One file of the log, named by its segment's base index and its kind.
///
/// Segments are named by the Raft index of their first entry rather than by
/// client offset: every entry has an index, whereas a segment holding only
/// Raft's own entries would share its base client offset with the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    /// The index of the segment's first entry.
    pub base: LogIndex,
    /// Which of the segment's files.
    pub kind: FileKind,
}

/// The name of Raft's state file.
const STATE_NAME: &str = "raft.state";

/// Digits in a file name's index: enough for any u64.
const NAME_DIGITS: usize = 20;

impl FileId {
    /// The segment's store file.
    pub fn store(base: LogIndex) -> FileId {
        FileId {
            base,
            kind: FileKind::Store,
        }
    }

    /// The segment's index file.
    pub fn index(base: LogIndex) -> FileId {
        FileId {
            base,
            kind: FileKind::Index,
        }
    }

    /// Raft's state file.
    pub fn state() -> FileId {
        FileId {
            base: LogIndex(0),
            kind: FileKind::State,
        }
    }

    /// Parses a file name; `None` for a name the log does not own.
    pub fn parse(name: &str) -> Option<FileId> {
        if name == STATE_NAME {
            return Some(FileId::state());
        }
        let (digits, extension) = name.split_once('.')?;
        let kind = match extension {
            "store" => FileKind::Store,
            "index" => FileKind::Index,
            _ => return None,
        };
        if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let base = LogIndex(digits.parse().ok()?);
        Some(FileId { base, kind })
    }
}

impl fmt::Display for FileId {
    /// The file's name in the log's directory, e.g. `00000000000000000001.store`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extension = match self.kind {
            FileKind::Store => "store",
            FileKind::Index => "index",
            FileKind::State => return f.write_str(STATE_NAME),
        };
        // Zero-padded by hand: names are formatted for every disk
        // operation a simulated disk performs.
        let mut digits = [b'0'; NAME_DIGITS];
        let mut base = self.base.0;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (base % 10) as u8;
            base /= 10;
        }
        let digits = core::str::from_utf8(&digits).expect("ASCII digits");
        f.write_str(digits)?;
        f.write_str(".")?;
        f.write_str(extension)
    }
}

/// One disk operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// Create the file empty (emptying it if it exists).
    Create {
        /// The file.
        file: FileId,
    },
    /// Write `bytes` at `position`, extending the file if needed.
    Write {
        /// The file.
        file: FileId,
        /// Byte position in the file.
        position: u64,
        /// The bytes.
        bytes: Bytes,
    },
    /// Make the file's completed writes and truncations durable.
    Sync {
        /// The file.
        file: FileId,
    },
    /// Cut the file to `len` bytes.
    Truncate {
        /// The file.
        file: FileId,
        /// The new length.
        len: u64,
    },
    /// Remove the file.
    Delete {
        /// The file.
        file: FileId,
    },
    /// Make completed creations and deletions durable.
    SyncDir,
    /// Read up to `len` bytes from `position`.
    Read {
        /// The file.
        file: FileId,
        /// Byte position in the file.
        position: u64,
        /// Bytes wanted.
        len: u64,
    },
}

/// A file found in the log's directory, as recovery reads it.
///
/// `bytes` is the file's whole content as it is on disk; a driver may hand
/// over a memory map, so that recovery touches only the pages it reads.
#[derive(Clone, Copy, Debug)]
pub struct FoundFile<'a> {
    /// The file's name in the directory.
    pub name: &'a str,
    /// The file's bytes.
    pub bytes: &'a [u8],
}

/// An operation and the id its completion will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct DiskRequest {
    /// Echoed in the completion.
    pub io: IoId,
    /// What to do.
    pub op: DiskOp,
}

/// What a completed operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskOutcome {
    /// A `Create`, `Write`, `Sync`, `Truncate`, `Delete` or `SyncDir` is done.
    Done,
    /// A `Read` is done: the bytes found (short only at the end of the file).
    Read(Bytes),
}

/// Why a disk operation failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The device is full; the write did not happen.
    NoSpace,
    /// The device reported an error (EIO). After a failed sync the state of
    /// the written data is unknown, so it is never retried.
    Io,
    /// The file does not exist.
    NotFound,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskError::NoSpace => "no space left on device",
            DiskError::Io => "input/output error",
            DiskError::NotFound => "file not found",
        })
    }
}

impl std::error::Error for DiskError {}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: names round-trip, and foreign names are not the log's.
    #[test]
    fn names_table() {
        let store = FileId::store(LogIndex(42));
        assert_eq!(store.to_string(), "00000000000000000042.store");
        assert_eq!(FileId::parse(&store.to_string()), Some(store));
        let index = FileId::index(LogIndex(u64::MAX));
        assert_eq!(FileId::parse(&index.to_string()), Some(index));
        assert_eq!(FileId::parse("raft.state"), Some(FileId::state()));
        assert_eq!(FileId::state().to_string(), "raft.state");
        for foreign in [
            "42.store",
            "00000000000000000042.log",
            "0000000000000000004x.store",
            "README",
            "",
        ] {
            assert_eq!(FileId::parse(foreign), None, "{foreign}");
        }
    }
}
