//! A log on real files: the core's [`Log`] driven by the [`FileDriver`].
//!
//! Owns the loop that turns the log's disk effects into file operations and
//! feeds their completions back, and the startup sequence: map the files,
//! run the pure recovery over the maps, drop the maps, perform the repairs.
//! It must never decide anything the core decides: what is durable, what is
//! damaged and what to repair all come from the core.

use std::fmt;
use std::path::Path;

use cairn_core::config::LogConfig;
use cairn_core::ids::{LogIndex, ReadId};
use cairn_core::log::disk::DiskError;
use cairn_core::log::entry::NewEntry;
use cairn_core::log::machine::{Appended, Input, Log, Output, ReadBatch, ReadError, ReadFrom};
use cairn_core::log::recovery::{self, Note};
use cairn_core::log::scan::Damage;
use cairn_core::time::Instant;

use crate::disk::FileDriver;

/// Why a log on files could not be opened or used.
#[non_exhaustive]
#[derive(Debug)]
pub enum FileLogError {
    /// The directory could not be opened, listed or mapped.
    Io(std::io::Error),
    /// The core refused: bad configuration, bad request, inconsistent
    /// files, or a disk failure that stopped the log.
    Log(cairn_core::Error),
    /// A read failed.
    Read(ReadError),
}

impl fmt::Display for FileLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileLogError::Io(error) => write!(f, "log directory: {error}"),
            FileLogError::Log(error) => error.fmt(f),
            FileLogError::Read(ReadError::Disk(error)) => write!(f, "read failed: {error}"),
            FileLogError::Read(ReadError::Gone) => f.write_str("read failed: the entries are gone"),
        }
    }
}

impl std::error::Error for FileLogError {}

impl From<std::io::Error> for FileLogError {
    fn from(error: std::io::Error) -> Self {
        FileLogError::Io(error)
    }
}

impl From<cairn_core::Error> for FileLogError {
    fn from(error: cairn_core::Error) -> Self {
        FileLogError::Log(error)
    }
}

/// A log in a directory, driven synchronously.
pub struct FileLog {
    log: Log,
    driver: FileDriver,
    next_read: ReadId,
    /// What recovery found at open.
    notes: Vec<Note>,
    /// Damage reported since open, in order.
    damaged: Vec<Damage>,
}

/// The runtime's clock for the log: wall time, so that retention by age
/// holds across restarts.
pub fn now() -> Instant {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Instant::from_nanos(since_epoch.as_nanos() as u64)
}

impl FileLog {
    /// Opens (or creates) the log in `dir`: recovers its state from the
    /// files, then performs the repairs recovery asked for.
    pub fn open(dir: &Path, config: LogConfig) -> Result<FileLog, FileLogError> {
        let driver = FileDriver::open(dir)?;
        let (recovered, notes) = {
            let image = driver.image()?;
            let recovered = recovery::recover(&image.files())?;
            let notes = recovered.notes.clone();
            (recovered, notes)
            // The maps are dropped here, before any repair touches a file.
        };
        for note in &notes {
            tracing::info!(?note, dir = %dir.display(), "log recovery");
        }
        let log = Log::new(config, recovered, now())?;
        let mut file_log = FileLog {
            log,
            driver,
            next_read: ReadId(1),
            notes,
            damaged: Vec::new(),
        };
        file_log.drive()?;
        Ok(file_log)
    }

    /// The core log, for getters.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// What recovery found when the log was opened.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Damage reported since the log was opened.
    pub fn damaged(&self) -> &[Damage] {
        &self.damaged
    }

    /// Appends entries and waits until they are durable.
    pub fn append(&mut self, entries: Vec<NewEntry>) -> Result<Appended, FileLogError> {
        let appended = self.log.append(now(), entries)?;
        self.drive()?;
        assert!(
            self.log.durable_index() >= appended.last,
            "a driven append is durable"
        );
        Ok(appended)
    }

    /// Reads from `from`, within one segment.
    pub fn read(
        &mut self,
        from: ReadFrom,
        max_entries: u32,
        max_bytes: u32,
    ) -> Result<ReadBatch, FileLogError> {
        let id = self.next_read;
        self.next_read = id.next();
        self.log.read(id, from, max_entries, max_bytes)?;
        let mut batch = None;
        self.drive_with(|output| {
            if let Output::Read { id: done, result } = output {
                assert_eq!(done, id, "one read at a time");
                batch = Some(result);
            }
        })?;
        batch
            .expect("a driven read completes")
            .map_err(FileLogError::Read)
    }

    /// Removes every entry after `after`.
    pub fn truncate_suffix(&mut self, after: LogIndex) -> Result<(), FileLogError> {
        if let Err(cairn_core::Error::IndexNotResident { .. }) = self.log.truncate_suffix(after) {
            self.drive()?;
            self.log.truncate_suffix(after)?;
        }
        self.drive()
    }

    /// Performs every queued disk operation, in order, until the log is
    /// quiet.
    pub fn drive(&mut self) -> Result<(), FileLogError> {
        self.drive_with(|_| {})
    }

    fn drive_with(&mut self, mut told: impl FnMut(Output)) -> Result<(), FileLogError> {
        while let Some(output) = self.log.poll_output() {
            match output {
                Output::Disk(request) => {
                    let result = self.driver.perform(&request.op);
                    self.log.handle(
                        now(),
                        Input::Disk {
                            io: request.io,
                            result,
                        },
                    );
                }
                Output::Damaged(damage) => {
                    tracing::warn!(?damage, "damaged entries found; they will not be served");
                    self.damaged.push(damage);
                }
                Output::Stopped(error) => return Err(stopped(error)),
                other => told(other),
            }
        }
        match self.log.stopped() {
            Some(error) => Err(stopped(error)),
            None => Ok(()),
        }
    }
}

fn stopped(error: DiskError) -> FileLogError {
    FileLogError::Log(cairn_core::Error::Stopped(error))
}

impl Drop for FileLog {
    /// A clean shutdown writes the active segment's remaining index slots,
    /// so that the next start reads no store tail. Best effort: after a
    /// failure the next start scans the tail instead.
    fn drop(&mut self) {
        self.log.flush_index();
        if let Err(error) = self.drive() {
            tracing::warn!(%error, "index not flushed at shutdown; the next start scans the tail");
        }
    }
}
