//! The worker Deployment of a pool, built from the pool's pod template.
//! Pure: JSON in, JSON out, so that what the user wrote in the template is
//! kept field by field and only the operator's own fields are filled in.

// The worker's own parts of the pod (its command, settings, privileges)
// are inject.rs's, below this module.
use super::inject::{self, ensure_array};
pub use super::inject::{STOCK_WORKER_COMMAND, WorkerSettings};
use kontinuum_api::WorkerSpec;
use serde_json::{Map, Value, json};

/// Label that ties pods and the Deployment to their pool.
pub const POOL_LABEL: &str = "kontinuum.dev/pool";
/// The worker container's name, if the template does not name one.
pub const WORKER_CONTAINER: &str = "worker";
/// Where the projected ServiceAccount token is mounted in worker pods.
pub const TOKEN_DIR: &str = "/var/run/secrets/kontinuum.dev";
pub const TOKEN_AUDIENCE: &str = "kontinuum.dev";
const TOKEN_VOLUME: &str = "kontinuum-token";
/// Where worker pods serve their metrics (`kontinuum-worker
/// --metrics-listen`), as the container port named `metrics`.
pub const WORKER_METRICS_PORT: u16 = 9090;
/// The `app.kubernetes.io/name` of worker pods, which the chart's
/// PodMonitor selects.
pub const WORKER_APP_NAME: &str = "kontinuum-worker";

/// Everything [`desired`] needs to know of the pool.
pub struct PoolShape<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub template: Option<&'a Value>,
    pub concurrency: u32,
    pub replicas: i32,
    /// `spec.worker`.
    pub worker: &'a WorkerSpec,
}

pub fn deployment_name(pool: &str) -> String {
    format!("{pool}-workers")
}

/// The Deployment to server-side apply for a pool: the user's template,
/// field by field, with the operator's fields filled in.
pub fn desired(pool: &PoolShape<'_>, settings: &WorkerSettings) -> Value {
    let mut template = pool.template.cloned().unwrap_or_else(|| json!({}));
    if !template.is_object() {
        template = json!({});
    }
    label(&mut template, pool.name);
    ensure_object(&mut template, "spec");
    let spec = &mut template["spec"];
    let index = worker_index(spec);
    inject::run_worker(spec, index, pool.worker, settings);
    let container = &mut ensure_array(spec, "containers")[index];
    fill_env(container, pool, settings);
    mount_token(spec, index);
    inject::restrict(spec, index);
    // SIGTERM lets a worker finish or hand back its tasks; give it time.
    if spec.get("terminationGracePeriodSeconds").is_none() {
        spec["terminationGracePeriodSeconds"] = json!(60);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(pool.name),
            "labels": {
                POOL_LABEL: pool.name,
                "app.kubernetes.io/name": WORKER_APP_NAME,
                "app.kubernetes.io/managed-by": "kontinuum-operator",
            },
            "ownerReferences": [{
                "apiVersion": kontinuum_api::API_VERSION,
                "kind": "WorkerPool",
                "name": pool.name,
                "uid": pool.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": {POOL_LABEL: pool.name}},
            "template": template,
        },
    })
}

/// The pool's label (what the Deployment selects) and a name the chart's
/// PodMonitor finds.
fn label(template: &mut Value, pool: &str) {
    ensure_object(template, "metadata");
    let labels = ensure_object(&mut template["metadata"], "labels");
    labels.insert(POOL_LABEL.into(), json!(pool));
    labels
        .entry("app.kubernetes.io/name")
        .or_insert_with(|| json!(WORKER_APP_NAME));
}

/// The worker container's index: the one named [`WORKER_CONTAINER`], else
/// the only one, else a new one.
fn worker_index(spec: &mut Value) -> usize {
    let containers = ensure_array(spec, "containers");
    let index = match containers
        .iter()
        .position(|c| c["name"] == WORKER_CONTAINER)
    {
        Some(i) => i,
        None if containers.len() == 1 => 0,
        None => {
            containers.push(json!({"name": WORKER_CONTAINER}));
            containers.len() - 1
        }
    };
    if containers[index].get("name").is_none() {
        containers[index]["name"] = json!(WORKER_CONTAINER);
    }
    index
}

/// Settings go in as environment variables, which kontinuum-worker (and a
/// worker built on the SDK) reads like its flags, so a user's own command
/// and args stay as written; a variable the user set wins.
fn fill_env(container: &mut Value, pool: &PoolShape<'_>, settings: &WorkerSettings) {
    let env = ensure_array(container, "env");
    let mut fill = vec![
        ("KONTINUUM_SERVER", json!(settings.server)),
        ("KONTINUUM_POOL", json!(pool.name)),
        ("KONTINUUM_CONCURRENCY", json!(pool.concurrency.to_string())),
        ("KONTINUUM_TOKEN_FILE", json!(format!("{TOKEN_DIR}/token"))),
    ];
    if let Some(handler) = &pool.worker.handler {
        fill.push(("KONTINUUM_HANDLER", json!(handler)));
    }
    if let Some(n) = pool.worker.handler_processes {
        fill.push(("KONTINUUM_HANDLER_PROCESSES", json!(n.to_string())));
    }
    // The pool's lists are the operator's to say: set even when empty, so a
    // list removed from the spec leaves the pods too.
    let lists = pool.worker.functions.clone().unwrap_or_default();
    fill.push(("KONTINUUM_ALLOW", json!(lists.allow.join(","))));
    fill.push(("KONTINUUM_DENY", json!(lists.deny.join(","))));
    for (name, value) in fill {
        set_env(env, name, json!({"name": name, "value": value}));
    }
    // Metrics on a known port, unless the user chose a listener: then the
    // port is theirs to declare.
    let metrics_chosen = env.iter().any(|e| e["name"] == "KONTINUUM_METRICS_LISTEN");
    set_env(
        env,
        "KONTINUUM_METRICS_LISTEN",
        json!({"name": "KONTINUUM_METRICS_LISTEN", "value": format!("0.0.0.0:{WORKER_METRICS_PORT}")}),
    );
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        set_env(
            env,
            name,
            json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}),
        );
    }
    if !metrics_chosen {
        let ports = ensure_array(container, "ports");
        if !ports
            .iter()
            .any(|p| p["name"] == "metrics" || p["containerPort"] == WORKER_METRICS_PORT)
        {
            ports.push(json!({
                "name": "metrics",
                "containerPort": WORKER_METRICS_PORT,
                "protocol": "TCP",
            }));
        }
    }
}

/// The projected ServiceAccount token (audience `kontinuum.dev`) the
/// worker proves itself with.
fn mount_token(spec: &mut Value, worker: usize) {
    let mounts = ensure_array(
        &mut ensure_array(spec, "containers")[worker],
        "volumeMounts",
    );
    if !mounts.iter().any(|m| m["name"] == TOKEN_VOLUME) {
        mounts.push(json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true}));
    }
    let volumes = ensure_array(spec, "volumes");
    if !volumes.iter().any(|v| v["name"] == TOKEN_VOLUME) {
        volumes.push(json!({
            "name": TOKEN_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": TOKEN_AUDIENCE,
                "expirationSeconds": 3600,
                "path": "token"
            }}]}
        }));
    }
}

/// The pods' label selector as the scale subresource shows it.
pub fn selector(pool: &str) -> String {
    format!("{POOL_LABEL}={pool}")
}

pub(crate) fn ensure_object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v[key].is_object() {
        v[key] = json!({});
    }
    v[key]
        .as_object_mut()
        .unwrap_or_else(|| unreachable!("just made an object"))
}

/// Sets an env entry unless the user set the same variable.
fn set_env(env: &mut Vec<Value>, name: &str, entry: Value) {
    if !env.iter().any(|e| e["name"] == name) {
        env.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WorkerSettings {
        WorkerSettings {
            image: "kontinuum.dev/kontinuum:0.1.0".into(),
            server: "http://kontinuum.kontinuum-system.svc:7070".into(),
        }
    }

    /// The Deployment of pool "p" from `template`.
    fn build(
        template: Option<&Value>,
        concurrency: u32,
        replicas: i32,
        worker: &WorkerSpec,
    ) -> Value {
        desired(
            &PoolShape {
                name: "p",
                uid: "uid-1",
                template,
                concurrency,
                replicas,
                worker,
            },
            &settings(),
        )
    }

    fn env_of(d: &Value) -> &Vec<Value> {
        d.pointer("/spec/template/spec/containers/0/env")
            .unwrap()
            .as_array()
            .unwrap()
    }

    #[test]
    fn no_template_gives_the_stock_worker_with_token_and_settings() {
        let d = build(None, 8, 3, &WorkerSpec::default());
        assert_eq!(d["metadata"]["name"], "p-workers");
        assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["selector"]["matchLabels"][POOL_LABEL], "p");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"][POOL_LABEL], "p");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "worker");
        assert_eq!(c["image"], "kontinuum.dev/kontinuum:0.1.0");
        assert_eq!(c["command"], json!(["/usr/local/bin/kontinuum-worker"]));
        let env = env_of(&d);
        let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
        assert_eq!(get("KONTINUUM_POOL")["value"], "p");
        assert_eq!(get("KONTINUUM_CONCURRENCY")["value"], "8");
        assert_eq!(
            get("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        let vol = &d["spec"]["template"]["spec"]["volumes"][0];
        assert_eq!(
            vol["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            "kontinuum.dev"
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], TOKEN_DIR);
        assert_eq!(get("KONTINUUM_METRICS_LISTEN")["value"], "0.0.0.0:9090");
        assert_eq!(c["ports"][0]["name"], "metrics");
        assert_eq!(c["ports"][0]["containerPort"], 9090);
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            "kontinuum-worker"
        );
    }

    #[test]
    fn a_metrics_listener_of_the_user_is_not_overridden() {
        let template = json!({"spec": {"containers": [{"name": "worker",
            "env": [{"name": "KONTINUUM_METRICS_LISTEN", "value": "0.0.0.0:8000"}],
            "ports": [{"name": "prom", "containerPort": 8000}]}]}});
        let d = build(Some(&template), 1, 0, &WorkerSpec::default());
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let listeners: Vec<_> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "KONTINUUM_METRICS_LISTEN")
            .collect();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0]["value"], "0.0.0.0:8000");
        assert_eq!(c["ports"].as_array().unwrap().len(), 1, "{c}");
    }

    #[test]
    fn the_users_fields_are_kept() {
        let template = json!({
            "metadata": {"labels": {"team": "x"}, "annotations": {"a": "b"}},
            "spec": {
                "serviceAccountName": "runner",
                "nodeSelector": {"disk": "ssd"},
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {"name": "sidecar", "image": "busybox"},
                    {"name": "worker", "image": "me/my-worker:1", "args": ["--verbose"],
                     "env": [{"name": "KONTINUUM_CONCURRENCY", "value": "2"}],
                     "resources": {"limits": {"cpu": "1"}}}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }
        });
        let sdk_image = WorkerSpec {
            inject: Some(false),
            ..WorkerSpec::default()
        };
        let d = build(Some(&template), 8, 1, &sdk_image);
        let t = &d["spec"]["template"];
        assert_eq!(t["metadata"]["labels"]["team"], "x");
        assert_eq!(t["metadata"]["annotations"]["a"], "b");
        assert_eq!(t["spec"]["serviceAccountName"], "runner");
        assert_eq!(t["spec"]["terminationGracePeriodSeconds"], 5);
        assert_eq!(
            t["spec"]["containers"][0]["image"], "busybox",
            "sidecar untouched"
        );
        assert!(t["spec"]["containers"][0].get("env").is_none());
        let w = &t["spec"]["containers"][1];
        assert_eq!(w["image"], "me/my-worker:1");
        assert!(w.get("command").is_none(), "their image, their entrypoint");
        assert_eq!(w["args"][0], "--verbose");
        assert_eq!(w["resources"]["limits"]["cpu"], "1");
        let env = w["env"].as_array().unwrap();
        let conc: Vec<_> = env
            .iter()
            .filter(|e| e["name"] == "KONTINUUM_CONCURRENCY")
            .collect();
        assert_eq!(conc.len(), 1);
        assert_eq!(conc[0]["value"], "2", "the user's value wins");
        let vols = t["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        assert!(
            t["spec"].get("initContainers").is_none(),
            "nothing injected"
        );
    }

    #[test]
    fn a_single_unnamed_container_is_the_worker() {
        let template = json!({"spec": {"containers": [{"image": "me/w:2"}]}});
        let d = build(Some(&template), 1, 0, &WorkerSpec::default());
        let cs = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0]["name"], "worker");
        assert_eq!(cs[0]["image"], "me/w:2");
    }

    #[test]
    fn any_image_gets_the_worker_injected_and_keeps_its_files() {
        let template = json!({"spec": {"containers": [{"name": "worker",
            "image": "debian-python:12",
            "volumeMounts": [{"name": "app", "mountPath": "/app"}],
            "resources": {"limits": {"memory": "256Mi"}}}],
            "volumes": [{"name": "app", "configMap": {"name": "app"}}],
            "nodeSelector": {"disk": "ssd"}}});
        let worker = WorkerSpec {
            handler: Some("python3 /app/tasks.py".into()),
            handler_processes: Some(4),
            ..WorkerSpec::default()
        };
        let d = build(Some(&template), 8, 1, &worker);
        let spec = &d["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        assert_eq!(c["image"], "debian-python:12", "the user's image");
        assert_eq!(c["command"], json!([inject::INJECTED_WORKER]));
        assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
        assert_eq!(spec["nodeSelector"]["disk"], "ssd");
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert!(
            mounts.contains(&"/app") && mounts.contains(&"/kontinuum/bin"),
            "{mounts:?}"
        );
        let init = &spec["initContainers"][0];
        assert_eq!(
            init["image"], "kontinuum.dev/kontinuum:0.1.0",
            "the stock image"
        );
        assert_eq!(
            init["command"],
            json!([STOCK_WORKER_COMMAND, "--install-into", "/kontinuum/bin"])
        );
        let env = env_of(&d);
        let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
        assert_eq!(get("KONTINUUM_HANDLER")["value"], "python3 /app/tasks.py");
        assert_eq!(get("KONTINUUM_HANDLER_PROCESSES")["value"], "4");
        // Applied twice (the operator reconciles again): nothing doubles.
        let again = build(Some(&d["spec"]["template"]), 8, 1, &worker);
        assert_eq!(again["spec"]["template"], d["spec"]["template"]);
    }

    #[test]
    fn the_pools_function_lists_reach_the_worker_and_leave_with_the_spec() {
        let worker = WorkerSpec {
            functions: Some(kontinuum_api::workerpool::FunctionLists {
                allow: vec!["std.*".into(), "py.*".into()],
                deny: vec!["std.exec".into()],
            }),
            ..WorkerSpec::default()
        };
        let d = build(None, 8, 1, &worker);
        let env = env_of(&d);
        let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
        assert_eq!(get("KONTINUUM_ALLOW")["value"], "std.*,py.*");
        assert_eq!(get("KONTINUUM_DENY")["value"], "std.exec");
        // Without lists the variables are there, empty: a pool whose lists
        // were removed serves everything again after the rollout.
        let plain = build(None, 8, 1, &WorkerSpec::default());
        let env = env_of(&plain);
        let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
        assert_eq!(get("KONTINUUM_ALLOW")["value"], "");
        assert_eq!(get("KONTINUUM_DENY")["value"], "");
    }

    #[test]
    fn a_command_of_the_users_is_kept_with_the_worker_beside_it() {
        let template = json!({"spec": {"containers": [{"name": "worker", "image": "me/app:1",
            "command": ["/app/start.sh"]}]}});
        let d = build(Some(&template), 8, 1, &WorkerSpec::default());
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["command"], json!(["/app/start.sh"]));
        assert_eq!(
            spec["initContainers"][0]["name"],
            "kontinuum-worker-install"
        );
    }

    #[test]
    fn the_operators_containers_pass_pod_security_restricted_unless_told_otherwise() {
        let template = json!({"spec": {"containers": [
            {"name": "worker", "image": "me/app:1"},
            {"name": "sidecar", "image": "envoy"}
        ]}});
        let d = build(Some(&template), 8, 1, &WorkerSpec::default());
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["automountServiceAccountToken"], false);
        for c in [&spec["containers"][0], &spec["initContainers"][0]] {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
            assert_eq!(sc["runAsNonRoot"], true);
            assert_eq!(sc["runAsUser"], 65532);
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        }
        assert!(
            spec["containers"][1].get("securityContext").is_none(),
            "the user's sidecar"
        );
        // What the user wrote wins: their container's context, their pod's
        // user, their token mount.
        let theirs = json!({"spec": {
            "automountServiceAccountToken": true,
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
            "containers": [{"name": "worker", "image": "me/app:1",
                            "securityContext": {"privileged": false}}]}});
        let d = build(Some(&theirs), 8, 1, &WorkerSpec::default());
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["automountServiceAccountToken"], true);
        assert_eq!(
            spec["containers"][0]["securityContext"],
            json!({"privileged": false})
        );
        let init = &spec["initContainers"][0]["securityContext"];
        assert!(init.get("runAsUser").is_none(), "the pod says whom: {init}");
        assert_eq!(init["allowPrivilegeEscalation"], false);
    }

    #[test]
    fn the_stock_image_runs_its_own_worker_without_injection() {
        let d = build(None, 8, 1, &WorkerSpec::default());
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["command"],
            json!([STOCK_WORKER_COMMAND])
        );
        assert!(spec.get("initContainers").is_none());
        assert_eq!(spec["containers"][0]["securityContext"]["runAsUser"], 65532);
    }
}
