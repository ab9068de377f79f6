//! Nothing twice, never two leaders, on a real control plane: a leader cut
//! off by a stalling proxy steps down before anyone else leads; an
//! operator given another store runs nothing finished again; a full disk
//! fails the probes, marks what runs, and recovers once space is freed;
//! deleting resources leaves nothing in the engine; an operator outlives
//! an API server that goes away and comes back; a restarted operator takes
//! its own Lease back at once.

use kontinuum_e2e::procs::{Operator, OperatorOptions, Proc, http_get, start_worker};
use kontinuum_e2e::proxy::{Proxy, api_server_addr};
use kontinuum_e2e::{
    TestNamespace, apply, client, ensure_crds, has_condition, kubeconfig, kubectl, kubectl_result,
    wait_for,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn worker(dir: &Path, label: &str, op: &Operator) -> Proc {
    start_worker(
        dir,
        label,
        &op.api,
        "default",
        &op.token_file,
        &["--concurrency", "8"],
    )
}

fn task(name: &str, call: Value, on_success: Option<Value>) -> Value {
    let mut spec = json!({ "call": call });
    if let Some(c) = on_success {
        spec["onSuccess"] = c;
    }
    json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn status(ns: &str, kind: &str, name: &str) -> Value {
    let r = kubectl_result(&["get", "-n", ns, kind, name, "-o", "json"], None);
    serde_json::from_str::<Value>(&r.stdout)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

async fn wait_phase(ns: &str, kind: &str, name: &str, phase: &str, timeout: Duration) -> Value {
    wait_for(&format!("{kind}/{name} {phase}"), timeout, || async {
        let s = status(ns, kind, name);
        (s["phase"] == phase).then_some(s)
    })
    .await
}

/// The Events of one object with one reason.
fn events(ns: &str, name: &str, reason: &str) -> Vec<Value> {
    let out = kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Lines of a worker's log that `std.log` wrote with `marker` in its args.
fn logged(worker: &Proc, marker: &str) -> usize {
    worker
        .output()
        .lines()
        .filter(|l| l.contains("std.log") && l.contains(marker))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_steps_down_before_another_leads() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "partition").await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(api_server_addr(&kubeconfig())).await;
    let proxied = dir.path().join("kubeconfig-a");
    proxy.kubeconfig(&kubeconfig(), &proxied);
    // Two replicas on two stores (two volumes): the case where two leaders
    // would run work twice. The documented default timings.
    let opts = |label: &str| OperatorOptions {
        data: dir.path().join(format!("store-{label}")),
        leader_elect: true,
        lease_name: "kontinuum-partition".into(),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut a = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions {
            kubeconfig: Some(proxied),
            ..opts("a")
        },
    );
    a.wait_ready(Duration::from_secs(60));
    let b = Operator::start(dir.path(), "b", &opts("b"));
    // Sample both every 100 ms from here to the end.
    let samples = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        let (ma, mb) = (a.metrics.clone(), b.metrics.clone());
        let (aa, ab) = (a.api.clone(), b.api.clone());
        std::thread::spawn(move || {
            let leads = |metrics: &str| {
                http_get(&format!("{metrics}/metrics")).is_some_and(|(code, body)| {
                    code == 200 && body.lines().any(|l| l.trim() == "kontinuum_leader 1")
                })
            };
            let serves = |api: &str| http_get(&format!("{api}/healthz")).is_some();
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let at = start.elapsed();
                let sample = (at, leads(&ma), leads(&mb), serves(&aa), serves(&ab));
                samples.lock().push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.is_leading() && !b.is_leading(), "a leads, b waits");
    proxy.freeze();
    let frozen = Instant::now();
    wait_for("b to lead", Duration::from_secs(40), || async {
        b.is_leading().then_some(())
    })
    .await;
    let took_over = frozen.elapsed();
    // A few seconds of the partition with b leading: were a still leading,
    // the samples would show it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The partition heals: a (starting over in place) is a candidate
    // again and must not lead while b holds the Lease.
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let samples = samples.lock().clone();
    let both: Vec<_> = samples.iter().filter(|s| s.1 && s.2).collect();
    assert!(
        both.is_empty(),
        "two leaders at {} of {} samples, first at {:?}\na:\n{}",
        both.len(),
        samples.len(),
        both.first().map(|s| s.0),
        a.proc.output()
    );
    assert!(
        a.proc.running(),
        "a waits to lead again:\n{}",
        a.proc.output()
    );
    // When b led, a no longer served workers.
    let first_b = samples.iter().position(|s| s.2).expect("b led");
    assert!(
        samples[first_b..].iter().all(|s| !s.3),
        "a's worker API answered while b led"
    );
    let last_a = samples.iter().rposition(|s| s.1).expect("a led");
    let gap = samples[first_b].0.saturating_sub(samples[last_a].0);
    eprintln!(
        "partition: b led {took_over:?} after the freeze; a's last leading sample {:?} before b's first; {} samples",
        gap,
        samples.len()
    );
    assert!(
        a.proc.output().contains("stopped leading"),
        "a says why it stopped:\n{}",
        a.proc.output()
    );
    assert!(!a.is_leading() && b.is_leading());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_on_another_store_runs_nothing_finished_again() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "swap").await;
    let dir = tempfile::tempdir().unwrap();
    let first = OperatorOptions::watching(dir.path(), ns.name());
    let mut op = Operator::start(dir.path(), "first", &first);
    op.wait_ready(Duration::from_secs(60));
    let w = worker(dir.path(), "1", &op);
    let sum = serde_yaml::from_str::<Value>(
        &std::fs::read_to_string(kontinuum_e2e::repo_root().join("examples/sum.yaml")).unwrap(),
    )
    .unwrap();
    apply(ns.name(), &sum);
    for i in 0..5 {
        apply(
            ns.name(),
            &task(
                &format!("done-{i}"),
                json!({"function": "std.echo", "args": {"i": i}}),
                Some(json!({"function": "std.log", "args": {"note": format!("done-{i} ran")}})),
            ),
        );
    }
    apply(
        ns.name(),
        &task(
            "unfinished",
            json!({"function": "std.sleep", "args": {"ms": 600_000}}),
            Some(json!({"function": "std.log", "args": {"note": "unfinished ran"}})),
        ),
    );
    let done = wait_phase(
        ns.name(),
        "task",
        "sum-4-5",
        "Succeeded",
        Duration::from_secs(60),
    )
    .await;
    for i in 0..5 {
        wait_phase(
            ns.name(),
            "task",
            &format!("done-{i}"),
            "Succeeded",
            Duration::from_secs(60),
        )
        .await;
    }
    wait_phase(
        ns.name(),
        "task",
        "unfinished",
        "Running",
        Duration::from_secs(60),
    )
    .await;
    wait_for(
        "the continuations to log",
        Duration::from_secs(30),
        || async {
            (logged(&w, "sum done") == 1
                && (0..5).all(|i| logged(&w, &format!("done-{i} ran")) == 1))
            .then_some(())
        },
    )
    .await;
    let old_store = done["storeId"].as_str().unwrap_or_default().to_string();
    drop(w);
    assert!(op.proc.terminate(Duration::from_secs(30)).is_some());

    // The same resources, another store (a lost volume, another --data).
    let second = OperatorOptions {
        data: dir.path().join("another-store"),
        ..first
    };
    let mut op2 = Operator::start(dir.path(), "second", &second);
    op2.wait_ready(Duration::from_secs(60));
    let w2 = worker(dir.path(), "2", &op2);
    // A new task runs on the new store: by the time its continuation has
    // logged, the new operator has reconciled everything it found.
    apply(
        ns.name(),
        &task(
            "after",
            json!({"function": "std.echo"}),
            Some(json!({"function": "std.log", "args": {"note": "after ran"}})),
        ),
    );
    wait_phase(
        ns.name(),
        "task",
        "after",
        "Succeeded",
        Duration::from_secs(60),
    )
    .await;
    wait_for(
        "the new task's continuation",
        Duration::from_secs(30),
        || async { (logged(&w2, "after ran") == 1).then_some(()) },
    )
    .await;
    // Nothing ran again: no continuation logged on the new store's worker,
    // the statuses are as they were, one Succeeded Event.
    for marker in ["sum done", "done-0 ran", "done-4 ran", "unfinished ran"] {
        assert_eq!(logged(&w2, marker), 0, "{marker} ran again");
    }
    let again = status(ns.name(), "task", "sum-4-5");
    assert_eq!(again, done, "the finished status was left alone");
    let succeeded = events(ns.name(), "sum-4-5", "Succeeded");
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert!(
        succeeded[0]["count"].as_u64().unwrap_or(1) <= 1 && succeeded[0]["series"].is_null(),
        "one Succeeded Event, not a series: {succeeded:?}"
    );
    let held = op2.engine_objects();
    assert!(
        !held
            .iter()
            .any(|o| o.ends_with("sum-4-5") || o.ends_with("unfinished")),
        "submitted to the new store: {held:?}"
    );
    // The unfinished one is not run again unasked: it ends StoreReplaced.
    let orphan = wait_phase(
        ns.name(),
        "task",
        "unfinished",
        "Failed",
        Duration::from_secs(60),
    )
    .await;
    // The lost run says why and how to run it again.
    assert!(old_store.starts_with("st-"), "a store id: {done}");
    let message = orphan["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(&old_store), "{orphan}");
    let reasons: Vec<&str> = orphan["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"StoreReplaced"), "{orphan}");
    let new_store = message
        .split("kontinuum.dev/rerun=")
        .nth(1)
        .and_then(|s| {
            s.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .next()
        })
        .expect("the message names the store to rerun on")
        .to_string();
    assert_ne!(new_store, old_store);
    assert_eq!(
        orphan["storeId"],
        old_store.as_str(),
        "the store that held the run"
    );
    // Asked to, the lost run runs again on this store.
    kubectl(&[
        "annotate",
        "-n",
        ns.name(),
        "task/unfinished",
        &format!("kontinuum.dev/rerun={new_store}"),
    ]);
    wait_for("the rerun", Duration::from_secs(60), || async {
        let s = status(ns.name(), "task", "unfinished");
        (s["phase"] == "Running" && s["storeId"] == new_store.as_str()).then_some(())
    })
    .await;
    assert!(
        op2.engine_objects()
            .iter()
            .any(|o| o.ends_with("task/unfinished"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_tasks_leaves_nothing_in_the_engine_and_a_new_one_gets_its_continuation() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "leak").await;
    let dir = tempfile::tempdir().unwrap();
    let opts = OperatorOptions::watching(dir.path(), ns.name());
    let mut op = Operator::start(dir.path(), "a", &opts);
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op);
    // The smallest case: deleted while its continuation runs.
    apply(
        ns.name(),
        &task(
            "slow-cont",
            json!({"function": "std.echo"}),
            Some(json!({"function": "std.sleep", "args": {"ms": 4000}})),
        ),
    );
    wait_phase(
        ns.name(),
        "task",
        "slow-cont",
        "Succeeded",
        Duration::from_secs(60),
    )
    .await;
    let deleted = Instant::now();
    kubectl(&["delete", "-n", ns.name(), "task/slow-cont", "--wait=true"]);
    wait_for(
        "the engine to forget slow-cont",
        Duration::from_secs(10),
        || async { op.engine_objects().is_empty().then_some(()) },
    )
    .await;
    assert!(
        deleted.elapsed() < Duration::from_secs(4),
        "the running continuation was cancelled, not waited for"
    );
    // 300 at once, deleted at once, whatever each had come to.
    let list: Vec<Value> = (0..300)
        .map(|i| {
            task(
                &format!("bulk-{i}"),
                json!({"function": "std.echo", "args": {"i": i}}),
                Some(json!({"function": "std.sleep", "args": {"ms": 500}})),
            )
        })
        .collect();
    let doc = json!({"apiVersion": "v1", "kind": "List", "items": list});
    kontinuum_e2e::kubectl_stdin(
        &["apply", "-n", ns.name(), "-f", "-"],
        Some(&doc.to_string()),
    );
    kubectl(&[
        "delete",
        "-n",
        ns.name(),
        "tasks",
        "--all",
        "--wait=true",
        "--timeout=120s",
    ]);
    wait_for(
        "the engine to be empty",
        Duration::from_secs(30),
        || async { op.engine_objects().is_empty().then_some(()) },
    )
    .await;
    // Still empty after a restart.
    assert!(op.proc.terminate(Duration::from_secs(30)).is_some());
    let mut op = Operator::start(dir.path(), "b", &opts);
    op.wait_ready(Duration::from_secs(60));
    let _w2 = worker(dir.path(), "2", &op);
    assert_eq!(op.engine_objects(), Vec::<String>::new());
    // Created again: a continuation of its own, under its name.
    apply(
        ns.name(),
        &task(
            "bulk-100",
            json!({"function": "std.echo", "args": {"run": "second"}}),
            Some(json!({"function": "std.echo", "args": {"note": "fresh"}})),
        ),
    );
    let s = wait_phase(
        ns.name(),
        "task",
        "bulk-100",
        "Succeeded",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(s["continuation"], "bulk-100.on-success");
    let cont = wait_for(
        "the continuation's record",
        Duration::from_secs(30),
        || async {
            op.engine_object(ns.name(), "task", "bulk-100.on-success")
                .filter(|o| o["status"]["phase"] == "Succeeded")
        },
    )
    .await;
    assert_eq!(
        cont["status"]["result"]["result"]["run"], "second",
        "this run's continuation: {cont}"
    );
    assert!(!op.proc.output().contains("continuation runs unnamed"));
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (these tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with a ballast file.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_probes_marks_what_runs_and_recovers_when_freed() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "disk").await;
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "64m");
    let opts = OperatorOptions {
        data: disk.0.join("store"),
        // A port of its own that survives the restart in place.
        api_port: Some(kontinuum_e2e::procs::free_port()),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut op = Operator::start(dir.path(), "a", &opts);
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op);
    apply(
        ns.name(),
        &json!({
            "apiVersion": "kontinuum.dev/v1alpha1",
            "kind": "HierarchicalFuture",
            "metadata": {"name": "long"},
            "spec": {"map": {
                "source": {"range": {"start": 0, "end": 600}},
                "function": {"function": "std.sleep", "args": {"ms": 100}},
                "shardSize": 2,
                "reduce": "count"
            }}
        }),
    );
    wait_for("progress", Duration::from_secs(60), || async {
        let s = status(ns.name(), "future", "long");
        (s["progress"]["done"].as_u64().unwrap_or(0) > 20).then_some(())
    })
    .await;
    let ballast = fill(&disk.0);
    // The probes say why, with the reason.
    let (code, body) = wait_for("/healthz to fail", Duration::from_secs(30), || async {
        http_get(&format!("{}/healthz", op.metrics)).filter(|(code, _)| *code == 503)
    })
    .await;
    assert!(body.contains("store failed"), "{code} {body}");
    assert_eq!(
        kontinuum_e2e::procs::http_status(&format!("{}/readyz", op.metrics)),
        Some(503)
    );
    // The running future says the engine stopped, with an Event.
    let stopped = wait_for(
        "the EngineStopped condition",
        Duration::from_secs(30),
        || async {
            let s = status(ns.name(), "future", "long");
            has_condition(&s, "EngineStopped").then_some(s)
        },
    )
    .await;
    assert_eq!(stopped["phase"], "Running", "{stopped}");
    wait_for(
        "the EngineStopped Event",
        Duration::from_secs(30),
        || async { (!events(ns.name(), "long", "EngineStopped").is_empty()).then_some(()) },
    )
    .await;
    // Space comes back: the operator (restarting in place) recovers and
    // the map ends exactly.
    std::fs::remove_file(ballast).unwrap();
    op.wait_ready(Duration::from_secs(90));
    let done = wait_phase(
        ns.name(),
        "future",
        "long",
        "Succeeded",
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(done["result"], 600, "each item counted once: {done}");
    assert!(!has_condition(&done, "EngineStopped"), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_outlives_an_api_server_that_goes_and_comes_back() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "apigone").await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(api_server_addr(&kubeconfig())).await;
    let proxied = dir.path().join("kubeconfig");
    proxy.kubeconfig(&kubeconfig(), &proxied);
    let opts = OperatorOptions {
        leader_elect: true,
        lease_name: "kontinuum-apigone".into(),
        api_port: Some(kontinuum_e2e::procs::free_port()),
        kubeconfig: Some(proxied),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut op = Operator::start(dir.path(), "a", &opts);
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op);
    proxy.cut();
    // Longer than the renew deadline and the lease duration.
    wait_for(
        "the operator to step down",
        Duration::from_secs(30),
        || async { (!op.is_leading()).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        op.proc.running(),
        "it waits instead of exiting:\n{}",
        op.proc.output()
    );
    proxy.restore();
    let back = Instant::now();
    op.wait_ready(Duration::from_secs(60));
    let took = back.elapsed();
    eprintln!("led again {took:?} after the API server came back");
    // Its own Lease (same identity): no wait for it to expire.
    assert!(took < Duration::from_secs(15), "{took:?}");
    apply(
        ns.name(),
        &task(
            "after",
            json!({"function": "std.sum", "args": {"a": 2, "b": 3}}),
            None,
        ),
    );
    let s = wait_phase(
        ns.name(),
        "task",
        "after",
        "Succeeded",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(s["result"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_takes_its_own_lease_back_at_once() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "relead").await;
    let dir = tempfile::tempdir().unwrap();
    let opts = OperatorOptions {
        leader_elect: true,
        lease_name: "kontinuum-relead".into(),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut op = Operator::start(dir.path(), "a", &opts);
    op.wait_ready(Duration::from_secs(60));
    op.proc.kill9();
    let restarted = Instant::now();
    let mut again = Operator::start(dir.path(), "b", &opts);
    again.wait_ready(Duration::from_secs(60));
    let took = restarted.elapsed();
    eprintln!("the restarted operator led {took:?} after start");
    // The Lease lasts 15 s; a stranger would wait that long.
    assert!(
        took < Duration::from_secs(8),
        "{took:?}:\n{}",
        again.proc.output()
    );
    assert!(!again.proc.output().contains("another replica leads"));
}
