//! Whom to probe next (SWIM §4.3, randomized round-robin).
//!
//! Owns the probe order: each round visits every member once, in an order
//! shuffled afresh from the gossip stream, so that a failed member is
//! probed within one round of its failure (not, as with uniform random
//! choice, only in expectation); a member that joins mid-round takes a
//! random place among those not yet probed; one that is gone is skipped.
//! It must never draw from any stream but the one it is given, nor probe
//! a member twice in one round.

use std::collections::VecDeque;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::ids::NodeId;

/// The members left to probe this round, next first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeOrder {
    round: VecDeque<NodeId>,
}

impl ProbeOrder {
    /// Takes in a member new to this node: it is probed this round, at a
    /// random place among those not yet probed.
    pub fn joined(&mut self, member: NodeId, rng: &mut ChaCha8Rng) {
        if self.round.contains(&member) {
            return;
        }
        let at = rng.random_range(0..=self.round.len());
        self.round.insert(at, member);
    }

    /// The member to probe next among `members` (every member known) that
    /// `probeable` accepts, starting a new round, shuffled, when this one
    /// is over; `None` if there is none.
    pub fn next(
        &mut self,
        members: &[NodeId],
        probeable: impl Fn(NodeId) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Option<NodeId> {
        loop {
            if self.round.is_empty() {
                let mut round: Vec<NodeId> =
                    members.iter().copied().filter(|&m| probeable(m)).collect();
                if round.is_empty() {
                    return None;
                }
                // Fisher–Yates, from the gossip stream.
                for i in (1..round.len()).rev() {
                    round.swap(i, rng.random_range(0..=i));
                }
                self.round = round.into();
            }
            let member = self.round.pop_front().expect("a round is not empty");
            if probeable(member) {
                return Some(member);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Stream};

    /// The next probe among `members`, all of them probeable.
    fn next(order: &mut ProbeOrder, members: &[NodeId], rng: &mut ChaCha8Rng) -> Option<NodeId> {
        order.next(members, |m| members.contains(&m), rng)
    }

    fn ids(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().map(|&id| NodeId(id)).collect()
    }

    // Goal: every round probes each member exactly once, in an order that
    // differs between rounds; a member gone mid-round is skipped; a member
    // that joins mid-round is probed in that round.
    #[test]
    fn rounds_visit_every_member_once() {
        let mut rng = Rng::new(9).stream(Stream::Gossip);
        let mut order = ProbeOrder::default();
        let members = ids(&[2, 3, 4, 5, 6, 7]);
        let mut rounds = Vec::new();
        for _ in 0..3 {
            let round: Vec<NodeId> = (0..members.len())
                .map(|_| next(&mut order, &members, &mut rng).unwrap())
                .collect();
            let mut sorted = round.clone();
            sorted.sort();
            assert_eq!(sorted, members, "each member once per round");
            rounds.push(round);
        }
        assert!(
            rounds[0] != rounds[1] || rounds[1] != rounds[2],
            "rounds are shuffled"
        );

        // Mid-round, after one probe: a member not yet probed is gone and
        // 8 joins. The round ends with exactly the others, 8 among them.
        let first = next(&mut order, &members, &mut rng).unwrap();
        let gone = *members.iter().find(|&&m| m != first).unwrap();
        let mut now: Vec<NodeId> = members.iter().copied().filter(|&m| m != gone).collect();
        now.push(NodeId(8));
        order.joined(NodeId(8), &mut rng);
        let mut rest: Vec<NodeId> = (0..5)
            .map(|_| next(&mut order, &now, &mut rng).unwrap())
            .collect();
        rest.sort();
        let expected: Vec<NodeId> = now.iter().copied().filter(|&m| m != first).collect();
        assert_eq!(
            rest, expected,
            "the round's rest: not {gone}, not {first} again, and 8"
        );
    }

    // Goal: the order is the seed's: the same stream gives the same
    // probes, and nobody to probe gives none.
    #[test]
    fn the_order_is_the_seeds() {
        let members = ids(&[2, 3, 4, 5]);
        let probes = |seed| {
            let mut rng = Rng::new(seed).stream(Stream::Gossip);
            let mut order = ProbeOrder::default();
            (0..12)
                .map(|_| next(&mut order, &members, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(probes(1), probes(1));
        assert_ne!(probes(1), probes(2));
        let mut rng = Rng::new(1).stream(Stream::Gossip);
        assert_eq!(next(&mut ProbeOrder::default(), &[], &mut rng), None);
        let none = ProbeOrder::default().next(&members, |_| false, &mut rng);
        assert_eq!(none, None, "nobody probeable");
    }
}
