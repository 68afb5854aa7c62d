//! Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", 2014), as pure step functions.
//!
//! Owns the consensus protocol's decisions. It must never perform I/O: like
//! the log, it emits disk operations and learns of their completion, and a
//! reply that announces state leaves only after that state is durable.

pub mod commit;
pub mod election;
pub mod quorum;
pub mod state;
