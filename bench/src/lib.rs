//! Shared pieces of the benchmarks: an engine in a fresh directory with
//! in-process workers, waiting for objects, and reading peak memory.

use anyhow::{Context, bail};
use kontinuum_api::ObjectId;
use kontinuum_engine::{Engine, EngineConfig, ObjectStatus};
use kontinuum_worker::{InProcessWorkers, start_in_process, std_registry};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Bench {
    pub engine: Engine,
    pub workers: InProcessWorkers,
    _dir: tempfile::TempDir,
}

/// A durable engine in a new temporary directory (on the same disk as any
/// real run) with `concurrency` in-process worker slots.
pub fn start(concurrency: usize) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir().context("temporary store directory")?;
    let engine = Engine::open(dir.path(), EngineConfig::default()).context("open engine")?;
    let workers = start_in_process(engine.clone(), Arc::new(std_registry()), "*", concurrency);
    Ok(Bench {
        engine,
        workers,
        _dir: dir,
    })
}

/// Polls until `id` is final; fails after `limit`.
pub async fn wait_final(
    engine: &Engine,
    id: &ObjectId,
    limit: Duration,
) -> anyhow::Result<ObjectStatus> {
    let start = Instant::now();
    loop {
        let status = engine.status(id)?;
        if status.is_final() {
            return Ok(status);
        }
        if start.elapsed() > limit {
            bail!("{id} not finished after {limit:?}: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Peak resident set size of this process in MiB (VmHWM).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
