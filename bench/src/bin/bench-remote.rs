//! The HTTP path: no-op tasks (std.echo) submitted in batches and run by two
//! `kontinuum-worker` processes over the worker API (target >= 10,000
//! tasks/s), and one call on an idle server, submit -> result seen over
//! HTTP (targets p50 <= 5 ms, p99 <= 20 ms).
//!
//! Needs the worker binary beside this one: `bench/run.sh` builds both.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use kontinuum_api::ObjectId;
use kontinuum_engine::{Engine, EngineConfig, Submission};
use kontinuum_server::{Client, Server};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Setup {
    engine: Engine,
    client: Client,
    workers: Vec<Child>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn setup(workers: usize, concurrency: usize) -> anyhow::Result<Setup> {
    let worker_bin = std::env::current_exe()?.with_file_name("kontinuum-worker");
    if !worker_bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p kontinuum-worker --bin kontinuum-worker`",
            worker_bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    let server = Server::bind(engine.clone(), "127.0.0.1:0".parse()?, None).await?;
    let url = format!("http://{}", server.local_addr()?);
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(
            Command::new(&worker_bin)
                .args([
                    "--server",
                    &url,
                    "--pool",
                    "default",
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .context("start kontinuum-worker")?,
        );
    }
    let client = Client::new(&url, None)?;
    // Workers connected and idle before any clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Setup {
        engine,
        client,
        workers: children,
        stop: Some(stop),
        _dir: dir,
    })
}

async fn throughput(tasks: usize) -> anyhow::Result<f64> {
    let s = setup(2, 512).await?;
    let spec: kontinuum_api::TaskSpec =
        serde_json::from_value(json!({"call": {"function": "std.echo", "args": {"x": 1}}}))?;
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<Submission> = chunk
            .iter()
            .map(|i| Submission::task("default", &format!("noop-{i}"), spec.clone()))
            .collect();
        let engine = s.engine.clone();
        tokio::task::spawn_blocking(move || engine.submit(batch)).await??;
    }
    loop {
        let p = s.engine.pool_stats("default", "default");
        if p.queued + p.running + p.delayed == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not done after 600 s: {p:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    for i in 0..tasks {
        let id = ObjectId::task("default", format!("noop-{i}"));
        let view = s.client.get(&id).await?;
        if view.status["result"] != json!({"x": 1}) {
            bail!("{id}: {}", view.status);
        }
    }
    Ok(tasks as f64 / wall)
}

async fn latency(calls: usize) -> anyhow::Result<Vec<Duration>> {
    let s = setup(1, 8).await?;
    let mut samples = Vec::new();
    for i in 0..calls {
        let doc = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("one-{i}")},
            "spec": {"call": {"function": "std.echo", "args": {"i": i}}}});
        let t0 = Instant::now();
        let names = s.client.submit(vec![doc]).await?;
        let name: ObjectId = names.first().context("no name accepted")?.parse()?;
        loop {
            let view = s.client.get(&name).await?;
            if view.status["phase"] == "Succeeded" {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("{name} not done in 10 s");
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        samples.push(t0.elapsed());
        // Idle between calls: the target is for an idle server.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples.sort();
    Ok(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tasks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rate = throughput(tasks).await?;
    let samples = latency(300).await?;
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "{}",
        json!({"bench": "remote", "tasks": tasks, "tasks_per_sec": rate.round(), "p50_ms": (at(0.5) * 100.0).round() / 100.0, "p99_ms": (at(0.99) * 100.0).round() / 100.0})
    );
    eprintln!("remote no-op: {rate:.0} tasks/s with 2 worker processes (target >= 10000)");
    eprintln!(
        "one call submit->result: p50 {:.2} ms, p99 {:.2} ms over {} calls (targets 5 / 20 ms)",
        at(0.5),
        at(0.99),
        samples.len()
    );
    Ok(())
}
