//! Tests of the producer table the log keeps in its segment headers: it
//! outlives retention and snapshots across restarts, and a restarted log
//! learns only the entries its last header's table lags.

use bytes::Bytes;

use super::{drive, fresh, small_segments};
use crate::config::LogConfig;
use crate::ids::{LogIndex, Offset, ReadId, Term};
use crate::log::entry::{ConfigAt, NewEntry, SegmentHeader, Stamp};
use crate::log::machine::{Log, Output, ReadFrom};
use crate::log::producers::{Decision, Landed, Learning, Producers};
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

/// Restarts the log from the disk as it is.
fn restart(log: &mut Log, disk: &mut MapDisk, config: &LogConfig) -> Log {
    log.flush_index();
    drive(log, disk);
    let mut restarted = Log::new(config.clone(), disk.recover(), Instant::ZERO).unwrap();
    drive(&mut restarted, disk);
    restarted
}

/// The owner's warm-up: reads back what the table lags, until it does not.
/// Returns the first index read.
fn warm_up(log: &mut Log, disk: &mut MapDisk) -> Option<LogIndex> {
    let first = log.producers_learning().map(|l| l.from);
    while let Some(learning) = log.producers_learning() {
        log.read(ReadId(77), ReadFrom::Index(learning.from), 3, 1 << 20)
            .unwrap();
        for output in drive(log, disk) {
            if let Output::Read { result, .. } = output {
                log.learn_producers(learning, &result.unwrap());
            }
        }
    }
    first
}

// Goal: retention removes the segments holding a producer's batches, yet
// the table still knows them, from the active segment's header, and a
// restart recovers them from there, replaying only the active segment's
// entries (the bug of seed 60005616: a restart forgot the producer, and
// its retry was stored twice).
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
    let (header, table) = active_header(&log, &disk);
    let base = log.active_store().0.base;
    assert_eq!(header.producers_index, base, "as of the segment's base");
    assert_eq!(
        table.decide(stamp(7, 3)),
        landed(3, 4),
        "the header carries 7"
    );
    assert_eq!(table.decide(stamp(8, 0)), Decision::Append, "8 came after");

    let mut restarted = restart(&mut log, &mut disk, &config);
    assert_eq!(restarted.decide(stamp(7, 3)), None, "not yet learned");
    assert_eq!(
        warm_up(&mut restarted, &mut disk),
        Some(base),
        "only the active segment is read back"
    );
    let cases = [
        ("7's last batch, retained away", stamp(7, 3), landed(3, 4)),
        ("7's first batch", stamp(7, 0), landed(0, 1)),
        ("7's next batch", stamp(7, 4), Decision::Append),
        ("8, learned from the entries", stamp(8, 0), landed(0, p8)),
        ("an unknown producer", stamp(9, 0), Decision::Append),
    ];
    for (label, stamp, expected) in cases {
        assert_eq!(restarted.decide(stamp), Some(expected), "{label}");
    }
}

// Goal: a snapshot's table is the reset log's, written in its first
// segment's header, so a restart after the install keeps it.
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
    assert_eq!(log.producers(), Some(&snapshot));
    assert_eq!(active_header(&log, &disk).1, snapshot);
    let mut restarted = restart(&mut log, &mut disk, &small_segments());
    assert_eq!(warm_up(&mut restarted, &mut disk), None, "nothing to learn");
    restarted.append(Instant::ZERO, vec![batch(7, 6)]).unwrap();
    drive(&mut restarted, &mut disk);
    let mut again = restart(&mut restarted, &mut disk, &small_segments());
    assert_eq!(warm_up(&mut again, &mut disk), Some(LogIndex(100)));
    let cases = [
        ("the snapshot's last batch", stamp(7, 5), landed(5, 99)),
        ("an earlier one", stamp(7, 4), landed(4, 90)),
        ("appended after the install", stamp(7, 6), landed(6, 100)),
        ("gone with the old log", stamp(3, 0), Decision::Append),
    ];
    for (label, stamp, expected) in cases {
        assert_eq!(again.decide(stamp), Some(expected), "{label}");
    }
}

// Goal: a restarted log that rolls over before its warm-up is done writes
// the table as of where the warm-up stands, and retention keeps every
// segment from there, so a second restart still learns everything; once
// the warm-up is done, headers are as of their base and retention resumes.
#[test]
fn a_roll_during_the_warm_up_keeps_the_table_learnable() {
    let config = LogConfig {
        retention_bytes: Some(2 * 4096),
        ..small_segments()
    };
    let (mut log, mut disk) = fresh(config.clone());
    log.append(Instant::ZERO, vec![batch(7, 0)]).unwrap();
    drive(&mut log, &mut disk);
    fill(&mut log, &mut disk, 60);
    log.append(Instant::ZERO, vec![batch(8, 0)]).unwrap();
    drive(&mut log, &mut disk);
    let p8 = log.next_index().prev().0;
    let mut restarted = restart(&mut log, &mut disk, &config);
    let lagging = restarted
        .producers_learning()
        .expect("a table to learn")
        .from;
    assert!(lagging < LogIndex(p8));
    fill(&mut restarted, &mut disk, 200);
    let (header, table) = active_header(&restarted, &disk);
    assert_eq!(header.producers_index, lagging, "as of the warm-up");
    assert_eq!(
        table.decide(stamp(8, 0)),
        Decision::Append,
        "not learned yet"
    );
    assert!(restarted.first_index() <= lagging, "retention waits");
    assert!(restarted.store_bytes() > 2 * 4096);

    let mut again = restart(&mut restarted, &mut disk, &config);
    assert_eq!(warm_up(&mut again, &mut disk), Some(lagging));
    assert_eq!(again.decide(stamp(8, 0)), Some(landed(0, p8)));
    assert_eq!(again.decide(stamp(7, 0)), Some(landed(0, 1)));
    fill(&mut again, &mut disk, 100);
    assert!(again.first_index() > lagging, "retention resumes");
    let (header, table) = active_header(&again, &disk);
    assert_eq!(header.producers_index, again.active_store().0.base);
    assert_eq!(table.decide(stamp(8, 0)), landed(0, p8));
}

/// Reads `max` entries from where the warm-up stands; returns the read's
/// outputs (not yet taken in) and what it was asked under.
fn read_for_warm_up(log: &mut Log, disk: &mut MapDisk, max: u32) -> (Vec<Output>, Learning) {
    let learning = log.producers_learning().expect("a table to learn");
    log.read(ReadId(5), ReadFrom::Index(learning.from), max, 1 << 20)
        .unwrap();
    (drive(log, disk), learning)
}

fn take_in(log: &mut Log, (outputs, learning): (Vec<Output>, Learning)) {
    for output in outputs {
        if let Output::Read { result, .. } = output {
            log.learn_producers(learning, &result.unwrap());
        }
    }
}

// Goal: a truncation before where the warm-up stands sets the table back
// and moves its epoch, so a read made before it teaches nothing, even
// once appends have brought the table to the index it read; the batches
// the truncation removed are forgotten.
#[test]
fn a_truncation_sets_the_warm_up_back() {
    let (mut log, mut disk) = fresh(LogConfig::default());
    for sequence in 0..3 {
        log.append(Instant::ZERO, vec![batch(7, sequence)]).unwrap();
        drive(&mut log, &mut disk);
    }
    let mut restarted = restart(&mut log, &mut disk, &LogConfig::default());
    let first = read_for_warm_up(&mut restarted, &mut disk, 2);
    take_in(&mut restarted, first);
    let stale = read_for_warm_up(&mut restarted, &mut disk, 10);
    assert_eq!(
        stale.1,
        Learning {
            from: LogIndex(3),
            epoch: 0
        }
    );
    restarted.truncate_suffix(LogIndex(1)).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(restarted.producers_learning(), None, "1 was learned");
    restarted.append(Instant::ZERO, vec![batch(9, 0)]).unwrap();
    drive(&mut restarted, &mut disk);
    assert_eq!(
        restarted.next_index(),
        LogIndex(3),
        "where the stale read began"
    );
    take_in(&mut restarted, stale);
    let cases = [
        ("kept", stamp(7, 0), landed(0, 1)),
        ("truncated away", stamp(7, 1), Decision::Append),
        (
            "truncated away, read before",
            stamp(7, 2),
            Decision::OutOfOrder { expected: 1 },
        ),
        ("appended since", stamp(9, 0), landed(0, 2)),
    ];
    for (label, stamp, expected) in cases {
        assert_eq!(restarted.decide(stamp), Some(expected), "{label}");
    }
}
