//! A job whose pool nothing serves in its namespace says so: `Ready` False
//! with reason `NoWorkerPool`, a message naming the pool and the namespace
//! with the command that creates a pool, one Warning Event, and the reason
//! in `kubectl get`. The command in the message works: once it ran, the
//! reason clears, and the job runs when a worker comes. A job whose pool is
//! served but busy is not flagged.

use kontinuum_e2e::procs::{Operator, OperatorOptions, start_worker};
use kontinuum_e2e::{
    TestNamespace, client, ensure_crds, kubectl, kubectl_result, kubectl_stdin, parse_table,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn get(ns: &str, resource: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl(&["get", "-n", ns, resource, name, "-o", "json"])).unwrap()
}

/// The `Ready` condition's reason and message, if any.
fn ready(obj: &Value) -> Option<(String, String)> {
    let conditions = obj.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["reason"].as_str().unwrap_or("").to_string(),
        c["message"].as_str().unwrap_or("").to_string(),
    ))
}

fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `kubectl get RESOURCE NAME`: the value under `column` in the row.
fn column(ns: &str, resource: &str, name: &str, column: &str) -> String {
    let table = kubectl(&["get", "-n", ns, resource, name]);
    let (header, rows) = parse_table(&table);
    let at = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no {column} column in:\n{table}"));
    rows[0][at].clone()
}

/// The NoWorkerPool Events of `name`.
fn warnings(ns: &str, name: &str) -> Vec<Value> {
    let events: Value =
        serde_json::from_str(&kubectl(&["get", "events", "-n", ns, "-o", "json"])).unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == "NoWorkerPool")
        .cloned()
        .collect()
}

fn apply(ns: &str, doc: Value) {
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&doc.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_nothing_serves_says_so_and_how_to_fix_it() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "nopool").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();
    let mut operator = Operator::start(dir.path(), "a", &OperatorOptions::watching(dir.path(), n));
    operator.wait_ready(Duration::from_secs(60));
    // A busy pool served by a worker on the shared token: its queued task
    // waits for a free slot, not for a pool.
    let _busy = start_worker(
        dir.path(),
        "busy",
        &operator.api,
        "busy",
        &operator.token_file,
        &["--concurrency", "1"],
    );
    let sleep = json!({"function": "std.sleep", "args": {"ms": 15000}});
    for name in ["busy-1", "busy-2"] {
        apply(
            n,
            json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                   "metadata": {"name": name}, "spec": {"pool": "busy", "call": sleep}}),
        );
    }
    apply(
        n,
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
               "metadata": {"name": "lonely"},
               "spec": {"call": {"function": "std.echo", "args": {"n": 7}}}}),
    );
    apply(
        n,
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
               "metadata": {"name": "squares"},
               "spec": {"map": {"source": {"range": {"start": 0, "end": 100}},
                                "function": {"function": "std.square"}, "reduce": "sum"}}}),
    );

    let started = Instant::now();
    let (_, message) = wait_until(
        "the task to say NoWorkerPool",
        Duration::from_secs(30),
        || ready(&get(n, "task", "lonely")).filter(|(r, _)| r == "NoWorkerPool"),
    );
    let flagged_after = started.elapsed();
    for needle in [
        "'default'",
        &format!("namespace '{n}'"),
        &format!("kubectl apply -n {n} -f -"),
    ] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    wait_until(
        "the future to say NoWorkerPool",
        Duration::from_secs(30),
        || ready(&get(n, "future", "squares")).filter(|(r, _)| r == "NoWorkerPool"),
    );
    assert_eq!(column(n, "tasks", "lonely", "REASON"), "NoWorkerPool");
    assert_eq!(column(n, "futures", "squares", "REASON"), "NoWorkerPool");
    let first = wait_until("a Warning Event", Duration::from_secs(30), || {
        let w = warnings(n, "lonely");
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(first[0]["type"], "Warning");
    assert!(
        first[0]["message"]
            .as_str()
            .unwrap()
            .contains("kubectl apply")
    );
    // The busy pool's queued task is waiting for a slot, not for a pool.
    let busy = get(n, "task", "busy-2");
    assert_ne!(
        ready(&busy).map(|(r, _)| r),
        Some("NoWorkerPool".into()),
        "a served pool was flagged: {busy}"
    );
    // Rechecks do not repeat the warning.
    std::thread::sleep(Duration::from_secs(12));
    let again = warnings(n, "lonely");
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0]["count"].as_i64().unwrap_or(1) <= 1, "{again:?}");

    // The message's command, as a user would paste it.
    let command = message.split("Create one: ").nth(1).unwrap().to_string();
    let out = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = kubectl_result(&["get", "-n", n, "workerpool", "default"], None);
    assert!(r.success, "the command made no WorkerPool: {}", r.stderr);
    wait_until("the reason to clear", Duration::from_secs(30), || {
        let reason = ready(&get(n, "task", "lonely")).map(|(r, _)| r);
        (reason.as_deref() != Some("NoWorkerPool")).then_some(())
    });
    // The pool's pods run nowhere on kwok's nodes: a worker on the shared
    // token does the work.
    let _worker = start_worker(
        dir.path(),
        "default",
        &operator.api,
        "default",
        &operator.token_file,
        &[],
    );
    for (resource, name) in [("task", "lonely"), ("future", "squares")] {
        wait_until("the job to succeed", Duration::from_secs(60), || {
            (get(n, resource, name)["status"]["phase"] == "Succeeded").then_some(())
        });
    }
    assert_eq!(warnings(n, "lonely").len(), 1);
    eprintln!("flagged after {flagged_after:?}");
}
