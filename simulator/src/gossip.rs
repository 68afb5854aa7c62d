//! Gossip alone, at scale: a cluster of gossip machines (no Raft) on a
//! lossy simulated network, run through a fixed story, measured in
//! protocol periods.
//!
//! Owns the story and its measurements. All nodes join through one seed
//! node; once the cluster has converged, 2% of the nodes crash; later 1%
//! become slow (the Lifeguard paper's scenario: they process every message
//! [`SLOW_DELAY_PERIODS`] late, while their own timers run on time); then
//! one crashed node restarts and rejoins. It measures how soon a crash is
//! first suspected and known dead by every live node, how soon the rejoin
//! is known to all, the false suspicions and false deaths of healthy nodes
//! (neither crashed nor slow), and the messages and bytes each node sends
//! per period. It also runs small traced scripts (join, crash, leave,
//! partition, heal, a lossy node) for the reviewed traces and tests.
//!
//! It must never read a clock or draw unseeded randomness: one seed
//! replays a run exactly. It checks as it goes that every datagram fits
//! its budget and that no node's incarnation goes backwards (and, in a
//! traced script, every machine's invariants after every step and every
//! view converged at the end), and fails the run (an `Err`) otherwise.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use cairn_core::gossip::machine::{Gossip, GossipConfig, Output};
use cairn_core::gossip::member::{State, Status};
use cairn_core::gossip::message::{self, Meta, News, Probe};
use cairn_core::ids::NodeId;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

/// How late a slow node processes every message it receives, in probe
/// intervals: past SWIM's suspicion timeout at 100 and 1,000 members (8 and
/// 12 intervals), so that its refutations come too late without Lifeguard.
pub const SLOW_DELAY_PERIODS: u64 = 16;

/// One run: how large, how lossy, which protocol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GossipScenario {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// The chance that a datagram is lost, in parts per million.
    pub loss_ppm: u32,
    /// Lifeguard on, or plain SWIM.
    pub lifeguard: bool,
    /// The seed.
    pub seed: u64,
}

/// The story's times, in probe intervals.
mod story {
    /// Joins are spread over the first periods.
    pub const JOINS_OVER: u64 = 5;
    /// The most periods from the start for every node to know every
    /// other alive; a run that takes longer fails.
    pub const CONVERGE_WITHIN: u64 = 200;
    /// From convergence until 2% of the nodes crash.
    pub const CRASH_AFTER: u64 = 10;
    /// From the crash until 1% become slow.
    pub const SLOW_FROM: u64 = 50;
    /// From the crash until they are slow no more.
    pub const SLOW_UNTIL: u64 = 150;
    /// From the crash until one crashed node restarts and rejoins.
    pub const REJOIN_AT: u64 = 190;
    /// From the crash until the end.
    pub const END: u64 = 240;
}

/// What a run measured. Times are in probe intervals.
#[derive(Clone, Debug, PartialEq)]
pub struct GossipReport {
    /// The scenario.
    pub scenario: GossipScenario,
    /// From the first join until every node knows every other alive.
    pub converged: Option<f64>,
    /// Nodes crashed.
    pub crashed: usize,
    /// From a crash until the first node suspects it: the mean and the
    /// largest over the crashed nodes (`None` if one never was).
    pub first_suspect: Option<(f64, f64)>,
    /// From a crash until every live node knows it dead: mean and largest.
    pub detect_all: Option<(f64, f64)>,
    /// From the rejoin until every live node knows it alive again.
    pub join_all: Option<f64>,
    /// Healthy nodes suspected: distinct (member, incarnation) suspicions.
    pub false_suspicions: u64,
    /// Healthy nodes declared dead, by any node (slow ones included):
    /// distinct (member, incarnation) deaths.
    pub false_deaths: u64,
    /// Of those, the ones a healthy node believed (a slow node's view lags
    /// the cluster's by its delay; most of its false deaths stay there).
    pub false_deaths_seen_by_healthy: u64,
    /// Messages each live node sent per period, on average.
    pub msgs_per_node_period: f64,
    /// Bytes each live node sent per period, on average.
    pub bytes_per_node_period: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Bytes arrive at a node.
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    /// A node's timer.
    Timer { node: usize },
    /// The story's next step.
    Story(Step),
    /// Whether the cluster has converged yet (every tenth of a period until
    /// it has; then the rest of the story is set).
    Check,
    /// A scripted action.
    Act(GossipAction),
}

/// What a script does to a small gossip cluster (for traces).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GossipAction {
    /// The node starts (past the incarnation it persisted, if it ran
    /// before) and joins through node 0 (node 0 itself joins nobody).
    Join(usize),
    /// The node crashes: it hears nothing, says nothing, forgets all but
    /// its persisted incarnation.
    Crash(usize),
    /// The node leaves gracefully.
    Leave(usize),
    /// These nodes are cut off from the others, both ways.
    Partition(Vec<usize>),
    /// The partition heals.
    Heal,
    /// The node loses this share of the datagrams it sends or receives,
    /// in parts per million (on top of the network's loss).
    Lossy(usize, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Crash,
    SlowStart,
    SlowEnd,
    Rejoin,
}

#[derive(Debug)]
struct Slot {
    gossip: Option<Gossip>,
    /// The deadline a timer event is queued for.
    scheduled: Option<Instant>,
    slow: bool,
    /// The last incarnation this node persisted.
    persisted: Option<u64>,
    /// Crashed at some point in the story.
    crashed: bool,
    /// Crashed or slow at some point in the story: not counted healthy.
    troubled: bool,
}

/// The world of one run.
struct World {
    scenario: GossipScenario,
    config: GossipConfig,
    rng: ChaCha8Rng,
    now: Instant,
    nodes: Vec<Slot>,
    events: BinaryHeap<Reverse<(Instant, u64, Event)>>,
    sequence: u64,
    /// Nodes running now.
    running: usize,
    /// When the run ends.
    end: Instant,
    /// The nodes cut off from the others, if any.
    cut: BTreeSet<usize>,
    /// Nodes that lose a share of their datagrams, in parts per million.
    lossy: BTreeMap<usize, u32>,
    /// One line per event, when tracing.
    trace: Option<Vec<String>>,
    // Measurements.
    crash_at: Option<Instant>,
    first_suspect: BTreeMap<usize, Instant>,
    /// Live nodes that know each crashed node dead.
    dead_views: BTreeMap<usize, usize>,
    known_dead: BTreeMap<usize, Instant>,
    rejoin: Option<(usize, u64, Instant)>,
    alive_views: usize,
    join_all: Option<Instant>,
    converged: Option<Instant>,
    suspicions: BTreeSet<(usize, u64)>,
    deaths: BTreeSet<(usize, u64)>,
    deaths_seen_by_healthy: BTreeSet<(usize, u64)>,
    messages: u64,
    bytes: u64,
}

fn id(index: usize) -> NodeId {
    NodeId(index as u64 + 1)
}

fn index(id: NodeId) -> usize {
    (id.0 - 1) as usize
}

fn periods(config: &GossipConfig, span: Duration) -> f64 {
    span.as_nanos() as f64 / config.probe_interval.as_nanos() as f64
}

/// Runs `scenario`'s story; `Err` names a broken rule.
pub fn run_gossip(scenario: GossipScenario) -> Result<GossipReport, String> {
    run_gossip_watched(scenario, &mut |_| {})
}

/// Runs `scenario`'s story like [`run_gossip`], telling `watch` each
/// simulated period as it begins (for a progress display).
pub fn run_gossip_watched(
    scenario: GossipScenario,
    watch: &mut dyn FnMut(u64),
) -> Result<GossipReport, String> {
    World::new(scenario).run(watch)
}

impl World {
    fn new(scenario: GossipScenario) -> World {
        let config = GossipConfig {
            lifeguard: scenario.lifeguard,
            ..GossipConfig::default()
        };
        World {
            scenario,
            config,
            rng: Rng::new(scenario.seed).stream(Stream::World),
            now: Instant::ZERO,
            nodes: (0..scenario.nodes)
                .map(|_| Slot {
                    gossip: None,
                    scheduled: None,
                    slow: false,
                    persisted: None,
                    crashed: false,
                    troubled: false,
                })
                .collect(),
            events: BinaryHeap::new(),
            sequence: 0,
            running: 0,
            end: Instant::ZERO,
            cut: BTreeSet::new(),
            lossy: BTreeMap::new(),
            trace: None,
            crash_at: None,
            first_suspect: BTreeMap::new(),
            dead_views: BTreeMap::new(),
            known_dead: BTreeMap::new(),
            rejoin: None,
            alive_views: 0,
            join_all: None,
            converged: None,
            suspicions: BTreeSet::new(),
            deaths: BTreeSet::new(),
            deaths_seen_by_healthy: BTreeSet::new(),
            messages: 0,
            bytes: 0,
        }
    }

    /// Every running node knows every other running node alive, and each
    /// node that left as left.
    fn converged_views(&self) -> Result<(), String> {
        for (observer, slot) in self.nodes.iter().enumerate() {
            let Some(gossip) = &slot.gossip else { continue };
            if gossip.has_left() {
                continue;
            }
            for (member, other) in self.nodes.iter().enumerate() {
                if member == observer {
                    continue;
                }
                let expected = match &other.gossip {
                    Some(g) if g.has_left() => State::Left,
                    Some(_) => State::Alive,
                    None => continue,
                };
                let seen = gossip.status(id(member)).map(|s| s.state);
                if seen != Some(expected) {
                    return Err(format!(
                        "{} sees {} as {seen:?}, not {expected:?}, at the end",
                        id(observer),
                        id(member)
                    ));
                }
            }
        }
        Ok(())
    }

    fn period(&self, periods: u64) -> Instant {
        Instant::ZERO + self.span(periods)
    }

    fn span(&self, periods: u64) -> Duration {
        Duration::from_nanos(self.config.probe_interval.as_nanos() * periods)
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.sequence += 1;
        self.events.push(Reverse((at, self.sequence, event)));
    }

    fn run(mut self, watch: &mut dyn FnMut(u64)) -> Result<GossipReport, String> {
        let n = self.scenario.nodes;
        // Node 0 starts first; the others join through it, spread over
        // the first periods.
        let spread = self.period(story::JOINS_OVER).as_nanos();
        for node in 0..n {
            let at = if node == 0 {
                0
            } else {
                self.rng.random_range(0..spread)
            };
            self.push(
                Instant::from_nanos(at),
                Event::Act(GossipAction::Join(node)),
            );
        }
        self.push(Instant::ZERO, Event::Check);
        self.end = self.period(story::CONVERGE_WITHIN);
        let node_time = self.play(watch)?;
        if self.converged.is_none() {
            return Err(format!(
                "the cluster did not converge within {} periods",
                story::CONVERGE_WITHIN
            ));
        }
        for slot in &self.nodes {
            if let Some(gossip) = &slot.gossip {
                gossip.check_invariants();
            }
        }
        let node_periods = node_time as f64 / self.config.probe_interval.as_nanos() as f64;
        let crash_at = self.crash_at.expect("the story crashed nodes");
        let crashed: Vec<usize> = self.dead_views.keys().copied().collect();
        let stats = |times: &BTreeMap<usize, Instant>| -> Option<(f64, f64)> {
            let spans: Vec<f64> = crashed
                .iter()
                .map(|node| {
                    times
                        .get(node)
                        .map(|&t| periods(&self.config, t.saturating_since(crash_at)))
                })
                .collect::<Option<_>>()?;
            let max = spans.iter().copied().fold(0.0, f64::max);
            Some((spans.iter().sum::<f64>() / spans.len() as f64, max))
        };
        Ok(GossipReport {
            scenario: self.scenario,
            converged: self
                .converged
                .map(|t| periods(&self.config, t.saturating_since(Instant::ZERO))),
            crashed: crashed.len(),
            first_suspect: stats(&self.first_suspect),
            detect_all: stats(&self.known_dead),
            join_all: self
                .join_all
                .zip(self.rejoin)
                .map(|(t, (_, _, from))| periods(&self.config, t.saturating_since(from))),
            false_suspicions: self.suspicions.len() as u64,
            false_deaths: self.deaths.len() as u64,
            false_deaths_seen_by_healthy: self.deaths_seen_by_healthy.len() as u64,
            msgs_per_node_period: self.messages as f64 / node_periods,
            bytes_per_node_period: self.bytes as f64 / node_periods,
        })
    }

    /// Plays events until the end; returns the node-time run (live nodes
    /// × time, for rates per node and period).
    fn play(&mut self, watch: &mut dyn FnMut(u64)) -> Result<u128, String> {
        let n = self.scenario.nodes;
        let mut node_time = 0u128;
        let mut period = 0;
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            if at > self.end {
                break;
            }
            let now_period = at.as_nanos() / self.config.probe_interval.as_nanos();
            if now_period > period {
                period = now_period;
                watch(period);
            }
            node_time +=
                u128::from(at.saturating_since(self.now).as_nanos()) * self.running as u128;
            self.now = at;
            match event {
                Event::Deliver { to, from, bytes } => {
                    if let Some(gossip) = self.nodes[to].gossip.as_mut() {
                        gossip
                            .handle(at, id(from), &bytes)
                            .map_err(|e| format!("node {to} refused a datagram: {e}"))?;
                        self.drain(to)?;
                    }
                }
                Event::Timer { node } => {
                    let slot = &mut self.nodes[node];
                    if slot.scheduled == Some(at) {
                        slot.scheduled = None;
                        if let Some(gossip) = slot.gossip.as_mut() {
                            gossip.handle_timeout(at);
                            self.drain(node)?;
                        }
                    }
                }
                Event::Story(step) => self.step(step)?,
                Event::Act(action) => self.act(action)?,
                Event::Check => {
                    let all = self
                        .nodes
                        .iter()
                        .all(|slot| slot.gossip.as_ref().is_some_and(|g| g.live() == n));
                    if all {
                        self.converged = Some(self.now);
                        let crash = self.now + self.span(story::CRASH_AFTER);
                        for (after, step) in [
                            (0, Step::Crash),
                            (story::SLOW_FROM, Step::SlowStart),
                            (story::SLOW_UNTIL, Step::SlowEnd),
                            (story::REJOIN_AT, Step::Rejoin),
                        ] {
                            self.push(crash + self.span(after), Event::Story(step));
                        }
                        self.end = crash + self.span(story::END);
                    } else {
                        let tenth =
                            Duration::from_nanos(self.config.probe_interval.as_nanos() / 10);
                        self.push(self.now + tenth, Event::Check);
                    }
                }
            }
        }
        Ok(node_time)
    }

    fn act(&mut self, action: GossipAction) -> Result<(), String> {
        self.note(|| format!("act {action:?}"));
        match action {
            GossipAction::Join(node) => {
                self.start(node)?;
                if node != 0 {
                    let gossip = self.nodes[node].gossip.as_mut().expect("started");
                    gossip.join(self.now, &[id(0)]);
                    self.drain(node)?;
                }
            }
            GossipAction::Crash(node) => self.crash(node),
            GossipAction::Leave(node) => {
                let gossip = self.nodes[node]
                    .gossip
                    .as_mut()
                    .expect("a running node leaves");
                gossip.leave(self.now);
                self.drain(node)?;
            }
            GossipAction::Partition(nodes) => self.cut = nodes.into_iter().collect(),
            GossipAction::Heal => self.cut.clear(),
            GossipAction::Lossy(node, ppm) => {
                self.lossy.insert(node, ppm);
            }
        }
        Ok(())
    }

    /// Adds a line to the trace, if tracing.
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let secs = self.now.as_nanos() as f64 / 1e9;
            trace.push(format!("{secs:.6}s {}", line()));
        }
    }

    fn start(&mut self, node: usize) -> Result<(), String> {
        let meta = Meta {
            addr: format!("10.0.{}.{}:7000", node / 256, node % 256),
            role: "storage".into(),
            tags: BTreeMap::new(),
        };
        let seed = Rng::new(self.scenario.seed).child(Stream::Gossip, node as u64);
        let durable = self.nodes[node].persisted;
        let gossip = Gossip::new(id(node), self.config, durable, meta, seed, self.now)
            .map_err(|e| format!("node {node} did not start: {e}"))?;
        self.nodes[node].gossip = Some(gossip);
        self.running += 1;
        self.drain(node)
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        let n = self.scenario.nodes;
        match step {
            Step::Crash => {
                self.crash_at = Some(self.now);
                for node in self.choose((n / 50).max(1), |slot| !slot.crashed) {
                    self.crash(node);
                    self.nodes[node].crashed = true;
                    self.nodes[node].troubled = true;
                    self.dead_views.insert(node, 0);
                }
            }
            Step::SlowStart => {
                for node in self.choose((n / 100).max(1), |slot| !slot.crashed && !slot.slow) {
                    self.nodes[node].slow = true;
                    self.nodes[node].troubled = true;
                }
            }
            Step::SlowEnd => {
                for slot in &mut self.nodes {
                    slot.slow = false;
                }
            }
            Step::Rejoin => {
                let node = *self.dead_views.keys().next().expect("a crashed node");
                self.start(node)?;
                let incarnation = self.nodes[node]
                    .gossip
                    .as_ref()
                    .expect("started")
                    .incarnation();
                self.rejoin = Some((node, incarnation, self.now));
                self.alive_views = 0;
                let seed = self.choose(1, |slot| slot.gossip.is_some() && !slot.crashed)[0];
                let gossip = self.nodes[node].gossip.as_mut().expect("started");
                gossip.join(self.now, &[id(seed)]);
                self.drain(node)?;
            }
        }
        Ok(())
    }

    /// `count` distinct nodes other than node 0 that `eligible` accepts,
    /// at random.
    fn choose(&mut self, count: usize, eligible: impl Fn(&Slot) -> bool) -> Vec<usize> {
        let mut candidates: Vec<usize> = (1..self.nodes.len())
            .filter(|&node| eligible(&self.nodes[node]))
            .collect();
        let mut chosen = Vec::with_capacity(count);
        while chosen.len() < count && !candidates.is_empty() {
            let at = self.rng.random_range(0..candidates.len());
            chosen.push(candidates.swap_remove(at));
        }
        chosen.sort_unstable();
        chosen
    }

    fn crash(&mut self, node: usize) {
        let gossip = self.nodes[node].gossip.take().expect("a live node crashes");
        self.nodes[node].scheduled = None;
        self.running -= 1;
        // What it knew dies with it.
        for (member, status) in gossip.members() {
            if status.state == State::Dead {
                if let Some(views) = self.dead_views.get_mut(&index(member)) {
                    *views -= 1;
                }
            }
        }
    }

    fn drain(&mut self, node: usize) -> Result<(), String> {
        if self.trace.is_some() {
            // A traced script is small: every step is checked.
            self.nodes[node]
                .gossip
                .as_ref()
                .expect("running")
                .check_invariants();
        }
        let latency_max = 10_000_000u64;
        while let Some(output) = self.nodes[node]
            .gossip
            .as_mut()
            .expect("running")
            .poll_output()
        {
            match output {
                Output::Send { to, datagram } => {
                    if datagram.len() > self.config.datagram_bytes {
                        return Err(format!(
                            "node {node} sent a datagram of {} bytes, over its budget of {}",
                            datagram.len(),
                            self.config.datagram_bytes
                        ));
                    }
                    self.messages += 1;
                    self.bytes += datagram.len() as u64;
                    let local = |n: usize| self.lossy.get(&n).copied().unwrap_or(0);
                    let loss = self
                        .scenario
                        .loss_ppm
                        .max(local(node))
                        .max(local(index(to)));
                    let lost = self.rng.random_range(0..1_000_000) < loss;
                    let cut = self.cut.contains(&node) != self.cut.contains(&index(to));
                    self.note(|| describe_datagram(node, to, &datagram, lost || cut));
                    if lost || cut {
                        continue;
                    }
                    self.deliver(node, index(to), datagram, latency_max);
                }
                Output::SendState { to, frame } => {
                    self.messages += 1;
                    self.bytes += frame.len() as u64;
                    let cut = self.cut.contains(&node) != self.cut.contains(&index(to));
                    self.note(|| describe_state(node, to, &frame, cut));
                    if cut {
                        continue;
                    }
                    // A stream: reliable, if slower.
                    self.deliver(node, index(to), frame, latency_max * 3);
                }
                Output::Persist { incarnation } => {
                    let slot = &mut self.nodes[node];
                    if slot.persisted.is_some_and(|last| incarnation <= last) {
                        return Err(format!(
                            "node {node}'s incarnation went from {:?} to {incarnation}",
                            slot.persisted
                        ));
                    }
                    slot.persisted = Some(incarnation);
                    self.note(|| format!("{} persist incarnation {incarnation}", id(node)));
                }
                Output::Member {
                    member,
                    status,
                    was,
                } => {
                    self.note(|| {
                        let was = was.map_or_else(|| "unknown".to_owned(), show);
                        format!("{} view {member} {} (was {was})", id(node), show(status))
                    });
                    self.observe(node, index(member), status, was)
                }
                Output::Meta { .. } | Output::Event(_) => {}
            }
        }
        let slot = &mut self.nodes[node];
        // A deadline already past (a suspicion that confirmations shrank)
        // fires now.
        let next = slot
            .gossip
            .as_ref()
            .expect("running")
            .poll_timeout()
            .map(|at| at.max(self.now));
        if next != slot.scheduled {
            slot.scheduled = next;
            if let Some(at) = next {
                self.push(at, Event::Timer { node });
            }
        }
        Ok(())
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>, latency_max: u64) {
        let mut at =
            self.now + Duration::from_nanos(self.rng.random_range(latency_max / 10..=latency_max));
        if self.nodes[to].slow {
            at += self.span(SLOW_DELAY_PERIODS);
        }
        self.push(at, Event::Deliver { to, from, bytes });
    }

    /// Node `observer`'s belief about `member` changed from `was` to
    /// `status`.
    fn observe(&mut self, observer: usize, member: usize, status: Status, was: Option<Status>) {
        let healthy = !self.nodes[member].troubled;
        let dead = |s: Option<Status>| s.is_some_and(|s| s.state == State::Dead);
        if healthy {
            match status.state {
                State::Suspect => {
                    self.suspicions.insert((member, status.incarnation));
                }
                State::Dead => {
                    self.deaths.insert((member, status.incarnation));
                    if !self.nodes[observer].troubled {
                        self.deaths_seen_by_healthy
                            .insert((member, status.incarnation));
                    }
                }
                State::Alive | State::Left => {}
            }
        }
        if let Some(views) = self.dead_views.get_mut(&member) {
            if self.nodes[member].gossip.is_none() {
                if status.state != State::Alive {
                    self.first_suspect.entry(member).or_insert(self.now);
                }
                match (dead(was), dead(Some(status))) {
                    (false, true) => *views += 1,
                    (true, false) => *views -= 1,
                    _ => {}
                }
                if *views == self.running {
                    self.known_dead.entry(member).or_insert(self.now);
                }
            }
        }
        if let Some((rejoined, incarnation, _)) = self.rejoin {
            if member == rejoined && self.join_all.is_none() {
                let alive = |s: Option<Status>| {
                    s.is_some_and(|s| s.state == State::Alive && s.incarnation >= incarnation)
                };
                match (alive(was), alive(Some(status))) {
                    (false, true) => self.alive_views += 1,
                    (true, false) => self.alive_views -= 1,
                    _ => {}
                }
                if self.alive_views + 1 == self.running {
                    self.join_all = Some(self.now);
                }
            }
        }
    }
}

/// Runs `script` on a cluster of `nodes` on a calm network (no loss unless
/// `loss_ppm`) for `periods` probe intervals, tracing every datagram sent
/// (and whether it was lost or cut), every exchange of state, every
/// incarnation persisted and every change of a node's view. At the end,
/// every running node must know every other running node alive, and every
/// node that left as left (`Err` otherwise, with the trace so far).
pub fn trace_script(
    nodes: usize,
    seed: u64,
    periods: u64,
    script: &[(Duration, GossipAction)],
) -> Result<Vec<String>, (String, Vec<String>)> {
    let scenario = GossipScenario {
        nodes,
        loss_ppm: 0,
        lifeguard: true,
        seed,
    };
    let mut world = World::new(scenario);
    world.trace = Some(Vec::new());
    for (at, action) in script {
        world.push(Instant::ZERO + *at, Event::Act(action.clone()));
    }
    world.end = world.period(periods);
    let outcome = world
        .play(&mut |_| {})
        .and_then(|_| world.converged_views());
    let trace = world.trace.take().expect("tracing");
    match outcome {
        Ok(()) => Ok(trace),
        Err(what) => Err((what, trace)),
    }
}

/// A status as a trace shows it: `suspect@2`.
/// A member's status as traces show it: `alive@3`.
pub fn show(status: Status) -> String {
    let state = match status.state {
        State::Alive => "alive",
        State::Suspect => "suspect",
        State::Dead => "dead",
        State::Left => "left",
    };
    format!("{state}@{}", status.incarnation)
}

fn describe_datagram(from: usize, to: NodeId, datagram: &[u8], dropped: bool) -> String {
    let (probe, news) = frame_parts(datagram, false);
    let fate = if dropped { " (lost)" } else { "" };
    format!("{} send {probe} to {to}{news}{fate}", id(from))
}

fn describe_state(from: usize, to: NodeId, frame: &[u8], cut: bool) -> String {
    let (kind, members) = frame_parts(frame, true);
    let fate = if cut { " (cut)" } else { "" };
    format!("{} send {kind} to {to}{members}{fate}", id(from))
}

/// What a gossip frame says, for traces, in two parts: its kind (`ping 3`,
/// `push-pull`) and what it carries (` [n2 alive@1, n3 meta v0]`, or
/// nothing). A full-state exchange (`stream`) lists every member.
pub fn frame_parts(frame: &[u8], stream: bool) -> (String, String) {
    if stream {
        let push_pull = message::decode_push_pull(frame).expect("a node sends what it can decode");
        let kind = if push_pull.answer_wanted {
            "push-pull"
        } else {
            "push-pull answer"
        };
        let members: Vec<String> = push_pull
            .members
            .iter()
            .map(|known| format!("{} {}", known.member, show(known.status)))
            .collect();
        return (kind.to_owned(), format!(" [{}]", members.join(", ")));
    }
    let message = message::decode(frame).expect("a node sends what it can decode");
    let probe = match message.probe {
        Probe::Ping { seq } => format!("ping {seq}"),
        Probe::PingReq { seq, target } => format!("ping-req {seq} for {target}"),
        Probe::Ack { seq } => format!("ack {seq}"),
        Probe::Nack { seq } => format!("nack {seq}"),
        Probe::News => "news".to_owned(),
    };
    let news: Vec<String> = message
        .news
        .iter()
        .map(|news| match news {
            News::Member(update) if update.status.state == State::Suspect => {
                format!(
                    "{} {} by {}",
                    update.member,
                    show(update.status),
                    update.from
                )
            }
            News::Member(update) => format!("{} {}", update.member, show(update.status)),
            News::Meta { member, meta } => format!("{member} meta v{}", meta.version),
            News::Event(event) => format!("event {}@{}", event.name, event.ltime),
        })
        .collect();
    let news = if news.is_empty() {
        String::new()
    } else {
        format!(" [{}]", news.join(", "))
    };
    (probe, news)
}
