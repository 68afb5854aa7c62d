//! The world: nodes, their disks and the network, driven from one seed.
//!
//! Owns the event loop of a scenario and its checkers. One thread, one
//! clock, one order of events: the earliest of the next disk completion,
//! packet, node timer and fault, ties broken in that order and then by
//! node id. Every node's seed is derived from the scenario's, so one u64
//! replays a run bit for bit, and the trace's hash says so.
//!
//! A run has a safety phase (faults: packet loss, duplication, reordering,
//! isolation, one-way cuts, partitions with a bridge, clogged links,
//! crashes that lose unsynced writes) and then a liveness phase (faults
//! stop, everything heals, crashed nodes restart): a leader that all nodes
//! follow must appear within a bound.
//! Where nodes gossip, every node joins through the founding voters and
//! Raft membership follows what gossip finds; gossip's frames travel the
//! same network as Raft's messages.
//! Checkers run outside the nodes after every step: one leader per term,
//! nothing sent before the state it announces is durable, acks only on a
//! quorum's synced disks, commits that no electable node lacks, what the
//! workload sees (workload.rs), what gossip says and does (gossip_watch.rs)
//! and every machine's own invariants.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_core::config::LogConfig;
use cairn_core::gossip::machine::{Gossip, Output as GossipOutput};
use cairn_core::gossip::message::Meta;
use cairn_core::ids::{ClientId, RequestId};
use cairn_core::ids::{LogIndex, NodeId, Term};
use cairn_core::limits::PAGE_BYTES;
use cairn_core::log::disk::{DiskOp, DiskRequest, FileId, FoundFile};
use cairn_core::log::entry::ConfigAt;
use cairn_core::log::machine::Log;
use cairn_core::log::recovery::{self, Recovered};
use cairn_core::node::machine::{Node, Output as NodeOutput, Reply, Request};
use cairn_core::node::membership::MembershipPolicy;
use cairn_core::raft::election::LastEntry;
use cairn_core::raft::machine::{Output, Raft, RaftConfig, Role, RoleSummary};
use cairn_core::raft::membership::Change;
use cairn_core::raft::message::{AppendResult, Envelope, Message};
use cairn_core::raft::quorum::{Configuration, Voters};
use cairn_core::raft::state;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::Xxh3;

use crate::disk::{DiskFaults, SimDisk};
use crate::gossip_watch::{GossipWatch, Truth, SIM_DEAD_AFTER, SIM_GOSSIP};
use crate::network::{Network, NetworkOptions};
use crate::script::{at, on_election, Action, Step, When, Who};
use crate::workload::{client_address, Workload, WorkloadOptions};

/// What travels on the simulated network: Raft's messages and gossip's
/// frames between nodes, and clients' requests and the nodes' replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Between nodes.
    Raft(Message),
    /// Gossip between nodes: a datagram, or a full-state exchange (on a
    /// stream, in the runtime).
    Gossip {
        /// The frame.
        bytes: Bytes,
        /// Whether it is a full-state exchange.
        stream: bool,
    },
    /// From a client to a node.
    Request {
        /// The client.
        client: ClientId,
        /// Its request's id.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// From a node to a client.
    Reply {
        /// The client.
        client: ClientId,
        /// The request's id.
        id: RequestId,
        /// The answer.
        reply: Reply,
    },
}

impl core::fmt::Display for Wire {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Wire::Raft(message) => message.fmt(f),
            Wire::Gossip { bytes, stream } => {
                let (kind, carried) = crate::gossip::frame_parts(bytes, *stream);
                write!(f, "gossip {kind}{carried}")
            }
            Wire::Request { id, request, .. } => match request {
                Request::Produce { records, stamp } => {
                    write!(f, "produce {id} x{}", records.len())?;
                    match stamp {
                        Some(s) => write!(f, " p{}#{}", s.producer, s.sequence),
                        None => Ok(()),
                    }
                }
                Request::Consume { from, .. } => write!(f, "consume {id} from {from}"),
                Request::Read { from, .. } => write!(f, "read {id} from {from}"),
                Request::Follow { from, .. } => write!(f, "follow {id} from {from}"),
                Request::WhoLeads => write!(f, "who-leads {id}"),
                Request::Transfer { to } => write!(f, "transfer {id} to {to}"),
                Request::ChangeMembership(change) => write!(f, "change {id}: {change}"),
                Request::Members => write!(f, "members {id}"),
            },
            Wire::Reply { id, reply, .. } => match reply {
                Reply::Produced { first, count } => write!(f, "produced {id} {first} x{count}"),
                Reply::Records { records, next } => {
                    write!(f, "records {id} x{} next {next}", records.len())
                }
                Reply::Leader { leader, term } => write!(f, "leader {id} {leader:?} {term}"),
                Reply::Transferring { to } => write!(f, "transferring {id} to {to}"),
                Reply::Changed { index } => write!(f, "changed {id} at {index}"),
                Reply::Members {
                    configuration,
                    index,
                } => write!(f, "members {id} {configuration} at {index}"),
                Reply::Failed(error) => write!(f, "failed {id} {error:?}"),
            },
        }
    }
}

/// The shape and fault mix of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldOptions {
    /// Voters in the cluster.
    pub nodes: u64,
    /// How long faults are injected.
    pub safety: Duration,
    /// How long the healed cluster has to elect a leader all follow.
    pub liveness: Duration,
    /// The network's behaviour on healthy links.
    pub network: NetworkOptions,
    /// Mean time between faults (crash, restart, partition, heal).
    pub fault_interval: Duration,
    /// Raft's timing.
    pub raft: RaftConfig,
    /// Every node's log: small segments, so that runs roll, retain and
    /// catch followers up with snapshots.
    pub log: LogConfig,
    /// What the clients do.
    pub workload: WorkloadOptions,
    /// Scripted faults instead of the seeded mix, if any.
    pub script: Option<Vec<Step>>,
    /// How every node's disk behaves in a crash.
    pub disk: DiskFaults,
    /// The most a node's clock runs fast or slow, in parts per million:
    /// each node draws its own drift within it.
    pub clock_drift_ppm: i64,
    /// Nodes started in no configuration, after the founding voters: an
    /// operator may add them as learners and promote them.
    pub spares: u64,
    /// Whether faults include membership changes (add a learner, promote
    /// one, remove a node).
    pub membership: bool,
    /// Whether faults include media corruption: bytes of committed entries
    /// rot at rest, on one replica only (see `World::corruptible`).
    pub corruption: bool,
    /// Whether nodes gossip ([`SIM_GOSSIP`]), and how Raft membership
    /// follows what gossip finds: `None` leaves membership to the
    /// operator alone.
    pub gossip: Option<MembershipPolicy>,
}

impl WorldOptions {
    /// The fault mix for `seed`: each seed draws its own size and its own
    /// intensity of every fault (swarm testing); one seed in eight is a
    /// storm.
    pub fn swarm(seed: u64) -> WorldOptions {
        let options = WorldOptions::drawn(seed);
        let mut rng =
            Rng::new(Rng::new(seed).child(Stream::World, CHILD_MIX)).stream(Stream::World);
        if rng.random_range(0..8) == 0 {
            return options.storm();
        }
        options
    }

    /// A storm: five voters, one entry per append message and a fault
    /// every 150 ms on average — the mix in which a leader most often
    /// inherits entries of earlier terms that a majority lacks, and in
    /// which an unsafe commit (Raft's Figure 8) shows within a few dozen
    /// seeds.
    pub fn storm(self) -> WorldOptions {
        WorldOptions {
            nodes: 5,
            fault_interval: Duration::from_millis(150),
            raft: RaftConfig {
                append_entries_max: 1,
                ..self.raft
            },
            ..self
        }
    }

    fn drawn(seed: u64) -> WorldOptions {
        let mut rng = Rng::new(seed).stream(Stream::World);
        let nodes = [1, 3, 3, 5, 5][rng.random_range(0..5)];
        let network = NetworkOptions {
            loss_ratio: [0.0, 0.01, 0.1, 0.3][rng.random_range(0..4)],
            duplicate_ratio: [0.0, 0.02, 0.1][rng.random_range(0..3)],
            reorder_ratio: [0.0, 0.1, 0.3][rng.random_range(0..3)],
            ..NetworkOptions::default()
        };
        WorldOptions {
            nodes,
            safety: Duration::from_secs(rng.random_range(2..8)),
            liveness: Duration::from_secs(10),
            network,
            fault_interval: Duration::from_millis(rng.random_range(100..1500)),
            raft: RaftConfig {
                append_entries_max: [1, 4, 64, 1024][rng.random_range(0..4)],
                ..RaftConfig::default()
            },
            log: {
                let segment_bytes = [4096, 16 * 1024, 64 * 1024][rng.random_range(0..3)];
                LogConfig {
                    segment_bytes,
                    retention_bytes: [None, Some(4 * segment_bytes)][rng.random_range(0..2)],
                    ..LogConfig::default()
                }
            },
            workload: WorkloadOptions {
                producers: rng.random_range(1..=4),
                interval: Duration::from_millis([5, 20, 100][rng.random_range(0..3)]),
                batch_max: [1, 4, 16][rng.random_range(0..3)],
                record_bytes: 0,
            },
            script: None,
            disk: DiskFaults::default(),
            clock_drift_ppm: [0, 200, 20_000][rng.random_range(0..3)],
            spares: [0, 0, 1, 2][rng.random_range(0..4)],
            membership: rng.random_bool(0.5),
            corruption: rng.random_bool(0.5),
            gossip: Some(MembershipPolicy {
                voters: nodes as usize,
                dead_after: SIM_DEAD_AFTER,
            }),
        }
    }

    /// The bench's scenario: five voters on a network losing 1% of
    /// packets, clients producing about 100 records of 1 KiB a second, and
    /// the leader crashing every 5 s, restarted 2 s later, for a minute.
    /// Segments of 1 MiB: the minute's 6 MB then fills six of them, as a
    /// log that runs for long has sealed segments behind its active one
    /// (with the default 128 MiB nothing would ever roll, and every
    /// restart would scan the whole minute's log since its last index
    /// checkpoint).
    pub fn bench() -> WorldOptions {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut script = Vec::new();
        for k in 0..12 {
            script.push(at(s(5 * k + 3), Action::Crash(Who::Leader)));
            script.push(at(s(5 * k + 5), Action::RestartAll));
        }
        let mut options = WorldOptions::scripted(5, s(60), script);
        options.network.loss_ratio = 0.01;
        options.log.segment_bytes = 1024 * 1024;
        options.workload = WorkloadOptions {
            producers: 1,
            interval: ms(100),
            batch_max: 19,
            record_bytes: 1024,
        };
        options
    }

    /// Raft's Figure 8 on five nodes. The first leader and one follower
    /// are cut off; the leader takes records the others never see, then
    /// crashes. The majority side elects a leader, cut off the moment it
    /// wins: its no-op, of a later term, reaches no one. The rest rejoin
    /// without it, and a node holding the first leader's records wins: it
    /// must commit them only together with an entry of its own term, since
    /// the cut-off node, whose last entry is of a later term, could still
    /// be elected by a majority that lacks that entry.
    pub fn figure_8() -> WorldOptions {
        let ms = Duration::from_millis;
        let script = vec![
            at(ms(500), Action::Partition(vec![Who::Leader, Who::Follower])),
            at(ms(640), Action::Crash(Who::Leader)),
            on_election(2, Action::Isolate(Who::Leader)),
            at(ms(1_000), Action::Heal),
            at(ms(1_000), Action::Isolate(Who::Elected(2))),
            at(ms(1_000), Action::Restart(Who::Elected(1))),
            at(ms(1_500), Action::Heal),
        ];
        let mut options = WorldOptions::scripted(5, ms(1_600), script);
        options.workload.interval = ms(40);
        options
    }

    /// Three voters and two learners. Once both learners hold the log, the
    /// leader and the learners are cut off from the two other voters: the
    /// leader must commit nothing on that side (a majority of voters is
    /// not there), and steps down by check-quorum; the voters elect
    /// another.
    pub fn learners_cut_off_with_the_leader() -> WorldOptions {
        let ms = Duration::from_millis;
        let learner = |id| Who::Node(NodeId(id));
        let script = vec![
            at(ms(300), Action::AddLearner(learner(4))),
            at(ms(450), Action::AddLearner(learner(5))),
            at(
                ms(700),
                Action::Partition(vec![Who::Leader, learner(4), learner(5)]),
            ),
            at(ms(1_500), Action::Heal),
        ];
        let mut options = WorldOptions::scripted(3, ms(1_600), script);
        options.spares = 2;
        options.workload.interval = ms(40);
        options
    }

    /// A calm cluster of `nodes` running `script`: no loss, no reordering,
    /// one producer sending one record every 100 ms, default timings.
    pub fn scripted(nodes: u64, safety: Duration, script: Vec<Step>) -> WorldOptions {
        WorldOptions {
            nodes,
            safety,
            liveness: Duration::from_secs(5),
            network: NetworkOptions::default(),
            fault_interval: Duration::from_secs(3600),
            raft: RaftConfig::default(),
            log: LogConfig::default(),
            workload: WorkloadOptions {
                producers: 1,
                interval: Duration::from_millis(100),
                batch_max: 1,
                record_bytes: 0,
            },
            script: Some(script),
            disk: DiskFaults::default(),
            clock_drift_ppm: 0,
            spares: 0,
            membership: false,
            corruption: false,
            gossip: None,
        }
    }
}

/// Why a run failed: the checker and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The checker that failed.
    pub checker: &'static str,
    /// What it saw.
    pub what: String,
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Hash of every trace line, in order (the frequent lines by their
    /// fields, the rest by their text): equal runs have equal hashes.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub end: Instant,
    /// `Ok` or the first failure.
    pub result: Result<(), Failure>,
    /// For each crash of a leader: the time until a leader of a later term
    /// committed a record past what the crashed leader had committed.
    pub failovers: Vec<Duration>,
    /// Where nodes gossip: deaths declared of running members (each one
    /// excused by a fault, or the run failed).
    pub deaths_of_running: u64,
    /// Where nodes gossip: how long after the heal every view converged.
    pub gossip_converged_in: Option<Duration>,
}

struct SimNode {
    id: NodeId,
    disk: SimDisk,
    node: Option<Node>,
    restarts: u64,
    /// Disk operations waiting, in order, each with when it completes.
    io: std::collections::VecDeque<(Instant, DiskRequest)>,
    /// What its disk would recover now and the log that starts from it,
    /// and the disk's durable version they were recovered at.
    durable: Option<(u64, Recovered, Log)>,
    /// The Raft state its disk would recover now, and the state file's
    /// durable key (`SimDisk::durable_file_key`) it was read at.
    durable_state: Option<(Option<(u64, u64)>, state::HardState)>,
    /// Whether its machine took an input since the last check.
    touched: bool,
    /// When its machine wants its timers, in world time, as of the last
    /// check; asked afresh while `touched` (a machine's deadline changes
    /// only with its inputs).
    due: Option<Instant>,
    /// Whether it loses power at its next write (a script's step).
    crash_at_write: bool,
    /// Its clock's drift, in parts per million (its hardware clock: it
    /// survives restarts).
    drift_ppm: i64,
    /// Until when the node's process is paused: it takes no input, and
    /// packets and disk completions for it wait.
    paused_until: Option<Instant>,
    /// Packets that arrived while it was paused, in order.
    waiting: Vec<(NodeId, Wire)>,
    /// When its machine last started.
    started_at: Instant,
}

impl SimNode {
    /// The node's own clock reading at world time `now`.
    fn local(&self, now: Instant) -> Instant {
        if self.drift_ppm == 0 {
            return now;
        }
        let nanos = i128::from(now.as_nanos());
        let local = nanos + nanos * i128::from(self.drift_ppm) / 1_000_000;
        Instant::from_nanos(local.max(0) as u64)
    }

    /// The earliest world time at which the node's clock reads `local`.
    fn world(&self, local: Instant) -> Instant {
        if self.drift_ppm == 0 {
            return local;
        }
        let target = i128::from(local.as_nanos());
        let mut guess =
            (target * 1_000_000 / (1_000_000 + i128::from(self.drift_ppm))).max(0) as u64;
        while self.local(Instant::from_nanos(guess)) < local {
            guess += 1;
        }
        while guess > 0 && self.local(Instant::from_nanos(guess - 1)) >= local {
            guess -= 1;
        }
        Instant::from_nanos(guess)
    }

    /// Whether what a crash would leave is a prefix of the node's log in
    /// memory: the disk's durable state is a prefix of its contents, and
    /// no cut or deletion the log asked for is still waiting to be
    /// performed (the disk would then hold more than the log does).
    fn durable_is_prefix(&self) -> bool {
        let Some(machine) = &self.node else {
            return false;
        };
        // A cut the log made may not have reached even the driver yet:
        // then the disk holds more of the active store, or later stores.
        let (store, len) = machine.raft().log().active_store();
        self.disk.durable_is_prefix()
            && self.disk.len(store).is_some_and(|bytes| bytes <= len)
            && !self.disk.has_store_after(store)
            && self
                .io
                .iter()
                .all(|(_, r)| !matches!(r.op, DiskOp::Truncate { .. } | DiskOp::Delete { .. }))
    }

    /// Whether the frame of entry `index` of `log` (this node's running
    /// log) is on its disk durably.
    fn frame_durable(&self, log: &Log, index: LogIndex) -> bool {
        match log.frame_end(index) {
            Some((file, end)) => self.disk.durable_through(file, end),
            None => true, // A sealed segment, synced when it was sealed.
        }
    }

    /// The term and vote a crash now would leave on its disk; read again
    /// only when what a crash would leave of the state file changed.
    fn durable_state(&mut self) -> state::HardState {
        let file = FileId::state();
        let key = self.disk.durable_file_key(file);
        if let Some((_, state)) = self.durable_state.filter(|(k, _)| *k == key) {
            debug_assert_eq!(
                state,
                self.read_durable_state(),
                "the key covers every change"
            );
            return state;
        }
        let state = self.read_durable_state();
        self.durable_state = Some((key, state));
        state
    }

    /// The term and vote in the state file's durable content.
    fn read_durable_state(&self) -> state::HardState {
        let file = FileId::state();
        let name = file.to_string();
        let bytes = self.disk.durable_file(file);
        let found: Vec<FoundFile<'_>> = bytes
            .as_deref()
            .map(|bytes| FoundFile { name: &name, bytes })
            .into_iter()
            .collect();
        state::recover(&found).map(|r| r.state).unwrap_or_default()
    }

    /// When the node next wants its timers fired, in world time, never
    /// before `now` (a timer that came due while the node was paused fires
    /// when it resumes).
    fn timer(&self, now: Instant) -> Option<Instant> {
        let machine = self.node.as_ref()?;
        let due = if self.touched {
            self.deadline(machine)
        } else {
            self.due
        };
        let at = due?.max(now);
        Some(self.paused_until.map_or(at, |until| at.max(until)))
    }

    /// When `machine` wants its timers, in world time.
    fn deadline(&self, machine: &Node) -> Option<Instant> {
        Some(self.world(machine.poll_timeout()?))
    }
}

/// A scenario in progress.
pub struct World {
    seed: u64,
    options: WorldOptions,
    now: Instant,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    network: Network<Wire>,
    next_fault: Instant,
    leaders: BTreeMap<Term, NodeId>,
    /// A leader's crash not yet followed by a new leader's commit: when,
    /// its term, and its commit offset.
    failover: Option<(Instant, Term, cairn_core::ids::Offset)>,
    failovers: Vec<Duration>,
    /// The winner of every election so far, in order (for scripts).
    elected: Vec<NodeId>,
    /// Script steps not yet fired, in order.
    script: std::collections::VecDeque<Step>,
    /// Pre-votes granted to each node for each term it asked about.
    pre_votes: BTreeMap<(NodeId, Term), std::collections::BTreeSet<NodeId>>,
    workload: Workload,
    hasher: Xxh3,
    trace: Option<Vec<String>>,
    /// The trace line being written (when the trace is kept).
    line: String,
    /// The fault atlas: the one node whose disk may rot, if any. With one
    /// replica damaged at most, every committed entry keeps an intact copy
    /// on another node of the majority that stored it (and none is damaged
    /// in a cluster of one or two, nor where retention or membership
    /// changes run, where none might be left).
    corruptible: Option<NodeId>,
    /// Each node's scrub rounds when the liveness phase began.
    scrubs_at_heal: Vec<u64>,
    /// Where nodes gossip: what they said, held to the truth.
    watch: Option<GossipWatch>,
    events: u64,
}

/// Node seeds, disk seeds and the network's seed are drawn as children of
/// the scenario's seed, so that none of them depends on another's draws.
const CHILD_NETWORK: u64 = 0;
const CHILD_NODE: u64 = 1_000;
const CHILD_DISK: u64 = 2_000;
const CHILD_MIX: u64 = 4_000;
const CHILD_CLOCKS: u64 = 5_000;
const CHILD_ATLAS: u64 = 6_000;
const CHILD_GOSSIP: u64 = 7_000;

/// The client id of the operator a script speaks for.
const OPERATOR: u64 = u64::MAX;

impl World {
    /// A world for `seed`; with `trace`, every event is also kept as a line.
    pub fn new(seed: u64, options: WorldOptions, trace: bool) -> World {
        let root = Rng::new(seed);
        let ids: Vec<u64> = (1..=options.nodes + options.spares).collect();
        let mut world = World {
            seed,
            now: Instant::ZERO,
            rng: root.stream(Stream::World),
            nodes: Vec::new(),
            network: Network::new(root.child(Stream::World, CHILD_NETWORK), options.network),
            next_fault: Instant::ZERO + options.fault_interval,
            leaders: BTreeMap::new(),
            elected: Vec::new(),
            failover: None,
            failovers: Vec::new(),
            script: options.script.clone().unwrap_or_default().into(),
            pre_votes: BTreeMap::new(),
            workload: Workload::new(options.workload.clone(), seed, ids.len() as u64),
            hasher: Xxh3::new(),
            trace: trace.then(Vec::new),
            line: String::new(),
            corruptible: None,
            scrubs_at_heal: Vec::new(),
            watch: options.gossip.map(GossipWatch::new),
            events: 0,
            options,
        };
        let mut drift = Rng::new(root.child(Stream::World, CHILD_CLOCKS)).stream(Stream::World);
        for &id in &ids {
            let mut disk = SimDisk::new(
                root.child(Stream::Disk, CHILD_DISK + id),
                world.options.disk,
            );
            disk.reserve_stores(world.options.log.segment_bytes + PAGE_BYTES);
            world.nodes.push(SimNode {
                id: NodeId(id),
                disk,
                node: None,
                restarts: 0,
                io: Default::default(),
                durable: None,
                durable_state: None,
                touched: false,
                due: None,
                crash_at_write: false,
                drift_ppm: match world.options.clock_drift_ppm {
                    0 => 0,
                    max => drift.random_range(-max..=max),
                },
                paused_until: None,
                waiting: Vec::new(),
                started_at: Instant::ZERO,
            });
        }
        // Retention may remove every other copy of an entry before a
        // rotted one is repaired (a replica cannot yet retire part of a
        // segment to follow the others' retention), and a membership change
        // may move every intact copy out of the configuration (a leader
        // repairs only from members): no rot where either runs.
        let retained = world.options.log.retention_bytes.is_some();
        let moving = world.options.membership;
        if world.options.corruption && world.options.nodes >= 3 && !retained && !moving {
            let mut atlas = Rng::new(root.child(Stream::World, CHILD_ATLAS)).stream(Stream::World);
            world.corruptible = Some(NodeId(atlas.random_range(1..=world.options.nodes)));
        }
        for position in 0..world.nodes.len() {
            world.start(position);
        }
        world
    }

    /// The configuration node `id` starts with until its log names one:
    /// the founding voters on each of them, none on a spare.
    fn bootstrap(&self, id: NodeId) -> Configuration {
        if id.get() > self.options.nodes {
            return Configuration::default();
        }
        Configuration::simple(Voters::of(&(1..=self.options.nodes).collect::<Vec<_>>()))
    }

    /// The configuration a log's last configuration entry names (the
    /// bootstrap of `id` before any).
    fn configuration_of(&self, id: NodeId, config: &ConfigAt) -> Configuration {
        if config.data.is_empty() {
            return self.bootstrap(id);
        }
        Configuration::decode(&config.data).expect("logs hold valid configurations")
    }

    fn start(&mut self, position: usize) {
        let configuration = self.bootstrap(self.nodes[position].id);
        let node = &mut self.nodes[position];
        let found = node.disk.found_files();
        let recovered = state::recover(&found).expect("one copy of the state survives a crash");
        // A disk at rest holds what a crash would leave: what the checkers
        // recovered from its durable files is what a start recovers.
        let version = node.disk.durable_version();
        let files = match &node.durable {
            Some((v, files, _)) if *v == version && node.disk.at_rest() => {
                debug_assert_eq!(
                    Ok(files),
                    recovery::recover(&found).as_ref(),
                    "a disk at rest recovers as its durable files did"
                );
                files.clone()
            }
            _ => recovery::recover(&found).expect("a crash leaves a recoverable log"),
        };
        let notes = files.notes.clone();
        let log =
            Log::new(self.options.log.clone(), files, self.now).expect("a recovered log starts");
        drop(found);
        let seed =
            Rng::new(self.seed).child(Stream::Raft, CHILD_NODE + node.id.0 * 64 + node.restarts);
        let mut machine = Node::new(
            node.id,
            self.options.raft.clone(),
            configuration,
            recovered,
            log,
            seed,
            node.local(self.now),
        );
        // Only a disk the atlas lets rot needs reading back.
        machine.set_scrubbing(self.corruptible.is_some());
        if let (Some(policy), Some(watch)) = (self.options.gossip, self.watch.as_mut()) {
            // It gossips from its start, past the incarnation it last
            // persisted, and joins through the founding voters (the
            // addresses an operator would give it).
            let id = node.id;
            let local = node.local(self.now);
            let meta = Meta {
                addr: format!("10.0.0.{}:7000", id.get()),
                role: "storage".into(),
                tags: BTreeMap::new(),
            };
            let seed =
                Rng::new(self.seed).child(Stream::Gossip, CHILD_GOSSIP + id.0 * 64 + node.restarts);
            let gossip = Gossip::new(id, SIM_GOSSIP, watch.persisted(id), meta, seed, local)
                .expect("the simulator's gossip config and metadata are valid");
            machine.start_gossip(local, gossip, policy);
            let seeds: Vec<NodeId> = (1..=self.options.nodes)
                .map(NodeId)
                .filter(|&s| s != id)
                .collect();
            machine.join_gossip(local, &seeds);
            watch.started(self.now, id, machine.raft().configuration());
        }
        node.started_at = self.now;
        let mut line = format!("start {}", machine.summary());
        if !notes.is_empty() {
            line.push_str(&format!(" recovery {notes:?}"));
        }
        node.node = Some(machine);
        node.touched = true;
        let id = node.id;
        self.record(id, &line);
    }

    /// Adds one event to the trace hash (and to the trace, if kept). The
    /// line is hashed as it is formatted, without being built, unless the
    /// trace is kept.
    fn record(&mut self, node: NodeId, event: impl core::fmt::Display) {
        self.begin_line(node, event);
        self.end_line("");
    }

    /// Starts a trace line; `end_line` ends it. (A line may span an input
    /// to a node, without the input being formatted twice.)
    fn begin_line(&mut self, node: NodeId, event: impl core::fmt::Display) {
        let now = self.now;
        self.write_line(format_args!("{now} {node} {event}"));
    }

    /// Ends the line: the trace hash takes it whole (one buffer, reused,
    /// rather than every formatted fragment), and the trace keeps it if
    /// asked to.
    fn end_line(&mut self, rest: impl core::fmt::Display) {
        self.write_line(format_args!("{rest}"));
        self.hasher.update(self.line.as_bytes());
        self.hasher.update(b"\n");
        match &mut self.trace {
            Some(trace) => trace.push(std::mem::take(&mut self.line)),
            None => self.line.clear(),
        }
    }

    fn write_line(&mut self, text: core::fmt::Arguments<'_>) {
        write_line(&mut self.line, text);
    }

    /// A frequent trace line: the hash takes its fields, `words`, as
    /// little-endian bytes (formatting every line was a tenth of a run's
    /// time); its text is written only when the trace is kept.
    fn record_fields(&mut self, words: &[&[u64]], text: impl FnOnce(&mut String)) {
        // One update per line: the hasher's per-call cost dwarfs 8 bytes.
        let mut bytes = [0u8; LINE_WORDS_MAX * 8];
        let mut len = 0;
        for word in words.iter().flat_map(|part| part.iter()) {
            bytes[len..len + 8].copy_from_slice(&word.to_le_bytes());
            len += 8;
        }
        self.hasher.update(&bytes[..len]);
        if let Some(trace) = &mut self.trace {
            let mut line = String::new();
            text(&mut line);
            trace.push(line);
        }
    }

    /// A client's request arriving at a node (`LINE_CLIENT_RECV`, `node`
    /// the receiver) or a node's answer leaving it (`LINE_CLIENT_SEND`,
    /// `node` the sender): a frequent one hashed by its fields, a rare one
    /// by its text. The text reads `recv <wire> from <other>` or
    /// `send <wire> to <client>`.
    fn record_wire(&mut self, line: u64, node: NodeId, other: NodeId, wire: &Wire) {
        let now = self.now;
        let text = |out: &mut String| match (line, wire) {
            (LINE_CLIENT_RECV, _) => {
                write_line(out, format_args!("{now} {node} recv {wire} from {other}"));
            }
            (_, Wire::Reply { client, .. }) => {
                write_line(out, format_args!("{now} {node} send {wire} to {client}"));
            }
            _ => write_line(out, format_args!("{now} {node} send {wire} to {other}")),
        };
        match wire_words(wire) {
            Some(words) => {
                let head = [line, now.as_nanos(), node.0, other.0];
                self.record_fields(&[&head, &words], text);
            }
            None => {
                text(&mut self.line);
                self.end_line("");
            }
        }
    }

    /// Runs the safety phase, then the liveness phase.
    pub fn run(mut self) -> (Report, Vec<String>) {
        // A broken invariant (a panic inside a machine or a checker) is the
        // `invariant` checker's failure; the trace up to it is kept.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_phases()));
        let result = run.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            self.record(NodeId(0), format_args!("panic: {what}"));
            Err(Failure {
                checker: "invariant",
                what,
            })
        });
        let report = Report {
            seed: self.seed,
            trace_hash: self.hasher.digest(),
            events: self.events,
            end: self.now,
            result,
            failovers: self.failovers,
            deaths_of_running: self.watch.as_ref().map_or(0, |w| w.deaths_of_running),
            gossip_converged_in: self.watch.as_ref().and_then(|w| w.converged_in),
        };
        (report, self.trace.unwrap_or_default())
    }

    fn run_phases(&mut self) -> Result<(), Failure> {
        let safety_end = Instant::ZERO + self.options.safety;
        while self.now < safety_end {
            self.step(Some(safety_end))?;
        }
        self.heal_everything();
        let deadline = self.now + self.options.liveness;
        while self.now < deadline {
            if self.gossip_converged()? && self.settled() {
                return self.verify_consumers();
            }
            self.step(Some(deadline))?;
        }
        Err(Failure {
            checker: "liveness",
            what: format!(
                "no leader followed and caught up with by all within {}",
                self.options.liveness
            ),
        })
    }

    /// One event: the earliest of a packet, a timer and a fault.
    fn step(&mut self, until: Option<Instant>) -> Result<(), Failure> {
        self.drain()?;
        let packet = self.network.next_delivery();
        let now = self.now;
        let timer = self.nodes.iter().filter_map(|n| n.timer(now)).min();
        let resume = self.nodes.iter().filter_map(|n| n.paused_until).min();
        let fault = until
            .filter(|_| self.faulting())
            .and_then(|_| self.next_fault_at());
        let client = Some(self.workload.next_at());
        let disk = self
            .nodes
            .iter()
            .filter_map(|n| {
                let (at, _) = n.io.front()?;
                Some(n.paused_until.map_or(*at, |until| until.max(*at)).max(now))
            })
            .min();
        let next = [resume, packet, disk, timer, fault, client, until]
            .into_iter()
            .flatten()
            .min()
            .expect("something is always due");
        assert!(next >= self.now, "the world's time never goes backwards");
        self.now = next;
        self.events += 1;
        if resume == Some(next) {
            self.resume(next)?;
        } else if disk == Some(next) {
            self.complete_disk(next);
        } else if packet == Some(next) {
            // None: the packet was due on a link cut since it was sent.
            if let Some(packet) = self.network.poll_delivery(next) {
                self.deliver(next, packet.from, packet.to, packet.message)?;
            }
        } else if timer == Some(next) {
            let mut fired = Vec::new();
            for node in self.nodes.iter_mut() {
                if node.timer(next) != Some(next) {
                    continue;
                }
                let local = node.local(next);
                if let Some(machine) = node.node.as_mut() {
                    node.touched = true;
                    machine.handle_timeout(local);
                    fired.push(node.id);
                }
            }
            for id in fired {
                let node = self.nodes.iter().find(|n| n.id == id).expect("fired");
                let raft = node.node.as_ref().expect("running").raft();
                let summary = summary_words(raft);
                let text = self.trace.is_some().then(|| raft.summary().to_string());
                let head = [LINE_TIMEOUT, next.as_nanos(), id.0];
                self.record_fields(&[&head, &summary], |line| {
                    let summary = text.expect("formatted when kept");
                    write_line(line, format_args!("{next} {id} timeout {summary}"));
                });
            }
        } else if fault == Some(next) {
            self.inject_fault();
        } else if client == Some(next) {
            let sends = self.workload.tick(next);
            self.send_requests(next, sends);
        }
        self.drain()?;
        while matches!(self.script.front(), Some(Step { when: When::Election(n), .. }) if *n as usize <= self.elected.len())
        {
            self.run_script_step();
            self.drain()?;
        }
        self.check()
    }

    /// When the next fault is due: the seeded mix's next, or the script's
    /// next timed step (none while it waits for an election).
    fn next_fault_at(&self) -> Option<Instant> {
        if self.options.script.is_none() {
            return Some(self.next_fault);
        }
        match self.script.front()?.when {
            When::At(at) => Some((Instant::ZERO + at).max(self.now)),
            When::Election(_) => None,
        }
    }

    /// Resolves whom a script step means, now.
    fn resolve(&self, who: Who) -> Option<usize> {
        let running = |n: &&SimNode| n.node.is_some();
        match who {
            Who::Node(id) => self.nodes.iter().position(|n| n.id == id),
            Who::Leader => self
                .nodes
                .iter()
                .filter(running)
                .filter(|n| n.node.as_ref().is_some_and(|m| m.raft().is_leader()))
                .max_by_key(|n| n.node.as_ref().map(|m| m.raft().term()))
                .and_then(|n| self.nodes.iter().position(|m| m.id == n.id)),
            Who::Elected(n) => {
                let id = *self.elected.get((n as usize).checked_sub(1)?)?;
                self.nodes.iter().position(|m| m.id == id)
            }
            Who::Follower => {
                let leader = self.resolve(Who::Leader).map(|p| self.nodes[p].id);
                self.nodes
                    .iter()
                    .position(|n| n.node.is_some() && Some(n.id) != leader)
            }
        }
    }

    /// Fires the script's next step.
    fn run_script_step(&mut self) {
        if let Some(step) = self.script.pop_front() {
            self.run_action(step.action);
        }
    }

    /// Makes `action` happen now.
    fn run_action(&mut self, action: Action) {
        let all: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        match action {
            Action::Crash(who) => {
                if let Some(position) = self.resolve(who).filter(|&p| self.nodes[p].node.is_some())
                {
                    self.crash(position);
                }
            }
            Action::CrashBeforeSync(who) => {
                if let Some(position) = self.resolve(who).filter(|&p| self.nodes[p].node.is_some())
                {
                    self.nodes[position].crash_at_write = true;
                }
            }
            Action::Restart(who) => {
                if let Some(position) = self.resolve(who).filter(|&p| self.nodes[p].node.is_none())
                {
                    self.start(position);
                }
            }
            Action::Isolate(who) => {
                if let Some(position) = self.resolve(who) {
                    let id = self.nodes[position].id;
                    self.network.isolate(id, &all);
                    self.changed();
                    self.record(id, "isolated");
                }
            }
            Action::Partition(side) => {
                let left: Vec<NodeId> = side
                    .iter()
                    .filter_map(|&who| self.resolve(who))
                    .map(|p| self.nodes[p].id)
                    .collect();
                let right: Vec<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|id| !left.contains(id))
                    .collect();
                self.network.partition(&left, &right);
                self.changed();
                self.record(NodeId(0), format_args!("partition {left:?} from {right:?}"));
            }
            Action::Heal => {
                self.network.heal();
                self.changed();
                self.record(NodeId(0), "network healed");
            }
            Action::Transfer(who) => self.ask_leader(who, |to| Request::Transfer { to }),
            Action::AddLearner(who) => self.ask_leader(who, |node| {
                Request::ChangeMembership(Change::AddLearner(node))
            }),
            Action::Promote(who) => {
                self.ask_leader(who, |node| Request::ChangeMembership(Change::Promote(node)))
            }
            Action::Remove(who) => {
                self.ask_leader(who, |node| Request::ChangeMembership(Change::Remove(node)))
            }
            Action::Leave(who) => {
                if let Some(position) = self.resolve(who) {
                    let node = &mut self.nodes[position];
                    let now = node.local(self.now);
                    let id = node.id;
                    if let Some(machine) = node.node.as_mut() {
                        node.touched = true;
                        machine.leave_gossip(now);
                        self.record(id, "told to leave");
                    }
                }
            }
            Action::RestartAll => {
                for position in 0..self.nodes.len() {
                    if self.nodes[position].node.is_none() {
                        self.start(position);
                    }
                }
            }
        }
    }

    /// The operator sends the leader the request `ask` makes of the node
    /// `who` means (directly: the operator's link never fails).
    fn ask_leader(&mut self, who: Who, ask: impl FnOnce(NodeId) -> Request) {
        let leader = self.resolve(Who::Leader);
        let target = self.resolve(who).map(|p| self.nodes[p].id);
        if let (Some(position), Some(target)) = (leader, target) {
            let node = &mut self.nodes[position];
            let now = node.local(self.now);
            let id = node.id;
            if let Some(machine) = node.node.as_mut() {
                node.touched = true;
                let request = ask(target);
                if let (Some(watch), Request::ChangeMembership(change)) =
                    (&mut self.watch, &request)
                {
                    watch.asked(*change);
                }
                let line = format!(
                    "asked: {}",
                    Wire::Request {
                        client: ClientId(OPERATOR),
                        id: RequestId(0),
                        request: request.clone(),
                    }
                );
                machine.request(now, ClientId(OPERATOR), RequestId(0), request);
                self.record(id, &line);
            }
        }
    }

    /// The operator moves the membership one step, toward a node drawn at
    /// random: a learner is promoted, a stranger added as a learner, a
    /// voter removed while more than two remain. Where membership follows
    /// gossip, which adds and promotes by itself, the operator only
    /// removes: it tells a running node to leave (a removal by request
    /// alone would be undone, the node being alive), and asks the leader
    /// to remove a crashed one.
    fn change_membership(&mut self, position: usize) {
        let Some(leader) = self.resolve(Who::Leader) else {
            return;
        };
        let machine = self.nodes[leader].node.as_ref().expect("a running leader");
        let config = machine.raft().configuration();
        let node = self.nodes[position].id;
        let voters_left = !config.is_voter(node) || config.voters.0.len() > 2;
        if self.options.gossip.is_some() {
            let running = self.nodes[position].node.is_some();
            let action = match (running, config.is_member(node) && voters_left) {
                (true, true) => Action::Leave(Who::Node(node)),
                (false, true) => Action::Remove(Who::Node(node)),
                _ => return,
            };
            return self.run_action(action);
        }
        let action = if config.learners.contains(&node) {
            Action::Promote(Who::Node(node))
        } else if !config.is_member(node) {
            Action::AddLearner(Who::Node(node))
        } else if config.voters.0.len() > 2 {
            Action::Remove(Who::Node(node))
        } else {
            return;
        };
        self.run_action(action);
    }

    /// Media corruption, where the atlas allows it: one bit of a committed
    /// entry's frame on the corruptible node's disk flips, at rest, durably.
    /// Only entries the leader has committed are chosen, so a majority holds
    /// each; only the corruptible node's, so the others' copies are intact.
    fn corrupt(&mut self) {
        let Some(target) = self.corruptible else {
            return;
        };
        let Some(leader) = self.resolve(Who::Leader) else {
            return;
        };
        let commit = self.nodes[leader]
            .node
            .as_ref()
            .expect("running")
            .raft()
            .commit();
        let position = self
            .nodes
            .iter()
            .position(|n| n.id == target)
            .expect("a node");
        let log = match &self.nodes[position].node {
            Some(machine) => machine.raft().log(),
            None => self.durable_log(position),
        };
        let (first, last) = (log.first_index(), log.next_index().prev().min(commit));
        if first > last {
            return;
        }
        let index = LogIndex(self.rng.random_range(first.0..=last.0));
        let log = match &self.nodes[position].node {
            Some(machine) => machine.raft().log(),
            None => self.durable_log(position),
        };
        let Some((file, start, end)) = log.frame_range(index) else {
            return; // Its segment's index is not in memory: spared.
        };
        let disk = &self.nodes[position].disk;
        if disk
            .durable_file(file)
            .is_none_or(|bytes| (bytes.len() as u64) < end)
        {
            return; // Not durable yet: no rot at rest.
        }
        let byte = self.rng.random_range(start..end);
        let bit = self.rng.random_range(0..8u8);
        self.nodes[position].disk.flip_bit(file, byte, bit);
        self.nodes[position].touched = true;
        self.record(
            target,
            format_args!("disk rot in {index}: {file} byte {byte} bit {bit}"),
        );
    }

    /// Power loss at the node at `position`.
    fn crash(&mut self, position: usize) {
        self.nodes[position].paused_until = None;
        self.nodes[position].waiting.clear();
        let raft = self.nodes[position].node.as_ref().map(Node::raft);
        if let Some(raft) = raft.filter(|r| r.is_leader()) {
            let crashed = (self.now, raft.term(), raft.commit_offset());
            self.failover.get_or_insert(crashed);
        }
        let node = &mut self.nodes[position];
        node.node = None;
        node.io.clear(); // Operations not yet performed never happen.
        let report = node.disk.crash();
        node.restarts += 1;
        let id = node.id;
        if let Some(watch) = &mut self.watch {
            watch.crashed(self.now, id);
        }
        self.record(id, format_args!("crash {report:?}"));
    }

    /// Something changed that may excuse a member declared dead.
    fn changed(&mut self) {
        if let Some(watch) = &mut self.watch {
            watch.changed(self.now);
        }
    }

    fn faulting(&self) -> bool {
        self.now < Instant::ZERO + self.options.safety
    }

    /// The running machine of `id`, marked for the next check, with its
    /// clock's reading at `now`.
    fn node_mut(&mut self, id: NodeId, now: Instant) -> Option<(&mut Node, Instant)> {
        let node = self.nodes.iter_mut().find(|n| n.id == id)?;
        node.touched = true;
        let local = node.local(now);
        Some((node.node.as_mut()?, local))
    }

    /// Nodes whose pause is over take in what arrived meanwhile, in order.
    fn resume(&mut self, now: Instant) -> Result<(), Failure> {
        for position in 0..self.nodes.len() {
            let node = &mut self.nodes[position];
            if node.paused_until.is_none_or(|until| until > now) {
                continue;
            }
            node.paused_until = None;
            let (id, waiting) = (node.id, std::mem::take(&mut node.waiting));
            self.changed();
            self.record(
                id,
                format_args!("resumed with {} packets waiting", waiting.len()),
            );
            for (from, wire) in waiting {
                self.deliver(now, from, id, wire)?;
            }
        }
        Ok(())
    }

    /// Pauses the node at `position` (a stop-the-world collector, a stalled
    /// VM) for `pause`.
    fn pause(&mut self, position: usize, pause: Duration) {
        let node = &mut self.nodes[position];
        if node.node.is_none() || node.paused_until.is_some() {
            return;
        }
        node.paused_until = Some(self.now + pause);
        let id = node.id;
        self.changed();
        self.record(id, format_args!("paused for {pause}"));
    }

    /// Puts clients' requests on the network.
    fn send_requests(&mut self, now: Instant, sends: Vec<crate::workload::Send>) {
        for (from, to, client, id, request) in sends {
            let wire = Wire::Request {
                client,
                id,
                request,
            };
            self.network.send(now, from, to, wire);
        }
    }

    /// Delivers a packet to a node or a client.
    fn deliver(
        &mut self,
        now: Instant,
        from: NodeId,
        to: NodeId,
        wire: Wire,
    ) -> Result<(), Failure> {
        if let Some(node) = self
            .nodes
            .iter_mut()
            .find(|n| n.id == to && n.paused_until.is_some())
        {
            node.waiting.push((from, wire));
            return Ok(());
        }
        let from_client = matches!(wire, Wire::Reply { .. });
        let running = from_client || self.nodes.iter().any(|n| n.id == to && n.node.is_some());
        if running && !matches!(wire, Wire::Raft(_) | Wire::Gossip { .. }) {
            self.record_wire(LINE_CLIENT_RECV, to, from, &wire);
        }
        match wire {
            Wire::Raft(message) => {
                if let Message::VoteReply {
                    term,
                    granted: true,
                    pre_vote: true,
                } = message
                {
                    if self.node_mut(to, now).is_some() {
                        self.pre_votes.entry((to, term)).or_default().insert(from);
                    }
                }
                let tracing = self.trace.is_some();
                if let Some((node, local)) = self.node_mut(to, now) {
                    let words = message_words(&message);
                    let text = tracing.then(|| format!("recv {message} from {from}"));
                    node.handle(local, from, message);
                    let node = self.nodes.iter().find(|n| n.id == to).expect("running");
                    let raft = node.node.as_ref().expect("running").raft();
                    let summary = summary_words(raft);
                    let text = text.map(|text| format!("{text} {}", raft.summary()));
                    let head = [LINE_RECV, now.as_nanos(), to.0, from.0];
                    self.record_fields(&[&head, &words, &summary], |line| {
                        let text = text.expect("formatted when kept");
                        write_line(line, format_args!("{now} {to} {text}"));
                    });
                }
            }
            Wire::Gossip { bytes, stream } => {
                if let Some((node, local)) = self.node_mut(to, now) {
                    let read = node.handle_gossip(local, from, &bytes);
                    self.record_gossip(LINE_GOSSIP_RECV, to, from, &bytes, stream);
                    // Nodes send only what they can read, and the network
                    // does not corrupt: a frame refused is a bug.
                    read.map_err(|error| Failure {
                        checker: "gossip frames",
                        what: format!("{to} refused gossip from {from}: {error}"),
                    })?;
                }
            }
            Wire::Request {
                client,
                id,
                request,
            } => {
                if let Some((node, local)) = self.node_mut(to, now) {
                    node.request(local, client, id, request);
                }
            }
            Wire::Reply { client, id, reply } => {
                let sends = self.workload.on_reply(now, from, client, id, reply)?;
                self.send_requests(now, sends);
            }
        }
        Ok(())
    }

    /// Completes every disk operation due at `now`, in each node's order.
    fn complete_disk(&mut self, now: Instant) {
        for node in self.nodes.iter_mut().filter(|n| n.paused_until.is_none()) {
            let local = node.local(now);
            while node.io.front().is_some_and(|(at, _)| *at <= now) {
                node.touched = true;
                let (_, DiskRequest { io, op }) = node.io.pop_front().expect("checked");
                let result = node.disk.perform(&op);
                if let Err(error) = &result {
                    let line = format!("{} {} disk {op:?} failed: {error}", now, node.id);
                    self.hasher.update(line.as_bytes());
                    if let Some(trace) = &mut self.trace {
                        trace.push(line);
                    }
                }
                node.node
                    .as_mut()
                    .expect("a running node's operations")
                    .handle_disk(local, io, result);
            }
        }
    }

    /// Performs every node's outputs until all are quiet.
    fn drain(&mut self) -> Result<(), Failure> {
        loop {
            let mut busy = false;
            for position in 0..self.nodes.len() {
                while let Some(output) = self.nodes[position]
                    .node
                    .as_mut()
                    .and_then(Node::poll_output)
                {
                    busy = true;
                    self.on_output(position, output)?;
                }
            }
            if !busy {
                return Ok(());
            }
        }
    }

    fn on_output(&mut self, position: usize, output: NodeOutput) -> Result<(), Failure> {
        let id = self.nodes[position].id;
        let output = match output {
            NodeOutput::Raft(output) => output,
            NodeOutput::Reply {
                client,
                id: request,
                reply,
            } if client == ClientId(OPERATOR) => {
                let wire = Wire::Reply {
                    client,
                    id: request,
                    reply,
                };
                self.record(id, format_args!("told the operator: {wire}"));
                return Ok(());
            }
            NodeOutput::Reply {
                client,
                id: request,
                reply,
            } => {
                if let Reply::Produced { first, count } = reply {
                    self.check_on_quorum_disks(position, first, count)?;
                }
                let wire = Wire::Reply {
                    client,
                    id: request,
                    reply,
                };
                self.record_wire(LINE_CLIENT_SEND, id, client_address(client.get()), &wire);
                self.network
                    .send(self.now, id, client_address(client.get()), wire);
                return Ok(());
            }
            NodeOutput::Gossip(output) => return self.on_gossip(position, output),
        };
        match output {
            Output::Disk(request) if self.nodes[position].crash_at_write => {
                let write = matches!(request.op, DiskOp::Write { .. });
                let node = &mut self.nodes[position];
                node.io.push_back((self.now, request));
                if write {
                    for (_, request) in std::mem::take(&mut node.io) {
                        if !matches!(request.op, DiskOp::Sync { .. } | DiskOp::SyncDir) {
                            // Not reported: the node is losing power.
                            let _ = node.disk.perform(&request.op);
                        }
                    }
                    node.crash_at_write = false;
                    self.crash(position);
                }
            }
            Output::Disk(request) => {
                // Operations take time, in order: a sync is slow, the rest
                // quick. Until one completes, it has not happened.
                let latency = match request.op {
                    cairn_core::log::disk::DiskOp::Sync { .. }
                    | cairn_core::log::disk::DiskOp::SyncDir => {
                        self.rng.random_range(100_000..2_000_000)
                    }
                    _ => self.rng.random_range(5_000..50_000),
                };
                let node = &mut self.nodes[position];
                let after = node.io.back().map_or(self.now, |(at, _)| *at).max(self.now);
                node.io
                    .push_back((after + Duration::from_nanos(latency), request));
            }
            Output::Send(envelope) => {
                self.check_announced(position, &envelope)?;
                self.check_pre_voted(id, &envelope.message)?;
                let (message, to, now) = (&envelope.message, envelope.to, self.now);
                let head = [LINE_SEND, now.as_nanos(), id.0, to.0];
                self.record_fields(&[&head, &message_words(message)], |line| {
                    write_line(line, format_args!("{now} {id} send {message} to {to}"));
                });
                self.network
                    .send(self.now, id, envelope.to, Wire::Raft(envelope.message));
            }
            Output::BecameLeader { term } => {
                self.elected.push(id);
                self.record(id, format_args!("leader {term}"));
                let node = self.nodes[position].node.as_ref().expect("running");
                self.workload.check_leader_complete(node.raft(), term)?;
                if let Some(&other) = self.leaders.get(&term).filter(|&&other| other != id) {
                    let what = format!("{other} and {id} both lead {term}");
                    return Err(Failure {
                        checker: "one leader per term",
                        what,
                    });
                }
                self.leaders.insert(term, id);
            }
            Output::SteppedDown { term } => self.record(id, format_args!("stepped down in {term}")),
            Output::Committed { index, .. } => {
                let node = self.nodes[position].node.as_ref().expect("running");
                self.workload.committed(node.raft(), index)?;
                if node.raft().is_leader() {
                    let (term, offset) = (node.raft().term(), node.raft().commit_offset());
                    if let Some((at, crashed_term, crashed_offset)) = self.failover {
                        if term > crashed_term && offset > crashed_offset {
                            self.failovers.push(self.now.saturating_since(at));
                            self.failover = None;
                        }
                    }
                    self.check_commit_safe(position, index)?;
                }
            }
            Output::ReadReady { .. } | Output::ReadFailed { .. } => {}
            Output::Installed { last_index, .. } => self.record(
                id,
                format_args!("installed a snapshot through {last_index}"),
            ),
            Output::Truncated { after } => self.record(id, format_args!("truncated after {after}")),
            Output::Configured {
                index,
                configuration,
            } => {
                if let Some(watch) = &mut self.watch {
                    let machine = self.nodes[position].node.as_ref().expect("running");
                    let leads = machine.raft().is_leader();
                    watch.configured(self.now, id, leads, &configuration)?;
                }
                self.record(
                    id,
                    format_args!("configuration of {index}: {configuration}"),
                );
            }
            // Owners' reads are the verification's, at the end.
            Output::Read { .. } => {}
            Output::Damaged(damage) => self.record(id, format_args!("damaged {damage:?}")),
            Output::Stopped(error) => {
                return Err(Failure {
                    checker: "disk",
                    what: format!("{id} stopped: {error}"),
                })
            }
        }
        Ok(())
    }

    /// Acts on one of a node's gossip outputs: datagrams and exchanges go
    /// on the network, incarnations are persisted (at once: a small file
    /// synced before anything is sent), and views are held to the truth.
    fn on_gossip(&mut self, position: usize, output: GossipOutput) -> Result<(), Failure> {
        let id = self.nodes[position].id;
        match output {
            GossipOutput::Send { to, datagram } => {
                if datagram.len() > SIM_GOSSIP.datagram_bytes {
                    return Err(Failure {
                        checker: "gossip datagram budget",
                        what: format!(
                            "{id} sent {to} a datagram of {} bytes, over {}",
                            datagram.len(),
                            SIM_GOSSIP.datagram_bytes
                        ),
                    });
                }
                self.send_gossip(id, to, datagram.into(), false);
            }
            GossipOutput::SendState { to, frame } => self.send_gossip(id, to, frame.into(), true),
            GossipOutput::Persist { incarnation } => {
                let watch = self.watch.as_mut().expect("a gossiping world is watched");
                watch.persist(id, incarnation)?;
                self.record(id, format_args!("persist incarnation {incarnation}"));
            }
            GossipOutput::Member {
                member,
                status,
                was,
            } => {
                let was = was.map_or_else(|| "unknown".to_owned(), crate::gossip::show);
                let now = crate::gossip::show(status);
                self.record(id, format_args!("view {member} {now} (was {was})"));
                let truth = self.truth(id, member);
                let watch = self.watch.as_mut().expect("a gossiping world is watched");
                watch.observe(self.now, id, member, status, truth)?;
            }
            GossipOutput::Meta { .. } | GossipOutput::Event(_) => {}
        }
        Ok(())
    }

    fn send_gossip(&mut self, from: NodeId, to: NodeId, bytes: Bytes, stream: bool) {
        self.record_gossip(LINE_GOSSIP_SEND, from, to, &bytes, stream);
        self.network
            .send(self.now, from, to, Wire::Gossip { bytes, stream });
    }

    /// A gossip frame sent (`LINE_GOSSIP_SEND`, `node` the sender) or taken
    /// in (`LINE_GOSSIP_RECV`, `node` the receiver): hashed by its bytes.
    fn record_gossip(
        &mut self,
        line: u64,
        node: NodeId,
        other: NodeId,
        bytes: &[u8],
        stream: bool,
    ) {
        let now = self.now;
        let head = [
            line,
            now.as_nanos(),
            node.0,
            other.0,
            u64::from(stream),
            xxhash_rust::xxh3::xxh3_64(bytes),
        ];
        self.record_fields(&[&head], |out| {
            let (kind, carried) = crate::gossip::frame_parts(bytes, stream);
            let text = match line {
                LINE_GOSSIP_SEND => format!("send gossip {kind} to {other}{carried}"),
                _ => format!("recv gossip {kind} from {other}{carried}"),
            };
            write_line(out, format_args!("{now} {node} {text}"));
        });
    }

    /// What the world knows of `member` as `observer` declares something
    /// of it.
    fn truth(&self, observer: NodeId, member: NodeId) -> Truth {
        let running = self
            .nodes
            .iter()
            .find(|n| n.id == member && n.node.is_some() && n.paused_until.is_none());
        Truth {
            running_since: running.map(|n| n.started_at),
            left: running
                .and_then(|n| n.node.as_ref()?.gossip())
                .is_some_and(Gossip::has_left),
            member_reachable: self.reaches_majority(member),
            linked: self.network.healthy(observer, member)
                && self.network.healthy(member, observer),
        }
    }

    /// Whether `id` runs, unpaused, with working links both ways to a
    /// majority of the running nodes (itself included). A network losing
    /// more than one datagram in ten has no working links here: there a
    /// member's probes, the news of its suspicion and its refutations may
    /// all be lost until the shortest suspicion runs out (at 30%, 5 seeds
    /// in 10,000 saw it), and such a death is counted, not failed.
    fn reaches_majority(&self, id: NodeId) -> bool {
        if self.options.network.loss_ratio > 0.1 {
            return false;
        }
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.node.is_some() && n.paused_until.is_none())
            .map(|n| n.id)
            .collect();
        if !running.contains(&id) {
            return false;
        }
        let linked = running
            .iter()
            .filter(|&&other| {
                other == id || (self.network.healthy(id, other) && self.network.healthy(other, id))
            })
            .count();
        linked * 2 > running.len()
    }

    /// The log a node would recover if it crashed now, losing every
    /// unsynced change; recovered again only when the disk's durable
    /// contents changed.
    fn durable_log(&mut self, position: usize) -> &Log {
        let node = &mut self.nodes[position];
        let version = node.disk.durable_version();
        if node.durable.as_ref().is_none_or(|(v, _, _)| *v != version) {
            let durable = node.disk.durable_files();
            let files =
                recovery::recover(&durable.found()).expect("a crash leaves a recoverable log");
            let log = Log::new(self.options.log.clone(), files.clone(), self.now)
                .expect("a recovered log starts");
            node.durable = Some((version, files, log));
        }
        &node.durable.as_ref().expect("just set").2
    }

    /// The last entry a crash would leave in the node's log now, and
    /// whether that log would hold `index` in `term`. While what a crash
    /// would leave is a prefix of the running node's log, this asks the
    /// disk which of its frames are durable (a binary search); otherwise
    /// it recovers the durable files.
    fn durable_last(
        &mut self,
        position: usize,
        index: LogIndex,
        term: Term,
    ) -> (LastEntry, bool, ConfigAt) {
        let node = &self.nodes[position];
        if let Some(machine) = node.node.as_ref().filter(|_| node.durable_is_prefix()) {
            let log = machine.raft().log();
            let durable = |i: LogIndex| node.frame_durable(log, i);
            let (mut low, mut high) = (log.first_index().prev(), log.next_index().prev());
            // Durable entries are a prefix, and the entries not yet durable
            // are few and recent: gallop down from the end to bracket the
            // boundary, then search within the bracket.
            let mut step = 1;
            while low < high {
                let probe = LogIndex(high.0.saturating_sub(step).max(low.0));
                if durable(high) {
                    low = high;
                } else if probe == low || durable(probe) {
                    low = probe;
                    high = high.prev();
                    break;
                } else {
                    high = probe.prev();
                    step *= 2;
                }
            }
            while low < high {
                let middle = LogIndex(low.0 + (high.0 - low.0).div_ceil(2));
                if durable(middle) {
                    low = middle;
                } else {
                    high = middle.prev();
                }
            }
            if let (Some(last_term), Some(config)) = (log.term(low), log.config_at(low)) {
                let last = LastEntry {
                    term: last_term,
                    index: low,
                };
                return (last, holds_entry(log, low, index, term), config.clone());
            }
        }
        let log = self.durable_log(position);
        let last = LastEntry {
            term: log.last_term(),
            index: log.next_index().prev(),
        };
        let config = log.latest_config().clone();
        (last, holds_entry(log, last.index, index, term), config)
    }

    /// Whether a crash now would leave entry `index` in the node's log (or
    /// leave it retained away, after it was committed): one frame asked of
    /// the disk while what a crash leaves is a prefix of the log.
    fn durable_holds_index(&mut self, position: usize, index: LogIndex) -> bool {
        let node = &self.nodes[position];
        if let Some(machine) = node.node.as_ref().filter(|_| node.durable_is_prefix()) {
            let log = machine.raft().log();
            if index >= log.next_index() {
                return false;
            }
            if index < log.first_index() {
                return true;
            }
            if log.term(index).is_some() {
                return node.frame_durable(log, index);
            }
        }
        self.durable_log(position).next_index() > index
    }

    /// Whether a crash now would leave the record at `offset` in the node's
    /// log (or leave it retained away, after it was committed).
    fn durable_holds_offset(&mut self, position: usize, offset: cairn_core::ids::Offset) -> bool {
        let node = &self.nodes[position];
        if let Some(machine) = node.node.as_ref().filter(|_| node.durable_is_prefix()) {
            let log = machine.raft().log();
            if offset >= log.next_offset() {
                return false;
            }
            if offset < log.first_offset() {
                return true;
            }
            if let Some(index) = log.index_of_offset(offset) {
                return node.frame_durable(log, index);
            }
        }
        self.durable_log(position).next_offset() > offset
    }

    /// Every acknowledged record is on a majority's synced disks at the
    /// moment of its acknowledgement (or retained away after commit). The
    /// records' bytes are held to the ledger at the end, when every node's
    /// committed records are read back.
    ///
    /// The quorum is of the configuration the acknowledging leader counts
    /// in now (its last, in effect once appended), or of the one it had
    /// committed: an entry committed under the committed configuration may
    /// be acknowledged later, when a change is under way, and one committed
    /// by a majority of a new configuration is safe though the old one has
    /// no majority of it yet (any majorities of the two meet, §4.1).
    fn check_on_quorum_disks(
        &mut self,
        leader: usize,
        first: cairn_core::ids::Offset,
        count: u32,
    ) -> Result<(), Failure> {
        let last = first.plus(u64::from(count) - 1);
        let raft = self.nodes[leader].node.as_ref().expect("running").raft();
        let at = raft
            .log()
            .config_at(raft.commit())
            .cloned()
            .unwrap_or_default();
        let configs = [
            self.configuration_of(self.nodes[leader].id, &at),
            raft.configuration().clone(),
        ];
        let mut holders: Vec<NodeId> = Vec::new();
        for position in 0..self.nodes.len() {
            if self.durable_holds_offset(position, last) {
                holders.push(self.nodes[position].id);
            }
        }
        let held_by_majority = |config: &Configuration| {
            let holding = holders.iter().filter(|&&id| config.is_voter(id)).count();
            holding * 2 > config.voters.0.len()
        };
        if !configs.iter().any(held_by_majority) {
            let voters = &configs[1].voters.0;
            return Err(Failure {
                checker: "acked on a quorum's disks",
                what: format!(
                    "records {first} to {last} acked with synced copies on {holders:?} only, voters {voters:?}"
                ),
            });
        }
        Ok(())
    }

    /// Raft §5.4: a leader commits an entry only once no node could be
    /// elected without it. A node could win if a majority would find its
    /// log (as it is, or as a crash would leave it) at least as up to date
    /// as theirs after a crash; every such log must hold the entry. This
    /// catches an unsafe commit when it happens, not only when a later
    /// leader overwrites it (Figure 8).
    fn check_commit_safe(
        &mut self,
        leader: usize,
        index: cairn_core::ids::LogIndex,
    ) -> Result<(), Failure> {
        let raft = self.nodes[leader].node.as_ref().expect("running").raft();
        let Some(term) = raft.log().term(index) else {
            return Ok(());
        };
        // Each node's log as it is (if running) and as a crash would leave
        // it: its last entry, whether it holds the committed entry, and the
        // configuration it would count votes in (its log's last).
        let nodes = self.nodes.len();
        let mut versions: Vec<(NodeId, LastEntry, bool, Configuration)> =
            Vec::with_capacity(2 * nodes);
        let mut durable: Vec<(NodeId, LastEntry)> = Vec::with_capacity(nodes);
        for position in 0..self.nodes.len() {
            let (last, holds, config) = self.durable_last(position, index, term);
            let id = self.nodes[position].id;
            durable.push((id, last));
            versions.push((id, last, holds, self.configuration_of(id, &config)));
            if let Some(machine) = &self.nodes[position].node {
                let log = machine.raft().log();
                let current = LastEntry {
                    term: log.last_term(),
                    index: log.next_index().prev(),
                };
                versions.push((
                    id,
                    current,
                    holds_entry(log, log.next_index().prev(), index, term),
                    machine.raft().configuration().clone(),
                ));
            }
        }
        for (id, candidate, holds, config) in versions {
            let voters = durable
                .iter()
                .filter(|(voter, v)| {
                    config.is_voter(*voter) && candidate.at_least_as_up_to_date_as(v)
                })
                .count();
            if config.is_voter(id) && voters * 2 > config.voters.0.len() && !holds {
                return Err(Failure {
                    checker: "commits are safe",
                    what: format!(
                        "{} committed {index} in {term}; {id} could be elected without it \
                         (last {}/{}), in [{config}], by {}",
                        self.nodes[leader].id,
                        candidate.term,
                        candidate.index,
                        durable
                            .iter()
                            .filter(|(voter, v)| {
                                config.is_voter(*voter) && candidate.at_least_as_up_to_date_as(v)
                            })
                            .map(|(v, last)| format!("{v} (durable {}/{})", last.term, last.index))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Thesis §9.6: a node asks for votes in a term only after a majority
    /// granted it a pre-vote for that term (itself included), so a node
    /// cut off never raises its term and deposes no one when it returns.
    fn check_pre_voted(&self, id: NodeId, message: &Message) -> Result<(), Failure> {
        let Message::VoteRequest {
            term,
            pre_vote: false,
            transfer: false,
            ..
        } = *message
        else {
            return Ok(());
        };
        let Some(node) = self.nodes.iter().find(|n| n.id == id) else {
            return Ok(());
        };
        let config = node.node.as_ref().expect("sending").raft().configuration();
        let granted = self.pre_votes.get(&(id, term)).map_or(0, |g| {
            g.iter().filter(|&&voter| config.is_voter(voter)).count()
        }) + 1;
        if granted * 2 > config.voters.0.len() {
            return Ok(());
        }
        Err(Failure {
            checker: "votes follow pre-votes",
            what: format!("{id} asked for votes in {term} with {granted} pre-votes"),
        })
    }

    /// RA2: nothing leaves a node before the term (and, for a granted vote,
    /// the vote) it announces is on its disk durably — checked against what
    /// a crash that lost every unsynced change would leave.
    fn check_announced(&mut self, position: usize, envelope: &Envelope) -> Result<(), Failure> {
        let needed_vote = match envelope.message {
            // Pre-vote traffic carries a term nobody has taken yet.
            Message::VoteRequest { pre_vote: true, .. }
            | Message::VoteReply { pre_vote: true, .. } => return Ok(()),
            Message::VoteReply { granted: true, .. } => Some(envelope.to),
            _ => None,
        };
        if let Message::AppendReply {
            term,
            result: AppendResult::Stored { through },
            ..
        } = envelope.message
        {
            if !self.durable_holds_index(position, through) {
                let (durable, _, _) = self.durable_last(position, through, term);
                let what = format!(
                    "{} said it stores {through} with its disk holding up to {}",
                    self.nodes[position].id, durable.index
                );
                return Err(Failure {
                    checker: "acked before synced",
                    what,
                });
            }
        }
        let durable = self.nodes[position].durable_state();
        let term = envelope.message.term();
        let covered = durable.term > term
            || (durable.term == term
                && needed_vote.is_none_or(|vote| durable.voted_for == Some(vote)));
        if covered {
            return Ok(());
        }
        let what = format!(
            "{} sent {} to {} with only {durable:?} durable",
            self.nodes[position].id, envelope.message, envelope.to
        );
        Err(Failure {
            checker: "sent before synced",
            what,
        })
    }

    /// Every machine that took an input in this step checks its
    /// invariants (the others have not changed since their last check).
    fn check(&mut self) -> Result<(), Failure> {
        for node in self.nodes.iter_mut().filter(|n| n.touched) {
            node.touched = false;
            node.due = None;
            if let Some(machine) = &node.node {
                machine.check_invariants();
                node.due = node.deadline(machine);
            }
        }
        Ok(())
    }

    /// One fault, drawn from the seed: crash a node, restart one, cut or
    /// heal the network.
    fn inject_fault(&mut self) {
        if self.options.script.is_some() {
            return self.run_script_step();
        }
        let interval = self.options.fault_interval.as_nanos();
        self.next_fault =
            self.now + Duration::from_nanos(self.rng.random_range(interval / 2..interval * 3 / 2));
        let position = self.rng.random_range(0..self.nodes.len());
        let id = self.nodes[position].id;
        let all: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let other = all[self.rng.random_range(0..all.len())];
        // Membership changes are a tenth fault, drawn only where asked for,
        // so that other seeds keep their draws.
        let kinds = 9 + u32::from(self.options.membership) + u32::from(self.options.corruption);
        let mut kind = self.rng.random_range(0..kinds);
        if kind == 9 && !self.options.membership {
            kind = 10;
        }
        match kind {
            0 if self.nodes[position].node.is_some() => self.crash(position),
            1 if self.nodes[position].node.is_none() => {
                self.start(position);
            }
            2 => {
                self.network.isolate(id, &all);
                self.changed();
                self.record(id, "isolated");
            }
            3 if other != id => {
                // LV1-like: a node that can send but not hear one peer.
                self.network.cut_one_way(other, id);
                self.changed();
                self.record(id, format_args!("deaf to {other}"));
            }
            4 => self.partition_with_bridge(position),
            6 => {
                let pause = Duration::from_millis(self.rng.random_range(50..1500));
                self.pause(position, pause);
            }
            7 => self.run_action(Action::Transfer(Who::Node(other))),
            9 => self.change_membership(position),
            10 => self.corrupt(),
            5 if other != id => {
                let delay = Duration::from_millis(self.rng.random_range(50..500));
                self.network.clog(id, other, delay);
                self.changed();
                self.record(id, format_args!("link to {other} clogged by {delay}"));
            }
            _ => {
                self.network.heal();
                self.changed();
                self.record(id, "network healed");
            }
        }
    }

    /// Splits the others into two sides that cannot hear each other, with
    /// the node at `position` connected to both (a bridge).
    fn partition_with_bridge(&mut self, position: usize) {
        let bridge = self.nodes[position].id;
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for node in self.nodes.iter().filter(|n| n.id != bridge) {
            if self.rng.random_bool(0.5) {
                left.push(node.id);
            } else {
                right.push(node.id);
            }
        }
        self.network.partition(&left, &right);
        self.changed();
        self.record(bridge, format_args!("bridges {left:?} and {right:?}"));
    }

    fn heal_everything(&mut self) {
        self.network.heal();
        self.workload.stop_producing();
        for position in 0..self.nodes.len() {
            if self.nodes[position].node.is_none() {
                self.start(position);
            }
        }
        self.scrubs_at_heal = self
            .nodes
            .iter()
            .map(|n| n.node.as_ref().map_or(0, Node::scrub_rounds))
            .collect();
        if let Some(watch) = &mut self.watch {
            watch.healed(self.now);
        }
        self.record(NodeId(0), "liveness phase: healed");
    }

    /// Whether every running node's gossip holds every other live (or
    /// left), where nodes gossip; an error once the bound after the heal
    /// has passed without it.
    fn gossip_converged(&mut self) -> Result<bool, Failure> {
        let Some(watch) = &mut self.watch else {
            return Ok(true);
        };
        let running: Vec<(NodeId, bool)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let gossip = n.node.as_ref()?.gossip()?;
                Some((n.id, gossip.has_left()))
            })
            .collect();
        let nodes = &self.nodes;
        watch.converged(self.now, &running, |observer, member| {
            let node = nodes.iter().find(|n| n.id == observer)?;
            node.node.as_ref()?.gossip()?.status(member)
        })
    }

    /// Whether one node leads and every other follows it in its term with
    /// all of its log committed, and every producer has been answered.
    fn settled(&self) -> bool {
        let running: Vec<&Raft> = self
            .nodes
            .iter()
            .filter_map(|n| Some(n.node.as_ref()?.raft()))
            .collect();
        let Some(lead) = running.iter().find(|raft| raft.is_leader()) else {
            return false;
        };
        let (term, last) = (lead.term(), lead.log().next_index().prev());
        let members = lead.configuration();
        // Where disks may rot, every member has read its whole log back
        // since the heal (a round begun after it has ended) and repaired
        // what it found damaged: what rotted at rest is found.
        let rot = self.corruptible.is_some();
        let scrubbed = !rot
            || self
                .nodes
                .iter()
                .zip(&self.scrubs_at_heal)
                .all(|(n, &at_heal)| {
                    n.node.as_ref().is_none_or(|machine| {
                        !members.is_member(n.id)
                            || (machine.scrub_rounds() > at_heal + 1
                                && machine.raft().log().damaged().next().is_none())
                    })
                });
        if !scrubbed {
            return false;
        }
        let running = running.iter().filter(|raft| members.is_member(raft.id()));
        self.workload.quiet() && running.into_iter().all(|raft| {
            raft.term() == term
                && raft.commit() == last
                && raft.log().next_index().prev() == last
                && (raft.is_leader()
                    || matches!(raft.role(), Role::Follower { leader: Some(l) } if *l == lead.id()))
        })
    }

    /// Reads every committed record from every node, as a consumer would,
    /// and holds it to the workload's ledger.
    /// Nodes outside the leader's configuration (removed, or never added)
    /// are not held to it.
    fn verify_consumers(&mut self) -> Result<(), Failure> {
        // Every log is read whole now, and written no more: reads may share
        // the disks' bytes.
        for node in &mut self.nodes {
            node.disk.freeze();
        }
        let leader = self.resolve(Who::Leader).expect("settled under a leader");
        let leader = self.nodes[leader].node.as_ref().expect("running");
        let members = leader.raft().configuration().clone();
        for position in 0..self.nodes.len() {
            let id = self.nodes[position].id;
            let Some(node) = self.nodes[position].node.as_ref() else {
                continue;
            };
            if !members.is_member(id) {
                continue;
            }
            let (first, end) = (
                node.raft().log().first_offset(),
                node.raft().commit_offset(),
            );
            let count = usize::try_from(end.0.saturating_sub(first.0)).unwrap_or(0);
            let mut records = Vec::with_capacity(count);
            let mut next = first;
            while next < end {
                let (batch, after) = self.consume_now(position, next)?;
                if batch.is_empty() {
                    return Err(Failure {
                        checker: "acked records readable",
                        what: format!("{id} returned nothing at {next}, committed up to {end}"),
                    });
                }
                records.extend(batch);
                next = after;
            }
            self.workload.check_consumed(id, first, end, &records)?;
        }
        Ok(())
    }

    /// A consume at the node at `position` from `from`, its disk answering
    /// at once (the run is over; only the answer matters).
    fn consume_now(
        &mut self,
        position: usize,
        from: cairn_core::ids::Offset,
    ) -> Result<
        (
            Vec<(cairn_core::ids::Offset, bytes::Bytes)>,
            cairn_core::ids::Offset,
        ),
        Failure,
    > {
        let node = &mut self.nodes[position];
        let now = node.local(self.now);
        let machine = node.node.as_mut().expect("running");
        let request = Request::Consume {
            from,
            max_records: 1024,
            max_bytes: 1 << 20,
        };
        let asked = RequestId(u64::MAX);
        machine.request(now, ClientId(u64::MAX), asked, request);
        // Earlier operations first, in order; then whatever the read asks.
        while let Some((_, request)) = node.io.pop_front() {
            let result = node.disk.perform(&request.op);
            machine.handle_disk(now, request.io, result);
        }
        let failed = |what: String| Failure {
            checker: "acked records readable",
            what,
        };
        loop {
            match machine.poll_output() {
                Some(NodeOutput::Raft(Output::Disk(request))) => {
                    let result = node.disk.perform(&request.op);
                    machine.handle_disk(now, request.io, result);
                }
                Some(NodeOutput::Reply { id, reply, .. }) if id == asked => {
                    return match reply {
                        Reply::Records { records, next } => Ok((records, next)),
                        other => Err(failed(format!(
                            "{} answered a consume with {other:?}",
                            node.id
                        ))),
                    }
                }
                Some(_) => {}
                None => return Err(failed(format!("{} never answered a consume", node.id))),
            }
        }
    }
}

/// Runs `seed` with its swarm options.
pub fn run_seed(seed: u64, trace: bool) -> (Report, Vec<String>) {
    World::new(seed, WorldOptions::swarm(seed), trace).run()
}

/// Whether `log`, up to its entry `last`, holds entry `index` of `term`
/// (or retained it away: only committed entries are).
fn holds_entry(log: &Log, last: LogIndex, index: LogIndex, term: Term) -> bool {
    index < log.first_index() || (index <= last && log.term(index).is_none_or(|t| t == term))
}

/// Adds `text` to the line being built.
fn write_line(line: &mut String, text: core::fmt::Arguments<'_>) {
    use core::fmt::Write as _;
    line.write_fmt(text).expect("a String takes any text");
}

/// The most fields a hashed line has (a receipt: its head, the message,
/// the receiver's summary).
const LINE_WORDS_MAX: usize = 16;

/// Trace lines hashed from their fields: a message sent, a message taken
/// in, a timer fired, a client's request taken in and its answer sent
/// (nearly every line of a run).
const LINE_SEND: u64 = 1;
const LINE_RECV: u64 = 2;
const LINE_TIMEOUT: u64 = 3;
const LINE_CLIENT_RECV: u64 = 4;
const LINE_CLIENT_SEND: u64 = 5;
const LINE_GOSSIP_SEND: u64 = 6;
const LINE_GOSSIP_RECV: u64 = 7;

/// The fields of a frequent client line, for the trace hash: produces,
/// consumes, follows and reads, and their answers; `None` for the rest
/// (hashed by their text, as rare as they are).
fn wire_words(wire: &Wire) -> Option<[u64; 5]> {
    let none = u64::MAX;
    Some(match wire {
        Wire::Raft(_) | Wire::Gossip { .. } => return None,
        Wire::Request { id, request, .. } => match request {
            Request::Produce { records, stamp } => [
                1,
                id.0,
                records.len() as u64,
                stamp.map_or(none, |s| s.producer),
                stamp.map_or(none, |s| s.sequence),
            ],
            Request::Consume { from, .. } => [2, id.0, from.0, 0, 0],
            Request::Read { from, .. } => [3, id.0, from.0, 0, 0],
            Request::Follow { from, .. } => [4, id.0, from.0, 0, 0],
            _ => return None,
        },
        Wire::Reply { id, reply, .. } => match reply {
            Reply::Produced { first, count } => [5, id.0, first.0, u64::from(*count), 0],
            Reply::Records { records, next } => [6, id.0, records.len() as u64, next.0, 0],
            _ => return None,
        },
    })
}

/// What a Raft message's trace line shows (`Message`'s Display), as the
/// trace hash takes it: numbers, not text.
fn message_words(message: &Message) -> [u64; 7] {
    let flag = u64::from;
    match *message {
        Message::VoteRequest {
            term,
            last_term,
            last_index,
            pre_vote,
            transfer,
        } => [
            1,
            term.0,
            last_term.0,
            last_index.0,
            flag(pre_vote),
            flag(transfer),
            0,
        ],
        Message::VoteReply {
            term,
            granted,
            pre_vote,
        } => [2, term.0, flag(granted), flag(pre_vote), 0, 0, 0],
        Message::Append {
            term,
            prev_index,
            prev_term,
            commit,
            ref entries,
            round,
        } => [
            3,
            term.0,
            prev_index.0,
            prev_term.0,
            commit.0,
            entries.len() as u64,
            round,
        ],
        Message::AppendReply {
            term,
            round,
            result: AppendResult::Stored { through },
        } => [4, term.0, round, through.0, 0, 0, 0],
        Message::AppendReply {
            term,
            round,
            result: AppendResult::Refused { prev, hint },
        } => {
            let conflict = hint.conflict_term.map_or(u64::MAX, |t| t.0);
            [5, term.0, round, prev.0, conflict, hint.conflict_index.0, 0]
        }
        Message::TimeoutNow { term } => [6, term.0, 0, 0, 0, 0, 0],
        Message::Snapshot {
            term,
            last_index,
            last_term,
            next_offset,
            config_index,
            ..
        } => [
            7,
            term.0,
            last_index.0,
            last_term.0,
            next_offset.0,
            config_index.0,
            0,
        ],
    }
}

/// A Raft's summary (`Raft::summary`, the same values its text shows), as
/// the trace hash takes it.
fn summary_words(raft: &Raft) -> [u64; 5] {
    let summary = raft.summary();
    let (role, who) = match summary.role {
        RoleSummary::Follower(leader) => (1, leader.map_or(0, |l| l.0 + 1)),
        RoleSummary::PreCandidate(granted) => (2, granted as u64),
        RoleSummary::Candidate(granted) => (3, granted as u64),
        RoleSummary::Leader => (4, 0),
    };
    [summary.term.0, role, who, summary.last.0, summary.commit.0]
}
