//! The log on real files, through the same core: crashes simulated by
//! keeping what was synced and appending garbage or a torn frame, bit flips
//! in the middle of the log, and a random sequence checked against a model.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cairn::core::config::LogConfig;
use cairn::core::ids::{LogIndex, Offset, Term};
use cairn::core::log::entry::{encode_frame, EntryKind, EntryMeta, NewEntry, Payload};
use cairn::core::log::machine::ReadFrom;
use cairn::core::log::recovery::Note;
use cairn::runtime::log::FileLog;
use proptest::prelude::*;

fn record(n: u64, len: usize) -> NewEntry {
    let mut data = format!("record-{n:06}-").into_bytes();
    data.resize(len.max(data.len()), b'a' + (n % 26) as u8);
    NewEntry::records(Term(1), vec![Bytes::from(data)])
}

/// The frame of a one-record batch, as the log would write it.
fn frame_of(index: LogIndex, offset: Offset, len: usize) -> Vec<u8> {
    let meta = EntryMeta {
        index,
        term: Term(1),
        kind: EntryKind::Record,
        offset,
        records: 1,
        time: cairn::core::time::Instant::ZERO,
        producer: None,
    };
    let mut frame = Vec::new();
    encode_frame(
        &meta,
        Payload::Records(&[Bytes::from(vec![7u8; len])]),
        &mut frame,
    );
    frame
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// Every record served from the first offset, and the offsets reported
/// damaged.
fn read_everything(log: &mut FileLog) -> (BTreeMap<u64, Bytes>, Vec<u64>) {
    let (mut served, mut damaged) = (BTreeMap::new(), Vec::new());
    let next = log.log().next_index();
    if log.log().first_offset() == log.log().next_offset() {
        return (served, damaged);
    }
    let mut from = ReadFrom::Offset(log.log().first_offset());
    loop {
        let batch = log.read(from, 64, 1 << 20).unwrap();
        for entry in &batch.entries {
            served.extend(entry.records().map(|(offset, record)| (offset.0, record)));
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

fn last_store(dir: &Path) -> PathBuf {
    let mut stores: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "store"))
        .collect();
    stores.sort();
    stores.pop().unwrap()
}

fn append_to(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

// ST2 on real files: a torn frame at the tail (a prefix of a real frame, or
// garbage) is truncated away, and every synced record is still there.
#[test]
fn torn_tail_is_truncated_on_real_files() {
    let mut torn_frame = frame_of(LogIndex(21), Offset(20), 500);
    torn_frame.truncate(300);
    for tail in [
        torn_frame,
        vec![0u8; 4096],
        b"garbage that is no frame".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = FileLog::open(dir.path(), LogConfig::default()).unwrap();
        for n in 0..20 {
            log.append(vec![record(n, 100)]).unwrap();
        }
        drop(log);
        let store = last_store(dir.path());
        let synced_len = fs::metadata(&store).unwrap().len();
        append_to(&store, &tail);
        let mut log = FileLog::open(dir.path(), LogConfig::default()).unwrap();
        assert!(log
            .notes()
            .iter()
            .any(|n| matches!(n, Note::TornTail { bytes, .. } if *bytes == tail.len() as u64)));
        assert_eq!(
            fs::metadata(&store).unwrap().len(),
            synced_len,
            "the torn tail was cut"
        );
        let (served, damaged) = read_everything(&mut log);
        assert!(damaged.is_empty());
        assert_eq!(served.len(), 20);
        log.append(vec![record(20, 100)]).unwrap();
        assert_eq!(
            log.log().next_offset(),
            Offset(21),
            "appends continue densely"
        );
    }
}

// ST3 on real files: a bit flipped in an old record is reported as damage
// with its offset, nothing after it is truncated, and it is never served;
// in a sealed segment and in the active one alike.
#[test]
fn mid_log_bit_flip_is_reported_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLog::open(dir.path(), small()).unwrap();
    for n in 0..200 {
        log.append(vec![record(n, 300)]).unwrap();
    }
    assert!(log.log().segment_count() > 2);
    drop(log);
    let mut flipped = Vec::new();
    for target in [5u64, 197] {
        let needle = format!("record-{target:06}-");
        let path = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                fs::read(p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            })
            .unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
            + 40;
        bytes[at] ^= 0x04;
        fs::write(&path, &bytes).unwrap();
        flipped.push(target);
    }
    let mut log = FileLog::open(dir.path(), small()).unwrap();
    assert_eq!(
        log.log().next_offset(),
        Offset(200),
        "nothing was truncated"
    );
    let (served, damaged) = read_everything(&mut log);
    assert_eq!(damaged, flipped);
    assert_eq!(served.len(), 198);
    for (offset, data) in &served {
        assert!(
            data.starts_with(format!("record-{offset:06}-").as_bytes()),
            "record {offset} is its own"
        );
    }
    assert_eq!(log.damaged().len(), 2, "both were reported as damage");
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u16>),
    Truncate(u8),
    Crash { tail: Tail },
}

#[derive(Clone, Debug)]
enum Tail {
    Nothing,
    Garbage(Vec<u8>),
    TornFrame(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let tail = prop_oneof![
        Just(Tail::Nothing),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(Tail::Garbage),
        (1u16..900).prop_map(Tail::TornFrame),
    ];
    prop_oneof![
        6 => prop::collection::vec(0u16..1500, 1..8).prop_map(Op::Append),
        1 => (0u8..6).prop_map(Op::Truncate),
        2 => tail.prop_map(|tail| Op::Crash { tail }),
    ]
}

/// Runs a sequence on real files: every append is durable when it returns,
/// so after each simulated crash every record must be back, byte for byte.
fn run_on_files(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLog::open(dir.path(), small()).unwrap();
    let mut model: BTreeMap<u64, Bytes> = BTreeMap::new();
    let mut seq = 0u64;
    for op in ops {
        match op {
            Op::Append(sizes) => {
                // One batch of records, framed and synced together.
                let records: Vec<Bytes> = sizes
                    .iter()
                    .map(|&len| {
                        seq += 1;
                        record(seq, usize::from(len)).records[0].clone()
                    })
                    .collect();
                let appended = log
                    .append(vec![NewEntry::records(Term(1), records.clone())])
                    .unwrap();
                for (n, record) in records.into_iter().enumerate() {
                    model.insert(appended.first_offset.0 + n as u64, record);
                }
            }
            Op::Truncate(drop) => {
                let next = log.log().next_index().0;
                let after = next
                    .saturating_sub(u64::from(*drop) + 1)
                    .max(log.log().first_index().0 - 1);
                log.truncate_suffix(LogIndex(after)).unwrap();
                model.split_off(&log.log().next_offset().0);
            }
            Op::Crash { tail } => {
                let (next_index, next_offset) = (log.log().next_index(), log.log().next_offset());
                drop(log);
                let store = last_store(dir.path());
                match tail {
                    Tail::Nothing => {}
                    Tail::Garbage(bytes) => append_to(&store, bytes),
                    Tail::TornFrame(len) => {
                        // The frame the next append would write, cut short.
                        let frame = frame_of(next_index, next_offset, 1000);
                        append_to(&store, &frame[..usize::from(*len).min(frame.len() - 1)]);
                    }
                }
                log = FileLog::open(dir.path(), small()).unwrap();
                let (served, damaged) = read_everything(&mut log);
                assert!(
                    damaged.is_empty(),
                    "a torn tail is never damage: {damaged:?}"
                );
                assert_eq!(
                    served, model,
                    "every synced record is back, dense, with its bytes"
                );
            }
        }
        log.log().check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    // Goal: on real files, crashes with torn or garbage tails never lose a
    // synced record and never serve anything that was not written.
    #[test]
    fn real_files_survive_crash_sequences(ops in prop::collection::vec(op(), 1..40)) {
        run_on_files(&ops);
    }
}
