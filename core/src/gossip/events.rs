//! User events: application news spread by gossip, ordered by a Lamport
//! clock and delivered once (as serf does over memberlist).
//!
//! Owns the event clock and the memory of recent events. It must never
//! deliver an event twice, nor one older than what it remembers (it could
//! not tell it from a repeat), and never let the clock go backwards: an
//! event this node emits is stamped after every event it has seen.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits::{USER_EVENT_BYTES_MAX, USER_EVENT_WINDOW};

/// An application's event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserEvent {
    /// Its Lamport time.
    pub ltime: u64,
    /// What it is called.
    pub name: String,
    /// What it carries.
    pub payload: Bytes,
}

/// The event clock and the events seen within the window.
#[derive(Clone, Debug, Default)]
pub struct Events {
    /// The next Lamport time this node stamps: past every time witnessed.
    clock: u64,
    /// Events seen, by Lamport time, from `clock − USER_EVENT_WINDOW` on.
    seen: BTreeMap<u64, BTreeSet<(String, Bytes)>>,
}

impl Events {
    /// The next Lamport time this node stamps.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// A new event of this node's, stamped after every event seen.
    pub fn emit(&mut self, name: &str, payload: Bytes) -> Result<UserEvent, Error> {
        let len = name.len() + payload.len();
        if len > USER_EVENT_BYTES_MAX {
            return Err(Error::UserEventTooLarge {
                len,
                max: USER_EVENT_BYTES_MAX,
            });
        }
        let event = UserEvent {
            ltime: self.clock,
            name: name.to_owned(),
            payload,
        };
        let fresh = self.receive(&event);
        assert!(fresh, "an event this node stamps is new");
        Ok(event)
    }

    /// Takes in an event heard: `true` if it is new (deliver it, pass it
    /// on), `false` if it came before, or is too old to tell.
    pub fn receive(&mut self, event: &UserEvent) -> bool {
        let oldest = self.clock.saturating_sub(USER_EVENT_WINDOW);
        if event.ltime < oldest || event.name.len() + event.payload.len() > USER_EVENT_BYTES_MAX {
            return false;
        }
        // Witness: what this node stamps next comes after it.
        self.clock = self.clock.max(event.ltime.saturating_add(1));
        let fresh = self
            .seen
            .entry(event.ltime)
            .or_default()
            .insert((event.name.clone(), event.payload.clone()));
        let oldest = self.clock.saturating_sub(USER_EVENT_WINDOW);
        self.seen = self.seen.split_off(&oldest);
        fresh
    }

    /// Checks the invariants.
    pub fn check_invariants(&self) {
        let oldest = self.clock.saturating_sub(USER_EVENT_WINDOW);
        assert!(
            self.seen
                .keys()
                .all(|&ltime| oldest <= ltime && ltime < self.clock),
            "remembered events lie within the window, before the clock"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ltime: u64, name: &str) -> UserEvent {
        UserEvent {
            ltime,
            name: name.to_owned(),
            payload: Bytes::from_static(b"p"),
        }
    }

    // Goal: events heard, one row at a time, with whether each is new and
    // the clock after it: a repeat is not, the same time with another name
    // is, the clock passes every time heard, and one older than the window
    // is dropped.
    #[test]
    fn events_are_delivered_once_in_lamport_order() {
        let mut events = Events::default();
        let window = USER_EVENT_WINDOW;
        let table = [
            (event(5, "deploy"), true, 6),
            (event(5, "deploy"), false, 6),
            (event(5, "restart"), true, 6),
            (event(2, "late"), true, 6),
            (event(window + 100, "far"), true, window + 101),
            // Older than the window now: it cannot be told from a repeat.
            (event(100, "old"), false, window + 101),
            // The oldest time the window still holds.
            (event(101, "edge"), true, window + 101),
        ];
        for (n, (heard, fresh, clock)) in table.into_iter().enumerate() {
            assert_eq!(events.receive(&heard), fresh, "row {n}: {heard:?}");
            assert_eq!(events.clock(), clock, "row {n}");
            events.check_invariants();
        }
    }

    // Goal: an event this node emits comes after every event it heard, and
    // one too large is refused with its size.
    #[test]
    fn emitted_events_come_after_what_was_heard() {
        let mut events = Events::default();
        assert_eq!(events.emit("a", Bytes::new()).unwrap().ltime, 0);
        events.receive(&event(41, "b"));
        let next = events.emit("c", Bytes::new()).unwrap();
        assert_eq!(next.ltime, 42);
        assert!(
            !events.receive(&next),
            "its own event comes back as a repeat"
        );
        let big = Bytes::from(vec![0; USER_EVENT_BYTES_MAX]);
        assert_eq!(
            events.emit("x", big),
            Err(Error::UserEventTooLarge {
                len: USER_EVENT_BYTES_MAX + 1,
                max: USER_EVENT_BYTES_MAX
            })
        );
        assert_eq!(events.clock(), 43, "a refused event takes no time");
    }
}
