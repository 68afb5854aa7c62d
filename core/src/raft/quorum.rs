//! Quorums: who must agree for a vote to win or an entry to commit.
//!
//! Raft §5.2 (a majority of voters elects), §5.3 (an entry stored on a
//! majority is committed, subject to §5.4.2), and thesis §4.2.1 (learners
//! follow the log without voting).
//! Owns these rules as pure functions. It must never count a learner, nor a
//! node that is not a voter, toward a quorum.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{LogIndex, NodeId};

/// The voters of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// A configuration: the voters, and the learners that receive the log but
/// never vote nor count toward a quorum (thesis §4.2.1). Changes move one
/// node at a time (`raft::membership`), so any majority of a configuration
/// meets any majority of the next (thesis §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    /// Who votes.
    pub voters: Voters,
    /// Who only follows.
    pub learners: BTreeSet<NodeId>,
}

impl core::fmt::Display for Configuration {
    /// `voters n1 n2 n3 learners n4`, for traces.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("voters")?;
        for voter in &self.voters.0 {
            write!(f, " {voter}")?;
        }
        if !self.learners.is_empty() {
            f.write_str(" learners")?;
            for learner in &self.learners {
                write!(f, " {learner}")?;
            }
        }
        Ok(())
    }
}

impl Configuration {
    /// A configuration of voters only.
    pub fn simple(voters: Voters) -> Configuration {
        Configuration {
            voters,
            learners: BTreeSet::new(),
        }
    }

    /// A configuration of `voters` and `learners`, by number.
    pub fn of(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration {
            voters: Voters::of(voters),
            learners: learners.iter().map(|&id| NodeId(id)).collect(),
        }
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.0.contains(&id)
    }

    /// Whether `id` votes or learns.
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Voters and learners, in order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mut all: Vec<NodeId> = self
            .voters
            .0
            .iter()
            .chain(&self.learners)
            .copied()
            .collect();
        all.sort_unstable();
        all.into_iter()
    }

    /// Whether `yes` holds a majority of the voters.
    pub fn agrees(&self, yes: &BTreeSet<NodeId>) -> bool {
        self.voters.agrees(yes)
    }

    /// Whether `no` makes a majority of the voters impossible.
    pub fn refuses(&self, no: &BTreeSet<NodeId>) -> bool {
        self.voters.refuses(no)
    }

    /// The highest index stored by a majority of the voters.
    pub fn committed(&self, matched: &BTreeMap<NodeId, LogIndex>) -> LogIndex {
        self.voters.committed(matched)
    }

    /// The bytes of a configuration entry.
    pub fn encode(&self) -> bytes::Bytes {
        postcard::to_allocvec(self)
            .expect("a configuration serializes")
            .into()
    }

    /// A configuration entry's bytes; `None` if they are not one, or name a
    /// node both voter and learner.
    pub fn decode(bytes: &[u8]) -> Option<Configuration> {
        let config: Configuration = postcard::from_bytes(bytes).ok()?;
        config
            .voters
            .0
            .is_disjoint(&config.learners)
            .then_some(config)
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

    // Goal: learners never count (thesis §4.2.1), and a configuration
    // entry's bytes decode to what was encoded, while bytes naming a node
    // twice do not decode at all.
    #[test]
    fn learners_and_encoding() {
        let config = Configuration {
            voters: Voters::of(&[1, 2, 3]),
            learners: set(&[4, 5]),
        };
        assert!(!config.agrees(&set(&[1, 4, 5])), "learners do not vote");
        assert!(config.agrees(&set(&[1, 2])));
        assert!(config.is_member(NodeId(4)) && !config.is_voter(NodeId(4)));
        assert_eq!(
            config.committed(&matched(&[(1, 9), (4, 9), (5, 9), (2, 1)])),
            LogIndex(1),
            "a learner's copy commits nothing"
        );
        assert_eq!(
            config.members().collect::<Vec<_>>(),
            [1, 2, 3, 4, 5].map(NodeId)
        );
        assert_eq!(Configuration::decode(&config.encode()), Some(config));
        let twice = Configuration {
            voters: Voters::of(&[1, 2]),
            learners: set(&[2]),
        };
        assert_eq!(Configuration::decode(&twice.encode()), None);
        assert_eq!(Configuration::decode(&[0xff, 0xff]), None);
    }
}
