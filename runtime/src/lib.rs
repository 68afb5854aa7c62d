//! cairn-runtime: the real driver of Cairn's core.
//!
//! Owns every contact with the real world: files (the disk driver and the
//! log on files) and QUIC with mutual TLS (the node server and the client
//! library). It must never make a protocol decision: the same core that the
//! simulator proves runs here, and this crate only performs its effects and
//! feeds back their results.

pub mod acl;
pub mod certs;
pub mod client;
pub mod disk;
pub mod log;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod wire;
