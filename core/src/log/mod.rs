//! The log: segments of framed entries, as pure step functions.
pub mod disk;
