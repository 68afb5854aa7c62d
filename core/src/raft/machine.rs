//! The Raft machine: roles, elections with pre-vote, check-quorum, and the
//! plumbing that joins the log and the state file to them. Replication
//! lives in `leader.rs` and `follower.rs`, as more `impl Raft` blocks.
//!
//! Owns a node's role, term, commit index and log, and the timers that drive
//! elections. It must never let a message leave before the term, vote and
//! entries it announces are durable (RA1, RA2): every outgoing message waits
//! until the state file reports durable a state at least as new as the one
//! it depends on, and the log a durable index at least the one it names.
//!
//! # Contract
//! Same verbs as the log: `handle`, `handle_disk`, `handle_timeout`,
//! `propose` and `read` take inputs; drain `poll_output` after each;
//! `poll_timeout` says when to call `handle_timeout`. `now` never goes
//! backwards. Disk requests of the log and of the state file share one
//! output; their ids never collide (the state file's have the top bit set),
//! and each file's requests are performed in the order given.
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

use crate::bugs::Bug;
use crate::error::Error;
use crate::ids::{IoId, LogIndex, NodeId, Offset, ReadId, Term};
use crate::log::disk::{DiskError, DiskOutcome, DiskRequest};
use crate::log::entry::{ConfigAt, EntryKind};
use crate::log::machine::{
    Appended, Input, Log, Output as LogOutput, ReadBatch, ReadError, ReadFrom,
};
use crate::log::scan::Damage;
use crate::raft::election::{self, LastEntry, VoteRequest};
use crate::raft::leader::Leadership;
use crate::raft::message::{Envelope, Message};
use crate::raft::quorum::Configuration;
use crate::raft::state::{HardState, RecoveredState, StateFile, StateOutput};
use crate::rng::{Rng, Stream};
use crate::time::{Duration, Instant};
use crate::timer::TimerTable;

/// Read ids at or above this are Raft's own (a leader reading entries for
/// a follower); the owner's reads must stay below.
pub const RAFT_READ_IDS: u64 = 1 << 63;

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
    /// The most entries one append message carries (at most
    /// `APPEND_MESSAGE_ENTRIES_MAX`).
    pub append_entries_max: u32,
    /// A known bug switched on (tests only).
    #[cfg(feature = "inject-bugs")]
    pub bug: Option<crate::bugs::Bug>,
}

impl RaftConfig {
    /// Whether `bug` is switched on; always false without `inject-bugs`.
    pub fn has_bug(&self, bug: crate::bugs::Bug) -> bool {
        #[cfg(feature = "inject-bugs")]
        return self.bug == Some(bug);
        #[cfg(not(feature = "inject-bugs"))]
        {
            let _ = bug;
            false
        }
    }
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(50),
            append_entries_max: crate::limits::APPEND_MESSAGE_ENTRIES_MAX,
            #[cfg(feature = "inject-bugs")]
            bug: None,
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

/// A Raft's role, term and log, as traces show them (see [`Raft::summary`]):
/// its text is one short line, and a driver may take its fields instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The current term.
    pub term: Term,
    /// The role, with what the line shows of it.
    pub role: RoleSummary,
    /// The index of the last entry.
    pub last: LogIndex,
    /// The commit index.
    pub commit: LogIndex,
}

/// What a summary shows of a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleSummary {
    /// A follower, and the leader it knows, if any.
    Follower(Option<NodeId>),
    /// A pre-candidate, and how many granted it a pre-vote.
    PreCandidate(usize),
    /// A candidate, and how many granted it a vote.
    Candidate(usize),
    /// The leader.
    Leader,
}

impl core::fmt::Display for Summary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[{} ", self.term)?;
        match self.role {
            RoleSummary::Follower(Some(leader)) => write!(f, "follower of {leader}")?,
            RoleSummary::Follower(None) => f.write_str("follower")?,
            RoleSummary::PreCandidate(granted) => write!(f, "pre-candidate {granted}")?,
            RoleSummary::Candidate(granted) => write!(f, "candidate {granted}")?,
            RoleSummary::Leader => f.write_str("leader")?,
        }
        write!(f, " last {} commit {}]", self.last, self.commit)
    }
}

/// What the machine asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this message.
    Send(Envelope),
    /// Perform this disk operation; report it with `handle_disk`.
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
    /// The commit index moved: every entry through `index` is committed,
    /// and every record before `offset`.
    Committed {
        /// The commit index.
        index: LogIndex,
        /// The offset after the last committed record.
        offset: Offset,
    },
    /// Every entry after `after` was removed from the log (a conflict with
    /// the leader's, or a snapshot): whatever was said of them is void.
    Truncated {
        /// The last entry kept.
        after: LogIndex,
    },
    /// An owner's read completed.
    Read {
        /// The read's id.
        id: ReadId,
        /// Its entries, or why there are none.
        result: Result<ReadBatch, ReadError>,
    },
    /// A snapshot replaced the log: it starts after `last_index`, with
    /// the leader's producer table as of there (the log keeps it).
    Installed {
        /// The snapshot's last index.
        last_index: LogIndex,
    },
    /// A linearizable read may serve everything committed through `index`
    /// (the commit index when it began; this node led throughout).
    ReadReady {
        /// The read's id, as given to `read_index`.
        id: u64,
        /// The commit index when the read began.
        index: LogIndex,
    },
    /// A linearizable read cannot be confirmed: this node stopped leading.
    ReadFailed {
        /// The read's id.
        id: u64,
    },
    /// The configuration in effect changed (an entry naming one was
    /// appended, or removed): it is now `configuration`, set by the entry
    /// at `index` (`LogIndex(0)`: the bootstrap).
    Configured {
        /// The configuration entry.
        index: LogIndex,
        /// The voters and learners.
        configuration: Configuration,
    },
    /// Entries were found damaged; they are never served.
    Damaged(Damage),
    /// A disk failed; the node must stop.
    Stopped(DiskError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Election,
    Heartbeat,
    CheckQuorum,
}

/// A message waiting for what it announces to be durable.
#[derive(Clone, Debug)]
pub(super) struct Held {
    /// The term and vote it depends on.
    pub(super) needs: HardState,
    /// The last entry it says is stored (`LogIndex(0)` for none).
    pub(super) needs_log: LogIndex,
    pub(super) envelope: Envelope,
}

/// One node's Raft.
#[derive(Debug)]
pub struct Raft {
    pub(super) id: NodeId,
    pub(super) config: RaftConfig,
    /// The configuration in effect: the last in the log (§4.1).
    pub(super) configuration: Configuration,
    /// Where it comes from: the log's last configuration entry.
    pub(super) config_at: ConfigAt,
    /// The configuration before any entry names one: the founding
    /// voters, the same on each of them (empty on a node that joins later).
    pub(super) bootstrap: Configuration,
    pub(super) role: Role,
    pub(super) state: StateFile,
    pub(super) log: Log,
    /// The highest index known committed; never falls while running.
    pub(super) commit: LogIndex,
    /// The offset after the last committed record.
    pub(super) commit_offset: Offset,
    pub(super) rng: ChaCha8Rng,
    pub(super) timers: TimerTable<Timer>,
    /// When a leader was last heard from (for leader stickiness).
    pub(super) leader_contact: Option<Instant>,
    /// Messages waiting for the state they announce to be durable.
    pub(super) held: VecDeque<Held>,
    /// A leader's replication state; `None` unless leading.
    pub(super) leadership: Option<Leadership>,
    /// Replication reads started, ever (their ids follow `RAFT_READ_IDS`).
    pub(super) replication_reads: u64,
    /// The read round of the append being answered (echoed in replies).
    pub(super) answering_round: u64,
    /// Read rounds started, ever (a new leader's rounds go on from here).
    pub(super) read_rounds: u64,
    pub(super) outputs: VecDeque<Output>,
}

impl Raft {
    /// A node with id `id`, its state as recovered, over `log`, drawing
    /// from `seed`. `bootstrap` is the configuration until the log names
    /// one: the founding voters on each of them, empty on a node that
    /// joins later (it waits to be added and contacted).
    pub fn new(
        id: NodeId,
        config: RaftConfig,
        bootstrap: Configuration,
        recovered: RecoveredState,
        mut log: Log,
        seed: u64,
        now: Instant,
    ) -> Raft {
        assert!(config.election_timeout_min < config.election_timeout_max);
        assert!(
            config.heartbeat_interval < config.election_timeout_min,
            "heartbeats outpace elections"
        );
        assert!(
            (1..=crate::limits::APPEND_MESSAGE_ENTRIES_MAX).contains(&config.append_entries_max),
            "an append message carries at least one entry, within the limit"
        );
        // What the log retains was committed once (§7): the first retained
        // index minus one is the snapshot's end.
        let commit = log.first_index().prev();
        let commit_offset = log.first_offset();
        log.set_retention_floor(commit);
        let mut raft = Raft {
            id,
            config,
            configuration: bootstrap.clone(),
            config_at: ConfigAt::default(),
            bootstrap,
            role: Role::Follower { leader: None },
            state: StateFile::new(recovered),
            log,
            commit,
            commit_offset,
            rng: Rng::new(seed).stream(Stream::Raft),
            timers: TimerTable::default(),
            leader_contact: None,
            held: VecDeque::new(),
            leadership: None,
            replication_reads: 0,
            answering_round: 0,
            read_rounds: 0,
            outputs: VecDeque::new(),
        };
        raft.config_at = raft.log.latest_config().clone();
        raft.configuration = raft.configuration_of(&raft.config_at.data.clone());
        raft.reset_election_timer(now);
        raft.drain(now);
        raft
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term (durable or about to be).
    pub fn term(&self) -> Term {
        self.state.current().term
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The leader this node knows of in its term (itself if leading).
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader { .. } => Some(self.id),
            Role::Follower { leader } => leader,
            _ => None,
        }
    }

    /// The log, for reading its state.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The commit index.
    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    /// The offset after the last committed record.
    pub fn commit_offset(&self) -> Offset {
        self.commit_offset
    }

    /// The timing (and, in tests, the bug switched on).
    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    /// The configuration in effect: the last in the log.
    pub fn configuration(&self) -> &Configuration {
        &self.configuration
    }

    /// The index of the entry that set it (`LogIndex(0)`: the bootstrap).
    pub fn configuration_index(&self) -> LogIndex {
        self.config_at.index
    }

    /// A short description of the role, term and log, for traces:
    /// `[t3 follower of n2 last i7 commit i6]`.
    pub fn summary(&self) -> Summary {
        let role = match &self.role {
            Role::Follower { leader } => RoleSummary::Follower(*leader),
            Role::PreCandidate { granted } => RoleSummary::PreCandidate(granted.len()),
            Role::Candidate { granted } => RoleSummary::Candidate(granted.len()),
            Role::Leader { .. } => RoleSummary::Leader,
        };
        Summary {
            term: self.term(),
            role,
            last: self.last_entry().index,
            commit: self.commit,
        }
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// The log's last entry, for elections.
    pub(super) fn last_entry(&self) -> LastEntry {
        LastEntry {
            term: self.log.last_term(),
            index: self.log.next_index().prev(),
        }
    }

    /// Takes in a message from `from`.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        if from == self.id {
            return; // An echo.
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
            self.step_down(now, message.term(), None);
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
            Message::Append {
                term,
                prev_index,
                prev_term,
                commit,
                entries,
                round,
            } => {
                self.answering_round = round;
                self.on_append(now, from, term, prev_index, prev_term, commit, entries);
                self.answering_round = 0;
            }
            Message::AppendReply {
                term,
                round,
                result,
            } => self.on_append_reply(now, from, term, round, result),
            Message::Snapshot {
                term,
                last_index,
                last_term,
                next_offset,
                config_index,
                config,
                state,
            } => {
                let config = ConfigAt {
                    index: config_index,
                    data: config,
                };
                let end = (last_index, last_term, next_offset);
                self.on_snapshot(now, from, term, end, config, state);
            }
            Message::TimeoutNow { term } => self.on_timeout_now(now, from, term),
        }
        self.drain(now);
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
            self.last_entry(),
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
        let needs = if self.config.has_bug(Bug::VoteBeforeSync) {
            self.state.durable()
        } else {
            decision.state
        };
        self.send(needs, LogIndex(0), request.candidate, reply);
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
                if self.configuration.agrees(votes) {
                    self.stand(now);
                }
            }
            Role::Candidate { granted: votes } if !pre_vote && granted && term == current => {
                votes.insert(from);
                if self.configuration.agrees(votes) {
                    self.lead(now);
                }
            }
            _ => {}
        }
    }

    /// Follows `leader` in the current term, whose message just arrived.
    pub(super) fn follow(&mut self, now: Instant, leader: NodeId) {
        if !matches!(self.role, Role::Follower { leader: Some(l) } if l == leader) {
            let was_leader = self.is_leader();
            self.role = Role::Follower {
                leader: Some(leader),
            };
            self.timers.stop(Timer::Heartbeat);
            self.timers.stop(Timer::CheckQuorum);
            if was_leader {
                self.end_leadership();
                self.outputs
                    .push_back(Output::SteppedDown { term: self.term() });
            }
        }
        self.leader_contact = Some(now);
        self.reset_election_timer(now);
    }

    /// Drops the leader's state; reads it could not confirm fail.
    fn end_leadership(&mut self) {
        if let Some(leadership) = self.leadership.take() {
            for id in leadership.pending_read_ids() {
                self.outputs.push_back(Output::ReadFailed { id });
            }
        }
    }

    /// Moves to a higher term as a follower (§5.1).
    fn step_down(&mut self, now: Instant, term: Term, leader: Option<NodeId>) {
        assert!(term > self.term(), "stepping down moves to a higher term");
        let was_leader = self.is_leader();
        if was_leader {
            // A leader's election timer is off: a deposed leader that hears
            // from no new one must stand again in time (seed 1000622).
            self.reset_election_timer(now);
        }
        self.persist(HardState {
            term,
            voted_for: None,
        });
        self.role = Role::Follower { leader };
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::CheckQuorum);
        if was_leader {
            self.end_leadership();
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
        if self.log.poll_timeout().is_some_and(|at| at <= now) {
            self.log.handle_timeout(now);
        }
        self.drain(now);
    }

    fn on_election_timeout(&mut self, now: Instant) {
        if self.is_leader() {
            return;
        }
        self.reset_election_timer(now);
        if !self.configuration.is_voter(self.id) {
            return; // Learners and strangers never stand (thesis §4.2.1).
        }
        self.role = Role::PreCandidate {
            granted: BTreeSet::from([self.id]),
        };
        if self.configuration.agrees(&BTreeSet::from([self.id]))
            || self.config.has_bug(Bug::SkipPreVote)
        {
            return self.stand(now);
        }
        let term = self.term().next();
        self.ask_for_votes(term, true, false);
    }

    /// Thesis §3.10: the leader of this term hands leadership over; stand
    /// at once, without pre-votes, and ask for votes that a known leader
    /// does not silence.
    fn on_timeout_now(&mut self, now: Instant, from: NodeId, term: Term) {
        if term != self.term()
            || self.leader() != Some(from)
            || !self.configuration.is_voter(self.id)
        {
            return;
        }
        self.stand_now(now, true);
    }

    /// Raises the term, votes for itself and asks for votes (§5.2).
    fn stand(&mut self, now: Instant) {
        self.stand_now(now, false);
    }

    fn stand_now(&mut self, now: Instant, transfer: bool) {
        let term = self.term().next();
        self.persist(HardState {
            term,
            voted_for: Some(self.id),
        });
        self.role = Role::Candidate {
            granted: BTreeSet::from([self.id]),
        };
        self.reset_election_timer(now);
        if self.configuration.agrees(&BTreeSet::from([self.id])) {
            return self.lead(now);
        }
        self.ask_for_votes(term, false, transfer);
    }

    fn ask_for_votes(&mut self, term: Term, pre_vote: bool, transfer: bool) {
        let last = self.last_entry();
        let message = Message::VoteRequest {
            term,
            last_term: last.term,
            last_index: last.index,
            pre_vote,
            transfer,
        };
        for voter in self.other_voters() {
            self.send(self.state.current(), LogIndex(0), voter, message.clone());
        }
    }

    /// Check-quorum (thesis §6.2): a leader that has not heard from a
    /// majority within an election timeout steps down.
    fn on_check_quorum(&mut self, now: Instant) {
        let Role::Leader { heard } = &mut self.role else {
            return;
        };
        let mut reached = std::mem::take(heard);
        reached.insert(self.id);
        if self.configuration.agrees(&reached) {
            self.timers
                .set(Timer::CheckQuorum, now + self.config.election_timeout_min);
            return;
        }
        self.relinquish(now);
    }

    /// Stops leading, staying in the term, with no leader known.
    pub(super) fn relinquish(&mut self, now: Instant) {
        self.role = Role::Follower { leader: None };
        self.end_leadership();
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::CheckQuorum);
        self.reset_election_timer(now);
        self.outputs
            .push_back(Output::SteppedDown { term: self.term() });
    }

    pub(super) fn reset_election_timer(&mut self, now: Instant) {
        let range = self.config.election_timeout_min..self.config.election_timeout_max;
        let timeout = election::election_timeout(&mut self.rng, range);
        self.timers.set(Timer::Election, now + timeout);
    }

    pub(super) fn other_voters(&self) -> Vec<NodeId> {
        let voters = self.configuration.voters.0.iter();
        voters.copied().filter(|&v| v != self.id).collect()
    }

    /// Voters and learners but this node: whom a leader replicates to.
    pub(super) fn other_members(&self) -> Vec<NodeId> {
        let members = self.configuration.members();
        members.filter(|&v| v != self.id).collect()
    }

    fn persist(&mut self, state: HardState) {
        if let Err(error) = self.state.persist(state) {
            // The state file stopped already and said so.
            let _ = error;
        }
    }

    /// Queues `message` to `to`, to leave once `needs` is durable and the
    /// log is durable through `needs_log`.
    pub(super) fn send(
        &mut self,
        needs: HardState,
        needs_log: LogIndex,
        to: NodeId,
        message: Message,
    ) {
        self.held.push_back(Held {
            needs,
            needs_log,
            envelope: Envelope { to, message },
        });
    }

    /// Takes in the completion of a disk operation of the log or of the
    /// state file.
    pub fn handle_disk(&mut self, now: Instant, io: IoId, result: Result<DiskOutcome, DiskError>) {
        if StateFile::owns(io) {
            self.state.handle(io, result);
        } else {
            self.log.handle(now, Input::Disk { io, result });
        }
        self.drain(now);
    }

    /// Starts an owner's read of the log; it completes with an
    /// [`Output::Read`]. `id` must be below [`RAFT_READ_IDS`].
    pub fn read(
        &mut self,
        now: Instant,
        id: ReadId,
        from: ReadFrom,
        max_entries: u32,
        max_bytes: u32,
    ) -> Result<(), Error> {
        assert!(
            id.get() < RAFT_READ_IDS,
            "the owner's read ids stay below Raft's"
        );
        let result = self.log.read(id, from, max_entries, max_bytes);
        self.drain(now);
        result
    }

    /// Moves the log's and the state file's outputs out, reacts to
    /// durability, and releases held messages whose needs are durable.
    pub(super) fn drain(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(output) = self.state.poll_output() {
                busy = true;
                match output {
                    StateOutput::Disk(request) => self.outputs.push_back(Output::Disk(request)),
                    StateOutput::Durable(_) => {}
                    StateOutput::Stopped(error) => self.outputs.push_back(Output::Stopped(error)),
                }
            }
            while let Some(output) = self.log.poll_output() {
                busy = true;
                match output {
                    LogOutput::Disk(request) => self.outputs.push_back(Output::Disk(request)),
                    LogOutput::Durable { .. } => self.on_log_durable(now),
                    LogOutput::Read { id, result } if id.get() >= RAFT_READ_IDS => {
                        self.on_replication_read(now, id, result)
                    }
                    LogOutput::Read { id, result } => {
                        self.outputs.push_back(Output::Read { id, result })
                    }
                    LogOutput::Damaged(damage) => {
                        self.hand_over_damaged(now, damage.first);
                        self.outputs.push_back(Output::Damaged(damage));
                    }
                    // Whoever needed the index asks again: a follower's
                    // leader re-sends, a leader re-sends at its heartbeat.
                    LogOutput::IndexLoaded { .. } => {}
                    LogOutput::Stopped(error) => self.outputs.push_back(Output::Stopped(error)),
                }
            }
            if !busy {
                break;
            }
        }
        self.leave_if_removed(now);
        let durable = self.state.durable();
        let durable_log = self.log.durable_index();
        while self
            .held
            .front()
            .is_some_and(|held| covers(&durable, &held.needs) && held.needs_log <= durable_log)
        {
            let held = self.held.pop_front().expect("checked");
            self.outputs.push_back(Output::Send(held.envelope));
        }
    }

    /// Moves the commit index to `index` (never back), and tells the owner.
    pub(super) fn commit_to(&mut self, index: LogIndex) {
        if index <= self.commit {
            return;
        }
        assert!(
            index < self.log.next_index(),
            "only entries the log holds are committed"
        );
        self.commit = index;
        if let Some(offset) = self.log.offset_after(index) {
            self.commit_offset = offset;
        }
        self.log.set_retention_floor(index);
        self.outputs.push_back(Output::Committed {
            index,
            offset: self.commit_offset,
        });
    }

    /// Appends to the log (which learns the stamped batches among the
    /// entries itself: see `log::producers`), and hands the entries back
    /// with the frames they were stored as.
    pub(super) fn append_to_log(
        &mut self,
        now: Instant,
        entries: Vec<crate::log::entry::NewEntry>,
    ) -> Result<(Appended, Vec<crate::log::entry::NewEntry>), Error> {
        let configures = entries.iter().any(|e| e.kind == EntryKind::Config);
        let appended = self.log.append_framed(now, entries)?;
        if configures {
            self.refresh_configuration();
        }
        Ok(appended)
    }

    /// The log lost every entry after `after`: drops held acknowledgements
    /// of them, which must never be counted, and tells the owner.
    pub(super) fn truncated(&mut self, after: LogIndex) {
        self.held.retain(|held| held.needs_log <= after);
        self.outputs.push_back(Output::Truncated { after });
        self.refresh_configuration();
    }

    /// Starts a linearizable read (ReadIndex, thesis §6.4): it completes
    /// with [`Output::ReadReady`] once a majority has confirmed this node's
    /// leadership after now, or with [`Output::ReadFailed`]. The leader
    /// must have committed an entry of its own term first (`Error::Busy`
    /// until then).
    pub fn read_index(&mut self, now: Instant, id: u64) -> Result<(), Error> {
        let result = self.start_read(id);
        self.drain(now);
        result
    }

    /// Hands leadership to the voter `to` (thesis §3.10): proposals stop,
    /// `to` is brought up to date, then told to stand at once. If no new
    /// leader appears within an election timeout, this node leads on.
    pub fn transfer(&mut self, now: Instant, to: NodeId) -> Result<(), Error> {
        let result = self.start_transfer(now, to);
        self.drain(now);
        result
    }

    /// Proposes entries at the leader: they are appended to its log and
    /// replicated; they are committed with a later [`Output::Committed`].
    pub fn propose(
        &mut self,
        now: Instant,
        entries: Vec<crate::log::entry::NewEntry>,
    ) -> Result<Appended, Error> {
        let result = self.append_as_leader(now, entries);
        self.drain(now);
        result
    }

    /// The next effect, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let raft = self.timers.next().map(|(at, _)| at);
        match (raft, self.log.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks the machine's invariants.
    pub fn check_invariants(&self) {
        self.state.check_invariants();
        self.log.check_invariants();
        if let Role::Leader { .. } | Role::Candidate { .. } = self.role {
            assert_eq!(
                self.state.current().voted_for,
                Some(self.id),
                "a candidate or leader voted for itself"
            );
        }
        assert_eq!(
            self.is_leader(),
            self.leadership.is_some(),
            "a leader and only a leader keeps replication state"
        );
        assert_eq!(
            &self.config_at,
            self.log.latest_config(),
            "the configuration is the last in the log (thesis §4.1)"
        );
        assert!(
            self.is_leader() || self.timers.deadline(Timer::Election).is_some(),
            "a node that does not lead always has an election timer armed"
        );
        if let Some(leadership) = &self.leadership {
            assert!(
                self.timers.deadline(Timer::Election).is_none(),
                "a leader does not stand"
            );
            // Sets of equal size, one within the other (no list is built:
            // this runs after every step).
            let members = &self.configuration;
            let others = members.voters.0.len() + members.learners.len()
                - usize::from(members.is_member(self.id));
            assert!(
                leadership.progress.len() == others
                    && leadership
                        .progress
                        .keys()
                        .all(|&id| id != self.id && members.is_member(id)),
                "a leader replicates to every other member, and only to them"
            );
            leadership.check_invariants(self.log.next_index());
        }
        assert!(
            self.commit < self.log.next_index(),
            "the commit index is within the log"
        );
        assert!(
            self.commit_offset <= self.log.next_offset(),
            "committed records are within the log"
        );
        for held in &self.held {
            assert!(
                held.needs.may_become(&self.state.current()),
                "held messages wait for a state asked for"
            );
            assert!(
                held.needs_log < self.log.next_index(),
                "held acknowledgements name entries the log holds"
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
