//! How news is passed on (SWIM §4.1, infection-style dissemination).
//!
//! Owns the retransmit limit and the queue of news waiting to ride on
//! outgoing messages: each update rides on about λ·log(n) of them, enough
//! for it to reach every member with high probability, and no more; urgent
//! news (suspicions, deaths, refutations) goes before routine news (joins,
//! metadata, events), then the least-sent first, and what rides on a
//! message fills the room the message leaves and never more. Urgency
//! matters when a backlog builds (a thousand members joining at once):
//! least-sent-first alone would send a suspicion once and then leave it
//! behind every unsent join, until its suspect ran out of time to refute
//! it. It must never give a limit of zero
//! (news this node learned is passed on at least once), nor keep two pieces
//! of news about one subject (the newer replaces the older).

use std::collections::{BTreeMap, BTreeSet};

/// λ: how many times an update is piggybacked per order of magnitude of the
/// cluster's size (hashicorp/memberlist's `RetransmitMult`).
pub const RETRANSMIT_MULT: u64 = 4;

/// Times an update is passed on in a cluster of `members` (this node
/// included): λ·⌈log10(members + 1)⌉, at least λ: 4 up to 9 members, 8 up
/// to 99, 12 up to 999.
pub fn retransmit_limit(members: u64) -> u64 {
    RETRANSMIT_MULT * ceil_log10(members.saturating_add(1)).max(1)
}

/// News waiting to be passed on, one piece per subject (a member, an
/// event), each with the times it has been sent.
#[derive(Clone, Debug)]
pub struct Broadcasts<K: Ord + Copy, T> {
    /// By subject: the news, its size in bytes, its order of arrival and
    /// its sends so far.
    news: BTreeMap<K, Queued<T>>,
    /// The order news is sent in: urgent first, then fewest sends, then
    /// newest.
    order: BTreeSet<Place<K>>,
    /// Arrivals so far (the next one's order).
    arrivals: u64,
    /// The fewest bytes of any news ever queued: once the room left is
    /// smaller, nothing more can fit, and `take` stops looking.
    smallest: usize,
}

/// Pieces in a row that do not fit after which `take` stops looking.
const TAKE_MISSES_MAX: u32 = 16;

/// How soon news must spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Someone must act on it in time: a suspicion (its member must
    /// refute it), a refutation, a death.
    Urgent,
    /// A join, metadata, a user event.
    Routine,
}

/// A piece of news's place in the order: (urgency, sends, newest first,
/// subject).
type Place<K> = (Urgency, u64, core::cmp::Reverse<u64>, K);

#[derive(Clone, Debug)]
struct Queued<T> {
    urgency: Urgency,
    item: T,
    bytes: usize,
    arrival: u64,
    sends: u64,
}

impl<K: Ord + Copy, T: Clone> Default for Broadcasts<K, T> {
    fn default() -> Self {
        Broadcasts {
            news: BTreeMap::new(),
            order: BTreeSet::new(),
            arrivals: 0,
            smallest: usize::MAX,
        }
    }
}

impl<K: Ord + Copy, T: Clone> Broadcasts<K, T> {
    /// Queues `item`, of `bytes` bytes once encoded, as the news about
    /// `subject`, replacing older news about it (sent or not).
    pub fn push(&mut self, subject: K, item: T, bytes: usize, urgency: Urgency) {
        self.remove(subject);
        self.smallest = self.smallest.min(bytes);
        let arrival = self.arrivals;
        self.arrivals += 1;
        self.order
            .insert((urgency, 0, core::cmp::Reverse(arrival), subject));
        self.news.insert(
            subject,
            Queued {
                urgency,
                item,
                bytes,
                arrival,
                sends: 0,
            },
        );
    }

    /// Forgets the news about `subject`.
    pub fn remove(&mut self, subject: K) {
        if let Some(old) = self.news.remove(&subject) {
            let removed = self.order.remove(&(
                old.urgency,
                old.sends,
                core::cmp::Reverse(old.arrival),
                subject,
            ));
            assert!(removed, "queued news is in the order");
        }
    }

    /// News to ride on one message with `room` bytes left, urgent first,
    /// then fewest sends, then newest, skipping what does not fit;
    /// each piece taken counts one send, and is forgotten once sent `limit`
    /// times. The bytes taken never exceed `room`. The news about `skip`,
    /// if any, is left where it is (the message carries it already).
    pub fn take(&mut self, room: usize, limit: u64, skip: Option<K>) -> Vec<T> {
        let mut left = room;
        let mut taken = Vec::new();
        let mut sent = Vec::new();
        let mut misses = 0;
        for &place in &self.order {
            if Some(place.3) == skip {
                continue;
            }
            let queued = &self.news[&place.3];
            if queued.bytes <= left {
                left -= queued.bytes;
                taken.push(queued.item.clone());
                sent.push(place);
                misses = 0;
            } else {
                misses += 1;
            }
            // Nothing more can fit, or the room left is too small for
            // the news around here: stop looking rather than walk a long
            // backlog for a few bytes.
            if left < self.smallest || misses == TAKE_MISSES_MAX {
                break;
            }
        }
        for (urgency, sends, arrival, subject) in sent {
            self.order.remove(&(urgency, sends, arrival, subject));
            let queued = self.news.get_mut(&subject).expect("queued");
            queued.sends = sends + 1;
            if queued.sends >= limit {
                self.news.remove(&subject);
            } else {
                self.order.insert((urgency, sends + 1, arrival, subject));
            }
        }
        taken
    }

    /// Whether news about `subject` is waiting.
    pub fn contains(&self, subject: K) -> bool {
        self.news.contains_key(&subject)
    }

    /// Pieces of news waiting.
    pub fn len(&self) -> usize {
        self.news.len()
    }

    /// Whether no news waits.
    pub fn is_empty(&self) -> bool {
        self.news.is_empty()
    }

    /// Checks the queue's invariants.
    pub fn check_invariants(&self) {
        assert_eq!(
            self.news.len(),
            self.order.len(),
            "one place in the order each"
        );
        for &(urgency, sends, core::cmp::Reverse(arrival), subject) in &self.order {
            let queued = &self.news[&subject];
            assert_eq!(
                (queued.urgency, queued.sends, queued.arrival),
                (urgency, sends, arrival)
            );
            assert!(arrival < self.arrivals);
        }
    }
}

/// ⌈log10(`x`)⌉, exactly: the least k with 10^k ≥ `x`.
fn ceil_log10(x: u64) -> u64 {
    let (mut k, mut power) = (0, 1u64);
    while power < x {
        power = power.saturating_mul(10);
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: λ·log(n) retransmissions, stepping up by λ at each order of
    // magnitude of the cluster's size.
    #[test]
    fn retransmit_limit_by_cluster_size() {
        let table = [
            (0, 4),
            (1, 4),
            (8, 4),
            (9, 4),
            (10, 8),
            (98, 8),
            (99, 8),
            (100, 12),
            (999, 12),
            (1_000, 16),
            (u64::MAX, 4 * 20),
        ];
        for (members, limit) in table {
            assert_eq!(retransmit_limit(members), limit, "{members} members");
        }
    }

    /// Subjects of what one message with `room` bytes carries.
    fn take(queue: &mut Broadcasts<u32, u32>, room: usize, limit: u64) -> Vec<u32> {
        let taken = queue.take(room, limit, None);
        queue.check_invariants();
        taken
    }

    // Goal: news fills the room a message leaves, never more, fewest sends
    // first and newest first among equals; what does not fit waits.
    #[test]
    fn news_fills_the_room_least_sent_and_newest_first() {
        let mut queue = Broadcasts::default();
        // Subjects 1, 2, 3 arrive in order, of 40, 30 and 50 bytes.
        queue.push(1, 1, 40, Urgency::Routine);
        queue.push(2, 2, 30, Urgency::Routine);
        queue.push(3, 3, 50, Urgency::Routine);
        let table: [(usize, &[u32]); 5] = [
            // Newest first: 3 (50) then 2 (30); 1 (40) does not fit in 100.
            (100, &[3, 2]),
            // 1 has been sent least now.
            (40, &[1]),
            // All sent once: newest first again, within 80 bytes.
            (80, &[3, 2]),
            // No room at all: nothing, however small the news.
            (0, &[]),
            // Room for everything: each once more.
            (1_000, &[1, 3, 2]),
        ];
        for (room, expected) in table {
            assert_eq!(take(&mut queue, room, 10), expected, "room {room}");
        }
    }

    // Goal: news is sent `limit` times and then forgotten; newer news about
    // a subject replaces the older and starts its count again.
    #[test]
    fn news_is_sent_limit_times_and_replaced_by_newer() {
        let mut queue = Broadcasts::default();
        queue.push(7, 70, 10, Urgency::Routine);
        assert_eq!(take(&mut queue, 100, 2), [70]);
        queue.push(7, 71, 10, Urgency::Urgent);
        assert_eq!(queue.len(), 1, "one piece of news per subject");
        assert_eq!(take(&mut queue, 100, 2), [71]);
        assert_eq!(take(&mut queue, 100, 2), [71]);
        assert!(queue.is_empty(), "sent twice, then forgotten");
        assert_eq!(take(&mut queue, 100, 2), [0u32; 0]);
    }

    // Goal: urgent news rides before any routine news, however often it
    // has been sent: a suspicion pushed behind a backlog of joins still
    // rides on every message until its limit.
    #[test]
    fn urgent_news_rides_before_a_backlog() {
        let mut queue = Broadcasts::default();
        for join in 0..100 {
            queue.push(join, join, 10, Urgency::Routine);
        }
        queue.push(1_000, 1_000, 10, Urgency::Urgent);
        for _ in 0..4 {
            let taken = take(&mut queue, 30, 4);
            assert_eq!(taken[0], 1_000, "the suspicion first, every time");
            assert_eq!(taken.len(), 3);
        }
        assert!(!queue.contains(1_000), "sent its limit, then forgotten");
        // Each took two joins beside it, newest first; then come the
        // newest of those never sent.
        assert_eq!(take(&mut queue, 30, 4), [91, 90, 89]);
    }
}
