//! The simulated disk: the log's disk operations, performed in memory, with
//! power loss, torn writes and media faults chosen from a seed.
//!
//! Owns what a disk keeps and what it loses. It knows, for every file, the
//! content made durable by the last sync and the ordered changes since; for
//! the directory, the names made durable by the last directory sync. On a
//! crash each unsynced change is independently kept, lost, or torn (only a
//! prefix of a write that ends on a sector boundary survives), as the seed
//! decides. It must never consult anything but its seed: the same seed and
//! the same operations give the same disk, bit for bit.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_core::log::disk::{DiskError, DiskOp, DiskOutcome, FileId, FoundFile};
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

/// A change made to a file since its last sync.
#[derive(Clone, Debug)]
enum Change {
    Write { position: u64, bytes: Bytes },
    Truncate { len: u64 },
}

/// One file (an inode): its durable content and what changed since.
#[derive(Clone, Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Change>,
}

/// A disk in memory.
pub struct SimDisk {
    faults: DiskFaults,
    rng: ChaCha8Rng,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Names as they are now.
    names: BTreeMap<String, u64>,
    /// Names as of the last directory sync.
    durable_names: BTreeMap<String, u64>,
    no_space: bool,
    fail_next_sync: bool,
    read_faults: Vec<(String, u64, u64)>,
    stats: DiskStats,
    /// Bumped by every change to what a crash would leave.
    durable_version: u64,
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
            no_space: false,
            fail_next_sync: false,
            read_faults: Vec::new(),
            stats: DiskStats::default(),
            durable_version: 0,
        }
    }

    /// Performs one operation, at once.
    pub fn perform(&mut self, op: &DiskOp) -> Result<DiskOutcome, DiskError> {
        match op {
            DiskOp::Create { file } => self.create(&file.to_string()),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => self.write(&file.to_string(), *position, bytes),
            DiskOp::Sync { file } => self.sync(&file.to_string()),
            DiskOp::Truncate { file, len } => {
                let inode = self.inode_mut(&file.to_string())?;
                inode.current.resize(*len as usize, 0);
                inode.unsynced.push(Change::Truncate { len: *len });
                Ok(DiskOutcome::Done)
            }
            DiskOp::Delete { file } => {
                self.names
                    .remove(&file.to_string())
                    .ok_or(DiskError::NotFound)?;
                Ok(DiskOutcome::Done)
            }
            DiskOp::SyncDir => {
                self.durable_version += 1;
                self.durable_names = self.names.clone();
                Ok(DiskOutcome::Done)
            }
            DiskOp::Read {
                file,
                position,
                len,
            } => self.read(&file.to_string(), *position, *len),
        }
    }

    fn create(&mut self, name: &str) -> Result<DiskOutcome, DiskError> {
        if self.no_space {
            return Err(DiskError::NoSpace);
        }
        // A new inode: the old one, if any, lives on only under a durable
        // name that a crash could bring back.
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        self.names.insert(name.to_owned(), inode);
        Ok(DiskOutcome::Done)
    }

    fn write(
        &mut self,
        name: &str,
        position: u64,
        bytes: &Bytes,
    ) -> Result<DiskOutcome, DiskError> {
        if self.no_space {
            return Err(DiskError::NoSpace);
        }
        let inode = self.inode_mut(name)?;
        apply_write(&mut inode.current, position, bytes);
        inode.unsynced.push(Change::Write {
            position,
            bytes: bytes.clone(),
        });
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(DiskOutcome::Done)
    }

    fn sync(&mut self, name: &str) -> Result<DiskOutcome, DiskError> {
        let fail = std::mem::take(&mut self.fail_next_sync);
        let inode = self.inode_mut(name)?;
        if fail {
            return Err(DiskError::Io);
        }
        // The durable content plus the changes since is the current content:
        // applying them costs what they wrote, not what the file holds.
        for change in std::mem::take(&mut inode.unsynced) {
            match change {
                Change::Write { position, bytes } => {
                    apply_write(&mut inode.durable, position, &bytes)
                }
                Change::Truncate { len } => inode.durable.resize(len as usize, 0),
            }
        }
        debug_assert_eq!(
            inode.durable, inode.current,
            "a sync makes the file durable as it is"
        );
        self.stats.syncs += 1;
        self.durable_version += 1;
        Ok(DiskOutcome::Done)
    }

    fn read(&mut self, name: &str, position: u64, len: u64) -> Result<DiskOutcome, DiskError> {
        let end = position.saturating_add(len);
        let faulty = self
            .read_faults
            .iter()
            .any(|(file, start, stop)| file == name && position < *stop && *start < end);
        let current = &self.inode(name)?.current;
        if faulty {
            return Err(DiskError::Io);
        }
        let start = (position as usize).min(current.len());
        let stop = (end as usize).min(current.len());
        let bytes = Bytes::copy_from_slice(&current[start..stop]);
        self.stats.reads += 1;
        Ok(DiskOutcome::Read(bytes))
    }

    fn inode(&self, name: &str) -> Result<&Inode, DiskError> {
        let inode = self.names.get(name).ok_or(DiskError::NotFound)?;
        Ok(&self.inodes[inode])
    }

    fn inode_mut(&mut self, name: &str) -> Result<&mut Inode, DiskError> {
        let inode = self.names.get(name).ok_or(DiskError::NotFound)?;
        Ok(self.inodes.get_mut(inode).expect("named inodes exist"))
    }

    /// Power loss. The directory becomes what was last synced; each file
    /// its durable content plus the unsynced changes that survive.
    pub fn crash(&mut self) -> CrashReport {
        let differ = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
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
            let mut content = inode.durable.clone();
            for change in std::mem::take(&mut inode.unsynced) {
                survive(
                    &mut self.rng,
                    &self.faults,
                    &mut content,
                    change,
                    &mut report,
                );
            }
            inode.current = content.clone();
            inode.durable = content;
        }
        self.no_space = false;
        self.fail_next_sync = false;
        report
    }

    /// Flips one bit of a file, in its current and its durable content
    /// alike: media corruption that no sync undoes.
    pub fn flip_bit(&mut self, file: FileId, position: u64, bit: u8) {
        self.durable_version += 1;
        let inode = self
            .inode_mut(&file.to_string())
            .expect("flip a bit of an existing file");
        let mask = 1u8 << (bit % 8);
        inode.current[position as usize] ^= mask;
        if let Some(byte) = inode.durable.get_mut(position as usize) {
            *byte ^= mask;
        }
    }

    /// While on, writes and creations fail with "no space" and change nothing.
    pub fn set_no_space(&mut self, on: bool) {
        self.no_space = on;
    }

    /// Reads overlapping `[start, end)` of `file` fail (a latent sector
    /// error) until cleared.
    pub fn fail_reads(&mut self, file: FileId, start: u64, end: u64) {
        self.read_faults.push((file.to_string(), start, end));
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
        self.names.keys().cloned().collect()
    }

    /// The names after `name`, in order (segment files sort by base).
    pub fn names_after(&self, name: &str) -> Vec<&str> {
        use std::ops::Bound;
        self.names
            .range::<str, _>((Bound::Excluded(name), Bound::Unbounded))
            .map(|(n, _)| n.as_str())
            .filter(|n| n.ends_with(".store"))
            .collect()
    }

    /// A file's current content.
    pub fn contents(&self, name: &str) -> Option<&[u8]> {
        self.inode(name).ok().map(|inode| inode.current.as_slice())
    }

    /// Every file as recovery sees it, sorted by name.
    pub fn found_files(&self) -> Vec<FoundFile<'_>> {
        self.names
            .iter()
            .map(|(name, inode)| FoundFile {
                name,
                bytes: &self.inodes[inode].current,
            })
            .collect()
    }

    /// Every durably named file with only its durable content: what a crash
    /// that lost every unsynced change would leave. Checkers read this to
    /// know what a node may announce.
    pub fn durable_files(&self) -> Vec<FoundFile<'_>> {
        self.durable_names
            .iter()
            .map(|(name, inode)| FoundFile {
                name,
                bytes: self.inodes.get(inode).map_or(&[][..], |i| &i.durable[..]),
            })
            .collect()
    }

    /// One file's durable content, if its name is durable.
    pub fn durable_file(&self, name: &str) -> Option<&[u8]> {
        let inode = self.durable_names.get(name)?;
        Some(self.inodes.get(inode).map_or(&[][..], |i| &i.durable[..]))
    }

    /// Plants a file, durable at once, name included (for staging damage or
    /// a foreign file).
    pub fn put_file(&mut self, name: &str, bytes: &[u8]) {
        self.durable_version += 1;
        let inode = self.next_inode;
        self.next_inode += 1;
        let content = bytes.to_vec();
        self.inodes.insert(
            inode,
            Inode {
                current: content.clone(),
                durable: content,
                unsynced: Vec::new(),
            },
        );
        self.names.insert(name.to_owned(), inode);
        self.durable_names.insert(name.to_owned(), inode);
    }

    /// Removes a file durably.
    pub fn remove_file(&mut self, name: &str) {
        self.durable_version += 1;
        self.names.remove(name);
        self.durable_names.remove(name);
    }

    /// Cuts a file durably (a file found truncated on disk).
    pub fn truncate_file(&mut self, name: &str, len: u64) {
        self.durable_version += 1;
        let inode = self.inode_mut(name).expect("truncate an existing file");
        inode.current.truncate(len as usize);
        inode.durable.truncate(len as usize);
    }

    /// Whether the first `end` bytes of `file` would survive a crash as they
    /// are now: its name is durable, its durable content is that long, and
    /// no change since its last sync touches them.
    pub fn durable_through(&self, file: FileId, end: u64) -> bool {
        let name = file.to_string();
        let Some(inode) = self.names.get(&name) else {
            return false;
        };
        if self.durable_names.get(&name) != Some(inode) {
            return false;
        }
        let inode = &self.inodes[inode];
        inode.durable.len() as u64 >= end
            && inode.unsynced.iter().all(|change| match change {
                Change::Write { position, .. } => *position >= end,
                Change::Truncate { len } => *len >= end,
            })
    }

    /// Whether what a crash would leave is a prefix of what is there now:
    /// the directory is as last synced, and every change since a file's
    /// last sync only appended to it (a crash could bring cut bytes back,
    /// or keep the old bytes under an overwrite, such as a repair's).
    pub fn durable_is_prefix(&self) -> bool {
        self.names == self.durable_names
            && self.inodes.values().all(|inode| {
                inode.unsynced.iter().all(|change| {
                    matches!(change, Change::Write { position, .. } if *position >= inode.durable.len() as u64)
                })
            })
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
        let inode = self.inode(&file.to_string()).ok()?;
        inode
            .unsynced
            .is_empty()
            .then_some(inode.durable.len() as u64)
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
            Change::Write { position, bytes } => apply_write(content, position, &bytes),
            Change::Truncate { len } => content.resize(len as usize, 0),
        }
    } else if roll < faults.crash_keep_ratio + faults.crash_tear_ratio {
        match change {
            Change::Write { position, bytes } => {
                report.torn += 1;
                let kept = torn_len(rng, faults.sector_bytes, position, bytes.len() as u64);
                apply_write(content, position, &bytes[..kept as usize]);
            }
            Change::Truncate { len } => {
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
