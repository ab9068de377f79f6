//! A 1,000,000-leaf future tree (a map with shardSize 1): wall time and peak
//! RSS, with progress and result checked exactly.

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
    let leaves: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let bench = kontinuum_bench::start(256)?;
    let spec = serde_yaml::from_str(&format!(
        "map: {{source: {{range: {{start: 0, end: {leaves}}}}}, function: {{function: std.square}}, shardSize: 1, reduce: sum}}"
    ))?;
    let started = Instant::now();
    let submission = Submission::future("default", "tree", spec);
    let id = submission.id.clone();
    bench.engine.submit(vec![submission])?;
    let status = kontinuum_bench::wait_final(&bench.engine, &id, Duration::from_secs(600)).await?;
    let wall = started.elapsed().as_secs_f64();
    bench.workers.shutdown().await;
    let ObjectStatus::Future(f) = status else {
        bail!("not a future")
    };
    let expected: i128 = (0..leaves as i128).map(|i| i * i).sum();
    let expected: serde_json::Value = serde_json::from_str(&expected.to_string())?;
    let progress = f.progress.as_ref().map(|p| (p.done, p.total));
    if f.result.as_ref() != Some(&expected) || progress != Some((leaves, leaves)) {
        bail!(
            "wrong outcome: {:?} result {:?} progress {progress:?}",
            f.phase,
            f.result
        );
    }
    let rss = kontinuum_bench::peak_rss_mib();
    println!(
        "{}",
        json!({"bench": "tree", "leaves": leaves, "nodes": f.nodes, "depth": f.depth, "seconds": (wall * 10.0).round() / 10.0, "peak_rss_mib": rss.round()})
    );
    eprintln!(
        "{leaves}-leaf tree: {wall:.1} s, {} nodes, depth {}, peak RSS {rss:.0} MiB (targets <= 120 s, <= 512 MiB)",
        f.nodes, f.depth
    );
    Ok(())
}
