//! cairn-sim: the deterministic world.
pub mod disk;
