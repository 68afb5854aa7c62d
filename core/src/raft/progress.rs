//! A leader's view of one follower's log: what it is known to store, what
//! to send it next, and how much is in flight to it.
//!
//! Raft §5.3 keeps `nextIndex` and `matchIndex` per follower; the thesis
//! (§10.2.1) pipelines appends. A follower is either probed (one message per
//! heartbeat until the leader finds where the logs agree), or replicated to
//! (messages sent back to back, optimistically advancing `next`, within a
//! window of messages and bytes), or waiting for a snapshot. Owns those
//! transitions as pure functions. It must never move `matched` backwards
//! except on the follower's word that its disk lost entries it had
//! acknowledged, never let `next` fall to or below `matched`, and never
//! exceed the window.

use std::collections::VecDeque;

use crate::ids::LogIndex;
use crate::limits::{REPLICATION_INFLIGHT_BYTES_MAX, REPLICATION_INFLIGHT_MESSAGES_MAX};

/// How the leader sends to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The leader looks for the point where the logs agree: one message at a
    /// time, re-sent at the next heartbeat if unanswered.
    Probe {
        /// Whether a message went out since the last heartbeat.
        sent: bool,
    },
    /// The logs agree up to `matched`: append messages go back to back.
    Replicate,
    /// The follower needs entries the leader no longer holds: a snapshot
    /// ending at `index` is on its way.
    Snapshot {
        /// The last index the snapshot covers.
        index: LogIndex,
    },
}

/// One follower's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be durable on the follower and to match
    /// the leader's log.
    pub matched: LogIndex,
    /// The next index to send.
    pub next: LogIndex,
    /// How the leader sends.
    pub mode: Mode,
    /// Messages in flight: the last index each carries and its bytes.
    inflight: VecDeque<(LogIndex, u64)>,
    inflight_bytes: u64,
    /// Whether the follower answered since the last heartbeat.
    answered: bool,
    /// The commit index and read round the last message sent since the
    /// last heartbeat carried, if one was sent.
    told: Option<(LogIndex, u64)>,
}

impl Progress {
    /// A follower of a new leader whose log ends at `last`: probed from
    /// the leader's end (Raft §5.3: `nextIndex` starts past the leader's
    /// last entry).
    pub fn new(last: LogIndex) -> Progress {
        Progress {
            matched: LogIndex(0),
            next: last.next(),
            mode: Mode::Probe { sent: false },
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            answered: false,
            told: None,
        }
    }

    /// Whether another message may go now.
    pub fn may_send(&self) -> bool {
        match self.mode {
            Mode::Probe { sent } => !sent,
            Mode::Replicate => {
                self.inflight.len() < REPLICATION_INFLIGHT_MESSAGES_MAX
                    && self.inflight_bytes < REPLICATION_INFLIGHT_BYTES_MAX
            }
            Mode::Snapshot { .. } => false,
        }
    }

    /// Records a message carrying entries up to `last` (`next - 1` if it
    /// carries none) and `bytes` of them.
    pub fn sent(&mut self, last: LogIndex, bytes: u64) {
        match &mut self.mode {
            Mode::Probe { sent } => *sent = true,
            Mode::Replicate => {
                if last >= self.next {
                    self.inflight.push_back((last, bytes));
                    self.inflight_bytes += bytes;
                    self.next = last.next();
                }
            }
            Mode::Snapshot { .. } => unreachable!("nothing is sent while a snapshot is"),
        }
    }

    /// Records that a message carrying the leader's commit index `commit`
    /// and read round `round` went to the follower.
    pub fn told(&mut self, commit: LogIndex, round: u64) {
        self.told = Some((commit, round));
    }

    /// Forgets what went out at a heartbeat: a heartbeat never stands in
    /// for the next one, only a message sent between two does.
    pub fn heartbeat_sent(&mut self) {
        self.told = None;
    }

    /// Records a snapshot ending at `index` on its way.
    pub fn sent_snapshot(&mut self, index: LogIndex) {
        self.mode = Mode::Snapshot { index };
        self.clear_inflight();
    }

    /// Takes in an acknowledgement that the follower durably stores the
    /// leader's entries through `index`. Returns whether `matched` moved.
    pub fn acked(&mut self, index: LogIndex) -> bool {
        self.answered = true;
        let moved = index > self.matched;
        self.matched = self.matched.max(index);
        while self
            .inflight
            .front()
            .is_some_and(|&(last, _)| last <= index)
        {
            let (_, bytes) = self.inflight.pop_front().expect("checked");
            self.inflight_bytes -= bytes;
        }
        match self.mode {
            // An ack of an append sent before the snapshot.
            Mode::Snapshot { index: covered } if self.matched < covered => {
                self.next = self.next.max(self.matched.next())
            }
            Mode::Replicate => self.next = self.next.max(self.matched.next()),
            _ => {
                self.mode = Mode::Replicate;
                self.clear_inflight();
                self.next = self.matched.next();
            }
        }
        moved
    }

    /// Takes in a refusal of a message whose previous entry was
    /// `refused_prev`, with `retry` the next index to try
    /// (`replication::next_after_refusal`). A refusal older than what the
    /// follower has since acknowledged changes nothing. A current refusal
    /// sending the leader back to or before `matched` means the follower
    /// no longer holds entries it acknowledged (its disk damaged them): it
    /// matches only up to there now.
    pub fn refused(&mut self, refused_prev: LogIndex, retry: LogIndex) {
        self.answered = true;
        if refused_prev < self.matched || matches!(self.mode, Mode::Snapshot { .. }) {
            return;
        }
        if retry <= self.matched {
            self.matched = retry.prev();
        }
        self.next = retry;
        self.mode = Mode::Probe { sent: false };
        self.clear_inflight();
    }

    /// A heartbeat interval passed: a probe may go again, and a pipeline
    /// that heard nothing since the last heartbeat starts over from what
    /// the follower acknowledged (messages were lost). A snapshot that
    /// heard nothing is sent again, too.
    ///
    /// Returns whether the follower needs a heartbeat now. It does not
    /// when, replicated to and answering, it was sent a message since the
    /// last heartbeat carrying the leader's current commit index `commit`
    /// and read round `round`: an append is a heartbeat (Raft §5.2), and a
    /// second one would tell it nothing. Every other follower gets one, so
    /// it never goes two heartbeat intervals without a message (and an
    /// idle follower hears one every interval: see `heartbeat_sent`).
    pub fn tick(&mut self, commit: LogIndex, round: u64) -> bool {
        let told = self.told.take();
        let silent = !std::mem::replace(&mut self.answered, false);
        match self.mode {
            Mode::Probe { .. } => self.mode = Mode::Probe { sent: false },
            Mode::Replicate if silent && !self.inflight.is_empty() => {
                self.mode = Mode::Probe { sent: false };
                self.next = self.matched.next();
                self.clear_inflight();
            }
            Mode::Snapshot { .. } if silent => {
                self.mode = Mode::Probe { sent: false };
                self.next = self.matched.next();
            }
            Mode::Replicate | Mode::Snapshot { .. } => {}
        }
        !(self.mode == Mode::Replicate && told == Some((commit, round)))
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    /// Checks the progress's invariants.
    pub fn check_invariants(&self) {
        assert!(self.next > self.matched, "next stays past matched");
        assert!(
            self.inflight.len() <= REPLICATION_INFLIGHT_MESSAGES_MAX,
            "the window's message bound holds"
        );
        let bytes: u64 = self.inflight.iter().map(|&(_, b)| b).sum();
        assert_eq!(bytes, self.inflight_bytes, "in-flight bytes add up");
        assert!(
            self.inflight
                .iter()
                .zip(self.inflight.iter().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "in-flight messages are in index order"
        );
        if let Some(&(last, _)) = self.inflight.back() {
            assert!(last < self.next, "in-flight entries are before next");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Step {
        Sent(u64, u64),
        Acked(u64),
        Refused(u64, u64),
        Tick,
        Snapshot(u64),
    }
    use Step::*;

    fn run(steps: &[Step]) -> Progress {
        let mut progress = Progress::new(LogIndex(10));
        for step in steps {
            match *step {
                Sent(last, bytes) => progress.sent(LogIndex(last), bytes),
                Acked(index) => {
                    progress.acked(LogIndex(index));
                }
                Refused(prev, retry) => progress.refused(LogIndex(prev), LogIndex(retry)),
                Tick => {
                    progress.tick(LogIndex(0), 0);
                }
                Snapshot(index) => progress.sent_snapshot(LogIndex(index)),
            }
            progress.check_invariants();
        }
        progress
    }

    // Raft §5.3 (nextIndex, matchIndex) and thesis §10.2.1 (pipelining).
    #[test]
    fn progress_table() {
        // (label, steps, matched, next, mode, may send)
        let probe = |sent| Mode::Probe { sent };
        type Case = (&'static str, Vec<Step>, u64, u64, Mode, bool);
        let cases: Vec<Case> = vec![
            (
                "a new follower is probed from the end",
                vec![],
                0,
                11,
                probe(false),
                true,
            ),
            (
                "one probe per heartbeat",
                vec![Sent(10, 0)],
                0,
                11,
                probe(true),
                false,
            ),
            (
                "the next heartbeat allows another",
                vec![Sent(10, 0), Tick],
                0,
                11,
                probe(false),
                true,
            ),
            (
                "a refusal backs off to the hint",
                vec![Sent(10, 0), Refused(10, 4)],
                0,
                4,
                probe(false),
                true,
            ),
            (
                "an ack starts the pipeline past it",
                vec![Sent(10, 0), Acked(10)],
                10,
                11,
                Mode::Replicate,
                true,
            ),
            (
                "pipelined sends advance next optimistically",
                vec![Acked(10), Sent(12, 100), Sent(15, 100)],
                10,
                16,
                Mode::Replicate,
                true,
            ),
            (
                "an ack of the first message keeps next",
                vec![Acked(10), Sent(12, 100), Sent(15, 100), Acked(12)],
                12,
                16,
                Mode::Replicate,
                true,
            ),
            (
                "a stale refusal changes nothing",
                vec![Acked(10), Sent(12, 100), Acked(12), Refused(9, 5)],
                12,
                13,
                Mode::Replicate,
                true,
            ),
            (
                "a silent pipeline starts over from matched",
                vec![Acked(10), Sent(12, 100), Tick, Tick],
                10,
                11,
                probe(false),
                true,
            ),
            (
                "an answered pipeline keeps going",
                vec![Acked(10), Sent(12, 100), Tick, Acked(11), Tick],
                11,
                13,
                Mode::Replicate,
                true,
            ),
            (
                "a follower that lost acknowledged entries matches less",
                vec![Acked(10), Sent(12, 1), Refused(11, 3)],
                2,
                3,
                probe(false),
                true,
            ),
            (
                "a snapshot blocks sends",
                vec![Snapshot(40)],
                0,
                11,
                Mode::Snapshot {
                    index: LogIndex(40),
                },
                false,
            ),
            (
                "its ack moves to the pipeline past it",
                vec![Snapshot(40), Acked(40)],
                40,
                41,
                Mode::Replicate,
                true,
            ),
            (
                "an ack of an earlier append keeps the snapshot going",
                vec![
                    Acked(10),
                    Sent(12, 1),
                    Refused(11, 11),
                    Snapshot(40),
                    Acked(12),
                ],
                12,
                13,
                Mode::Snapshot {
                    index: LogIndex(40),
                },
                false,
            ),
            (
                "an unanswered snapshot is probed again",
                vec![Snapshot(40), Tick],
                0,
                1,
                probe(false),
                true,
            ),
        ];
        for (label, steps, matched, next, mode, may_send) in cases {
            let progress = run(&steps);
            assert_eq!(progress.matched, LogIndex(matched), "{label}: matched");
            assert_eq!(progress.next, LogIndex(next), "{label}: next");
            assert_eq!(progress.mode, mode, "{label}: mode");
            assert_eq!(progress.may_send(), may_send, "{label}: may send");
        }
    }

    // Raft §5.2: an append is a heartbeat. A follower is sent an empty one
    // at a tick unless a message since the last tick, answered in the
    // pipeline, told it the current commit index and read round.
    #[test]
    fn heartbeat_due_table() {
        let (commit, round) = (LogIndex(12), 3);
        type Case = (&'static str, Vec<Step>, Option<(u64, u64)>, bool);
        let cases: Vec<Case> = vec![
            (
                "nothing sent since the last tick",
                vec![Acked(10)],
                None,
                true,
            ),
            (
                "an answered append told it everything",
                vec![Acked(10), Sent(12, 10)],
                Some((12, 3)),
                false,
            ),
            (
                "the commit index moved since",
                vec![Acked(10), Sent(12, 10)],
                Some((11, 3)),
                true,
            ),
            (
                "a read round started since",
                vec![Acked(10), Sent(12, 10)],
                Some((12, 2)),
                true,
            ),
            (
                "a probe is re-sent every heartbeat",
                vec![Sent(10, 0)],
                Some((12, 3)),
                true,
            ),
            (
                "a silent follower with messages in flight is probed again",
                vec![Acked(10), Tick, Sent(12, 10)],
                Some((12, 3)),
                true,
            ),
        ];
        for (label, steps, told, due) in cases {
            let mut progress = run(&steps);
            if let Some((c, r)) = told {
                progress.told(LogIndex(c), r);
            }
            assert_eq!(progress.tick(commit, round), due, "{label}");
            assert!(
                progress.tick(commit, round),
                "{label}: told resets at a tick"
            );
            progress.told(commit, round);
            progress.heartbeat_sent();
            assert!(
                progress.tick(commit, round),
                "{label}: a heartbeat never stands in for the next"
            );
        }
    }

    #[test]
    fn the_window_bounds_messages_and_bytes() {
        let mut progress = run(&[Acked(10)]);
        for i in 0..REPLICATION_INFLIGHT_MESSAGES_MAX as u64 {
            assert!(progress.may_send(), "message {i} fits");
            progress.sent(LogIndex(11 + i), 1);
        }
        assert!(!progress.may_send(), "the message bound holds");
        progress.acked(LogIndex(11));
        assert!(progress.may_send(), "an ack opens the window");

        let mut progress = run(&[Acked(10)]);
        progress.sent(LogIndex(11), REPLICATION_INFLIGHT_BYTES_MAX);
        assert!(!progress.may_send(), "the byte bound holds");
    }
}
