//! Election rules: whom to vote for, when to grant a pre-vote, how long to
//! wait before standing.
//!
//! Raft §5.2 (one vote per term, first come first served; a higher term
//! makes a node step to it), §5.4.1 (the election restriction: only a
//! candidate whose log is at least as up to date wins a vote), and the
//! extensions of Ongaro's thesis §9.6 (pre-vote: ask before raising the
//! term) and §4.2.3 (a node that heard from a leader within the minimum
//! election timeout ignores votes, unless leadership is being handed over).
//! Owns these decisions as pure functions. It must never grant two votes in
//! one term, and never change state for a pre-vote.

use core::ops::Range;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::state::HardState;
use crate::time::Duration;

/// The last entry of a log: what the election restriction compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastEntry {
    /// Its term.
    pub term: Term,
    /// Its index.
    pub index: LogIndex,
}

impl LastEntry {
    /// Whether a log ending at `self` is at least as up to date as one
    /// ending at `other` (Raft §5.4.1): a later last term wins; with equal
    /// last terms, the longer log wins; equal logs tie, and a tie wins.
    pub fn at_least_as_up_to_date_as(&self, other: &LastEntry) -> bool {
        self.term > other.term || (self.term == other.term && self.index >= other.index)
    }
}

/// A request for a vote or a pre-vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    /// For a vote, the candidate's term; for a pre-vote, the term it would
    /// stand in (its current term plus one), not yet taken.
    pub term: Term,
    /// Who asks.
    pub candidate: NodeId,
    /// The end of its log.
    pub last: LastEntry,
    /// A pre-vote (thesis §9.6): granting it changes nothing.
    pub pre_vote: bool,
    /// Leadership is being handed over to the candidate (thesis §3.10): a
    /// known leader does not stop the vote.
    pub transfer: bool,
}

/// What a node decides about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteDecision {
    /// Whether the vote (or pre-vote) is granted.
    pub granted: bool,
    /// The state to make durable before replying (unchanged for a pre-vote
    /// or an ignored request).
    pub state: HardState,
    /// Whether the request was ignored outright (no reply, no state change)
    /// because a leader was heard from recently.
    pub ignored: bool,
}

/// Decides a vote or pre-vote request, given this node's durable state, the
/// end of its log, and whether it heard from a leader within the minimum
/// election timeout.
pub fn decide(
    state: HardState,
    mine: LastEntry,
    request: &VoteRequest,
    leader_recent: bool,
) -> VoteDecision {
    let keep = |granted| VoteDecision {
        granted,
        state,
        ignored: false,
    };
    if leader_recent && !request.transfer {
        // Thesis §4.2.3: a removed or partitioned node cannot depose a
        // leader the rest still hear from.
        return VoteDecision {
            granted: false,
            state,
            ignored: true,
        };
    }
    let up_to_date = request.last.at_least_as_up_to_date_as(&mine);
    if request.pre_vote {
        // Thesis §9.6: would this node vote for the candidate in the term it
        // proposes? Nothing is recorded.
        return keep(request.term > state.term && up_to_date);
    }
    if request.term < state.term {
        return keep(false);
    }
    let mut next = state;
    if request.term > state.term {
        // §5.1: a higher term is adopted whatever the vote's outcome.
        next = HardState {
            term: request.term,
            voted_for: None,
        };
    }
    let free = next.voted_for.is_none() || next.voted_for == Some(request.candidate);
    let granted = free && up_to_date;
    if granted {
        next.voted_for = Some(request.candidate);
    }
    VoteDecision {
        granted,
        state: next,
        ignored: false,
    }
}

/// Draws an election timeout uniformly from `range` (§5.2: randomized, so
/// that split votes are rare), from Raft's own rng stream.
pub fn election_timeout(rng: &mut ChaCha8Rng, range: Range<Duration>) -> Duration {
    assert!(
        range.start < range.end,
        "an election timeout range is not empty"
    );
    Duration::from_nanos(rng.random_range(range.start.as_nanos()..range.end.as_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Stream};

    fn last(term: u64, index: u64) -> LastEntry {
        LastEntry {
            term: Term(term),
            index: LogIndex(index),
        }
    }

    fn state(term: u64, vote: Option<u64>) -> HardState {
        HardState {
            term: Term(term),
            voted_for: vote.map(NodeId),
        }
    }

    fn vote(term: u64, candidate: u64, candidate_last: LastEntry) -> VoteRequest {
        VoteRequest {
            term: Term(term),
            candidate: NodeId(candidate),
            last: candidate_last,
            pre_vote: false,
            transfer: false,
        }
    }

    // Raft §5.4.1: the election restriction.
    #[test]
    fn up_to_date_table() {
        let cases = [
            (
                last(3, 1),
                last(2, 9),
                true,
                "a later last term wins however short",
            ),
            (
                last(2, 9),
                last(3, 1),
                false,
                "an earlier last term loses however long",
            ),
            (last(2, 5), last(2, 4), true, "same term, longer"),
            (last(2, 4), last(2, 5), false, "same term, shorter"),
            (
                last(2, 5),
                last(2, 5),
                true,
                "equal logs tie, and a tie wins",
            ),
        ];
        for (candidate, mine, expected, label) in cases {
            assert_eq!(
                candidate.at_least_as_up_to_date_as(&mine),
                expected,
                "{label}"
            );
        }
    }

    // Raft §5.1, §5.2, §5.4.1: votes.
    #[test]
    fn vote_table() {
        let mine = last(2, 5);
        let cases = [
            // §5.2: first come, first served, in a term.
            (
                state(2, None),
                vote(2, 7, last(2, 5)),
                true,
                state(2, Some(7)),
                "free, up to date",
            ),
            (
                state(2, Some(7)),
                vote(2, 7, last(2, 5)),
                true,
                state(2, Some(7)),
                "the same candidate again",
            ),
            (
                state(2, Some(8)),
                vote(2, 7, last(2, 9)),
                false,
                state(2, Some(8)),
                "already voted in this term",
            ),
            // §5.1: a stale term is refused; a newer one is adopted.
            (
                state(3, None),
                vote(2, 7, last(2, 9)),
                false,
                state(3, None),
                "stale term",
            ),
            (
                state(2, Some(8)),
                vote(4, 7, last(2, 5)),
                true,
                state(4, Some(7)),
                "newer term frees the vote",
            ),
            // §5.4.1: a newer term is adopted even when the vote is refused.
            (
                state(2, None),
                vote(4, 7, last(1, 9)),
                false,
                state(4, None),
                "newer term, log behind",
            ),
            (
                state(2, None),
                vote(2, 7, last(2, 4)),
                false,
                state(2, None),
                "same term, log behind",
            ),
        ];
        for (current, request, granted, next, label) in cases {
            let decision = decide(current, mine, &request, false);
            assert_eq!(
                (decision.granted, decision.state, decision.ignored),
                (granted, next, false),
                "{label}"
            );
            assert!(
                current.may_become(&decision.state),
                "{label}: state never goes backwards"
            );
        }
    }

    // Thesis §9.6 and §4.2.3: pre-votes change nothing; a recent leader
    // makes a node ignore both, unless leadership is being handed over.
    #[test]
    fn pre_vote_and_leader_stickiness_table() {
        let mine = last(2, 5);
        let pre = |term, candidate_last| VoteRequest {
            pre_vote: true,
            ..vote(term, 7, candidate_last)
        };
        let cases = [
            (
                state(2, Some(8)),
                pre(3, last(2, 5)),
                false,
                true,
                false,
                "would vote in the next term",
            ),
            (
                state(2, None),
                pre(2, last(2, 9)),
                false,
                false,
                false,
                "proposes no newer term",
            ),
            (
                state(2, None),
                pre(3, last(1, 9)),
                false,
                false,
                false,
                "log behind",
            ),
            (
                state(2, None),
                pre(3, last(2, 5)),
                true,
                false,
                true,
                "a leader was heard from: ignored",
            ),
            (
                state(2, None),
                vote(3, 7, last(2, 5)),
                true,
                false,
                true,
                "a real vote is ignored too",
            ),
        ];
        for (current, request, leader_recent, granted, ignored, label) in cases {
            let decision = decide(current, mine, &request, leader_recent);
            assert_eq!(
                (decision.granted, decision.ignored),
                (granted, ignored),
                "{label}"
            );
            assert_eq!(decision.state, current, "{label}: nothing changes");
        }
        let handover = VoteRequest {
            transfer: true,
            ..vote(3, 7, last(2, 5))
        };
        let decision = decide(state(2, None), mine, &handover, true);
        assert!(
            decision.granted && !decision.ignored,
            "a transfer is not stopped by a known leader"
        );
    }

    // §5.2: timeouts are drawn from the range, spread out, and replay.
    #[test]
    fn election_timeouts_are_random_within_the_range() {
        let range = Duration::from_millis(150)..Duration::from_millis(300);
        let draw = |seed| {
            let mut rng = Rng::new(seed).stream(Stream::Raft);
            (0..200)
                .map(|_| election_timeout(&mut rng, range.clone()))
                .collect::<Vec<_>>()
        };
        let timeouts = draw(1);
        assert!(timeouts.iter().all(|t| range.contains(t)));
        let distinct: std::collections::BTreeSet<_> = timeouts.iter().collect();
        assert!(distinct.len() > 190, "spread out");
        assert_eq!(timeouts, draw(1));
    }
}
