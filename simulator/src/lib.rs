//! cairn-sim: the deterministic world that drives Cairn's core.
//!
//! Owns everything simulated: disks, the network, nodes driven through
//! their faults, the clients and their ledger, and the checkers. It must
//! never read a clock or draw unseeded randomness: one seed replays a whole
//! run bit for bit.
#![forbid(unsafe_code)]

pub mod disk;
pub mod gossip;
pub mod gossip_watch;
pub mod network;
pub mod script;
pub mod storage;
pub mod workload;
pub mod world;
