//! Directory steps that survive a power cut: a new file or directory is durable only once the
//! directory that names it is fsynced (the power nemesis, docs/fault-tests.md, found a node
//! that could not start because its `snapshots/` directory, never fsynced into the data
//! directory, vanished while sled still pointed at a snapshot in it).

use std::io;
use std::path::Path;

/// fsync a directory, so entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if crate::planted::planted(crate::planted::Bug::SkipDirFsync) {
        return Ok(());
    }
    std::fs::File::open(dir)?.sync_all()
}

/// `create_dir_all`, then fsync every directory it made and the parent of the first one, so
/// the whole path is durable. Nothing is fsynced when `path` already existed.
pub fn create_dir_durably(path: &Path) -> io::Result<()> {
    // The directories that do not exist yet, deepest first.
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at {
        if dir.as_os_str().is_empty() || dir.exists() {
            break;
        }
        missing.push(dir);
        at = dir.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    for dir in &missing {
        sync_dir(dir)?;
    }
    let top = missing.last().expect("not empty");
    match top.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_every_missing_directory_and_leaves_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durably(&deep).unwrap();
        create_dir_durably(root.path()).unwrap();
    }
}
