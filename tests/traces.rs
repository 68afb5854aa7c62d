//! Canonical scenarios as reviewed traces (insta snapshots in `traces/`).
//!
//! Each runs a script on a calm network from a fixed seed and snapshots its
//! trace, one line per event, with the heartbeats that change nothing left
//! out. A change to the protocol shows up here as a diff to review with
//! `cargo insta review`.

use std::collections::BTreeMap;

use cairn::core::ids::NodeId;
use cairn::core::node::membership::MembershipPolicy;
use cairn::core::time::Duration;
use cairn::sim::disk::DiskFaults;
use cairn::sim::gossip::{trace_script, GossipAction};
use cairn::sim::gossip_watch::SIM_DEAD_AFTER;
use cairn::sim::script::{at, Action, Step, Who};
use cairn::sim::world::{World, WorldOptions};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `options` from `seed`; the run must pass every checker.
fn trace(seed: u64, options: WorldOptions) -> String {
    let (report, lines) = World::new(seed, options, true).run();
    assert_eq!(report.result, Ok(()), "the scenario passes every checker");
    readable(&lines).join("\n")
}

/// Snapshots `trace` as `traces/<name>.snap`.
macro_rules! assert_trace {
    ($name:expr, $trace:expr) => {
        insta::with_settings!({
            snapshot_path => "../traces",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $trace);
        })
    };
}

/// Leaves out what repeats without news — leaders' heartbeat timers,
/// followers' timers that changed nothing, empty appends, acknowledgements
/// that repeat the last one, gossip's probes and answers without news —
/// and the consumer's and the reader's polls.
fn readable(lines: &[String]) -> Vec<String> {
    let mut last_stored: BTreeMap<String, String> = BTreeMap::new();
    lines
        .iter()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let event = words.get(2..).unwrap_or_default().join(" ");
            // A leader's heartbeat, or a timer that left a follower a
            // follower (the scrubber's, a learner's election timer).
            if event.starts_with("timeout [")
                && (event.contains(" leader ") || event.contains(" follower"))
            {
                return false;
            }
            // Gossip's heartbeat: a probe or its answer carrying no news.
            if (event.starts_with("send gossip ") || event.starts_with("recv gossip "))
                && !event.contains('[')
            {
                return false;
            }
            if [" follow ", " records ", " read q"]
                .iter()
                .any(|w| line.contains(w))
            {
                return false;
            }
            let is_append = words.get(2).is_some_and(|w| *w == "send" || *w == "recv")
                && words.get(3) == Some(&"append");
            if is_append && !event.contains(" +") {
                return false;
            }
            if words.get(3) == Some(&"stored") {
                // "n2 send stored t1 through i4 to n1": keep the first of each.
                let key = format!("{} {}", words[1], words[2]);
                let through = words.get(6).copied().unwrap_or_default().to_owned();
                if last_stored.get(&key) == Some(&through) {
                    return false;
                }
                last_stored.insert(key, through);
            }
            true
        })
        .cloned()
        .collect()
}

fn scripted(nodes: u64, safety_ms: u64, script: Vec<Step>) -> WorldOptions {
    WorldOptions::scripted(nodes, ms(safety_ms), script)
}

// Raft §5.2: three nodes, one pre-vote round, one vote round, one leader.
#[test]
fn three_node_election() {
    assert_trace!("three_node_election", trace(1, scripted(3, 400, vec![])));
}

// §5.2, §5.4.1: the leader crashes; a node with every committed entry wins.
#[test]
fn leader_crash_and_reelection() {
    let script = vec![
        at(ms(600), Action::Crash(Who::Leader)),
        at(ms(1_200), Action::Restart(Who::Elected(1))),
    ];
    assert_trace!(
        "leader_crash_and_reelection",
        trace(2, scripted(3, 1_300, script))
    );
}

// Thesis §6.2: a leader cut off from the others steps down by
// check-quorum; the others elect a new leader in a higher term.
#[test]
fn partitioned_leader_steps_down() {
    let script = vec![
        at(ms(500), Action::Isolate(Who::Leader)),
        at(ms(1_100), Action::Heal),
    ];
    assert_trace!(
        "partitioned_leader_steps_down",
        trace(3, scripted(3, 1_200, script))
    );
}

// §5.4.2, Figure 8 (see `WorldOptions::figure_8`): the new leader
// replicates an entry of an earlier term that another node's later term
// contradicts, and commits it only together with its own no-op.
#[test]
fn figure_8() {
    assert_trace!("figure_8", trace(4, WorldOptions::figure_8()));
}

// A follower crashes with a torn write in its last segment; it restarts,
// cuts the torn tail, and takes the missing entries from the leader.
#[test]
fn torn_write_on_a_follower() {
    let mut options = scripted(
        3,
        1_000,
        vec![
            at(ms(600), Action::CrashBeforeSync(Who::Follower)),
            at(ms(800), Action::Restart(Who::Node(NodeId(1)))),
        ],
    );
    options.disk = DiskFaults {
        crash_keep_ratio: 0.0,
        crash_tear_ratio: 1.0,
        sector_bytes: 16,
    };
    options.workload.interval = ms(50);
    options.workload.batch_max = 4;
    assert_trace!("torn_write_on_a_follower", trace(5, options));
}

// §7: a follower cut off while the leader's log rolls over and its old
// segments are retained away is caught up from the leader's first
// retained entry.
#[test]
fn lagging_follower_gets_a_snapshot() {
    let mut options = scripted(
        3,
        1_400,
        vec![
            at(ms(300), Action::Isolate(Who::Follower)),
            at(ms(1_300), Action::Heal),
        ],
    );
    options.log.segment_bytes = 4096;
    options.log.retention_bytes = Some(4096);
    options.workload.interval = ms(20);
    options.workload.batch_max = 16;
    assert_trace!("lagging_follower_gets_a_snapshot", trace(6, options));
}

// Thesis §3.10: an operator hands leadership to a follower that was cut off
// and is behind; the leader refuses new records, brings it up to date, and
// tells it to stand at once; it wins the next term without pre-votes.
#[test]
fn leader_transfer() {
    let script = vec![
        at(ms(400), Action::Isolate(Who::Follower)),
        at(ms(700), Action::Heal),
        at(ms(700), Action::Transfer(Who::Follower)),
    ];
    assert_trace!("leader_transfer", trace(7, scripted(3, 1_000, script)));
}

// Thesis §4.2.1 and §4.1: a fourth node starts in no configuration; the
// operator adds it as a learner — it is caught up from the leader without
// voting or standing — and, once it has caught up, promotes it to voter.
// Each configuration entry is in effect on a node as soon as it is in its
// log, and the operator hears of each change once it is committed.
#[test]
fn learner_promoted_to_voter() {
    let mut options = scripted(
        3,
        1_000,
        vec![
            at(ms(400), Action::AddLearner(Who::Node(NodeId(4)))),
            at(ms(700), Action::Promote(Who::Node(NodeId(4)))),
        ],
    );
    options.spares = 1;
    options.workload.interval = ms(150);
    assert_trace!("learner_promoted_to_voter", trace(8, options));
}

// Gossip drives Raft membership: one founding voter, configured to keep
// three, and three nodes started in no configuration that join gossip
// through it. The leader adds each as a learner once gossip says it is
// alive, and promotes learners that have caught up until three vote; the
// last stays a learner. No operator asks for anything.
#[test]
fn learner_promoted_after_joining_by_gossip() {
    let mut options = scripted(1, 1_200, Vec::new());
    options.spares = 3;
    options.gossip = Some(MembershipPolicy {
        voters: 3,
        dead_after: SIM_DEAD_AFTER,
    });
    options.workload.interval = ms(150);
    assert_trace!(
        "learner_promoted_after_joining_by_gossip",
        trace(9, options)
    );
}

/// Runs a gossip `script` on five nodes for `periods` probe intervals; the
/// run must end with every view as it should be. The trace leaves out
/// plain pings and acks that carry no news and arrived (the protocol's
/// heartbeat).
fn gossip_trace(seed: u64, periods: u64, script: &[(Duration, GossipAction)]) -> String {
    let lines = trace_script(5, seed, periods, script)
        .unwrap_or_else(|(what, lines)| panic!("{what}\n{}", lines.join("\n")));
    lines
        .into_iter()
        .filter(|line| {
            // `<time> <node> send ping|ack <seq> to <node>`, and no more.
            let words: Vec<&str> = line.split_whitespace().collect();
            let plain =
                words.len() == 7 && words[2] == "send" && (words[3] == "ping" || words[3] == "ack");
            !plain
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Nodes 0 to 3 join, in id order, 100 ms apart, and node 4 at `last`.
fn joined(last: Duration) -> Vec<(Duration, GossipAction)> {
    (0..4)
        .map(|node| (ms(100 * node as u64), GossipAction::Join(node)))
        .chain([(last, GossipAction::Join(4))])
        .collect()
}

// SWIM §4.2 and memberlist's join: a fifth node joins through the first by a
// full-state exchange; the first passes its alive news on, and within a few
// periods every node holds it alive (with its metadata).
#[test]
fn gossip_join() {
    let script = joined(ms(5_000));
    assert_trace!("gossip_join", gossip_trace(1, 10, &script));
}

// SWIM §4.2 with Lifeguard's buddy system: n5 is cut off for two seconds;
// its probers ping it, ask others to (who nack), and suspect it. Healed,
// it hears of the suspicion, refutes it at incarnation 1 (persisted first),
// and every node takes the refutation.
#[test]
fn gossip_suspect_then_refute() {
    let mut script = joined(ms(400));
    script.push((ms(5_000), GossipAction::Partition(vec![4])));
    script.push((ms(7_500), GossipAction::Heal));
    assert_trace!("gossip_suspect_then_refute", gossip_trace(2, 40, &script));
}

// SWIM §4.2 and Lifeguard §IV.B: n5 crashes; it is suspected, each further
// prober confirms the suspicion (which shortens it), and once it runs out
// n5 is declared dead and the death spreads.
#[test]
fn gossip_suspect_then_dead() {
    let mut script = joined(ms(400));
    script.push((ms(5_000), GossipAction::Crash(4)));
    assert_trace!("gossip_suspect_then_dead", gossip_trace(3, 20, &script));
}

// Graceful leave: n5 tells the others it leaves, directly and then by
// gossip, and goes quiet; nobody suspects it.
#[test]
fn gossip_graceful_leave() {
    let mut script = joined(ms(400));
    script.push((ms(5_000), GossipAction::Leave(4)));
    assert_trace!("gossip_graceful_leave", gossip_trace(4, 9, &script));
}

// A partition of {n4, n5} from {n1, n2, n3} for 30 s: each side declares
// the other dead. Healed, nobody probes a member it holds dead; a
// full-state exchange with one of them (as serf reconnects) tells each
// side of the other, each refutes its death, and every view converges.
#[test]
fn gossip_partition_and_heal() {
    let mut script = joined(ms(400));
    script.push((ms(5_000), GossipAction::Partition(vec![3, 4])));
    script.push((ms(35_000), GossipAction::Heal));
    assert_trace!("gossip_partition_and_heal", gossip_trace(5, 100, &script));
}
