//! The worker API's throughput with workers authenticated by ServiceAccount
//! tokens (TokenReview on a real API server, answers cached) against the
//! shared token: no-op tasks through two `kontinuum-worker` processes,
//! alternating the two modes, several runs each.
//!
//!   bench-auth [--tasks 20000] [--runs 3]
//!
//! Needs KUBECONFIG and kubectl (a test cluster: `tests/cluster/up.sh`) and
//! the worker binary beside this one. Prints one JSON line: the median
//! tasks/s of each mode and their ratio (target: within 10 %).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use kontinuum_engine::{Engine, EngineConfig, Submission};
use kontinuum_operator::tokenreview::TokenReviewer;
use kontinuum_server::Server;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHARED: &str = "bench-shared-token";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("kubectl").args(args).output()?;
    if !out.status.success() {
        bail!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One run: a fresh engine and server, two workers presenting `token`,
/// `tasks` no-op tasks of namespace `ns`; tasks per second.
async fn run(
    kube: &kube::Client,
    ns: &str,
    token: &str,
    tasks: usize,
    dir: &Path,
) -> anyhow::Result<f64> {
    let worker_bin = std::env::current_exe()?.with_file_name("kontinuum-worker");
    let store = tempfile::tempdir_in(dir)?;
    let engine = Engine::open(store.path(), EngineConfig::default())?;
    let reviewer = Arc::new(TokenReviewer::new(kube.clone()));
    let server = Server::bind_with(
        engine.clone(),
        "127.0.0.1:0".parse()?,
        Some(SHARED.into()),
        Some(reviewer),
    )
    .await?;
    let url = format!("http://{}", server.local_addr()?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let token_file = dir.join("worker-token");
    std::fs::write(&token_file, token)?;
    let mut workers: Vec<Child> = Vec::new();
    for _ in 0..2 {
        workers.push(
            Command::new(&worker_bin)
                .args([
                    "--server",
                    &url,
                    "--pool",
                    "default",
                    "--concurrency",
                    "512",
                ])
                .arg("--token-file")
                .arg(&token_file)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .context("start kontinuum-worker")?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spec: kontinuum_api::TaskSpec =
        serde_json::from_value(json!({"call": {"function": "std.echo", "args": {"x": 1}}}))?;
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<Submission> = chunk
            .iter()
            .map(|i| Submission::task(ns, &format!("noop-{i}"), spec.clone()))
            .collect();
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.submit(batch)).await??;
    }
    let outcome = loop {
        let p = engine.pool_stats(ns, "default");
        if p.queued + p.running + p.delayed == 0 {
            break Ok(tasks as f64 / started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(300) {
            break Err(anyhow::anyhow!("not done after 300 s: {p:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let _ = stop.send(());
    outcome
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = arg(&args, "--tasks")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let runs: usize = arg(&args, "--runs")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let kube = kube::Client::try_default().await.context("KUBECONFIG")?;
    let ns = format!("bench-auth-{}", std::process::id());
    kubectl(&["create", "namespace", &ns])?;
    // The default ServiceAccount appears shortly after the namespace.
    let mut sa_token = None;
    for _ in 0..100 {
        if let Ok(t) = kubectl(&[
            "create",
            "token",
            "default",
            "-n",
            &ns,
            "--audience",
            "kontinuum.dev",
        ]) {
            sa_token = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sa_token = sa_token.context("no token for the default ServiceAccount")?;
    let dir = tempfile::tempdir()?;
    let (mut shared, mut review) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        shared.push(run(&kube, &ns, SHARED, tasks, dir.path()).await?);
        review.push(run(&kube, &ns, &sa_token, tasks, dir.path()).await?);
    }
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    let (s, r) = (median(shared.clone()), median(review.clone()));
    println!(
        "{}",
        json!({
            "bench": "worker-api-auth",
            "tasks": tasks,
            "runs": runs,
            "shared_token_tasks_per_s": s.round(),
            "token_review_tasks_per_s": r.round(),
            "ratio": (r / s * 1000.0).round() / 1000.0,
            "shared_runs": shared.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "review_runs": review.iter().map(|x| x.round()).collect::<Vec<_>>(),
        })
    );
    Ok(())
}
