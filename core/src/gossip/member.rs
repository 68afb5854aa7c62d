//! The member list: which news about a member wins (SWIM §4.2, with
//! graceful leave), this node's refutations, and suspicions with their
//! suspecters (Lifeguard §IV.B).
//!
//! Owns the order of a member's states and incarnations, and what this node
//! believes of each member. It must never let
//! news about a member go backwards: an older incarnation never wins, and
//! within one incarnation a member is only ever suspected, declared dead or
//! said to have left after being alive, never the reverse; only the member
//! itself, by raising its incarnation, is alive again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::gossip::lifeguard::{suspicion_timeout, SUSPICION_K};
use crate::ids::NodeId;
use crate::time::{Duration, Instant};

/// What the cluster believes of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    /// Answering probes.
    Alive,
    /// Missed a probe: declared dead unless it refutes in time.
    Suspect,
    /// Did not refute a suspicion in time.
    Dead,
    /// Left gracefully, and said so.
    Left,
}

/// News about a member: its state as of an incarnation. The member alone
/// raises its incarnation, to refute a suspicion (or a death) of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The member's incarnation the news is about.
    pub incarnation: u64,
    /// What it says of the member.
    pub state: State,
}

impl Status {
    /// Whether this news replaces `known` (SWIM §4.2): a later incarnation
    /// always does; within one incarnation only a graver state does, in
    /// the order alive, suspect, dead, left. So an alive member's refutation
    /// needs a higher incarnation than the suspicion it answers.
    pub fn supersedes(self, known: Status) -> bool {
        (self.incarnation, self.state) > (known.incarnation, known.state)
    }
}

/// The incarnation a member takes to refute news about itself of
/// incarnation `heard`, when its own is `own`: past both, so that its
/// alive news supersedes what was heard, and never lower than before.
pub fn refutation(own: u64, heard: u64) -> u64 {
    own.max(heard).saturating_add(1)
}

/// News about a member, and who says so (for a suspicion: the member that
/// suspects it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The member the news is about.
    pub member: NodeId,
    /// What it says.
    pub status: Status,
    /// Who says so.
    pub from: NodeId,
}

/// What taking in news did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Repeated or meaningless news: nothing changed, nothing is passed
    /// on.
    Ignored,
    /// News of an earlier incarnation than this node knows (`known`, this
    /// node's own when the news is about itself): nothing changed, but
    /// whoever still passes it on missed the newer news, which is worth
    /// passing on again (a member that missed a refutation would otherwise
    /// hold its suspicion until it ran out).
    Stale {
        /// What this node knows.
        known: Status,
    },
    /// The member's status changed (`was` is `None` for a member new to
    /// this node): pass the news on.
    Changed {
        /// What this node believed before.
        was: Option<Status>,
    },
    /// The news was a grave one about this node itself, at or past its
    /// incarnation: it now goes by `incarnation`, and tells the others it
    /// is alive (SWIM §4.2).
    Refuted {
        /// This node's new incarnation.
        incarnation: u64,
    },
    /// Another member suspects a member this node already suspects in
    /// the same incarnation: the suspicion shrinks (Lifeguard §IV.B).
    Confirmed {
        /// Independent confirmations so far (suspecters past the first).
        confirmations: u64,
    },
}

/// What this node knows of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its latest status.
    pub status: Status,
    /// While it is suspected: since when, and by whom.
    suspicion: Option<Suspicion>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Suspicion {
    since: Instant,
    suspecters: BTreeSet<NodeId>,
    /// Whether it was passed on again halfway through its time.
    reminded: bool,
}

/// How long a suspicion lasts by its confirmations, in a cluster of
/// `members` probing every `probe_interval`: with `dynamic` (Lifeguard
/// §IV.B) the more independent suspecters, the sooner it runs out; without
/// (SWIM), it always takes the shortest timeout. Computed once per cluster
/// size, not once per suspect and question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The timeout by confirmations, 0 to K (and K for more).
    timeouts: [Duration; SUSPICION_K as usize + 1],
}

impl Timing {
    /// The timeouts of a cluster of `members`.
    pub fn new(members: u64, probe_interval: Duration, dynamic: bool) -> Timing {
        let mut timeouts = [Duration::ZERO; SUSPICION_K as usize + 1];
        for (confirmations, timeout) in timeouts.iter_mut().enumerate() {
            let confirmations = if dynamic {
                confirmations as u64
            } else {
                u64::MAX
            };
            *timeout = suspicion_timeout(members, confirmations, probe_interval);
        }
        Timing { timeouts }
    }

    /// The timeout of a suspicion with `confirmations`.
    pub fn timeout(&self, confirmations: u64) -> Duration {
        let last = self.timeouts.len() - 1;
        self.timeouts[(confirmations as usize).min(last)]
    }
}

/// The members this node knows, and its own incarnation.
#[derive(Clone, Debug)]
pub struct MemberList {
    me: NodeId,
    incarnation: u64,
    members: BTreeMap<NodeId, Member>,
    /// The members now suspected: what `expire` and the next deadline
    /// walk, instead of every member.
    suspects: BTreeSet<NodeId>,
}

impl MemberList {
    /// The list of node `me`, knowing no one yet, at `incarnation` (a
    /// restarted node starts past every incarnation it went by before).
    pub fn new(me: NodeId, incarnation: u64) -> MemberList {
        MemberList {
            me,
            incarnation,
            members: BTreeMap::new(),
            suspects: BTreeSet::new(),
        }
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Raises this node's incarnation to `incarnation` (to announce a
    /// change of its own, such as its metadata); never lowers it.
    pub fn raise_incarnation(&mut self, incarnation: u64) {
        self.incarnation = self.incarnation.max(incarnation);
    }

    /// What this node knows of `member`.
    pub fn get(&self, member: NodeId) -> Option<&Member> {
        self.members.get(&member)
    }

    /// Every member this node knows (itself not included), in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().map(|(&id, member)| (id, member))
    }

    /// Takes in news, at `now`.
    pub fn apply(&mut self, now: Instant, update: Update) -> Outcome {
        let Update {
            member,
            status,
            from,
        } = update;
        if member == self.me {
            // Only a grave news of this incarnation or a later one needs
            // a refutation; grave news of an earlier life is stale.
            if status.state == State::Alive {
                return Outcome::Ignored;
            }
            if status.incarnation < self.incarnation {
                return Outcome::Stale {
                    known: Status {
                        incarnation: self.incarnation,
                        state: State::Alive,
                    },
                };
            }
            self.incarnation = refutation(self.incarnation, status.incarnation);
            return Outcome::Refuted {
                incarnation: self.incarnation,
            };
        }
        if status.state == State::Suspect && from == member {
            // A member does not suspect itself: meaningless news.
            return Outcome::Ignored;
        }
        let suspicion = (status.state == State::Suspect).then(|| Suspicion {
            since: now,
            suspecters: BTreeSet::from([from]),
            reminded: false,
        });
        let suspected = suspicion.is_some();
        let outcome = match self.members.get_mut(&member) {
            None => {
                self.members.insert(member, Member { status, suspicion });
                Outcome::Changed { was: None }
            }
            Some(known) if status.supersedes(known.status) => {
                let was = Some(known.status);
                *known = Member { status, suspicion };
                Outcome::Changed { was }
            }
            Some(known) if status == known.status && status.state == State::Suspect => {
                let held = known.suspicion.as_mut().expect("a suspect has a suspicion");
                if held.suspecters.insert(from) {
                    Outcome::Confirmed {
                        confirmations: held.suspecters.len() as u64 - 1,
                    }
                } else {
                    Outcome::Ignored
                }
            }
            Some(known) if status.incarnation < known.status.incarnation => Outcome::Stale {
                known: known.status,
            },
            Some(_) => Outcome::Ignored,
        };
        if let Outcome::Changed { .. } = outcome {
            if suspected {
                self.suspects.insert(member);
            } else {
                self.suspects.remove(&member);
            }
        }
        outcome
    }

    /// The number of members this node knows, in any state (itself not
    /// included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether this node knows no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// When the suspicion of `member` runs out, if it is suspected.
    pub fn suspicion_deadline(&self, member: NodeId, timing: Timing) -> Option<Instant> {
        let suspicion = self.members.get(&member)?.suspicion.as_ref()?;
        let confirmations = suspicion.suspecters.len() as u64 - 1;
        Some(suspicion.since + timing.timeout(confirmations))
    }

    /// The earliest deadline of any suspicion (see `suspicion_deadline`).
    pub fn next_suspicion_deadline(&self, timing: Timing) -> Option<Instant> {
        self.suspects
            .iter()
            .filter_map(|&id| self.suspicion_deadline(id, timing))
            .min()
    }

    /// When the next suspicion is halfway through its time and not yet
    /// passed on again (see [`MemberList::remind`]).
    pub fn next_reminder(&self, timing: Timing) -> Option<Instant> {
        self.suspects
            .iter()
            .filter_map(|&id| self.reminder(id, timing))
            .min()
    }

    fn reminder(&self, member: NodeId, timing: Timing) -> Option<Instant> {
        let suspicion = self.members.get(&member)?.suspicion.as_ref()?;
        if suspicion.reminded {
            return None;
        }
        let deadline = self.suspicion_deadline(member, timing)?;
        let half = deadline.saturating_since(suspicion.since).as_nanos() / 2;
        Some(suspicion.since + Duration::from_nanos(half))
    }

    /// The suspicions halfway through their time by `now`, once each, as
    /// news to pass on again (in the name of their first suspecter, so that
    /// this node is not counted as one more). A member that missed the
    /// suspect's refutation holds its suspicion alone, and nobody tells it
    /// otherwise while nobody hears of it: passed on again, it meets
    /// members that know better, and they answer with the refutation
    /// (`Outcome::Stale`) before the suspicion runs out.
    pub fn remind(&mut self, now: Instant, timing: Timing) -> Vec<Update> {
        let due = self.suspects_due(now, |id| self.reminder(id, timing));
        let mut news = Vec::with_capacity(due.len());
        for id in due {
            let member = self.members.get_mut(&id).expect("listed");
            let suspicion = member.suspicion.as_mut().expect("a suspect");
            suspicion.reminded = true;
            news.push(Update {
                member: id,
                status: member.status,
                from: *suspicion.suspecters.first().expect("a suspecter"),
            });
        }
        news
    }

    /// Declares dead every suspect whose suspicion ran out by `now`;
    /// returns the news to pass on, in member order.
    pub fn expire(&mut self, now: Instant, timing: Timing) -> Vec<Update> {
        let due = self.suspects_due(now, |id| self.suspicion_deadline(id, timing));
        let mut dead = Vec::with_capacity(due.len());
        for id in due {
            self.suspects.remove(&id);
            let member = self.members.get_mut(&id).expect("listed");
            member.status.state = State::Dead;
            member.suspicion = None;
            dead.push(Update {
                member: id,
                status: member.status,
                from: self.me,
            });
        }
        dead
    }

    /// The suspects whose `deadline` has come by `now`, in id order.
    fn suspects_due(
        &self,
        now: Instant,
        deadline: impl Fn(NodeId) -> Option<Instant>,
    ) -> Vec<NodeId> {
        self.suspects
            .iter()
            .copied()
            .filter(|&id| deadline(id).is_some_and(|at| at <= now))
            .collect()
    }

    /// Checks the list's invariants.
    pub fn check_invariants(&self) {
        assert!(
            !self.members.contains_key(&self.me),
            "this node is not its own member"
        );
        for (id, member) in &self.members {
            assert_eq!(
                member.suspicion.is_some(),
                member.status.state == State::Suspect,
                "{id}: a suspect, and only a suspect, has a suspicion"
            );
            assert_eq!(
                self.suspects.contains(id),
                member.suspicion.is_some(),
                "{id}: the suspects are exactly the suspected members"
            );
            if let Some(suspicion) = &member.suspicion {
                assert!(!suspicion.suspecters.is_empty());
                assert!(
                    !suspicion.suspecters.contains(id),
                    "no member suspects itself"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Alive, Dead, Left, Suspect};

    fn status(incarnation: u64, state: State) -> Status {
        Status { incarnation, state }
    }

    // Goal: SWIM §4.2's rules for which news wins, exactly, with leave as
    // the gravest state.
    #[test]
    fn which_news_wins() {
        let table = [
            // A later incarnation wins whatever either says.
            ((2, Alive), (1, Suspect), true),
            ((2, Alive), (1, Dead), true),
            ((2, Alive), (1, Left), true),
            ((2, Suspect), (1, Dead), true),
            // An earlier one never does.
            ((1, Left), (2, Alive), false),
            ((1, Dead), (2, Alive), false),
            ((1, Suspect), (2, Alive), false),
            // Within an incarnation, only a graver state wins: a member is
            // suspected, then dead, or it left.
            ((1, Suspect), (1, Alive), true),
            ((1, Dead), (1, Alive), true),
            ((1, Dead), (1, Suspect), true),
            ((1, Left), (1, Dead), true),
            ((1, Left), (1, Alive), true),
            // ... and never the reverse: alive news of the same incarnation
            // does not refute a suspicion.
            ((1, Alive), (1, Suspect), false),
            ((1, Alive), (1, Dead), false),
            ((1, Suspect), (1, Dead), false),
            ((1, Dead), (1, Left), false),
            // The same news twice changes nothing.
            ((1, Alive), (1, Alive), false),
            ((1, Suspect), (1, Suspect), false),
        ];
        for ((ni, ns), (ki, ks), expected) in table {
            assert_eq!(
                status(ni, ns).supersedes(status(ki, ks)),
                expected,
                "{ns:?}@{ni} over {ks:?}@{ki}"
            );
        }
    }

    // Goal: a refutation's incarnation is past the news it answers and
    // past the member's own, so its alive news always wins.
    #[test]
    fn refutation_table() {
        let table = [
            // (own, heard, taken)
            (0, 0, 1),
            (3, 3, 4),
            (5, 2, 6),
            (2, 7, 8),
            (u64::MAX, 1, u64::MAX),
        ];
        for (own, heard, taken) in table {
            assert_eq!(refutation(own, heard), taken, "own {own}, heard {heard}");
        }
        for own in 0..4 {
            for heard in 0..4 {
                for state in [Suspect, Dead, Left] {
                    let alive = status(refutation(own, heard), Alive);
                    assert!(alive.supersedes(status(heard, state)));
                }
            }
        }
    }

    const ME: NodeId = NodeId(1);

    fn update(member: u64, incarnation: u64, state: State, from: u64) -> Update {
        Update {
            member: NodeId(member),
            status: status(incarnation, state),
            from: NodeId(from),
        }
    }

    fn at(millis: u64) -> Instant {
        Instant::from_nanos(millis * 1_000_000)
    }

    // Goal: news taken in, one row at a time on one list, with its exact
    // outcome: a new member is learned, graver or later news changes it,
    // stale news and a member's suspicion of itself change nothing, and a
    // second suspecter confirms.
    #[test]
    fn news_taken_in() {
        let mut list = MemberList::new(ME, 0);
        let table = [
            // Learned.
            (update(2, 0, Alive, 3), Outcome::Changed { was: None }),
            // The same news again.
            (update(2, 0, Alive, 3), Outcome::Ignored),
            // Suspected by 3, then confirmed by 4, then 4 again (nothing).
            (
                update(2, 0, Suspect, 3),
                Outcome::Changed {
                    was: Some(status(0, Alive)),
                },
            ),
            (
                update(2, 0, Suspect, 4),
                Outcome::Confirmed { confirmations: 1 },
            ),
            (update(2, 0, Suspect, 4), Outcome::Ignored),
            // Alive news of the same incarnation does not refute it.
            (update(2, 0, Alive, 5), Outcome::Ignored),
            // The member's own refutation, at a higher incarnation, does.
            (
                update(2, 1, Alive, 2),
                Outcome::Changed {
                    was: Some(status(0, Suspect)),
                },
            ),
            // A member suspecting itself is ignored (FAULTS GO4).
            (update(2, 1, Suspect, 2), Outcome::Ignored),
            // It leaves; an older death does not undo that.
            (
                update(2, 1, Left, 2),
                Outcome::Changed {
                    was: Some(status(1, Alive)),
                },
            ),
            (update(2, 1, Dead, 3), Outcome::Ignored),
            // News of an earlier incarnation is stale, and says what is
            // known instead.
            (
                update(2, 0, Suspect, 3),
                Outcome::Stale {
                    known: status(1, Left),
                },
            ),
        ];
        for (n, (news, outcome)) in table.into_iter().enumerate() {
            assert_eq!(list.apply(at(n as u64), news), outcome, "row {n}: {news:?}");
            list.check_invariants();
        }
        assert_eq!(list.get(NodeId(2)).unwrap().status, status(1, Left));
    }

    // Goal: grave news about this node itself, at or past its incarnation,
    // is refuted past it (SWIM §4.2); news of an earlier life, or alive
    // news, is not.
    #[test]
    fn news_about_this_node() {
        let table = [
            // (own incarnation, news, outcome)
            (
                0,
                update(1, 0, Suspect, 2),
                Outcome::Refuted { incarnation: 1 },
            ),
            (
                3,
                update(1, 5, Dead, 2),
                Outcome::Refuted { incarnation: 6 },
            ),
            (
                3,
                update(1, 3, Left, 2),
                Outcome::Refuted { incarnation: 4 },
            ),
            (
                3,
                update(1, 2, Suspect, 2),
                Outcome::Stale {
                    known: status(3, Alive),
                },
            ),
            (3, update(1, 9, Alive, 2), Outcome::Ignored),
        ];
        for (own, news, outcome) in table {
            let mut list = MemberList::new(ME, own);
            assert_eq!(list.apply(at(0), news), outcome, "own {own}: {news:?}");
            list.check_invariants();
            assert!(list.get(ME).is_none(), "this node is not its own member");
        }
    }

    // Goal: a suspicion runs out sooner with each independent suspecter
    // (Lifeguard §IV.B), and only then is the member declared dead, in the
    // same incarnation, as news to pass on.
    #[test]
    fn suspicions_shrink_with_suspecters_and_expire() {
        let timing = |dynamic| Timing::new(10, Duration::from_secs(1), dynamic);
        let mut list = MemberList::new(ME, 0);
        list.apply(at(0), update(2, 4, Suspect, 3));
        // Ten members: 24 s alone, 11.381 s with one confirmation, 4 s with two.
        let deadline = |list: &MemberList| list.suspicion_deadline(NodeId(2), timing(true));
        assert_eq!(deadline(&list), Some(at(24_000)));
        assert_eq!(
            list.suspicion_deadline(NodeId(2), timing(false)),
            Some(at(4_000)),
            "without Lifeguard (SWIM), the shortest timeout from the start"
        );
        list.apply(at(1_000), update(2, 4, Suspect, 4));
        assert_eq!(
            deadline(&list),
            Some(Instant::from_nanos(11_381_404_928)),
            "measured from the first suspicion"
        );
        list.apply(at(2_000), update(2, 4, Suspect, 5));
        assert_eq!(deadline(&list), Some(at(4_000)));
        assert_eq!(list.next_reminder(timing(true)), Some(at(2_000)));
        assert_eq!(list.remind(at(1_999), timing(true)), []);
        assert_eq!(
            list.remind(at(2_000), timing(true)),
            [update(2, 4, Suspect, 3)],
            "passed on again halfway, in the first suspecter's name"
        );
        assert_eq!(list.remind(at(3_000), timing(true)), [], "once");
        assert_eq!(list.next_reminder(timing(true)), None);
        assert_eq!(list.expire(at(3_999), timing(true)), []);
        assert_eq!(list.next_suspicion_deadline(timing(true)), Some(at(4_000)));
        assert_eq!(
            list.expire(at(4_000), timing(true)),
            [update(2, 4, Dead, 1)],
            "declared dead by this node, in the suspected incarnation"
        );
        list.check_invariants();
        assert_eq!(deadline(&list), None);
    }
}
