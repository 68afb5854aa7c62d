//! Quorums: who must agree for a vote to win or an entry to commit.
//!
//! Raft §5.2 (a majority of voters elects), §5.3 (an entry stored on a
//! majority is committed, subject to §5.4.2), and §6 (joint consensus: a
//! decision needs a majority of the old and of the new configuration).
//! Owns these rules as pure functions. It must never count a learner, nor a
//! node that is not a voter, toward a quorum.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{LogIndex, NodeId};

/// The voters of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Voters(pub BTreeSet<NodeId>);

impl Voters {
    /// Voters from a list of ids.
    pub fn of(ids: &[u64]) -> Voters {
        Voters(ids.iter().map(|&id| NodeId(id)).collect())
    }

    /// How many agreements make a majority. An empty configuration has no
    /// majority (and agrees to nothing).
    pub fn majority(&self) -> usize {
        self.0.len() / 2 + 1
    }

    /// Whether `yes` holds a majority of these voters.
    pub fn agrees(&self, yes: &BTreeSet<NodeId>) -> bool {
        !self.0.is_empty() && self.0.intersection(yes).count() >= self.majority()
    }

    /// Whether `no` makes a majority impossible, whatever the others say
    /// (always, for an empty configuration).
    pub fn refuses(&self, no: &BTreeSet<NodeId>) -> bool {
        self.0.is_empty() || self.0.intersection(no).count() > self.0.len() - self.majority()
    }

    /// The highest index stored by a majority: sort the voters' matched
    /// indexes, highest first, and take the majority-th. A voter with no
    /// match counts as index 0.
    pub fn committed(&self, matched: &BTreeMap<NodeId, LogIndex>) -> LogIndex {
        if self.0.is_empty() {
            return LogIndex(0);
        }
        let mut indexes: Vec<LogIndex> = self
            .0
            .iter()
            .map(|id| matched.get(id).copied().unwrap_or_default())
            .collect();
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        indexes[self.majority() - 1]
    }
}

/// A configuration, possibly joint (Raft §6): during a change, decisions
/// need a majority of the outgoing voters and of the incoming ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    /// The voters being moved to (or the only ones, outside a change).
    pub incoming: Voters,
    /// The voters being moved from, during a joint change.
    pub outgoing: Option<Voters>,
}

impl Configuration {
    /// A simple (not joint) configuration.
    pub fn simple(voters: Voters) -> Configuration {
        Configuration {
            incoming: voters,
            outgoing: None,
        }
    }

    /// Whether `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.incoming.0.contains(&id) || self.outgoing.as_ref().is_some_and(|v| v.0.contains(&id))
    }

    /// Whether `yes` wins in both halves.
    pub fn agrees(&self, yes: &BTreeSet<NodeId>) -> bool {
        self.incoming.agrees(yes) && self.outgoing.as_ref().is_none_or(|v| v.agrees(yes))
    }

    /// Whether `no` makes winning impossible in either half.
    pub fn refuses(&self, no: &BTreeSet<NodeId>) -> bool {
        self.incoming.refuses(no) || self.outgoing.as_ref().is_some_and(|v| v.refuses(no))
    }

    /// The highest index stored by a majority of both halves.
    pub fn committed(&self, matched: &BTreeMap<NodeId, LogIndex>) -> LogIndex {
        let incoming = self.incoming.committed(matched);
        match &self.outgoing {
            Some(outgoing) => incoming.min(outgoing.committed(matched)),
            None => incoming,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|&id| NodeId(id)).collect()
    }

    fn matched(pairs: &[(u64, u64)]) -> BTreeMap<NodeId, LogIndex> {
        pairs
            .iter()
            .map(|&(id, index)| (NodeId(id), LogIndex(index)))
            .collect()
    }

    // Goal: majorities of simple configurations (Raft §5.2), including the
    // negative space: learners and strangers never count.
    #[test]
    fn simple_majorities() {
        let cases: &[(&[u64], &[u64], bool)] = &[
            // One voter decides alone.
            (&[1], &[1], true),
            (&[1], &[], false),
            // Three voters need two.
            (&[1, 2, 3], &[1, 2], true),
            (&[1, 2, 3], &[3], false),
            (&[1, 2, 3], &[1, 7, 8], false),
            // Four voters need three: a tie does not win.
            (&[1, 2, 3, 4], &[1, 2], false),
            (&[1, 2, 3, 4], &[1, 2, 4], true),
            // Five voters need three.
            (&[1, 2, 3, 4, 5], &[2, 4, 5], true),
            // No voters: nothing wins.
            (&[], &[1, 2], false),
        ];
        for &(voters, yes, expected) in cases {
            assert_eq!(
                Voters::of(voters).agrees(&set(yes)),
                expected,
                "voters {voters:?} yes {yes:?}"
            );
        }
    }

    // Goal: refusals end a count early exactly when a majority is lost.
    #[test]
    fn refusals() {
        let voters = Voters::of(&[1, 2, 3, 4, 5]);
        assert!(!voters.refuses(&set(&[1, 2])));
        assert!(voters.refuses(&set(&[1, 2, 3])));
        assert!(
            Voters::of(&[1, 2]).refuses(&set(&[2])),
            "two voters need both"
        );
    }

    // Goal: the commit index is the majority-th highest match (§5.3);
    // missing voters count as 0, non-voters not at all.
    #[test]
    fn committed_indexes() {
        // (voters, (voter, matched index) pairs, committed index)
        type Case<'a> = (&'a [u64], &'a [(u64, u64)], u64);
        let cases: &[Case<'_>] = &[
            (&[1], &[(1, 9)], 9),
            (&[1, 2, 3], &[(1, 9), (2, 7), (3, 3)], 7),
            (&[1, 2, 3], &[(1, 9)], 0),
            (&[1, 2, 3], &[(1, 9), (2, 4), (7, 100)], 4),
            (&[1, 2, 3, 4], &[(1, 9), (2, 7), (3, 5), (4, 1)], 5),
            (
                &[1, 2, 3, 4, 5],
                &[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
                3,
            ),
        ];
        for &(voters, pairs, expected) in cases {
            assert_eq!(
                Voters::of(voters).committed(&matched(pairs)),
                LogIndex(expected),
                "{voters:?} {pairs:?}"
            );
        }
    }

    // Goal: joint consensus needs both halves (Raft §6), for votes and for
    // commits.
    #[test]
    fn joint_configurations() {
        let joint = Configuration {
            incoming: Voters::of(&[3, 4, 5]),
            outgoing: Some(Voters::of(&[1, 2, 3])),
        };
        assert!(!joint.agrees(&set(&[1, 2])), "old majority only");
        assert!(!joint.agrees(&set(&[4, 5])), "new majority only");
        assert!(joint.agrees(&set(&[1, 3, 4])));
        assert!(joint.refuses(&set(&[4, 5])), "the new half is lost");
        assert!(
            joint.is_voter(NodeId(1)) && joint.is_voter(NodeId(5)) && !joint.is_voter(NodeId(6))
        );
        let matched = matched(&[(1, 10), (2, 10), (3, 8), (4, 2), (5, 1)]);
        assert_eq!(
            joint.committed(&matched),
            LogIndex(2),
            "the lower of both halves"
        );
        assert_eq!(
            Configuration::simple(Voters::of(&[1, 2, 3])).committed(&matched),
            LogIndex(10)
        );
    }
}
