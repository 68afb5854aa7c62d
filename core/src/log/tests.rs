//! Tests of the log machine that assert its exact effects after each input.
//!
//! A small in-memory disk performs operations here so that the tests stay
//! inside the core; crash behaviour is tested over the simulator's disk.

use bytes::Bytes;

use crate::config::LogConfig;
use crate::error::Error;
use crate::ids::{IoId, LogIndex, Offset, ReadId, Term};
use crate::log::disk::{DiskOp, DiskOutcome, FileId};
use crate::log::entry::{ConfigAt, NewEntry};
use crate::log::index::SLOT_BYTES;
use crate::log::machine::{Input, Log, Output, ReadFrom};
use crate::log::producers::Producers;
use crate::log::recovery::Recovered;
use crate::testing::MapDisk;
use crate::time::{Duration, Instant};

mod producers;

fn record(term: u64, data: &str) -> NewEntry {
    NewEntry::records(Term(term), vec![Bytes::copy_from_slice(data.as_bytes())])
}

fn noop(term: u64) -> NewEntry {
    NewEntry::noop(Term(term))
}

fn config(index: u64, data: &str) -> ConfigAt {
    ConfigAt {
        index: LogIndex(index),
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn config_entry(term: u64, data: &str) -> NewEntry {
    NewEntry::config(Term(term), Bytes::copy_from_slice(data.as_bytes()))
}

/// Drains outputs, performing disk operations, until the log is quiet;
/// returns everything that was not a disk request.
fn drive(log: &mut Log, disk: &mut MapDisk) -> Vec<Output> {
    let mut told = Vec::new();
    while let Some(output) = log.poll_output() {
        match output {
            Output::Disk(request) => {
                let outcome = disk.perform(&request.op);
                log.handle(
                    Instant::ZERO,
                    Input::Disk {
                        io: request.io,
                        result: Ok(outcome),
                    },
                );
            }
            other => told.push(other),
        }
        log.check_invariants();
    }
    told
}

/// Drains outputs without performing anything: the disk ops, in order.
fn ops(log: &mut Log) -> Vec<(IoId, DiskOp)> {
    let mut ops = Vec::new();
    while let Some(output) = log.poll_output() {
        match output {
            Output::Disk(request) => ops.push((request.io, request.op)),
            other => panic!("unexpected output {other:?}"),
        }
    }
    ops
}

fn fresh(config: LogConfig) -> (Log, MapDisk) {
    let mut disk = MapDisk::default();
    let mut log = Log::new(config, Recovered::default(), Instant::ZERO).unwrap();
    drive(&mut log, &mut disk);
    (log, disk)
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn read_all(log: &mut Log, disk: &mut MapDisk, from: ReadFrom) -> Vec<(u64, u64, String)> {
    log.read(ReadId(9), from, 1000, 1 << 20).unwrap();
    let mut entries = Vec::new();
    for output in drive(log, disk) {
        if let Output::Read { result, .. } = output {
            for entry in result.unwrap().entries {
                if entry.records == 0 {
                    entries.push((entry.index.0, entry.offset.0, String::new()));
                }
                for (offset, record) in entry.records() {
                    let text = String::from_utf8(record.to_vec()).unwrap();
                    entries.push((entry.index.0, offset.0, text));
                }
            }
        }
    }
    entries
}

// Goal: a new log creates its first segment, header durable before its name.
#[test]
fn a_new_log_creates_its_first_segment() {
    let mut log = Log::new(LogConfig::default(), Recovered::default(), Instant::ZERO).unwrap();
    let kinds: Vec<String> = ops(&mut log).iter().map(|(_, op)| op_name(op)).collect();
    assert_eq!(
        kinds,
        [
            "create store 1",
            "write store 1",
            "sync store 1",
            "create index 1",
            "syncdir"
        ]
    );
}

fn op_name(op: &DiskOp) -> String {
    let file = |f: &FileId| {
        format!(
            "{} {}",
            if f.kind == crate::log::disk::FileKind::Store {
                "store"
            } else {
                "index"
            },
            f.base.0
        )
    };
    match op {
        DiskOp::Create { file: f } => format!("create {}", file(f)),
        DiskOp::Write { file: f, .. } => format!("write {}", file(f)),
        DiskOp::Sync { file: f } => format!("sync {}", file(f)),
        DiskOp::Truncate { file: f, len } => format!("truncate {} {len}", file(f)),
        DiskOp::Delete { file: f } => format!("delete {}", file(f)),
        DiskOp::SyncDir => "syncdir".into(),
        DiskOp::Read { file: f, .. } => format!("read {}", file(f)),
    }
}

// Goal: group commit — appends made while a sync is in flight share the
// next sync, and nothing is durable before its sync completes.
#[test]
fn group_commit_exact_effects() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    let first = log.append(Instant::ZERO, vec![record(1, "a")]).unwrap();
    assert_eq!(
        (first.first, first.last, first.first_offset),
        (LogIndex(1), LogIndex(1), Offset(0))
    );
    let batch1 = ops(&mut log);
    let names: Vec<String> = batch1.iter().map(|(_, op)| op_name(op)).collect();
    assert_eq!(
        names,
        ["write store 1", "sync store 1"],
        "index slots wait for a whole run"
    );
    log.append(Instant::ZERO, vec![record(1, "b"), record(1, "c")])
        .unwrap();
    let batch2 = ops(&mut log);
    let names: Vec<String> = batch2.iter().map(|(_, op)| op_name(op)).collect();
    assert_eq!(
        names,
        ["write store 1"],
        "the second append waits for the next sync"
    );
    assert_eq!(log.durable_index(), LogIndex(0));
    for (io, op) in batch1
        .iter()
        .chain(batch2.iter())
        .filter(|(_, op)| !matches!(op, DiskOp::Sync { .. }))
    {
        let outcome = disk.perform(op);
        log.handle(
            Instant::ZERO,
            Input::Disk {
                io: *io,
                result: Ok(outcome),
            },
        );
    }
    assert_eq!(
        log.poll_output(),
        None,
        "writes completing make nothing durable"
    );
    let (sync_io, _) = batch1.last().unwrap();
    log.handle(
        Instant::ZERO,
        Input::Disk {
            io: *sync_io,
            result: Ok(DiskOutcome::Done),
        },
    );
    assert_eq!(
        log.poll_output(),
        Some(Output::Durable {
            through: LogIndex(1)
        })
    );
    let next = log.poll_output();
    assert!(
        matches!(next, Some(Output::Disk(ref r)) if matches!(r.op, DiskOp::Sync { .. })),
        "{next:?}"
    );
    let Some(Output::Disk(request)) = next else {
        unreachable!()
    };
    log.handle(
        Instant::ZERO,
        Input::Disk {
            io: request.io,
            result: Ok(DiskOutcome::Done),
        },
    );
    assert_eq!(
        log.poll_output(),
        Some(Output::Durable {
            through: LogIndex(3)
        })
    );
    assert_eq!(log.poll_output(), None);
}

// Goal: a failed sync stops the log; it is never retried and nothing it
// covered becomes durable.
#[test]
fn a_failed_sync_stops_the_log() {
    let (mut log, _disk) = fresh(LogConfig::default());
    log.append(Instant::ZERO, vec![record(1, "a")]).unwrap();
    let batch = ops(&mut log);
    for (io, op) in &batch {
        let result = match op {
            DiskOp::Sync { .. } => Err(crate::log::disk::DiskError::Io),
            _ => Ok(DiskOutcome::Done),
        };
        log.handle(Instant::ZERO, Input::Disk { io: *io, result });
    }
    assert_eq!(
        log.poll_output(),
        Some(Output::Stopped(crate::log::disk::DiskError::Io))
    );
    assert_eq!(log.poll_output(), None, "no retry of the sync");
    assert_eq!(log.durable_index(), LogIndex(0));
    let refused = log.append(Instant::ZERO, vec![record(1, "b")]);
    assert_eq!(
        refused,
        Err(Error::Stopped(crate::log::disk::DiskError::Io))
    );
}

// Goal: offsets are dense over records only, across Raft's own entries and
// across segments, and reads by offset and by index agree.
#[test]
fn offsets_stay_dense_across_raft_entries_and_segments() {
    let (mut log, mut disk) = fresh(small_segments());
    let mut expected = Vec::new();
    for i in 0..60u64 {
        let term = 1 + i / 20;
        let value = format!("{i:0>200}");
        let batch = if i % 20 == 0 {
            vec![noop(term), record(term, &value)]
        } else {
            vec![record(term, &value)]
        };
        log.append(Instant::ZERO, batch).unwrap();
        expected.push(value);
        drive(&mut log, &mut disk);
    }
    assert!(
        log.segment_count() > 2,
        "rolled over: {}",
        log.segment_count()
    );
    assert_eq!(log.next_offset(), Offset(60));
    assert_eq!(log.next_index(), LogIndex(64));
    let mut seen = Vec::new();
    let mut from = ReadFrom::Offset(Offset(0));
    while seen.len() < 60 {
        let batch = read_all(&mut log, &mut disk, from);
        let last = batch.last().unwrap().0;
        seen.extend(batch.into_iter().filter(|(_, _, data)| !data.is_empty()));
        from = ReadFrom::Index(LogIndex(last + 1));
    }
    let offsets: Vec<u64> = seen.iter().map(|(_, offset, _)| *offset).collect();
    assert_eq!(offsets, (0..60).collect::<Vec<_>>());
    let data: Vec<String> = seen.into_iter().map(|(_, _, data)| data).collect();
    assert_eq!(data, expected);
}

// Goal: a restart recovers the same log from the files, sealed segments in
// O(1) (not resident), and reads back the same entries.
#[test]
fn restart_recovers_the_same_log() {
    let (mut log, mut disk) = fresh(small_segments());
    for i in 0..40 {
        log.append(
            Instant::from_nanos(i),
            vec![record(1, &format!("value-{i}"))],
        )
        .unwrap();
        drive(&mut log, &mut disk);
    }
    let before = read_all(&mut log, &mut disk, ReadFrom::Offset(Offset(0)));
    log.flush_index();
    drive(&mut log, &mut disk);
    let recovered = disk.recover();
    assert!(
        recovered.repairs.is_empty(),
        "a clean log needs no repair: {:?}",
        recovered.repairs
    );
    assert!(recovered
        .segments
        .iter()
        .rev()
        .skip(1)
        .all(|s| s.resident.is_none()));
    let mut restarted = Log::new(small_segments(), recovered, Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(restarted.next_offset(), Offset(40));
    assert_eq!(restarted.durable_index(), LogIndex(40));
    let after = read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(0)));
    assert_eq!(before, after);
}

// Goal: truncating a suffix drops exactly the entries after the index, in
// the active segment and across segments, and appends continue densely.
#[test]
fn truncate_suffix_table() {
    for (keep, label) in [
        (39u64, "within the active segment"),
        (5, "across segments"),
        (0, "everything"),
    ] {
        let (mut log, mut disk) = fresh(small_segments());
        for i in 0..40 {
            log.append(Instant::ZERO, vec![record(1, &format!("v{i}"))])
                .unwrap();
            drive(&mut log, &mut disk);
        }
        let mut result = log.truncate_suffix(LogIndex(keep));
        if let Err(Error::IndexNotResident { base }) = result {
            let told = drive(&mut log, &mut disk);
            assert!(told.contains(&Output::IndexLoaded { base }), "{label}");
            result = log.truncate_suffix(LogIndex(keep));
        }
        result.unwrap();
        drive(&mut log, &mut disk);
        assert_eq!(log.next_index(), LogIndex(keep + 1), "{label}");
        assert_eq!(log.next_offset(), Offset(keep), "{label}");
        log.append(Instant::ZERO, vec![record(2, "new")]).unwrap();
        drive(&mut log, &mut disk);
        assert_eq!(log.durable_index(), LogIndex(keep + 1), "{label}");
        let recovered = disk.recover();
        let mut restarted = Log::new(small_segments(), recovered, Instant::ZERO).unwrap();
        drive(&mut restarted, &mut disk);
        let entries = read_all(
            &mut restarted,
            &mut disk,
            ReadFrom::Index(LogIndex(keep + 1)),
        );
        assert_eq!(entries, [(keep + 1, keep, "new".to_string())], "{label}");
        assert_eq!(restarted.term(LogIndex(keep + 1)), Some(Term(2)), "{label}");
    }
}

// Goal: retention deletes whole old segments by size and by age, and the
// first retained offset only moves forward.
#[test]
fn retention_by_size_and_age() {
    let config = LogConfig {
        retention_bytes: Some(3 * 4096),
        ..small_segments()
    };
    let (mut log, mut disk) = fresh(config);
    let mut firsts = Vec::new();
    for i in 0..200 {
        log.append(Instant::ZERO, vec![record(1, &format!("{i:0>100}"))])
            .unwrap();
        drive(&mut log, &mut disk);
        firsts.push(log.first_offset());
        assert!(
            log.store_bytes() <= 3 * 4096 + 4096,
            "bounded by retention plus one segment"
        );
        // A retirement during the append must not leave it waiting for
        // the next one to become durable.
        assert_eq!(
            log.durable_index(),
            log.next_index().prev(),
            "append {i} is durable"
        );
    }
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
    assert!(log.first_offset() > Offset(0));
    assert_eq!(
        disk.files.len(),
        2 * log.segment_count(),
        "deleted segments' files are gone"
    );

    let config = LogConfig {
        retention_age: Some(Duration::from_secs(10)),
        ..small_segments()
    };
    let (mut log, mut disk) = fresh(config);
    for i in 0..100u64 {
        log.append(
            Instant::from_nanos(i * 1_000_000_000),
            vec![record(1, &format!("{i:0>100}"))],
        )
        .unwrap();
        drive(&mut log, &mut disk);
    }
    let deadline = log.poll_timeout().expect("a sealed segment will expire");
    let segments = log.segment_count();
    log.handle_timeout(deadline);
    drive(&mut log, &mut disk);
    assert!(log.segment_count() < segments);
    // Raft's commit index holds retention back: nothing after it goes.
    let (mut held, mut disk) = fresh(LogConfig {
        retention_bytes: Some(4096),
        ..small_segments()
    });
    held.set_retention_floor(LogIndex(0));
    for i in 0..100 {
        held.append(Instant::ZERO, vec![record(1, &format!("{i:0>100}"))])
            .unwrap();
        drive(&mut held, &mut disk);
    }
    assert_eq!(
        held.first_index(),
        LogIndex(1),
        "the floor holds every entry"
    );
    held.set_retention_floor(LogIndex(60));
    held.append(Instant::ZERO, vec![record(1, "x")]).unwrap();
    drive(&mut held, &mut disk);
    assert!(held.first_index() > LogIndex(1), "retention resumes");
    assert!(held.first_index() <= LogIndex(61), "up to the floor only");
    log.handle_timeout(Instant::from_nanos(1_000 * 1_000_000_000));
    drive(&mut log, &mut disk);
    assert_eq!(
        log.segment_count(),
        1,
        "only the active segment outlives its age"
    );
}

// Goal: bad requests are refused with typed errors and change nothing.
#[test]
fn bad_requests_are_refused() {
    let (mut log, _disk) = fresh(LogConfig::default());
    log.append(Instant::ZERO, vec![record(3, "x")]).unwrap();
    let _ = ops(&mut log);
    let huge = NewEntry::records(Term(3), vec![Bytes::from(vec![0; 2 << 20])]);
    let cases: Vec<(Result<(), Error>, &str)> = vec![
        (
            log.append(Instant::ZERO, vec![]).map(|_| ()),
            "empty append",
        ),
        (
            log.append(Instant::ZERO, vec![huge]).map(|_| ()),
            "record too large",
        ),
        (
            log.append(Instant::ZERO, vec![record(2, "old")])
                .map(|_| ()),
            "term regressed",
        ),
        (
            log.read(ReadId(1), ReadFrom::Index(LogIndex(5)), 1, 1),
            "index past the end",
        ),
        (
            log.read(ReadId(1), ReadFrom::Offset(Offset(1)), 1, 1),
            "offset past the end",
        ),
        (log.truncate_suffix(LogIndex(7)), "truncate past the end"),
    ];
    for (result, label) in cases {
        assert!(result.is_err(), "{label}");
    }
    assert_eq!(log.next_index(), LogIndex(2));
    assert_eq!(log.poll_output(), None, "refusals emit nothing");
    let config = LogConfig {
        segment_bytes: 10,
        ..LogConfig::default()
    };
    assert!(matches!(
        Log::new(config, Recovered::default(), Instant::ZERO),
        Err(Error::Config(_))
    ));
}

// Goal: index slots are written, once their entries are durable, in whole
// runs of INDEX_WRITE_SLOTS (whole pages), the rest at roll-over or on
// flush_index; a restart without the flush scans only the unindexed tail
// and rebuilds those slots.
#[test]
fn index_slots_are_written_in_whole_pages() {
    use crate::limits::INDEX_WRITE_SLOTS;
    let (mut log, mut disk) = fresh(LogConfig::default());
    let index = FileId::index(LogIndex(1));
    let run = INDEX_WRITE_SLOTS as usize;
    let batch: Vec<NewEntry> = (0..run - 1).map(|i| record(1, &i.to_string())).collect();
    log.append(Instant::ZERO, batch).unwrap();
    drive(&mut log, &mut disk);
    assert_eq!(disk.files[&index].len(), 0, "no partial run is written");
    log.append(Instant::ZERO, vec![record(1, "x"), record(1, "y")])
        .unwrap();
    drive(&mut log, &mut disk);
    assert_eq!(
        disk.files[&index].len(),
        run * SLOT_BYTES,
        "exactly one whole run: five pages"
    );
    let recovered = disk.recover();
    assert_eq!(
        recovered.segments[0].entries,
        INDEX_WRITE_SLOTS + 1,
        "the tail is scanned"
    );
    log.flush_index();
    drive(&mut log, &mut disk);
    assert_eq!(disk.files[&index].len(), (run + 1) * SLOT_BYTES);
}

// Goal: durable entries spanning INDEX_CHECKPOINT_BYTES of store get their
// slots written and synced before a whole run gathers, so a crash costs
// recovery a scan of about that much store, not the whole segment; slots of
// entries not yet durable are never written.
#[test]
fn the_index_is_checkpointed_by_bytes() {
    use crate::limits::INDEX_CHECKPOINT_BYTES;
    let (mut log, mut disk) = fresh(LogConfig::default());
    let index = FileId::index(LogIndex(1));
    let records: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(format!("{i:0>1000}")))
        .collect();
    // Each append is one frame of 25 pages; enough of them to cross a
    // checkpoint and go one past it.
    const FRAME: u64 = 25 * 4096;
    let appends = INDEX_CHECKPOINT_BYTES.div_ceil(FRAME) + 1;
    let mut written = Vec::new();
    for _ in 0..appends {
        log.append(
            Instant::ZERO,
            vec![NewEntry::records(Term(1), records.clone())],
        )
        .unwrap();
        let ops = ops(&mut log);
        assert!(
            ops.iter().all(|(_, op)| !op_name(op).contains("index")),
            "nothing is indexed before it is durable"
        );
        for (io, op) in ops {
            let result = Ok(disk.perform(&op));
            log.handle(Instant::ZERO, Input::Disk { io, result });
        }
        drive(&mut log, &mut disk);
        written.push(disk.files[&index].len() / SLOT_BYTES);
    }
    // The first n entries span from the first one's start to the next
    // one's (or the store's end): the first n reaching the checkpoint's
    // size is indexed.
    let active = log.active();
    let start = |i: u64| {
        active
            .slot(LogIndex(i))
            .map_or(active.store_len, |slot| u64::from(slot.position))
    };
    let crossing = (1..=appends)
        .find(|&n| start(n + 1) - start(1) >= INDEX_CHECKPOINT_BYTES)
        .unwrap();
    assert_eq!(
        crossing,
        INDEX_CHECKPOINT_BYTES.div_ceil(FRAME),
        "frames of 25 pages"
    );
    let expected: Vec<usize> = (1..=appends)
        .map(|n| if n < crossing { 0 } else { crossing as usize })
        .collect();
    assert_eq!(written, expected);
    let recovered = disk.recover();
    assert_eq!(
        recovered.segments[0].entries, appends,
        "the tail is scanned"
    );
}

// Goal: a large write ends on a page boundary (a padding frame fills the
// gap), so the next one starts on a fresh page; the padding is invisible to
// reads and to recovery.
#[test]
fn large_writes_end_on_a_page() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    log.append(Instant::ZERO, vec![record(1, "small")]).unwrap();
    drive(&mut log, &mut disk);
    let records: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(format!("{i:0>1000}")))
        .collect();
    let batch = NewEntry::records(Term(1), records.clone());
    log.append(Instant::ZERO, vec![batch.clone()]).unwrap();
    drive(&mut log, &mut disk);
    assert_eq!(
        log.active().store_len % 4096,
        0,
        "the large write ends on a page"
    );
    let second = log.append(Instant::ZERO, vec![batch]).unwrap();
    drive(&mut log, &mut disk);
    let position = log.active().slot(second.first).unwrap().position;
    assert_eq!(position % 4096, 0, "the next entry starts on a fresh page");
    log.flush_index();
    drive(&mut log, &mut disk);
    let recovered = disk.recover();
    assert!(
        recovered.repairs.is_empty(),
        "padding is no damage: {:?}",
        recovered.repairs
    );
    let mut restarted = Log::new(LogConfig::default(), recovered, Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    let read = read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(0)));
    assert_eq!(read.len(), 201);
    let expected: Vec<&str> = records
        .iter()
        .map(|r| std::str::from_utf8(r).unwrap())
        .collect();
    let got: Vec<&str> = read[1..101]
        .iter()
        .map(|(_, _, data)| data.as_str())
        .collect();
    assert_eq!(got, expected);
}

/// The store writes among `ops`, as (position, bytes).
fn store_writes(ops: &[(IoId, DiskOp)]) -> Vec<(u64, Bytes)> {
    ops.iter()
        .filter_map(|(_, op)| match op {
            DiskOp::Write {
                file,
                position,
                bytes,
            } if file.kind == crate::log::disk::FileKind::Store => Some((*position, bytes.clone())),
            _ => None,
        })
        .collect()
}

/// Performs `ops` on `disk` and tells `log` they completed.
fn perform(log: &mut Log, disk: &mut MapDisk, ops: Vec<(IoId, DiskOp)>) {
    for (io, op) in ops {
        let outcome = disk.perform(&op);
        log.handle(
            Instant::ZERO,
            Input::Disk {
                io,
                result: Ok(outcome),
            },
        );
    }
    drive(log, disk);
}

/// The times of the entries from `first` on, as read back.
fn times(log: &mut Log, disk: &mut MapDisk, first: u64) -> Vec<u64> {
    log.read(ReadId(7), ReadFrom::Index(LogIndex(first)), 1000, 1 << 20)
        .unwrap();
    drive(log, disk)
        .into_iter()
        .filter_map(|output| match output {
            Output::Read { result, .. } => Some(result.unwrap().entries),
            _ => None,
        })
        .flatten()
        .map(|entry| entry.time.as_nanos())
        .collect()
}

// Goal: a follower stores the frames its leader's log stored, as they are
// (the same bytes, shared, with the leader's time), small and large ones
// alike; a frame offered at another place in the log is framed afresh.
#[test]
fn a_follower_stores_its_leaders_frames() {
    let (mut leader, mut leader_disk) = fresh(LogConfig::default());
    let large: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(format!("{i:0>1000}")))
        .collect();
    let entries = vec![
        record(1, "small"),
        NewEntry::records(Term(1), large),
        record(1, "after"),
    ];
    let leader_time = Instant::from_nanos(5_000);
    let (_, framed) = leader.append_framed(leader_time, entries).unwrap();
    drive(&mut leader, &mut leader_disk);
    let frames: Vec<Bytes> = framed.iter().map(|e| e.frame.clone().unwrap()).collect();

    let (mut follower, mut disk) = fresh(LogConfig::default());
    follower
        .append_framed(Instant::from_nanos(9_000), framed.clone())
        .unwrap();
    let done = ops(&mut follower);
    let writes = store_writes(&done);
    for frame in &frames {
        assert!(
            writes
                .iter()
                .any(|(_, w)| w.as_ptr() == frame.as_ptr() && w.len() == frame.len()),
            "the leader's frame is written as it is"
        );
    }
    perform(&mut follower, &mut disk, done);
    assert_eq!(follower.active().store_len, leader.active().store_len);
    assert_eq!(times(&mut follower, &mut disk, 1), [5_000; 3]);

    // One entry ahead, the same frames are at another place: framed afresh.
    let (mut other, mut other_disk) = fresh(LogConfig::default());
    other.append(Instant::ZERO, vec![noop(1)]).unwrap();
    drive(&mut other, &mut other_disk);
    other
        .append_framed(Instant::from_nanos(9_000), framed)
        .unwrap();
    let done = ops(&mut other);
    let writes = store_writes(&done);
    assert!(
        frames.iter().all(|frame| writes
            .iter()
            .all(|(_, w)| !w.as_ref().as_ptr_range().contains(&frame.as_ptr()))),
        "no frame is shared"
    );
    perform(&mut other, &mut other_disk, done);
    assert_eq!(times(&mut other, &mut other_disk, 2), [9_000; 3]);
}

// Goal: sealed segments that end with padding are still trusted in O(1) at
// start-up: a clean restart repairs nothing and leaves them on disk.
#[test]
fn sealed_segments_ending_in_padding_need_no_repair() {
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        ..LogConfig::default()
    };
    let (mut log, mut disk) = fresh(config.clone());
    for n in 0..6u8 {
        let records: Vec<Bytes> = (0..90).map(|_| Bytes::from(vec![n; 1000])).collect();
        log.append(Instant::ZERO, vec![NewEntry::records(Term(1), records)])
            .unwrap();
        drive(&mut log, &mut disk);
    }
    assert!(log.segment_count() >= 2, "rolled over");
    log.flush_index();
    drive(&mut log, &mut disk);
    let recovered = disk.recover();
    assert!(recovered.repairs.is_empty(), "{:?}", recovered.notes);
    assert!(
        recovered
            .segments
            .iter()
            .rev()
            .skip(1)
            .all(|s| s.resident.is_none()),
        "sealed ones read in O(1)"
    );
    let mut restarted = Log::new(config, recovered, Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    let first_segment = read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(0)));
    assert_eq!(
        first_segment.len(),
        180,
        "two entries of 90 records fit a segment"
    );
    assert_eq!(first_segment[179].1, 179);
}

// Goal: installing a snapshot resets the log to start at a later index and
// offset: old segments go, the new first segment carries the term before
// it, appends continue from there, and a restart finds the same.
#[test]
fn reset_starts_the_log_over() {
    let (mut log, mut disk) = fresh(small_segments());
    for i in 0..30 {
        log.append(Instant::ZERO, vec![record(2, &format!("{i:0>300}"))])
            .unwrap();
        drive(&mut log, &mut disk);
    }
    log.reset(
        LogIndex(100),
        Offset(70),
        Term(3),
        config(60, "snap"),
        Producers::default(),
    )
    .unwrap();
    drive(&mut log, &mut disk);
    assert_eq!(
        (log.first_index(), log.next_index(), log.next_offset()),
        (LogIndex(100), LogIndex(100), Offset(70))
    );
    assert_eq!(log.term(LogIndex(99)), Some(Term(3)));
    assert_eq!(disk.files.len(), 2, "only the new segment's files remain");
    let appended = log.append(Instant::ZERO, vec![record(4, "after")]).unwrap();
    assert_eq!(
        (appended.first, appended.first_offset),
        (LogIndex(100), Offset(70))
    );
    drive(&mut log, &mut disk);
    log.flush_index();
    drive(&mut log, &mut disk);
    let mut restarted = Log::new(small_segments(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(restarted.first_offset(), Offset(70));
    assert_eq!(restarted.term(LogIndex(99)), Some(Term(3)));
    assert_eq!(
        read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(70))),
        [(100, 70, "after".to_string())]
    );
    assert_eq!(restarted.latest_config(), &config(60, "snap"));
    assert_eq!(restarted.config_at(LogIndex(99)), Some(&config(60, "snap")));
    let backwards = restarted.reset(
        LogIndex(50),
        Offset(0),
        Term(1),
        ConfigAt::default(),
        Producers::default(),
    );
    assert!(backwards.is_err(), "a reset never goes back before the log");
}

// Goal: prefix truncation removes whole segments below the index, never
// the one holding it, and the first index on disk follows once the
// deletions are durable.
#[test]
fn truncate_prefix_is_segment_granular() {
    let (mut log, mut disk) = fresh(small_segments());
    for i in 0..30 {
        log.append(Instant::ZERO, vec![record(1, &format!("{i:0>300}"))])
            .unwrap();
        drive(&mut log, &mut disk);
    }
    let segments = log.segment_count();
    log.truncate_prefix(LogIndex(20)).unwrap();
    assert!(
        log.first_index() <= LogIndex(20),
        "the segment holding 20 stays"
    );
    assert!(log.first_index() > LogIndex(1));
    assert!(
        log.first_index_on_disk() < log.first_index(),
        "deletions are not durable yet"
    );
    drive(&mut log, &mut disk);
    assert_eq!(log.first_index_on_disk(), log.first_index());
    assert!(log.segment_count() < segments);
    assert_eq!(disk.files.len(), 2 * log.segment_count());
    let first_index = log.first_index();
    let first = read_all(&mut log, &mut disk, ReadFrom::Index(first_index));
    assert_eq!(first[0].0, first_index.0);
}

// Goal: a configuration entry ends its segment, and the next segment's
// header carries it, so the configuration at any point is known from
// headers alone: after appends, after a restart, after a suffix truncation
// removes the entry, and never before the log's first entry.
#[test]
fn configuration_entries_end_their_segment() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    log.append(Instant::ZERO, vec![record(1, "a"), record(1, "b")])
        .unwrap();
    let appended = log
        .append(
            Instant::ZERO,
            vec![config_entry(1, "A"), record(1, "c"), config_entry(1, "B")],
        )
        .unwrap();
    drive(&mut log, &mut disk);
    assert_eq!((appended.first, appended.last), (LogIndex(3), LogIndex(5)));
    assert_eq!(log.segment_count(), 3, "each configuration entry rolled");
    let expected = [
        (0, Some(ConfigAt::default())),
        (2, Some(ConfigAt::default())),
        (3, Some(config(3, "A"))),
        (4, Some(config(3, "A"))),
        (5, Some(config(5, "B"))),
        (6, None),
    ];
    for (index, want) in &expected {
        assert_eq!(log.config_at(LogIndex(*index)), want.as_ref(), "at {index}");
    }
    log.flush_index();
    drive(&mut log, &mut disk);
    let mut restarted = Log::new(LogConfig::default(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    for (index, want) in &expected {
        assert_eq!(
            restarted.config_at(LogIndex(*index)),
            want.as_ref(),
            "restarted, at {index}"
        );
    }
    let mut truncate = |after: u64| {
        if let Err(Error::IndexNotResident { .. }) = restarted.truncate_suffix(LogIndex(after)) {
            drive(&mut restarted, &mut disk);
            restarted.truncate_suffix(LogIndex(after)).unwrap();
        }
        drive(&mut restarted, &mut disk);
        restarted.latest_config().clone()
    };
    assert_eq!(truncate(4), config(3, "A"));
    assert_eq!(truncate(3), config(3, "A"), "the entry stays");
    assert_eq!(truncate(2), ConfigAt::default());
}

// Goal: a crash after a configuration entry was written but before the
// segment that carries it was created leaves it ending the last segment;
// the log creates that segment at start, so the entry is still in effect.
#[test]
fn a_configuration_entry_cut_from_its_roll_is_rolled_at_start() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    log.append(Instant::ZERO, vec![record(1, "a"), config_entry(1, "A")])
        .unwrap();
    for (_, op) in ops(&mut log) {
        if matches!(op, DiskOp::Create { .. }) {
            break; // The crash: nothing of the roll reaches the disk.
        }
        disk.perform(&op);
    }
    let recovered = disk.recover();
    assert_eq!(recovered.tail_config, Some(config(2, "A")));
    let mut restarted = Log::new(LogConfig::default(), recovered, Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(restarted.segment_count(), 2);
    assert_eq!(restarted.latest_config(), &config(2, "A"));
    let appended = restarted
        .append(Instant::ZERO, vec![record(1, "b")])
        .unwrap();
    assert_eq!(appended.first, LogIndex(3));
}

// Goal: an entry whose bytes rotted is found damaged when read, never
// served, and repaired in place from an intact copy: the log never gets
// shorter, the entries around it keep their bytes, and a restart finds
// nothing damaged. A copy that is not the entry is refused.
#[test]
fn a_damaged_entry_is_repaired_in_place() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    let entries = vec![
        record(1, "first"),
        record(1, "second"),
        noop(2),
        record(2, "fourth"),
    ];
    log.append(Instant::ZERO, entries.clone()).unwrap();
    drive(&mut log, &mut disk);
    let (store, _) = log.active_store();
    let (start, _) = log.active().frame_range(LogIndex(2)).unwrap();
    let bytes = disk.files.get_mut(&store).unwrap();
    let rot = start as usize + 20;
    bytes[rot] ^= 0xff;
    let read = read_all(&mut log, &mut disk, ReadFrom::Offset(Offset(0)));
    assert_eq!(
        read,
        [(1, 0, "first".to_string())],
        "served up to the damage only"
    );
    assert_eq!(
        log.repair(LogIndex(2), &[record(2, "second")], false),
        Err(Error::RepairRefused { index: LogIndex(2) }),
        "a copy of another term is not this entry"
    );
    assert_eq!(
        log.repair(LogIndex(1), &[record(1, "first")], false),
        Err(Error::RepairRefused { index: LogIndex(1) }),
        "an intact entry needs no repair"
    );
    log.repair(LogIndex(2), &entries[1..2], false).unwrap();
    let before = log.next_index();
    drive(&mut log, &mut disk);
    assert_eq!(log.next_index(), before, "the log is no shorter");
    assert_eq!(log.damaged().count(), 0);
    let everything = [
        (1, 0, "first".to_string()),
        (2, 1, "second".to_string()),
        (3, 2, String::new()),
        (4, 2, "fourth".to_string()),
    ];
    assert_eq!(
        read_all(&mut log, &mut disk, ReadFrom::Offset(Offset(0))),
        everything
    );
    let mut restarted = Log::new(LogConfig::default(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(restarted.damaged().count(), 0);
    assert_eq!(
        read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(0))),
        everything
    );
}

// Goal: a run that recovery found damaged holds only placeholders in the
// index (its bytes told nothing); copies known committed repair it whole,
// the index learns where the frames are, and a restart finds it intact.
// Untrusted copies are refused, since nothing can be checked against them.
#[test]
fn a_run_found_damaged_by_recovery_is_repaired_whole() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    let entries = vec![
        record(1, "first"),
        record(1, "second, a little longer"),
        record(1, "third"),
        record(2, "fourth"),
    ];
    log.append(Instant::ZERO, entries.clone()).unwrap();
    drive(&mut log, &mut disk);
    let (store, _) = log.active_store();
    let (second, _) = log.active().frame_range(LogIndex(2)).unwrap();
    let (third, _) = log.active().frame_range(LogIndex(3)).unwrap();
    let bytes = disk.files.get_mut(&store).unwrap();
    bytes[second as usize + 14] ^= 0x01;
    bytes[third as usize + 14] ^= 0x01;
    let mut restarted = Log::new(LogConfig::default(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut restarted, &mut disk);
    let run = *restarted.damaged().next().expect("recovery found the run");
    assert_eq!((run.first, run.end), (LogIndex(2), LogIndex(4)));
    assert_eq!(
        restarted.repair(LogIndex(2), &entries[1..3], false),
        Err(Error::RepairRefused { index: LogIndex(2) }),
        "placeholders check nothing: untrusted copies are refused"
    );
    restarted.repair(LogIndex(2), &entries[1..3], true).unwrap();
    drive(&mut restarted, &mut disk);
    let everything = [
        (1, 0, "first".to_string()),
        (2, 1, "second, a little longer".to_string()),
        (3, 2, "third".to_string()),
        (4, 3, "fourth".to_string()),
    ];
    let read = read_all(&mut restarted, &mut disk, ReadFrom::Offset(Offset(0)));
    assert_eq!(read, everything);
    restarted.flush_index();
    drive(&mut restarted, &mut disk);
    let mut again = Log::new(LogConfig::default(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut again, &mut disk);
    assert_eq!(again.damaged().count(), 0);
    assert_eq!(
        read_all(&mut again, &mut disk, ReadFrom::Offset(Offset(0))),
        everything
    );
}
