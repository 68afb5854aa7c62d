//! The commit rule: when a leader may call an entry committed.
//!
//! Raft §5.3 and §5.4.2 (Figure 8): an entry is committed once stored on a
//! majority — but a leader counts replicas only for entries of its own
//! term; earlier entries commit with them, never on their own. Owns that
//! rule as a pure function. It must never move the commit index backwards,
//! nor past what a majority stores.

use std::collections::BTreeMap;

use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::quorum::Configuration;

/// The commit index after counting `matched` (each voter's highest index
/// known to be stored, the leader's own included), for a leader in
/// `current_term` whose commit index is `commit`. `term_at` gives the term
/// of an entry of the leader's log.
pub fn advance(
    config: &Configuration,
    matched: &BTreeMap<NodeId, LogIndex>,
    commit: LogIndex,
    current_term: Term,
    term_at: impl Fn(LogIndex) -> Option<Term>,
) -> LogIndex {
    let stored = config.committed(matched);
    // Terms never fall along a log: if the entry at `stored` is of an
    // earlier term, so is every entry before it, and none may be counted.
    if stored > commit && term_at(stored) == Some(current_term) {
        stored
    } else {
        commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::quorum::Voters;

    fn matched(pairs: &[(u64, u64)]) -> BTreeMap<NodeId, LogIndex> {
        pairs
            .iter()
            .map(|&(id, index)| (NodeId(id), LogIndex(index)))
            .collect()
    }

    /// The leader's log: the term of each index, from 1.
    fn terms(log: &'static [u64]) -> impl Fn(LogIndex) -> Option<Term> {
        move |index: LogIndex| {
            log.get((index.0 as usize).checked_sub(1)?)
                .map(|&t| Term(t))
        }
    }

    // Raft §5.3, §5.4.2: counting replicas, and Figure 8.
    #[test]
    fn commit_table() {
        let five = Configuration::simple(Voters::of(&[1, 2, 3, 4, 5]));
        // (label, leader's log terms, matched, commit before, current term, commit after)
        type Case = (
            &'static str,
            &'static [u64],
            &'static [(u64, u64)],
            u64,
            u64,
            u64,
        );
        let cases: &[Case] = &[
            (
                "a majority stores an entry of this term",
                &[1, 2, 2],
                &[(1, 3), (2, 3), (3, 3)],
                0,
                2,
                3,
            ),
            (
                "a minority stores it; the old entry a majority holds waits",
                &[1, 2, 2],
                &[(1, 3), (2, 3), (3, 1)],
                0,
                2,
                0,
            ),
            // Figure 8 (c): leader S1 in term 4 has replicated the term-2
            // entry at index 2 to a majority; it must not commit it.
            (
                "Figure 8: an old-term entry on a majority",
                &[1, 2, 4],
                &[(1, 3), (2, 2), (3, 2)],
                1,
                4,
                1,
            ),
            // Figure 8 (e): once an entry of term 4 is on a majority, it and
            // everything before it commit.
            (
                "Figure 8: with one of this term",
                &[1, 2, 4],
                &[(1, 3), (2, 3), (3, 3)],
                1,
                4,
                3,
            ),
            ("never backwards", &[1, 2, 2], &[(1, 3)], 3, 2, 3),
            (
                "a leader that stores nothing new",
                &[1],
                &[(1, 1), (2, 1), (3, 1)],
                1,
                1,
                1,
            ),
        ];
        for &(label, log, pairs, before, term, after) in cases {
            let commit = advance(
                &five,
                &matched(pairs),
                LogIndex(before),
                Term(term),
                terms(log),
            );
            assert_eq!(commit, LogIndex(after), "{label}");
        }
    }
}
