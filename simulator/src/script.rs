//! Scripted faults: the canonical scenarios that traces show, step by step.
//!
//! Owns the shape of a script: which fault happens when, to whom. A step
//! fires at a simulated time, or at the moment the n-th leader of the run is
//! elected (before any message it sent is delivered), and names its target
//! by id or by role at that moment. It must never draw randomness: a script
//! replaces the seeded fault mix, and the seed then only decides timings.

use cairn_core::ids::NodeId;
use cairn_core::time::Duration;

/// When a step fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// At this simulated time.
    At(Duration),
    /// When the n-th election of the run (from 1) is won.
    Election(u32),
}

/// Whom a step targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// This node.
    Node(NodeId),
    /// The node leading in the highest term at that moment.
    Leader,
    /// The lowest-numbered running node that is not the leader.
    Follower,
    /// The winner of the n-th election of the run (from 1).
    Elected(u32),
}

/// What happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Power loss: memory lost, unsynced writes lost or torn as the disk
    /// decides.
    Crash(Who),
    /// Power loss at the node's next write, just after it reached the disk
    /// and before any waiting sync did: the writes are what the disk may
    /// tear or lose.
    CrashBeforeSync(Who),
    /// A crashed node starts again from its disk.
    Restart(Who),
    /// The node hears no other node and no other node hears it.
    Isolate(Who),
    /// These nodes on one side, the rest on the other.
    Partition(Vec<Who>),
    /// Every link works again.
    Heal,
    /// Every crashed node starts again.
    RestartAll,
    /// An operator asks the leader to hand leadership to this node.
    Transfer(Who),
    /// An operator asks the leader to add this node as a learner.
    AddLearner(Who),
    /// An operator asks the leader to make this learner a voter.
    Promote(Who),
    /// An operator asks the leader to remove this node.
    Remove(Who),
    /// The node leaves the cluster's gossip gracefully (where gossip runs:
    /// the leader then removes it).
    Leave(Who),
}

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When it fires.
    pub when: When,
    /// What happens.
    pub action: Action,
}

/// A step firing at `at`.
pub fn at(at: Duration, action: Action) -> Step {
    Step {
        when: When::At(at),
        action,
    }
}

/// A step firing when the `n`-th election is won.
pub fn on_election(n: u32, action: Action) -> Step {
    Step {
        when: When::Election(n),
        action,
    }
}
