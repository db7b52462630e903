//! Snapshot files: a group's latest snapshot lives in its own file, written and fsynced
//! apart from the log, so a snapshot of megabytes never holds up the group-commit flusher
//! that every log append waits on.
//!
//! Layout: `<snapshot dir>/<group id>/<name>.snap`, one file per snapshot, named by the
//! caller (the last included log index and term). A file is
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `BXSNAP1\n` |
//! | 8 | data length, little-endian |
//! | 4 | CRC-32 of the data, little-endian |
//! | n | the machine's snapshot bytes |
//!
//! Writing: a `.tmp` file is written and fsynced, renamed into place, and the directory is
//! fsynced (so the name survives a power cut); only then may the group's metadata point at
//! it. Reading checks the magic, the length and the CRC, so a torn or corrupted file is an
//! error, never a wrong state. All of this is blocking IO: callers run it off the async
//! workers.

use std::fs;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

const MAGIC: &[u8; 8] = b"BXSNAP1\n";
const HEADER_BYTES: usize = 8 + 8 + 4;

/// The directory of group `gid`'s snapshot files.
pub(crate) fn group_dir(root: &Path, gid: &str) -> PathBuf {
    root.join(gid)
}

fn file(root: &Path, gid: &str, name: &str) -> PathBuf {
    group_dir(root, gid).join(format!("{name}.snap"))
}

use crate::durable::sync_dir;

/// Write snapshot `name` of group `gid` durably (see the module doc); returns the CRC.
pub(crate) fn write(root: &Path, gid: &str, name: &str, data: &[u8]) -> io::Result<u32> {
    let dir = group_dir(root, gid);
    if !dir.exists() {
        fs::create_dir_all(&dir)?;
        sync_dir(root)?;
    }
    let crc = crc32fast::hash(data);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(data.len() as u64).to_le_bytes())?;
        f.write_all(&crc.to_le_bytes())?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, file(root, gid, name))?;
    sync_dir(&dir)?;
    Ok(crc)
}

/// Read snapshot `name` of group `gid`, checking that it is whole and has `crc`.
pub(crate) fn read(root: &Path, gid: &str, name: &str, crc: u32) -> io::Result<Vec<u8>> {
    let path = file(root, gid, name);
    let bytes = fs::read(&path)?;
    let bad = |what: &str| {
        io::Error::new(io::ErrorKind::InvalidData, format!("snapshot {}: {what}", path.display()))
    };
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err(bad("not a snapshot file"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let stored_crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let data = &bytes[HEADER_BYTES..];
    if data.len() != len {
        return Err(bad(&format!("{} data bytes, the header says {len}", data.len())));
    }
    let actual = crc32fast::hash(data);
    if actual != stored_crc || actual != crc {
        return Err(bad(&format!("CRC {actual:08x}, stored {stored_crc:08x}, expected {crc:08x}")));
    }
    Ok(data.to_vec())
}

/// Delete every snapshot file of group `gid` but `keep` (leftovers of older snapshots and of
/// writes a crash interrupted).
pub(crate) fn remove_others(root: &Path, gid: &str, keep: &str) -> io::Result<()> {
    let dir = group_dir(root, gid);
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
    let keep = format!("{keep}.snap");
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy() != keep {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Delete group `gid`'s snapshot directory.
pub(crate) fn remove_all(root: &Path, gid: &str) -> io::Result<()> {
    match fs::remove_dir_all(group_dir(root, gid)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 10_000];
        let crc = write(dir.path(), "g1", "5-1", &data).unwrap();
        assert_eq!(read(dir.path(), "g1", "5-1", crc).unwrap(), data);
        // A flipped byte, a cut file, a wrong expected CRC: all errors.
        let path = file(dir.path(), "g1", "5-1");
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 100] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(read(dir.path(), "g1", "5-1", crc).is_err());
        fs::write(&path, &bytes[..500]).unwrap();
        assert!(read(dir.path(), "g1", "5-1", crc).is_err());
        let crc = write(dir.path(), "g1", "9-1", &data).unwrap();
        assert!(read(dir.path(), "g1", "9-1", crc ^ 1).is_err());
        remove_others(dir.path(), "g1", "9-1").unwrap();
        assert!(!path.exists());
        assert!(read(dir.path(), "g1", "9-1", crc).is_ok());
        remove_all(dir.path(), "g1").unwrap();
        assert!(!group_dir(dir.path(), "g1").exists());
    }
}
