//! The handler protocol's cost, in one run with its alternatives:
//!
//! 1. `handler`: 100,000 Tasks calling a no-op Python function
//!    (bench/handler/noop.py) through one `kontinuum-worker --handler`
//!    against the worker API (engine and server in this process), first
//!    submit to last result (target >= 15,000 tasks/s);
//! 2. `exec`: the same no-op in Python through `std.exec`, which starts
//!    python3 per call (fewer tasks; target: handler >= 20x faster);
//! 3. `rust`: the same Tasks calling `std.echo`, a no-op Rust function in
//!    the worker's process, so the protocol's cost per task is
//!    1/handler - 1/rust;
//! 4. one call at a time through the protocol (a handler process started
//!    by this process) against the same loop calling a Rust function in
//!    process: the round trip's latency.
//!
//! `bench-handler [--tasks N] [--exec-tasks N] [--runs R] [--concurrency C]
//! [--processes P] [--calls N] [--python PATH] [--round-trip-only]`; each
//! run does 1-3 in turn (so they see the same load), then 4 once. Needs
//! `kontinuum-worker` beside this binary and python3 (the one on PATH,
//! resolved to its interpreter, unless --python names one); run from the
//! repository root.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use kontinuum_api::ObjectId;
use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use kontinuum_server::{Client, Server};
use kontinuum_worker::handler::{HandlerConfig, HandlerPool};
use kontinuum_worker::{Args, Ctx, std_registry};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXEC_PROGRAM: &str = "import json, sys; print(json.dumps(json.load(sys.stdin)['x']))";

struct Options {
    tasks: usize,
    exec_tasks: usize,
    runs: usize,
    concurrency: usize,
    processes: usize,
    calls: usize,
}

fn flag(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} takes a number")),
    }
}

/// The engine behind the worker API, and one worker process.
struct Setup {
    engine: Engine,
    worker: Child,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn worker_binary() -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("kontinuum-worker");
    if !bin.exists() {
        bail!(
            "{} is missing: cargo build --release -p kontinuum-worker --bin kontinuum-worker",
            bin.display()
        );
    }
    Ok(bin)
}

async fn setup(args: &[&str], wants: &str) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    let server = Server::bind(engine.clone(), "127.0.0.1:0".parse()?, None).await?;
    let url = format!("http://{}", server.local_addr()?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let worker = Command::new(worker_binary()?)
        .args(["--server", &url, "--pool", "default"])
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .context("start kontinuum-worker")?;
    let setup = Setup {
        engine,
        worker,
        stop: Some(stop),
        _dir: dir,
    };
    // Registered (its handler said hello) and idle before any clock starts.
    let client = Client::new(&url, None)?;
    let t = Instant::now();
    while !client
        .workers()
        .await?
        .iter()
        .any(|w| w.functions.iter().any(|f| f == wants))
    {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the worker did not register {wants} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(setup)
}

/// Submits `tasks` Tasks calling `call(i)`, waits for all, checks every
/// result against `expect(i)`; tasks per second.
async fn throughput(
    s: &Setup,
    tasks: usize,
    call: impl Fn(usize) -> Value,
    expect: impl Fn(usize) -> Value,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(2_000) {
        let batch = chunk
            .iter()
            .map(|&i| {
                let spec = serde_json::from_value(json!({"call": call(i)}))?;
                Ok(Submission::task("default", &format!("t-{i}"), spec))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let engine = s.engine.clone();
        tokio::task::spawn_blocking(move || engine.submit(batch)).await??;
    }
    loop {
        let p = s.engine.pool_stats("default", "default");
        if p.queued + p.running + p.delayed == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("not done after 900 s: {p:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    for i in 0..tasks {
        let id = ObjectId::task("default", format!("t-{i}"));
        let ObjectStatus::Task(status) = s.engine.status(&id)? else {
            bail!("{id} is not a task");
        };
        if status.result.as_ref() != Some(&expect(i)) {
            bail!("{id}: {status:?}");
        }
    }
    Ok(tasks as f64 / wall)
}

/// Mean microseconds per call, one call at a time, of `function` through `ctx`.
async fn sequential(ctx: &Ctx, function: &str, calls: usize) -> anyhow::Result<f64> {
    let args = json!({"x": 1});
    let map = args.as_object().cloned().unwrap_or_default();
    // Warm up (a first call may wait for the process).
    ctx.invoke(function, Args::new(&map))
        .resolve()
        .await
        .map_err(|e| anyhow::anyhow!("{function}: {e}"))?;
    let started = Instant::now();
    for _ in 0..calls {
        let got = ctx
            .invoke(function, Args::new(&map))
            .resolve()
            .await
            .map_err(|e| anyhow::anyhow!("{function}: {e}"))?;
        if got != json!(1) && got != args {
            bail!("{function} answered {got}");
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / calls as f64)
}

/// The interpreter `python3` names, resolved once: a launcher in front of
/// it (pyenv's shim is a shell script) would be paid per std.exec call and
/// make spawning look slower than it is.
fn python() -> anyhow::Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("python3 is needed")?;
    let path = String::from_utf8(out.stdout)?.trim().to_string();
    if !out.status.success() || path.is_empty() {
        bail!("python3 did not say where it is");
    }
    Ok(path)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let o = Options {
        tasks: flag(&args, "--tasks", 100_000)?,
        exec_tasks: flag(&args, "--exec-tasks", 2_000)?,
        runs: flag(&args, "--runs", 3)?,
        concurrency: flag(&args, "--concurrency", 256)?,
        processes: flag(&args, "--processes", 2)?,
        calls: flag(&args, "--calls", 20_000)?,
    };
    let python = match args.iter().position(|a| a == "--python") {
        Some(i) => args.get(i + 1).cloned().context("--python takes a path")?,
        None => python()?,
    };
    if args.iter().any(|a| a == "--round-trip-only") {
        return round_trip(&python, o.calls).await;
    }
    let (c, p) = (o.concurrency.to_string(), o.processes.to_string());
    let handler_line = format!("{python} bench/handler/noop.py");
    let noop = |i: usize| json!({"function": "bench.noop", "args": {"x": i}});
    let echo = |i: usize| json!({"function": "std.echo", "args": {"x": i}});
    let exec = |i: usize| {
        json!({"function": "std.exec", "args": {
            "command": [&python, "-c", EXEC_PROGRAM], "stdin": {"x": i}}})
    };
    for run in 1..=o.runs {
        let before = load_average();
        let s = setup(
            &[
                "--concurrency",
                &c,
                "--handler",
                &handler_line,
                "--handler-processes",
                &p,
            ],
            "bench.noop",
        )
        .await?;
        let handler = throughput(&s, o.tasks, noop, |i| json!(i)).await?;
        drop(s);
        let s = setup(&["--concurrency", "8"], "std.exec").await?;
        let spawning = throughput(&s, o.exec_tasks, exec, |i| json!(i)).await?;
        drop(s);
        let s = setup(&["--concurrency", &c], "std.echo").await?;
        let rust = throughput(&s, o.tasks, echo, |i| json!({"x": i})).await?;
        drop(s);
        let overhead_us = (1.0 / handler - 1.0 / rust) * 1e6;
        println!(
            "{}",
            json!({"bench": "handler", "run": run, "python": python, "tasks": o.tasks, "concurrency": o.concurrency,
                   "processes": o.processes, "handler_tasks_per_sec": handler.round(),
                   "exec_tasks": o.exec_tasks, "exec_tasks_per_sec": spawning.round(),
                   "ratio": (handler / spawning * 10.0).round() / 10.0,
                   "rust_tasks_per_sec": rust.round(),
                   "overhead_us_per_task": (overhead_us * 10.0).round() / 10.0,
                   "load_before": before, "load_after": load_average()})
        );
        eprintln!(
            "run {run}: handler {handler:.0} tasks/s (target >= 15000), std.exec {spawning:.0} tasks/s: {:.1}x (target >= 20x); std.echo {rust:.0} tasks/s: protocol {overhead_us:.1} us per task",
            handler / spawning
        );
    }

    round_trip(&python, o.calls).await
}

/// One call at a time: the protocol's round trip against a Rust call.
async fn round_trip(python: &str, calls: usize) -> anyhow::Result<()> {
    let o_calls = calls;
    let mut config =
        HandlerConfig::new(vec![python.to_string(), "bench/handler/noop.py".into()], 1);
    config.ready_wait = Duration::from_secs(60);
    let pool = HandlerPool::start(config);
    let mut registry = std_registry();
    registry.set_dynamic(pool.functions());
    let ctx = Ctx::detached(Arc::new(registry));
    let py = sequential(&ctx, "bench.noop", o_calls).await?;
    let rust = sequential(&ctx, "std.echo", o_calls).await?;
    pool.shutdown().await;
    println!(
        "{}",
        json!({"bench": "handler-round-trip", "calls": o_calls, "python_us": (py * 10.0).round() / 10.0,
               "rust_us": (rust * 100.0).round() / 100.0, "load": load_average()})
    );
    eprintln!(
        "one call at a time: {py:.1} us through the protocol, {rust:.2} us in process: {:.1} us more",
        py - rust
    );
    Ok(())
}
