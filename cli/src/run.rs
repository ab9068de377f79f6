//! `kontinuum run`: validate, submit to the embedded engine, run in-process
//! workers until every object is final, print, and exit 0/1/2.

use crate::error::CliError;
use crate::load::{self, Object};
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::signals::{Signals, Stop};
use kontinuum_api::{API_VERSION, Phase};
use kontinuum_engine::{Engine, EngineConfig, EngineError, ObjectStatus};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How often the objects' statuses are read.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (multi-document YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Keep the store here: the run is durable and rerunning the same command resumes it.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// In-process workers per pool (tasks run at once); default: the CPU count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Output format of the final objects.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    if let Some(dir) = &args.data {
        crate::signals::check_data_dir(dir).map_err(CliError::Usage)?;
    }
    // Everything is validated before the store is even opened.
    let objects =
        load::load(&args.files, load::Workers::InThisProcess).map_err(CliError::Invalid)?;
    let workers = match args.workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    // Watched before the temporary store exists, so that no signal can end
    // the process with the store left behind.
    let signals = {
        let _inside = runtime.enter();
        Signals::new()
    };
    // Without --data the store lives in a temporary directory, removed on drop
    // (after the engine, which is dropped inside `execute`).
    let temp;
    let dir = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("kontinuum-run-")
                .tempdir()
                .map_err(|source| CliError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            temp.path().to_path_buf()
        }
    };
    let temporary = args.data.is_none().then(|| dir.clone());
    let finished = runtime.block_on(execute(&dir, temporary, signals, &objects, workers));
    // After a failed store, engine calls may still sit on blocking threads:
    // they are not worth waiting for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let finished = finished.map_err(|e| match e {
        CliError::Engine(EngineError::StoreFailed(reason)) => CliError::StoreFailed {
            dir: dir.clone(),
            temporary: args.data.is_none(),
            reason,
        },
        other => other,
    })?;
    let statuses = match finished {
        Finished::Done(statuses) => statuses,
        Finished::Stopped(stop) => {
            let hint = match &args.data {
                Some(dir) => format!(
                    "the store in {} keeps the work: rerun the same command to resume",
                    dir.display()
                ),
                None => "the temporary store is removed: use --data DIR to make a run resumable"
                    .to_string(),
            };
            // A closed stderr must not turn the stop into a panic (exit 101).
            let _ = writeln!(std::io::stderr(), "interrupted: workers stopped; {hint}");
            return Ok(ExitCode::from(stop.exit_code()));
        }
    };
    let printed: Vec<Value> = objects
        .iter()
        .zip(&statuses)
        .map(|(o, s)| full_object(o, s.as_ref()))
        .collect();
    let text = output::render(&printed, args.output);
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not worth an error message.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
    Ok(ExitCode::from(exit_code(&statuses)))
}

/// How a run ended: every object final, or stopped by a signal.
enum Finished {
    Done(Vec<Option<Value>>),
    Stopped(Stop),
}

/// Runs to completion or to Ctrl-C / SIGTERM. `temporary` is the store's
/// directory when it is a temporary one, removed even on a second signal.
async fn execute(
    dir: &Path,
    temporary: Option<PathBuf>,
    mut signals: Signals,
    objects: &[Object],
    workers: usize,
) -> Result<Finished, CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let engine = Engine::open(dir, EngineConfig::default()).map_err(|e| match e {
        EngineError::Locked { .. } => CliError::Busy(dir.to_path_buf()),
        other => CliError::Engine(other),
    })?;
    // load() refused parentRef cycles, so there is an order.
    let submissions = load::submit_order(objects).unwrap_or_default();
    engine.submit(submissions).map_err(|e| match e {
        EngineError::Conflict { id } => CliError::Conflict {
            name: id.short(),
            dir: dir.to_path_buf(),
        },
        other => CliError::Engine(other),
    })?;
    for o in objects.iter().filter(|o| o.submission.is_none()) {
        eprintln!(
            "note: {} is accepted but runs nothing here: kontinuum run serves every pool with in-process workers",
            o.key
        );
    }
    let pools: BTreeSet<(String, String)> = objects
        .iter()
        .filter_map(|o| Some((o.namespace.clone(), o.pool()?.to_string())))
        .collect();

    // Workers per pool rather than one set for "*", so that a failure such as
    // an unknown function names the task's own pool.
    let registry = Arc::new(kontinuum_worker::std_registry());
    let pool_names: BTreeSet<&str> = pools.iter().map(|(_, pool)| pool.as_str()).collect();
    let running: Vec<_> = pool_names
        .iter()
        .map(|pool| {
            kontinuum_worker::start_in_process(engine.clone(), registry.clone(), pool, workers)
        })
        .collect();
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    let mut progress = Progress::new(&keys);
    let mut ticker = tokio::time::interval(POLL);
    let outcome = loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => None,
            stop = signals.recv() => Some(stop),
        };
        if let Some(stop) = stopped {
            break Finished::Stopped(stop);
        }
        let statuses = match read_statuses(&engine, objects) {
            Ok(statuses) => statuses,
            Err(e) => {
                // A failed store refuses every call: there is nothing to
                // wind down gracefully, and no outcome could be recorded.
                progress.finish();
                return Err(e);
            }
        };
        progress.update(&statuses);
        if statuses.iter().flatten().all(is_final) && idle(&engine, &pools) {
            break Finished::Done(statuses);
        }
    };
    progress.finish();
    if matches!(outcome, Finished::Stopped(_)) {
        // Not eprintln!: a closed stderr (a reader that went away) must not
        // turn an orderly stop into a panic.
        let _ = writeln!(
            std::io::stderr(),
            "stopping: running tasks may finish (up to 10 s); Ctrl-C again stops at once"
        );
        // A second signal while workers wind down leaves at once: the store
        // is crash-safe, so nothing is lost either way; a temporary one is
        // removed first.
        tokio::spawn(async move {
            let stop = signals.recv().await;
            if let Some(dir) = temporary {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(stop.exit_code().into());
        });
    }
    let stopping: Vec<_> = running
        .into_iter()
        .map(|w| tokio::spawn(w.shutdown()))
        .collect();
    for stopped in stopping {
        // A panic while stopping loses nothing: the store is crash-safe.
        let _ = stopped.await;
    }
    // Wakes anything still waiting for work; the store flushes on drop.
    engine.close();
    Ok(outcome)
}

/// Each object's status as JSON; `None` for a WorkerPool.
fn read_statuses(engine: &Engine, objects: &[Object]) -> Result<Vec<Option<Value>>, CliError> {
    objects
        .iter()
        .map(|o| {
            let Some(id) = o.id() else {
                return Ok(None);
            };
            let status = match engine.status(id)? {
                ObjectStatus::Task(s) => serde_json::to_value(s),
                ObjectStatus::Future(s) => serde_json::to_value(s),
            };
            let mut status = status.unwrap_or(Value::Null);
            // Locally the whole result is printed; only a custom resource's
            // status keeps results to 4 KiB.
            if let Some(obj) = status.as_object_mut()
                && obj.remove("resultRef").is_some()
                && let Some(result) = engine.result(id)?
            {
                obj.insert("result".into(), result);
            }
            Ok(Some(status))
        })
        .collect()
}

pub(crate) fn is_final(status: &Value) -> bool {
    serde_json::from_value::<Phase>(status["phase"].clone()).is_ok_and(Phase::is_final)
}

/// No work left in the pools: continuations spawned by final objects have
/// run too, so a rerun has nothing left to do.
fn idle(engine: &Engine, pools: &BTreeSet<(String, String)>) -> bool {
    pools.iter().all(|(namespace, pool)| {
        let s = engine.pool_stats(namespace, pool);
        s.queued + s.running + s.delayed == 0
    })
}

/// 1 when anything failed or was cancelled, else 0 (Merged is a success:
/// the call was folded into a run that did happen).
pub(crate) fn exit_code(statuses: &[Option<Value>]) -> u8 {
    let bad = statuses
        .iter()
        .flatten()
        .any(|s| matches!(s["phase"].as_str(), Some("Failed" | "Cancelled")));
    u8::from(bad)
}

/// apiVersion, kind, metadata, spec, status: the object as kubectl prints it.
pub(crate) fn full_object(object: &Object, status: Option<&Value>) -> Value {
    let doc = &object.document;
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        doc.get("apiVersion")
            .cloned()
            .unwrap_or(Value::from(API_VERSION)),
    );
    out.insert("kind".into(), doc["kind"].clone());
    out.insert("metadata".into(), doc["metadata"].clone());
    out.insert("spec".into(), object.spec.clone());
    if let Some(status) = status {
        out.insert("status".into(), status.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes() {
        let s = |p: &str| Some(json!({"phase": p}));
        assert_eq!(exit_code(&[s("Succeeded"), s("Merged"), None]), 0);
        assert_eq!(exit_code(&[s("Succeeded"), s("Failed")]), 1);
        assert_eq!(exit_code(&[s("Cancelled")]), 1);
    }
}
