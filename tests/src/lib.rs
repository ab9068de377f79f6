//! Helpers for Kontinuum's end-to-end tests.
//!
//! The tests run against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok's fake nodes) started by
//! `tests/cluster/up.sh`; `scripts/test` does that for you. They find it
//! through `KUBECONFIG` and use the `kubectl` on `PATH` (up.sh puts the
//! matching one there). Without a cluster every test fails with a message
//! saying how to start one: nothing is skipped silently.

pub mod dashboard;
pub mod helm;
pub mod kubelet;
pub mod layering;
pub mod metrics;
pub mod pool;
pub mod procs;
pub mod proxy;
pub mod s3;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use rand::Rng;

const HOW_TO_START: &str = "start a cluster first: `eval \"$(tests/cluster/up.sh)\"` \
     (and `tests/cluster/down.sh` afterwards), or run everything with `scripts/test`";

/// The kubeconfig of the test cluster. Panics (fails the test) when unset.
pub fn kubeconfig() -> String {
    match std::env::var("KUBECONFIG") {
        Ok(path) if !path.is_empty() => {
            assert!(
                Path::new(&path).exists(),
                "KUBECONFIG={path} does not exist; {HOW_TO_START}"
            );
            path
        }
        _ => panic!(
            "KUBECONFIG is not set: the end-to-end tests need a real Kubernetes API server; {HOW_TO_START}"
        ),
    }
}

/// A kube-rs client for the test cluster.
pub async fn client() -> Client {
    kubeconfig();
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG: {e}; {HOW_TO_START}"))
}

/// The root of the repository (the workspace), for crds/ and examples/.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs the real `kubectl` from PATH against the test cluster, feeding
/// `stdin` if given. Returns its output whatever the exit status.
pub fn kubectl_raw(args: &[&str], stdin: Option<&str>) -> Output {
    let kubeconfig = kubeconfig();
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl ({e}): it must be on PATH; {HOW_TO_START}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("wait for kubectl")
}

/// Result of a kubectl run, with text output.
#[derive(Debug)]
pub struct KubectlResult {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// What the API server answers (503) to a create that a
/// MutatingAdmissionPolicy matches while its schema cache has not caught up
/// with CRDs created moments ago (it re-reads them every 5 s). The chart's
/// finalizer policy, installed by one test, meets the CRDs created by
/// another at the start of a fresh cluster; the operator's readiness waits
/// this out for users (docs/operator.md), a test that applies resources
/// without an operator asks again.
pub const SCHEMA_CACHE_WINDOW: &str =
    "There can be a delay between when CustomResourceDefinitions are created";

/// Runs kubectl; asks again (for up to 30 s) only while the answer is the
/// [`SCHEMA_CACHE_WINDOW`] refusal, which says nothing about the request.
pub fn kubectl_result(args: &[&str], stdin: Option<&str>) -> KubectlResult {
    let start = Instant::now();
    loop {
        let out = kubectl_raw(args, stdin);
        let r = KubectlResult {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if r.success
            || !r.stderr.contains(SCHEMA_CACHE_WINDOW)
            || start.elapsed() > Duration::from_secs(30)
        {
            return r;
        }
        eprintln!(
            "kubectl {}: {}; asking again",
            args.join(" "),
            r.stderr.trim()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs kubectl and returns stdout; fails the test if kubectl fails.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_stdin(args, None)
}

/// `manager/subresource` of every managedFields entry of a resource whose
/// manager is `manager` (`kontinuum-operator/status`, `kontinuum-operator/`
/// for a write of its metadata or spec), and all entries for the message.
pub fn writes_by(manager: &str, ns: &str, resource: &str, name: &str) -> (Vec<String>, String) {
    let all = kubectl(&[
        "get",
        "-n",
        ns,
        resource,
        name,
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.subresource} {end}",
    ]);
    let prefix = format!("{manager}/");
    let mine = all
        .split_whitespace()
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    (mine, all)
}

/// Like [`kubectl`], with `stdin` piped in (e.g. `-f -`).
pub fn kubectl_stdin(args: &[&str], stdin: Option<&str>) -> String {
    let r = kubectl_result(args, stdin);
    assert!(
        r.success,
        "kubectl {} failed:\nstdout: {}\nstderr: {}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// Polls `check` every 250 ms until it returns `Some`, or fails the test
/// after `timeout` saying what it waited for.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace with a random name, created for one test and deleted when
/// dropped (also when the test panics).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>` and waits until its `default`
    /// ServiceAccount exists (pods are rejected before that).
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let suffix: String = {
            let mut rng = rand::rng();
            (0..6)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect()
        };
        let name = format!("e2e-{prefix}-{suffix}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kontinuum.dev/e2e": "true"}}
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        let guard = TestNamespace { name };
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &guard.name);
        wait_for(
            "the default ServiceAccount of the test namespace",
            Duration::from_secs(60),
            || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.ok().flatten() }
            },
        )
        .await;
        guard
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot be async; kubectl is synchronous and works while
        // unwinding from a failed assertion too. --wait=false: the namespace
        // controller finishes the deletion in the background.
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Deletes a namespace through the API (for tests that want to wait).
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// The names of the CRDs the project ships, in crds/.
pub const CRD_NAMES: [&str; 3] = [
    "futures.kontinuum.dev",
    "tasks.kontinuum.dev",
    "workerpools.kontinuum.dev",
];

static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Applies crds/*.yaml (once per test binary) with server-side apply, which is
/// idempotent, and waits until every CRD is Established.
pub async fn ensure_crds() {
    CRDS.get_or_init(|| async {
        // KONTINUUM_CRD_DIR: try CRDs that are not in crds/ yet (e.g. the
        // output of `kontinuum crds`, split into files).
        let dir = std::env::var_os("KONTINUUM_CRD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("crds"));
        let files = yaml_files(&dir);
        assert!(
            !files.is_empty(),
            "no CRD manifests in {} (they are generated by `kontinuum crds`)",
            dir.display()
        );
        for f in &files {
            kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=kontinuum-e2e",
                "-f",
                f.to_str().expect("utf-8 path"),
            ]);
        }
        for name in CRD_NAMES {
            kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{name}"),
            ]);
        }
    })
    .await;
}

/// The *.yaml / *.yml files of a directory, sorted by name.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml") | Some("yml")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Parses kubectl's table output (`kubectl get ...`) into a header row and
/// data rows. kubectl left-aligns every column at the offset of its header,
/// so cells are cut at the header offsets: this keeps empty cells in place.
pub fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header_line) = lines.next() else {
        return (Vec::new(), Vec::new());
    };
    // A column starts where a non-space follows a space (or at 0).
    let bytes = header_line.as_bytes();
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != b' ' && (i == 0 || bytes[i - 1] == b' '))
        .collect();
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let e = starts
                    .get(k + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(s.min(line.len())..e)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    let header = cut(header_line);
    let rows = lines.map(cut).collect();
    (header, rows)
}

/// Whether a status carries a condition of this reason.
pub fn has_condition(status: &serde_json::Value, reason: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["reason"] == reason))
}

/// `kubectl apply -n NS` of one object given as JSON.
pub fn apply(ns: &str, doc: &serde_json::Value) {
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&doc.to_string()));
}

/// The image archive of scripts/build-image: scripts/test builds it once
/// and passes it in KONTINUUM_IMAGE_ARCHIVE; without it, scripts/build-image
/// runs here (cached by source hash: cheap when nothing changed).
pub fn image_archive() -> PathBuf {
    if let Some(p) = std::env::var_os("KONTINUUM_IMAGE_ARCHIVE") {
        return PathBuf::from(p);
    }
    let out = Command::new(repo_root().join("scripts/build-image"))
        .output()
        .expect("run scripts/build-image");
    assert!(
        out.status.success(),
        "scripts/build-image failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Imports the image archive into the real node's containerd
/// (tests/cluster/import-image.sh); returns the tag of
/// `kontinuum.dev/kontinuum`.
pub fn import_image() -> String {
    let archive = image_archive();
    let out = Command::new(repo_root().join("tests/cluster/import-image.sh"))
        .arg(&archive)
        .output()
        .expect("run tests/cluster/import-image.sh");
    assert!(
        out.status.success(),
        "importing {} failed:\n{}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = names
        .lines()
        .find(|n| n.starts_with("kontinuum.dev/kontinuum:"))
        .unwrap_or_else(|| panic!("the archive holds no kontinuum.dev/kontinuum image: {names}"));
    name.rsplit_once(':')
        .map(|(_, tag)| tag.to_owned())
        .unwrap_or_default()
}

/// The label (value `"true"`) and the taint key (effect NoSchedule) of the
/// real node that `KONTINUUM_REAL_NODE=1 tests/cluster/up.sh` adds: a pod
/// lands there only if it selects the label and tolerates the taint.
pub const REAL_NODE_LABEL: &str = "kontinuum.dev/real-node";

/// The value of `KEY=value` in tests/cluster/versions.env.
pub fn pinned(key: &str) -> String {
    let path = repo_root().join("tests/cluster/versions.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {}", path.display()))
        .trim()
        .to_owned()
}

/// The name of the real node, once it is Ready. Fails the test, saying why,
/// when the cluster has none: the real-node tests never skip.
pub async fn real_node(client: &Client) -> String {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let selector = format!("{REAL_NODE_LABEL}=true");
    let list = nodes
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .unwrap_or_else(|e| panic!("cannot list nodes: {e}"));
    let Some(node) = list.items.into_iter().next() else {
        panic!(
            "this cluster has no real node (no node labelled {selector}): start it with \
             `KONTINUUM_REAL_NODE=1 tests/cluster/up.sh` (scripts/test does); if up.sh could \
             not start the node, its error says why"
        );
    };
    let name = node.metadata.name.clone().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(
        ready,
        "the real node {name} is not Ready: {:?}",
        node.status
    );
    name
}

/// What a pod spec needs to run on the real node: the node selector and the
/// toleration, as JSON to merge into `spec`.
pub fn real_node_placement() -> serde_json::Value {
    serde_json::json!({
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}]
    })
}
