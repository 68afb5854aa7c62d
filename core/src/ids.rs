//! Newtypes for every id and counter that crosses a module boundary.
//!
//! Owns the distinction between numbers that mean different things: a Raft
//! index is not a client offset, a term is not a node. It must never hand out
//! a bare `u64` where one of these is meant.

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl $name {
            /// The number inside.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The next value. Panics on overflow, which no counter of
            /// Cairn's can reach in practice.
            pub fn next(self) -> $name {
                $name(self.0.checked_add(1).expect(concat!(stringify!($name), " overflow")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

newtype!(
    /// A node's identity, stable across restarts and address changes.
    NodeId, "n"
);
newtype!(
    /// A Raft term (Raft §5.1).
    Term, "t"
);
newtype!(
    /// A position in the Raft log: every entry has one, dense from the first
    /// retained entry. Index 0 is before the first entry ever written.
    LogIndex, "i"
);
newtype!(
    /// A client record's position in the commit log: dense over client
    /// records only, so Raft's own entries never leave a hole.
    Offset, "o"
);
newtype!(
    /// The identity of one disk operation, echoed back on its completion.
    IoId, "io"
);
newtype!(
    /// The identity of one read request made of the log by its owner.
    ReadId, "r"
);
newtype!(
    /// A client connected to a node (the runtime's connection, the
    /// simulator's client).
    ClientId, "c"
);
newtype!(
    /// One request of a client, echoed back with its reply.
    RequestId, "q"
);

impl LogIndex {
    /// The previous index; panics before the first.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.checked_sub(1).expect("no index before LogIndex(0)"))
    }

    /// The index `n` entries later.
    pub fn plus(self, n: u64) -> LogIndex {
        LogIndex(self.0 + n)
    }
}

impl Offset {
    /// The offset `n` records later.
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }
}
