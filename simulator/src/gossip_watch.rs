//! Gossip inside the Raft scenarios: what the world sees of every node's
//! gossip, held to what the world knows to be true.
//!
//! Owns the simulated clusters' gossip timing and four checkers:
//! - a node's incarnation only grows, across restarts too;
//! - a member reachable from a majority is never declared dead by a node
//!   that can exchange datagrams with it, when nothing changed since it
//!   was first suspected at that incarnation (no crash, start, pause or
//!   network change): a false death. A node cut off from the member may
//!   declare it dead: it hears that the member lives only through others,
//!   and with one bridge between two sides of a partition, the refutation
//!   may come too late (SWIM assumes every member can reach every other);
//! - Raft membership changes on gossip's word only as the rules allow: a
//!   learner added or promoted is alive in the leader's view, a promotion
//!   only while voters are fewer than wanted, a removal only of a member
//!   that left, or one the leader's view has held dead for the dead time
//!   while a majority of the remaining voters is alive in it (or one the
//!   operator asked for);
//! - after the liveness phase heals everything, every running node's view
//!   holds every other running node live (alive or suspect, not dead) and
//!   every node that left not live, within [`CONVERGE_WITHIN`].
//!
//! It must never decide anything for a node: it only reads what the nodes
//! said (their outputs) and what the world did.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::gossip::machine::GossipConfig;
use cairn_core::gossip::member::{State, Status};
use cairn_core::ids::NodeId;
use cairn_core::limits::GOSSIP_DATAGRAM_BYTES_MAX;
use cairn_core::node::membership::MembershipPolicy;
use cairn_core::raft::membership::Change;
use cairn_core::raft::quorum::Configuration;
use cairn_core::time::{Duration, Instant};

use crate::world::Failure;

/// Gossip's timing in the simulated clusters: a probe every 100 ms, so
/// that failures are found (a suspicion lasts 0.4–2.4 s among up to seven
/// nodes) within runs of a few simulated seconds.
pub const SIM_GOSSIP: GossipConfig = GossipConfig {
    probe_interval: Duration::from_millis(100),
    probe_timeout: Duration::from_millis(50),
    indirect_probes: 3,
    push_pull_interval: Duration::from_secs(1),
    lifeguard: true,
    datagram_bytes: GOSSIP_DATAGRAM_BYTES_MAX,
};

/// How long gossip must hold a member dead before the leader removes it,
/// in the simulated clusters.
pub const SIM_DEAD_AFTER: Duration = Duration::from_secs(1);

/// The bound on convergence after the heal: every running node's view
/// holds every other running node alive within it (a restarted node
/// joins through the founding voters at once; a member held dead learns
/// of it by a push-pull within a second and refutes).
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(5);

/// The most a node's clock runs slow, as a fraction: a dead time measured
/// on a node's clock may be this much shorter in world time.
const DRIFT_MAX: f64 = 0.02;

/// What the world knows of a member when a node declares it dead.
#[derive(Clone, Copy, Debug)]
pub struct Truth {
    /// If the member runs (not crashed, not paused): since when (its
    /// current life's start).
    pub running_since: Option<Instant>,
    /// Whether the member left gossip.
    pub left: bool,
    /// Whether the member's links both ways to a majority of the running
    /// nodes (itself included) work.
    pub member_reachable: bool,
    /// Whether the node that declares it dead has working links both ways
    /// to it.
    pub linked: bool,
}

/// What the world sees of gossip in one run.
#[derive(Debug)]
pub struct GossipWatch {
    policy: MembershipPolicy,
    /// Each node's last persisted incarnation.
    persisted: BTreeMap<NodeId, u64>,
    /// When any node first suspected a member at an incarnation.
    first_suspected: BTreeMap<(NodeId, u64), Instant>,
    /// Members declared dead at an incarnation, by anyone.
    declared_dead: BTreeSet<(NodeId, u64)>,
    /// What each node's gossip says of each member, and since when it has
    /// said that state (a new incarnation in the same state keeps the
    /// time): (observer, member).
    views: BTreeMap<(NodeId, NodeId), (Status, Instant)>,
    /// When a node crashed or started, a process paused or resumed, or
    /// the network changed, last.
    changed_at: Instant,
    /// Changes the operator asked the leader for.
    asked: BTreeSet<ChangeKey>,
    /// The configuration each running node follows.
    configs: BTreeMap<NodeId, Configuration>,
    /// Deaths declared of members that were running (not crashed, not
    /// paused): a fault, or loss above 10%, excused every one, or the run
    /// failed.
    pub deaths_of_running: u64,
    /// When the liveness phase healed everything.
    healed_at: Option<Instant>,
    /// How long after the heal the views converged.
    pub converged_in: Option<Duration>,
}

/// A membership change, ordered, for the set of the operator's asks.
type ChangeKey = (u8, NodeId);

fn key(change: Change) -> ChangeKey {
    match change {
        Change::AddLearner(node) => (0, node),
        Change::Promote(node) => (1, node),
        Change::Remove(node) => (2, node),
    }
}

impl GossipWatch {
    /// A watch for clusters whose membership follows gossip by `policy`.
    pub fn new(policy: MembershipPolicy) -> GossipWatch {
        GossipWatch {
            policy,
            persisted: BTreeMap::new(),
            first_suspected: BTreeMap::new(),
            declared_dead: BTreeSet::new(),
            views: BTreeMap::new(),
            changed_at: Instant::ZERO,
            asked: BTreeSet::new(),
            configs: BTreeMap::new(),
            deaths_of_running: 0,
            healed_at: None,
            converged_in: None,
        }
    }

    /// The incarnation `node` last persisted: a restart starts past it.
    pub fn persisted(&self, node: NodeId) -> Option<u64> {
        self.persisted.get(&node).copied()
    }

    /// `node` persists `incarnation`: it must be past the last.
    pub fn persist(&mut self, node: NodeId, incarnation: u64) -> Result<(), Failure> {
        if let Some(&last) = self
            .persisted
            .get(&node)
            .filter(|&&last| incarnation <= last)
        {
            return Err(Failure {
                checker: "incarnations only grow",
                what: format!("{node} persisted incarnation {incarnation} after {last}"),
            });
        }
        self.persisted.insert(node, incarnation);
        Ok(())
    }

    /// Something that may excuse a death changed: a crash, a start, a
    /// pause, a resume, a cut or a heal.
    pub fn changed(&mut self, now: Instant) {
        self.changed_at = now;
    }

    /// `node` started, following `configuration`.
    pub fn started(&mut self, now: Instant, node: NodeId, configuration: &Configuration) {
        self.changed(now);
        self.configs.insert(node, configuration.clone());
    }

    /// `node` now follows `configuration`; if it leads, it proposed it,
    /// and the change is checked ([`GossipWatch::check_change`]).
    pub fn configured(
        &mut self,
        now: Instant,
        node: NodeId,
        leads: bool,
        configuration: &Configuration,
    ) -> Result<(), Failure> {
        let before = self.configs.insert(node, configuration.clone());
        match before {
            Some(before) if leads => self.check_change(now, node, &before, configuration),
            _ => Ok(()),
        }
    }

    /// `node` crashed: what its gossip believed dies with it.
    pub fn crashed(&mut self, now: Instant, node: NodeId) {
        self.changed(now);
        let theirs: Vec<(NodeId, NodeId)> = self
            .views
            .range((node, NodeId(0))..=(node, NodeId(u64::MAX)))
            .map(|(&k, _)| k)
            .collect();
        for k in theirs {
            self.views.remove(&k);
        }
    }

    /// The operator asked the leader for `change`.
    pub fn asked(&mut self, change: Change) {
        self.asked.insert(key(change));
    }

    /// `observer`'s gossip now says `status` of `member`; `truth` is what
    /// the world knows of both.
    pub fn observe(
        &mut self,
        now: Instant,
        observer: NodeId,
        member: NodeId,
        status: Status,
        truth: Truth,
    ) -> Result<(), Failure> {
        let since = match self.views.get(&(observer, member)) {
            Some((was, since)) if was.state == status.state => *since,
            _ => now,
        };
        self.views.insert((observer, member), (status, since));
        let at = (member, status.incarnation);
        match status.state {
            State::Suspect => {
                self.first_suspected.entry(at).or_insert(now);
            }
            State::Dead if self.declared_dead.insert(at) => {
                let Some(since) = truth.running_since.filter(|_| !truth.left) else {
                    return Ok(());
                };
                self.deaths_of_running += 1;
                let suspected = self.first_suspected.get(&at).copied().unwrap_or(now);
                let calm = since <= suspected && self.changed_at <= suspected;
                if calm && truth.member_reachable && truth.linked {
                    return Err(Failure {
                        checker: "no false deaths",
                        what: format!(
                            "{observer} declared {member} dead at incarnation {} though they \
                             were linked, {member} reached a majority, and nothing changed \
                             since it was first suspected at {suspected}",
                            status.incarnation
                        ),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The leader proposed the configuration `after` in place of `before`:
    /// the change must be one the operator asked for, or one the rules
    /// allow on what the leader's gossip says.
    fn check_change(
        &self,
        now: Instant,
        leader: NodeId,
        before: &Configuration,
        after: &Configuration,
    ) -> Result<(), Failure> {
        let Some(change) = one_change(before, after) else {
            return Err(self.refused(leader, before, after, "not a change of one node"));
        };
        if self.asked.contains(&key(change)) {
            return Ok(());
        }
        let view = |member: NodeId| self.views.get(&(leader, member)).copied();
        let alive = |member: NodeId| {
            member == leader || view(member).is_some_and(|(s, _)| s.state == State::Alive)
        };
        let allowed = match change {
            Change::AddLearner(node) => alive(node),
            Change::Promote(node) => alive(node) && before.voters.0.len() < self.policy.voters,
            Change::Remove(node) => match view(node) {
                Some((status, _)) if status.state == State::Left => true,
                Some((status, since)) if status.state == State::Dead => {
                    let dead_for = now.saturating_since(since).as_nanos() as f64;
                    let needed = self.policy.dead_after.as_nanos() as f64 * (1.0 - DRIFT_MAX);
                    let remaining: Vec<NodeId> = before
                        .voters
                        .0
                        .iter()
                        .copied()
                        .filter(|&v| v != node)
                        .collect();
                    let quorum = remaining.iter().filter(|&&v| alive(v)).count() * 2
                        > remaining.len()
                        || !before.is_voter(node);
                    dead_for >= needed && quorum
                }
                _ => false,
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(self.refused(leader, before, after, "not allowed by what its gossip says"))
        }
    }

    fn refused(
        &self,
        leader: NodeId,
        before: &Configuration,
        after: &Configuration,
        why: &str,
    ) -> Failure {
        let views: Vec<String> = self
            .views
            .range((leader, NodeId(0))..=(leader, NodeId(u64::MAX)))
            .map(|((_, member), (status, since))| {
                format!(
                    "{member} {:?}@{} since {since}",
                    status.state, status.incarnation
                )
            })
            .collect();
        Failure {
            checker: "membership follows gossip",
            what: format!(
                "{leader} went from [{before}] to [{after}]: {why} (its view: {})",
                views.join(", ")
            ),
        }
    }

    /// The liveness phase healed everything at `now`.
    pub fn healed(&mut self, now: Instant) {
        self.changed(now);
        self.healed_at = Some(now);
    }

    /// Whether every running node's view (`status`: observer, its gossip's
    /// status of each member) holds every other running node live, and
    /// every one that left not; noted the first time it does after the heal. An
    /// error once [`CONVERGE_WITHIN`] has passed since the heal without it.
    pub fn converged(
        &mut self,
        now: Instant,
        running: &[(NodeId, bool)],
        status: impl Fn(NodeId, NodeId) -> Option<Status>,
    ) -> Result<bool, Failure> {
        let mut lagging = None;
        'all: for &(observer, observer_left) in running {
            if observer_left {
                continue;
            }
            for &(member, member_left) in running {
                if member == observer {
                    continue;
                }
                let seen = status(observer, member).map(|s| s.state);
                // A suspect is still a member (SWIM's live states): under
                // heavy loss some member is nearly always suspected by
                // someone, and refutes.
                let live = matches!(seen, Some(State::Alive | State::Suspect));
                let fine = if member_left { !live } else { live };
                if !fine {
                    lagging = Some((observer, member, seen));
                    break 'all;
                }
            }
        }
        let Some(healed) = self.healed_at else {
            return Ok(lagging.is_none());
        };
        match lagging {
            None => {
                self.converged_in.get_or_insert(now.saturating_since(healed));
                Ok(true)
            }
            Some((observer, member, seen)) if now.saturating_since(healed) > CONVERGE_WITHIN => {
                Err(Failure {
                    checker: "gossip views converge",
                    what: format!(
                        "{observer} still sees {member} as {seen:?} {CONVERGE_WITHIN} after the heal"
                    ),
                })
            }
            Some(_) => Ok(false),
        }
    }
}

/// The one-node change from `before` to `after`, if it is one.
fn one_change(before: &Configuration, after: &Configuration) -> Option<Change> {
    let members = |c: &Configuration| c.members().collect::<BTreeSet<NodeId>>();
    let (was, is) = (members(before), members(after));
    let added: Vec<NodeId> = is.difference(&was).copied().collect();
    let removed: Vec<NodeId> = was.difference(&is).copied().collect();
    let promoted: Vec<NodeId> = after
        .voters
        .0
        .iter()
        .copied()
        .filter(|v| before.learners.contains(v))
        .collect();
    let demoted = before.voters.0.iter().any(|v| after.learners.contains(v));
    match (added.as_slice(), removed.as_slice(), promoted.as_slice()) {
        _ if demoted => None,
        ([node], [], []) if after.learners.contains(node) => Some(Change::AddLearner(*node)),
        ([], [node], []) => Some(Change::Remove(*node)),
        ([], [], [node]) => Some(Change::Promote(*node)),
        _ => None,
    }
}
