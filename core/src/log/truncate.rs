//! Removing entries: a suffix (Raft's conflicts), a prefix (snapshots),
//! whole old segments (retention), or everything (installing a snapshot).
//!
//! Owns the shrinking of the log. It must never let the first retained index
//! go backwards, never leave a hole, and never let a truncation be overtaken
//! on disk by the appends that follow it: a suffix truncation is synced
//! before anything is written after it.

use crate::error::Error;
use crate::ids::{LogIndex, Offset, Term};
use crate::log::disk::{DiskOp, FileId};
use crate::log::entry::ConfigAt;
use crate::log::index::SLOT_BYTES;
use crate::log::machine::{Log, Pending};
use crate::log::producers::Producers;
use crate::log::scan::Damage;
use crate::time::Instant;

impl Log {
    /// Removes every entry after `after`. `after` may be the entry before
    /// the first retained one, which empties the log.
    ///
    /// If the segment holding `after` is sealed and its index is not
    /// resident, nothing changes: its index starts loading, this returns
    /// [`Error::IndexNotResident`], and the owner retries once
    /// `Output::IndexLoaded` names that segment.
    pub fn truncate_suffix(&mut self, after: LogIndex) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        let (first, next) = (self.live_front().base, self.next_index());
        if after.next() < first || after >= next {
            return Err(Error::TruncateOutOfRange {
                index: after,
                first,
                next,
            });
        }
        let keep = self
            .segments
            .partition_point(|s| s.base <= after.next())
            .max(1);
        let target = &self.segments[keep - 1];
        if target.resident.is_none() {
            let base = target.base;
            self.start_loading(base);
            return Err(Error::IndexNotResident { base });
        }
        self.generation += 1;
        let deleting = self.segments.len() > keep;
        while self.segments.len() > keep {
            let segment = self.segments.pop_back().expect("more than `keep`");
            self.delete_files(segment.base);
        }
        if deleting {
            self.submit(DiskOp::SyncDir, Pending::Change);
        }
        self.cut_active(after);
        self.producers_truncated(after);
        self.durable = self.durable.min(after);
        self.repairing.retain(|&index, _| index <= after);
        let doomed: Vec<LogIndex> = self
            .damaged
            .range(after.next()..)
            .map(|(first, _)| *first)
            .collect();
        for first in doomed {
            self.damaged.remove(&first);
        }
        let next_offset = self.next_offset();
        if let Some((_, damage)) = self.damaged.range_mut(..=after).next_back() {
            damage.end = damage.end.min(after.next());
            damage.end_offset = damage.end_offset.min(next_offset);
        }
        let active = self.active().base;
        self.recently_used.retain(|&base| base != active);
        Ok(())
    }

    /// Cuts the (now last) segment after `after`, durably.
    fn cut_active(&mut self, after: LogIndex) {
        let active = self.active_mut();
        let keep = after.next().0 - active.base.0;
        if keep == active.entries {
            return;
        }
        // Cut where the first removed entry starts; padding before it stays
        // with the entry before (reads and scans skip it), unless nothing
        // stays, when the store goes back to its header.
        let cut = match keep {
            0 => u64::from(active.header_len),
            _ => active.frame_range(after.next()).expect("resident").0,
        };
        let term = if keep == 0 {
            active.prev_term
        } else {
            active.slot(after).expect("resident").term
        };
        let next_offset = active.offset(after.next()).expect("resident");
        active.entries = keep;
        active.store_len = cut;
        active.last_term = term;
        active.next_offset = next_offset;
        active
            .resident
            .as_mut()
            .expect("resident")
            .truncate(keep as usize);
        let base = active.base;
        self.index_written = self.index_written.min(keep);
        let (store, index) = (FileId::store(base), FileId::index(base));
        self.submit(
            DiskOp::Truncate {
                file: store,
                len: cut,
            },
            Pending::Change,
        );
        self.submit(
            DiskOp::Truncate {
                file: index,
                len: keep * SLOT_BYTES as u64,
            },
            Pending::Change,
        );
        self.submit(DiskOp::Sync { file: index }, Pending::Change);
        self.submit(DiskOp::Sync { file: store }, Pending::Change);
    }

    /// Removes whole segments whose entries all come before `before`. The
    /// active segment is never removed, so the first retained index may stay
    /// below `before`: prefix truncation is segment-granular, and the first
    /// retained index is always a segment's base, durable by the files
    /// themselves.
    pub fn truncate_prefix(&mut self, before: LogIndex) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        while self.segment_count() > 1 && self.live_front().next_index() <= before {
            self.retire_front();
        }
        Ok(())
    }

    /// Removes everything and starts an empty log at `base`, whose first
    /// record will take `base_offset` and whose previous entry had
    /// `prev_term`, with `config` in effect before it and `producers` the
    /// producer table as of it (installing a snapshot). The new segment's
    /// header carries both, so a restart keeps them.
    pub fn reset(
        &mut self,
        base: LogIndex,
        base_offset: Offset,
        prev_term: Term,
        config: ConfigAt,
        producers: Producers,
    ) -> Result<(), Error> {
        if let Some(error) = self.stopped {
            return Err(Error::Stopped(error));
        }
        if base < self.first_index_on_disk() || base_offset < self.first_offset_on_disk() {
            return Err(Error::TruncateOutOfRange {
                index: base,
                first: self.first_index(),
                next: self.next_index(),
            });
        }
        self.generation += 1;
        // The old log goes only once the new segment is durable: it may
        // hold entries this node acknowledged, which a leader counted
        // towards a commit, and a crash must leave them or the snapshot
        // that covers them, never neither. The new segment's header says
        // the log starts over there: recovery drops whatever old segment
        // a crash left before it. Old segments from the new base on hold
        // only entries at or after a conflict with the snapshot (this log
        // holds its last index with another term), committed nowhere
        // (Log Matching): they go first, since the new segment takes the
        // first one's name.
        let mut superseded = Vec::new();
        let mut cleared = false;
        while let Some(segment) = self.segments.pop_back() {
            if segment.retiring {
                continue; // Its deletion is under way.
            }
            if segment.base >= base {
                self.delete_files(segment.base);
                cleared = true;
            } else {
                superseded.push(segment.base);
            }
        }
        if cleared {
            self.submit(DiskOp::SyncDir, Pending::Change);
        }
        self.retiring = 0;
        self.damaged.clear();
        self.recently_used.clear();
        self.producers_reset(base, producers);
        self.create_segment(base, base_offset, prev_term, config, true);
        for old in superseded {
            self.delete_files(old);
        }
        // Until the deletions are durable too, a restart may read the
        // old segments (and drop them): nothing is durable before this
        // sync.
        self.durable = LogIndex(0);
        self.repairing.clear();
        let generation = self.generation;
        self.submit(
            DiskOp::SyncDir,
            Pending::SyncStore {
                through: base.prev(),
                group: false,
                generation,
            },
        );
        Ok(())
    }

    /// Deletes sealed segments beyond the retention limits.
    pub(super) fn apply_retention(&mut self, now: Instant) {
        if self.stopped.is_some() {
            return;
        }
        if let Some(limit) = self.config.retention_bytes {
            while self.may_retire_front() && self.store_bytes() > limit {
                self.retire_front();
            }
        }
        if let Some(age) = self.config.retention_age {
            while self.may_retire_front() && self.live_front().last_time + age <= now {
                self.retire_front();
            }
        }
    }

    /// Lets retention remove entries up to and including `floor` only
    /// (Raft's commit index: an uncommitted entry must stay).
    pub fn set_retention_floor(&mut self, floor: LogIndex) {
        assert!(
            self.retention_floor.is_none_or(|old| old <= floor),
            "the retention floor never falls"
        );
        self.retention_floor = Some(floor);
    }

    /// Whether retention may remove the oldest live segment: it is not the
    /// active one, and it ends at or before the retention floor.
    pub(super) fn may_retire_front(&self) -> bool {
        let end = self.live_front().next_index();
        self.segment_count() > 1 && self.retention_floor.is_none_or(|floor| end <= floor.next())
    }

    /// Starts deleting the oldest live segment. The store goes first, and
    /// the segment leaves the log only when the directory sync after its
    /// deletion completes: so a crash leaves at most a dangling index, never
    /// a hole, and the first retained index never goes backwards.
    fn retire_front(&mut self) {
        let position = self.retiring;
        assert!(
            position + 1 < self.segments.len(),
            "the active segment is never retired"
        );
        let segment = &mut self.segments[position];
        segment.retiring = true;
        segment.resident = None;
        let base = segment.base;
        self.retiring += 1;
        self.generation += 1;
        self.delete_files(base);
        self.submit(DiskOp::SyncDir, Pending::Retired { base });
        self.recently_used.retain(|&b| b != base);
    }

    /// The deletion of `base` is durable: it leaves the log.
    pub(super) fn on_retired(&mut self, base: LogIndex) {
        if self.retiring == 0 || self.front().base != base {
            return; // A reset removed it already.
        }
        self.segments.pop_front();
        self.retiring -= 1;
        let (first, first_offset) = (self.first_index_on_disk(), self.first_offset_on_disk());
        let doomed: Vec<LogIndex> = self
            .damaged
            .range(..first)
            .map(|(start, _)| *start)
            .collect();
        for start in doomed {
            let damage = self.damaged.remove(&start).expect("listed");
            if damage.end > first {
                let kept = Damage {
                    first,
                    first_offset: damage.first_offset.max(first_offset),
                    ..damage
                };
                self.damaged.insert(first, kept);
            }
        }
    }

    fn delete_files(&mut self, base: LogIndex) {
        self.submit(
            DiskOp::Delete {
                file: FileId::store(base),
            },
            Pending::Change,
        );
        self.submit(
            DiskOp::Delete {
                file: FileId::index(base),
            },
            Pending::Change,
        );
    }
}
