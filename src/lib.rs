//! Cairn: a replicated, append-only commit log.
//!
//! This umbrella crate re-exports the workspace's crates under one name and
//! owns the integration tests in `tests/`. The design lives in the crates:
//!
//! - [`proto`]: the frame shared by the wire and the store; no I/O.
//! - [`core`]: the sans-IO state machines (the log today; Raft and gossip next).
//! - [`sim`]: the deterministic world that drives the core under faults.
//! - [`runtime`]: the real driver over files (and, later, QUIC).

pub use cairn_core as core;
pub use cairn_proto as proto;
pub use cairn_runtime as runtime;
pub use cairn_sim as sim;
