//! The node: Raft, its log and the clients' requests behind one API.
//!
//! Owns what a client may ask of a node and how it is answered; Raft owns
//! every decision on order and durability. `machine` is the node itself;
//! the table that makes stamped produces idempotent is the log's
//! (`log::producers`), so that it is kept with the segments it describes;
//! `membership` holds the rules by which Raft membership follows gossip.

pub mod machine;
pub mod membership;

#[cfg(test)]
mod tests;
