//! Test support shared by the core's unit tests: a disk kept in a map.
//!
//! Owns nothing the machines depend on; compiled for tests only.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::log::disk::{DiskOp, DiskOutcome, FileId, FoundFile};
use crate::log::recovery::{self, Recovered};

/// A disk that does what it is told, at once, and never fails.
#[derive(Default)]
pub struct MapDisk {
    /// Each file's bytes.
    pub files: BTreeMap<FileId, Vec<u8>>,
}

impl MapDisk {
    /// Performs `op`.
    pub fn perform(&mut self, op: &DiskOp) -> DiskOutcome {
        match op {
            DiskOp::Create { file } => {
                self.files.insert(*file, Vec::new());
            }
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                let data = self.files.get_mut(file).expect("written files exist");
                let end = *position as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*position as usize..end].copy_from_slice(bytes);
            }
            DiskOp::Truncate { file, len } => self
                .files
                .get_mut(file)
                .expect("exists")
                .resize(*len as usize, 0),
            DiskOp::Delete { file } => {
                self.files.remove(file);
            }
            DiskOp::Read {
                file,
                position,
                len,
            } => {
                let data = &self.files[file];
                let start = (*position as usize).min(data.len());
                let end = data.len().min((*position + *len) as usize);
                return DiskOutcome::Read(Bytes::copy_from_slice(&data[start..end]));
            }
            DiskOp::Sync { .. } | DiskOp::SyncDir => {}
        }
        DiskOutcome::Done
    }

    /// Recovers a log from the files as they are.
    pub fn recover(&self) -> Recovered {
        let names: Vec<(String, &Vec<u8>)> = self
            .files
            .iter()
            .map(|(id, bytes)| (id.to_string(), bytes))
            .collect();
        let found: Vec<FoundFile<'_>> = names
            .iter()
            .map(|(name, bytes)| FoundFile { name, bytes })
            .collect();
        recovery::recover(&found).expect("recoverable")
    }
}
