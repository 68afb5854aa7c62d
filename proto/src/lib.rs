//! cairn-proto: the bytes Cairn writes, to the network and to disk.
//!
//! Owns the frame (header, CRC32C, postcard payload) and its errors. It must
//! never perform I/O, read a clock or draw randomness: it turns values into
//! bytes and bytes into values, and rejects hostile bytes without panicking
//! or allocating past a limit.
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod frame;

pub use error::{Fault, FrameError};
pub use frame::{Frame, FrameHeader, FrameKind, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX};
