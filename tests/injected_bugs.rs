//! Proof that the simulator's checkers can fail: known bugs, switched on in
//! the core one at a time, are each caught within a bounded number of seeds,
//! by the checker that watches for them.

use cairn::core::bugs::Bug;
use cairn::sim::world::{World, WorldOptions};

/// Seeds tried per bug before the test gives up.
const SEEDS_MAX: u64 = 400;

/// The checkers that may catch each bug first.
fn expected_checkers(bug: Bug) -> &'static [&'static str] {
    match bug {
        // Figure 8: an entry counted onto a majority in a later term is
        // overwritten by a leader that never had it.
        Bug::CommitPreviousTermByCounting => &[
            "commits are safe",
            "leader completeness",
            "committed never changes",
            "acked records stay",
        ],
        Bug::VoteBeforeSync => &["sent before synced"],
        Bug::AckBeforeSync => &["acked before synced"],
        Bug::ServeUncommitted => &[
            "no duplicates",
            "acked records stay",
            "dense offsets",
            "no phantom records",
        ],
        Bug::SkipPreVote => &["votes follow pre-votes"],
        // Records committed on the leader and learners only.
        Bug::LearnersCount => &["acked on a quorum's disks", "commits are safe"],
    }
}

/// The first seed whose run fails with `bug` switched on, and how.
fn first_catch(bug: Bug) -> Option<(u64, &'static str, String)> {
    (0..SEEDS_MAX).find_map(|seed| {
        let mut options = match bug {
            // It takes Figure 8's history to show; the seed varies its
            // timings.
            Bug::CommitPreviousTermByCounting => WorldOptions::figure_8(),
            // It takes learners on the leader's side of a partition.
            Bug::LearnersCount => WorldOptions::learners_cut_off_with_the_leader(),
            _ => WorldOptions::swarm(seed),
        };
        options.raft.bug = Some(bug);
        let (report, _) = World::new(seed, options, false).run();
        report
            .result
            .err()
            .map(|failure| (seed, failure.checker, failure.what))
    })
}

// Goal: every injected bug is caught, and by the checker meant for it.
#[test]
fn every_injected_bug_is_caught() {
    for bug in Bug::ALL {
        let Some((seed, checker, what)) = first_catch(bug) else {
            panic!("{bug:?} passed {SEEDS_MAX} seeds: the checkers missed it");
        };
        eprintln!("{bug:?}: caught at seed {seed} by {checker}: {what}");
        assert!(
            expected_checkers(bug).contains(&checker),
            "{bug:?} was caught at seed {seed} by `{checker}` ({what}), not by {:?}",
            expected_checkers(bug)
        );
    }
}
