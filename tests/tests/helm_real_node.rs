//! The path a user takes, with real containers on the real node
//! (`KONTINUUM_REAL_NODE=1`): the project's image imported into the node's
//! containerd, `helm install` of the chart, the operator pod Ready (leader,
//! store on its claim), then jobs whose worker pods start from zero, reach
//! the operator through its Service with their projected ServiceAccount
//! tokens and run the functions; `kubectl get futures` moving; a busy
//! worker pod and then the operator pod deleted mid-job with the results
//! still exact; Prometheus discovering and scraping the pods while every
//! dashboard query answers; the pool back at zero; `helm uninstall`
//! leaving only the CRDs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kontinuum_e2e::dashboard::{dashboard_path, empty_panels, load};
use kontinuum_e2e::metrics::Prometheus;
use kontinuum_e2e::procs::assert_admission_probed;
use kontinuum_e2e::{
    CRD_NAMES, TestNamespace, apply, client, helm, import_image, kubeconfig, kubectl,
    kubectl_result, kubectl_stdin, parse_table, real_node, real_node_placement, repo_root,
    wait_for, writes_by,
};
use serde_json::{Value, json};

const RELEASE: &str = "kontinuum";
const SYSTEM: &str = "kontinuum-system";
/// Items of the sleep-heavy map, each a 200 ms std.sleep: 75 s or more on
/// the pool's 24 slots, long enough to delete a worker and the operator
/// while it runs.
const NAPS: u64 = 9000;
/// The sum examples/squares.yaml computes (its header says so).
const SQUARES_SUM: &str = "333333283333335000000";

/// The chart's values: the local image (never pulled: there is no
/// registry), everything on the real node, a small quick pool.
fn values(tag: &str, jobs_ns: &str) -> Value {
    let placement = real_node_placement();
    json!({
        "image": {"tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [SYSTEM, jobs_ns],
        "nodeSelector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "terminationGracePeriodSeconds": 10,
        "workerPool": {
            "scaling": {"minReplicas": 0, "maxReplicas": 2, "targetPerReplica": 16,
                        "scaleDownDelay": "5s"},
            "template": {"spec": placement}
        }
    })
}

fn get_json(args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = kubectl(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?}: not JSON ({e}): {out}"))
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The operator pods that are not being deleted.
fn operator_pods() -> Vec<Value> {
    let sel = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator");
    items(&get_json(&["pods", "-n", SYSTEM, "-l", &sel]))
        .into_iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .collect()
}

async fn ready_operator(other_than: Option<&str>, timeout: Duration) -> Value {
    wait_for("a Ready operator pod", timeout, || async {
        let pods = operator_pods();
        let pod = pods.first()?;
        let name = pod["metadata"]["name"].as_str()?;
        (pods.len() == 1 && is_ready(pod) && Some(name) != other_than).then(|| pod.clone())
    })
    .await
}

fn pool_pods(ns: &str, pool: &str) -> Vec<Value> {
    items(&get_json(&[
        "pods",
        "-n",
        ns,
        "-l",
        &format!("kontinuum.dev/pool={pool}"),
    ]))
}

fn phase_of(ns: &str, kind: &str, name: &str) -> String {
    kubectl(&[
        "get",
        kind,
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.status.phase}",
    ])
}

fn future(ns: &str, name: &str) -> Value {
    get_json(&["futures", name, "-n", ns])
}

fn done_total(f: &Value) -> (u64, u64) {
    let p = &f["status"]["progress"];
    (
        p["done"].as_u64().unwrap_or(0),
        p["total"].as_u64().unwrap_or(0),
    )
}

/// A worker's `kontinuum_worker_slots_busy`, read from its pod IP.
async fn busy_slots(pod_ip: &str) -> Option<f64> {
    let url = format!("http://{pod_ip}:9090/metrics");
    let text = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?
        .get(&url)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with("kontinuum_worker_slots_busy"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .next()
}

/// Prometheus discovering the worker pods of `namespaces` through the API
/// server (as a PodMonitor would) and scraping the operator through its
/// Service.
fn prometheus(dir: &std::path::Path, operator_service: &str, namespaces: &[&str]) -> Prometheus {
    let namespaces = namespaces
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kontinuum-operator
    honor_labels: true
    static_configs:
      - targets: ['{operator_service}:9090']
  - job_name: kontinuum-workers
    honor_labels: true
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: '{kubeconfig}'
        namespaces:
          names: [{namespaces}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: kontinuum-worker
        action: keep
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
",
        kubeconfig = kubeconfig()
    );
    Prometheus::start_with_config(dir, &config)
}

/// The Progress column of `kubectl get futures` for `name`, as printed.
fn progress_column(table: &str, name: &str) -> Option<String> {
    let (header, rows) = parse_table(table);
    let col = header.iter().position(|h| h == "PROGRESS")?;
    let name_col = header.iter().position(|h| h == "NAME")?;
    rows.into_iter()
        .find(|r| r.get(name_col).map(String::as_str) == Some(name))
        .and_then(|r| r.get(col).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_then_jobs_on_real_worker_pods() {
    let client = client().await;
    let node = real_node(&client).await;
    let jobs = TestNamespace::create(&client, "real-jobs").await;
    let jobs = jobs.name().to_owned();
    let dir = tempfile::tempdir().unwrap();

    // 1. helm install with the local image: the operator Ready on the node.
    let tag = import_image();
    let values_file = dir.path().join("values.yaml");
    std::fs::write(&values_file, values(&tag, &jobs).to_string()).unwrap();
    let chart = helm::chart();
    let values_arg = values_file.to_string_lossy().into_owned();
    let install = [
        "install",
        RELEASE,
        chart.as_str(),
        "-n",
        SYSTEM,
        "--create-namespace",
        "-f",
        values_arg.as_str(),
    ];
    let installed = Instant::now();
    let _cleanup = Cleanup {
        namespaces: vec![SYSTEM.to_owned(), jobs.clone()],
    };
    helm::ok(helm::cluster(&install), &install);
    let operator = ready_operator(None, Duration::from_secs(180)).await;
    eprintln!(
        "helm install -> operator pod Ready: {:.1} s",
        installed.elapsed().as_secs_f64()
    );
    let operator_name = operator["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        operator["spec"]["nodeName"], node,
        "the operator runs on the real node"
    );
    let lease = kubectl(&[
        "get",
        "lease",
        RELEASE,
        "-n",
        SYSTEM,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, operator_name, "the Ready pod holds the Lease");
    // Ready includes the API server admitting Tasks and futures, probed
    // with dry-run creates under the pod's own ServiceAccount (its RBAC
    // allows them) in the first watched namespace.
    let log = kubectl(&["logs", "-n", SYSTEM, &operator_name]);
    assert_admission_probed(&log, SYSTEM);
    let claim = get_json(&["pvc", "kontinuum-data", "-n", SYSTEM]);
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    let volume = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    let service_ip = kubectl(&[
        "get",
        "service",
        RELEASE,
        "-n",
        SYSTEM,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let prom = prometheus(dir.path(), &service_ip, &[SYSTEM, &jobs]);

    // 2. squares on the chart's pool; tasks, then a sleep-heavy map, on a
    // pool of their own in another namespace. Both pools start at zero.
    let squares = std::fs::read_to_string(repo_root().join("examples/squares.yaml")).unwrap();
    kubectl_stdin(&["apply", "-n", SYSTEM, "-f", "-"], Some(&squares));
    let placement = real_node_placement();
    let submitted = Instant::now();
    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "sleepers"},
                "spec": {"concurrency": 8,
                         "scaling": {"minReplicas": 0, "maxReplicas": 3,
                                     "targetPerReplica": 8, "scaleDownDelay": "5s"},
                         "template": {"spec": placement}}}),
    );
    for i in 0..4 {
        apply(
            &jobs,
            &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("ok-{i}")},
                    "spec": {"pool": "sleepers",
                             "call": {"function": "std.echo", "args": {"i": i}}}}),
        );
        apply(
            &jobs,
            &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("flaky-{i}")},
                    "spec": {"pool": "sleepers",
                             "call": {"function": "std.fail", "args": {"message": "not yet"}},
                             "retry": {"maxAttempts": 3, "backoff": {"initial": "1s"}}}}),
        );
    }
    let first_pod = wait_for(
        "a sleepers pod Running",
        Duration::from_secs(120),
        || async {
            pool_pods(&jobs, "sleepers")
                .into_iter()
                .find(|p| p["status"]["phase"] == "Running")
        },
    )
    .await;
    let pod_running = submitted.elapsed();
    wait_for("the first task done", Duration::from_secs(120), || async {
        (0..4)
            .any(|i| phase_of(&jobs, "task", &format!("ok-{i}")) == "Succeeded")
            .then_some(())
    })
    .await;
    eprintln!(
        "submission -> first worker pod Running: {:.1} s -> first task done: {:.1} s",
        pod_running.as_secs_f64(),
        submitted.elapsed().as_secs_f64()
    );
    let spec = &first_pod["spec"];
    assert_eq!(spec["nodeName"], node);
    let token_volume = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "kontinuum-token")
        .unwrap_or_else(|| panic!("no projected token volume: {spec}"));
    assert_eq!(
        token_volume["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "kontinuum.dev"
    );
    // No shared token was installed: the only credentials the pods have
    // are their ServiceAccount tokens, checked by TokenReview.
    assert!(
        !kubectl(&["get", "deployment", RELEASE, "-n", SYSTEM, "-o", "yaml"])
            .contains("--token-file"),
        "the release must not use a shared token here"
    );
    wait_for("every task ended", Duration::from_secs(120), || async {
        let ended = (0..4).all(|i| {
            phase_of(&jobs, "task", &format!("ok-{i}")) == "Succeeded"
                && phase_of(&jobs, "task", &format!("flaky-{i}")) == "Failed"
        });
        ended.then_some(())
    })
    .await;
    let echoed = get_json(&["task", "ok-3", "-n", &jobs]);
    assert_eq!(echoed["status"]["result"], json!({"i": 3}), "{echoed}");
    // The chart's admission policy put the finalizer on at creation: the
    // operator's field manager appears only on the status.
    let (operator_writes, managers) = writes_by("kontinuum-operator", &jobs, "task", "ok-3");
    assert_eq!(operator_writes, ["kontinuum-operator/status"], "{managers}");
    assert_eq!(
        echoed["metadata"]["finalizers"],
        json!(["kontinuum.dev/cancel"])
    );

    apply(
        &jobs,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "naps"},
                "spec": {"pool": "sleepers",
                         "map": {"source": {"range": {"start": 0, "end": NAPS}},
                                 "function": {"function": "std.sleep", "args": {"ms": 200}},
                                 "shardSize": 5, "reduce": "count"}}}),
    );
    // `kubectl get futures` while it runs, every 2 s, in the background.
    let tables = {
        let jobs = jobs.clone();
        tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(600) {
                let t = kubectl_result(&["get", "futures", "-n", &jobs], None).stdout;
                let done = progress_column(&t, "naps").is_some_and(|p| p == "100%");
                seen.push(t);
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            seen
        })
    };
    wait_for("naps under way", Duration::from_secs(120), || async {
        let (done, total) = done_total(&future(&jobs, "naps"));
        (done * 10 >= total && total > 0).then_some(())
    })
    .await;

    // 4. A busy worker pod deleted: its work runs elsewhere.
    let busy = wait_for(
        "a worker pod with busy slots",
        Duration::from_secs(60),
        || {
            let jobs = jobs.clone();
            async move {
                for p in pool_pods(&jobs, "sleepers") {
                    let Some(ip) = p["status"]["podIP"].as_str() else {
                        continue;
                    };
                    if is_ready(&p) && busy_slots(ip).await.is_some_and(|b| b >= 1.0) {
                        return Some(p["metadata"]["name"].as_str()?.to_owned());
                    }
                }
                None
            }
        },
    )
    .await;
    kubectl(&["delete", "pod", &busy, "-n", &jobs, "--wait=false"]);
    eprintln!("deleted the busy worker pod {busy}");

    // 5. Prometheus: the operator and the worker pods scraped, every panel
    // of the dashboard answering while the map runs.
    let dashboard = load(&dashboard_path());
    let chosen: BTreeMap<String, String> = [
        ("namespace".to_owned(), jobs.clone()),
        ("pool".to_owned(), "sleepers".to_owned()),
    ]
    .into();
    let asked = Instant::now();
    loop {
        let empty = empty_panels(&dashboard, &prom.url, &chosen, "30s")
            .await
            .unwrap_or_else(|e| panic!("a dashboard query failed: {e}"));
        let (done, total) = done_total(&future(&jobs, "naps"));
        if empty.is_empty() {
            assert!(
                done < total,
                "the dashboard answered only after the map ended"
            );
            break;
        }
        assert!(
            done < total && asked.elapsed() < Duration::from_secs(90),
            "panels with no data while the map ran ({done}/{total}):\n{}",
            empty
                .iter()
                .map(|p| format!("- {} ({}): {}", p.panel, p.ref_id, p.query))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let scraped_pods = prom
        .scalar("count(up{job=\"kontinuum-workers\"} == 1)")
        .await
        .unwrap_or(0.0);
    assert!(scraped_pods >= 1.0, "no worker pod scraped");
    let operator_up = prom
        .scalar("up{job=\"kontinuum-operator\"}")
        .await
        .unwrap_or(0.0);
    assert_eq!(operator_up, 1.0, "the operator's Service was not scraped");

    // 3. The operator pod deleted mid-job: back on the same volume.
    let (before, total) = done_total(&future(&jobs, "naps"));
    assert!(
        before < total,
        "the map ended before the operator was deleted"
    );
    kubectl(&[
        "delete",
        "pod",
        &operator_name,
        "-n",
        SYSTEM,
        "--wait=false",
    ]);
    let restarted = Instant::now();
    let second = ready_operator(Some(&operator_name), Duration::from_secs(180)).await;
    eprintln!(
        "operator pod deleted at {before}/{total} -> a new one Ready in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    let claim = get_json(&["pvc", "kontinuum-data", "-n", SYSTEM]);
    assert_eq!(claim["spec"]["volumeName"], volume, "the same volume");
    assert!(
        second["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "kontinuum-data"),
        "{second}"
    );

    let naps = wait_for("naps Succeeded", Duration::from_secs(300), || async {
        let f = future(&jobs, "naps");
        match f["status"]["phase"].as_str() {
            Some("Succeeded") => Some(f),
            Some("Failed") => panic!("naps failed: {}", f["status"]),
            _ => None,
        }
    })
    .await;
    assert_eq!(naps["status"]["result"], json!(NAPS), "{}", naps["status"]);
    assert_eq!(done_total(&naps), (NAPS, NAPS), "nothing counted twice");
    assert_eq!(naps["status"]["counts"]["failed"].as_u64().unwrap_or(0), 0);
    let tables = tables.await.unwrap();
    let moving: std::collections::BTreeSet<String> = tables
        .iter()
        .filter_map(|t| progress_column(t, "naps"))
        .filter(|p| p != "100%" && p != "0%" && !p.is_empty())
        .collect();
    assert!(
        moving.len() >= 3,
        "kubectl get futures showed no progress moving: {moving:?}\n{}",
        tables.join("\n")
    );

    let squares = wait_for("squares Succeeded", Duration::from_secs(300), || async {
        let f = future(SYSTEM, "squares");
        (f["status"]["phase"] == "Succeeded").then_some(f)
    })
    .await;
    assert_eq!(
        squares["status"]["result"].to_string().trim_matches('"'),
        SQUARES_SUM,
        "{}",
        squares["status"]
    );

    // The pool goes back to zero once its queue is empty.
    wait_for(
        "the sleepers pool back at 0 replicas, no pods",
        Duration::from_secs(120),
        || async {
            let replicas = kubectl(&[
                "get",
                "deployment",
                "sleepers-workers",
                "-n",
                &jobs,
                "-o",
                "jsonpath={.spec.replicas}",
            ]);
            (replicas == "0" && pool_pods(&jobs, "sleepers").is_empty()).then_some(())
        },
    )
    .await;

    // 6. helm uninstall: its hook deletes the jobs' resources while the
    // operator can still let them go, then nothing is left but the CRDs.
    let uninstall = [
        "uninstall",
        RELEASE,
        "-n",
        SYSTEM,
        "--wait",
        "--timeout",
        "120s",
    ];
    helm::ok(helm::cluster(&uninstall), &uninstall);
    // Not labelled by helm: the pods, and the Lease the operator deletes
    // as it stops.
    let leftovers = || {
        let labelled = kubectl(&[
            "get",
            "all,pvc,configmaps,serviceaccounts,roles,rolebindings,workerpools",
            "-n",
            SYSTEM,
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "-o",
            "name",
        ]);
        let unlabelled = kubectl(&["get", "pods,leases", "-n", SYSTEM, "-o", "name"]);
        format!("{}{}", labelled.trim(), unlabelled.trim())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = leftovers();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left in {SYSTEM} 120 s after helm uninstall:\n{left}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let roles = kubectl(&[
        "get",
        "roles,rolebindings",
        "-n",
        &jobs,
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "name",
    ]);
    assert!(roles.trim().is_empty(), "left in {jobs}: {roles}");
    for ns in [SYSTEM, jobs.as_str()] {
        let left = kubectl(&["get", "futures,tasks,workerpools", "-n", ns, "-o", "name"]);
        assert!(left.trim().is_empty(), "left in {ns}: {left}");
    }
    // The finalizer's admission policy (cluster-scoped) goes with the
    // release: nothing would release the finalizer it puts on.
    let policies = kubectl(&[
        "get",
        "mutatingadmissionpolicies,mutatingadmissionpolicybindings",
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "name",
    ]);
    assert!(policies.trim().is_empty(), "left: {policies}");
    wait_for(
        "the store's volume reclaimed",
        Duration::from_secs(60),
        || {
            let gone = kubectl_result(&["get", "pv", &volume, "-o", "name"], None)
                .stdout
                .trim()
                .is_empty();
            async move { gone.then_some(()) }
        },
    )
    .await;
    for crd in CRD_NAMES {
        assert!(
            !kubectl(&["get", "crd", crd, "-o", "name"])
                .trim()
                .is_empty(),
            "helm uninstall removed the CRD {crd}"
        );
    }
}

/// Cleans up when the test ends, passed or failed: a failed test may leave
/// the release and resources whose finalizer no operator will remove any
/// more, which would keep both namespaces terminating for ever. The cluster
/// is thrown away after the suite, but other tests share it until then.
struct Cleanup {
    namespaces: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubectl = |args: &[&str]| {
            let _ = Command::new("kubectl").args(args).output();
        };
        if std::thread::panicking() {
            // What the pods said, for the failure's report.
            for ns in &self.namespaces {
                let out = Command::new("kubectl")
                    .args([
                        "get",
                        "pods,futures,tasks,workerpools",
                        "-o",
                        "wide",
                        "-n",
                        ns,
                    ])
                    .output();
                if let Ok(o) = out {
                    eprintln!("--- {ns}:\n{}", String::from_utf8_lossy(&o.stdout));
                }
                let logs = Command::new("kubectl")
                    .args([
                        "logs",
                        "-n",
                        ns,
                        "--all-containers",
                        "--prefix",
                        "--tail=30",
                        "-l",
                    ])
                    .arg("app.kubernetes.io/name in (kontinuum, kontinuum-worker)")
                    .output();
                if let Ok(o) = logs {
                    eprintln!("--- logs in {ns}:\n{}", String::from_utf8_lossy(&o.stdout));
                }
            }
        }
        let _ = Command::new("helm")
            .env("KUBECONFIG", kubeconfig())
            .args(["uninstall", RELEASE, "-n", SYSTEM, "--wait=false"])
            .output();
        for ns in &self.namespaces {
            let names = Command::new("kubectl")
                .args(["get", "tasks,futures", "-n", ns, "-o", "name"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for name in names.lines() {
                kubectl(&[
                    "patch",
                    "-n",
                    ns,
                    name,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ]);
            }
            kubectl(&[
                "delete",
                "namespace",
                ns,
                "--wait=false",
                "--ignore-not-found",
            ]);
        }
    }
}
