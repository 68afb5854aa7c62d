//! The leader's side of replication: appending proposals, sending entries
//! to each follower within its window, catching up a follower from disk or
//! with a snapshot, and committing.
//!
//! Raft §5.3 (log replication), §5.4.2 (commit only by counting entries of
//! the leader's term, through `commit::advance`), §8 (a no-op at the start
//! of each term, so that entries of earlier terms commit), thesis §10.2.1
//! (the leader appends to its own disk in parallel with sending: its own
//! copy counts once synced, like a follower's), and protocol-aware recovery
//! (Alagappan et al., FAST 2018, §4.2: a damaged copy counts for no one; a
//! damaged entry is discarded only once known uncommitted, else taken over
//! by a voter holding it intact). Owns the leader's volatile state. It must
//! never count a follower's copy before the follower said it is durable,
//! never count its own copy of an entry it holds damaged, and never send an
//! entry it does not hold.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::bugs::Bug;
use crate::error::Error;
use crate::ids::{LogIndex, NodeId, ReadId, Term};
use crate::limits::{APPEND_MESSAGE_BYTES_MAX, LEADER_CACHE_BYTES_MAX};
use crate::log::entry::NewEntry;
use crate::log::machine::{Appended, ReadBatch, ReadError, ReadFrom};
use crate::raft::commit;
use crate::raft::machine::{Output, Raft, Role, Timer, RAFT_READ_IDS};
use crate::raft::message::{AppendResult, Message};
use crate::raft::progress::{Mode, Progress};
use crate::raft::replication::next_after_refusal;
use crate::time::Instant;

/// A leader's replication state, for one term.
#[derive(Debug)]
pub struct Leadership {
    /// Each follower's progress.
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Entries this leader appended, from `cache_first` on, so that
    /// followers keeping up are sent them without a disk read.
    cache: VecDeque<NewEntry>,
    cache_first: LogIndex,
    cache_bytes: u64,
    /// Disk reads in flight for followers that fell behind the cache: the
    /// follower and where the read starts.
    reads: BTreeMap<ReadId, NodeId>,
    reading: BTreeSet<NodeId>,
    /// A transfer of leadership under way: to whom, and until when.
    transfer: Option<(NodeId, Instant)>,
    /// The highest read round each follower answered.
    rounds: BTreeMap<NodeId, u64>,
    /// Linearizable reads waiting for their round to be confirmed: id,
    /// commit index when they began, round.
    pending_reads: VecDeque<(u64, LogIndex, u64)>,
}

impl Leadership {
    fn new(followers: Vec<NodeId>, last: LogIndex) -> Leadership {
        Leadership {
            progress: followers
                .into_iter()
                .map(|id| (id, Progress::new(last)))
                .collect(),
            cache: VecDeque::new(),
            cache_first: last.next(),
            cache_bytes: 0,
            reads: BTreeMap::new(),
            reading: BTreeSet::new(),
            transfer: None,
            rounds: BTreeMap::new(),
            pending_reads: VecDeque::new(),
        }
    }

    /// Makes the followers `members`: a member new to it starts probing
    /// after `last`; one that left is forgotten.
    pub(super) fn set_followers(&mut self, members: &[NodeId], last: LogIndex) {
        let left: Vec<NodeId> = self
            .progress
            .keys()
            .filter(|id| !members.contains(id))
            .copied()
            .collect();
        for id in left {
            self.progress.remove(&id);
            self.reading.remove(&id);
            self.reads.retain(|_, to| *to != id);
            self.rounds.remove(&id);
            if self.transfer.is_some_and(|(to, _)| to == id) {
                self.transfer = None;
            }
        }
        let joined: Vec<NodeId> = members
            .iter()
            .filter(|id| !self.progress.contains_key(id))
            .copied()
            .collect();
        for id in joined {
            self.progress.insert(id, Progress::new(last));
        }
    }

    fn cache_push(&mut self, entry: NewEntry) {
        self.cache_bytes += entry.payload_len() as u64;
        self.cache.push_back(entry);
        while self.cache_bytes > LEADER_CACHE_BYTES_MAX {
            let evicted = self.cache.pop_front().expect("bytes imply entries");
            self.cache_bytes -= evicted.payload_len() as u64;
            self.cache_first = self.cache_first.next();
        }
    }

    /// Entries from `next` on out of the cache, within one message's
    /// bounds (at least one, at most `max`), and their bytes.
    fn cached_from(&self, next: LogIndex, max: u32) -> (Vec<NewEntry>, u64) {
        let skip = (next.0 - self.cache_first.0) as usize;
        let mut bytes = 0u64;
        let mut entries = Vec::with_capacity((self.cache.len() - skip).min(max as usize));
        for entry in self.cache.iter().skip(skip) {
            let len = entry.payload_len() as u64;
            if !entries.is_empty()
                && (bytes + len > u64::from(APPEND_MESSAGE_BYTES_MAX)
                    || entries.len() >= max as usize)
            {
                break;
            }
            bytes += len;
            entries.push(entry.clone());
        }
        (entries, bytes)
    }

    /// The reads still waiting for confirmation.
    pub(super) fn pending_read_ids(&self) -> Vec<u64> {
        self.pending_reads.iter().map(|&(id, _, _)| id).collect()
    }

    /// Checks the leader's invariants against a log ending before `next`.
    pub(super) fn check_invariants(&self, next: LogIndex) {
        assert_eq!(
            self.cache_first.0 + self.cache.len() as u64,
            next.0,
            "the cache ends where the log does"
        );
        assert!(
            self.cache_bytes <= LEADER_CACHE_BYTES_MAX || self.cache.len() == 1,
            "the cache stays within its bound"
        );
        for progress in self.progress.values() {
            progress.check_invariants();
            assert!(
                progress.matched < next,
                "followers match only what the leader holds"
            );
        }
        assert!(
            self.reads.values().all(|id| self.reading.contains(id)),
            "each read in flight is for a follower marked reading"
        );
    }
}

impl Raft {
    /// Becomes leader (§5.2) and appends a no-op of the new term (§8),
    /// after cutting the log at damage known uncommitted (see
    /// `cut_uncommitted_damage`): once an entry of its term followed it,
    /// the damaged entry would commit with it, and could never be read.
    pub(super) fn lead(&mut self, now: Instant) {
        if self.cut_uncommitted_damage().is_err() {
            // The damaged entry's segment index is loading (the candidate
            // stands again at its next election timeout), or the log has
            // stopped and said so.
            return;
        }
        assert!(
            self.first_uncommitted_damage()
                .is_none_or(|first| !self.known_uncommitted(first)),
            "a leader appends nothing after damage it knows uncommitted"
        );
        self.role = Role::Leader {
            heard: BTreeSet::new(),
        };
        self.timers.stop(Timer::Election);
        let last = self.last_entry().index;
        self.leadership = Some(Leadership::new(self.other_members(), last));
        self.outputs
            .push_back(Output::BecameLeader { term: self.term() });
        let noop = !self.config.has_bug(Bug::CommitPreviousTermByCounting);
        if noop
            && self
                .append_as_leader(now, vec![NewEntry::noop(self.term())])
                .is_err()
        {
            // The log has stopped and said so; the node stops.
            return;
        }
        // The no-op went out as each follower's first probe; without one,
        // an empty append announces the leader.
        for to in self.followers() {
            self.replicate(now, to, true);
        }
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
        self.timers
            .set(Timer::CheckQuorum, now + self.config.election_timeout_min);
        // A single voter's own durable copy may be all it needs.
        self.advance_commit();
    }

    /// Appends entries to the leader's log and starts replicating them.
    pub(super) fn append_as_leader(
        &mut self,
        now: Instant,
        entries: Vec<NewEntry>,
    ) -> Result<Appended, Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        }
        let leadership = self.leadership.as_ref().expect("leading");
        if let Some((to, until)) = leadership.transfer {
            if now < until {
                // Leadership is being handed over: the next leader takes it.
                return Err(Error::NotLeader { leader: Some(to) });
            }
        }
        let term = self.term();
        if let Some(entry) = entries.iter().find(|e| e.term != term) {
            panic!(
                "a leader proposes entries of its own term, not {}",
                entry.term
            );
        }
        // The cache keeps each entry with its frame: followers store the
        // very bytes this log stored.
        let (appended, entries) = self.append_to_log(now, entries)?;
        let leadership = self.leadership.as_mut().expect("leading");
        for entry in entries {
            leadership.cache_push(entry);
        }
        for to in self.followers() {
            self.replicate(now, to, false);
        }
        Ok(appended)
    }

    fn followers(&self) -> Vec<NodeId> {
        self.leadership
            .as_ref()
            .map(|l| l.progress.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Sends `to` what its progress allows: entries from the cache, a disk
    /// read for older ones, or a snapshot if the log no longer holds them.
    /// With `heartbeat`, sends an empty append if there is nothing new.
    fn replicate(&mut self, now: Instant, to: NodeId, mut heartbeat: bool) {
        let _ = now;
        loop {
            let leadership = self.leadership.as_ref().expect("leading");
            let progress = &leadership.progress[&to];
            if !progress.may_send() {
                return;
            }
            let next = progress.next;
            let last = self.log.next_index().prev();
            if next < self.log.first_index() {
                return self.send_snapshot(to);
            }
            if next > last && !heartbeat {
                return;
            }
            let prev = next.prev();
            let prev_term = self.log.term(prev);
            let (entries, bytes) = match prev_term {
                Some(_) if next > last => (Vec::new(), 0),
                Some(_) if next >= leadership.cache_first => {
                    leadership.cached_from(next, self.config.append_entries_max)
                }
                _ => return self.read_for(to, next),
            };
            let prev_term = prev_term.expect("matched above");
            let sent_last = prev.plus(entries.len() as u64);
            self.send_append(to, prev, prev_term, entries);
            let progress = self.progress_mut(to);
            progress.sent(sent_last, bytes);
            heartbeat = false;
        }
    }

    fn progress_mut(&mut self, to: NodeId) -> &mut Progress {
        self.leadership
            .as_mut()
            .expect("leading")
            .progress
            .get_mut(&to)
            .expect("a follower")
    }

    fn send_append(&mut self, to: NodeId, prev: LogIndex, prev_term: Term, entries: Vec<NewEntry>) {
        let message = Message::Append {
            term: self.term(),
            prev_index: prev,
            prev_term,
            commit: self.commit,
            entries,
            round: self.read_rounds,
        };
        let (commit, round) = (self.commit, self.read_rounds);
        self.progress_mut(to).told(commit, round);
        self.send(self.state.current(), LogIndex(0), to, message);
    }

    /// §7: the follower needs entries this log no longer holds; it starts
    /// its log where this one does.
    fn send_snapshot(&mut self, to: NodeId) {
        let last_index = self.log.first_index().prev();
        // The producer table goes with it: the follower keeps the batches
        // through `last_index`, and learns later ones from the entries that
        // follow.
        let state = self.log.producers().encode();
        let last_term = self
            .log
            .term(last_index)
            .expect("the term before the first entry is known");
        let config = self
            .log
            .config_at(last_index)
            .expect("the configuration before the first entry is known")
            .clone();
        let message = Message::Snapshot {
            term: self.term(),
            last_index,
            last_term,
            next_offset: self.log.first_offset(),
            config_index: config.index,
            config: config.data,
            state,
        };
        self.progress_mut(to).sent_snapshot(last_index);
        self.send(self.state.current(), LogIndex(0), to, message);
    }

    /// Reads entries for `to` from disk, from `next`, or from the entry
    /// before it if its term is not known without reading (the read then
    /// yields the append's `prev_term` too).
    fn read_for(&mut self, to: NodeId, next: LogIndex) {
        let leadership = self.leadership.as_mut().expect("leading");
        if !leadership.reading.insert(to) {
            return;
        }
        // Ids run on across leaderships: a read of an earlier one may
        // still complete.
        let id = ReadId(RAFT_READ_IDS + self.replication_reads);
        self.replication_reads += 1;
        let start = match self.log.term(next.prev()) {
            None if next.prev() >= self.log.first_index() => next.prev(),
            _ => next,
        };
        let read = self.log.read(
            id,
            ReadFrom::Index(start),
            self.config.append_entries_max + 1,
            APPEND_MESSAGE_BYTES_MAX,
        );
        let leadership = self.leadership.as_mut().expect("leading");
        match read {
            Ok(()) => {
                leadership.reads.insert(id, to);
            }
            // Out of range (retention moved) or busy: the next heartbeat
            // tries again.
            Err(_) => {
                leadership.reading.remove(&to);
            }
        }
    }

    /// A disk read for a follower completed: send what it found, if the
    /// follower still needs it.
    pub(super) fn on_replication_read(
        &mut self,
        now: Instant,
        id: ReadId,
        result: Result<ReadBatch, ReadError>,
    ) {
        let Some(leadership) = self.leadership.as_mut() else {
            return; // Read by an earlier leadership.
        };
        let Some(to) = leadership.reads.remove(&id) else {
            return;
        };
        leadership.reading.remove(&to);
        let Some(progress) = leadership.progress.get(&to) else {
            return; // It left the configuration.
        };
        let Ok(batch) = result else {
            return; // A failed read: the next heartbeat tries again.
        };
        if !progress.may_send() {
            return;
        }
        let next = progress.next;
        let prev = next.prev();
        let mut entries = batch.entries.as_slice();
        let prev_term = match entries.first() {
            Some(first) if first.index == prev => {
                let term = first.term;
                entries = &entries[1..];
                Some(term)
            }
            Some(first) if first.index == next => self.log.term(prev),
            _ => None,
        };
        if let Some(damage) = batch.damaged {
            self.hand_over_damaged(now, damage.first);
            if entries.is_empty() {
                return; // Nothing intact to send: the next heartbeat retries.
            }
        }
        let Some(prev_term) = prev_term else {
            // The follower moved on, or the read stopped at damage.
            return self.replicate(now, to, false);
        };
        if entries.is_empty() {
            // The read ended with `prev`, the last of its segment, whose
            // term is now known: read on from `next`.
            return self.replicate(now, to, false);
        }
        let entries = &entries[..entries.len().min(self.config.append_entries_max as usize)];
        let bytes: u64 = entries.iter().map(|e| e.data.len() as u64).sum();
        let sent_last = prev.plus(entries.len() as u64);
        let entries: Vec<NewEntry> = entries.iter().map(NewEntry::from_stored).collect();
        self.send_append(to, prev, prev_term, entries);
        self.progress_mut(to).sent(sent_last, bytes);
        self.replicate(now, to, false);
    }

    /// Takes in a follower's answer to an append or a snapshot.
    pub(super) fn on_append_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        round: u64,
        result: AppendResult,
    ) {
        if term != self.term() || !self.is_leader() {
            return;
        }
        if let Role::Leader { heard } = &mut self.role {
            heard.insert(from);
        }
        let Some(leadership) = self.leadership.as_ref() else {
            return;
        };
        if !leadership.progress.contains_key(&from) {
            return;
        }
        self.confirm_reads(from, round);
        match result {
            AppendResult::Stored { through } => {
                // A follower stores only what this leader sent it.
                let through = through.min(self.log.next_index().prev());
                if self.progress_mut(from).acked(through) {
                    self.advance_commit();
                    self.hand_over(from);
                }
            }
            AppendResult::Refused { prev, hint } => {
                let retry = next_after_refusal(&hint, prev, |t| self.log.last_index_of_term(t));
                let progress = self.progress_mut(from);
                if !matches!(progress.mode, Mode::Snapshot { .. }) {
                    progress.refused(prev, retry);
                }
            }
        }
        self.replicate(now, from, false);
    }

    /// Starts a linearizable read at the commit index, confirmed by the
    /// answers to the next read round (sent with the next heartbeats).
    pub(super) fn start_read(&mut self, id: u64) -> Result<(), Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        }
        // Until an entry of its own term is committed, a new leader may not
        // know the commit index (thesis §6.4).
        if self.log.term(self.commit) != Some(self.term()) {
            return Err(Error::Busy);
        }
        self.read_rounds += 1;
        let (commit, round) = (self.commit, self.read_rounds);
        self.leadership
            .as_mut()
            .expect("leading")
            .pending_reads
            .push_back((id, commit, round));
        self.confirm_reads(self.id, round);
        Ok(())
    }

    /// `from` answered read round `round`: the reads a majority confirmed
    /// are ready.
    fn confirm_reads(&mut self, from: NodeId, round: u64) {
        let id = self.id;
        let leadership = self.leadership.as_mut().expect("leading");
        let known = leadership.rounds.entry(from).or_default();
        *known = (*known).max(round);
        while let Some(&(read, index, round)) = leadership.pending_reads.front() {
            let mut confirmed: BTreeSet<NodeId> = leadership
                .rounds
                .iter()
                .filter(|(_, &r)| r >= round)
                .map(|(&node, _)| node)
                .collect();
            confirmed.insert(id);
            if !self.configuration.agrees(&confirmed) {
                break;
            }
            leadership.pending_reads.pop_front();
            self.outputs
                .push_back(Output::ReadReady { id: read, index });
        }
    }

    /// Starts handing leadership to `to`.
    pub(super) fn start_transfer(&mut self, now: Instant, to: NodeId) -> Result<(), Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leader(),
            });
        }
        if !self.configuration.is_voter(to) || to == self.id {
            return Err(Error::NotAVoter { node: to });
        }
        let leadership = self.leadership.as_mut().expect("leading");
        leadership.transfer = Some((to, now + self.config.election_timeout_min));
        self.replicate(now, to, true);
        self.hand_over(to);
        Ok(())
    }

    /// A leader that finds its own entry `first` damaged cannot serve it
    /// to followers that need it, nor repair it while leading, nor (above
    /// its commit index) count it: it hands leadership to the voter
    /// furthest along among those that hold the entry intact, then is
    /// repaired from the new leader as a follower. Without such a voter,
    /// an uncommitted damaged entry stays uncounted: the followers that
    /// need it hear nothing past it and elect a leader that replaces it.
    pub(super) fn hand_over_damaged(&mut self, now: Instant, first: LogIndex) {
        let Some(leadership) = self.leadership.as_ref() else {
            return;
        };
        if leadership.transfer.is_some() {
            return;
        }
        let holder = leadership
            .progress
            .iter()
            .filter(|(id, p)| self.configuration.is_voter(**id) && p.matched >= first)
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        if let Some(to) = holder {
            let _ = self.start_transfer(now, to);
        }
    }

    /// Tells `to` to stand once it holds the whole log, if a transfer to it
    /// is under way.
    fn hand_over(&mut self, to: NodeId) {
        let last = self.log.next_index().prev();
        let Some(leadership) = self.leadership.as_ref() else {
            return;
        };
        if leadership.transfer.map(|(target, _)| target) != Some(to)
            || leadership.progress[&to].matched < last
        {
            return;
        }
        let message = Message::TimeoutNow { term: self.term() };
        self.send(self.state.current(), LogIndex(0), to, message);
    }

    /// The leader's own log became more durable.
    pub(super) fn on_log_durable(&mut self, now: Instant) {
        let _ = now;
        if self.is_leader() {
            self.advance_commit();
        }
    }

    /// Commits what a majority stores intact, counting entries of this
    /// term only (§5.4.2, in `commit::advance`); its own copy counts up to
    /// its first damaged entry above the commit index (`commit::own_match`).
    fn advance_commit(&mut self) {
        let leadership = self.leadership.as_ref().expect("leading");
        let mut matched: BTreeMap<NodeId, crate::ids::LogIndex> = leadership
            .progress
            .iter()
            .map(|(&id, p)| (id, p.matched))
            .collect();
        let own = commit::own_match(self.log.durable_index(), self.first_uncommitted_damage());
        matched.insert(self.id, own);
        let log = &self.log;
        let mut counted = std::borrow::Cow::Borrowed(&self.configuration);
        if self.config.has_bug(Bug::LearnersCount) {
            let mut all = self.configuration.clone();
            all.voters.0.append(&mut all.learners);
            counted = std::borrow::Cow::Owned(all);
        }
        let commit = if self.config.has_bug(Bug::CommitPreviousTermByCounting) {
            counted.committed(&matched).max(self.commit)
        } else {
            commit::advance(&counted, &matched, self.commit, self.term(), |index| {
                log.term(index)
            })
        };
        self.commit_to(commit);
    }

    /// The first entry above the commit index that this log holds damaged.
    pub(super) fn first_uncommitted_damage(&self) -> Option<LogIndex> {
        let above = self.commit.next();
        let damage = self.log.damaged().find(|d| d.end > above)?;
        Some(damage.first.max(above))
    }

    /// Whether the entry `first`, which this log holds damaged above its
    /// commit index, is known never to have been committed, in every
    /// configuration that could have counted it: the one in effect when it
    /// was appended, and the last (`commit::damage_uncommitted`, FAST 2018
    /// §4.2).
    fn known_uncommitted(&self, first: LogIndex) -> bool {
        let appended_in = self
            .log
            .config_at(first.prev())
            .map(|at| self.configuration_of(&at.data));
        [appended_in, Some(self.configuration.clone())]
            .iter()
            .flatten()
            .all(|config| commit::damage_uncommitted(config, self.id))
    }

    /// Cuts the log before its first damaged entry above the commit index
    /// if that entry is known never to have been committed. Nothing after
    /// it is committed either, so nothing committed goes. Fails, changing
    /// nothing, while the index of the segment to cut loads.
    ///
    /// This is the case of a node that is its cluster's only voter: a
    /// crash tore an unsynced write and kept a later one, and recovery
    /// found the torn entry damaged, with intact entries after it. Never
    /// synced, its copy was never counted, and no other voter could hold
    /// one that was. With other voters, the entry stays in the log,
    /// uncounted, until a voter holding it intact takes over
    /// (`hand_over_damaged`) or a leader elected without it replaces it.
    fn cut_uncommitted_damage(&mut self) -> Result<(), Error> {
        let first = self.first_uncommitted_damage();
        let Some(first) = first.filter(|&first| self.known_uncommitted(first)) else {
            return Ok(());
        };
        let after = first.prev();
        self.log.truncate_suffix(after)?;
        self.truncated(after);
        Ok(())
    }

    /// Sends heartbeats (empty appends, or what is due) to every follower
    /// that needs one (see `Progress::tick`).
    pub(super) fn on_heartbeat_timeout(&mut self, now: Instant) {
        if !self.is_leader() {
            return;
        }
        let (commit, round) = (self.commit, self.read_rounds);
        for to in self.followers() {
            let due = self.progress_mut(to).tick(commit, round);
            self.replicate(now, to, due);
            self.progress_mut(to).heartbeat_sent();
        }
        // A transfer that produced no new leader in time is given up; one
        // for damage this leader cannot repair while leading is tried again.
        let leadership = self.leadership.as_mut().expect("leading");
        if leadership.transfer.is_some_and(|(_, until)| until <= now) {
            leadership.transfer = None;
        }
        let damaged = self.log.damaged().next().map(|d| d.first);
        if let Some(first) = damaged {
            self.hand_over_damaged(now, first);
        }
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
    }
}
