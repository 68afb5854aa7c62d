//! Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", 2014, and Ongaro's thesis), as pure step functions.
//!
//! Owns the consensus protocol's decisions. It must never perform I/O: like
//! the log, it emits disk operations and learns of their completion, and a
//! message that announces state leaves only after that state is durable.
//!
//! So far: persistent state, quorums, the commit rule, election rules, and
//! a machine that elects a leader with pre-vote and keeps it with
//! heartbeats and check-quorum. Replication of entries comes next.

pub mod commit;
pub mod election;
pub mod machine;
pub mod message;
pub mod quorum;
pub mod replication;
pub mod state;

#[cfg(test)]
mod tests;
