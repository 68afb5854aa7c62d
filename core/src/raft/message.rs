//! The messages Raft nodes exchange (so far: elections and heartbeats).
//!
//! Owns their shape; the runtime frames them with the proto frame and the
//! simulator passes them as values. It must never hold anything a receiver
//! could not check: every message carries its sender's term.

use serde::{Deserialize, Serialize};

use crate::ids::{LogIndex, NodeId, Term};

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
    /// A leader's heartbeat: it keeps followers from standing (§5.2).
    Heartbeat {
        /// The leader's term.
        term: Term,
    },
    /// A follower's answer to a heartbeat: the leader counts these to know
    /// it still reaches a majority (check-quorum, thesis §6.2).
    HeartbeatReply {
        /// The follower's term.
        term: Term,
    },
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest { term, .. }
            | Message::VoteReply { term, .. }
            | Message::Heartbeat { term }
            | Message::HeartbeatReply { term } => *term,
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
            Message::Heartbeat { term } => write!(f, "heartbeat {term}"),
            Message::HeartbeatReply { term } => write!(f, "heartbeat-ack {term}"),
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
