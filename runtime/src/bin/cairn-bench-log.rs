//! Benchmark of the log on real files against the raw disk, in one run.
//!
//! Writes 1 KiB records through the log with 1, 16 and 256 records per sync
//! and the same bytes through plain `write_all` + `sync_data` in the same
//! batches, rounds of each interleaved so that both see the same disk; reads
//! the log back sequentially and the same bytes raw; times a clean restart of
//! a 512 MiB and of a 32 MiB log. The last line is the summary:
//! `append_ratio_min=<log/raw> read_ratio=<log/raw> restart_ratio=<512MiB/32MiB>`.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::config::LogConfig;
use cairn_core::ids::{LogIndex, Term};
use cairn_core::log::entry::NewEntry;
use cairn_core::log::machine::ReadFrom;
use cairn_runtime::log::FileLog;
use indicatif::{ProgressBar, ProgressStyle};

const RECORD_BYTES: usize = 1024;
const MIB: f64 = 1024.0 * 1024.0;
/// Interleaved rounds of each side per batch size.
const ROUNDS: usize = 3;

/// Runs every part, or only those named on the command line (`append`,
/// `read`, `restart`); the summary line needs all three.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    if let Some(part) = parts
        .iter()
        .find(|p| !["append", "read", "restart"].contains(&p.as_str()))
    {
        eprintln!("unknown part {part:?}: expected append, read or restart");
        std::process::exit(2);
    }
    let runs = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-log")
        .tempdir()?;
    let mut worst_append = None;
    if runs("append") {
        let mut worst = f64::MAX;
        for (batch, batches) in [(1usize, 400usize), (16, 200), (256, 100)] {
            worst = worst.min(bench_append(dir.path(), batch, batches)?);
        }
        worst_append = Some(worst);
    }
    let read_ratio = if runs("read") {
        Some(bench_read(dir.path())?)
    } else {
        None
    };
    let restart_ratio = if runs("restart") {
        Some(bench_restart(dir.path())?)
    } else {
        None
    };
    if let (Some(append), Some(read), Some(restart)) = (worst_append, read_ratio, restart_ratio) {
        println!("append_ratio_min={append:.3} read_ratio={read:.3} restart_ratio={restart:.3}");
    }
    Ok(())
}

fn progress(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {elapsed}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_owned());
    bar
}

fn record(seed: usize) -> Bytes {
    let byte = (seed % 251) as u8;
    Bytes::from(vec![byte; RECORD_BYTES])
}

/// `len` records, as a producer hands them over.
fn records_of(len: usize, seed: usize) -> Vec<Bytes> {
    (0..len).map(|i| record(seed + i)).collect()
}

/// One append: a batch entry of `len` records.
fn batch_of(len: usize, seed: usize) -> Vec<NewEntry> {
    vec![NewEntry::records(Term(1), records_of(len, seed))]
}

/// Throughput and latencies of one side of a setting.
#[derive(Default)]
struct Side {
    records: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Side {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    fn report(&mut self, name: &str) -> String {
        let rps = self.records_per_sec();
        let (p50, p99) = (self.percentile(0.50), self.percentile(0.99));
        format!(
            "{name} {rps:>9.0} rec/s {:>7.1} MiB/s p50 {:>7.3} ms p99 {:>7.3} ms",
            rps * RECORD_BYTES as f64 / MIB,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        )
    }
}

fn bench_append(
    dir: &Path,
    batch: usize,
    batches: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (mut log_side, mut raw_side) = (Side::default(), Side::default());
    let bar = progress(
        (2 * ROUNDS * batches) as u64,
        &format!("append, {batch} per sync"),
    );
    for round in 0..ROUNDS {
        let log_dir = dir.join(format!("append-{batch}-{round}"));
        let mut log = FileLog::open(&log_dir, LogConfig::default())?;
        let mut raw = File::create(dir.join(format!("raw-{batch}-{round}")))?;
        // Batch by batch, alternating which side goes first, so that both
        // see the same disk at the same moment. Both start from the same
        // records and end with them durable: the raw side gathers them into
        // one buffer and writes it, the log frames them.
        for n in 0..batches {
            let records = records_of(batch, n * batch);
            let mut to_log = Some(vec![NewEntry::records(Term(1), records.clone())]);
            for side in [n % 2, 1 - n % 2] {
                let started = Instant::now();
                if side == 0 {
                    log.append(to_log.take().expect("appended once"))?;
                } else {
                    let mut bytes = Vec::with_capacity(batch * RECORD_BYTES);
                    for record in &records {
                        bytes.extend_from_slice(record);
                    }
                    raw.write_all(&bytes)?;
                    raw.sync_data()?;
                }
                let elapsed = started.elapsed();
                let measured = if side == 0 {
                    &mut log_side
                } else {
                    &mut raw_side
                };
                measured.latencies.push(elapsed);
                measured.elapsed += elapsed;
                bar.inc(1);
            }
        }
        log_side.records += (batches * batch) as u64;
        raw_side.records += (batches * batch) as u64;
    }
    bar.finish_and_clear();
    // The ratio is of records/s over every batch. Batches alternate between
    // the sides, so the fsync outliers of a shared disk fall on both; the
    // ratio of median batches is printed beside it as a check.
    let ratio = log_side.records_per_sec() / raw_side.records_per_sec();
    let median_ratio =
        raw_side.percentile(0.5).as_secs_f64() / log_side.percentile(0.5).as_secs_f64();
    println!("append {batch:>3}/sync  log: {}", log_side.report(""));
    println!(
        "append {batch:>3}/sync  raw: {}   log/raw {ratio:.3} (median batch {median_ratio:.3})",
        raw_side.report("")
    );
    Ok(ratio)
}

/// Writes `records` records in batches of 256 as fast as the disk allows.
fn fill(dir: &Path, records: usize, label: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut log = FileLog::open(dir, LogConfig::default())?;
    let bar = progress(records as u64, label);
    let mut written = log.log().next_offset().0 as usize;
    while written < records {
        let len = 256.min(records - written);
        log.append(batch_of(len, written))?;
        written += len;
        bar.set_position(written as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn bench_read(dir: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    const RECORDS: usize = 128 * 1024;
    // Records per read, on both sides: 1 MiB reads, as a consumer catching up.
    const CHUNK: usize = 1024;
    let log_dir = dir.join("read");
    fill(&log_dir, RECORDS, "write 128 MiB to read back")?;
    let raw_path = dir.join("raw-read");
    let mut raw = File::create(&raw_path)?;
    for n in 0..RECORDS / CHUNK {
        let mut bytes = Vec::with_capacity(CHUNK * RECORD_BYTES);
        for i in 0..CHUNK {
            bytes.extend_from_slice(&record(n * CHUNK + i));
        }
        raw.write_all(&bytes)?;
    }
    raw.sync_data()?;
    let mut results = Vec::new();
    for cold in [true, false] {
        let (mut log_time, mut raw_time) = (Duration::MAX, Duration::MAX);
        let label = if cold {
            "read back from the device"
        } else {
            "read back from page cache"
        };
        let bar = progress((2 * ROUNDS) as u64, label);
        for _ in 0..ROUNDS {
            if cold {
                evict(&log_dir)?;
            }
            log_time = log_time.min(read_log(&log_dir, RECORDS, CHUNK)?);
            bar.inc(1);
            if cold {
                evict(&raw_path)?;
            }
            raw_time = raw_time.min(read_raw(&raw_path, RECORDS, CHUNK)?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let mib = (RECORDS * RECORD_BYTES) as f64 / MIB;
        let (log_rate, raw_rate) = (mib / log_time.as_secs_f64(), mib / raw_time.as_secs_f64());
        let ratio = log_rate / raw_rate;
        let place = if cold { "device" } else { "cache " };
        println!(
            "read {place}  log: {log_rate:>8.0} MiB/s {:>9.0} rec/s   raw: {raw_rate:>8.0} MiB/s   log/raw {ratio:.3}",
            log_rate * MIB / RECORD_BYTES as f64
        );
        results.push(ratio);
    }
    // The summary's read ratio is the device's: a consumer reading the log
    // back sequentially reads what is no longer cached. From the page cache,
    // the log's CRC check of every frame is the cost that shows (above).
    Ok(results[0])
}

/// Drops the cached pages of `path` (a file, or every file of a
/// directory), so the next read comes from the device.
fn evict(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?
    } else {
        vec![path.to_owned()]
    };
    for file in files {
        let handle = File::open(&file)?;
        handle.sync_all()?;
        use std::os::fd::AsRawFd;
        // SAFETY-free: posix_fadvise only advises the kernel about a
        // descriptor we own; it reads no memory of ours.
        #[allow(unsafe_code, reason = "posix_fadvise has no safe wrapper in std")]
        let result =
            unsafe { libc::posix_fadvise(handle.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if result != 0 {
            return Err(format!("posix_fadvise failed on {}: {result}", file.display()).into());
        }
    }
    Ok(())
}

fn read_log(
    dir: &Path,
    records: usize,
    chunk: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut log = FileLog::open(dir, LogConfig::default())?;
    let started = Instant::now();
    let mut next = LogIndex(1);
    let mut seen = 0usize;
    while seen < records {
        let batch = log.read(
            ReadFrom::Index(next),
            chunk as u32,
            (chunk * (RECORD_BYTES + 64)) as u32,
        )?;
        assert!(batch.damaged.is_none(), "a clean log reads back undamaged");
        seen += batch
            .entries
            .iter()
            .map(|e| e.records as usize)
            .sum::<usize>();
        next = batch
            .entries
            .last()
            .expect("a read returns at least one entry")
            .index
            .next();
    }
    Ok(started.elapsed())
}

fn read_raw(
    path: &Path,
    records: usize,
    chunk: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut file = OpenOptions::new().read(true).open(path)?;
    file.seek(SeekFrom::Start(0))?;
    let started = Instant::now();
    let mut buffer = vec![0u8; chunk * RECORD_BYTES];
    let mut checksum = 0u64;
    for _ in 0..records / chunk {
        file.read_exact(&mut buffer)?;
        checksum = checksum.wrapping_add(u64::from(buffer[0]));
    }
    std::hint::black_box(checksum);
    Ok(started.elapsed())
}

fn bench_restart(dir: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    let (large, small) = (dir.join("restart-512"), dir.join("restart-32"));
    fill(&large, 512 * 1024, "write a 512 MiB log")?;
    fill(&small, 32 * 1024, "write a 32 MiB log")?;
    const OPENS: usize = 15;
    let bar = progress((2 * OPENS) as u64, "clean restarts");
    let (mut large_times, mut small_times) = (Vec::new(), Vec::new());
    for _ in 0..OPENS {
        large_times.push(time_open(&large)?);
        bar.inc(1);
        small_times.push(time_open(&small)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (large_median, small_median) = (median(&mut large_times), median(&mut small_times));
    let ratio = large_median.as_secs_f64() / small_median.as_secs_f64();
    println!(
        "restart 512 MiB {:>8.3} ms, 32 MiB {:>8.3} ms (median of {OPENS})   512/32 {ratio:.3}",
        large_median.as_secs_f64() * 1e3,
        small_median.as_secs_f64() * 1e3
    );
    Ok(ratio)
}

fn time_open(dir: &Path) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let log = FileLog::open(dir, LogConfig::default())?;
    let elapsed = started.elapsed();
    assert!(
        log.notes().is_empty(),
        "a clean restart repairs nothing: {:?}",
        log.notes()
    );
    Ok(elapsed)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
