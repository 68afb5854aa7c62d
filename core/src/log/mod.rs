//! The log: segments of framed entries, as pure step functions.
//!
//! Owns the commit log's storage decisions: framing, indexing, roll-over,
//! retention, truncation, group commit and recovery, and the idempotent
//! producers' table, which it keeps in its segment headers and rebuilds at
//! recovery from its index slots' stamps. It must never perform I/O: it
//! emits [`disk::DiskOp`]s and learns of their completion.
//!
//! This log is also Raft's log: every entry has a Raft index and term, and
//! only client records take a client offset, so offsets stay dense across
//! leader changes.

mod append;
pub mod disk;
pub mod entry;
pub mod index;
pub mod machine;
pub mod producers;
pub mod read;
pub mod recovery;
mod repair;
pub mod scan;
pub mod segment;
mod truncate;

pub use machine::{Appended, Input, Log, Output};

#[cfg(test)]
mod tests;
