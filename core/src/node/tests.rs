//! Client requests against a small cluster of nodes with an explicit clock:
//! messages arrive at once, disks complete at once, and when nothing is in
//! flight the clock moves to the earliest timer.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::config::LogConfig;
use crate::gossip::machine::{Gossip, GossipConfig, Output as GossipOutput};
use crate::gossip::message::Meta;
use crate::ids::{ClientId, NodeId, Offset, RequestId};
use crate::log::entry::Stamp;
use crate::log::machine::Log;
use crate::node::machine::{ClientError, Node, Output, Reply, Request};
use crate::node::membership::MembershipPolicy;
use crate::raft::machine::{Output as RaftOutput, RaftConfig};
use crate::raft::message::Envelope;
use crate::raft::quorum::{Configuration, Voters};
use crate::testing::{fire_earliest, MapDisk};
use crate::time::{Duration, Instant};

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    disks: BTreeMap<NodeId, MapDisk>,
    voters: Configuration,
    log: LogConfig,
    now: Instant,
    wire: VecDeque<(NodeId, Envelope)>,
    /// Gossip's datagrams and exchanges: from, to, bytes.
    gossip_wire: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    replies: Vec<(NodeId, RequestId, Reply)>,
    next_request: u64,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        Cluster::with_log(size, LogConfig::default())
    }

    fn with_log(size: u64, log: LogConfig) -> Cluster {
        let ids: Vec<u64> = (1..=size).collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disks: ids
                .iter()
                .map(|&id| (NodeId(id), MapDisk::default()))
                .collect(),
            voters: Configuration::simple(Voters::of(&ids)),
            log,
            now: Instant::ZERO,
            wire: VecDeque::new(),
            gossip_wire: VecDeque::new(),
            replies: Vec::new(),
            next_request: 1,
        };
        for id in ids {
            cluster.start(NodeId(id));
        }
        cluster
    }

    /// `voters` voters and `spares` nodes in no configuration, all
    /// gossiping, joined through n1, with membership following gossip by
    /// `policy`.
    fn gossiping(voters: u64, spares: u64, policy: MembershipPolicy) -> Cluster {
        let mut cluster = Cluster::new(voters);
        for id in voters + 1..=voters + spares {
            cluster.disks.insert(NodeId(id), MapDisk::default());
            cluster.start(NodeId(id));
        }
        let now = cluster.now;
        for (&id, node) in &mut cluster.nodes {
            let gossip = Gossip::new(
                id,
                GossipConfig::default(),
                None,
                Meta::default(),
                id.get(),
                now,
            )
            .expect("a valid gossip config");
            node.start_gossip(now, gossip, policy);
            node.join_gossip(now, &[NodeId(1)]);
        }
        cluster
    }

    fn start(&mut self, id: NodeId) {
        let disk = &self.disks[&id];
        let log = Log::new(self.log.clone(), disk.recover(), self.now).expect("a log");
        let recovered = disk.recover_state();
        let node = Node::new(
            id,
            RaftConfig::default(),
            self.voters.clone(),
            recovered,
            log,
            id.get(),
            self.now,
        );
        self.nodes.insert(id, node);
    }

    fn drain(&mut self) -> bool {
        let mut busy = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            while let Some(output) = self.nodes.get_mut(&id).expect("a node").poll_output() {
                busy = true;
                match output {
                    Output::Raft(RaftOutput::Disk(request)) => {
                        let outcome = self
                            .disks
                            .get_mut(&id)
                            .expect("a disk")
                            .perform(&request.op);
                        let node = self.nodes.get_mut(&id).expect("a node");
                        node.handle_disk(self.now, request.io, Ok(outcome));
                    }
                    Output::Raft(RaftOutput::Send(envelope)) => self.wire.push_back((id, envelope)),
                    Output::Raft(RaftOutput::Stopped(error)) => panic!("no disk faults: {error}"),
                    Output::Raft(_) => {}
                    Output::Reply {
                        id: request, reply, ..
                    } => self.replies.push((id, request, reply)),
                    Output::Gossip(GossipOutput::Send {
                        to,
                        datagram: bytes,
                    })
                    | Output::Gossip(GossipOutput::SendState { to, frame: bytes }) => {
                        self.gossip_wire.push_back((id, to, bytes))
                    }
                    // Persisted at once; the rest is for observers.
                    Output::Gossip(_) => {}
                }
            }
        }
        busy
    }

    fn step(&mut self) {
        if self.drain() {
            return;
        }
        if let Some((from, envelope)) = self.wire.pop_front() {
            if let Some(node) = self.nodes.get_mut(&envelope.to) {
                node.handle(self.now, from, envelope.message);
            }
            return;
        }
        if let Some((from, to, bytes)) = self.gossip_wire.pop_front() {
            if let Some(node) = self.nodes.get_mut(&to) {
                node.handle_gossip(self.now, from, &bytes)
                    .expect("intact gossip");
            }
            return;
        }
        self.now = fire_earliest(&mut self.nodes);
    }

    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..100_000 {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("not done");
    }

    fn leader(&mut self) -> NodeId {
        self.run_until(|c| {
            let leaders: Vec<_> = c.nodes.values().filter(|n| n.raft().is_leader()).collect();
            leaders.len() == 1
                && leaders[0].raft().commit() >= leaders[0].raft().log().first_index()
        });
        *self
            .nodes
            .iter()
            .find(|(_, n)| n.raft().is_leader())
            .expect("a leader")
            .0
    }

    /// The lowest-numbered node other than `leader`.
    fn follower_of(&self, leader: NodeId) -> NodeId {
        *self
            .nodes
            .keys()
            .find(|&&id| id != leader)
            .expect("a follower")
    }

    /// Sends `request` to `to` and runs until it is answered.
    fn ask(&mut self, to: NodeId, request: Request) -> Reply {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let now = self.now;
        self.nodes
            .get_mut(&to)
            .expect("a node")
            .request(now, ClientId(1), id, request);
        self.run_until(|c| c.replies.iter().any(|(_, r, _)| *r == id));
        let position = self
            .replies
            .iter()
            .position(|(_, r, _)| *r == id)
            .expect("answered");
        self.replies.remove(position).2
    }
}

fn records(names: &[&str]) -> Vec<Bytes> {
    names
        .iter()
        .map(|n| Bytes::copy_from_slice(n.as_bytes()))
        .collect()
}

fn produce(names: &[&str], stamp: Option<(u64, u64)>) -> Request {
    Request::Produce {
        records: records(names),
        stamp: stamp.map(|(producer, sequence)| Stamp { producer, sequence }),
    }
}

fn consume(from: u64) -> Request {
    Request::Consume {
        from: Offset(from),
        max_records: 100,
        max_bytes: 1 << 20,
    }
}

/// A follow from `from` that waits up to five seconds.
fn follow(from: u64) -> Request {
    Request::Follow {
        from: Offset(from),
        max_records: 10,
        max_bytes: 1 << 20,
        wait: Duration::from_secs(5),
    }
}

fn got(reply: Reply) -> Vec<(u64, String)> {
    match reply {
        Reply::Records { records, .. } => records
            .into_iter()
            .map(|(o, r)| (o.get(), String::from_utf8(r.to_vec()).expect("utf-8")))
            .collect(),
        other => panic!("expected records, got {other:?}"),
    }
}

// Produce at the leader: offsets are dense across batches and leader
// no-ops; a follower answers NotLeader with a hint; any node serves the
// committed records.
#[test]
fn produce_then_consume_anywhere() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader();
    let follower = cluster.follower_of(leader);
    assert_eq!(
        cluster.ask(leader, produce(&["a", "b"], None)),
        Reply::Produced {
            first: Offset(0),
            count: 2
        }
    );
    assert_eq!(
        cluster.ask(leader, produce(&["c"], None)),
        Reply::Produced {
            first: Offset(2),
            count: 1
        }
    );
    assert_eq!(
        cluster.ask(follower, produce(&["x"], None)),
        Reply::Failed(ClientError::NotLeader {
            leader: Some(leader)
        })
    );
    cluster.run_until(|c| c.nodes[&follower].raft().commit_offset() == Offset(3));
    let expected = vec![
        (0, "a".to_owned()),
        (1, "b".to_owned()),
        (2, "c".to_owned()),
    ];
    assert_eq!(got(cluster.ask(follower, consume(0))), expected);
    assert_eq!(got(cluster.ask(leader, consume(1))), expected[1..].to_vec());
    assert_eq!(
        got(cluster.ask(leader, consume(3))),
        vec![],
        "nothing past the end yet"
    );
    assert_eq!(
        cluster.ask(leader, consume(4)),
        Reply::Failed(ClientError::OutOfRange {
            first: Offset(0),
            next: Offset(3)
        })
    );
    assert_eq!(
        cluster.ask(follower, Request::WhoLeads),
        Reply::Leader {
            leader: Some(leader),
            term: cluster.nodes[&leader].raft().term()
        }
    );
}

// A retried stamped batch is answered with where it landed, not stored
// again; a gap in the sequence is refused; a restarted leader answers a
// retry as soon as it leads again, with the original offsets (recovery
// rebuilt its producers from its index slots: nothing to read back).
#[test]
fn stamped_batches_are_stored_once() {
    let mut cluster = Cluster::new(1);
    let node = cluster.leader();
    let first = cluster.ask(node, produce(&["a", "b"], Some((9, 0))));
    assert_eq!(
        first,
        Reply::Produced {
            first: Offset(0),
            count: 2
        }
    );
    assert_eq!(
        cluster.ask(node, produce(&["a", "b"], Some((9, 0)))),
        first,
        "a retry"
    );
    assert_eq!(
        cluster.ask(node, produce(&["z"], Some((9, 2)))),
        Reply::Failed(ClientError::OutOfOrder { expected: 1 })
    );
    assert_eq!(
        cluster.ask(node, produce(&["c"], Some((9, 1)))),
        Reply::Produced {
            first: Offset(2),
            count: 1
        }
    );
    assert_eq!(
        cluster.ask(node, produce(&["d"], Some((4, 0)))),
        Reply::Produced {
            first: Offset(3),
            count: 1
        },
        "another producer"
    );
    cluster.start(node);
    let node = cluster.leader();
    assert_eq!(
        cluster.ask(node, produce(&["c"], Some((9, 1)))),
        Reply::Produced {
            first: Offset(2),
            count: 1
        },
        "remembered across a restart"
    );
    assert_eq!(
        got(cluster.ask(node, consume(0))),
        vec![
            (0, "a".to_owned()),
            (1, "b".to_owned()),
            (2, "c".to_owned()),
            (3, "d".to_owned())
        ]
    );
}

// A restarted leader remembers a producer whose batches retention removed
// (seed 60005616): the table comes from its log's last segment header and
// that segment's index slots, so from its start the node knows where a
// retry landed, and answers it there, not storing it again.
#[test]
fn producers_outlive_retention_across_a_restart() {
    let log = LogConfig {
        segment_bytes: 4096,
        retention_bytes: Some(3 * 4096),
        ..LogConfig::default()
    };
    let mut cluster = Cluster::with_log(1, log);
    let node = cluster.leader();
    let first = cluster.ask(node, produce(&["a"], Some((9, 0))));
    assert_eq!(
        first,
        Reply::Produced {
            first: Offset(0),
            count: 1
        }
    );
    for i in 0..100 {
        let record = format!("{i:0>100}");
        cluster.ask(node, produce(&[&record], None));
    }
    let log = cluster.nodes[&node].raft().log();
    assert!(log.first_offset() > Offset(0), "9's batch is retained away");
    let table = log.producers().clone();
    cluster.start(node);
    assert_eq!(
        cluster.nodes[&node].raft().log().producers(),
        &table,
        "known at once"
    );
    let node = cluster.leader();
    assert_eq!(
        cluster.ask(node, produce(&["a"], Some((9, 0)))),
        first,
        "a retry is answered where it landed"
    );
    assert_eq!(
        cluster.ask(node, produce(&["b"], Some((9, 1)))),
        Reply::Produced {
            first: Offset(101),
            count: 1
        },
        "nothing was stored for the retry"
    );
}

// A follow at the end parks until a record commits, then answers with it;
// a follow that hears nothing answers empty when its wait runs out.
#[test]
fn follow_waits_for_new_records() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader();
    let follower = cluster.follower_of(leader);
    let now = cluster.now;
    cluster.nodes.get_mut(&follower).expect("a node").request(
        now,
        ClientId(2),
        RequestId(1000),
        follow(0),
    );
    cluster.drain();
    assert!(cluster.replies.is_empty(), "parked");
    cluster.ask(leader, produce(&["new"], None));
    cluster.run_until(|c| c.replies.iter().any(|(_, r, _)| *r == RequestId(1000)));
    let (_, _, reply) = cluster.replies.pop().expect("answered");
    assert_eq!(got(reply), vec![(0, "new".to_owned())]);

    let before = cluster.now;
    let reply = cluster.ask(follower, follow(1));
    assert_eq!(
        reply,
        Reply::Records {
            records: vec![],
            next: Offset(1)
        }
    );
    assert!(cluster.now >= before + Duration::from_secs(5), "it waited");
}

// A linearizable read at the leader sees every acknowledged record; a
// follower sends readers to the leader.
#[test]
fn linearizable_reads_at_the_leader() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader();
    let follower = cluster.follower_of(leader);
    cluster.ask(leader, produce(&["a", "b"], None));
    let read = |from| Request::Read {
        from: Offset(from),
        max_records: 10,
        max_bytes: 1 << 20,
    };
    assert_eq!(
        got(cluster.ask(leader, read(0))),
        vec![(0, "a".to_owned()), (1, "b".to_owned())]
    );
    assert_eq!(
        cluster.ask(follower, read(0)),
        Reply::Failed(ClientError::NotLeader {
            leader: Some(leader)
        })
    );
}

// Goal: gossip drives Raft membership. A one-voter cluster configured for
// three voters finds two more nodes by gossip; each joins as a learner, is
// promoted once caught up, and the cluster ends with three voters that
// commit what is produced.
#[test]
fn members_found_by_gossip_become_learners_then_voters() {
    let policy = MembershipPolicy {
        voters: 3,
        ..MembershipPolicy::default()
    };
    let mut cluster = Cluster::gossiping(1, 2, policy);
    let leader = cluster.leader();
    assert_eq!(leader, NodeId(1));
    cluster.run_until(|c| {
        let configuration = c.nodes[&NodeId(1)].raft().configuration();
        configuration.voters.0.len() == 3
            && c.nodes[&NodeId(1)].raft().commit()
                >= c.nodes[&NodeId(1)].raft().configuration_index()
    });
    let configuration = cluster.nodes[&NodeId(1)].raft().configuration().clone();
    assert_eq!(configuration, Configuration::of(&[1, 2, 3], &[]));
    let reply = cluster.ask(NodeId(1), produce(&["a"], None));
    assert!(matches!(reply, Reply::Produced { .. }), "{reply:?}");
}

// Goal: the number of voters stays as configured: a fourth node found by
// gossip joins as a learner and stays one.
#[test]
fn members_past_the_configured_voters_stay_learners() {
    let policy = MembershipPolicy {
        voters: 3,
        ..MembershipPolicy::default()
    };
    let mut cluster = Cluster::gossiping(3, 1, policy);
    cluster.leader();
    cluster.run_until(|c| {
        c.nodes.values().filter(|n| n.raft().is_leader()).any(|n| {
            n.raft().configuration().learners.contains(&NodeId(4))
                && n.raft().commit() >= n.raft().configuration_index()
        })
    });
    // Time passes; nothing more changes.
    let until = cluster.now + Duration::from_secs(30);
    cluster.run_until(|c| c.now >= until);
    let leader = cluster.leader();
    let configuration = cluster.nodes[&leader].raft().configuration().clone();
    assert_eq!(configuration, Configuration::of(&[1, 2, 3], &[4]));
}

// Goal: a voter that leaves gracefully is removed at once; a voter that
// crashes is removed only once gossip has held it dead for the dead time,
// while the remaining voters are alive.
#[test]
fn members_that_leave_or_stay_dead_are_removed() {
    let policy = MembershipPolicy {
        voters: 4,
        dead_after: Duration::from_secs(20),
    };
    let mut cluster = Cluster::gossiping(4, 0, policy);
    cluster.leader();
    let leaver = NodeId(4);
    let now = cluster.now;
    cluster
        .nodes
        .get_mut(&leaver)
        .expect("n4")
        .leave_gossip(now);
    let configured = |c: &Cluster, voters: &[u64]| {
        c.nodes.values().filter(|n| n.raft().is_leader()).any(|n| {
            *n.raft().configuration() == Configuration::of(voters, &[])
                && n.raft().commit() >= n.raft().configuration_index()
        })
    };
    cluster.run_until(|c| configured(c, &[1, 2, 3]));
    cluster.nodes.remove(&leaver);

    // n3 crashes: suspected, then dead; removed only after the dead time.
    let crashed = NodeId(3);
    let leader = cluster.leader();
    assert_ne!(leader, crashed, "n1 leads from the start");
    cluster.nodes.remove(&crashed);
    let dead_at = |c: &Cluster| {
        c.nodes[&leader]
            .gossip()
            .and_then(|g| g.status(crashed))
            .is_some_and(|s| s.state == crate::gossip::member::State::Dead)
    };
    cluster.run_until(dead_at);
    let declared = cluster.now;
    cluster.run_until(|c| configured(c, &[1, 2]));
    assert!(
        cluster.now.saturating_since(declared) >= Duration::from_secs(20),
        "not before the dead time"
    );
}

#[test]
fn a_leader_hands_over_to_a_caught_up_voter() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader();
    cluster.ask(leader, produce(&["a"], None));
    let now = cluster.now;
    let follower = cluster.follower_of(leader);
    assert_eq!(
        cluster.nodes.get_mut(&follower).unwrap().hand_over(now),
        None
    );
    let to = cluster.nodes.get_mut(&leader).unwrap().hand_over(now);
    let to = to.expect("a leader with voters hands over");
    assert_ne!(to, leader);
    cluster.run_until(|c| c.nodes[&to].raft().is_leader());
    assert!(!cluster.nodes[&leader].raft().is_leader());
}
