//! The clients of a simulated run, and what they were promised.
//!
//! Owns the clients — idempotent producers that send batches of unique
//! records to whichever node they believe leads and retry with the same
//! stamp until answered, and a consumer that follows the log from offset 0
//! across nodes — and the ledger of every acknowledgement, which the
//! checkers hold the cluster to: an acknowledged record stays at its offset
//! with its bytes; a committed entry never changes; consumers see offsets
//! dense and in order, each record once, only records that were produced.
//! Clients talk to nodes through the simulated network like any peer. It
//! must never look inside a node, and never draw from anything but its own
//! seeded stream.

use std::collections::BTreeMap;
use std::io::Write as _;

use bytes::Bytes;
use cairn_core::ids::{ClientId, LogIndex, NodeId, Offset, RequestId, Term};
use cairn_core::log::entry::Stamp;
use cairn_core::node::machine::{ClientError, Reply, Request};
use cairn_core::raft::machine::Raft;
use cairn_core::rng::{Rng, Stream};
use cairn_core::time::{Duration, Instant};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::world::Failure;

/// How hard the clients push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// Producers, each with one batch in flight at a time.
    pub producers: u64,
    /// Mean time between a producer's batches.
    pub interval: Duration,
    /// The most records in one batch.
    pub batch_max: usize,
    /// Each record's size: its unique name, padded to this many bytes.
    pub record_bytes: usize,
}

/// The records of the last read-back checked one by one, from `first` on
/// (a read-back's offsets are dense: one record per offset).
#[derive(Default)]
struct ReadBack {
    first: Offset,
    records: Vec<Bytes>,
}

impl ReadBack {
    fn get(&self, offset: Offset) -> Option<&Bytes> {
        let at = offset.0.checked_sub(self.first.0)?;
        self.records.get(usize::try_from(at).ok()?)
    }
}

/// An acknowledged record and its number.
struct Acked {
    record: Bytes,
    number: usize,
}

/// Whether two records hold the same bytes. A record acknowledged and the
/// record produced are one slice of memory, equal without a byte compared
/// (a replica's record read back is its own disk's copy, and is compared).
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// The network address of client `n`: clients are peers on the network,
/// numbered after the nodes.
pub fn client_address(n: u64) -> NodeId {
    NodeId(CLIENT_ADDRESSES + n)
}

/// Where client addresses start.
pub const CLIENT_ADDRESSES: u64 = 1_000;

/// How long a client waits for an answer before asking another node.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a client waits before retrying after a refusal.
const BACKOFF: Duration = Duration::from_millis(30);
/// How long the reader waits between two reads.
const READ_INTERVAL: Duration = Duration::from_millis(200);
/// How long a follow may park at a node.
const FOLLOW_WAIT: Duration = Duration::from_millis(400);

/// A request on its way, and when to give up on it.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: RequestId,
    deadline: Instant,
}

/// A producer: one batch at a time, retried with its stamp until answered.
#[derive(Clone, Debug)]
struct Producer {
    n: u64,
    target: NodeId,
    sequence: u64,
    batch: Option<Vec<Bytes>>,
    /// The number of the batch's first record (the rest follow).
    batch_first: usize,
    inflight: Option<InFlight>,
    /// When to send next (a new batch, or a retry after a refusal).
    next_at: Instant,
}

/// A consumer following the log from offset 0.
#[derive(Clone, Debug)]
struct Consumer {
    n: u64,
    target: NodeId,
    next: Offset,
    inflight: Option<InFlight>,
    next_at: Instant,
}

/// Which of the reading clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// The consumer following the log.
    Follower,
    /// The reader checking linearizable reads.
    Reader,
}
use Reading::{Follower, Reader};

/// A message for the network: a request to a node.
pub type Send = (NodeId, NodeId, ClientId, RequestId, Request);

/// The clients and their ledger.
pub struct Workload {
    options: WorkloadOptions,
    rng: ChaCha8Rng,
    seed: u64,
    nodes: u64,
    producers: Vec<Producer>,
    consumer: Consumer,
    /// A reader checking that a linearizable read at the leader sees the
    /// last record acknowledged before it began (its `next` is that offset).
    reader: Consumer,
    next_request: u64,
    /// Every record ever sent in a produce, with its number (the count of
    /// records produced before it), by which the sets below know it.
    produced: BTreeMap<Bytes, usize>,
    /// Every acknowledged record, by offset.
    acked: BTreeMap<Offset, Acked>,
    /// Records the following consumer has seen, by number.
    consumed: Vec<bool>,
    /// The records the last node whose read-back was checked record by
    /// record passed every check with: another node serving the very same
    /// records at the same offsets passes the per-record checks too.
    read_back: ReadBack,
    /// Every committed entry's term as first seen, and the term of the
    /// node that first reported it committed (an upper bound on the term
    /// in which it was committed).
    committed: BTreeMap<LogIndex, (Term, Term)>,
    /// The highest commit index checked, per node.
    checked: BTreeMap<NodeId, LogIndex>,
    /// Whether the clients still start new batches.
    producing: bool,
}

/// Entries behind a new commit index whose terms are compared with what
/// was committed before, at most (the rest were compared earlier).
const COMMIT_CHECK_WINDOW: u64 = 256;

/// The clients' seed, a child of the scenario's (the world names its others).
const CHILD_CLIENTS: u64 = 3_000;

impl Workload {
    /// Clients of a cluster of `nodes`, drawing from `seed`'s client stream.
    pub fn new(options: WorkloadOptions, seed: u64, nodes: u64) -> Workload {
        let mut rng =
            Rng::new(Rng::new(seed).child(Stream::World, CHILD_CLIENTS)).stream(Stream::World);
        let producers = (0..options.producers)
            .map(|n| Producer {
                n,
                target: NodeId(rng.random_range(1..=nodes)),
                sequence: 0,
                batch: None,
                batch_first: 0,
                inflight: None,
                next_at: Instant::ZERO + options.interval,
            })
            .collect();
        Workload {
            consumer: Consumer {
                n: options.producers,
                target: NodeId(rng.random_range(1..=nodes)),
                next: Offset(0),
                inflight: None,
                next_at: Instant::ZERO + options.interval,
            },
            reader: Consumer {
                n: options.producers + 1,
                target: NodeId(rng.random_range(1..=nodes)),
                next: Offset(0),
                inflight: None,
                next_at: Instant::ZERO + READ_INTERVAL,
            },
            options,
            rng,
            seed,
            nodes,
            producers,
            next_request: 1,
            produced: BTreeMap::new(),
            acked: BTreeMap::new(),
            consumed: Vec::new(),
            read_back: ReadBack::default(),
            committed: BTreeMap::new(),
            checked: BTreeMap::new(),
            producing: true,
        }
    }

    /// Clients stop starting batches (those in flight go on).
    pub fn stop_producing(&mut self) {
        self.producing = false;
    }

    /// Whether every producer has been answered.
    pub fn quiet(&self) -> bool {
        self.producers.iter().all(|p| p.batch.is_none())
    }

    /// When a client next wants to act.
    pub fn next_at(&self) -> Instant {
        let producers = self.producers.iter().map(|p| match p.inflight {
            Some(inflight) => inflight.deadline,
            None => p.next_at,
        });
        let consumers = [&self.consumer, &self.reader].map(|c| match c.inflight {
            Some(inflight) => inflight.deadline,
            None => c.next_at,
        });
        producers
            .chain(consumers)
            .min()
            .expect("a consumer at least")
    }

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn other_node(&mut self, not: NodeId) -> NodeId {
        if self.nodes == 1 {
            return NodeId(1);
        }
        loop {
            let node = NodeId(self.rng.random_range(1..=self.nodes));
            if node != not {
                return node;
            }
        }
    }

    /// The consumer or the reader.
    fn reading_client(&mut self, which: Reading) -> &mut Consumer {
        match which {
            Follower => &mut self.consumer,
            Reader => &mut self.reader,
        }
    }

    /// `which` asks a node other than `from`, after a pause.
    fn retry_elsewhere(&mut self, which: Reading, from: NodeId, now: Instant) {
        let target = self.other_node(from);
        let client = self.reading_client(which);
        client.target = target;
        client.next_at = now + BACKOFF;
    }

    /// Every client whose time has come acts: sends a batch, retries one,
    /// or follows on. Returns the requests to send.
    pub fn tick(&mut self, now: Instant) -> Vec<Send> {
        let mut sends = Vec::new();
        for position in 0..self.producers.len() {
            let producer = &self.producers[position];
            let timed_out = producer.inflight.is_some_and(|f| f.deadline <= now);
            let due = producer.inflight.is_none() && producer.next_at <= now;
            if timed_out {
                // No answer: the batch may or may not be stored; ask
                // another node, with the same stamp.
                let target = self.other_node(producer.target);
                self.producers[position].target = target;
            }
            if timed_out || due {
                if let Some(send) = self.send_batch(now, position) {
                    sends.push(send);
                }
            }
        }
        let consumer = &self.consumer;
        let timed_out = consumer.inflight.is_some_and(|f| f.deadline <= now);
        if timed_out || (consumer.inflight.is_none() && consumer.next_at <= now) {
            if timed_out {
                self.consumer.target = self.other_node(self.consumer.target);
            }
            sends.push(self.send_follow(now));
        }
        let reader = &self.reader;
        let timed_out = reader.inflight.is_some_and(|f| f.deadline <= now);
        if timed_out || (reader.inflight.is_none() && reader.next_at <= now) {
            if timed_out {
                self.reader.target = self.other_node(self.reader.target);
            }
            sends.extend(self.send_read(now));
        }
        sends
    }

    /// A linearizable read of the last record acknowledged so far.
    fn send_read(&mut self, now: Instant) -> Option<Send> {
        let Some((&last, _)) = self.acked.last_key_value() else {
            self.reader.next_at = now + READ_INTERVAL;
            return None;
        };
        let id = self.request_id();
        let reader = &mut self.reader;
        reader.next = last;
        reader.inflight = Some(InFlight {
            id,
            deadline: now + REQUEST_TIMEOUT,
        });
        let request = Request::Read {
            from: last,
            max_records: 1,
            max_bytes: 64 * 1024,
        };
        let client = ClientId(reader.n);
        Some((client_address(reader.n), reader.target, client, id, request))
    }

    fn on_read_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        id: RequestId,
        reply: Reply,
    ) -> Result<Vec<Send>, Failure> {
        let reader = &mut self.reader;
        if reader.inflight.map(|f| f.id) != Some(id) {
            return Ok(Vec::new());
        }
        reader.inflight = None;
        let asked = reader.next;
        let stale = |what: String| {
            Err(Failure {
                checker: "linearizable reads",
                what,
            })
        };
        match reply {
            Reply::Records { records, .. } => {
                let acked = &self
                    .acked
                    .get(&asked)
                    .expect("asked for an acked record")
                    .record;
                if records.first().map(|(o, r)| (*o, r)) != Some((asked, acked)) {
                    return stale(format!(
                        "{from} answered a read of {asked}, acked before it began, with {:?}",
                        records.first()
                    ));
                }
                self.reader.next_at = now + READ_INTERVAL;
            }
            Reply::Failed(ClientError::OutOfRange { first, next }) if asked >= first => {
                return stale(format!(
                    "{from} said {asked}, acked before the read began, is past its end {next}"
                ));
            }
            Reply::Failed(ClientError::NotLeader {
                leader: Some(leader),
            }) if leader != from => {
                self.reader.target = leader;
                self.reader.next_at = now;
            }
            _ => self.retry_elsewhere(Reader, from, now),
        }
        Ok(Vec::new())
    }

    fn send_batch(&mut self, now: Instant, position: usize) -> Option<Send> {
        if self.producers[position].batch.is_none() {
            if !self.producing {
                self.producers[position].next_at = Instant::from_nanos(u64::MAX);
                return None;
            }
            let count = self.rng.random_range(1..=self.options.batch_max);
            let producer = &self.producers[position];
            // The batch's name, formatted once; each record adds its number.
            let mut name = Vec::with_capacity(48);
            write!(
                name,
                "s{}-p{}-b{}-r",
                self.seed, producer.n, producer.sequence
            )
            .expect("writing to memory");
            let records: Vec<Bytes> = (0..count)
                .map(|i| {
                    // Built in place, at its final size: a record is a
                    // name padded with dots.
                    let mut record = Vec::with_capacity(self.options.record_bytes.max(48));
                    record.extend_from_slice(&name);
                    write!(record, "{i}").expect("writing to memory");
                    if record.len() < self.options.record_bytes {
                        record.resize(self.options.record_bytes, b'.');
                    }
                    Bytes::from(record)
                })
                .collect();
            let first = self.produced.len();
            for record in &records {
                let number = self.produced.len();
                let known = self.produced.insert(record.clone(), number);
                assert!(known.is_none(), "every record is unique");
            }
            self.producers[position].batch = Some(records);
            self.producers[position].batch_first = first;
        }
        let id = self.request_id();
        let producer = &mut self.producers[position];
        producer.inflight = Some(InFlight {
            id,
            deadline: now + REQUEST_TIMEOUT,
        });
        let request = Request::Produce {
            records: producer.batch.clone().expect("a batch"),
            stamp: Some(Stamp {
                producer: producer.n,
                sequence: producer.sequence,
            }),
        };
        let client = ClientId(producer.n);
        Some((
            client_address(producer.n),
            producer.target,
            client,
            id,
            request,
        ))
    }

    fn send_follow(&mut self, now: Instant) -> Send {
        let id = self.request_id();
        let consumer = &mut self.consumer;
        consumer.inflight = Some(InFlight {
            id,
            deadline: now + REQUEST_TIMEOUT,
        });
        let request = Request::Follow {
            from: consumer.next,
            max_records: 64,
            max_bytes: 64 * 1024,
            wait: FOLLOW_WAIT,
        };
        let client = ClientId(consumer.n);
        (
            client_address(consumer.n),
            consumer.target,
            client,
            id,
            request,
        )
    }

    /// Takes in a node's answer to client `client`'s request `id`. Returns
    /// what to send now. (The world checks an acknowledged batch on the
    /// nodes' disks when the node sends the acknowledgement.)
    pub fn on_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        client: ClientId,
        id: RequestId,
        reply: Reply,
    ) -> Result<Vec<Send>, Failure> {
        if client.get() == self.reader.n {
            return self.on_read_reply(now, from, id, reply);
        }
        if client.get() == self.consumer.n {
            return self.on_follow_reply(now, from, id, reply);
        }
        let position = client.get() as usize;
        let producer = &mut self.producers[position];
        if producer.inflight.map(|f| f.id) != Some(id) {
            return Ok(Vec::new()); // An answer to an abandoned try.
        }
        producer.inflight = None;
        match reply {
            Reply::Produced { first, count } => {
                let records = producer.batch.take().expect("a batch in flight");
                let first_number = producer.batch_first;
                if records.len() as u32 != count {
                    return Err(Failure {
                        checker: "acked records stay",
                        what: format!("a batch of {} acked as {count}", records.len()),
                    });
                }
                producer.sequence += 1;
                let interval = self.options.interval.as_nanos();
                let pause = self.rng.random_range(interval / 2..=interval * 3 / 2);
                self.producers[position].next_at = now + Duration::from_nanos(pause);
                for (n, record) in records.into_iter().enumerate() {
                    let offset = first.plus(n as u64);
                    let acked = Acked {
                        record: record.clone(),
                        number: first_number + n,
                    };
                    if let Some(before) = self.acked.insert(offset, acked) {
                        return Err(Failure {
                            checker: "acked records stay",
                            what: format!(
                                "{offset} acked as {:?}, then as {record:?}",
                                before.record
                            ),
                        });
                    }
                }
                Ok(Vec::new())
            }
            Reply::Failed(ClientError::NotLeader {
                leader: Some(leader),
            }) if leader != from => {
                producer.target = leader;
                Ok(self.send_batch(now, position).into_iter().collect())
            }
            // A stale batch or a malformed one: this producer sends neither.
            // (Out of order is retried: a node that lags, or a leader that
            // does not know it was deposed, has not seen earlier batches.)
            Reply::Failed(error @ (ClientError::Stale { .. } | ClientError::Rejected(_))) => {
                Err(Failure {
                    checker: "idempotent producer",
                    what: format!(
                        "{from} refused producer {}'s batch {}: {error:?}",
                        producer.n, producer.sequence
                    ),
                })
            }
            Reply::Failed(_)
            | Reply::Records { .. }
            | Reply::Leader { .. }
            | Reply::Transferring { .. }
            | Reply::Changed { .. }
            | Reply::Members { .. } => {
                // Not leading, lost, busy: try again soon,
                // somewhere else unless this node should know better.
                if !matches!(reply, Reply::Failed(ClientError::Lost)) {
                    let target = self.other_node(from);
                    self.producers[position].target = target;
                }
                self.producers[position].next_at = now + BACKOFF;
                Ok(Vec::new())
            }
        }
    }

    fn on_follow_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        id: RequestId,
        reply: Reply,
    ) -> Result<Vec<Send>, Failure> {
        if self.consumer.inflight.map(|f| f.id) != Some(id) {
            return Ok(Vec::new());
        }
        self.consumer.inflight = None;
        match reply {
            Reply::Records { records, next } => {
                for (offset, record) in &records {
                    self.check_record(from, *offset, record)?;
                }
                self.consumer.next = next;
                self.consumer.next_at = now;
            }
            Reply::Failed(ClientError::OutOfRange { first, .. }) if first > self.consumer.next => {
                // Retention removed what the consumer had not read yet.
                self.consumer.next = first;
                self.consumer.next_at = now;
            }
            // Behind, busy or gone: follow another node.
            _ => self.retry_elsewhere(Follower, from, now),
        }
        Ok(Vec::new())
    }

    fn check_record(
        &mut self,
        from: NodeId,
        offset: Offset,
        record: &Bytes,
    ) -> Result<(), Failure> {
        let fail = |checker: &'static str, what: String| Err(Failure { checker, what });
        if offset != self.consumer.next {
            return fail(
                "dense offsets",
                format!(
                    "{from} served {offset} when {} was next",
                    self.consumer.next
                ),
            );
        }
        self.consumer.next = offset.next();
        let (number, other) = self.find(offset, record);
        let Some(number) = number else {
            return fail(
                "no phantom records",
                format!("{from} served {record:?} at {offset}"),
            );
        };
        if self.consumed.len() <= number {
            self.consumed.resize(self.produced.len(), false);
        }
        if std::mem::replace(&mut self.consumed[number], true) {
            return fail(
                "no duplicates",
                format!("{from} served {record:?} a second time, at {offset}"),
            );
        }
        if let Some(acked) = other {
            return fail(
                "acked records stay",
                format!("{from} served {record:?} at {offset}, acked as {acked:?}"),
            );
        }
        Ok(())
    }

    /// Finds `record`, served at `offset`, in the ledger: its number if it
    /// was ever produced, and the record acknowledged at that offset if
    /// that is another. The record acknowledged there is compared first
    /// (one record, found by its offset): in the common case nothing is
    /// looked up among all the records produced.
    fn find(&self, offset: Offset, record: &Bytes) -> (Option<usize>, Option<Bytes>) {
        let acked = self.acked.get(&offset);
        match acked {
            Some(acked) if same_bytes(&acked.record, record) => (Some(acked.number), None),
            _ => (
                self.produced.get(record).copied(),
                acked.map(|acked| acked.record.clone()),
            ),
        }
    }

    /// Takes in `raft`'s new commit index and checks that no committed
    /// entry changed.
    pub fn committed(&mut self, raft: &Raft, commit: LogIndex) -> Result<(), Failure> {
        let id = raft.id();
        let from = self
            .checked
            .get(&id)
            .map_or(LogIndex(1), |c| c.next())
            .max(LogIndex(commit.0.saturating_sub(COMMIT_CHECK_WINDOW)))
            .max(raft.log().first_index());
        let mut index = from;
        while index <= commit {
            if let Some(term) = raft.log().term(index) {
                let (first, _) = *self.committed.entry(index).or_insert((term, raft.term()));
                if first != term {
                    return Err(Failure {
                        checker: "committed never changes",
                        what: format!(
                            "{id} committed {index} in {term}, committed before in {first}"
                        ),
                    });
                }
            }
            index = index.next();
        }
        let checked = self.checked.entry(id).or_default();
        *checked = (*checked).max(commit);
        Ok(())
    }

    /// Leader completeness (Raft §5.4): a new leader's log holds every
    /// entry committed in an earlier term (the last `COMMIT_CHECK_WINDOW`
    /// compared term by term, where known without reading). A leader of
    /// an older term elected late — its votes were cast before a later
    /// leader committed more — need not hold what was committed after.
    /// `leads` is the term it was elected in (the node may have moved on
    /// since, if it took in more before its outputs were looked at).
    pub fn check_leader_complete(&self, raft: &Raft, leads: Term) -> Result<(), Failure> {
        let earlier = |(_, &(_, committed_in)): &(&LogIndex, &(Term, Term))| committed_in < leads;
        let Some((&last, _)) = self.committed.iter().rev().find(earlier) else {
            return Ok(());
        };
        let id = raft.id();
        let log = raft.log();
        let fail = |what: String| {
            Err(Failure {
                checker: "leader completeness",
                what,
            })
        };
        if log.next_index() <= last {
            return fail(format!(
                "{id} leads {leads} with its log ending before committed {last}"
            ));
        }
        let from = LogIndex(last.0.saturating_sub(COMMIT_CHECK_WINDOW)).max(log.first_index());
        for (&index, &(term, _)) in self.committed.range(from..=last).filter(earlier) {
            if log.term(index).is_some_and(|held| held != term) {
                return fail(format!(
                    "{id} leads {leads} holding {index} of another term than committed {term}"
                ));
            }
        }
        Ok(())
    }

    /// Checks what a consumer read from `node`, every record from its
    /// first retained offset up to its commit offset: offsets dense and in
    /// order, every acknowledged record at its offset with its bytes, no
    /// record twice, none that was never produced.
    pub fn check_consumed(
        &mut self,
        node: NodeId,
        first: Offset,
        end: Offset,
        records: &[(Offset, Bytes)],
    ) -> Result<(), Failure> {
        let fail = |checker: &'static str, what: String| Err(Failure { checker, what });
        let mut expected = first;
        for (offset, _) in records {
            if *offset != expected {
                return fail(
                    "dense offsets",
                    format!("{node} served {offset} after {expected}"),
                );
            }
            expected = expected.next();
        }
        let known = records.iter().all(|(offset, record)| {
            self.read_back
                .get(*offset)
                .is_some_and(|known| same_bytes(known, record))
        });
        let mut seen = vec![false; self.produced.len()];
        for (offset, record) in records.iter().filter(|_| !known) {
            let (number, other) = self.find(*offset, record);
            let Some(number) = number else {
                return fail(
                    "no phantom records",
                    format!("{node} served {record:?} at {offset}"),
                );
            };
            if std::mem::replace(&mut seen[number], true) {
                return fail("no duplicates", format!("{node} served {record:?} twice"));
            }
            if let Some(acked) = other {
                return fail(
                    "acked records stay",
                    format!("{node} served {record:?} at {offset}, acked as {acked:?}"),
                );
            }
        }
        if expected != end {
            return fail(
                "dense offsets",
                format!("{node} served up to {expected}, committed {end}"),
            );
        }
        if let Some((offset, _)) = self
            .acked
            .range(first..)
            .next_back()
            .filter(|(o, _)| **o >= end)
        {
            return fail(
                "acked records stay",
                format!("{node} committed up to {end}, acked {offset}"),
            );
        }
        if !known {
            self.read_back = ReadBack {
                first,
                records: records.iter().map(|(_, record)| record.clone()).collect(),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workload whose one producer has had `batches` batches
    /// acknowledged, back to back from offset 0; returns it and the
    /// records, in offset order.
    fn acknowledged(batches: usize) -> (Workload, Vec<(Offset, Bytes)>) {
        let options = WorkloadOptions {
            producers: 1,
            interval: Duration::from_millis(100),
            batch_max: 4,
            record_bytes: 64,
        };
        let mut workload = Workload::new(options, 7, 3);
        let mut records = Vec::new();
        let mut now = Instant::ZERO;
        while records.len() < batches {
            now += Duration::from_millis(1_000);
            for (_, to, client, id, request) in workload.tick(now) {
                let Request::Produce { records: batch, .. } = request else {
                    continue;
                };
                let first = Offset(records.iter().map(Vec::len).sum::<usize>() as u64);
                let count = batch.len() as u32;
                workload
                    .on_reply(now, to, client, id, Reply::Produced { first, count })
                    .unwrap();
                records.push(batch);
            }
        }
        let records = records
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(n, record)| (Offset(n as u64), record))
            .collect();
        (workload, records)
    }

    /// The same bytes in memory of their own, as a replica's disk holds.
    fn copied(records: &[(Offset, Bytes)]) -> Vec<(Offset, Bytes)> {
        records
            .iter()
            .map(|(offset, record)| (*offset, Bytes::copy_from_slice(record)))
            .collect()
    }

    fn checker(result: Result<(), Failure>) -> &'static str {
        result.err().map_or("passed", |failure| failure.checker)
    }

    // Goal: the final read-back passes replicas that serve every
    // acknowledged record at its offset with its bytes (the first checked
    // record by record, the next as known), and names the checker for a
    // replica that serves other bytes, a record twice, a gap, or too little.
    #[test]
    fn the_read_back_holds_every_replica_to_the_ledger() {
        let (mut workload, records) = acknowledged(3);
        let end = Offset(records.len() as u64);
        let first = NodeId(1);
        assert_eq!(
            checker(workload.check_consumed(first, Offset(0), end, &copied(&records))),
            "passed"
        );

        let mut flipped = copied(&records);
        let mut bytes = flipped[1].1.to_vec();
        bytes[3] ^= 1;
        flipped[1].1 = Bytes::from(bytes);
        let mut twice = copied(&records);
        twice[2].1 = twice[1].1.clone();
        let mut gap = copied(&records);
        gap.remove(1);
        let short = copied(&records[..records.len() - 1]);
        let cases = [
            ("the same bytes", copied(&records), "passed"),
            ("a bit flipped", flipped, "no phantom records"),
            ("a record twice", twice, "no duplicates"),
            ("a gap", gap, "dense offsets"),
            ("an acked record missing", short, "dense offsets"),
        ];
        for (what, served, expected) in cases {
            let got = checker(workload.check_consumed(NodeId(2), Offset(0), end, &served));
            assert_eq!(got, expected, "{what}");
        }
    }
}
