//! How the worker gets into a pool's pods, and the least privilege they
//! run with. Pure, like deployment.rs.
//!
//! - No image in the template: the stock image, which holds the worker.
//! - An image, injected (the default for a named image): an init container
//!   of the stock image copies the static `kontinuum-worker` into an
//!   `emptyDir`, and the worker container runs it from there — the user's
//!   image keeps its files (`python3`, their scripts) for handlers and
//!   `std.exec`, and needs nothing of ours.
//! - An image that runs a worker itself (a Rust SDK worker): `inject: false`,
//!   the image's own entrypoint runs.

use kontinuum_api::WorkerSpec;
use serde_json::{Value, json};

/// The worker binary in the stock image.
pub const STOCK_WORKER_COMMAND: &str = "/usr/local/bin/kontinuum-worker";

/// What the operator fills in.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// The stock worker image, used when the template names none, and the
    /// image of the init container that puts the worker into other images.
    pub image: String,
    /// The worker API's URL as pods reach it.
    pub server: String,
}

/// `v[key]` as an array, made one if it is not.
pub(crate) fn ensure_array<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !v[key].is_array() {
        v[key] = json!([]);
    }
    v[key]
        .as_array_mut()
        .unwrap_or_else(|| unreachable!("just made an array"))
}

/// Where the injected worker lives in the worker container.
pub const INJECT_DIR: &str = "/kontinuum/bin";
/// The injected worker's path.
pub const INJECTED_WORKER: &str = "/kontinuum/bin/kontinuum-worker";
const INJECT_VOLUME: &str = "kontinuum-bin";
/// The init container that copies the worker.
pub const INSTALL_CONTAINER: &str = "kontinuum-worker-install";
/// The user and group the operator's containers run as (the stock image's
/// non-root user), unless the pod's template says whom.
pub const RUN_AS: i64 = 65532;

/// Fills in the worker container `index` of `spec`: the stock image when
/// it names none, and the injected worker unless the pool says the image
/// runs one itself.
pub fn run_worker(spec: &mut Value, index: usize, worker: &WorkerSpec, settings: &WorkerSettings) {
    let container = &mut ensure_array(spec, "containers")[index];
    let named = container
        .get("image")
        .and_then(Value::as_str)
        .is_some_and(|i| !i.is_empty());
    let inject = worker.inject.unwrap_or(named);
    if !named {
        container["image"] = json!(settings.image);
        if container.get("imagePullPolicy").is_none() {
            container["imagePullPolicy"] = json!("IfNotPresent");
        }
    }
    // A command the user wrote is kept: with injection the worker is at
    // INJECTED_WORKER for it to run (a wrapper script, say).
    if container.get("command").is_none() {
        let command = if inject {
            INJECTED_WORKER
        } else {
            STOCK_WORKER_COMMAND
        };
        // The stock image starts the operator by default; an image of the
        // user's with inject: false has its own entrypoint.
        if inject || !named {
            container["command"] = json!([command]);
        }
    }
    if !inject {
        return;
    }
    let mounts = ensure_array(container, "volumeMounts");
    if !mounts.iter().any(|m| m["name"] == INJECT_VOLUME) {
        mounts.push(json!({"name": INJECT_VOLUME, "mountPath": INJECT_DIR, "readOnly": true}));
    }
    let volumes = ensure_array(spec, "volumes");
    if !volumes.iter().any(|v| v["name"] == INJECT_VOLUME) {
        volumes.push(json!({"name": INJECT_VOLUME, "emptyDir": {}}));
    }
    let inits = ensure_array(spec, "initContainers");
    if !inits.iter().any(|c| c["name"] == INSTALL_CONTAINER) {
        inits.push(json!({
            "name": INSTALL_CONTAINER,
            "image": settings.image,
            "imagePullPolicy": "IfNotPresent",
            "command": [STOCK_WORKER_COMMAND, "--install-into", INJECT_DIR],
            "volumeMounts": [{"name": INJECT_VOLUME, "mountPath": INJECT_DIR}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"memory": "64Mi"}},
        }));
    }
}

/// Least privilege where the user said nothing: the worker and install
/// containers without a securityContext get one that passes Pod Security
/// `restricted`, and the pod does not mount the namespace's default
/// ServiceAccount token (workers prove themselves with the projected
/// `kontinuum.dev` token, not that one).
pub fn restrict(spec: &mut Value, worker: usize) {
    if spec.get("automountServiceAccountToken").is_none() {
        spec["automountServiceAccountToken"] = json!(false);
    }
    // Whom to run as, unless the pod's securityContext says.
    let pod = spec.get("securityContext");
    let pod_says_who =
        pod.is_some_and(|p| p.get("runAsUser").is_some() || p.get("runAsNonRoot").is_some());
    let pod_says_seccomp = pod.is_some_and(|p| p.get("seccompProfile").is_some());
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        let ours = |(i, c): &(usize, &mut Value)| match list {
            "containers" => *i == worker,
            _ => c["name"] == INSTALL_CONTAINER,
        };
        for (_, c) in containers.iter_mut().enumerate().filter(ours) {
            if c.get("securityContext").is_some() {
                continue;
            }
            let mut context = json!({
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
            });
            if !pod_says_seccomp {
                context["seccompProfile"] = json!({"type": "RuntimeDefault"});
            }
            if !pod_says_who {
                context["runAsNonRoot"] = json!(true);
                context["runAsUser"] = json!(RUN_AS);
                context["runAsGroup"] = json!(RUN_AS);
            }
            c["securityContext"] = context;
        }
    }
}
