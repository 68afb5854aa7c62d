//! The commit rule: when a leader may call an entry committed, and when an
//! entry it holds damaged is known never to have been.
//!
//! Raft §5.3 and §5.4.2 (Figure 8): an entry is committed once stored on a
//! majority — but a leader counts replicas only for entries of its own
//! term; earlier entries commit with them, never on their own. A copy that
//! is damaged is no copy (Alagappan et al., "Protocol-Aware Recovery for
//! Consensus-Based Storage", FAST 2018, §4.2): the leader's own counts only
//! up to its first damaged entry above its commit index (`own_match`), and
//! the leader may discard such an entry only once it is known uncommitted
//! (`damage_uncommitted`). Owns those rules as pure functions. It must never
//! move the commit index backwards, nor past what a majority stores intact.

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

/// The leader's own match for counting: its log is durable through
/// `durable`, and `damaged` is its first damaged entry above its commit
/// index, if any. A damaged entry counts for no one, the leader included,
/// and neither does what follows it (the match is a prefix). Damage at or
/// below the commit index is of entries a majority stored already; it
/// leaves them committed and is repaired from an intact copy.
pub fn own_match(durable: LogIndex, damaged: Option<LogIndex>) -> LogIndex {
    match damaged {
        Some(first) => durable.min(first.prev()),
        None => durable,
    }
}

/// Whether an entry that `holder` holds damaged, above its commit index,
/// is known never to have been committed under `config`, from what
/// `holder` knows alone (FAST 2018, §4.2: a faulty entry on the leader is
/// discarded only once it is known uncommitted; otherwise it is fixed from
/// a copy).
///
/// A committed entry was stored by a quorum, each copy counted only once
/// it was synced. A damaged copy of `holder`'s own is either a crash's —
/// a write torn or lost before its sync, while a later unsynced write
/// survived whole (§4.1: crashes and corruption look alike on disk) — and
/// was never counted; or rot of synced bytes, and may have been. Rot is
/// survivable only where another voter keeps an intact copy (FAULTS ST3:
/// one replica at a time; with no such copy, nobody can repair the entry
/// anyway). So `holder`'s copy may be among a counted quorum only together
/// with another voter's, and with no other voter, the entry was never
/// counted by anyone: it is not committed, and no leader can ever commit
/// it, since no copy of it is left to count. With other voters, `holder`
/// cannot know: any of them may hold the entry, counted.
pub fn damage_uncommitted(config: &Configuration, holder: NodeId) -> bool {
    config.voters.0.iter().all(|&voter| voter == holder)
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

    // FAST 2018, §4.2: a damaged copy counts for no one; a damaged entry
    // is discarded only once known uncommitted.
    #[test]
    fn damage_table() {
        // (label, durable, first damaged above the commit index, own match)
        let own: &[(&str, u64, Option<u64>, u64)] = &[
            ("no damage: all that is durable", 9, None, 9),
            ("up to the damage, not past it", 9, Some(5), 4),
            ("damage past the durable end", 3, Some(5), 3),
            ("damage at the first entry", 9, Some(1), 0),
        ];
        for &(label, durable, damaged, expected) in own {
            let matched = own_match(LogIndex(durable), damaged.map(LogIndex));
            assert_eq!(matched, LogIndex(expected), "{label}");
        }
        // (label, voters, holder, known uncommitted)
        let cases: &[(&str, &[u64], u64, bool)] = &[
            // Its only voter: no counted copy could exist but its own,
            // which rot could not leave without another intact one.
            ("a single voter", &[1], 1, true),
            // Others may hold it, counted, with or without the holder.
            ("two voters", &[1, 2], 1, false),
            ("three voters", &[1, 2, 3], 2, false),
            ("five voters", &[1, 2, 3, 4, 5], 5, false),
            // Nothing commits without voters.
            ("no voters", &[], 1, true),
        ];
        for &(label, voters, holder, expected) in cases {
            let config = Configuration::simple(Voters::of(voters));
            let known = damage_uncommitted(&config, NodeId(holder));
            assert_eq!(known, expected, "{label}");
        }
    }
}
