//! Known bugs that can be switched on, to prove that the simulator's
//! checkers catch them.
//!
//! Owns the list of bugs. Switching one on needs the `inject-bugs` feature,
//! which only the tests enable: without it, `RaftConfig::has_bug` is a
//! constant `false` and every injection site compiles away.

/// A bug real Raft implementations have shipped, and where it goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// The leader commits an entry of an earlier term by counting its
    /// replicas (Raft §5.4.2, Figure 8), and, as in the figure, appends no
    /// no-op at the start of its term (which would otherwise commit the
    /// earlier entries with it and hide the bug in almost every run).
    CommitPreviousTermByCounting,
    /// A vote leaves before the vote is synced (Raft Figure 2).
    VoteBeforeSync,
    /// An append is acknowledged before it is synced.
    AckBeforeSync,
    /// A node serves records past its commit offset.
    ServeUncommitted,
    /// A node stands for election without asking for pre-votes (thesis
    /// §9.6).
    SkipPreVote,
    /// The leader counts learners' copies toward a commit, as if they
    /// voted (thesis §4.2.1: they must not).
    LearnersCount,
}

impl Bug {
    /// Every bug.
    pub const ALL: [Bug; 6] = [
        Bug::CommitPreviousTermByCounting,
        Bug::VoteBeforeSync,
        Bug::AckBeforeSync,
        Bug::ServeUncommitted,
        Bug::SkipPreVote,
        Bug::LearnersCount,
    ];
}
