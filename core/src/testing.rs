//! Test support shared by the core's unit tests: a disk kept in a map.
//!
//! Owns nothing the machines depend on; compiled for tests only.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::log::disk::{DiskOp, DiskOutcome, FileId, FoundFile};
use crate::log::recovery::{self, Recovered};

/// A disk that does what it is told, at once, and never fails.
#[derive(Default)]
pub struct MapDisk {
    /// Each file's bytes.
    pub files: BTreeMap<FileId, Vec<u8>>,
}

impl MapDisk {
    /// Performs `op`.
    pub fn perform(&mut self, op: &DiskOp) -> DiskOutcome {
        match op {
            DiskOp::Create { file } => {
                self.files.insert(*file, Vec::new());
            }
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                let data = self.files.get_mut(file).expect("written files exist");
                let end = *position as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*position as usize..end].copy_from_slice(bytes);
            }
            DiskOp::Truncate { file, len } => self
                .files
                .get_mut(file)
                .expect("exists")
                .resize(*len as usize, 0),
            DiskOp::Delete { file } => {
                self.files.remove(file);
            }
            DiskOp::Read {
                file,
                position,
                len,
            } => {
                let data = &self.files[file];
                let start = (*position as usize).min(data.len());
                let end = data.len().min((*position + *len) as usize);
                return DiskOutcome::Read(Bytes::copy_from_slice(&data[start..end]));
            }
            DiskOp::Sync { .. } | DiskOp::SyncDir => {}
        }
        DiskOutcome::Done
    }

    /// Runs `f` over the files as recovery finds them.
    fn with_found<R>(&self, f: impl FnOnce(&[FoundFile<'_>]) -> R) -> R {
        let names: Vec<(String, &Vec<u8>)> = self
            .files
            .iter()
            .map(|(id, bytes)| (id.to_string(), bytes))
            .collect();
        let found: Vec<FoundFile<'_>> = names
            .iter()
            .map(|(name, bytes)| FoundFile { name, bytes })
            .collect();
        f(&found)
    }

    /// Recovers a log from the files as they are.
    pub fn recover(&self) -> Recovered {
        self.with_found(|found| recovery::recover(found).expect("recoverable"))
    }

    /// Recovers Raft's term and vote from the files as they are.
    pub fn recover_state(&self) -> crate::raft::state::RecoveredState {
        self.with_found(|found| crate::raft::state::recover(found).expect("a recoverable state"))
    }
}

/// A machine with timers, for test clusters that move the clock.
pub trait Timed {
    /// When it next wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<crate::time::Instant>;
    /// Fires its due timers.
    fn handle_timeout(&mut self, now: crate::time::Instant);
    /// Checks its invariants.
    fn check_invariants(&self);
}

impl Timed for crate::raft::machine::Raft {
    fn poll_timeout(&self) -> Option<crate::time::Instant> {
        crate::raft::machine::Raft::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: crate::time::Instant) {
        crate::raft::machine::Raft::handle_timeout(self, now)
    }
    fn check_invariants(&self) {
        crate::raft::machine::Raft::check_invariants(self)
    }
}

impl Timed for crate::node::machine::Node {
    fn poll_timeout(&self) -> Option<crate::time::Instant> {
        crate::node::machine::Node::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: crate::time::Instant) {
        crate::node::machine::Node::handle_timeout(self, now)
    }
    fn check_invariants(&self) {
        crate::node::machine::Node::check_invariants(self)
    }
}

/// Moves the clock to the earliest timer of `machines`, fires every timer
/// due then, and checks every machine's invariants; returns the new time.
pub fn fire_earliest<M: Timed>(
    machines: &mut BTreeMap<crate::ids::NodeId, M>,
) -> crate::time::Instant {
    let next = machines
        .values()
        .filter_map(M::poll_timeout)
        .min()
        .expect("a timer is armed");
    for machine in machines.values_mut() {
        if machine.poll_timeout().is_some_and(|at| at <= next) {
            machine.handle_timeout(next);
        }
    }
    for machine in machines.values() {
        machine.check_invariants();
    }
    next
}
