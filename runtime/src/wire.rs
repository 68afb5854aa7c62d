//! Frames on QUIC streams: read one whole, checked frame at a time.
//!
//! Owns the reading of frames from a byte stream. It must never trust a
//! length it has not compared with its limit, and never allocate for bytes
//! that have not arrived: a peer that claims a large frame and sends little
//! costs only what it sent. A frame that fails any check ends the stream
//! that carried it, and nothing else.

use std::fmt;

use cairn_proto::frame::{decode, decode_header};
use cairn_proto::{FrameError, FrameKind, FRAME_HEADER_BYTES};

/// Why a frame could not be read from a stream.
#[derive(Debug)]
pub enum WireError {
    /// The stream failed or was reset.
    Read(quinn::ReadError),
    /// The stream ended inside a frame.
    Cut {
        /// Bytes the frame needed.
        needed: usize,
        /// Bytes that came.
        got: usize,
    },
    /// The frame claims more bytes than this stream allows.
    TooLong {
        /// The claimed payload length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The frame is damaged or not Cairn's.
    Frame(FrameError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Read(error) => write!(f, "stream failed: {error}"),
            WireError::Cut { needed, got } => {
                write!(f, "stream ended inside a frame ({got} of {needed} bytes)")
            }
            WireError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes exceeds this stream's {max}")
            }
            WireError::Frame(error) => write!(f, "bad frame: {error}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<quinn::ReadError> for WireError {
    fn from(error: quinn::ReadError) -> Self {
        WireError::Read(error)
    }
}

/// Reads the next frame into `buf` (cleared first) and returns its kind;
/// `None` when the stream ended cleanly between frames. The frame's CRC
/// is verified; its payload is `buf[FRAME_HEADER_BYTES..]`.
pub async fn read_frame(
    stream: &mut quinn::RecvStream,
    max_payload: u32,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameKind>, WireError> {
    buf.clear();
    if !fill(stream, buf, FRAME_HEADER_BYTES).await? {
        return if buf.is_empty() {
            Ok(None)
        } else {
            Err(WireError::Cut {
                needed: FRAME_HEADER_BYTES,
                got: buf.len(),
            })
        };
    }
    let header = decode_header(buf).map_err(WireError::Frame)?;
    if header.payload_len > max_payload {
        return Err(WireError::TooLong {
            len: header.payload_len,
            max: max_payload,
        });
    }
    let needed = header.frame_len();
    if !fill(stream, buf, needed).await? {
        return Err(WireError::Cut {
            needed,
            got: buf.len(),
        });
    }
    let frame = decode(buf).map_err(WireError::Frame)?;
    Ok(Some(frame.header.kind))
}

/// Reads until `buf` holds `len` bytes, growing it only by what arrives;
/// false if the stream ended first.
async fn fill(
    stream: &mut quinn::RecvStream,
    buf: &mut Vec<u8>,
    len: usize,
) -> Result<bool, WireError> {
    while buf.len() < len {
        match stream.read_chunk(len - buf.len(), true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None => return Ok(false),
        }
    }
    Ok(true)
}
