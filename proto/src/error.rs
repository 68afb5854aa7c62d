//! Proto's one error type, sorted by who is at fault (as rustls sorts its own).
//!
//! Owns the description of every way a frame can fail to decode. It must never
//! carry a broken invariant of our own: those are assertions, not errors.

use core::fmt;

use crate::frame::FrameKind;

/// Who is at fault when a frame fails to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The bytes are damaged, torn, cut short or hostile.
    InvalidBytes,
    /// The bytes are well formed but speak a version or kind we do not.
    PeerIncompatible,
}

/// Why bytes are not a usable frame.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    // -- InvalidBytes: damaged, torn or hostile input --------------------
    /// The buffer ends before the frame does.
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The first two bytes are not the frame magic.
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The header claims a payload longer than the limit.
    TooLong {
        /// The claimed payload length.
        len: u32,
        /// The limit it exceeds.
        max: u32,
    },
    /// The CRC32C stored in the header does not match the bytes.
    ChecksumMismatch {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes as found.
        computed: u32,
    },
    /// The checksum holds but the payload is not the message its kind says.
    MalformedPayload {
        /// The frame's kind.
        kind: FrameKind,
        /// What postcard found wrong.
        error: postcard::Error,
    },
    /// The frame is valid but not of the kind expected at this place.
    UnexpectedKind {
        /// The kind expected.
        expected: FrameKind,
        /// The kind found.
        found: FrameKind,
    },
    /// The payload holds a whole message and then more bytes.
    TrailingBytes {
        /// The frame's kind.
        kind: FrameKind,
        /// Bytes left over.
        len: usize,
    },
    // -- PeerIncompatible: well formed, but not ours ---------------------
    /// The frame was written by a version of Cairn this build cannot read.
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The frame's kind is not one this build knows.
    UnknownKind {
        /// The kind byte found.
        kind: u8,
    },
}

impl FrameError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            FrameError::UnsupportedVersion { .. } | FrameError::UnknownKind { .. } => {
                Fault::PeerIncompatible
            }
            _ => Fault::InvalidBytes,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { needed, available } => {
                write!(
                    f,
                    "frame cut short: needs {needed} bytes, {available} present"
                )
            }
            FrameError::BadMagic { found } => {
                write!(f, "not a frame: magic {:02x}{:02x}", found[0], found[1])
            }
            FrameError::TooLong { len, max } => {
                write!(f, "frame payload of {len} bytes exceeds the limit of {max}")
            }
            FrameError::ChecksumMismatch { stored, computed } => write!(
                f,
                "frame checksum mismatch: stored {stored:08x}, computed {computed:08x}"
            ),
            FrameError::MalformedPayload { kind, error } => {
                write!(f, "malformed {kind:?} payload: {error}")
            }
            FrameError::UnexpectedKind { expected, found } => {
                write!(f, "expected a {expected:?} frame, found a {found:?} frame")
            }
            FrameError::TrailingBytes { kind, len } => {
                write!(f, "{kind:?} payload has {len} unexpected trailing bytes")
            }
            FrameError::UnsupportedVersion { version } => {
                write!(f, "frame version {version} is not supported by this build")
            }
            FrameError::UnknownKind { kind } => write!(f, "unknown frame kind {kind}"),
        }
    }
}

impl std::error::Error for FrameError {}
