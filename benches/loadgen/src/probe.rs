//! The fsync probe: 4 KiB overwrites of one block, each followed by `fdatasync`, for a
//! second, in a directory on the disk the target writes to. The disk's fsync rate swings
//! between fast and slow phases on shared machines (`peer-baselines.md`, "Noise"); a probe
//! before and after a run says which phase its figures come from.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Probe {
    pub fsyncs_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

pub fn fsync_probe(dir: &Path) -> anyhow::Result<Probe> {
    let mut f = tempfile_in(dir)?;
    let block = [0x5au8; 4096];
    let mut took = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) && took.len() < 100_000 {
        let t0 = Instant::now();
        std::io::Seek::rewind(&mut f.0)?;
        f.0.write_all(&block)?;
        f.0.sync_data()?;
        took.push(t0.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    took.sort();
    let at = |q: f64| {
        let i = ((took.len() as f64 * q) as usize).min(took.len() - 1);
        u64::try_from(took[i].as_micros()).unwrap_or(u64::MAX)
    };
    Ok(Probe {
        fsyncs_per_sec: took.len() as f64 / secs,
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

/// A file removed when dropped.
struct Scratch(std::fs::File, std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
    }
}

fn tempfile_in(dir: &Path) -> anyhow::Result<Scratch> {
    let path = dir.join(format!(".sessiond-fsync-probe-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    Ok(Scratch(f, path))
}

/// The probe off the async runtime, in `dir` (default: the system's temporary directory);
/// `None`, with the reason on stderr, if it could not run. A failed probe never fails a
/// benchmark: it only leaves the run without its disk-phase evidence.
pub async fn fsync_probe_in(dir: Option<std::path::PathBuf>) -> Option<Probe> {
    let dir = dir.unwrap_or_else(std::env::temp_dir);
    match tokio::task::spawn_blocking(move || fsync_probe(&dir)).await {
        Ok(Ok(p)) => Some(p),
        Ok(Err(e)) => {
            eprintln!("fsync probe failed: {e:#}");
            None
        }
        Err(e) => {
            eprintln!("fsync probe failed: {e}");
            None
        }
    }
}
