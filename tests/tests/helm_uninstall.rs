//! `helm uninstall` on the real node never leaves a resource that cannot be
//! deleted: the chart's pre-delete hook (`kontinuum-operator uninstall`, in
//! a Job of the project's image) deletes the WorkerPools, Tasks and futures
//! of the namespaces the release serves while the operator still runs, so
//! the operator cancels their work and releases the kontinuum.dev/cancel
//! finalizer; with the operator down, the hook releases it itself after its
//! timeout. Namespaces the release does not serve are left alone.

use std::time::{Duration, Instant};

use kontinuum_e2e::{
    TestNamespace, apply, client, helm, import_image, kubectl, kubectl_result, real_node,
    real_node_placement, wait_for,
};
use serde_json::{Value, json};

const RELEASE: &str = "kt-uninstall";

fn names(ns: &str, kinds: &str) -> Vec<String> {
    kubectl(&["get", kinds, "-n", ns, "-o", "name"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn get(ns: &str, what: &str) -> Value {
    let out = kubectl(&["get", what, "-n", ns, "-o", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {what}: {e}: {out}"))
}

/// `helm uninstall` as a user types it; its wall time.
fn uninstall(ns: &str) -> Duration {
    let args = ["uninstall", RELEASE, "-n", ns, "--wait", "--timeout=4m"];
    let started = Instant::now();
    helm::ok(helm::cluster(&args), &args);
    started.elapsed()
}

async fn gone(ns: &str, kinds: &str) {
    wait_for(
        &format!("{kinds} in {ns} to be gone"),
        Duration::from_secs(60),
        || async { names(ns, kinds).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_cancels_and_removes_the_served_resources_and_leaves_none_stuck() {
    let client = client().await;
    real_node(&client).await;
    let system = TestNamespace::create(&client, "uninstall-system").await;
    let jobs = TestNamespace::create(&client, "uninstall-jobs").await;
    let unserved = TestNamespace::create(&client, "uninstall-unserved").await;
    let (system, jobs, unserved) = (system.name(), jobs.name(), unserved.name());
    let tag = import_image();
    let _release = helm::install_on_real_node(RELEASE, system, &tag, &[system, jobs]);

    // A pool on the real node running a long map, a finished Task, and a
    // Task that waits for a pool that does not exist.
    apply(
        jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "sleepers"},
                "spec": {"scaling": {"minReplicas": 0, "maxReplicas": 1},
                         "template": {"spec": real_node_placement()}}}),
    );
    apply(
        jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "naps"},
                "spec": {"pool": "sleepers",
                         "map": {"source": {"range": {"start": 0, "end": 100000}},
                                 "function": {"function": "std.sleep", "args": {"ms": 200}},
                                 "shardSize": 5, "reduce": "count"}}}),
    );
    apply(
        jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "done"},
                "spec": {"pool": "sleepers", "call": {"function": "std.echo", "args": {"x": 1}}}}),
    );
    apply(
        system,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "poolless"},
                "spec": {"pool": "nowhere", "call": {"function": "std.echo", "args": {}}}}),
    );
    // Not served by the release: no finalizer, and the hook leaves it.
    apply(
        unserved,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "elsewhere"},
                "spec": {"call": {"function": "std.echo", "args": {}}}}),
    );
    // With the chart on the real node, a job whose pool nothing serves says
    // so: reason NoWorkerPool, and a Warning Event with the command that
    // creates the pool.
    wait_for(
        "task/poolless to say NoWorkerPool",
        Duration::from_secs(60),
        || async {
            let task = get(system, "task/poolless");
            let reasons = task["status"]["conditions"].to_string();
            reasons.contains("NoWorkerPool").then_some(())
        },
    )
    .await;
    let warning = kubectl(&[
        "get",
        "events",
        "-n",
        system,
        "--field-selector",
        "reason=NoWorkerPool,involvedObject.name=poolless",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        warning.contains("'nowhere'") && warning.contains(&format!("kubectl apply -n {system}")),
        "{warning}"
    );
    wait_for("task/done to succeed", Duration::from_secs(180), || async {
        (get(jobs, "task/done")["status"]["phase"] == "Succeeded").then_some(())
    })
    .await;
    wait_for(
        "future/naps to make progress",
        Duration::from_secs(120),
        || async {
            let done = get(jobs, "future/naps")["status"]["progress"]["done"].as_u64();
            done.is_some_and(|d| d > 0).then_some(())
        },
    )
    .await;
    for (ns, what) in [
        (jobs, "future/naps"),
        (jobs, "task/done"),
        (system, "task/poolless"),
    ] {
        let finalizers = get(ns, what)["metadata"]["finalizers"].clone();
        assert_eq!(finalizers, json!(["kontinuum.dev/cancel"]), "{ns} {what}");
    }

    let took = uninstall(system);
    println!("helm uninstall with the operator up: {took:?}");
    for ns in [system, jobs] {
        gone(ns, "tasks,futures,workerpools").await;
    }
    // The hook releases finalizers itself only after its timeout (2m): the
    // operator released them, after cancelling their work in its engine.
    assert!(took < Duration::from_secs(60), "{took:?}");
    // The pool's workers go with it, and the hook's Job with its success.
    gone(jobs, "deployments,pods").await;
    gone(system, "jobs,pods").await;
    assert_eq!(names(unserved, "tasks"), ["task.kontinuum.dev/elsewhere"]);

    // Made after the release went, in a namespace it served: nothing puts
    // the finalizer on it, and it is deleted at once.
    apply(
        jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "after"},
                "spec": {"call": {"function": "std.echo", "args": {}}}}),
    );
    let deleted = kubectl_result(
        &["delete", "future", "after", "-n", jobs, "--timeout=20s"],
        None,
    );
    assert!(deleted.success, "{}", deleted.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_operator_down_the_hook_releases_the_finalizers_after_its_timeout() {
    let client = client().await;
    real_node(&client).await;
    let system = TestNamespace::create(&client, "uninstall-down").await;
    let system = system.name();
    let tag = import_image();
    let _release = helm::install_on_real_node_with(
        RELEASE,
        system,
        &tag,
        &[system],
        json!({"uninstallHook": {"timeout": "8s"}}),
    );
    apply(
        system,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "orphan"},
                "spec": {"pool": "nowhere", "call": {"function": "std.echo", "args": {}}}}),
    );
    wait_for(
        "the finalizer on task/orphan",
        Duration::from_secs(60),
        || async {
            (get(system, "task/orphan")["metadata"]["finalizers"]
                == json!(["kontinuum.dev/cancel"]))
            .then_some(())
        },
    )
    .await;
    let operator = format!("deployment/{RELEASE}-kontinuum");
    kubectl(&["scale", &operator, "-n", system, "--replicas=0"]);
    wait_for(
        "the operator pod to go",
        Duration::from_secs(60),
        || async {
            let pods = kubectl(&[
                "get",
                "pods",
                "-n",
                system,
                "-l",
                "app.kubernetes.io/component=operator",
                "-o",
                "name",
            ]);
            pods.trim().is_empty().then_some(())
        },
    )
    .await;

    let took = uninstall(system);
    println!("helm uninstall with the operator down (timeout 8s): {took:?}");
    // Nothing else could have released it: only the hook's timeout did.
    assert!(took >= Duration::from_secs(8), "{took:?}");
    gone(system, "tasks,futures,workerpools").await;
}
