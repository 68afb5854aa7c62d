//! Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", 2014, and Ongaro's thesis), as pure step functions.
//!
//! Owns the consensus protocol's decisions. It must never perform I/O: like
//! the log, it emits disk operations and learns of their completion, and a
//! message that announces state leaves only after that state is durable.
//!
//! One concern per file: persistent state (`state`), quorums (`quorum`),
//! the commit rule (`commit`), election rules (`election`), replication
//! rules (`replication`), a leader's view of each follower (`progress`),
//! and the machine (`machine`, with its leader and follower halves) that
//! elects a leader with pre-vote, keeps it with check-quorum, and
//! replicates the log.

pub mod commit;
pub mod election;
mod follower;
pub mod leader;
pub mod machine;
pub mod membership;
pub mod message;
pub mod progress;
pub mod quorum;
pub mod replication;
pub mod state;

#[cfg(test)]
mod tests;
