//! A full disk in a cluster, on the real node: the chart's operator keeps
//! its store on a small volume (a 48 MiB tmpfs on the node, bound through
//! a PersistentVolume), the volume fills up mid-job, the probes fail, the
//! running future says the engine stopped, and once space is freed the
//! kubelet's restart on the failing liveness probe is all it takes: the
//! job ends with the exact result.

use std::process::Command;
use std::time::Duration;

use kontinuum_e2e::procs::http_get;
use kontinuum_e2e::{
    TestNamespace, apply, client, has_condition, helm, import_image, kubeconfig, kubectl,
    real_node, real_node_placement, wait_for,
};
use serde_json::{Value, json};

/// The host's side of the volume: a tmpfs, unmounted and removed on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let path = std::env::temp_dir().join(format!("kontinuum-disk-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the real-node tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    /// Fills what is left with a ballast file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let ballast = self.path.join("ballast");
        let mut f = std::fs::File::create(&ballast).unwrap();
        let block = vec![1u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The release, its namespace and its volume, removed on drop.
struct Release {
    name: String,
    namespace: String,
    volume: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = Command::new("helm")
            .env("KUBECONFIG", kubeconfig())
            .args(["uninstall", &self.name, "-n", &self.namespace, "--wait"])
            .output();
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "pv",
                &self.volume,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

fn get_json(args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(&all)).unwrap_or(Value::Null)
}

fn operator_pod(ns: &str, release: &str) -> Option<Value> {
    let sel = format!("app.kubernetes.io/instance={release},app.kubernetes.io/component=operator");
    get_json(&["pods", "-n", ns, "-l", &sel])["items"]
        .as_array()?
        .iter()
        .find(|p| p["metadata"].get("deletionTimestamp").is_none())
        .cloned()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn restarts(pod: &Value) -> u64 {
    pod["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap_or(0)
}

fn future_status(ns: &str, name: &str) -> Value {
    get_json(&["future", name, "-n", ns])["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_fails_the_probes_and_a_liveness_restart_recovers_once_freed() {
    let client = client().await;
    let node = real_node(&client).await;
    let ns = TestNamespace::create(&client, "disk").await;
    let ns = ns.name().to_owned();
    let disk = SmallDisk::mount("48m");
    let release = Release {
        name: "kt-disk".into(),
        namespace: ns.clone(),
        volume: format!("{ns}-store"),
    };
    // The store's volume: the node's tmpfs, bound by name.
    apply(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": release.volume},
            "spec": {
                "capacity": {"storage": "48Mi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": disk.path.to_string_lossy()},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                ]}]}}
            }
        }),
    );
    apply(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "store"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": release.volume,
                "resources": {"requests": {"storage": "48Mi"}}
            }
        }),
    );
    let tag = import_image();
    let placement = real_node_placement();
    let values = json!({
        "image": {"tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [ns],
        "nodeSelector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "terminationGracePeriodSeconds": 10,
        "persistence": {"existingClaim": "store"},
        "workerPool": {
            "scaling": {"minReplicas": 1, "maxReplicas": 1, "targetPerReplica": 16,
                        "scaleDownDelay": "5s"},
            "template": {"spec": placement}
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let values_file = dir.path().join("values.yaml");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let chart = helm::chart();
    let args = [
        "install",
        release.name.as_str(),
        chart.as_str(),
        "-n",
        ns.as_str(),
        "-f",
        values_file.to_str().unwrap(),
        "--wait",
        "--timeout=180s",
    ];
    helm::ok(helm::cluster(&args), &args);
    let pod = operator_pod(&ns, &release.name).expect("an operator pod");
    assert_eq!(restarts(&pod), 0);

    apply(
        &ns,
        &json!({
            "apiVersion": "kontinuum.dev/v1alpha1",
            "kind": "HierarchicalFuture",
            "metadata": {"name": "long"},
            "spec": {"map": {
                "source": {"range": {"start": 0, "end": 1200}},
                "function": {"function": "std.sleep", "args": {"ms": 100}},
                "shardSize": 4,
                "reduce": "count"
            }}
        }),
    );
    wait_for("progress", Duration::from_secs(120), || async {
        let s = future_status(&ns, "long");
        (s["progress"]["done"].as_u64().unwrap_or(0) >= 40).then_some(())
    })
    .await;

    // The volume fills up.
    let ballast = disk.fill();
    let ip = pod["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_owned();
    let (_, body) = wait_for(
        "the liveness probe's endpoint to fail",
        Duration::from_secs(60),
        || {
            let url = format!("http://{ip}:9090/healthz");
            async move { http_get(&url).filter(|(code, _)| *code == 503) }
        },
    )
    .await;
    assert!(body.contains("store failed"), "{body}");
    let stopped = wait_for(
        "the EngineStopped condition",
        Duration::from_secs(60),
        || async {
            let s = future_status(&ns, "long");
            has_condition(&s, "EngineStopped").then_some(s)
        },
    )
    .await;
    assert_eq!(stopped["phase"], "Running", "{stopped}");
    let events = kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=long,reason=EngineStopped",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a Warning Event EngineStopped");

    // Room again: the kubelet restarts the container on the failing
    // liveness probe, and the job goes on from the store.
    std::fs::remove_file(ballast).unwrap();
    let restarted = wait_for(
        "a liveness restart and Ready",
        Duration::from_secs(180),
        || async { operator_pod(&ns, &release.name).filter(|p| restarts(p) >= 1 && ready(p)) },
    )
    .await;
    assert_eq!(
        restarted["metadata"]["name"], pod["metadata"]["name"],
        "the same pod, its container restarted"
    );
    let done = wait_for("the map to finish", Duration::from_secs(300), || async {
        let s = future_status(&ns, "long");
        (s["phase"] == "Succeeded").then_some(s)
    })
    .await;
    assert_eq!(done["result"], 1200, "each item counted once: {done}");
    let previous = kubectl(&[
        "get",
        "pod",
        "-n",
        &ns,
        restarted["metadata"]["name"].as_str().unwrap(),
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.reason}",
    ]);
    eprintln!("the operator container was restarted (last state: {previous})");
    drop(release);
}
