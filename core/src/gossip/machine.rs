//! The gossip machine: SWIM's probes and dissemination with Lifeguard's
//! refinements, behind the same verbs as Raft and the log.
//!
//! Owns one node's side of the protocol: every probe interval it pings the
//! next member in randomized round-robin order; unanswered within the probe
//! timeout, it asks `indirect_probes` others to ping it (they answer with an
//! ack, or with Lifeguard's nack when they hear nothing); unanswered by the
//! next interval, the member is suspected. News (states, metadata, user
//! events) rides on every datagram, each piece about λ·log(n) times; a
//! full-state exchange (push-pull) runs on join and now and then. With
//! Lifeguard, this node's health stretches its interval and timeout, a
//! suspicion lasts long until others confirm it, and a suspected member
//! hears of it first from its prober (the buddy system).
//!
//! It must never read a clock, draw entropy but from its gossip stream, or
//! touch a socket or file: it is told the time and given bytes, and says
//! what to send and what to persist. Its incarnation never goes backwards:
//! each one is handed to the driver as [`Output::Persist`] before any
//! message that carries it.
//!
//! # Contract
//! `handle`, `handle_timeout`, `join`, `leave`, `emit` and `set_meta` take
//! inputs; drain `poll_output` after each; call `handle_timeout` at
//! `poll_timeout`. Act on outputs in order: a [`Output::Persist`] must be
//! durable before any later output is sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use cairn_proto::frame::{self, FrameKind};
use cairn_proto::FrameError;
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::error::{ConfigError, Error};
use crate::gossip::dissemination::{retransmit_limit, Broadcasts, Urgency};
use crate::gossip::events::{Events, UserEvent};
use crate::gossip::lifeguard::{HealthEvent, LocalHealth};
use crate::gossip::member::{MemberList, Outcome, State, Status, Timing, Update};
use crate::gossip::message::{self, Known, Meta, News, Probe, PushPull, Subject, Versioned};
use crate::gossip::probe::ProbeOrder;
use crate::ids::NodeId;
use crate::limits::{
    GOSSIP_DATAGRAM_BYTES_MAX, GOSSIP_META_BYTES_MAX, GOSSIP_RELAYS_MAX, PUSH_PULL_MEMBERS_MAX,
};
use crate::rng::{Rng, Stream};
use crate::time::{Duration, Instant};

/// How a node gossips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// How often this node probes a member (SWIM's protocol period).
    pub probe_interval: Duration,
    /// How long a direct ping waits for its ack before indirect probes.
    pub probe_timeout: Duration,
    /// k: the members asked to probe indirectly.
    pub indirect_probes: usize,
    /// How often this node exchanges full state with a random member, in
    /// a cluster of up to 32; larger clusters stretch it (see
    /// [`push_pull_interval`]).
    pub push_pull_interval: Duration,
    /// Lifeguard on (local health, dynamic suspicion, nacks, buddy system)
    /// or plain SWIM.
    pub lifeguard: bool,
    /// Most bytes of one datagram.
    pub datagram_bytes: usize,
}

impl Default for GossipConfig {
    fn default() -> GossipConfig {
        GossipConfig {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            push_pull_interval: Duration::from_secs(30),
            lifeguard: true,
            datagram_bytes: GOSSIP_DATAGRAM_BYTES_MAX,
        }
    }
}

/// The least datagram budget: room for a probe, the buddy system's news
/// and some more.
pub const DATAGRAM_BYTES_MIN: usize = 512;

impl GossipConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), Error> {
        let reject = |field, reason| Err(Error::Config(ConfigError { field, reason }));
        if self.probe_timeout == Duration::ZERO {
            return reject("probe_timeout", "is zero");
        }
        if self.probe_timeout >= self.probe_interval {
            return reject(
                "probe_timeout",
                "is not shorter than probe_interval, leaving no time for indirect probes",
            );
        }
        if self.indirect_probes == 0 {
            return reject("indirect_probes", "is zero");
        }
        if self.push_pull_interval < self.probe_interval {
            return reject("push_pull_interval", "is shorter than probe_interval");
        }
        if !(DATAGRAM_BYTES_MIN..=GOSSIP_DATAGRAM_BYTES_MAX).contains(&self.datagram_bytes) {
            return reject(
                "datagram_bytes",
                "is outside DATAGRAM_BYTES_MIN (512) ..= GOSSIP_DATAGRAM_BYTES_MAX (1200)",
            );
        }
        Ok(())
    }
}

/// The push-pull interval in a cluster of `members` (memberlist's scaling):
/// `base` up to 32 members, then one more `base` for each doubling, so
/// that full-state exchanges per member and second shrink as the state
/// they carry grows.
pub fn push_pull_interval(base: Duration, members: u64) -> Duration {
    const SCALE_FROM_LOG2: u32 = 5; // 32 members
    let log2 = u64::BITS - members.saturating_sub(1).leading_zeros(); // ⌈log2(members)⌉
    let mult = 1 + u64::from(log2.saturating_sub(SCALE_FROM_LOG2));
    Duration::from_nanos(base.as_nanos().saturating_mul(mult))
}

/// What the gossip machine asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send one datagram (at most `datagram_bytes`), unreliably.
    Send {
        /// The member.
        to: NodeId,
        /// The frame.
        datagram: Vec<u8>,
    },
    /// Send a full-state exchange, reliably, on a stream.
    SendState {
        /// The member.
        to: NodeId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// Make this incarnation durable before acting on any later output:
    /// a restarted node starts past it.
    Persist {
        /// The incarnation.
        incarnation: u64,
    },
    /// What this node believes of a member changed (`was` is `None` for a
    /// member new to it).
    Member {
        /// The member.
        member: NodeId,
        /// What it believes now.
        status: Status,
        /// What it believed before.
        was: Option<Status>,
    },
    /// A member's metadata changed.
    Meta {
        /// The member.
        member: NodeId,
        /// Its metadata.
        meta: Versioned,
    },
    /// A user event, delivered once (this node's own ones too).
    Event(UserEvent),
}

/// This node's probe of one member, for one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probing {
    seq: u64,
    target: NodeId,
    /// When to give up on the direct ping and probe indirectly; `None`
    /// once it has.
    direct_deadline: Option<Instant>,
    acked: bool,
    /// Indirect probes asked for, and nacks heard from them.
    relays: u32,
    nacks: u32,
}

/// An indirect probe this node runs for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Relay {
    origin: NodeId,
    origin_seq: u64,
    deadline: Instant,
}

/// One node's gossip.
#[derive(Debug)]
pub struct Gossip {
    me: NodeId,
    config: GossipConfig,
    rng: ChaCha8Rng,
    list: MemberList,
    /// Every member known, in id order, for the probe order and random
    /// picks.
    ids: Vec<NodeId>,
    /// Members known alive or suspected (this node not included).
    live: usize,
    /// Suspicion timeouts for a cluster of `live + 1`.
    timing: Timing,
    metas: BTreeMap<NodeId, Versioned>,
    own_meta: Versioned,
    order: ProbeOrder,
    health: LocalHealth,
    queue: Broadcasts<Subject, News>,
    events: Events,
    event_subjects: u64,
    next_seq: u64,
    probe: Option<Probing>,
    relays: BTreeMap<u64, Relay>,
    next_tick: Instant,
    next_push_pull: Instant,
    /// The members to join through, tried again at every full-state
    /// exchange while this node knows no live member.
    seeds: Vec<NodeId>,
    /// Strangers (members this node has never heard of, or holds dead)
    /// that sent it a datagram since the last full-state exchange's time,
    /// and were offered an exchange (`meet`).
    strangers: BTreeSet<NodeId>,
    left: bool,
    outputs: VecDeque<Output>,
}

impl Gossip {
    /// Node `me`'s gossip, knowing no member yet. `durable` is the last
    /// incarnation it persisted, if it ever ran: it starts past it, so that
    /// its news outranks anything said of its earlier life. An invalid
    /// config or metadata is an error.
    pub fn new(
        me: NodeId,
        config: GossipConfig,
        durable: Option<u64>,
        meta: Meta,
        seed: u64,
        now: Instant,
    ) -> Result<Gossip, Error> {
        config.validate()?;
        check_meta(&meta)?;
        let incarnation = durable.map_or(0, |last| last.saturating_add(1));
        let mut rng = Rng::new(seed).stream(Stream::Gossip);
        // A random first tick, so that nodes started together do not probe
        // in lockstep.
        let stagger = rng.random_range(0..config.probe_interval.as_nanos());
        let mut gossip = Gossip {
            me,
            config,
            rng,
            list: MemberList::new(me, incarnation),
            ids: Vec::new(),
            live: 0,
            timing: Timing::new(1, config.probe_interval, config.lifeguard),
            metas: BTreeMap::new(),
            own_meta: Versioned {
                version: incarnation,
                meta,
            },
            order: ProbeOrder::default(),
            health: LocalHealth::default(),
            queue: Broadcasts::default(),
            events: Events::default(),
            event_subjects: 0,
            next_seq: 1,
            probe: None,
            relays: BTreeMap::new(),
            next_tick: now + Duration::from_nanos(stagger),
            next_push_pull: now + push_pull_interval(config.push_pull_interval, 1),
            seeds: Vec::new(),
            strangers: BTreeSet::new(),
            left: false,
            outputs: VecDeque::new(),
        };
        gossip.outputs.push_back(Output::Persist { incarnation });
        gossip.announce();
        Ok(gossip)
    }

    // -- Reading ----------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.list.incarnation()
    }

    /// What this node believes of `member`.
    pub fn status(&self, member: NodeId) -> Option<Status> {
        self.list.get(member).map(|known| known.status)
    }

    /// Every member this node knows (itself not included), in id order.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, Status)> + '_ {
        self.list.iter().map(|(id, known)| (id, known.status))
    }

    /// The members known alive or suspected, this node included.
    pub fn live(&self) -> usize {
        self.live + 1
    }

    /// `member`'s metadata, if known (this node's own too).
    pub fn meta(&self, member: NodeId) -> Option<&Versioned> {
        if member == self.me {
            Some(&self.own_meta)
        } else {
            self.metas.get(&member)
        }
    }

    /// This node's local health score (Lifeguard §IV.A; 0 is healthy).
    pub fn health(&self) -> u32 {
        self.health.score()
    }

    /// Whether this node has left.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The configuration.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    // -- Inputs -------------------------------------------------------------

    /// Joins through `seeds`: a full-state exchange with each, sent again
    /// at every full-state exchange's time for as long as this node knows
    /// no live member (an exchange lost, or every seed down).
    pub fn join(&mut self, _now: Instant, seeds: &[NodeId]) {
        self.seeds = seeds.iter().copied().filter(|&s| s != self.me).collect();
        self.seeds.sort_unstable();
        self.seeds.dedup();
        self.join_seeds();
    }

    fn join_seeds(&mut self) {
        if self.left {
            return;
        }
        for seed in self.seeds.clone() {
            self.send_state(seed, true);
        }
    }

    /// Leaves gracefully: tells the cluster, then goes quiet (it probes no
    /// more, and answers whatever it hears only with its leave). The news
    /// goes straight to up to λ·log(n) members, and rides on their gossip
    /// from there.
    pub fn leave(&mut self, _now: Instant) {
        if self.left {
            return;
        }
        let left = self.left_news();
        self.queue_news(Subject::Member(self.me), left, Urgency::Urgent);
        let limit = retransmit_limit(self.live() as u64) as usize;
        // Urgent and newest, the news rides first on each of these.
        for to in self.pick(limit, None) {
            self.send(to, Probe::News, None);
        }
        self.left = true;
        self.probe = None;
        self.relays.clear();
    }

    /// The news that this node left.
    fn left_news(&self) -> News {
        News::Member(Update {
            member: self.me,
            status: Status {
                incarnation: self.incarnation(),
                state: State::Left,
            },
            from: self.me,
        })
    }

    /// Emits a user event to every member (and delivers it here).
    pub fn emit(&mut self, name: &str, payload: Bytes) -> Result<(), Error> {
        let event = self.events.emit(name, payload)?;
        self.take_event(event);
        Ok(())
    }

    /// Sets this node's metadata. It takes a new incarnation as the
    /// metadata's version, so that the change outranks the old metadata
    /// everywhere.
    pub fn set_meta(&mut self, meta: Meta) -> Result<(), Error> {
        check_meta(&meta)?;
        let incarnation = self.incarnation().saturating_add(1);
        self.list.raise_incarnation(incarnation);
        self.outputs.push_back(Output::Persist { incarnation });
        self.own_meta = Versioned {
            version: incarnation,
            meta,
        };
        self.announce();
        Ok(())
    }

    /// Takes in bytes from member `from` (the transport's word for who
    /// sent them): a datagram or a full-state exchange. Malformed bytes
    /// are an error and change nothing.
    pub fn handle(&mut self, now: Instant, from: NodeId, bytes: &[u8]) -> Result<(), FrameError> {
        let kind = frame::decode_header(bytes)?.kind;
        match kind {
            FrameKind::Gossip => {
                let message = message::decode(bytes)?;
                if self.left {
                    // Whoever still probes this node missed its leave (the
                    // news may all have been lost): it is told again,
                    // rather than left to find it dead by suspicion. Only
                    // probes are answered: an answer to an answer (two
                    // members that left) would never end.
                    if matches!(message.probe, Probe::Ping { .. } | Probe::PingReq { .. }) {
                        self.send_alone(from, self.left_news());
                    }
                } else {
                    self.handle_message(now, from, message);
                    // After its news: the datagram may have introduced it.
                    self.meet(from);
                }
            }
            FrameKind::GossipState => {
                let push_pull = message::decode_push_pull(bytes)?;
                if !self.left {
                    self.handle_push_pull(now, from, push_pull);
                }
            }
            found => {
                return Err(FrameError::UnexpectedKind {
                    expected: FrameKind::Gossip,
                    found,
                })
            }
        }
        Ok(())
    }

    /// A datagram came from `from`: if this node has never heard of it (it
    /// restarted and its join was lost, or the news of its join ran out of
    /// retransmissions before reaching here), or holds it dead (it lives,
    /// at an incarnation not heard of here), a full-state exchange tells
    /// each of the other, once per exchange interval. Otherwise such a
    /// member would stay unknown, or dead, here until a random exchange
    /// happened to pair them.
    fn meet(&mut self, from: NodeId) {
        let unknown = self
            .list
            .get(from)
            .is_none_or(|known| known.status.state == State::Dead);
        if from != self.me && unknown && self.strangers.insert(from) {
            self.send_state(from, true);
        }
    }

    /// Fires what is due at `now`: expired suspicions, indirect probes
    /// that heard nothing, the direct ping's timeout, the next probe, the
    /// next full-state exchange.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let dead = self.list.expire(now, self.timing);
        let reminders = self.list.remind(now, self.timing);
        for update in reminders {
            let news = News::Member(update);
            self.queue_news(Subject::Member(update.member), news, Urgency::Urgent);
        }
        for update in dead {
            self.changed(
                update,
                Some(Status {
                    state: State::Suspect,
                    ..update.status
                }),
            );
        }
        let due: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, relay)| relay.deadline <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in due {
            let relay = self.relays.remove(&seq).expect("due");
            if self.config.lifeguard {
                self.send(
                    relay.origin,
                    Probe::Nack {
                        seq: relay.origin_seq,
                    },
                    None,
                );
            }
        }
        if let Some(probe) = self.probe {
            if probe.direct_deadline.is_some_and(|at| at <= now) {
                self.probe_indirectly(probe);
            }
        }
        if self.next_tick <= now {
            self.finish_probe(now);
            self.start_probe(now);
            self.next_tick = now + self.health.stretch(self.config.probe_interval);
        }
        if self.next_push_pull <= now {
            self.strangers.clear();
            match self.pick(1, None).first() {
                Some(&to) => self.send_state(to, true),
                None => self.join_seeds(),
            }
            // And one member held dead, as serf reconnects: if it lives
            // (a partition healed), the exchange tells each side of the
            // other, and each refutes its death. Nothing else would: no
            // member probes or exchanges with a member it holds dead.
            let dead: Vec<NodeId> = self
                .members()
                .filter(|(_, status)| status.state == State::Dead)
                .map(|(id, _)| id)
                .collect();
            if !dead.is_empty() {
                let to = dead[self.rng.random_range(0..dead.len())];
                self.send_state(to, true);
            }
            let members = self.live() as u64;
            self.next_push_pull = now + push_pull_interval(self.config.push_pull_interval, members);
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let suspicion = self.list.next_suspicion_deadline(self.timing);
        let reminder = self.list.next_reminder(self.timing);
        let direct = self.probe.and_then(|probe| probe.direct_deadline);
        let relay = self.relays.values().map(|relay| relay.deadline).min();
        [
            Some(self.next_tick),
            Some(self.next_push_pull),
            suspicion,
            reminder,
            direct,
            relay,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Checks the machine's invariants.
    pub fn check_invariants(&self) {
        self.list.check_invariants();
        self.queue.check_invariants();
        self.events.check_invariants();
        assert!(
            self.ids.windows(2).all(|pair| pair[0] < pair[1]),
            "member ids are sorted and distinct"
        );
        assert!(
            self.ids
                .iter()
                .copied()
                .eq(self.list.iter().map(|(id, _)| id)),
            "the id list is the member list's"
        );
        let live = self
            .members()
            .filter(|&(_, status)| is_live(status))
            .count();
        assert_eq!(self.live, live, "the live count is the list's");
        assert_eq!(
            self.timing,
            self.current_timing(),
            "the timeouts are the cluster size's and health's"
        );
        if !self.config.lifeguard {
            assert_eq!(self.health.score(), 0, "without Lifeguard, no health score");
        }
        if let Some(probe) = self.probe {
            assert_ne!(probe.target, self.me, "this node does not probe itself");
            assert!(
                !(probe.acked && probe.direct_deadline.is_some()),
                "an acked probe waits for nothing"
            );
            assert!(probe.nacks <= probe.relays);
        }
        assert!(self.relays.len() <= GOSSIP_RELAYS_MAX);
        assert!(self.own_meta.version <= self.incarnation());
    }

    // -- Probing ------------------------------------------------------------

    fn start_probe(&mut self, now: Instant) {
        let list = &self.list;
        let target = self.order.next(
            &self.ids,
            |id| list.get(id).is_some_and(|known| is_live(known.status)),
            &mut self.rng,
        );
        let Some(target) = target else {
            return;
        };
        let seq = self.seq();
        self.probe = Some(Probing {
            seq,
            target,
            direct_deadline: Some(now + self.health.stretch(self.config.probe_timeout)),
            acked: false,
            relays: 0,
            nacks: 0,
        });
        self.send(target, Probe::Ping { seq }, None);
    }

    fn probe_indirectly(&mut self, probe: Probing) {
        let live = self
            .list
            .get(probe.target)
            .is_some_and(|known| is_live(known.status));
        if !live {
            // Declared dead (or gone) since the ping: nothing left to ask.
            self.probe = None;
            return;
        }
        let relays = self.pick(self.config.indirect_probes, Some(probe.target));
        for &relay in &relays {
            self.send(
                relay,
                Probe::PingReq {
                    seq: probe.seq,
                    target: probe.target,
                },
                None,
            );
        }
        self.probe = Some(Probing {
            direct_deadline: None,
            relays: relays.len() as u32,
            ..probe
        });
    }

    /// Ends the interval's probe: acked, this node is a bit healthier;
    /// unanswered, it suspects the member, and (Lifeguard) counts each
    /// indirect prober that did not even nack against its own health.
    fn finish_probe(&mut self, now: Instant) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if probe.acked {
            self.health_event(HealthEvent::ProbeAcked);
            return;
        }
        if probe.relays > 0 {
            for _ in probe.nacks..probe.relays {
                self.health_event(HealthEvent::NackMissed);
            }
        } else {
            self.health_event(HealthEvent::ProbeFailed);
        }
        let Some(known) = self.list.get(probe.target) else {
            return;
        };
        if is_live(known.status) {
            let suspicion = Update {
                member: probe.target,
                status: Status {
                    state: State::Suspect,
                    ..known.status
                },
                from: self.me,
            };
            self.take_update(now, suspicion);
            if self.config.lifeguard {
                // The buddy system, at once: the suspect hears it from its
                // accuser now, not only when a prober next picks it (with
                // few members and stretched periods, that may be after
                // the shortest suspicion has run out).
                self.tell_suspect_now(probe.target);
            }
        }
    }

    fn health_event(&mut self, event: HealthEvent) {
        if self.config.lifeguard {
            self.health.apply(event);
            self.timing = self.current_timing();
        }
    }

    // -- Receiving ----------------------------------------------------------

    fn handle_message(&mut self, now: Instant, from: NodeId, message: message::Message) {
        for news in message.news {
            self.take_news(now, news);
        }
        match message.probe {
            Probe::Ping { seq } => self.send(from, Probe::Ack { seq }, None),
            Probe::PingReq { seq, target } => {
                if target == self.me {
                    self.send(from, Probe::Ack { seq }, None);
                } else if self.relays.len() < GOSSIP_RELAYS_MAX {
                    let mine = self.seq();
                    self.relays.insert(
                        mine,
                        Relay {
                            origin: from,
                            origin_seq: seq,
                            deadline: now + self.config.probe_timeout,
                        },
                    );
                    self.send(target, Probe::Ping { seq: mine }, None);
                }
            }
            Probe::Ack { seq } => match &mut self.probe {
                Some(probe) if probe.seq == seq => {
                    probe.acked = true;
                    probe.direct_deadline = None;
                }
                _ => {
                    if let Some(relay) = self.relays.remove(&seq) {
                        let ack = Probe::Ack {
                            seq: relay.origin_seq,
                        };
                        self.send(relay.origin, ack, None);
                    }
                }
            },
            Probe::Nack { seq } => {
                if let Some(probe) = &mut self.probe {
                    if probe.seq == seq && probe.nacks < probe.relays {
                        probe.nacks += 1;
                    }
                }
            }
            Probe::News => {}
        }
    }

    fn handle_push_pull(&mut self, now: Instant, from: NodeId, push_pull: PushPull) {
        for known in push_pull.members {
            let mut status = known.status;
            // What the sender holds dead, this node only suspects: the
            // member gets its chance to refute (as memberlist merges).
            if status.state == State::Dead && known.member != self.me {
                status.state = State::Suspect;
            }
            self.take_update(
                now,
                Update {
                    member: known.member,
                    status,
                    from,
                },
            );
            if let Some(meta) = known.meta {
                self.take_meta(known.member, meta);
            }
        }
        if push_pull.answer_wanted {
            self.send_state(from, false);
        }
    }

    fn take_news(&mut self, now: Instant, news: News) {
        match news {
            News::Member(update) => self.take_update(now, update),
            News::Meta { member, meta } => self.take_meta(member, meta),
            News::Event(event) => {
                if self.events.receive(&event) {
                    self.take_event(event);
                }
            }
        }
    }

    fn take_update(&mut self, now: Instant, update: Update) {
        match self.list.apply(now, update) {
            Outcome::Ignored => {}
            Outcome::Stale { known } => {
                self.restate(update.member, known);
                let about_me = update.member == self.me && update.status.state != State::Alive;
                if about_me && update.from != self.me && self.list.get(update.from).is_some() {
                    // Someone still holds this node suspect (or dead) at an
                    // incarnation it has refuted: its refutation was lost on
                    // the way there. Said again at once, to that member.
                    let alive = News::Member(Update {
                        member: self.me,
                        status: known,
                        from: self.me,
                    });
                    self.send(update.from, Probe::News, Some(alive));
                }
            }
            Outcome::Changed { was } => {
                self.changed(update, was);
                let heard = update.from != self.me && update.member != self.me;
                if heard && update.status.state == State::Suspect && self.config.lifeguard {
                    self.tell_suspect(update.member);
                }
            }
            Outcome::Confirmed { .. } => {
                // Pass the confirmation on: others count it too.
                let news = News::Member(update);
                self.queue_news(Subject::Member(update.member), news, Urgency::Urgent);
            }
            Outcome::Refuted { incarnation } => {
                self.outputs.push_back(Output::Persist { incarnation });
                self.health_event(HealthEvent::Refuted);
                self.announce_alive(Urgency::Urgent);
                // Said at once, not only as news riding on whatever this
                // node sends next: to whoever accused it, and to k others.
                // Confirmations shrink a suspicion to the shortest timeout,
                // and a node losing much of its traffic may send little.
                let mut to = self.pick(self.config.indirect_probes, Some(update.from));
                if update.from != self.me && self.list.get(update.from).is_some() {
                    to.insert(0, update.from);
                }
                for member in to {
                    self.send(member, Probe::News, None);
                }
            }
        }
    }

    /// The buddy system, spread: a member that hears of a suspicion from
    /// others tells the suspect at once with chance k/n, so that about k
    /// members tell it whatever the cluster's size. Its accuser told it
    /// already, but that one datagram may be lost or cut (a partition
    /// bridged by one node), and the members that hold it suspect may not
    /// send it anything before the shortest suspicion runs out.
    fn tell_suspect(&mut self, member: NodeId) {
        let members = self.live().max(1) as u64;
        let k = self.config.indirect_probes as u64;
        if self.rng.random_range(0..members) < k {
            self.tell_suspect_now(member);
        }
    }

    /// Records that this node's belief about `update.member` changed from
    /// `was`, and passes the news on.
    fn changed(&mut self, update: Update, was: Option<Status>) {
        let member = update.member;
        if was.is_none() {
            let at = self.ids.binary_search(&member).expect_err("a new member");
            self.ids.insert(at, member);
            self.order.joined(member, &mut self.rng);
        }
        let before = was.is_some_and(is_live);
        let after = is_live(update.status);
        match (before, after) {
            (false, true) => self.set_live(self.live + 1),
            (true, false) => self.set_live(self.live - 1),
            _ => {}
        }
        // A join, or a member's new incarnation when nothing was wrong with
        // it, is routine; anything that someone must act on in time is not.
        let routine =
            update.status.state == State::Alive && was.is_none_or(|was| was.state == State::Alive);
        let urgency = if routine {
            Urgency::Routine
        } else {
            Urgency::Urgent
        };
        self.queue_news(Subject::Member(member), News::Member(update), urgency);
        self.outputs.push_back(Output::Member {
            member,
            status: update.status,
            was,
        });
    }

    /// Passes on again what this node knows of `member`, having heard
    /// older news of it: whoever sent that missed the newer news. A
    /// suspicion is not restated (that would make this node one of its
    /// suspecters); news that is still waiting to be sent keeps its place.
    fn restate(&mut self, member: NodeId, known: Status) {
        if known.state == State::Suspect || self.queue.contains(Subject::Member(member)) {
            return;
        }
        let news = News::Member(Update {
            member,
            status: known,
            from: self.me,
        });
        self.queue_news(Subject::Member(member), news, Urgency::Urgent);
    }

    fn take_meta(&mut self, member: NodeId, meta: Versioned) {
        if member == self.me || check_meta(&meta.meta).is_err() {
            return;
        }
        if self
            .metas
            .get(&member)
            .is_some_and(|known| known.version >= meta.version)
        {
            return;
        }
        self.metas.insert(member, meta.clone());
        self.queue_news(
            Subject::Meta(member),
            News::Meta {
                member,
                meta: meta.clone(),
            },
            Urgency::Routine,
        );
        self.outputs.push_back(Output::Meta { member, meta });
    }

    fn take_event(&mut self, event: UserEvent) {
        let subject = Subject::Event(self.event_subjects);
        self.event_subjects += 1;
        self.queue_news(subject, News::Event(event.clone()), Urgency::Routine);
        self.outputs.push_back(Output::Event(event));
    }

    // -- Sending ------------------------------------------------------------

    /// Queues this node's alive news and its metadata.
    fn announce(&mut self) {
        self.announce_alive(Urgency::Routine);
        let meta = News::Meta {
            member: self.me,
            meta: self.own_meta.clone(),
        };
        self.queue_news(Subject::Meta(self.me), meta, Urgency::Routine);
    }

    fn announce_alive(&mut self, urgency: Urgency) {
        let alive = Update {
            member: self.me,
            status: Status {
                incarnation: self.incarnation(),
                state: State::Alive,
            },
            from: self.me,
        };
        self.queue_news(Subject::Member(self.me), News::Member(alive), urgency);
    }

    fn queue_news(&mut self, subject: Subject, news: News, urgency: Urgency) {
        let bytes = message::news_bytes(&news);
        self.queue.push(subject, news, bytes, urgency);
    }

    /// Sends `probe` to `to` with `first`, then as much news as fits. The
    /// buddy system: a member this node suspects hears of it first in
    /// anything this node sends it (a ping, an ack, a relay's ping), so
    /// that it can refute while it still can; the news of its suspicion
    /// may have run out of retransmissions long before.
    fn send(&mut self, to: NodeId, probe: Probe, first: Option<News>) {
        let first = first.or_else(|| self.buddy(to));
        let limit = retransmit_limit(self.live() as u64);
        let datagram = message::encode(
            probe,
            first,
            &mut self.queue,
            limit,
            self.config.datagram_bytes,
        );
        self.outputs.push_back(Output::Send { to, datagram });
    }

    /// The news of `to`'s suspicion, if this node suspects it (and runs
    /// Lifeguard).
    fn buddy(&self, to: NodeId) -> Option<News> {
        let known = self.list.get(to)?;
        let suspected = self.config.lifeguard && known.status.state == State::Suspect;
        suspected.then_some(News::Member(Update {
            member: to,
            status: known.status,
            from: self.me,
        }))
    }

    /// Tells a suspect of its suspicion in a datagram of its own, carrying
    /// nothing else: the suspect may be dead, and a datagram to it must not
    /// spend the retransmissions that the news live members need.
    fn tell_suspect_now(&mut self, to: NodeId) {
        if let Some(news) = self.buddy(to) {
            self.send_alone(to, news);
        }
    }

    /// Sends `news` to `to` in a datagram that carries nothing else.
    fn send_alone(&mut self, to: NodeId, news: News) {
        let datagram = message::encode(
            Probe::News,
            Some(news),
            &mut Broadcasts::default(),
            0,
            self.config.datagram_bytes,
        );
        self.outputs.push_back(Output::Send { to, datagram });
    }

    fn send_state(&mut self, to: NodeId, answer_wanted: bool) {
        let me = Known {
            member: self.me,
            status: Status {
                incarnation: self.incarnation(),
                state: State::Alive,
            },
            meta: Some(self.own_meta.clone()),
        };
        let others = self.list.iter().map(|(member, known)| Known {
            member,
            status: known.status,
            meta: self.metas.get(&member).cloned(),
        });
        let members = std::iter::once(me)
            .chain(others)
            .take(PUSH_PULL_MEMBERS_MAX)
            .collect();
        let frame = message::encode_push_pull(&PushPull {
            answer_wanted,
            members,
        });
        self.outputs.push_back(Output::SendState { to, frame });
    }

    // -- Helpers ------------------------------------------------------------

    fn seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Sets the live count, and the suspicion timeouts that follow it.
    fn set_live(&mut self, live: usize) {
        self.live = live;
        self.timing = self.current_timing();
    }

    /// Suspicion timeouts for this cluster's size, in this node's own
    /// protocol periods: the probe interval as its health stretches it. A
    /// node that is itself slow (Lifeguard §IV.A) hears refutations late,
    /// and news at all seldom (its peers probe it little); it waits that
    /// much longer before it declares anyone dead, as it waits longer
    /// before it suspects. A healthy node's score is 0: the paper's
    /// timeouts, unstretched.
    fn current_timing(&self) -> Timing {
        Timing::new(
            self.live() as u64,
            self.health.stretch(self.config.probe_interval),
            self.config.lifeguard,
        )
    }

    /// Up to `count` distinct alive members other than `except`, at random.
    fn pick(&mut self, count: usize, except: Option<NodeId>) -> Vec<NodeId> {
        let list = &self.list;
        let eligible = |id: NodeId| {
            Some(id) != except
                && list
                    .get(id)
                    .is_some_and(|known| known.status.state == State::Alive)
        };
        let mut picked = Vec::with_capacity(count);
        // Draws at random first (cheap in a large cluster); if they come
        // up short, the eligible rest in a shuffled order.
        for _ in 0..count * 4 {
            if picked.len() == count || self.ids.is_empty() {
                break;
            }
            let id = self.ids[self.rng.random_range(0..self.ids.len())];
            if eligible(id) && !picked.contains(&id) {
                picked.push(id);
            }
        }
        if picked.len() < count {
            let mut rest: Vec<NodeId> = self
                .ids
                .iter()
                .copied()
                .filter(|&id| eligible(id) && !picked.contains(&id))
                .collect();
            while picked.len() < count && !rest.is_empty() {
                let at = self.rng.random_range(0..rest.len());
                picked.push(rest.swap_remove(at));
            }
        }
        picked
    }
}

/// Whether a member in `status` is probed and counted in the cluster.
fn is_live(status: Status) -> bool {
    matches!(status.state, State::Alive | State::Suspect)
}

fn check_meta(meta: &Meta) -> Result<(), Error> {
    let len = postcard::experimental::serialized_size(meta).expect("metadata has a size");
    if len > GOSSIP_META_BYTES_MAX {
        return Err(Error::MetaTooLarge {
            len,
            max: GOSSIP_META_BYTES_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config(lifeguard: bool) -> GossipConfig {
        GossipConfig {
            lifeguard,
            ..GossipConfig::default()
        }
    }

    fn node(id: u64, lifeguard: bool) -> Gossip {
        Gossip::new(
            NodeId(id),
            config(lifeguard),
            None,
            Meta::default(),
            id,
            Instant::ZERO,
        )
        .unwrap()
    }

    fn drain(gossip: &mut Gossip) -> Vec<Output> {
        std::iter::from_fn(|| gossip.poll_output()).collect()
    }

    /// A cluster on a perfect network: every send arrives at once, unless
    /// its receiver is in `silent` (crashed: it hears nothing).
    struct Cluster {
        nodes: BTreeMap<NodeId, Gossip>,
        silent: BTreeSet<NodeId>,
        now: Instant,
        /// Every output, by node, in order.
        seen: Vec<(NodeId, Output)>,
    }

    impl Cluster {
        /// `n` nodes, 1 first, the others joined through it.
        fn new(n: u64, lifeguard: bool) -> Cluster {
            let mut cluster = Cluster {
                nodes: (1..=n)
                    .map(|id| (NodeId(id), node(id, lifeguard)))
                    .collect(),
                silent: BTreeSet::new(),
                now: Instant::ZERO,
                seen: Vec::new(),
            };
            for id in 2..=n {
                let gossip = cluster.nodes.get_mut(&NodeId(id)).unwrap();
                gossip.join(Instant::ZERO, &[NodeId(1)]);
            }
            cluster.flush();
            cluster
        }

        /// Delivers every output until none is left.
        fn flush(&mut self) {
            loop {
                let mut sends = Vec::new();
                for (&id, gossip) in &mut self.nodes {
                    for output in drain(gossip) {
                        match &output {
                            Output::Send { to, datagram } => {
                                sends.push((id, *to, datagram.clone()))
                            }
                            Output::SendState { to, frame } => sends.push((id, *to, frame.clone())),
                            _ => {}
                        }
                        self.seen.push((id, output));
                    }
                }
                if sends.is_empty() {
                    return;
                }
                for (from, to, bytes) in sends {
                    if self.silent.contains(&to) {
                        continue;
                    }
                    if let Some(gossip) = self.nodes.get_mut(&to) {
                        gossip.handle(self.now, from, &bytes).unwrap();
                    }
                }
            }
        }

        /// Runs every timer until `until`.
        fn run_until(&mut self, until: Instant) {
            loop {
                let next = self
                    .nodes
                    .iter()
                    .filter(|(id, _)| !self.silent.contains(id))
                    .filter_map(|(&id, g)| g.poll_timeout().map(|at| (at, id)))
                    .min();
                match next {
                    Some((at, id)) if at <= until => {
                        self.now = self.now.max(at);
                        self.nodes.get_mut(&id).unwrap().handle_timeout(self.now);
                        self.flush();
                        for gossip in self.nodes.values() {
                            gossip.check_invariants();
                        }
                    }
                    _ => break,
                }
            }
            self.now = until;
        }

        fn status(&self, of: u64, member: u64) -> Option<Status> {
            self.nodes[&NodeId(of)].status(NodeId(member))
        }
    }

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    fn alive(incarnation: u64) -> Status {
        Status {
            incarnation,
            state: State::Alive,
        }
    }

    // Goal: joining through one member by push-pull, and gossip from there,
    // every member learns every other alive, with its metadata.
    #[test]
    fn members_that_join_through_one_learn_each_other() {
        let mut cluster = Cluster::new(6, true);
        cluster.run_until(at(5));
        for of in 1..=6 {
            for member in (1..=6).filter(|&m| m != of) {
                assert_eq!(
                    cluster.status(of, member),
                    Some(alive(0)),
                    "{of} of {member}"
                );
                assert!(cluster.nodes[&NodeId(of)].meta(NodeId(member)).is_some());
            }
            assert_eq!(cluster.nodes[&NodeId(of)].live(), 6);
        }
    }

    // Goal: a member that hears nothing is pinged, then probed indirectly
    // through k = 3 others, then suspected by its prober, and declared dead
    // by all once the suspicion runs out; with Lifeguard, relays nack the
    // prober so that its own health is not blamed.
    #[test]
    fn a_silent_member_is_probed_indirectly_suspected_then_dead() {
        for lifeguard in [true, false] {
            let mut cluster = Cluster::new(6, lifeguard);
            cluster.run_until(at(3));
            cluster.silent.insert(NodeId(6));
            cluster.seen.clear();
            cluster.run_until(at(60));
            let ping_reqs = cluster
                .seen
                .iter()
                .filter(|(_, o)| {
                    matches!(o, Output::Send { datagram, .. }
                    if matches!(message::decode(datagram).unwrap().probe,
                        Probe::PingReq { target: NodeId(6), .. }))
                })
                .count();
            assert!(ping_reqs >= 3, "indirect probes through k members");
            assert_eq!(ping_reqs % 3, 0, "k = 3 each time");
            let nacks = cluster
                .seen
                .iter()
                .filter(|(_, o)| {
                    matches!(o, Output::Send { datagram, .. }
                    if matches!(message::decode(datagram).unwrap().probe, Probe::Nack { .. }))
                })
                .count();
            assert_eq!(nacks, if lifeguard { ping_reqs } else { 0 }, "{lifeguard}");
            let suspected = cluster.seen.iter().position(|(_, o)| {
                matches!(o, Output::Member { member: NodeId(6), status, .. }
                    if status.state == State::Suspect)
            });
            let dead = cluster.seen.iter().position(|(_, o)| {
                matches!(o, Output::Member { member: NodeId(6), status, .. }
                    if status.state == State::Dead)
            });
            assert!(suspected.unwrap() < dead.unwrap(), "suspected before dead");
            for of in 1..=5 {
                let status = cluster.status(of, 6).unwrap();
                assert_eq!(status.state, State::Dead, "{of} knows 6 dead");
                assert_eq!(
                    cluster.nodes[&NodeId(of)].health(),
                    0,
                    "nacks kept it healthy"
                );
            }
        }
    }

    // Goal: a member that hears it is suspected refutes with a higher
    // incarnation, persisted before any message carries it, and every
    // member takes the refutation.
    #[test]
    fn a_suspicion_is_refuted_and_the_incarnation_persisted_first() {
        let mut cluster = Cluster::new(4, true);
        cluster.run_until(at(3));
        cluster.seen.clear();
        let suspicion = News::Member(Update {
            member: NodeId(4),
            status: Status {
                incarnation: 0,
                state: State::Suspect,
            },
            from: NodeId(2),
        });
        let mut queue = Broadcasts::default();
        queue.push(Subject::Member(NodeId(4)), suspicion, 16, Urgency::Urgent);
        let datagram = message::encode(Probe::News, None, &mut queue, 1, 1200);
        cluster
            .nodes
            .get_mut(&NodeId(4))
            .unwrap()
            .handle(at(3), NodeId(2), &datagram)
            .unwrap();
        let outputs = drain(cluster.nodes.get_mut(&NodeId(4)).unwrap());
        assert_eq!(
            outputs[0],
            Output::Persist { incarnation: 1 },
            "persisted first"
        );
        // Then said at once: to the accuser first, then to k others (here
        // the two left).
        let told: Vec<NodeId> = outputs[1..]
            .iter()
            .map(|output| match output {
                Output::Send { to, datagram } => {
                    let news = message::decode(datagram).unwrap().news;
                    assert!(news.contains(&News::Member(Update {
                        member: NodeId(4),
                        status: alive(1),
                        from: NodeId(4),
                    })));
                    *to
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(told[0], NodeId(2), "the accuser first");
        assert_eq!(told.len(), 3);
        assert_eq!(cluster.nodes[&NodeId(4)].incarnation(), 1);
        assert_eq!(
            cluster.nodes[&NodeId(4)].health(),
            1,
            "a refutation is a sign"
        );
        cluster.run_until(at(8));
        for of in 1..=3 {
            assert_eq!(cluster.status(of, 4), Some(alive(1)), "{of}");
        }
    }

    /// A datagram from `from` carrying only `update`, as news.
    fn news_datagram(update: Update) -> Vec<u8> {
        let mut queue = Broadcasts::default();
        let subject = Subject::Member(update.member);
        queue.push(subject, News::Member(update), 16, Urgency::Urgent);
        message::encode(Probe::News, None, &mut queue, 1, 1200)
    }

    /// The datagrams among `outputs`, decoded, with their receivers.
    fn datagrams(outputs: &[Output]) -> Vec<(NodeId, message::Message)> {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send { to, datagram } => Some((*to, message::decode(datagram).unwrap())),
                _ => None,
            })
            .collect()
    }

    // Goal: the buddy system, spread: a member that hears of a suspicion
    // from another tells the suspect at once (with chance k/n: here every
    // time, k = 3 of 3 others), and anything it sends the suspect later —
    // an ack, here — carries the suspicion first.
    #[test]
    fn a_suspect_hears_of_it_from_whoever_holds_it() {
        let mut cluster = Cluster::new(4, true);
        cluster.run_until(at(3));
        let suspicion = Update {
            member: NodeId(4),
            status: Status {
                incarnation: 0,
                state: State::Suspect,
            },
            from: NodeId(2),
        };
        let one = cluster.nodes.get_mut(&NodeId(1)).unwrap();
        one.handle(at(3), NodeId(2), &news_datagram(suspicion))
            .unwrap();
        let told = |message: &message::Message| {
            matches!(message.news.first(), Some(News::Member(u))
                if u.member == NodeId(4) && u.status.state == State::Suspect)
        };
        let sent = datagrams(&drain(one));
        assert!(
            sent.iter().any(|(to, m)| *to == NodeId(4) && told(m)),
            "told at once: {sent:?}"
        );
        let mut queue = Broadcasts::default();
        let ping = message::encode(Probe::Ping { seq: 9 }, None, &mut queue, 1, 1200);
        one.handle(at(3), NodeId(4), &ping).unwrap();
        let sent = datagrams(&drain(one));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.probe, Probe::Ack { seq: 9 });
        assert!(told(&sent[0].1), "the ack carries it first");
    }

    // Goal: a member that still holds this node suspect at an incarnation
    // it has refuted (the refutation was lost on the way there) is told
    // the refutation again at once.
    #[test]
    fn a_stale_suspicion_is_answered_at_once() {
        let mut cluster = Cluster::new(4, true);
        cluster.run_until(at(3));
        let suspect = |incarnation, from| Update {
            member: NodeId(4),
            status: Status {
                incarnation,
                state: State::Suspect,
            },
            from: NodeId(from),
        };
        let four = cluster.nodes.get_mut(&NodeId(4)).unwrap();
        four.handle(at(3), NodeId(2), &news_datagram(suspect(0, 2)))
            .unwrap();
        assert_eq!(four.incarnation(), 1, "refuted");
        let _ = drain(four);
        four.handle(at(3), NodeId(3), &news_datagram(suspect(0, 3)))
            .unwrap();
        let sent = datagrams(&drain(four));
        let refutation = News::Member(Update {
            member: NodeId(4),
            status: alive(1),
            from: NodeId(4),
        });
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].0, NodeId(3), "to who holds it");
        assert_eq!(sent[0].1.news.first(), Some(&refutation));
        assert_eq!(four.incarnation(), 1, "no new refutation for old news");
    }

    // Goal: a join whose exchange was lost (or whose seeds are all down)
    // is tried again at every full-state exchange's time, until this node
    // knows a live member.
    #[test]
    fn a_join_is_tried_again_until_a_member_answers() {
        let mut two = node(2, true);
        let _ = drain(&mut two);
        two.join(Instant::ZERO, &[NodeId(1), NodeId(2), NodeId(1)]);
        let exchanges = |outputs: &[Output]| -> Vec<NodeId> {
            outputs
                .iter()
                .filter_map(|o| match o {
                    Output::SendState { to, .. } => Some(*to),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            exchanges(&drain(&mut two)),
            [NodeId(1)],
            "once each, not to itself"
        );
        let mut now = Instant::ZERO;
        let mut retries = 0;
        while now < at(95) {
            now = two.poll_timeout().unwrap();
            two.handle_timeout(now);
            retries += exchanges(&drain(&mut two)).len();
        }
        // The exchange interval is 30 s: tried again at 30, 60 and 90.
        assert_eq!(retries, 3);
        let mut one = node(1, true);
        let _ = drain(&mut one);
        one.join(now, &[NodeId(2)]);
        let frame = match &drain(&mut one)[..] {
            [Output::SendState { frame, .. }] => frame.clone(),
            other => panic!("{other:?}"),
        };
        two.handle(now, NodeId(1), &frame).unwrap();
        let answer = exchanges(&drain(&mut two));
        assert_eq!(answer, [NodeId(1)], "the answer; the seeds are not tried");
        assert_eq!(two.live(), 2, "it knows a live member: it has joined");
    }

    // Goal: a datagram from a member this node never heard of (its join,
    // or the news of it, was lost) is answered with a full-state exchange,
    // once per exchange interval; and a member that left answers whatever
    // it hears with its leave, nothing else.
    #[test]
    fn strangers_are_met_and_the_left_say_so() {
        let mut one = node(1, true);
        let _ = drain(&mut one);
        let mut queue = Broadcasts::default();
        let ping = |seq| {
            message::encode(
                Probe::Ping { seq },
                None,
                &mut Broadcasts::default(),
                1,
                1200,
            )
        };
        one.handle(at(1), NodeId(5), &ping(1)).unwrap();
        let outputs = drain(&mut one);
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::SendState { to: NodeId(5), .. })),
            "{outputs:?}"
        );
        one.handle(at(1), NodeId(5), &ping(2)).unwrap();
        let again = drain(&mut one);
        assert!(
            !again.iter().any(|o| matches!(o, Output::SendState { .. })),
            "once"
        );
        let mut two = node(2, true);
        let _ = drain(&mut two);
        two.leave(at(1));
        let _ = drain(&mut two);
        let datagram = message::encode(Probe::Ping { seq: 3 }, None, &mut queue, 1, 1200);
        two.handle(at(2), NodeId(7), &datagram).unwrap();
        let sent = datagrams(&drain(&mut two));
        let left = News::Member(Update {
            member: NodeId(2),
            status: Status {
                incarnation: 0,
                state: State::Left,
            },
            from: NodeId(2),
        });
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0, sent[0].1.probe), (NodeId(7), Probe::News));
        assert_eq!(sent[0].1.news, [left], "its leave, nothing else");
    }

    // Goal: a relay pings the target for the requester and forwards its
    // ack; if the target is silent, it nacks (Lifeguard) after the probe
    // timeout, and plain SWIM does not.
    #[test]
    fn a_relay_forwards_the_ack_or_nacks() {
        for lifeguard in [true, false] {
            let mut relay = node(2, lifeguard);
            let _ = drain(&mut relay);
            let mut queue = Broadcasts::default();
            let request = message::encode(
                Probe::PingReq {
                    seq: 77,
                    target: NodeId(3),
                },
                None,
                &mut queue,
                1,
                1200,
            );
            relay.handle(at(1), NodeId(1), &request).unwrap();
            let sends: Vec<(NodeId, Probe)> = drain(&mut relay)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Send { to, datagram } => {
                        Some((to, message::decode(&datagram).unwrap().probe))
                    }
                    _ => None,
                })
                .collect();
            let [(NodeId(3), Probe::Ping { seq })] = sends[..] else {
                panic!("a ping to the target: {sends:?}")
            };
            // The target answers: the ack goes to the requester, with its
            // number.
            let ack = message::encode(Probe::Ack { seq }, None, &mut queue, 1, 1200);
            let mut answered = node(2, lifeguard);
            let _ = drain(&mut answered);
            answered.handle(at(1), NodeId(1), &request).unwrap();
            let _ = drain(&mut answered);
            answered.handle(at(1), NodeId(3), &ack).unwrap();
            // (The relay knows neither: each stranger is also offered a
            // full-state exchange.)
            let forwarded: Vec<Output> = drain(&mut answered)
                .into_iter()
                .filter(|o| !matches!(o, Output::SendState { .. }))
                .collect();
            assert!(
                matches!(&forwarded[..], [Output::Send { to: NodeId(1), datagram }]
                    if message::decode(datagram).unwrap().probe == Probe::Ack { seq: 77 }),
                "{forwarded:?}"
            );
            // The silent target: a nack after the probe timeout, or nothing.
            relay.handle_timeout(at(1) + Duration::from_millis(500));
            let nack: Vec<Probe> = drain(&mut relay)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Send {
                        to: NodeId(1),
                        datagram,
                    } => Some(message::decode(&datagram).unwrap().probe),
                    _ => None,
                })
                .collect();
            let expected: &[Probe] = if lifeguard {
                &[Probe::Nack { seq: 77 }]
            } else {
                &[]
            };
            assert_eq!(nack, expected, "lifeguard {lifeguard}");
        }
    }

    // Goal: a restarted node starts past the incarnation it persisted,
    // persisting that first, so that its alive news outranks its death.
    #[test]
    fn a_restarted_node_starts_past_its_durable_incarnation() {
        let mut gossip = Gossip::new(
            NodeId(1),
            config(true),
            Some(5),
            Meta::default(),
            1,
            Instant::ZERO,
        )
        .unwrap();
        assert_eq!(gossip.incarnation(), 6);
        assert_eq!(
            gossip.poll_output(),
            Some(Output::Persist { incarnation: 6 })
        );
        assert_eq!(gossip.meta(NodeId(1)).unwrap().version, 6);
    }

    // Goal: a member that leaves tells up to λ·log(n) members directly,
    // every member learns it left, and it goes quiet.
    #[test]
    fn a_leaving_member_is_known_to_have_left() {
        let mut cluster = Cluster::new(5, true);
        cluster.run_until(at(3));
        cluster.nodes.get_mut(&NodeId(5)).unwrap().leave(at(3));
        cluster.flush();
        cluster.run_until(at(8));
        for of in 1..=4 {
            assert_eq!(cluster.status(of, 5).unwrap().state, State::Left, "{of}");
            assert_eq!(cluster.nodes[&NodeId(of)].live(), 4);
        }
        let quiet = &cluster.nodes[&NodeId(5)];
        assert!(quiet.has_left());
        assert_eq!(quiet.poll_timeout(), None, "no more probes");
    }

    // Goal: new metadata takes a new incarnation as its version and
    // reaches every member; metadata too large is refused with its size.
    #[test]
    fn metadata_spreads_with_its_version() {
        let mut cluster = Cluster::new(4, true);
        cluster.run_until(at(3));
        let meta = Meta {
            addr: "10.1.1.1:7000".into(),
            role: "storage".into(),
            tags: BTreeMap::from([("zone".into(), "c".into())]),
        };
        let gossip = cluster.nodes.get_mut(&NodeId(2)).unwrap();
        gossip.set_meta(meta.clone()).unwrap();
        assert_eq!(gossip.incarnation(), 1);
        cluster.flush();
        cluster.run_until(at(8));
        for of in [1, 3, 4] {
            let known = cluster.nodes[&NodeId(of)].meta(NodeId(2)).unwrap();
            assert_eq!((known.version, &known.meta), (1, &meta), "{of}");
            assert_eq!(cluster.status(of, 2), Some(alive(1)));
        }
        let huge = Meta {
            addr: "x".repeat(GOSSIP_META_BYTES_MAX),
            ..Meta::default()
        };
        let refused = cluster.nodes.get_mut(&NodeId(2)).unwrap().set_meta(huge);
        assert!(
            matches!(refused, Err(Error::MetaTooLarge { .. })),
            "{refused:?}"
        );
    }

    // Goal: user events reach every member once, this node's own included.
    #[test]
    fn user_events_reach_every_member_once() {
        let mut cluster = Cluster::new(4, true);
        cluster.run_until(at(3));
        cluster.seen.clear();
        let gossip = cluster.nodes.get_mut(&NodeId(3)).unwrap();
        gossip.emit("deploy", Bytes::from_static(b"v2")).unwrap();
        cluster.flush();
        cluster.run_until(at(10));
        let delivered: Vec<NodeId> = cluster
            .seen
            .iter()
            .filter(|(_, o)| matches!(o, Output::Event(e) if e.name == "deploy"))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(delivered.len(), 4, "once each: {delivered:?}");
        assert_eq!(delivered.iter().collect::<BTreeSet<_>>().len(), 4);
    }

    // Goal: bytes that are not gossip are an error and change nothing.
    #[test]
    fn hostile_bytes_are_errors_and_change_nothing() {
        let mut gossip = node(1, true);
        let _ = drain(&mut gossip);
        let mut other = Vec::new();
        frame::encode(&mut other, FrameKind::RaftState, &(1u64, 2u64));
        for bytes in [vec![], vec![0xCA, 0x1E, 1], other] {
            assert!(gossip.handle(at(1), NodeId(2), &bytes).is_err());
            assert_eq!(gossip.poll_output(), None);
        }
        assert_eq!(gossip.members().count(), 0);
    }

    // Goal: the push-pull interval stays the base up to 32 members and
    // grows by one base per doubling past it (memberlist's scaling).
    #[test]
    fn push_pull_interval_by_cluster_size() {
        let table = [
            (1, 30),
            (32, 30),
            (33, 60),
            (64, 60),
            (100, 90),
            (1_000, 180),
            (1_024, 180),
        ];
        for (members, secs) in table {
            let interval = push_pull_interval(Duration::from_secs(30), members);
            assert_eq!(interval, Duration::from_secs(secs), "{members} members");
        }
    }

    // Goal: nonsensical configurations are refused with the field's name.
    #[test]
    fn bad_configs_are_refused() {
        let good = GossipConfig::default();
        assert_eq!(good.validate(), Ok(()));
        let table = [
            (
                GossipConfig {
                    probe_timeout: SECOND,
                    ..good
                },
                "probe_timeout",
            ),
            (
                GossipConfig {
                    probe_timeout: Duration::ZERO,
                    ..good
                },
                "probe_timeout",
            ),
            (
                GossipConfig {
                    indirect_probes: 0,
                    ..good
                },
                "indirect_probes",
            ),
            (
                GossipConfig {
                    push_pull_interval: Duration::from_millis(10),
                    ..good
                },
                "push_pull_interval",
            ),
            (
                GossipConfig {
                    datagram_bytes: 100,
                    ..good
                },
                "datagram_bytes",
            ),
            (
                GossipConfig {
                    datagram_bytes: 1_201,
                    ..good
                },
                "datagram_bytes",
            ),
        ];
        for (config, field) in table {
            match config.validate() {
                Err(Error::Config(error)) => assert_eq!(error.field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
