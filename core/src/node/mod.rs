//! The node: Raft, its log and the clients' requests behind one API.
//!
//! Owns what a client may ask of a node and how it is answered; Raft owns
//! every decision on order and durability. `machine` is the node itself,
//! `producers` the table that makes stamped produces idempotent.

pub mod machine;
pub mod producers;

#[cfg(test)]
mod tests;
