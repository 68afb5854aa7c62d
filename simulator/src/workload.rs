//! The clients of a simulated run, and what they were promised.
//!
//! Owns the workload (batches of unique records proposed to whichever node
//! leads, at seeded intervals) and the record of every acknowledgement,
//! which the checkers hold the cluster to: an acknowledged record stays at
//! its offset with its bytes; a committed entry never changes; consumers
//! see offsets dense, each record once, and only records that were
//! produced. It must never look inside a node beyond what a client or an
//! observer of the disk could see, and never draw from anything but its
//! own seeded stream.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use cairn_core::ids::{LogIndex, NodeId, Offset, Term};
use cairn_core::log::entry::NewEntry;
use cairn_core::raft::machine::Raft;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::world::Failure;

/// How hard the clients push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// Mean time between two batches.
    pub interval: Duration,
    /// The most records in one batch.
    pub batch_max: usize,
}

/// A proposal not yet known committed or lost.
#[derive(Clone, Debug)]
struct Proposal {
    node: NodeId,
    term: Term,
    index: LogIndex,
    first_offset: Offset,
    records: Vec<Bytes>,
}

/// An acknowledged entry: where, in which term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Its index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
}

/// The clients and their ledger.
pub struct Workload {
    options: WorkloadOptions,
    rng: ChaCha8Rng,
    next_at: Instant,
    seed: u64,
    batches: u64,
    proposals: Vec<Proposal>,
    /// Every record ever proposed.
    produced: BTreeSet<Bytes>,
    /// Every acknowledged record, by offset.
    acked: BTreeMap<Offset, Bytes>,
    /// Every committed entry's term, as first seen.
    committed: BTreeMap<LogIndex, Term>,
    /// The highest commit index checked, per node.
    checked: BTreeMap<NodeId, LogIndex>,
}

/// Entries behind a new commit index whose terms are compared with what
/// was committed before, at most (the rest were compared earlier).
const COMMIT_CHECK_WINDOW: u64 = 256;

/// The clients' seed, a child of the scenario's (the world names its others).
const CHILD_CLIENTS: u64 = 3_000;

impl Workload {
    /// A workload drawing from `seed`'s client stream.
    pub fn new(options: WorkloadOptions, seed: u64) -> Workload {
        Workload {
            next_at: Instant::ZERO + options.interval,
            options,
            rng: Rng::new(Rng::new(seed).child(Stream::World, CHILD_CLIENTS)).stream(Stream::World),
            seed,
            batches: 0,
            proposals: Vec::new(),
            produced: BTreeSet::new(),
            acked: BTreeMap::new(),
            committed: BTreeMap::new(),
            checked: BTreeMap::new(),
        }
    }

    /// When the next batch is due.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Acknowledged records, by offset.
    pub fn acked(&self) -> &BTreeMap<Offset, Bytes> {
        &self.acked
    }

    /// Proposes a batch to `leader` (if any leads) and schedules the next.
    /// Returns a line for the trace.
    pub fn produce(&mut self, now: Instant, leader: Option<&mut Raft>) -> Option<String> {
        let interval = self.options.interval.as_nanos();
        self.next_at =
            now + Duration::from_nanos(self.rng.random_range(interval / 2..=interval * 3 / 2));
        let raft = leader?;
        let count = self.rng.random_range(1..=self.options.batch_max);
        let records: Vec<Bytes> = (0..count)
            .map(|i| Bytes::from(format!("s{}-b{}-r{i}", self.seed, self.batches)))
            .collect();
        self.batches += 1;
        let term = raft.term();
        match raft.propose(now, vec![NewEntry::records(term, records.clone())]) {
            Ok(appended) => {
                self.produced.extend(records.iter().cloned());
                self.proposals.push(Proposal {
                    node: raft.id(),
                    term,
                    index: appended.last,
                    first_offset: appended.first_offset,
                    records,
                });
                Some(format!(
                    "propose {count} at {} {}",
                    appended.last, appended.first_offset
                ))
            }
            Err(error) => Some(format!("propose refused: {error}")),
        }
    }

    /// Takes in `raft`'s new commit index: acknowledges the proposals it
    /// covers that are still its entries, and checks that no committed
    /// entry changed. Returns the entries acknowledged now.
    pub fn committed(&mut self, raft: &Raft, commit: LogIndex) -> Result<Vec<Acked>, Failure> {
        let id = raft.id();
        let from = self
            .checked
            .get(&id)
            .map_or(LogIndex(1), |c| c.next())
            .max(LogIndex(commit.0.saturating_sub(COMMIT_CHECK_WINDOW)))
            .max(raft.log().first_index());
        let mut index = from;
        while index <= commit {
            if let Some(term) = raft.log().term(index) {
                let first = *self.committed.entry(index).or_insert(term);
                if first != term {
                    return Err(Failure {
                        checker: "committed never changes",
                        what: format!(
                            "{id} committed {index} in {term}, committed before in {first}"
                        ),
                    });
                }
            }
            index = index.next();
        }
        self.checked.insert(
            id,
            commit.max(self.checked.get(&id).copied().unwrap_or_default()),
        );
        let mut acked = Vec::new();
        let mut kept = Vec::new();
        for proposal in std::mem::take(&mut self.proposals) {
            if proposal.node != id || proposal.index > commit {
                kept.push(proposal);
                continue;
            }
            // The node's entry at that index is still the proposal's only
            // if its term is: otherwise it was replaced, and never acked.
            if raft.log().term(proposal.index) != Some(proposal.term) {
                continue;
            }
            for (n, record) in proposal.records.iter().enumerate() {
                let offset = proposal.first_offset.plus(n as u64);
                if let Some(before) = self.acked.insert(offset, record.clone()) {
                    return Err(Failure {
                        checker: "acked records stay",
                        what: format!("{offset} acked as {before:?}, then as {record:?}"),
                    });
                }
            }
            acked.push(Acked {
                index: proposal.index,
                term: proposal.term,
            });
        }
        self.proposals = kept;
        Ok(acked)
    }

    /// Checks what a consumer read from `node`, every record from its
    /// first retained offset up to its commit offset: offsets dense and in
    /// order, every acknowledged record at its offset with its bytes, no
    /// record twice, none that was never produced.
    pub fn check_consumed(
        &self,
        node: NodeId,
        first: Offset,
        end: Offset,
        records: &[(Offset, Bytes)],
    ) -> Result<(), Failure> {
        let fail = |checker: &'static str, what: String| Err(Failure { checker, what });
        let mut expected = first;
        let mut seen = BTreeSet::new();
        for (offset, record) in records {
            if *offset != expected {
                return fail(
                    "dense offsets",
                    format!("{node} served {offset} after {expected}"),
                );
            }
            expected = expected.next();
            if !self.produced.contains(record) {
                return fail(
                    "no phantom records",
                    format!("{node} served {record:?} at {offset}"),
                );
            }
            if !seen.insert(record.clone()) {
                return fail("no duplicates", format!("{node} served {record:?} twice"));
            }
            if let Some(acked) = self.acked.get(offset) {
                if acked != record {
                    return fail(
                        "acked records stay",
                        format!("{node} served {record:?} at {offset}, acked as {acked:?}"),
                    );
                }
            }
        }
        if expected != end {
            return fail(
                "dense offsets",
                format!("{node} served up to {expected}, committed {end}"),
            );
        }
        if let Some((offset, _)) = self
            .acked
            .range(first..)
            .next_back()
            .filter(|(o, _)| **o >= end)
        {
            return fail(
                "acked records stay",
                format!("{node} committed up to {end}, acked {offset}"),
            );
        }
        Ok(())
    }
}
