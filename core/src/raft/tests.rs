//! Elections on a small in-memory cluster with an explicit clock.
//!
//! The harness delivers messages at once (unless a node is isolated) and
//! completes disk operations at once; when nothing is in flight it moves
//! the clock to the earliest timer. Each test opens with its goal and the
//! section of Raft or of the thesis it checks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::config::LogConfig;
use crate::ids::{LogIndex, NodeId, Offset, Term};
use crate::log::disk::DiskOp;
use crate::log::entry::NewEntry;
use crate::log::machine::{Log, ReadFrom};
use crate::log::scan::Damage;
use crate::raft::machine::{Output, Raft, RaftConfig, Role};
use crate::raft::message::Envelope;
use crate::raft::quorum::{Configuration, Voters};
use crate::testing::{fire_earliest, MapDisk};
use crate::time::{Duration, Instant};

struct Cluster {
    nodes: BTreeMap<NodeId, Raft>,
    disks: BTreeMap<NodeId, MapDisk>,
    log_config: LogConfig,
    voters: Configuration,
    /// Nodes started after the cluster, with no configuration.
    joined: BTreeSet<NodeId>,
    seed: u64,
    now: Instant,
    wire: VecDeque<(NodeId, Envelope)>,
    isolated: BTreeSet<NodeId>,
    /// (term, leader) for every BecameLeader seen.
    leaders: Vec<(Term, NodeId)>,
    /// (node, read id, confirmed) for every linearizable read answered.
    reads: Vec<(NodeId, u64, bool)>,
    /// Nodes whose syncs never complete: what they would cover is not
    /// durable, and a crash may tear it (see `tear`).
    syncs_held: BTreeSet<NodeId>,
    /// Every output but disk operations and messages, by node, in order.
    effects: Vec<(NodeId, Output)>,
    /// Every message sent: when, by whom, and the message.
    sent: Vec<(Instant, NodeId, Envelope)>,
}

impl Cluster {
    fn new(size: u64, seed: u64) -> Cluster {
        Cluster::with_log(size, seed, LogConfig::default())
    }

    fn with_log(size: u64, seed: u64, log_config: LogConfig) -> Cluster {
        let ids: Vec<u64> = (1..=size).collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disks: ids
                .iter()
                .map(|&id| (NodeId(id), MapDisk::default()))
                .collect(),
            log_config,
            voters: Configuration::simple(Voters::of(&ids)),
            joined: BTreeSet::new(),
            seed,
            now: Instant::ZERO,
            wire: VecDeque::new(),
            isolated: BTreeSet::new(),
            leaders: Vec::new(),
            reads: Vec::new(),
            syncs_held: BTreeSet::new(),
            effects: Vec::new(),
            sent: Vec::new(),
        };
        for id in ids {
            cluster.start(NodeId(id));
        }
        cluster
    }

    /// Starts a node that is in no configuration yet: it waits to be
    /// added and contacted.
    fn join(&mut self, id: NodeId) {
        self.disks.insert(id, MapDisk::default());
        self.joined.insert(id);
        self.start(id);
    }

    /// Starts (or restarts) `id` from what its disk holds.
    fn start(&mut self, id: NodeId) {
        let bootstrap = if self.joined.contains(&id) {
            Configuration::default()
        } else {
            self.voters.clone()
        };
        let disk = &self.disks[&id];
        let log = Log::new(self.log_config.clone(), disk.recover(), self.now).expect("a log");
        let recovered = disk.recover_state();
        let raft = Raft::new(
            id,
            RaftConfig::default(),
            bootstrap,
            recovered,
            log,
            self.seed * 100 + id.get(),
            self.now,
        );
        self.nodes.insert(id, raft);
    }

    /// Drains every node's outputs; returns whether anything happened.
    fn drain(&mut self) -> bool {
        let mut busy = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            while let Some(output) = self.nodes.get_mut(&id).expect("a node").poll_output() {
                busy = true;
                if !matches!(output, Output::Disk(_) | Output::Send(_)) {
                    self.effects.push((id, output.clone()));
                }
                match output {
                    Output::Disk(request)
                        if matches!(request.op, DiskOp::Sync { .. })
                            && self.syncs_held.contains(&id) => {}
                    Output::Disk(request) => {
                        let outcome = self
                            .disks
                            .get_mut(&id)
                            .expect("a disk")
                            .perform(&request.op);
                        self.nodes.get_mut(&id).expect("a node").handle_disk(
                            self.now,
                            request.io,
                            Ok(outcome),
                        );
                    }
                    Output::Send(envelope) => {
                        self.sent.push((self.now, id, envelope.clone()));
                        self.wire.push_back((id, envelope));
                    }
                    Output::BecameLeader { term } => self.leaders.push((term, id)),
                    Output::Stopped(error) => panic!("no disk faults here: {error}"),
                    Output::SteppedDown { .. }
                    | Output::Committed { .. }
                    | Output::Read { .. }
                    | Output::Truncated { .. }
                    | Output::Installed { .. }
                    | Output::Configured { .. }
                    | Output::Damaged(_) => {}
                    Output::ReadReady { id: read, .. } => self.reads.push((id, read, true)),
                    Output::ReadFailed { id: read } => self.reads.push((id, read, false)),
                }
            }
        }
        busy
    }

    /// Proposes one batch of `count` records at the leader.
    fn propose(&mut self, leader: NodeId, count: usize) {
        let node = self.nodes.get_mut(&leader).expect("a node");
        let records = (0..count)
            .map(|i| Bytes::from(format!("record {i} of {}", node.log().next_offset())))
            .collect();
        let entry = NewEntry::records(node.term(), records);
        node.propose(self.now, vec![entry])
            .expect("the leader takes it");
    }

    /// Whether every node not isolated holds the same log as `leader`,
    /// entry for entry, and has committed all of it.
    fn converged(&self, leader: NodeId) -> bool {
        let lead = &self.nodes[&leader];
        let end = lead.log().next_index();
        self.nodes
            .iter()
            .filter(|(id, _)| !self.isolated.contains(id))
            .all(|(_, node)| {
                node.log().next_index() == end
                    && node.log().next_offset() == lead.log().next_offset()
                    && node.commit() == end.prev()
                    && node.commit_offset() == lead.log().next_offset()
                    && node.log().last_term() == lead.log().last_term()
                    // Terms in a segment whose index is not resident (after
                    // a restart) are unknown without reading; the rest agree.
                    && (node.log().first_index().0..end.0).all(|i| {
                        let term = node.log().term(LogIndex(i));
                        term.is_none() || term == lead.log().term(LogIndex(i))
                    })
            })
    }

    /// One step: drain, deliver one message, or move the clock.
    fn step(&mut self) {
        if self.drain() {
            return;
        }
        if let Some((from, envelope)) = self.wire.pop_front() {
            if !self.isolated.contains(&from) && !self.isolated.contains(&envelope.to) {
                if let Some(node) = self.nodes.get_mut(&envelope.to) {
                    node.handle(self.now, from, envelope.message);
                }
            }
            return;
        }
        self.now = fire_earliest(&mut self.nodes);
        self.check_one_leader_per_term();
    }

    fn check_one_leader_per_term(&self) {
        let mut by_term: BTreeMap<Term, NodeId> = BTreeMap::new();
        for &(term, id) in &self.leaders {
            let first = *by_term.entry(term).or_insert(id);
            assert_eq!(first, id, "two leaders in {term}");
        }
    }

    fn run_until(&mut self, steps: usize, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..steps {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("not done within {steps} steps");
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(id, node)| node.is_leader() && !self.isolated.contains(id))
            .map(|(id, _)| *id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// The effects of `node` recorded so far.
    fn effects_of(&self, node: NodeId) -> Vec<Output> {
        let of_node = self.effects.iter().filter(|(id, _)| *id == node);
        of_node.map(|(_, output)| output.clone()).collect()
    }

    /// A crash of `node` that loses the write of entry `index` (its
    /// sectors never reached the disk: zeros) and keeps the writes after
    /// it, then a restart from what the disk holds.
    fn tear_and_restart(&mut self, node: NodeId, index: LogIndex) {
        let (file, start, end) = self.nodes[&node]
            .log()
            .frame_range(index)
            .expect("the entry's frame is known");
        let disk = self.disks.get_mut(&node).expect("a disk");
        let store = disk.files.get_mut(&file).expect("its store");
        store[start as usize..end as usize].fill(0);
        self.syncs_held.remove(&node);
        self.start(node);
    }

    fn followers_agree(&self, leader: NodeId) -> bool {
        self.nodes.iter().filter(|(id, _)| **id != leader && !self.isolated.contains(id)).all(|(_, node)| {
            matches!(node.role(), Role::Follower { leader: Some(l) } if *l == leader)
        })
    }
}

// Raft §5.2: three nodes elect one leader, which the others follow; across
// seeds, exactly one leader per term.
#[test]
fn three_nodes_elect_one_leader() {
    for seed in 0..50 {
        let mut cluster = Cluster::new(3, seed);
        cluster.run_until(10_000, |c| c.leader().is_some_and(|l| c.followers_agree(l)));
        let leader = cluster.leader().expect("a leader");
        let term = cluster.nodes[&leader].term();
        assert!(
            cluster.nodes.values().all(|n| n.term() == term),
            "seed {seed}: one term"
        );
    }
}

// A single voter elects itself at once.
#[test]
fn a_single_node_leads_alone() {
    let mut cluster = Cluster::new(1, 7);
    cluster.run_until(100, |c| c.leader() == Some(NodeId(1)));
}

// Thesis §6.2 (check-quorum) and RA6/RA7: an isolated leader steps down;
// the rest elect a new one in a higher term.
#[test]
fn an_isolated_leader_steps_down_and_the_rest_elect_another() {
    for seed in 0..20 {
        let mut cluster = Cluster::new(5, seed);
        cluster.run_until(20_000, |c| c.leader().is_some_and(|l| c.followers_agree(l)));
        let old = cluster.leader().expect("a leader");
        let old_term = cluster.nodes[&old].term();
        cluster.isolated.insert(old);
        cluster.run_until(50_000, |c| {
            !c.nodes[&old].is_leader() && c.leader().is_some()
        });
        let new = cluster.leader().expect("a new leader");
        assert_ne!(new, old, "seed {seed}");
        assert!(
            cluster.nodes[&new].term() > old_term,
            "seed {seed}: a higher term"
        );
    }
}

// Thesis §9.6 (pre-vote) and RA4/RA5: a node cut off keeps asking for
// pre-votes without raising its term, so when it rejoins it does not
// depose the leader.
#[test]
fn a_rejoining_node_does_not_depose_the_leader() {
    for seed in 0..20 {
        let mut cluster = Cluster::new(3, seed);
        cluster.run_until(10_000, |c| c.leader().is_some_and(|l| c.followers_agree(l)));
        let leader = cluster.leader().expect("a leader");
        let term = cluster.nodes[&leader].term();
        let loner = cluster
            .nodes
            .keys()
            .copied()
            .find(|&id| id != leader)
            .expect("a follower");
        cluster.isolated.insert(loner);
        let until = cluster.now + crate::time::Duration::from_secs(5);
        cluster.run_until(100_000, |c| c.now >= until);
        assert_eq!(
            cluster.nodes[&loner].term(),
            term,
            "seed {seed}: pre-vote keeps its term"
        );
        cluster.isolated.clear();
        let until = cluster.now + crate::time::Duration::from_secs(2);
        cluster.run_until(100_000, |c| c.now >= until);
        assert_eq!(
            cluster.leader(),
            Some(leader),
            "seed {seed}: the leader stays"
        );
        assert_eq!(
            cluster.nodes[&leader].term(),
            term,
            "seed {seed}: no new term"
        );
        assert!(cluster.followers_agree(leader));
    }
}

impl Cluster {
    /// The lowest-numbered node other than `leader`.
    fn follower_of(&self, leader: NodeId) -> NodeId {
        *self
            .nodes
            .keys()
            .find(|&&id| id != leader)
            .expect("a follower")
    }

    /// The node that is neither `a` nor `b` (in a cluster of three).
    fn third(&self, a: NodeId, b: NodeId) -> NodeId {
        *self
            .nodes
            .keys()
            .find(|&&id| id != a && id != b)
            .expect("a third node")
    }

    /// Proposes `batches` batches of `records` records at `leader` and runs
    /// until every node holds and has committed them.
    fn replicate(&mut self, leader: NodeId, batches: usize, records: usize) {
        for _ in 0..batches {
            self.propose(leader, records);
        }
        self.run_until(100_000, |c| c.converged(leader));
    }
}

/// Runs until a leader is elected that every other node follows; returns it.
fn elect(cluster: &mut Cluster) -> NodeId {
    cluster.run_until(20_000, |c| c.leader().is_some_and(|l| c.followers_agree(l)));
    cluster.leader().expect("a leader")
}

// Raft §5.2: an idle leader sends every follower a heartbeat at every
// interval: its own heartbeat never stands in for the next one (when an
// append does is `Progress::tick`'s table).
#[test]
fn an_idle_leader_heartbeats_every_interval() {
    use crate::raft::message::Message;
    let interval = RaftConfig::default().heartbeat_interval;
    let mut cluster = Cluster::new(3, 4);
    let leader = elect(&mut cluster);
    cluster.run_until(10_000, |c| c.converged(leader));
    let appends_in = |cluster: &Cluster, from: Instant, until: Instant| {
        let mut by_follower: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (at, by, envelope) in &cluster.sent {
            if *by == leader && *at >= from && *at < until {
                if let Message::Append { .. } = envelope.message {
                    *by_follower.entry(envelope.to).or_default() += 1;
                }
            }
        }
        by_follower.into_values().collect::<Vec<_>>()
    };
    let from = cluster.now;
    let until = from + Duration::from_nanos(interval.as_nanos() * 10);
    cluster.run_until(100_000, |c| c.now >= until);
    assert_eq!(
        appends_in(&cluster, from, until),
        [10, 10],
        "idle: one per interval"
    );
}

// Raft §5.3: entries proposed at the leader reach every follower's log at
// the same indices and offsets, and everything commits; §8: the first entry
// of the term is the leader's no-op, which takes no offset.
#[test]
fn proposals_replicate_and_commit_everywhere() {
    for seed in 0..10 {
        let mut cluster = Cluster::new(3, seed);
        let leader = elect(&mut cluster);
        for batch in 0..40 {
            cluster.propose(leader, 1 + batch % 5);
        }
        cluster.run_until(100_000, |c| c.converged(leader));
        let lead = &cluster.nodes[&leader];
        // One no-op, then 40 batches; 8 rounds of 1+2+3+4+5 records.
        assert_eq!(lead.log().next_index(), LogIndex(42), "seed {seed}");
        assert_eq!(lead.commit_offset(), Offset(120), "seed {seed}");
    }
}

// Raft §5.3 with a disk read: a follower cut off while the leader appended
// catches up from a new leader, which holds the missing entries only on its
// disk (its memory holds entries of its own term).
#[test]
fn a_lagging_follower_catches_up_from_disk() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(3, seed);
        let first = elect(&mut cluster);
        let lagging = *cluster
            .nodes
            .keys()
            .find(|&&id| id != first)
            .expect("a follower");
        cluster.isolated.insert(lagging);
        for _ in 0..30 {
            cluster.propose(first, 3);
        }
        cluster.run_until(100_000, |c| c.converged(first));
        // The first leader goes away; the lagging node rejoins.
        cluster.isolated = BTreeSet::from([first]);
        let second = elect(&mut cluster);
        assert_ne!(second, first, "seed {seed}");
        assert_ne!(second, lagging, "seed {seed}: the lagging log cannot win");
        cluster.propose(second, 1);
        cluster.run_until(100_000, |c| c.converged(second));
        assert_eq!(
            cluster.nodes[&lagging].commit_offset(),
            Offset(91),
            "seed {seed}"
        );
    }
}

// Raft §5.3 (conflicts): a leader cut off with entries no one else took
// rejoins; its uncommitted entries are replaced by the new leader's.
#[test]
fn an_uncommitted_suffix_is_replaced() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(3, seed);
        let old = elect(&mut cluster);
        cluster.propose(old, 1);
        cluster.run_until(100_000, |c| c.converged(old));
        cluster.isolated.insert(old);
        for _ in 0..5 {
            cluster.propose(old, 2);
        }
        let new = elect(&mut cluster);
        cluster.propose(new, 7);
        cluster.isolated.clear();
        cluster.run_until(200_000, |c| c.converged(new));
        let node = &cluster.nodes[&old];
        // The old leader's 5 batches are gone: 2 no-ops, 1 + 7 records.
        assert_eq!(node.log().next_index(), LogIndex(5), "seed {seed}");
        assert_eq!(node.commit_offset(), Offset(8), "seed {seed}");
        assert_eq!(node.leader(), Some(new), "seed {seed}");
    }
}

// Raft §7: a follower that needs entries the leader retained away starts
// its log where the leader's starts, then takes the rest.
#[test]
fn a_follower_behind_retention_gets_a_snapshot() {
    let config = LogConfig {
        segment_bytes: 4096,
        retention_bytes: Some(8192),
        ..LogConfig::default()
    };
    for seed in 0..5 {
        let mut cluster = Cluster::with_log(3, seed, config.clone());
        let leader = elect(&mut cluster);
        let lagging = *cluster
            .nodes
            .keys()
            .find(|&&id| id != leader)
            .expect("a follower");
        cluster.isolated.insert(lagging);
        for _ in 0..200 {
            cluster.propose(leader, 4);
            cluster.run_until(1_000, |c| {
                let node = &c.nodes[&leader];
                node.commit() == node.log().next_index().prev()
            });
        }
        let first = cluster.nodes[&leader].log().first_index();
        assert!(
            first > LogIndex(100),
            "seed {seed}: retention removed {first}"
        );
        cluster.isolated.clear();
        cluster.run_until(100_000, |c| c.converged(leader));
        let node = &cluster.nodes[&lagging];
        assert!(node.log().first_index() >= first, "seed {seed}");
        assert_eq!(node.commit_offset(), Offset(800), "seed {seed}");
    }
}

// A restarted node recovers its log and term from disk and rejoins.
#[test]
fn a_restarted_follower_keeps_its_log() {
    let mut cluster = Cluster::new(3, 3);
    let leader = elect(&mut cluster);
    cluster.replicate(leader, 10, 2);
    let follower = cluster.follower_of(leader);
    let (term, next) = {
        let node = &cluster.nodes[&follower];
        (node.term(), node.log().next_index())
    };
    cluster.start(follower);
    let node = &cluster.nodes[&follower];
    assert_eq!((node.term(), node.log().next_index()), (term, next));
    cluster.replicate(leader, 1, 1);
}

// A follower whose log holds a damaged entry (bytes that fail their
// checksum, with valid entries after them) sends the leader back to it and
// takes the leader's entries in its place; it never serves the damage.
#[test]
fn a_damaged_entry_on_a_follower_is_replaced() {
    let mut cluster = Cluster::new(3, 4);
    let leader = elect(&mut cluster);
    cluster.replicate(leader, 10, 3);
    let follower = cluster.follower_of(leader);
    // Flip a byte in the middle of the follower's store (past its header).
    let disk = cluster.disks.get_mut(&follower).expect("a disk");
    let (_, store) = disk
        .files
        .iter_mut()
        .find(|(file, _)| file.to_string().ends_with(".store"))
        .expect("a store");
    let middle = store.len() / 2;
    store[middle] ^= 0x40;
    cluster.start(follower);
    assert!(
        cluster.nodes[&follower].log().damaged().next().is_some(),
        "recovery found the damage"
    );
    cluster.propose(leader, 1);
    cluster.run_until(100_000, |c| c.converged(leader));
    let node = &cluster.nodes[&follower];
    assert_eq!(node.log().damaged().count(), 0, "the damage was replaced");
    assert_eq!(node.commit_offset(), Offset(31));
}

// Thesis §3.10: the leader brings the target up to date, tells it to stand
// at once, and the target wins the next term without pre-votes; the old
// leader follows it. Proposals made meanwhile are refused with the target
// as the hint.
#[test]
fn leadership_is_handed_over() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(3, seed);
        let old = elect(&mut cluster);
        let target = cluster.follower_of(old);
        cluster.isolated.insert(target);
        for _ in 0..5 {
            cluster.propose(old, 2);
        }
        cluster.run_until(100_000, |c| c.converged(old));
        cluster.isolated.clear();
        let term = cluster.nodes[&old].term();
        let now = cluster.now;
        let node = cluster.nodes.get_mut(&old).expect("a node");
        node.transfer(now, target).expect("the leader hands over");
        let refused = node.propose(now, vec![NewEntry::records(term, vec![Bytes::from("x")])]);
        assert_eq!(
            refused,
            Err(crate::error::Error::NotLeader {
                leader: Some(target)
            }),
            "seed {seed}"
        );
        cluster.run_until(100_000, |c| {
            c.leader() == Some(target) && c.followers_agree(target)
        });
        assert_eq!(cluster.nodes[&target].term(), term.next(), "seed {seed}");
        cluster.replicate(target, 1, 1);
    }
}

// Thesis §6.4 (ReadIndex): a leader's read is confirmed once a majority
// answers a round that began after it; a leader cut off never confirms it,
// and the read fails when the leader steps down.
#[test]
fn reads_are_confirmed_by_a_majority() {
    let mut cluster = Cluster::new(3, 9);
    let leader = elect(&mut cluster);
    cluster.replicate(leader, 1, 1);
    let now = cluster.now;
    let node = cluster.nodes.get_mut(&leader).expect("a node");
    node.read_index(now, 1).expect("the leader reads");
    cluster.run_until(10_000, |c| !c.reads.is_empty());
    assert_eq!(cluster.reads, vec![(leader, 1, true)]);

    let follower = cluster.follower_of(leader);
    let now = cluster.now;
    let refused = cluster
        .nodes
        .get_mut(&follower)
        .expect("a node")
        .read_index(now, 2);
    assert_eq!(
        refused,
        Err(crate::error::Error::NotLeader {
            leader: Some(leader)
        })
    );

    cluster.isolated.insert(leader);
    let now = cluster.now;
    let node = cluster.nodes.get_mut(&leader).expect("a node");
    node.read_index(now, 3).expect("it still believes it leads");
    cluster.run_until(100_000, |c| c.reads.len() == 2);
    assert_eq!(cluster.reads[1], (leader, 3, false), "never confirmed");
}

fn members(voters: &[u64], learners: &[u64]) -> Configuration {
    Configuration {
        voters: Voters::of(voters),
        learners: learners.iter().map(|&id| NodeId(id)).collect(),
    }
}

// Thesis §4.1, §4.2.1, §4.2.2 and the 2015 no-op fix: a node that joins
// is added as a learner, is caught up without voting, is promoted once
// caught up; a removed leader steps down once its removal commits, and
// the rest elect a leader among themselves. Every node follows the last
// configuration in its log, through restarts.
#[test]
fn a_learner_joins_is_promoted_and_the_old_leader_leaves() {
    use crate::raft::membership::{Change, Refused};
    for seed in 0..10 {
        let mut cluster = Cluster::new(3, seed);
        cluster.run_until(10_000, |c| c.leader().is_some_and(|l| c.followers_agree(l)));
        let leader = cluster.leader().expect("a leader");
        cluster.propose(leader, 3);
        cluster.run_until(10_000, |c| c.converged(leader));
        cluster.join(NodeId(4));
        let now = cluster.now;
        let node = cluster.nodes.get_mut(&leader).expect("a node");
        assert_eq!(
            node.change_membership(now, Change::Promote(NodeId(4))),
            Err(Refused::NotALearnerOrMember)
        );
        let added = node
            .change_membership(now, Change::AddLearner(NodeId(4)))
            .expect("the leader adds a learner");
        assert_eq!(
            node.change_membership(now, Change::Remove(NodeId(2))),
            Err(Refused::Busy),
            "seed {seed}: one change at a time"
        );
        assert_eq!(
            node.configuration(),
            &members(&[1, 2, 3], &[4]),
            "in effect at once"
        );
        cluster.run_until(20_000, |c| c.converged(leader));
        for (id, node) in &cluster.nodes {
            assert_eq!(
                node.configuration(),
                &members(&[1, 2, 3], &[4]),
                "seed {seed}: {id}"
            );
            assert_eq!(node.configuration_index(), added);
        }
        assert!(!cluster.nodes[&NodeId(4)].is_leader());
        // A learner restarted with its log synced still knows it is one.
        while cluster.drain() {}
        cluster.start(NodeId(4));
        assert_eq!(
            cluster.nodes[&NodeId(4)].configuration(),
            &members(&[1, 2, 3], &[4])
        );
        let caught_up = |c: &Cluster| {
            let lead = &c.nodes[&leader];
            let progress = &lead.leadership.as_ref().expect("leading").progress;
            progress[&NodeId(4)].matched >= lead.commit()
        };
        cluster.run_until(20_000, caught_up);
        let now = cluster.now;
        let node = cluster.nodes.get_mut(&leader).expect("a node");
        node.change_membership(now, Change::Promote(NodeId(4)))
            .expect("a caught-up learner is promoted");
        cluster.run_until(20_000, |c| c.converged(leader));
        let now = cluster.now;
        let node = cluster.nodes.get_mut(&leader).expect("a node");
        let removed = node
            .change_membership(now, Change::Remove(leader))
            .expect("the leader may remove itself");
        cluster.run_until(50_000, |c| {
            c.leader()
                .is_some_and(|l| l != leader && c.nodes[&l].commit() > removed)
        });
        let new = cluster.leader().expect("a new leader");
        let rest: Vec<u64> = [1, 2, 3, 4]
            .into_iter()
            .filter(|&id| NodeId(id) != leader)
            .collect();
        assert_eq!(cluster.nodes[&new].configuration(), &members(&rest, &[]));
        let old = &cluster.nodes[&leader];
        assert!(
            !old.is_leader(),
            "seed {seed}: the removed leader stepped down"
        );
        assert!(
            old.commit() >= removed,
            "seed {seed}: once its removal committed"
        );
        assert!(
            cluster
                .leaders
                .iter()
                .all(|&(_, id)| id != leader || cluster.leaders[0].1 == leader),
            "seed {seed}: the removed node never leads again"
        );
    }
}

/// Flips a byte inside the frame of committed entry `index` on `node`'s
/// disk (rot at rest) and has the node read its log, which finds it.
fn rot_and_read(cluster: &mut Cluster, node: NodeId, index: LogIndex) {
    let (file, start, _) = cluster.nodes[&node]
        .log()
        .frame_range(index)
        .expect("the entry's frame is known");
    let bytes = cluster.disks.get_mut(&node).expect("a disk");
    bytes.files.get_mut(&file).expect("its store")[start as usize + 12] ^= 0x10;
    let now = cluster.now;
    let raft = cluster.nodes.get_mut(&node).expect("a node");
    raft.read(
        now,
        crate::ids::ReadId(7),
        ReadFrom::Index(LogIndex(1)),
        1000,
        1 << 20,
    )
    .expect("a read");
    cluster.drain();
    assert!(
        cluster.nodes[&node].log().damaged().next().is_some(),
        "the read found the damage"
    );
}

// Protocol-aware recovery (Alagappan et al., FAST 2018): a follower whose
// committed entry rotted is repaired in place from the leader — its log is
// never shorter than before — and a leader whose own committed entry
// rotted hands leadership to a voter holding it, then is repaired as a
// follower. Nothing damaged is served meanwhile (the log's reads verify
// every frame).
#[test]
fn rotted_entries_are_repaired_from_an_intact_copy() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(3, seed);
        let leader = elect(&mut cluster);
        cluster.replicate(leader, 6, 2);
        let follower = cluster.follower_of(leader);
        let last = cluster.nodes[&follower].log().next_index();
        rot_and_read(&mut cluster, follower, LogIndex(3));
        cluster.propose(leader, 1);
        cluster.run_until(100_000, |c| {
            c.converged(leader) && c.nodes[&follower].log().damaged().next().is_none()
        });
        assert!(
            cluster.nodes[&follower].log().next_index() > last,
            "seed {seed}: repaired in place, never cut"
        );
        rot_and_read(&mut cluster, leader, LogIndex(4));
        cluster.run_until(100_000, |c| {
            c.leader().is_some_and(|l| l != leader)
                && c.nodes[&leader].log().damaged().next().is_none()
        });
        let new = cluster.leader().expect("a new leader");
        cluster.propose(new, 1);
        cluster.run_until(100_000, |c| c.converged(new));
    }
}

// Protocol-aware recovery (FAST 2018, §4.1 and §4.2) for a single voter:
// a crash lost the unsynced write of an entry and kept a later one, so
// recovery finds the entry damaged with an intact entry after it. Never
// synced, it was never counted, and with no other voter never committed:
// the node cuts its log there before its new term's no-op, which commits
// in its place. Kept, the entry would have committed with the no-op, and
// no consumer could ever have read past it (seed 40002748).
#[test]
fn a_single_voter_cuts_a_torn_entry_before_it_leads_again() {
    let mut cluster = Cluster::new(1, 5);
    let node = elect(&mut cluster);
    // A no-op, then three batches of two records: i1 to i4, o0 to o5.
    cluster.replicate(node, 3, 2);
    cluster.syncs_held.insert(node);
    cluster.propose(node, 2); // i5, o6 and o7
    cluster.propose(node, 1); // i6, o8
    cluster.drain();
    assert_eq!(
        cluster.nodes[&node].commit(),
        LogIndex(4),
        "i5, i6 unsynced"
    );
    let term = cluster.nodes[&node].term();
    cluster.effects.clear();
    cluster.tear_and_restart(node, LogIndex(5));
    cluster.run_until(1_000, |c| c.nodes[&node].commit() == LogIndex(5));
    let torn = Damage {
        first: LogIndex(5),
        end: LogIndex(6),
        first_offset: Offset(6),
        end_offset: Offset(8),
    };
    assert_eq!(
        cluster.effects_of(node),
        [
            Output::Damaged(torn),
            Output::Truncated { after: LogIndex(4) },
            Output::BecameLeader { term: term.next() },
            Output::Committed {
                index: LogIndex(5),
                offset: Offset(6),
            },
        ]
    );
    let raft = &cluster.nodes[&node];
    assert_eq!(raft.log().damaged().count(), 0, "nothing damaged is left");
    assert_eq!(raft.log().next_index(), LogIndex(6), "the no-op took i5");
    cluster.replicate(node, 1, 3);
    assert_eq!(cluster.nodes[&node].commit_offset(), Offset(9));
}

// The same crash on a leader of three voters: the torn entry may be held,
// counted, by another voter, so it is not cut; but the leader never counts
// its own damaged copy (FAST 2018, §4.2), so it commits nothing over the
// damage (counting itself, it would have committed the entry with one
// intact copy, on one follower). It hands leadership to the follower that
// holds the entry intact, and is repaired as a follower.
#[test]
fn a_leader_never_counts_its_own_torn_entry() {
    let mut cluster = Cluster::new(3, 6);
    let leader = elect(&mut cluster);
    cluster.replicate(leader, 2, 1); // a no-op, then i2 and i3
    let holder = cluster.follower_of(leader);
    let other = cluster.third(leader, holder);
    // `holder` stores i4 and i5; only `leader` stores i6 (none synced).
    cluster.isolated.insert(other);
    cluster.syncs_held.insert(leader);
    cluster.propose(leader, 1);
    cluster.propose(leader, 1);
    cluster.run_until(10_000, |c| {
        c.nodes[&holder].log().next_index() == LogIndex(6)
    });
    cluster.isolated.insert(holder);
    cluster.propose(leader, 1);
    cluster.run_until(1_000, |c| c.wire.is_empty()); // lost on the way
    assert_eq!(cluster.nodes[&leader].commit(), LogIndex(3));
    let term = cluster.nodes[&leader].term();
    cluster.effects.clear();
    cluster.tear_and_restart(leader, LogIndex(4));
    // Its log is the longest: with `other` cut off, only it can win.
    cluster.isolated.remove(&holder);
    cluster.run_until(100_000, |c| c.leader() == Some(holder));
    let torn = Damage {
        first: LogIndex(4),
        end: LogIndex(5),
        first_offset: Offset(2),
        end_offset: Offset(3),
    };
    assert_eq!(
        cluster.effects_of(leader),
        [
            Output::Damaged(torn),
            Output::BecameLeader { term: term.next() },
            Output::SteppedDown {
                term: term.next().next()
            },
        ],
        "it led, committed nothing, and handed over"
    );
    cluster.isolated.clear();
    cluster.replicate(holder, 1, 1);
    let node = &cluster.nodes[&leader];
    assert_eq!(node.log().damaged().count(), 0, "repaired as a follower");
    assert_eq!(node.commit_offset(), Offset(6));
}

// The same crash on a leader of three voters whose followers lack the torn
// entry: it cannot send it, nor count it, so it commits nothing; the
// followers hear nothing past it, elect one of themselves, and the new
// leader's entries replace the torn one and those after it.
#[test]
fn followers_replace_a_leader_that_cannot_send_its_torn_entry() {
    let mut cluster = Cluster::new(3, 7);
    let leader = elect(&mut cluster);
    cluster.replicate(leader, 2, 1); // a no-op, then i2 and i3
    let first = cluster.follower_of(leader);
    let other = cluster.third(leader, first);
    // Only `leader` stores i4 and i5 (neither synced).
    cluster.isolated.extend([first, other]);
    cluster.syncs_held.insert(leader);
    cluster.propose(leader, 1);
    cluster.propose(leader, 1);
    cluster.run_until(1_000, |c| c.wire.is_empty()); // lost on the way
    let term = cluster.nodes[&leader].term();
    cluster.effects.clear();
    cluster.tear_and_restart(leader, LogIndex(4));
    // Its log is the longest: with `other` cut off, only it can win.
    cluster.isolated.remove(&first);
    cluster.run_until(100_000, |c| c.leader() == Some(leader));
    cluster.isolated.clear();
    cluster.run_until(100_000, |c| c.leader().is_some_and(|l| l != leader));
    let new = cluster.leader().expect("a new leader");
    cluster.replicate(new, 1, 1);
    let effects = cluster.effects_of(leader);
    let torn = Damage {
        first: LogIndex(4),
        end: LogIndex(5),
        first_offset: Offset(2),
        end_offset: Offset(3),
    };
    assert_eq!(
        effects[..3],
        [
            Output::Damaged(torn),
            Output::BecameLeader { term: term.next() },
            Output::SteppedDown {
                term: term.next().next()
            },
        ],
        "it led, committed nothing, and was deposed"
    );
    assert!(
        effects.contains(&Output::Truncated { after: LogIndex(3) }),
        "the torn entry was replaced: {effects:?}"
    );
    let node = &cluster.nodes[&leader];
    assert_eq!(node.log().damaged().count(), 0);
    assert_eq!(node.commit_offset(), Offset(3));
}

// A configuration entry is bounded (`CONFIG_BYTES_MAX`, carried by every
// segment header): adding learners one by one ends with a clear refusal,
// and the configuration in effect stays the last one that fit.
#[test]
fn a_configuration_too_large_is_refused() {
    use crate::raft::membership::{Change, Refused};
    let mut cluster = Cluster::new(1, 3);
    let leader = elect(&mut cluster);
    cluster.run_until(1_000, |c| c.nodes[&leader].commit() >= LogIndex(1));
    let mut added = 0u64;
    loop {
        let now = cluster.now;
        let node = cluster.nodes.get_mut(&leader).expect("a node");
        match node.change_membership(now, Change::AddLearner(NodeId(1_000_000_000 + added))) {
            Ok(index) => {
                added += 1;
                cluster.run_until(1_000, |c| c.nodes[&leader].commit() >= index);
            }
            Err(refused) => {
                assert_eq!(refused, Refused::TooManyMembers, "after {added} learners");
                break;
            }
        }
        assert!(added < 10_000, "the bound is reached");
    }
    let config = cluster.nodes[&leader].configuration();
    assert_eq!(config.learners.len() as u64, added);
    assert!(config.encode().len() <= crate::limits::CONFIG_BYTES_MAX as usize);
}
