//! The operator's throughput and status lag on a real API server.
//!
//!   bench-operator --namespace NS [--tasks 1000] [--create-concurrency 32]
//!
//! Needs KUBECONFIG, the CRDs, an operator watching NS and workers of pool
//! `default` (bench/operator.sh starts all of it). Creates N Task resources
//! (std.echo) through the API while a watch records, per Task, when it
//! appeared, when `Succeeded` became visible and every distinct status it
//! went through. Prints one JSON line:
//! - `resources_per_s`: N / (first create → last Succeeded seen by the watch),
//! - `status_writes_max` / `_mean`: distinct statuses per Task (= status patches),
//! - `lag_p50_ms` / `lag_p99_ms`: status.finishedAt (the engine's completion
//!   time) → the watch delivering it.

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use kontinuum_api::Task;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

#[derive(Default)]
struct Seen {
    statuses: Vec<Value>,
    succeeded_at: Option<Instant>,
    lag_ms: Option<f64>,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn now_ms_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ns = arg(&args, "--namespace").context("--namespace NS is required")?;
    let n: usize = arg(&args, "--tasks")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let parallel: usize = arg(&args, "--create-concurrency")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(32);
    let client = kube::Client::try_default().await.context("KUBECONFIG")?;
    let api: Api<Task> = Api::namespaced(client.clone(), &ns);
    let prefix = format!("bench-{}", std::process::id());
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();

    let watch_seen = seen.clone();
    let watch_prefix = prefix.clone();
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher::watcher(watch_api, watcher::Config::default()).boxed();
        while let Ok(Some(event)) = stream.try_next().await {
            let objects = match event {
                Event::Apply(t) | Event::InitApply(t) => vec![t],
                _ => continue,
            };
            let arrived = Instant::now();
            let arrived_ms = now_ms_f64();
            let mut seen = watch_seen.lock().await;
            for t in objects {
                let name = t.metadata.name.clone().unwrap_or_default();
                if !name.starts_with(&watch_prefix) {
                    continue;
                }
                let entry = seen.entry(name).or_default();
                let status = serde_json::to_value(&t.status).unwrap_or(Value::Null);
                if status.is_null() || entry.statuses.last() == Some(&status) {
                    continue;
                }
                if status["phase"] == "Succeeded" && entry.succeeded_at.is_none() {
                    entry.succeeded_at = Some(arrived);
                    if let Some(f) = status["finishedAt"].as_str()
                        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(f)
                    {
                        entry.lag_ms = Some(arrived_ms - t.timestamp_millis() as f64);
                    }
                }
                entry.statuses.push(status);
            }
        }
    });
    // Let the watch start before the first create.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                let task: Task = serde_json::from_value(json!({
                    "apiVersion": "kontinuum.dev/v1alpha1",
                    "kind": "Task",
                    "metadata": {"name": name},
                    "spec": {"call": {"function": "std.echo", "args": {"i": i}}}
                }))?;
                api.create(&PostParams::default(), &task).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    let created = start.elapsed();

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = seen
            .lock()
            .await
            .values()
            .filter(|s| s.succeeded_at.is_some())
            .count();
        if done == n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} tasks Succeeded within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late status writes (there should be none) would show up here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watch.abort();
    let seen = seen.lock().await;
    let last = seen
        .values()
        .filter_map(|s| s.succeeded_at)
        .max()
        .context("no task")?;
    let elapsed = last.duration_since(start).as_secs_f64();
    let writes: Vec<usize> = seen.values().map(|s| s.statuses.len()).collect();
    let mut lags: Vec<f64> = seen.values().filter_map(|s| s.lag_ms).collect();
    lags.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({
            "bench": "operator-tasks",
            "tasks": n,
            "create_s": (created.as_secs_f64() * 1000.0).round() / 1000.0,
            "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
            "resources_per_s": (n as f64 / elapsed * 10.0).round() / 10.0,
            "status_writes_max": writes.iter().max(),
            "status_writes_mean": writes.iter().sum::<usize>() as f64 / n as f64,
            "lag_p50_ms": percentile(&lags, 0.5).round(),
            "lag_p99_ms": percentile(&lags, 0.99).round(),
        })
    );
    // Clean up (finalizers make this go through the operator).
    let _ = api
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await;
    Ok(())
}
