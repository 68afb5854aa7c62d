//! Gossip's messages, one datagram each (SWIM §4.1–4.2, Lifeguard §IV.A).
//!
//! Owns what a gossip datagram holds and how news rides on it: a probe, or
//! its answer, and as much waiting news as the room the probe leaves in
//! the datagram takes. It must never encode a datagram past its budget,
//! and never trust a datagram's bytes: every decode checks the frame's CRC
//! and reports malformed bytes as an error.

use cairn_proto::frame::{self, FrameKind};
use cairn_proto::{FrameError, FRAME_HEADER_BYTES};
use serde::{Deserialize, Serialize};

use crate::gossip::dissemination::Broadcasts;
use crate::gossip::member::Update;
use crate::ids::NodeId;

/// What a message asks or answers. `seq` pairs an answer with its probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Probe {
    /// Are you alive? (SWIM §4.1)
    Ping {
        /// The probe's number.
        seq: u64,
    },
    /// Probe `target` for me, and tell me (SWIM §4.2, indirect probe).
    PingReq {
        /// The probe's number.
        seq: u64,
        /// The member to probe.
        target: NodeId,
    },
    /// Alive: an answer to a ping, or relayed from an indirect probe.
    Ack {
        /// The probe answered.
        seq: u64,
    },
    /// I am alive, but have no ack from your target yet (Lifeguard §IV.A:
    /// a prober that hears neither suspects its own health).
    Nack {
        /// The probe answered.
        seq: u64,
    },
}

/// A gossip datagram's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The probe or answer.
    pub probe: Probe,
    /// News riding along.
    pub news: Vec<Update>,
}

/// Bytes `update` takes in a message.
pub fn news_bytes(update: &Update) -> usize {
    postcard::experimental::serialized_size(update).expect("an update has a size")
}

/// Bytes a message's count of news takes, at most (a varint of a count
/// below 2^14, more than any datagram holds).
const NEWS_COUNT_BYTES_MAX: usize = 2;

/// Encodes `probe` as one datagram of at most `budget` bytes, with as much
/// of `queue`'s news as the rest takes (each piece taken counts a send of
/// it, against `limit`).
pub fn encode(
    probe: Probe,
    queue: &mut Broadcasts<NodeId, Update>,
    limit: u64,
    budget: usize,
) -> Vec<u8> {
    let probe_bytes = postcard::experimental::serialized_size(&probe).expect("a probe has a size");
    let fixed = FRAME_HEADER_BYTES + probe_bytes + NEWS_COUNT_BYTES_MAX;
    assert!(
        fixed <= budget,
        "a gossip datagram of {budget} bytes holds a probe"
    );
    let news = queue.take(budget - fixed, limit);
    let mut out = Vec::with_capacity(budget);
    frame::encode(&mut out, FrameKind::Gossip, &Message { probe, news });
    assert!(out.len() <= budget, "a datagram stays within its budget");
    out
}

/// Decodes a datagram.
pub fn decode(datagram: &[u8]) -> Result<Message, FrameError> {
    let frame = frame::decode(datagram)?;
    if frame.header.kind != FrameKind::Gossip {
        return Err(FrameError::UnexpectedKind {
            expected: FrameKind::Gossip,
            found: frame.header.kind,
        });
    }
    if frame.header.frame_len() != datagram.len() {
        return Err(FrameError::TrailingBytes {
            kind: FrameKind::Gossip,
            len: datagram.len() - frame.header.frame_len(),
        });
    }
    frame::decode_payload(FrameKind::Gossip, frame.payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::member::{State, Status};
    use crate::limits::GOSSIP_DATAGRAM_BYTES_MAX;

    fn update(member: u64, incarnation: u64) -> Update {
        Update {
            member: NodeId(member),
            status: Status {
                incarnation,
                state: State::Suspect,
            },
            from: NodeId(1),
        }
    }

    fn queued(updates: impl IntoIterator<Item = Update>) -> Broadcasts<NodeId, Update> {
        let mut queue = Broadcasts::default();
        for update in updates {
            queue.push(update.member, update, news_bytes(&update));
        }
        queue
    }

    // Goal: every kind of message round-trips through a datagram, with
    // its news.
    #[test]
    fn messages_round_trip() {
        let probes = [
            Probe::Ping { seq: 1 },
            Probe::PingReq {
                seq: 1 << 40,
                target: NodeId(9),
            },
            Probe::Ack { seq: 0 },
            Probe::Nack { seq: u64::MAX },
        ];
        for probe in probes {
            let news = [update(2, 3), update(300, 1 << 33)];
            let mut queue = queued(news);
            let datagram = encode(probe, &mut queue, 4, GOSSIP_DATAGRAM_BYTES_MAX);
            let message = decode(&datagram).unwrap();
            assert_eq!(message.probe, probe);
            let mut got = message.news.clone();
            got.sort_by_key(|u| u.member);
            assert_eq!(got, news, "{probe:?}");
        }
    }

    // Goal: news fills what the probe leaves of the budget and never more:
    // datagram after datagram stays within it and is nearly full while
    // news waits, until every piece has ridden `limit` times.
    #[test]
    fn news_fills_the_datagram_and_never_overflows_it() {
        let updates: Vec<Update> = (2..400).map(|m| update(m, m * 1_000_003)).collect();
        let largest = updates.iter().map(news_bytes).max().unwrap();
        let mut queue = queued(updates.iter().copied());
        let mut carried = std::collections::BTreeMap::new();
        let mut datagrams = 0;
        while !queue.is_empty() {
            let datagram = encode(Probe::Ping { seq: datagrams }, &mut queue, 3, 1200);
            assert!(datagram.len() <= 1200);
            if !queue.is_empty() {
                assert!(
                    datagram.len() + largest > 1200 - 2,
                    "a datagram leaves no room unused"
                );
            }
            for news in decode(&datagram).unwrap().news {
                *carried.entry(news.member).or_insert(0) += 1;
            }
            datagrams += 1;
        }
        assert!(
            carried.values().all(|&n| n == 3),
            "each piece rides 3 times"
        );
        assert_eq!(carried.len(), updates.len());
    }

    // Goal: bytes that are not a whole, intact gossip datagram are an
    // error, never a panic.
    #[test]
    fn hostile_datagrams_are_errors() {
        let mut queue = queued([update(2, 1)]);
        let good = encode(Probe::Ping { seq: 7 }, &mut queue, 4, 1200);
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut longer = good.clone();
        longer.push(0);
        let mut other = Vec::new();
        frame::encode(&mut other, FrameKind::RaftState, &(1u64, 2u64));
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("cut", good[..good.len() - 1].to_vec()),
            ("a bit flipped", flipped),
            ("bytes after it", longer),
            ("another kind", other),
        ] {
            assert!(decode(&bytes).is_err(), "{what}");
        }
        assert!(decode(&good).is_ok());
    }
}
