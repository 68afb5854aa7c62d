//! Named storage faults from FAULTS.md, staged on the simulated disk.
//!
//! Each test stages one failure that a real system shipped and asserts the
//! behaviour Cairn must show instead.

use bytes::Bytes;
use cairn::core::config::LogConfig;
use cairn::core::ids::{LogIndex, Offset, Term};
use cairn::core::log::disk::{DiskError, DiskOp, FileId};
use cairn::core::log::entry::{ConfigAt, NewEntry};
use cairn::core::log::index::SLOT_BYTES;
use cairn::core::log::machine::{Output, ReadFrom};
use cairn::core::log::producers::Producers;
use cairn::core::log::recovery::Note;
use cairn::core::time::Instant;
use cairn::core::Error;
use cairn::sim::disk::{DiskFaults, SimDisk};
use cairn::sim::storage::SimLog;

fn records(from: u64, count: u64) -> Vec<NewEntry> {
    (from..from + count)
        .map(|n| {
            NewEntry::records(
                Term(1),
                vec![Bytes::from(format!("record-{n:04}-{}", "x".repeat(200)))],
            )
        })
        .collect()
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn started(config: LogConfig, seed: u64) -> SimLog {
    SimLog::start(
        config,
        SimDisk::new(seed, DiskFaults::default()),
        Instant::ZERO,
    )
    .unwrap()
}

/// Reads every record from the first offset; returns (offset, data) pairs
/// served and the offsets reported damaged.
fn read_everything(sim: &mut SimLog) -> (Vec<(u64, String)>, Vec<u64>) {
    let (mut served, mut damaged) = (Vec::new(), Vec::new());
    let next = sim.log().next_index();
    let mut from = ReadFrom::Offset(sim.log().first_offset());
    loop {
        let batch = sim.read(from, 100, 1 << 20).unwrap().unwrap();
        for entry in &batch.entries {
            for (offset, record) in entry.records() {
                served.push((offset.0, String::from_utf8(record.to_vec()).unwrap()));
            }
        }
        let last = match (batch.damaged, batch.entries.last()) {
            (Some(damage), _) => {
                damaged.extend(damage.first_offset.0..damage.end_offset.0);
                damage.end.prev()
            }
            (None, Some(entry)) => entry.index,
            (None, None) => unreachable!("a read returns something"),
        };
        if last.next() >= next {
            return (served, damaged);
        }
        from = ReadFrom::Index(last.next());
    }
}

fn store_of(sim: &SimLog) -> (FileId, Vec<u8>) {
    let name = sim
        .disk()
        .names()
        .into_iter()
        .rfind(|n| n.ends_with(".store"))
        .unwrap();
    (
        FileId::parse(&name).unwrap(),
        sim.disk().contents(&name).unwrap().to_vec(),
    )
}

// ST1/ST2: a crash mid-append tears the last frame; recovery truncates only
// the torn tail and every synced record survives.
#[test]
fn st2_torn_tail_is_truncated_and_synced_records_survive() {
    let mut torn_cut = 0;
    for seed in 0..40 {
        let mut sim = started(LogConfig::default(), seed);
        sim.append(records(0, 10)).unwrap();
        sim.run();
        assert_eq!(sim.log().durable_index(), LogIndex(10));
        sim.append(records(10, 5)).unwrap();
        sim.step(1); // the store write lands (unsynced); its sync never runs
        let (mut sim, report) = sim.crash().unwrap();
        sim.run();
        let (served, damaged) = read_everything(&mut sim);
        assert!(damaged.is_empty(), "seed {seed}: a torn tail is not damage");
        assert!(served.len() >= 10, "seed {seed}: synced records survive");
        let expected: Vec<u64> = (0..served.len() as u64).collect();
        assert_eq!(
            served.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            expected,
            "dense"
        );
        let (_, store) = store_of(&sim);
        assert_eq!(
            store.len() as u64,
            sim.log().store_bytes(),
            "seed {seed}: no torn bytes remain"
        );
        if served.len() < 15
            && report.torn > 0
            && sim
                .notes()
                .iter()
                .any(|n| matches!(n, Note::TornTail { .. }))
        {
            torn_cut += 1;
        }
    }
    assert!(torn_cut > 0, "some seeds tore a frame, and recovery cut it");
}

// ST3: one bit flips inside an old record; the checksum catches it, it is
// reported damaged with its offset, and nothing after it is truncated.
#[test]
fn st3_mid_log_bit_flip_is_reported_not_truncated() {
    let mut sim = started(LogConfig::default(), 1);
    sim.append(records(0, 20)).unwrap();
    sim.run();
    let (store, bytes) = store_of(&sim);
    let at = bytes.windows(11).position(|w| w == b"record-0007").unwrap() as u64 + 20;
    sim.disk_mut().flip_bit(store, at, 3);
    let (mut sim, _) = sim.crash().unwrap();
    sim.run();
    assert_eq!(sim.log().next_offset(), Offset(20), "nothing is truncated");
    let (served, damaged) = read_everything(&mut sim);
    assert_eq!(damaged, [7], "the flipped record is reported");
    assert_eq!(served.len(), 19);
    assert!(served
        .iter()
        .all(|(offset, data)| *offset != 7 && data.starts_with(&format!("record-{offset:04}"))));
    let told = sim.take_told();
    assert!(
        told.iter()
            .any(|o| matches!(o, Output::Damaged(d) if d.first_offset == Offset(7))),
        "{told:?}"
    );
}

// ST3 in the unindexed tail: the flip is found by recovery's scan, which
// sees valid frames after it, so it is damage, not a torn tail.
#[test]
fn st3_flip_in_the_scanned_tail_is_damage() {
    let mut sim = started(LogConfig::default(), 2);
    sim.append(records(0, 6)).unwrap();
    sim.run();
    let (store, bytes) = store_of(&sim);
    let index = FileId::index(store.base);
    sim.disk_mut()
        .truncate_file(&index.to_string(), SLOT_BYTES as u64 * 2); // the index lags
    let at = bytes.windows(11).position(|w| w == b"record-0003").unwrap() as u64 + 30;
    sim.disk_mut().flip_bit(store, at, 0);
    let (mut sim, _) = sim.crash().unwrap();
    sim.run();
    let damaged: Vec<(u64, u64)> = sim
        .damaged()
        .iter()
        .map(|d| (d.first_offset.0, d.end_offset.0))
        .collect();
    assert_eq!(damaged, [(3, 4)]);
    assert_eq!(sim.log().next_offset(), Offset(6));
    let (served, _) = read_everything(&mut sim);
    assert_eq!(
        served.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        [0, 1, 2, 4, 5]
    );
}

// ST8: an index longer than its store, or partly written, is never trusted
// past the last valid record: it is rebuilt from the store.
#[test]
fn st8_index_longer_than_store_or_garbage_is_rebuilt() {
    for garbage in [vec![0u8; SLOT_BYTES * 50], vec![0xAB; 100], vec![]] {
        let mut sim = started(LogConfig::default(), 3);
        sim.append(records(0, 8)).unwrap();
        sim.run();
        let (store, _) = store_of(&sim);
        let index = FileId::index(store.base).to_string();
        let mut bytes = sim.disk().contents(&index).unwrap().to_vec();
        bytes.truncate(SLOT_BYTES * 5);
        bytes.extend_from_slice(&garbage);
        sim.disk_mut().remove_file(&index);
        sim.disk_mut().put_file(&index, &bytes);
        let (mut sim, _) = sim.crash().unwrap();
        sim.run();
        assert_eq!(sim.log().next_offset(), Offset(8));
        let (served, damaged) = read_everything(&mut sim);
        assert_eq!((served.len(), damaged.len()), (8, 0));
        let rebuilt = sim.disk().contents(&index).unwrap();
        assert_eq!(
            rebuilt.len(),
            SLOT_BYTES * 8,
            "the index is repaired to the store"
        );
    }
}

// ST9: a crash after creating a segment, before the directory sync: the
// new segment is absent or whole, and no dangling index remains.
#[test]
fn st9_crash_during_roll_over_leaves_no_dangling_segment() {
    for seed in 0..60 {
        let mut sim = started(small(), seed);
        sim.append(records(0, 14)).unwrap();
        sim.run();
        sim.append(records(14, 20)).unwrap();
        let creating = sim
            .queued()
            .position(|op| matches!(op, DiskOp::Create { .. }))
            .unwrap();
        sim.step(creating + 1 + (seed as usize % 4));
        let (mut sim, _) = sim.crash().unwrap();
        sim.run();
        sim.log().check_invariants();
        let names = sim.disk().names();
        let stores = names.iter().filter(|n| n.ends_with(".store")).count();
        let indexes = names.iter().filter(|n| n.ends_with(".index")).count();
        assert_eq!(stores, indexes, "seed {seed}: {names:?}");
        let (served, damaged) = read_everything(&mut sim);
        assert!(damaged.is_empty());
        assert!(served.len() >= 14, "seed {seed}: synced records survive");
    }
}

// ST11: fsync fails with EIO; the log stops and never retries the sync or
// reports the data durable.
#[test]
fn st11_failed_fsync_stops_the_log() {
    let mut sim = started(LogConfig::default(), 4);
    sim.run();
    sim.append(records(0, 3)).unwrap();
    sim.disk_mut().fail_next_sync();
    sim.run();
    assert_eq!(sim.log().stopped(), Some(DiskError::Io));
    assert_eq!(sim.log().durable_index(), LogIndex(0));
    assert!(!sim
        .take_told()
        .iter()
        .any(|o| matches!(o, Output::Durable { .. })));
    assert_eq!(
        sim.append(records(3, 1)).unwrap_err(),
        Error::Stopped(DiskError::Io)
    );
    assert_eq!(sim.queued().count(), 0, "nothing is retried");
}

// ST7: reading an old segment fails (a latent sector error): that read
// fails, the log keeps serving everything else.
#[test]
fn st7_failed_read_fails_only_that_read() {
    let mut sim = started(small(), 5);
    sim.append(records(0, 30)).unwrap();
    sim.run();
    let first = FileId::store(LogIndex(1));
    sim.disk_mut().fail_reads(first, 0, 4096);
    let failed = sim.read(ReadFrom::Offset(Offset(0)), 10, 1 << 20).unwrap();
    assert!(failed.is_err());
    let later = sim
        .read(ReadFrom::Offset(Offset(29)), 10, 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(later.entries[0].offset, Offset(29));
    assert_eq!(sim.log().stopped(), None);
}

// SN7: a crash during retention's deletion of old segments: the first
// retained offset never goes backwards and no gap appears.
#[test]
fn sn7_crash_during_retention_never_goes_backwards() {
    for step in 0..8 {
        let config = LogConfig {
            retention_bytes: Some(3 * 4096),
            ..small()
        };
        let mut sim = started(config, 6 + step as u64);
        sim.append(records(0, 40)).unwrap();
        sim.run();
        let before = sim.log().first_offset_on_disk();
        sim.append(records(40, 30)).unwrap();
        sim.step(step * 3);
        let on_disk = sim.log().first_offset_on_disk();
        assert!(on_disk >= before);
        let (mut sim, _) = sim.crash().unwrap();
        sim.run();
        assert!(
            sim.log().first_offset() >= on_disk,
            "step {step}: went backwards"
        );
        let (served, damaged) = read_everything(&mut sim);
        assert!(damaged.is_empty(), "step {step}: no gap");
        let offsets: Vec<u64> = served.iter().map(|(o, _)| *o).collect();
        let first = sim.log().first_offset().0;
        assert_eq!(
            offsets,
            (first..first + offsets.len() as u64).collect::<Vec<_>>(),
            "dense"
        );
    }
}

// A snapshot installed over a log (Raft §7): a crash at any point of the
// reset leaves the old log, every synced record in it, or the new one,
// starting at the snapshot's base — never neither (a node left with no log
// could vote for a candidate lacking entries it acknowledged), never a mix.
#[test]
fn crash_during_reset_leaves_the_old_log_or_the_new() {
    let (mut saw_old, mut saw_new) = (false, false);
    for step in 0..24 {
        for seed in 0..4 {
            let mut sim = started(small(), 1_000 + step as u64 * 4 + seed);
            sim.append(records(0, 40)).unwrap();
            sim.run();
            let old_next = sim.log().next_index();
            sim.reset(
                LogIndex(100),
                Offset(90),
                Term(3),
                ConfigAt::default(),
                Producers::default(),
            )
            .unwrap();
            sim.step(step);
            let (mut sim, _) = sim.crash().unwrap();
            sim.run();
            let log = sim.log();
            let old = log.first_index() == LogIndex(1) && log.next_index() == old_next;
            let new = (log.first_index(), log.next_index(), log.next_offset())
                == (LogIndex(100), LogIndex(100), Offset(90))
                && log.term(LogIndex(99)) == Some(Term(3));
            assert!(
                old || new,
                "step {step} seed {seed}: the log runs from {} to {}",
                log.first_index(),
                log.next_index()
            );
            if old {
                let (served, damaged) = read_everything(&mut sim);
                assert!(damaged.is_empty(), "step {step} seed {seed}");
                assert_eq!(served.len(), 40, "step {step} seed {seed}: every record");
            }
            saw_old |= old;
            saw_new |= new;
        }
    }
    assert!(
        saw_old && saw_new,
        "crashes fell on both sides of the switch"
    );
}

// A segment whose files are found but whose name the log does not own is
// left alone; a dangling index is removed.
#[test]
fn foreign_files_are_left_alone_and_dangling_indexes_removed() {
    let mut disk = SimDisk::new(7, DiskFaults::default());
    disk.put_file("README", b"operator notes");
    disk.put_file("00000000000000000009.index", &[0; 48]);
    let mut sim = SimLog::start(LogConfig::default(), disk, Instant::ZERO).unwrap();
    sim.run();
    assert!(sim.notes().contains(&Note::ForeignFile("README".into())));
    assert!(sim.notes().contains(&Note::DanglingIndex(LogIndex(9))));
    let names = sim.disk().names();
    assert!(names.contains(&"README".to_string()));
    assert!(!names.contains(&"00000000000000000009.index".to_string()));
}

// ST8, sealed: a flipped slot in the middle of a sealed segment's index
// passes the O(1) start-up check; the first read that loads the index finds
// it, rebuilds it from the store, rewrites it, and serves the right records.
#[test]
fn st8_corrupt_sealed_index_is_rebuilt_when_loaded() {
    let mut sim = started(small(), 8);
    sim.append(records(0, 40)).unwrap();
    sim.run();
    let index = FileId::index(LogIndex(1));
    let before = sim.disk().contents(&index.to_string()).unwrap().to_vec();
    assert!(
        before.len() >= SLOT_BYTES * 4,
        "the first segment is sealed with a full index"
    );
    sim.disk_mut().flip_bit(index, SLOT_BYTES as u64 + 5, 1);
    let (mut sim, _) = sim.crash().unwrap();
    sim.run();
    let (served, damaged) = read_everything(&mut sim);
    assert!(damaged.is_empty());
    assert_eq!(served.len(), 40);
    assert!(served
        .iter()
        .all(|(offset, data)| data.starts_with(&format!("record-{offset:04}"))));
    assert_eq!(
        sim.disk().contents(&index.to_string()).unwrap(),
        &before[..],
        "rewritten as it was"
    );
}

// ST4: a sealed store found cut short in the middle on one replica: the
// entries it lost are reported damaged with their offsets (for repair from
// peers), everything before and after them is served, nothing is truncated.
#[test]
fn st4_sealed_store_cut_short_is_damage_not_loss() {
    let mut sim = started(small(), 9);
    sim.append(records(0, 40)).unwrap();
    sim.run();
    assert!(sim.log().segment_count() > 2);
    let first = FileId::store(LogIndex(1)).to_string();
    let len = sim.disk().contents(&first).unwrap().len() as u64;
    sim.disk_mut().truncate_file(&first, len / 2);
    let next_offset = sim.log().next_offset();
    let (mut sim, _) = sim.crash().unwrap();
    sim.run();
    assert_eq!(sim.log().next_offset(), next_offset, "nothing is truncated");
    let (served, damaged) = read_everything(&mut sim);
    assert!(!damaged.is_empty(), "the lost entries are reported");
    assert_eq!(
        served.len() + damaged.len(),
        next_offset.0 as usize,
        "every offset is served or reported"
    );
    let first_damaged = damaged[0];
    assert!(served
        .iter()
        .all(|(offset, data)| data.starts_with(&format!("record-{offset:04}"))));
    assert!(
        served.iter().any(|(offset, _)| *offset > first_damaged),
        "entries after the damage are served"
    );
}
