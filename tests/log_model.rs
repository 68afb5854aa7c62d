//! Model-based test of the log on the simulated disk.
//!
//! Random sequences of append, partial and full draining of disk operations,
//! read, crash and restart, truncation, roll-over (small segments), retention
//! and bit flips run against a simple model: a map from offset to bytes, plus
//! which offsets were acknowledged durable. After every step the log's own
//! invariants hold and every read agrees with the model; after every crash
//! every acknowledged record is still there with the same bytes at the same
//! offset, offsets stay dense, nothing after a torn frame is served, and a
//! flipped bit before the tail is reported as damage, never truncated.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use cairn::core::config::LogConfig;
use cairn::core::ids::{LogIndex, Offset, Term};
use cairn::core::log::disk::FileId;
use cairn::core::log::entry::{Entry, EntryKind, NewEntry, SegmentHeader};
use cairn::core::log::machine::{Output, ReadFrom};
use cairn::core::time::{Duration, Instant};
use cairn::sim::disk::{DiskFaults, SimDisk};
use cairn::sim::storage::SimLog;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[derive(Clone, Debug)]
enum Op {
    /// Append batches of records of these sizes (and a no-op first, if set).
    Append { batches: Vec<Vec<u16>>, noop: bool },
    /// Perform up to this many waiting disk operations.
    Step(u8),
    /// Perform every waiting disk operation.
    Run,
    /// Read from this fraction of the retained offsets.
    Read(u16),
    /// Lose power and restart.
    Crash,
    /// Drop this many entries from the end.
    Truncate(u8),
    /// Move the clock forward by seconds (retention by age).
    Advance(u8),
    /// Flip a bit in synced bytes before the tail (chosen by this number).
    Flip(u32),
    /// Flip a bit in a sealed segment's index (chosen by this number): the
    /// index is a hint, so nothing may change but how it is rebuilt.
    FlipIndex(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (40u16..80).prop_map(|count| Op::Append { batches: vec![vec![2000; usize::from(count)]], noop: false }),
        6 => (
            prop::collection::vec(prop::collection::vec(0u16..2500, 1..4), 1..4),
            prop::bool::weighted(0.1)
        )
            .prop_map(|(batches, noop)| Op::Append { batches, noop }),
        4 => (1u8..12).prop_map(Op::Step),
        2 => Just(Op::Run),
        2 => any::<u16>().prop_map(Op::Read),
        2 => Just(Op::Crash),
        1 => (0u8..8).prop_map(Op::Truncate),
        1 => (1u8..30).prop_map(Op::Advance),
        1 => any::<u32>().prop_map(Op::Flip),
        1 => any::<u32>().prop_map(Op::FlipIndex),
    ]
}

/// What the log must hold.
#[derive(Default, Debug)]
struct Model {
    /// Every record in the log as the log's owner knows it, by offset.
    records: BTreeMap<u64, Bytes>,
    /// The index of each entry, with its offset if it is a record.
    indexes: BTreeMap<u64, (u64, u32)>,
    /// Records acknowledged durable.
    acked: BTreeSet<u64>,
    /// Records whose bytes were flipped: never to be served.
    flipped: BTreeSet<u64>,
    /// Records truncated since the last crash: a truncation is durable only
    /// once synced, so after a crash they may be served again (never an
    /// acknowledged record in their place: that needed a later sync).
    stale: BTreeMap<u64, Vec<Bytes>>,
    /// The first retained offset, which never goes backwards.
    first_offset: u64,
}

struct Run {
    sim: SimLog,
    model: Model,
    term: u64,
    seq: u64,
    now: Instant,
}

fn config(segment_bytes: u64, retention: bool) -> LogConfig {
    LogConfig {
        segment_bytes,
        retention_bytes: retention.then_some(segment_bytes * 4),
        retention_age: retention.then_some(Duration::from_secs(120)),
    }
}

impl Run {
    fn new(seed: u64, config: LogConfig) -> Run {
        let disk = SimDisk::new(seed, DiskFaults::default());
        let sim = SimLog::start(config, disk, Instant::ZERO).expect("an empty disk starts");
        Run {
            sim,
            model: Model::default(),
            term: 1,
            seq: 0,
            now: Instant::ZERO,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { batches, noop } => self.append(batches, *noop),
            Op::Step(n) => {
                self.sim.step(usize::from(*n));
            }
            Op::Run => self.sim.run(),
            Op::Read(fraction) => self.read_from(*fraction),
            Op::Crash => self.crash(),
            Op::Truncate(n) => self.truncate(u64::from(*n)),
            Op::Advance(secs) => {
                self.now += Duration::from_secs(u64::from(*secs));
                self.sim.advance(self.now);
            }
            Op::Flip(choice) => self.flip(*choice),
            Op::FlipIndex(choice) => self.flip_index(*choice),
        }
        self.learn();
        self.sim.log().check_invariants();
    }

    fn append(&mut self, batches: &[Vec<u16>], noop: bool) {
        let mut entries = Vec::new();
        if noop {
            self.term += 1;
            entries.push(NewEntry::noop(Term(self.term)));
        }
        for sizes in batches {
            let mut records = Vec::new();
            for &size in sizes {
                self.seq += 1;
                let mut data = vec![(self.seq % 251) as u8; usize::from(size)];
                data.extend_from_slice(&self.seq.to_le_bytes());
                records.push(Bytes::from(data));
            }
            entries.push(NewEntry::records(Term(self.term), records));
        }
        let appended = self
            .sim
            .append(entries.clone())
            .expect("appends are accepted");
        let mut offset = appended.first_offset.0;
        for (index, entry) in (appended.first.0..).zip(entries) {
            self.model
                .indexes
                .insert(index, (offset, entry.records.len() as u32));
            for record in entry.records.iter().cloned() {
                self.model.records.insert(offset, record);
                offset += 1;
            }
        }
        assert_eq!(offset, appended.end_offset.0);
    }

    /// Takes in what the log told: durability and damage.
    fn learn(&mut self) {
        for output in self.sim.take_told() {
            if let Output::Durable { through } = output {
                let (records, flipped) = (&self.model.records, &self.model.flipped);
                let acked = self
                    .model
                    .indexes
                    .range(..=through.0)
                    .flat_map(|(_, &(first, count))| first..first + u64::from(count));
                let acked: Vec<u64> = acked
                    .filter(|offset| records.contains_key(offset) && !flipped.contains(offset))
                    .collect();
                self.model.acked.extend(acked);
            }
        }
        let on_disk = self.sim.log().first_offset_on_disk().0;
        assert!(
            on_disk >= self.model.first_offset,
            "the first retained offset went backwards"
        );
        self.model.first_offset = on_disk;
        let first = self.sim.log().first_offset().0;
        assert!(
            first >= on_disk,
            "a segment is served only while its files exist"
        );
        // Records of segments being deleted may come back after a crash,
        // until the deletion is durable; none of them must.
        self.model.records = self.model.records.split_off(&on_disk);
        self.model.acked = self.model.acked.split_off(&first);
    }

    fn truncate(&mut self, drop: u64) {
        let log = self.sim.log();
        let after = log
            .next_index()
            .0
            .saturating_sub(drop + 1)
            .max(log.first_index().0.saturating_sub(1));
        let Ok(()) = self.sim.truncate_suffix(LogIndex(after)) else {
            return;
        };
        self.model.indexes.split_off(&(after + 1));
        let next_offset = self.sim.log().next_offset().0;
        for (offset, bytes) in self.model.records.split_off(&next_offset) {
            self.model.stale.entry(offset).or_default().push(bytes);
        }
        self.model.acked.split_off(&next_offset);
        self.model.flipped.split_off(&next_offset);
        assert_eq!(self.sim.log().next_index(), LogIndex(after + 1));
    }

    fn read_from(&mut self, fraction: u16) {
        let log = self.sim.log();
        let (first, next) = (log.first_offset().0, log.next_offset().0);
        if first == next {
            return;
        }
        let at = first + (next - first) * u64::from(fraction) / 65536;
        let _ = self.check_reads(Offset(at), false);
    }

    /// Reads everything from `from` to the end and compares with the model.
    /// With `complete`, every acked record must be seen or be flipped.
    fn check_reads(
        &mut self,
        from: Offset,
        complete: bool,
    ) -> (BTreeSet<u64>, BTreeMap<u64, (u64, u32)>) {
        let next = self.sim.log().next_index();
        let mut cursor = ReadFrom::Offset(from);
        let mut seen = BTreeSet::new();
        let mut served = BTreeMap::new();
        let mut damaged = BTreeSet::new();
        loop {
            let result = self.sim.read(cursor, 50, 64 * 1024);
            let batch = match result {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => panic!("read failed: {error:?}"),
                Err(_) => break,
            };
            for entry in &batch.entries {
                for (offset, record) in entry.records() {
                    self.check_record(offset.0, &record);
                    seen.insert(offset.0);
                    if complete {
                        // After a crash, what is served is the truth (it was
                        // just checked against what may be served).
                        self.model.records.insert(offset.0, record);
                    }
                }
                served.insert(entry.index.0, (entry.offset.0, entry.records));
            }
            let last = match (batch.damaged, batch.entries.last()) {
                (Some(damage), _) => {
                    damaged.extend(damage.first_offset.0..damage.end_offset.0);
                    damage.end.prev()
                }
                (None, Some(entry)) => entry.index,
                (None, None) => panic!("a read returned nothing"),
            };
            if last.next() >= next {
                break;
            }
            cursor = ReadFrom::Index(last.next());
        }
        for offset in &damaged {
            let acked = self.model.acked.contains(offset);
            assert!(
                !acked || self.model.flipped.contains(offset),
                "acked offset {offset} reported damaged"
            );
        }
        if complete {
            let dense: BTreeSet<u64> = seen.union(&damaged).copied().collect();
            let expected: BTreeSet<u64> = (from.0..self.sim.log().next_offset().0).collect();
            assert_eq!(
                dense, expected,
                "offsets are dense: every one is served or reported damaged"
            );
            for offset in self.model.acked.range(from.0..) {
                assert!(
                    seen.contains(offset) || self.model.flipped.contains(offset),
                    "acked {offset} lost"
                );
            }
        }
        (seen, served)
    }

    fn check_record(&self, offset: u64, record: &Bytes) {
        assert!(
            !self.model.flipped.contains(&offset),
            "flipped record {offset} was served"
        );
        let stale = self.model.stale.get(&offset).into_iter().flatten();
        let mut allowed = self.model.records.get(&offset).into_iter().chain(stale);
        assert!(
            allowed.any(|bytes| bytes == record),
            "record {offset}: read {}, expected {:?} or one truncated before a crash",
            describe(record),
            self.model.records.get(&offset).map(|b| describe(b))
        );
    }

    fn crash(&mut self) {
        let before_first = self.sim.log().first_offset_on_disk().0;
        let sim = std::mem::replace(&mut self.sim, placeholder());
        let (sim, _report) = sim.crash().expect("a crashed log recovers");
        self.sim = sim;
        self.sim.run();
        assert!(
            self.sim.log().first_offset().0 >= before_first,
            "first retained offset went backwards"
        );
        assert!(
            self.model
                .acked
                .iter()
                .all(|&o| o < self.sim.log().next_offset().0),
            "acked records are within the recovered log"
        );
        let (seen, served) = self.check_reads(self.sim.log().first_offset(), true);
        self.rebuild_model(&seen, served);
    }

    /// After a crash, unacknowledged records may be gone or damaged: the
    /// model becomes what the log now serves (already checked against the
    /// old model).
    fn rebuild_model(&mut self, seen: &BTreeSet<u64>, served: BTreeMap<u64, (u64, u32)>) {
        let log = self.sim.log();
        self.model.indexes = served;
        self.model.stale.clear();
        // A flipped record the crash cut away (it had become the last frame,
        // indistinguishable from a torn write) is simply gone.
        self.model.flipped.split_off(&log.next_offset().0);
        self.model.records.retain(|offset, _| seen.contains(offset));
        self.model.acked = self.model.records.keys().copied().collect();
        self.term = self.term.max(log.last_term().0);
    }

    /// Flips one bit inside a synced entry frame that is not the last frame
    /// of the log (a flip in the very last frame is indistinguishable from a
    /// torn write), and records which offset it damaged.
    fn flip(&mut self, choice: u32) {
        self.sim.run();
        let Some((file, position, offsets)) = pick_flip(&self.sim, choice) else {
            return;
        };
        self.sim
            .disk_mut()
            .flip_bit(file, position, (choice % 8) as u8);
        // A flip damages the whole entry: every record of its batch.
        for offset in offsets {
            self.model.flipped.insert(offset);
            self.model.acked.remove(&offset);
        }
    }
}

/// A record's sequence number (its last 8 bytes) and length, for messages.
fn describe(data: &[u8]) -> String {
    let seq = data
        .len()
        .checked_sub(8)
        .map(|at| u64::from_le_bytes(data[at..].try_into().expect("8 bytes")));
    format!("seq {seq:?} of {} bytes", data.len())
}

impl Run {
    /// Flips one bit of a sealed segment's synced index file.
    fn flip_index(&mut self, choice: u32) {
        self.sim.run();
        let disk = self.sim.disk();
        let stores: Vec<FileId> = disk
            .names()
            .iter()
            .filter_map(|name| FileId::parse(name))
            .filter(|file| file.kind == cairn::core::log::disk::FileKind::Store)
            .collect();
        let sealed = stores.len().saturating_sub(1);
        let candidates: Vec<(FileId, u64)> = stores[..sealed]
            .iter()
            .map(|store| FileId::index(store.base))
            .filter_map(|index| {
                disk.durable_len(index)
                    .filter(|&len| len > 0)
                    .map(|len| (index, len))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (index, len) = candidates[choice as usize % candidates.len()];
        self.sim
            .disk_mut()
            .flip_bit(index, u64::from(choice) % len, (choice % 8) as u8);
    }
}

fn placeholder() -> SimLog {
    SimLog::start(
        LogConfig::default(),
        SimDisk::new(0, DiskFaults::default()),
        Instant::ZERO,
    )
    .expect("empty")
}

/// A byte inside an entry frame's data, in a store that is fully synced,
/// that is not the log's last frame; with the offset of the record hit.
fn pick_flip(sim: &SimLog, choice: u32) -> Option<(FileId, u64, std::ops::Range<u64>)> {
    let disk = sim.disk();
    let mut frames = Vec::new();
    for name in disk.names() {
        let Some(file) = FileId::parse(&name) else {
            continue;
        };
        if file.kind != cairn::core::log::disk::FileKind::Store {
            continue;
        }
        let bytes = Bytes::copy_from_slice(disk.contents(&name)?);
        if disk.durable_len(file) != Some(bytes.len() as u64) {
            continue;
        }
        let Ok((_, mut position)) = SegmentHeader::decode(&bytes) else {
            continue;
        };
        while let Ok((entry, len)) = Entry::decode(&bytes.slice(position..)) {
            if entry.kind == EntryKind::Record {
                let data_start = position + len - entry.data.len();
                let offsets = entry.offset.0..entry.end_offset().0;
                frames.push((
                    file,
                    data_start as u64,
                    entry.data.len() as u64,
                    offsets,
                    entry.index,
                ));
            }
            position += len;
        }
    }
    let last_index = sim.log().next_index().prev();
    frames.retain(|frame| frame.4 < last_index);
    if frames.is_empty() {
        return None;
    }
    let (file, start, len, offsets, _) = frames[choice as usize % frames.len()].clone();
    Some((file, start + u64::from(choice) % len, offsets))
}

fn run(seed: u64, segment_bytes: u64, retention: bool, ops: &[Op]) {
    let mut run = Run::new(seed, config(segment_bytes, retention));
    for op in ops {
        run.apply(op);
    }
    run.sim.run();
    run.learn();
    run.crash();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4000,
        // Every case that ever failed is recorded here and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/log_model.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    // Goal: the log agrees with the model under every sequence, and every
    // acknowledged record survives every crash with the same bytes.
    #[test]
    fn log_matches_model(
        seed in any::<u64>(),
        segment_bytes in prop::sample::select(vec![4096u64, 8192, 32768, 262_144]),
        retention in prop::bool::weighted(0.3),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(seed, segment_bytes, retention, &ops);
    }
}
