//! Which news about a member wins (SWIM §4.2, with graceful leave).
//!
//! Owns the order of a member's states and incarnations. It must never let
//! news about a member go backwards: an older incarnation never wins, and
//! within one incarnation a member is only ever suspected, declared dead or
//! said to have left after being alive, never the reverse; only the member
//! itself, by raising its incarnation, is alive again.

use serde::{Deserialize, Serialize};

/// What the cluster believes of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    /// Answering probes.
    Alive,
    /// Missed a probe: declared dead unless it refutes in time.
    Suspect,
    /// Did not refute a suspicion in time.
    Dead,
    /// Left gracefully, and said so.
    Left,
}

/// News about a member: its state as of an incarnation. The member alone
/// raises its incarnation, to refute a suspicion (or a death) of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The member's incarnation the news is about.
    pub incarnation: u64,
    /// What it says of the member.
    pub state: State,
}

impl Status {
    /// Whether this news replaces `known` (SWIM §4.2): a later incarnation
    /// always does; within one incarnation only a graver state does, in
    /// the order alive, suspect, dead, left. So an alive member's refutation
    /// needs a higher incarnation than the suspicion it answers.
    pub fn supersedes(self, known: Status) -> bool {
        (self.incarnation, self.state) > (known.incarnation, known.state)
    }
}

/// The incarnation a member takes to refute news about itself of
/// incarnation `heard`, when its own is `own`: past both, so that its
/// alive news supersedes what was heard, and never lower than before.
pub fn refutation(own: u64, heard: u64) -> u64 {
    own.max(heard).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Alive, Dead, Left, Suspect};

    fn status(incarnation: u64, state: State) -> Status {
        Status { incarnation, state }
    }

    // Goal: SWIM §4.2's rules for which news wins, exactly, with leave as
    // the gravest state.
    #[test]
    fn which_news_wins() {
        let table = [
            // A later incarnation wins whatever either says.
            ((2, Alive), (1, Suspect), true),
            ((2, Alive), (1, Dead), true),
            ((2, Alive), (1, Left), true),
            ((2, Suspect), (1, Dead), true),
            // An earlier one never does.
            ((1, Left), (2, Alive), false),
            ((1, Dead), (2, Alive), false),
            ((1, Suspect), (2, Alive), false),
            // Within an incarnation, only a graver state wins: a member is
            // suspected, then dead, or it left.
            ((1, Suspect), (1, Alive), true),
            ((1, Dead), (1, Alive), true),
            ((1, Dead), (1, Suspect), true),
            ((1, Left), (1, Dead), true),
            ((1, Left), (1, Alive), true),
            // ... and never the reverse: alive news of the same incarnation
            // does not refute a suspicion.
            ((1, Alive), (1, Suspect), false),
            ((1, Alive), (1, Dead), false),
            ((1, Suspect), (1, Dead), false),
            ((1, Dead), (1, Left), false),
            // The same news twice changes nothing.
            ((1, Alive), (1, Alive), false),
            ((1, Suspect), (1, Suspect), false),
        ];
        for ((ni, ns), (ki, ks), expected) in table {
            assert_eq!(
                status(ni, ns).supersedes(status(ki, ks)),
                expected,
                "{ns:?}@{ni} over {ks:?}@{ki}"
            );
        }
    }

    // Goal: a refutation's incarnation is past the news it answers and
    // past the member's own, so its alive news always wins.
    #[test]
    fn refutation_table() {
        let table = [
            // (own, heard, taken)
            (0, 0, 1),
            (3, 3, 4),
            (5, 2, 6),
            (2, 7, 8),
            (u64::MAX, 1, u64::MAX),
        ];
        for (own, heard, taken) in table {
            assert_eq!(refutation(own, heard), taken, "own {own}, heard {heard}");
        }
        for own in 0..4 {
            for heard in 0..4 {
                for state in [Suspect, Dead, Left] {
                    let alive = status(refutation(own, heard), Alive);
                    assert!(alive.supersedes(status(heard, state)));
                }
            }
        }
    }
}
