//! Planted bugs: deliberate durability mistakes that the fault campaign must catch
//! (docs/fault-tests.md, "Planted bugs"). They exist only in a build with the
//! `planted-bugs` feature (`cargo build --release -p boxoffice --features planted-bugs`),
//! and only act when `BOXOFFICE_PLANTED_BUG` names them at start; every other build
//! compiles [`planted`] to `false`.

/// A bug that can be planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bug {
    /// `ack-before-fsync`: the flusher completes appends and votes without flushing or
    /// fsyncing anything, and sled's own 500 ms background flush is off.
    AckBeforeFsync,
    /// `skip-dir-fsync`: files are created and renamed (snapshot files, sled's database
    /// directory) without the directory fsync that makes their names durable.
    SkipDirFsync,
}

/// Whether `bug` is planted in this process.
#[cfg(feature = "planted-bugs")]
pub(crate) fn planted(bug: Bug) -> bool {
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Option<Bug>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let name = std::env::var("BOXOFFICE_PLANTED_BUG").ok()?;
        let bug = match name.as_str() {
            "ack-before-fsync" => Bug::AckBeforeFsync,
            "skip-dir-fsync" => Bug::SkipDirFsync,
            other => panic!("BOXOFFICE_PLANTED_BUG={other:?}: ack-before-fsync or skip-dir-fsync"),
        };
        tracing::warn!(?bug, "PLANTED BUG: this node is deliberately unsafe");
        Some(bug)
    });
    *chosen == Some(bug)
}

/// Whether `bug` is planted in this process: never, in a build without `planted-bugs`.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub(crate) fn planted(_bug: Bug) -> bool {
    false
}
