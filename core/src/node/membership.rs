//! Raft membership following gossip: which one change a leader asks of
//! Raft next, given what gossip says of each member.
//!
//! Owns the rules: a member gossip finds alive joins as a learner; a
//! learner caught up is promoted while there are fewer voters than
//! configured (the rest stay learners); a member that left gracefully is
//! removed; a member gossip declares dead is removed only after it has
//! been dead for a configured time, and a voter only while a majority of
//! the voters that would remain is alive — so that a partition, in which
//! each side sees the other dead, can never shrink the quorum on gossip's
//! word. It must never decide on anything but what it is given (no clock:
//! it is told `now`), and never ask for more than one change at a time
//! (Raft changes membership one node at a time).

use std::collections::BTreeMap;

use crate::gossip::member::State;
use crate::ids::{LogIndex, NodeId};
use crate::raft::membership::Change;
use crate::raft::quorum::Configuration;
use crate::time::{Duration, Instant};

/// How membership follows gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipPolicy {
    /// Voters to keep (3 or 5): learners are promoted up to it, never past.
    pub voters: usize,
    /// How long gossip must hold a member dead before it is removed.
    pub dead_after: Duration,
}

impl Default for MembershipPolicy {
    fn default() -> MembershipPolicy {
        MembershipPolicy {
            voters: 3,
            dead_after: Duration::from_secs(60),
        }
    }
}

/// What gossip says of a member, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Its state.
    pub state: State,
    /// Since when gossip has said so.
    pub since: Instant,
}

/// What the leader knows when it decides.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The leader.
    pub me: NodeId,
    /// The configuration in force.
    pub configuration: &'a Configuration,
    /// What gossip says of each member it knows (the leader not included).
    pub seen: &'a BTreeMap<NodeId, Seen>,
    /// How far each follower's log matches the leader's.
    pub matched: &'a BTreeMap<NodeId, LogIndex>,
    /// The commit index: a learner whose log matches through it is caught
    /// up (Raft's own rule for a promotion).
    pub commit: LogIndex,
    /// Now.
    pub now: Instant,
}

/// The one change to ask of Raft next, if any, by the rules in order:
/// remove who left, remove who has been dead long enough (a voter only
/// while a majority of the rest is alive), promote a caught-up learner,
/// add a member new to the configuration.
pub fn next_change(policy: &MembershipPolicy, facts: &Facts<'_>) -> Option<Change> {
    let Facts {
        me,
        configuration,
        seen,
        ..
    } = *facts;
    let state = |id: NodeId| seen.get(&id).map(|s| s.state);
    let alive = |id: NodeId| id == me || state(id) == Some(State::Alive);
    let others: Vec<NodeId> = configuration.members().filter(|&id| id != me).collect();

    if let Some(left) = others
        .iter()
        .copied()
        .find(|&id| state(id) == Some(State::Left))
    {
        return Some(Change::Remove(left));
    }
    let dead_long = |id: NodeId| {
        seen.get(&id).is_some_and(|s| {
            s.state == State::Dead && facts.now.saturating_since(s.since) >= policy.dead_after
        })
    };
    for dead in others.into_iter().filter(|&id| dead_long(id)) {
        if !configuration.is_voter(dead) {
            return Some(Change::Remove(dead));
        }
        let remaining: Vec<NodeId> = configuration
            .voters
            .0
            .iter()
            .copied()
            .filter(|&id| id != dead)
            .collect();
        let up = remaining.iter().filter(|&&id| alive(id)).count();
        if up > remaining.len() / 2 {
            return Some(Change::Remove(dead));
        }
    }
    if configuration.voters.0.len() < policy.voters {
        let caught_up = |id: &NodeId| facts.matched.get(id).is_some_and(|&m| m >= facts.commit);
        let best = configuration
            .learners
            .iter()
            .filter(|&&id| alive(id) && caught_up(&id))
            .max_by_key(|&&id| (facts.matched.get(&id).copied(), core::cmp::Reverse(id)));
        if let Some(&learner) = best {
            return Some(Change::Promote(learner));
        }
    }
    seen.iter()
        .find(|&(&id, s)| s.state == State::Alive && !configuration.is_member(id) && id != me)
        .map(|(&id, _)| Change::AddLearner(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Alive, Dead, Left, Suspect};

    fn configuration(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration::of(voters, learners)
    }

    fn secs(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    // Goal: the next change by the rules, one row per situation, with its
    // exact answer; in particular a dead voter is never removed before the
    // dead time, nor while the voters that would remain have no alive
    // majority (a partition cannot shrink the quorum).
    #[test]
    fn next_change_table() {
        let policy = MembershipPolicy {
            voters: 3,
            dead_after: Duration::from_secs(60),
        };
        type Row = (
            &'static str,
            &'static [u64],
            &'static [u64],
            &'static [(u64, State, u64)],
            &'static [(u64, u64)],
            Option<Change>,
        );
        let table: [Row; 12] = [
            (
                "all settled",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0), (3, Alive, 0)],
                &[],
                None,
            ),
            (
                "a new member joins as a learner",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0), (3, Alive, 0), (4, Alive, 0)],
                &[],
                Some(Change::AddLearner(NodeId(4))),
            ),
            (
                "a suspect is not added",
                &[1],
                &[],
                &[(4, Suspect, 0)],
                &[],
                None,
            ),
            (
                "a caught-up learner is promoted while voters are short",
                &[1, 2],
                &[4, 5],
                &[(2, Alive, 0), (4, Alive, 0), (5, Alive, 0)],
                &[(4, 95), (5, 99)],
                Some(Change::Promote(NodeId(5))),
            ),
            (
                "a learner behind is not",
                &[1, 2],
                &[4],
                &[(2, Alive, 0), (4, Alive, 0)],
                &[(4, 80)],
                None,
            ),
            (
                "the rest stay learners",
                &[1, 2, 3],
                &[4],
                &[(2, Alive, 0), (3, Alive, 0), (4, Alive, 0)],
                &[(4, 100)],
                None,
            ),
            (
                "who left is removed",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0), (3, Left, 99)],
                &[],
                Some(Change::Remove(NodeId(3))),
            ),
            (
                "dead, but not for long enough",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0), (3, Dead, 50)],
                &[],
                None,
            ),
            (
                "dead long enough, the rest alive",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0), (3, Dead, 40)],
                &[],
                Some(Change::Remove(NodeId(3))),
            ),
            (
                "dead long enough, but the rest has no alive majority",
                &[1, 2, 3, 4, 5],
                &[],
                &[(2, Dead, 0), (3, Dead, 0), (4, Suspect, 0), (5, Dead, 0)],
                &[],
                None,
            ),
            (
                "a dead learner goes, quorum or not",
                &[1, 2, 3],
                &[6],
                &[(2, Dead, 0), (3, Dead, 0), (6, Dead, 0)],
                &[],
                Some(Change::Remove(NodeId(6))),
            ),
            (
                "a member gossip does not know is left alone",
                &[1, 2, 3],
                &[],
                &[(2, Alive, 0)],
                &[],
                None,
            ),
        ];
        for (what, voters, learners, seen, matched, expected) in table {
            let configuration = configuration(voters, learners);
            let seen: BTreeMap<NodeId, Seen> = seen
                .iter()
                .map(|&(id, state, since)| {
                    (
                        NodeId(id),
                        Seen {
                            state,
                            since: secs(since),
                        },
                    )
                })
                .collect();
            let matched: BTreeMap<NodeId, LogIndex> = matched
                .iter()
                .map(|&(id, index)| (NodeId(id), LogIndex(index)))
                .collect();
            let facts = Facts {
                me: NodeId(1),
                configuration: &configuration,
                seen: &seen,
                matched: &matched,
                commit: LogIndex(90),
                now: secs(100),
            };
            assert_eq!(next_change(&policy, &facts), expected, "{what}");
        }
    }

    // Goal: a partition in which the leader's side sees every other voter
    // dead, for any length of time, removes no voter: the quorum stays.
    #[test]
    fn a_partition_never_shrinks_the_quorum() {
        let policy = MembershipPolicy::default();
        for voters in [3u64, 5] {
            let ids: Vec<u64> = (1..=voters).collect();
            let configuration = configuration(&ids, &[]);
            // The leader's side, a minority: itself and the ids up to half.
            let mine = voters / 2;
            for hours in [1u64, 24, 24 * 365] {
                let seen: BTreeMap<NodeId, Seen> = (2..=voters)
                    .map(|id| {
                        let state = if id <= mine { Alive } else { Dead };
                        (
                            NodeId(id),
                            Seen {
                                state,
                                since: Instant::ZERO,
                            },
                        )
                    })
                    .collect();
                let facts = Facts {
                    me: NodeId(1),
                    configuration: &configuration,
                    seen: &seen,
                    matched: &BTreeMap::new(),
                    commit: LogIndex(0),
                    now: secs(hours * 3600),
                };
                assert_eq!(
                    next_change(&policy, &facts),
                    None,
                    "{voters} voters, {hours} h"
                );
            }
        }
    }
}
