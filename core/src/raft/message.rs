//! The messages Raft nodes exchange.
//!
//! Owns their shape; the runtime frames them with the proto frame and the
//! simulator passes them as values. It must never hold anything a receiver
//! could not check: every message carries its sender's term.

use serde::{Deserialize, Serialize};

use crate::ids::{LogIndex, NodeId, Offset, Term};
use crate::log::entry::NewEntry;
use crate::raft::replication::Refusal;

/// One Raft message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Asks for a vote (§5.2) or a pre-vote (thesis §9.6).
    VoteRequest {
        /// For a vote, the candidate's term; for a pre-vote, the term it
        /// would stand in.
        term: Term,
        /// The term of the candidate's last entry.
        last_term: Term,
        /// The index of the candidate's last entry.
        last_index: LogIndex,
        /// Whether this is a pre-vote.
        pre_vote: bool,
        /// Whether leadership is being handed to the candidate.
        transfer: bool,
    },
    /// Answers a vote or pre-vote request.
    VoteReply {
        /// The voter's term (for a granted pre-vote, the term asked about).
        term: Term,
        /// Whether it was granted.
        granted: bool,
        /// Whether it answers a pre-vote.
        pre_vote: bool,
    },
    /// Entries to append after (`prev_index`, `prev_term`) (§5.3); with no
    /// entries, a heartbeat (§5.2). Each entry's index follows from
    /// `prev_index`, and its offsets from the follower's own log, which
    /// matches the leader's up to `prev_index` once accepted.
    Append {
        /// The leader's term.
        term: Term,
        /// The index of the entry before the first carried.
        prev_index: LogIndex,
        /// Its term.
        prev_term: Term,
        /// The leader's commit index.
        commit: LogIndex,
        /// The entries.
        entries: Vec<NewEntry>,
        /// The leader's read round when it sent this, echoed in the reply:
        /// an answer to round `r` confirms the leadership after every read
        /// that began before round `r` (ReadIndex, thesis §6.4).
        round: u64,
    },
    /// Answers an append or a snapshot.
    AppendReply {
        /// The follower's term.
        term: Term,
        /// The read round of the append answered (0 for a snapshot).
        round: u64,
        /// What the follower did.
        result: AppendResult,
    },
    /// Tells a caught-up follower to stand for election at once, without
    /// pre-votes: the leader hands leadership over (thesis §3.10).
    TimeoutNow {
        /// The leader's term.
        term: Term,
    },
    /// Tells a follower that needs entries the leader no longer holds to
    /// start its log after `last_index` (§7: for a log, the snapshot is
    /// where the retained log starts).
    Snapshot {
        /// The leader's term.
        term: Term,
        /// The last index the snapshot covers; committed.
        last_index: LogIndex,
        /// Its term.
        last_term: Term,
        /// The offset the record after it takes.
        next_offset: Offset,
        /// The index of the configuration entry in effect at its end
        /// (`LogIndex(0)`: the bootstrap configuration).
        config_index: LogIndex,
        /// That entry's data (empty for the bootstrap).
        config: bytes::Bytes,
        /// The leader's idempotent producer table (`Producers::encode`),
        /// taken at or after the snapshot's end; the follower keeps what
        /// it says of entries through `last_index`.
        state: bytes::Bytes,
    },
}

/// What a follower did with an append or a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// Its log durably holds the leader's entries through `through`.
    Stored {
        /// The last entry stored and synced.
        through: LogIndex,
    },
    /// It refused an append whose previous entry was `prev`.
    Refused {
        /// The append's previous index.
        prev: LogIndex,
        /// Where the leader should look next.
        hint: Refusal,
    },
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest { term, .. }
            | Message::VoteReply { term, .. }
            | Message::Append { term, .. }
            | Message::AppendReply { term, .. }
            | Message::Snapshot { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }
}

impl core::fmt::Display for Message {
    /// One short line, for traces: `vote? t3 last t2/i7`, `vote+ t3`, ...
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::VoteRequest {
                term,
                last_term,
                last_index,
                pre_vote,
                transfer,
            } => {
                let kind = if *pre_vote { "pre-vote?" } else { "vote?" };
                let transfer = if *transfer { " transfer" } else { "" };
                write!(f, "{kind} {term} last {last_term}/{last_index}{transfer}")
            }
            Message::VoteReply {
                term,
                granted,
                pre_vote,
            } => {
                let kind = if *pre_vote { "pre-vote" } else { "vote" };
                let answer = if *granted { "+" } else { "-" };
                write!(f, "{kind}{answer} {term}")
            }
            Message::Append {
                term,
                prev_index,
                prev_term,
                commit,
                entries,
                ..
            } => {
                write!(f, "append {term} after {prev_term}/{prev_index}")?;
                if !entries.is_empty() {
                    write!(f, " +{}", entries.len())?;
                }
                write!(f, " commit {commit}")
            }
            Message::AppendReply { term, result, .. } => match result {
                AppendResult::Stored { through } => write!(f, "stored {term} through {through}"),
                AppendResult::Refused { prev, hint } => {
                    write!(f, "refused {term} after {prev} hint ")?;
                    match hint.conflict_term {
                        Some(t) => write!(f, "{t}/{}", hint.conflict_index),
                        None => write!(f, "end {}", hint.conflict_index),
                    }
                }
            },
            Message::TimeoutNow { term } => write!(f, "timeout-now {term}"),
            Message::Snapshot {
                term,
                last_index,
                last_term,
                next_offset,
                ..
            } => write!(
                f,
                "snapshot {term} through {last_term}/{last_index} next {next_offset}"
            ),
        }
    }
}

/// A message and its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Who it goes to.
    pub to: NodeId,
    /// What it says.
    pub message: Message,
}
