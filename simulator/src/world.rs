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
//! Checkers run outside the nodes after every step: one leader per term,
//! nothing sent before the state it announces is durable, and every
//! machine's own invariants.
//!
//! So far the nodes run Raft's elections over its state file; the log and
//! replication join next.

use std::collections::BTreeMap;
use std::hash::Hasher;

use cairn_core::config::LogConfig;
use cairn_core::ids::{LogIndex, NodeId, Term};
use cairn_core::log::disk::{DiskRequest, FoundFile};
use cairn_core::log::machine::Log;
use cairn_core::log::recovery;
use cairn_core::raft::machine::{Output, Raft, RaftConfig, Role};
use cairn_core::raft::message::AppendResult;
use cairn_core::raft::message::{Envelope, Message};
use cairn_core::raft::quorum::{Configuration, Voters};
use cairn_core::raft::state;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::disk::{DiskFaults, SimDisk};
use crate::network::{Network, NetworkOptions};
use crate::workload::{Workload, WorkloadOptions};

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
}

impl WorldOptions {
    /// The fault mix for `seed`: each seed draws its own size and its own
    /// intensity of every fault (swarm testing).
    pub fn swarm(seed: u64) -> WorldOptions {
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
            raft: RaftConfig::default(),
            log: {
                let segment_bytes = [4096, 16 * 1024, 64 * 1024][rng.random_range(0..3)];
                LogConfig {
                    segment_bytes,
                    retention_bytes: [None, Some(4 * segment_bytes)][rng.random_range(0..2)],
                    ..LogConfig::default()
                }
            },
            workload: WorkloadOptions {
                interval: Duration::from_millis([5, 20, 100][rng.random_range(0..3)]),
                batch_max: [1, 4, 16][rng.random_range(0..3)],
            },
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
    /// Hash of every trace line, in order: equal runs have equal hashes.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub end: Instant,
    /// `Ok` or the first failure.
    pub result: Result<(), Failure>,
}

struct SimNode {
    id: NodeId,
    disk: SimDisk,
    raft: Option<Raft>,
    restarts: u64,
    /// Disk operations waiting, in order, each with when it completes.
    io: std::collections::VecDeque<(Instant, DiskRequest)>,
    /// The log its disk would recover now, and the disk's durable version
    /// it was recovered at.
    durable: Option<(u64, Log)>,
    /// Whether its machine took an input since the last check.
    touched: bool,
}

/// A scenario in progress.
pub struct World {
    seed: u64,
    options: WorldOptions,
    now: Instant,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    network: Network<Message>,
    next_fault: Instant,
    leaders: BTreeMap<Term, NodeId>,
    workload: Workload,
    hasher: fnv::FnvHasher,
    trace: Option<Vec<String>>,
    events: u64,
}

/// Node seeds, disk seeds and the network's seed are drawn as children of
/// the scenario's seed, so that none of them depends on another's draws.
const CHILD_NETWORK: u64 = 0;
const CHILD_NODE: u64 = 1_000;
const CHILD_DISK: u64 = 2_000;

impl World {
    /// A world for `seed`; with `trace`, every event is also kept as a line.
    pub fn new(seed: u64, options: WorldOptions, trace: bool) -> World {
        let root = Rng::new(seed);
        let voters: Vec<u64> = (1..=options.nodes).collect();
        let mut world = World {
            seed,
            now: Instant::ZERO,
            rng: root.stream(Stream::World),
            nodes: Vec::new(),
            network: Network::new(root.child(Stream::World, CHILD_NETWORK), options.network),
            next_fault: Instant::ZERO + options.fault_interval,
            leaders: BTreeMap::new(),
            workload: Workload::new(options.workload.clone(), seed),
            hasher: fnv::FnvHasher::default(),
            trace: trace.then(Vec::new),
            events: 0,
            options,
        };
        for &id in &voters {
            let disk = SimDisk::new(
                root.child(Stream::Disk, CHILD_DISK + id),
                DiskFaults::default(),
            );
            world.nodes.push(SimNode {
                id: NodeId(id),
                disk,
                raft: None,
                restarts: 0,
                io: Default::default(),
                durable: None,
                touched: false,
            });
        }
        for position in 0..world.nodes.len() {
            world.start(position);
        }
        world
    }

    fn configuration(&self) -> Configuration {
        Configuration::simple(Voters::of(&(1..=self.options.nodes).collect::<Vec<_>>()))
    }

    fn start(&mut self, position: usize) {
        let configuration = self.configuration();
        let node = &mut self.nodes[position];
        let found = node.disk.found_files();
        let recovered = state::recover(&found).expect("one copy of the state survives a crash");
        let log = recovery::recover(&found)
            .and_then(|files| Log::new(self.options.log.clone(), files, self.now))
            .expect("a crash leaves a recoverable log");
        drop(found);
        let seed =
            Rng::new(self.seed).child(Stream::Raft, CHILD_NODE + node.id.0 * 64 + node.restarts);
        let raft = Raft::new(
            node.id,
            self.options.raft.clone(),
            configuration,
            recovered,
            log,
            seed,
            self.now,
        );
        let line = format!("start {}", raft.summary());
        node.raft = Some(raft);
        node.touched = true;
        let id = node.id;
        self.record(id, &line);
    }

    fn record(&mut self, node: NodeId, event: &str) {
        let line = format!("{} {} {}", self.now, node, event);
        self.hasher.write(line.as_bytes());
        self.hasher.write_u8(b'\n');
        if let Some(trace) = &mut self.trace {
            trace.push(line);
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
            self.record(NodeId(0), &format!("panic: {what}"));
            Err(Failure {
                checker: "invariant",
                what,
            })
        });
        let report = Report {
            seed: self.seed,
            trace_hash: self.hasher.finish(),
            events: self.events,
            end: self.now,
            result,
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
            if self.settled() {
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
        let timer = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref()?.poll_timeout())
            .min();
        let fault = until.filter(|_| self.faulting()).map(|_| self.next_fault);
        let client = Some(self.workload.next_at());
        let disk = self
            .nodes
            .iter()
            .filter_map(|n| n.io.front().map(|(at, _)| *at))
            .min();
        let next = [packet, disk, timer, fault, client, until]
            .into_iter()
            .flatten()
            .min()
            .expect("something is always due");
        self.now = next;
        self.events += 1;
        if disk == Some(next) {
            self.complete_disk(next);
        } else if packet == Some(next) {
            // None: the packet was due on a link cut since it was sent.
            if let Some(packet) = self.network.poll_delivery(next) {
                let line = format!("recv {} from {}", packet.message, packet.from);
                if let Some(raft) = self.raft_mut(packet.to) {
                    raft.handle(next, packet.from, packet.message);
                    let line = format!("{line} {}", raft.summary());
                    self.record(packet.to, &line);
                }
            }
        } else if timer == Some(next) {
            let mut fired = Vec::new();
            for node in self.nodes.iter_mut() {
                let due = node
                    .raft
                    .as_mut()
                    .filter(|r| r.poll_timeout() == Some(next));
                if let Some(raft) = due {
                    node.touched = true;
                    raft.handle_timeout(next);
                    fired.push((node.id, format!("timeout {}", raft.summary())));
                }
            }
            for (id, line) in fired {
                self.record(id, &line);
            }
        } else if fault == Some(next) {
            self.inject_fault();
        } else if client == Some(next) {
            self.produce();
        }
        self.drain()?;
        self.check()
    }

    fn faulting(&self) -> bool {
        self.now < Instant::ZERO + self.options.safety
    }

    /// The running machine of `id`, marked for the next check.
    fn raft_mut(&mut self, id: NodeId) -> Option<&mut Raft> {
        let node = self.nodes.iter_mut().find(|n| n.id == id)?;
        node.touched = true;
        node.raft.as_mut()
    }

    /// Completes every disk operation due at `now`, in each node's order.
    fn complete_disk(&mut self, now: Instant) {
        for node in self.nodes.iter_mut() {
            while node.io.front().is_some_and(|(at, _)| *at <= now) {
                node.touched = true;
                let (_, DiskRequest { io, op }) = node.io.pop_front().expect("checked");
                let result = node.disk.perform(&op);
                if let Err(error) = &result {
                    let line = format!("{} {} disk {op:?} failed: {error}", now, node.id);
                    self.hasher.write(line.as_bytes());
                    if let Some(trace) = &mut self.trace {
                        trace.push(line);
                    }
                }
                node.raft
                    .as_mut()
                    .expect("a running node's operations")
                    .handle_disk(now, io, result);
            }
        }
    }

    /// Performs every node's outputs until all are quiet.
    fn drain(&mut self) -> Result<(), Failure> {
        loop {
            let mut busy = false;
            for position in 0..self.nodes.len() {
                while let Some(output) = self.nodes[position]
                    .raft
                    .as_mut()
                    .and_then(Raft::poll_output)
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

    fn on_output(&mut self, position: usize, output: Output) -> Result<(), Failure> {
        let id = self.nodes[position].id;
        match output {
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
                let line = format!("send {} to {}", envelope.message, envelope.to);
                self.record(id, &line);
                self.network
                    .send(self.now, id, envelope.to, envelope.message);
            }
            Output::BecameLeader { term } => {
                self.record(id, &format!("leader {term}"));
                if let Some(&other) = self.leaders.get(&term).filter(|&&other| other != id) {
                    let what = format!("{other} and {id} both lead {term}");
                    return Err(Failure {
                        checker: "one leader per term",
                        what,
                    });
                }
                self.leaders.insert(term, id);
            }
            Output::SteppedDown { term } => self.record(id, &format!("stepped down in {term}")),
            Output::Committed { index, offset } => {
                let raft = self.nodes[position].raft.as_ref().expect("running");
                let acked = self.workload.committed(raft, index)?;
                if !acked.is_empty() {
                    self.check_on_quorum_disks(&acked)?;
                    self.record(
                        id,
                        &format!("committed {index} {offset}, acked {}", acked.len()),
                    );
                }
            }
            // Owners' reads are the verification's, at the end.
            Output::Read { .. } => {}
            Output::Damaged(damage) => self.record(id, &format!("damaged {damage:?}")),
            Output::Stopped(error) => {
                return Err(Failure {
                    checker: "disk",
                    what: format!("{id} stopped: {error}"),
                })
            }
        }
        Ok(())
    }

    /// The clients propose a batch to the node that leads in the highest
    /// term, if any (only while faults run: the liveness phase checks that
    /// what was acknowledged is everywhere).
    fn produce(&mut self) {
        let now = self.now;
        if !self.faulting() {
            self.workload.produce(now, None);
            return;
        }
        let leader = self
            .nodes
            .iter_mut()
            .filter(|n| n.raft.as_ref().is_some_and(Raft::is_leader))
            .max_by_key(|n| n.raft.as_ref().map(Raft::term))
            .and_then(|n| {
                n.touched = true;
                n.raft.as_mut()
            });
        let id = leader.as_ref().map(|r| r.id());
        if let (Some(line), Some(id)) = (self.workload.produce(now, leader), id) {
            self.record(id, &line);
        }
    }

    /// The log a node would recover if it crashed now, losing every
    /// unsynced change; recovered again only when the disk's durable
    /// contents changed.
    fn durable_log(&mut self, position: usize) -> &Log {
        let node = &mut self.nodes[position];
        let version = node.disk.durable_version();
        if node.durable.as_ref().is_none_or(|(v, _)| *v != version) {
            let files = node.disk.durable_files();
            let found: Vec<FoundFile<'_>> = files
                .iter()
                .map(|(name, bytes)| FoundFile { name, bytes })
                .collect();
            let log = recovery::recover(&found)
                .and_then(|files| Log::new(self.options.log.clone(), files, self.now))
                .expect("a crash leaves a recoverable log");
            node.durable = Some((version, log));
        }
        &node.durable.as_ref().expect("just set").1
    }

    /// Whether `log` durably holds `index` in `term` (for an entry of a
    /// sealed segment whose index is not resident, holding the index is
    /// taken as holding the entry: the sealed segment was synced whole).
    fn holds(log: &Log, index: LogIndex, term: Term) -> bool {
        log.first_index() <= index
            && index < log.next_index()
            && log.term(index).is_none_or(|t| t == term)
    }

    /// Every acknowledged entry is on a majority's synced disks at the
    /// moment of its acknowledgement (or retained away after commit).
    fn check_on_quorum_disks(&mut self, acked: &[crate::workload::Acked]) -> Result<(), Failure> {
        for position in 0..self.nodes.len() {
            self.durable_log(position);
        }
        let logs = self
            .nodes
            .iter()
            .map(|n| &n.durable.as_ref().expect("recovered").1);
        for entry in acked {
            let holding = logs
                .clone()
                .filter(|log| {
                    Self::holds(log, entry.index, entry.term) || log.first_index() > entry.index
                })
                .count();
            if holding * 2 <= self.nodes.len() {
                return Err(Failure {
                    checker: "acked on a quorum's disks",
                    what: format!(
                        "{} in {} acked with {holding} of {} synced copies",
                        entry.index,
                        entry.term,
                        self.nodes.len()
                    ),
                });
            }
        }
        Ok(())
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
        } = envelope.message
        {
            let _ = term;
            let durable_end = self.durable_log(position).next_index();
            if through >= durable_end {
                let what = format!(
                    "{} said it stores {through} with its disk holding up to {}",
                    self.nodes[position].id,
                    durable_end.prev()
                );
                return Err(Failure {
                    checker: "acked before synced",
                    what,
                });
            }
        }
        let node = &self.nodes[position];
        let files = node.disk.durable_files();
        let found: Vec<FoundFile<'_>> = files
            .iter()
            .map(|(name, bytes)| FoundFile { name, bytes })
            .collect();
        let durable = state::recover(&found).map(|r| r.state).unwrap_or_default();
        let term = envelope.message.term();
        let covered = durable.term > term
            || (durable.term == term
                && needed_vote.is_none_or(|vote| durable.voted_for == Some(vote)));
        if covered {
            return Ok(());
        }
        let what = format!(
            "{} sent {} to {} with only {durable:?} durable",
            node.id, envelope.message, envelope.to
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
            if let Some(raft) = &node.raft {
                raft.check_invariants();
            }
        }
        Ok(())
    }

    /// One fault, drawn from the seed: crash a node, restart one, cut or
    /// heal the network.
    fn inject_fault(&mut self) {
        let interval = self.options.fault_interval.as_nanos();
        self.next_fault =
            self.now + Duration::from_nanos(self.rng.random_range(interval / 2..interval * 3 / 2));
        let position = self.rng.random_range(0..self.nodes.len());
        let id = self.nodes[position].id;
        let all: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let other = all[self.rng.random_range(0..all.len())];
        match self.rng.random_range(0..7) {
            0 if self.nodes[position].raft.is_some() => {
                let node = &mut self.nodes[position];
                node.raft = None;
                node.io.clear(); // Operations not yet performed never happen.
                node.disk.crash();
                node.restarts += 1;
                self.record(id, "crash");
            }
            1 if self.nodes[position].raft.is_none() => {
                self.start(position);
            }
            2 => {
                self.network.isolate(id, &all);
                self.record(id, "isolated");
            }
            3 if other != id => {
                // LV1-like: a node that can send but not hear one peer.
                self.network.cut_one_way(other, id);
                self.record(id, &format!("deaf to {other}"));
            }
            4 => self.partition_with_bridge(position),
            5 if other != id => {
                let delay = Duration::from_millis(self.rng.random_range(50..500));
                self.network.clog(id, other, delay);
                self.record(id, &format!("link to {other} clogged by {delay}"));
            }
            _ => {
                self.network.heal();
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
        self.record(bridge, &format!("bridges {left:?} and {right:?}"));
    }

    fn heal_everything(&mut self) {
        self.network.heal();
        for position in 0..self.nodes.len() {
            if self.nodes[position].raft.is_none() {
                self.start(position);
            }
        }
        self.record(NodeId(0), "liveness phase: healed");
    }

    /// Whether one node leads and every other follows it, in its term.
    fn settled(&self) -> bool {
        let running: Vec<&Raft> = self.nodes.iter().filter_map(|n| n.raft.as_ref()).collect();
        let Some(leader) = self
            .nodes
            .iter()
            .find(|n| n.raft.as_ref().is_some_and(Raft::is_leader))
        else {
            return false;
        };
        let lead = leader.raft.as_ref().expect("found");
        let (term, last) = (lead.term(), lead.log().next_index().prev());
        running.iter().all(|raft| {
            raft.term() == term
                && raft.commit() == last
                && raft.log().next_index().prev() == last
                && (raft.is_leader()
                    || matches!(raft.role(), Role::Follower { leader: Some(l) } if *l == leader.id))
        })
    }

    /// Reads every committed record from every node, as a consumer would,
    /// and holds it to the workload's ledger.
    fn verify_consumers(&mut self) -> Result<(), Failure> {
        for position in 0..self.nodes.len() {
            let id = self.nodes[position].id;
            let Some(raft) = self.nodes[position].raft.as_ref() else {
                continue;
            };
            let (first, end) = (raft.log().first_offset(), raft.commit_offset());
            let mut records = Vec::new();
            let mut next = first;
            while next < end {
                let batch = self.read_now(position, next)?;
                let before = records.len();
                for entry in &batch.entries {
                    records.extend(entry.records().filter(|(o, _)| *o >= next && *o < end));
                }
                if records.len() == before {
                    return Err(Failure {
                        checker: "acked records readable",
                        what: format!(
                            "{id} returned nothing at {next} (damage {:?})",
                            batch.damaged
                        ),
                    });
                }
                next = records.last().expect("read some").0.next();
            }
            self.workload.check_consumed(id, first, end, &records)?;
        }
        Ok(())
    }

    /// One read of the node at `position` from `from`, its disk answering
    /// at once (the run is over; only the answer matters).
    fn read_now(
        &mut self,
        position: usize,
        from: cairn_core::ids::Offset,
    ) -> Result<cairn_core::log::machine::ReadBatch, Failure> {
        let now = self.now;
        let node = &mut self.nodes[position];
        let raft = node.raft.as_mut().expect("running");
        let id = cairn_core::ids::ReadId(1);
        let from = cairn_core::log::machine::ReadFrom::Offset(from);
        if let Err(error) = raft.read(now, id, from, 1024, 1 << 20) {
            return Err(Failure {
                checker: "acked records readable",
                what: format!("{} refused a read: {error}", node.id),
            });
        }
        // Earlier operations first, in order; then whatever the read asks.
        while let Some((_, request)) = node.io.pop_front() {
            let result = node.disk.perform(&request.op);
            raft.handle_disk(now, request.io, result);
        }
        loop {
            match raft.poll_output() {
                Some(Output::Disk(request)) => {
                    let result = node.disk.perform(&request.op);
                    raft.handle_disk(now, request.io, result);
                }
                Some(Output::Read { result, .. }) => {
                    return result.map_err(|error| Failure {
                        checker: "acked records readable",
                        what: format!("{} failed a read: {error:?}", node.id),
                    })
                }
                Some(_) => {}
                None => {
                    return Err(Failure {
                        checker: "acked records readable",
                        what: format!("{} never answered a read", node.id),
                    })
                }
            }
        }
    }
}

/// Runs `seed` with its swarm options.
pub fn run_seed(seed: u64, trace: bool) -> (Report, Vec<String>) {
    World::new(seed, WorldOptions::swarm(seed), trace).run()
}
