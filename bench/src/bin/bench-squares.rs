//! The squares map over 0..10,000,000 (shardSize 10,000, sum) on the
//! embedded engine: wall time from submission to result. The arithmetic is
//! milliseconds, so this measures the framework's overhead.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use kontinuum_engine::{ObjectStatus, Submission};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench = kontinuum_bench::start(kontinuum_bench::cpus())?;
    let spec = serde_yaml::from_str(
        "{map: {source: {range: {start: 0, end: 10000000}}, function: {function: std.square}, shardSize: 10000, reduce: sum}}",
    )?;
    let started = Instant::now();
    let submission = Submission::future("default", "squares", spec);
    let id = submission.id.clone();
    bench.engine.submit(vec![submission])?;
    let status = kontinuum_bench::wait_final(&bench.engine, &id, Duration::from_secs(120)).await?;
    let wall = started.elapsed().as_secs_f64();
    bench.workers.shutdown().await;
    let ObjectStatus::Future(f) = status else {
        bail!("not a future")
    };
    let expected: serde_json::Value = serde_json::from_str("333333283333335000000")?;
    if f.result.as_ref() != Some(&expected) || f.phase != Some(kontinuum_api::Phase::Succeeded) {
        bail!("wrong outcome: {:?} {:?}", f.phase, f.result);
    }
    println!(
        "{}",
        json!({"bench": "squares", "items": 10_000_000, "seconds": (wall * 1000.0).round() / 1000.0, "nodes": f.nodes})
    );
    eprintln!(
        "squares 0..10M: {wall:.3} s wall, {} nodes, result exact (target <= 2 s)",
        f.nodes
    );
    Ok(())
}
