//! The project's binaries as child processes of a test: the operator, stock
//! workers and the `kontinuum` CLI, found in the Cargo target directory
//! (`scripts/test` builds them first with `cargo build --bins`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of one of the workspace's binaries, next to this test's own
/// executable (`target/debug/deps/..` → `target/debug/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does)",
        path.display()
    );
    path
}

/// A free port on loopback (bound and released at once; races are unlikely
/// on a test machine and would fail loudly at bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed (SIGKILL) when dropped, with its output in a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create the log file");
        let err = file.try_clone().expect("clone the log file");
        cmd.stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL now, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.kill9();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- output of {} ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.output(), 60)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Options of an operator started by a test.
pub struct OperatorOptions {
    pub data: PathBuf,
    pub leader_elect: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub status_interval: String,
    pub namespaces: Vec<String>,
    /// The worker API's port; None: a free one.
    pub api_port: Option<u16>,
    pub extra: Vec<String>,
    /// Another kubeconfig than the test cluster's (a proxy's, say).
    pub kubeconfig: Option<PathBuf>,
    /// `RUST_LOG`; None: the chart's default filter.
    pub rust_log: Option<String>,
}

impl OperatorOptions {
    /// An operator of its own watching `ns`: its store under `dir`, no
    /// leader election, statuses once a second.
    pub fn watching(dir: &Path, ns: &str) -> OperatorOptions {
        OperatorOptions {
            data: dir.join("store"),
            leader_elect: false,
            lease_name: "kontinuum-operator".into(),
            lease_namespace: ns.into(),
            status_interval: "1s".into(),
            namespaces: vec![ns.into()],
            api_port: None,
            extra: vec![],
            kubeconfig: None,
            rust_log: None,
        }
    }
}

/// An operator process out of cluster, with its worker API and metrics on
/// free loopback ports and a shared token.
pub struct Operator {
    pub proc: Proc,
    pub api: String,
    pub metrics: String,
    pub token_file: PathBuf,
}

impl Operator {
    pub fn start(dir: &Path, label: &str, o: &OperatorOptions) -> Operator {
        let token_file = dir.join("token");
        if !token_file.exists() {
            std::fs::write(&token_file, "e2e-shared-token\n").expect("write the token");
        }
        let api_port = o.api_port.unwrap_or_else(free_port);
        let metrics_port = free_port();
        let mut cmd = Command::new(bin("kontinuum-operator"));
        cmd.arg("--data")
            .arg(&o.data)
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--token-file")
            .arg(&token_file)
            .arg(format!("--leader-elect={}", o.leader_elect))
            .args(["--lease-name", &o.lease_name])
            .args(["--lease-namespace", &o.lease_namespace])
            .args(["--status-interval", &o.status_interval])
            .args(&o.extra)
            .env(
                "KUBECONFIG",
                o.kubeconfig
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::kubeconfig())),
            )
            .env(
                "RUST_LOG",
                o.rust_log
                    .as_deref()
                    .unwrap_or("info,kube_runtime=warn,kube_client=warn"),
            );
        for ns in &o.namespaces {
            cmd.args(["--namespace", ns]);
        }
        let log = dir.join(format!("operator-{label}.log"));
        Operator {
            proc: Proc::spawn(&format!("operator {label}"), cmd, log),
            api: format!("http://127.0.0.1:{api_port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
            token_file,
        }
    }

    /// Waits until /readyz answers 200 (leader, store open, controllers up).
    pub fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            assert!(
                self.proc.running(),
                "the operator exited:\n{}",
                self.proc.output()
            );
            if http_status(&format!("{}/readyz", self.metrics)) == Some(200) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "the operator was not ready after {timeout:?}:\n{}",
                self.proc.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether /readyz says 200 now.
    pub fn is_ready(&self) -> bool {
        http_status(&format!("{}/readyz", self.metrics)) == Some(200)
    }

    /// The shared token the operator's worker API takes.
    pub fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    /// The engine's objects as `NS/KIND/NAME` (`task` or `future`).
    pub fn engine_objects(&self) -> Vec<String> {
        let list = api_get(&self.api, &self.token(), "/v1/objects?limit=5000")
            .unwrap_or_else(|| panic!("no listing from {}", self.api));
        list["items"]
            .as_array()
            .map(|items| items.iter().map(object_id).collect())
            .unwrap_or_default()
    }

    /// One engine object, as `kontinuum get` shows it.
    pub fn engine_object(&self, ns: &str, kind: &str, name: &str) -> Option<serde_json::Value> {
        api_get(
            &self.api,
            &self.token(),
            &format!("/v1/objects/{ns}/{kind}/{name}"),
        )
    }

    /// A `kontinuum-worker` of the pool "default" against this operator,
    /// its log `dir/worker-LABEL.log`.
    pub fn worker(&self, dir: &Path, label: &str, extra: &[&str]) -> Proc {
        start_worker(dir, label, &self.api, "default", &self.token_file, extra)
    }

    /// What `kontinuum_leader` says now (false when nothing answers).
    pub fn is_leading(&self) -> bool {
        http_get(&format!("{}/metrics", self.metrics)).is_some_and(|(code, body)| {
            code == 200 && body.lines().any(|l| l.trim() == "kontinuum_leader 1")
        })
    }
}

/// Fails unless the operator's log says that its readiness probe found
/// creates of both kinds admitted in `ns` (and no probe that could not tell).
pub fn assert_admission_probed(log: &str, ns: &str) {
    assert!(
        !log.contains("cannot probe whether the API server admits creates"),
        "a readiness probe could not tell:\n{log}"
    );
    for kind in ["\"Task\"", "\"HierarchicalFuture\""] {
        assert!(
            log.lines()
                .any(|l| l.contains("the API server admits creates")
                    && l.contains(&format!("kind={kind}"))
                    && l.contains(ns)),
            "no admitted readiness probe of {kind} in {ns}:\n{log}"
        );
    }
}

/// Starts a stock `kontinuum-worker` serving `pool` from `server`.
pub fn start_worker(
    dir: &Path,
    label: &str,
    server: &str,
    pool: &str,
    token_file: &Path,
    extra: &[&str],
) -> Proc {
    let mut cmd = Command::new(bin("kontinuum-worker"));
    cmd.args(["--server", server, "--pool", pool])
        .arg("--token-file")
        .arg(token_file)
        .args(extra)
        .env("RUST_LOG", "info");
    Proc::spawn(
        &format!("worker {label}"),
        cmd,
        dir.join(format!("worker-{label}.log")),
    )
}

/// `kontinuum run FILE -o json`: the embedded engine's verdict on a manifest.
pub fn kontinuum_run_json(file: &Path) -> (Output, serde_json::Value) {
    let out = Command::new(bin("kontinuum"))
        .args(["run", "-o", "json"])
        .arg(file)
        .output()
        .expect("run kontinuum");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, value)
}

/// GET `path` of the worker API at `base` (`http://HOST:PORT`) with a
/// bearer token: the JSON answer, or None on a failure status.
pub fn api_get(base: &str, token: &str, path: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}{path}"))
        .output()
        .expect("run curl");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `NS/KIND/NAME` of an object the worker API listed.
fn object_id(item: &serde_json::Value) -> String {
    let kind = match item["kind"].as_str() {
        Some("Task") => "task",
        Some("HierarchicalFuture") => "future",
        other => panic!("an object of kind {other:?}: {item}"),
    };
    format!(
        "{}/{kind}/{}",
        item["metadata"]["namespace"].as_str().unwrap_or(""),
        item["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// The HTTP status of a GET on loopback (a tiny client: no TLS, no body).
pub fn http_status(url: &str) -> Option<u16> {
    http_get(url).map(|(code, _)| code)
}

/// GET `url` (http://127.0.0.1:PORT/PATH) → (status, body).
pub fn http_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Every distinct status a watch delivered for one resource, with the time
/// it arrived: what `kubectl get -w` would have shown.
pub struct StatusRecorder {
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, serde_json::Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusRecorder {
    /// Watches `kind` (`tasks` or `futures`) named `name` in `ns`.
    pub fn start(client: kube::Client, ns: &str, kind: &str, name: &str) -> StatusRecorder {
        use futures::TryStreamExt;
        use kube::runtime::watcher::{self, Event};
        let seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, serde_json::Value)>>> =
            Default::default();
        let ar = kube::api::ApiResource {
            group: "kontinuum.dev".into(),
            version: "v1alpha1".into(),
            api_version: "kontinuum.dev/v1alpha1".into(),
            kind: if kind == "tasks" {
                "Task".into()
            } else {
                "HierarchicalFuture".into()
            },
            plural: kind.into(),
        };
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client, ns, &ar);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let stream = watcher::watcher(api, config);
            futures::pin_mut!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                let obj = match event {
                    Event::Apply(o) | Event::InitApply(o) => o,
                    _ => continue,
                };
                let status = obj
                    .data
                    .get("status")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let mut seen = record.lock().expect("not poisoned");
                if !status.is_null() && seen.last().map(|(_, s)| s) != Some(&status) {
                    seen.push((Instant::now(), status));
                }
            }
        });
        StatusRecorder { seen, task }
    }

    pub fn statuses(&self) -> Vec<(Instant, serde_json::Value)> {
        self.seen.lock().expect("not poisoned").clone()
    }

    /// The last status seen, if any.
    pub fn last(&self) -> Option<serde_json::Value> {
        self.seen
            .lock()
            .expect("not poisoned")
            .last()
            .map(|(_, s)| s.clone())
    }

    /// Waits until the last status satisfies `done`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self.last()
                && done(&s)
            {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last status: {:?}",
                self.last()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for StatusRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
