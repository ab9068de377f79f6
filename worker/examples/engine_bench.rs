//! Quick end-to-end figures through the real engine with in-process workers
//! (not a test; the project's benchmarks live in bench/).
//! `cargo run --release -p kontinuum-worker --example engine_bench -- [squares|noop] [concurrency]`

use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use kontinuum_worker::{start_in_process, std_registry};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "squares".into());
    let concurrency: usize = args.next().map(|c| c.parse()).transpose()?.unwrap_or(2);
    let tasks: usize = args
        .next()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    rt.block_on(async {
        match which.as_str() {
            "noop" => noop(engine, concurrency, tasks).await,
            _ => squares(engine, concurrency).await,
        }
    })
}

async fn squares(engine: Engine, concurrency: usize) -> Result<(), Error> {
    let spec = "{map: {source: {range: {start: 0, end: 10000000}}, function: {function: std.square}, shardSize: 10000, reduce: sum}}";
    let t = Instant::now();
    engine.submit(vec![Submission::Future {
        name: "squares".into(),
        spec: serde_yaml::from_str(spec)?,
    }])?;
    let workers = start_in_process(engine.clone(), Arc::new(std_registry()), "*", concurrency);
    let status = loop {
        let s = engine.status("squares")?;
        if s.is_final() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wall = t.elapsed();
    workers.shutdown().await;
    if let ObjectStatus::Future(f) = status {
        println!(
            "squares: {:?} result {:?} in {wall:?}",
            f.phase,
            f.result.map(|v| v.to_string())
        );
    }
    Ok(())
}

async fn noop(engine: Engine, concurrency: usize, n: usize) -> Result<(), Error> {
    let spec: kontinuum_api::TaskSpec = serde_yaml::from_str("{call: {function: std.echo}}")?;
    let objects: Vec<Submission> = (0..n)
        .map(|i| Submission::Task {
            name: format!("t{i}"),
            spec: spec.clone(),
        })
        .collect();
    let t = Instant::now();
    engine.submit(objects)?;
    println!("submit {n}: {:?}", t.elapsed());
    let t = Instant::now();
    let cpu = cpu_seconds();
    let workers = start_in_process(engine.clone(), Arc::new(std_registry()), "*", concurrency);
    loop {
        let s = engine.pool_stats("default");
        if s.queued == 0 && s.running == 0 && s.delayed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t.elapsed();
    let cpu = cpu_seconds() - cpu;
    workers.shutdown().await;
    println!(
        "noop: {:.1} CPU µs per task (engine + workers)",
        cpu * 1e6 / n as f64
    );
    println!(
        "noop: {n} tasks in {wall:?} = {:.0} tasks/s; last: {:?}",
        n as f64 / wall.as_secs_f64(),
        engine.status(&format!("t{}", n - 1))?.is_final()
    );
    Ok(())
}

/// This process's user + system CPU time (Linux), robust to a busy machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
