//! Membership changes: learners, promotion, removal.
//!
//! Thesis §4.1 (single-server changes: a configuration takes effect on a
//! node as soon as its entry is in that node's log, committed or not; a
//! leader starts a change only once the previous one is committed), §4.2.1
//! (new nodes join as learners, and vote only once caught up), §4.2.2
//! (a leader removed from the configuration steps down once the change
//! commits), and the fix to §4.1 published by Ongaro in 2015: a new leader
//! changes the configuration only after an entry of its own term — its
//! no-op — is committed, or two changes from different terms could leave
//! disjoint majorities.
//!
//! Owns those rules as a pure function (`next`) and the plumbing that keeps
//! a Raft's configuration equal to the last one in its log (`ConfigAt`,
//! carried by segment headers; the bootstrap configuration before any). It
//! must never let a change move more than one voter, never start a change
//! while another is uncommitted, and never promote a learner that has not
//! caught up.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::ids::{LogIndex, NodeId};
use crate::log::entry::NewEntry;
use crate::raft::machine::{Output, Raft, Role};
use crate::raft::quorum::Configuration;
use crate::time::Instant;

/// One change of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `node` joins as a learner.
    AddLearner(NodeId),
    /// The learner `node` becomes a voter.
    Promote(NodeId),
    /// `node`, voter or learner, leaves.
    Remove(NodeId),
}

impl core::fmt::Display for Change {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Change::AddLearner(node) => write!(f, "add learner {node}"),
            Change::Promote(node) => write!(f, "promote {node}"),
            Change::Remove(node) => write!(f, "remove {node}"),
        }
    }
}

/// Why a change was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This node does not lead; `leader` might.
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A change is not committed yet, or this leader's no-op is not.
    Busy,
    /// The node is a member already (adding).
    AlreadyMember,
    /// The node is not a member (removing), or not a learner (promoting).
    NotALearnerOrMember,
    /// The learner has not caught up with the commit index.
    NotCaughtUp,
    /// Removing the only voter would leave nobody to decide.
    LastVoter,
    /// The configuration would not fit `CONFIG_BYTES_MAX`.
    TooManyMembers,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::NotLeader { leader: Some(l) } => {
                write!(f, "this node does not lead; {l} does")
            }
            Refused::NotLeader { leader: None } => f.write_str("this node does not lead"),
            Refused::Busy => {
                f.write_str("a membership change or the leader's no-op is uncommitted")
            }
            Refused::AlreadyMember => f.write_str("the node is a member already"),
            Refused::NotALearnerOrMember => f.write_str("the node is not in the needed role"),
            Refused::NotCaughtUp => f.write_str("the learner has not caught up"),
            Refused::LastVoter => f.write_str("the last voter cannot be removed"),
            Refused::TooManyMembers => f.write_str("the configuration would be too large"),
        }
    }
}

/// The configuration after `change`, given whether its node has caught up
/// (matters only for a promotion).
pub fn next(
    config: &Configuration,
    change: Change,
    caught_up: bool,
) -> Result<Configuration, Refused> {
    let mut next = config.clone();
    match change {
        Change::AddLearner(node) => {
            if config.is_member(node) {
                return Err(Refused::AlreadyMember);
            }
            next.learners.insert(node);
        }
        Change::Promote(node) => {
            if !config.learners.contains(&node) {
                return Err(Refused::NotALearnerOrMember);
            }
            if !caught_up {
                return Err(Refused::NotCaughtUp);
            }
            next.learners.remove(&node);
            next.voters.0.insert(node);
        }
        Change::Remove(node) => {
            if !config.is_member(node) {
                return Err(Refused::NotALearnerOrMember);
            }
            if config.is_voter(node) && config.voters.0.len() == 1 {
                return Err(Refused::LastVoter);
            }
            next.learners.remove(&node);
            next.voters.0.remove(&node);
        }
    }
    let moved = config.voters.0.symmetric_difference(&next.voters.0).count();
    assert!(moved <= 1, "a change moves at most one voter (thesis §4.1)");
    Ok(next)
}

impl Raft {
    /// How far each follower's log matches this leader's (empty unless
    /// this node leads).
    pub fn matched(&self) -> BTreeMap<NodeId, LogIndex> {
        self.leadership
            .as_ref()
            .map(|l| l.progress.iter().map(|(&id, p)| (id, p.matched)).collect())
            .unwrap_or_default()
    }

    /// Starts `change` at the leader: appends its configuration entry, in
    /// effect at once; it is committed with a later `Output::Committed`
    /// through the returned index.
    pub fn change_membership(&mut self, now: Instant, change: Change) -> Result<LogIndex, Refused> {
        let result = self.start_change(now, change);
        self.drain(now);
        result
    }

    fn start_change(&mut self, now: Instant, change: Change) -> Result<LogIndex, Refused> {
        if !self.is_leader() {
            return Err(Refused::NotLeader {
                leader: self.leader(),
            });
        }
        let own_term_committed = self.log.term(self.commit) == Some(self.term());
        if self.config_at.index > self.commit || !own_term_committed {
            return Err(Refused::Busy);
        }
        let caught_up = match change {
            Change::Promote(node) => self
                .leadership
                .as_ref()
                .and_then(|l| l.progress.get(&node))
                .is_some_and(|p| p.matched >= self.commit),
            _ => false,
        };
        let config = next(&self.configuration, change, caught_up)?;
        let entry = NewEntry::config(self.term(), config.encode());
        match self.append_as_leader(now, vec![entry]) {
            Ok(appended) => Ok(appended.last),
            Err(crate::error::Error::NotLeader { leader }) => Err(Refused::NotLeader { leader }),
            Err(crate::error::Error::EntryOutOfBounds { .. }) => Err(Refused::TooManyMembers),
            // The log stopped and said so.
            Err(_) => Err(Refused::Busy),
        }
    }

    /// Makes the configuration the last one in the log (or the bootstrap
    /// one, before any), after the log changed; a leader starts or stops
    /// replicating to the nodes that joined or left, and a node that no
    /// longer votes stops standing.
    pub(super) fn refresh_configuration(&mut self) {
        let latest = self.log.latest_config();
        if latest.index == self.config_at.index && latest.data == self.config_at.data {
            return;
        }
        self.config_at = latest.clone();
        self.configuration = self.configuration_of(&latest.data.clone());
        self.outputs.push_back(Output::Configured {
            index: self.config_at.index,
            configuration: self.configuration.clone(),
        });
        let members: Vec<NodeId> = self
            .configuration
            .members()
            .filter(|&m| m != self.id)
            .collect();
        let last = self.log.next_index().prev();
        if let Some(leadership) = self.leadership.as_mut() {
            // Those who joined hear from the leader at its next heartbeat.
            leadership.set_followers(&members, last);
        }
        if !self.configuration.is_voter(self.id)
            && matches!(
                self.role,
                Role::PreCandidate { .. } | Role::Candidate { .. }
            )
        {
            self.role = Role::Follower { leader: None };
        }
    }

    /// The configuration a configuration entry's data (or, if empty, the
    /// bootstrap) names. Entries are checked before they are stored, so
    /// the log holds only valid ones.
    pub(super) fn configuration_of(&self, data: &Bytes) -> Configuration {
        if data.is_empty() {
            return self.bootstrap.clone();
        }
        Configuration::decode(data)
            .expect("configuration entries are checked before they are stored")
    }

    /// Thesis §4.2.2: a leader whose removal is committed steps down.
    pub(super) fn leave_if_removed(&mut self, now: Instant) {
        if self.is_leader()
            && !self.configuration.is_voter(self.id)
            && self.commit >= self.config_at.index
        {
            self.relinquish(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration::of(voters, learners)
    }

    // Goal: thesis §4.1 and §4.2.1 as a table: each change moves one node,
    // and each refusal names its reason.
    #[test]
    fn changes() {
        let base = config(&[1, 2, 3], &[4]);
        type Case = (Change, bool, Result<Configuration, Refused>);
        let cases: Vec<Case> = vec![
            (
                Change::AddLearner(NodeId(5)),
                false,
                Ok(config(&[1, 2, 3], &[4, 5])),
            ),
            (
                Change::AddLearner(NodeId(4)),
                false,
                Err(Refused::AlreadyMember),
            ),
            (
                Change::AddLearner(NodeId(2)),
                false,
                Err(Refused::AlreadyMember),
            ),
            (
                Change::Promote(NodeId(4)),
                true,
                Ok(config(&[1, 2, 3, 4], &[])),
            ),
            (Change::Promote(NodeId(4)), false, Err(Refused::NotCaughtUp)),
            (
                Change::Promote(NodeId(2)),
                true,
                Err(Refused::NotALearnerOrMember),
            ),
            (
                Change::Promote(NodeId(9)),
                true,
                Err(Refused::NotALearnerOrMember),
            ),
            (Change::Remove(NodeId(2)), false, Ok(config(&[1, 3], &[4]))),
            (
                Change::Remove(NodeId(4)),
                false,
                Ok(config(&[1, 2, 3], &[])),
            ),
            (
                Change::Remove(NodeId(9)),
                false,
                Err(Refused::NotALearnerOrMember),
            ),
        ];
        for (change, caught_up, expected) in cases {
            assert_eq!(next(&base, change, caught_up), expected, "{change}");
        }
        assert_eq!(
            next(&config(&[1], &[2]), Change::Remove(NodeId(1)), false),
            Err(Refused::LastVoter)
        );
    }
}
