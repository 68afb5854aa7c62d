//! The simulated disk: the log's disk operations, performed in memory, with
//! power loss, torn writes and media faults chosen from a seed.
//!
//! Owns what a disk keeps and what it loses. It knows, for every file, its
//! current content and the ordered changes since the last sync, each with
//! what it replaced (so the durable content is rebuilt, not kept twice);
//! for the directory, the names made durable by the last directory sync. On a
//! crash each unsynced change is independently kept, lost, or torn (only a
//! prefix of a write that ends on a sector boundary survives), as the seed
//! decides. It must never consult anything but its seed: the same seed and
//! the same operations give the same disk, bit for bit. A read returns the
//! bytes as they stand; it may share them with a recent write or a frozen
//! file rather than copy them, never with anything a later change altered.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use cairn_core::log::disk::{DiskError, DiskOp, DiskOutcome, FileId, FileKind, FoundFile};
use cairn_core::rng::{Rng, Stream};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

/// How unsynced changes fare in a crash.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskFaults {
    /// Chance that an unsynced change survives whole.
    pub crash_keep_ratio: f64,
    /// Chance that an unsynced write survives torn (a sector-aligned prefix).
    pub crash_tear_ratio: f64,
    /// The unit a write tears at.
    pub sector_bytes: u64,
}

impl Default for DiskFaults {
    fn default() -> DiskFaults {
        DiskFaults {
            crash_keep_ratio: 0.4,
            crash_tear_ratio: 0.3,
            sector_bytes: 512,
        }
    }
}

/// What a crash did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced changes that survived whole.
    pub kept: u32,
    /// Unsynced writes that survived torn.
    pub torn: u32,
    /// Unsynced changes that vanished.
    pub lost: u32,
    /// Files created since the last directory sync that vanished.
    pub names_lost: u32,
    /// Files deleted since the last directory sync that came back.
    pub names_revived: u32,
}

/// Counters of what the disk was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Writes performed.
    pub writes: u64,
    /// File syncs performed.
    pub syncs: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Reads performed.
    pub reads: u64,
}

/// A change made to a file since its last sync, with what it replaced:
/// the file's length before it and the bytes it overwrote or cut, so that
/// the content as of the last sync can be rebuilt by undoing the changes
/// in reverse.
#[derive(Clone, Debug)]
enum Change {
    Write {
        position: u64,
        bytes: Bytes,
        old_len: usize,
        old: Vec<u8>,
    },
    Truncate {
        len: u64,
        old_len: usize,
        old: Vec<u8>,
    },
}

impl Change {
    /// Whether the change only added bytes at or past `len`.
    fn appends_past(&self, len: usize) -> bool {
        matches!(self, Change::Write { position, .. } if *position >= len as u64)
    }

    /// Undoes the change on the content it produced.
    fn undo(&self, content: &mut Vec<u8>) {
        match self {
            Change::Write {
                position,
                old_len,
                old,
                ..
            } => {
                if !old.is_empty() {
                    let start = *position as usize;
                    content[start..start + old.len()].copy_from_slice(old);
                }
                content.truncate(*old_len);
            }
            Change::Truncate { len, old_len, old } => {
                content.resize(*old_len, 0);
                if !old.is_empty() {
                    let start = *len as usize;
                    content[start..start + old.len()].copy_from_slice(old);
                }
            }
        }
    }

    /// The bytes this change remembers from before it, and where they sat.
    fn old_mut(&mut self) -> (u64, &mut Vec<u8>) {
        match self {
            Change::Write { position, old, .. } => (*position, old),
            Change::Truncate { len, old, .. } => (*len, old),
        }
    }
}

/// A file's current bytes: open to writes, or frozen so that reads share
/// them rather than copy them (a run's last check reads every log whole).
/// A write to a frozen file opens it again, without a copy unless bytes a
/// read returned are still held.
#[derive(Clone, Debug)]
enum Content {
    Open(Vec<u8>),
    Frozen(Bytes),
}

impl Default for Content {
    fn default() -> Content {
        Content::Open(Vec::new())
    }
}

impl std::ops::Deref for Content {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Content::Open(bytes) => bytes,
            Content::Frozen(bytes) => bytes,
        }
    }
}

impl Content {
    /// The bytes, to change.
    fn open(&mut self) -> &mut Vec<u8> {
        if let Content::Frozen(bytes) = self {
            *self = Content::Open(Vec::from(std::mem::take(bytes)));
        }
        match self {
            Content::Open(bytes) => bytes,
            Content::Frozen(_) => unreachable!("just opened"),
        }
    }

    fn freeze(&mut self) {
        if let Content::Open(bytes) = self {
            *self = Content::Frozen(Bytes::from(std::mem::take(bytes)));
        }
    }

    /// The bytes from `start` to `stop`: shared if frozen, else a copy.
    fn read(&self, start: usize, stop: usize) -> Bytes {
        match self {
            Content::Open(bytes) => Bytes::copy_from_slice(&bytes[start..stop]),
            Content::Frozen(bytes) => bytes.slice(start..stop),
        }
    }
}

/// One file (an inode). Only its current content is held: the durable
/// content is the current one with the changes since the last sync undone,
/// so a sync costs nothing and an append is copied once (appends, the
/// common case, need no undo bytes at all).
#[derive(Clone, Debug, Default)]
struct Inode {
    current: Content,
    /// The length at the last sync.
    synced_len: usize,
    unsynced: Vec<Change>,
    /// Bytes of room it is given when created or rebuilt.
    room: usize,
    /// Whether a change since the last sync did more than append past
    /// the synced length (see `only_appended`), kept as changes come.
    rewritten: bool,
    /// Bumped whenever its durable content changes (a sync, a bit flipped).
    durable_changes: u64,
    /// The last writes, where their bytes still stand in `current` as
    /// written: a read within one of them shares its bytes instead of
    /// copying them (a consumer following the log, or a follower catching
    /// up, reads what was appended last).
    recent: VecDeque<(usize, Bytes)>,
}

/// Writes an inode remembers for reads to share.
const RECENT_WRITES: usize = 32;

impl Inode {
    /// Whether the durable content is a prefix of the current one.
    fn only_appended(&self) -> bool {
        self.unsynced
            .iter()
            .all(|c| c.appends_past(self.synced_len))
    }

    /// The content as of the last sync.
    fn durable(&self) -> Cow<'_, [u8]> {
        if self.only_appended() {
            return Cow::Borrowed(&self.current[..self.synced_len]);
        }
        let mut content = self.current.to_vec();
        for change in self.unsynced.iter().rev() {
            change.undo(&mut content);
        }
        debug_assert_eq!(content.len(), self.synced_len);
        Cow::Owned(content)
    }

    fn write(&mut self, position: u64, bytes: &Bytes) {
        self.rewritten |= (position as usize) < self.synced_len;
        let old_len = self.current.len();
        let start = (position as usize).min(old_len);
        let stop = (position as usize + bytes.len()).min(old_len);
        let old = self.current[start..stop].to_vec();
        apply_write(self.current.open(), position, bytes);
        let (start, stop) = (position as usize, position as usize + bytes.len());
        if start < old_len {
            // Remembered writes lie within the old length: an append
            // changes none of them.
            self.forget(start, stop);
        }
        if self.recent.len() == RECENT_WRITES {
            self.recent.pop_front();
        }
        self.recent.push_back((start, bytes.clone()));
        self.unsynced.push(Change::Write {
            position,
            bytes: bytes.clone(),
            old_len,
            old,
        });
    }

    fn truncate(&mut self, len: u64) {
        self.rewritten = true;
        let old_len = self.current.len();
        let old = self
            .current
            .get(len as usize..)
            .unwrap_or_default()
            .to_vec();
        self.current.open().resize(len as usize, 0);
        self.forget(len as usize, usize::MAX);
        self.unsynced.push(Change::Truncate { len, old_len, old });
    }

    /// Forgets the remembered writes that bytes from `start` to `stop`
    /// changed.
    fn forget(&mut self, start: usize, stop: usize) {
        self.recent
            .retain(|(at, bytes)| at + bytes.len() <= start || stop <= *at);
    }

    /// The bytes from `start` to `stop`: shared with a remembered write
    /// that holds them, or with a frozen file, else copied.
    fn read(&self, start: usize, stop: usize) -> Bytes {
        let within = |(at, bytes): &&(usize, Bytes)| *at <= start && stop <= at + bytes.len();
        if let Some((at, bytes)) = self.recent.iter().rev().find(within) {
            let shared = bytes.slice(start - at..stop - at);
            debug_assert_eq!(&shared[..], &self.current[start..stop]);
            return shared;
        }
        self.current.read(start, stop)
    }

    fn sync(&mut self) {
        self.durable_changes += 1;
        self.rewritten = false;
        self.unsynced.clear();
        self.synced_len = self.current.len();
    }
}

/// A directory entry's key: a log file by its id (no name is formatted on
/// the hot path), or any other name a test planted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Log(FileId),
    Other(String),
}

impl Key {
    fn of(name: &str) -> Key {
        FileId::parse(name).map_or_else(|| Key::Other(name.to_owned()), Key::Log)
    }
}

/// Every durably named file with only its durable content, as
/// [`SimDisk::durable_files`] lists them.
pub struct DurableFiles<'a> {
    files: Vec<(&'a str, Cow<'a, [u8]>)>,
}

impl DurableFiles<'_> {
    /// The files as recovery takes them, sorted by name.
    pub fn found(&self) -> Vec<FoundFile<'_>> {
        self.files
            .iter()
            .map(|(name, bytes)| FoundFile { name, bytes })
            .collect()
    }
}

/// A disk in memory.
pub struct SimDisk {
    faults: DiskFaults,
    rng: ChaCha8Rng,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Names as they are now.
    names: BTreeMap<Key, u64>,
    /// Names as of the last directory sync.
    durable_names: BTreeMap<Key, u64>,
    /// Every name ever used, as text, for listings.
    labels: BTreeMap<Key, String>,
    no_space: bool,
    fail_next_sync: bool,
    read_faults: Vec<(FileId, u64, u64)>,
    stats: DiskStats,
    /// Bumped by every change to what a crash would leave.
    durable_version: u64,
    /// Inodes whose unsynced changes did more than append.
    rewritten: usize,
    /// Whether a name was created or deleted since the last directory
    /// sync (the names may then differ from the durable ones).
    names_changed: bool,
    /// Bytes a store file is given room for when it is created or rebuilt
    /// (address space only: pages are touched as they are written), so
    /// that appends never copy a growing file.
    store_capacity: usize,
}

impl SimDisk {
    /// An empty disk whose crash choices follow `seed`.
    pub fn new(seed: u64, faults: DiskFaults) -> SimDisk {
        assert!((0.0..=1.0).contains(&faults.crash_keep_ratio));
        assert!((0.0..=1.0).contains(&faults.crash_tear_ratio));
        assert!(faults.crash_keep_ratio + faults.crash_tear_ratio <= 1.0);
        assert!(faults.sector_bytes > 0);
        SimDisk {
            faults,
            rng: Rng::new(seed).stream(Stream::Disk),
            inodes: BTreeMap::new(),
            next_inode: 1,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            labels: BTreeMap::new(),
            no_space: false,
            fail_next_sync: false,
            read_faults: Vec::new(),
            stats: DiskStats::default(),
            durable_version: 0,
            rewritten: 0,
            names_changed: false,
            store_capacity: 0,
        }
    }

    /// Gives every store file room for `bytes` up front (a segment's size):
    /// appends then never move a file's bytes to grow it.
    pub fn reserve_stores(&mut self, bytes: u64) {
        self.store_capacity = usize::try_from(bytes).unwrap_or(usize::MAX);
    }

    fn capacity_for(&self, key: &Key) -> usize {
        match key {
            Key::Log(file) if file.kind == FileKind::Store => self.store_capacity,
            _ => 0,
        }
    }

    /// Performs one operation, at once.
    pub fn perform(&mut self, op: &DiskOp) -> Result<DiskOutcome, DiskError> {
        match op {
            DiskOp::Create { file } => self.create(Key::Log(*file)),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => self.write(*file, *position, bytes),
            DiskOp::Sync { file } => self.sync(*file),
            DiskOp::Truncate { file, len } => {
                let inode = self.inode_mut(&Key::Log(*file))?;
                let was = inode.rewritten;
                inode.truncate(*len);
                self.rewritten += usize::from(!was);
                Ok(DiskOutcome::Done)
            }
            DiskOp::Delete { file } => {
                self.names
                    .remove(&Key::Log(*file))
                    .ok_or(DiskError::NotFound)?;
                self.names_changed = true;
                Ok(DiskOutcome::Done)
            }
            DiskOp::SyncDir => {
                self.durable_version += 1;
                self.durable_names = self.names.clone();
                self.names_changed = false;
                Ok(DiskOutcome::Done)
            }
            DiskOp::Read {
                file,
                position,
                len,
            } => self.read(*file, *position, *len),
        }
    }

    fn create(&mut self, key: Key) -> Result<DiskOutcome, DiskError> {
        if self.no_space {
            return Err(DiskError::NoSpace);
        }
        // A new inode: the old one, if any, lives on only under a durable
        // name that a crash could bring back.
        let inode = self.next_inode;
        self.next_inode += 1;
        let room = self.capacity_for(&key);
        let file = Inode {
            current: Content::Open(Vec::with_capacity(room)),
            room,
            ..Inode::default()
        };
        self.inodes.insert(inode, file);
        self.label(&key);
        self.names.insert(key, inode);
        self.names_changed = true;
        Ok(DiskOutcome::Done)
    }

    fn label(&mut self, key: &Key) {
        if !self.labels.contains_key(key) {
            let text = match key {
                Key::Log(file) => file.to_string(),
                Key::Other(name) => name.clone(),
            };
            self.labels.insert(key.clone(), text);
        }
    }

    fn write(
        &mut self,
        file: FileId,
        position: u64,
        bytes: &Bytes,
    ) -> Result<DiskOutcome, DiskError> {
        if self.no_space {
            return Err(DiskError::NoSpace);
        }
        let inode = self.inode_mut(&Key::Log(file))?;
        let was = inode.rewritten;
        inode.write(position, bytes);
        self.rewritten += usize::from(inode.rewritten && !was);
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(DiskOutcome::Done)
    }

    fn sync(&mut self, file: FileId) -> Result<DiskOutcome, DiskError> {
        let fail = std::mem::take(&mut self.fail_next_sync);
        let inode = self.inode_mut(&Key::Log(file))?;
        if fail {
            return Err(DiskError::Io);
        }
        let was = inode.rewritten;
        inode.sync();
        self.rewritten -= usize::from(was);
        self.stats.syncs += 1;
        self.durable_version += 1;
        Ok(DiskOutcome::Done)
    }

    fn read(&mut self, file: FileId, position: u64, len: u64) -> Result<DiskOutcome, DiskError> {
        let end = position.saturating_add(len);
        let faulty = self
            .read_faults
            .iter()
            .any(|(f, start, stop)| *f == file && position < *stop && *start < end);
        let inode = self.inode(&Key::Log(file))?;
        if faulty {
            return Err(DiskError::Io);
        }
        let start = (position as usize).min(inode.current.len());
        let stop = (end as usize).min(inode.current.len());
        let bytes = inode.read(start, stop);
        self.stats.reads += 1;
        Ok(DiskOutcome::Read(bytes))
    }

    fn inode(&self, key: &Key) -> Result<&Inode, DiskError> {
        let inode = self.names.get(key).ok_or(DiskError::NotFound)?;
        Ok(&self.inodes[inode])
    }

    fn inode_mut(&mut self, key: &Key) -> Result<&mut Inode, DiskError> {
        let inode = self.names.get(key).ok_or(DiskError::NotFound)?;
        Ok(self.inodes.get_mut(inode).expect("named inodes exist"))
    }

    /// Power loss. The directory becomes what was last synced; each file
    /// its durable content plus the unsynced changes that survive.
    pub fn crash(&mut self) -> CrashReport {
        let differ = |a: &BTreeMap<Key, u64>, b: &BTreeMap<Key, u64>| {
            a.iter()
                .filter(|(name, inode)| b.get(*name) != Some(inode))
                .count() as u32
        };
        let mut report = CrashReport {
            names_lost: differ(&self.names, &self.durable_names),
            names_revived: differ(&self.durable_names, &self.names),
            ..CrashReport::default()
        };
        self.durable_version += 1;
        self.names = self.durable_names.clone();
        let live: Vec<u64> = self.names.values().copied().collect();
        self.inodes.retain(|inode, _| live.contains(inode));
        // A file without unsynced changes is already as the crash leaves it.
        for inode in self.inodes.values_mut().filter(|i| !i.unsynced.is_empty()) {
            let mut content = {
                let durable = inode.durable();
                let mut content = Vec::with_capacity(durable.len().max(inode.room));
                content.extend_from_slice(&durable);
                content
            };
            for change in std::mem::take(&mut inode.unsynced) {
                survive(
                    &mut self.rng,
                    &self.faults,
                    &mut content,
                    change,
                    &mut report,
                );
            }
            inode.current = Content::Open(content);
            inode.recent.clear();
            inode.sync();
        }
        self.rewritten = 0;
        self.names_changed = false;
        self.no_space = false;
        self.fail_next_sync = false;
        report
    }

    /// Freezes every file: reads share its bytes until the next write.
    pub fn freeze(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.current.freeze();
        }
    }

    /// Flips one bit of a file, in its current and its durable content
    /// alike: media corruption that no sync undoes.
    pub fn flip_bit(&mut self, file: FileId, position: u64, bit: u8) {
        self.durable_version += 1;
        let inode = self
            .inode_mut(&Key::Log(file))
            .expect("flip a bit of an existing file");
        let mask = 1u8 << (bit % 8);
        inode.durable_changes += 1;
        inode.current.open()[position as usize] ^= mask;
        inode.forget(position as usize, position as usize + 1);
        // The durable byte is the oldest one a change remembers, else the
        // current one: flipping every remembered copy flips it too.
        for change in inode.unsynced.iter_mut() {
            let (start, old) = change.old_mut();
            if let Some(byte) = position
                .checked_sub(start)
                .and_then(|at| old.get_mut(at as usize))
            {
                *byte ^= mask;
            }
        }
    }

    /// While on, writes and creations fail with "no space" and change nothing.
    pub fn set_no_space(&mut self, on: bool) {
        self.no_space = on;
    }

    /// Reads overlapping `[start, end)` of `file` fail (a latent sector
    /// error) until cleared.
    pub fn fail_reads(&mut self, file: FileId, start: u64, end: u64) {
        self.read_faults.push((file, start, end));
    }

    /// Clears every read fault.
    pub fn clear_read_faults(&mut self) {
        self.read_faults.clear();
    }

    /// The next sync fails with an I/O error and makes nothing durable.
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// File names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.keys().map(|k| self.labels[k].clone()).collect();
        names.sort();
        names
    }

    /// Whether a segment store of a later base than `file`'s exists.
    pub fn has_store_after(&self, file: FileId) -> bool {
        use std::ops::Bound;
        self.names
            .range((Bound::Excluded(Key::Log(file)), Bound::Unbounded))
            .any(|(key, _)| matches!(key, Key::Log(f) if f.kind == FileKind::Store && f.base > file.base))
    }

    /// A file's current content.
    pub fn contents(&self, name: &str) -> Option<&[u8]> {
        self.inode(&Key::of(name)).ok().map(|inode| &*inode.current)
    }

    /// A log file's current length.
    pub fn len(&self, file: FileId) -> Option<u64> {
        self.inode(&Key::Log(file))
            .ok()
            .map(|inode| inode.current.len() as u64)
    }

    /// Every file as recovery sees it, sorted by name.
    pub fn found_files(&self) -> Vec<FoundFile<'_>> {
        let mut found: Vec<FoundFile<'_>> = self
            .names
            .iter()
            .map(|(key, inode)| FoundFile {
                name: &self.labels[key],
                bytes: &self.inodes[inode].current,
            })
            .collect();
        found.sort_by_key(|f| f.name);
        found
    }

    /// Every durably named file with only its durable content: what a crash
    /// that lost every unsynced change would leave. Checkers read this to
    /// know what a node may announce.
    pub fn durable_files(&self) -> DurableFiles<'_> {
        let mut files: Vec<(&str, Cow<'_, [u8]>)> = self
            .durable_names
            .iter()
            .map(|(key, inode)| {
                let bytes = self
                    .inodes
                    .get(inode)
                    .map_or(Cow::Borrowed(&[][..]), Inode::durable);
                (self.labels[key].as_str(), bytes)
            })
            .collect();
        files.sort_by_key(|(name, _)| *name);
        DurableFiles { files }
    }

    /// One log file's durable content, if its name is durable.
    pub fn durable_file(&self, file: FileId) -> Option<Cow<'_, [u8]>> {
        let inode = self.durable_names.get(&Key::Log(file))?;
        Some(
            self.inodes
                .get(inode)
                .map_or(Cow::Borrowed(&[][..]), Inode::durable),
        )
    }

    /// Plants a file, durable at once, name included (for staging damage or
    /// a foreign file).
    pub fn put_file(&mut self, name: &str, bytes: &[u8]) {
        self.durable_version += 1;
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            inode,
            Inode {
                current: Content::Open(bytes.to_vec()),
                synced_len: bytes.len(),
                unsynced: Vec::new(),
                room: 0,
                recent: VecDeque::new(),
                rewritten: false,
                durable_changes: 0,
            },
        );
        let key = Key::of(name);
        self.label(&key);
        self.names.insert(key.clone(), inode);
        self.durable_names.insert(key, inode);
    }

    /// Removes a file durably.
    pub fn remove_file(&mut self, name: &str) {
        self.durable_version += 1;
        let key = Key::of(name);
        self.names.remove(&key);
        self.durable_names.remove(&key);
    }

    /// Cuts a file at rest durably (a file found truncated on disk).
    pub fn truncate_file(&mut self, name: &str, len: u64) {
        self.durable_version += 1;
        let inode = self
            .inode_mut(&Key::of(name))
            .expect("truncate an existing file");
        assert!(inode.unsynced.is_empty(), "cut only a file at rest");
        inode.current.open().truncate(len as usize);
        inode.forget(len as usize, usize::MAX);
        inode.sync();
    }

    /// Whether the first `end` bytes of `file` would survive a crash as they
    /// are now: its name is durable, its durable content is that long, and
    /// no change since its last sync touches them.
    pub fn durable_through(&self, file: FileId, end: u64) -> bool {
        let key = Key::Log(file);
        let Some(inode) = self.names.get(&key) else {
            return false;
        };
        if self.durable_names.get(&key) != Some(inode) {
            return false;
        }
        let inode = &self.inodes[inode];
        inode.synced_len as u64 >= end
            && inode.unsynced.iter().all(|change| match change {
                Change::Write { position, .. } => *position >= end,
                Change::Truncate { len, .. } => *len >= end,
            })
    }

    /// Whether what a crash would leave is a prefix of what is there now:
    /// the directory is as last synced, and every change since a file's
    /// last sync only appended to it (a crash could bring cut bytes back,
    /// or keep the old bytes under an overwrite, such as a repair's).
    /// Kept as changes come: no name created or deleted since the last
    /// directory sync (a name created and deleted again counts, so this
    /// may answer no where the names are the same: a slower check then
    /// recovers the durable files), and no inode rewritten.
    pub fn durable_is_prefix(&self) -> bool {
        debug_assert_eq!(
            self.rewritten == 0,
            self.inodes.values().all(Inode::only_appended),
            "the count of rewritten inodes is kept exactly"
        );
        debug_assert!(self.names_changed || self.names == self.durable_names);
        !self.names_changed && self.rewritten == 0
    }

    /// A key that changes whenever what a crash would leave of `file`
    /// changes: the inode its durable name holds, and that inode's count of
    /// durable changes (`None` while no durable name holds it).
    pub fn durable_file_key(&self, file: FileId) -> Option<(u64, u64)> {
        let inode = *self.durable_names.get(&Key::Log(file))?;
        let changes = self.inodes.get(&inode).map_or(0, |i| i.durable_changes);
        Some((inode, changes))
    }

    /// Whether the disk holds just what a crash would leave: no file has
    /// an unsynced change, and the names are as last synced.
    pub fn at_rest(&self) -> bool {
        self.names == self.durable_names && self.inodes.values().all(|i| i.unsynced.is_empty())
    }

    /// A number that changes whenever what a crash would leave changes (a
    /// sync, a directory sync, a crash, planted damage): equal versions
    /// mean equal durable contents.
    pub fn durable_version(&self) -> u64 {
        self.durable_version
    }

    /// The length of a file's durable content, if it exists, and only if it
    /// has no unsynced change.
    pub fn durable_len(&self, file: FileId) -> Option<u64> {
        let inode = self.inode(&Key::Log(file)).ok()?;
        inode.unsynced.is_empty().then_some(inode.synced_len as u64)
    }

    /// What the disk was asked to do.
    pub fn stats(&self) -> DiskStats {
        self.stats
    }
}

fn apply_write(content: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let start = position as usize;
    let end = start + bytes.len();
    if start >= content.len() {
        // An append (past a hole, if any): copied once, not zeroed first.
        content.resize(start, 0);
        content.extend_from_slice(bytes);
        return;
    }
    if content.len() < end {
        content.resize(end, 0);
    }
    content[start..end].copy_from_slice(bytes);
}

/// Replays one unsynced change onto `content` as the crash decides.
fn survive(
    rng: &mut ChaCha8Rng,
    faults: &DiskFaults,
    content: &mut Vec<u8>,
    change: Change,
    report: &mut CrashReport,
) {
    let roll: f64 = rng.random();
    if roll < faults.crash_keep_ratio {
        report.kept += 1;
        match change {
            Change::Write {
                position, bytes, ..
            } => apply_write(content, position, &bytes),
            Change::Truncate { len, .. } => content.resize(len as usize, 0),
        }
    } else if roll < faults.crash_keep_ratio + faults.crash_tear_ratio {
        match change {
            Change::Write {
                position, bytes, ..
            } => {
                report.torn += 1;
                let kept = torn_len(rng, faults.sector_bytes, position, bytes.len() as u64);
                apply_write(content, position, &bytes[..kept as usize]);
            }
            Change::Truncate { len, .. } => {
                report.kept += 1;
                content.resize(len as usize, 0);
            }
        }
    } else {
        report.lost += 1;
    }
}

/// How much of a write at `position` survives a tear: a prefix that ends on
/// a sector boundary and is strictly shorter than the write (maybe empty).
fn torn_len(rng: &mut ChaCha8Rng, sector: u64, position: u64, len: u64) -> u64 {
    let end = position + len;
    let first_boundary = position.div_ceil(sector) * sector;
    let boundaries: Vec<u64> = (0..)
        .map(|n| first_boundary + n * sector)
        .take_while(|&b| b < end)
        .filter(|&b| b > position)
        .collect();
    let choices = boundaries.len() as u64 + 1; // or nothing at all
    let pick = rng.random_range(0..choices);
    if pick == 0 {
        0
    } else {
        boundaries[pick as usize - 1] - position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ids::LogIndex;

    fn store() -> FileId {
        FileId::store(LogIndex(1))
    }

    fn write(disk: &mut SimDisk, position: u64, bytes: &[u8]) {
        let op = DiskOp::Write {
            file: store(),
            position,
            bytes: Bytes::copy_from_slice(bytes),
        };
        disk.perform(&op).unwrap();
    }

    fn created(seed: u64) -> SimDisk {
        let mut disk = SimDisk::new(seed, DiskFaults::default());
        disk.perform(&DiskOp::Create { file: store() }).unwrap();
        disk.perform(&DiskOp::SyncDir).unwrap();
        disk
    }

    fn read(disk: &mut SimDisk, position: u64, len: u64) -> Bytes {
        let op = DiskOp::Read {
            file: store(),
            position,
            len,
        };
        match disk.perform(&op).unwrap() {
            DiskOutcome::Read(bytes) => bytes,
            other => panic!("a read answered {other:?}"),
        }
    }

    // Goal: a read within a recent write shares its bytes, and never once
    // they changed: an overwrite, a cut, a flipped bit, a crash.
    #[test]
    fn reads_share_recent_writes_only_while_they_stand() {
        let mut disk = created(1);
        write(&mut disk, 0, &[1; 100]);
        write(&mut disk, 100, &[2; 100]);
        disk.perform(&DiskOp::Sync { file: store() }).unwrap();
        assert_eq!(read(&mut disk, 110, 50), Bytes::from(vec![2; 50]));
        write(&mut disk, 120, &[3; 10]);
        let expected: Vec<u8> = [[2; 10], [3; 10], [2; 10]].concat();
        assert_eq!(read(&mut disk, 110, 30), expected, "overwritten");
        disk.perform(&DiskOp::Truncate {
            file: store(),
            len: 50,
        })
        .unwrap();
        write(&mut disk, 50, &[4; 20]);
        let expected: Vec<u8> = [[1; 10], [4; 10]].concat();
        assert_eq!(read(&mut disk, 40, 20), expected, "cut and rewritten");
        disk.flip_bit(store(), 55, 0);
        assert_eq!(read(&mut disk, 55, 1), Bytes::from(vec![4 ^ 1]), "rotted");
        disk.perform(&DiskOp::Sync { file: store() }).unwrap();
        write(&mut disk, 70, &[5; 30]);
        disk.crash();
        let len = disk.contents(&store().to_string()).unwrap().len() as u64;
        let back = read(&mut disk, 0, len);
        assert_eq!(
            &back[..],
            disk.contents(&store().to_string()).unwrap(),
            "crashed"
        );
    }

    // Goal: synced bytes survive every crash, whatever the seed.
    #[test]
    fn synced_bytes_survive() {
        for seed in 0..200 {
            let mut disk = created(seed);
            write(&mut disk, 0, &[7; 1000]);
            disk.perform(&DiskOp::Sync { file: store() }).unwrap();
            write(&mut disk, 1000, &[8; 3000]);
            disk.crash();
            let content = disk.contents(&store().to_string()).unwrap();
            assert_eq!(&content[..1000], &[7; 1000][..], "seed {seed}");
        }
    }

    // Goal: an unsynced write is kept, lost or torn across seeds, and a torn
    // write keeps a sector-aligned prefix shorter than itself.
    #[test]
    fn unsynced_writes_keep_lose_or_tear() {
        let (mut kept, mut lost, mut torn) = (0, 0, 0);
        for seed in 0..300 {
            let mut disk = created(seed);
            write(&mut disk, 100, &[9; 2000]);
            let report = disk.crash();
            let len = disk.contents(&store().to_string()).unwrap().len() as u64;
            match (report.kept, report.lost, report.torn) {
                (1, 0, 0) => {
                    kept += 1;
                    assert_eq!(len, 2100);
                }
                (0, 1, 0) => {
                    lost += 1;
                    assert_eq!(len, 0);
                }
                (0, 0, 1) => {
                    torn += 1;
                    assert!(
                        len == 0 || (len.is_multiple_of(512) && len < 2100),
                        "torn to {len}"
                    );
                }
                other => panic!("unexpected report {other:?}"),
            }
        }
        assert!(kept > 0 && lost > 0 && torn > 0, "{kept} {lost} {torn}");
    }

    // Goal: a file's name is durable only after a directory sync; a
    // deletion likewise.
    #[test]
    fn names_follow_the_directory_sync() {
        let (mut vanished, mut revived) = (0, 0);
        for seed in 0..50 {
            let mut disk = SimDisk::new(seed, DiskFaults::default());
            disk.perform(&DiskOp::Create { file: store() }).unwrap();
            disk.perform(&DiskOp::Sync { file: store() }).unwrap();
            disk.crash();
            vanished += usize::from(disk.names().is_empty());
            let mut disk = created(seed);
            disk.perform(&DiskOp::Delete { file: store() }).unwrap();
            disk.crash();
            revived += disk.names().len();
        }
        assert_eq!((vanished, revived), (50, 50));
        let mut disk = created(1);
        disk.crash();
        assert_eq!(disk.names(), [store().to_string()]);
    }

    // Goal: the durable content is rebuilt exactly from the current one
    // under overwrites, cuts, growth and writes past the end, and a crash
    // that loses every unsynced change leaves exactly it.
    #[test]
    fn durable_content_is_rebuilt_under_every_change() {
        let faults = DiskFaults {
            crash_keep_ratio: 0.0,
            crash_tear_ratio: 0.0,
            ..DiskFaults::default()
        };
        let mut disk = SimDisk::new(1, faults);
        disk.perform(&DiskOp::Create { file: store() }).unwrap();
        disk.perform(&DiskOp::SyncDir).unwrap();
        let synced: Vec<u8> = (0..200u8).collect();
        write(&mut disk, 0, &synced);
        disk.perform(&DiskOp::Sync { file: store() }).unwrap();
        let durable = |disk: &SimDisk| disk.durable_file(store()).unwrap().into_owned();
        assert!(disk.durable_is_prefix());
        write(&mut disk, 200, &[1; 50]);
        assert!(disk.durable_is_prefix(), "an append keeps the prefix");
        assert!(disk.durable_through(store(), 200));
        write(&mut disk, 10, &[2; 20]);
        let cut = |disk: &mut SimDisk, len| {
            disk.perform(&DiskOp::Truncate { file: store(), len })
                .unwrap()
        };
        cut(&mut disk, 100);
        cut(&mut disk, 300);
        write(&mut disk, 400, &[3; 10]);
        disk.flip_bit(store(), 15, 0);
        assert!(!disk.durable_is_prefix());
        assert!(!disk.durable_through(store(), 20));
        assert!(disk.durable_through(store(), 10));
        let mut expected = synced.clone();
        expected[15] ^= 1;
        assert_eq!(durable(&disk), expected);
        let current = disk.contents(&store().to_string()).unwrap();
        assert_eq!(current.len(), 410);
        assert_eq!((current[15], current[150], current[405]), (2 ^ 1, 0, 3));
        disk.crash();
        assert_eq!(disk.contents(&store().to_string()).unwrap(), &expected[..]);
        assert_eq!(disk.durable_len(store()), Some(200));
    }

    // Goal: the same seed gives the same disk after the same operations.
    #[test]
    fn same_seed_same_outcome() {
        let run = |seed| {
            let mut disk = created(seed);
            for n in 0..20u64 {
                write(&mut disk, n * 700, &[n as u8; 700]);
            }
            disk.crash();
            disk.contents(&store().to_string()).unwrap().to_vec()
        };
        assert_eq!(run(5), run(5));
        assert!(
            (0..10)
                .map(run)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        );
    }

    // Goal: faults do exactly what they say, and nothing more.
    #[test]
    fn faults_table() {
        let mut disk = created(3);
        write(&mut disk, 0, &[0; 64]);
        disk.perform(&DiskOp::Sync { file: store() }).unwrap();
        disk.flip_bit(store(), 10, 2);
        disk.crash();
        let content = disk.contents(&store().to_string()).unwrap().to_vec();
        assert_eq!(content[10], 4, "the flip survives a crash");
        assert_eq!(
            content.iter().filter(|&&b| b != 0).count(),
            1,
            "exactly one bit"
        );

        disk.set_no_space(true);
        let op = DiskOp::Write {
            file: store(),
            position: 0,
            bytes: Bytes::from_static(b"x"),
        };
        assert_eq!(disk.perform(&op), Err(DiskError::NoSpace));
        assert_eq!(disk.contents(&store().to_string()).unwrap()[0], 0);
        disk.set_no_space(false);

        disk.fail_reads(store(), 32, 40);
        let read = |disk: &mut SimDisk, position, len| {
            disk.perform(&DiskOp::Read {
                file: store(),
                position,
                len,
            })
        };
        assert_eq!(read(&mut disk, 30, 4), Err(DiskError::Io));
        assert_eq!(
            read(&mut disk, 0, 32),
            Ok(DiskOutcome::Read(Bytes::from(content[..32].to_vec())))
        );
        disk.clear_read_faults();
        assert!(read(&mut disk, 30, 4).is_ok());
        assert_eq!(
            read(&mut disk, 60, 100),
            Ok(DiskOutcome::Read(Bytes::from(vec![0; 4]))),
            "short at EOF"
        );

        write(&mut disk, 200, b"late");
        disk.fail_next_sync();
        assert_eq!(
            disk.perform(&DiskOp::Sync { file: store() }),
            Err(DiskError::Io)
        );
        assert_eq!(disk.durable_len(store()), None, "nothing became durable");
        let content = disk.contents(&store().to_string()).unwrap();
        assert_eq!(
            (content.len(), &content[64..200]),
            (204, &[0u8; 136][..]),
            "a write past the end zero-fills"
        );
    }
}
