//! Figures for the HTTP path, not pass/fail checks (ignored by default):
//!
//! cargo test --release -p kontinuum-worker --test remote_bench -- --ignored --nocapture --test-threads 1
//!
//! - throughput: no-op tasks (std.echo) submitted to the engine in batches,
//!   leased and completed over HTTP by two `kontinuum-worker` processes;
//! - latency: one call on an idle server, submit (HTTP) → result seen (HTTP).

use kontinuum_engine::{Engine, EngineConfig, Submission};
use kontinuum_operator::{Client, Server};
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

async fn setup(workers: usize, concurrency: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let server = Server::bind(engine.clone(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let workers = (0..workers)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_kontinuum-worker"))
                .args(["--server", &url, "--pool", "default"])
                .arg("--concurrency")
                .arg(concurrency.to_string())
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let client = Client::new(&url, None).unwrap();
    Setup {
        engine,
        client,
        workers,
        stop: Some(stop),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
async fn noop_throughput_with_two_remote_workers() {
    let tasks: usize = std::env::var("TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let s = setup(2, 512).await;
    let spec: kontinuum_api::TaskSpec =
        serde_json::from_value(json!({"call": {"function": "std.echo", "args": {"x": 1}}}))
            .unwrap();
    // Workers connected and idle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<Submission> = chunk
            .iter()
            .map(|i| Submission::Task {
                name: format!("task/noop-{i}"),
                spec: spec.clone(),
            })
            .collect();
        let engine = s.engine.clone();
        tokio::task::spawn_blocking(move || engine.submit(batch))
            .await
            .unwrap()
            .unwrap();
    }
    loop {
        let p = s.engine.pool_stats("default");
        if p.queued + p.running + p.delayed == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{p:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    for i in (0..tasks).step_by((tasks / 100).max(1)) {
        let view = s.client.get(&format!("task/noop-{i}")).await.unwrap();
        assert_eq!(view.status["result"], json!({"x": 1}), "{}", view.status);
    }
    println!(
        "remote no-op: {tasks} tasks in {wall:.2} s = {:.0} tasks/s (2 worker processes, target >= 10000)",
        tasks as f64 / wall
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
async fn one_call_latency_on_an_idle_server() {
    let s = setup(1, 8).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::new();
    for i in 0..300 {
        let doc = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("one-{i}")},
            "spec": {"call": {"function": "std.echo", "args": {"i": i}}}});
        let t0 = Instant::now();
        let names = s.client.submit(vec![doc]).await.unwrap();
        loop {
            let view = s.client.get(&names[0]).await.unwrap();
            if view.status["phase"] == "Succeeded" {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        samples.push(t0.elapsed());
        // Idle between calls, as the target says.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "remote one call submit→result: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} calls (targets 5 / 20 ms)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        samples.len()
    );
}
