//! The file driver: performs the core's disk operations on real files.
//!
//! Owns the mapping from the log's operations to the file system: positional
//! writes and reads on store files, `sync_data`, a directory fsync, and the
//! index files memory-mapped (pre-grown, so that appending an index slot is
//! a memory copy). It must never decide anything: it performs what it is
//! told, in order, and reports failures as typed errors. After a failed sync
//! the state of the written data is unknown, so it never retries one; the
//! core stops.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use cairn_core::limits::INDEX_BYTES_MAX;
use cairn_core::log::disk::{DiskError, DiskOp, DiskOutcome, FileId, FileKind, FoundFile};
use memmap2::{Mmap, MmapMut};

/// The first size an index file is grown to; it doubles from there.
const INDEX_GROW_MIN: u64 = 64 * 1024;

/// An open index: its file, its map, and how much of it holds slots.
struct MappedIndex {
    file: File,
    map: Option<MmapMut>,
    /// Bytes written (the logical length); the file may be longer, zeros.
    len: u64,
    /// The file's length on disk.
    file_len: u64,
    /// The file grew since its last sync, so its length must be synced too.
    grown: bool,
}

/// Performs disk operations in one directory.
pub struct FileDriver {
    /// Where reads that miss the read-ahead land.
    read_buffers: BufferPool,
    dir: PathBuf,
    dir_handle: File,
    stores: BTreeMap<FileId, File>,
    indexes: BTreeMap<FileId, MappedIndex>,
}

impl FileDriver {
    /// Opens `dir`, creating it (durably) if it does not exist.
    pub fn open(dir: &Path) -> io::Result<FileDriver> {
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        let dir_handle = File::open(dir)?;
        Ok(FileDriver {
            read_buffers: BufferPool::default(),
            dir: dir.to_owned(),
            dir_handle,
            stores: BTreeMap::new(),
            indexes: BTreeMap::new(),
        })
    }

    /// Maps every file of the directory read-only, for recovery.
    pub fn image(&self) -> io::Result<DiskImage> {
        DiskImage::load(&self.dir)
    }

    /// Performs one operation.
    pub fn perform(&mut self, op: &DiskOp) -> Result<DiskOutcome, DiskError> {
        let result = match op {
            DiskOp::SyncDir => self.dir_handle.sync_all().map(|()| DiskOutcome::Done),
            DiskOp::Create { file } => self.create(*file),
            DiskOp::Delete { file } => self.delete(*file),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => match file.kind {
                FileKind::Store | FileKind::State => self
                    .store(*file)
                    .and_then(|f| f.write_all_at(bytes, *position))
                    .map(done),
                FileKind::Index => self
                    .index(*file)
                    .and_then(|i| i.write(*position, bytes))
                    .map(done),
            },
            DiskOp::Sync { file } => match file.kind {
                FileKind::Store | FileKind::State => {
                    self.store(*file).and_then(|f| f.sync_data()).map(done)
                }
                FileKind::Index => self.index(*file).and_then(MappedIndex::sync).map(done),
            },
            DiskOp::Truncate { file, len } => match file.kind {
                FileKind::Store | FileKind::State => {
                    self.store(*file).and_then(|f| f.set_len(*len)).map(done)
                }
                FileKind::Index => self.index(*file).and_then(|i| i.truncate(*len)).map(done),
            },
            DiskOp::Read {
                file,
                position,
                len,
            } => match file.kind {
                FileKind::Store | FileKind::State => self.read_store(*file, *position, *len),
                FileKind::Index => self.index(*file).map(|i| i.read(*position, *len)),
            }
            .map(DiskOutcome::Read),
        };
        result.map_err(|error| {
            tracing::warn!(op = ?op_name(op), dir = %self.dir.display(), %error, "disk operation failed");
            classify(&error)
        })
    }

    fn path(&self, file: FileId) -> PathBuf {
        self.dir.join(file.to_string())
    }

    fn create(&mut self, file: FileId) -> io::Result<DiskOutcome> {
        self.stores.remove(&file);
        self.indexes.remove(&file);
        let handle = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(file))?;
        match file.kind {
            FileKind::Store | FileKind::State => {
                self.stores.insert(file, handle);
            }
            FileKind::Index => {
                let index = MappedIndex {
                    file: handle,
                    map: None,
                    len: 0,
                    file_len: 0,
                    grown: false,
                };
                self.indexes.insert(file, index);
            }
        }
        Ok(DiskOutcome::Done)
    }

    fn delete(&mut self, file: FileId) -> io::Result<DiskOutcome> {
        self.stores.remove(&file);
        self.indexes.remove(&file);
        fs::remove_file(self.path(file))?;
        Ok(DiskOutcome::Done)
    }

    fn store(&mut self, file: FileId) -> io::Result<&mut File> {
        if !self.stores.contains_key(&file) {
            let handle = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(file))?;
            self.stores.insert(file, handle);
        }
        Ok(self.stores.get_mut(&file).expect("inserted above"))
    }

    fn index(&mut self, file: FileId) -> io::Result<&mut MappedIndex> {
        if !self.indexes.contains_key(&file) {
            let handle = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(file))?;
            let file_len = handle.metadata()?.len();
            // An existing index's logical length is unknown to the driver;
            // the core tells it by what it writes and truncates. Until then,
            // treat the whole file as content.
            let index = MappedIndex {
                file: handle,
                map: None,
                len: file_len,
                file_len,
                grown: false,
            };
            self.indexes.insert(file, index);
        }
        Ok(self.indexes.get_mut(&file).expect("inserted above"))
    }
}

fn done(_: ()) -> DiskOutcome {
    DiskOutcome::Done
}

impl FileDriver {
    /// Reads a range of a store. (A read-ahead thread overlapping the copy
    /// of the next range with the core's verification of this one was
    /// measured: it lost to plain positional reads, whose sequential pattern
    /// the kernel's own read-ahead already serves, on cached and on cold
    /// data alike.)
    fn read_store(&mut self, file: FileId, position: u64, len: u64) -> io::Result<Bytes> {
        self.store(file)?;
        read_range(&self.stores[&file], position, len, &mut self.read_buffers)
    }
}

/// Reads `len` bytes from `position`, fewer at the end of the file.
///
/// The bytes land in a buffer of `pool` and leave as a frozen slice of it.
fn read_range(file: &File, position: u64, len: u64, pool: &mut BufferPool) -> io::Result<Bytes> {
    let buffer = pool.take(len as usize);
    buffer.resize(len as usize, 0);
    let filled = read_at(file, position, buffer)?;
    buffer.truncate(filled);
    Ok(buffer.split().freeze())
}

/// A few read buffers used in turn. A buffer's memory comes back once every
/// slice handed out of it has been dropped; while a reader still holds the
/// last read, the next one lands in another buffer, so a stream of reads
/// reuses warm memory instead of faulting in fresh pages for every read.
#[derive(Default)]
struct BufferPool {
    buffers: Vec<BytesMut>,
}

/// Buffers a pool keeps; a reader holding more reads than this at once
/// makes the pool allocate.
const READ_BUFFERS_MAX: usize = 4;

impl BufferPool {
    fn take(&mut self, len: usize) -> &mut BytesMut {
        let reusable = self.buffers.iter_mut().position(|buffer| {
            buffer.clear();
            buffer.try_reclaim(len)
        });
        let position = match reusable {
            Some(position) => position,
            None => {
                if self.buffers.len() >= READ_BUFFERS_MAX {
                    self.buffers.remove(0);
                }
                self.buffers.push(BytesMut::with_capacity(len));
                self.buffers.len() - 1
            }
        };
        &mut self.buffers[position]
    }
}

/// Reads into `buffer` from `position` until it is full or the file ends;
/// returns how many bytes were read.
fn read_at(file: &File, position: u64, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0usize;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl MappedIndex {
    fn write(&mut self, position: u64, bytes: &[u8]) -> io::Result<()> {
        let end = position + bytes.len() as u64;
        if end > self.file_len || self.map.is_none() {
            self.grow(end)?;
        }
        let map = self.map.as_mut().expect("mapped by grow");
        map[position as usize..end as usize].copy_from_slice(bytes);
        self.len = self.len.max(end);
        Ok(())
    }

    /// Makes the file at least `needed` bytes long (doubling, from
    /// `INDEX_GROW_MIN`, up to `INDEX_BYTES_MAX`) and maps it.
    fn grow(&mut self, needed: u64) -> io::Result<()> {
        if needed > INDEX_BYTES_MAX {
            return Err(io::Error::other(format!(
                "index of {needed} bytes exceeds INDEX_BYTES_MAX"
            )));
        }
        if needed > self.file_len {
            let mut size = self.file_len.max(INDEX_GROW_MIN);
            while size < needed {
                size *= 2;
            }
            let size = size.min(INDEX_BYTES_MAX);
            // Unmapping keeps the written pages dirty in the page cache; no
            // flush is needed (an msync here cost a synchronous writeback of
            // the whole index on every growth).
            self.map = None;
            self.file.set_len(size)?;
            self.file_len = size;
            self.grown = true;
        }
        if self.map.is_none() {
            self.map = Some(map_mut(&self.file)?);
        }
        Ok(())
    }

    fn flush_map(&self) -> io::Result<()> {
        match &self.map {
            Some(map) => map.flush(),
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush_map()?;
        if std::mem::take(&mut self.grown) {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Cuts the file to exactly `len` bytes, so that a sealed segment's
    /// index has its exact length on disk; a later write grows it again.
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.map = None;
        self.file.set_len(len)?;
        self.file_len = len;
        self.len = len;
        self.grown = true;
        Ok(())
    }

    fn read(&self, position: u64, len: u64) -> Bytes {
        let end = position.saturating_add(len).min(self.len);
        let start = position.min(end);
        match &self.map {
            Some(map) => Bytes::copy_from_slice(&map[start as usize..end as usize]),
            None => {
                let mut buffer = vec![0u8; (end - start) as usize];
                let filled = self.file.read_at(&mut buffer, start).unwrap_or(0);
                buffer.truncate(filled);
                Bytes::from(buffer)
            }
        }
    }
}

#[allow(
    unsafe_code,
    reason = "memory-mapping the index is the design's one reviewed use of unsafe"
)]
fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: the file lives in Cairn's own data directory, and only this
    // driver writes or truncates it while the process runs; the map is
    // dropped before every truncation and before the file is deleted, so
    // no access through it can fall past the end of the file.
    unsafe { MmapMut::map_mut(file) }
}

#[allow(
    unsafe_code,
    reason = "memory-mapping the files for recovery avoids reading the whole log"
)]
fn map_read(file: &File) -> io::Result<Mmap> {
    // SAFETY: as for `map_mut`; recovery's maps are dropped before the
    // driver performs any operation on the files.
    unsafe { Mmap::map(file) }
}

fn classify(error: &io::Error) -> DiskError {
    const ENOSPC: i32 = 28;
    if error.raw_os_error() == Some(ENOSPC) || error.kind() == io::ErrorKind::StorageFull {
        DiskError::NoSpace
    } else if error.kind() == io::ErrorKind::NotFound {
        DiskError::NotFound
    } else {
        DiskError::Io
    }
}

fn op_name(op: &DiskOp) -> String {
    match op {
        DiskOp::Create { file } => format!("create {file}"),
        DiskOp::Write {
            file,
            position,
            bytes,
        } => format!("write {file} @{position} +{}", bytes.len()),
        DiskOp::Sync { file } => format!("sync {file}"),
        DiskOp::Truncate { file, len } => format!("truncate {file} to {len}"),
        DiskOp::Delete { file } => format!("delete {file}"),
        DiskOp::SyncDir => "sync directory".to_owned(),
        DiskOp::Read {
            file,
            position,
            len,
        } => format!("read {file} @{position} +{len}"),
    }
}

/// Every file of a directory, mapped read-only, for recovery: recovery then
/// touches only the pages it reads, so a clean restart does not read the log.
pub struct DiskImage {
    files: Vec<(String, Option<Mmap>)>,
}

impl DiskImage {
    /// Maps every regular file in `dir`, sorted by name.
    pub fn load(dir: &Path) -> io::Result<DiskImage> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = File::open(entry.path())?;
            // An empty file cannot be mapped; it has no bytes to show.
            let map = if file.metadata()?.len() == 0 {
                None
            } else {
                Some(map_read(&file)?)
            };
            files.push((name, map));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(DiskImage { files })
    }

    /// The files, as recovery takes them.
    pub fn files(&self) -> Vec<FoundFile<'_>> {
        self.files
            .iter()
            .map(|(name, map)| FoundFile {
                name,
                bytes: map.as_deref().unwrap_or(&[]),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ids::LogIndex;

    fn perform(driver: &mut FileDriver, op: DiskOp) -> DiskOutcome {
        driver.perform(&op).unwrap()
    }

    fn write(file: FileId, position: u64, bytes: &[u8]) -> DiskOp {
        DiskOp::Write {
            file,
            position,
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    fn read(file: FileId, position: u64, len: u64) -> DiskOp {
        DiskOp::Read {
            file,
            position,
            len,
        }
    }

    // Goal: a store file takes every operation, and a write past the end
    // zero-fills the gap.
    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut driver = FileDriver::open(&dir.path().join("log")).unwrap();
        let store = FileId::store(LogIndex(1));
        perform(&mut driver, DiskOp::Create { file: store });
        perform(&mut driver, write(store, 0, b"hello"));
        perform(&mut driver, write(store, 8, b"world"));
        perform(&mut driver, DiskOp::Sync { file: store });
        perform(&mut driver, DiskOp::SyncDir);
        assert_eq!(
            perform(&mut driver, read(store, 0, 100)),
            DiskOutcome::Read(Bytes::from_static(b"hello\0\0\0world"))
        );
        perform(
            &mut driver,
            DiskOp::Truncate {
                file: store,
                len: 5,
            },
        );
        assert_eq!(
            perform(&mut driver, read(store, 3, 10)),
            DiskOutcome::Read(Bytes::from_static(b"lo"))
        );
        perform(&mut driver, DiskOp::Delete { file: store });
        assert_eq!(driver.perform(&read(store, 0, 1)), Err(DiskError::NotFound));
    }

    // Goal: index writes grow and map the file; a truncation leaves the
    // exact length on disk, and writing after it still works.
    #[test]
    fn index_grows_and_truncates_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut driver = FileDriver::open(dir.path()).unwrap();
        let index = FileId::index(LogIndex(7));
        let path = dir.path().join(index.to_string());
        perform(&mut driver, DiskOp::Create { file: index });
        let slots: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
        perform(&mut driver, write(index, 0, &slots[..1000]));
        perform(&mut driver, write(index, 1000, &slots[1000..]));
        perform(&mut driver, DiskOp::Sync { file: index });
        assert!(
            fs::metadata(&path).unwrap().len() >= slots.len() as u64,
            "pre-grown"
        );
        assert_eq!(
            perform(&mut driver, read(index, 0, 800_000)),
            DiskOutcome::Read(Bytes::from(slots.clone()))
        );
        perform(
            &mut driver,
            DiskOp::Truncate {
                file: index,
                len: 48,
            },
        );
        perform(&mut driver, DiskOp::Sync { file: index });
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            48,
            "a sealed index has its exact length"
        );
        perform(&mut driver, write(index, 48, b"more"));
        assert_eq!(
            perform(&mut driver, read(index, 44, 8)),
            DiskOutcome::Read(Bytes::from(vec![11, 0, 0, 0, b'm', b'o', b'r', b'e']))
        );
    }

    // Goal: the image lists every file with its bytes, sorted, including an
    // empty file and a file the log does not own.
    #[test]
    fn image_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut driver = FileDriver::open(dir.path()).unwrap();
        let store = FileId::store(LogIndex(1));
        perform(&mut driver, DiskOp::Create { file: store });
        perform(&mut driver, write(store, 0, b"abc"));
        perform(
            &mut driver,
            DiskOp::Create {
                file: FileId::index(LogIndex(1)),
            },
        );
        fs::write(dir.path().join("README"), b"mine").unwrap();
        let image = driver.image().unwrap();
        let files: Vec<(&str, &[u8])> = image.files().iter().map(|f| (f.name, f.bytes)).collect();
        assert_eq!(
            files,
            [
                ("00000000000000000001.index", &b""[..]),
                ("00000000000000000001.store", b"abc"),
                ("README", b"mine")
            ]
        );
    }
}
