//! Tests of the producer table the log keeps in its segment headers and
//! index slots: it outlives retention and snapshots across restarts, and
//! recovery rebuilds it exactly, without reading an entry back.

use bytes::Bytes;

use super::{drive, fresh, small_segments};
use crate::config::LogConfig;
use crate::ids::{LogIndex, Offset, Term};
use crate::log::disk::{DiskOp, FileId};
use crate::log::entry::{ConfigAt, NewEntry, SegmentHeader, Stamp};
use crate::log::index::SLOT_BYTES;
use crate::log::machine::{Input, Log, Output};
use crate::log::producers::{Decision, Landed, Producers};
use crate::log::recovery::Note;
use crate::testing::MapDisk;
use crate::time::Instant;

fn stamp(producer: u64, sequence: u64) -> Stamp {
    Stamp { producer, sequence }
}

/// A one-record batch stamped by `producer` with `sequence`.
fn batch(producer: u64, sequence: u64) -> NewEntry {
    let record = Bytes::from(format!("p{producer}#{sequence}"));
    NewEntry::records(Term(1), vec![record]).stamped(stamp(producer, sequence))
}

/// Appends `count` unstamped records of 100 bytes each, one per entry.
fn fill(log: &mut Log, disk: &mut MapDisk, count: usize) {
    for i in 0..count {
        let record = Bytes::from(format!("{i:0>100}"));
        log.append(
            Instant::ZERO,
            vec![NewEntry::records(Term(1), vec![record])],
        )
        .unwrap();
        drive(log, disk);
    }
}

fn landed(sequence: u64, index: u64) -> Decision {
    // Every entry here holds one record, and entries are all batches, so
    // an entry's offset is its index minus one.
    Decision::Duplicate(Landed {
        sequence,
        index: LogIndex(index),
        offset: Offset(index - 1),
        records: 1,
    })
}

/// The header of the log's active segment, as it is on disk.
fn active_header(log: &Log, disk: &MapDisk) -> (SegmentHeader, Producers) {
    let (file, _) = log.active_store();
    let (header, _) = SegmentHeader::decode(&disk.files[&file]).unwrap();
    let table = Producers::decode(&header.producers).unwrap();
    (header, table)
}

/// Restarts the log from the disk as it is, after a clean shutdown (every
/// slot written); the restarted log must read nothing back.
fn restart(log: &mut Log, disk: &mut MapDisk, config: &LogConfig) -> Log {
    log.flush_index();
    drive(log, disk);
    crash(disk, config)
}

/// Starts a log from the disk as it is (what a crash left), asserting that
/// it reads no entry back before it answers for its producers.
fn crash(disk: &mut MapDisk, config: &LogConfig) -> Log {
    let mut restarted = Log::new(config.clone(), disk.recover(), Instant::ZERO).unwrap();
    while let Some(output) = restarted.poll_output() {
        let Output::Disk(request) = output else {
            continue;
        };
        assert!(
            !matches!(request.op, DiskOp::Read { .. }),
            "a restart reads nothing back: {:?}",
            request.op
        );
        let outcome = disk.perform(&request.op);
        let input = Input::Disk {
            io: request.io,
            result: Ok(outcome),
        };
        restarted.handle(Instant::ZERO, input);
    }
    restarted.check_invariants();
    restarted
}

/// Asserts what `log` decides for each stamp.
fn assert_decides(log: &Log, cases: &[(&str, Stamp, Decision)]) {
    for (label, stamp, expected) in cases {
        assert_eq!(log.decide(*stamp), *expected, "{label}");
    }
}

// Goal: retention removes the segments holding a producer's batches, yet
// the table still knows them, from the active segment's header, and a
// restart rebuilds it at once from that header and the active segment's
// slots, reading nothing back (the bug of seed 60005616: a restart forgot
// the producer, and its retry was stored twice).
#[test]
fn the_table_outlives_retention_and_a_restart() {
    let config = LogConfig {
        retention_bytes: Some(3 * 4096),
        ..small_segments()
    };
    let (mut log, mut disk) = fresh(config.clone());
    for sequence in 0..4 {
        log.append(Instant::ZERO, vec![batch(7, sequence)]).unwrap();
        drive(&mut log, &mut disk);
    }
    fill(&mut log, &mut disk, 200);
    log.append(Instant::ZERO, vec![batch(8, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let p8 = log.next_index().prev().0;
    assert!(
        log.first_index() > LogIndex(4),
        "7's batches are retained away"
    );
    let (_, table) = active_header(&log, &disk);
    assert_eq!(
        table.decide(stamp(7, 3)),
        landed(3, 4),
        "the header carries 7"
    );
    assert_eq!(table.decide(stamp(8, 0)), Decision::Append, "8 came after");

    let restarted = restart(&mut log, &mut disk, &config);
    assert_eq!(restarted.producers(), log.producers(), "exactly as before");
    assert_decides(
        &restarted,
        &[
            ("7's last batch, retained away", stamp(7, 3), landed(3, 4)),
            ("7's first batch", stamp(7, 0), landed(0, 1)),
            ("7's next batch", stamp(7, 4), Decision::Append),
            ("8, from its slot", stamp(8, 0), landed(0, p8)),
            ("an unknown producer", stamp(9, 0), Decision::Append),
        ],
    );
}

// Goal: a snapshot's table is the reset log's, written in its first
// segment's header, so a restart after the install keeps it, and one after
// appends adds what the slots tell.
#[test]
fn a_snapshot_table_survives_a_restart() {
    let (mut log, mut disk) = fresh(small_segments());
    log.append(Instant::ZERO, vec![batch(3, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let mut snapshot = Producers::default();
    snapshot.landed(stamp(7, 4), LogIndex(90), Offset(89), 1);
    snapshot.landed(stamp(7, 5), LogIndex(99), Offset(98), 1);
    log.reset(
        LogIndex(100),
        Offset(99),
        Term(1),
        ConfigAt::default(),
        snapshot.clone(),
    )
    .unwrap();
    drive(&mut log, &mut disk);
    assert_eq!(log.producers(), &snapshot);
    assert_eq!(active_header(&log, &disk).1, snapshot);
    let mut restarted = restart(&mut log, &mut disk, &small_segments());
    assert_eq!(restarted.producers(), &snapshot);
    restarted.append(Instant::ZERO, vec![batch(7, 6)]).unwrap();
    drive(&mut restarted, &mut disk);
    let again = restart(&mut restarted, &mut disk, &small_segments());
    assert_decides(
        &again,
        &[
            ("the snapshot's last batch", stamp(7, 5), landed(5, 99)),
            ("an earlier one", stamp(7, 4), landed(4, 90)),
            ("appended after the install", stamp(7, 6), landed(6, 100)),
            ("gone with the old log", stamp(3, 0), Decision::Append),
        ],
    );
}

// Goal: after a crash, the stamps of entries the index file does not cover
// come from the scan of the store's tail, and a torn last batch, cut by
// recovery, is not in the table.
#[test]
fn a_crash_learns_the_scanned_tail() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    for sequence in 0..3 {
        log.append(Instant::ZERO, vec![batch(7, sequence)]).unwrap();
        drive(&mut log, &mut disk);
    }
    let (store, index) = (log.active_store().0, FileId::index(LogIndex(1)));
    assert_eq!(
        disk.files.get(&index).map_or(0, Vec::len),
        0,
        "no slot reached the index file: the tail is scanned"
    );
    let len = disk.files[&store].len();
    disk.files.get_mut(&store).unwrap().truncate(len - 3);
    let recovered = disk.recover();
    assert!(
        recovered
            .notes
            .iter()
            .any(|note| matches!(note, Note::TornTail { .. })),
        "{:?}",
        recovered.notes
    );
    let crashed = crash(&mut disk, &LogConfig::default());
    assert_eq!(crashed.next_index(), LogIndex(3));
    assert_decides(
        &crashed,
        &[
            ("scanned", stamp(7, 0), landed(0, 1)),
            ("scanned, last whole", stamp(7, 1), landed(1, 2)),
            ("torn away", stamp(7, 2), Decision::Append),
        ],
    );
}

// Goal: the rule for damaged entries. A slot is checked on its own, so an
// index slot tells its stamp even when its entry's frame rotted; an entry
// the scan steps over (its frame rotted before any slot reached the index
// file) has no stamp to tell, and its batch stays unknown.
#[test]
fn a_rotted_frame_keeps_its_slot_stamp() {
    for (label, flushed, expected) in [
        ("behind an index slot", true, landed(1, 2)),
        ("scanned over", false, Decision::Stale { last: 2 }),
    ] {
        let (mut log, mut disk) = fresh(LogConfig::default());
        for sequence in 0..3 {
            log.append(Instant::ZERO, vec![batch(7, sequence)]).unwrap();
            drive(&mut log, &mut disk);
        }
        if flushed {
            log.flush_index();
            drive(&mut log, &mut disk);
        }
        // Rot a byte inside the second entry's frame.
        let store = log.active_store().0;
        let header_len = SegmentHeader::decode(&disk.files[&store]).unwrap().1;
        let frame = (disk.files[&store].len() - header_len) / 3;
        disk.files.get_mut(&store).unwrap()[header_len + frame + frame / 2] ^= 0x10;
        let crashed = crash(&mut disk, &LogConfig::default());
        assert_eq!(crashed.next_index(), LogIndex(4), "{label}");
        assert_eq!(crashed.decide(stamp(7, 1)), expected, "{label}");
        assert_eq!(crashed.decide(stamp(7, 2)), landed(2, 3), "{label}");
        let slots = disk.files.get(&FileId::index(LogIndex(1)));
        assert!(slots.is_none_or(|s| s.len() % SLOT_BYTES == 0));
    }
}

// Goal: when the active segment's header is damaged, its table comes from
// the segment before it, and the stamps since from both segments' slots,
// so nothing is forgotten.
#[test]
fn a_damaged_active_header_falls_back_to_the_one_before() {
    let (mut log, mut disk) = fresh(small_segments());
    log.append(Instant::ZERO, vec![batch(7, 0)]).unwrap();
    drive(&mut log, &mut disk);
    fill(&mut log, &mut disk, 60);
    let before = log.active_store().0.base;
    log.append(Instant::ZERO, vec![batch(8, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let p8 = log.next_index().prev().0;
    fill(&mut log, &mut disk, 40);
    log.append(Instant::ZERO, vec![batch(9, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let p9 = log.next_index().prev().0;
    let active = log.active_store().0;
    assert!(before < LogIndex(p8) && active.base > LogIndex(p8));
    log.flush_index();
    drive(&mut log, &mut disk);
    disk.files.get_mut(&active).unwrap()[12] ^= 0x01;
    let crashed = crash(&mut disk, &small_segments());
    assert_eq!(crashed.producers(), log.producers());
    assert_decides(
        &crashed,
        &[
            ("before the segment before", stamp(7, 0), landed(0, 1)),
            ("in the segment before", stamp(8, 0), landed(0, p8)),
            ("in the active segment", stamp(9, 0), landed(0, p9)),
        ],
    );
}

// Goal: a truncation forgets the batches it removes, and a restart after
// it agrees.
#[test]
fn a_truncation_forgets_what_it_removes() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    for sequence in 0..3 {
        log.append(Instant::ZERO, vec![batch(7, sequence)]).unwrap();
        drive(&mut log, &mut disk);
    }
    log.truncate_suffix(LogIndex(1)).unwrap();
    drive(&mut log, &mut disk);
    log.append(Instant::ZERO, vec![batch(9, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let cases = [
        ("kept", stamp(7, 0), landed(0, 1)),
        ("truncated away", stamp(7, 1), Decision::Append),
        (
            "truncated away, later",
            stamp(7, 2),
            Decision::OutOfOrder { expected: 1 },
        ),
        ("appended since", stamp(9, 0), landed(0, 2)),
    ];
    assert_decides(&log, &cases);
    let restarted = restart(&mut log, &mut disk, &LogConfig::default());
    assert_decides(&restarted, &cases);
}
