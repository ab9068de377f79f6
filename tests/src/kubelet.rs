//! A stand-in kubelet for worker pods on kwok nodes. kwok marks pods
//! Running but runs no containers; this harness runs the worker for each
//! Running pod of a pool as a local `kontinuum-worker` process, configured
//! from the pod's own container env (so what the operator put in the
//! Deployment is what runs), with a token minted for the pod's
//! ServiceAccount (`kubectl create token SA --audience kontinuum.dev`). When
//! the pod goes (deleted, or marked for deletion), its worker gets SIGTERM
//! and the pod's grace period to finish, as a kubelet would do.

use crate::kubectl_result;
use crate::procs::{Proc, bin};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The audience the operator's TokenReview accepts.
pub const TOKEN_AUDIENCE: &str = "kontinuum.dev";

#[derive(Default)]
struct Running {
    /// Pod name → its worker.
    workers: HashMap<String, Proc>,
    /// Every pod ever started, in order (a pod's name is used once).
    started: Vec<String>,
    /// Pods whose worker was sent SIGTERM.
    stopped: Vec<String>,
}

/// Plays the kubelet for the pods matching a label selector in a namespace
/// until dropped (then every worker left is killed).
pub struct PodPlayer {
    running: Arc<Mutex<Running>>,
    watch: tokio::task::JoinHandle<()>,
}

impl PodPlayer {
    /// Starts watching pods in `namespace` with `selector` (e.g.
    /// `kontinuum.dev/pool=squares`); workers log into `dir`.
    pub fn start(client: Client, namespace: &str, selector: &str, dir: &Path) -> PodPlayer {
        let running = Arc::new(Mutex::new(Running::default()));
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(selector);
        let state = running.clone();
        let dir = dir.to_path_buf();
        let watch = tokio::spawn(async move {
            let mut events = watcher::watcher(pods, config).boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                        let state = state.clone();
                        let dir = dir.clone();
                        // Minting a token runs kubectl: off the watch loop.
                        tokio::task::spawn_blocking(move || observe(&state, &pod, &dir));
                    }
                    Ok(Event::Delete(pod)) => stop(&state, &pod.name_any(), grace(&pod)),
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => eprintln!("pod player: watch error (retried): {e}"),
                }
            }
        });
        PodPlayer { running, watch }
    }

    /// Pods whose worker is running now.
    pub fn live(&self) -> usize {
        self.running.lock().workers.len()
    }

    /// Every pod that ever got a worker.
    pub fn started(&self) -> Vec<String> {
        self.running.lock().started.clone()
    }

    /// Pods whose worker was told to stop (SIGTERM).
    pub fn stopped(&self) -> Vec<String> {
        self.running.lock().stopped.clone()
    }

    /// The output of the worker of `pod`, if it still runs.
    pub fn output(&self, pod: &str) -> Option<String> {
        self.running.lock().workers.get(pod).map(Proc::output)
    }
}

impl Drop for PodPlayer {
    fn drop(&mut self) {
        self.watch.abort();
        // Proc's own Drop kills what is left.
        self.running.lock().workers.clear();
    }
}

fn grace(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn observe(state: &Arc<Mutex<Running>>, pod: &Pod, dir: &Path) {
    let name = pod.name_any();
    if pod.metadata.deletion_timestamp.is_some() {
        stop(state, &name, grace(pod));
        return;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Running") {
        return;
    }
    {
        let running = state.lock();
        if running.started.contains(&name) {
            return;
        }
    }
    match worker_for(pod, dir) {
        Ok(proc) => {
            let mut running = state.lock();
            if running.started.contains(&name) {
                return; // another event for the same pod got there first
            }
            running.started.push(name.clone());
            running.workers.insert(name, proc);
        }
        Err(e) => eprintln!("pod player: cannot start the worker of pod {name}: {e}"),
    }
}

/// SIGTERM to the pod's worker; it has `grace` to exit before SIGKILL.
fn stop(state: &Arc<Mutex<Running>>, pod: &str, grace: Duration) {
    let proc = {
        let mut running = state.lock();
        let proc = running.workers.remove(pod);
        if proc.is_some() {
            running.stopped.push(pod.to_string());
        }
        proc
    };
    if let Some(mut proc) = proc {
        std::thread::spawn(move || {
            if proc.terminate(grace).is_none() {
                proc.kill9();
            }
        });
    }
}

/// The pod's worker container env with field references resolved, a token
/// minted for its ServiceAccount, and `kontinuum-worker` started on it.
fn worker_for(pod: &Pod, dir: &Path) -> Result<Proc, String> {
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("pod without spec")?;
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == "worker")
        .or(spec.containers.first())
        .ok_or("pod without containers")?;
    let mut env: HashMap<String, String> = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => name.clone(),
                Some("metadata.namespace") => namespace.clone(),
                _ => continue,
            },
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    let account = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let token = mint_token(&namespace, &account)?;
    let token_file: PathBuf = dir.join(format!("{name}.token"));
    std::fs::write(&token_file, token).map_err(|e| format!("write the token: {e}"))?;
    let get = |key: &str| {
        env.get(key)
            .cloned()
            .ok_or_else(|| format!("the worker container has no {key}"))
    };
    let mut cmd = Command::new(bin("kontinuum-worker"));
    // Flags from the pod's env, as the stock image's entrypoint reads them.
    cmd.args(["--server", &get("KONTINUUM_SERVER")?])
        .args(["--pool", &get("KONTINUUM_POOL")?])
        .args(["--concurrency", &get("KONTINUUM_CONCURRENCY")?])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--name", &name])
        .env("POD_NAME", &name)
        .env("POD_NAMESPACE", &namespace)
        .env("RUST_LOG", "info");
    Ok(Proc::spawn(
        &format!("worker of pod {name}"),
        cmd,
        dir.join(format!("{name}.log")),
    ))
}

/// A ServiceAccount token for the worker API's audience.
pub fn mint_token(namespace: &str, account: &str) -> Result<String, String> {
    let r = kubectl_result(
        &[
            "create",
            "token",
            account,
            "-n",
            namespace,
            "--audience",
            TOKEN_AUDIENCE,
            "--duration",
            "1h",
        ],
        None,
    );
    if !r.success {
        return Err(format!("kubectl create token {account}: {}", r.stderr));
    }
    Ok(r.stdout.trim().to_string())
}
