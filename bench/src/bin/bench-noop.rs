//! No-op tasks (std.echo), durable, through the engine with in-process
//! workers: tasks per second from the first submission to the last result.
//! With `--peers`, runs bench/peers (Ray, Celery) in the same run and prints
//! Kontinuum's ratio to each. With `--scrape-ms N`, the engine's metrics are
//! served over HTTP as the operator serves them and fetched every N ms for
//! the whole run (bench/scrape.sh compares runs with and without).

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use kontinuum_bench::flag;
use kontinuum_engine::{ObjectStatus, Submission};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = flag(&args, "--tasks").unwrap_or(100_000);
    let clients: usize = flag(&args, "--clients").unwrap_or(1).max(1);
    let peers_n: Option<usize> = args
        .iter()
        .any(|a| a == "--peers")
        .then(|| flag(&args, "--peer-tasks").unwrap_or(10_000));
    let scrape_ms: Option<u64> = flag(&args, "--scrape-ms").map(|n| n as u64);
    let bench = kontinuum_bench::start(256)?;
    let scraper = match scrape_ms {
        Some(ms) => {
            Some(kontinuum_bench::Scraper::start(&bench.engine, Duration::from_millis(ms)).await?)
        }
        None => None,
    };
    let spec: kontinuum_api::TaskSpec =
        serde_yaml::from_str("{call: {function: std.echo, args: {x: 1}}}")?;
    let started = Instant::now();
    // Submissions arrive in batches of 2,000 from `clients` concurrent
    // clients while workers run, as a busy system's would.
    let chunks: Vec<Vec<usize>> = (0..tasks)
        .collect::<Vec<_>>()
        .chunks(2_000)
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles = (0..clients)
            .map(|c| {
                let (engine, spec, chunks) = (&bench.engine, &spec, &chunks);
                std::thread::Builder::new()
                    .name(format!("client-{c}"))
                    .spawn_scoped(scope, move || -> anyhow::Result<()> {
                        for chunk in chunks.iter().skip(c).step_by(clients) {
                            let batch = chunk
                                .iter()
                                .map(|i| {
                                    Submission::task("default", &format!("noop-{i}"), spec.clone())
                                })
                                .collect();
                            engine.submit(batch)?;
                        }
                        Ok(())
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    loop {
        let s = bench.engine.pool_stats("default", "default");
        if s.queued + s.running + s.delayed == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not done after 600 s: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let scraped = match scraper {
        Some(s) => Some(s.stop().await?),
        None => None,
    };
    bench.workers.shutdown().await;
    // Every task must have succeeded with its own echo: checked outside the timing.
    for i in 0..tasks {
        match bench
            .engine
            .status(&kontinuum_api::ObjectId::task(
                "default",
                format!("noop-{i}"),
            ))
            .context("status")?
        {
            ObjectStatus::Task(t)
                if t.phase == Some(kontinuum_api::Phase::Succeeded)
                    && t.result == Some(json!({"x": 1})) => {}
            other => bail!("noop-{i} did not succeed: {other:?}"),
        }
    }
    let rate = tasks as f64 / wall;
    let mut line = json!({"system": "kontinuum", "tasks": tasks, "seconds": round3(wall), "tasks_per_sec": rate.round()});
    if let (Some(ms), Some(scraped)) = (scrape_ms, &scraped) {
        line["scrape_ms"] = json!(ms);
        line["scrapes"] = json!(scraped.scrapes);
        line["scrape_p50_ms"] = json!(round3(scraped.p50_ms));
        line["scrape_max_ms"] = json!(round3(scraped.max_ms));
        line["scrape_bytes"] = json!(scraped.bytes);
    }
    println!("{line}");
    eprintln!(
        "kontinuum: {tasks} no-op tasks in {wall:.2} s = {rate:.0} tasks/s (target >= 20000)"
    );
    if let Some(n) = peers_n {
        run_peers(n, rate)?;
    }
    Ok(())
}

fn run_peers(n: usize, ours: f64) -> anyhow::Result<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/run.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(n.to_string())
        .output()
        .context("bench/peers/run.sh")?;
    if !out.status.success() {
        bail!("peers failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(system), Some(rate)) = (v["system"].as_str(), v["tasks_per_sec"].as_f64()) else {
            continue;
        };
        println!("{line}");
        eprintln!(
            "{system}: {rate:.0} tasks/s; kontinuum is {:.1}x faster (target >= 20x)",
            ours / rate
        );
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
