//! The Raft machine, so far: roles, elections with pre-vote, heartbeats and
//! check-quorum. Replication of entries joins it next.
//!
//! Owns a node's role and term and the timers that drive elections. It must
//! never let a message leave before the term and vote it announces are
//! durable (RA1, RA2): every outgoing message waits until the state file
//! reports durable a state at least as new as the one it depends on.
//!
//! # Contract
//! Same verbs as the log: `handle`, `handle_disk`, `handle_timeout` take
//! inputs; drain `poll_output` after each; `poll_timeout` says when to call
//! `handle_timeout`. `now` never goes backwards.
//!
//! # Rules and their sources
//! - Election timeouts are drawn from Raft's own rng stream (§5.2).
//! - A follower whose election timer fires first asks for pre-votes in the
//!   next term without taking it (thesis §9.6); only with a majority of
//!   pre-votes does it raise its term and ask for real votes (§5.2).
//! - A node that heard from a leader within the minimum election timeout
//!   ignores vote requests (thesis §4.2.3), so a partitioned node cannot
//!   depose a healthy leader (RA4, RA5).
//! - A leader that has not heard from a majority within an election timeout
//!   steps down (check-quorum, thesis §6.2), so an isolated leader stops
//!   serving (RA7), and the others elect a new one (RA6).

use std::collections::{BTreeSet, VecDeque};

use rand_chacha::ChaCha8Rng;

use crate::ids::{NodeId, Term};
use crate::log::disk::{DiskError, DiskOutcome, DiskRequest};
use crate::raft::election::{self, LastEntry, VoteRequest};
use crate::raft::message::{Envelope, Message};
use crate::raft::quorum::Configuration;
use crate::raft::state::{HardState, RecoveredState, StateFile, StateOutput};
use crate::rng::{Rng, Stream};
use crate::time::{Duration, Instant};
use crate::timer::TimerTable;

/// Raft's timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// The least election timeout; also how long a heard leader silences
    /// vote requests, and the check-quorum period.
    pub election_timeout_min: Duration,
    /// The greatest election timeout (exclusive).
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats.
    pub heartbeat_interval: Duration,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(50),
        }
    }
}

/// A node's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows `leader`, if it knows one.
    Follower {
        /// The leader of the current term, if known.
        leader: Option<NodeId>,
    },
    /// Asks for pre-votes; holds those granted.
    PreCandidate {
        /// Voters that granted a pre-vote (itself included).
        granted: BTreeSet<NodeId>,
    },
    /// Asks for votes; holds those granted.
    Candidate {
        /// Voters that granted a vote (itself included).
        granted: BTreeSet<NodeId>,
    },
    /// Leads; counts whom it heard from since the last quorum check.
    Leader {
        /// Voters that answered since the last check.
        heard: BTreeSet<NodeId>,
    },
}

/// What the machine asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this message.
    Send(Envelope),
    /// Perform this disk operation on the state file; report it with
    /// `handle_disk`.
    Disk(DiskRequest),
    /// This node became leader of `term`.
    BecameLeader {
        /// The term it leads.
        term: Term,
    },
    /// This node stopped leading.
    SteppedDown {
        /// The term it is in now.
        term: Term,
    },
    /// The state file failed; the node must stop.
    Stopped(DiskError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Election,
    Heartbeat,
    CheckQuorum,
}

/// One node's Raft.
#[derive(Debug)]
pub struct Raft {
    id: NodeId,
    config: RaftConfig,
    voters: Configuration,
    last: LastEntry,
    role: Role,
    state: StateFile,
    rng: ChaCha8Rng,
    timers: TimerTable<Timer>,
    /// When a leader was last heard from (for leader stickiness).
    leader_contact: Option<Instant>,
    /// Messages waiting for the state they announce to be durable.
    held: VecDeque<(HardState, Envelope)>,
    outputs: VecDeque<Output>,
}

impl Raft {
    /// A node with id `id` among `voters`, its state as recovered, its log
    /// ending at `last`, drawing from `seed`.
    pub fn new(
        id: NodeId,
        config: RaftConfig,
        voters: Configuration,
        recovered: RecoveredState,
        last: LastEntry,
        seed: u64,
        now: Instant,
    ) -> Raft {
        assert!(config.election_timeout_min < config.election_timeout_max);
        assert!(
            config.heartbeat_interval < config.election_timeout_min,
            "heartbeats outpace elections"
        );
        let mut raft = Raft {
            id,
            config,
            voters,
            last,
            role: Role::Follower { leader: None },
            state: StateFile::new(recovered),
            rng: Rng::new(seed).stream(Stream::Raft),
            timers: TimerTable::default(),
            leader_contact: None,
            held: VecDeque::new(),
            outputs: VecDeque::new(),
        };
        raft.reset_election_timer(now);
        raft.drain_state();
        raft
    }

    /// The current term (durable or about to be).
    pub fn term(&self) -> Term {
        self.state.current().term
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// A short description of the role and term, for traces.
    pub fn summary(&self) -> String {
        let role = match &self.role {
            Role::Follower {
                leader: Some(leader),
            } => format!("follower of {leader}"),
            Role::Follower { leader: None } => "follower".to_owned(),
            Role::PreCandidate { granted } => format!("pre-candidate {}", granted.len()),
            Role::Candidate { granted } => format!("candidate {}", granted.len()),
            Role::Leader { .. } => "leader".to_owned(),
        };
        format!("[{} {role}]", self.term())
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Takes in a message from `from`.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        if !self.voters.is_voter(from) || from == self.id {
            return; // Strangers and echoes have no say.
        }
        let pre_vote_traffic = matches!(
            message,
            Message::VoteRequest { pre_vote: true, .. }
                | Message::VoteReply {
                    pre_vote: true,
                    granted: true,
                    ..
                }
        );
        if message.term() > self.term() && !pre_vote_traffic && !self.ignores_vote(now, &message) {
            self.step_down(message.term(), None);
        }
        match message {
            Message::VoteRequest {
                term,
                last_term,
                last_index,
                pre_vote,
                transfer,
            } => {
                let request = VoteRequest {
                    term,
                    candidate: from,
                    last: LastEntry {
                        term: last_term,
                        index: last_index,
                    },
                    pre_vote,
                    transfer,
                };
                self.on_vote_request(now, &request);
            }
            Message::VoteReply {
                term,
                granted,
                pre_vote,
            } => self.on_vote_reply(now, from, term, granted, pre_vote),
            Message::Heartbeat { term } => self.on_heartbeat(now, from, term),
            Message::HeartbeatReply { term } => self.on_heartbeat_reply(from, term),
        }
        self.drain_state();
    }

    /// Whether a vote request is to be ignored because a leader was heard
    /// from recently (thesis §4.2.3).
    fn ignores_vote(&self, now: Instant, message: &Message) -> bool {
        matches!(
            message,
            Message::VoteRequest {
                transfer: false,
                ..
            }
        ) && self.leader_recent(now)
    }

    fn leader_recent(&self, now: Instant) -> bool {
        self.is_leader()
            || self
                .leader_contact
                .is_some_and(|at| now.saturating_since(at) < self.config.election_timeout_min)
    }

    fn on_vote_request(&mut self, now: Instant, request: &VoteRequest) {
        let decision = election::decide(
            self.state.current(),
            self.last,
            request,
            self.leader_recent(now),
        );
        if decision.ignored {
            return;
        }
        if decision.state != self.state.current() {
            self.persist(decision.state);
        }
        if decision.granted && !request.pre_vote {
            self.reset_election_timer(now);
        }
        let term = if request.pre_vote && decision.granted {
            request.term
        } else {
            decision.state.term
        };
        let reply = Message::VoteReply {
            term,
            granted: decision.granted,
            pre_vote: request.pre_vote,
        };
        self.send(decision.state, request.candidate, reply);
    }

    fn on_vote_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        granted: bool,
        pre_vote: bool,
    ) {
        let current = self.term();
        match &mut self.role {
            Role::PreCandidate { granted: votes }
                if pre_vote && granted && term == current.next() =>
            {
                votes.insert(from);
                if self.voters.agrees(votes) {
                    self.stand(now);
                }
            }
            Role::Candidate { granted: votes } if !pre_vote && granted && term == current => {
                votes.insert(from);
                if self.voters.agrees(votes) {
                    self.lead(now);
                }
            }
            _ => {}
        }
    }

    fn on_heartbeat(&mut self, now: Instant, from: NodeId, term: Term) {
        if term < self.term() {
            let reply = Message::HeartbeatReply { term: self.term() };
            self.send(self.state.current(), from, reply);
            return;
        }
        if !matches!(self.role, Role::Follower { leader: Some(l) } if l == from) {
            let was_leader = self.is_leader();
            self.role = Role::Follower { leader: Some(from) };
            self.timers.stop(Timer::Heartbeat);
            self.timers.stop(Timer::CheckQuorum);
            if was_leader {
                self.outputs.push_back(Output::SteppedDown { term });
            }
        }
        self.leader_contact = Some(now);
        self.reset_election_timer(now);
        self.send(self.state.current(), from, Message::HeartbeatReply { term });
    }

    fn on_heartbeat_reply(&mut self, from: NodeId, term: Term) {
        if let Role::Leader { heard } = &mut self.role {
            if term == self.state.current().term {
                heard.insert(from);
            }
        }
    }

    /// Moves to a higher term as a follower (§5.1).
    fn step_down(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term > self.term(), "stepping down moves to a higher term");
        let was_leader = self.is_leader();
        self.persist(HardState {
            term,
            voted_for: None,
        });
        self.role = Role::Follower { leader };
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::CheckQuorum);
        if was_leader {
            self.outputs.push_back(Output::SteppedDown { term });
        }
    }

    /// Fires the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::Election => self.on_election_timeout(now),
                Timer::Heartbeat => self.on_heartbeat_timeout(now),
                Timer::CheckQuorum => self.on_check_quorum(now),
            }
        }
        self.drain_state();
    }

    fn on_election_timeout(&mut self, now: Instant) {
        if self.is_leader() {
            return;
        }
        self.reset_election_timer(now);
        self.role = Role::PreCandidate {
            granted: BTreeSet::from([self.id]),
        };
        if self.voters.agrees(&BTreeSet::from([self.id])) {
            return self.stand(now);
        }
        let term = self.term().next();
        self.ask_for_votes(term, true);
    }

    /// Raises the term, votes for itself and asks for votes (§5.2).
    fn stand(&mut self, now: Instant) {
        let term = self.term().next();
        self.persist(HardState {
            term,
            voted_for: Some(self.id),
        });
        self.role = Role::Candidate {
            granted: BTreeSet::from([self.id]),
        };
        self.reset_election_timer(now);
        if self.voters.agrees(&BTreeSet::from([self.id])) {
            return self.lead(now);
        }
        self.ask_for_votes(term, false);
    }

    fn ask_for_votes(&mut self, term: Term, pre_vote: bool) {
        let message = Message::VoteRequest {
            term,
            last_term: self.last.term,
            last_index: self.last.index,
            pre_vote,
            transfer: false,
        };
        for voter in self.other_voters() {
            self.send(self.state.current(), voter, message.clone());
        }
    }

    fn lead(&mut self, now: Instant) {
        self.role = Role::Leader {
            heard: BTreeSet::new(),
        };
        self.timers.stop(Timer::Election);
        self.outputs
            .push_back(Output::BecameLeader { term: self.term() });
        self.on_heartbeat_timeout(now);
        self.timers
            .set(Timer::CheckQuorum, now + self.config.election_timeout_min);
    }

    fn on_heartbeat_timeout(&mut self, now: Instant) {
        if !self.is_leader() {
            return;
        }
        let message = Message::Heartbeat { term: self.term() };
        for voter in self.other_voters() {
            self.send(self.state.current(), voter, message.clone());
        }
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
    }

    /// Check-quorum (thesis §6.2): a leader that has not heard from a
    /// majority within an election timeout steps down.
    fn on_check_quorum(&mut self, now: Instant) {
        let Role::Leader { heard } = &mut self.role else {
            return;
        };
        let mut reached = std::mem::take(heard);
        reached.insert(self.id);
        if self.voters.agrees(&reached) {
            self.timers
                .set(Timer::CheckQuorum, now + self.config.election_timeout_min);
            return;
        }
        self.role = Role::Follower { leader: None };
        self.timers.stop(Timer::Heartbeat);
        self.reset_election_timer(now);
        self.outputs
            .push_back(Output::SteppedDown { term: self.term() });
    }

    fn reset_election_timer(&mut self, now: Instant) {
        let range = self.config.election_timeout_min..self.config.election_timeout_max;
        let timeout = election::election_timeout(&mut self.rng, range);
        self.timers.set(Timer::Election, now + timeout);
    }

    fn other_voters(&self) -> Vec<NodeId> {
        let mut voters: BTreeSet<NodeId> = self.voters.incoming.0.clone();
        if let Some(outgoing) = &self.voters.outgoing {
            voters.extend(outgoing.0.iter().copied());
        }
        voters.into_iter().filter(|&v| v != self.id).collect()
    }

    fn persist(&mut self, state: HardState) {
        if let Err(error) = self.state.persist(state) {
            // The state file stopped already and said so.
            let _ = error;
        }
    }

    /// Queues `message` to `to`, to leave once `needs` is durable.
    fn send(&mut self, needs: HardState, to: NodeId, message: Message) {
        self.held.push_back((needs, Envelope { to, message }));
    }

    /// Takes in the completion of a state-file operation.
    pub fn handle_disk(&mut self, io: crate::ids::IoId, result: Result<DiskOutcome, DiskError>) {
        self.state.handle(io, result);
        self.drain_state();
    }

    /// Moves the state file's outputs out, and releases held messages whose
    /// state is durable.
    fn drain_state(&mut self) {
        while let Some(output) = self.state.poll_output() {
            match output {
                StateOutput::Disk(request) => self.outputs.push_back(Output::Disk(request)),
                StateOutput::Durable(_) => {}
                StateOutput::Stopped(error) => self.outputs.push_back(Output::Stopped(error)),
            }
        }
        let durable = self.state.durable();
        while self
            .held
            .front()
            .is_some_and(|(needs, _)| covers(&durable, needs))
        {
            let (_, envelope) = self.held.pop_front().expect("checked");
            self.outputs.push_back(Output::Send(envelope));
        }
    }

    /// The next effect, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(at, _)| at)
    }

    /// Checks the machine's invariants.
    pub fn check_invariants(&self) {
        self.state.check_invariants();
        if let Role::Leader { .. } | Role::Candidate { .. } = self.role {
            assert_eq!(
                self.state.current().voted_for,
                Some(self.id),
                "a candidate or leader voted for itself"
            );
        }
        if self.is_leader() {
            assert!(
                self.timers.deadline(Timer::Election).is_none(),
                "a leader does not stand"
            );
        }
        for (needs, _) in &self.held {
            assert!(
                needs.may_become(&self.state.current()),
                "held messages wait for a state asked for"
            );
        }
    }
}

/// Whether a durable state makes `needs` durable too: the same state, or a
/// later one (states become durable in the order they are asked for).
fn covers(durable: &HardState, needs: &HardState) -> bool {
    durable == needs
        || durable.term > needs.term
        || (durable.term == needs.term && needs.voted_for.is_none())
}
