//! Users' own code on the real node. An image no one in the project wrote
//! (Debian 12 with Python 3, made by mmdebstrap from Debian's mirror) is a
//! WorkerPool's image: the operator injects `kontinuum-worker` into it, the
//! worker serves the user's Python functions through the handler protocol,
//! in a namespace that enforces Pod Security `restricted`. Then a Rust SDK
//! worker packed by `scripts/build-image --worker` runs the seed examples
//! from a pool that starts at zero.

use std::process::Command;
use std::time::Duration;

use kontinuum_e2e::{
    TestNamespace, apply, client, helm, import_image, kubectl, kubectl_stdin, real_node,
    real_node_placement, repo_root, wait_for,
};
use serde_json::{Value, json};

const RELEASE: &str = "kt-py";

/// The user's code, as a ConfigMap would hold it.
const TASKS_PY: &str = r#"
import os, time
import kontinuum

@kontinuum.function("py.square")
def square(item):
    return item * item

@kontinuum.function("py.slow_square")
def slow_square(item, ms):
    time.sleep(ms / 1000.0)
    return item * item

@kontinuum.function("py.do_sum")
def do_sum(a, b):
    return a + b

@kontinuum.function("py.add_c")
def add_c(result, c):
    print("continuation got %s in pid %d" % (result, os.getpid()))
    return result + c

@kontinuum.function("py.fail")
def fail(message):
    raise ValueError(message)

if __name__ == "__main__":
    kontinuum.serve()
"#;

/// Imports an OCI archive into the real node; returns the names imported.
fn import(archive: &std::path::Path) -> String {
    let out = Command::new(repo_root().join("tests/cluster/import-image.sh"))
        .arg(archive)
        .output()
        .expect("run import-image.sh");
    assert!(
        out.status.success(),
        "import {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tests/cluster/build.sh debian`'s archive (scripts/test builds it first).
fn debian_archive() -> std::path::PathBuf {
    let script = repo_root().join("tests/cluster/build.sh");
    let built = Command::new(&script)
        .arg("debian")
        .status()
        .expect("build.sh debian");
    assert!(built.success(), "tests/cluster/build.sh debian failed");
    let root = Command::new(&script)
        .arg("root:debian")
        .output()
        .expect("build.sh root:debian");
    std::path::PathBuf::from(String::from_utf8_lossy(&root.stdout).trim())
        .join("debian-python.oci.tar")
}

fn status(ns: &str, kind: &str, name: &str) -> Value {
    let out = kubectl(&["get", "-n", ns, kind, name, "-o", "json"]);
    serde_json::from_str::<Value>(&out)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

async fn final_status(ns: &str, kind: &str, name: &str, timeout: Duration) -> Value {
    wait_for(&format!("{kind}/{name} to finish"), timeout, || async {
        let s = status(ns, kind, name);
        matches!(
            s["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Cancelled")
        )
        .then_some(s)
    })
    .await
}

/// An engine object read through the operator's Service with a worker
/// token of `ns` (what reads a continuation in a cluster today).
fn engine_object(service: &str, ns: &str, kind: &str, name: &str) -> Option<Value> {
    let token = kubectl(&[
        "create",
        "token",
        "default",
        "-n",
        ns,
        "--audience",
        "kontinuum.dev",
    ]);
    kontinuum_e2e::procs::api_get(
        &format!("http://{service}:7070"),
        token.trim(),
        &format!("/v1/objects/{ns}/{kind}/{name}"),
    )
}

fn pool_pods(ns: &str, pool: &str) -> Vec<Value> {
    let out = kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("kontinuum.dev/pool={pool}"),
        "-o",
        "json",
    ]);
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn pool_logs(ns: &str, pool: &str) -> String {
    let r = kontinuum_e2e::kubectl_result(
        &[
            "logs",
            "-n",
            ns,
            "-l",
            &format!("kontinuum.dev/pool={pool}"),
            "--tail=-1",
            "-c",
            "worker",
        ],
        None,
    );
    r.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_python_in_a_stock_debian_image_and_an_sdk_worker_image_run_from_kubectl() {
    let client = client().await;
    real_node(&client).await;
    let system = TestNamespace::create(&client, "py-system").await;
    let jobs = TestNamespace::create(&client, "py-jobs").await;
    let (system, jobs) = (system.name().to_owned(), jobs.name().to_owned());
    kubectl(&[
        "label",
        "namespace",
        &jobs,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let tag = import_image();
    let debian = import(&debian_archive());
    assert!(
        debian.contains("kontinuum.test/debian-python:12"),
        "{debian}"
    );

    let placement = real_node_placement();
    let _release =
        helm::install_on_real_node(RELEASE, &system, &tag, &[system.as_str(), jobs.as_str()]);
    let service = kubectl(&[
        "get",
        "services",
        "-n",
        &system,
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "jsonpath={.items[0].spec.clusterIP}",
    ]);

    // The user's code and a pool of the stock Debian image, nothing else.
    let sdk = std::fs::read_to_string(repo_root().join("sdk/python/kontinuum.py")).unwrap();
    apply(
        &jobs,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
                "data": {"kontinuum.py": sdk, "tasks.py": TASKS_PY}}),
    );
    let mut pod_spec = placement.clone();
    pod_spec["containers"] = json!([{
        "name": "worker",
        "image": "kontinuum.test/debian-python:12",
        "imagePullPolicy": "Never",
        "volumeMounts": [{"name": "app", "mountPath": "/app"}],
    }]);
    pod_spec["volumes"] = json!([{"name": "app", "configMap": {"name": "app"}}]);
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "py"},
                "spec": {"concurrency": 8,
                         "worker": {"handler": "python3 /app/tasks.py", "handlerProcesses": 4},
                         "scaling": {"minReplicas": 0, "maxReplicas": 2, "targetPerReplica": 64,
                                     "scaleDownDelay": "60s"},
                         "template": {"spec": pod_spec}}}),
    );

    // A map of 100,000 items over a Python function, summed exactly.
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "py-squares"},
                "spec": {"pool": "py", "map": {"source": {"range": {"start": 0, "end": 100000}},
                         "function": {"function": "py.square"}, "shardSize": 2000,
                         "reduce": "sum"}}}),
    );
    let squares = final_status(&jobs, "future", "py-squares", Duration::from_secs(600)).await;
    assert_eq!(
        squares["phase"],
        "Succeeded",
        "{squares}\n{}",
        pool_logs(&jobs, "py")
    );
    assert_eq!(squares["result"], json!(333_328_333_350_000u64));
    let pods = pool_pods(&jobs, "py");
    assert!(!pods.is_empty());
    for pod in &pods {
        let spec = &pod["spec"];
        assert_eq!(
            spec["initContainers"][0]["name"], "kontinuum-worker-install",
            "{pod}"
        );
        assert_eq!(
            spec["containers"][0]["image"],
            "kontinuum.test/debian-python:12"
        );
    }

    // A Python function whose continuation is another Python function.
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "py-sum"},
                "spec": {"pool": "py", "call": {"function": "py.do_sum", "args": {"a": 4, "b": 5}},
                         "onSuccess": {"function": "py.add_c", "args": {"c": 7}}}}),
    );
    let sum = final_status(&jobs, "task", "py-sum", Duration::from_secs(120)).await;
    assert_eq!(
        (sum["phase"].clone(), sum["result"].clone()),
        (json!("Succeeded"), json!(9))
    );
    assert_eq!(sum["continuation"], "py-sum.on-success");
    let cont = wait_for(
        "the continuation's result",
        Duration::from_secs(60),
        || async {
            engine_object(&service, &jobs, "task", "py-sum.on-success")
                .filter(|o| o["status"]["phase"] == "Succeeded")
        },
    )
    .await;
    assert_eq!(cont["status"]["result"], 16, "{cont}");
    assert!(pool_logs(&jobs, "py").contains("continuation got 9"));

    // A Python exception: retried, then Failed with the Python message.
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "py-fails"},
                "spec": {"pool": "py", "call": {"function": "py.fail",
                                                 "args": {"message": "the ledger is locked"}},
                         "retry": {"maxAttempts": 3, "backoff": {"initial": "100ms"}}}}),
    );
    let failed = final_status(&jobs, "task", "py-fails", Duration::from_secs(120)).await;
    assert_eq!(failed["phase"], "Failed");
    assert_eq!(failed["attempts"], 3);
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ValueError: the ledger is locked"),
        "{failed}"
    );

    // std.exec runs the image's own python3 in the same pool.
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "py-exec"},
                "spec": {"pool": "py", "call": {"function": "std.exec", "args": {
                    "command": ["python3", "-c",
                                "import json, sys; print(json.dumps({'total': sum(json.load(sys.stdin))}))"],
                    "stdin": [1, 2, 3, 4]}}}}),
    );
    let exec = final_status(&jobs, "task", "py-exec", Duration::from_secs(120)).await;
    assert_eq!(exec["result"], json!({"total": 10}), "{exec}");

    // kill -9 of the handler processes mid-map: their calls run again, the
    // sum stays exact.
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "py-slow"},
                "spec": {"pool": "py", "map": {"source": {"range": {"start": 0, "end": 160}},
                         "function": {"function": "py.slow_square", "args": {"ms": 250}},
                         "shardSize": 4, "reduce": "sum"}}}),
    );
    wait_for(
        "the slow map to be under way",
        Duration::from_secs(120),
        || async {
            let s = status(&jobs, "future", "py-slow");
            (s["progress"]["done"].as_u64().unwrap_or(0) >= 8).then_some(())
        },
    )
    .await;
    let killed = Command::new("pkill")
        .args(["-9", "-f", "python3 /app/tasks.py"])
        .status()
        .unwrap();
    assert!(killed.success(), "no handler process found to kill");
    let slow = final_status(&jobs, "future", "py-slow", Duration::from_secs(300)).await;
    assert_eq!(slow["phase"], "Succeeded", "{slow}");
    let expected: u64 = (0..160u64).map(|i| i * i).sum();
    assert_eq!(slow["result"], expected, "each item once, despite the kill");
    let logs = pool_logs(&jobs, "py");
    assert!(
        logs.contains("signal: 9") || logs.contains("SIGKILL") || logs.contains("killed"),
        "the worker says its handler was killed:\n{}",
        &logs[logs.len().saturating_sub(3000)..]
    );

    // A Rust SDK worker packed by the image command, from a pool at zero.
    let archive = Command::new(repo_root().join("scripts/build-image"))
        .args(["--worker", "kontinuum-seed-worker"])
        .output()
        .expect("scripts/build-image --worker");
    assert!(
        archive.status.success(),
        "{}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let names = import(std::path::Path::new(
        String::from_utf8_lossy(&archive.stdout).trim(),
    ));
    let seed_image = names
        .lines()
        .find(|n| n.contains("kontinuum-seed-worker"))
        .expect("the seed worker's image")
        .to_owned();
    let mut seed_spec = placement.clone();
    seed_spec["containers"] =
        json!([{"name": "worker", "image": seed_image, "imagePullPolicy": "Never"}]);
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "seed"},
                "spec": {"concurrency": 8, "worker": {"inject": false},
                         "scaling": {"minReplicas": 0, "maxReplicas": 2, "scaleDownDelay": "30s"},
                         "template": {"spec": seed_spec}}}),
    );
    assert!(
        pool_pods(&jobs, "seed").is_empty(),
        "the pool starts at zero"
    );
    kubectl_stdin(
        &["apply", "-n", &jobs, "-f", "-"],
        Some(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: seed-sum}\n\
             spec:\n  pool: seed\n  call: {function: seed.do_sum, args: {a: 4, b: 5}}\n  \
             onSuccess: {function: seed.add_c, args: {c: 7}}\n",
        ),
    );
    let seed = final_status(&jobs, "task", "seed-sum", Duration::from_secs(180)).await;
    assert_eq!(seed["result"], 9, "{seed}");
    let cont = wait_for("the seed continuation", Duration::from_secs(60), || async {
        engine_object(&service, &jobs, "task", "seed-sum.on-success")
            .filter(|o| o["status"]["phase"] == "Succeeded")
    })
    .await;
    assert_eq!(cont["status"]["result"], 16, "{cont}");
    let functions = kubectl(&[
        "get",
        "workerpool",
        "seed",
        "-n",
        &jobs,
        "-o",
        "jsonpath={.status.functions}",
    ]);
    assert!(functions.contains("seed.do_sum"), "{functions}");
    let seed_pods = pool_pods(&jobs, "seed");
    assert!(
        seed_pods
            .iter()
            .all(|p| p["spec"].get("initContainers").is_none()),
        "nothing injected"
    );
}
