//! The fsync probe: how long this disk takes to make 4 KiB durable, right now.
//!
//! The disks of the project's VMs change their fsync cost by up to 20x within minutes, so a
//! throughput number means little without the fsync regime it was measured in. `compare`
//! runs this probe beside each system's run and prints it in the table.
//!
//! A probe writes [`PROBE_WRITES`] blocks of 4 KiB to a fresh file in the given directory,
//! each followed by `fdatasync` (`File::sync_data`), and reports the median and p99 of those
//! write+fdatasync pairs in microseconds. It runs on a blocking thread.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// Write+fdatasync pairs per probe: ~0.1-2 s on the project's disks.
pub const PROBE_WRITES: usize = 200;
/// Bytes per write.
pub const BLOCK_BYTES: usize = 4_096;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FsyncProbe {
    pub writes: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Probe the disk under `dir` (blocking).
pub fn probe_blocking(dir: &Path) -> anyhow::Result<FsyncProbe> {
    let mut file =
        tempfile::tempfile_in(dir).with_context(|| format!("fsync probe file in {}", dir.display()))?;
    let block = vec![0x5au8; BLOCK_BYTES];
    let mut took = Vec::with_capacity(PROBE_WRITES);
    for _ in 0..PROBE_WRITES {
        let t0 = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        took.push(t0.elapsed().as_micros() as u64);
    }
    took.sort_unstable();
    assert_eq!(took.len(), PROBE_WRITES, "one sample per write");
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    Ok(FsyncProbe { writes: took.len(), p50_us: at(0.5), p99_us: at(0.99), max_us: took[took.len() - 1] })
}

/// Probe the disk under `dir` on a blocking thread.
pub async fn probe(dir: &Path) -> anyhow::Result<FsyncProbe> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || probe_blocking(&dir)).await?
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_orders_its_percentiles() {
        let dir = tempfile::tempdir().unwrap();
        let p = super::probe_blocking(dir.path()).unwrap();
        assert_eq!(p.writes, super::PROBE_WRITES);
        assert!(p.p50_us <= p.p99_us && p.p99_us <= p.max_us, "{p:?}");
    }
}
