//! What the operator and a worker write to their logs on an ordinary start
//! and job: nothing at ERROR, the admission wait said at most once, no
//! "registered again" from a worker whose server never restarted, and a
//! bare `RUST_LOG=debug` (the chart's `logLevel=debug`) that is debug for
//! Kontinuum's own crates only.

use kontinuum_e2e::procs::{Operator, OperatorOptions};
use kontinuum_e2e::{TestNamespace, client, ensure_crds, kubectl_result, kubectl_stdin};
use std::time::{Duration, Instant};

/// The level and target of a log line of tracing's default format
/// (`TIME  LEVEL [spans: ]target: message`).
fn level_and_target(line: &str) -> Option<(&str, &str)> {
    let mut words = line.split_whitespace().skip(1);
    let level = words.next()?;
    let is_path = |w: &str| {
        !w.is_empty()
            && w.starts_with(|c: char| c.is_ascii_lowercase())
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
    };
    let target = words.find_map(|w| w.strip_suffix(':').filter(|t| is_path(t)))?;
    Some((level, target))
}

fn task_phase(ns: &str, name: &str) -> Option<String> {
    let r = kubectl_result(
        &[
            "get",
            "-n",
            ns,
            "task",
            name,
            "-o",
            "jsonpath={.status.phase}",
        ],
        None,
    );
    r.success.then(|| r.stdout.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_is_kontinuums_own_and_a_start_logs_no_error() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "logs").await;
    let dir = tempfile::tempdir().unwrap();
    let options = OperatorOptions {
        rust_log: Some("debug".into()),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut operator = Operator::start(dir.path(), "a", &options);
    operator.wait_ready(Duration::from_secs(60));
    let worker = operator.worker(dir.path(), "1", &[]);
    let task = serde_json::json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "echo"},
        "spec": {"call": {"function": "std.echo", "args": {"n": 1}}},
    });
    kubectl_stdin(
        &["apply", "-n", ns.name(), "-f", "-"],
        Some(&task.to_string()),
    );
    let start = Instant::now();
    while task_phase(ns.name(), "echo").as_deref() != Some("Succeeded") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the task did not succeed:\n{}",
            operator.proc.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A few of the worker's long polls.
    std::thread::sleep(Duration::from_secs(3));
    let log = operator.proc.output();
    let mut ours = 0;
    let mut theirs = Vec::new();
    for line in log.lines() {
        match level_and_target(line) {
            Some(("DEBUG" | "TRACE", target)) if target.starts_with("kontinuum") => ours += 1,
            Some(("DEBUG" | "TRACE", _)) => theirs.push(line),
            _ => {}
        }
    }
    assert!(
        theirs.is_empty(),
        "debug lines of other crates ({} of them), e.g.:\n{}",
        theirs.len(),
        theirs[..theirs.len().min(10)].join("\n")
    );
    assert!(ours > 0, "no debug line of Kontinuum's crates:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "errors on an ordinary start:\n{log}");
    let waits = log
        .lines()
        .filter(|l| l.contains("waiting until the API server admits creates"))
        .count();
    assert!(waits <= 1, "the admission wait said {waits} times:\n{log}");
    let worker_log = worker.output();
    assert!(
        !worker_log.contains("registered again"),
        "the worker registered again with a server that never restarted:\n{worker_log}"
    );
    assert!(
        worker_log.contains("registered"),
        "the worker never registered:\n{worker_log}"
    );
}
