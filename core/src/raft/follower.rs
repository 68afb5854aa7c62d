//! The follower's side of replication: accepting appends and snapshots.
//!
//! Raft §5.3 (the consistency check and conflict removal, decided by
//! `replication::decide_append`), Figure 2 (a follower's commit index is
//! the leader's, up to its last new entry), §7 (a snapshot: for a log, the
//! point where the leader's retained log starts). Owns what a follower does
//! with them. It must never acknowledge an entry before it is durable, never
//! remove a committed entry, and never decide on a term it would have to
//! guess: an entry whose segment index is not resident makes the follower
//! load it and drop the message, which the leader sends again.

use crate::bugs::Bug;
use std::cell::Cell;

use crate::error::Error;
use crate::ids::{LogIndex, NodeId, Offset, Term};
use crate::log::entry::{ConfigAt, EntryKind, NewEntry};
use crate::log::machine::Log;
use crate::log::producers::Producers;
use crate::raft::machine::{Output, Raft};
use crate::raft::message::{AppendResult, Message};
use crate::raft::quorum::Configuration;
use crate::raft::replication::{decide_append, AppendDecision, LogView, Refusal};
use crate::time::Instant;

/// The log as the replication rules see it, noting the first term they
/// asked for that is not known without reading.
struct Known<'a> {
    log: &'a Log,
    missing: Cell<Option<LogIndex>>,
}

impl LogView for Known<'_> {
    fn last_index(&self) -> LogIndex {
        self.log.next_index().prev()
    }

    fn term(&self, index: LogIndex) -> Option<Term> {
        let term = self.log.term(index);
        let damaged = self
            .log
            .damaged()
            .any(|d| d.first <= index && index < d.end);
        let held = self.log.first_index().prev() <= index && index < self.log.next_index();
        if term.is_none() && held && !damaged && self.missing.get().is_none() {
            self.missing.set(Some(index));
        }
        term
    }

    /// Walks back over what is known without reading; where that stops,
    /// the hint is higher than it could be, which costs the leader another
    /// round trip and nothing else.
    fn first_index_of_term(&self, term: Term, at: LogIndex) -> LogIndex {
        let mut index = at;
        while index > self.log.first_index() && self.log.term(index.prev()) == Some(term) {
            index = index.prev();
        }
        index
    }
}

impl Raft {
    /// Answers a message of an older term with this node's term, which
    /// makes its sender step down (§5.1).
    fn refuse_stale(&mut self, to: NodeId, prev: LogIndex) {
        let reply = Message::AppendReply {
            term: self.term(),
            round: self.answering_round,
            result: AppendResult::Refused {
                prev,
                hint: Refusal {
                    conflict_term: None,
                    conflict_index: prev,
                },
            },
        };
        self.send(self.state.current(), LogIndex(0), to, reply);
    }

    fn reply_stored(&mut self, to: NodeId, through: LogIndex) {
        let reply = Message::AppendReply {
            term: self.term(),
            round: self.answering_round,
            result: AppendResult::Stored { through },
        };
        let needs_log = if self.config.has_bug(Bug::AckBeforeSync) {
            LogIndex(0)
        } else {
            through
        };
        self.send(self.state.current(), needs_log, to, reply);
    }

    /// An append from `from` (§5.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        mut prev_index: LogIndex,
        mut prev_term: Term,
        commit: LogIndex,
        mut entries: Vec<NewEntry>,
    ) {
        if term < self.term() {
            return self.refuse_stale(from, prev_index);
        }
        if self.is_leader() {
            return; // Two leaders in one term: the checkers say so.
        }
        let malformed = entries
            .iter()
            .any(|e| e.kind == EntryKind::Config && Configuration::decode(&e.data).is_none());
        if malformed {
            return; // Never stored: the log holds valid configurations only.
        }
        self.follow(now, from);
        // Entries before this log's first are committed and were retained
        // away here: skip them.
        let before_first = self.log.first_index().prev();
        if prev_index < before_first {
            let skip = (before_first.0 - prev_index.0) as usize;
            if skip >= entries.len() {
                let through = prev_index.plus(entries.len() as u64);
                return self.reply_stored(from, through);
            }
            prev_term = entries[skip - 1].term;
            entries.drain(..skip);
            prev_index = before_first;
        }
        // Damaged entries (a write a crash tore, or bytes that rotted at
        // rest) are never served: the leader is sent back to the first of
        // them, and its copies repair them in place, or, where they are not
        // known committed and cannot be checked, replace them and
        // everything after.
        let damaged = self.log.damaged().next().map(|d| d.first);
        if let Some(first) = damaged.filter(|&first| first <= prev_index) {
            let reply = Message::AppendReply {
                term: self.term(),
                round: self.answering_round,
                result: AppendResult::Refused {
                    prev: prev_index,
                    hint: Refusal {
                        conflict_term: None,
                        conflict_index: first,
                    },
                },
            };
            return self.send(self.state.current(), LogIndex(0), from, reply);
        }
        // Damaged entries this append overlaps that it holds intact copies
        // of (the same term as the index holds: log matching, §5.3) are
        // repaired in place first, so that the log never gets shorter (see
        // `log::repair`); the rest are replaced below, unless committed.
        if damaged.is_some() {
            if let Err(Error::IndexNotResident { .. }) = self.repair_from(prev_index, &entries) {
                return;
            }
        }
        let damaged = self.log.damaged().next().map(|d| d.first);
        // Every term the decision reads must be known, not guessed: a term
        // it needed from a segment whose index is not resident starts that
        // index loading, and the leader's next append finds it.
        let terms: Vec<Term> = entries.iter().map(|e| e.term).collect();
        let view = Known {
            log: &self.log,
            missing: Cell::new(None),
        };
        let mut decision = decide_append(&view, prev_index, prev_term, &terms);
        if let Some(index) = view.missing.get() {
            let _ = self.log.term_or_load(index);
            return;
        }
        let overlap_end = prev_index.plus(entries.len() as u64);
        if damaged.is_some_and(|first| first <= self.commit && first <= overlap_end) {
            return; // Never cut: a committed entry this copy cannot repair.
        }
        if let (
            Some(first),
            AppendDecision::Accept {
                truncate_after,
                append_from,
            },
        ) = (damaged, &mut decision)
        {
            if first <= overlap_end && truncate_after.is_none_or(|after| after >= first) {
                *truncate_after = Some(first.prev());
                *append_from = (first.0 - prev_index.0 - 1) as usize;
            }
        }
        match decision {
            AppendDecision::Refuse(hint) => {
                let reply = Message::AppendReply {
                    term: self.term(),
                    round: self.answering_round,
                    result: AppendResult::Refused {
                        prev: prev_index,
                        hint,
                    },
                };
                self.send(self.state.current(), LogIndex(0), from, reply);
            }
            AppendDecision::Accept {
                truncate_after,
                append_from,
            } => {
                if let Some(after) = truncate_after {
                    assert!(
                        after >= self.commit,
                        "a committed entry is never removed (leader completeness, §5.4)"
                    );
                    if self.log.truncate_suffix(after).is_err() {
                        return; // Loading an index, or stopped (said so).
                    }
                    self.truncated(after);
                }
                let through = prev_index.plus(entries.len() as u64);
                let new: Vec<NewEntry> = entries.drain(append_from..).collect();
                if !new.is_empty() {
                    match self.append_to_log(now, new) {
                        Ok((appended, _)) => assert_eq!(
                            appended.last, through,
                            "appended where the leader's entries go"
                        ),
                        Err(_) => return, // Malformed, or the log stopped.
                    }
                }
                self.commit_to(commit.min(through));
                self.reply_stored(from, through);
            }
        }
    }

    /// Repairs the damaged runs that lie wholly among the entries after
    /// `prev` that `entries` hold, stopping at the first it cannot. A run
    /// this node knows committed is repaired even where its index holds
    /// only placeholders (see `Log::repair`).
    fn repair_from(&mut self, prev: LogIndex, entries: &[NewEntry]) -> Result<(), Error> {
        let end = prev.plus(entries.len() as u64);
        let runs: Vec<(LogIndex, LogIndex)> = self
            .log
            .damaged()
            .filter(|d| prev < d.first && d.end.prev() <= end)
            .map(|d| (d.first, d.end))
            .collect();
        for (first, run_end) in runs {
            let from = (first.0 - prev.0 - 1) as usize;
            let copies = &entries[from..from + (run_end.0 - first.0) as usize];
            let trusted = run_end.prev() <= self.commit;
            self.log.repair(first, copies, trusted)?;
        }
        Ok(())
    }

    /// A snapshot from `from` (§7): the leader's log starts after
    /// `last_index`, which is committed.
    pub(super) fn on_snapshot(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        (last_index, last_term, next_offset): (LogIndex, Term, Offset),
        config: ConfigAt,
        state: bytes::Bytes,
    ) {
        if term < self.term() {
            return self.refuse_stale(from, last_index);
        }
        if self.is_leader()
            || (!config.data.is_empty() && Configuration::decode(&config.data).is_none())
        {
            return;
        }
        // A table that does not decode is refused like a configuration
        // that does not: installing the snapshot without it would forget
        // every producer, and a retry would be stored twice.
        let Ok(mut producers) = Producers::decode(&state) else {
            return;
        };
        producers.truncated(last_index);
        self.follow(now, from);
        if last_index > self.commit {
            match self.log.term_or_load(last_index) {
                Err(_) => return,
                Ok(Some(held)) if held == last_term => {}
                Ok(_) => {
                    // This log lacks the snapshot's end or conflicts with
                    // it: whatever it holds after its commit index is
                    // uncommitted, and the log starts over after it.
                    if self
                        .log
                        .reset(last_index.next(), next_offset, last_term, config, producers)
                        .is_err()
                    {
                        return;
                    }
                    self.truncated(last_index);
                    self.outputs.push_back(Output::Installed { last_index });
                }
            }
            self.commit_to(last_index);
        }
        self.reply_stored(from, last_index);
    }
}
