//! Replication rules: when a follower accepts entries, what it keeps, and
//! where a leader resumes after a refusal.
//!
//! Raft §5.3: a follower accepts entries only if its log holds the entry
//! before them (index and term); an existing entry that conflicts with a
//! new one (same index, other term) is removed with everything after it,
//! and entries it already holds are kept — so a duplicated or reordered,
//! shorter message never shortens the log (RA9, SN2). A refusal carries a
//! hint (the conflicting term and the first index this follower holds of
//! it) so the leader skips a whole term per round trip instead of one
//! entry (§5.3, "the protocol can be optimized").
//! Owns these decisions as pure functions over term look-ups. It must never
//! remove an entry that matches the leader's.

use crate::ids::{LogIndex, Term};

/// What a follower knows of its own log. Its terms must obey log matching
/// (an entry matching the leader's implies every entry before it does).
pub trait LogView {
    /// The index of its last entry (0 for an empty log).
    fn last_index(&self) -> LogIndex;
    /// The term of entry `index` (index 0 has term 0), if it holds it.
    fn term(&self, index: LogIndex) -> Option<Term>;
    /// The first index it holds of `term` at or before `at`.
    fn first_index_of_term(&self, term: Term, at: LogIndex) -> LogIndex;
}

/// Why a follower refused, and where the leader should try next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// The term of this follower's entry at the leader's previous index,
    /// if it holds one there.
    pub conflict_term: Option<Term>,
    /// The first index of that term here, or the index after this
    /// follower's log if it is too short.
    pub conflict_index: LogIndex,
}

/// A follower's decision on an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendDecision {
    /// Accepted: remove every entry after `truncate_after` (if set), then
    /// append the message's entries from position `append_from` on.
    Accept {
        /// The last entry to keep, if a conflict was found.
        truncate_after: Option<LogIndex>,
        /// The position in the message's entries of the first to append.
        append_from: usize,
    },
    /// Refused: the log does not hold the entry before the message's.
    Refuse(Refusal),
}

/// Decides an append of entries with `terms` (one per entry, starting at
/// `prev_index + 1`) after the entry (`prev_index`, `prev_term`).
pub fn decide_append(
    log: &impl LogView,
    prev_index: LogIndex,
    prev_term: Term,
    terms: &[Term],
) -> AppendDecision {
    let last = log.last_index();
    if prev_index > last {
        return AppendDecision::Refuse(Refusal {
            conflict_term: None,
            conflict_index: last.next(),
        });
    }
    match log.term(prev_index) {
        Some(term) if term == prev_term => {}
        found => {
            let conflict_index = match found {
                Some(term) => log.first_index_of_term(term, prev_index),
                None => prev_index,
            };
            return AppendDecision::Refuse(Refusal {
                conflict_term: found,
                conflict_index,
            });
        }
    }
    // Log matching (§5.3): where an entry matches the leader's, every entry
    // before it does, so the entries held that match form a prefix of the
    // overlap, found by a binary search — O(log n) terms read, and when the
    // last entry held matches, one.
    let overlap = (last.0 - prev_index.0).min(terms.len() as u64);
    let matches = |n: u64| log.term(prev_index.plus(n)) == Some(terms[n as usize - 1]);
    let (mut low, mut high) = (0, overlap);
    if overlap > 0 && matches(overlap) {
        low = overlap;
    }
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if matches(middle) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    AppendDecision::Accept {
        truncate_after: (low < overlap).then(|| prev_index.plus(low)),
        append_from: low as usize,
    }
}

/// The next index a leader tries after `refusal` of an append whose
/// previous entry was `refused_prev`: past its own last entry of the
/// conflicting term if it has one (the follower's entries of that term up
/// to there may match), else the follower's first entry of that term (or
/// its log's end). It always moves back: never past `refused_prev`.
/// `last_index_of_term` gives the leader's last index of a term, if any.
pub fn next_after_refusal(
    refusal: &Refusal,
    refused_prev: LogIndex,
    last_index_of_term: impl Fn(Term) -> Option<LogIndex>,
) -> LogIndex {
    let resume = refusal
        .conflict_term
        .and_then(&last_index_of_term)
        .map(LogIndex::next)
        .unwrap_or(refusal.conflict_index);
    resume.min(refused_prev).max(LogIndex(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log given as the term of each index from 1.
    struct Terms(Vec<u64>);

    impl LogView for Terms {
        fn last_index(&self) -> LogIndex {
            LogIndex(self.0.len() as u64)
        }
        fn term(&self, index: LogIndex) -> Option<Term> {
            match index.0 {
                0 => Some(Term(0)),
                i => self.0.get(i as usize - 1).map(|&t| Term(t)),
            }
        }
        fn first_index_of_term(&self, term: Term, at: LogIndex) -> LogIndex {
            let mut index = at;
            while index.0 > 1 && self.term(index.prev()) == Some(term) {
                index = index.prev();
            }
            index
        }
    }

    fn terms(list: &[u64]) -> Vec<Term> {
        list.iter().map(|&t| Term(t)).collect()
    }

    fn accept(truncate_after: Option<u64>, append_from: usize) -> AppendDecision {
        AppendDecision::Accept {
            truncate_after: truncate_after.map(LogIndex),
            append_from,
        }
    }

    fn refuse(conflict_term: Option<u64>, conflict_index: u64) -> AppendDecision {
        AppendDecision::Refuse(Refusal {
            conflict_term: conflict_term.map(Term),
            conflict_index: LogIndex(conflict_index),
        })
    }

    // Raft §5.3: the consistency check, conflicts, and what is kept.
    #[test]
    fn append_table() {
        let log = Terms(vec![1, 1, 2, 2, 2]);
        let cases = [
            // The entry before matches: append what is new.
            ("append at the end", 5, 2, vec![3, 3], accept(None, 0)),
            ("from the empty start", 0, 0, vec![1], accept(None, 1)),
            // RA9, SN2: a shorter or repeated message keeps what follows.
            ("already held, shorter", 2, 1, vec![2], accept(None, 1)),
            (
                "already held entirely",
                0,
                0,
                vec![1, 1, 2, 2, 2],
                accept(None, 5),
            ),
            // SN3: a conflicting suffix is removed, once.
            (
                "conflict in the middle",
                2,
                1,
                vec![2, 3, 3],
                accept(Some(3), 1),
            ),
            (
                "conflict at the first entry",
                2,
                1,
                vec![4],
                accept(Some(2), 0),
            ),
            // Refusals carry a hint.
            ("log too short", 7, 2, vec![2], refuse(None, 6)),
            ("prev term differs", 5, 3, vec![3], refuse(Some(2), 3)),
            ("prev term differs early", 2, 7, vec![], refuse(Some(1), 1)),
        ];
        for (label, prev_index, prev_term, entry_terms, expected) in cases {
            let decision = decide_append(
                &log,
                LogIndex(prev_index),
                Term(prev_term),
                &terms(&entry_terms),
            );
            assert_eq!(decision, expected, "{label}");
        }
    }

    // §5.3's optimization: the leader skips a whole conflicting term.
    #[test]
    fn back_off_table() {
        let leader = Terms(vec![1, 1, 4, 4, 5]);
        let last_of = |term: Term| {
            (1..=5u64)
                .rev()
                .map(LogIndex)
                .find(|&i| leader.term(i) == Some(term))
        };
        // (label, the refusal, the refused previous index, the next to try)
        let cases = [
            (
                "follower too short: resume at its end",
                refuse(None, 3),
                5,
                3,
            ),
            (
                "a term the leader lacks: skip all of it",
                refuse(Some(3), 3),
                4,
                3,
            ),
            (
                "a term the leader has: resume past the leader's last of it",
                refuse(Some(4), 3),
                5,
                5,
            ),
            (
                "the leader's last of that term is ahead: never move forward",
                refuse(Some(4), 3),
                3,
                3,
            ),
            ("the start of the log", refuse(Some(1), 1), 2, 2),
        ];
        for (label, refusal, refused_prev, expected) in cases {
            let AppendDecision::Refuse(refusal) = refusal else {
                unreachable!()
            };
            let next = next_after_refusal(&refusal, LogIndex(refused_prev), last_of);
            assert_eq!(next, LogIndex(expected), "{label}");
            assert!(next <= LogIndex(refused_prev), "{label}: always back");
        }
    }
}
