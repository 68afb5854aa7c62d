//! cairn-runtime: the real driver of Cairn's core.
//!
//! Owns every contact with the real world: files today (the disk driver and
//! the log on files), QUIC and the `cairn` binary next. It must never make a
//! protocol decision: the same core that the simulator proves runs here, and
//! this crate only performs its effects and feeds back their results.

pub mod disk;
pub mod log;
