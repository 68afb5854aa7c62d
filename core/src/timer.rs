//! A table of named timers, one deadline each.
//!
//! Owns the deadlines of a machine's fixed timers (election, heartbeat,
//! probe, ...), keyed by an enum, so that `poll_timeout` is one lookup and
//! `handle_timeout` fires exactly the timers that are due, in a fixed order:
//! by deadline, then by the enum's order. It must never read a clock: it is
//! told `now`.

use std::collections::BTreeMap;

use crate::time::Instant;

/// Deadlines by timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTable<T: Ord + Copy> {
    deadlines: BTreeMap<T, Instant>,
}

impl<T: Ord + Copy> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            deadlines: BTreeMap::new(),
        }
    }
}

impl<T: Ord + Copy> TimerTable<T> {
    /// Arms `timer` to fire at `at`, replacing any earlier setting.
    pub fn set(&mut self, timer: T, at: Instant) {
        self.deadlines.insert(timer, at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        self.deadlines.remove(&timer);
    }

    /// When `timer` fires, if armed.
    pub fn deadline(&self, timer: T) -> Option<Instant> {
        self.deadlines.get(&timer).copied()
    }

    /// The earliest deadline and its timer (ties go to the smaller timer).
    pub fn next(&self) -> Option<(Instant, T)> {
        self.deadlines.iter().map(|(&timer, &at)| (at, timer)).min()
    }

    /// Disarms and returns every timer due at `now`, by deadline then timer.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut due: Vec<(Instant, T)> = self
            .deadlines
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&timer, &at)| (at, timer))
            .collect();
        due.sort_unstable();
        for (_, timer) in &due {
            self.deadlines.remove(timer);
        }
        due.into_iter().map(|(_, timer)| timer).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Timer {
        Election,
        Heartbeat,
        Probe,
    }

    fn at(millis: u64) -> Instant {
        Instant::from_nanos(millis * 1_000_000)
    }

    // Goal: the earliest deadline is found, ties in enum order; expiring
    // fires exactly what is due, in order, once.
    #[test]
    fn timers_fire_in_order_once() {
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Probe, at(5));
        table.set(Timer::Heartbeat, at(5));
        table.set(Timer::Election, at(9));
        assert_eq!(table.next(), Some((at(5), Timer::Heartbeat)));
        assert_eq!(table.expire(at(4)), []);
        assert_eq!(table.expire(at(5)), [Timer::Heartbeat, Timer::Probe]);
        assert_eq!(table.expire(at(5)), [], "a fired timer is disarmed");
        table.set(Timer::Election, at(20));
        assert_eq!(
            table.deadline(Timer::Election),
            Some(at(20)),
            "setting replaces"
        );
        table.stop(Timer::Election);
        assert_eq!(table.next(), None);
    }
}
