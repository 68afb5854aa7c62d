//! Elections on a small in-memory cluster with an explicit clock.
//!
//! The harness delivers messages at once (unless a node is isolated) and
//! completes disk operations at once; when nothing is in flight it moves
//! the clock to the earliest timer. Each test opens with its goal and the
//! section of Raft or of the thesis it checks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{NodeId, Term};
use crate::log::disk::DiskOutcome;
use crate::raft::election::LastEntry;
use crate::raft::machine::{Output, Raft, RaftConfig, Role};
use crate::raft::message::Envelope;
use crate::raft::quorum::{Configuration, Voters};
use crate::raft::state::RecoveredState;
use crate::time::Instant;

struct Cluster {
    nodes: BTreeMap<NodeId, Raft>,
    now: Instant,
    wire: VecDeque<(NodeId, Envelope)>,
    isolated: BTreeSet<NodeId>,
    /// (term, leader) for every BecameLeader seen.
    leaders: Vec<(Term, NodeId)>,
}

impl Cluster {
    fn new(size: u64, seed: u64) -> Cluster {
        let ids: Vec<u64> = (1..=size).collect();
        let voters = Configuration::simple(Voters::of(&ids));
        let nodes = ids
            .iter()
            .map(|&id| {
                let raft = Raft::new(
                    NodeId(id),
                    RaftConfig::default(),
                    voters.clone(),
                    RecoveredState::default(),
                    LastEntry::default(),
                    seed * 100 + id,
                    Instant::ZERO,
                );
                (NodeId(id), raft)
            })
            .collect();
        Cluster {
            nodes,
            now: Instant::ZERO,
            wire: VecDeque::new(),
            isolated: BTreeSet::new(),
            leaders: Vec::new(),
        }
    }

    /// Drains every node's outputs; returns whether anything happened.
    fn drain(&mut self) -> bool {
        let mut busy = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            while let Some(output) = self.nodes.get_mut(&id).expect("a node").poll_output() {
                busy = true;
                match output {
                    Output::Disk(request) => {
                        self.nodes
                            .get_mut(&id)
                            .expect("a node")
                            .handle_disk(request.io, Ok(DiskOutcome::Done));
                    }
                    Output::Send(envelope) => self.wire.push_back((id, envelope)),
                    Output::BecameLeader { term } => self.leaders.push((term, id)),
                    Output::SteppedDown { .. } => {}
                    Output::Stopped(error) => panic!("no disk faults here: {error}"),
                }
            }
        }
        busy
    }

    /// One step: drain, deliver one message, or move the clock.
    fn step(&mut self) {
        if self.drain() {
            return;
        }
        if let Some((from, envelope)) = self.wire.pop_front() {
            if !self.isolated.contains(&from) && !self.isolated.contains(&envelope.to) {
                let node = self.nodes.get_mut(&envelope.to).expect("a node");
                node.handle(self.now, from, envelope.message);
            }
            return;
        }
        let next = self
            .nodes
            .values()
            .filter_map(Raft::poll_timeout)
            .min()
            .expect("a timer is armed");
        self.now = next;
        for node in self.nodes.values_mut() {
            if node.poll_timeout().is_some_and(|at| at <= next) {
                node.handle_timeout(next);
            }
        }
        for node in self.nodes.values() {
            node.check_invariants();
        }
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
