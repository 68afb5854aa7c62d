//! Gossip's messages: probes, one datagram each (SWIM §4.1–4.2, Lifeguard
//! §IV.A), and the full-state exchange (push-pull), one frame on a stream.
//!
//! Owns what a gossip datagram holds and how news rides on it: a probe, or
//! its answer, and as much waiting news as the room the probe leaves in
//! the datagram takes. It must never encode a datagram past its budget,
//! and never trust received bytes: every decode checks the frame's CRC
//! and reports malformed bytes as an error.

use std::collections::BTreeMap;

use cairn_proto::frame::{self, FrameKind};
use cairn_proto::{FrameError, FRAME_HEADER_BYTES};
use serde::{Deserialize, Serialize};

use crate::gossip::dissemination::Broadcasts;
#[cfg(test)]
use crate::gossip::dissemination::Urgency;
use crate::gossip::events::UserEvent;
use crate::gossip::member::{Status, Update};
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
    /// No probe: news alone, wanting no answer (a leaving member's last
    /// words).
    News,
}

/// What a member says of itself besides its state: where to reach it and
/// what it is for. Carried with a version; a higher version replaces a
/// lower one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Where its peers reach it (the transport's address, as text).
    pub addr: String,
    /// What it serves as (for example `storage`).
    pub role: String,
    /// Anything else its operator tags it with.
    pub tags: BTreeMap<String, String>,
}

/// A member's metadata as of a version. The member takes its incarnation
/// as the version whenever it changes its metadata, so versions never go
/// backwards, across restarts too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The version: the member's incarnation when it set `meta`.
    pub version: u64,
    /// The metadata.
    pub meta: Meta,
}

/// A piece of news, as it rides on messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum News {
    /// A member's state.
    Member(Update),
    /// A member's metadata.
    Meta {
        /// The member.
        member: NodeId,
        /// Its metadata.
        meta: Versioned,
    },
    /// A user event.
    Event(UserEvent),
}

/// What a piece of news is about: a newer piece about the same subject
/// replaces an older one in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// A member's state.
    Member(NodeId),
    /// A member's metadata.
    Meta(NodeId),
    /// A user event, by the order this node queued it in.
    Event(u64),
}

/// A gossip datagram's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The probe or answer.
    pub probe: Probe,
    /// News riding along.
    pub news: Vec<News>,
}

/// Bytes `news` takes in a message.
pub fn news_bytes(news: &News) -> usize {
    postcard::experimental::serialized_size(news).expect("news has a size")
}

/// What one member knows of one member, in a full-state exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The member.
    pub member: NodeId,
    /// Its status.
    pub status: Status,
    /// Its metadata, if known.
    pub meta: Option<Versioned>,
}

/// A full-state exchange (push-pull, SWIM's anti-entropy as memberlist
/// runs it): everything the sender knows, itself included. Sent on a
/// stream, not a datagram: it grows with the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPull {
    /// Whether the receiver should answer with its own state (the sender
    /// is joining, or exchanging now and then), or this is the answer.
    pub answer_wanted: bool,
    /// What the sender knows.
    pub members: Vec<Known>,
}

/// Bytes a message's count of news takes, at most (a varint of a count
/// below 2^14, more than any datagram holds).
const NEWS_COUNT_BYTES_MAX: usize = 2;

/// Encodes `probe` as one datagram of at most `budget` bytes, with as much
/// of `queue`'s news as the rest takes (each piece taken counts a send of
/// it, against `limit`).
///
/// `first` goes before any of the queue (Lifeguard's buddy system: a
/// suspected member hears of its suspicion from the prober itself), in
/// place of the queue's news about the same subject; it must fit.
pub fn encode(
    probe: Probe,
    first: Option<News>,
    queue: &mut Broadcasts<Subject, News>,
    limit: u64,
    budget: usize,
) -> Vec<u8> {
    let probe_bytes = postcard::experimental::serialized_size(&probe).expect("a probe has a size");
    let first_bytes = first.as_ref().map_or(0, news_bytes);
    let fixed = FRAME_HEADER_BYTES + probe_bytes + NEWS_COUNT_BYTES_MAX + first_bytes;
    assert!(
        fixed <= budget,
        "a gossip datagram of {budget} bytes holds a probe and its first news"
    );
    let skip = match &first {
        Some(News::Member(update)) => Some(Subject::Member(update.member)),
        Some(News::Meta { member, .. }) => Some(Subject::Meta(*member)),
        Some(News::Event(_)) | None => None,
    };
    let mut news: Vec<News> = first.into_iter().collect();
    news.extend(queue.take(budget - fixed, limit, skip));
    let mut out = Vec::with_capacity(budget);
    frame::encode(&mut out, FrameKind::Gossip, &Message { probe, news });
    assert!(out.len() <= budget, "a datagram stays within its budget");
    out
}

/// Decodes a datagram.
pub fn decode(datagram: &[u8]) -> Result<Message, FrameError> {
    decode_whole(FrameKind::Gossip, datagram)
}

/// Encodes a full-state exchange as one frame.
pub fn encode_push_pull(push_pull: &PushPull) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, FrameKind::GossipState, push_pull);
    out
}

/// Decodes a full-state exchange.
pub fn decode_push_pull(bytes: &[u8]) -> Result<PushPull, FrameError> {
    decode_whole(FrameKind::GossipState, bytes)
}

/// Decodes `bytes`, which must be exactly one intact frame of `kind`.
fn decode_whole<'a, T: Deserialize<'a>>(kind: FrameKind, bytes: &'a [u8]) -> Result<T, FrameError> {
    let frame = frame::decode(bytes)?;
    if frame.header.kind != kind {
        return Err(FrameError::UnexpectedKind {
            expected: kind,
            found: frame.header.kind,
        });
    }
    if frame.header.frame_len() != bytes.len() {
        return Err(FrameError::TrailingBytes {
            kind,
            len: bytes.len() - frame.header.frame_len(),
        });
    }
    frame::decode_payload(kind, frame.payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::member::{State, Status};
    use crate::limits::GOSSIP_DATAGRAM_BYTES_MAX;

    fn update(member: u64, incarnation: u64) -> News {
        News::Member(Update {
            member: NodeId(member),
            status: Status {
                incarnation,
                state: State::Suspect,
            },
            from: NodeId(1),
        })
    }

    fn subject(news: &News) -> Subject {
        match news {
            News::Member(update) => Subject::Member(update.member),
            News::Meta { member, .. } => Subject::Meta(*member),
            News::Event(event) => Subject::Event(event.ltime),
        }
    }

    fn queued(news: impl IntoIterator<Item = News>) -> Broadcasts<Subject, News> {
        let mut queue = Broadcasts::default();
        for news in news {
            queue.push(
                subject(&news),
                news.clone(),
                news_bytes(&news),
                Urgency::Routine,
            );
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
            Probe::News,
        ];
        let meta = News::Meta {
            member: NodeId(4),
            meta: Versioned {
                version: 3,
                meta: Meta {
                    addr: "10.0.0.4:7000".into(),
                    role: "storage".into(),
                    tags: BTreeMap::from([("zone".into(), "b".into())]),
                },
            },
        };
        let event = News::Event(UserEvent {
            ltime: 12,
            name: "deploy".into(),
            payload: bytes::Bytes::from_static(b"v2"),
        });
        for probe in probes {
            let news = [
                update(2, 3),
                update(300, 1 << 33),
                meta.clone(),
                event.clone(),
            ];
            let mut queue = queued(news.clone());
            let datagram = encode(probe, None, &mut queue, 4, GOSSIP_DATAGRAM_BYTES_MAX);
            let message = decode(&datagram).unwrap();
            assert_eq!(message.probe, probe);
            let mut got = message.news.clone();
            got.sort_by_key(subject);
            let mut want = news.to_vec();
            want.sort_by_key(subject);
            assert_eq!(got, want, "{probe:?}");
        }
    }

    // Goal: the buddy system's news rides first, before any of the queue,
    // and the queue fills only what it leaves.
    #[test]
    fn the_first_news_rides_before_the_queue() {
        let mut queue = queued((2..400).map(|m| update(m, m)).chain([update(9_999, 4)]));
        let buddy = update(9_999, 5);
        let datagram = encode(
            Probe::Ping { seq: 1 },
            Some(buddy.clone()),
            &mut queue,
            4,
            1200,
        );
        assert!(datagram.len() <= 1200);
        let news = decode(&datagram).unwrap().news;
        assert_eq!(news[0], buddy);
        assert!(news.len() > 100, "the queue fills the rest");
        assert_eq!(
            news.iter()
                .filter(|n| subject(n) == Subject::Member(NodeId(9_999)))
                .count(),
            1,
            "in place of the queue's news about the same member"
        );
    }

    // Goal: a full-state exchange round-trips as one frame, and a datagram
    // is not taken for one (nor the reverse).
    #[test]
    fn push_pull_round_trips() {
        let push_pull = PushPull {
            answer_wanted: true,
            members: (1..2_000)
                .map(|m| Known {
                    member: NodeId(m),
                    status: Status {
                        incarnation: m * 7,
                        state: State::Alive,
                    },
                    meta: (m % 2 == 0).then(|| Versioned {
                        version: m,
                        meta: Meta::default(),
                    }),
                })
                .collect(),
        };
        let bytes = encode_push_pull(&push_pull);
        assert!(bytes.len() > GOSSIP_DATAGRAM_BYTES_MAX, "it is no datagram");
        assert_eq!(decode_push_pull(&bytes).unwrap(), push_pull);
        assert!(decode(&bytes).is_err());
        let mut queue = queued([update(2, 1)]);
        let datagram = encode(Probe::News, None, &mut queue, 4, 1200);
        assert!(decode_push_pull(&datagram).is_err());
    }

    // Goal: news fills what the probe leaves of the budget and never more:
    // datagram after datagram stays within it and is nearly full while
    // news waits, until every piece has ridden `limit` times.
    #[test]
    fn news_fills_the_datagram_and_never_overflows_it() {
        let updates: Vec<News> = (2..400).map(|m| update(m, m * 1_000_003)).collect();
        let largest = updates.iter().map(news_bytes).max().unwrap();
        let mut queue = queued(updates.iter().cloned());
        let mut carried = std::collections::BTreeMap::new();
        let mut datagrams = 0;
        while !queue.is_empty() {
            let datagram = encode(Probe::Ping { seq: datagrams }, None, &mut queue, 3, 1200);
            assert!(datagram.len() <= 1200);
            if !queue.is_empty() {
                assert!(
                    datagram.len() + largest > 1200 - 2,
                    "a datagram leaves no room unused"
                );
            }
            for news in decode(&datagram).unwrap().news {
                *carried.entry(subject(&news)).or_insert(0) += 1;
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
        let good = encode(Probe::Ping { seq: 7 }, None, &mut queue, 4, 1200);
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
