//! Raft's term and vote across crashes, on the simulated disk.
//!
//! Random sequences of new terms and votes, written with some operations
//! left unperformed, then a power loss: whatever survives, the recovered
//! state is never older than what was reported durable (RA1: a vote given
//! after its sync survives, so no second vote in the same term), and is
//! always a state that was asked for.

use std::collections::VecDeque;

use cairn::core::ids::{NodeId, Term};
use cairn::core::log::disk::DiskRequest;
use cairn::core::raft::state::{self, HardState, StateFile, StateOutput};
use cairn::sim::disk::{DiskFaults, SimDisk};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Move to a later term (by this much), voting or not.
    NewTerm(u8, Option<u8>),
    /// Vote in the current term, if not voted yet.
    Vote(u8),
    /// Perform up to this many waiting operations.
    Step(u8),
    /// Lose power and restart.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..3, prop::option::of(1u8..5)).prop_map(|(up, vote)| Op::NewTerm(up, vote)),
        2 => (1u8..5).prop_map(Op::Vote),
        3 => (1u8..6).prop_map(Op::Step),
        1 => Just(Op::Crash),
    ]
}

struct Node {
    disk: SimDisk,
    file: StateFile,
    queued: VecDeque<DiskRequest>,
    durable: HardState,
    asked: Vec<HardState>,
}

impl Node {
    fn start(disk: SimDisk, durable: HardState, mut asked: Vec<HardState>) -> Node {
        let recovered =
            state::recover(&disk.found_files()).expect("one copy always survives a crash");
        assert!(
            durable.may_become(&recovered.state),
            "recovered {:?} is older than durable {durable:?}",
            recovered.state
        );
        asked.push(HardState::default());
        assert!(
            asked.contains(&recovered.state),
            "recovered {:?} was never asked for",
            recovered.state
        );
        let file = StateFile::new(recovered);
        let mut node = Node {
            disk,
            file,
            queued: VecDeque::new(),
            durable: recovered.state,
            asked,
        };
        node.poll();
        node
    }

    fn poll(&mut self) {
        while let Some(output) = self.file.poll_output() {
            match output {
                StateOutput::Disk(request) => self.queued.push_back(request),
                StateOutput::Durable(state) => {
                    assert!(self.durable.may_become(&state));
                    self.durable = state;
                }
                StateOutput::Stopped(error) => panic!("no disk faults here: {error}"),
            }
        }
    }

    fn persist(&mut self, next: HardState) {
        self.asked.push(next);
        self.file.persist(next).expect("the state file is running");
        self.poll();
    }

    fn step(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(request) = self.queued.pop_front() else {
                return;
            };
            let result = self.disk.perform(&request.op);
            self.file.handle(request.io, result);
            self.poll();
            self.file.check_invariants();
        }
    }
}

fn run(seed: u64, ops: &[Op]) {
    let mut node = Node::start(
        SimDisk::new(seed, DiskFaults::default()),
        HardState::default(),
        Vec::new(),
    );
    for op in ops {
        let current = node.file.current();
        match op {
            Op::NewTerm(up, vote) => node.persist(HardState {
                term: Term(current.term.0 + u64::from(*up)),
                voted_for: vote.map(|v| NodeId(u64::from(v))),
            }),
            Op::Vote(candidate) if current.voted_for.is_none() => node.persist(HardState {
                term: current.term,
                voted_for: Some(NodeId(u64::from(*candidate))),
            }),
            Op::Vote(_) => {}
            Op::Step(budget) => node.step(usize::from(*budget)),
            Op::Crash => {
                let Node {
                    mut disk,
                    durable,
                    asked,
                    ..
                } = node;
                disk.crash();
                node = Node::start(disk, durable, asked);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    // Goal: the recovered term and vote are never older than the durable
    // ones and were always asked for, whatever a crash keeps.
    #[test]
    fn state_survives_crashes(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..60)) {
        run(seed, &ops);
    }
}
