//! The chart against the real control plane: what it renders is accepted by
//! the API server, `helm install` creates every object and a Running
//! operator pod (kwok runs no container, so the image need not exist),
//! `helm upgrade` rolls the pod, `helm uninstall` leaves only the CRDs, and
//! the store's claim binds. RBAC is checked with `kubectl auth can-i`.

use std::time::Duration;

use kontinuum_e2e::{
    CRD_NAMES, TestNamespace, client, ensure_crds, helm, kubectl, kubectl_result, kubectl_stdin,
    wait_for,
};
use serde_json::Value;

const RELEASE: &str = "kontinuum";
const TIMEOUT: Duration = Duration::from_secs(180);

fn install(ns: &str, extra: &[&str]) {
    let chart = helm::chart();
    let mut args = vec!["install", RELEASE, chart.as_str(), "--namespace", ns];
    args.extend_from_slice(extra);
    helm::ok(helm::cluster(&args), &args);
}

fn uninstall(ns: &str) {
    let args = [
        "uninstall",
        RELEASE,
        "--namespace",
        ns,
        "--wait",
        "--timeout",
        "120s",
    ];
    helm::ok(helm::cluster(&args), &args);
}

/// (kind, namespace, name) of every object of the release's manifest.
fn release_objects(ns: &str) -> Vec<(String, String, String)> {
    let args = ["get", "manifest", RELEASE, "--namespace", ns];
    let manifest = helm::ok(helm::cluster(&args), &args);
    helm::documents(&manifest)
        .iter()
        .map(|d| {
            let s = |p: &str| {
                d.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
        })
        .collect()
}

fn exists(kind: &str, ns: &str, name: &str) -> bool {
    let mut args = vec!["get", kind, name, "--ignore-not-found", "-o", "name"];
    if !ns.is_empty() {
        args.extend(["--namespace", ns]);
    }
    !kubectl(&args).trim().is_empty()
}

/// The operator pods of the release that are not being deleted.
fn operator_pods(ns: &str) -> Vec<Value> {
    let out = kubectl(&[
        "get",
        "pods",
        "--namespace",
        ns,
        "-o",
        "json",
        "-l",
        "app.kubernetes.io/instance=kontinuum,app.kubernetes.io/component=operator",
    ]);
    let list: Value = serde_json::from_str(&out).expect("pod list JSON");
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .collect()
}

/// Waits until exactly one operator pod is Running and returns its
/// pod-template-hash, after checking it was scheduled on a node.
async fn running_operator(ns: &str) -> String {
    let pod = wait_for("one Running operator pod", TIMEOUT, || async {
        let pods = operator_pods(ns);
        (pods.len() == 1 && pods[0]["status"]["phase"] == "Running").then(|| pods[0].clone())
    })
    .await;
    assert!(
        pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "not scheduled: {pod}"
    );
    pod["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("pod-template-hash")
        .to_owned()
}

/// `kubectl auth can-i` as the operator's ServiceAccount. `what` is
/// `RESOURCE[/NAME][:SUBRESOURCE]`.
fn can(ns: &str, verb: &str, what: &str, in_ns: &str) -> bool {
    let who = format!("system:serviceaccount:{ns}:{RELEASE}");
    let (resource, sub) = what.split_once(':').unwrap_or((what, ""));
    let sub = format!("--subresource={sub}");
    let mut args = vec![
        "auth",
        "can-i",
        verb,
        resource,
        "--namespace",
        in_ns,
        "--as",
        &who,
    ];
    if sub != "--subresource=" {
        args.push(&sub);
    }
    let r = kubectl_result(&args, None);
    assert!(
        r.stdout.trim() == "yes" || r.stdout.trim() == "no",
        "kubectl {}: {}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout.trim() == "yes"
}

#[tokio::test]
async fn rendered_manifests_pass_server_side_dry_run() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "chart-dry").await;
    for extra in [
        &[][..],
        &[
            "--set",
            "persistence.enabled=false",
            "--set",
            "workerPool.scaling=null",
            "--set",
            "workerPool.replicas=2",
        ][..],
        &[
            "--set",
            "finalizerPolicy.enabled=true",
            "--set",
            "tokenSecret=shared",
            "--set",
            "persistence.storageClass=-",
            "--set",
            "persistence.retainOnUninstall=true",
        ][..],
    ] {
        let mut args = extra.to_vec();
        let watch = format!("watchNamespaces={{{}}}", ns.name());
        args.extend(["--set", &watch]);
        let rendered = helm::template(ns.name(), &args);
        kubectl_stdin(
            &[
                "apply",
                "--dry-run=server",
                "--namespace",
                ns.name(),
                "-f",
                "-",
            ],
            Some(&rendered),
        );
    }
}

#[tokio::test]
async fn install_upgrade_uninstall_leave_nothing_but_the_crds() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "chart").await;
    let ns = ns.name();
    install(ns, &["--set", "persistence.enabled=false"]);

    let objects = release_objects(ns);
    let kinds: Vec<&str> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
    for k in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "WorkerPool",
        "ConfigMap",
        // `auto`: this cluster serves admissionregistration.k8s.io/v1 ones.
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(&k), "the release has no {k}: {kinds:?}");
    }
    for (kind, obj_ns, name) in &objects {
        assert!(
            exists(kind, obj_ns, name),
            "{kind} {obj_ns}/{name} was not created"
        );
    }
    let first = running_operator(ns).await;

    // RBAC: what the operator needs, and a sample of what it must not do.
    for (verb, what) in [
        ("watch", "tasks.kontinuum.dev"),
        ("list", "workerpools.kontinuum.dev"),
        ("patch", "futures.kontinuum.dev"),
        ("patch", "tasks.kontinuum.dev:status"),
        ("patch", "futures.kontinuum.dev:status"),
        ("patch", "workerpools.kontinuum.dev:status"),
        ("update", "workerpools.kontinuum.dev:finalizers"),
        ("delete", "tasks.kontinuum.dev"),
        // The uninstall hook, as the same ServiceAccount.
        ("delete", "workerpools.kontinuum.dev"),
        ("create", "futures.kontinuum.dev"),
        ("create", "deployments.apps"),
        ("patch", "deployments.apps"),
        ("patch", "pods"),
        ("create", "events.events.k8s.io"),
        ("patch", "events"),
        ("create", "tokenreviews.authentication.k8s.io"),
        ("create", "leases.coordination.k8s.io"),
        ("update", "leases.coordination.k8s.io/kontinuum"),
        ("delete", "leases.coordination.k8s.io/kontinuum"),
    ] {
        assert!(can(ns, verb, what, ns), "the operator cannot {verb} {what}");
    }
    for (verb, what, in_ns) in [
        ("get", "secrets", ns),
        ("create", "workerpools.kontinuum.dev", ns),
        ("update", "tasks.kontinuum.dev:status", ns),
        ("create", "pods", ns),
        ("patch", "deployments.apps:scale", ns),
        ("update", "leases.coordination.k8s.io/other", ns),
        ("delete", "leases.coordination.k8s.io/other", ns),
        ("create", "leases.coordination.k8s.io", "default"),
        ("create", "clusterroles.rbac.authorization.k8s.io", ns),
    ] {
        assert!(
            !can(ns, verb, what, in_ns),
            "the operator may {verb} {what} in {in_ns}: more than it needs"
        );
    }

    // A changed value changes the pod template: Recreate replaces the pod.
    let chart = helm::chart();
    let args = [
        "upgrade",
        RELEASE,
        chart.as_str(),
        "--namespace",
        ns,
        "--reuse-values",
        "--set",
        "logLevel=debug",
    ];
    helm::ok(helm::cluster(&args), &args);
    let second = wait_for("the upgraded operator pod", TIMEOUT, || async {
        let pods = operator_pods(ns);
        let p = pods.first()?;
        let hash = p["metadata"]["labels"]["pod-template-hash"].as_str()?;
        (pods.len() == 1 && hash != first && p["status"]["phase"] == "Running")
            .then(|| hash.to_owned())
    })
    .await;
    assert_ne!(first, second);
    let env = kubectl(&[
        "get",
        "deployment",
        RELEASE,
        "--namespace",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"RUST_LOG\")].value}",
    ]);
    assert_eq!(env, "debug");

    uninstall(ns);
    for (kind, obj_ns, name) in &objects {
        let (kind, obj_ns, name) = (kind.clone(), obj_ns.clone(), name.clone());
        wait_for(&format!("{kind} {obj_ns}/{name} to go"), TIMEOUT, || {
            let gone = !exists(&kind, &obj_ns, &name);
            async move { gone.then_some(()) }
        })
        .await;
    }
    let sel = "app.kubernetes.io/instance=kontinuum";
    let left = kubectl(&[
        "get",
        "all,pvc,configmaps,serviceaccounts,roles,rolebindings,workerpools",
        "--namespace",
        ns,
        "-l",
        sel,
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "left in the namespace: {left}");
    wait_for("no operator pod", TIMEOUT, || async {
        operator_pods(ns).is_empty().then_some(())
    })
    .await;
    let cluster_left = kubectl(&[
        "get",
        "clusterroles,clusterrolebindings,mutatingadmissionpolicies,mutatingadmissionpolicybindings",
        "-l",
        &format!("{sel},app.kubernetes.io/name=kontinuum"),
        "-o",
        "name",
    ]);
    let ours: Vec<&str> = cluster_left.lines().filter(|l| l.contains(ns)).collect();
    assert!(ours.is_empty(), "cluster objects left: {ours:?}");
    for crd in CRD_NAMES {
        assert!(
            exists("crd", "", crd),
            "helm uninstall removed the CRD {crd}"
        );
    }
}

#[tokio::test]
async fn the_store_claim_binds_with_default_values() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "chart-pvc").await;
    let ns = ns.name();
    install(ns, &[]);
    let classes = kubectl(&["get", "storageclass", "-o", "json"]);
    let classes: Value = serde_json::from_str(&classes).expect("storageclass list");
    let default = classes["items"].as_array().into_iter().flatten().any(|c| {
        c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    });
    assert!(
        default,
        "the test cluster has no default StorageClass, so the chart's PersistentVolumeClaim \
         kontinuum-data can never bind: tests/cluster/up.sh must create one with a provisioner"
    );
    wait_for(
        "PersistentVolumeClaim kontinuum-data to be Bound",
        TIMEOUT,
        || async {
            let phase = kubectl(&[
                "get",
                "pvc",
                "kontinuum-data",
                "--namespace",
                ns,
                "-o",
                "jsonpath={.status.phase}",
            ]);
            (phase == "Bound").then_some(())
        },
    )
    .await;
    running_operator(ns).await;
    uninstall(ns);
    wait_for("the claim to go with the release", TIMEOUT, || async {
        (!exists("pvc", ns, "kontinuum-data")).then_some(())
    })
    .await;
}

/// The heredoc blocks of NOTES.txt (`... apply -f - <<'YAML'` up to a line
/// `YAML`), so a user who pastes them gets valid shell and valid objects.
fn notes_manifests(notes: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = notes.lines();
    while let Some(line) = lines.next() {
        if line.ends_with("apply -f - <<'YAML'") {
            assert!(!line.starts_with(' '), "an indented command: {line}");
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "YAML").collect();
            out.push(body.join("\n"));
        }
    }
    out
}

#[tokio::test]
async fn the_first_job_of_the_notes_is_valid() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "chart-notes").await;
    let chart = helm::chart();
    let args = [
        "install",
        RELEASE,
        chart.as_str(),
        "--namespace",
        ns.name(),
        "--dry-run=client",
    ];
    let out = helm::ok(helm::cluster(&args), &args);
    let notes = out
        .split_once("NOTES:")
        .map(|(_, n)| n)
        .expect("NOTES in helm's output");
    let manifests = notes_manifests(notes);
    assert_eq!(
        manifests.len(),
        2,
        "a future and a WorkerPool in the NOTES:\n{notes}"
    );
    assert!(
        manifests[0].contains("kind: HierarchicalFuture"),
        "{}",
        manifests[0]
    );
    for m in manifests {
        kubectl_stdin(
            &[
                "apply",
                "--dry-run=server",
                "--namespace",
                ns.name(),
                "-f",
                "-",
            ],
            Some(&m),
        );
    }
    assert!(notes.contains("get futures -w"), "{notes}");
}
