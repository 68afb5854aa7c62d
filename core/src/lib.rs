//! cairn-core: Cairn's sans-IO state machines.
//!
//! Owns every decision Cairn makes. It must never read a clock, draw entropy,
//! spawn a thread, or touch a file or socket: time and randomness come in as
//! values, and effects go out as data for a driver to perform.
#![forbid(unsafe_code)]

pub mod bugs;
pub mod config;
pub mod error;
pub mod gossip;
pub mod ids;
pub mod limits;
pub mod log;
pub mod node;
pub mod raft;
pub mod rng;
pub mod time;
pub mod timer;

#[cfg(test)]
mod testing;

pub use error::Error;
