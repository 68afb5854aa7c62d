//! The node: Raft and its log behind one API, serving clients.
//!
//! Owns client requests: producing a batch (answered with its offsets once
//! committed), consuming from an offset (committed records only, at any
//! node), following (a long-poll parked until new records commit, or its
//! wait runs out: no busy loop), and who leads. Producers that stamp their
//! batches are idempotent: a retried batch the log holds is answered with
//! where it landed, never stored twice (the log keeps the producers' table,
//! `log::producers`, exact from the moment a restarted log starts). It must
//! never answer a produce before its entry is committed, never serve a
//! record past the commit offset, and never decide anything Raft decides:
//! it proposes and reads through Raft, and learns of appends, truncations
//! and commits from Raft's outputs.
//!
//! # Contract
//! The verbs of every machine: `request`, `handle`, `handle_disk`,
//! `handle_timeout` take inputs; drain `poll_output` after each; call
//! `handle_timeout` at `poll_timeout`. Every request gets exactly one
//! [`Output::Reply`] with its client and id.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::bugs::Bug;
use crate::error::Error;
use crate::gossip::machine::{Gossip, Output as GossipOutput};
use crate::gossip::member::State;
use crate::ids::{ClientId, IoId, LogIndex, NodeId, Offset, ReadId, RequestId, Term};
use crate::limits::{CLIENT_REQUESTS_MAX, READ_BYTES_MAX, READ_ENTRIES_MAX, SCRUB_READ_BYTES};
use crate::log::disk::{DiskError, DiskOutcome};
use crate::log::entry::{NewEntry, Stamp};
use crate::log::machine::{Log, ReadBatch, ReadError, ReadFrom};
use crate::log::producers::Decision;
use crate::node::membership::{next_change, Facts, MembershipPolicy, Seen};
use crate::raft::machine::{Output as RaftOutput, Raft, RaftConfig};
use crate::raft::membership::{Change, Refused};
use crate::raft::message::Message;
use crate::raft::quorum::Configuration;
use crate::raft::state::RecoveredState;
use crate::time::{Duration, Instant};

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Append a batch of records; with a stamp, idempotently.
    Produce {
        /// The records, at least one.
        records: Vec<Bytes>,
        /// The producer's id and this batch's sequence number.
        stamp: Option<Stamp>,
    },
    /// Read committed records from `from`.
    Consume {
        /// The first offset wanted.
        from: Offset,
        /// The most records to return.
        max_records: u32,
        /// About the most bytes to return (at least one record).
        max_bytes: u32,
    },
    /// Like `Consume`, at the leader, and linearizable: it sees every
    /// record acknowledged before it began (ReadIndex, thesis §6.4).
    Read {
        /// The first offset wanted.
        from: Offset,
        /// The most records to return.
        max_records: u32,
        /// About the most bytes to return (at least one record).
        max_bytes: u32,
    },
    /// Like `Consume`, but if nothing is committed at `from` yet, wait up
    /// to `wait` for it.
    Follow {
        /// The first offset wanted.
        from: Offset,
        /// The most records to return.
        max_records: u32,
        /// About the most bytes to return (at least one record).
        max_bytes: u32,
        /// How long to wait for a record at `from`.
        wait: Duration,
    },
    /// Who leads?
    WhoLeads,
    /// Hand leadership to this voter (at the leader).
    Transfer {
        /// The voter to lead next.
        to: NodeId,
    },
    /// Change the membership by one node (at the leader); answered once
    /// the change is committed.
    ChangeMembership(Change),
    /// The configuration this node follows.
    Members,
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The batch is committed at offsets `first` to `first + count - 1`.
    Produced {
        /// Its first record's offset.
        first: Offset,
        /// Its records.
        count: u32,
    },
    /// Committed records from the offset asked, in order, and where to
    /// continue (past the last, or the offset asked if there were none).
    Records {
        /// The records and their offsets.
        records: Vec<(Offset, Bytes)>,
        /// The offset to ask for next.
        next: Offset,
    },
    /// Leadership is being handed to `to`.
    Transferring {
        /// The voter that will lead.
        to: NodeId,
    },
    /// The leader this node knows of, in its term.
    Leader {
        /// The leader, if known.
        leader: Option<NodeId>,
        /// The node's term.
        term: Term,
    },
    /// The membership change is committed, by the entry at `index`.
    Changed {
        /// The configuration entry.
        index: LogIndex,
    },
    /// The configuration this node follows, and the entry that set it
    /// (`LogIndex(0)`: the founding one).
    Members {
        /// The voters and learners.
        configuration: Configuration,
        /// The configuration entry.
        index: LogIndex,
    },
    /// The request failed; see why.
    Failed(ClientError),
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Only the leader takes produces; try `leader`.
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// The batch's entry was removed before it committed (the leader
    /// changed): it is not stored; retry it, with the same stamp.
    Lost,
    /// The offset is outside the committed, retained records.
    OutOfRange {
        /// The first retained offset.
        first: Offset,
        /// The offset after the last committed record.
        next: Offset,
    },
    /// A stamped batch came after a gap in its producer's sequence, as this
    /// node knows it: nothing was stored. A node that lags (or a leader
    /// deposed without knowing it yet) may not have seen the batches
    /// before; retry, at the leader.
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
    },
    /// A stamped batch older than the producer's remembered batches.
    Stale {
        /// The producer's last sequence number.
        last: u64,
    },
    /// Too many requests are in progress; retry later.
    Busy,
    /// The batch is malformed or too large.
    Rejected(Error),
    /// The membership change was refused; nothing changed.
    Refused(Refused),
}

/// What the node asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Raft's outputs (sends, disk operations, and what observers may
    /// watch: leadership, commits, appends, truncations, damage).
    Raft(RaftOutput),
    /// The answer to a client's request.
    Reply {
        /// The client.
        client: ClientId,
        /// Its request.
        id: RequestId,
        /// The answer.
        reply: Reply,
    },
    /// Gossip's outputs (datagrams and state to send, incarnations to
    /// persist, and what observers may watch: members' states, metadata,
    /// user events), when the node gossips.
    Gossip(GossipOutput),
}

/// Gossip, and the Raft membership it drives (`node::membership`).
#[derive(Debug)]
struct Steward {
    gossip: Gossip,
    policy: MembershipPolicy,
    /// What gossip says of each member, since when.
    seen: BTreeMap<NodeId, Seen>,
    /// The last time the node was told: dead times that ran out by then
    /// have been acted on.
    now: Instant,
}

/// A produce or a membership change waiting for its entry to commit.
#[derive(Clone, Debug)]
struct Waiter {
    client: ClientId,
    id: RequestId,
    /// The entry's term when it was appended, if known: a different entry
    /// at that index later means this one was lost.
    term: Option<Term>,
    /// The answer once it is committed.
    answer: Reply,
}

/// A consume or follow: where from and how much.
#[derive(Clone, Copy, Debug)]
struct Consumer {
    client: ClientId,
    id: RequestId,
    from: Offset,
    max_records: u32,
    max_bytes: u32,
}

/// How often the scrubber reads a batch back (at most), and the pause
/// between two rounds.
pub const SCRUB_INTERVAL: Duration = Duration::from_millis(500);

/// The least pause between two scrub reads.
pub const SCRUB_PAUSE_MIN: Duration = Duration::from_millis(5);

/// The scrubber: committed entries are read back, a bounded batch every
/// `SCRUB_INTERVAL`, round and round, so that bytes that rot at rest are
/// found (and, by Raft, repaired from another copy) before anyone needs
/// them — not only when a consumer or a lagging follower asks.
#[derive(Clone, Copy, Debug)]
struct Scrub {
    /// The next entry to check.
    next: LogIndex,
    /// The read in flight, if any.
    read: Option<ReadId>,
    /// When the next batch is due: a read's worth of time after it, at
    /// `SCRUB_READ_BYTES` per `SCRUB_INTERVAL`.
    due: Instant,
    /// Passes over the whole committed log completed.
    rounds: u64,
    /// Whether it runs (on unless the owner turns it off).
    on: bool,
}

/// One node.
#[derive(Debug)]
pub struct Node {
    raft: Raft,
    waiting: BTreeMap<LogIndex, Vec<Waiter>>,
    reads: BTreeMap<ReadId, Consumer>,
    /// Follows parked until a record commits at their offset, or until
    /// their deadline.
    parked: Vec<(Instant, Consumer)>,
    /// Linearizable reads waiting for the leadership to be confirmed.
    confirming: BTreeMap<u64, Consumer>,
    next_read: u64,
    scrub: Scrub,
    steward: Option<Steward>,
    outputs: VecDeque<Output>,
}

impl Node {
    /// A node with id `id` among `voters`, over its recovered state and log.
    pub fn new(
        id: NodeId,
        config: RaftConfig,
        voters: Configuration,
        recovered: RecoveredState,
        log: Log,
        seed: u64,
        now: Instant,
    ) -> Node {
        let raft = Raft::new(id, config, voters, recovered, log, seed, now);
        let mut node = Node {
            raft,
            waiting: BTreeMap::new(),
            reads: BTreeMap::new(),
            parked: Vec::new(),
            confirming: BTreeMap::new(),
            next_read: 1,
            scrub: Scrub {
                next: LogIndex(0),
                read: None,
                due: now + SCRUB_INTERVAL,
                rounds: 0,
                on: true,
            },
            steward: None,
            outputs: VecDeque::new(),
        };
        node.drain(now);
        node
    }

    /// The Raft machine, for reading its state.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// A short description for traces.
    pub fn summary(&self) -> crate::raft::machine::Summary {
        self.raft.summary()
    }

    fn held(&self) -> usize {
        self.waiting.values().map(Vec::len).sum::<usize>()
            + self.reads.len()
            + self.parked.len()
            + self.confirming.len()
    }

    fn reply(&mut self, client: ClientId, id: RequestId, reply: Reply) {
        self.outputs.push_back(Output::Reply { client, id, reply });
    }

    fn fail(&mut self, client: ClientId, id: RequestId, error: ClientError) {
        self.reply(client, id, Reply::Failed(error));
    }

    /// Takes in a client's request.
    pub fn request(&mut self, now: Instant, client: ClientId, id: RequestId, request: Request) {
        if self.held() >= CLIENT_REQUESTS_MAX && !matches!(request, Request::WhoLeads) {
            self.fail(client, id, ClientError::Busy);
            return;
        }
        let consumer = |from, max_records, max_bytes| Consumer {
            client,
            id,
            from,
            max_records,
            max_bytes,
        };
        match request {
            Request::Produce { records, stamp } => self.produce(now, client, id, records, stamp),
            Request::Consume {
                from,
                max_records,
                max_bytes,
            } => self.consume(now, consumer(from, max_records, max_bytes), None),
            Request::Follow {
                from,
                max_records,
                max_bytes,
                wait,
            } => self.consume(
                now,
                consumer(from, max_records, max_bytes),
                Some(now + wait),
            ),
            Request::Read {
                from,
                max_records,
                max_bytes,
            } => {
                let read = self.next_read;
                self.next_read += 1;
                match self.raft.read_index(now, read) {
                    Ok(()) => {
                        self.confirming
                            .insert(read, consumer(from, max_records, max_bytes));
                    }
                    Err(Error::NotLeader { leader }) => {
                        self.fail(client, id, ClientError::NotLeader { leader })
                    }
                    Err(_) => self.fail(client, id, ClientError::Busy),
                }
            }
            Request::Transfer { to } => {
                let reply = match self.raft.transfer(now, to) {
                    Ok(()) => Reply::Transferring { to },
                    Err(Error::NotLeader { leader }) => {
                        Reply::Failed(ClientError::NotLeader { leader })
                    }
                    Err(error) => Reply::Failed(ClientError::Rejected(error)),
                };
                self.reply(client, id, reply);
            }
            Request::ChangeMembership(change) => match self.raft.change_membership(now, change) {
                Ok(index) => {
                    let waiter = Waiter {
                        client,
                        id,
                        term: Some(self.raft.term()),
                        answer: Reply::Changed { index },
                    };
                    self.wait_for(index, waiter);
                }
                Err(Refused::NotLeader { leader }) => {
                    self.fail(client, id, ClientError::NotLeader { leader })
                }
                Err(refused) => self.fail(client, id, ClientError::Refused(refused)),
            },
            Request::Members => {
                let reply = Reply::Members {
                    configuration: self.raft.configuration().clone(),
                    index: self.raft.configuration_index(),
                };
                self.reply(client, id, reply);
            }
            Request::WhoLeads => {
                let reply = Reply::Leader {
                    leader: self.raft.leader(),
                    term: self.raft.term(),
                };
                self.reply(client, id, reply);
            }
        }
        self.drain(now);
    }

    fn produce(
        &mut self,
        now: Instant,
        client: ClientId,
        id: RequestId,
        records: Vec<Bytes>,
        stamp: Option<Stamp>,
    ) {
        if !self.raft.is_leader() {
            let leader = self.raft.leader();
            return self.fail(client, id, ClientError::NotLeader { leader });
        }
        if let Some(stamp) = stamp {
            match self.raft.log().decide(stamp) {
                Decision::Append => {}
                Decision::Duplicate(landed) => {
                    let waiter = Waiter {
                        client,
                        id,
                        term: self.raft.log().term(landed.index),
                        answer: Reply::Produced {
                            first: landed.offset,
                            count: landed.records,
                        },
                    };
                    return self.wait_for(landed.index, waiter);
                }
                Decision::OutOfOrder { expected } => {
                    return self.fail(client, id, ClientError::OutOfOrder { expected })
                }
                Decision::Stale { last } => {
                    return self.fail(client, id, ClientError::Stale { last })
                }
            }
        }
        let count = records.len() as u32;
        let mut entry = NewEntry::records(self.raft.term(), records);
        if let Some(stamp) = stamp {
            entry = entry.stamped(stamp);
        }
        match self.raft.propose(now, vec![entry]) {
            Ok(appended) => {
                let waiter = Waiter {
                    client,
                    id,
                    term: Some(self.raft.term()),
                    answer: Reply::Produced {
                        first: appended.first_offset,
                        count,
                    },
                };
                self.wait_for(appended.last, waiter);
            }
            Err(Error::NotLeader { leader }) => {
                self.fail(client, id, ClientError::NotLeader { leader })
            }
            Err(error) => self.fail(client, id, ClientError::Rejected(error)),
        }
    }

    /// Answers `waiter` once `index` commits (at once if it has).
    fn wait_for(&mut self, index: LogIndex, waiter: Waiter) {
        self.waiting.entry(index).or_default().push(waiter);
        self.answer_committed();
    }

    /// Answers every produce whose entry is committed: with its offsets if
    /// the committed entry is its own, or as lost if another replaced it.
    fn answer_committed(&mut self) {
        let commit = self.raft.commit();
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > commit {
                break;
            }
            let (index, waiters) = entry.remove_entry();
            let term = self.raft.log().term(index);
            for waiter in waiters {
                let reply = if waiter.term.is_none() || term.is_none() || waiter.term == term {
                    waiter.answer
                } else {
                    Reply::Failed(ClientError::Lost)
                };
                self.reply(waiter.client, waiter.id, reply);
            }
        }
    }

    /// Serves a consume (or a follow, with a deadline) from committed
    /// records; a follow at the commit offset parks.
    /// The offset consumers are served up to: the commit offset.
    fn served_end(&self) -> Offset {
        if self.raft.config().has_bug(Bug::ServeUncommitted) {
            return self.raft.log().next_offset();
        }
        self.raft.commit_offset()
    }

    fn consume(&mut self, now: Instant, consumer: Consumer, deadline: Option<Instant>) {
        let (first, end) = (self.raft.log().first_offset(), self.served_end());
        if consumer.from < first || consumer.from > end {
            let error = ClientError::OutOfRange { first, next: end };
            return self.fail(consumer.client, consumer.id, error);
        }
        if consumer.from == end {
            match deadline {
                Some(deadline) => self.parked.push((deadline, consumer)),
                None => {
                    let reply = Reply::Records {
                        records: Vec::new(),
                        next: consumer.from,
                    };
                    self.reply(consumer.client, consumer.id, reply);
                }
            }
            return;
        }
        let id = ReadId(self.next_read);
        self.next_read += 1;
        let from = ReadFrom::Offset(consumer.from);
        let max_entries = consumer.max_records.clamp(1, READ_ENTRIES_MAX);
        match self.raft.read(
            now,
            id,
            from,
            max_entries,
            consumer.max_bytes.min(READ_BYTES_MAX),
        ) {
            Ok(()) => {
                self.reads.insert(id, consumer);
            }
            Err(Error::Busy) => self.fail(consumer.client, consumer.id, ClientError::Busy),
            Err(_) => {
                let error = ClientError::OutOfRange { first, next: end };
                self.fail(consumer.client, consumer.id, error);
            }
        }
    }

    fn on_consumed(&mut self, consumer: Consumer, result: Result<ReadBatch, ReadError>) {
        let end = self.served_end();
        let batch = match result {
            Ok(batch) => batch,
            Err(ReadError::Gone) => {
                let first = self.raft.log().first_offset();
                let error = ClientError::OutOfRange { first, next: end };
                return self.fail(consumer.client, consumer.id, error);
            }
            Err(ReadError::Disk(_)) => {
                return self.fail(consumer.client, consumer.id, ClientError::Busy)
            }
        };
        let max = consumer.max_records.max(1) as usize;
        let records: Vec<(Offset, Bytes)> = batch
            .entries
            .iter()
            .flat_map(|entry| entry.records())
            .filter(|(offset, _)| *offset >= consumer.from && *offset < end)
            .take(max)
            .collect();
        // A read stopped by damage right at `from` has nothing to serve
        // here: the client asks another node.
        if records.is_empty() && batch.damaged.is_some() {
            return self.fail(consumer.client, consumer.id, ClientError::Busy);
        }
        let next = records
            .last()
            .map_or(consumer.from, |(offset, _)| offset.next());
        self.reply(
            consumer.client,
            consumer.id,
            Reply::Records { records, next },
        );
    }

    /// Takes in a message from another node.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.raft.handle(now, from, message);
        self.drain(now);
    }

    /// Takes in the completion of a disk operation.
    pub fn handle_disk(&mut self, now: Instant, io: IoId, result: Result<DiskOutcome, DiskError>) {
        self.raft.handle_disk(now, io, result);
        self.drain(now);
    }

    /// Starts gossiping with `gossip`, and lets what it learns drive Raft
    /// membership by `policy` while this node leads: a member found joins
    /// as a learner and is promoted up to `policy.voters`; a member that
    /// left is removed; a member dead for `policy.dead_after` is removed
    /// only while a majority of the remaining voters is alive.
    pub fn start_gossip(&mut self, now: Instant, gossip: Gossip, policy: MembershipPolicy) {
        self.steward = Some(Steward {
            gossip,
            policy,
            seen: BTreeMap::new(),
            now,
        });
        self.drain_gossip(now);
    }

    /// The gossip machine, if this node gossips.
    pub fn gossip(&self) -> Option<&Gossip> {
        self.steward.as_ref().map(|steward| &steward.gossip)
    }

    /// Joins the cluster's gossip through `seeds`.
    pub fn join_gossip(&mut self, now: Instant, seeds: &[NodeId]) {
        if let Some(steward) = self.steward.as_mut() {
            steward.gossip.join(now, seeds);
            self.drain_gossip(now);
        }
    }

    /// Leaves the cluster's gossip gracefully: the leader removes this
    /// node from the configuration once it hears.
    pub fn leave_gossip(&mut self, now: Instant) {
        if let Some(steward) = self.steward.as_mut() {
            steward.gossip.leave(now);
            self.drain_gossip(now);
        }
    }

    /// Takes in gossip's bytes from `from`; malformed bytes are an error
    /// and change nothing. A node that does not gossip ignores them.
    pub fn handle_gossip(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: &[u8],
    ) -> Result<(), cairn_proto::FrameError> {
        if let Some(steward) = self.steward.as_mut() {
            steward.gossip.handle(now, from, bytes)?;
            self.drain_gossip(now);
        }
        Ok(())
    }

    /// Moves gossip's outputs out, keeping what it says of each member, and
    /// asks Raft for the membership change it calls for, if this node leads.
    fn drain_gossip(&mut self, now: Instant) {
        let Some(steward) = self.steward.as_mut() else {
            return;
        };
        steward.now = steward.now.max(now);
        while let Some(output) = steward.gossip.poll_output() {
            if let GossipOutput::Member { member, status, .. } = &output {
                let unchanged = steward
                    .seen
                    .get(member)
                    .is_some_and(|seen| seen.state == status.state);
                if !unchanged {
                    let seen = Seen {
                        state: status.state,
                        since: now,
                    };
                    steward.seen.insert(*member, seen);
                }
            }
            self.outputs.push_back(Output::Gossip(output));
        }
        self.steward_membership(now);
    }

    /// Asks Raft for the next change gossip calls for, if this node leads
    /// (Raft refuses while another change is uncommitted: one at a time).
    fn steward_membership(&mut self, now: Instant) {
        let Some(steward) = self.steward.as_ref() else {
            return;
        };
        if !self.raft.is_leader() {
            return;
        }
        let matched = self.raft.matched();
        let facts = Facts {
            me: self.raft.id(),
            configuration: self.raft.configuration(),
            seen: &steward.seen,
            matched: &matched,
            commit: self.raft.commit(),
            now,
        };
        if let Some(change) = next_change(&steward.policy, &facts) {
            // Refused while a change is under way, or before this leader's
            // no-op commits: asked again at the next event.
            let _ = self.raft.change_membership(now, change);
            self.drain(now);
        }
    }

    /// Fires Raft's and gossip's timers and answers follows whose wait ran
    /// out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.raft.poll_timeout().is_some_and(|at| at <= now) {
            self.raft.handle_timeout(now);
        }
        if let Some(steward) = self.steward.as_mut() {
            if steward.gossip.poll_timeout().is_some_and(|at| at <= now) {
                steward.gossip.handle_timeout(now);
            }
        }
        self.drain_gossip(now);
        self.scrub(now);
        let (due, parked): (Vec<_>, Vec<_>) = self
            .parked
            .drain(..)
            .partition(|(deadline, _)| *deadline <= now);
        self.parked = parked;
        for (_, consumer) in due {
            let reply = Reply::Records {
                records: Vec::new(),
                next: consumer.from,
            };
            self.reply(consumer.client, consumer.id, reply);
        }
        self.drain(now);
    }

    /// Moves Raft's outputs out, acting on those that concern clients.
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.raft.poll_output() {
            match output {
                RaftOutput::Read { id, result } => {
                    if self.scrub.read == Some(id) {
                        self.on_scrubbed(now, result);
                    } else if let Some(consumer) = self.reads.remove(&id) {
                        self.on_consumed(consumer, result);
                    }
                }
                RaftOutput::ReadReady { id, .. } => {
                    if let Some(consumer) = self.confirming.remove(&id) {
                        self.consume(now, consumer, None);
                    }
                }
                RaftOutput::ReadFailed { id } => {
                    if let Some(consumer) = self.confirming.remove(&id) {
                        let leader = self.raft.leader();
                        self.fail(
                            consumer.client,
                            consumer.id,
                            ClientError::NotLeader { leader },
                        );
                    }
                }
                RaftOutput::Truncated { after } => {
                    self.lose_after(after);
                    self.outputs.push_back(Output::Raft(output));
                }
                RaftOutput::Committed { .. } => {
                    self.answer_committed();
                    self.unpark(now);
                    self.outputs.push_back(Output::Raft(output));
                }
                other => self.outputs.push_back(Output::Raft(other)),
            }
        }
    }

    /// Produces waiting for entries after `after` are answered as lost.
    fn lose_after(&mut self, after: LogIndex) {
        for (_, waiters) in self.waiting.split_off(&after.next()) {
            for waiter in waiters {
                self.fail(waiter.client, waiter.id, ClientError::Lost);
            }
        }
    }

    /// Follows parked at an offset that is now committed are served.
    fn unpark(&mut self, now: Instant) {
        let end = self.raft.commit_offset();
        let (ready, parked): (Vec<_>, Vec<_>) =
            self.parked.drain(..).partition(|(_, c)| c.from < end);
        self.parked = parked;
        for (_, consumer) in ready {
            self.consume(now, consumer, None);
        }
    }

    /// The next effect, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let parked = self.parked.iter().map(|(deadline, _)| *deadline).min();
        let scrub = (self.scrub.on && self.scrub.read.is_none()).then_some(self.scrub.due);
        let gossip = self.steward.as_ref().and_then(|s| s.gossip.poll_timeout());
        // A dead member's dead time running out may call for a change.
        let dead_time = self
            .steward
            .as_ref()
            .filter(|_| self.raft.is_leader())
            .and_then(|s| {
                s.seen
                    .values()
                    .filter(|seen| seen.state == State::Dead)
                    .map(|seen| seen.since + s.policy.dead_after)
                    .filter(|&at| at > s.now)
                    .min()
            });
        [self.raft.poll_timeout(), parked, scrub, gossip, dead_time]
            .into_iter()
            .flatten()
            .min()
    }

    /// Before a graceful stop: if this node leads, hands leadership to the
    /// voter whose log matches furthest (the lowest id among equals), and
    /// returns it; `None` if it does not lead or has no other voter.
    pub fn hand_over(&mut self, now: Instant) -> Option<NodeId> {
        let me = self.raft.id();
        let configuration = self.raft.configuration();
        let to = self
            .raft
            .matched()
            .into_iter()
            .filter(|&(id, _)| id != me && configuration.is_voter(id))
            // Furthest first; among equals, the lowest id (max_by_key
            // keeps the last maximum, so ids are visited high to low).
            .rev()
            .max_by_key(|&(_, matched)| matched)
            .map(|(id, _)| id)?;
        self.raft.transfer(now, to).ok()?;
        self.drain(now);
        Some(to)
    }

    /// Turns the scrubber on (the default) or off: a disk that never rots
    /// (a simulated one, told so) need not pay for reading itself back.
    pub fn set_scrubbing(&mut self, on: bool) {
        self.scrub.on = on;
    }

    /// Passes the scrubber has completed over the committed log since the
    /// node started.
    pub fn scrub_rounds(&self) -> u64 {
        self.scrub.rounds
    }

    /// Reads the next batch of committed entries back, if one is due and
    /// the last came back.
    fn scrub(&mut self, now: Instant) {
        if !self.scrub.on || self.scrub.read.is_some() || self.scrub.due > now {
            return;
        }
        self.scrub.due = now + SCRUB_INTERVAL;
        let log = self.raft.log();
        if self.scrub.next > self.raft.commit() {
            // A round is over; the next starts after a whole interval.
            self.scrub.rounds += 1;
            self.scrub.next = log.first_index();
            return;
        }
        self.scrub.next = self.scrub.next.max(log.first_index());
        if self.scrub.next > self.raft.commit() {
            return; // Nothing committed yet.
        }
        let id = ReadId(self.next_read);
        self.next_read += 1;
        let from = ReadFrom::Index(self.scrub.next);
        if self
            .raft
            .read(now, id, from, READ_ENTRIES_MAX, SCRUB_READ_BYTES)
            .is_ok()
        {
            self.scrub.read = Some(id);
        }
    }

    /// A scrub read came back: damage it met is the log's to report, and
    /// Raft's to repair; the next batch starts past what it covered.
    fn on_scrubbed(&mut self, now: Instant, result: Result<ReadBatch, ReadError>) {
        self.scrub.read = None;
        if let Ok(batch) = result {
            // Paced by what it read: SCRUB_READ_BYTES per SCRUB_INTERVAL,
            // however the log's segments cut the reads.
            let bytes: u64 = batch.entries.iter().map(|e| e.data.len() as u64).sum();
            let pause = SCRUB_INTERVAL.as_nanos() * bytes / u64::from(SCRUB_READ_BYTES);
            let pause = pause.clamp(SCRUB_PAUSE_MIN.as_nanos(), SCRUB_INTERVAL.as_nanos());
            self.scrub.due = now + Duration::from_nanos(pause);
            let read_to = batch.entries.last().map(|e| e.index.next());
            let past_damage = batch.damaged.map(|d| d.end);
            if let Some(next) = past_damage.max(read_to) {
                self.scrub.next = next;
            }
        }
    }

    /// Checks the node's invariants.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
        let next = self.raft.log().next_index();
        if let Some((&last, _)) = self.waiting.last_key_value() {
            assert!(last < next, "produces wait only for entries the log holds");
        }
        if let Some((&first, _)) = self.waiting.first_key_value() {
            assert!(
                first > self.raft.commit(),
                "committed produces are answered"
            );
        }
        let end = self.raft.commit_offset();
        assert!(
            self.parked.iter().all(|(_, c)| c.from >= end),
            "a follow parks only while nothing is committed at its offset"
        );
    }
}
