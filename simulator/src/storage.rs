//! One log over one simulated disk, driven step by step.
//!
//! Owns the drive loop of a log in the simulated world: which disk
//! operations have been performed and which still wait, crashes (waiting
//! operations vanish, unsynced ones survive as the disk decides) and
//! restarts through the pure recovery. It must never decide anything the
//! log decides, and never let a wall clock or an unseeded choice in.

use std::collections::VecDeque;

use cairn_core::config::LogConfig;
use cairn_core::ids::{LogIndex, Offset, ReadId, Term};
use cairn_core::log::disk::{DiskOp, DiskRequest};
use cairn_core::log::entry::{ConfigAt, NewEntry};
use cairn_core::log::machine::{Appended, Input, Log, Output, ReadBatch, ReadError, ReadFrom};
use cairn_core::log::producers::Producers;
use cairn_core::log::recovery::{self, Note};
use cairn_core::log::scan::Damage;
use cairn_core::time::Instant;
use cairn_core::Error;

use crate::disk::{CrashReport, SimDisk};

/// A log on a simulated disk.
pub struct SimLog {
    config: LogConfig,
    log: Log,
    disk: SimDisk,
    /// Requests polled from the log and not yet performed.
    queued: VecDeque<DiskRequest>,
    /// Outputs other than disk requests, in order, until taken.
    told: Vec<Output>,
    now: Instant,
    next_read: ReadId,
    /// What recovery found at the last start.
    notes: Vec<Note>,
}

impl SimLog {
    /// A log on `disk`, recovered from whatever it holds.
    pub fn start(config: LogConfig, disk: SimDisk, now: Instant) -> Result<SimLog, Error> {
        let recovered = recovery::recover(&disk.found_files())?;
        let notes = recovered.notes.clone();
        let log = Log::new(config.clone(), recovered, now)?;
        let mut sim = SimLog {
            config,
            log,
            disk,
            queued: VecDeque::new(),
            told: Vec::new(),
            now,
            next_read: ReadId(1),
            notes,
        };
        sim.poll();
        Ok(sim)
    }

    /// The log, for getters and invariants.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The disk, for inspection and fault injection.
    pub fn disk_mut(&mut self) -> &mut SimDisk {
        &mut self.disk
    }

    /// The disk, for inspection.
    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }

    /// What recovery found at the last start.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Moves the clock forward (never back).
    pub fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes backwards");
        self.now = now;
        if self
            .log
            .poll_timeout()
            .is_some_and(|deadline| deadline <= now)
        {
            self.log.handle_timeout(now);
            self.poll();
        }
    }

    /// Appends without waiting for anything to be performed.
    pub fn append(&mut self, entries: Vec<NewEntry>) -> Result<Appended, Error> {
        let appended = self.log.append(self.now, entries);
        self.poll();
        appended
    }

    /// Removes every entry after `after`, loading an index first if needed.
    pub fn truncate_suffix(&mut self, after: LogIndex) -> Result<(), Error> {
        let result = match self.log.truncate_suffix(after) {
            Err(Error::IndexNotResident { .. }) => {
                self.poll();
                self.run();
                self.log.truncate_suffix(after)
            }
            other => other,
        };
        self.poll();
        result
    }

    /// Starts the log over at `base` (a snapshot installed), without
    /// waiting for anything to be performed.
    pub fn reset(
        &mut self,
        base: LogIndex,
        base_offset: Offset,
        prev_term: Term,
        config: ConfigAt,
        producers: Producers,
    ) -> Result<(), Error> {
        let result = self
            .log
            .reset(base, base_offset, prev_term, config, producers);
        self.poll();
        result
    }

    /// Performs up to `budget` waiting operations, in order; returns how
    /// many were performed.
    pub fn step(&mut self, budget: usize) -> usize {
        let mut performed = 0;
        while performed < budget {
            let Some(request) = self.queued.pop_front() else {
                break;
            };
            let result = self.disk.perform(&request.op);
            self.log.handle(
                self.now,
                Input::Disk {
                    io: request.io,
                    result,
                },
            );
            self.poll();
            self.log.check_invariants();
            performed += 1;
        }
        performed
    }

    /// Performs operations until none waits.
    pub fn run(&mut self) {
        while self.step(usize::MAX) > 0 {}
    }

    /// Reads from `from`, performing what the read needs (and everything
    /// queued before it).
    pub fn read(
        &mut self,
        from: ReadFrom,
        max_entries: u32,
        max_bytes: u32,
    ) -> Result<Result<ReadBatch, ReadError>, Error> {
        let id = self.next_read;
        self.next_read = id.next();
        self.log.read(id, from, max_entries, max_bytes)?;
        self.poll();
        self.run();
        let position = self
            .told
            .iter()
            .position(|output| matches!(output, Output::Read { id: done, .. } if *done == id))
            .expect("a read completes once its operations are performed");
        match self.told.remove(position) {
            Output::Read { result, .. } => Ok(result),
            _ => unreachable!("matched above"),
        }
    }

    /// Outputs other than disk requests since the last call.
    pub fn take_told(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.told)
    }

    /// Damage the log has reported since the last start, in order.
    pub fn damaged(&self) -> Vec<Damage> {
        self.log.damaged().copied().collect()
    }

    /// Power loss: waiting operations vanish, the disk keeps what it keeps,
    /// and the log restarts from what recovery finds.
    pub fn crash(self) -> Result<(SimLog, CrashReport), Error> {
        let SimLog {
            config,
            mut disk,
            now,
            ..
        } = self;
        let report = disk.crash();
        Ok((SimLog::start(config, disk, now)?, report))
    }

    fn poll(&mut self) {
        while let Some(output) = self.log.poll_output() {
            match output {
                Output::Disk(request) => self.queued.push_back(request),
                other => self.told.push(other),
            }
        }
    }

    /// Operations waiting, for tests that look at what is about to happen.
    pub fn queued(&self) -> impl Iterator<Item = &DiskOp> {
        self.queued.iter().map(|request| &request.op)
    }
}
