//! The operator on the real control plane: resources applied with kubectl
//! run on the engine and their status fills in.

use kontinuum_e2e::procs::{
    Operator, OperatorOptions, assert_admission_probed, kontinuum_run_json,
};
use kontinuum_e2e::{
    TestNamespace, client, ensure_crds, helm, kubectl, kubectl_result, kubectl_stdin, repo_root,
    wait_for, writes_by, yaml_files,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// An operator watching only `ns`, and one worker of the default pool.
struct Setup {
    _dir: tempfile::TempDir,
    operator: Operator,
    _worker: kontinuum_e2e::procs::Proc,
}

fn start(ns: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = Operator::start(dir.path(), "a", &OperatorOptions::watching(dir.path(), ns));
    operator.wait_ready(Duration::from_secs(60));
    let worker = operator.worker(dir.path(), "1", &["--concurrency", "8"]);
    Setup {
        _dir: dir,
        operator,
        _worker: worker,
    }
}

/// The manifest's documents as JSON, `lines` paths made absolute (the
/// workers read them; out of cluster they share this machine's filesystem).
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    let base = file.parent().unwrap();
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v = <Value as serde::Deserialize>::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        if let Some(Value::String(p)) = v.pointer_mut("/spec/map/source/lines/path")
            && !Path::new(p.as_str()).is_absolute()
        {
            *p = base.join(&*p).to_string_lossy().into_owned();
        }
        docs.push(v);
    }
    docs
}

fn apply(ns: &str, docs: &[Value]) {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&list.to_string()));
}

fn resource(kind: &str) -> &'static str {
    if kind == "Task" {
        "tasks.kontinuum.dev"
    } else {
        "futures.kontinuum.dev"
    }
}

fn get(ns: &str, kind: &str, name: &str) -> Option<Value> {
    let r = kubectl_result(&["get", "-n", ns, resource(kind), name, "-o", "json"], None);
    r.success.then(|| serde_json::from_str(&r.stdout).unwrap())
}

fn is_final(status: &Value) -> bool {
    matches!(
        status["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Cancelled" | "Merged")
    )
}

/// Waits until every document's resource shows a final phase; returns
/// name → status.
fn wait_final(ns: &str, docs: &[Value], timeout: Duration) -> BTreeMap<String, Value> {
    let start = Instant::now();
    loop {
        let mut done = BTreeMap::new();
        for d in docs {
            let (kind, name) = (
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap(),
            );
            if let Some(obj) = get(ns, kind, name)
                && is_final(&obj["status"])
            {
                done.insert(name.to_string(), obj["status"].clone());
            }
        }
        if done.len() == docs.len() {
            return done;
        }
        assert!(
            start.elapsed() < timeout,
            "not final after {timeout:?}: {:?} of {:?}",
            done.keys().collect::<Vec<_>>(),
            docs.iter()
                .map(|d| d["metadata"]["name"].clone())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// What to compare between `kontinuum run` and the cluster: the phase and
/// the result (or, for Merged calls, only the phase: which call of a
/// debounced or exclusive group runs depends on arrival order).
fn verdict(status: &Value) -> (String, Value) {
    let phase = status["phase"].as_str().unwrap_or_default().to_string();
    let result = if phase == "Merged" {
        Value::Null
    } else {
        status["result"].clone()
    };
    (phase, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_ends_as_kontinuum_run_says() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "examples").await;
    let setup = start(ns.name());
    for file in yaml_files(&repo_root().join("examples")) {
        let (out, expected) = kontinuum_run_json(&file);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "kontinuum run {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: Vec<Value> = match expected["kind"].as_str() {
            Some("List") => expected["items"].as_array().unwrap().clone(),
            _ => vec![expected],
        };
        let docs = documents(&file);
        apply(ns.name(), &docs);
        let got = wait_final(ns.name(), &docs, Duration::from_secs(120));
        let mut want_verdicts: Vec<(String, Value)> =
            expected.iter().map(|o| verdict(&o["status"])).collect();
        let mut got_verdicts: Vec<(String, Value)> = got.values().map(verdict).collect();
        want_verdicts.sort_by_key(|v| format!("{v:?}"));
        got_verdicts.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(
            got_verdicts,
            want_verdicts,
            "{}: the cluster and `kontinuum run` disagree\noperator log:\n{}",
            file.display(),
            setup.operator.proc.output()
        );
        // Status carries the generation it describes and the Accepted condition.
        for (name, status) in &got {
            assert_eq!(status["observedGeneration"], 1, "{name}: {status}");
        }
    }
    let _ = kubectl(&["get", "-n", ns.name(), "futures,tasks"]);
}

const FINALIZER: &str = "kontinuum.dev/cancel";

fn finalizers(obj: &Value) -> Vec<String> {
    serde_json::from_value(obj["metadata"]["finalizers"].clone()).unwrap_or_default()
}

/// What a server-side dry run of creating `task` in `ns` would store.
fn dry_run_create(ns: &str, task: &Value) -> Value {
    let out = kubectl_stdin(
        &[
            "create",
            "--dry-run=server",
            "-n",
            ns,
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&task.to_string()),
    );
    serde_json::from_str(&out).unwrap()
}

/// Deletes what it applied when dropped (also when the test fails).
struct Applied(String);

impl Drop for Applied {
    fn drop(&mut self) {
        let _ = kubectl_result(&["delete", "--ignore-not-found", "-f", "-"], Some(&self.0));
    }
}

/// The chart's MutatingAdmissionPolicy puts the finalizer on as the API
/// server creates the resource: the operator writes no metadata of its own,
/// a finalizer the resource brings is kept, deleting releases ours and
/// only ours, and a namespace outside the binding is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_finalizer_policy_spares_the_operator_a_write() {
    ensure_crds().await;
    let c = client().await;
    let served = TestNamespace::create(&c, "fin-policy").await;
    let other = TestNamespace::create(&c, "fin-other").await;
    let ns = served.name();
    let watch = format!("watchNamespaces={{{ns}}}");
    let rendered = helm::template(
        ns,
        &[
            "--set",
            "finalizerPolicy.enabled=true",
            "--set",
            &watch,
            "--show-only",
            "templates/finalizer-policy.yaml",
        ],
    );
    kubectl_stdin(&["apply", "-f", "-"], Some(&rendered));
    let _policy = Applied(rendered);
    let task = |name: &str, call: Value, finalizers: &[&str]| {
        serde_json::json!({
            "apiVersion": "kontinuum.dev/v1alpha1",
            "kind": "Task",
            "metadata": {"name": name, "finalizers": finalizers},
            "spec": {"call": call},
        })
    };
    let echo = serde_json::json!({"function": "std.echo", "args": {"n": 1}});
    // The API server picks a new policy up within moments.
    wait_for("the policy to take effect", Duration::from_secs(60), || {
        let probe = dry_run_create(ns, &task("probe", echo.clone(), &[]));
        async move {
            finalizers(&probe)
                .contains(&FINALIZER.to_string())
                .then_some(())
        }
    })
    .await;
    let outside = dry_run_create(other.name(), &task("probe", echo.clone(), &[]));
    assert!(
        finalizers(&outside).is_empty(),
        "the binding reaches a namespace it does not name: {outside}"
    );

    let setup = start(ns);
    assert_admission_probed(&setup.operator.proc.output(), ns);
    let sleep = serde_json::json!({"function": "std.sleep", "args": {"ms": 120_000}});
    apply(
        ns,
        &[
            task("quick", echo, &[]),
            task("kept", sleep, &["example.com/keep"]),
        ],
    );
    let quick = wait_final(
        ns,
        &[task("quick", Value::Null, &[])],
        Duration::from_secs(60),
    );
    assert_eq!(quick["quick"]["phase"], "Succeeded");
    let obj = get(ns, "Task", "quick").unwrap();
    assert_eq!(finalizers(&obj), [FINALIZER]);
    // Only the status (subresource) carries the operator's field manager:
    // it never wrote the resource's metadata.
    let (by_operator, managed) = writes_by("kontinuum-operator", ns, "task", "quick");
    assert_eq!(
        by_operator,
        ["kontinuum-operator/status"],
        "managers: {managed}"
    );

    // Deleting the running one cancels it and takes only our finalizer off.
    wait_for("kept to run", Duration::from_secs(60), || {
        let phase = get(ns, "Task", "kept").map(|o| o["status"]["phase"].clone());
        async move { (phase == Some(Value::from("Running"))).then_some(()) }
    })
    .await;
    kubectl(&["delete", "-n", ns, "task", "kept", "--wait=false"]);
    let left = wait_for("our finalizer released", Duration::from_secs(60), || {
        let obj = get(ns, "Task", "kept");
        async move { obj.filter(|o| !finalizers(o).contains(&FINALIZER.to_string())) }
    })
    .await;
    assert_eq!(finalizers(&left), ["example.com/keep"]);
    kubectl(&[
        "delete",
        "-n",
        ns,
        "task",
        "quick",
        "--wait=true",
        "--timeout=60s",
    ]);
    kubectl(&[
        "patch",
        "-n",
        ns,
        "task",
        "kept",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let log = setup.operator.proc.output();
    assert!(
        !log.contains("release the finalizer"),
        "the operator failed to release a finalizer:\n{log}"
    );
}
