//! Raft's persistent state: the current term and the vote cast in it.
//!
//! Raft §5.1 and Figure 2 ("persistent state on all servers, updated on
//! stable storage before responding to RPCs"). Owns the file that holds
//! them and the rule that a term or vote counts only once its sync has
//! completed. It must never let the state go backwards: a term never falls,
//! and a vote once cast in a term never changes.
//!
//! The file holds two copies, in slots a sector apart; each write goes to
//! the slot that does not hold the newest copy, so a torn write can only
//! damage the copy being replaced. Recovery takes the valid copy with the
//! highest sequence number. Both copies damaged is media corruption, not a
//! crash: the node must not guess its term, and recovery says so.

use std::collections::VecDeque;

use bytes::Bytes;
use cairn_proto::frame::{self, FrameKind};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::{IoId, LogIndex, NodeId, Term};
use crate::log::disk::{DiskError, DiskOp, DiskOutcome, DiskRequest, FileId, FoundFile};

/// Bytes between the two copies: one sector each, so that a write torn at
/// a sector boundary never reaches the other copy.
pub const STATE_SLOT_BYTES: u64 = 512;

/// The term and the vote cast in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom it voted for in that term, if anyone.
    pub voted_for: Option<NodeId>,
}

impl HardState {
    /// Whether `next` may follow `self`: a higher term (with any vote), or
    /// the same term with the same vote or a first vote.
    pub fn may_become(&self, next: &HardState) -> bool {
        next.term > self.term
            || (next.term == self.term
                && (self.voted_for.is_none() || self.voted_for == next.voted_for))
    }
}

/// One copy as framed in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Copy {
    sequence: u64,
    state: HardState,
}

/// What recovery found in the state file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveredState {
    /// The newest durable state (default if none was ever written).
    pub state: HardState,
    /// Its sequence number (0 if none).
    pub sequence: u64,
    /// Whether the file exists.
    pub exists: bool,
}

/// Recovers Raft's state from the files found in the log's directory.
pub fn recover(files: &[FoundFile<'_>]) -> Result<RecoveredState, Error> {
    let name = FileId::state().to_string();
    let Some(file) = files.iter().find(|f| f.name == name) else {
        return Ok(RecoveredState::default());
    };
    let copies: Vec<Option<Copy>> = (0..2).map(|slot| read_slot(file.bytes, slot)).collect();
    let newest = copies.iter().flatten().max_by_key(|copy| copy.sequence);
    match newest {
        Some(copy) => Ok(RecoveredState {
            state: copy.state,
            sequence: copy.sequence,
            exists: true,
        }),
        None if file.bytes.iter().all(|&b| b == 0) => Ok(RecoveredState {
            exists: true,
            ..RecoveredState::default()
        }),
        None => Err(Error::InconsistentFiles {
            base: LogIndex(0),
            reason: "both copies of Raft's term and vote are damaged",
        }),
    }
}

fn read_slot(bytes: &[u8], slot: u64) -> Option<Copy> {
    let start = (slot * STATE_SLOT_BYTES) as usize;
    let frame = frame::decode(bytes.get(start..)?).ok()?;
    if frame.header.kind != FrameKind::RaftState {
        return None;
    }
    frame::decode_payload(FrameKind::RaftState, frame.payload).ok()
}

/// What the state file asks of its driver or tells its owner.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateOutput {
    /// Perform this disk operation, then report its completion.
    Disk(DiskRequest),
    /// This state is durable: replies that announce it may leave.
    Durable(HardState),
    /// A write or sync failed; the node must stop.
    Stopped(DiskError),
}

/// Operations of the state file carry ids with the top bit set, so one
/// driver can serve the log and the state file without their ids meeting.
const STATE_IO_BASE: u64 = 1 << 63;

/// The state file as a machine: `persist` a new state, perform what it
/// emits, report completions with `handle`; a state is durable once an
/// [`StateOutput::Durable`] carrying it has been polled.
#[derive(Debug)]
pub struct StateFile {
    current: HardState,
    durable: HardState,
    sequence: u64,
    next_io: u64,
    /// Syncs in flight, oldest first, with the state each makes durable.
    syncing: VecDeque<(IoId, HardState)>,
    /// Other operations in flight.
    changing: VecDeque<IoId>,
    outputs: VecDeque<StateOutput>,
    stopped: Option<DiskError>,
}

impl StateFile {
    /// The state file as recovery found it; creates it if it is missing.
    pub fn new(recovered: RecoveredState) -> StateFile {
        let mut file = StateFile {
            current: recovered.state,
            durable: recovered.state,
            sequence: recovered.sequence,
            next_io: STATE_IO_BASE,
            syncing: VecDeque::new(),
            changing: VecDeque::new(),
            outputs: VecDeque::new(),
            stopped: None,
        };
        if !recovered.exists {
            file.submit(DiskOp::Create {
                file: FileId::state(),
            });
            file.submit(DiskOp::SyncDir);
        }
        file
    }

    /// The newest state asked for (durable or not).
    pub fn current(&self) -> HardState {
        self.current
    }

    /// The newest durable state.
    pub fn durable(&self) -> HardState {
        self.durable
    }

    /// Makes `state` durable. Panics if it would take the state backwards:
    /// Raft never lowers its term or changes a vote cast in a term.
    pub fn persist(&mut self, state: HardState) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        assert!(
            self.current.may_become(&state),
            "Raft state went backwards: {:?} -> {state:?}",
            self.current
        );
        if state == self.current {
            return Ok(());
        }
        self.sequence += 1;
        self.current = state;
        let mut bytes = Vec::with_capacity(64);
        frame::encode(
            &mut bytes,
            FrameKind::RaftState,
            &Copy {
                sequence: self.sequence,
                state,
            },
        );
        assert!(
            bytes.len() as u64 <= STATE_SLOT_BYTES,
            "a copy fits its slot"
        );
        let position = (self.sequence % 2) * STATE_SLOT_BYTES;
        let file = FileId::state();
        self.submit(DiskOp::Write {
            file,
            position,
            bytes: Bytes::from(bytes),
        });
        let io = self.submit_raw(DiskOp::Sync { file });
        self.syncing.push_back((io, state));
        Ok(())
    }

    fn submit(&mut self, op: DiskOp) {
        let io = self.submit_raw(op);
        self.changing.push_back(io);
    }

    fn submit_raw(&mut self, op: DiskOp) -> IoId {
        let io = IoId(self.next_io);
        self.next_io += 1;
        self.outputs
            .push_back(StateOutput::Disk(DiskRequest { io, op }));
        io
    }

    /// Whether `io` is one of this machine's operations.
    pub fn owns(io: IoId) -> bool {
        io.0 >= STATE_IO_BASE
    }

    /// Takes in the completion of operation `io`.
    pub fn handle(&mut self, io: IoId, result: Result<DiskOutcome, DiskError>) {
        if let Err(error) = result {
            if self.stopped.is_none() {
                self.stopped = Some(error);
                self.outputs.push_back(StateOutput::Stopped(error));
            }
        }
        if self.changing.front() == Some(&io) {
            self.changing.pop_front();
            return;
        }
        let (expected, state) = self
            .syncing
            .pop_front()
            .expect("a completion of an operation in flight");
        assert_eq!(expected, io, "operations complete in order");
        if self.stopped.is_none() {
            self.durable = state;
            self.outputs.push_back(StateOutput::Durable(state));
        }
    }

    /// The next effect, if any.
    pub fn poll_output(&mut self) -> Option<StateOutput> {
        self.outputs.pop_front()
    }

    /// Checks the machine's invariants.
    pub fn check_invariants(&self) {
        assert!(
            self.durable.may_become(&self.current),
            "durable never runs ahead of current"
        );
        if let Some((_, last)) = self.syncing.back() {
            assert_eq!(
                *last, self.current,
                "the newest sync carries the current state"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(term: u64, vote: Option<u64>) -> HardState {
        HardState {
            term: Term(term),
            voted_for: vote.map(NodeId),
        }
    }

    // Goal: which states may follow which (Raft §5.1, §5.2).
    #[test]
    fn may_become_table() {
        let cases = [
            (
                state(1, None),
                state(1, Some(2)),
                true,
                "first vote in a term",
            ),
            (
                state(1, Some(2)),
                state(1, Some(2)),
                true,
                "the same vote again",
            ),
            (
                state(1, Some(2)),
                state(1, Some(3)),
                false,
                "a second vote in a term",
            ),
            (
                state(1, Some(2)),
                state(1, None),
                false,
                "a vote taken back",
            ),
            (
                state(1, Some(2)),
                state(2, None),
                true,
                "a new term clears the vote",
            ),
            (
                state(2, None),
                state(1, None),
                false,
                "a term going backwards",
            ),
        ];
        for (from, to, allowed, label) in cases {
            assert_eq!(from.may_become(&to), allowed, "{label}");
        }
    }

    fn found(bytes: &[u8]) -> Vec<FoundFile<'_>> {
        vec![FoundFile {
            name: "raft.state",
            bytes,
        }]
    }

    fn file_after(states: &[HardState]) -> Vec<u8> {
        let mut disk = vec![0u8; 0];
        let mut file = StateFile::new(RecoveredState::default());
        for s in states {
            file.persist(*s).unwrap();
        }
        while let Some(output) = file.poll_output() {
            if let StateOutput::Disk(DiskRequest {
                op: DiskOp::Write {
                    position, bytes, ..
                },
                ..
            }) = output
            {
                let end = position as usize + bytes.len();
                disk.resize(disk.len().max(end), 0);
                disk[position as usize..end].copy_from_slice(&bytes);
            }
        }
        disk
    }

    // Goal: recovery takes the newest valid copy, falls back to the other
    // when one is damaged, and refuses when both are.
    #[test]
    fn recovery_table() {
        let bytes = file_after(&[state(1, None), state(1, Some(4)), state(3, None)]);
        let newest = recover(&found(&bytes)).unwrap();
        assert_eq!((newest.state, newest.sequence), (state(3, None), 3));
        let mut damaged_newest = bytes.clone();
        damaged_newest[STATE_SLOT_BYTES as usize + 14] ^= 1; // sequence 3 lives in slot 1
        assert_eq!(
            recover(&found(&damaged_newest)).unwrap().state,
            state(1, Some(4))
        );
        let mut both = damaged_newest.clone();
        both[14] ^= 1;
        assert!(matches!(
            recover(&found(&both)),
            Err(Error::InconsistentFiles { .. })
        ));
        assert_eq!(recover(&[]).unwrap(), RecoveredState::default());
        let created = recover(&found(&[])).unwrap();
        assert_eq!(
            (created.state, created.exists),
            (HardState::default(), true)
        );
    }

    // Goal: a persist emits a write to the other slot and a sync, and the
    // state is durable only when the sync completes.
    #[test]
    fn persist_exact_effects() {
        let recovered = RecoveredState {
            state: state(1, None),
            sequence: 1,
            exists: true,
        };
        let mut file = StateFile::new(recovered);
        file.persist(state(2, Some(5))).unwrap();
        let write = file.poll_output();
        let sync = file.poll_output();
        assert_eq!(file.poll_output(), None);
        let Some(StateOutput::Disk(DiskRequest {
            io: write_io,
            op: DiskOp::Write { position, .. },
        })) = write
        else {
            panic!("a write first: {write:?}");
        };
        assert_eq!(
            position, 0,
            "sequence 2 goes to slot 0, away from sequence 1"
        );
        let Some(StateOutput::Disk(DiskRequest {
            io: sync_io,
            op: DiskOp::Sync { .. },
        })) = sync
        else {
            panic!("then a sync: {sync:?}");
        };
        file.handle(write_io, Ok(DiskOutcome::Done));
        assert_eq!(file.durable(), state(1, None), "a write is not durable");
        file.handle(sync_io, Ok(DiskOutcome::Done));
        assert_eq!(
            file.poll_output(),
            Some(StateOutput::Durable(state(2, Some(5))))
        );
        assert_eq!(file.durable(), state(2, Some(5)));
        assert!(StateFile::owns(sync_io));
        file.check_invariants();
    }

    #[test]
    #[should_panic(expected = "went backwards")]
    fn a_second_vote_in_a_term_is_a_bug() {
        let mut file = StateFile::new(RecoveredState::default());
        file.persist(state(1, Some(2))).unwrap();
        file.persist(state(1, Some(3))).unwrap();
    }
}
