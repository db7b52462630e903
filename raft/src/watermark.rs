//! The durable watermark: proof, at start, that sled recovered everything it had made durable.
//!
//! sled takes the first log message with a bad checksum for the end of its log (a torn
//! tail) and silently drops everything after it, so a flipped bit in the middle of the log
//! looks like a shorter, healthy database — and a Raft node that forgot entries it had
//! acknowledged, or the vote it gave, breaks the majority's promises. So about once a second
//! the flusher writes a growing sequence number into sled *before* a flush, and, once that
//! flush is fsynced, the same number into a small file beside the database
//! (`<data-dir>/db.watermark`: the number and its complement, fdatasynced). sled can then
//! never hold less than the file: at start, a sequence in sled below the file's means sled
//! lost data it had made durable, and the node refuses to start (the remedy: wipe the data
//! directory and rejoin, docs/operations.md). Corruption within the last second of the log
//! before a stop goes unseen; anything older is caught.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TREE: &str = "meta:durable";
const KEY: &[u8] = b"seq";
/// How often the sequence moves (one small extra fsync each time).
const EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Watermark {
    tree: sled::Tree,
    file: File,
    /// The last sequence staged in sled (and, once recorded, in the file).
    seq: u64,
    /// When the sequence last moved.
    moved: Option<Instant>,
}

/// `<sled dir>.watermark`: `<data-dir>/db` keeps its watermark in `<data-dir>/db.watermark`.
fn path_of(sled_dir: &Path) -> PathBuf {
    let mut name = sled_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".watermark");
    sled_dir.with_file_name(name)
}

/// The file's sequence, if the file holds a whole one (a write torn by a power cut is
/// ignored: nothing to compare with that once).
fn read_file(file: &mut File) -> std::io::Result<Option<u64>> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    if bytes.len() != 16 {
        return Ok(None);
    }
    let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let check = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
    Ok((check == !seq).then_some(seq))
}

impl Watermark {
    /// Open the watermark of the database in `sled_dir`, checking that sled holds at least
    /// what the file says was durable. `Err` names the two numbers and the remedy.
    pub(crate) fn open(db: &sled::Db, sled_dir: &Path) -> Result<Watermark, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        let in_sled = match tree.get(KEY).map_err(|e| e.to_string())? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| "malformed durable sequence")?),
            None => 0,
        };
        let path = path_of(sled_dir);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let in_file = read_file(&mut file).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(durable) = in_file.filter(|d| *d > in_sled) {
            return Err(format!(
                "the database in {} recovered less than it had made durable (durable sequence {in_sled}, but \
                 {durable} was recorded in {} after an fsync): its log is corrupt or was truncated, and this \
                 node may have forgotten writes it acknowledged. It will not serve from it: delete the data \
                 directory and join the cluster again (docs/operations.md, \"Membership\")",
                sled_dir.display(),
                path.display()
            ));
        }
        if in_file.is_none() {
            tracing::warn!(file = %path.display(), "no whole durable watermark: sled's recovery is not checked this time");
        }
        if !existed {
            if let Some(dir) = path.parent() {
                crate::durable::sync_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        Ok(Watermark { tree, file, seq: in_sled, moved: None })
    }

    /// Before a flush: move the sequence in sled if a second has passed; the number to
    /// [`Watermark::record`] once the flush is durable.
    pub(crate) fn stage(&mut self) -> Result<Option<u64>, String> {
        if self.moved.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(None);
        }
        self.seq += 1;
        self.moved = Some(Instant::now());
        self.tree.insert(KEY, &self.seq.to_be_bytes()).map_err(|e| format!("durable sequence: {e}"))?;
        Ok(Some(self.seq))
    }

    /// After the flush that covered `seq` was fsynced: write it to the file and fdatasync.
    pub(crate) fn record(&mut self, seq: u64) -> std::io::Result<()> {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seq.to_le_bytes());
        bytes[8..].copy_from_slice(&(!seq).to_le_bytes());
        self.file.write_all_at(&bytes, 0)?;
        self.file.set_len(16)?;
        self.file.sync_data()?;
        let _ = self.file.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_db(dir: &Path) -> sled::Db {
        sled::Config::new().path(dir).open().unwrap()
    }

    #[test]
    fn a_database_behind_its_watermark_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        {
            let db = open_db(&dir);
            let mut w = Watermark::open(&db, &dir).unwrap();
            let seq = w.stage().unwrap().expect("the first stage moves");
            assert_eq!(w.stage().unwrap(), None, "at most once a second");
            db.flush().unwrap();
            w.record(seq).unwrap();
        }
        // Reopened as it is: fine.
        {
            let db = open_db(&dir);
            Watermark::open(&db, &dir).unwrap();
            // sled "forgets" the sequence, as a truncated log would.
            db.open_tree(TREE).unwrap().insert(KEY, &0u64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let db = open_db(&dir);
        let err = Watermark::open(&db, &dir).err().expect("refused");
        assert!(err.contains("recovered less than it had made durable"), "{err}");
    }

    #[test]
    fn a_torn_watermark_file_is_ignored() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        let db = open_db(&dir);
        std::fs::write(path_of(&dir), [0xff; 11]).unwrap();
        Watermark::open(&db, &dir).expect("a torn file is no evidence");
    }
}
