//! The simulated network: packets between nodes, delayed, lost, duplicated,
//! reordered and cut off as the seed and the scenario decide.
//!
//! Owns every packet in flight and the state of every link. It must never
//! consult anything but its seed: packets are ordered by (delivery time,
//! send sequence), so two packets due at the same instant arrive in the
//! order they were sent, and one seed replays the same deliveries bit for
//! bit. It never looks inside a message.
//!
//! A link is the ordered pair (from, to). Faults are per link: a cut drops
//! every packet sent on it or due on it while cut (a packet in flight when a
//! cut starts is lost, as on a real network that drops a route); a clog adds
//! delay; a loss ratio overrides the network's. A partition cuts every link
//! between two sides both ways; a node on neither side bridges them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use cairn_core::ids::NodeId;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

/// How packets fare on a healthy link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkOptions {
    /// The least time a packet takes.
    pub latency_min: Duration,
    /// Extra time, drawn uniformly from zero to this.
    pub latency_jitter: Duration,
    /// Chance that a packet is lost.
    pub loss_ratio: f64,
    /// Chance that a packet arrives twice.
    pub duplicate_ratio: f64,
    /// Chance that a packet is held back, so that later ones overtake it.
    pub reorder_ratio: f64,
    /// The most a held-back packet is delayed by.
    pub reorder_delay_max: Duration,
}

impl Default for NetworkOptions {
    fn default() -> NetworkOptions {
        NetworkOptions {
            latency_min: Duration::from_micros(200),
            latency_jitter: Duration::from_micros(800),
            loss_ratio: 0.0,
            duplicate_ratio: 0.0,
            reorder_ratio: 0.0,
            reorder_delay_max: Duration::from_millis(10),
        }
    }
}

impl NetworkOptions {
    /// Checks that every ratio is a probability.
    pub fn validate(&self) -> Result<(), &'static str> {
        let ratios = [self.loss_ratio, self.duplicate_ratio, self.reorder_ratio];
        if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return Err("a ratio is outside [0, 1]");
        }
        Ok(())
    }
}

/// A packet delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<M> {
    /// When it arrives.
    pub at: Instant,
    /// Its sender.
    pub from: NodeId,
    /// Its receiver.
    pub to: NodeId,
    /// What it carries.
    pub message: M,
}

/// What happened to packets, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Packets handed to the network.
    pub sent: u64,
    /// Packets delivered (duplicates included).
    pub delivered: u64,
    /// Packets lost to the loss ratio.
    pub lost: u64,
    /// Packets dropped by a cut link.
    pub cut: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets held back to be overtaken.
    pub reordered: u64,
}

/// The network between a scenario's nodes.
pub struct Network<M> {
    options: NetworkOptions,
    rng: ChaCha8Rng,
    /// Packets in flight, by (delivery time, send sequence), each naming
    /// its slot in `packets`: the heap moves small keys, packets stay put.
    in_flight: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    packets: Vec<Option<Packet<M>>>,
    /// Slots of `packets` free for the next packet.
    free: Vec<usize>,
    sequence: u64,
    cut: BTreeSet<(NodeId, NodeId)>,
    clogged: BTreeMap<(NodeId, NodeId), Duration>,
    loss: BTreeMap<(NodeId, NodeId), f64>,
    stats: NetworkStats,
}

impl<M: Clone> Network<M> {
    /// A network whose choices follow `seed`.
    pub fn new(seed: u64, options: NetworkOptions) -> Network<M> {
        assert_eq!(
            options.validate(),
            Ok(()),
            "network options are the scenario's own"
        );
        Network {
            options,
            rng: Rng::new(seed).stream(Stream::World),
            in_flight: BinaryHeap::new(),
            packets: Vec::new(),
            free: Vec::new(),
            sequence: 0,
            cut: BTreeSet::new(),
            clogged: BTreeMap::new(),
            loss: BTreeMap::new(),
            stats: NetworkStats::default(),
        }
    }

    /// Hands a packet to the network at `now`.
    pub fn send(&mut self, now: Instant, from: NodeId, to: NodeId, message: M) {
        self.stats.sent += 1;
        let link = (from, to);
        if self.cut.contains(&link) {
            self.stats.cut += 1;
            return;
        }
        let loss = self
            .loss
            .get(&link)
            .copied()
            .unwrap_or(self.options.loss_ratio);
        if self.rng.random_bool(loss) {
            self.stats.lost += 1;
            return;
        }
        let duplicated = self.rng.random_bool(self.options.duplicate_ratio);
        let at = now + self.delay(link);
        if duplicated {
            self.stats.duplicated += 1;
            self.schedule(Packet {
                at,
                from,
                to,
                message: message.clone(),
            });
            let at = now + self.delay(link);
            self.schedule(Packet {
                at,
                from,
                to,
                message,
            });
        } else {
            self.schedule(Packet {
                at,
                from,
                to,
                message,
            });
        }
    }

    fn delay(&mut self, link: (NodeId, NodeId)) -> Duration {
        let jitter = self
            .rng
            .random_range(0..=self.options.latency_jitter.as_nanos());
        let mut delay = self.options.latency_min + Duration::from_nanos(jitter);
        if self.rng.random_bool(self.options.reorder_ratio) {
            self.stats.reordered += 1;
            let held = self
                .rng
                .random_range(0..=self.options.reorder_delay_max.as_nanos());
            delay = delay + Duration::from_nanos(held);
        }
        delay + self.clogged.get(&link).copied().unwrap_or(Duration::ZERO)
    }

    fn schedule(&mut self, packet: Packet<M>) {
        self.sequence += 1;
        let at = packet.at;
        let slot = match self.free.pop() {
            Some(slot) => {
                assert!(self.packets[slot].is_none(), "a free slot holds nothing");
                self.packets[slot] = Some(packet);
                slot
            }
            None => {
                self.packets.push(Some(packet));
                self.packets.len() - 1
            }
        };
        self.in_flight.push(Reverse((at, self.sequence, slot)));
    }

    /// When the next packet is due, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next packet due at or before `now`, in (time, send order).
    /// Packets due on a link cut since they were sent are dropped.
    pub fn poll_delivery(&mut self, now: Instant) -> Option<Packet<M>> {
        while self.next_delivery().is_some_and(|at| at <= now) {
            let Reverse((_, _, slot)) = self.in_flight.pop().expect("a packet is due");
            let packet = self.packets[slot]
                .take()
                .expect("a packet in flight has its slot");
            self.free.push(slot);
            if self.cut.contains(&(packet.from, packet.to)) {
                self.stats.cut += 1;
                continue;
            }
            self.stats.delivered += 1;
            return Some(packet);
        }
        None
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts `node` off from every node in `others`, both ways.
    pub fn isolate(&mut self, node: NodeId, others: &[NodeId]) {
        for &other in others.iter().filter(|&&other| other != node) {
            self.cut(node, other);
        }
    }

    /// Cuts every link between the two sides, both ways. A node on neither
    /// side keeps its links to both: it bridges them.
    pub fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        for &a in side_a {
            for &b in side_b.iter().filter(|&&b| b != a) {
                self.cut(a, b);
            }
        }
    }

    /// Adds `delay` to every packet sent from `from` to `to` from now on.
    pub fn clog(&mut self, from: NodeId, to: NodeId, delay: Duration) {
        self.clogged.insert((from, to), delay);
    }

    /// Sets the loss ratio of the link from `from` to `to`.
    pub fn set_loss(&mut self, from: NodeId, to: NodeId, ratio: f64) {
        assert!(
            (0.0..=1.0).contains(&ratio),
            "a loss ratio is a probability"
        );
        self.loss.insert((from, to), ratio);
    }

    /// Restores every link: no cut, no clog, no per-link loss. Packets in
    /// flight stay in flight.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.clogged.clear();
        self.loss.clear();
    }

    /// Whether packets from `from` reach `to` at all now.
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// Whether the link from `from` to `to` is as healthy as any: not cut,
    /// not clogged, not lossier than the rest.
    pub fn healthy(&self, from: NodeId, to: NodeId) -> bool {
        let link = (from, to);
        !self.cut.contains(&link)
            && !self.clogged.contains_key(&link)
            && !self.loss.contains_key(&link)
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What happened so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);

    fn drain(network: &mut Network<u32>, until: Instant) -> Vec<Packet<u32>> {
        std::iter::from_fn(|| network.poll_delivery(until)).collect()
    }

    fn options() -> NetworkOptions {
        NetworkOptions::default()
    }

    // Goal: packets arrive in (time, send order) within the latency bounds,
    // and the same seed replays the same deliveries.
    #[test]
    fn deliveries_are_ordered_bounded_and_replayable() {
        let run = |seed| {
            let mut network = Network::new(seed, options());
            for n in 0..100 {
                network.send(Instant::from_nanos(n * 1000), A, B, n as u32);
            }
            drain(&mut network, Instant::from_nanos(u64::MAX))
        };
        let packets = run(7);
        assert_eq!(packets.len(), 100);
        assert!(
            packets.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
        for packet in &packets {
            let sent = Instant::from_nanos(u64::from(packet.message) * 1000);
            let delay = packet.at - sent;
            assert!(
                delay >= options().latency_min
                    && delay <= options().latency_min + options().latency_jitter
            );
        }
        assert_eq!(packets, run(7));
        assert_ne!(packets, run(8));
    }

    // Goal: nothing is delivered before it is due.
    #[test]
    fn nothing_arrives_early() {
        let mut network = Network::new(1, options());
        network.send(Instant::ZERO, A, B, 1);
        let due = network.next_delivery().unwrap();
        assert_eq!(
            network.poll_delivery(Instant::from_nanos(due.as_nanos() - 1)),
            None
        );
        assert_eq!(network.poll_delivery(due).map(|p| p.message), Some(1));
    }

    // Goal: loss, duplication and reordering happen at about their ratios.
    #[test]
    fn faults_follow_their_ratios() {
        let faulty = NetworkOptions {
            loss_ratio: 0.2,
            duplicate_ratio: 0.1,
            reorder_ratio: 0.3,
            ..options()
        };
        let mut network = Network::new(3, faulty);
        for n in 0..10_000u32 {
            network.send(Instant::from_nanos(u64::from(n) * 10_000), A, B, n);
        }
        let packets = drain(&mut network, Instant::from_nanos(u64::MAX));
        let stats = network.stats();
        assert!((1_800..2_200).contains(&stats.lost), "{stats:?}");
        assert!((650..1_000).contains(&stats.duplicated), "{stats:?}");
        assert_eq!(
            packets.len() as u64,
            stats.sent - stats.lost + stats.duplicated
        );
        let overtaken = packets
            .windows(2)
            .filter(|w| w[0].message > w[1].message)
            .count();
        assert!(
            overtaken > 100,
            "held-back packets are overtaken: {overtaken}"
        );
    }

    // Goal: cuts drop packets on their links only — both ways for a cut,
    // one way for a one-way cut — including packets already in flight; a
    // bridge node keeps both sides; healing restores everything.
    #[test]
    fn cuts_partitions_and_healing() {
        let mut network = Network::new(4, options());
        network.send(Instant::ZERO, A, B, 1);
        network.cut_one_way(A, B);
        network.send(Instant::ZERO, A, B, 2);
        network.send(Instant::ZERO, B, A, 3);
        let delivered: Vec<u32> = drain(&mut network, Instant::from_nanos(u64::MAX))
            .iter()
            .map(|p| p.message)
            .collect();
        assert_eq!(
            delivered,
            [3],
            "the in-flight packet and the new one are dropped one way only"
        );
        assert!(!network.connected(A, B) && network.connected(B, A));

        network.heal();
        network.partition(&[A], &[B]);
        for (from, to, message) in [(A, B, 10), (B, A, 11), (A, C, 12), (C, B, 13), (B, C, 14)] {
            network.send(Instant::ZERO, from, to, message);
        }
        let mut delivered: Vec<u32> = drain(&mut network, Instant::from_nanos(u64::MAX))
            .iter()
            .map(|p| p.message)
            .collect();
        delivered.sort_unstable();
        assert_eq!(delivered, [12, 13, 14], "C bridges A and B");

        network.heal();
        network.send(Instant::ZERO, A, B, 20);
        assert_eq!(drain(&mut network, Instant::from_nanos(u64::MAX)).len(), 1);
        let stats = network.stats();
        assert_eq!(stats.cut, 4);
    }

    // Goal: a clogged link delays its packets by the clog; a lossy link
    // loses its packets and no others.
    #[test]
    fn clogs_and_per_link_loss() {
        let mut network = Network::new(5, options());
        network.clog(A, B, Duration::from_secs(1));
        network.set_loss(A, C, 1.0);
        network.send(Instant::ZERO, A, B, 1);
        network.send(Instant::ZERO, A, C, 2);
        network.send(Instant::ZERO, B, A, 3);
        let packets = drain(&mut network, Instant::from_nanos(u64::MAX));
        let messages: Vec<u32> = packets.iter().map(|p| p.message).collect();
        assert_eq!(messages, [3, 1]);
        assert!(packets[1].at >= Instant::ZERO + Duration::from_secs(1));
        assert_eq!(network.stats().lost, 1);
    }

    // Goal: options with a ratio outside [0, 1] are rejected.
    #[test]
    fn options_are_validated() {
        assert!(NetworkOptions {
            loss_ratio: 1.5,
            ..options()
        }
        .validate()
        .is_err());
        assert!(NetworkOptions {
            reorder_ratio: -0.1,
            ..options()
        }
        .validate()
        .is_err());
        assert!(options().validate().is_ok());
    }
}
