//! The client protocol's messages: what a client asks a node, and what the
//! node answers.
//!
//! Owns their shape and their postcard encoding, which `docs/PROTOCOL.md`
//! describes byte by byte: a variant's place in its enum is its varint
//! tag, and fields are encoded in the order written here. So variants and
//! fields are only ever appended, never reordered or removed. It must
//! never hold a decision: nodes decide, this only carries.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::frame::{self, FrameKind};

/// The most records one produce may carry.
pub const PRODUCE_RECORDS_MAX: usize = 10_000;

/// The largest request payload a node reads: a produce of up to 4 MiB of
/// records and its overhead. So an entry made of one request stays far
/// below [`crate::FRAME_PAYLOAD_MAX`], in every Raft message that carries it.
pub const REQUEST_PAYLOAD_MAX: u32 = 4 * 1024 * 1024 + 64 * 1024;

/// The most a follow may wait, in milliseconds.
pub const FOLLOW_WAIT_MS_MAX: u32 = 60_000;

/// A client's request: one per stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Tag 0: Append records; with a stamp, idempotently (at the leader).
    Produce {
        /// The producer's id and this batch's sequence number.
        stamp: Option<Stamp>,
        /// The records, at least one.
        records: Vec<Bytes>,
    },
    /// Tag 1: Read committed records from `from` (at any node).
    Consume {
        /// The first offset wanted.
        from: u64,
        /// The most records to return.
        max_records: u32,
        /// About the most bytes to return (at least one record).
        max_bytes: u32,
    },
    /// Tag 2: Like `Consume`, but wait up to `wait_ms` for a record at `from`.
    Follow {
        /// The first offset wanted.
        from: u64,
        /// The most records to return.
        max_records: u32,
        /// About the most bytes to return (at least one record).
        max_bytes: u32,
        /// How long to wait, at most [`FOLLOW_WAIT_MS_MAX`].
        wait_ms: u32,
    },
    /// Tag 3: The node's view of the cluster.
    Status,
    /// Tag 4: Hand leadership to a voter (at the leader; admin).
    Transfer {
        /// The voter to lead next.
        to: u64,
    },
    /// Tag 5: Remove a node from the cluster (at the leader; admin).
    Remove {
        /// The node.
        node: u64,
    },
}

/// An idempotent producer's stamp on a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The producer's id, chosen at random by the producer.
    pub producer: u64,
    /// The batch's sequence number: 1 for the first, then each next one.
    pub sequence: u64,
}

/// A node's answer: one per request, then the stream ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Tag 0: The batch is committed at offsets `first .. first + count`.
    Produced {
        /// Its first record's offset.
        first: u64,
        /// Its records.
        count: u32,
    },
    /// Tag 1: Committed records at offsets `first, first + 1, ...`, and where
    /// to continue (`first` when there are none).
    Records {
        /// The first record's offset.
        first: u64,
        /// The records, at consecutive offsets.
        records: Vec<Bytes>,
        /// The offset to ask for next.
        next: u64,
    },
    /// Tag 2: The node's view of the cluster.
    Status(Status),
    /// Tag 3: Done: a transfer begun, a removal committed.
    Done,
    /// Tag 4: The request failed.
    Failed(Failure),
}

/// A node and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its id.
    pub id: u64,
    /// Its address (`host:port`), if known.
    pub addr: String,
}

/// A member of the cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node and its address.
    pub node: NodeInfo,
    /// `voter`, `learner` or `none` (gossip knows it, Raft does not).
    pub role: String,
    /// Gossip's word: `alive`, `suspect`, `dead`, `left` or `unknown`.
    pub state: String,
}

/// One node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node answering.
    pub node: NodeInfo,
    /// `leader`, `candidate` or `follower`.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeInfo>,
    /// The first retained offset.
    pub first_offset: u64,
    /// The offset after the last committed record.
    pub commit_offset: u64,
    /// The members, by id.
    pub members: Vec<Member>,
}

/// Why a request failed; the variant's place is its code (`docs/PROTOCOL.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// Tag 0: Only the leader takes this; try `leader`.
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeInfo>,
    },
    /// Tag 1: The principal may not do this.
    Unauthorized {
        /// The principal.
        principal: String,
        /// The permission needed: `produce`, `consume` or `admin`.
        needs: String,
    },
    /// Tag 2: The offset is outside the committed, retained records.
    OutOfRange {
        /// The first retained offset.
        first: u64,
        /// The offset after the last committed record.
        next: u64,
    },
    /// Tag 3: The batch was lost to a change of leader: retry, same stamp.
    Lost,
    /// Tag 4: A stamped batch came after a gap: retry at the leader.
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
    },
    /// Tag 5: A stamped batch older than the producer's remembered ones.
    Stale {
        /// The producer's last sequence number.
        last: u64,
    },
    /// Tag 6: Too many requests in progress; retry later.
    Busy,
    /// Tag 7: The request is malformed or too large.
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// Tag 8: The change was refused; nothing changed.
    Refused {
        /// Why.
        reason: String,
    },
    /// Tag 9: The node cannot serve now (stopping, or its disk failed).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Encodes a request as one frame.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, FrameKind::Request, request);
    out
}

/// Encodes a reply as one frame.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, FrameKind::Reply, reply);
    out
}

/// Decodes a request from one whole, verified frame's bytes.
pub fn decode_request(bytes: &[u8]) -> Result<Request, FrameError> {
    decode_whole(FrameKind::Request, bytes)
}

/// Decodes a reply from one whole, verified frame's bytes.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, FrameError> {
    decode_whole(FrameKind::Reply, bytes)
}

fn decode_whole<T: serde::de::DeserializeOwned>(
    kind: FrameKind,
    bytes: &[u8],
) -> Result<T, FrameError> {
    let found = frame::decode(bytes)?;
    if found.header.kind != kind {
        return Err(FrameError::UnexpectedKind {
            expected: kind,
            found: found.header.kind,
        });
    }
    frame::decode_payload(kind, found.payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let requests = [
            Request::Produce {
                stamp: Some(Stamp {
                    producer: 7,
                    sequence: 1,
                }),
                records: vec![Bytes::from_static(b"hello")],
            },
            Request::Follow {
                from: 3,
                max_records: 10,
                max_bytes: 1 << 20,
                wait_ms: 500,
            },
            Request::Status,
        ];
        for request in requests {
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
        let reply = Reply::Failed(Failure::OutOfRange { first: 0, next: 9 });
        assert_eq!(decode_reply(&encode_reply(&reply)), Ok(reply));
    }

    #[test]
    fn a_reply_is_not_a_request() {
        let bytes = encode_reply(&Reply::Done);
        assert!(matches!(
            decode_request(&bytes),
            Err(FrameError::UnexpectedKind { .. })
        ));
    }
}
