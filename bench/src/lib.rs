//! Shared pieces of the benchmarks: an engine in a fresh directory with
//! in-process workers, waiting for objects, reading peak memory, and a
//! Prometheus-like scraper of the engine's metrics.

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

/// The number after `name` on the command line, if any.
pub fn flag(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The engine's metrics served over HTTP (as the operator serves them) and
/// fetched at a fixed interval until stopped, as Prometheus would.
pub struct Scraper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Scraped>>,
}

/// What the scraper saw.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    pub scrapes: usize,
    pub bytes: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

impl Scraper {
    pub async fn start(engine: &Engine, every: Duration) -> anyhow::Result<Scraper> {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(kontinuum_server::EngineCollector::new(
            engine.clone(),
        )))?;
        let addr = kontinuum_server::metrics::serve_metrics(
            "127.0.0.1:0".parse()?,
            registry,
            std::future::pending(),
        )
        .await?;
        let url = format!("http://{addr}/metrics");
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut took = Vec::new();
            let mut bytes = 0;
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let t = Instant::now();
                let body = http
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await?;
                took.push(t.elapsed().as_secs_f64() * 1000.0);
                if !body.contains("kontinuum_store_fsync_duration_seconds") {
                    bail!("a scrape without the engine's series: {body}");
                }
                bytes = body.len();
            }
            took.sort_by(f64::total_cmp);
            Ok(Scraped {
                scrapes: took.len(),
                bytes,
                p50_ms: took.get(took.len() / 2).copied().unwrap_or(0.0),
                max_ms: took.last().copied().unwrap_or(0.0),
            })
        });
        Ok(Scraper { stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<Scraped> {
        let _ = self.stop.send(());
        self.task.await.context("the scraper task")?
    }
}
